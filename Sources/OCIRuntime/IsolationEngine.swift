#if canImport(Glibc)
import Glibc
#endif
import RuntimeSpec
import SwvmBase
import VMControl

/// The descriptors a container's process gets (runc's create and exec).
public struct ProcessIO: Sendable {
    public var stdin: Int32 = 0
    public var stdout: Int32 = 1
    public var stderr: Int32 = 2
    /// A connected --console-socket: the pty master is sent over it.
    public var consoleSocket: Int32?
    /// --preserve-fds: fds 3 ..< 3+N are passed on.
    public var preserveFDs: Int = 0
    /// Create: the hooks at the init's point before pivot_root (see
    /// ContainerHooks). An engine that cannot stop there leaves it
    /// uncalled; the lifecycle then runs them all after create.
    public var hooks: ContainerHooks?

    public init() {}
}

/// What `create` made: the container's init, waiting on the exec FIFO.
public struct CreatedInit: Sendable {
    public var process: ProcessIdentity
    public var cgroupPaths: [String]
    /// What the engine adds to state's annotations (the VM level: which
    /// root the VM has, swvm.vm-root).
    public var annotations: [OCIAnnotation] = []

    public init(process: ProcessIdentity, cgroupPaths: [String], annotations: [OCIAnnotation] = []) {
        self.process = process
        self.cgroupPaths = cgroupPaths
        self.annotations = annotations
    }
}

/// runc update's resources (each nil: unchanged).
public struct ResourceUpdate: Equatable, Sendable {
    public var memory: Int64?
    public var memorySwap: Int64?
    public var pids: Int64?
    public var cpuQuota: Int64?
    public var cpuPeriod: UInt64?
    public var cpuShares: UInt64?

    public init() {}

    public var isEmpty: Bool { self == ResourceUpdate() }
}

/// What `ps` lists: host pids (the container level), or the guest's own
/// processes with their pids in the workload's namespace (the VM level).
public enum ProcessListing: Sendable {
    case host([pid_t])
    case guest([GuestProcess])
}

/// What the lifecycle asks of an isolation level. The container level
/// (ContainerEngine) clones a confined init; the VM level (VMEngine) runs
/// a VMM under the same lifecycle and state and reaches the guest through
/// the VMM's control socket.
public protocol IsolationEngine {
    /// Builds the container and leaves its init blocked opening
    /// `execFIFO` for writing (what `start` releases).
    func create(_ spec: RunSpec, io: ProcessIO, stateDir: String, execFIFO: String) throws -> CreatedInit
    /// Runs another process in the container; its exit status unless
    /// `detach`.
    func exec(into container: ProcessIdentity, cgroupPaths: [String], spec: RunSpec, io: ProcessIO,
              detach: Bool, pidFile: String?) throws -> Int32
    /// Whether the container is paused now (status "paused").
    func isFrozen(_ record: ContainerRecord) -> Bool
    func freeze(_ record: ContainerRecord) throws
    func thaw(_ record: ContainerRecord) throws
    func update(_ record: ContainerRecord, _ resources: ResourceUpdate) throws
    /// kill --all of a live container: every process of it.
    func signalAll(_ record: ContainerRecord, signal: Int32) throws
    /// `ps` of a live container.
    func processes(_ record: ContainerRecord) throws -> ProcessListing
    /// The host processes in the container's cgroups (cgroup.procs).
    func pids(_ cgroupPaths: [String]) -> [pid_t]
    /// Kills what is left and removes the cgroups. `cgroupsPath` and `id`
    /// find them when a create was killed before it recorded the paths.
    func destroy(cgroupPaths: [String], cgroupsPath: String?, id: String)
}
