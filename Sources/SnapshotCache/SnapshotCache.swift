#if canImport(Glibc)
import Glibc
#endif
import NativeThreads
import Snapshot
import SwvmBase

/// Where snapshots live and how runs share them:
///
///     ${SWVM_CACHE:-/var/cache/swvm}/snapshots/<key>/        state, memory
///     ${SWVM_CACHE:-/var/cache/swvm}/snapshots/<key>.lock    held while one run writes it
///
/// A run that restores holds the snapshot's CacheItemLock (shared) for as
/// long as the VM lives, so `swvm cache rm` and `prune` leave it alone. A run that finds no snapshot
/// takes the `.lock` file without waiting; if another run holds it, that
/// run is writing the snapshot, and this one boots cold without writing.
/// The writer builds the snapshot in a temporary directory and renames it
/// into place, so a reader sees a whole snapshot or none.
public enum SnapshotCache {
    public static var root: String { SwvmPaths.snapshotsDir }

    public static func directory(for key: String, root: String = SnapshotCache.root) -> String { Path.join(root, key) }

    /// The cache key: a SHA-256 over everything a snapshot depends on.
    public static func key(_ parts: [String]) -> String {
        var h = SHA256()
        for p in parts { h.update(Array((p + "\u{0}").utf8)) }
        return h.finalizeHex()
    }

    /// Opens the snapshot for `key` if there is a valid one, holding it in
    /// use. A damaged or mismatched one is removed (when nobody else uses
    /// it) and reported through `onInvalid`.
    /// (`root`: boot snapshots', or image templates' directory.)
    public static func lookup(key: String, root: String = SnapshotCache.root,
                              onInvalid: (SwvmError) -> Void) -> (SnapshotFile, CacheItemLock)? {
        let dir = directory(for: key, root: root)
        switch openHeld(dir, key: key) {
        case .valid(let snapshot, let lock): return (snapshot, lock)
        case .invalid(let e):
            onInvalid(e)
            remove(dir)   // our shared hold ended with openHeld
            return nil
        case .absent: return nil
        }
    }

    enum Lookup {
        case valid(SnapshotFile, CacheItemLock), invalid(SwvmError), absent
    }

    private static func openHeld(_ dir: String, key: String) -> Lookup {
        guard let lock = try? CacheItemLock.shared(dir) else { return .absent }
        do {
            return .valid(try SnapshotFile.open(dir, key: key), lock)
        } catch let e as SwvmError {
            return .invalid(e)
        } catch {
            return .invalid(SwvmError(.internalError, "snapshot \(dir): \(error)"))
        }
    }

    /// Removes a snapshot unless another run uses it.
    public static func remove(_ dir: String) {
        guard let lock = try? CacheItemLock.exclusive(dir) else { return }
        try? FS.removeTree(dir)
        _ = lock
    }

    /// The right to write the snapshot for `key`, or nil when another run
    /// is writing it now.
    /// Sendable: the main thread publishes while the run's thread may release.
    public final class Writer: Sendable {
        let lockFD: Int32
        public let key: String
        /// Where snapshots go (SnapshotCache.root, templates', or a test's directory).
        public let root: String

        init?(key: String, root: String = SnapshotCache.root) {
            self.key = key
            self.root = root
            try? FS.makeDirectories(root, mode: 0o700)
            guard let fd = Writer.lock(Path.join(root, key + ".lock")) else { return nil }
            lockFD = fd
        }

        /// The key's lock file, created and held, or nil when another run
        /// holds it. A lock on a file that is no longer at `path` guards
        /// nothing: a stale-lock sweep (removeStaleTemporaries) or a
        /// writer's release may unlink it between this open and flock, and
        /// then a second run creates a new one and both write. So the held
        /// file must still be the one at `path`; else try again.
        static func lock(_ path: String) -> Int32? {
            for _ in 0..<8 {
                let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
                guard fd >= 0 else { return nil }
                guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { close(fd); return nil }
                var held = stat(), named = stat()
                if fstat(fd, &held) == 0, stat(path, &named) == 0, held.st_dev == named.st_dev, held.st_ino == named.st_ino {
                    return fd
                }
                close(fd)
            }
            return nil
        }

        deinit { release() }

        private let released = Locked(false)
        /// Gives up the right to write (also after publishing).
        public func release() {
            let first = released.with { r in
                defer { r = true }
                return !r
            }
            guard first else { return }
            unlink(Path.join(root, key + ".lock"))
            close(lockFD)
        }

        /// Writes the snapshot and moves it into place. Once: a writer that
        /// published, failed or was released refuses, so a VM past its
        /// snapshot point (running a workload) can never become one.
        public func publish(state: [UInt8], regions: [(UnsafeRawPointer, Int)]) throws {
            guard !released.current else {
                throw SwvmError(.internalError, "snapshot \(key): this run may write it no more (written once, or past the snapshot point)")
            }
            let tmp = Path.join(root, ".tmp-\(key.prefix(16))-\(randomHex(4))")
            do {
                try SnapshotFile.write(to: tmp, key: key, state: state, regions: regions)
                // Another run may have published one meanwhile: keep theirs,
                // which readers may already have open.
                if rename(tmp, Path.join(root, key)) != 0 { try? FS.removeTree(tmp) }
                release()
            } catch {
                try? FS.removeTree(tmp)
                release()
                throw error
            }
        }
    }

    public static func writer(for key: String, root: String = SnapshotCache.root) -> Writer? { Writer(key: key, root: root) }

    /// Removes what writers that were killed left: temporary directories
    /// and lock files nobody holds. (A live writer holds its key's lock.)
    public static func removeStaleTemporaries(root: String = SnapshotCache.root) {
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
