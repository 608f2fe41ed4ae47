#if canImport(Glibc)
import Glibc
#endif
import Snapshot
import NativeThreads
import SnapshotCache
import SwvmBase

/// The snapshot a cold boot saves, written by a jailed VMM: its directory
/// and files are made and opened before the jail (owned by root: the VMM
/// can write them through its descriptors and do nothing else there), and
/// the keeper moves the directory into the cache when the VMM has written
/// them. Once: past the snapshot point nothing is written.
public final class SnapshotOutput: Sendable {
    let writer: SnapshotCache.Writer
    let keeper: VMMKeeper
    let temporary: String
    /// The open files (memory, state) until written or given up.
    let files = Locked<(memory: FileDescriptor, state: FileDescriptor)?>(nil)
    /// Which of the run's announced snapshots this is, for the keeper.
    let index: Int

    public init(writer: SnapshotCache.Writer, keeper: VMMKeeper) throws {
        self.writer = writer
        self.keeper = keeper
        let root = writer.root
        let temporary = Path.join(root, ".tmp-\(writer.key.prefix(16))-\(randomHex(4))")
        self.temporary = temporary
        try sys("mkdir \(temporary)") { mkdir(temporary, 0o700) }
        do {
            let memory = try FileDescriptor.open(Path.join(temporary, "memory"), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode: 0o600)
            let state = try FileDescriptor.open(Path.join(temporary, "state"), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode: 0o600)
            index = try keeper.announceSnapshot(temporary: temporary, final: SnapshotCache.directory(for: writer.key, root: root),
                                                lock: Path.join(root, writer.key + ".lock"))
            files.replace((memory, state))
        } catch {
            try? FS.removeTree(temporary)
            throw error
        }
    }

    public var key: String { writer.key }
    public var root: String { writer.root }

    /// Writes the snapshot and has the keeper publish it (`base`: see
    /// SnapshotFile.write).
    public func publish(state savedState: [UInt8], regions: [(UnsafeRawPointer, Int)], base: Int32? = nil) throws {
        guard let (memory, state) = files.current else {
            throw SwvmError(.internalError, "snapshot \(writer.key): this run may write it no more (written once, or past the snapshot point)")
        }
        defer { release() }
        try SnapshotFile.write(memory: memory, state: state, in: temporary, key: writer.key, state: savedState, regions: regions,
                               base: base)
        try keeper.publishSnapshot(index)
    }

    /// Gives up writing (also after publishing): the keeper removes what
    /// was not published.
    public func release() {
        files.replace(nil)
        writer.release()
    }
}
