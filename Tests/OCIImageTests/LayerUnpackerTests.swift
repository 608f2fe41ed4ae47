#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import OCIImage
@testable import SwvmBase

/// Feeds a byte array to the unpacker.
final class BytesSource: ByteSource {
    let bytes: [UInt8]
    var offset = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    func read(into buffer: UnsafeMutableRawPointer, count: Int) throws -> Int {
        let n = min(count, bytes.count - offset)
        if n > 0 { bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress! + offset, byteCount: n) } }
        offset += n
        return n
    }
}

@Suite struct LayerUnpackerTests {
    func unpack(_ layers: [TarWriter], into root: String) throws {
        for (i, l) in layers.enumerated() {
            let u = try LayerUnpacker(rootPath: root, layerName: "layer \(i + 1)")
            try u.apply(TarReader(source: BytesSource(l.finish())))
        }
    }

    func expectRefused(_ layers: [TarWriter], naming entry: String, layer: Int = 1, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let outside = try TempDir("outside")
        let t = try TempDir("root")
        defer { t.cleanup(); outside.cleanup() }
        do {
            try unpack(layers, into: t.path)
            Issue.record("the layer was not refused", sourceLocation: sourceLocation)
        } catch let e as SwvmError {
            #expect(e.code == .unsafeLayer, sourceLocation: sourceLocation)
            #expect(e.message.contains("layer \(layer)"), "\(e.message)", sourceLocation: sourceLocation)
            #expect(e.message.contains(entry), "\(e.message)", sourceLocation: sourceLocation)
        }
        // Nothing was written outside the root.
        #expect(try FS.listDirectory(outside.path).isEmpty, sourceLocation: sourceLocation)
        #expect(!FS.exists("/tmp/swvm-escaped"), sourceLocation: sourceLocation)
    }

    @Test func appliesFilesModesOwnershipAndTimes() throws {
        let t = try TempDir()
        defer { t.cleanup() }
        var l = TarWriter()
        l.directory("etc/", mode: 0o750)
        l.file("etc/motd", "hello\n", mode: 0o640, uid: 1000, gid: 1001, mtime: 1_600_000_000)
        l.file("bin/tool", "#!/bin/sh\n", mode: 0o4755)
        l.symlink("bin/alias", to: "/bin/tool")
        l.hardLink("etc/motd2", to: "etc/motd")
        l.add("dev/fifo", kind: .fifo, mode: 0o600)
        try unpack([l], into: t.path)

        let motd = try #require(FS.lstat(t.path + "/etc/motd"))
        #expect(motd.st_mode & 0o7777 == 0o640)
        #expect(motd.st_uid == 1000 && motd.st_gid == 1001)
        #expect(motd.st_mtim.tv_sec == 1_600_000_000)
        #expect(motd.st_nlink == 2)
        #expect(try FS.readText(t.path + "/etc/motd2") == "hello\n")
        #expect(try #require(FS.lstat(t.path + "/bin/tool")).st_mode & 0o7777 == 0o4755)
        #expect(try #require(FS.lstat(t.path + "/etc")).st_mode & 0o7777 == 0o750)
        var buf = [CChar](repeating: 0, count: 64)
        let n = readlink(t.path + "/bin/alias", &buf, 63)
        #expect(String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) == "/bin/tool")
        #expect(try #require(FS.lstat(t.path + "/dev/fifo")).st_mode & S_IFMT == S_IFIFO)
    }

    @Test func longNamesThroughPAX() throws {
        let t = try TempDir()
        defer { t.cleanup() }
        let long = (0..<12).map { "directory\($0)" }.joined(separator: "/") + "/file"
        var l = TarWriter()
        l.file(long, "deep")
        try unpack([l], into: t.path)
        #expect(try FS.readText(t.path + "/" + long) == "deep")
    }

    @Test func whiteoutsRemoveLowerEntries() throws {
        let t = try TempDir()
        defer { t.cleanup() }
        var l1 = TarWriter()
        l1.file("a/keep", "1")
        l1.file("a/gone", "2")
        l1.file("b/old1", "3")
        l1.file("b/old2", "4")
        var l2 = TarWriter()
        l2.file("a/.wh.gone")
        l2.file("b/new", "5")          // written by this layer before the opaque marker
        l2.file("b/.wh..wh..opq")
        try unpack([l1, l2], into: t.path)
        #expect(FS.exists(t.path + "/a/keep"))
        #expect(!FS.exists(t.path + "/a/gone"))
        #expect(!FS.exists(t.path + "/a/.wh.gone"))
        #expect(try FS.listDirectory(t.path + "/b") == ["new"])
    }

    @Test func laterLayersReplaceEntries() throws {
        let t = try TempDir()
        defer { t.cleanup() }
        var l1 = TarWriter()
        l1.directory("x/")
        l1.file("x/inner", "1")
        l1.file("y", "file")
        var l2 = TarWriter()
        l2.file("x", "now a file")
        l2.directory("y/")
        try unpack([l1, l2], into: t.path)
        #expect(try FS.readText(t.path + "/x") == "now a file")
        #expect(FS.isDirectory(t.path + "/y"))
    }

    @Test func refusesDotDot() throws {
        var l = TarWriter()
        l.file("../../../../tmp/swvm-escaped", "x")
        try expectRefused([l], naming: "../../../../tmp/swvm-escaped")
    }

    @Test func refusesAbsolutePaths() throws {
        var l = TarWriter()
        l.file("/tmp/swvm-escaped", "x")
        try expectRefused([l], naming: "/tmp/swvm-escaped")
    }

    @Test func refusesSymlinkPointingOutside() throws {
        var l = TarWriter()
        l.symlink("etc/evil", to: "../../../../tmp")
        try expectRefused([l], naming: "etc/evil")
    }

    @Test func refusesHardLinkPointingOutside() throws {
        var l = TarWriter()
        l.hardLink("passwd", to: "../../../etc/passwd")
        try expectRefused([l], naming: "passwd")
        var abs = TarWriter()
        abs.hardLink("shadow", to: "/etc/shadow")
        try expectRefused([abs], naming: "shadow")
    }

    @Test func refusesWritingThroughAnEarlierSymlink() throws {
        let outside = try TempDir("target")
        defer { outside.cleanup() }
        // A symlink to an absolute host path is fine inside the container;
        // writing through it at unpack time is not.
        var l1 = TarWriter()
        l1.symlink("escape", to: outside.path)
        var l2 = TarWriter()
        l2.file("escape/pwned", "x")
        try expectRefused([l1, l2], naming: "escape/pwned", layer: 2)
        #expect(try FS.listDirectory(outside.path).isEmpty)

        // The same within one layer.
        var one = TarWriter()
        one.symlink("link", to: "/")
        one.file("link/tmp/swvm-escaped", "x")
        try expectRefused([one], naming: "link/tmp/swvm-escaped")
    }

    @Test func relativeSymlinksInsideTheRootAreFine() throws {
        let t = try TempDir()
        defer { t.cleanup() }
        var l = TarWriter()
        l.file("usr/bin/busybox", "bb")
        l.symlink("bin", to: "usr/bin")
        l.symlink("usr/bin/sh", to: "../../usr/bin/busybox")
        try unpack([l], into: t.path)
        #expect(try FS.readText(t.path + "/usr/bin/sh") == "bb")
    }

    @Test func rejectsCorruptHeaders() throws {
        let t = try TempDir()
        defer { t.cleanup() }
        var l = TarWriter()
        l.file("a", String(repeating: "x", count: 1000))
        var bytes = l.finish()
        bytes[150] ^= 0x01   // break the checksum
        let u = try LayerUnpacker(rootPath: t.path, layerName: "layer 1")
        #expect(throws: SwvmError.self) { try u.apply(TarReader(source: BytesSource(bytes))) }
        let truncated = Array(l.finish().prefix(700))
        let u2 = try LayerUnpacker(rootPath: t.path, layerName: "layer 1")
        #expect(throws: SwvmError.self) { try u2.apply(TarReader(source: BytesSource(truncated))) }
    }
}
