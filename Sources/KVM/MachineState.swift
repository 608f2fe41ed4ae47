#if canImport(Glibc)
import Glibc
#endif
import CKVM
import Snapshot
import SwvmBase

/// Saving and restoring the state KVM keeps for a vCPU and for the VM, in
/// the orders Firecracker uses: the MP state first when saving (reading it
/// makes KVM accept pending APIC events), the LAPIC before the MSRs when
/// restoring (the TSC deadline MSR needs the LAPIC in its mode), and the
/// pending events last.
extension VCPU {
    public func saveState(_ w: inout StateWriter, msrIndices: [UInt32], xsaveSize: Int) throws {
        w.u32(try mpState())
        w.raw(try getRegisters())
        w.raw(try getSpecialRegisters())
        var fpu = kvm_fpu()
        try sys("KVM_GET_FPU") { ckvm_get_fpu(fd.raw, &fpu) }
        w.raw(fpu)
        var xsave = [UInt8](repeating: 0, count: xsaveSize)
        try sys("KVM_GET_XSAVE") { ckvm_get_xsave(fd.raw, &xsave, UInt32(xsaveSize)) }
        w.data(xsave)
        var xcrs = kvm_xcrs()
        try sys("KVM_GET_XCRS") { ckvm_get_xcrs(fd.raw, &xcrs) }
        w.raw(xcrs)
        var debug = kvm_debugregs()
        try sys("KVM_GET_DEBUGREGS") { ckvm_get_debugregs(fd.raw, &debug) }
        w.raw(debug)
        w.raw(try getLAPIC())
        let msrs = try readMSRs(msrIndices)
        w.u32(UInt32(msrs.count))
        for m in msrs { w.u32(m.index); w.u64(m.data) }
        w.raw(try getEvents())
    }

    /// Reads every MSR KVM can; one it refuses is left out (KVM_GET_MSRS
    /// stops at the first such entry).
    func readMSRs(_ indices: [UInt32]) throws -> [kvm_msr_entry] {
        var out: [kvm_msr_entry] = []
        var rest = indices[...]
        while !rest.isEmpty {
            var entries = rest.map { i -> kvm_msr_entry in var e = kvm_msr_entry(); e.index = i; return e }
            let n = Int(try sys("KVM_GET_MSRS") { ckvm_get_msrs(fd.raw, &entries, UInt32(entries.count)) })
            out += entries[0..<n]
            rest = rest.dropFirst(n + 1)
        }
        return out
    }

    public func restoreState(_ r: inout StateReader) throws {
        let mp = try r.u32()
        try sys("KVM_SET_MP_STATE") { ckvm_set_mp_state(fd.raw, mp) }
        try setRegisters(try r.raw(kvm_regs.self, initial: kvm_regs()))
        try setSpecialRegisters(try r.raw(kvm_sregs.self, initial: kvm_sregs()))
        try setFPU(try r.raw(kvm_fpu.self, initial: kvm_fpu()))
        let xsave = try r.data(limit: 1 << 20)
        guard xsave.count >= MemoryLayout<kvm_xsave>.size else {
            throw SwvmError(.invalidImage, "\(r.source): XSAVE area of \(xsave.count) bytes")
        }
        try sys("KVM_SET_XSAVE") { ckvm_set_xsave(fd.raw, xsave) }
        var xcrs = try r.raw(kvm_xcrs.self, initial: kvm_xcrs())
        try sys("KVM_SET_XCRS") { ckvm_set_xcrs(fd.raw, &xcrs) }
        var debug = try r.raw(kvm_debugregs.self, initial: kvm_debugregs())
        try sys("KVM_SET_DEBUGREGS") { ckvm_set_debugregs(fd.raw, &debug) }
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
        for chip in UInt32(0)...2 {
            var c = kvm_irqchip()
            try sys("KVM_GET_IRQCHIP \(chip)") { ckvm_get_irqchip(fd.raw, chip, &c) }
            w.raw(c)
        }
        var pit = kvm_pit_state2()
        try sys("KVM_GET_PIT2") { ckvm_get_pit2(fd.raw, &pit) }
        w.raw(pit)
        var clock = kvm_clock_data()
        try sys("KVM_GET_CLOCK") { ckvm_get_clock(fd.raw, &clock) }
        w.u64(clock.clock)
    }

    public func restoreState(_ r: inout StateReader) throws {
        var chips: [kvm_irqchip] = []
        for _ in 0..<3 { chips.append(try r.raw(kvm_irqchip.self, initial: kvm_irqchip())) }
        var pit = try r.raw(kvm_pit_state2.self, initial: kvm_pit_state2())
        var clock = kvm_clock_data()
        clock.clock = try r.u64()
        try sys("KVM_SET_PIT2") { ckvm_set_pit2(fd.raw, &pit) }
        try sys("KVM_SET_CLOCK") { ckvm_set_clock(fd.raw, &clock) }
        for var c in chips { try sys("KVM_SET_IRQCHIP \(c.chip_id)") { ckvm_set_irqchip(fd.raw, &c) } }
    }

    /// The size of a vCPU's XSAVE area (KVM_CAP_XSAVE2, or the classic 4 KiB).
    public var xsaveSize: Int { max(Int(ckvm_xsave2_size(fd.raw)), MemoryLayout<kvm_xsave>.size) }
}

extension KVMSystem {
    /// The MSRs KVM saves and restores for a vCPU.
    public func msrIndexList() throws -> [UInt32] {
        var count: UInt32 = 1024
        var indices = [UInt32](repeating: 0, count: Int(count))
        try sys("KVM_GET_MSR_INDEX_LIST") { ckvm_get_msr_index_list(fd.raw, &indices, &count) }
        return Array(indices[0..<Int(count)])
    }
}
