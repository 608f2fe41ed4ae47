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
