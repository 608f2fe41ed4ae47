import SwvmBase

/// One entry of a tar stream, with PAX and GNU extensions applied.
public struct TarEntry {
    public enum Kind: Equatable {
        case file, hardLink, symlink, charDevice, blockDevice, directory, fifo
    }

    public var path: String
    public var kind: Kind
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var size: Int64
    public var mtime: Int64
    public var mtimeNanos: Int64
    public var linkName: String
    public var devMajor: UInt32
    public var devMinor: UInt32
    /// Extended attributes from PAX SCHILY.xattr.* records.
    public var xattrs: [(String, [UInt8])]
}

/// A streaming reader of POSIX ustar/pax and GNU tar archives (what
/// container layers are). It validates header checksums and field syntax
/// and never trusts a size beyond the stream it reads.
public final class TarReader {
    private let source: ByteSource
    private let buffer: UnsafeMutableRawPointer
    private let bufferSize = 1 << 16
    private var bufStart = 0
    private var bufEnd = 0
    private var eof = false
    /// Bytes of the current entry's data not yet read, and its padding.
    private var remaining: Int64 = 0
    private var padding: Int64 = 0
    private var globalPax: [String: [UInt8]] = [:]
    public private(set) var offset: Int64 = 0

    /// The most one PAX, GNU long-name or long-link record may hold.
    static let maxMetadataSize: Int64 = 1 << 20
    /// The most the PAX records in force may hold together: the global ones
    /// kept for the rest of the stream, and the local ones gathered for the
    /// next entry. Without it, a layer of many global headers with distinct
    /// keys grows swvm's memory without end.
    static let maxPaxTotal = 1 << 20

    public init(source: ByteSource) {
        self.source = source
        buffer = .allocate(byteCount: bufferSize, alignment: 16)
    }

    deinit { buffer.deallocate() }

    // MARK: raw reads

    private func fill() throws {
        if bufStart > 0 && bufStart == bufEnd { bufStart = 0; bufEnd = 0 }
        if bufStart > bufferSize / 2 {
            (buffer).copyMemory(from: buffer + bufStart, byteCount: bufEnd - bufStart)
            bufEnd -= bufStart
            bufStart = 0
        }
        guard !eof, bufEnd < bufferSize else { return }
        let n = try source.read(into: buffer + bufEnd, count: bufferSize - bufEnd)
        if n == 0 { eof = true }
        bufEnd += n
    }

    /// Reads exactly `count` bytes, or fewer only at end of stream.
    private func readRaw(into dest: UnsafeMutableRawPointer, count: Int) throws -> Int {
        var got = 0
        while got < count {
            if bufStart == bufEnd {
                try fill()
                if bufStart == bufEnd { break }
            }
            let n = min(count - got, bufEnd - bufStart)
            (dest + got).copyMemory(from: buffer + bufStart, byteCount: n)
            bufStart += n
            got += n
        }
        offset += Int64(got)
        return got
    }

    private func skipRaw(_ count: Int64) throws {
        var left = count
        while left > 0 {
            if bufStart == bufEnd {
                try fill()
                if bufStart == bufEnd { throw truncated() }
            }
            let n = Int(min(left, Int64(bufEnd - bufStart)))
            bufStart += n
            left -= Int64(n)
            offset += Int64(n)
        }
    }

    private func truncated() -> SwvmError {
        SwvmError(.invalidImage, "tar stream ends in the middle of an entry (at byte \(offset))")
    }

    private func readBlock() throws -> [UInt8]? {
        var block = [UInt8](repeating: 0, count: 512)
        let n = try block.withUnsafeMutableBytes { try readRaw(into: $0.baseAddress!, count: 512) }
        if n == 0 { return nil }
        guard n == 512 else { throw truncated() }
        return block
    }

    private func readRecord(size: Int64) throws -> [UInt8] {
        guard size >= 0, size <= TarReader.maxMetadataSize else {
            throw SwvmError(.invalidImage, "tar metadata record of \(size) bytes at byte \(offset) is too large")
        }
        var data = [UInt8](repeating: 0, count: Int(size))
        let n = try data.withUnsafeMutableBytes { try readRaw(into: $0.baseAddress!, count: Int(size)) }
        guard n == Int(size) else { throw truncated() }
        try skipRaw((512 - size % 512) % 512)
        return data
    }

    // MARK: entries

    /// The next entry, or nil at the end of the archive. Unread data of
    /// the previous entry is skipped.
    public func next() throws -> TarEntry? {
        try skipData()
        var pax: [String: [UInt8]] = [:]
        var longName: String?
        var longLink: String?
        while true {
            let headerOffset = offset
            guard let block = try readBlock() else { return nil }
            if block.allSatisfy({ $0 == 0 }) {
                return nil  // end-of-archive marker (the second zero block need not be read)
            }
            try verifyChecksum(block, at: headerOffset)
            let type = block[156]
            let size = try numeric(block, 124, 12, "size", headerOffset)
            guard size >= 0 else { throw SwvmError(.invalidImage, "tar header at byte \(headerOffset): negative size") }
            switch type {
            case UInt8(ascii: "x"):
                pax.merge(try parsePax(try readRecord(size: size), at: headerOffset)) { $1 }
                try checkPaxTotal(pax, "local", at: headerOffset)
                continue
            case UInt8(ascii: "g"):
                globalPax.merge(try parsePax(try readRecord(size: size), at: headerOffset)) { $1 }
                try checkPaxTotal(globalPax, "global", at: headerOffset)
                continue
            case UInt8(ascii: "L"):
                longName = cString(try readRecord(size: size))
                continue
            case UInt8(ascii: "K"):
                longLink = cString(try readRecord(size: size))
                continue
            default:
                break
            }
            let all = globalPax.merging(pax) { $1 }
            var entry = try makeEntry(block, type: type, size: size, at: headerOffset)
            if let n = longName { entry.path = n }
            if let l = longLink { entry.linkName = l }
            try applyPax(all, to: &entry, at: headerOffset)
            // A regular-file entry whose (final) name ends in "/" is a directory (old tars).
            if entry.kind == .file && entry.path.hasSuffix("/") && (type == 0 || type == UInt8(ascii: "0")) { entry.kind = .directory }
            remaining = entry.kind == .file ? entry.size : 0
            if entry.kind != .file && entry.size > 0 && type != UInt8(ascii: "1") && type != UInt8(ascii: "2") {
                // Data on a non-file entry: skip it.
                remaining = entry.size
            }
            padding = (512 - remaining % 512) % 512
            if entry.kind != .file { entry.size = 0 }
            return entry
        }
    }

    /// Reads the current entry's data; 0 at its end.
    public func readData(into dest: UnsafeMutableRawPointer, count: Int) throws -> Int {
        guard remaining > 0 else { return 0 }
        let want = Int(min(Int64(count), remaining))
        let n = try readRaw(into: dest, count: want)
        guard n == want else { throw truncated() }
        remaining -= Int64(n)
        if remaining == 0 { try skipPadding() }
        return n
    }

    public func skipData() throws {
        if remaining > 0 {
            try skipRaw(remaining)
            remaining = 0
        }
        try skipPadding()
    }

    /// The zero padding after an entry's data. A stream that ends right
    /// after the last entry's data (no padding, no end-of-archive blocks;
    /// umoci 0.4 writes such layers) is accepted: the data itself is whole.
    private func skipPadding() throws {
        var left = padding
        padding = 0
        while left > 0 {
            if bufStart == bufEnd {
                try fill()
                if bufStart == bufEnd { return }
            }
            let n = Int(min(left, Int64(bufEnd - bufStart)))
            bufStart += n
            left -= Int64(n)
            offset += Int64(n)
        }
    }

    // MARK: header fields

    private func verifyChecksum(_ b: [UInt8], at off: Int64) throws {
        let stored = try numeric(b, 148, 8, "checksum", off)
        var unsigned: Int64 = 0
        var signed: Int64 = 0
        for i in 0..<512 {
            let v: UInt8 = (i >= 148 && i < 156) ? 0x20 : b[i]
            unsigned += Int64(v)
            signed += Int64(Int8(bitPattern: v))
        }
        guard stored == unsigned || stored == signed else {
            throw SwvmError(.invalidImage, "tar header at byte \(off) has a bad checksum (not a tar stream, or corrupt)")
        }
    }

    private func numeric(_ b: [UInt8], _ o: Int, _ len: Int, _ what: String, _ off: Int64) throws -> Int64 {
        if b[o] & 0x80 != 0 {
            // GNU base-256: big-endian two's complement in the remaining bits.
            var v: Int64 = Int64(b[o] & 0x7f)
            if b[o] & 0x40 != 0 { v = v - 0x80 }   // negative
            for i in 1..<len {
                guard v.magnitude < (1 << 55) else {
                    throw SwvmError(.invalidImage, "tar header at byte \(off): \(what) does not fit in 64 bits")
                }
                v = v << 8 | Int64(b[o + i])
            }
            return v
        }
        var v: Int64 = 0
        var seen = false
        for i in o..<(o + len) {
            let c = b[i]
            if c == 0 || (c == 0x20 && seen) { break }
            if c == 0x20 && !seen { continue }
            guard c >= 0x30 && c <= 0x37 else {
                throw SwvmError(.invalidImage, "tar header at byte \(off): \(what) field is not octal")
            }
            guard v < (1 << 60) else { throw SwvmError(.invalidImage, "tar header at byte \(off): \(what) is too large") }
            v = v * 8 + Int64(c - 0x30)
            seen = true
        }
        return v
    }

    private func device(_ v: Int64, _ what: String, _ off: Int64) throws -> UInt32 {
        guard let d = UInt32(exactly: v) else { throw SwvmError(.invalidImage, "tar header at byte \(off): \(what) \(v) is out of range") }
        return d
    }

    private func cString(_ bytes: [UInt8]) -> String {
        let end = bytes.firstIndex(of: 0) ?? bytes.count
        return String(decoding: bytes[0..<end], as: UTF8.self)
    }

    private func field(_ b: [UInt8], _ o: Int, _ len: Int) -> String { cString(Array(b[o..<(o + len)])) }

    private func makeEntry(_ b: [UInt8], type: UInt8, size: Int64, at off: Int64) throws -> TarEntry {
        var name = field(b, 0, 100)
        let isUstar = b[257] == UInt8(ascii: "u") && b[258] == UInt8(ascii: "s") && b[259] == UInt8(ascii: "t")
            && b[260] == UInt8(ascii: "a") && b[261] == UInt8(ascii: "r")
        // POSIX ustar has a prefix field; old GNU ("ustar  ") does not.
        if isUstar && b[263] == UInt8(ascii: "0") {
            let prefix = field(b, 345, 155)
            if !prefix.isEmpty { name = prefix + "/" + name }
        }
        let kind: TarEntry.Kind
        switch type {
        case 0, UInt8(ascii: "0"), UInt8(ascii: "7"): kind = .file
        case UInt8(ascii: "1"): kind = .hardLink
        case UInt8(ascii: "2"): kind = .symlink
        case UInt8(ascii: "3"): kind = .charDevice
        case UInt8(ascii: "4"): kind = .blockDevice
        case UInt8(ascii: "5"): kind = .directory
        case UInt8(ascii: "6"): kind = .fifo
        case UInt8(ascii: "S"):
            throw SwvmError(.invalidImage, "tar entry '\(name)' at byte \(off) is a GNU sparse file, which swvm does not support")
        default:
            throw SwvmError(.invalidImage, "tar entry '\(name)' at byte \(off) has unknown type '\(Character(Unicode.Scalar(type)))'")
        }
        let owner = "tar entry '\(UntrustedText.escaped(name))' at byte \(off)"
        return TarEntry(
            path: name, kind: kind,
            mode: UInt32(try numeric(b, 100, 8, "mode", off) & 0o7777),
            uid: try IDNumber.checked(try numeric(b, 108, 8, "uid", off), "uid", source: owner, code: .invalidImage),
            gid: try IDNumber.checked(try numeric(b, 116, 8, "gid", off), "gid", source: owner, code: .invalidImage),
            size: size,
            mtime: try numeric(b, 136, 12, "mtime", off), mtimeNanos: 0,
            linkName: field(b, 157, 100),
            devMajor: try device(numeric(b, 329, 8, "devmajor", off), "devmajor", off),
            devMinor: try device(numeric(b, 337, 8, "devminor", off), "devminor", off),
            xattrs: [])
    }

    /// PAX records: "<len> <key>=<value>\n", len counting the whole record.
    private func parsePax(_ data: [UInt8], at off: Int64) throws -> [String: [UInt8]] {
        var out: [String: [UInt8]] = [:]
        var i = 0
        func bad() -> SwvmError { SwvmError(.invalidImage, "malformed PAX header at byte \(off)") }
        while i < data.count {
            if data[i] == 0 { break }
            var j = i
            var len = 0
            while j < data.count, data[j] >= 0x30, data[j] <= 0x39 {
                len = len * 10 + Int(data[j] - 0x30)
                guard len <= data.count else { throw bad() }
                j += 1
            }
            guard j < data.count, data[j] == 0x20, len > j - i, i + len <= data.count, data[i + len - 1] == 0x0a else { throw bad() }
            let record = data[(j + 1)..<(i + len - 1)]
            guard let eq = record.firstIndex(of: UInt8(ascii: "=")) else { throw bad() }
            let key = String(decoding: record[record.startIndex..<eq], as: UTF8.self)
            out[key] = Array(record[(eq + 1)...])
            i += len
        }
        return out
    }

    private func checkPaxTotal(_ pax: [String: [UInt8]], _ kind: String, at off: Int64) throws {
        let total = pax.reduce(0) { $0 + $1.key.utf8.count + $1.value.count }
        guard total <= TarReader.maxPaxTotal else {
            throw SwvmError(.invalidImage, "\(kind) PAX headers up to byte \(off) hold \(total) bytes, more than swvm's bound of \(TarReader.maxPaxTotal)")
        }
    }

    /// An empty value deletes the keyword (POSIX: the header block's own
    /// field applies again), so it is skipped here.
    private func applyPax(_ pax: [String: [UInt8]], to e: inout TarEntry, at off: Int64) throws {
        func text(_ k: String) -> String? {
            guard let v = pax[k], !v.isEmpty else { return nil }
            return String(decoding: v, as: UTF8.self)
        }
        if let p = text("path") { e.path = p }
        if let l = text("linkpath") { e.linkName = l }
        if let s = text("size") {
            guard let v = Int64(s), v >= 0 else { throw SwvmError(.invalidImage, "PAX size '\(s)' at byte \(off) is invalid") }
            e.size = v
        }
        if let s = text("uid"), let v = try IDNumber.parse(s, "uid", source: "the PAX records of the tar entry at byte \(off)", code: .invalidImage) { e.uid = v }
        if let s = text("gid"), let v = try IDNumber.parse(s, "gid", source: "the PAX records of the tar entry at byte \(off)", code: .invalidImage) { e.gid = v }
        if let s = text("mtime") {
            let parts = s.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
            if let sec = Int64(parts[0]) { e.mtime = sec }
            if parts.count == 2 {
                var frac = String(parts[1].prefix(9))
                while frac.count < 9 { frac += "0" }
                e.mtimeNanos = Int64(frac).flatMap { (0..<1_000_000_000).contains($0) ? $0 : nil } ?? 0
            }
        }
        for (k, v) in pax where k.hasPrefix("SCHILY.xattr.") && k.count > "SCHILY.xattr.".count {
            e.xattrs.append((String(k.dropFirst("SCHILY.xattr.".count)), v))
        }
    }
}
