#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import SwvmBase

/// A host directory the guest may use: `-v HOST:CTR[:ro]` at --isolation=vm.
public struct Share: Equatable {
    public let hostPath: String
    public let readOnly: Bool
    public init(hostPath: String, readOnly: Bool) {
        self.hostPath = hostPath
        self.readOnly = readOnly
    }
}

/// A 9P2000.L file server over host directories, for virtio-9p. The
/// guest kernel is untrusted, so every request is checked here and the
/// shares hold on their own:
///
/// - The guest attaches to a synthetic, read-only root whose entries are
///   the shares, named "0", "1", ... (one mount in the guest serves every
///   volume; guest-init bind-mounts each to its target).
/// - Each fid holds an sys_O_PATH descriptor the server opened itself. A walk
///   opens one name at a time relative to its parent's descriptor with
///   openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS):
///   no symlink is ever followed on the host, and a name can never climb
///   out. Names with "/" or NUL, "." and ".." are refused everywhere.
/// - Fids the server never handed out are refused (EBADF); at most
///   `maxFids` exist at once (EMFILE), and no request or reply is larger
///   than the negotiated msize (at most `maxMessageSize`).
/// - A read-only share refuses every change here (EROFS), whatever the
///   guest's mount flags say.
/// - Files keep their host owners 1:1 (as Docker's bind mounts do): what
///   the guest creates belongs to the guest uid that attached and the gid
///   it names. Set-user-ID and set-group-ID bits on files are dropped, so a
///   guest cannot leave a set-user-ID executable on the host.
///
/// An opened fid is reopened through /proc/self/fd/N of its own sys_O_PATH
/// descriptor (as virtiofsd does): the descriptor is the server's, so this
/// resolves no name of the guest's.
public final class NinePServer {
    public static let maxMessageSize: UInt32 = 512 * 1024
    public static let minMessageSize: UInt32 = 4096
    public static let maxFids = 16384

    struct ShareRoot {
        let fd: Int32
        let readOnly: Bool
        let dev: UInt64
    }

    struct Fid {
        /// nil: the synthetic root.
        var share: Int?
        /// sys_O_PATH descriptor of the file (-1 for the synthetic root).
        var fd: Int32
        var uid: UInt32
        /// An open descriptor after Tlopen/Tlcreate (-1 before).
        var open: Int32 = -1
        var rootOpened = false
    }

    struct Failure: Error { let errno: Int32 }

    /// File types of st_mode (Glibc's S_IF* constants are ambiguous in Swift).
    enum Mode {
        static let ifmt: mode_t = 0o170000, ifdir: mode_t = 0o040000, ifreg: mode_t = 0o100000
        static let iflnk: mode_t = 0o120000, ififo: mode_t = 0o010000, ifsock: mode_t = 0o140000
    }

    private let roots: [ShareRoot]
    private let maxFids: Int
    private let procFD: Int32
    /// The owner of what this server creates (its effective uid).
    private let ownUID = geteuid()
    /// Tests only: runs between the creation of a name and its reopening
    /// (to swap the name, as a racing host user could).
    var afterCreate: ((_ dir: Int32, _ name: [CChar]) -> Void)?
    private var fids: [UInt32: Fid] = [:]
    public private(set) var msize: UInt32 = minMessageSize
    private var writer = NinePWriter(capacity: Int(maxMessageSize))
    /// Requests answered, and those refused because they broke a rule of
    /// the share (a name that climbs, an unknown fid, a change to a
    /// read-only share, a malformed request).
    public private(set) var requests = 0
    /// Requests by message type (diagnostics: SWVM_DEBUG lists them).
    public private(set) var requestsByType: [UInt8: Int] = [:]
    public private(set) var refusals = 0

    /// Opens each share's directory (before the server thread's seccomp
    /// filter, which allows no open of a path).
    public init(shares: [Share], maxFids: Int = NinePServer.maxFids) throws {
        self.maxFids = maxFids
        var roots: [ShareRoot] = []
        do {
            for s in shares {
                let fd = open(s.hostPath, sys_O_PATH | O_DIRECTORY | O_CLOEXEC)
                guard fd >= 0 else { throw SwvmError.errno("-v \(s.hostPath)") }
                var st = Glibc.stat()
                guard fstat(fd, &st) == 0 else { let e = SwvmError.errno("-v \(s.hostPath)"); close(fd); throw e }
                roots.append(ShareRoot(fd: fd, readOnly: s.readOnly, dev: UInt64(st.st_dev)))
            }
            procFD = try sys("open /proc/self/fd") { open("/proc/self/fd", sys_O_PATH | O_DIRECTORY | O_CLOEXEC) }
        } catch {
            for r in roots { close(r.fd) }
            throw error
        }
        self.roots = roots
    }

    deinit {
        closeAllFids()
        for r in roots { close(r.fd) }
        close(procFD)
    }

    public var openFids: Int { fids.count }

    /// CAP_FSETID, linux/capability.h.
    static let capFSetID: Int32 = 4

    /// Run on the server's thread before it serves: without CAP_FSETID the
    /// kernel clears set-user-ID (and group-executable set-group-ID) when
    /// the guest writes to or truncates a file, or chowns it, as it would
    /// for an unprivileged writer, so a guest cannot keep a set-user-ID
    /// file of the share set-user-ID while changing its content. Only this
    /// thread loses it (capabilities are per thread).
    public static func confineThread() throws {
        guard sys_drop_thread_capability(capFSetID) == 0 else { throw SwvmError.errno("the 9p server thread: drop CAP_FSETID") }
    }

    private func closeAllFids() {
        for (_, f) in fids { release(f) }
        fids.removeAll()
    }

    private func release(_ f: Fid) {
        if f.fd >= 0 { close(f.fd) }
        if f.open >= 0 { close(f.open) }
    }

    // MARK: one request

    /// Answers one request; the reply is at most `replyLimit` bytes (the
    /// room the driver gave). Returns nil when not even an error fits or
    /// the request has no header: the request is dropped.
    public func handle(_ request: UnsafeRawBufferPointer, replyLimit: Int) -> [UInt8]? {
        requests += 1
        guard request.count >= NineP.headerSize, replyLimit >= NineP.headerSize + 4 else {
            refusals += 1
            return nil
        }
        var r = NinePReader(request)
        let size = (try? r.u32()) ?? 0
        let type = (try? r.u8()) ?? 0
        let tag = (try? r.u16()) ?? 0
        requestsByType[type, default: 0] += 1
        let limit = min(replyLimit, Int(max(msize, NinePServer.minMessageSize)))
        do {
            guard size >= UInt32(NineP.headerSize), Int(size) <= request.count,
                  size <= NinePServer.maxMessageSize + 4096 else {
                throw NinePDecodeError(description: "size \(size) does not match the request")
            }
            var body = NinePReader(UnsafeRawBufferPointer(rebasing: request[0..<Int(size)]), offset: NineP.headerSize)
            writer.begin(type: type &+ 1, tag: tag)
            try dispatch(type, &body, limit: limit)
            writer.finish()
            if writer.bytes.count > limit { throw Failure(errno: ENOBUFS) }
            return writer.bytes
        } catch let f as Failure {
            if [EBADF, EROFS, EPERM, EXDEV, EMFILE, EINVAL, ENAMETOOLONG].contains(f.errno) { refusals += 1 }
            return errorReply(tag, f.errno)
        } catch {
            refusals += 1
            return errorReply(tag, EINVAL)
        }
    }

    private func errorReply(_ tag: UInt16, _ code: Int32) -> [UInt8] {
        writer.begin(type: NineP.rlerror, tag: tag)
        writer.u32(UInt32(bitPattern: code))
        writer.finish()
        return writer.bytes
    }

    private func dispatch(_ type: UInt8, _ r: inout NinePReader, limit: Int) throws {
        switch type {
        case NineP.tversion: try version(&r)
        case NineP.tattach: try attach(&r)
        case NineP.twalk: try walk(&r)
        case NineP.tgetattr: try getattr(&r)
        case NineP.tsetattr: try setattr(&r)
        case NineP.tlopen: try lopen(&r)
        case NineP.tlcreate: try lcreate(&r)
        case NineP.tread: try read(&r, limit: limit)
        case NineP.twrite: try write(&r)
        case NineP.treaddir: try readdir(&r, limit: limit)
        case NineP.tclunk: try clunk(&r)
        case NineP.tmkdir: try mkdir(&r)
        case NineP.tsymlink: try symlink(&r)
        case NineP.tmknod: try mknod(&r)
        case NineP.treadlink: try readlink(&r)
        case NineP.tlink: try link(&r)
        case NineP.trenameat: try renameat(&r)
        case NineP.tunlinkat: try unlinkat(&r)
        case NineP.tstatfs: try statfs(&r)
        case NineP.tfsync: try fsync(&r)
        case NineP.tflush: _ = try r.u16("oldtag")   // requests are answered in order: nothing is pending
        case NineP.tlock: try lock(&r)
        case NineP.tgetlock: try getlock(&r)
        case NineP.tremove:
            // Linux removes through Tunlinkat; Tremove still clunks its fid.
            let fid = try r.u32("fid")
            if let f = fids.removeValue(forKey: fid) { release(f) }
            throw Failure(errno: EOPNOTSUPP)
        default:
            // Tauth, xattrs, Trename (Linux uses Trenameat) and 9P2000/.u messages.
            throw Failure(errno: EOPNOTSUPP)
        }
    }

    // MARK: session

    private func version(_ r: inout NinePReader) throws {
        let requested = try r.u32("msize")
        let v = try r.string("version")
        // A new session: every fid of the old one is gone.
        closeAllFids()
        guard requested >= NinePServer.minMessageSize else { throw Failure(errno: EINVAL) }
        msize = min(requested, NinePServer.maxMessageSize)
        writer.u32(msize)
        writer.string(v == Array(NineP.version.utf8) ? Array(NineP.version.utf8) : Array("unknown".utf8))
    }

    private func attach(_ r: inout NinePReader) throws {
        let fid = try r.u32("fid")
        _ = try r.u32("afid")
        _ = try r.string("uname")
        _ = try r.string("aname")
        let nuname = try r.u32("n_uname")
        try install(fid, Fid(share: nil, fd: -1, uid: nuname == NineP.noFid ? 0 : nuname))
        writer.qid(NinePServer.rootQid)
    }

    private func install(_ id: UInt32, _ f: Fid) throws {
        guard id != NineP.noFid, fids[id] == nil else { release(f); throw Failure(errno: EBADF) }
        guard fids.count < maxFids else { release(f); throw Failure(errno: EMFILE) }
        fids[id] = f
    }

    private func fid(_ r: inout NinePReader, _ what: String = "fid") throws -> Fid {
        let id = try r.u32(what)
        guard let f = fids[id] else { throw Failure(errno: EBADF) }
        return f
    }

    private func clunk(_ r: inout NinePReader) throws {
        let id = try r.u32("fid")
        guard let f = fids.removeValue(forKey: id) else { throw Failure(errno: EBADF) }
        release(f)
    }

    // MARK: names

    static let rootQid = NinePQid(type: NineP.qtDir, version: 0, path: 1 << 63)

    /// One path component the guest named: never empty, ".", "..", or
    /// holding "/" or NUL, and at most NAME_MAX bytes.
    static func checkedName(_ name: [UInt8]) throws -> [CChar] {
        guard !name.isEmpty, name.count <= 255 else { throw Failure(errno: name.isEmpty ? EINVAL : ENAMETOOLONG) }
        guard !name.contains(0x2f), !name.contains(0), name != [0x2e], name != [0x2e, 0x2e] else {
            throw Failure(errno: EPERM)
        }
        // Bytes, not a Swift String: a name need not be UTF-8, and must reach
        // the host exactly as the guest gave it.
        return name.map { CChar(bitPattern: $0) } + [0]
    }

    static let beneath: UInt64 = 0x08 | 0x04 | 0x02   // RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS

    /// Opens `name` in the directory `dir` (sys_O_PATH unless `flags` say
    /// otherwise), never following a symlink and never leaving `dir`.
    private func openBeneath(_ dir: Int32, _ name: [CChar], _ flags: Int32 = sys_O_PATH, mode: UInt32 = 0) throws -> Int32 {
        let fd = sys_openat2(dir, name, UInt64(UInt32(bitPattern: flags | O_NOFOLLOW | O_CLOEXEC)), UInt64(mode), NinePServer.beneath)
        guard fd >= 0 else { throw Failure(errno: errno) }
        return fd
    }

    /// The node `name` names in `parent`: a share from the synthetic root,
    /// or a file in a share.
    private func step(_ parent: Fid, _ name: [UInt8]) throws -> Fid {
        guard let share = parent.share else {
            guard let text = String(validatingUTF8: name.map { CChar(bitPattern: $0) } + [0]),
                  let i = Int(text), String(i) == text, roots.indices.contains(i) else {
                throw Failure(errno: ENOENT)
            }
            let fd = dup(roots[i].fd)
            guard fd >= 0 else { throw Failure(errno: errno) }
            return Fid(share: i, fd: fd, uid: parent.uid)
        }
        let fd = try openBeneath(parent.fd, try NinePServer.checkedName(name))
        return Fid(share: share, fd: fd, uid: parent.uid)
    }

    private func walk(_ r: inout NinePReader) throws {
        let startID = try r.u32("fid")
        guard let start = fids[startID] else { throw Failure(errno: EBADF) }
        let newID = try r.u32("newfid")
        let n = Int(try r.u16("nwname"))
        guard n <= NineP.maxWalkNames else { throw Failure(errno: EINVAL) }
        var names: [[UInt8]] = []
        for _ in 0..<n { names.append(try r.string("wname")) }
        guard newID == startID || fids[newID] == nil else { throw Failure(errno: EBADF) }

        var current = Fid(share: start.share, fd: -1, uid: start.uid)
        if start.fd >= 0 {
            current.fd = dup(start.fd)
            guard current.fd >= 0 else { throw Failure(errno: errno) }
        }
        var qids: [NinePQid] = []
        for name in names {
            do {
                let next = try step(current, name)
                qids.append(try qid(next))
                release(current)
                current = next
            } catch let f as Failure {
                // A partial walk returns the qids it found and makes no fid.
                release(current)
                if qids.isEmpty { throw f }
                writeWalk(qids)
                return
            }
        }
        if newID == startID, let old = fids.removeValue(forKey: newID) { release(old) }
        try install(newID, current)
        writeWalk(qids)
    }

    private func writeWalk(_ qids: [NinePQid]) {
        writer.u16(UInt16(qids.count))
        for q in qids { writer.qid(q) }
    }

    // MARK: attributes

    private func attributes(_ f: Fid) throws -> Glibc.stat {
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

    private func qid(_ f: Fid) throws -> NinePQid {
        guard let share = f.share else { return NinePServer.rootQid }
        return qid(try attributes(f), share: share)
    }

    private func getattr(_ r: inout NinePReader) throws {
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
    private func writableShare(_ f: Fid) throws -> Int {
        guard let s = f.share, !roots[s].readOnly else { throw Failure(errno: EROFS) }
        return s
    }

    /// The name of `fd` in /proc/self/fd (see the type's comment).
    private func procName(_ fd: Int32) -> [CChar] { Array(String(fd).utf8CString) }

    private func setattr(_ r: inout NinePReader) throws {
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

    // MARK: open, read, write

    /// Open flags the guest may pass through: the access mode, truncate,
    /// append and the sync flags. Nothing that changes how the host
    /// resolves or blocks (no O_NOFOLLOW games, no O_NONBLOCK, no sys_O_PATH).
    static func hostOpenFlags(_ flags: UInt32) -> Int32 {
        let allowed = UInt32(O_ACCMODE | O_TRUNC | O_APPEND | O_DSYNC | O_SYNC | O_DIRECTORY)
        return Int32(bitPattern: flags & allowed) | O_CLOEXEC
    }

    private func lopen(_ r: inout NinePReader) throws {
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

    private func lcreate(_ r: inout NinePReader) throws {
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

    private func openFile(_ r: inout NinePReader) throws -> Fid {
        let f = try fid(&r)
        guard f.open >= 0 else { throw Failure(errno: EBADF) }
        return f
    }

    private func read(_ r: inout NinePReader, limit: Int) throws {
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

    private func write(_ r: inout NinePReader) throws {
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

    private func fsync(_ r: inout NinePReader) throws {
        let f = try openFile(&r)
        let dataOnly = try r.u32("datasync") != 0
        guard (dataOnly ? fdatasync(f.open) : Glibc.fsync(f.open)) == 0 else { throw Failure(errno: errno) }
    }

    // MARK: directories

    private func readdir(_ r: inout NinePReader, limit: Int) throws {
        let f = try fid(&r)
        let offset = try r.u64("offset")
        let count = Int(try r.u32("count"))
        let room = min(count, limit - NineP.headerSize - 4)
        writer.u32(0)
        let start = writer.bytes.count
        func entry(_ q: NinePQid, _ next: UInt64, _ type: UInt8, _ name: [UInt8]) -> Bool {
            guard writer.bytes.count - start + 24 + name.count <= room else { return false }
            writer.qid(q)
            writer.u64(next)
            writer.u8(type)
            writer.string(name)
            return true
        }
        if f.share == nil {
            guard f.rootOpened else { throw Failure(errno: EBADF) }
            let names = [".", ".."] + roots.indices.map { String($0) }
            var i = Int(min(offset, UInt64(names.count)))
            while i < names.count, entry(i < 2 ? NinePServer.rootQid : (try qid(Fid(share: i - 2, fd: roots[i - 2].fd, uid: 0))),
                                         UInt64(i + 1), UInt8(DT_DIR), Array(names[i].utf8)) { i += 1 }
        } else {
            guard f.open >= 0 else { throw Failure(errno: EBADF) }
            guard offset <= UInt64(Int64.max), lseek(f.open, off_t(offset), SEEK_SET) >= 0 else {
                throw Failure(errno: errno == 0 ? EINVAL : errno)
            }
            let dev = UInt64(try attributes(f).st_dev), rootDev = roots[f.share!].dev
            var buf = [UInt8](repeating: 0, count: max(512, min(room, 65536)))
            let got = buf.withUnsafeMutableBytes { sys_getdents64(f.open, $0.baseAddress, $0.count) }
            guard got >= 0 else { throw Failure(errno: errno) }
            var o = 0
            while o + 19 <= got {
                let ino = le64(buf, o), next = le64(buf, o + 8)
                let reclen = Int(le16(buf, o + 16))
                let type = buf[o + 18]
                guard reclen >= 19, o + reclen <= got else { break }
                let nameBytes = buf[(o + 19)..<(o + reclen)].prefix { $0 != 0 }
                let qtype = type == UInt8(DT_DIR) ? NineP.qtDir : type == UInt8(DT_LNK) ? NineP.qtSymlink : NineP.qtFile
                guard entry(NinePQid(type: qtype, version: 0, path: NinePServer.qidPath(ino: ino, dev: dev, rootDev: rootDev)), next, type, Array(nameBytes)) else { break }
                o += reclen
            }
        }
        writer.patch32(at: NineP.headerSize, UInt32(writer.bytes.count - start))
    }

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
    private func created(_ dir: Fid, _ name: [CChar], kind: mode_t, gid: UInt32, mode: mode_t? = nil) throws {
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

    private func mkdir(_ r: inout NinePReader) throws {
        let dir = try fid(&r, "dfid")
        let name = try NinePServer.checkedName(try r.string("name"))
        let mode = NinePServer.hostMode(try r.u32("mode"), isDirectory: true)
        let gid = try r.u32("gid")
        _ = try writableShare(dir)
        guard mkdirat(dir.fd, name, mode) == 0 else { throw Failure(errno: errno) }
        try created(dir, name, kind: Mode.ifdir, gid: gid, mode: mode)
    }

    private func symlink(_ r: inout NinePReader) throws {
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

    private func mknod(_ r: inout NinePReader) throws {
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

    private func readlink(_ r: inout NinePReader) throws {
        let f = try fid(&r)
        guard f.share != nil else { throw Failure(errno: EINVAL) }
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = buf.withUnsafeMutableBytes { readlinkat(f.fd, "", $0.baseAddress!.assumingMemoryBound(to: CChar.self), 4096) }
        guard n >= 0 else { throw Failure(errno: errno) }
        writer.string(Array(buf[0..<n]))
    }

    private func sameShare(_ a: Fid, _ b: Fid) throws {
        guard a.share == b.share else { throw Failure(errno: EXDEV) }
    }

    private func link(_ r: inout NinePReader) throws {
        let dir = try fid(&r, "dfid")
        let target = try fid(&r)
        let name = try NinePServer.checkedName(try r.string("name"))
        _ = try writableShare(dir)
        try sameShare(dir, target)
        guard try attributes(target).st_mode & Mode.ifmt != Mode.ifdir else { throw Failure(errno: EPERM) }
        guard linkat(target.fd, "", dir.fd, name, sys_AT_EMPTY_PATH) == 0 else { throw Failure(errno: errno) }
    }

    private func renameat(_ r: inout NinePReader) throws {
        let from = try fid(&r, "olddirfid")
        let oldName = try NinePServer.checkedName(try r.string("oldname"))
        let to = try fid(&r, "newdirfid")
        let newName = try NinePServer.checkedName(try r.string("newname"))
        _ = try writableShare(from)
        try sameShare(from, to)
        guard Glibc.renameat(from.fd, oldName, to.fd, newName) == 0 else { throw Failure(errno: errno) }
    }

    private func unlinkat(_ r: inout NinePReader) throws {
        let dir = try fid(&r, "dirfd")
        let name = try NinePServer.checkedName(try r.string("name"))
        let flags = try r.u32("flags")
        _ = try writableShare(dir)
        guard flags & ~UInt32(AT_REMOVEDIR) == 0 else { throw Failure(errno: EINVAL) }
        guard Glibc.unlinkat(dir.fd, name, Int32(flags)) == 0 else { throw Failure(errno: errno) }
    }

    private func statfs(_ r: inout NinePReader) throws {
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

    // MARK: locks

    /// POSIX locks are the guest kernel's business: its processes are the
    /// only ones that see them (as with QEMU's 9p server).
    private func lock(_ r: inout NinePReader) throws {
        _ = try openFile(&r)
        _ = try r.u8("type"); _ = try r.u32("flags"); _ = try r.u64("start"); _ = try r.u64("length")
        _ = try r.u32("proc_id"); _ = try r.string("client_id")
        writer.u8(0)   // P9_LOCK_SUCCESS
    }

    private func getlock(_ r: inout NinePReader) throws {
        _ = try openFile(&r)
        _ = try r.u8("type")
        let start = try r.u64("start"), length = try r.u64("length")
        let pid = try r.u32("proc_id")
        let client = try r.string("client_id")
        writer.u8(2)   // P9_LOCK_TYPE_UNLCK
        writer.u64(start)
        writer.u64(length)
        writer.u32(pid)
        writer.string(client)
    }
}
