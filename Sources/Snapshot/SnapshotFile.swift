#if canImport(Glibc)
import Glibc
#endif
import CZlib
import SwvmBase

/// A VM snapshot on disk: a directory holding `state` (a header, then the
/// saved vCPU, VM and device state) and `memory` (guest RAM, sparse: pages
/// that were zero are holes). A restore maps `memory` MAP_PRIVATE, so VMs
/// restored from one snapshot share its clean pages through the page cache.
///
/// The header carries a format version, the cache key the snapshot was made
/// for, and CRC-32 checksums of the state and of the memory image. A
/// snapshot that is truncated, damaged or made for other settings is
/// refused. Reading all of guest RAM to check it on every restore would
/// cost more than the rest of the restore, so the memory checksum is
/// checked only when the memory file's inode, size, mtime or ctime differ
/// from those recorded at creation: any write to the file changes its
/// ctime, which no user can set back.
public struct SnapshotFile {
    public static let magic = Array("SWVMSNAP".utf8)
    /// Bump when the state layout of any device or of the vCPU changes.
    public static let version: UInt32 = 1

    public struct Header: Equatable {
        public var key: String
        public var memorySize: UInt64
        public var stateCRC: UInt32
        public var stateLength: UInt64
        public var memoryCRC: UInt32
        /// The memory file as written: inode, size, mtime and ctime (ns).
        public var memoryIdentity: [UInt64]
        public var createdNanos: UInt64
    }

    public let directory: String
    public let header: Header
    public let state: [UInt8]
    /// The memory image, open for mapping.
    public let memory: FileDescriptor

    static func crc(_ p: UnsafeRawBufferPointer, _ seed: UInt32 = 0) -> UInt32 {
        guard let base = p.baseAddress, p.count > 0 else { return seed }
        return UInt32(truncatingIfNeeded: crc32_z(uLong(seed), base.assumingMemoryBound(to: Bytef.self), p.count))
    }

    static func identity(_ fd: Int32) -> [UInt64] {
        var st = Glibc.stat()
        guard fstat(fd, &st) == 0 else { return [] }
        return [UInt64(st.st_ino), UInt64(st.st_size),
                UInt64(st.st_mtim.tv_sec) * 1_000_000_000 + UInt64(st.st_mtim.tv_nsec),
                UInt64(st.st_ctim.tv_sec) * 1_000_000_000 + UInt64(st.st_ctim.tv_nsec)]
    }

    // MARK: reading

    /// Opens and checks the snapshot in `directory`, made for `key`.
    public static func open(_ directory: String, key: String) throws -> SnapshotFile {
        let statePath = Path.join(directory, "state")
        let bytes = try FS.readFile(statePath, limit: 64 << 20)
        func bad(_ why: String) -> SwvmError { SwvmError(.invalidImage, "snapshot \(directory): \(why)") }
        guard bytes.count >= magic.count + 8, Array(bytes[0..<magic.count]) == magic else { throw bad("not a swvm snapshot") }
        var r = StateReader(Array(bytes[magic.count...]), source: "snapshot \(statePath)")
        let version = try r.u32()
        guard version == SnapshotFile.version else { throw bad("format version \(version), this swvm writes \(SnapshotFile.version)") }
        let headerStart = magic.count + 4
        var header = Header(key: try r.string(), memorySize: try r.u64(), stateCRC: try r.u32(), stateLength: try r.u64(),
                            memoryCRC: try r.u32(), memoryIdentity: [], createdNanos: 0)
        header.memoryIdentity = [try r.u64(), try r.u64(), try r.u64(), try r.u64()]
        header.createdNanos = try r.u64()
        let headerEnd = headerStart + encodeHeaderBody(header).count
        let headerCRC = try r.u32()
        guard headerCRC == bytes.withUnsafeBytes({ crc(UnsafeRawBufferPointer(rebasing: $0[0..<headerEnd])) }) else {
            throw bad("header checksum mismatch")
        }
        guard header.key == key else { throw bad("made for other settings") }
        let stateStart = headerEnd + 4
        guard UInt64(bytes.count - stateStart) == header.stateLength else {
            throw bad("state is \(bytes.count - stateStart) bytes, the header says \(header.stateLength) (truncated?)")
        }
        let state = Array(bytes[stateStart...])
        guard state.withUnsafeBytes({ crc($0) }) == header.stateCRC else { throw bad("state checksum mismatch") }

        let memory = try FileDescriptor.open(Path.join(directory, "memory"), O_RDONLY | O_CLOEXEC)
        let id = identity(memory.raw)
        guard id.count == 4, id[1] == header.memorySize else {
            throw bad("memory image is \(id.count == 4 ? id[1] : 0) bytes, expected \(header.memorySize) (truncated?)")
        }
        if id != header.memoryIdentity {
            guard try memoryChecksum(memory.raw, size: header.memorySize) == header.memoryCRC else {
                throw bad("memory image checksum mismatch")
            }
        }
        return SnapshotFile(directory: directory, header: header, state: state, memory: memory)
    }

    /// CRC-32 of the file's data, read extent by extent (holes are zeros
    /// and are folded in without reading them).
    static func memoryChecksum(_ fd: Int32, size: UInt64) throws -> UInt32 {
        var crcValue: UInt32 = 0
        var buf = [UInt8](repeating: 0, count: 1 << 20)
        var pos: UInt64 = 0
        func fold(_ count: UInt64, from source: (UnsafeMutableRawBufferPointer, Int) throws -> Void, zero: Bool) throws {
            if zero {
                crcValue = MemoryImageWriter.crcFoldingZeros(crcValue, count)
                pos += count
                return
            }
            var left = count
            while left > 0 {
                let n = Int(min(left, UInt64(buf.count)))
                try buf.withUnsafeMutableBytes { try source($0, n) }
                crcValue = buf.withUnsafeBytes { crc(UnsafeRawBufferPointer(rebasing: $0[0..<n]), crcValue) }
                pos += UInt64(n)
                left -= UInt64(n)
            }
        }
        while pos < size {
            let dataAt = lseek(fd, off_t(pos), 3 /* SEEK_DATA */)
            let dataStart = dataAt < 0 ? size : UInt64(dataAt)
            try fold(dataStart - pos, from: { _, _ in }, zero: true)
            guard pos < size else { break }
            let holeAt = lseek(fd, off_t(pos), 4 /* SEEK_HOLE */)
            let dataEnd = holeAt < 0 ? size : min(UInt64(holeAt), size)
            try fold(dataEnd - pos, from: { p, n in
                guard pread(fd, p.baseAddress, n, off_t(pos)) == n else { throw SwvmError.errno("read snapshot memory") }
            }, zero: false)
        }
        return crcValue
    }

    // MARK: writing

    static func encodeHeaderBody(_ h: Header) -> [UInt8] {
        var w = StateWriter()
        w.u32(version)
        w.string(h.key)
        w.u64(h.memorySize)
        w.u32(h.stateCRC)
        w.u64(h.stateLength)
        w.u32(h.memoryCRC)
        for v in h.memoryIdentity { w.u64(v) }
        w.u64(h.createdNanos)
        return Array(w.bytes.dropFirst(4))
    }

    /// Writes a snapshot into `directory` (which must not exist; the caller
    /// renames it into place): the state, then guest RAM from `regions`
    /// (host pointer and size each, in guest-physical order), skipping
    /// pages that were never touched or are zero. `base`: the memory file
    /// the regions are mapped from (MAP_PRIVATE, one after another as in
    /// the new file), when the VM was restored; its pages the guest never
    /// wrote are copied from it (MemoryImageWriter).
    public static func write(to directory: String, key: String, state: [UInt8],
                             regions: [(UnsafeRawPointer, Int)], base: Int32? = nil) throws {
        try FS.makeDirectories(directory, mode: 0o700)
        let memPath = Path.join(directory, "memory"), statePath = Path.join(directory, "state")
        let mem = try FileDescriptor.open(memPath, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode: 0o600)
        let stateFile = try FileDescriptor.open(statePath, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode: 0o600)
        try write(memory: mem, state: stateFile, in: directory, key: key, state: state, regions: regions, base: base)
    }

    /// Writes a snapshot through descriptors opened beforehand (a jailed
    /// VMM opens no path); `directory` only names them in errors.
    public static func write(memory mem: FileDescriptor, state stateFile: FileDescriptor, in directory: String, key: String,
                             state: [UInt8], regions: [(UnsafeRawPointer, Int)], base: Int32? = nil) throws {
        let memPath = Path.join(directory, "memory"), statePath = Path.join(directory, "state")
        let total = regions.reduce(0) { $0 + $1.1 }
        try sys("ftruncate \(memPath)") { ftruncate(mem.raw, off_t(total)) }
        var image = MemoryImageWriter(fd: mem.raw, path: memPath, base: base, total: total)
        defer { image.deallocate() }
        var fileOffset = 0
        for (region, size) in regions {
            try image.write(region: region, size: size, fileOffset: fileOffset)
            fileOffset += size
        }
        try sys("fsync \(memPath)") { fsync(mem.raw) }
        var header = Header(key: key, memorySize: UInt64(total), stateCRC: state.withUnsafeBytes { crc($0) },
                            stateLength: UInt64(state.count), memoryCRC: image.crc,
                            memoryIdentity: identity(mem.raw), createdNanos: Clock.realtimeNanos())
        if header.memoryIdentity.count != 4 { header.memoryIdentity = [0, 0, 0, 0] }
        var out = magic + le32(version) + encodeHeaderBody(header)
        out += le32(out.withUnsafeBytes { crc($0) })
        out += state
        try out.withUnsafeBytes { try FileDescriptor.writeAll(stateFile.raw, $0, name: statePath) }
        try sys("fsync \(statePath)") { fsync(stateFile.raw) }
    }
}
