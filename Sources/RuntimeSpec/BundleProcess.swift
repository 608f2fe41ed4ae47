import SwvmBase

/// What `swvm run BUNDLE` takes from an OCI runtime bundle's config.json
/// (as written by `crun spec`, `runc spec` or `umoci unpack`): a view on
/// OCIBundleConfig, the one reading of the file that the OCI commands use
/// too. `swvm run` fills what the bundle lacks from its command line and
/// makes the standard mounts itself; of config.json's mounts it keeps the
/// bind and tmpfs ones beyond those.
public struct BundleProcess {
    /// config.json, all of it.
    public let config: OCIBundleConfig

    public var args: [String] { config.process?.args ?? [] }
    public var env: [String] { config.process?.env ?? [] }
    public var cwd: String { config.process?.cwd ?? "" }
    public var user: String { config.process?.username ?? "" }
    public var uid: UInt32? { config.process?.uid }
    public var gid: UInt32? { config.process?.gid }
    public var additionalGids: [UInt32] { config.process?.additionalGids ?? [] }
    public var hostname: String? { config.hostname }
    /// The bounding set, when config.json gives capabilities.
    public var capabilities: Set<String>? { config.process?.boundingNames }
    public var rlimits: [Rlimit] { config.process?.rlimits ?? [] }
    public var noNewPrivileges: Bool? { config.process?.noNewPrivileges }
    public var readOnlyRoot: Bool { config.rootReadonly }
    public var resources: ResourceLimits { OCIConfig.resourceLimits(config.linux.resources) }
    public var seccomp: JSON? { config.linux.seccomp }
    public var maskedPaths: [String]? { config.linux.maskedPaths }
    public var readonlyPaths: [String]? { config.linux.readonlyPaths }
    public var mounts: [MountSpec] { config.mounts.compactMap(BundleProcess.mountSpec) }

    /// Destinations swvm always sets up itself.
    static let standardDestinations: Set<String> = ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"]

    public init(json: JSON) throws {
        config = try OCIBundleConfig(json: json)
    }

    /// A bind or tmpfs mount of config.json as `swvm run` makes it; nil for
    /// the standard ones and other types.
    static func mountSpec(_ m: OCIMount) -> MountSpec? {
        guard !standardDestinations.contains(m.destination) else { return nil }
        let ro = m.options.contains("ro")
        if m.type == "bind" || m.options.contains("bind") || m.options.contains("rbind") {
            return m.source.isEmpty ? nil : MountSpec(kind: .bind(source: m.source), destination: m.destination, readOnly: ro)
        }
        if m.type == "tmpfs" {
            return MountSpec(kind: .tmpfs, destination: m.destination, readOnly: ro, options: m.options.filter { $0 != "ro" && $0 != "rw" })
        }
        return nil
    }
}
