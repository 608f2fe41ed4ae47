#if canImport(Glibc)
import Glibc
#endif
import OCIImage
import SwvmBase

/// The image's root filesystem as an ext4 disk for the VM, made with
/// e2fsprogs' `mkfs.ext4 -d` (no root, no loop device) and cached beside
/// the unpacked image, so a second run attaches it at once. The VM gets it
/// read-only; its writes go to an overlay upper layer in guest RAM.
public enum RootDisk {
    /// Bumped when the mkfs options change, to rebuild cached disks.
    static let formatVersion = "1"

    static var disksDir: String { SwvmPaths.disksDir }

    /// The image's disk, made first if needed, with a shared lock on it
    /// (CacheItemLock) that the caller holds while the VM uses it.
    public static func ensure(for image: ResolvedImage) throws -> CacheItemLock {
        // A disk removed by `swvm cache rm` between its making and the lock
        // is made again.
        for _ in 0..<3 {
            let path = try make(for: image)
            if let lock = try CacheItemLock.shared(path) { return lock }
        }
        throw SwvmError(.internalError, "the ext4 disk of \(image.name) was removed three times while swvm was about to use it")
    }

    static func make(for image: ResolvedImage) throws -> String {
        var key = image.cacheKey
        var tree: TreeSummary?
        if case .layout = image.kind {} else {
            // A bundle or plain root can change between runs: key by content.
            tree = try TreeSummary(root: image.rootfs)
            key += "-" + String(tree!.fingerprint.prefix(16))
        }
        let path = Path.join(disksDir, "\(key)-v\(formatVersion).ext4")
        if FS.isRegularFile(path) { return path }
        try FS.makeDirectories(disksDir, mode: 0o700)
        let lock = try FileLock(path: Path.join(disksDir, ".lock"))
        defer { _ = lock }
        if FS.isRegularFile(path) { return path }
        removeStaleTemporaries()
        let tmp = path + ".\(hostPID).tmp"
        let summary = try tree ?? TreeSummary(root: image.rootfs)
        let args = mkfsArguments(source: image.rootfs, output: tmp, bytes: summary.bytes, entries: summary.entries)
        let r = try Subprocess.run(args)
        guard r.status == 0 else {
            unlink(tmp)
            throw SwvmError(.systemCall, "mkfs.ext4 -d \(image.rootfs) failed (\(r.status)): \(r.output.trimmingCharacters(in: " "))")
        }
        try sys("rename \(tmp)") { rename(tmp, path) }
        return path
    }

    /// Left by a killed swvm (files and overlay mount points); call with
    /// the disks' lock held.
    static func removeStaleTemporaries() {
        for name in (try? FS.listDirectory(disksDir)) ?? [] where name.hasSuffix(".tmp") {
            let p = Path.join(disksDir, name)
            if unlink(p) != 0 { rmdir(p) }
        }
    }

    /// mkfs.ext4 filling `output` from the directory `source`, sized for
    /// `bytes` of files in `entries` entries.
    static func mkfsArguments(source: String, output: String, bytes: UInt64, entries: Int) -> [String] {
        // Room for the files, their metadata and some slack.
        let sizeMiB = max(16, (bytes * 13 / 10 + UInt64(entries) * 4096) / (1 << 20) + 8)
        let inodes = max(1024, entries * 5 / 4 + 256)
        return ["mkfs.ext4", "-q", "-F", "-t", "ext4",
                // No journal (the disk is read-only to the guest) and no
                // metadata checksums: both cost emulated guest-kernel time.
                "-O", "^has_journal,^metadata_csum,^resize_inode",
                "-m", "0", "-b", "4096", "-N", String(inodes), "-L", "swvm-root",
                "-E", "root_owner=0:0", "-d", source, output, "\(sizeMiB)M"]
    }
}

/// Size, entry count and a change fingerprint of a directory tree.
struct TreeSummary {
    var bytes: UInt64 = 0
    var entries = 0
    var fingerprint = ""

    init(root: String) throws {
        var hasher = SHA256()
        try walk(root, "", &hasher)
        fingerprint = hasher.finalizeHex()
    }

    private mutating func walk(_ root: String, _ rel: String, _ h: inout SHA256) throws {
        let dir = rel.isEmpty ? root : root + "/" + rel
        for name in try FS.listDirectory(dir) {
            let r = rel.isEmpty ? name : rel + "/" + name
            guard let st = FS.lstat(root + "/" + r) else { continue }
            entries += 1
            bytes += UInt64(max(0, st.st_size) + 4095) / 4096 * 4096
            h.update(Array("\(r)\0\(st.st_mode)\0\(st.st_size)\0\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)\0\(st.st_uid):\(st.st_gid)\n".utf8))
            if (st.st_mode & S_IFMT) == S_IFDIR { try walk(root, r, &h) }
        }
    }
}
