import GuestMemory

/// A 4-level x86_64 page-table walk in guest memory, for reading the bytes
/// at a guest RIP when the host's KVM_TRANSLATE cannot (error reports).
enum PageWalker {
    static func translate(_ va: UInt64, cr3: UInt64, memory: GuestMemory) -> UInt64? {
        let addrMask: UInt64 = 0x000f_ffff_ffff_f000
        var table = cr3 & addrMask
        for level in (1...4).reversed() {
            let shift = UInt64(12 + 9 * (level - 1))
            let index = (va >> shift) & 0x1ff
            guard let entry = try? memory.read(UInt64.self, at: table + index * 8), entry & 1 != 0 else { return nil }
            if (level == 3 || level == 2) && entry & 0x80 != 0 {
                let pageMask = (UInt64(1) << shift) - 1
                return (entry & addrMask & ~pageMask) | (va & pageMask)
            }
            if level == 1 { return (entry & addrMask) | (va & 0xfff) }
            table = entry & addrMask
        }
        return nil
    }
}
