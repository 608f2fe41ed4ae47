/// linux.resources of config.json (and `swvm update -r resources.json`),
/// cgroups v1 and v2, as written and range-checked. The memory, CPU
/// bandwidth and pids limits are also in RunSpec.resources (what `swvm run`
/// sets); the rest is here for the cgroup code. nil: not set.
public struct OCIResources: Equatable, Sendable {
    /// The device cgroup's rules, in order (runc's default denies all first).
    public var devices: [OCIDeviceRule] = []
    public var memory = OCIMemoryResources()
    public var cpu = OCICPUResources()
    /// pids.limit: > 0 a limit; 0 or -1 unlimited.
    public var pidsLimit: Int64?
    public var blockIO = OCIBlockIOResources()
    public var hugepageLimits: [OCIHugepageLimit] = []
    public var network = OCINetworkResources()
    /// unified: cgroup v2 files and their values, as written.
    public var unified: [OCIKeyValue] = []

    public init() {}
}

public struct OCIDeviceRule: Equatable, Sendable {
    public var allow: Bool
    /// "a", "c" or "b"; nil: all ("a").
    public var type: String?
    /// nil: any (*).
    public var major: Int64?
    public var minor: Int64?
    /// A subset of "rwm"; nil: "rwm".
    public var access: String?

    public init(allow: Bool, type: String? = nil, major: Int64? = nil, minor: Int64? = nil, access: String? = nil) {
        self.allow = allow
        self.type = type
        self.major = major
        self.minor = minor
        self.access = access
    }
}

public struct OCIMemoryResources: Equatable, Sendable {
    /// Bytes; -1 unlimited.
    public var limit: Int64?
    public var reservation: Int64?
    public var swap: Int64?
    public var kernel: Int64?
    public var kernelTCP: Int64?
    /// 0 to 100.
    public var swappiness: UInt64?
    public var disableOOMKiller: Bool?
    public var useHierarchy: Bool?
    public var checkBeforeUpdate: Bool?

    public init() {}
}

public struct OCICPUResources: Equatable, Sendable {
    public var shares: UInt64?
    /// Microseconds per period; -1 unlimited.
    public var quota: Int64?
    public var burst: UInt64?
    public var period: UInt64?
    public var realtimeRuntime: Int64?
    public var realtimePeriod: UInt64?
    /// cpuset.cpus and cpuset.mems, as written ("0-3,7").
    public var cpus: String?
    public var mems: String?
    /// cgroup v2's cpu.idle (0 or 1).
    public var idle: Int64?

    public init() {}
}

public struct OCIBlockIOResources: Equatable, Sendable {
    /// 10 to 1000.
    public var weight: UInt16?
    public var leafWeight: UInt16?
    public var weightDevice: [OCIWeightDevice] = []
    public var throttleReadBpsDevice: [OCIThrottleDevice] = []
    public var throttleWriteBpsDevice: [OCIThrottleDevice] = []
    public var throttleReadIOPSDevice: [OCIThrottleDevice] = []
    public var throttleWriteIOPSDevice: [OCIThrottleDevice] = []

    public init() {}
}

public struct OCIWeightDevice: Equatable, Sendable {
    public var major: Int64
    public var minor: Int64
    public var weight: UInt16?
    public var leafWeight: UInt16?

    public init(major: Int64, minor: Int64, weight: UInt16? = nil, leafWeight: UInt16? = nil) {
        self.major = major
        self.minor = minor
        self.weight = weight
        self.leafWeight = leafWeight
    }
}

public struct OCIThrottleDevice: Equatable, Sendable {
    public var major: Int64
    public var minor: Int64
    public var rate: UInt64

    public init(major: Int64, minor: Int64, rate: UInt64) {
        self.major = major
        self.minor = minor
        self.rate = rate
    }
}

public struct OCIHugepageLimit: Equatable, Sendable {
    /// "2MB", "1GB".
    public var pageSize: String
    public var limit: UInt64

    public init(pageSize: String, limit: UInt64) {
        self.pageSize = pageSize
        self.limit = limit
    }
}

public struct OCINetworkResources: Equatable, Sendable {
    public var classID: UInt32?
    public var priorities: [OCIInterfacePriority] = []

    public init() {}
}

public struct OCIInterfacePriority: Equatable, Sendable {
    public var name: String
    public var priority: UInt32

    public init(name: String, priority: UInt32) {
        self.name = name
        self.priority = priority
    }
}

public struct OCIKeyValue: Equatable, Sendable {
    public var key: String
    public var value: String

    public init(key: String, value: String) {
        self.key = key
        self.value = value
    }
}
