#if canImport(Glibc)
import Glibc
#endif
import SwvmBase

/// Writes OCI image layouts for tests: layers as given (uncompressed tar
/// or gzip through the system's gzip), a config, a manifest, index.json.
public struct ImageBuilder {
    public var layers: [[UInt8]] = []
    public var entrypoint: [String] = []
    public var cmd: [String] = []
    public var env: [String] = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    public var workingDir = ""
    public var user = ""
    public var gzip = false
    public var ref = "latest"

    public init() {}

    @discardableResult
    public func write(to dir: String) throws -> String {
        try? FS.removeTree(dir)
        try FS.makeDirectories(Path.join(dir, "blobs/sha256"))
        func blob(_ bytes: [UInt8]) throws -> (String, Int) {
            let h = SHA256.hash(bytes)
            try FS.writeFile(Path.join(dir, "blobs/sha256", h), bytes)
            return ("sha256:" + h, bytes.count)
        }
        var layerDescs: [JSON] = []
        var diffIDs: [JSON] = []
        for l in layers {
            diffIDs.append(.string("sha256:" + SHA256.hash(l)))
            let data = gzip ? try ImageBuilder.gzip(l) : l
            let (d, n) = try blob(data)
            layerDescs.append(.object([("mediaType", .string(gzip ? "application/vnd.oci.image.layer.v1.tar+gzip" : "application/vnd.oci.image.layer.v1.tar")),
                                       ("digest", .string(d)), ("size", .integer(Int64(n)))]))
        }
        let config: JSON = .object([
            ("architecture", "amd64"), ("os", "linux"),
            ("config", .object([("Entrypoint", .array(entrypoint.map { .string($0) })), ("Cmd", .array(cmd.map { .string($0) })),
                                ("Env", .array(env.map { .string($0) })), ("WorkingDir", .string(workingDir)), ("User", .string(user))])),
            ("rootfs", .object([("type", "layers"), ("diff_ids", .array(diffIDs))])),
        ])
        let (cd, cn) = try blob(Array(config.serialized().utf8))
        let manifest: JSON = .object([
            ("schemaVersion", 2), ("mediaType", "application/vnd.oci.image.manifest.v1+json"),
            ("config", .object([("mediaType", "application/vnd.oci.image.config.v1+json"), ("digest", .string(cd)), ("size", .integer(Int64(cn)))])),
            ("layers", .array(layerDescs)),
        ])
        let (md, mn) = try blob(Array(manifest.serialized().utf8))
        try FS.writeText(Path.join(dir, "oci-layout"), #"{"imageLayoutVersion":"1.0.0"}"#)
        let index: JSON = .object([("schemaVersion", 2), ("manifests", .array([.object([
            ("mediaType", "application/vnd.oci.image.manifest.v1+json"), ("digest", .string(md)), ("size", .integer(Int64(mn))),
            ("annotations", .object([("org.opencontainers.image.ref.name", .string(ref))])),
        ])]))])
        try FS.writeText(Path.join(dir, "index.json"), index.serialized())
        return md
    }

    static func gzip(_ bytes: [UInt8]) throws -> [UInt8] {
        let tmp = "/tmp/swvm-test-\(getpid())-\(randomHex(4))"
        try FS.writeFile(tmp, bytes)
        defer { unlink(tmp); unlink(tmp + ".gz") }
        let r = try Subprocess.run(["gzip", "-n", "-k", tmp])
        guard r.status == 0 else { throw SwvmError(.internalError, "gzip: \(r.output)") }
        return try FS.readFile(tmp + ".gz")
    }
}

/// A fresh temporary directory, removed by `cleanup()`.
public struct TempDir {
    public let path: String

    public init(_ name: String = "t") throws {
        path = "/tmp/swvm-test-\(name)-\(getpid())-\(randomHex(4))"
        try FS.makeDirectories(path)
    }

    public func cleanup() { try? FS.removeTree(path) }
}
