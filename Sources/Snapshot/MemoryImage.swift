#if canImport(Glibc)
import Glibc
#endif
import CZlib
import SwvmBase

/// Writes guest RAM into a snapshot's memory file, sparse (zero pages are
/// holes), and computes the file's CRC-32 on the way, in file order, from
/// the very bytes written (no read-back).
///
/// Where each page comes from:
/// - a VM restored from a snapshot has its RAM mapped MAP_PRIVATE from
///   that snapshot's memory file (`base`). A page the guest never wrote is
///   still the file's page: /proc/self/pagemap says so (present and
///   file-backed, or not present at all). Such pages are copied from the
///   base file with pread, never read through the mapping, so the save
///   neither walks 128 MiB of guest RAM nor maps the base's page cache into
///   this process (the first run's peak RSS). Only the pages the guest
///   wrote (private copies: anonymous or swapped) are read from guest RAM.
/// - a booted VM's RAM is anonymous: the pages mincore reports resident
///   are read, the rest are zero.
/// Every page read from guest RAM is copied once into a buffer; the zero
/// check, the checksum and the write use the copy. (The VM is stopped
/// while it is saved; the copy keeps that from mattering.)
struct MemoryImageWriter {
    enum Source: UInt8 { case zero, base, guest }

    static let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    /// Bytes copied at a time.
    static let chunk = 1 << 20

    let fd: Int32
    let path: String
    let base: Int32?
    private(set) var crc: UInt32 = 0
    private let buffer: UnsafeMutableRawBufferPointer
    /// Per page of the file: whether the base file has data there.
    private let baseData: [Bool]

    init(fd: Int32, path: String, base: Int32?, total: Int) {
        self.fd = fd
        self.path = path
        self.base = base
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: MemoryImageWriter.chunk, alignment: MemoryImageWriter.page)
        baseData = base.map { MemoryImageWriter.dataPages($0, size: total) } ?? []
    }

    func deallocate() { buffer.deallocate() }

    /// Writes one region of guest RAM at `fileOffset`.
    mutating func write(region: UnsafeRawPointer, size: Int, fileOffset: Int) throws {
        let page = MemoryImageWriter.page
        let sources = classify(region: region, size: size, fileOffset: fileOffset)
        var i = 0
        while i < sources.count {
            let source = sources[i]
            var j = i + 1
            let cap = source == .zero ? Int.max : i + MemoryImageWriter.chunk / page
            while j < sources.count, j < cap, sources[j] == source { j += 1 }
            let start = i * page, length = min(j * page, size) - start
            switch source {
            case .zero: crc = MemoryImageWriter.crcFoldingZeros(crc, UInt64(length))
            case .base: try copyFromBase(at: fileOffset + start, count: length)
            case .guest:
                buffer.baseAddress!.copyMemory(from: region + start, byteCount: length)
                try emit(count: length, at: fileOffset + start)
            }
            i = j
        }
    }

    /// Where each page of the region comes from.
    func classify(region: UnsafeRawPointer, size: Int, fileOffset: Int) -> [Source] {
        let page = MemoryImageWriter.page, pages = (size + page - 1) / page
        guard base != nil else {
            var resident = [UInt8](repeating: 0, count: pages)
            if mincore(UnsafeMutableRawPointer(mutating: region), size, &resident) != 0 { return Array(repeating: .guest, count: pages) }
            return resident.map { $0 & 1 != 0 ? .guest : .zero }
        }
        guard let written = MemoryImageWriter.privatePages(region, pages: pages) else { return Array(repeating: .guest, count: pages) }
        let first = fileOffset / page
        return (0..<pages).map { k in
            written[k] ? .guest : (first + k < baseData.count && baseData[first + k] ? .base : .zero)
        }
    }

    /// Per page: whether it is the process's own copy (written since it was
    /// mapped), from /proc/self/pagemap: bit 63 present, 62 swapped, 61
    /// file-backed. nil if pagemap cannot be read (then every page is read).
    static func privatePages(_ region: UnsafeRawPointer, pages: Int) -> [Bool]? {
        var entries = [UInt64](repeating: 0, count: pages)
        let offset = UInt64(UInt(bitPattern: region) / UInt(page)) * 8
        let got = entries.withUnsafeMutableBytes { ProcSelf.readBytes("pagemap", at: offset, into: $0) }
        guard got == pages * 8 else { return nil }
        return entries.map { e in e >> 62 & 1 != 0 || (e >> 63 & 1 != 0 && e >> 61 & 1 == 0) }
    }

    /// Per page of a file of `size` bytes: whether it holds data (not a hole).
    static func dataPages(_ fd: Int32, size: Int) -> [Bool] {
        var pages = [Bool](repeating: false, count: (size + page - 1) / page)
        var pos = 0
        while pos < size {
            let data = lseek(fd, off_t(pos), 3 /* SEEK_DATA */)
            guard data >= 0, Int(data) < size else { break }
            let hole = lseek(fd, data, 4 /* SEEK_HOLE */)
            let end = hole < 0 ? size : min(Int(hole), size)
            for k in (Int(data) / page)..<((end + page - 1) / page) { pages[k] = true }
            pos = end
        }
        return pages
    }

    /// Copies `count` bytes at `offset` from the base file.
    private mutating func copyFromBase(at offset: Int, count: Int) throws {
        var done = 0
        while done < count {
            let n = pread(base!, buffer.baseAddress! + done, count - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw SwvmError(.invalidImage, "read the base snapshot's memory at \(offset + done): \(n < 0 ? errnoText(errno) : "end of file")") }
            done += n
        }
        try emit(count: count, at: offset)
    }

    /// Checksums the buffer's first `count` bytes and writes its non-zero
    /// pages at `offset`.
    private mutating func emit(count: Int, at offset: Int) throws {
        let page = MemoryImageWriter.page
        crc = SnapshotFile.crc(UnsafeRawBufferPointer(rebasing: buffer[0..<count]), crc)
        var i = 0
        while i < count {
            guard !MemoryImageWriter.isZero(buffer.baseAddress! + i, min(page, count - i)) else { i += page; continue }
            var j = i + page
            while j < count, !MemoryImageWriter.isZero(buffer.baseAddress! + j, min(page, count - j)) { j += page }
            try writeAll(buffer.baseAddress! + i, min(j, count) - i, at: offset + i)
            i = j
        }
    }

    private func writeAll(_ p: UnsafeRawPointer, _ length: Int, at offset: Int) throws {
        var done = 0
        while done < length {
            let n = pwrite(fd, p + done, length - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw SwvmError.errno("write \(path)") }
            done += n
        }
    }

    static func isZero(_ p: UnsafeRawPointer, _ size: Int) -> Bool {
        let words = p.assumingMemoryBound(to: UInt64.self)
        for k in 0..<(size / 8) where words[k] != 0 { return false }
        for k in (size / 8 * 8)..<size where p.load(fromByteOffset: k, as: UInt8.self) != 0 { return false }
        return true
    }

    // MARK: CRC-32 over zeros without reading them

    /// CRC-32 of 2^i zero bytes, for i in 0..<48.
    static let zeroCRCs: [UInt32] = {
        var zero: UInt8 = 0
        var table = [UInt32(truncatingIfNeeded: crc32_z(0, &zero, 1))]
        for i in 1..<48 {
            table.append(UInt32(truncatingIfNeeded: crc32_combine(uLong(table[i - 1]), uLong(table[i - 1]), 1 << (i - 1))))
        }
        return table
    }()

    /// The CRC-32 of what `crc` covered followed by `count` zero bytes: a
    /// hole of 100 MiB costs a few dozen combines, not 100 MiB of CRC.
    static func crcFoldingZeros(_ crc: UInt32, _ count: UInt64) -> UInt32 {
        var c = crc
        for i in 0..<48 where count >> UInt64(i) & 1 != 0 {
            c = UInt32(truncatingIfNeeded: crc32_combine(uLong(c), uLong(zeroCRCs[i]), 1 << i))
        }
        return c
    }
}
