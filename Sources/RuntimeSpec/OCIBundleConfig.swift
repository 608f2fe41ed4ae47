import Seccomp
import SwvmBase

/// config.json as written (runtime-spec 1.0 to 1.1), each field type- and
/// range-checked but nothing yet required or looked up on disk: the one
/// reading of the file. `swvm run BUNDLE` (BundleProcess) fills what is
/// missing from its command line and the image; OCIConfig.parse requires
/// what the runtime spec requires and makes the RunSpec. Unknown fields are
/// ignored, as the spec allows.
public struct OCIBundleConfig: Equatable {
    public var ociVersion: String?
    public var process: OCIProcessConfig?
    /// root.path as written (relative to the bundle, or absolute).
    public var rootPath: String?
    public var rootReadonly = false
    public var hostname: String?
    public var domainname: String?
    public var mounts: [OCIMount] = []
    public var hooks = OCIHooks()
    public var annotations: [OCIAnnotation] = []
    public var linux = OCILinuxConfig()

    public init(json: JSON, file: String = "config.json") throws {
        let doc = OCIConfigValue(json, file: file)
        guard json.object != nil else { throw doc.error("expected a JSON object, found \(json.kindName)") }
        ociVersion = try doc.string("ociVersion")
        if let p = try doc.member("process") { process = try OCIProcessConfig(p) }
        if let root = try doc.member("root") {
            rootPath = try root.required("path").string()
            rootReadonly = try root.bool("readonly") ?? false
        }
        hostname = try OCIBundleConfig.hostName(doc, "hostname")
        domainname = try OCIBundleConfig.hostName(doc, "domainname")
        mounts = try doc.items("mounts").map(OCIBundleConfig.mount)
        if let h = try doc.member("hooks") { hooks = try OCIBundleConfig.hooks(h) }
        if let a = try doc.member("annotations") {
            annotations = try a.stringMap(allowNUL: true).map { OCIAnnotation(key: $0.0, value: $0.1) }
        }
        if let l = try doc.member("linux") { linux = try OCILinuxConfig(l) }
        if let s = linux.seccomp {
            // Checked here, so a bad profile is reported whatever reads the file;
            // made again with the run's final capabilities (Docker's includes).
            _ = try SeccompProfile.parse(s, capabilities: process?.boundingNames ?? [], context: "\(file) linux.seccomp")
        }
    }

    /// sethostname and setdomainname take at most 64 bytes (HOST_NAME_MAX).
    static func hostName(_ doc: OCIConfigValue, _ key: String) throws -> String? {
        guard let name = try doc.string(key) else { return nil }
        guard name.utf8.count <= 64 else { throw doc.child(key).error("'\(name)' is longer than 64 bytes") }
        return name
    }

    static func mount(_ m: OCIConfigValue) throws -> OCIMount {
        let mount = OCIMount(destination: try m.required("destination").absolutePath(), type: try m.string("type") ?? "",
                             source: try m.string("source") ?? "", options: try m.strings("options") ?? [])
        for key in ["uidMappings", "gidMappings"] {
            if try m.member(key) != nil {
                throw SwvmError(.unsupported, "\(m.file) \(m.child(key).path): id-mapped mounts are not supported")
            }
        }
        return mount
    }

    static func hooks(_ h: OCIConfigValue) throws -> OCIHooks {
        var hooks = OCIHooks()
        hooks.prestart = try h.items("prestart").map(hook)
        hooks.createRuntime = try h.items("createRuntime").map(hook)
        hooks.createContainer = try h.items("createContainer").map(hook)
        hooks.startContainer = try h.items("startContainer").map(hook)
        hooks.poststart = try h.items("poststart").map(hook)
        hooks.poststop = try h.items("poststop").map(hook)
        return hooks
    }

    static func hook(_ v: OCIConfigValue) throws -> OCIHook {
        OCIHook(path: try v.required("path").absolutePath(), args: try v.strings("args") ?? [], env: try v.strings("env") ?? [],
                timeout: try v.integer("timeout", Int.self, in: 1...Int(Int32.max), what: "a timeout in seconds"))
    }
}

/// config.json's linux object, as written and checked.
public struct OCILinuxConfig: Equatable {
    public var namespaces: [OCINamespace] = []
    public var uidMappings: [OCIIDMapping] = []
    public var gidMappings: [OCIIDMapping] = []
    public var devices: [OCIDevice] = []
    public var cgroupsPath: String?
    public var resources = OCIResources()
    public var sysctl: [OCISysctl] = []
    /// linux.seccomp as written (a SeccompProfile once the capabilities are known).
    public var seccomp: JSON?
    /// nil: not given (an OCI run masks nothing then; `swvm run` its defaults).
    public var maskedPaths: [String]?
    public var readonlyPaths: [String]?
    public var rootfsPropagation = ""
    public var timeOffsets: [OCITimeOffset] = []
    public var personality: String?

    public init() {}
}
