import GuestMemory

/// A segment as the vCPU's segment registers hold it.
public struct Segment: Equatable {
    public var base: UInt64
    public var limit: UInt32
    public var selector: UInt16
    public var type: UInt8
    public var present: UInt8
    public var dpl: UInt8
    public var db: UInt8
    public var s: UInt8
    public var l: UInt8
    public var g: UInt8
    public var avl: UInt8
    public var unusable: UInt8
}

/// The boot GDT: null, 64-bit code, data, TSS (as Firecracker's gdt.rs).
public enum GDT {
    public static let entries: [UInt64] = [
        entry(flags: 0, base: 0, limit: 0),
        entry(flags: 0xa09b, base: 0, limit: 0xfffff),  // code: present, ring 0, executable, long mode
        entry(flags: 0xc093, base: 0, limit: 0xfffff),  // data: present, writable, 32-bit, 4 KiB granular
        entry(flags: 0x808b, base: 0, limit: 0xfffff),  // TSS: present, busy 64-bit TSS
    ]

    public static let codeIndex = 1, dataIndex = 2, tssIndex = 3

    public static func entry(flags: UInt16, base: UInt32, limit: UInt32) -> UInt64 {
        let base = UInt64(base), limit = UInt64(limit), flags = UInt64(flags)
        return ((base & 0xff00_0000) << (56 - 24)) | ((flags & 0x0000_f0ff) << 40)
            | ((limit & 0x000f_0000) << (48 - 16)) | ((base & 0x00ff_ffff) << 16) | (limit & 0x0000_ffff)
    }

    /// Decodes descriptor `index` into the segment register form.
    public static func segment(index: Int) -> Segment {
        let e = entries[index]
        let base = ((e >> 16) & 0x00ff_ffff) | (((e >> 56) & 0xff) << 24)
        var limit = UInt32((e & 0xffff) | ((e >> 32) & 0xf_0000))
        let g = UInt8((e >> 55) & 1)
        if g == 1 { limit = (limit << 12) | 0xfff }
        let present = UInt8((e >> 47) & 1)
        return Segment(base: base, limit: limit, selector: UInt16(index * 8),
                       type: UInt8((e >> 40) & 0xf), present: present, dpl: UInt8((e >> 45) & 3),
                       db: UInt8((e >> 54) & 1), s: UInt8((e >> 44) & 1), l: UInt8((e >> 53) & 1),
                       g: g, avl: UInt8((e >> 52) & 1), unusable: present == 0 ? 1 : 0)
    }

    public static func write(into memory: GuestMemory) throws {
        for (i, e) in entries.enumerated() {
            try memory.write(e, at: X86Layout.gdtStart + UInt64(i * 8))
        }
        try memory.write(UInt64(0), at: X86Layout.idtStart)
    }

    public static var limit: UInt16 { UInt16(entries.count * 8 - 1) }
}
