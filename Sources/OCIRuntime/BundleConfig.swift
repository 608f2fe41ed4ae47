import RuntimeSpec
import SwvmBase

/// config.json, read by RuntimeSpec's OCIConfig (the one reader of
/// config.json, process.json and resources.json).
public struct BundleConfig {
    public var spec: RunSpec
    /// The document, kept in the state directory for exec.
    public var json: JSON

    public init(spec: RunSpec, json: JSON) {
        self.spec = spec
        self.json = json
    }

    /// BUNDLE/config.json as container `id`'s RunSpec; `bundle` is absolute.
    public static func load(bundle: String, id: String) throws -> BundleConfig {
        let json = try OCIConfig.readConfig(bundle: bundle)
        return BundleConfig(spec: try OCIConfig.parse(json, bundle: bundle, id: id), json: json)
    }
}

extension ResourceUpdate {
    /// runc update -r's linux.resources: what swvm update changes.
    public init(_ r: OCIResources) {
        self.init()
        memory = r.memory.limit
        memorySwap = r.memory.swap
        cpuQuota = r.cpu.quota
        cpuPeriod = r.cpu.period
        cpuShares = r.cpu.shares
        pids = r.pidsLimit
    }
}
