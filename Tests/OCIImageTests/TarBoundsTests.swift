#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import OCIImage
@testable import SwvmBase

/// Hostile tar streams: empty PAX values, PAX floods.
@Suite struct TarBoundsTests {
    func entries(_ bytes: [UInt8]) throws -> [TarEntry] {
        let r = TarReader(source: BytesSource(bytes))
        var out: [TarEntry] = []
        while let e = try r.next() { out.append(e) }
        return out
    }

    /// POSIX: an empty value deletes the keyword, so the header's own field
    /// applies (it used to trap on `mtime=`).
    @Test func emptyPaxValuesFallBackToTheHeader() throws {
        var w = TarWriter()
        w.pax([("mtime", ""), ("path", ""), ("uid", ""), ("size", ""), ("linkpath", "")])
        w.file("etc/motd", "hi", uid: 7, mtime: 1_600_000_000)
        w.pax([("mtime", "."), ("gid", "x")])
        w.file("b", "", mtime: 1_600_000_001)
        w.pax([("mtime", "5.-1")], global: true)
        w.file("c", "")
        let e = try entries(w.finish())
        #expect(e.count == 3)
        #expect(e[0].path == "etc/motd" && e[0].mtime == 1_600_000_000 && e[0].uid == 7 && e[0].size == 2)
        #expect(e[1].mtime == 1_600_000_001 && e[1].mtimeNanos == 0)
        #expect(e[2].mtime == 5 && e[2].mtimeNanos == 0)
        // And through the unpacker.
        let t = try TempDir()
        defer { t.cleanup() }
        try LayerUnpacker(rootPath: t.path, layerName: "layer 1").apply(TarReader(source: BytesSource(w.finish())))
        #expect(try FS.readText(t.path + "/etc/motd") == "hi")
    }

    /// A layer's owner ids are checked, never truncated: (uid_t)-1 would
    /// leave a file root's through chown, 4294967296 used to be skipped.
    @Test(arguments: [("uid", "4294967295", "uid 4294967295 is (uid_t)-1"), ("gid", "4294967295", "gid 4294967295 is (gid_t)-1"),
                      ("uid", "4294967296", "uid 4294967296 is out of range")])
    func paxIdsOutOfRangeAreRefused(_ key: String, _ value: String, _ message: String) throws {
        var w = TarWriter()
        w.pax([(key, value)])
        w.file("bin/x", "x")
        #expect { try entries(w.finish()) } throws: { e in
            (e as? SwvmError).map { $0.code == .invalidImage && $0.message.hasPrefix("the PAX records of the tar entry at byte 1024: \(message)") } ?? false
        }
    }

    /// A header's GNU base-256 uid field can hold more than 32 bits: it
    /// used to be truncated (4294967296 became root's 0).
    @Test(arguments: [(UInt64(4_294_967_296), "uid 4294967296 is out of range"), (UInt64(4_294_967_295), "uid 4294967295 is (uid_t)-1")])
    func baseTwoFiftySixIdsAreNotTruncated(_ uid: UInt64, _ message: String) throws {
        var w = TarWriter()
        w.file("bin/x", "x")
        var b = w.finish()
        b[108] = 0x80
        for i in 0..<7 { b[109 + i] = UInt8(truncatingIfNeeded: uid >> (8 * (6 - i))) }
        let sum = (0..<512).reduce(0) { $0 + Int((148..<156).contains($1) ? 0x20 : b[$1]) }
        let field = Array(String(sum, radix: 8).utf8)
        for i in 0..<8 { b[148 + i] = i < 6 ? (i < 6 - field.count ? 0x30 : field[i - (6 - field.count)]) : (i == 6 ? 0 : 0x20) }
        #expect { try entries(b) } throws: { e in
            (e as? SwvmError).map { $0.code == .invalidImage && $0.message.hasPrefix("tar entry 'bin/x' at byte 0: \(message)") } ?? false
        }
    }

    @Test func globalPaxHeadersAreBounded() throws {
        var w = TarWriter()
        let value = String(repeating: "a", count: 400_000)
        for i in 0..<4 { w.pax([("comment\(i)", value)], global: true) }
        w.file("a", "")
        do {
            _ = try entries(w.finish())
            Issue.record("4 global PAX headers of 400 KB were all kept")
        } catch let e as SwvmError {
            #expect(e.code == .invalidImage)
            #expect(e.message.contains("global PAX headers") && e.message.contains("bound"), "\(e.message)")
        }
        // Replacing the same key is not growth.
        var same = TarWriter()
        for _ in 0..<8 { same.pax([("comment", value)], global: true) }
        same.file("a", "")
        #expect(try entries(same.finish()).count == 1)
    }

    @Test func localPaxHeadersAreBounded() throws {
        var w = TarWriter()
        let value = String(repeating: "b", count: 400_000)
        for i in 0..<4 { w.pax([("SCHILY.xattr.user.k\(i)", value)]) }
        w.file("a", "")
        #expect(throws: SwvmError.self) { _ = try entries(w.finish()) }
    }

    @Test func onePaxRecordIsBounded() throws {
        var w = TarWriter()
        w.pax([("comment", String(repeating: "c", count: 1 << 20))])
        w.file("a", "")
        do {
            _ = try entries(w.finish())
            Issue.record("a PAX header over 1 MiB was read")
        } catch let e as SwvmError {
            #expect(e.message.contains("too large"), "\(e.message)")
        }
    }

    /// A path of a million "a/" would cost an openat per component.
    @Test func overLongPathsAreRefused() throws {
        let t = try TempDir()
        defer { t.cleanup() }
        var w = TarWriter()
        w.file(String(repeating: "a/", count: 2100) + "f", "x")
        do {
            try LayerUnpacker(rootPath: t.path, layerName: "layer 1").apply(TarReader(source: BytesSource(w.finish())))
            Issue.record("a 4 KiB path was unpacked")
        } catch let e as SwvmError {
            #expect(e.code == .unsafeLayer && e.message.contains("longer than 4096"), "\(e.message)")
        }
        var ok = TarWriter()
        ok.file(String(repeating: "b/", count: 1000) + "f", "x")
        try LayerUnpacker(rootPath: t.path, layerName: "layer 1").apply(TarReader(source: BytesSource(ok.finish())))
    }
}
