#if canImport(Glibc)
import Glibc
#endif
import CKVM
import KVM
import Devices
import SwvmBase

extension Machine {
    func handle(_ exit: VCPUExit, on vcpu: VCPU) throws {
        switch exit {
        case let .io(isWrite, port, size, count, data):
            for i in 0..<count {
                let p = data + i * size
                if isWrite {
                    portBus.write(address: UInt64(port), data: UnsafeRawBufferPointer(start: p, count: size))
                } else if !portBus.read(address: UInt64(port), data: UnsafeMutableRawBufferPointer(start: p, count: size)) {
                    memset(p, 0xff, size)   // nothing there: the bus floats high
                }
            }
        case let .mmio(isWrite, address, length, data):
            if isWrite {
                mmioBus.write(address: address, data: UnsafeRawBufferPointer(start: data, count: length))
            } else if !mmioBus.read(address: address, data: UnsafeMutableRawBufferPointer(start: data, count: length)) {
                memset(data, 0, length)
            }
        case .halt:
            stop(.poweroff)
        case .shutdown:
            stop(panicScanner.message.map { .panic($0) } ?? .tripleFault)
        case .systemEvent(let type):
            switch Int32(type) {
            case KVM_SYSTEM_EVENT_SHUTDOWN: stop(.poweroff)
            case KVM_SYSTEM_EVENT_RESET: guestReset()
            case KVM_SYSTEM_EVENT_CRASH: stop(.panic(panicScanner.message ?? "guest reported a crash"))
            default: stop(.failed(SwvmError(.vmFailed, "unhandled KVM_EXIT_SYSTEM_EVENT type \(type)")))
            }
        case let .internalError(suberror, data, instruction):
            try handleInternalError(vcpu, suberror: suberror, data: data, instruction: instruction)
        case .failEntry(let reason):
            let rip = (try? vcpu.getRegisters().rip) ?? 0
            throw SwvmError(.vmFailed, "vCPU \(vcpu.id): KVM_EXIT_FAIL_ENTRY (hardware reason 0x\(String(reason, radix: 16))) at RIP 0x\(String(rip, radix: 16))")
        case .interrupted:
            try serviceKick(vcpu)
        case .other(let reason):
            let rip = (try? vcpu.getRegisters().rip) ?? 0
            throw SwvmError(.vmFailed, "vCPU \(vcpu.id): unhandled KVM exit reason \(reason) at RIP 0x\(String(rip, radix: 16))")
        }
    }

    /// After a kick: park for a pause, or answer a halt check or a profile sample.
    func serviceKick(_ vcpu: VCPU) throws {
        parkIfRequested()
        let (checkHalt, sample) = state.with { s -> (Bool, Bool) in
            (s.haltCheckPending > 0 && !s.haltedVCPUs.contains(vcpu.id), s.profileRequested.remove(vcpu.id) != nil)
        }
        if sample, let regs = try? vcpu.getRegisters() {
            // RIP, then kernel-text-looking words from the top of the stack
            // (a "guess" unwind, enough to attribute time to callers).
            var frame = [regs.rip]
            if let stack = try? readGuestVirtual(vcpu, regs.rsp, count: 2048) {
                for i in stride(from: 0, to: stack.count - 7, by: 8) {
                    let w = le64(stack, i)
                    if w >= 0xffff_ffff_8100_0000 && w < 0xffff_ffff_c000_0000 { frame.append(w) }
                }
            }
            state.with { $0.samples.append(frame) }
        }
        guard checkHalt else { return }
        let halted = try vcpu.mpState() == UInt32(KVM_MP_STATE_HALTED)
        let interruptsOff = (try vcpu.getRegisters().rflags & 0x200) == 0
        let allDead: Bool = state.with { s in
            s.haltCheckPending -= 1
            if halted && interruptsOff { s.haltedVCPUs.insert(vcpu.id) }
            return s.haltedVCPUs.count == vcpus.count
        }
        // Halted with interrupts off can never wake: Linux's halt and
        // poweroff end like that when there is no ACPI to power off with.
        if allDead { stop(panicScanner.message.map { .panic($0) } ?? .poweroff) }
    }
}
