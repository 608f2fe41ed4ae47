#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import SwvmBase

/// A host directory the guest may use: `-v HOST:CTR[:ro]` at --isolation=vm.
public struct Share: Equatable, Sendable {
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

    let roots: [ShareRoot]
    let maxFids: Int
    private(set) var procFD: Int32
    /// The owner of what this server creates (its effective uid; the VMM's
    /// jail changes it after the server is made, see `enteredJail`).
    private(set) var ownUID = geteuid()
    /// Tests only: runs between the creation of a name and its reopening
    /// (to swap the name, as a racing host user could).
    var afterCreate: ((_ dir: Int32, _ name: [CChar]) -> Void)?
    var fids: [UInt32: Fid] = [:]
    public internal(set) var msize: UInt32 = minMessageSize
    var writer = NinePWriter(capacity: Int(maxMessageSize))
    /// Requests answered, and those refused because they broke a rule of
    /// the share (a name that climbs, an unknown fid, a change to a
    /// read-only share, a malformed request).
    public internal(set) var requests = 0
    /// Requests by message type (diagnostics: SWVM_DEBUG lists them).
    public internal(set) var requestsByType: [UInt8: Int] = [:]
    public internal(set) var refusals = 0

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

    /// The VMM jailed itself (before the server thread starts, which may
    /// not call geteuid): fids are reopened through `procDirectory` (an
    /// O_PATH /proc/self/fd of the jail's own procfs) from now on, and what
    /// the server creates is the jail's uid's.
    public func enteredJail(procDirectory fd: Int32) {
        close(procFD)
        procFD = fd
        ownUID = geteuid()
    }

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

    func closeAllFids() {
        for (_, f) in fids { release(f) }
        fids.removeAll()
    }

    func release(_ f: Fid) {
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

    func errorReply(_ tag: UInt16, _ code: Int32) -> [UInt8] {
        writer.begin(type: NineP.rlerror, tag: tag)
        writer.u32(UInt32(bitPattern: code))
        writer.finish()
        return writer.bytes
    }

    func dispatch(_ type: UInt8, _ r: inout NinePReader, limit: Int) throws {
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
}
