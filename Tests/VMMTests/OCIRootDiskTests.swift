#if canImport(Glibc)
import Glibc
#endif
import CConfinement
import RunSettingsWire
import Testing
@testable import MicroVM
@testable import SwvmBase

/// An OCI bundle's overlay root as a disk (issue 19): what is read of the
/// overlay mount, what of the container's layer is copied or refused, and
/// the disk of several layers (merged as overlay merges them) rebuilt when
/// damaged.
@Suite(.serialized) struct OCIRootDiskTests {
    let dir = "/tmp/swvm-ocidisk-\(getpid())"

    @Test func overlayOptions() throws {
        try FS.makeDirectories(dir + "/a")
        try FS.makeDirectories(dir + "/b")
        defer { try? FS.removeTree(dir) }
        let (lowers, upper) = try OCIRootDisk.layers(superOptions: "rw,lowerdir=\(dir)/a:\(dir)/b,upperdir=/u,workdir=/w", root: "/r")
        #expect(lowers == ["\(dir)/a", "\(dir)/b"] && upper == "/u")
        for bad in ["rw,lowerdir=\(dir)/a::\(dir)/b,upperdir=/u", "rw,lowerdir=\(dir)/a", "rw,lowerdir=\(dir)/a\\,x,upperdir=/u"] {
            #expect(throws: OCIRootRefusal.self) { try OCIRootDisk.layers(superOptions: bad, root: "/r") }
        }
        #expect(OCIRootDisk.mountPoint(of: "54 50 0:43 / /a\\040b rw - overlay overlay rw") == "/a b")
        #expect(throws: OCIRootRefusal.self) { try OCIRootDisk.overlayLayers(of: dir + "/a") }   // a plain directory
    }

    @Test func containerLayerCopiedOrRefused() throws {
        try FS.makeDirectories(dir + "/up/etc")
        defer { try? FS.removeTree(dir) }
        try sys("symlink") { symlink("/proc/mounts", dir + "/up/etc/mtab") }
        try FS.writeText(dir + "/up/etc/motd", "hi\n", mode: 0o600)
        let entries = try OCIRootDisk.upperEntries(dir + "/up")
        #expect(entries.map(\.path) == ["/etc", "/etc/motd", "/etc/mtab"])
        #expect(entries[1].contents == "hi\n" && entries[1].mode == 0o600 && entries[2].contents == "/proc/mounts")
        // A whiteout (a deleted file of the image) is not copied: 9p root.
        try sys("mknod") { mknod(dir + "/up/etc/passwd", S_IFCHR | 0o600, 0) }
        #expect(throws: OCIRootRefusal.self) { try OCIRootDisk.upperEntries(dir + "/up") }
    }

    /// Two layers: the top one's file wins, its whiteout hides the lower's.
    @Test(.enabled(if: getuid() == 0 && FS.exists("/usr/sbin/debugfs"), "needs root (overlay mount) and debugfs"))
    func layersMergedAndDamagedDiskRebuilt() throws {
        try FS.makeDirectories(dir + "/low/etc")
        try FS.makeDirectories(dir + "/top/etc")
        defer { try? FS.removeTree(dir) }
        try FS.writeText(dir + "/low/etc/a", "low\n")
        try FS.writeText(dir + "/low/etc/gone", "x\n")
        try FS.writeText(dir + "/top/etc/a", "top\n")
        try sys("mknod") { mknod(dir + "/top/etc/gone", S_IFCHR | 0o600, 0) }
        let lowers = [dir + "/top", dir + "/low"]
        let lock = try OCIRootDisk.ensure(lowers: lowers)
        let disk = lock.path
        defer { unlink(disk) }
        #expect(try Self.debugfs(disk, "cat /etc/a").hasSuffix("\ntop\n"))
        let listing = try Self.debugfs(disk, "ls -p /etc")
        #expect(listing.contains("/a/") && !listing.contains("/gone/"), "\(listing)")
        #expect(DiskDigest.matches(disk))
        // Damaged (its superblock): rebuilt, with the same content.
        let fd = try FileDescriptor.open(disk, O_WRONLY | O_CLOEXEC)
        _ = pwrite(fd.raw, [UInt8](repeating: 0x5a, count: 64), 64, 1024)
        #expect(!DiskDigest.matches(disk))
        let again = try OCIRootDisk.ensure(lowers: lowers)
        #expect(DiskDigest.matches(again.path) && again.path == disk)
        #expect(try Self.debugfs(disk, "cat /etc/a").hasSuffix("\ntop\n"))
        // Another layer set (a path reused for new content is a new inode): another disk.
        try FS.removeTree(dir + "/top")
        try FS.makeDirectories(dir + "/top")
        #expect(!Path.basename(disk).hasPrefix(try OCIRootDisk.key(lowers: lowers)))
        let files = (try? FS.listDirectory(SwvmPaths.disksDir)) ?? []
        #expect(!files.contains { $0.contains(".tmp") && $0.contains(String(hostPID)) }, "temporaries left: \(files)")
    }

    /// CFG_OCI_DISK_ROOT and CFG_OCI_UPPER through guest-init's decoder;
    /// a path out of the root, an unknown kind or mode refused.
    @Test func upperEntriesThroughTheCDecoder() throws {
        func entry(_ kind: Character, _ mode: UInt32, _ path: String, _ contents: String) -> [UInt8] {
            [UInt8(ascii: kind.unicodeScalars.first!)] + le32(mode) + Array(path.utf8) + [0] + Array(contents.utf8)
        }
        func decode(_ entries: [[UInt8]]) -> (swvm_settings, String?) {
            var f = RunSettings.Fields()
            f.add(CFG_ARG, "true")
            f.add(CFG_OCI_DISK_ROOT, true)
            for e in entries { f.add(CFG_OCI_UPPER, e) }
            var s = swvm_settings()
            var error = [CChar](repeating: 0, count: 256)
            let r = f.bytes.withUnsafeBufferPointer { swvm_settings_decode($0.baseAddress, $0.count, &s, &error, error.count) }
            return (s, r == 0 ? nil : String(cString: error))
        }
        var (s, error) = decode([entry("d", 0o755, "/etc", ""), entry("l", 0o777, "/etc/mtab", "/proc/mounts"), entry("f", 0o600, "/etc/motd", "hi\n")])
        #expect(error == nil && s.oci_disk_root == 1 && s.noci_upper == 3, "\(error ?? "")")
        if s.noci_upper == 3 {
            #expect(s.oci_upper[1].kind == UInt8(ascii: "l") && String(cString: s.oci_upper[1].path) == "/etc/mtab"
                    && String(cString: s.oci_upper[1].contents) == "/proc/mounts" && s.oci_upper[2].mode == 0o600)
        }
        swvm_settings_free(&s)
        for bad in [entry("d", 0o755, "/etc/../..", ""), entry("d", 0o755, "etc", ""), entry("f", 0o755, "/a//b", ""),
                    entry("x", 0o755, "/a", ""), entry("d", 0o10000, "/a", ""), [UInt8(ascii: "d"), 0, 0]] {
            (s, error) = decode([bad])
            #expect(error != nil, "\(bad)")
            swvm_settings_free(&s)
        }
    }

    static func debugfs(_ disk: String, _ request: String) throws -> String {
        try Subprocess.run(["debugfs", "-R", request, disk]).output
    }
}
