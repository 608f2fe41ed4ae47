import GuestMemory

/// Identity-mapping page tables for the boot vCPU: the first 1 GiB mapped
/// 1:1 with 2 MiB pages, enough for the kernel's startup_64 (which builds
/// its own tables right away).
public enum PageTables {
    static let present: UInt64 = 0x1
    static let writable: UInt64 = 0x2
    static let largePage: UInt64 = 0x80

    public static func write(into memory: GuestMemory) throws {
        try memory.write(X86Layout.pdptStart | present | writable, at: X86Layout.pml4Start)
        try memory.write(X86Layout.pdStart | present | writable, at: X86Layout.pdptStart)
        for i in 0..<UInt64(512) {
            try memory.write((i << 21) | present | writable | largePage, at: X86Layout.pdStart + i * 8)
        }
    }

    /// CR3 for these tables.
    public static var root: UInt64 { X86Layout.pml4Start }
}
