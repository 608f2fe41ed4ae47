#if canImport(Glibc)
import Glibc
#endif
import Cgroups
import RunRecords
import SwvmBase

/// stop, rm and wait for Docker's verbs, over the lifecycle's kill and
/// delete: the container's init is signalled directly (not through its
/// monitor), and the monitor records what follows.
extension ServiceStore {
    /// TERM, then KILL once `timeout` seconds pass; returns once the
    /// monitor has recorded the exit (or is gone).
    public func stop(_ id: String, timeout: Double) throws {
        let lifecycle = self.lifecycle
        guard [.created, .running, .paused].contains(status(id)) else { return }
        try? lifecycle.kill(id, signal: SIGTERM, all: false)
        if !waitUntilStopped(id, seconds: timeout) {
            try? lifecycle.kill(id, signal: SIGKILL, all: false)
            _ = waitUntilStopped(id, seconds: 10)
        }
        _ = waitForExit(id, seconds: 10)
    }

    /// Polls (a stopped init is seen through /proc, whoever its parent is).
    func waitUntilStopped(_ id: String, seconds: Double) -> Bool {
        let deadline = Clock.monotonicNanos() + UInt64(max(0, seconds) * 1e9)
        while true {
            let s = status(id)
            if s == .stopped { return true }
            if Clock.monotonicNanos() >= deadline { return false }
            usleep(20_000)
        }
    }

    /// The exit status once the monitor recorded it; nil when the
    /// container was removed (--rm), or its monitor died without one.
    public func waitForExit(_ id: String, seconds: Double = .infinity) -> Int32? {
        let deadline = seconds.isFinite ? Clock.monotonicNanos() + UInt64(max(0, seconds) * 1e9) : UInt64.max
        while Clock.monotonicNanos() < deadline {
            guard let record = try? read(id) else { return nil }
            if let code = record.exitCode { return code }
            if let m = record.monitor, !m.isAlive {
                // Its last write may have just landed.
                return (try? read(id))?.exitCode
            }
            usleep(20_000)
        }
        return nil
    }

    /// `swvm rm`: refuses a container that is not stopped unless `force`,
    /// which kills it. Its monitor is given time to clean up as it does
    /// at any exit; one that was killed (or hangs) leaves a run record,
    /// removed here: the cgroup, the veth, published ports and the lease.
    public func remove(_ id: String, force: Bool) throws {
        let s = status(id)
        if s != .stopped && !force {
            throw SwvmError(.invalidArgument, "cannot remove container \(id): it is \(s.rawValue); stop it first, or use rm -f")
        }
        if s != .stopped { try? lifecycle.kill(id, signal: SIGKILL, all: true) }
        let monitor = (try? read(id))?.monitor
        if let m = monitor, m.isAlive {
            _ = waitForMonitor(m, seconds: 10)
            if m.isAlive { kill(m.pid, SIGKILL); _ = waitForMonitor(m, seconds: 5) }
        }
        let runDir = RunRecord.directory(for: id)
        let orphaned = monitor.map { !$0.isAlive } ?? true
        // The level's own clean-up first: a VM's needs the run record's
        // owner to release the VMM's uid lease (VMEngine.destroy).
        try lifecycle.delete(id, force: true)
        if orphaned && FS.exists(runDir) { RunRecord.cleanup(runDir) }
    }

    func waitForMonitor(_ m: ProcessIdentity, seconds: Double) -> Bool {
        let deadline = Clock.monotonicNanos() + UInt64(seconds * 1e9)
        while m.isAlive && Clock.monotonicNanos() < deadline { usleep(20_000) }
        return !m.isAlive
    }
}

/// pause on cgroup v1: a container run joins only the controllers it
/// needs (each is a migration at every start), not the freezer. The first
/// `swvm pause` makes the container's freezer cgroup, moves its processes
/// there and records it; the lifecycle then freezes it as any other.
extension ServiceStore {
    public func pause(_ id: String) throws {
        try joinFreezer(id)
        try lifecycle.pause(id)
        // A process forked while the others moved, frozen as it joins.
        try joinFreezer(id)
    }

    func joinFreezer(_ id: String) throws {
        guard case .v1(let root) = Cgroups.detect(), FS.isDirectory(Path.join(root, "freezer")) else { return }
        let lock = try state.lock(id)
        guard var record = try state.read(id), record.initProcess != nil, !record.cgroupPaths.isEmpty else { return }
        let freezer = Path.join(root, "freezer", "swvm", id)
        if !record.cgroupPaths.contains(freezer) {
            try FS.makeDirectories(freezer)
            record.cgroupPaths.append(freezer)
            try state.write(record, lock)
        }
        let others = CgroupDirectories(record.cgroupPaths.filter { $0 != freezer })
        for _ in 0..<10 {
            let joined = Set(CgroupDirectories([freezer]).pids())
            let missing = others.pids().filter { !joined.contains($0) }
            if missing.isEmpty { return }
            for pid in missing { try? Cgroups.writeFile(Path.join(freezer, "cgroup.procs"), String(pid)) }
        }
        throw SwvmError(.internalError, "pause: the processes of container \(id) keep forking; cannot move them all to the freezer")
    }
}
