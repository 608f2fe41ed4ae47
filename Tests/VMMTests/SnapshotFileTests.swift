#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import Snapshot
import SwvmBase

/// The snapshot file format on its own: what is written reads back, and
/// every kind of damage is refused with a message naming the snapshot.
@Suite struct SnapshotFileTests {
    /// Two "regions" of fake guest RAM: a few non-zero pages among zeros.
    static func regions() -> [UnsafeMutableRawPointer] {
        let a = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        let b = UnsafeMutableRawPointer.allocate(byteCount: 256 << 10, alignment: 4096)
        memset(a, 0, 1 << 20)
        memset(b, 0, 256 << 10)
        memset(a + 8192, 0x5a, 4096)
        memset(a + (1 << 20) - 100, 0x11, 100)
        memset(b, 0x7e, 3)
        return [a, b]
    }

    static func write(_ dir: String, key: String = "k1") throws -> [UnsafeMutableRawPointer] {
        let r = regions()
        try SnapshotFile.write(to: dir, key: key, state: Array("vcpu and device state".utf8),
                               regions: [(UnsafeRawPointer(r[0]), 1 << 20), (UnsafeRawPointer(r[1]), 256 << 10)])
        return r
    }

    static func tempDir() -> String {
        var template = Array("/tmp/swvm-snapshot-test-XXXXXX".utf8CString)
        return String(cString: mkdtemp(&template)!)
    }

    @Test func writesAndReadsBack() throws {
        let root = SnapshotFileTests.tempDir()
        defer { try? FS.removeTree(root) }
        let dir = Path.join(root, "snap")
        let r = try SnapshotFileTests.write(dir)
        let snap = try SnapshotFile.open(dir, key: "k1")
        #expect(snap.state == Array("vcpu and device state".utf8))
        #expect(snap.header.memorySize == (1 << 20) + (256 << 10))
        // The memory image maps back page for page, the zero pages as holes.
        let size = Int(snap.header.memorySize)
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, snap.memory.raw, 0)!
        defer { munmap(p, size) }
        #expect(memcmp(p, r[0], 1 << 20) == 0)
        #expect(memcmp(p + (1 << 20), r[1], 256 << 10) == 0)
        var st = stat()
        stat(Path.join(dir, "memory"), &st)
        #expect(st.st_blocks * 512 < 64 << 10, "zero pages were written: \(st.st_blocks) blocks")
        #expect(throws: SwvmError.self) { try SnapshotFile.open(dir, key: "another key") }
    }

    /// Whether the page at `p` is in this process's page tables (pagemap bit 63).
    static func present(_ p: UnsafeRawPointer) -> Bool {
        var entry: UInt64 = 0
        let offset = UInt64(UInt(bitPattern: p) / 4096) * 8
        _ = withUnsafeMutableBytes(of: &entry) { ProcSelf.readBytes("pagemap", at: offset, into: $0) }
        return entry >> 63 & 1 != 0
    }

    /// A snapshot of a restored VM (an image template): its RAM is the base
    /// snapshot's memory file mapped MAP_PRIVATE. The pages the "guest"
    /// wrote come from the mapping (a page zeroed over the base's data
    /// becomes a hole), the rest are copied from the base file, and the
    /// save maps none of them (they stay out of the page tables: the first
    /// run's peak RSS). The recorded checksum is the file's.
    @Test func aRestoredVMsSnapshotCopiesUnwrittenPagesFromItsBase() throws {
        let root = SnapshotFileTests.tempDir()
        defer { try? FS.removeTree(root) }
        let baseDir = Path.join(root, "base"), dir = Path.join(root, "template")
        _ = try SnapshotFileTests.write(baseDir)
        let base = try SnapshotFile.open(baseDir, key: "k1")
        let a = mmap(nil, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE, base.memory.raw, 0)!
        let b = mmap(nil, 256 << 10, PROT_READ | PROT_WRITE, MAP_PRIVATE, base.memory.raw, 1 << 20)!
        defer { munmap(a, 1 << 20); munmap(b, 256 << 10) }
        memset(a + 4 * 4096, 0x33, 4096)             // new data over a hole of the base
        memset(a + 8192, 0, 4096)                    // zeros over the base's 0x5a page
        #expect(a.load(fromByteOffset: (1 << 20) - 1, as: UInt8.self) == 0x11)   // read only
        memset(b + 4096, 0x44, 10)
        #expect(!SnapshotFileTests.present(b) && !SnapshotFileTests.present(a + 100 * 4096))
        try SnapshotFile.write(to: dir, key: "t", state: [1, 2, 3], regions: [(UnsafeRawPointer(a), 1 << 20), (UnsafeRawPointer(b), 256 << 10)],
                               base: base.memory.raw)
        #expect(!SnapshotFileTests.present(b), "the save read the base's 0x7e page through the mapping")
        #expect(!SnapshotFileTests.present(a + 100 * 4096), "the save read a page of the base's hole through the mapping")

        let snap = try SnapshotFile.open(dir, key: "t")
        let size = Int(snap.header.memorySize)
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, snap.memory.raw, 0)!
        defer { munmap(p, size) }
        #expect(memcmp(p, a, 1 << 20) == 0 && memcmp(p + (1 << 20), b, 256 << 10) == 0)
        #expect(p.load(fromByteOffset: 8192, as: UInt8.self) == 0 && p.load(fromByteOffset: 4 * 4096, as: UInt8.self) == 0x33)
        #expect(try SnapshotFile.memoryChecksum(snap.memory.raw, size: snap.header.memorySize) == snap.header.memoryCRC)
        var st = stat()
        stat(Path.join(dir, "memory"), &st)
        #expect(st.st_blocks * 512 <= 4 * 4096, "more than the 4 non-zero pages were written: \(st.st_blocks) blocks")
    }

    /// A hole folds into the checksum as if its zeros were read.
    @Test func zeroRunsFoldIntoTheChecksumAsIfRead() {
        let seed = [UInt8]([1, 2, 3]).withUnsafeBytes { SnapshotFile.crc($0) }
        for n in [1, 7, 4095, 4096, 65539, 3 << 20] {
            let zeros = [UInt8](repeating: 0, count: n)
            #expect(MemoryImageWriter.crcFoldingZeros(seed, UInt64(n)) == zeros.withUnsafeBytes { SnapshotFile.crc($0, seed) }, "\(n) zeros")
        }
    }

    @Test(arguments: ["state byte", "state truncated", "memory byte", "memory truncated", "not a snapshot"])
    func damageIsRefused(_ damage: String) throws {
        let root = SnapshotFileTests.tempDir()
        defer { try? FS.removeTree(root) }
        let dir = Path.join(root, "snap")
        _ = try SnapshotFileTests.write(dir)
        let state = Path.join(dir, "state"), memory = Path.join(dir, "memory")
        switch damage {
        case "state byte":
            var b = try FS.readFile(state)
            b[b.count - 3] ^= 1
            try FS.writeFile(state, b, mode: 0o600)
        case "state truncated":
            #expect(truncate(state, 30) == 0)
        case "memory byte":
            let fd = open(memory, O_WRONLY)
            var x: UInt8 = 0x5b
            #expect(pwrite(fd, &x, 1, 8192 + 7) == 1)
            close(fd)
        case "memory truncated":
            #expect(truncate(memory, 4096) == 0)
        default:
            try FS.writeFile(state, Array("hello".utf8), mode: 0o600)
        }
        do {
            _ = try SnapshotFile.open(dir, key: "k1")
            Issue.record("damage '\(damage)' was not detected")
        } catch let e as SwvmError {
            #expect(e.message.hasPrefix("snapshot \(dir)"), "\(e.message)")
        }
    }

    @Test func stateReaderRefusesShortAndOversizedFields() throws {
        var w = StateWriter()
        w.u32(7)
        w.data([1, 2, 3])
        var r = StateReader(w.bytes, source: "test")
        #expect(try r.u32() == 7)
        #expect(try r.data() == [1, 2, 3])
        #expect(r.atEnd)
        #expect(throws: SwvmError.self) { _ = try r.u8() }
        var big = StateReader(le32(UInt32.max) + [0], source: "test")
        #expect(throws: SwvmError.self) { _ = try big.data() }
        var wrongSize = StateReader(le32(3) + [1, 2, 3], source: "test")
        #expect(throws: SwvmError.self) { _ = try wrongSize.raw(UInt64.self, initial: 0) }
    }
}
