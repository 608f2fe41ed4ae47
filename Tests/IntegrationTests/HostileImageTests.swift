#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase

/// Hand-made hostile images through the CLI (issue 12): what swvm reads on
/// the host, as root, before any isolation exists. The VM cases need
/// neither /dev/kvm nor the guest kernel (the image is read first), so they
/// run, and must pass, on a host without KVM too.
@Suite(.serialized) struct HostileImageTests {
    /// `swvm run` with its own image cache, so no other test's cache is used.
    func run(_ args: [String], image: String, cache: String, isolation: String = "container") throws -> CommandResult {
        try Command.run([Harness.swvm, "run", "--isolation=\(isolation)"] + args + [image, "--", "/bin/x"],
                        timeout: 30, environment: ["SWVM_ROOT": cache])
    }

    func expectRefusedAtOnce(_ r: CommandResult, naming file: String, kind: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(!r.timedOut, "\(r)", sourceLocation: sourceLocation)
        #expect(r.seconds < 10, "\(r)", sourceLocation: sourceLocation)
        #expect(r.status == 125, "\(r)", sourceLocation: sourceLocation)
        #expect(r.err.contains(file) && r.err.contains(kind), "\(r)", sourceLocation: sourceLocation)
        #expect(r.err.split(separator: "\n").count == 1, "\(r)", sourceLocation: sourceLocation)
    }

    @Test(arguments: ["container", "vm"])
    func fifoPasswdInALayerIsRefusedAtOnce(isolation: String) throws {
        let t = try TempDir("fifo-passwd")
        defer { t.cleanup() }
        var l = TarWriter()
        l.file("bin/x", "x", mode: 0o755)
        l.fifo("etc/passwd")
        var b = ImageBuilder()
        b.layers = [l.finish()]
        try b.write(to: t.path + "/img")
        let r = try run([], image: t.path + "/img", cache: t.path + "/cache", isolation: isolation)
        expectRefusedAtOnce(r, naming: "/etc/passwd", kind: "FIFO")
    }

    /// Device nodes of a layer never reach the cache (the host's file
    /// system is not nodev): -u finds no /etc/passwd and says so.
    @Test func devicePasswdInALayerIsNotCached() throws {
        let t = try TempDir("dev-passwd")
        defer { t.cleanup() }
        var l = TarWriter()
        l.file("bin/x", "x", mode: 0o755)
        l.charDevice("etc/passwd", major: 1, minor: 5)
        l.charDevice("etc/group", major: 1, minor: 11)
        var b = ImageBuilder()
        b.layers = [l.finish()]
        try b.write(to: t.path + "/img")
        let r = try run(["-u", "nobody"], image: t.path + "/img", cache: t.path + "/cache")
        #expect(!r.timedOut && r.seconds < 10 && r.status == 125, "\(r)")
        #expect(r.err.contains("unable to find user nobody"), "\(r)")
        let entries = try FS.listDirectory(t.path + "/cache/images").filter { !$0.hasPrefix(".") }
        #expect(entries.count == 1)
        for e in entries {
            #expect(!FS.exists(t.path + "/cache/images/\(e)/rootfs/etc/passwd"))
            #expect(!FS.exists(t.path + "/cache/images/\(e)/rootfs/etc/group"))
        }
    }

    /// A plain root directory as IMAGE can hold device nodes: they are
    /// refused without being opened (char 1,5 is /dev/zero, 1,11 /dev/kmsg).
    @Test(arguments: ["container", "vm"])
    func devicePasswdInARootDirectoryIsRefusedAtOnce(isolation: String) throws {
        let t = try TempDir("dev-root")
        defer { t.cleanup() }
        try FS.makeDirectories(t.path + "/root/etc")
        try FS.makeDirectories(t.path + "/root/bin")
        try FS.writeText(t.path + "/root/bin/x", "x")
        try sys("mknod") { mknod(t.path + "/root/etc/passwd", S_IFCHR | 0o644, dev_t(1 << 8 | 5)) }
        let r = try run([], image: t.path + "/root", cache: t.path + "/cache", isolation: isolation)
        expectRefusedAtOnce(r, naming: "/etc/passwd", kind: "character device")

        unlink(t.path + "/root/etc/passwd")
        try FS.writeText(t.path + "/root/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
        try sys("mknod") { mknod(t.path + "/root/etc/group", S_IFCHR | 0o644, dev_t(1 << 8 | 11)) }
        let r2 = try run([], image: t.path + "/root", cache: t.path + "/cache", isolation: isolation)
        expectRefusedAtOnce(r2, naming: "/etc/group", kind: "character device")
    }

    /// 100 global PAX headers of 1 MB with distinct keys (a 100 KB gzip
    /// layer) used to be kept in memory, all of them.
    @Test func globalPaxFloodStaysSmall() throws {
        let t = try TempDir("pax-flood")
        defer { t.cleanup() }
        var l = TarWriter()
        let value = String(repeating: "a", count: 1_000_000)
        for i in 0..<100 { l.pax([("comment\(i)", value)], global: true) }
        l.file("bin/x", "x", mode: 0o755)
        var b = ImageBuilder()
        b.layers = [l.finish()]
        b.gzip = true
        try b.write(to: t.path + "/img")
        // GNU time forks swvm itself and reports its ru_maxrss: the test's own
        // wait4 would count the test process (posix_spawn shares its memory
        // until exec).
        let peakFile = t.path + "/peak"
        let r = try Command.run(["/usr/bin/time", "-f", "%M", "-o", peakFile, Harness.swvm, "run", t.path + "/img", "--", "/bin/x"],
                                timeout: 60, environment: ["SWVM_ROOT": t.path + "/cache"])
        #expect(r.status == 125, "\(r)")
        #expect(r.err.contains("layer 1") && r.err.contains("global PAX headers"), "\(r)")
        // The last line (before it, time notes the non-zero status).
        let peakKiB = try FS.readText(peakFile).split(separator: "\n").last.flatMap { Int($0) } ?? Int.max
        #expect(peakKiB < 64 << 10, "peak RSS \(peakKiB) KiB")
        let left = try FS.listDirectory(t.path + "/cache/images")
        #expect(left.allSatisfy { $0 == ".lock" }, "\(left)")
    }

    /// A layer bigger than the free space of a small tmpfs holding SWVM_ROOT
    /// stops with a clear error before the tmpfs fills, and leaves no entry.
    @Test func layerLargerThanTheFreeSpaceStopsEarly() throws {
        let t = try TempDir("small-disk")
        defer { t.cleanup() }
        let cache = t.path + "/cache"
        try FS.makeDirectories(cache)
        let m = try Subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", cache])
        try #require(m.status == 0, "\(m.output)")
        defer { _ = try? Subprocess.run(["umount", cache]) }
        var l = TarWriter()
        l.file("bin/x", "x", mode: 0o755)
        l.add("big", kind: .file, data: [UInt8](repeating: 0, count: 24 << 20))
        var b = ImageBuilder()
        b.layers = [l.finish()]
        b.gzip = true
        try b.write(to: t.path + "/img")
        let r = try run([], image: t.path + "/img", cache: cache)
        #expect(r.status == 125, "\(r)")
        #expect(r.err.contains("layer 1") && r.err.contains("'big'") && r.err.contains("does not fit"), "\(r)")
        #expect(r.err.split(separator: "\n").count == 1, "\(r)")
        var v = statvfs()
        statvfs(cache, &v)
        #expect(Int(v.f_bavail) * Int(v.f_frsize) > 15 << 20, "the tmpfs was written to")
        let left = try FS.listDirectory(cache + "/images")
        #expect(left.allSatisfy { $0 == ".lock" }, "\(left)")
    }
}
