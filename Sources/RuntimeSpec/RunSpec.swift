import Seccomp
import SwvmBase

/// Everything about one run that both isolation levels honour: the process,
/// its identity and environment, its confinement and its limits. Built once
/// from the image and the command line (CommandLineOptions.SpecBuilder), then applied by the
/// container runtime or sent to guest-init inside the VM.
public struct RunSpec {
    public var id: String
    public var rootfs: String
    public var readOnlyRoot = false
    public var process: ProcessSpec
    public var hostname: String
    public var mounts: [MountSpec] = []
    public var resources = ResourceLimits()
    /// Bounding, effective and permitted set (capability names, no CAP_).
    public var capabilities: Set<String>
    /// nil: unconfined.
    public var seccomp: SeccompProfile?
    public var noNewPrivileges = true
    public var maskedPaths = RunSpec.defaultMaskedPaths
    public var readonlyPaths = RunSpec.defaultReadonlyPaths
    public var network: NetworkMode = .none
    public var networkSettings = NetworkSettings()
    /// The namespace's path with --network ns:PATH.
    public var networkNamespace: String?
    /// The pod's further IPv4 addresses and its routes, for the guest's
    /// eth0 (--network ns:PATH at the VM level; PodNetwork fills them in).
    public var podAddresses: [IPv4InterfaceAddress] = []
    public var podRoutes: [IPv4Route] = []
    /// The run's address on the bridge, once leased (--network bridge).
    public var networkAddress: IPv4Address?
    /// The run's /etc/resolv.conf (--network bridge); nil: the image's.
    public var resolvConf: String?
    public var terminal = false
    public var interactive = false
    public var userNamespace: UserNamespaceMapping?
    /// --init: a minimal init is PID 1, forwarding signals and reaping orphans.
    public var initProcess = false
    /// --stop-timeout: seconds after a first SIGINT or SIGTERM before the
    /// workload is killed (a second one kills it at once), as `docker stop`.
    public var stopTimeout: Double = 10
    /// `swvm compare`'s probe: a static binary on the host that the run
    /// gets, read-only, at /.swvm-probe (the image is not modified).
    public var probe: String?
    /// A run of an OCI runtime bundle (swvm create/run as runc): config.json's
    /// root, mounts, namespaces and the rest, applied as runc applies them.
    /// nil: a run of an image, whose root and mounts swvm makes itself.
    public var oci: OCISettings?

    public static let probePath = "/.swvm-probe"

    /// The run's /etc/hosts (both isolation levels write this text).
    public var etcHosts: String { networkSettings.hostsFile(hostname: hostname, address: networkAddress) }

    /// As runc and crun mask them by default (and Docker).
    public static let defaultMaskedPaths = [
        "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
        "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
    ]
    public static let defaultReadonlyPaths = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
}

extension RunSpec {
    public init(id: String, rootfs: String, process: ProcessSpec, hostname: String,
                capabilities: Set<String>, seccomp: SeccompProfile? = nil) {
        self.id = id
        self.rootfs = rootfs
        self.process = process
        self.hostname = hostname
        self.capabilities = capabilities
        self.seccomp = seccomp
    }
}

public struct ProcessSpec: Equatable {
    public var args: [String]
    public var env: [String]
    public var cwd: String
    public var uid: UInt32
    public var gid: UInt32
    public var additionalGids: [UInt32]
    public var rlimits: [Rlimit] = []
    /// The -u text, for messages.
    public var user: String

    public init(args: [String], env: [String], cwd: String, uid: UInt32, gid: UInt32, additionalGids: [UInt32], user: String) {
        self.args = args
        self.env = env
        self.cwd = cwd
        self.uid = uid
        self.gid = gid
        self.additionalGids = additionalGids
        self.user = user
    }

    /// The value of an environment variable.
    public func environment(_ name: String) -> String? {
        env.last(where: { $0.hasPrefix(name + "=") }).map { String($0.dropFirst(name.count + 1)) }
    }
}

public struct MountSpec: Equatable {
    public enum Kind: Equatable {
        case bind(source: String)
        case tmpfs
    }

    public var kind: Kind
    public var destination: String
    public var readOnly: Bool
    /// Extra mount options (tmpfs size=, mode=; bind propagation is private).
    public var options: [String]

    public init(kind: Kind, destination: String, readOnly: Bool, options: [String] = []) {
        self.kind = kind
        self.destination = destination
        self.readOnly = readOnly
        self.options = options
    }
}

public struct ResourceLimits: Equatable {
    /// Memory limit in bytes (--memory).
    public var memory: UInt64?
    /// CPU bandwidth: quota per period in microseconds (--cpus).
    public var cpuQuota: Int64?
    public var cpuPeriod: UInt64 = 100_000
    /// Maximum number of tasks (--pids-limit).
    public var pids: Int64?

    public init() {}

    /// --cpus as a number of CPUs.
    public var cpus: Double? { cpuQuota.map { Double($0) / Double(cpuPeriod) } }
}

public enum NetworkMode: String, Equatable {
    /// A network namespace with only the loopback interface, up.
    case none
    /// The host's network namespace (containers only).
    case host
    /// An address of swvm's bridge (swvm0), NAT to the outside, published
    /// ports; isolated from other runs.
    case bridge
    /// A network namespace a network plugin made (RunSpec.networkNamespace:
    /// --network ns:PATH, or config.json's path); VMs only: the VMM joins
    /// the namespace's interface to the guest's eth0 (PodNetwork).
    case namespace
}

/// A user-namespace mapping: container ids [0, size) map to host ids
/// [hostBase, hostBase + size).
public struct UserNamespaceMapping: Equatable {
    public var hostUID: UInt32
    public var hostGID: UInt32
    public var size: UInt32

    public init(hostUID: UInt32, hostGID: UInt32, size: UInt32) {
        self.hostUID = hostUID
        self.hostGID = hostGID
        self.size = size
    }
}
