import RuntimeSpec
import SwvmBase

/// config.json as a RunSpec. The parser is RuntimeSpec's OCIConfig (the
/// one reader of config.json); until it is merged, bundles are refused
/// with a clear error.
public enum BundleConfig {
    public static func load(bundle: String, id: String) throws -> RunSpec {
        try parse(JSON.parse(try FS.readFile(Path.join(bundle, "config.json"), limit: 16 << 20)), bundle: bundle, id: id)
    }

    public static func parse(_ json: JSON, bundle: String, id: String) throws -> RunSpec {
        throw SwvmError(.unsupported, "\(bundle)/config.json: this swvm cannot read OCI bundles yet")
    }
}

extension BundleConfig {
    /// `swvm spec`'s config.json (OCIConfig.defaultConfig once merged).
    public static func defaultConfig(rootless: Bool) throws -> JSON {
        throw SwvmError(.unsupported, "swvm spec: not built in yet")
    }
}
