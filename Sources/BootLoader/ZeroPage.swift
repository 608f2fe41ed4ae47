import CKVM
import SwvmBase
import GuestMemory

/// The Linux x86 boot protocol's zero page (struct boot_params), built as
/// bytes at the offsets of the real header (CKVM exports them from
/// <asm/bootparam.h>), so the layout cannot drift from the kernel's.
public struct ZeroPage {
    public private(set) var bytes: [UInt8]

    public static let loaderTypeUndefined: UInt8 = 0xff
    public static let bootFlag: UInt16 = 0xaa55
    public static let headerMagic: UInt32 = 0x5372_6448  // "HdrS"
    public static let kernelAlignment: UInt32 = 0x0100_0000
    /// LOADED_HIGH: the protected-mode kernel is at 1 MiB or above.
    public static let loadedHigh: UInt8 = 0x01

    public init(setupHeader: [UInt8]? = nil) {
        bytes = [UInt8](repeating: 0, count: ckvm_bp_size)
        if let header = setupHeader {
            let end = min(ckvm_bp_hdr + header.count, ckvm_bp_hdr_end)
            bytes.replaceSubrange(ckvm_bp_hdr..<end, with: header[0..<(end - ckvm_bp_hdr)])
        }
        set8(ckvm_bp_hdr_type_of_loader, ZeroPage.loaderTypeUndefined)
        set16(ckvm_bp_hdr_boot_flag, ZeroPage.bootFlag)
        set32(ckvm_bp_hdr_header, ZeroPage.headerMagic)
        set32(ckvm_bp_hdr_kernel_alignment, ZeroPage.kernelAlignment)
        set8(ckvm_bp_hdr_loadflags, bytes[ckvm_bp_hdr_loadflags] | ZeroPage.loadedHigh)
    }

    public mutating func setCommandLine(address: GuestAddress, size: Int) {
        set32(ckvm_bp_hdr_cmd_line_ptr, UInt32(address))
        set32(ckvm_bp_hdr_cmdline_size, UInt32(size))
    }

    public mutating func setInitrd(address: GuestAddress, size: UInt64) {
        set32(ckvm_bp_hdr_ramdisk_image, UInt32(address))
        set32(ckvm_bp_hdr_ramdisk_size, UInt32(size))
    }

    public mutating func setE820(_ entries: [E820Entry]) throws {
        guard entries.count <= ckvm_bp_e820_max else {
            throw SwvmError(.internalError, "too many e820 entries (\(entries.count))")
        }
        set8(ckvm_bp_e820_entries, UInt8(entries.count))
        for (i, e) in entries.enumerated() {
            let o = ckvm_bp_e820_table + i * 20
            set64(o, e.address)
            set64(o + 8, e.size)
            set32(o + 16, e.kind.rawValue)
        }
    }

    // MARK: reading back (tests, diagnostics)

    public var commandLineAddress: UInt32 { get32(ckvm_bp_hdr_cmd_line_ptr) }
    public var initrd: (address: UInt32, size: UInt32) { (get32(ckvm_bp_hdr_ramdisk_image), get32(ckvm_bp_hdr_ramdisk_size)) }

    public var e820: [E820Entry] {
        (0..<Int(bytes[ckvm_bp_e820_entries])).compactMap { i in
            let o = ckvm_bp_e820_table + i * 20
            guard let kind = E820Entry.Kind(rawValue: get32(o + 16)) else { return nil }
            return E820Entry(address: get64(o), size: get64(o + 8), kind: kind)
        }
    }

    public func field16(_ offset: Int) -> UInt16 { le16(bytes, offset) }
    public func field32(_ offset: Int) -> UInt32 { get32(offset) }

    // MARK: byte access

    private mutating func set8(_ o: Int, _ v: UInt8) { bytes[o] = v }
    private mutating func set16(_ o: Int, _ v: UInt16) { bytes.replaceSubrange(o..<(o + 2), with: le16(v)) }
    private mutating func set32(_ o: Int, _ v: UInt32) { bytes.replaceSubrange(o..<(o + 4), with: le32(v)) }
    private mutating func set64(_ o: Int, _ v: UInt64) { bytes.replaceSubrange(o..<(o + 8), with: le64(v)) }
    private func get32(_ o: Int) -> UInt32 { le32(bytes, o) }
    private func get64(_ o: Int) -> UInt64 { le64(bytes, o) }
}
