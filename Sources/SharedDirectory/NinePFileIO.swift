#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import SwvmBase

extension NinePServer {
    /// Open flags the guest may pass through: the access mode, truncate,
    /// append and the sync flags. Nothing that changes how the host
    /// resolves or blocks (no O_NOFOLLOW games, no O_NONBLOCK, no sys_O_PATH).
    static func hostOpenFlags(_ flags: UInt32) -> Int32 {
        let allowed = UInt32(O_ACCMODE | O_TRUNC | O_APPEND | O_DSYNC | O_SYNC | O_DIRECTORY)
        return Int32(bitPattern: flags & allowed) | O_CLOEXEC
    }

    func lopen(_ r: inout NinePReader) throws {
        let id = try r.u32("fid")
        guard var f = fids[id] else { throw Failure(errno: EBADF) }
        let flags = NinePServer.hostOpenFlags(try r.u32("flags"))
        guard f.open < 0, !f.rootOpened else { throw Failure(errno: EBADF) }
        let writes = flags & O_ACCMODE != O_RDONLY || flags & O_TRUNC != 0
        guard let s = f.share else {
            guard !writes else { throw Failure(errno: EROFS) }
            f.rootOpened = true
            fids[id] = f
            writer.qid(NinePServer.rootQid)
            writer.u32(0)
            return
        }
        if writes && roots[s].readOnly { throw Failure(errno: EROFS) }
        let st = try attributes(f)
        switch st.st_mode & Mode.ifmt {
        case Mode.ifdir: if writes { throw Failure(errno: EISDIR) }
        case Mode.ifreg: break
        case Mode.iflnk: throw Failure(errno: ELOOP)
        // Devices, FIFOs and sockets are opened by the guest kernel itself,
        // never on the host (a FIFO would block the server).
        default: throw Failure(errno: ENXIO)
        }
        let fd = openat(procFD, procName(f.fd), flags)
        guard fd >= 0 else { throw Failure(errno: errno) }
        f.open = fd
        fids[id] = f
        writer.qid(qid(st, share: s))
        writer.u32(0)   // iounit: msize decides
    }

    func lcreate(_ r: inout NinePReader) throws {
        let id = try r.u32("fid")
        guard let dir = fids[id] else { throw Failure(errno: EBADF) }
        let name = try NinePServer.checkedName(try r.string("name"))
        let flags = NinePServer.hostOpenFlags(try r.u32("flags")) & ~O_DIRECTORY
        let mode = NinePServer.hostMode(try r.u32("mode"), isDirectory: false)
        let gid = try r.u32("gid")
        _ = try writableShare(dir)
        guard dir.open < 0 else { throw Failure(errno: EBADF) }
        let fd = try openBeneath(dir.fd, name, flags | O_CREAT | O_EXCL, mode: UInt32(mode))
        // The guest kernel applied its umask; the host's must not apply again.
        if fchmod(fd, mode) != 0 || fchown(fd, dir.uid, gid) != 0 {
            let e = errno
            close(fd)
            Glibc.unlinkat(dir.fd, name, 0)
            throw Failure(errno: e)
        }
        let pathFD = dup(fd)
        guard pathFD >= 0 else { close(fd); throw Failure(errno: errno) }
        // The fid now stands for the new, open file.
        release(dir)
        let created = Fid(share: dir.share, fd: pathFD, uid: dir.uid, open: fd)
        fids[id] = created
        writer.qid(try qid(created))
        writer.u32(0)
    }

    func openFile(_ r: inout NinePReader) throws -> Fid {
        let f = try fid(&r)
        guard f.open >= 0 else { throw Failure(errno: EBADF) }
        return f
    }

    func read(_ r: inout NinePReader, limit: Int) throws {
        let f = try openFile(&r)
        let offset = try r.u64("offset")
        let count = Int(try r.u32("count"))
        guard offset <= UInt64(Int64.max) else { throw Failure(errno: EINVAL) }
        let room = min(count, limit - NineP.headerSize - 4)
        writer.u32(0)
        let got = writer.appendFilled(upTo: max(0, room)) { p in
            var n = -1
            repeat { n = pread(f.open, p, room, off_t(offset)) } while n < 0 && errno == EINTR
            return n < 0 ? -Int(errno) : n
        }
        guard got >= 0 else { throw Failure(errno: Int32(-got)) }
        writer.patch32(at: NineP.headerSize, UInt32(got))
    }

    func write(_ r: inout NinePReader) throws {
        let f = try openFile(&r)
        let offset = try r.u64("offset")
        let count = Int(try r.u32("count"))
        let data = try r.data(count, "Twrite data")
        _ = try writableShare(f)
        guard offset <= UInt64(Int64.max) else { throw Failure(errno: EINVAL) }
        var n = -1
        repeat { n = pwrite(f.open, data.baseAddress, count, off_t(offset)) } while n < 0 && errno == EINTR
        guard n >= 0 else { throw Failure(errno: errno) }
        writer.u32(UInt32(n))
    }

    func fsync(_ r: inout NinePReader) throws {
        let f = try openFile(&r)
        let dataOnly = try r.u32("datasync") != 0
        guard (dataOnly ? fdatasync(f.open) : Glibc.fsync(f.open)) == 0 else { throw Failure(errno: errno) }
    }
}
