#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import OCIImage
@testable import SwvmBase

@Suite struct ImageLayoutTests {
    func simpleImage(gzip: Bool = true) -> ImageBuilder {
        var l = TarWriter()
        l.file("bin/hello", "#!/bin/sh\necho hi\n", mode: 0o755)
        l.file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
        var b = ImageBuilder()
        b.layers = [l.finish()]
        b.gzip = gzip
        b.cmd = ["/bin/hello"]
        b.workingDir = "/srv"
        return b
    }

    @Test(arguments: [true, false])
    func unpacksAndCachesByManifestDigest(gzip: Bool) throws {
        let t = try TempDir()
        defer { t.cleanup() }
        let digest = try simpleImage(gzip: gzip).write(to: t.path + "/img")
        let cache = RootfsCache(root: t.path + "/cache")
        let first = try ImageSource.resolve(t.path + "/img", cache: cache)
        #expect(first.kind == .layout(manifest: try Digest(digest)))
        #expect(first.config.cmd == ["/bin/hello"])
        #expect(first.config.workingDir == "/srv")
        #expect(try FS.readText(first.rootfs + "/bin/hello").hasPrefix("#!/bin/sh"))

        // A second resolve uses the cache: no progress callbacks, same path.
        var unpacked = 0
        let second = try ImageSource.resolve(t.path + "/img", cache: cache) { _ in unpacked += 1 }
        #expect(unpacked == 0)
        #expect(second.rootfs == first.rootfs)
    }

    @Test func digestMismatchIsRefused() throws {
        let t = try TempDir()
        defer { t.cleanup() }
        try simpleImage().write(to: t.path + "/img")
        // Corrupt the layer blob (keeping its size).
        let blobs = try FS.listDirectory(t.path + "/img/blobs/sha256")
        var corrupted = false
        for b in blobs {
            let p = t.path + "/img/blobs/sha256/" + b
            var bytes = try FS.readFile(p)
            if bytes.count > 100 && bytes[0] == 0x1f {
                bytes[bytes.count / 2] ^= 0xff
                try FS.writeFile(p, bytes)
                corrupted = true
            }
        }
        #expect(corrupted)
        do {
            _ = try ImageSource.resolve(t.path + "/img", cache: RootfsCache(root: t.path + "/cache"))
            Issue.record("a corrupt blob was accepted")
        } catch let e as SwvmError {
            #expect(e.code == .digestMismatch)
            #expect(e.message.contains("layer 1"))
        }
        // Nothing half-unpacked is left in the cache.
        let left = (try? FS.listDirectory(t.path + "/cache")) ?? []
        #expect(left.allSatisfy { $0 == ".lock" })
    }

    @Test func brokenIndexIsAClearError() throws {
        let t = try TempDir()
        defer { t.cleanup() }
        try simpleImage().write(to: t.path + "/img")
        try FS.writeText(t.path + "/img/index.json", #"{"schemaVersion": 2, "manifests": [ {"digest": "sha256:zz""#)
        do {
            _ = try ImageSource.resolve(t.path + "/img", cache: RootfsCache(root: t.path + "/cache"))
            Issue.record("a broken index.json was accepted")
        } catch let e as SwvmError {
            #expect(e.code == .invalidImage)
            #expect(e.message.contains("index.json"))
        }
    }

    @Test func missingBlobAndBadDigestSyntax() throws {
        let t = try TempDir()
        defer { t.cleanup() }
        try simpleImage().write(to: t.path + "/img")
        let index = try FS.readText(t.path + "/img/index.json")
        try FS.writeText(t.path + "/img/index.json", index.replacingFirst("sha256:", with: "sha256:../../"))
        #expect(throws: SwvmError.self) { try ImageSource.resolve(t.path + "/img", cache: RootfsCache(root: t.path + "/cache")) }
    }

    @Test func refsPickAManifest() throws {
        let t = try TempDir()
        defer { t.cleanup() }
        var b = simpleImage()
        b.ref = "v1"
        try b.write(to: t.path + "/img")
        let cache = RootfsCache(root: t.path + "/cache")
        #expect((try? ImageSource.resolve(t.path + "/img", ref: "v1", cache: cache)) != nil)
        do {
            _ = try ImageSource.resolve(t.path + "/img", ref: "nope", cache: cache)
            Issue.record("an unknown ref was accepted")
        } catch let e as SwvmError {
            #expect(e.code == .notFound)
            #expect(e.message.contains("v1"))
        }
    }

    @Test func missingImageIsNotFound() {
        do {
            _ = try ImageSource.resolve("/nonexistent/swvm-image")
            Issue.record("expected an error")
        } catch let e as SwvmError {
            #expect(e.code == .notFound)
            #expect(e.exitStatus == 125)
        } catch {
            Issue.record("\(error)")
        }
    }

    @Test func bundlesAndPlainRoots() throws {
        let t = try TempDir()
        defer { t.cleanup() }
        try FS.makeDirectories(t.path + "/bundle/rootfs/bin")
        try FS.writeText(t.path + "/bundle/config.json", #"{"ociVersion":"1.0.2","process":{"args":["sh"],"cwd":"/"},"root":{"path":"rootfs"}}"#)
        let bundle = try ImageSource.resolve(t.path + "/bundle")
        #expect(bundle.kind == .bundle)
        #expect(bundle.rootfs.hasSuffix("/bundle/rootfs"))
        #expect(bundle.bundleConfig?["process"]?["args"]?[0]?.string == "sh")
        let plain = try ImageSource.resolve(t.path + "/bundle/rootfs")
        #expect(plain.kind == .rootfs)
    }

    @Test func digestsAreStrict() {
        #expect((try? Digest("sha256:" + String(repeating: "a", count: 64))) != nil)
        for bad in ["sha256:abc", "sha512:" + String(repeating: "a", count: 128), "sha256:" + String(repeating: "A", count: 64),
                    "sha256:../" + String(repeating: "a", count: 61), "nocolon"] {
            #expect(throws: SwvmError.self) { try Digest(bad) }
        }
    }
}

extension String {
    func replacingFirst(_ a: String, with b: String) -> String {
        guard let r = range(of: a) else { return self }
        return String(self[..<r.lowerBound]) + b + String(self[r.upperBound...])
    }

    func range(of needle: String) -> Range<String.Index>? {
        var i = startIndex
        while i < endIndex {
            if self[i...].hasPrefix(needle) { return i..<index(i, offsetBy: needle.count) }
            i = index(after: i)
        }
        return nil
    }
}

@Suite struct CompressionTests {
    @Test func zstdLayersUnpack() throws {
        guard FS.exists("/usr/bin/zstd") else {
            Issue.record("zstd is not installed (scripts/setup.sh installs it)")
            return
        }
        let t = try TempDir("zstd")
        defer { t.cleanup() }
        var l = TarWriter()
        l.file("hello", "compressed with zstd\n")
        try FS.writeFile(t.path + "/layer.tar", l.finish())
        let r = try Subprocess.run(["zstd", "-q", "-19", t.path + "/layer.tar", "-o", t.path + "/layer.tar.zst"])
        #expect(r.status == 0, "\(r.output)")
        let root = t.path + "/root"
        try FS.makeDirectories(root)
        let fd = try FileDescriptor.open(t.path + "/layer.tar.zst", O_RDONLY)
        let u = try LayerUnpacker(rootPath: root, layerName: "layer 1")
        try u.apply(TarReader(source: try ZstdSource(FileSource(fd: fd.raw, name: "the test layer"))))
        #expect(try FS.readText(root + "/hello") == "compressed with zstd\n")
        #expect(Compression.detect(mediaType: "", magic: [0x28, 0xb5, 0x2f, 0xfd]) == .zstd)
        #expect(Compression.detect(mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", magic: []) == .gzip)
    }

    @Test func corruptGzipIsAnError() throws {
        let t = try TempDir("gz")
        defer { t.cleanup() }
        try FS.writeFile(t.path + "/bad.gz", [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xde, 0xad, 0xbe, 0xef])
        let fd = try FileDescriptor.open(t.path + "/bad.gz", O_RDONLY)
        let g = try GzipSource(FileSource(fd: fd.raw, name: "the test layer"))
        var buf = [UInt8](repeating: 0, count: 64)
        #expect(throws: SwvmError.self) { _ = try buf.withUnsafeMutableBytes { try g.read(into: $0.baseAddress!, count: 64) } }
    }
}
