#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import SwvmBase

/// Linux capabilities by name, and the set Docker grants by default.
public enum Capabilities {
    public static let names: [String] = [
        "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
        "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
        "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
        "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
        "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
        "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
    ]

    /// Docker's and Podman's default capability set.
    public static let dockerDefault: Set<String> = [
        "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
        "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
    ]

    /// The highest capability number this kernel knows.
    public static var lastCapability: Int {
        if let t = try? FS.readText("/proc/sys/kernel/cap_last_cap"), let n = Int(t.trimmingCharacters(in: " ")) {
            return min(n, names.count - 1)
        }
        return names.count - 1
    }

    /// "net_admin", "CAP_NET_ADMIN" -> "NET_ADMIN"; "ALL" stays "ALL".
    public static func canonical(_ name: String) throws -> String {
        var n = name.uppercased()
        if n.hasPrefix("CAP_") { n = String(n.dropFirst(4)) }
        guard n == "ALL" || names.contains(n) else {
            throw SwvmError(.invalidArgument, "unknown capability '\(name)'")
        }
        return n
    }

    public static func number(_ name: String) -> Int? { names.firstIndex(of: name) }

    public static func mask(_ set: Set<String>) -> UInt64 {
        set.reduce(UInt64(0)) { m, n in number(n).map { m | (1 << UInt64($0)) } ?? m }
    }

    public static func names(inMask mask: UInt64) -> [String] {
        names.enumerated().filter { mask & (1 << UInt64($0.offset)) != 0 }.map(\.element)
    }
}
