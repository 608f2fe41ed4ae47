#if canImport(Glibc)
import Glibc
#endif
import RuntimeSpec
import SwvmBase

/// kill, delete, pause, resume, update, ps and list.
extension Lifecycle {
    /// runc's words for a container that is not running. Engines match
    /// the text: containerd's shim takes "container not running" from
    /// `kill` as "already exited" (otherwise the CRI fails to handle the
    /// container's exit and reports it running for ever).
    static func notRunning(_ id: String) -> SwvmError {
        SwvmError(.invalidArgument, "container \(id): container not running")
    }

    /// Signals the init, or with `all` every process of the container
    /// (the VM level: through the VMM's control socket, to the workload's
    /// processes in the guest). `all` on a stopped one signals what is
    /// left in its cgroup, as runc does: the shim kills a pid-sharing
    /// container's remaining processes so once its init has exited.
    public func kill(_ id: String, signal: Int32, all: Bool) throws {
        let state = try self.state(id)
        if all, state.status == .stopped, let record = state.record {
            for pid in engine.pids(record.cgroupPaths) { Glibc.kill(pid, signal) }
            return
        }
        guard [.created, .running, .paused].contains(state.status), let record = state.record,
              let initProcess = record.initProcess else {
            throw Self.notRunning(id)
        }
        let level = engine(for: IsolationLevel.of(record))
        if all && state.status != .created {
            try level.signalAll(record, signal: signal)
        } else if initProcess.isAlive && Glibc.kill(initProcess.pid, signal) != 0 && errno != ESRCH {
            throw SwvmError.errno("kill pid \(initProcess.pid)")
        }
        // A frozen process acts on SIGKILL only once thawed.
        if signal == SIGKILL && state.status == .paused { try? level.thaw(record) }
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
            throw Self.notRunning(id)
        }
        try engine(for: IsolationLevel.of(record)).freeze(record)
        try setPaused(true, record, lock)
    }

    public func resume(_ id: String) throws {
        let lock = try store.lock(id)
        let (state, record) = try live(id)
        guard state.status == .paused else { throw SwvmError(.invalidArgument, "container \(id) is not paused") }
        try engine(for: IsolationLevel.of(record)).thaw(record)
        try setPaused(false, record, lock)
    }

    /// state.json's note of a pause (the VM level's status reads it).
    private func setPaused(_ paused: Bool, _ record: ContainerRecord, _ lock: ContainerLock) throws {
        var r = record
        r.paused = paused
        try store.write(r, lock)
    }

    public func update(_ id: String, _ resources: ResourceUpdate) throws {
        let lock = try store.lock(id)
        let (_, record) = try live(id)
        try engine(for: IsolationLevel.of(record)).update(record, resources)
        withExtendedLifetime(lock) {}
    }

    /// The container's processes (`ps`).
    public func processes(_ id: String) throws -> ProcessListing {
        let (_, record) = try live(id)
        return try engine(for: IsolationLevel.of(record)).processes(record)
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
            throw Self.notRunning(id)
        }
        return (state, record)
    }
}
