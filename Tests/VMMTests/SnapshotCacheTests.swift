#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import SnapshotCache
import SwvmBase

/// The snapshot cache's writer (the format is SnapshotFileTests').
@Suite struct SnapshotCacheTests {
    /// A writer publishes once. A run whose snapshot was removed after it
    /// published (`swvm cache rm`), or that is past its snapshot point,
    /// cannot publish again: that would save a VM running a workload.
    @Test func aWriterPublishesOnce() throws {
        let root = SnapshotFileTests.tempDir()
        defer { try? FS.removeTree(root) }
        let r = SnapshotFileTests.regions()
        let regions = [(UnsafeRawPointer(r[0]), 1 << 20), (UnsafeRawPointer(r[1]), 256 << 10)]
        let writer = try #require(SnapshotCache.Writer(key: "k1", root: root))
        try writer.publish(state: [1], regions: regions)
        #expect(FS.exists(Path.join(root, "k1/state")))
        try FS.removeTree(Path.join(root, "k1"))
        #expect(throws: SwvmError.self) { try writer.publish(state: [2], regions: regions) }
        #expect(!FS.exists(Path.join(root, "k1")))
        // Released at the snapshot point without publishing: refuses too.
        let unused = try #require(SnapshotCache.Writer(key: "k2", root: root))
        unused.release()
        #expect(throws: SwvmError.self) { try unused.publish(state: [3], regions: regions) }
        #expect(try FS.listDirectory(root).isEmpty)
    }
}
