#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase

/// Hand-made hostile images through the CLI (issue 12): what swvm reads on
/// the host, as root, before any isolation exists.
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
}
