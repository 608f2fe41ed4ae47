#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import SwvmBase

extension NinePServer {
    func attributes(_ f: Fid) throws -> Glibc.stat {
        var st = Glibc.stat()
        guard fstatat(f.fd, "", &st, sys_AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 else { throw Failure(errno: errno) }
        return st
    }

    /// The qid path: the inode number. Inode numbers repeat across file
    /// systems, so a file on another one than its share's root gets its
    /// device mixed into the high bits. (Not always: with the high bits set
    /// on every qid, the guest kernel's inode cache lookups slowed as files
    /// accumulated, 121 -> 166 ms per file created at 1,000 files here.)
    static func qidPath(ino: UInt64, dev: UInt64, rootDev: UInt64) -> UInt64 {
        dev == rootDev ? ino : ino ^ (dev << 48)
    }

    func qid(_ st: Glibc.stat, share: Int) -> NinePQid {
        let kind = st.st_mode & Mode.ifmt
        let type = kind == Mode.ifdir ? NineP.qtDir : kind == Mode.iflnk ? NineP.qtSymlink : NineP.qtFile
        return NinePQid(type: type, version: 0,
                        path: NinePServer.qidPath(ino: UInt64(st.st_ino), dev: UInt64(st.st_dev), rootDev: roots[share].dev))
    }

    func qid(_ f: Fid) throws -> NinePQid {
        guard let share = f.share else { return NinePServer.rootQid }
        return qid(try attributes(f), share: share)
    }

    func getattr(_ r: inout NinePReader) throws {
        let f = try fid(&r)
        _ = try r.u64("request_mask")
        writer.u64(0x7ff)   // P9_STATS_BASIC
        guard let share = f.share else {
            writer.qid(NinePServer.rootQid)
            writer.u32(UInt32(Mode.ifdir) | 0o555)
            writer.u32(0); writer.u32(0)                       // uid, gid
            writer.u64(UInt64(2 + roots.count))                // nlink
            for _ in 0..<4 { writer.u64(0) }                    // rdev, size, blksize, blocks
            for _ in 0..<10 { writer.u64(0) }                   // times, btime, gen, data_version
            return
        }
        let st = try attributes(f)
        writer.qid(qid(st, share: share))
        writer.u32(st.st_mode)
        writer.u32(st.st_uid)
        writer.u32(st.st_gid)
        writer.u64(UInt64(st.st_nlink))
        writer.u64(UInt64(st.st_rdev))
        writer.u64(UInt64(st.st_size))
        writer.u64(UInt64(st.st_blksize))
        writer.u64(UInt64(st.st_blocks))
        for t in [st.st_atim, st.st_mtim, st.st_ctim] {
            writer.u64(UInt64(bitPattern: Int64(t.tv_sec)))
            writer.u64(UInt64(t.tv_nsec))
        }
        for _ in 0..<4 { writer.u64(0) }                        // btime, gen, data_version
    }

    /// The share `f` lies in, writable, or EROFS (the synthetic root is read-only).
    func writableShare(_ f: Fid) throws -> Int {
        guard let s = f.share, !roots[s].readOnly else { throw Failure(errno: EROFS) }
        return s
    }

    /// The name of `fd` in /proc/self/fd (see the type's comment).
    func procName(_ fd: Int32) -> [CChar] { Array(String(fd).utf8CString) }

    func setattr(_ r: inout NinePReader) throws {
        let f = try fid(&r)
        let valid = try r.u32("valid")
        let mode = try r.u32("mode"), uid = try r.u32("uid"), gid = try r.u32("gid")
        let size = try r.u64("size")
        let atime = (try r.u64("atime_sec"), try r.u64("atime_nsec"))
        let mtime = (try r.u64("mtime_sec"), try r.u64("mtime_nsec"))
        _ = try writableShare(f)
        let st = try attributes(f)
        let isLink = st.st_mode & Mode.ifmt == Mode.iflnk
        if valid & 0x1 != 0 && !isLink {
            let m = NinePServer.hostMode(mode, isDirectory: st.st_mode & Mode.ifmt == Mode.ifdir)
            guard fchmodat(procFD, procName(f.fd), m, 0) == 0 else { throw Failure(errno: errno) }
        }
        if valid & 0x6 != 0 {
            let u = valid & 0x2 != 0 ? uid : UInt32.max, g = valid & 0x4 != 0 ? gid : UInt32.max
            guard fchownat(f.fd, "", u, g, sys_AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 else { throw Failure(errno: errno) }
        }
        if valid & 0x8 != 0 {
            guard st.st_mode & Mode.ifmt == Mode.ifreg else { throw Failure(errno: EINVAL) }
            guard size <= UInt64(Int64.max) else { throw Failure(errno: EFBIG) }
            let fd = openat(procFD, procName(f.fd), O_WRONLY | O_CLOEXEC | O_NONBLOCK)
            guard fd >= 0 else { throw Failure(errno: errno) }
            defer { close(fd) }
            guard ftruncate(fd, off_t(size)) == 0 else { throw Failure(errno: errno) }
        }
        if valid & 0x30 != 0 && !isLink {
            func spec(_ set: Bool, _ explicit: Bool, _ t: (UInt64, UInt64)) -> timespec {
                guard set else { return timespec(tv_sec: 0, tv_nsec: sys_UTIME_OMIT) }
                guard explicit else { return timespec(tv_sec: 0, tv_nsec: sys_UTIME_NOW) }
                return timespec(tv_sec: Int(Int64(bitPattern: t.0)), tv_nsec: Int(min(t.1, 999_999_999)))
            }
            var times = [spec(valid & 0x10 != 0, valid & 0x80 != 0, atime), spec(valid & 0x20 != 0, valid & 0x100 != 0, mtime)]
            guard utimensat(procFD, procName(f.fd), &times, 0) == 0 else { throw Failure(errno: errno) }
        }
    }

    /// A mode the guest asked for, as the host gets it: permission bits and
    /// the sticky bit; set-group-ID only on directories (group
    /// inheritance), set-user-ID never.
    static func hostMode(_ mode: UInt32, isDirectory: Bool) -> mode_t {
        mode_t(mode & (isDirectory ? 0o3777 : 0o1777))
    }
}
