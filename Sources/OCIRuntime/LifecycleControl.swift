#if canImport(Glibc)
import Glibc
#endif
import RuntimeSpec
import SwvmBase

/// kill, delete, pause, resume, update, ps and list.
extension Lifecycle {
    /// Signals the init, or with `all` every process of the container.
    public func kill(_ id: String, signal: Int32, all: Bool) throws {
        let state = try self.state(id)
        guard [.created, .running, .paused].contains(state.status), let record = state.record,
              let initProcess = record.initProcess else {
            throw SwvmError(.invalidArgument, "container \(id) is not running")
        }
        if all {
            for pid in engine.pids(record.cgroupPaths) { Glibc.kill(pid, signal) }
        }
        if initProcess.isAlive && Glibc.kill(initProcess.pid, signal) != 0 && errno != ESRCH {
            throw SwvmError.errno("kill pid \(initProcess.pid)")
        }
        // A frozen process acts on SIGKILL only once thawed.
        if signal == SIGKILL && state.status == .paused { try? engine.thaw(record.cgroupPaths) }
    }

    /// Removes a stopped (or created) container; with `force`, a running
    /// or paused one too, and one whose create was killed part-way. The
    /// poststop hooks run last.
    public func delete(_ id: String, force: Bool) throws {
        try ContainerID.validate(id)
        let lock: ContainerLock
        do {
            lock = try store.lock(id)
        } catch let e as SwvmError where e.code == .notFound {
            if force { return }   // as runc: nothing to delete is not an error with --force
            throw e
        }
        let state = try? self.state(id)
        let status = state?.status ?? .stopped
        if !force && (status == .running || status == .paused) {
            throw SwvmError(.invalidArgument, "cannot delete container \(id) that is not stopped: \(status.rawValue)")
        }
        if state == nil && !force { _ = try self.state(id) }   // the error (a corrupt state.json)
        teardown(id, record: state?.record, lock: lock)
        if let record = state?.record, !record.poststop.isEmpty {
            HookRunner.runWarning(record.poststop, kind: "poststop",
                                  state: ContainerState(id: id, record: record, status: .stopped).specJSON)
        }
        RuntimeLog.current.debug("deleted container \(id)")
    }

    public func pause(_ id: String) throws {
        let lock = try store.lock(id)
        let (state, record) = try live(id)
        guard state.status == .running || state.status == .created else {
            throw SwvmError(.invalidArgument, "container \(id) is not running")
        }
        try engine.freeze(record.cgroupPaths)
        withExtendedLifetime(lock) {}
    }

    public func resume(_ id: String) throws {
        let lock = try store.lock(id)
        let (state, record) = try live(id)
        guard state.status == .paused else { throw SwvmError(.invalidArgument, "container \(id) is not paused") }
        try engine.thaw(record.cgroupPaths)
        withExtendedLifetime(lock) {}
    }

    public func update(_ id: String, _ resources: ResourceUpdate) throws {
        let lock = try store.lock(id)
        let (_, record) = try live(id)
        try engine(for: IsolationLevel.of(record)).update(record.cgroupPaths, resources)
        withExtendedLifetime(lock) {}
    }

    /// The container's processes (`ps`).
    public func pids(_ id: String) throws -> [pid_t] {
        let (_, record) = try live(id)
        return engine.pids(record.cgroupPaths).sorted()
    }

    /// Every container under --root; one whose state cannot be read is
    /// left out with a warning.
    public func list() throws -> [ContainerState] {
        try store.ids().compactMap { id in
            do {
                return try state(id)
            } catch {
                RuntimeLog.current.warning("container \(id): \(error)")
                return nil
            }
        }
    }

    /// The state of a container that has not stopped, and its record.
    func live(_ id: String) throws -> (ContainerState, ContainerRecord) {
        let state = try self.state(id)
        guard state.status != .stopped, state.status != .creating, let record = state.record else {
            throw SwvmError(.invalidArgument, "container \(id) is not running")
        }
        return (state, record)
    }
}
