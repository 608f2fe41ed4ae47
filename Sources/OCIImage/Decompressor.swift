#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import CZlib
import CZstd
import SwvmBase

/// A pull-based byte source.
public protocol ByteSource: AnyObject {
    /// Reads up to `count` bytes into `buffer`; 0 means end of stream.
    func read(into buffer: UnsafeMutableRawPointer, count: Int) throws -> Int
}

/// Reads a file descriptor, hashing what it reads (to check a digest at the end).
public final class FileSource: ByteSource {
    let fd: Int32
    /// What `fd` is open on, for its errors.
    let name: String
    public private(set) var hasher = SHA256()
    public private(set) var total: Int64 = 0

    public init(fd: Int32, name: String) {
        self.fd = fd
        self.name = name
    }

    public func read(into buffer: UnsafeMutableRawPointer, count: Int) throws -> Int {
        while true {
            let n = Glibc.read(fd, buffer, count)
            if n < 0 {
                if errno == EINTR { continue }
                throw SwvmError.system(step: "read", path: name)
            }
            if n > 0 {
                hasher.update(UnsafeRawBufferPointer(start: buffer, count: n))
                total += Int64(n)
            }
            return n
        }
    }
}

/// Layer compression, from the media type or the stream's magic bytes.
public enum Compression: Equatable {
    case none, gzip, zstd

    public static func detect(mediaType: String, magic: [UInt8]) -> Compression {
        if mediaType.hasSuffix("+gzip") || mediaType.hasSuffix(".tar.gzip") { return .gzip }
        if mediaType.hasSuffix("+zstd") { return .zstd }
        if magic.count >= 2 && magic[0] == 0x1f && magic[1] == 0x8b { return .gzip }
        if magic.count >= 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd { return .zstd }
        return .none
    }
}

/// gzip (RFC 1952, including concatenated members) through zlib.
public final class GzipSource: ByteSource {
    private let upstream: ByteSource
    private var stream = z_stream()
    private let inputSize = 1 << 16
    private let input: UnsafeMutablePointer<UInt8>
    private var finished = false
    private var upstreamDone = false

    public init(_ upstream: ByteSource) throws {
        self.upstream = upstream
        input = .allocate(capacity: inputSize)
        // 16 + MAX_WBITS: gzip framing.
        let r = inflateInit2_(&stream, 16 + MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard r == Z_OK else {
            input.deallocate()
            throw SwvmError(.internalError, "zlib init failed (\(r))")
        }
    }

    deinit {
        inflateEnd(&stream)
        input.deallocate()
    }

    private func refill() throws -> Bool {
        let n = try upstream.read(into: input, count: inputSize)
        if n == 0 { upstreamDone = true; return false }
        stream.next_in = input
        stream.avail_in = UInt32(n)
        return true
    }

    public func read(into buffer: UnsafeMutableRawPointer, count: Int) throws -> Int {
        if finished { return 0 }
        stream.next_out = buffer.assumingMemoryBound(to: UInt8.self)
        stream.avail_out = UInt32(count)
        while stream.avail_out > 0 {
            if stream.avail_in == 0 && !upstreamDone { _ = try refill() }
            if stream.avail_in == 0 && upstreamDone {
                throw SwvmError(.invalidImage, "gzip stream ends early (truncated layer)")
            }
            let r = inflate(&stream, Z_NO_FLUSH)
            if r == Z_STREAM_END {
                // Another gzip member may follow (pigz, concatenated streams).
                var more = stream.avail_in > 0
                if !more && !upstreamDone { more = try refill() }
                if !more {
                    finished = true
                    break
                }
                inflateReset(&stream)
                continue
            }
            guard r == Z_OK || r == Z_BUF_ERROR else {
                let msg = stream.msg.map { String(cString: $0) } ?? "error \(r)"
                throw SwvmError(.invalidImage, "corrupt gzip data: \(msg)")
            }
        }
        return count - Int(stream.avail_out)
    }
}

/// zstd (RFC 8878) through libzstd's streaming API.
public final class ZstdSource: ByteSource {
    private let upstream: ByteSource
    private let dctx: OpaquePointer
    private let inputSize = 1 << 17
    private let input: UnsafeMutableRawPointer
    private var inPos = 0
    private var inSize = 0
    private var upstreamDone = false
    private var lastResult = 1

    public init(_ upstream: ByteSource) throws {
        self.upstream = upstream
        guard let d = ZSTD_createDStream() else { throw SwvmError(.internalError, "zstd init failed") }
        dctx = d
        ZSTD_initDStream(d)
        input = .allocate(byteCount: inputSize, alignment: 16)
    }

    deinit {
        ZSTD_freeDStream(dctx)
        input.deallocate()
    }

    public func read(into buffer: UnsafeMutableRawPointer, count: Int) throws -> Int {
        var out = ZSTD_outBuffer(dst: buffer, size: count, pos: 0)
        while out.pos == 0 {
            if inPos == inSize {
                if upstreamDone {
                    if lastResult != 0 { throw SwvmError(.invalidImage, "zstd stream ends early (truncated layer)") }
                    return 0
                }
                let n = try upstream.read(into: input, count: inputSize)
                if n == 0 { upstreamDone = true; continue }
                inPos = 0
                inSize = n
            }
            var inb = ZSTD_inBuffer(src: input, size: inSize, pos: inPos)
            let r = ZSTD_decompressStream(dctx, &out, &inb)
            inPos = inb.pos
            if ZSTD_isError(r) != 0 {
                throw SwvmError(.invalidImage, "corrupt zstd data: \(String(cString: ZSTD_getErrorName(r)))")
            }
            lastResult = r
        }
        return out.pos
    }
}

/// Passes bytes through while hashing them (the layer's diff_id).
public final class HashingSource: ByteSource {
    private let upstream: ByteSource
    public private(set) var hasher = SHA256()

    public init(_ upstream: ByteSource) { self.upstream = upstream }

    public func read(into buffer: UnsafeMutableRawPointer, count: Int) throws -> Int {
        let n = try upstream.read(into: buffer, count: count)
        if n > 0 { hasher.update(UnsafeRawBufferPointer(start: buffer, count: n)) }
        return n
    }

    /// Reads and hashes whatever is left (tar padding after the end blocks).
    public func drain() throws {
        var buf = [UInt8](repeating: 0, count: 65536)
        while try buf.withUnsafeMutableBytes({ try read(into: $0.baseAddress!, count: $0.count) }) > 0 {}
    }
}
