#if canImport(Glibc)
import Glibc
#endif
import CSyscalls

/// Opens paths inside a root directory the way the container will see
/// them: symlinks (absolute or relative) resolve inside the root, and `..`
/// cannot climb out of it (openat2 with RESOLVE_IN_ROOT).
public enum RootedPath {
    static let resolveInRoot: UInt64 = 0x10       // RESOLVE_IN_ROOT
    static let resolveNoMagicLinks: UInt64 = 0x02 // RESOLVE_NO_MAGICLINKS

    public static func open(root: String, _ path: String, flags: Int32 = O_RDONLY) throws -> FileDescriptor {
        let rootFD = try sys("open \(root)") { Glibc.open(root, sys_O_PATH | O_DIRECTORY | O_CLOEXEC) }
        defer { close(rootFD) }
        return try open(rootFD: rootFD, path, flags: flags)
    }

    public static func open(rootFD: Int32, _ path: String, flags: Int32 = O_RDONLY, mode: mode_t = 0) throws -> FileDescriptor {
        let rel = path.hasPrefix("/") ? String(path.drop(while: { $0 == "/" })) : path
        let fd = sys_openat2(rootFD, rel.isEmpty ? "." : rel, UInt64(flags | O_CLOEXEC), UInt64(mode),
                             resolveInRoot | resolveNoMagicLinks)
        guard fd >= 0 else {
            let e = errno
            if e == ENOENT { throw SwvmError(.notFound, "\(path): no such file or directory") }
            throw SwvmError.errno("open \(path)", e)
        }
        return FileDescriptor(fd)
    }

    /// Reads a small file inside the root, or nil if it is absent.
    public static func readFile(root: String, _ path: String, limit: Int = 1 << 20) throws -> [UInt8]? {
        do {
            return try open(root: root, path).readAll(limit: limit)
        } catch let e as SwvmError where e.code == .notFound {
            return nil
        }
    }
}
