#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import SwvmBase

/// An OCI bundle's root as a read-only ext4 disk at the VM level (issue
/// 19). podman's and containerd's rootfs is an overlay mount of the image's
/// layers (lowerdir) and the container's own layer (upperdir): the layers
/// become one disk, built once per set of layers like an image's disk
/// (RootDisk's mkfs), and the guest mounts it under an overlay with its
/// tmpfs upper, as `swvm run` does, instead of reading the root over 9p.
/// What the container's layer holds at create (podman's /etc/mtab link) is
/// copied into the guest's upper (CFG_OCI_UPPER); writes stay in the guest
/// (README: "An OCI bundle's root at the VM level").
///
/// Anything unclear is the 9p root: not an overlay, an upper layer with
/// whiteouts, opaque directories, devices, files of other owners or more
/// than a little data, option text this parser does not read.
public struct OCIRootDisk {
    /// The lower layers, top first (overlay's order), as real paths.
    public let lowers: [String]
    /// The container's layer at create, parents first.
    public let upper: [UpperEntry]
    /// The disk, held (CacheItemLock) while the VM uses it.
    public let lock: CacheItemLock

    public struct UpperEntry: Equatable {
        public var kind: UInt8   // "d", "f", "l"
        public var mode: UInt32
        public var path: String
        public var contents: String
    }

    /// The annotation that keeps the 9p root (writes then reach the
    /// container's layer on the host: podman diff, cp, commit see them).
    public static let annotation = "swvm.vm-root"

    static let maxUpperEntries = 64, maxUpperBytes = 64 << 10

    /// The disk root for `rootPath`, or why not (the VM then shares the
    /// directory over 9p).
    public static func choose(rootPath: String, annotations: [String: String]) -> Result<OCIRootDisk, OCIRootRefusal> {
        if let asked = annotations[annotation], asked != "disk" {
            return .failure(OCIRootRefusal("annotation \(annotation)=\(asked)"))
        }
        if FS.environment("SWVM_OCI_DISK_ROOT") == "0" { return .failure(OCIRootRefusal("SWVM_OCI_DISK_ROOT=0")) }
        do {
            let (lowers, upperDir) = try overlayLayers(of: rootPath)
            let upper = try upperEntries(upperDir)
            let lock = try ensure(lowers: lowers)
            return .success(OCIRootDisk(lowers: lowers, upper: upper, lock: lock))
        } catch let e as OCIRootRefusal {
            return .failure(e)
        } catch {
            return .failure(OCIRootRefusal("\(error)"))
        }
    }

    // MARK: the overlay mount

    /// The lower layers (real paths, top first) and the upper directory of
    /// the overlay mounted at `rootPath` (the topmost mount there).
    static func overlayLayers(of rootPath: String) throws -> ([String], String) {
        let root = try FS.realPath(rootPath)
        let info = try FS.readText("/proc/self/mountinfo", limit: 1 << 24)
        guard let line = info.split(separator: "\n").last(where: { mountPoint(of: $0) == root }) else {
            throw OCIRootRefusal("\(root) is not a mount point (a plain directory)")
        }
        // Optional fields, then "-", then fstype, source, super options.
        let f = line.split(separator: " ", omittingEmptySubsequences: false)
        let dash = f.firstIndex(of: "-").map { $0 + 1 } ?? f.endIndex
        let tail = Array(f[dash...])
        guard tail.count >= 3, tail[0] == "overlay" else { throw OCIRootRefusal("\(root) is not an overlay mount") }
        return try layers(superOptions: String(tail[2]), root: root)
    }

    /// The mount point (field 5) of a mountinfo line, its octal escapes decoded.
    static func mountPoint(of line: Substring) -> String? {
        let f = line.split(separator: " ", omittingEmptySubsequences: false)
        guard f.count > 5 else { return nil }
        var out: [UInt8] = [], b = Array(f[4].utf8), i = 0
        while i < b.count {
            if b[i] == 0x5c, i + 3 < b.count, let v = UInt8(String(decoding: b[i + 1...i + 3], as: UTF8.self), radix: 8) {
                out.append(v); i += 4
            } else {
                out.append(b[i]); i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// lowerdir and upperdir of overlay's super options. An escaped or
    /// empty path (data-only layers "::", commas, colons) is refused.
    static func layers(superOptions: String, root: String) throws -> ([String], String) {
        guard !superOptions.contains("\\") else { throw OCIRootRefusal("\(root): escaped overlay options") }
        var lower: String?, upper: String?
        for option in superOptions.split(separator: ",") {
            if option.hasPrefix("lowerdir=") { lower = String(option.dropFirst(9)) }
            if option.hasPrefix("upperdir=") { upper = String(option.dropFirst(9)) }
        }
        guard let lower, let upper else { throw OCIRootRefusal("\(root): an overlay without a lower and an upper layer") }
        let dirs = lower.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard !dirs.contains(where: { $0.isEmpty || !$0.hasPrefix("/") }) else { throw OCIRootRefusal("\(root): lowerdir \(lower)") }
        return (try dirs.map { try FS.realPath($0) }, upper)
    }

    // MARK: the container's layer at create

    /// The upper layer's entries, parents first; a refusal for anything a
    /// copy into the guest would not reproduce.
    static func upperEntries(_ dir: String) throws -> [UpperEntry] {
        var entries: [UpperEntry] = [], bytes = 0
        func walk(_ rel: String) throws {
            for name in try FS.listDirectory(dir + rel).sorted() {
                let path = rel + "/" + name, full = dir + path
                guard let st = FS.lstat(full) else { throw OCIRootRefusal("upper layer: \(path) vanished") }
                guard st.st_uid == 0, st.st_gid == 0 else { throw OCIRootRefusal("upper layer: \(path) is not root's") }
                guard entries.count < maxUpperEntries else { throw OCIRootRefusal("upper layer: over \(maxUpperEntries) entries") }
                let mode = UInt32(st.st_mode & 0o7777)
                switch st.st_mode & S_IFMT {
                case S_IFDIR:
                    // opaque or redirected: overlay's own metadata, not copied.
                    guard !hasOverlayXattr(full) else { throw OCIRootRefusal("upper layer: \(path) has overlay attributes") }
                    entries.append(UpperEntry(kind: 0x64, mode: mode, path: path, contents: ""))
                    try walk(path)
                case S_IFLNK:
                    guard let target = FS.readLink(full), !target.contains("\0") else { throw OCIRootRefusal("upper layer: link \(path)") }
                    bytes += target.utf8.count
                    entries.append(UpperEntry(kind: 0x6c, mode: mode, path: path, contents: target))
                case S_IFREG:
                    let data = try FS.readFile(full, limit: maxUpperBytes + 1)
                    bytes += data.count
                    guard bytes <= maxUpperBytes, !data.contains(0), let text = String(validating: data, as: UTF8.self),
                          !hasOverlayXattr(full) else { throw OCIRootRefusal("upper layer: file \(path) (binary, large or overlay metadata)") }
                    entries.append(UpperEntry(kind: 0x66, mode: mode, path: path, contents: text))
                default:
                    throw OCIRootRefusal("upper layer: \(path) is a device, FIFO or socket (a whiteout)")
                }
                guard bytes <= maxUpperBytes else { throw OCIRootRefusal("upper layer: over \(maxUpperBytes) bytes") }
            }
        }
        try walk("")
        return entries
    }

    /// Whether `path` has overlay's opaque or redirect attribute.
    static func hasOverlayXattr(_ path: String) -> Bool {
        var byte: UInt8 = 0
        for name in ["trusted.overlay.opaque", "trusted.overlay.redirect", "trusted.overlay.metacopy"] {
            if lgetxattr(path, name, &byte, 0) >= 0 || errno == ERANGE { return true }
        }
        return false
    }

    // MARK: the disk

    /// The layers' identity: each one's real path, device, inode, mtime
    /// and ctime (a path reused for other content is another inode or
    /// time), with the disk format.
    static func key(lowers: [String]) throws -> String {
        var parts = ["swvm oci layers disk v\(RootDisk.formatVersion)"]
        for dir in lowers {
            guard let st = FS.stat(dir) else { throw OCIRootRefusal("lower layer \(dir) vanished") }
            parts.append("\(dir) \(st.st_dev) \(st.st_ino) \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec) \(st.st_ctim.tv_sec).\(st.st_ctim.tv_nsec)")
        }
        return "layers-" + SHA256.hash(Array(parts.joined(separator: "\n").utf8))
    }

    /// The disk of `lowers`, built when missing or when its content does
    /// not match the digest recorded at its build (then rebuilt, never
    /// used), with a shared lock on it.
    static func ensure(lowers: [String]) throws -> CacheItemLock {
        let path = Path.join(RootDisk.disksDir, try key(lowers: lowers) + "-v\(RootDisk.formatVersion).ext4")
        for _ in 0..<3 {
            if let lock = try CacheItemLock.shared(path) {
                if DiskDigest.matches(path) { return lock }
                Log.warning("OCI root disk \(path) does not match its recorded digest; rebuilding it")
            }
            try build(lowers: lowers, at: path)
        }
        throw SwvmError(.internalError, "the OCI root disk \(path) was removed or damaged three times while swvm was about to use it")
    }

    /// Builds the disk under the disks' lock and publishes it by rename
    /// (replacing a damaged one). Several lowers are merged by a read-only
    /// overlay mount in a mount namespace of mkfs's own (unshare), so no
    /// mount outlives it.
    static func build(lowers: [String], at path: String) throws {
        let dir = RootDisk.disksDir
        try FS.makeDirectories(dir, mode: 0o700)
        let lock = try FileLock(path: Path.join(dir, ".lock"))
        defer { _ = lock }
        if FS.isRegularFile(path), DiskDigest.matches(path) { return }   // another swvm built it meanwhile
        RootDisk.removeStaleTemporaries()
        let tmp = path + ".\(hostPID).tmp", mnt = path + ".\(hostPID).mnt.tmp"
        defer { rmdir(mnt); unlink(tmp) }
        var bytes: UInt64 = 0, entries = 0
        for l in lowers {
            let t = try TreeSummary(root: l)
            bytes += t.bytes
            entries += t.entries
        }
        var args: [String]
        if lowers.count == 1 {
            args = RootDisk.mkfsArguments(source: lowers[0], output: tmp, bytes: bytes, entries: entries)
        } else {
            guard !lowers.contains(where: { $0.contains(":") || $0.contains(",") }) else {
                throw OCIRootRefusal("a lower layer's path has a colon or comma")
            }
            try sys("mkdir \(mnt)") { mkdir(mnt, 0o700) }
            args = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                    "mount -t overlay -o \"ro,lowerdir=$1\" swvm-layers \"$2\" && shift 2 && exec \"$@\"", "sh",
                    lowers.joined(separator: ":"), mnt]
                + RootDisk.mkfsArguments(source: mnt, output: tmp, bytes: bytes, entries: entries)
        }
        let r = try Subprocess.run(args)
        guard r.status == 0 else {
            throw SwvmError(.systemCall, "building the OCI root disk (\(args.first!)) failed (\(r.status)): \(r.output.trimmingCharacters(in: " "))")
        }
        try DiskDigest.record(tmp)
        try sys("rename \(tmp)") { rename(tmp, path) }
    }
}

/// Why a bundle's root stays a 9p share.
public struct OCIRootRefusal: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}

/// A disk's content digest, recorded in an extended attribute of the file
/// at its build (user.swvm.sha256): SHA-256 of its size and its data
/// ranges (SEEK_DATA/SEEK_HOLE; holes read as zeros, so they are skipped).
enum DiskDigest {
    static let attribute = "user.swvm.sha256"

    static func record(_ path: String) throws {
        let digest = Array(try compute(path).utf8)
        guard setxattr(path, attribute, digest, digest.count, 0) == 0 else { throw SwvmError.errno("setxattr \(attribute) \(path)") }
    }

    static func matches(_ path: String) -> Bool {
        var stored = [UInt8](repeating: 0, count: 64)
        guard getxattr(path, attribute, &stored, stored.count) == 64, let now = try? compute(path) else { return false }
        return String(decoding: stored, as: UTF8.self) == now
    }

    static func compute(_ path: String) throws -> String {
        let fd = try FileDescriptor.open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        var st = Glibc.stat()
        guard fstat(fd.raw, &st) == 0 else { throw SwvmError.errno("fstat \(path)") }
        var h = SHA256()
        h.update(Array("size \(st.st_size)\n".utf8))
        var buf = [UInt8](repeating: 0, count: 1 << 20)
        var off: off_t = 0
        while off < st.st_size {
            let data = lseek(fd.raw, off, 3 /* SEEK_DATA */)
            if data < 0 { break }   // ENXIO: only a hole is left
            var end = lseek(fd.raw, data, 4 /* SEEK_HOLE */)
            if end < 0 { end = st.st_size }
            h.update(Array("data \(data)\n".utf8))
            var at = data
            while at < end {
                let n = buf.withUnsafeMutableBytes { pread(fd.raw, $0.baseAddress, min($0.count, Int(end - at)), at) }
                guard n > 0 else { throw SwvmError.errno("read \(path)") }
                buf.withUnsafeBytes { h.update(UnsafeRawBufferPointer(start: $0.baseAddress, count: n)) }
                at += off_t(n)
            }
            off = end
        }
        return h.finalizeHex()
    }
}
