#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import RuntimeSpec
import SwvmBase

/// --userns: the container's root is an unprivileged id range on the host.
enum UserNamespace {
    static func writeMappings(pid: pid_t, _ m: UserNamespaceMapping) throws {
        try FS.writeControl("/proc/\(pid)/uid_map", "0 \(m.hostUID) \(m.size)\n")
        try FS.writeControl("/proc/\(pid)/gid_map", "0 \(m.hostGID) \(m.size)\n")
    }

    /// A detached, read-only, id-mapped copy of `path` for the user
    /// namespace of `pid` (the image's root-owned files appear owned by the
    /// container's root, and the cached image stays as it is).
    static func idmappedTree(_ path: String, pid: pid_t) throws -> Int32 {
        let ns = try FileDescriptor.open("/proc/\(pid)/ns/user", O_RDONLY)
        let fd = sys_idmapped_tree(path, ns.raw)
        guard fd >= 0 else {
            throw SwvmError(.unsupported, "--userns: cannot make an id-mapped mount of \(path): \(errnoText(errno)) (needs Linux 5.12+ and a filesystem that supports id mapping)")
        }
        return fd
    }
}
