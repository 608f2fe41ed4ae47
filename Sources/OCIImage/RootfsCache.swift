#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import SwvmBase

/// Unpacked root filesystems, cached by manifest digest under
/// /var/lib/swvm/images/<hex>/rootfs, so a second run of an image does not
/// unpack it again. An unpack goes to a temporary directory that is renamed
/// into place only when complete; temporaries left by a killed swvm are
/// removed on the next start.
public struct RootfsCache {
    public let root: String

    public init(root: String = SwvmPaths.imagesDir) { self.root = root }

    public func entryDir(_ digest: Digest) -> String { Path.join(root, digest.hex) }
    public func rootfsPath(_ digest: Digest) -> String { Path.join(entryDir(digest), "rootfs") }

    /// The manifest's cache entry, unpacked first if needed, with a shared
    /// lock on it (CacheItemLock) that the caller holds while it uses it.
    public func rootfs(for manifest: Manifest, config: ImageConfig, layout: ImageLayout,
                       progress: ((String) -> Void)? = nil) throws -> CacheItemLock {
        let dir = entryDir(manifest.digest)
        // An entry removed by `swvm cache rm` between its unpack and the
        // lock is unpacked again.
        for _ in 0..<3 {
            if FS.exists(Path.join(dir, "complete")), let lock = try CacheItemLock.shared(dir) { return lock }
            try unpackIfMissing(manifest, config: config, layout: layout, progress: progress)
        }
        throw SwvmError(.internalError, "image cache entry \(dir) was removed three times while swvm was about to use it")
    }

    private func unpackIfMissing(_ manifest: Manifest, config: ImageConfig, layout: ImageLayout,
                                 progress: ((String) -> Void)?) throws {
        let done = Path.join(entryDir(manifest.digest), "complete")
        try FS.makeDirectories(root, mode: 0o700)
        let lock = try FileLock(path: Path.join(root, ".lock"))
        defer { _ = lock }
        if FS.exists(done) { return }   // another swvm finished it
        removeStaleTemporaries()

        let tmp = Path.join(root, "tmp-\(hostPID)-\(randomHex(4))")
        try FS.makeDirectories(Path.join(tmp, "rootfs"), mode: 0o755)
        do {
            try unpack(manifest, config: config, layout: layout, into: Path.join(tmp, "rootfs"), progress: progress)
            try FS.writeText(Path.join(tmp, "config.json"), config.json.serialized(pretty: true))
            try FS.writeText(Path.join(tmp, "manifest"), manifest.digest.description + "\n")
            // Marked complete before it is renamed into place: what carries
            // the entry's name is whole.
            try FS.writeText(Path.join(tmp, "complete"), "")
            let dest = entryDir(manifest.digest)
            if FS.exists(dest) { try FS.removeTree(dest) }
            try sys("rename \(tmp)") { rename(tmp, dest) }
        } catch {
            try? FS.removeTree(tmp)
            throw error
        }
    }

    /// Applies the layers in order. Each blob is verified against its
    /// digest before it is parsed; the uncompressed stream is checked
    /// against the config's diff_id as it is applied.
    func unpack(_ m: Manifest, config: ImageConfig, layout: ImageLayout, into dir: String,
                progress: ((String) -> Void)?) throws {
        for (i, layer) in m.layers.enumerated() {
            let name = "layer \(i + 1) (\(layer.digest))"
            progress?("unpacking \(name)")
            try layout.verifyBlob(layer, context: name)
            let fd = try layout.openBlob(layer, context: name)
            var magic = [UInt8](repeating: 0, count: 4)
            let n = pread(fd.raw, &magic, 4, 0)
            let compression = Compression.detect(mediaType: layer.mediaType, magic: Array(magic[0..<max(0, n)]))
            let file = FileSource(fd: fd.raw, name: "blob \(layer.digest)")
            let decompressed: ByteSource
            switch compression {
            case .none: decompressed = file
            case .gzip: decompressed = try GzipSource(file)
            case .zstd: decompressed = try ZstdSource(file)
            }
            let hashing = HashingSource(decompressed)
            let unpacker = try LayerUnpacker(rootPath: dir, layerName: name)
            do {
                try unpacker.apply(TarReader(source: hashing))
                try hashing.drain()
            } catch let e as SwvmError where e.code == .invalidImage {
                throw SwvmError(.invalidImage, "\(name): \(e.message)")
            }
            if i < config.diffIDs.count {
                var h = hashing.hasher
                let got = h.finalizeHex()
                guard got == config.diffIDs[i].hex else {
                    throw SwvmError(.digestMismatch, "\(name): uncompressed content hashes to sha256:\(got), the config's diff_id is \(config.diffIDs[i])")
                }
            }
        }
    }

    /// Removes tmp-* directories left by a swvm killed mid-unpack. Called
    /// with the cache lock held, so none of them is in use.
    func removeStaleTemporaries() {
        guard let names = try? FS.listDirectory(root) else { return }
        for n in names where n.hasPrefix("tmp-") { try? FS.removeTree(Path.join(root, n)) }
    }
}
