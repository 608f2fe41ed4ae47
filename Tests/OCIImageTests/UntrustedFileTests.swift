#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import OCIImage
@testable import SwvmBase

/// Files of an image that swvm reads on the host are opened only if they
/// are regular files, inside the image's own directory: a FIFO must not
/// block, a device node must not be opened.
@Suite struct UntrustedFileTests {
    func expectRefused(_ body: () throws -> Void, naming what: String, kind: String,
                       sourceLocation: SourceLocation = #_sourceLocation) {
        let start = Clock.monotonicNanos()
        do {
            try body()
            Issue.record("accepted a \(kind)", sourceLocation: sourceLocation)
        } catch let e as SwvmError {
            #expect(e.code == .invalidImage, sourceLocation: sourceLocation)
            #expect(e.exitStatus == 125, sourceLocation: sourceLocation)
            #expect(e.message.contains(what) && e.message.contains(kind), "\(e.message)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("\(error)", sourceLocation: sourceLocation)
        }
        #expect(Clock.secondsSince(start) < 2, sourceLocation: sourceLocation)
    }

    @Test func fifoAndDevicesAreNeverOpened() throws {
        let t = try TempDir()
        defer { t.cleanup() }
        try sys("mkfifo") { mkfifo(t.path + "/fifo", 0o644) }
        try sys("mknod") { mknod(t.path + "/kmsg", S_IFCHR | 0o600, dev_t(1 << 8 | 11)) }
        try sys("symlink") { symlink("/etc/hostname", t.path + "/link") }
        try FS.writeText(t.path + "/big", String(repeating: "x", count: 100))
        try FS.writeText(t.path + "/small", "ok")
        let root = t.path
        expectRefused({ _ = try RootedPath.readRegularFile(root: root, "/fifo", limit: 1 << 20, name: "the image's /fifo") },
                      naming: "/fifo", kind: "a FIFO")
        expectRefused({ _ = try RootedPath.readRegularFile(root: root, "kmsg", limit: 1 << 20, name: "the image's /kmsg") },
                      naming: "/kmsg", kind: "a character device")
        expectRefused({ _ = try RootedPath.readRegularFile(root: root, "/link", limit: 1 << 20, name: "the image's /link") },
                      naming: "/link", kind: "a symbolic link")
        expectRefused({ _ = try RootedPath.readRegularFile(root: root, "/", limit: 1 << 20, name: "the image's /") },
                      naming: "the image's /", kind: "a directory")
        expectRefused({ _ = try RootedPath.readRegularFile(root: root, "/big", limit: 99, name: "the image's /big") },
                      naming: "/big", kind: "larger than")
        #expect(try RootedPath.readRegularFile(root: root, "/small", limit: 2, name: "x") == Array("ok".utf8))
        #expect(try RootedPath.readRegularFile(root: root, "/absent", limit: 2, name: "x") == nil)
        // `..` stays inside the root.
        #expect(try RootedPath.readRegularFile(root: root, "../../../small", limit: 2, name: "x") == Array("ok".utf8))
    }

    @Test func layoutFilesMustBeRegular() throws {
        let t = try TempDir()
        defer { t.cleanup() }
        var l = TarWriter()
        l.file("bin/x", "x")
        var b = ImageBuilder()
        b.layers = [l.finish()]
        b.cmd = ["/bin/x"]
        try b.write(to: t.path + "/img")
        let cache = RootfsCache(root: t.path + "/cache")
        // A blob replaced by a FIFO.
        let blobs = try FS.listDirectory(t.path + "/img/blobs/sha256")
        let layer = blobs.first { (try? FS.readFile(t.path + "/img/blobs/sha256/" + $0))?.count == l.finish().count }!
        unlink(t.path + "/img/blobs/sha256/" + layer)
        try sys("mkfifo") { mkfifo(t.path + "/img/blobs/sha256/" + layer, 0o644) }
        expectRefused({ _ = try ImageSource.resolve(t.path + "/img", cache: cache) }, naming: layer, kind: "a FIFO")
        // index.json as a FIFO.
        unlink(t.path + "/img/index.json")
        try sys("mkfifo") { mkfifo(t.path + "/img/index.json", 0o644) }
        expectRefused({ _ = try ImageSource.resolve(t.path + "/img", cache: cache) }, naming: "index.json", kind: "a FIFO")
        // A bundle's config.json as a device node.
        try FS.makeDirectories(t.path + "/bundle/rootfs")
        try sys("mknod") { mknod(t.path + "/bundle/config.json", S_IFCHR | 0o600, dev_t(1 << 8 | 5)) }
        expectRefused({ _ = try ImageSource.resolve(t.path + "/bundle", cache: cache) }, naming: "config.json", kind: "a character device")
    }

    @Test func deviceNodesAreKeptOutOfTheCacheAndFIFOsAreMade() throws {
        let t = try TempDir()
        defer { t.cleanup() }
        var l = TarWriter()
        l.charDevice("etc/passwd", major: 1, minor: 5)
        l.charDevice("dev/kmsg", major: 1, minor: 11)
        l.fifo("etc/group")
        l.file("bin/x", "x")
        let u = try LayerUnpacker(rootPath: t.path, layerName: "layer 1")
        try u.apply(TarReader(source: BytesSource(l.finish())))
        #expect(!FS.exists(t.path + "/etc/passwd"))
        #expect(!FS.exists(t.path + "/dev/kmsg"))
        #expect(FS.lstat(t.path + "/etc/group").map { $0.st_mode & S_IFMT == S_IFIFO } == true)
        #expect(FS.isRegularFile(t.path + "/bin/x"))
    }
}
