#if canImport(Glibc)
import Glibc
#endif
import Cgroups
import RunRecords
import RuntimeSpec
import SwvmBase
import VMControl

/// pause, resume, kill --all, ps and update at the VM level: requests on
/// the running VMM's control socket (VMControl), never the VMM's cgroup
/// (freezing it would stop the VMM's own threads, the control server's
/// too). The container level is ContainerEngine's.
extension VMEngine {
    /// The VMM's control socket: in the run record named by the container
    /// id, whose owner must be the container's VMM (not a reused pid).
    static func controlSocket(_ record: ContainerRecord) throws -> String {
        guard let vmm = record.initProcess, vmm.isAlive else {
            throw SwvmError(.invalidArgument, "container \(record.id): container not running")
        }
        return try controlSocket(vmm: vmm, id: record.id)
    }

    static func controlSocket(vmm: ProcessIdentity, id: String) throws -> String {
        let dir = RunRecord.directory(for: id)
        let owner = (try? FS.readText(Path.join(dir, "owner"), limit: 4096)) ?? ""
        let path = VMControl.socketPath(recordDirectory: dir)
        guard owner.split(separator: " ").first == Substring(String(vmm.pid)), FS.exists(path) else {
            throw SwvmError(.notFound, "container \(id): the VMM (pid \(vmm.pid)) has no control socket at \(path)")
        }
        return path
    }

    /// Paused: the lifecycle's note (state.json), while the VMM lives.
    public func isFrozen(_ record: ContainerRecord) -> Bool { record.paused }

    /// Parks the vCPUs: the guest stops, the VMM's threads run on (the
    /// control socket answers; SIGKILL ends the VMM at once).
    public func freeze(_ record: ContainerRecord) throws { try VMControl.pause(socket: Self.controlSocket(record)) }

    public func thaw(_ record: ContainerRecord) throws { try VMControl.resume(socket: Self.controlSocket(record)) }

    /// The workload's processes in the guest (its cgroup there); a SIGKILL
    /// also ends the VMM, so the VM goes as runc's container would.
    public func signalAll(_ record: ContainerRecord, signal: Int32) throws {
        try VMControl.onceRunning { try VMControl.signalAll(socket: Self.controlSocket(record), signal: signal) }
        if signal == SIGKILL, let vmm = record.initProcess, vmm.isAlive { Glibc.kill(vmm.pid, SIGKILL) }
    }

    public func processes(_ record: ContainerRecord) throws -> ProcessListing {
        .guest(try VMControl.onceRunning { try VMControl.ps(socket: Self.controlSocket(record)) })
    }

    /// runc update at the VM level: memory and pids are the guest's
    /// workload cgroup's (as create sent them), changed by guest-init; the
    /// CPU quota is the host cgroup's, on the VMM's vCPU threads. The host
    /// memory limit stays as create set it (guest RAM and the VMM's own):
    /// lowering it under the guest's touched memory would kill the VMM.
    public func update(_ record: ContainerRecord, _ r: ResourceUpdate) throws {
        if r.cpuQuota == nil, r.cpuPeriod != nil {
            throw SwvmError(.invalidArgument, "update --cpu-period: give --cpu-quota with it")
        }
        if r.memorySwap != nil || r.cpuShares != nil {
            RuntimeLog.current.warning("update: memory.swap and cpu.shares are not changed by swvm")
        }
        // As runc: 0 leaves a limit as it is, a negative one removes it.
        let memory = r.memory.flatMap { $0 == 0 ? nil : max($0, -1) }, pids = r.pids.flatMap { $0 == 0 ? nil : max($0, -1) }
        if memory != nil || pids != nil {
            try VMControl.onceRunning { try VMControl.update(socket: Self.controlSocket(record), memory: memory, pids: pids) }
        }
        if let quota = r.cpuQuota {
            var limits = ResourceLimits()
            limits.cpuQuota = quota
            if let p = r.cpuPeriod { limits.cpuPeriod = p }
            try CgroupDirectories(record.cgroupPaths).update(limits)
        }
    }
}
