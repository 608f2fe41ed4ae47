#if canImport(Glibc)
import Glibc
#endif
import CAtomics
import SwvmBase

/// A guest-physical address.
public typealias GuestAddress = UInt64

/// One contiguous range of guest-physical memory backed by a host mapping.
/// The host address stays inside GuestMemory: callers that must hand it to
/// the kernel get it only for the span of a closure (`registerRegions`,
/// `withHostRanges`).
public struct GuestRegion {
    public let guestBase: GuestAddress
    public let size: UInt64
    let host: UnsafeMutableRawPointer

    public var guestEnd: GuestAddress { guestBase + size }

    public func contains(_ addr: GuestAddress) -> Bool { addr >= guestBase && addr < guestEnd }
}

/// The guest's RAM: a set of regions (below and above the MMIO gap), and
/// bounds-checked access to it, as rust-vmm's vm-memory does it. Every
/// address that comes from the guest goes through `pointer(at:count:)`,
/// which refuses a range that is not entirely inside one region, so a
/// hostile guest can never make the VMM touch host memory outside the
/// guest's. No host pointer leaves this type: callers read and write typed
/// values, copy bytes in and out, or get a view for the span of a closure.
///
/// @unchecked Sendable: every vCPU and device thread reaches guest RAM, and
/// so does the guest, at any moment; that is its nature, not a race this
/// type could lock away. What it owns never changes (`regions` is a let,
/// the mappings live as long as the object), and every access is a
/// bounds-checked copy or a single typed read or write (ring indices are
/// atomic), never a value assumed stable across two reads.
public final class GuestMemory: @unchecked Sendable {
    public let regions: [GuestRegion]
    /// The snapshot memory file the regions are mapped from (a duplicate
    /// descriptor), or nil for anonymous memory: a snapshot saved from
    /// this VM copies the pages the guest never wrote from it.
    public let backingFile: FileDescriptor?

    /// Maps anonymous memory for each (base, size) range.
    public init(ranges: [(GuestAddress, UInt64)]) throws {
        var regions: [GuestRegion] = []
        for (base, size) in ranges {
            let p = mmap(nil, Int(size), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
            guard let p, p != MAP_FAILED else {
                for r in regions { munmap(r.host, Int(r.size)) }
                throw SwvmError(.systemCall, "cannot map \(size >> 20) MiB of guest memory: \(errnoText(errno))")
            }
            // Guest memory must not end up in a core dump of the VMM.
            madvise(p, Int(size), MADV_DONTDUMP)
            regions.append(GuestRegion(guestBase: base, size: size, host: p))
        }
        self.regions = regions
        backingFile = nil
    }

    /// Maps the ranges from a snapshot's memory image, copy-on-write
    /// (MAP_PRIVATE): the ranges lie one after another in the file. Pages
    /// the guest only reads stay shared with every other VM restored from
    /// the same file; the file itself is never written.
    public init(ranges: [(GuestAddress, UInt64)], file fd: Int32) throws {
        var regions: [GuestRegion] = []
        var offset: UInt64 = 0
        for (base, size) in ranges {
            let p = mmap(nil, Int(size), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, off_t(offset))
            guard let p, p != MAP_FAILED else {
                for r in regions { munmap(r.host, Int(r.size)) }
                throw SwvmError(.systemCall, "cannot map \(size >> 20) MiB of guest memory from the snapshot: \(errnoText(errno))")
            }
            madvise(p, Int(size), MADV_DONTDUMP)
            regions.append(GuestRegion(guestBase: base, size: size, host: p))
            offset += size
        }
        self.regions = regions
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        backingFile = copy >= 0 ? FileDescriptor(copy, name: "the snapshot's memory file") : nil
    }

    /// Takes over mappings made elsewhere (tests that put guard pages
    /// around guest RAM); they are unmapped with this object.
    init(adopting regions: [GuestRegion]) {
        self.regions = regions
        backingFile = nil
    }

    deinit {
        for r in regions { munmap(r.host, Int(r.size)) }
    }

    /// The last guest-physical address + 1.
    public var end: GuestAddress { regions.map(\.guestEnd).max() ?? 0 }

    /// A host pointer to `count` bytes at `addr`, or nil when any byte of
    /// the range lies outside guest RAM or the range crosses regions. Never
    /// handed out: every public accessor below scopes or copies.
    func pointer(at addr: GuestAddress, count: UInt64) -> UnsafeMutableRawPointer? {
        for r in regions where r.contains(addr) {
            let offset = addr - r.guestBase
            guard count <= r.size - offset else { return nil }
            return r.host + Int(offset)
        }
        return nil
    }

    func checkedPointer(at addr: GuestAddress, count: UInt64) throws -> UnsafeMutableRawPointer {
        guard let p = pointer(at: addr, count: count) else {
            throw SwvmError(.invalidArgument, "guest range 0x\(String(addr, radix: 16))+\(count) is outside guest memory")
        }
        return p
    }

    /// Whether all `count` bytes at `addr` lie in one region of guest RAM.
    public func contains(_ addr: GuestAddress, count: UInt64) -> Bool {
        pointer(at: addr, count: count) != nil
    }

    // MARK: typed access (little-endian, as on x86 and in virtio)

    public func read<T: FixedWidthInteger>(_ type: T.Type, at addr: GuestAddress) throws -> T {
        let p = try checkedPointer(at: addr, count: UInt64(MemoryLayout<T>.size))
        return T(littleEndian: p.loadUnaligned(as: T.self))
    }

    public func write<T: FixedWidthInteger>(_ value: T, at addr: GuestAddress) throws {
        let p = try checkedPointer(at: addr, count: UInt64(MemoryLayout<T>.size))
        p.storeBytes(of: value.littleEndian, as: T.self)
    }

    /// A ring index the driver publishes: read with acquire order, so that
    /// what it published is read after it.
    public func loadAcquire(_ type: UInt16.Type, at addr: GuestAddress) throws -> UInt16 {
        UInt16(littleEndian: catomic_load_acquire_u16(try ringIndex(at: addr)))
    }

    /// A ring index the device publishes: written with release order, after
    /// what it publishes.
    public func storeRelease(_ value: UInt16, at addr: GuestAddress) throws {
        catomic_store_release_u16(try ringIndex(at: addr), value.littleEndian)
    }

    /// A ring index's host address: inside guest RAM and 2-byte aligned,
    /// as atomic access needs.
    private func ringIndex(at addr: GuestAddress) throws -> UnsafeMutableRawPointer {
        let p = try checkedPointer(at: addr, count: 2)
        guard addr & 1 == 0 else { throw SwvmError(.invalidArgument, "guest index at 0x\(String(addr, radix: 16)) is misaligned") }
        return p
    }

    // MARK: copies in and out

    public func readBytes(at addr: GuestAddress, count: Int) throws -> [UInt8] {
        let p = try checkedPointer(at: addr, count: UInt64(count))
        return Array(UnsafeRawBufferPointer(start: p, count: count))
    }

    public func writeBytes(_ bytes: [UInt8], at addr: GuestAddress) throws {
        try bytes.withUnsafeBytes { try writeBytes($0, at: addr) }
    }

    public func writeBytes(_ bytes: UnsafeRawBufferPointer, at addr: GuestAddress) throws {
        let p = try checkedPointer(at: addr, count: UInt64(bytes.count))
        if bytes.count > 0 { p.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
    }

    /// Copies `count` bytes of guest RAM at `addr` into `dest`.
    public func copyOut(at addr: GuestAddress, into dest: UnsafeMutableRawBufferPointer) throws {
        let p = try checkedPointer(at: addr, count: UInt64(dest.count))
        if dest.count > 0 { dest.baseAddress!.copyMemory(from: p, byteCount: dest.count) }
    }

    public func fill(_ byte: UInt8, at addr: GuestAddress, count: Int) throws {
        let p = try checkedPointer(at: addr, count: UInt64(count))
        memset(p, Int32(byte), count)
    }

    // MARK: scoped views (for system calls that move data in place)

    /// Lends `body` the `count` bytes at `addr` to fill in place (pread,
    /// getrandom). The view is valid only during the call, must not be
    /// stored, and its content is the guest's: the guest may change it at
    /// any moment, so it is never parsed in place.
    public func withMutableBytes<R>(at addr: GuestAddress, count: Int, _ body: (UnsafeMutableRawBufferPointer) throws -> R) throws -> R {
        let p = try checkedPointer(at: addr, count: UInt64(count))
        return try body(UnsafeMutableRawBufferPointer(start: p, count: count))
    }

    /// Lends `body` the `count` bytes at `addr` to send out in place
    /// (pwrite). The same rules as `withMutableBytes`.
    public func withBytes<R>(at addr: GuestAddress, count: Int, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let p = try checkedPointer(at: addr, count: UInt64(count))
        return try body(UnsafeRawBufferPointer(start: p, count: count))
    }

    // MARK: the host mappings, for the kernel only

    /// Calls `register` once per region with its slot number and host
    /// address, for KVM_SET_USER_MEMORY_REGION. The address must not be kept.
    public func registerRegions(_ register: (_ slot: UInt32, _ region: GuestRegion, _ host: UnsafeMutableRawPointer) throws -> Void) rethrows {
        for (slot, r) in regions.enumerated() { try register(UInt32(slot), r, r.host) }
    }

    /// Lends `body` every region's host range, in guest order (writing a
    /// snapshot). The ranges are valid only during the call.
    public func withHostRanges<R>(_ body: ([UnsafeRawBufferPointer]) throws -> R) rethrows -> R {
        try body(regions.map { UnsafeRawBufferPointer(start: $0.host, count: Int($0.size)) })
    }

    /// Guest RAM mapped into the VMM (touched by the guest or the VMM): the
    /// Rss of the regions' mappings in /proc/self/smaps. (mincore would
    /// count a snapshot's pages that are merely in the page cache.)
    public func residentBytes() -> UInt64 {
        guard let text = ProcSelf.readText("smaps", limit: 1 << 26) else { return 0 }
        let starts = Set(regions.map { UInt(bitPattern: $0.host) })
        var total: UInt64 = 0
        var inRegion = false
        for line in text.split(separator: "\n") {
            if let dash = line.firstIndex(of: "-"), let start = UInt(line[..<dash], radix: 16) {
                inRegion = starts.contains(start)
            } else if inRegion && line.hasPrefix("Rss:") {
                let kb = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { UInt64($0) } ?? 0
                total += kb * 1024
            }
        }
        return total
    }
}
