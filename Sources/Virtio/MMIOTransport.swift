import Devices
import GuestMemory
import Snapshot
import SwvmBase
import NativeThreads

/// A virtio device behind any transport: its identity, features, config
/// space, queues, and what it does when the driver notifies a queue.
/// Sendable: vCPU threads, the event loop and service threads all reach it.
public protocol VirtioDevice: AnyObject, Sendable {
    var deviceType: UInt32 { get }
    /// Feature bits offered (VIRTIO_F_VERSION_1 is added by the transport).
    var features: UInt64 { get }
    var queueSizes: [UInt16] { get }
    /// Device-specific configuration space bytes (offset 0x100 on MMIO).
    func readConfig(offset: Int, into data: UnsafeMutableRawBufferPointer)
    func writeConfig(offset: Int, data: UnsafeRawBufferPointer)
    /// The driver set DRIVER_OK: queues are configured.
    func activate(queues: [VirtQueue], negotiated: UInt64, interrupt: @escaping @Sendable () -> Void)
    /// The driver notified queue `index` (on the event-loop thread, or on
    /// a vCPU's for a notification that missed the ioeventfd).
    func queueNotified(_ index: Int)
    /// The driver reset the device.
    func reset()
    /// A device with a thread of its own may take a queue's ioeventfd and
    /// wait on it there (returns true), sparing each notification a hop
    /// through the event loop.
    func adoptNotifier(_ eventfd: Int32, queue: Int) -> Bool
}

extension VirtioDevice {
    public func adoptNotifier(_ eventfd: Int32, queue: Int) -> Bool { false }
}

public enum VirtioID {
    public static let net: UInt32 = 1, block: UInt32 = 2, console: UInt32 = 3, rng: UInt32 = 4
}

public enum VirtioFeature {
    public static let version1: UInt64 = 1 << 32
}

public enum VirtioStatus {
    public static let acknowledge: UInt32 = 1, driver: UInt32 = 2, driverOK: UInt32 = 4
    public static let featuresOK: UInt32 = 8, needsReset: UInt32 = 64, failed: UInt32 = 128
}

/// The virtio-mmio transport, version 2 (virtio 1.x, section 4.2.2): the
/// register window at the device's base address. Queue notifications
/// normally arrive through ioeventfds without a VM exit; a QueueNotify
/// write that does exit is handled the same way.
// @unchecked: the registers are read and written only under `lock`; the
// device and queues are set at init.
public final class MMIOTransport: BusDevice, StateSaving, @unchecked Sendable {
    public let device: VirtioDevice
    public let queues: [VirtQueue]
    private let lock = Locked(())
    private var status: UInt32 = 0
    private var refusedLayoutWarnings = WarningBudget()
    private var deviceFeaturesSel: UInt32 = 0
    private var driverFeaturesSel: UInt32 = 0
    private var driverFeatures: UInt64 = 0
    private var queueSel: UInt32 = 0
    private var interruptStatus: UInt32 = 0
    private var configGeneration: UInt32 = 0
    private var activated = false
    private let raiseIRQ: @Sendable () -> Void

    static let magic: UInt32 = 0x7472_6976  // "virt"
    static let vendor: UInt32 = 0x4d56_5753  // "SWVM"

    public init(device: VirtioDevice, memory: GuestMemory, raiseIRQ: @escaping @Sendable () -> Void) {
        self.device = device
        self.queues = device.queueSizes.enumerated().map { VirtQueue(index: $0.offset, maxSize: $0.element, memory: memory) }
        self.raiseIRQ = raiseIRQ
    }

    public var offeredFeatures: UInt64 { device.features | VirtioFeature.version1 }

    /// Signals "used buffers" to the driver.
    public func signalUsedBuffers() {
        lock.with { _ in interruptStatus |= 1 }
        raiseIRQ()
    }

    /// Tells the driver the device's configuration changed (a disk was
    /// attached): a new config generation and the config-change interrupt.
    public func signalConfigChange() {
        lock.with { _ in
            configGeneration &+= 1
            interruptStatus |= 2
        }
        raiseIRQ()
    }

    /// The transport's registers, its queues, then the device's own state.
    public func saveState(_ w: inout StateWriter) {
        lock.with { _ in
            for v in [status, deviceFeaturesSel, driverFeaturesSel, queueSel, interruptStatus, configGeneration] { w.u32(v) }
            w.u64(driverFeatures)
            w.bool(activated)
            w.u32(UInt32(queues.count))
            for q in queues { q.saveState(&w) }
        }
        if let d = device as? StateSaving { d.saveState(&w) }
    }

    public func restoreState(_ r: inout StateReader) throws {
        let regs = try (0..<6).map { _ in try r.u32() }
        let features = try r.u64()
        let wasActive = try r.bool()
        guard try r.u32() == UInt32(queues.count) else {
            throw SwvmError(.invalidImage, "\(r.source): virtio device \(device.deviceType) has a different queue count")
        }
        for q in queues { try q.restoreState(&r) }
        lock.with { _ in
            (status, deviceFeaturesSel, driverFeaturesSel, queueSel, interruptStatus, configGeneration) =
                (regs[0], regs[1], regs[2], regs[3], regs[4], regs[5])
            driverFeatures = features
            activated = wasActive
        }
        if wasActive {
            device.activate(queues: queues, negotiated: features, interrupt: { [weak self] in self?.signalUsedBuffers() })
        }
        if let d = device as? StateSaving { try d.restoreState(&r) }
    }

    private var selectedQueue: VirtQueue? {
        Int(queueSel) < queues.count ? queues[Int(queueSel)] : nil
    }

    public func read(offset: UInt64, data: UnsafeMutableRawBufferPointer) {
        if offset >= 0x100 {
            device.readConfig(offset: Int(offset - 0x100), into: data)
            return
        }
        guard data.count == 4 else { for i in 0..<data.count { data[i] = 0 }; return }
        let value: UInt32 = lock.with { _ in
            switch offset {
            case 0x000: return MMIOTransport.magic
            case 0x004: return 2
            case 0x008: return device.deviceType
            case 0x00c: return MMIOTransport.vendor
            case 0x010:
                let f = offeredFeatures
                return deviceFeaturesSel == 0 ? UInt32(truncatingIfNeeded: f) : (deviceFeaturesSel == 1 ? UInt32(truncatingIfNeeded: f >> 32) : 0)
            case 0x034: return UInt32(selectedQueue?.maxSize ?? 0)
            case 0x044: return (selectedQueue?.ready ?? false) ? 1 : 0
            case 0x060: return interruptStatus
            case 0x070: return status
            case 0x0fc: return configGeneration
            default: return 0
            }
        }
        data.storeBytes(of: value.littleEndian, as: UInt32.self)
    }

    public func write(offset: UInt64, data: UnsafeRawBufferPointer) {
        if offset >= 0x100 {
            device.writeConfig(offset: Int(offset - 0x100), data: data)
            return
        }
        guard data.count == 4 else { return }
        let v = UInt32(littleEndian: data.loadUnaligned(as: UInt32.self))
        var notify: Int?
        var activate = false
        var reset = false
        lock.with { _ in
            switch offset {
            case 0x014: deviceFeaturesSel = v
            case 0x020:
                if driverFeaturesSel == 0 {
                    driverFeatures = (driverFeatures & 0xffff_ffff_0000_0000) | UInt64(v)
                } else if driverFeaturesSel == 1 {
                    driverFeatures = (driverFeatures & 0xffff_ffff) | (UInt64(v) << 32)
                }
            case 0x024: driverFeaturesSel = v
            case 0x030: queueSel = v
            // QueueNum and the ring addresses change only while the queue
            // is not ready. A value past 16 bits is clamped, not cut, so
            // that QueueReady refuses it (0x10001 must not become 1).
            case 0x038: if let q = selectedQueue, !q.ready { q.size = UInt16(clamping: v) }
            case 0x044:
                guard let q = selectedQueue else { break }
                if v == 1 {
                    do {
                        try q.enable()
                    } catch {
                        refusedLayoutWarnings.warn("virtio device \(device.deviceType): \(UntrustedText.escaped("\(error)"))")
                        status |= VirtioStatus.needsReset
                    }
                } else {
                    q.disable()
                }
            case 0x050: notify = Int(v)
            case 0x064: interruptStatus &= ~v
            case 0x070:
                if v == 0 {
                    reset = true
                    status = 0
                    driverFeatures = 0
                    interruptStatus = 0
                    activated = false
                    for q in queues { q.reset() }
                    return
                }
                if v & VirtioStatus.featuresOK != 0 && status & VirtioStatus.featuresOK == 0 {
                    // Refuse features we did not offer, and insist on virtio 1.
                    if driverFeatures & ~offeredFeatures != 0 || driverFeatures & VirtioFeature.version1 == 0 {
                        status = v & ~VirtioStatus.featuresOK
                        return
                    }
                }
                status = v
                if v & VirtioStatus.driverOK != 0 && !activated {
                    activated = true
                    activate = true
                }
            case 0x080: setLow(&selectedQueueDesc, v)
            case 0x084: setHigh(&selectedQueueDesc, v)
            case 0x090: setLow(&selectedQueueAvail, v)
            case 0x094: setHigh(&selectedQueueAvail, v)
            case 0x0a0: setLow(&selectedQueueUsed, v)
            case 0x0a4: setHigh(&selectedQueueUsed, v)
            default: break
            }
        }
        if reset { device.reset() }
        if activate {
            device.activate(queues: queues, negotiated: driverFeatures, interrupt: { [weak self] in self?.signalUsedBuffers() })
        }
        if let n = notify, n < queues.count {
            device.queueNotified(n)
        }
    }

    private var selectedQueueDesc: UInt64 {
        get { selectedQueue?.descTable ?? 0 }
        set { if let q = selectedQueue, !q.ready { q.descTable = newValue } }
    }
    private var selectedQueueAvail: UInt64 {
        get { selectedQueue?.availRing ?? 0 }
        set { if let q = selectedQueue, !q.ready { q.availRing = newValue } }
    }
    private var selectedQueueUsed: UInt64 {
        get { selectedQueue?.usedRing ?? 0 }
        set { if let q = selectedQueue, !q.ready { q.usedRing = newValue } }
    }

    private func setLow(_ field: inout UInt64, _ v: UInt32) { field = (field & 0xffff_ffff_0000_0000) | UInt64(v) }
    private func setHigh(_ field: inout UInt64, _ v: UInt32) { field = (field & 0xffff_ffff) | (UInt64(v) << 32) }
}
