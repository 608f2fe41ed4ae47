import SwvmBase

extension OCIResources {
    /// linux.resources (or a resources.json of `swvm update -r`), every
    /// number range-checked.
    init(_ v: OCIConfigValue) throws {
        self.init()
        for rule in try v.items("devices") { devices.append(try OCIResources.deviceRule(rule)) }
        if let m = try v.member("memory") { memory = try OCIResources.memory(m) }
        if let c = try v.member("cpu") { cpu = try OCIResources.cpu(c) }
        if let p = try v.member("pids") { pidsLimit = try p.integer("limit", Int64.self, in: -1...Int64.max) }
        if let b = try v.member("blockIO") { blockIO = try OCIResources.blockIO(b) }
        for h in try v.items("hugepageLimits") {
            hugepageLimits.append(OCIHugepageLimit(pageSize: try h.required("pageSize").string(),
                                                   limit: try h.required("limit").integer(UInt64.self)))
        }
        if let n = try v.member("network") {
            network.classID = try n.integer("classID", UInt32.self)
            for p in try n.items("priorities") {
                network.priorities.append(OCIInterfacePriority(name: try p.required("name").string(),
                                                               priority: try p.required("priority").integer(UInt32.self)))
            }
        }
        if let u = try v.member("unified") {
            unified = try u.stringMap().map { OCIKeyValue(key: $0.0, value: $0.1) }
            for entry in unified where entry.key.contains("/") || entry.key.hasPrefix(".") {
                throw u.child(entry.key).error("not a cgroup file name")
            }
        }
        _ = try v.member("rdma")   // runc 1.1 applies it only with the rdma controller; type-checked as an object
    }

    static func deviceRule(_ r: OCIConfigValue) throws -> OCIDeviceRule {
        var rule = OCIDeviceRule(allow: try r.required("allow").bool())
        rule.type = try r.string("type")
        if let t = rule.type, !["a", "b", "c"].contains(t) { throw r.child("type").error("'\(t)' is not a, b or c") }
        rule.major = try r.integer("major", Int64.self, in: -1...Int64(OCIConfig.maxMajor))
        rule.minor = try r.integer("minor", Int64.self, in: -1...Int64(OCIConfig.maxMinor))
        // -1 is runc's wildcard, as is an absent number.
        if rule.major == -1 { rule.major = nil }
        if rule.minor == -1 { rule.minor = nil }
        rule.access = try r.string("access")
        if let a = rule.access, a.isEmpty || !a.allSatisfy({ "rwm".contains($0) }) {
            throw r.child("access").error("'\(a)' is not made of r, w and m")
        }
        return rule
    }

    static func memory(_ m: OCIConfigValue) throws -> OCIMemoryResources {
        var r = OCIMemoryResources()
        r.limit = try m.integer("limit", Int64.self, in: -1...Int64.max)
        r.reservation = try m.integer("reservation", Int64.self, in: -1...Int64.max)
        r.swap = try m.integer("swap", Int64.self, in: -1...Int64.max)
        r.kernel = try m.integer("kernel", Int64.self, in: -1...Int64.max)
        r.kernelTCP = try m.integer("kernelTCP", Int64.self, in: -1...Int64.max)
        r.swappiness = try m.integer("swappiness", UInt64.self, in: 0...100)
        r.disableOOMKiller = try m.bool("disableOOMKiller")
        r.useHierarchy = try m.bool("useHierarchy")
        r.checkBeforeUpdate = try m.bool("checkBeforeUpdate")
        return r
    }

    static func cpu(_ c: OCIConfigValue) throws -> OCICPUResources {
        var r = OCICPUResources()
        r.shares = try c.integer("shares", UInt64.self)
        r.quota = try c.integer("quota", Int64.self, in: -1...Int64.max)
        r.burst = try c.integer("burst", UInt64.self)
        // The kernel takes periods of 1 ms to 1 s (cpu.cfs_period_us); 0 is unset.
        r.period = try c.integer("period", UInt64.self, in: 0...1_000_000)
        if let p = r.period, p != 0, p < 1000 { throw c.child("period").error("\(p) is out of range (1000 to 1000000 microseconds)") }
        r.realtimeRuntime = try c.integer("realtimeRuntime", Int64.self, in: -1...Int64.max)
        r.realtimePeriod = try c.integer("realtimePeriod", UInt64.self)
        r.cpus = try c.string("cpus")
        r.mems = try c.string("mems")
        r.idle = try c.integer("idle", Int64.self, in: 0...1)
        return r
    }

    static func blockIO(_ b: OCIConfigValue) throws -> OCIBlockIOResources {
        var r = OCIBlockIOResources()
        r.weight = try weight(b, "weight")
        r.leafWeight = try weight(b, "leafWeight")
        for d in try b.items("weightDevice") {
            r.weightDevice.append(OCIWeightDevice(major: try major(d), minor: try minor(d),
                                                  weight: try weight(d, "weight"), leafWeight: try weight(d, "leafWeight")))
        }
        func throttles(_ key: String) throws -> [OCIThrottleDevice] {
            try b.items(key).map { OCIThrottleDevice(major: try major($0), minor: try minor($0), rate: try $0.required("rate").integer(UInt64.self)) }
        }
        r.throttleReadBpsDevice = try throttles("throttleReadBpsDevice")
        r.throttleWriteBpsDevice = try throttles("throttleWriteBpsDevice")
        r.throttleReadIOPSDevice = try throttles("throttleReadIOPSDevice")
        r.throttleWriteIOPSDevice = try throttles("throttleWriteIOPSDevice")
        return r
    }

    /// blkio.weight: 10 to 1000, or 0 (unset).
    static func weight(_ v: OCIConfigValue, _ key: String) throws -> UInt16? {
        guard let w = try v.integer(key, UInt16.self, in: 0...1000) else { return nil }
        guard w == 0 || w >= 10 else { throw v.child(key).error("\(w) is out of range (10 to 1000)") }
        return w
    }

    static func major(_ d: OCIConfigValue) throws -> Int64 {
        try d.required("major").integer(Int64.self, in: 0...Int64(OCIConfig.maxMajor))
    }

    static func minor(_ d: OCIConfigValue) throws -> Int64 {
        try d.required("minor").integer(Int64.self, in: 0...Int64(OCIConfig.maxMinor))
    }
}
