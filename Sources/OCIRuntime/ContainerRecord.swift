#if canImport(Glibc)
import Glibc
#endif
import RuntimeSpec
import SwvmBase

/// The runtime spec's container statuses (runtime.md, "State").
public enum ContainerStatus: String, Sendable {
    case creating, created, running, paused, stopped
}

/// A process as /proc names it: its pid and its start time (field 22 of
/// /proc/PID/stat), so a pid the kernel reused is never taken for it.
public struct ProcessIdentity: Equatable, Sendable {
    public var pid: pid_t
    public var startTime: UInt64

    public init(pid: pid_t, startTime: UInt64) {
        self.pid = pid
        self.startTime = startTime
    }

    /// This process, with its start time, by its host pid (what the
    /// host's /proc and later commands know it by, also from a VMM in a
    /// pid namespace of its own).
    public static func current() -> ProcessIdentity {
        ProcessIdentity(pid: hostPID, startTime: ProcessStat.read(hostPID)?.startTime ?? 0)
    }

    /// Whether the process still runs: the same start time, not a zombie.
    public var isAlive: Bool {
        guard pid > 0, let stat = ProcessStat.read(pid) else { return false }
        return stat.startTime == startTime && stat.state != "Z" && stat.state != "X"
    }
}

/// What state.json holds for one container: what `create` knew and made.
/// The status shown to users is computed from what is true now (see
/// ContainerState), not stored; only "creating" versus "created" is.
public struct ContainerRecord: Equatable, Sendable {
    public var id: String
    public var bundle: String
    public var rootfs: String
    /// false while `swvm create` is at work (status "creating").
    public var createFinished: Bool
    /// The `swvm create` at work (to tell a live create from a killed one).
    public var creator: ProcessIdentity
    /// The container's init, once cloned.
    public var initProcess: ProcessIdentity?
    /// RFC 3339, UTC.
    public var created: String
    public var annotations: [OCIAnnotation]
    /// linux.cgroupsPath as config.json wrote it, and the directories made.
    public var cgroupsPath: String?
    public var cgroupPaths: [String]
    /// The hooks that run after `create`: at start and at delete.
    public var poststart: [OCIHook]
    public var poststop: [OCIHook]
    /// Set by `pause`, cleared by `resume`: the VM level's paused state
    /// (its vCPUs parked; the container level reads its freezer instead).
    public var paused = false

    public init(id: String, bundle: String, rootfs: String, creator: ProcessIdentity, created: String) {
        self.id = id
        self.bundle = bundle
        self.rootfs = rootfs
        self.createFinished = false
        self.creator = creator
        self.created = created
        self.annotations = []
        self.cgroupsPath = nil
        self.cgroupPaths = []
        self.poststart = []
        self.poststop = []
    }
}
