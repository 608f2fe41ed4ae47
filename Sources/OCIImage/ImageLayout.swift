#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import SwvmBase

/// An image manifest: its config and layers, in order.
public struct Manifest {
    public let digest: Digest
    public let config: Descriptor
    public let layers: [Descriptor]
}

/// An OCI image layout directory (oci-layout, index.json, blobs/), as
/// written by umoci, skopeo and buildah. Every blob is read by digest and
/// checked against it and its descriptor's size before anything uses it.
public struct ImageLayout {
    public let path: String
    public let index: JSON
    /// The layout directory: every file of it is opened inside it, and only
    /// if it is a regular file (RootedPath.openRegularFile).
    let dirFD: FileDescriptor

    static let refAnnotation = "org.opencontainers.image.ref.name"
    static let maxDocumentSize = 4 << 20

    public init(path: String) throws {
        self.path = path
        dirFD = try FileDescriptor.open(path, sys_O_PATH | O_DIRECTORY)
        let layoutFile = Path.join(path, "oci-layout")
        guard let layoutBytes = try RootedPath.readRegularFile(rootFD: dirFD.raw, "oci-layout", limit: 64 << 10, name: layoutFile) else {
            throw SwvmError(.invalidImage, "\(path): not an OCI image layout (no oci-layout file)")
        }
        let layout: JSON
        do { layout = try JSON.parse(layoutBytes) } catch let e as JSON.ParseError {
            throw SwvmError(.invalidImage, "\(layoutFile): invalid JSON: \(e)")
        }
        guard let version = layout["imageLayoutVersion"]?.string else {
            throw SwvmError(.invalidImage, "\(layoutFile): no imageLayoutVersion")
        }
        guard version.hasPrefix("1.") else {
            throw SwvmError(.invalidImage, "\(layoutFile): image layout version \(version) is not supported (1.x is)")
        }
        let indexFile = Path.join(path, "index.json")
        guard let indexBytes = try RootedPath.readRegularFile(rootFD: dirFD.raw, "index.json", limit: Int64(ImageLayout.maxDocumentSize),
                                                              name: indexFile) else {
            throw SwvmError(.invalidImage, "\(path): OCI image layout without index.json")
        }
        index = try ImageLayout.parseIndex(indexBytes, file: indexFile)
    }

    /// Reads index.json's bytes (no I/O: the fuzzers call it).
    public static func parseIndex(_ bytes: [UInt8], file: String) throws -> JSON {
        let index: JSON
        do {
            index = try JSON.parse(bytes)
        } catch let e as JSON.ParseError {
            throw SwvmError(.invalidImage, "\(file): invalid JSON: \(e)")
        }
        guard index.object != nil else { throw SwvmError(.invalidImage, "\(file): not a JSON object") }
        guard index["schemaVersion"]?.int == 2 else {
            throw SwvmError(.invalidImage, "\(file): schemaVersion must be 2")
        }
        return index
    }

    // MARK: blobs

    /// Opens a blob after checking that it exists and has the descriptor's size.
    public func openBlob(_ desc: Descriptor, context: String) throws -> FileDescriptor {
        let file: FileDescriptor, st: stat
        do {
            (file, st) = try RootedPath.openRegularFile(rootFD: dirFD.raw, Path.join("blobs", desc.digest.algorithm, desc.digest.hex),
                                                        limit: Int64.max, name: "blob \(desc.digest)")
        } catch let e as SwvmError where e.code == .notFound {
            throw SwvmError(.invalidImage, "\(context): blob \(desc.digest) is missing from \(path)/blobs")
        } catch let e as SwvmError {
            throw SwvmError(e.code, "\(context): \(e.message)")
        }
        guard Int64(st.st_size) == desc.size else {
            throw SwvmError(.digestMismatch, "\(context): blob \(desc.digest) is \(st.st_size) bytes, its descriptor says \(desc.size)")
        }
        return file
    }

    /// Hashes a whole blob and compares it with its digest.
    public func verifyBlob(_ desc: Descriptor, context: String) throws {
        let fd = try openBlob(desc, context: context)
        let src = FileSource(fd: fd.raw, name: "blob \(desc.digest)")
        let buf = UnsafeMutableRawPointer.allocate(byteCount: 1 << 16, alignment: 16)
        defer { buf.deallocate() }
        while try src.read(into: buf, count: 1 << 16) > 0 {}
        var h = src.hasher
        let got = h.finalizeHex()
        guard got == desc.digest.hex else {
            throw SwvmError(.digestMismatch, "\(context): blob \(desc.digest) does not match its digest (content hashes to sha256:\(got))")
        }
    }

    /// Reads a small JSON blob (manifest, index, config), verified.
    public func readJSONBlob(_ desc: Descriptor, context: String) throws -> JSON {
        guard desc.size <= Int64(ImageLayout.maxDocumentSize) else {
            throw SwvmError(.invalidImage, "\(context): \(desc.digest) is \(desc.size) bytes, too large for a JSON document")
        }
        let bytes = try openBlob(desc, context: context).readAll(limit: Int(desc.size))
        let got = SHA256.hash(bytes)
        guard got == desc.digest.hex else {
            throw SwvmError(.digestMismatch, "\(context): blob \(desc.digest) does not match its digest (content hashes to sha256:\(got))")
        }
        do { return try JSON.parse(bytes) } catch let e as JSON.ParseError {
            throw SwvmError(.invalidImage, "\(context): \(desc.digest) is not valid JSON: \(e)")
        }
    }

    // MARK: manifests

    /// The refs the index names (org.opencontainers.image.ref.name).
    public var refs: [String] {
        (index["manifests"]?.array ?? []).compactMap { $0["annotations"]?[ImageLayout.refAnnotation]?.string }
    }

    /// Picks the manifest: by `ref` when given, else the only one (an
    /// image index inside is resolved to linux/amd64).
    public func manifest(ref: String?) throws -> Manifest {
        let ctx = Path.join(path, "index.json")
        guard let entries = index["manifests"]?.array else { throw SwvmError(.invalidImage, "\(ctx): no manifests list") }
        let descs = try entries.enumerated().map { try Descriptor(json: $0.element, context: "\(ctx): manifests[\($0.offset)]") }
        guard !descs.isEmpty else { throw SwvmError(.invalidImage, "\(ctx): the image has no manifests") }
        let chosen: Descriptor
        if let ref {
            let matches = descs.filter { $0.annotations[ImageLayout.refAnnotation] == ref }
            guard let m = matches.first else {
                let known = refs.isEmpty ? "none" : refs.joined(separator: ", ")
                throw SwvmError(.notFound, "\(path): no manifest with ref '\(ref)' (refs in index.json: \(known))")
            }
            chosen = m
        } else if descs.count == 1 {
            chosen = descs[0]
        } else if let m = try pickPlatform(descs, context: ctx) {
            chosen = m
        } else {
            throw SwvmError(.invalidArgument, "\(path) holds \(descs.count) manifests; choose one with --ref (refs: \(refs.joined(separator: ", ")))")
        }
        return try loadManifest(chosen, depth: 0)
    }

    private func pickPlatform(_ descs: [Descriptor], context: String) throws -> Descriptor? {
        let withPlatform = descs.filter { $0.platform != nil }
        guard withPlatform.count == descs.count else { return nil }
        return descs.first { $0.platform!.os == "linux" && $0.platform!.architecture == "amd64" }
    }

    private func loadManifest(_ desc: Descriptor, depth: Int) throws -> Manifest {
        let ctx = "manifest \(desc.digest)"
        guard depth < 4 else { throw SwvmError(.invalidImage, "\(ctx): image indexes nested too deeply") }
        switch try ImageLayout.parseManifest(try readJSONBlob(desc, context: ctx), descriptor: desc) {
        case .manifest(let m):
            return m
        case .index(let entries):
            guard let m = (entries.count == 1 ? entries.first : try pickPlatform(entries, context: ctx)) else {
                throw SwvmError(.unsupported, "\(ctx): the image index has no linux/amd64 manifest")
            }
            return try loadManifest(m, depth: depth + 1)
        }
    }

    /// What a manifest blob holds: an image manifest, or an image index
    /// (its entries).
    public enum ManifestDocument {
        case manifest(Manifest)
        case index([Descriptor])
    }

    /// Reads a manifest or image index document (no I/O: the fuzzers call it).
    public static func parseManifest(_ doc: JSON, descriptor desc: Descriptor) throws -> ManifestDocument {
        let ctx = "manifest \(desc.digest)"
        let type = doc["mediaType"]?.string ?? desc.mediaType
        if MediaType.isIndex(type) || (doc["manifests"] != nil && doc["layers"] == nil) {
            return .index(try (doc["manifests"]?.array ?? []).enumerated().map {
                try Descriptor(json: $0.element, context: "\(ctx): manifests[\($0.offset)]")
            })
        }
        guard doc["schemaVersion"]?.int == 2 else { throw SwvmError(.invalidImage, "\(ctx): schemaVersion must be 2") }
        guard let configJSON = doc["config"] else { throw SwvmError(.invalidImage, "\(ctx): no config descriptor") }
        let config = try Descriptor(json: configJSON, context: "\(ctx): config")
        guard let layersJSON = doc["layers"]?.array else { throw SwvmError(.invalidImage, "\(ctx): no layers list") }
        let layers = try layersJSON.enumerated().map { try Descriptor(json: $0.element, context: "\(ctx): layers[\($0.offset)]") }
        for (i, l) in layers.enumerated() {
            let t = l.mediaType
            if t.contains(MediaType.nondistributable) || t.contains("foreign") {
                throw SwvmError(.unsupported, "\(ctx): layer \(i + 1) is a non-distributable layer (\(t)), which swvm cannot fetch")
            }
            let known = t.isEmpty || t.hasPrefix("application/vnd.oci.image.layer.v1.tar") || t.hasPrefix("application/vnd.docker.image.rootfs.diff.tar")
            if !known { throw SwvmError(.unsupported, "\(ctx): layer \(i + 1) has unsupported media type '\(t)'") }
            if t.hasSuffix("+gzip") || t.hasSuffix("+zstd") || t.hasSuffix(".tar") || t.hasSuffix("tar.gzip") || t.isEmpty { continue }
            throw SwvmError(.unsupported, "\(ctx): layer \(i + 1) has unsupported compression ('\(t)')")
        }
        return .manifest(Manifest(digest: desc.digest, config: config, layers: layers))
    }

    public func imageConfig(_ m: Manifest) throws -> ImageConfig {
        let ctx = "image config \(m.config.digest)"
        let cfg = try ImageConfig(json: try readJSONBlob(m.config, context: ctx), context: ctx)
        if !cfg.os.isEmpty && cfg.os != "linux" {
            throw SwvmError(.unsupported, "\(ctx): image is for \(cfg.os), swvm runs linux images")
        }
        if !cfg.architecture.isEmpty && cfg.architecture != "amd64" {
            throw SwvmError(.unsupported, "\(ctx): image is for \(cfg.architecture), this host is amd64")
        }
        if !cfg.diffIDs.isEmpty && cfg.diffIDs.count != m.layers.count {
            throw SwvmError(.invalidImage, "\(ctx): \(cfg.diffIDs.count) diff_ids for \(m.layers.count) layers")
        }
        return cfg
    }
}
