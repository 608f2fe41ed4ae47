#if canImport(Glibc)
import Glibc
#endif
import CSyscalls

/// Where swvm keeps things on the host.
public enum SwvmPaths {
    /// Unpacked images and their ext4 disks (SWVM_ROOT, default /var/lib/swvm).
    public static var stateRoot: String { FS.environment("SWVM_ROOT").flatMap { $0.isEmpty ? nil : $0 } ?? "/var/lib/swvm" }
    /// Per-run state that must not outlive a boot (SWVM_RUN, default /run/swvm).
    public static var runRoot: String { FS.environment("SWVM_RUN").flatMap { $0.isEmpty ? nil : $0 } ?? "/run/swvm" }
    /// Build outputs such as the guest kernel (SWVM_CACHE, default /var/cache/swvm).
    public static var cacheRoot: String { FS.environment("SWVM_CACHE").flatMap { $0.isEmpty ? nil : $0 } ?? "/var/cache/swvm" }

    /// The caches `swvm cache` lists (CacheStore's table of kinds).
    public static var imagesDir: String { Path.join(stateRoot, "images") }
    public static var disksDir: String { Path.join(stateRoot, "disks") }
    public static var seccompDir: String { Path.join(cacheRoot, "seccomp") }
    public static var snapshotsDir: String { Path.join(cacheRoot, "snapshots") }
    /// Image templates: VM snapshots taken at guest-init's template point.
    public static var templatesDir: String { Path.join(cacheRoot, "templates") }
}

/// Whether a process with this host pid exists (for stale-state cleanup).
/// Asked of the host's /proc, not with kill(pid, 0): a VMM is PID 1 of a
/// pid namespace of its own and still sweeps stale runs before its jail,
/// and there kill() finds no host pid, so every live run looked stale and
/// was cleaned up (its links deleted, its cgroups killed). Without a
/// readable /proc the answer is "exists": never clean up on a guess.
public func processExists(_ pid: pid_t) -> Bool {
    processAlive(pid, startTime: nil)
}

/// Whether the process `pid` started at `startTime` (clock ticks, field 22
/// of /proc/PID/stat; nil or 0: any) still runs. Without a readable /proc
/// the answer is yes, as processExists's.
public func processAlive(_ pid: pid_t, startTime: UInt64?) -> Bool {
    guard pid > 0 else { return false }
    var st = stat()
    guard stat("/proc/self", &st) == 0 else { return true }
    guard stat("/proc/\(pid)", &st) == 0 else { return false }
    guard let start = startTime, start != 0 else { return true }
    return processStartTime(pid) == start
}

/// A process's start time in clock ticks since boot (field 22 of
/// /proc/PID/stat), to tell a live swvm from a recycled pid.
public func processStartTime(_ pid: pid_t) -> UInt64? {
    guard let stat = try? FS.readText("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 19 else { return nil }
    return UInt64(fields[19])
}

/// A random lower-case hex string (container ids, temp names).
public func randomHex(_ bytes: Int) -> String {
    var buf = [UInt8](repeating: 0, count: bytes)
    var got = 0
    while got < bytes {
        let n = buf.withUnsafeMutableBytes { getrandom($0.baseAddress! + got, bytes - got, 0) }
        if n <= 0 { break }
        got += n
    }
    return hex(buf)
}

/// An exclusive advisory lock on a file, held until released or the
/// process dies (so a SIGKILL never leaves it held).
public final class FileLock {
    private let fd: Int32

    public init(path: String) throws {
        fd = try sys("open lock \(path)") { open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600) }
        while flock(fd, LOCK_EX) != 0 {
            if errno == EINTR { continue }
            let e = errno
            close(fd)
            throw SwvmError.errno("lock \(path)", e)
        }
    }

    deinit { close(fd) }
}
