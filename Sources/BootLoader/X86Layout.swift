import GuestMemory

/// Where things live in guest-physical memory on x86_64, following the
/// layout Firecracker uses (src/vmm/src/arch/x86_64/layout.rs), so that a
/// guest that boots there boots here.
public enum X86Layout {
    /// GDT and IDT the vCPU starts with.
    public static let gdtStart: GuestAddress = 0x500
    public static let idtStart: GuestAddress = 0x520
    /// The Linux boot protocol's zero page (struct boot_params).
    public static let zeroPageStart: GuestAddress = 0x7000
    /// Initial stack pointer of the boot vCPU.
    public static let bootStackPointer: GuestAddress = 0x8ff0
    /// Identity-mapping page tables (PML4, PDPT, PD: first 1 GiB in 2 MiB pages).
    public static let pml4Start: GuestAddress = 0x9000
    public static let pdptStart: GuestAddress = 0xa000
    public static let pdStart: GuestAddress = 0xb000
    /// The kernel command line.
    public static let cmdlineStart: GuestAddress = 0x20000
    /// Maximum command-line length, including the terminating NUL
    /// (COMMAND_LINE_SIZE on x86).
    public static let cmdlineMaxSize = 2048
    /// The Extended BIOS Data Area; the MP table goes at its start.
    public static let ebdaStart: GuestAddress = 0x9fc00
    /// First byte above the legacy 640 KiB / BIOS hole.
    public static let himemStart: GuestAddress = 0x100000
    /// Where a bzImage's protected-mode kernel is loaded by default.
    public static let bzImageLoadAddress: GuestAddress = 0x100000

    /// The 32-bit MMIO gap: device registers live here, RAM skips it.
    public static let mmioGapStart: GuestAddress = 0xd000_0000
    public static let firstAddressPast32Bits: GuestAddress = 1 << 32

    /// KVM's TSS and identity-map pages (needed by KVM on Intel), placed
    /// just below the IOAPIC.
    public static let kvmTSSAddress: GuestAddress = 0xfffb_d000
    public static let kvmIdentityMapAddress: GuestAddress = 0xfffb_c000

    public static let ioapicAddress: UInt32 = 0xfec0_0000
    public static let lapicAddress: UInt32 = 0xfee0_0000

    /// virtio-mmio devices: one 4 KiB window each from the gap's start.
    public static let virtioMMIOBase: GuestAddress = mmioGapStart
    public static let virtioMMIOSize: UInt64 = 0x1000
    /// Legacy IRQs taken: 0 timer, 1 keyboard, 2 cascade, 4 COM1, 8 RTC.
    /// virtio devices get IRQs from here up.
    public static let firstDeviceIRQ: UInt32 = 5
    public static let lastDeviceIRQ: UInt32 = 23

    /// The guest RAM ranges for a guest of `size` bytes: one range below
    /// the MMIO gap and, for large guests, the rest above 4 GiB.
    public static func memoryRanges(size: UInt64) -> [(GuestAddress, UInt64)] {
        if size <= mmioGapStart { return [(0, size)] }
        return [(0, mmioGapStart), (firstAddressPast32Bits, size - mmioGapStart)]
    }
}
