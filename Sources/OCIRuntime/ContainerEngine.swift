#if canImport(Glibc)
import Glibc
#endif
import Cgroups
import ContainerRuntime
import RuntimeSpec
import SwvmBase

/// The container level: a confined init cloned by ContainerRuntime's
/// OCIProcess (the CConfinement child `swvm run` uses), its cgroup by
/// Cgroups (CgroupDirectories: what state.json keeps).
public struct ContainerEngine: IsolationEngine {
    public init() {}

    public func create(_ spec: RunSpec, io: ProcessIO, stateDir: String, execFIFO: String) throws -> CreatedInit {
        let created = try OCIProcess.create(spec, io: ociIO(io, execFIFO: execFIFO), stateDir: stateDir)
        return CreatedInit(process: ProcessIdentity(pid: created.pid, startTime: created.startTime), cgroupPaths: created.cgroupPaths)
    }

    public func exec(into container: ProcessIdentity, cgroupPaths: [String], spec: RunSpec, io: ProcessIO,
                     detach: Bool, pidFile: String?) throws -> Int32 {
        try OCIProcess.exec(into: container.pid, cgroupPaths: cgroupPaths, process: spec, io: ociIO(io, execFIFO: ""),
                            detach: detach, pidFile: pidFile)
    }

    func ociIO(_ io: ProcessIO, execFIFO: String) -> OCICreateIO {
        var o = OCICreateIO(stdin: io.stdin, stdout: io.stdout, stderr: io.stderr, consoleSocket: io.consoleSocket,
                            preserveFDs: io.preserveFDs, execFIFO: execFIFO)
        if let hooks = io.hooks { o.hooks = { try hooks.atCreate(pid: $0) } }
        return o
    }

    public func isFrozen(_ record: ContainerRecord) -> Bool { CgroupDirectories(record.cgroupPaths).isFrozen }
    public func freeze(_ record: ContainerRecord) throws { try CgroupDirectories(record.cgroupPaths).freeze() }
    public func thaw(_ record: ContainerRecord) throws { try CgroupDirectories(record.cgroupPaths).thaw() }
    public func pids(_ cgroupPaths: [String]) -> [pid_t] { CgroupDirectories(cgroupPaths).pids() }
    public func processes(_ record: ContainerRecord) throws -> ProcessListing { .host(pids(record.cgroupPaths).sorted()) }

    /// Every process in the cgroup, and the init (as before kill --all
    /// had an engine of its own to ask).
    public func signalAll(_ record: ContainerRecord, signal: Int32) throws {
        for pid in pids(record.cgroupPaths) { Glibc.kill(pid, signal) }
        if let initProcess = record.initProcess, initProcess.isAlive, Glibc.kill(initProcess.pid, signal) != 0, errno != ESRCH {
            throw SwvmError.errno("kill pid \(initProcess.pid)")
        }
    }

    public func update(_ record: ContainerRecord, _ r: ResourceUpdate) throws {
        let cgroupPaths = record.cgroupPaths
        var limits = ResourceLimits()
        // -1 is "no limit": cgroup v1's largest value (v2 takes it too).
        limits.memory = r.memory.map { $0 < 0 ? 9_223_372_036_854_771_712 : UInt64($0) }
        limits.pids = r.pids
        limits.cpuQuota = r.cpuQuota
        if let p = r.cpuPeriod { limits.cpuPeriod = p }
        if r.cpuQuota == nil, r.cpuPeriod != nil {
            throw SwvmError(.invalidArgument, "update --cpu-period: give --cpu-quota with it")
        }
        if r.memorySwap != nil || r.cpuShares != nil {
            RuntimeLog.current.warning("update: memory.swap and cpu.shares are not changed by swvm")
        }
        try CgroupDirectories(cgroupPaths).update(limits)
    }

    public func destroy(cgroupPaths: [String], cgroupsPath: String?, id: String) {
        let paths = cgroupPaths.isEmpty ? ContainerEngine.cgroupDirectories(cgroupsPath: cgroupsPath ?? "/swvm/\(id)") : cgroupPaths
        CgroupDirectories(paths).destroy()
    }

    /// A create killed before it recorded its cgroup: the directories at
    /// its cgroupsPath, under each hierarchy (v1 controllers, unified) or
    /// the v2 root.
    static func cgroupDirectories(cgroupsPath: String, root: String = "/sys/fs/cgroup") -> [String] {
        guard let rel = try? Cgroups.relativePath(cgroupsPath: cgroupsPath) else { return [] }
        let hierarchies = [root] + ((try? FS.listDirectory(root)) ?? []).map { Path.join(root, $0) }
        return hierarchies.map { Path.join($0, rel) }.filter { FS.isDirectory($0) && FS.exists(Path.join($0, "cgroup.procs")) }
    }
}
