import SwvmBase

/// A cpio "newc" archive built in memory: the initramfs that carries
/// guest-init into the VM (uncompressed: decompressing costs more than
/// copying on a host where the guest kernel is emulated).
public struct Initramfs {
    private(set) var bytes: [UInt8] = []
    private var inode: UInt32 = 1

    public init() {}

    public mutating func addFile(_ path: String, data: [UInt8], mode: UInt32 = 0o755) {
        entry(path, mode: 0o100000 | mode, data: data)
    }

    private mutating func entry(_ name: String, mode: UInt32, data: [UInt8]) {
        let nameBytes = Array(name.utf8) + [0]
        let fields: [UInt32] = [inode, mode, 0, 0, 1, 0, UInt32(data.count), 0, 0, 0, 0, UInt32(nameBytes.count), 0]
        inode += 1
        var header = "070701"
        for f in fields {
            let h = String(f, radix: 16)
            header += String(repeating: "0", count: 8 - h.count) + h
        }
        bytes += Array(header.utf8) + nameBytes
        pad()
        bytes += data
        pad()
    }

    private mutating func pad() { while bytes.count % 4 != 0 { bytes.append(0) } }

    /// The archive with its trailer.
    public func finish() -> [UInt8] {
        var copy = self
        copy.entry("TRAILER!!!", mode: 0, data: [])
        return copy.bytes
    }
}
