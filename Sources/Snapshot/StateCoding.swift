import SwvmBase

/// Saved VM state as a flat little-endian byte stream. Each device and
/// vCPU writes its fields in a fixed order and reads them back in the same
/// order; the snapshot file's checksum guards the bytes, and the reader
/// still checks every length, so a damaged stream is an error, never a trap.
public struct StateWriter {
    public private(set) var bytes: [UInt8] = []
    public init() {}

    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func bool(_ v: Bool) { bytes.append(v ? 1 : 0) }
    public mutating func u16(_ v: UInt16) { bytes += le16(v) }
    public mutating func u32(_ v: UInt32) { bytes += le32(v) }
    public mutating func u64(_ v: UInt64) { bytes += le64(v) }

    /// A length-prefixed byte string.
    public mutating func data(_ v: [UInt8]) {
        u32(UInt32(v.count))
        bytes += v
    }

    public mutating func string(_ s: String) { data(Array(s.utf8)) }

    /// The bytes of a plain C struct (a kvm_* state structure), length-prefixed.
    public mutating func raw<T>(_ value: T) {
        var v = value
        withUnsafeBytes(of: &v) { data(Array($0)) }
    }
}

public struct StateReader {
    private let bytes: [UInt8]
    private var offset = 0
    /// What is being read, for error messages.
    public let source: String

    public init(_ bytes: [UInt8], source: String) {
        self.bytes = bytes
        self.source = source
    }

    public var atEnd: Bool { offset == bytes.count }

    private mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, n <= bytes.count - offset else {
            throw SwvmError(.invalidImage, "\(source): truncated at byte \(offset) (wanted \(n) more)")
        }
        defer { offset += n }
        return bytes[offset..<(offset + n)]
    }

    public mutating func u8() throws -> UInt8 { try take(1).first! }
    public mutating func bool() throws -> Bool { try u8() != 0 }
    public mutating func u16() throws -> UInt16 { le16(Array(try take(2)), 0) }
    public mutating func u32() throws -> UInt32 { le32(Array(try take(4)), 0) }
    public mutating func u64() throws -> UInt64 { le64(Array(try take(8)), 0) }

    public mutating func data(limit: Int = 1 << 26) throws -> [UInt8] {
        let n = Int(try u32())
        guard n <= limit else { throw SwvmError(.invalidImage, "\(source): a field of \(n) bytes at byte \(offset) is too large") }
        return Array(try take(n))
    }

    public mutating func string() throws -> String { String(decoding: try data(limit: 1 << 16), as: UTF8.self) }

    /// Reads a struct written by `StateWriter.raw`; its size must match.
    public mutating func raw<T>(_ type: T.Type, initial: T) throws -> T {
        let d = try data(limit: 1 << 20)
        guard d.count == MemoryLayout<T>.size else {
            throw SwvmError(.invalidImage, "\(source): \(T.self) is \(d.count) bytes, expected \(MemoryLayout<T>.size)")
        }
        var v = initial
        withUnsafeMutableBytes(of: &v) { $0.copyBytes(from: d) }
        return v
    }

    /// Checks a count read from the stream before it sizes a loop.
    public func bounded(_ n: UInt32, max: Int, what: String) throws -> Int {
        guard Int(n) <= max else { throw SwvmError(.invalidImage, "\(source): \(n) \(what), at most \(max) expected") }
        return Int(n)
    }
}

/// Something whose state a snapshot carries: a device, a vCPU, the VM.
public protocol StateSaving: AnyObject {
    func saveState(_ w: inout StateWriter)
    func restoreState(_ r: inout StateReader) throws
}
