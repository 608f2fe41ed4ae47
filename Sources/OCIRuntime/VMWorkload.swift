#if canImport(Glibc)
import Glibc
#endif
import RunRecords
import SwvmBase

/// The VM level of a detached run (`swvm run -d --isolation=vm`): the
/// monitor starts the VMM (`swvm vmm --service ID`, swvm exec'd again, the
/// same spawn as an OCI create's VMM: PID 1 of a pid namespace of its own)
/// as its child. The VMM builds the run
/// from the container's service.json as a foreground `swvm run
/// --isolation=vm` does (image disk, -p, -v, -e, resources), jails itself,
/// and says "ok" on the report pipe once the workload runs (MonitorReport's
/// format), or the error that stopped it. The VMM is the container's init:
/// its stdio is the monitor's (the log pipes), signals to it reach the
/// workload in the guest (a SIGKILL ends the VM), it exits with the
/// workload's status. Its keeper cleans up the host side (cgroup, tap,
/// nft rules, leases, run record) when the VMM ends by itself; the keeper
/// lives in the VMM's pid namespace and dies with a killed VMM, and then
/// the monitor's end, `rm`, or the next start's sweep does it.
public struct VMWorkload: MonitoredWorkload {
    let id: String

    public init(id: String) { self.id = id }

    public func run(started: @escaping (ProcessIdentity, [String]) -> Void) throws -> Int32 {
        // A detached VM killed with its monitor is swept by the next start
        // (its keeper was in the VMM's pid namespace and died with it).
        RunRecord.removeStale()
        let (read, write) = try makePipe()
        // The monitor's stdio: /dev/null and the log pipes.
        let pid = try VMEngine.spawn(["swvm", "vmm", "--service", id, "--report-fd", "3"], io: ProcessIO(), report: write.raw,
                                     hold: nil, dieWithCaller: true)
        write.close()
        let vmm = ProcessIdentity(pid: pid, startTime: ProcessStat.read(pid)?.startTime ?? 0)
        let report: SwvmError?
        do {
            report = try MonitorReport.receive(read, endedEarly: "the VMM (pid \(pid)) ended before the workload started")
        } catch {
            Glibc.kill(pid, SIGKILL)
            _ = end(pid)
            throw error
        }
        if let report {
            _ = end(pid)
            throw report
        }
        started(vmm, VMWorkload.cgroups(id))
        return end(pid)
    }

    /// The VMM's status once it exits and the host side of its run is
    /// gone, so a `wait` or `--rm` that follows finds nothing left: its
    /// keeper cleans up when the VMM ends normally; a VMM killed takes its
    /// keeper with it (the keeper is in the VMM's pid namespace), and what
    /// the keeper would have removed is removed here (VMEngine's delete
    /// does the same).
    func end(_ pid: pid_t) -> Int32 {
        let status = shellStatus(fromWaitStatus: waitForExit(pid).status)
        VMEngine.cleanUpAfterVMM(runRecord: RunRecord.directory(for: id))
        return status
    }

    /// The cgroup the VMM made for itself (recorded in its run record).
    static func cgroups(_ id: String) -> [String] {
        RunRecordFiles.cgroups(RunRecord.directory(for: id))
    }
}
