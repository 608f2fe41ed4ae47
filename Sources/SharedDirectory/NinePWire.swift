import SwvmBase

/// 9P2000.L message types (the T-message; its reply is T + 1), as Linux's
/// net/9p client sends them. Everything else is answered with Rlerror.
public enum NineP {
    public static let version = "9P2000.L"
    public static let noFid: UInt32 = 0xffff_ffff
    /// size[4] type[1] tag[2]
    public static let headerSize = 7

    public static let rlerror: UInt8 = 7
    public static let tstatfs: UInt8 = 8, tlopen: UInt8 = 12, tlcreate: UInt8 = 14, tsymlink: UInt8 = 16
    public static let tmknod: UInt8 = 18, trename: UInt8 = 20, treadlink: UInt8 = 22, tgetattr: UInt8 = 24
    public static let tsetattr: UInt8 = 26, txattrwalk: UInt8 = 30, txattrcreate: UInt8 = 32, treaddir: UInt8 = 40
    public static let tfsync: UInt8 = 50, tlock: UInt8 = 52, tgetlock: UInt8 = 54, tlink: UInt8 = 70
    public static let tmkdir: UInt8 = 72, trenameat: UInt8 = 74, tunlinkat: UInt8 = 76
    public static let tversion: UInt8 = 100, tauth: UInt8 = 102, tattach: UInt8 = 104, tflush: UInt8 = 108
    public static let twalk: UInt8 = 110, tread: UInt8 = 116, twrite: UInt8 = 118, tclunk: UInt8 = 120
    public static let tremove: UInt8 = 122

    /// Qid types.
    public static let qtDir: UInt8 = 0x80, qtSymlink: UInt8 = 0x02, qtFile: UInt8 = 0

    /// Twalk may carry at most this many names (the protocol's MAXWELEM).
    public static let maxWalkNames = 16
}

/// A malformed request: it is answered with EINVAL (or EPROTO), never
/// trusted further.
public struct NinePDecodeError: Error, CustomStringConvertible {
    public let description: String
}

/// Reads the fields of one request, every access bounds-checked against
/// the request's own size.
public struct NinePReader {
    private let bytes: UnsafeRawBufferPointer
    public private(set) var offset: Int

    public init(_ bytes: UnsafeRawBufferPointer, offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    public var remaining: Int { bytes.count - offset }

    private mutating func take(_ n: Int, _ what: String) throws -> Int {
        guard n >= 0, n <= remaining else { throw NinePDecodeError(description: "\(what) runs past the end of the request") }
        defer { offset += n }
        return offset
    }

    public mutating func u8(_ what: String = "a byte") throws -> UInt8 { bytes[try take(1, what)] }
    public mutating func u16(_ what: String = "a 16-bit field") throws -> UInt16 {
        let o = try take(2, what)
        return UInt16(bytes[o]) | UInt16(bytes[o + 1]) << 8
    }
    public mutating func u32(_ what: String = "a 32-bit field") throws -> UInt32 {
        let o = try take(4, what)
        var v: UInt32 = 0
        for i in (0..<4).reversed() { v = v << 8 | UInt32(bytes[o + i]) }
        return v
    }
    public mutating func u64(_ what: String = "a 64-bit field") throws -> UInt64 {
        let o = try take(8, what)
        var v: UInt64 = 0
        for i in (0..<8).reversed() { v = v << 8 | UInt64(bytes[o + i]) }
        return v
    }
    /// string[s]: a 16-bit length and that many bytes (not NUL-terminated).
    public mutating func string(_ what: String = "a string") throws -> [UInt8] {
        let n = Int(try u16(what))
        let o = try take(n, what)
        return Array(bytes[o..<(o + n)])
    }
    /// The next `count` bytes, in place (Twrite's data).
    public mutating func data(_ count: Int, _ what: String = "data") throws -> UnsafeRawBufferPointer {
        let o = try take(count, what)
        return UnsafeRawBufferPointer(rebasing: bytes[o..<(o + count)])
    }
}

/// Builds one reply in a reused buffer: the header is written by `begin`
/// and its size field by `finish`.
public struct NinePWriter {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int) { bytes.reserveCapacity(capacity) }

    public mutating func begin(type: UInt8, tag: UInt16) {
        bytes.removeAll(keepingCapacity: true)
        u32(0)
        u8(type)
        u16(tag)
    }

    public mutating func finish() {
        let n = UInt32(bytes.count)
        for i in 0..<4 { bytes[i] = UInt8(truncatingIfNeeded: n >> (8 * UInt32(i))) }
    }

    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u16(_ v: UInt16) { bytes.append(UInt8(v & 0xff)); bytes.append(UInt8(v >> 8)) }
    public mutating func u32(_ v: UInt32) { for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) } }
    public mutating func u64(_ v: UInt64) { for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) } }
    public mutating func string(_ s: [UInt8]) {
        u16(UInt16(min(s.count, Int(UInt16.max))))
        bytes.append(contentsOf: s.prefix(Int(UInt16.max)))
    }
    public mutating func qid(_ q: NinePQid) {
        u8(q.type)
        u32(q.version)
        u64(q.path)
    }

    /// Appends `count` bytes filled by `fill`, which returns how many it
    /// filled (or a negative errno); the buffer keeps only those.
    public mutating func appendFilled(upTo count: Int, _ fill: (UnsafeMutableRawPointer) -> Int) -> Int {
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: count))
        let got = bytes.withUnsafeMutableBytes { fill($0.baseAddress! + start) }
        bytes.removeLast(count - max(0, min(got, count)))
        return got
    }

    /// Overwrites a 32-bit field written earlier (Rread's and Rreaddir's count).
    public mutating func patch32(at offset: Int, _ v: UInt32) {
        for i in 0..<4 { bytes[offset + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) }
    }
}

/// A file's identity on the wire: its type, and a path unique within the
/// share (the inode number, mixed with the device for other file systems).
public struct NinePQid: Equatable, Sendable {
    public var type: UInt8
    public var version: UInt32
    public var path: UInt64
}
