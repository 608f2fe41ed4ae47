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

    /// Opens a file of an untrusted tree (an image root, an image layout, a
    /// bundle) that swvm itself reads on the host, as root. Only a regular
    /// file of at most `limit` bytes is ever opened for reading: the path is
    /// first opened O_PATH (which never calls a device's open, so a FIFO
    /// cannot block and /dev/watchdog or /dev/kmsg are not touched) inside
    /// the root with O_NOFOLLOW, checked with fstat, and only then reopened
    /// through /proc/self/fd with O_NONBLOCK and O_NOCTTY; the reopened file
    /// is the same inode and is checked again. `name` says what the file is
    /// in error messages ("the image's /etc/passwd").
    public static func openRegularFile(rootFD: Int32, _ path: String, limit: Int64, name: String) throws -> (FileDescriptor, Glibc.stat) {
        let pathFD: FileDescriptor
        do {
            pathFD = try open(rootFD: rootFD, path, flags: sys_O_PATH | O_NOFOLLOW)
        } catch let e as SwvmError where e.code == .notFound {
            throw SwvmError(.notFound, "\(name): no such file or directory")
        } catch let e as SwvmError {
            throw SwvmError(e.code, "\(name): \(e.message)")
        }
        let first = try checkRegular(pathFD.raw, limit: limit, name: name)
        let fd = Glibc.open("/proc/self/fd/\(pathFD.raw)", O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
        guard fd >= 0 else { throw SwvmError.errno("open \(name)") }
        let file = FileDescriptor(fd)
        let st = try checkRegular(fd, limit: limit, name: name)
        guard st.st_ino == first.st_ino, st.st_dev == first.st_dev else {
            throw SwvmError(.invalidImage, "\(name) changed while swvm opened it")
        }
        return (file, st)
    }

    /// Reads a regular file of an untrusted tree (see openRegularFile), or
    /// nil if it is absent.
    public static func readRegularFile(rootFD: Int32, _ path: String, limit: Int64, name: String) throws -> [UInt8]? {
        let file: FileDescriptor, st: Glibc.stat
        do {
            (file, st) = try openRegularFile(rootFD: rootFD, path, limit: limit, name: name)
        } catch let e as SwvmError where e.code == .notFound {
            return nil
        }
        // The size fstat saw, +1: a file that grew since is read on to the
        // bound (+1, so one that grew past it is still refused).
        var bytes = try file.read(upTo: Int(st.st_size) + 1)
        if bytes.count > Int(st.st_size) { bytes += try file.read(upTo: Int(limit) + 1 - bytes.count) }
        guard bytes.count <= Int(limit) else { throw tooLarge(name, limit) }
        return bytes
    }

    /// As readRegularFile, with the root given by its path.
    public static func readRegularFile(root: String, _ path: String, limit: Int64, name: String) throws -> [UInt8]? {
        let rootFD = try FileDescriptor.open(root, sys_O_PATH | O_DIRECTORY)
        return try readRegularFile(rootFD: rootFD.raw, path, limit: limit, name: name)
    }

    private static func checkRegular(_ fd: Int32, limit: Int64, name: String) throws -> Glibc.stat {
        var st = Glibc.stat()
        guard fstat(fd, &st) == 0 else { throw SwvmError.errno("fstat \(name)") }
        let type = st.st_mode & S_IFMT
        guard type == S_IFREG else {
            throw SwvmError(.invalidImage, "\(name) is \(fileTypeName(type)), not a regular file (refused: swvm reads only regular files from an image)")
        }
        guard Int64(st.st_size) <= limit else { throw tooLarge(name, limit) }
        return st
    }

    private static func tooLarge(_ name: String, _ limit: Int64) -> SwvmError {
        SwvmError(.invalidImage, "\(name) is larger than swvm's bound of \(limit) bytes for it")
    }

    /// "a FIFO", "a character device", ... for messages.
    public static func fileTypeName(_ type: mode_t) -> String {
        switch type {
        case S_IFREG: return "a regular file"
        case S_IFDIR: return "a directory"
        case S_IFLNK: return "a symbolic link"
        case S_IFIFO: return "a FIFO"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        default: return "a file of unknown type"
        }
    }
}
