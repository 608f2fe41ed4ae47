#if canImport(Glibc)
import Glibc
#endif
import SwvmBase
import NativeThreads

/// virtio-blk (virtio 1.x, section 5.2) over a host file: reads, writes
/// (unless read-only), flush and device id. Requests are served straight
/// between the file and guest memory with pread/pwrite.
///
/// The disk may be attached after the guest has booted (`attach`), which
/// is how a VM restored from a snapshot gets the image of its run: the
/// device starts empty (capacity 0), and the transport's config-change
/// interrupt makes the guest read the new capacity.
// @unchecked: `malformedWarnings`, its only var, changes only in `serve`,
// which runs under the RequestQueue's lock; the disk is behind `backing`.
public final class BlockDevice: VirtioDevice, @unchecked Sendable {
    public let deviceType = VirtioID.block
    public let queueSizes: [UInt16] = [256]
    public let readOnly: Bool
    private struct Backing { var fd: FileDescriptor?; var path = ""; var sectors: UInt64 = 0 }
    private let backing = Locked(Backing())
    private var fd: FileDescriptor? { backing.current.fd }
    private var sectors: UInt64 { backing.current.sectors }
    public var path: String { backing.current.path }
    private let requests = RequestQueue()
    private var malformedWarnings = WarningBudget(1)
    /// The disk's 4 KiB blocks the guest read since `recordReads` (nil: not
    /// recording), at most `readLogBound` of them (issue 22: the files a
    /// template warms are the ones its first run read).
    private let readLog = Locked<Set<UInt64>?>(nil)
    public static let readLogBound = 1 << 14

    static let featureSegMax: UInt64 = 1 << 2, featureRO: UInt64 = 1 << 5, featureBlkSize: UInt64 = 1 << 6
    static let featureFlush: UInt64 = 1 << 9
    static let typeIn: UInt32 = 0, typeOut: UInt32 = 1, typeFlush: UInt32 = 4, typeGetID: UInt32 = 8
    static let statusOK: UInt8 = 0, statusIOErr: UInt8 = 1, statusUnsupported: UInt8 = 2
    public static let sectorSize: UInt64 = 512

    public init(path: String, readOnly: Bool) throws {
        self.readOnly = readOnly
        attach(try DiskImage(path: path, readOnly: readOnly))
    }

    /// A device with no disk yet.
    public init(readOnly: Bool) {
        self.readOnly = readOnly
    }

    /// An open disk image and its size, ready for `attach` (which may then
    /// run on the device thread, whose seccomp filter allows neither open
    /// nor stat).
    public struct DiskImage: Sendable {
        public let fd: FileDescriptor
        public let path: String
        public let sectors: UInt64

        public init(path: String, readOnly: Bool) throws {
            fd = try FileDescriptor.open(path, (readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC)
            var st = stat()
            guard fstat(fd.raw, &st) == 0 else { throw SwvmError.errno("stat \(path)") }
            self.path = path
            sectors = UInt64(st.st_size) / BlockDevice.sectorSize
        }
    }

    /// Records the blocks read from now on (`recordedBlocks`).
    public func recordReads() { readLog.with { $0 = [] } }

    /// The 4 KiB blocks read since `recordReads`, in order (nil when not
    /// recording). Beyond `readLogBound` blocks, further ones are dropped.
    public func recordedBlocks() -> [UInt64]? { readLog.current.map { $0.sorted() } }

    private func logRead(_ offset: UInt64, _ length: Int) {
        guard length > 0 else { return }
        readLog.with { log in
            guard log != nil else { return }
            for block in (offset >> 12)...((offset + UInt64(length) - 1) >> 12) where log!.count < BlockDevice.readLogBound {
                log!.insert(block)
            }
        }
    }

    /// Makes `image` the disk; the caller announces it (MMIOTransport.signalConfigChange).
    public func attach(_ image: DiskImage) {
        backing.with { $0 = Backing(fd: image.fd, path: image.path, sectors: image.sectors) }
    }

    public var features: UInt64 {
        BlockDevice.featureSegMax | BlockDevice.featureBlkSize | BlockDevice.featureFlush | (readOnly ? BlockDevice.featureRO : 0)
    }

    public func readConfig(offset: Int, into data: UnsafeMutableRawBufferPointer) {
        var config = [UInt8](repeating: 0, count: 64)
        func put<T: FixedWidthInteger>(_ v: T, _ o: Int) { withUnsafeBytes(of: v.littleEndian) { for (i, b) in $0.enumerated() { config[o + i] = b } } }
        put(sectors, 0)                 // capacity
        put(UInt32(0), 8)               // size_max (no limit)
        put(UInt32(126), 12)            // seg_max
        put(UInt32(4096), 20)           // blk_size
        for i in 0..<data.count { data[i] = offset + i < config.count ? config[offset + i] : 0 }
    }

    public func writeConfig(offset: Int, data: UnsafeRawBufferPointer) {}

    public func activate(queues: [VirtQueue], negotiated: UInt64, interrupt: @escaping @Sendable () -> Void) {
        requests.activate(queues.first, interrupt: interrupt)
    }

    public func reset() { requests.reset() }

    public func queueNotified(_ index: Int) { requests.serve(serve) }

    /// Serves one request; returns the bytes written into the chain.
    func serve(_ chain: DescriptorChain) -> UInt32 {
        guard let fd else { return fail(chain, BlockDevice.statusIOErr) }
        let header = chain.readAll(limit: 16)
        guard header.count == 16, let statusBuf = chain.writable.last, statusBuf.length >= 1 else {
            malformedWarnings.warn("virtio-blk: malformed request (no header or status byte)")
            return 0
        }
        let type = le32(header, 0)
        let sector = le64(header, 8)
        // Data buffers: every writable one, minus the final status byte.
        let memory = chain.memory
        var dataBuffers = chain.writable.map { ($0.address, Int($0.length)) }
        dataBuffers[dataBuffers.count - 1].1 -= 1
        let statusAddr = statusBuf.address + UInt64(statusBuf.length) - 1
        var status = BlockDevice.statusOK
        var written = 1
        switch type {
        case BlockDevice.typeIn:
            let total = dataBuffers.reduce(0) { $0 + $1.1 }
            if !inRange(sector, total) { status = BlockDevice.statusIOErr; break }
            logRead(sector * BlockDevice.sectorSize, total)
            var off = off_t(sector * BlockDevice.sectorSize)
            for (a, n) in dataBuffers where n > 0 {
                let ok = (try? memory.withMutableBytes(at: a, count: n) { preadFully(fd, $0, off) }) ?? false
                if !ok { status = BlockDevice.statusIOErr; break }
                off += off_t(n)
                written += n
            }
        case BlockDevice.typeOut:
            let sources = chain.readable.dropFirst().map { ($0.address, Int($0.length)) }
            // The header may share its descriptor with data in theory; swvm's
            // guests (Linux) always give the header its own descriptor.
            let total = sources.reduce(0) { $0 + $1.1 }
            if readOnly || !inRange(sector, total) { status = BlockDevice.statusIOErr; break }
            var off = off_t(sector * BlockDevice.sectorSize)
            for (a, n) in sources where n > 0 {
                let ok = (try? memory.withBytes(at: a, count: n) { pwrite(fd.raw, $0.baseAddress, n, off) == n }) ?? false
                if !ok { status = BlockDevice.statusIOErr; break }
                off += off_t(n)
            }
        case BlockDevice.typeFlush:
            if !readOnly && fdatasync(fd.raw) != 0 { status = BlockDevice.statusIOErr }
        case BlockDevice.typeGetID:
            let id = Array("swvm-\(Path.basename(path))".utf8.prefix(20))
            if let (a, n) = dataBuffers.first, n > 0 {
                let count = min(n, id.count)
                if (try? memory.writeBytes(Array(id.prefix(count)), at: a)) != nil { written += count }
            }
        default:
            status = BlockDevice.statusUnsupported
        }
        try? memory.write(status, at: statusAddr)
        // Buffers may overlap, so their sum can pass 4 GiB.
        return UInt32(clamping: written)
    }

    /// Answers a request with only a status byte.
    private func fail(_ chain: DescriptorChain, _ status: UInt8) -> UInt32 {
        guard let s = chain.writable.last, s.length >= 1 else { return 0 }
        guard (try? chain.memory.write(status, at: s.address + UInt64(s.length) - 1)) != nil else { return 0 }
        return 1
    }

    /// Whether `bytes` from `sector` lie on the disk. Both come from the
    /// guest, so neither the offset nor the end may overflow (sector
    /// 0x7FFFFFFFFFFFFF is a byte offset just under 2^64).
    private func inRange(_ sector: UInt64, _ bytes: Int) -> Bool {
        let start = sector.multipliedReportingOverflow(by: BlockDevice.sectorSize)
        let end = start.partialValue.addingReportingOverflow(UInt64(bytes))
        return !start.overflow && !end.overflow && end.partialValue <= sectors * BlockDevice.sectorSize
    }

    private func preadFully(_ fd: FileDescriptor, _ dest: UnsafeMutableRawBufferPointer, _ off: off_t) -> Bool {
        var done = 0
        let n = dest.count
        while done < n {
            let r = pread(fd.raw, dest.baseAddress! + done, n - done, off + off_t(done))
            if r < 0 && errno == EINTR { continue }
            if r <= 0 { return false }
            done += r
        }
        return true
    }
}
