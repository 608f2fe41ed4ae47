#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import SwvmBase

/// Applies one layer's tar stream onto a root directory, the OCI way:
/// whiteouts (`.wh.NAME`, `.wh..wh..opq`), hard links, symlinks, FIFOs,
/// modes, ownership, mtimes and xattrs.
///
/// A layer can never write outside the root: every path is resolved one
/// component at a time from a directory fd with O_NOFOLLOW, so `..`,
/// absolute paths, links that point outside, and entries that would be
/// written through a symlink made by an earlier entry are all refused
/// with an error naming the layer and the entry.
public final class LayerUnpacker {
    private let rootFD: Int32
    private let rootPath: String
    private let layerName: String
    private var writtenThisLayer = Set<String>()
    private var directoryTimes: [(path: String, sec: Int64, nsec: Int64)] = []
    private var cachedParent: (path: String, fd: Int32)?
    public private(set) var entryCount = 0
    /// PATH_MAX, for an entry's path and a link's target.
    static let maxPathLength = 4096

    public init(rootPath: String, layerName: String) throws {
        rootFD = try sys("open \(rootPath)") { open(rootPath, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        self.rootPath = rootPath
        self.layerName = layerName
    }

    deinit {
        dropCachedParent()
        close(rootFD)
    }

    private func fail(_ entry: String, _ why: String) -> SwvmError {
        SwvmError(.unsafeLayer, "\(layerName): entry '\(entry)': \(why)")
    }

    private func dropCachedParent() {
        if let c = cachedParent { close(c.fd) }
        cachedParent = nil
    }

    // MARK: applying a layer

    public func apply(_ reader: TarReader) throws {
        while let entry = try reader.next() {
            entryCount += 1
            try applyEntry(entry, reader: reader)
        }
        try finish()
    }

    /// Directory mtimes last: creating entries inside a directory changes it.
    private func finish() throws {
        dropCachedParent()
        for d in directoryTimes.reversed() {
            let comps = Path.components(d.path)
            guard let parent = try? openParent(comps, entry: d.path, create: false) else { continue }
            var times = [timespec(tv_sec: Int(d.sec), tv_nsec: Int(d.nsec)), timespec(tv_sec: Int(d.sec), tv_nsec: Int(d.nsec))]
            utimensat(parent, comps.last ?? ".", &times, AT_SYMLINK_NOFOLLOW)
            close(parent)
        }
        directoryTimes.removeAll()
    }

    /// The entry's path as components below the root; refuses escapes.
    func components(of raw: String, entry: String) throws -> [String] {
        guard !raw.contains("\0") else { throw fail(entry, "path contains a NUL byte") }
        // No program in the container could name a longer path; walking one
        // (up to 1 MiB of "a/a/...") would cost an openat per component.
        guard raw.utf8.count <= LayerUnpacker.maxPathLength else {
            throw fail(String(entry.prefix(64)) + "...", "path longer than \(LayerUnpacker.maxPathLength) bytes")
        }
        // "/" alone names the root itself (umoci writes it); any other
        // absolute path is refused.
        guard !raw.hasPrefix("/") || raw.allSatisfy({ $0 == "/" }) else {
            throw fail(entry, "absolute path (a layer's paths are relative to its root)")
        }
        let comps = Path.components(raw)
        if comps.contains("..") { throw fail(entry, "path contains '..', which would leave the root") }
        return comps
    }

    private func applyEntry(_ e: TarEntry, reader: TarReader) throws {
        try checkFreeSpace(for: e)
        let comps = try components(of: e.path, entry: e.path)
        guard let name = comps.last else {
            // The root itself ("./"): take its metadata only.
            if e.kind == .directory {
                fchown(rootFD, e.uid, e.gid)
                fchmod(rootFD, mode_t(e.mode))
            }
            return
        }
        let path = comps.joined(separator: "/")

        // Whiteouts: delete from the layers below, create nothing.
        if name.hasPrefix(".wh.") {
            let parent = try openParent(comps, entry: e.path, create: true)
            defer { close(parent) }
            if name == ".wh..wh..opq" {
                try removeLowerChildren(of: Array(comps.dropLast()), parentFD: parent, entry: e.path)
            } else {
                let victim = String(name.dropFirst(4))
                guard !victim.isEmpty, victim != ".", victim != "..", !victim.hasPrefix(".wh.") else {
                    throw fail(e.path, "invalid whiteout")
                }
                try removeEntry(parent, victim, entry: e.path)
            }
            return
        }

        let parent = try openParent(comps, entry: e.path, create: true)
        defer { close(parent) }
        var st = stat()
        let exists = fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0
        let existingIsDir = exists && (st.st_mode & S_IFMT) == S_IFDIR

        if e.kind == .directory {
            if exists && !existingIsDir { try removeEntry(parent, name, entry: e.path) }
            if !existingIsDir {
                guard mkdirat(parent, name, 0o700) == 0 else { throw fail(e.path, "mkdir: \(errnoText(errno))") }
            }
            try setOwnerAndMode(parent, name, e)
            try setXattrs(parent, name, e)
            directoryTimes.append((path, e.mtime, e.mtimeNanos))
            writtenThisLayer.insert(path)
            return
        }

        if exists { try removeEntry(parent, name, entry: e.path) }
        switch e.kind {
        case .file:
            try writeFile(parent, name, e, reader: reader)
        case .symlink:
            try checkSymlinkTarget(e.linkName, at: comps, entry: e.path)
            guard symlinkat(e.linkName, parent, name) == 0 else { throw fail(e.path, "symlink: \(errnoText(errno))") }
            fchownat(parent, name, e.uid, e.gid, AT_SYMLINK_NOFOLLOW)
        case .hardLink:
            try makeHardLink(parent, name, e)
        case .charDevice, .blockDevice:
            // Device nodes are kept out of the cache: it is on the host's
            // file system, which is not mounted nodev, and a run gets its
            // own /dev (a tmpfs in the container, devtmpfs in the guest).
            Log.debug("\(layerName): not creating device node '\(e.path)' (device nodes are kept out of the image cache)")
            writtenThisLayer.insert(path)
            return
        case .fifo:
            guard mknodat(parent, name, S_IFIFO | mode_t(e.mode & 0o777), 0) == 0 else { throw fail(e.path, "mknod: \(errnoText(errno))") }
            try setOwnerAndMode(parent, name, e)
        case .directory:
            break
        }
        if e.kind != .hardLink { setTimes(parent, name, e) }
        writtenThisLayer.insert(path)
    }

    // MARK: free space

    /// Stops before the file system fills: an entry is written only if,
    /// after it, a twentieth of the file system (at most 512 MiB) and of its
    /// inodes (at most 4096) stay free. A file's size is known from its
    /// header before any byte is written, and it cannot write more.
    private func checkFreeSpace(for e: TarEntry) throws {
        var v = statvfs()
        guard fstatvfs(rootFD, &v) == 0 else { throw SwvmError.errno("statvfs \(rootPath)") }
        let block = Int64(v.f_frsize)
        let free = Int64(v.f_bavail) * block
        let reserve = min(512 << 20, Int64(v.f_blocks) * block / 20)
        let need = (e.kind == .file ? (e.size + block - 1) / block * block : 0) + block
        if free - need < reserve {
            throw SwvmError(.noSpace, "\(layerName): entry '\(e.path)' (\(ByteSize.format(UInt64(max(0, e.size))))) does not fit: "
                + "the file system of \(rootPath) has \(ByteSize.format(UInt64(max(0, free)))) free and swvm keeps "
                + "\(ByteSize.format(UInt64(reserve))) of it free (free some space, run `swvm cache prune`, or set SWVM_ROOT)")
        }
        let inodeReserve = min(4096, UInt64(v.f_files) / 20)
        if v.f_files > 0 && UInt64(v.f_favail) <= inodeReserve {
            throw SwvmError(.noSpace, "\(layerName): entry '\(e.path)': the file system of \(rootPath) is out of inodes "
                + "(\(v.f_favail) free, swvm keeps \(inodeReserve) free)")
        }
    }

    // MARK: safe path walking

    /// Opens the directory holding the entry, one component at a time with
    /// O_NOFOLLOW; missing directories are created (tar streams may omit
    /// them). A component that is a symlink is an error: that is how a
    /// layer would write outside its root.
    func openParent(_ comps: [String], entry: String, create: Bool) throws -> Int32 {
        let parentComps = Array(comps.dropLast())
        let key = parentComps.joined(separator: "/")
        if let c = cachedParent, c.path == key { return dup(c.fd) }
        var fd = dup(rootFD)
        for (i, c) in parentComps.enumerated() {
            var next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if next < 0 && errno == ENOENT && create {
                if mkdirat(fd, c, 0o755) != 0 && errno != EEXIST {
                    let err = errno
                    close(fd)
                    throw fail(entry, "cannot create directory '\(parentComps[0...i].joined(separator: "/"))': \(errnoText(err))")
                }
                next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
            if next < 0 {
                let err = errno
                var st = stat()
                let isLink = fstatat(fd, c, &st, AT_SYMLINK_NOFOLLOW) == 0 && (st.st_mode & S_IFMT) == S_IFLNK
                close(fd)
                let at = parentComps[0...i].joined(separator: "/")
                if isLink { throw fail(entry, "would be written through the symlink '\(at)' (refused: it could lead outside the root)") }
                if err == ENOTDIR { throw fail(entry, "'\(at)' is not a directory") }
                throw fail(entry, "cannot open '\(at)': \(errnoText(err))")
            }
            close(fd)
            fd = next
        }
        dropCachedParent()
        cachedParent = (key, dup(fd))
        return fd
    }

    /// A symlink may point anywhere inside the root: absolute targets are
    /// taken relative to the root (as in the container), relative ones
    /// relative to the link's directory; a target that climbs above the
    /// root is refused.
    func checkSymlinkTarget(_ target: String, at comps: [String], entry: String) throws {
        guard !target.isEmpty, !target.contains("\0"), target.utf8.count <= LayerUnpacker.maxPathLength else {
            throw fail(entry, "symlink with an empty, invalid or over-long target")
        }
        let base = target.hasPrefix("/") ? "" : comps.dropLast().joined(separator: "/")
        let resolved = Path.normalizeInRoot(base + "/" + target)
        if resolved.escaped { throw fail(entry, "symlink to '\(target)' points outside the root") }
    }

    private func makeHardLink(_ parent: Int32, _ name: String, _ e: TarEntry) throws {
        guard e.linkName.utf8.count <= LayerUnpacker.maxPathLength else { throw fail(e.path, "hard link target longer than \(LayerUnpacker.maxPathLength) bytes") }
        guard !e.linkName.hasPrefix("/") else { throw fail(e.path, "hard link to absolute path '\(e.linkName)' points outside the root") }
        let targetComps = Path.components(e.linkName)
        guard !targetComps.contains(".."), let targetName = targetComps.last else {
            throw fail(e.path, "hard link to '\(e.linkName)' points outside the root")
        }
        let targetParent = try openParent(targetComps, entry: e.path, create: false)
        defer { close(targetParent) }
        var st = stat()
        guard fstatat(targetParent, targetName, &st, AT_SYMLINK_NOFOLLOW) == 0 else {
            throw fail(e.path, "hard link target '\(e.linkName)' does not exist")
        }
        guard (st.st_mode & S_IFMT) != S_IFDIR else { throw fail(e.path, "hard link to a directory '\(e.linkName)'") }
        guard linkat(targetParent, targetName, parent, name, 0) == 0 else {
            throw fail(e.path, "link to '\(e.linkName)': \(errnoText(errno))")
        }
    }

    private func writeFile(_ parent: Int32, _ name: String, _ e: TarEntry, reader: TarReader) throws {
        let fd = openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw fail(e.path, "create: \(errnoText(errno))") }
        defer { close(fd) }
        let chunk = 1 << 16
        let buf = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buf.deallocate() }
        while true {
            let n = try reader.readData(into: buf, count: chunk)
            if n == 0 { break }
            try FileDescriptor.writeAll(fd, UnsafeRawBufferPointer(start: buf, count: n), name: e.path)
        }
        // chown before chmod: chown clears set-user-ID bits.
        guard fchown(fd, e.uid, e.gid) == 0 else { throw fail(e.path, "chown: \(errnoText(errno))") }
        guard fchmod(fd, mode_t(e.mode)) == 0 else { throw fail(e.path, "chmod: \(errnoText(errno))") }
        for (k, v) in e.xattrs {
            if v.withUnsafeBytes({ fsetxattr(fd, k, $0.baseAddress, $0.count, 0) }) != 0 {
                Log.debug("\(layerName): xattr \(k) on \(e.path): \(errnoText(errno))")
            }
        }
    }

    private func setOwnerAndMode(_ parent: Int32, _ name: String, _ e: TarEntry) throws {
        guard fchownat(parent, name, e.uid, e.gid, AT_SYMLINK_NOFOLLOW) == 0 else {
            throw fail(e.path, "chown: \(errnoText(errno))")
        }
        guard fchmodat(parent, name, mode_t(e.mode), 0) == 0 else { throw fail(e.path, "chmod: \(errnoText(errno))") }
    }

    private func setXattrs(_ parent: Int32, _ name: String, _ e: TarEntry) throws {
        guard !e.xattrs.isEmpty else { return }
        let fd = openat(parent, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        for (k, v) in e.xattrs {
            _ = v.withUnsafeBytes { fsetxattr(fd, k, $0.baseAddress, $0.count, 0) }
        }
    }

    private func setTimes(_ parent: Int32, _ name: String, _ e: TarEntry) {
        var times = [timespec(tv_sec: Int(e.mtime), tv_nsec: Int(e.mtimeNanos)),
                     timespec(tv_sec: Int(e.mtime), tv_nsec: Int(e.mtimeNanos))]
        utimensat(parent, name, &times, AT_SYMLINK_NOFOLLOW)
    }

    // MARK: removal

    private func removeEntry(_ parent: Int32, _ name: String, entry: String) throws {
        var st = stat()
        guard fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return }
        dropCachedParent()
        if (st.st_mode & S_IFMT) == S_IFDIR {
            let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { throw fail(entry, "cannot open '\(name)' to remove it: \(errnoText(errno))") }
            defer { close(fd) }
            try FS.removeContents(dirfd: fd, device: st.st_dev, path: name)
            guard unlinkat(parent, name, AT_REMOVEDIR) == 0 else { throw fail(entry, "rmdir '\(name)': \(errnoText(errno))") }
        } else {
            guard unlinkat(parent, name, 0) == 0 else { throw fail(entry, "unlink '\(name)': \(errnoText(errno))") }
        }
    }

    /// An opaque whiteout hides what lower layers put in the directory, but
    /// not what this layer has already written there.
    private func removeLowerChildren(of dirComps: [String], parentFD: Int32, entry: String) throws {
        let dirPath = dirComps.joined(separator: "/")
        let fd = dup(parentFD)
        guard let dir = fdopendir(fd) else { close(fd); throw fail(entry, "cannot list the directory") }
        var names: [String] = []
        while let d = readdir(dir) {
            let n = withUnsafeBytes(of: d.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if n != "." && n != ".." { names.append(n) }
        }
        closedir(dir)
        for n in names {
            let childPath = dirPath.isEmpty ? n : dirPath + "/" + n
            if writtenThisLayer.contains(childPath) { continue }
            try removeEntry(parentFD, n, entry: entry)
        }
    }
}
