#if canImport(Glibc)
import Glibc
#endif
import CKVM
import SwvmBase

/// The vCPU and VM state KVM keeps, each piece as its kvm.h type (as
/// kvm-ioctls offers it). How it is saved and in what order is the VMM's
/// business (VMM/MachineState.swift); this layer knows no format.
extension VCPU {
    public func getFPU() throws -> kvm_fpu {
        var f = kvm_fpu()
        try sys("KVM_GET_FPU of vCPU \(id)") { ckvm_get_fpu(fd.raw, &f) }
        return f
    }

    /// The XSAVE area, `size` bytes (VirtualMachine.xsaveSize).
    public func getXSAVE(size: Int) throws -> [UInt8] {
        var area = [UInt8](repeating: 0, count: size)
        try sys("KVM_GET_XSAVE of vCPU \(id)") { ckvm_get_xsave(fd.raw, &area, UInt32(size)) }
        return area
    }

    public func setXSAVE(_ area: [UInt8]) throws {
        guard area.count >= MemoryLayout<kvm_xsave>.size else {
            throw SwvmError(.invalidArgument, "KVM_SET_XSAVE: an area of \(area.count) bytes (at least \(MemoryLayout<kvm_xsave>.size))")
        }
        try sys("KVM_SET_XSAVE of vCPU \(id)") { ckvm_set_xsave(fd.raw, area) }
    }

    public func getXCRs() throws -> kvm_xcrs {
        var x = kvm_xcrs()
        try sys("KVM_GET_XCRS of vCPU \(id)") { ckvm_get_xcrs(fd.raw, &x) }
        return x
    }

    public func setXCRs(_ x: kvm_xcrs) throws {
        var x = x
        try sys("KVM_SET_XCRS of vCPU \(id)") { ckvm_set_xcrs(fd.raw, &x) }
    }

    public func getDebugRegisters() throws -> kvm_debugregs {
        var d = kvm_debugregs()
        try sys("KVM_GET_DEBUGREGS of vCPU \(id)") { ckvm_get_debugregs(fd.raw, &d) }
        return d
    }

    public func setDebugRegisters(_ d: kvm_debugregs) throws {
        var d = d
        try sys("KVM_SET_DEBUGREGS of vCPU \(id)") { ckvm_set_debugregs(fd.raw, &d) }
    }

    public func setMPState(_ state: UInt32) throws {
        try sys("KVM_SET_MP_STATE of vCPU \(id)") { ckvm_set_mp_state(fd.raw, state) }
    }

    /// Reads every MSR KVM can; one it refuses is left out (KVM_GET_MSRS
    /// stops at the first such entry).
    public func readMSRs(_ indices: [UInt32]) throws -> [kvm_msr_entry] {
        var out: [kvm_msr_entry] = []
        var rest = indices[...]
        while !rest.isEmpty {
            var entries = rest.map { i -> kvm_msr_entry in var e = kvm_msr_entry(); e.index = i; return e }
            let n = Int(try sys("KVM_GET_MSRS of vCPU \(id)") { ckvm_get_msrs(fd.raw, &entries, UInt32(entries.count)) })
            out += entries[0..<n]
            rest = rest.dropFirst(n + 1)
        }
        return out
    }
}

extension VirtualMachine {
    /// One of the in-kernel irqchip's chips: 0 PIC master, 1 PIC slave, 2 IOAPIC.
    public func getIRQChip(_ chip: UInt32) throws -> kvm_irqchip {
        var c = kvm_irqchip()
        try sys("KVM_GET_IRQCHIP \(chip)") { ckvm_get_irqchip(fd.raw, chip, &c) }
        return c
    }

    public func setIRQChip(_ c: kvm_irqchip) throws {
        var c = c
        try sys("KVM_SET_IRQCHIP \(c.chip_id)") { ckvm_set_irqchip(fd.raw, &c) }
    }

    public func getPIT2() throws -> kvm_pit_state2 {
        var p = kvm_pit_state2()
        try sys("KVM_GET_PIT2 on the VM") { ckvm_get_pit2(fd.raw, &p) }
        return p
    }

    public func setPIT2(_ p: kvm_pit_state2) throws {
        var p = p
        try sys("KVM_SET_PIT2 on the VM") { ckvm_set_pit2(fd.raw, &p) }
    }

    /// The guest's kvmclock, in nanoseconds.
    public func getClock() throws -> UInt64 {
        var c = kvm_clock_data()
        try sys("KVM_GET_CLOCK on the VM") { ckvm_get_clock(fd.raw, &c) }
        return c.clock
    }

    public func setClock(_ ns: UInt64) throws {
        var c = kvm_clock_data()
        c.clock = ns
        try sys("KVM_SET_CLOCK on the VM") { ckvm_set_clock(fd.raw, &c) }
    }

    /// The size of a vCPU's XSAVE area (KVM_CAP_XSAVE2, or the classic 4 KiB).
    public var xsaveSize: Int { max(Int(ckvm_xsave2_size(fd.raw)), MemoryLayout<kvm_xsave>.size) }
}

extension KVMSystem {
    /// The MSRs KVM saves and restores for a vCPU.
    public func msrIndexList() throws -> [UInt32] {
        var count: UInt32 = 1024
        var indices = [UInt32](repeating: 0, count: Int(count))
        try sys("KVM_GET_MSR_INDEX_LIST on /dev/kvm") { ckvm_get_msr_index_list(fd.raw, &indices, &count) }
        return Array(indices[0..<Int(count)])
    }
}
