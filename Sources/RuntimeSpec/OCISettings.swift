/// What a run made from an OCI runtime bundle (`swvm create/run` as an
/// OCI runtime) needs beyond the settings every run has: config.json's
/// own root, its mounts in order, namespaces to join, devices, sysctls,
/// hooks and the rest, as runc and crun apply them. A RunSpec with
/// `oci == nil` is a `swvm run` of an image: swvm builds the root and the
/// standard mounts itself.
///
/// This is the contract between the config.json parser (OCIConfig), the
/// wire encoder (RunSettingsWire) and the lifecycle (OCIRuntime).
public struct OCISettings: Equatable, Sendable {
    /// root.path, absolute: used as it is (no overlay), pivoted into.
    public var rootPath: String
    /// mounts, in config.json's order, every type.
    public var mounts: [OCIMount] = []
    /// linux.namespaces: the namespaces the container gets; a `path` joins
    /// an existing one (podman's network namespace) instead of a new one.
    public var namespaces: [OCINamespace] = []
    /// linux.devices: nodes made in the container's /dev (besides the
    /// default ones runc always provides).
    public var devices: [OCIDevice] = []
    /// linux.sysctl, in config.json's order (key, value).
    public var sysctl: [OCISysctl] = []
    public var oomScoreAdj: Int32?
    /// process.user.umask (nil: 0022, as runc).
    public var umask: UInt32?
    /// All five capability sets (process.capabilities).
    public var capabilities = OCICapabilitySets()
    /// linux.uidMappings / gidMappings (with a user namespace).
    public var uidMappings: [OCIIDMapping] = []
    public var gidMappings: [OCIIDMapping] = []
    /// linux.cgroupsPath as written (nil: swvm picks one from the id).
    public var cgroupsPath: String?
    /// linux.rootfsPropagation ("" = rprivate, as runc).
    public var rootfsPropagation: String = ""
    public var hooks = OCIHooks()
    public var annotations: [OCIAnnotation] = []
    /// process.consoleSize (with process.terminal).
    public var consoleRows: UInt16 = 0
    public var consoleCols: UInt16 = 0
    /// linux.resources, all of it (cgroups v1 and v2); the memory, CPU
    /// bandwidth and pids limits are also in RunSpec.resources.
    public var resources = OCIResources()
    /// domainname (runtime-spec 1.1): setdomainname in the uts namespace.
    public var domainname: String?
    /// linux.timeOffsets (with a time namespace of the container's): what
    /// /proc/self/timens_offsets gets before the namespace has a process.
    public var timeOffsets: [OCITimeOffset] = []
    /// linux.personality.domain: "LINUX" or "LINUX32" (nil: unchanged).
    public var personality: String?

    public init(rootPath: String) {
        self.rootPath = rootPath
    }
}

public struct OCIMount: Equatable, Sendable {
    public var destination: String
    /// "" when config.json has none (a bind mount's type may be absent).
    public var type: String
    public var source: String
    /// The options as written ("nosuid", "rbind", "mode=755", "rprivate"...);
    /// the encoder turns them into mount flags, propagation and data.
    public var options: [String]

    public init(destination: String, type: String, source: String, options: [String]) {
        self.destination = destination
        self.type = type
        self.source = source
        self.options = options
    }
}

public struct OCINamespace: Equatable, Sendable {
    /// "pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time".
    public var type: String
    /// A namespace file to join (e.g. /run/netns/X); nil: a new one.
    public var path: String?

    public init(type: String, path: String? = nil) {
        self.type = type
        self.path = path
    }
}

public struct OCIDevice: Equatable, Sendable {
    public var path: String
    /// "c", "b", "u" or "p".
    public var type: String
    public var major: Int64
    public var minor: Int64
    public var fileMode: UInt32?
    public var uid: UInt32?
    public var gid: UInt32?

    public init(path: String, type: String, major: Int64, minor: Int64, fileMode: UInt32? = nil, uid: UInt32? = nil, gid: UInt32? = nil) {
        self.path = path
        self.type = type
        self.major = major
        self.minor = minor
        self.fileMode = fileMode
        self.uid = uid
        self.gid = gid
    }
}

/// A sysctl and an annotation: a key and its value, as OCIKeyValue.
public typealias OCISysctl = OCIKeyValue
public typealias OCIAnnotation = OCIKeyValue

/// Capability masks (bit N = capability N).
public struct OCICapabilitySets: Equatable, Sendable {
    public var bounding: UInt64 = 0
    public var effective: UInt64 = 0
    public var inheritable: UInt64 = 0
    public var permitted: UInt64 = 0
    public var ambient: UInt64 = 0

    public init() {}
}

public struct OCIIDMapping: Equatable, Sendable {
    public var containerID: UInt32
    public var hostID: UInt32
    public var size: UInt32

    public init(containerID: UInt32, hostID: UInt32, size: UInt32) {
        self.containerID = containerID
        self.hostID = hostID
        self.size = size
    }
}

public struct OCIHook: Equatable, Sendable {
    public var path: String
    public var args: [String]
    public var env: [String]
    /// Seconds; nil: no timeout.
    public var timeout: Int?

    public init(path: String, args: [String] = [], env: [String] = [], timeout: Int? = nil) {
        self.path = path
        self.args = args
        self.env = env
        self.timeout = timeout
    }
}

/// The six hook kinds of runtime-spec 1.1 (plus the deprecated prestart).
public struct OCIHooks: Equatable, Sendable {
    public var prestart: [OCIHook] = []
    public var createRuntime: [OCIHook] = []
    public var createContainer: [OCIHook] = []
    public var startContainer: [OCIHook] = []
    public var poststart: [OCIHook] = []
    public var poststop: [OCIHook] = []

    public init() {}
}

/// A clock's offset in a time namespace (runtime-spec 1.1 linux.timeOffsets).
public struct OCITimeOffset: Equatable, Sendable {
    /// "monotonic" or "boottime".
    public var clock: String
    public var seconds: Int64
    public var nanoseconds: UInt32

    public init(clock: String, seconds: Int64, nanoseconds: UInt32) {
        self.clock = clock
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }
}
