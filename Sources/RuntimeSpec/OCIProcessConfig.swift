import SwvmBase

/// config.json's process (or `swvm exec -p`'s process.json) as written,
/// every field type- and range-checked. nil or empty: not given.
public struct OCIProcessConfig: Equatable, Sendable {
    public var terminal = false
    public var consoleRows: UInt16 = 0
    public var consoleCols: UInt16 = 0
    public var uid: UInt32?
    public var gid: UInt32?
    public var umask: UInt32?
    public var additionalGids: [UInt32] = []
    /// user.username (Windows' field; swvm keeps it for `swvm run`'s messages).
    public var username = ""
    public var env: [String] = []
    /// "" when absent; otherwise absolute.
    public var cwd = ""
    public var args: [String] = []
    /// nil: no process.capabilities (the process gets none).
    public var capabilities: OCICapabilitySets?
    public var rlimits: [Rlimit] = []
    public var noNewPrivileges: Bool?
    public var oomScoreAdj: Int32?

    public init() {}

    /// The bounding set's names ("NET_ADMIN"), as RunSpec.capabilities holds them.
    public var boundingNames: Set<String>? { capabilities.map { Set(Capabilities.names(inMask: $0.bounding)) } }
}

extension OCIProcessConfig {
    /// The largest umask there is (umask(2) keeps the permission bits).
    static let maxUmask: UInt32 = 0o777

    init(_ p: OCIConfigValue) throws {
        self.init()
        terminal = try p.bool("terminal") ?? false
        if let size = try p.member("consoleSize") {
            consoleRows = try size.required("height").integer(UInt16.self, what: "a terminal size")
            consoleCols = try size.required("width").integer(UInt16.self, what: "a terminal size")
        }
        if let u = try p.member("user") { try readUser(u) }
        env = try p.strings("env") ?? []
        for (i, entry) in env.enumerated() {
            // As runc: the kernel would take it, but no program could read it back.
            guard let eq = entry.firstIndex(of: "="), eq != entry.startIndex else {
                throw p.child("env[\(i)]").error("'\(entry)' is not NAME=VALUE")
            }
        }
        cwd = try p.string("cwd") ?? ""
        if !cwd.isEmpty, !cwd.hasPrefix("/") { throw p.child("cwd").error("'\(cwd)' is not an absolute path") }
        args = try p.strings("args") ?? []
        if let c = try p.member("capabilities") { capabilities = try OCIProcessConfig.capabilitySets(c) }
        rlimits = try OCIProcessConfig.rlimits(p.items("rlimits"))
        noNewPrivileges = try p.bool("noNewPrivileges")
        oomScoreAdj = try p.integer("oomScoreAdj", Int32.self, in: -1000...1000)
        try OCIProcessConfig.refuseSecurityModules(p)
    }

    mutating func readUser(_ u: OCIConfigValue) throws {
        uid = try u.member("uid")?.id("uid")
        gid = try u.member("gid")?.id("gid")
        umask = try u.integer("umask", UInt32.self, in: 0...OCIProcessConfig.maxUmask, what: "a umask")
        additionalGids = try u.items("additionalGids").map { try $0.id("gid") }
        username = try u.string("username") ?? ""
    }

    /// An AppArmor profile or SELinux label swvm would not apply: refused
    /// (fail closed) rather than ignored. swvm applies neither module.
    static func refuseSecurityModules(_ p: OCIConfigValue) throws {
        for key in ["apparmorProfile", "selinuxLabel"] {
            if let v = try p.string(key), !v.isEmpty {
                throw SwvmError(.unsupported, "\(p.file) \(p.child(key).path): '\(v)': swvm does not apply \(key == "selinuxLabel" ? "SELinux labels" : "AppArmor profiles")")
            }
        }
    }

    static func capabilitySets(_ c: OCIConfigValue) throws -> OCICapabilitySets {
        var sets = OCICapabilitySets()
        sets.bounding = try capabilityMask(c.member("bounding"))
        sets.effective = try capabilityMask(c.member("effective"))
        sets.inheritable = try capabilityMask(c.member("inheritable"))
        sets.permitted = try capabilityMask(c.member("permitted"))
        sets.ambient = try capabilityMask(c.member("ambient"))
        return sets
    }

    /// "CAP_NET_ADMIN"... as a mask; an unknown name is an error (as crun),
    /// not skipped.
    static func capabilityMask(_ v: OCIConfigValue?) throws -> UInt64 {
        guard let v else { return 0 }
        var mask: UInt64 = 0
        for item in try v.items() {
            let name = try item.string()
            guard name.hasPrefix("CAP_"), let n = Capabilities.number(String(name.dropFirst(4))) else {
                throw item.error("unknown capability '\(name)'")
            }
            mask |= 1 << UInt64(n)
        }
        return mask
    }

    /// Each type once (the spec: a duplicate is an error), soft <= hard.
    static func rlimits(_ items: [OCIConfigValue]) throws -> [Rlimit] {
        var out: [Rlimit] = []
        for r in items {
            let type = try r.required("type").string()
            guard type.hasPrefix("RLIMIT_"), let (name, resource) = try? Rlimit.lookup(type) else {
                throw r.child("type").error("unknown rlimit '\(type)'")
            }
            guard !out.contains(where: { $0.resource == resource }) else { throw r.child("type").error("\(type) is given twice") }
            let soft = try r.required("soft").integer(UInt64.self)
            let hard = try r.required("hard").integer(UInt64.self)
            guard soft <= hard else { throw r.error("soft limit \(soft) is above the hard limit \(hard)") }
            out.append(Rlimit(resource: resource, name: name, soft: soft, hard: hard))
        }
        return out
    }
}
