#if canImport(Glibc)
import Glibc
#endif

/// What the host has, for checking what a run asks for.
public enum HostResources {
    /// CPUs online now (sysconf(_SC_NPROCESSORS_ONLN)).
    public static var onlineCPUs: Int { max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))) }

    /// MemTotal from /proc/meminfo, in bytes.
    public static var memTotal: UInt64? {
        guard let text = try? FS.readText("/proc/meminfo", limit: 1 << 16) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("MemTotal:") {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            if f.count >= 2, let kib = UInt64(f[1]) { return kib * 1024 }
        }
        return nil
    }
}
