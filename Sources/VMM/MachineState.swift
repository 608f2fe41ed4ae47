#if canImport(Glibc)
import Glibc
#endif
import CKVM
import KVM
import Snapshot
import SwvmBase

/// Saving and restoring the state KVM keeps for a vCPU and for the VM, in
/// the orders Firecracker uses: the MP state first when saving (reading it
/// makes KVM accept pending APIC events), the LAPIC before the MSRs when
/// restoring (the TSC deadline MSR needs the LAPIC in its mode), and the
/// pending events last. The KVM layer hands over typed state; the saved
/// form is written here.
extension VCPU {
    public func saveState(_ w: inout StateWriter, msrIndices: [UInt32], xsaveSize: Int) throws {
        w.u32(try mpState())
        w.raw(try getRegisters())
        w.raw(try getSpecialRegisters())
        w.raw(try getFPU())
        w.data(try getXSAVE(size: xsaveSize))
        w.raw(try getXCRs())
        w.raw(try getDebugRegisters())
        w.raw(try getLAPIC())
        let msrs = try readMSRs(msrIndices)
        w.u32(UInt32(msrs.count))
        for m in msrs { w.u32(m.index); w.u64(m.data) }
        w.raw(try getEvents())
    }

    public func restoreState(_ r: inout StateReader) throws {
        try setMPState(try r.u32())
        try setRegisters(try r.raw(kvm_regs.self, initial: kvm_regs()))
        try setSpecialRegisters(try r.raw(kvm_sregs.self, initial: kvm_sregs()))
        try setFPU(try r.raw(kvm_fpu.self, initial: kvm_fpu()))
        let xsave = try r.data(limit: 1 << 20)
        guard xsave.count >= MemoryLayout<kvm_xsave>.size else {
            throw SwvmError(.invalidImage, "\(r.source): XSAVE area of \(xsave.count) bytes")
        }
        try setXSAVE(xsave)
        try setXCRs(try r.raw(kvm_xcrs.self, initial: kvm_xcrs()))
        try setDebugRegisters(try r.raw(kvm_debugregs.self, initial: kvm_debugregs()))
        try setLAPIC(try r.raw(kvm_lapic_state.self, initial: kvm_lapic_state()))
        let count = try r.bounded(try r.u32(), max: 4096, what: "MSRs")
        var msrs: [(UInt32, UInt64)] = []
        for _ in 0..<count { msrs.append((try r.u32(), try r.u64())) }
        try setMSRs(msrs)
        try setEvents(try r.raw(kvm_vcpu_events.self, initial: kvm_vcpu_events()))
    }
}

extension VirtualMachine {
    /// The in-kernel irqchip (PIC master, PIC slave, IOAPIC), PIT and clock.
    public func saveState(_ w: inout StateWriter) throws {
        for chip in UInt32(0)...2 { w.raw(try getIRQChip(chip)) }
        w.raw(try getPIT2())
        w.u64(try getClock())
    }

    public func restoreState(_ r: inout StateReader) throws {
        var chips: [kvm_irqchip] = []
        for _ in 0..<3 { chips.append(try r.raw(kvm_irqchip.self, initial: kvm_irqchip())) }
        let pit = try r.raw(kvm_pit_state2.self, initial: kvm_pit_state2())
        let clock = try r.u64()
        try setPIT2(pit)
        try setClock(clock)
        for c in chips { try setIRQChip(c) }
    }
}
