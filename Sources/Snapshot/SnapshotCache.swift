#if canImport(Glibc)
import Glibc
#endif
import SwvmBase

/// Where snapshots live and how runs share them:
///
///     ${SWVM_CACHE:-/var/cache/swvm}/snapshots/<key>/        state, memory
///     ${SWVM_CACHE:-/var/cache/swvm}/snapshots/<key>.lock    held while one run writes it
///
/// A run that restores holds a shared flock on the snapshot's directory
/// for as long as the VM lives (`swvm cache rm` and `prune` take it
/// exclusively and skip an item in use). A run that finds no snapshot
/// takes the `.lock` file without waiting; if another run holds it, that
/// run is writing the snapshot, and this one boots cold without writing.
/// The writer builds the snapshot in a temporary directory and renames it
/// into place, so a reader sees a whole snapshot or none.
public enum SnapshotCache {
    public static var root: String { Path.join(SwvmPaths.cacheRoot, "snapshots") }

    public static func directory(for key: String) -> String { Path.join(root, key) }

    /// The cache key: a SHA-256 over everything a snapshot depends on.
    public static func key(_ parts: [String]) -> String {
        var h = SHA256()
        for p in parts { h.update(Array((p + "\u{0}").utf8)) }
        return h.finalizeHex()
    }

    /// A shared lock on an item in use; released on deinit (or process death).
    public final class InUse {
        let fd: Int32
        init(fd: Int32) { self.fd = fd }
        deinit { close(fd) }
    }

    /// Opens the snapshot for `key` if there is a valid one, holding it in
    /// use. A damaged or mismatched one is removed (when nobody uses it)
    /// and reported through `onInvalid`.
    public static func lookup(key: String, onInvalid: (SwvmError) -> Void) -> (SnapshotFile, InUse)? {
        let dir = directory(for: key)
        let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { return nil }
        guard flock(dfd, LOCK_SH) == 0 else { close(dfd); return nil }
        let use = InUse(fd: dfd)
        do {
            return (try SnapshotFile.open(dir, key: key), use)
        } catch let e as SwvmError {
            onInvalid(e)
            // Ours was a shared hold: trade it for an exclusive one to remove.
            _ = flock(dfd, LOCK_EX | LOCK_NB) == 0 ? try? FS.removeTree(dir) : ()
            return nil
        } catch {
            return nil
        }
    }

    /// The right to write the snapshot for `key`, or nil when another run
    /// is writing it now.
    public final class Writer {
        let lockFD: Int32
        public let key: String

        init?(key: String) {
            self.key = key
            try? FS.makeDirectories(SnapshotCache.root, mode: 0o700)
            let fd = open(Path.join(SnapshotCache.root, key + ".lock"), O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { return nil }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { close(fd); return nil }
            lockFD = fd
        }

        deinit { release() }

        private var released = false
        /// Gives up the right to write (also after publishing).
        public func release() {
            guard !released else { return }
            released = true
            unlink(Path.join(SnapshotCache.root, key + ".lock"))
            close(lockFD)
        }

        /// Writes the snapshot and moves it into place.
        public func publish(state: [UInt8], regions: [(UnsafeRawPointer, Int)]) throws {
            let tmp = Path.join(SnapshotCache.root, ".tmp-\(key.prefix(16))-\(randomHex(4))")
            do {
                try SnapshotFile.write(to: tmp, key: key, state: state, regions: regions)
                // Another run may have published one meanwhile: keep theirs,
                // which readers may already have open.
                if rename(tmp, SnapshotCache.directory(for: key)) != 0 { try? FS.removeTree(tmp) }
                release()
            } catch {
                try? FS.removeTree(tmp)
                release()
                throw error
            }
        }
    }

    public static func writer(for key: String) -> Writer? { Writer(key: key) }

    /// Removes what writers that were killed left: temporary directories
    /// and lock files nobody holds. (A live writer holds its key's lock.)
    public static func removeStaleTemporaries() {
        guard let names = try? FS.listDirectory(root) else { return }
        func unheld(_ lockName: String) -> Bool {
            let fd = open(Path.join(root, lockName), O_RDWR | O_CLOEXEC)
            guard fd >= 0 else { return true }
            defer { close(fd) }
            return flock(fd, LOCK_EX | LOCK_NB) == 0
        }
        for n in names where n.hasPrefix(".tmp-") {
            let key16 = String(n.dropFirst(5).prefix(16))
            if let lockName = names.first(where: { $0.hasPrefix(key16) && $0.hasSuffix(".lock") }), !unheld(lockName) { continue }
            try? FS.removeTree(Path.join(root, n))
        }
        for n in names where n.hasSuffix(".lock") && unheld(n) { unlink(Path.join(root, n)) }
    }
}
