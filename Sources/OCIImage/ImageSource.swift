import SwvmBase

/// What an IMAGE argument turned out to be, ready to run.
public struct ResolvedImage {
    public enum Kind: Equatable {
        /// An OCI image layout, unpacked into the cache.
        case layout(manifest: Digest)
        /// An OCI runtime bundle (config.json + rootfs/).
        case bundle
        /// A plain root filesystem directory.
        case rootfs
    }

    public let kind: Kind
    /// The root filesystem to run (read-only to swvm: runs write elsewhere).
    public let rootfs: String
    /// Process defaults from the image (empty for bundles and plain roots).
    public let config: ImageConfig
    /// A bundle's config.json.
    public let bundleConfig: JSON?
    /// A stable key for caches derived from this image (the ext4 disk).
    public let cacheKey: String
    public let name: String
    /// The shared lock on the image's cache entry (layouts): held as long as
    /// this value lives, so `swvm cache rm/prune` leave the entry alone.
    public let cacheLock: CacheItemLock?

    public init(kind: Kind, rootfs: String, config: ImageConfig, bundleConfig: JSON?, cacheKey: String, name: String,
                cacheLock: CacheItemLock? = nil) {
        self.kind = kind
        self.rootfs = rootfs
        self.config = config
        self.bundleConfig = bundleConfig
        self.cacheKey = cacheKey
        self.name = name
        self.cacheLock = cacheLock
    }
}

public enum ImageSource {
    /// Resolves IMAGE: an OCI image layout, a runtime bundle, or a root
    /// filesystem directory.
    public static func resolve(_ path: String, ref: String? = nil, cache: RootfsCache = RootfsCache(),
                               progress: ((String) -> Void)? = nil) throws -> ResolvedImage {
        guard FS.exists(path) else { throw SwvmError(.notFound, "image \(path): no such file or directory") }
        guard FS.isDirectory(path) else {
            throw SwvmError(.invalidImage, "image \(path): not a directory (expected an OCI image layout, a runtime bundle or a root filesystem)")
        }
        let dir = try FS.realPath(path)
        if FS.exists(Path.join(dir, "oci-layout")) || FS.exists(Path.join(dir, "index.json")) {
            let layout = try ImageLayout(path: dir)
            let manifest = try layout.manifest(ref: ref)
            let config = try layout.imageConfig(manifest)
            let entry = try cache.rootfs(for: manifest, config: config, layout: layout, progress: progress)
            return ResolvedImage(kind: .layout(manifest: manifest.digest), rootfs: cache.rootfsPath(manifest.digest), config: config,
                                 bundleConfig: nil, cacheKey: manifest.digest.hex, name: path, cacheLock: entry)
        }
        if ref != nil { throw SwvmError(.invalidArgument, "--ref applies to OCI image layouts; \(path) is not one") }
        let bundleConfig = Path.join(dir, "config.json")
        if FS.exists(bundleConfig),
           let bytes = try RootedPath.readRegularFile(root: dir, "config.json", limit: 4 << 20, name: bundleConfig) {
            let json: JSON
            do { json = try JSON.parse(bytes) } catch let e as JSON.ParseError {
                throw SwvmError(.invalidImage, "\(bundleConfig): invalid JSON: \(e)")
            }
            guard json.object != nil else { throw SwvmError(.invalidImage, "\(bundleConfig): not a JSON object") }
            let rootPath = json["root"]?["path"]?.string ?? "rootfs"
            let rootfs = rootPath.hasPrefix("/") ? rootPath : Path.join(dir, rootPath)
            guard FS.isDirectory(rootfs) else {
                throw SwvmError(.invalidImage, "\(bundleConfig): root.path '\(rootPath)' is not a directory")
            }
            return ResolvedImage(kind: .bundle, rootfs: try FS.realPath(rootfs), config: ImageConfig(), bundleConfig: json,
                                 cacheKey: "bundle-" + SHA256.hash(Array(dir.utf8)), name: path)
        }
        guard !(try FS.listDirectory(dir)).isEmpty else {
            throw SwvmError(.invalidImage, "image \(path): an empty directory is not an image (expected an OCI image layout, a runtime bundle or a root filesystem)")
        }
        return ResolvedImage(kind: .rootfs, rootfs: dir, config: ImageConfig(), bundleConfig: nil,
                             cacheKey: "rootfs-" + SHA256.hash(Array(dir.utf8)), name: path)
    }
}
