import Seccomp
import SwvmBase

/// An OCI runtime bundle's config.json (runtime-spec 1.0 to 1.1) as a
/// RunSpec with `oci` set: read once (OCIBundleConfig), the spec's required
/// fields required, the root and hooks looked up, then made into the
/// settings every run has (RunSpec) and those only a bundle has
/// (OCISettings). Every error names the file and the JSON path:
/// "config.json process.user.uid: uid 4294967296 is out of range ...".
public enum OCIConfig {
    /// The runtime-spec version swvm implements (`swvm --version`, state.json).
    public static let specVersion = "1.1.0"
    /// The largest config.json swvm reads (runc's are a few KiB; podman's
    /// with a long seccomp profile under 100 KiB).
    public static let maxConfigSize: Int64 = 16 << 20
    /// The kernel's device numbers: 12 bits of major, 20 of minor.
    public static let maxMajor: UInt32 = 4095
    public static let maxMinor: UInt32 = (1 << 20) - 1

    /// BUNDLE/config.json, parsed. The bundle's path is made absolute, so
    /// root.path is too.
    public static func load(bundle: String, id: String) throws -> RunSpec {
        let dir: String
        do { dir = try FS.realPath(bundle) } catch {
            throw SwvmError(.notFound, "bundle \(bundle): no such directory")
        }
        return try parse(try readConfig(bundle: dir), bundle: dir, id: id)
    }

    /// The JSON of BUNDLE/config.json: a regular file of at most
    /// maxConfigSize bytes, nested at most JSON.maxDepth deep.
    public static func readConfig(bundle dir: String) throws -> JSON {
        let name = Path.join(dir, "config.json")
        guard FS.isDirectory(dir) else { throw SwvmError(.notFound, "bundle \(dir): not a directory") }
        guard let bytes = try RootedPath.readRegularFile(root: dir, "config.json", limit: maxConfigSize, name: name) else {
            throw SwvmError(.notFound, "bundle \(dir) has no config.json")
        }
        do { return try JSON.parse(bytes) } catch let e as JSON.ParseError {
            throw SwvmError(.invalidImage, "config.json: invalid JSON: \(e)")
        }
    }

    /// A parsed config.json as the RunSpec of container `id`, its relative
    /// root.path taken from `bundle` (an absolute path).
    public static func parse(_ json: JSON, bundle: String, id: String) throws -> RunSpec {
        let config = try OCIBundleConfig(json: json)
        try checkVersion(config.ociVersion)
        guard let process = config.process else { throw OCIConfigValue(.null, path: "process").error("missing (it is required)") }
        try checkRequired(process, file: "config.json", at: "process")
        let root = try rootDirectory(config, bundle: bundle)
        try checkHooks(config.hooks)
        try checkNamespacePaths(config.linux.namespaces)
        try checkSysctls(config.linux.sysctl, namespaces: config.linux.namespaces)
        try checkHostNames(config)
        return try runSpec(config, process: process, root: root, id: id)
    }

    /// A process.json (`swvm exec -p`): as config.json's process, with args
    /// and cwd required.
    public static func parseProcess(_ json: JSON, file: String = "process.json") throws -> OCIProcessConfig {
        guard json.object != nil else { throw OCIConfigValue(json, file: file).error("expected a JSON object, found \(json.kindName)") }
        let process = try OCIProcessConfig(OCIConfigValue(json, file: file))
        try checkRequired(process, file: file, at: "")
        return process
    }

    /// linux.resources, or a resources.json of `swvm update -r`.
    public static func parseResources(_ json: JSON, file: String = "resources.json") throws -> OCIResources {
        try OCIResources(OCIConfigValue(json, file: file))
    }

    /// runtime-spec 1.x, pre-releases ("1.0.2-dev") included: minor versions
    /// only add fields, and an unknown field is ignored (as runc does), so a
    /// newer engine's 1.2.0 config still runs; 2.x is another format.
    static func checkVersion(_ version: String?) throws {
        let at = OCIConfigValue(.null, path: "ociVersion")
        guard let version else { throw at.error("missing (it is required)") }
        let core = version.prefix { $0 != "-" && $0 != "+" }
        let parts = core.split(separator: ".", omittingEmptySubsequences: false).map { Int($0) }
        guard parts.count == 3, parts.allSatisfy({ ($0 ?? -1) >= 0 }) else {
            throw at.error("'\(version)' is not a version (MAJOR.MINOR.PATCH)")
        }
        guard parts[0] == 1 else {
            throw at.error("runtime-spec \(version) is not supported: swvm implements 1.x (up to \(specVersion))")
        }
    }

    /// What the runtime spec requires of a process to start (runc's checks).
    static func checkRequired(_ p: OCIProcessConfig, file: String, at path: String) throws {
        let at = OCIConfigValue(.null, path: path, file: file)
        guard !p.args.isEmpty else { throw at.child("args").error("missing or empty (the process needs a program to run)") }
        guard !p.cwd.isEmpty else { throw at.child("cwd").error("missing (it is required, an absolute path)") }
    }
}
