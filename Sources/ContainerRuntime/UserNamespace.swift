#if canImport(Glibc)
import Glibc
#endif
import RuntimeSpec
import SwvmBase

/// --userns: the container's root is an unprivileged id range on the host.
enum UserNamespace {
    static func writeMappings(pid: pid_t, _ m: UserNamespaceMapping) throws {
        try FS.writeControl("/proc/\(pid)/uid_map", "0 \(m.hostUID) \(m.size)\n")
        try FS.writeControl("/proc/\(pid)/gid_map", "0 \(m.hostGID) \(m.size)\n")
    }
}
