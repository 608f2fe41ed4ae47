#if canImport(Glibc)
import Glibc
#endif
import RuntimeSpec
import SwvmBase

/// A container's state as the runtime spec defines it, computed from what
/// is true now: its init alive (with the recorded start time), the exec
/// FIFO still there (not yet started), its cgroup frozen (paused).
public struct ContainerState {
    /// The runtime-spec version swvm implements.
    public static let ociVersion = "1.1.0"

    public let id: String
    /// nil: the directory has no state.json (a create killed early).
    public let record: ContainerRecord?
    public let status: ContainerStatus

    /// The init's pid until it stops (0 then, as runc reports; and 0
    /// while creating before it exists).
    public var pid: pid_t {
        status == .stopped ? 0 : record?.initProcess?.pid ?? 0
    }

    public init(id: String, record: ContainerRecord?, status: ContainerStatus) {
        self.id = id
        self.record = record
        self.status = status
    }

    /// `engine` gives the isolation level's engine of a record.
    public static func load(_ id: String, store: StateStore, engine: (ContainerRecord) -> IsolationEngine) throws -> ContainerState {
        try ContainerID.validate(id)
        guard FS.isDirectory(store.directory(id)) else { throw StateStore.notFound(id) }
        let record = try store.read(id)
        let status = currentStatus(record, directory: store.directory(id), fifo: store.execFIFO(id), engine: record.map(engine))
        return ContainerState(id: id, record: record, status: status)
    }

    static func currentStatus(_ record: ContainerRecord?, directory: String, fifo: String, engine: IsolationEngine?) -> ContainerStatus {
        guard let record else {
            // No state.json yet: a create at work holds the lock.
            return ContainerLock.isHeld(directory) ? .creating : .stopped
        }
        guard record.createFinished else { return record.creator.isAlive ? .creating : .stopped }
        guard let initProcess = record.initProcess, initProcess.isAlive else { return .stopped }
        if FS.exists(fifo) { return .created }
        if engine?.isFrozen(record) == true { return .paused }
        return .running
    }

    /// The state of runtime.md, as hooks get it on stdin.
    public var specJSON: JSON {
        var members: [(String, JSON)] = [
            ("ociVersion", .string(ContainerState.ociVersion)), ("id", .string(id)), ("status", .string(status.rawValue)),
        ]
        if pid > 0 { members.append(("pid", .integer(Int64(pid)))) }
        members.append(("bundle", .string(record?.bundle ?? "")))
        members.append(("annotations", annotationsJSON))
        return .object(members)
    }

    /// What `swvm state` prints: the spec's state and runc's additions
    /// (rootfs, created, owner), which containerd's go-runc reads.
    public var runcJSON: JSON {
        .object([
            ("ociVersion", .string(ContainerState.ociVersion)), ("id", .string(id)), ("pid", .integer(Int64(pid))),
            ("status", .string(status.rawValue)), ("bundle", .string(record?.bundle ?? "")),
            ("rootfs", .string(record?.rootfs ?? "")), ("created", .string(record?.created ?? Timestamp.rfc3339(0))),
            ("annotations", annotationsJSON), ("owner", .string("")),
        ])
    }

    var annotationsJSON: JSON { .object((record?.annotations ?? []).map { ($0.key, .string($0.value)) }) }
}
