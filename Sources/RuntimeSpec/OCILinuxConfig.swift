import CSyscalls
import SwvmBase

extension OCILinuxConfig {
    /// The namespace types of runtime-spec 1.1 and their CLONE_NEW* flags.
    public static let namespaceTypes: [(String, UInt)] = [
        ("pid", sys_CLONE_NEWPID), ("network", sys_CLONE_NEWNET), ("mount", sys_CLONE_NEWNS), ("ipc", sys_CLONE_NEWIPC),
        ("uts", sys_CLONE_NEWUTS), ("user", sys_CLONE_NEWUSER), ("cgroup", sys_CLONE_NEWCGROUP), ("time", 0x80),
    ]

    static let propagations: Set<String> = ["", "shared", "slave", "private", "unbindable", "rshared", "rslave", "rprivate", "runbindable"]

    init(_ l: OCIConfigValue) throws {
        self.init()
        namespaces = try OCILinuxConfig.namespaces(l.items("namespaces"))
        uidMappings = try OCILinuxConfig.idMappings(l.member("uidMappings"))
        gidMappings = try OCILinuxConfig.idMappings(l.member("gidMappings"))
        try checkUserNamespace(at: l)
        devices = try l.items("devices").map(OCILinuxConfig.device)
        cgroupsPath = try l.string("cgroupsPath")
        // Joined under each controller's mount: a ".." would leave the hierarchy.
        if let path = cgroupsPath, path.split(separator: "/").contains("..") {
            throw l.child("cgroupsPath").error("'\(path)' has a '..' component")
        }
        if let r = try l.member("resources") { resources = try OCIResources(r) }
        if let s = try l.member("sysctl") {
            sysctl = try s.stringMap().map { OCISysctl(key: $0.0, value: $0.1) }
            for entry in sysctl { try OCILinuxConfig.checkSysctlKey(entry.key, at: s.child(entry.key)) }
        }
        seccomp = try l.member("seccomp")?.json
        maskedPaths = try l.member("maskedPaths")?.items().map { try $0.absolutePath() }
        readonlyPaths = try l.member("readonlyPaths")?.items().map { try $0.absolutePath() }
        rootfsPropagation = try l.string("rootfsPropagation") ?? ""
        if !OCILinuxConfig.propagations.contains(rootfsPropagation) {
            throw l.child("rootfsPropagation").error("'\(rootfsPropagation)' is not a mount propagation (shared, slave, private, unbindable or their r forms)")
        }
        // mountLabel (SELinux) is ignored: swvm runs without it, as on hosts without SELinux.
        timeOffsets = try OCILinuxConfig.timeOffsets(l.member("timeOffsets"), namespaces: namespaces)
        if let p = try l.member("personality") {
            personality = try p.required("domain").string()
            guard personality == "LINUX" || personality == "LINUX32" else {
                throw p.child("domain").error("'\(personality!)' is not LINUX or LINUX32")
            }
            // No flags are defined yet: any given is refused rather than ignored.
            if let flags = try p.strings("flags"), let flag = flags.first { throw p.child("flags").error("unknown personality flag '\(flag)'") }
        }
    }

    /// Mappings go with a user namespace of the container's own, which
    /// needs both; one joined by path is set up already (the spec: anything
    /// else about it is an error).
    func checkUserNamespace(at l: OCIConfigValue) throws {
        let mapped = !uidMappings.isEmpty || !gidMappings.isEmpty
        guard let user = namespaces.first(where: { $0.type == "user" }) else {
            if mapped { throw l.child("uidMappings").error("id mappings need a user namespace (linux.namespaces has none)") }
            return
        }
        if user.path != nil, mapped {
            throw l.child("uidMappings").error("the user namespace is joined by path, so it is mapped already")
        }
        if user.path == nil, uidMappings.isEmpty || gidMappings.isEmpty {
            throw l.child(uidMappings.isEmpty ? "uidMappings" : "gidMappings").error("missing: a user namespace of the container's own needs uidMappings and gidMappings")
        }
    }

    /// Offsets of the monotonic and boottime clocks, each once, for a time
    /// namespace of the container's own.
    static func timeOffsets(_ v: OCIConfigValue?, namespaces: [OCINamespace]) throws -> [OCITimeOffset] {
        guard let v else { return [] }
        guard let members = v.json.object else { throw v.error("expected an object, found \(v.json.kindName)") }
        guard members.isEmpty || namespaces.contains(where: { $0.type == "time" && $0.path == nil }) else {
            throw v.error("time offsets need a time namespace of the container's own")
        }
        var offsets: [OCITimeOffset] = []
        // A clock given twice: its last value (as JSON's subscript reads it), once.
        for (clock, _) in members where !offsets.contains(where: { $0.clock == clock }) {
            guard clock == "monotonic" || clock == "boottime" else { throw v.child(clock).error("unknown clock '\(clock)' (monotonic or boottime)") }
            let offset = try v.required(clock)
            offsets.append(OCITimeOffset(clock: clock, seconds: try offset.integer("secs", Int64.self) ?? 0,
                                         nanoseconds: try offset.integer("nanosecs", UInt32.self, in: 0...999_999_999) ?? 0))
        }
        return offsets
    }

    /// Each known type once; a path to join is absolute.
    static func namespaces(_ items: [OCIConfigValue]) throws -> [OCINamespace] {
        var out: [OCINamespace] = []
        for item in items {
            let type = try item.required("type").string()
            guard namespaceTypes.contains(where: { $0.0 == type }) else {
                throw item.child("type").error("unknown namespace type '\(type)' (known: \(namespaceTypes.map(\.0).joined(separator: ", ")))")
            }
            guard !out.contains(where: { $0.type == type }) else { throw item.child("type").error("the \(type) namespace is given twice") }
            out.append(OCINamespace(type: type, path: try item.member("path")?.absolutePath()))
        }
        return out
    }

    /// The kernel takes at most 340 lines per map, each inside 32 bits.
    static func idMappings(_ v: OCIConfigValue?) throws -> [OCIIDMapping] {
        guard let v else { return [] }
        let items = try v.items()
        guard items.count <= 340 else { throw v.error("\(items.count) mappings; the kernel takes at most 340") }
        return try items.map { m in
            let mapping = OCIIDMapping(containerID: try m.required("containerID").integer(UInt32.self),
                                       hostID: try m.required("hostID").integer(UInt32.self),
                                       size: try m.required("size").integer(UInt32.self, in: 1...UInt32.max))
            guard UInt64(mapping.containerID) + UInt64(mapping.size) <= 1 << 32, UInt64(mapping.hostID) + UInt64(mapping.size) <= 1 << 32 else {
                throw m.child("size").error("\(mapping.size) ids from \(mapping.containerID) (host \(mapping.hostID)) go past 4294967295")
            }
            return mapping
        }
    }

    static func device(_ d: OCIConfigValue) throws -> OCIDevice {
        let path = try d.required("path").absolutePath()
        let type = try d.required("type").string()
        guard ["c", "b", "u", "p"].contains(type) else { throw d.child("type").error("'\(type)' is not c, b, u or p") }
        // A FIFO has no numbers; the others need both.
        let needsNumbers = type != "p"
        let major = try needsNumbers ? d.required("major") : d.member("major")
        let minor = try needsNumbers ? d.required("minor") : d.member("minor")
        return OCIDevice(path: path, type: type,
                         major: try major?.integer(Int64.self, in: 0...Int64(OCIConfig.maxMajor)) ?? 0,
                         minor: try minor?.integer(Int64.self, in: 0...Int64(OCIConfig.maxMinor)) ?? 0,
                         fileMode: try d.integer("fileMode", UInt32.self, in: 0...0o7777, what: "a file mode"),
                         uid: try d.member("uid")?.id("uid"), gid: try d.member("gid")?.id("gid"))
    }

    /// A sysctl becomes a file under /proc/sys: no empty, "." or ".." part
    /// (dots or slashes separate them, as runc reads either form).
    static func checkSysctlKey(_ key: String, at v: OCIConfigValue) throws {
        let parts = key.contains("/") ? key.split(separator: "/", omittingEmptySubsequences: false)
                                      : key.split(separator: ".", omittingEmptySubsequences: false)
        guard !key.isEmpty, parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else {
            throw v.error("'\(key)' is not a sysctl name")
        }
    }
}
