#if canImport(Glibc)
import Glibc
#endif
import KVM
import Snapshot
import SwvmBase

extension Machine {
    /// The TSC rate of this host's vCPUs, which a snapshot needs unchanged
    /// (KVM cannot scale it on every host).
    public var tscKHz: UInt32 { vcpus.first?.tscKHz ?? 0 }

    /// Saves the vCPUs, the VM (irqchip, PIT, clock) and every device.
    /// Only while paused (inside a `pause` work item), or before `run`.
    public func captureState() throws -> [UInt8] {
        var w = StateWriter()
        w.u32(tscKHz)
        w.u32(UInt32(vcpus.count))
        let msrs = try kvm.msrIndexList()
        for vcpu in vcpus { try vcpu.saveState(&w, msrIndices: msrs, xsaveSize: vm.xsaveSize) }
        try vm.saveState(&w)
        serial.saveState(&w)
        cmos.saveState(&w)
        w.u32(UInt32(virtioTransports.count))
        for t in virtioTransports {
            w.u32(t.device.deviceType)
            t.saveState(&w)
        }
        return w.bytes
    }

    /// Puts the machine in the state `captureState` saved. The devices must
    /// be the same, added in the same order.
    public func restore(_ state: [UInt8], source: String) throws {
        var r = StateReader(state, source: source)
        let savedTSC = try r.u32()
        guard savedTSC == tscKHz else {
            throw SwvmError(.invalidImage, "\(source): made on a host whose TSC runs at \(savedTSC) kHz, not \(tscKHz) kHz")
        }
        guard try r.u32() == UInt32(vcpus.count) else { throw SwvmError(.invalidImage, "\(source): made for another vCPU count") }
        try configureVCPUs()
        for vcpu in vcpus { try vcpu.restoreState(&r) }
        try vm.restoreState(&r)
        try serial.restoreState(&r)
        try cmos.restoreState(&r)
        guard try r.u32() == UInt32(virtioTransports.count) else {
            throw SwvmError(.invalidImage, "\(source): made with other devices")
        }
        for t in virtioTransports {
            guard try r.u32() == t.device.deviceType else { throw SwvmError(.invalidImage, "\(source): made with other devices") }
            try t.restoreState(&r)
        }
        guard r.atEnd else { throw SwvmError(.invalidImage, "\(source): unexpected bytes after the device state") }
        // A notification the guest made just before the snapshot lived in
        // an eventfd, which a snapshot does not hold: serve every queue once.
        for fd in queueNotifyFDs {
            var one: UInt64 = 1
            _ = write(fd, &one, 8)
        }
        restored = true
    }
}
