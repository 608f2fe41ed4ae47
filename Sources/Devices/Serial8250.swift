import Snapshot
import SwvmBase
import NativeThreads

/// A 16550A-compatible UART (the PC's COM1 at 0x3f8, IRQ 4), enough for
/// Linux's 8250 driver: transmit-holding-register-empty and receive
/// interrupts, loopback for the driver's probe, FIFO reporting, divisor
/// latch. Transmitted bytes go to `output`; `enqueueInput` feeds the guest.
// @unchecked: the registers and the input FIFO are read and written only
// under `lock`.
public final class Serial8250: BusDevice, StateSaving, @unchecked Sendable {
    // Register offsets.
    static let data: UInt64 = 0, ier: UInt64 = 1, iirFcr: UInt64 = 2, lcr: UInt64 = 3
    static let mcr: UInt64 = 4, lsr: UInt64 = 5, msr: UInt64 = 6, scr: UInt64 = 7
    // Bits.
    static let ierRDI: UInt8 = 0x01, ierTHRI: UInt8 = 0x02
    static let iirNone: UInt8 = 0x01, iirTHRI: UInt8 = 0x02, iirRDI: UInt8 = 0x04, iirFIFO: UInt8 = 0xc0
    static let lcrDLAB: UInt8 = 0x80
    static let lsrDR: UInt8 = 0x01, lsrTHRE: UInt8 = 0x20, lsrTEMT: UInt8 = 0x40
    static let mcrLoop: UInt8 = 0x10

    private var ierValue: UInt8 = 0
    private var lcrValue: UInt8 = 0x03
    private var mcrValue: UInt8 = 0x08
    private var scrValue: UInt8 = 0
    private var dll: UInt8 = 0x0c
    private var dlm: UInt8 = 0
    private var fifoEnabled = false
    private var thrEmptyPending = false
    private var input: [UInt8] = []
    private var inputHead = 0
    private let lock = Locked(())

    private let output: @Sendable (UInt8) -> Void
    private let raiseInterrupt: @Sendable () -> Void

    public init(output: @escaping @Sendable (UInt8) -> Void, raiseInterrupt: @escaping @Sendable () -> Void) {
        self.output = output
        self.raiseInterrupt = raiseInterrupt
    }

    private var hasInput: Bool { inputHead < input.count }

    public func saveState(_ w: inout StateWriter) {
        lock.with { _ in
            for v in [ierValue, lcrValue, mcrValue, scrValue, dll, dlm] { w.u8(v) }
            w.bool(fifoEnabled)
            w.bool(thrEmptyPending)
            w.data(Array(input[inputHead...]))
        }
    }

    public func restoreState(_ r: inout StateReader) throws {
        let regs = try (0..<6).map { _ in try r.u8() }
        let fifo = try r.bool(), thre = try r.bool()
        let pending = try r.data(limit: 1 << 20)
        lock.with { _ in
            (ierValue, lcrValue, mcrValue, scrValue, dll, dlm) = (regs[0], regs[1], regs[2], regs[3], regs[4], regs[5])
            fifoEnabled = fifo
            thrEmptyPending = thre
            input = pending
            inputHead = 0
        }
    }

    /// Queues bytes for the guest to read (host console input).
    public func enqueueInput(_ bytes: [UInt8]) {
        let raise: Bool = lock.with { _ in
            if inputHead > 4096 { input.removeFirst(inputHead); inputHead = 0 }
            input.append(contentsOf: bytes)
            return ierValue & Serial8250.ierRDI != 0
        }
        if raise { raiseInterrupt() }
    }

    public func read(offset: UInt64, data: UnsafeMutableRawBufferPointer) {
        guard data.count >= 1 else { return }
        let value: UInt8 = lock.with { _ in
            let dlab = lcrValue & Serial8250.lcrDLAB != 0
            switch offset {
            case Serial8250.data:
                if dlab { return dll }
                guard hasInput else { return 0 }
                let b = input[inputHead]
                inputHead += 1
                return b
            case Serial8250.ier: return dlab ? dlm : ierValue
            case Serial8250.iirFcr:
                var id = Serial8250.iirNone
                if ierValue & Serial8250.ierRDI != 0 && hasInput {
                    id = Serial8250.iirRDI
                } else if ierValue & Serial8250.ierTHRI != 0 && thrEmptyPending {
                    id = Serial8250.iirTHRI
                    thrEmptyPending = false  // reading IIR acknowledges THRE
                }
                return id | (fifoEnabled ? Serial8250.iirFIFO : 0)
            case Serial8250.lcr: return lcrValue
            case Serial8250.mcr: return mcrValue
            case Serial8250.lsr: return Serial8250.lsrTHRE | Serial8250.lsrTEMT | (hasInput ? Serial8250.lsrDR : 0)
            case Serial8250.msr:
                if mcrValue & Serial8250.mcrLoop != 0 {
                    // Loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD.
                    var msr: UInt8 = 0
                    if mcrValue & 0x01 != 0 { msr |= 0x20 }
                    if mcrValue & 0x02 != 0 { msr |= 0x10 }
                    if mcrValue & 0x04 != 0 { msr |= 0x40 }
                    if mcrValue & 0x08 != 0 { msr |= 0x80 }
                    return msr
                }
                return 0xb0  // DCD, DSR, CTS: a connected line
            case Serial8250.scr: return scrValue
            default: return 0xff
            }
        }
        data[0] = value
        for i in 1..<data.count { data[i] = 0 }
    }

    public func write(offset: UInt64, data: UnsafeRawBufferPointer) {
        guard data.count >= 1 else { return }
        let value = data[0]
        var emit: UInt8? = nil
        var raise = false
        lock.with { _ in
            let dlab = lcrValue & Serial8250.lcrDLAB != 0
            switch offset {
            case Serial8250.data:
                if dlab { dll = value; return }
                if mcrValue & Serial8250.mcrLoop != 0 {
                    input.append(value)
                    raise = ierValue & Serial8250.ierRDI != 0
                } else {
                    emit = value
                }
                if ierValue & Serial8250.ierTHRI != 0 {
                    thrEmptyPending = true
                    raise = true
                }
            case Serial8250.ier:
                if dlab { dlm = value; return }
                let enablingTHRI = value & Serial8250.ierTHRI != 0 && ierValue & Serial8250.ierTHRI == 0
                ierValue = value & 0x0f
                if enablingTHRI { thrEmptyPending = true; raise = true }
                if ierValue & Serial8250.ierRDI != 0 && hasInput { raise = true }
            case Serial8250.iirFcr:
                fifoEnabled = value & 0x01 != 0
                if value & 0x02 != 0 { input.removeAll(); inputHead = 0 }  // clear receive FIFO
            case Serial8250.lcr: lcrValue = value
            case Serial8250.mcr: mcrValue = value & 0x1f
            case Serial8250.scr: scrValue = value
            default: break
            }
        }
        if let b = emit { output(b) }
        if raise { raiseInterrupt() }
    }
}
