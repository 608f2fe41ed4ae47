import CKVM
import KVM
import BootLoader
import GuestMemory
import SwvmBase

/// Puts a vCPU in the state the 64-bit Linux boot protocol expects: long
/// mode with identity-mapped paging, flat segments, RSI -> zero page, RIP
/// at the kernel's 64-bit entry. Secondary vCPUs only get CPUID, MSRs and
/// LAPIC: they start when the guest sends INIT/SIPI.
enum VCPUSetup {
    // MSR numbers.
    static let msrSysenterCS: UInt32 = 0x174, msrSysenterESP: UInt32 = 0x175, msrSysenterEIP: UInt32 = 0x176
    static let msrSTAR: UInt32 = 0xc000_0081, msrLSTAR: UInt32 = 0xc000_0082, msrCSTAR: UInt32 = 0xc000_0083
    static let msrSyscallMask: UInt32 = 0xc000_0084, msrKernelGSBase: UInt32 = 0xc000_0102
    static let msrTSC: UInt32 = 0x10, msrMiscEnable: UInt32 = 0x1a0, msrMTRRDefType: UInt32 = 0x2ff

    static let cr0PE: UInt64 = 0x1, cr0ET: UInt64 = 0x10, cr0PG: UInt64 = 0x8000_0000
    static let cr4PAE: UInt64 = 0x20
    static let eferLME: UInt64 = 0x100, eferLMA: UInt64 = 0x400

    static func configureCommon(_ vcpu: VCPU, cpuid: [kvm_cpuid_entry2]) throws {
        try vcpu.setCPUID(cpuid)
        try vcpu.setMSRs([
            (msrSysenterCS, 0), (msrSysenterESP, 0), (msrSysenterEIP, 0),
            (msrSTAR, 0), (msrCSTAR, 0), (msrKernelGSBase, 0), (msrSyscallMask, 0), (msrLSTAR, 0),
            (msrTSC, 0),
            (msrMiscEnable, 1),                       // fast strings
        ])
        // MTRRs are optional for the guest; a host that refuses them is fine.
        try? vcpu.setMSRs([(msrMTRRDefType, (1 << 11) | 6)])  // MTRRs on, default write-back
        try configureLAPIC(vcpu)
    }

    /// LINT0 delivers the PIC's ExtINT, LINT1 NMIs, as a BIOS leaves them.
    static func configureLAPIC(_ vcpu: VCPU) throws {
        var lapic = try vcpu.getLAPIC()
        withUnsafeMutableBytes(of: &lapic.regs) { regs in
            func setMode(_ offset: Int, _ mode: UInt32) {
                var v = regs.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
                v = (v & ~UInt32(0x700)) | (mode << 8)
                regs.storeBytes(of: v, toByteOffset: offset, as: UInt32.self)
            }
            setMode(0x350, 7)   // LVT LINT0: ExtINT
            setMode(0x360, 4)   // LVT LINT1: NMI
        }
        try vcpu.setLAPIC(lapic)
    }

    static func configureBoot(_ vcpu: VCPU, entry: GuestAddress) throws {
        var fpu = kvm_fpu()
        fpu.fcw = 0x37f
        fpu.mxcsr = 0x1f80
        try vcpu.setFPU(fpu)

        var regs = kvm_regs()
        regs.rflags = 0x2
        regs.rip = entry
        regs.rsp = X86Layout.bootStackPointer
        regs.rbp = X86Layout.bootStackPointer
        regs.rsi = X86Layout.zeroPageStart
        try vcpu.setRegisters(regs)

        var sregs = try vcpu.getSpecialRegisters()
        sregs.gdt.base = X86Layout.gdtStart
        sregs.gdt.limit = GDT.limit
        sregs.idt.base = X86Layout.idtStart
        sregs.idt.limit = 7
        let code = kvmSegment(GDT.segment(index: GDT.codeIndex))
        let data = kvmSegment(GDT.segment(index: GDT.dataIndex))
        sregs.cs = code
        sregs.ds = data; sregs.es = data; sregs.fs = data; sregs.gs = data; sregs.ss = data
        sregs.tr = kvmSegment(GDT.segment(index: GDT.tssIndex))
        sregs.cr3 = PageTables.root
        sregs.cr4 |= cr4PAE
        sregs.cr0 |= cr0PE | cr0PG | cr0ET
        sregs.efer |= eferLME | eferLMA
        try vcpu.setSpecialRegisters(sregs)
    }

    static func kvmSegment(_ s: Segment) -> kvm_segment {
        var k = kvm_segment()
        k.base = s.base
        k.limit = s.limit
        k.selector = s.selector
        k.type = s.type
        k.present = s.present
        k.dpl = s.dpl
        k.db = s.db
        k.s = s.s
        k.l = s.l
        k.g = s.g
        k.avl = s.avl
        k.unusable = s.unusable
        return k
    }
}
