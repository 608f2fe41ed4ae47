#if canImport(Glibc)
import Glibc
#endif

/// The one convention for items of swvm's caches (unpacked images, ext4
/// disks, compiled seccomp filters, VM snapshots): each item is a directory
/// or a file, and whoever uses it holds a shared flock on the item itself
/// (an fd opened O_RDONLY on it) for as long as it uses it. `swvm cache rm`
/// and `prune` take the lock exclusively without waiting and leave an item
/// in use alone. Taking the shared lock also stamps the item's mtime: that
/// is its "last use".
public final class CacheItemLock {
    public let path: String
    private let fd: Int32

    private init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    deinit { close(fd) }

    /// For a user of the item: waits while it is being removed. nil when
    /// the item does not exist, or was removed meanwhile (the caller makes
    /// it again).
    public static func shared(_ path: String) throws -> CacheItemLock? {
        guard let lock = try open(path, LOCK_SH) else { return nil }
        futimens(lock.fd, nil)
        return lock
    }

    /// For removing the item: nil when a running swvm uses it.
    public static func exclusive(_ path: String) throws -> CacheItemLock? {
        try open(path, LOCK_EX | LOCK_NB)
    }

    private static func open(_ path: String, _ operation: Int32) throws -> CacheItemLock? {
        let fd = Glibc.open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw SwvmError.errno("open cache item \(path)")
        }
        let lock = CacheItemLock(path: path, fd: fd)
        while flock(fd, operation) != 0 {
            if errno == EINTR { continue }
            if errno == EWOULDBLOCK { return nil }
            throw SwvmError.errno("lock cache item \(path)")
        }
        // Still the item at `path`: not removed, nor replaced, while waiting.
        var held = stat(), current = stat()
        guard fstat(fd, &held) == 0, lstat(path, &current) == 0,
              held.st_dev == current.st_dev, held.st_ino == current.st_ino else { return nil }
        return lock
    }
}
