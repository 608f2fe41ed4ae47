import SwvmBase

/// What swvm takes from an OCI runtime bundle's config.json (as written by
/// `crun spec`, `runc spec` or `umoci unpack`): the process, hostname,
/// capabilities, rlimits, mounts beyond the standard ones, resources,
/// seccomp, masked and read-only paths.
public struct BundleProcess {
    public var args: [String] = []
    public var env: [String] = []
    public var cwd = ""
    public var user = ""
    public var uid: UInt32?
    public var gid: UInt32?
    public var additionalGids: [UInt32] = []
    public var hostname: String?
    public var capabilities: Set<String>?
    public var rlimits: [Rlimit] = []
    public var noNewPrivileges: Bool?
    public var readOnlyRoot = false
    public var mounts: [MountSpec] = []
    public var resources = ResourceLimits()
    public var seccomp: JSON?
    public var maskedPaths: [String]?
    public var readonlyPaths: [String]?

    /// Destinations swvm always sets up itself.
    static let standardDestinations: Set<String> = ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"]

    public init(json: JSON) throws {
        let p = json["process"]
        args = (p?["args"]?.array ?? []).compactMap(\.string)
        env = (p?["env"]?.array ?? []).compactMap(\.string)
        cwd = p?["cwd"]?.string ?? ""
        if let u = p?["user"] {
            uid = try u["uid"].map { try BundleProcess.id($0, "uid", at: "process.user.uid") }
            gid = try u["gid"].map { try BundleProcess.id($0, "gid", at: "process.user.gid") }
            additionalGids = try (u["additionalGids"]?.array ?? []).enumerated().map {
                try BundleProcess.id($0.element, "gid", at: "process.user.additionalGids[\($0.offset)]")
            }
            user = u["username"]?.string ?? ""
        }
        hostname = json["hostname"]?.string
        if let bounding = p?["capabilities"]?["bounding"]?.array {
            capabilities = Set(bounding.compactMap { $0.string.flatMap { try? Capabilities.canonical($0) } })
        }
        rlimits = (p?["rlimits"]?.array ?? []).compactMap { r in
            guard let t = r["type"]?.string, let s = r["soft"]?.int64, let h = r["hard"]?.int64 else { return nil }
            return try? Rlimit(oci: t, soft: UInt64(bitPattern: s), hard: UInt64(bitPattern: h))
        }
        noNewPrivileges = p?["noNewPrivileges"]?.bool
        readOnlyRoot = json["root"]?["readonly"]?.bool ?? false
        for m in json["mounts"]?.array ?? [] {
            guard let dest = m["destination"]?.string, !BundleProcess.standardDestinations.contains(dest) else { continue }
            let options = (m["options"]?.array ?? []).compactMap(\.string)
            let ro = options.contains("ro")
            let type = m["type"]?.string ?? ""
            if type == "bind" || options.contains("bind") || options.contains("rbind"), let src = m["source"]?.string {
                mounts.append(MountSpec(kind: .bind(source: src), destination: dest, readOnly: ro))
            } else if type == "tmpfs" {
                mounts.append(MountSpec(kind: .tmpfs, destination: dest, readOnly: ro,
                                        options: options.filter { $0 != "ro" && $0 != "rw" }))
            }
        }
        let linux = json["linux"]
        if let r = linux?["resources"] {
            if let m = r["memory"]?["limit"]?.int64, m > 0 { resources.memory = UInt64(m) }
            if let q = r["cpu"]?["quota"]?.int64, q > 0 { resources.cpuQuota = q }
            if let per = r["cpu"]?["period"]?.int64, per > 0 { resources.cpuPeriod = UInt64(per) }
            if let pids = r["pids"]?["limit"]?.int64, pids > 0 { resources.pids = pids }
        }
        if let s = linux?["seccomp"], !s.isNull { seccomp = s }
        maskedPaths = linux?["maskedPaths"]?.array?.compactMap(\.string)
        readonlyPaths = linux?["readonlyPaths"]?.array?.compactMap(\.string)
    }

    /// A uid or gid of config.json: a whole number in range, never truncated.
    static func id(_ value: JSON, _ kind: String, at path: String) throws -> UInt32 {
        let source = "config.json \(path)"
        switch value {
        case .integer(let i): return try IDNumber.checked(i, kind, source: source, code: .invalidImage)
        case .number(let d) where d.rounded() == d && d >= 0 && d < 1.8e19:
            return try IDNumber.checked(UInt64(d), kind, source: source, code: .invalidImage)
        default: throw SwvmError(.invalidImage, "\(source): \(kind) \(value.serialized()) is not a whole number")
        }
    }
}
