#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import SwvmBase

extension NinePServer {
    /// Gives what the guest just made its owner and (but for symlinks) its
    /// exact mode: the guest kernel applied its umask, the host's must not
    /// apply again.
    ///
    /// mkdirat, mknodat and symlinkat return no descriptor, so the entry is
    /// reopened by name (never followed: O_PATH|O_NOFOLLOW, beneath `dir`),
    /// and a host user writing in the share may have swapped the name in
    /// between. The chown and chmod go to the reopened descriptor only if it
    /// is what was just made (`isJustCreated`); otherwise the name is left
    /// alone (EEXIST). Nothing else can pass: a host user cannot make an
    /// entry owned by the server's user, and a hard link to a file outside
    /// the share has more than one link. What remains, one of the server
    /// user's own entries moved in from a directory the racer may write, is
    /// then in the share, where the guest could change it through Tsetattr.
    func created(_ dir: Fid, _ name: [CChar], kind: mode_t, gid: UInt32, mode: mode_t? = nil) throws {
        afterCreate?(dir.fd, name)
        let fd = try openBeneath(dir.fd, name)
        defer { close(fd) }
        var st = Glibc.stat()
        guard fstat(fd, &st) == 0 else { throw Failure(errno: errno) }
        guard NinePServer.isJustCreated(st, kind: kind, by: ownUID) else { throw Failure(errno: EEXIST) }
        guard fchownat(fd, "", dir.uid, gid, sys_AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 else {
            throw Failure(errno: errno)
        }
        if let mode, fchmodat(procFD, procName(fd), mode, 0) != 0 { throw Failure(errno: errno) }
        writer.qid(try qid(Fid(share: dir.share, fd: fd, uid: dir.uid)))
    }

    /// A fresh entry as mkdirat, mknodat or symlinkat leave it: of `kind`,
    /// owned by `owner` (the creator), with one link (a new directory two,
    /// or one on file systems such as btrfs).
    static func isJustCreated(_ st: Glibc.stat, kind: mode_t, by owner: uid_t) -> Bool {
        let links: ClosedRange<UInt> = kind == Mode.ifdir ? 1...2 : 1...1
        return st.st_mode & Mode.ifmt == kind && st.st_uid == owner && links.contains(UInt(st.st_nlink))
    }

    func mkdir(_ r: inout NinePReader) throws {
        let dir = try fid(&r, "dfid")
        let name = try NinePServer.checkedName(try r.string("name"))
        let mode = NinePServer.hostMode(try r.u32("mode"), isDirectory: true)
        let gid = try r.u32("gid")
        _ = try writableShare(dir)
        guard mkdirat(dir.fd, name, mode) == 0 else { throw Failure(errno: errno) }
        try created(dir, name, kind: Mode.ifdir, gid: gid, mode: mode)
    }

    func symlink(_ r: inout NinePReader) throws {
        let dir = try fid(&r)
        let name = try NinePServer.checkedName(try r.string("name"))
        let target = try r.string("symtgt")
        let gid = try r.u32("gid")
        _ = try writableShare(dir)
        // The target is stored as given and never followed on the host.
        guard !target.isEmpty, target.count < 4096, !target.contains(0) else { throw Failure(errno: EINVAL) }
        guard symlinkat(target.map { CChar(bitPattern: $0) } + [0], dir.fd, name) == 0 else { throw Failure(errno: errno) }
        try created(dir, name, kind: Mode.iflnk, gid: gid)
    }

    func mknod(_ r: inout NinePReader) throws {
        let dir = try fid(&r, "dfid")
        let name = try NinePServer.checkedName(try r.string("name"))
        let mode = try r.u32("mode")
        _ = try r.u32("major"); _ = try r.u32("minor")
        let gid = try r.u32("gid")
        _ = try writableShare(dir)
        // FIFOs, sockets and plain files only: no device node on the host.
        let kind = mode_t(mode) & Mode.ifmt
        guard kind == Mode.ififo || kind == Mode.ifsock || kind == Mode.ifreg else { throw Failure(errno: EPERM) }
        let perms = NinePServer.hostMode(mode, isDirectory: false)
        guard mknodat(dir.fd, name, kind | perms, 0) == 0 else { throw Failure(errno: errno) }
        try created(dir, name, kind: kind, gid: gid, mode: perms)
    }

    func readlink(_ r: inout NinePReader) throws {
        let f = try fid(&r)
        guard f.share != nil else { throw Failure(errno: EINVAL) }
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = buf.withUnsafeMutableBytes { readlinkat(f.fd, "", $0.baseAddress!.assumingMemoryBound(to: CChar.self), 4096) }
        guard n >= 0 else { throw Failure(errno: errno) }
        writer.string(Array(buf[0..<n]))
    }

    func sameShare(_ a: Fid, _ b: Fid) throws {
        guard a.share == b.share else { throw Failure(errno: EXDEV) }
    }

    func link(_ r: inout NinePReader) throws {
        let dir = try fid(&r, "dfid")
        let target = try fid(&r)
        let name = try NinePServer.checkedName(try r.string("name"))
        _ = try writableShare(dir)
        try sameShare(dir, target)
        guard try attributes(target).st_mode & Mode.ifmt != Mode.ifdir else { throw Failure(errno: EPERM) }
        guard linkat(target.fd, "", dir.fd, name, sys_AT_EMPTY_PATH) == 0 else { throw Failure(errno: errno) }
    }

    func renameat(_ r: inout NinePReader) throws {
        let from = try fid(&r, "olddirfid")
        let oldName = try NinePServer.checkedName(try r.string("oldname"))
        let to = try fid(&r, "newdirfid")
        let newName = try NinePServer.checkedName(try r.string("newname"))
        _ = try writableShare(from)
        try sameShare(from, to)
        guard Glibc.renameat(from.fd, oldName, to.fd, newName) == 0 else { throw Failure(errno: errno) }
    }

    func unlinkat(_ r: inout NinePReader) throws {
        let dir = try fid(&r, "dirfd")
        let name = try NinePServer.checkedName(try r.string("name"))
        let flags = try r.u32("flags")
        _ = try writableShare(dir)
        guard flags & ~UInt32(AT_REMOVEDIR) == 0 else { throw Failure(errno: EINVAL) }
        guard Glibc.unlinkat(dir.fd, name, Int32(flags)) == 0 else { throw Failure(errno: errno) }
    }

    func statfs(_ r: inout NinePReader) throws {
        let f = try fid(&r)
        var s = CSyscalls.statfs()
        let fd = f.share == nil ? (roots.first?.fd ?? procFD) : f.fd
        guard fstatfs(fd, &s) == 0 else { throw Failure(errno: errno) }
        writer.u32(UInt32(truncatingIfNeeded: s.f_type))
        writer.u32(UInt32(truncatingIfNeeded: s.f_bsize))
        for v in [s.f_blocks, s.f_bfree, s.f_bavail, s.f_files, s.f_ffree] { writer.u64(UInt64(v)) }
        writer.u64(UInt64(UInt32(bitPattern: s.f_fsid.__val.0)) | UInt64(UInt32(bitPattern: s.f_fsid.__val.1)) << 32)
        writer.u32(UInt32(truncatingIfNeeded: s.f_namelen))
    }
}
