#if canImport(Glibc)
import Glibc
#endif
import Cgroups
import RunRecords
import RuntimeSpec
import SnapshotCache
import SwvmBase
import VMMJail

/// The VM level: the container's pid is a VMM process (`swvm vmm`, swvm
/// exec'd again: no Swift runs between fork and exec) that outlives
/// `swvm create`, restores the warm snapshot, and has guest-init build the
/// workload's root and confinement from config.json; guest-init stops the
/// workload right before its execve (the start gate), and `create` returns
/// once the VMM reports that. The VMM runs in the container's cgroup and
/// exits with the workload's status. See MicroVM's VMMOCI for its side.
public struct VMEngine: IsolationEngine {
    /// How long `create` waits for the guest to reach the start gate (a
    /// cold boot, when no snapshot is cached, takes a minute here).
    public var createTimeout: Double = 600

    public init() {}

    public func create(_ spec: RunSpec, io: ProcessIO, stateDir: String, execFIFO: String) throws -> CreatedInit {
        guard let oci = spec.oci else { throw SwvmError(.internalError, "VMEngine: the RunSpec has no OCI settings") }
        try VMEngine.checkApplicable(spec, io: io)
        // The VMM's keeper shares its pid namespace and dies with it, so a
        // VM whose VMM and `swvm create` were both killed is swept here.
        RunRecord.removeStale()
        let cgroup = try Cgroups.create(cgroupsPath: oci.cgroupsPath ?? "/swvm/\(spec.id)")
        do {
            try cgroup.apply(VMEngine.hostLimits(spec.resources))
            let (read, write) = try makePipe()
            let args = ["swvm", "vmm", "--bundle", try VMEngine.bundle(stateDir: stateDir), "--id", spec.id, "--exec-fifo", execFIFO,
                        "--report-fd", "3"]
            // process.terminal: a host pty, its master to --console-socket,
            // its slave (blocking: the VMM's own open) the VMM's stdio.
            let pty = try io.consoleSocket.map { (socket: Int32) throws -> HostPty in
                let p = try HostPty.open()
                try ConsoleSocket.send(master: p.master, to: socket)
                return p
            }
            let terminal = try pty.map { try FileDescriptor.open($0.path, O_RDWR | O_NOCTTY) }
            let hold = try makePipe()
            let pid = try VMEngine.spawn(args, io: io, report: write.raw, hold: (hold.read.raw, hold.write.raw), terminal: terminal?.raw)
            terminal?.close()
            write.close()
            hold.read.close()
            let identity = ProcessIdentity(pid: pid, startTime: ProcessStat.read(pid)?.startTime ?? 0)
            let annotations: [OCIAnnotation]
            do {
                // Before its execve (it waits on `hold`), so all it maps
                // (guest memory) is charged here and its keeper starts
                // here: a create killed part-way leaves the VMM where
                // delete --force finds it.
                for p in cgroup.paths { try Cgroups.writeFile(Path.join(p, "cgroup.procs"), String(pid)) }
                guard Spawn.release(hold.write.raw) else { throw SwvmError.errno("let the VMM (pid \(pid)) start") }
                hold.write.close()
                annotations = try awaitGate(read, vmm: identity)
            } catch {
                Glibc.kill(pid, SIGKILL)
                _ = waitForExit(pid, options: 0)
                throw error
            }
            return CreatedInit(process: identity, cgroupPaths: cgroup.paths, annotations: annotations)
        } catch {
            cgroup.destroy()
            throw error
        }
    }

    /// What the VM level refuses, before anything is started.
    static func checkApplicable(_ spec: RunSpec, io: ProcessIO) throws {
        if spec.terminal != (io.consoleSocket != nil) {
            throw SwvmError(.invalidArgument, spec.terminal ? "config.json process.terminal needs a --console-socket"
                                                            : "--console-socket needs process.terminal in config.json")
        }
        if io.preserveFDs > 0 {
            throw SwvmError(.unsupported, "--preserve-fds: descriptors cannot be passed into a VM")
        }
    }

    /// The container's cgroup holds the VMM: guest RAM (the workload's
    /// limit plus the guest kernel's margin) and the VMM's own memory; the
    /// CPU quota as asked; the pids limit applies inside the guest (the
    /// VMM's threads are few). No device rule: the VMM needs /dev/kvm and
    /// the guest's devices are virtual.
    static func hostLimits(_ r: ResourceLimits) -> ResourceLimits {
        var limits = ResourceLimits()
        limits.cpuQuota = r.cpuQuota
        limits.cpuPeriod = r.cpuPeriod
        let guestMargin: UInt64 = 64 << 20, vmmMargin: UInt64 = 128 << 20, defaultGuest: UInt64 = 128 << 20
        if let m = r.memory { limits.memory = max(defaultGuest, m + guestMargin) + vmmMargin }
        return limits
    }

    /// swvm itself as the VMM (Spawn.vmm: PID 1 of a pid namespace of its
    /// own, no Swift in the child), in a session of its own (a terminal's
    /// signals are not the container's), with the container's stdio and
    /// the report pipe on fd 3; it waits on `hold` before its execve.
    /// With `terminal` (a host pty's slave) that is its stdio instead; the
    /// VMM makes it its controlling terminal (VMMOCI), so a resize of the
    /// master raises SIGWINCH in the VMM, which passes the size on.
    /// `dieWithCaller`: a detached VM's, which ends with its monitor.
    static func spawn(_ args: [String], io: ProcessIO, report: Int32, hold: (read: Int32, write: Int32)?, terminal: Int32? = nil,
                      dieWithCaller: Bool = false) throws -> pid_t {
        let exe = FS.executablePath()
        // A pair of equal descriptors stays open across the execve.
        let dups = [(terminal ?? io.stdin, Int32(0)), (terminal ?? io.stdout, 1), (terminal ?? io.stderr, 2), (report, 3)]
        do {
            return try Spawn.vmm(exe, argv: args, dups: dups, newSession: true, dieWithCaller: dieWithCaller, hold: hold)
        } catch { throw SwvmError.errno("spawn the VMM (\(exe))", error.errno) }
    }

    /// Reads the VMM's report: "created" and lines KEY=VALUE (annotations
    /// for state: which root the VM has), or "error" and its message; EOF
    /// without one means the VMM died.
    func awaitGate(_ report: FileDescriptor, vmm: ProcessIdentity) throws -> [OCIAnnotation] {
        let deadline = Clock.monotonicNanos() + UInt64(createTimeout * 1e9)
        var text: [UInt8] = []
        while true {
            var p = pollfd(fd: report.raw, events: Int16(POLLIN), revents: 0)
            let left = Int64(deadline) - Int64(Clock.monotonicNanos())
            guard left > 0 else { throw SwvmError(.vmFailed, "the VM did not reach the start gate within \(Int(createTimeout)) s") }
            let n = poll(&p, 1, Int32(min(left / 1_000_000, 1000)))
            if n < 0 && errno != EINTR { throw SwvmError.errno("poll the VMM's report") }
            guard n > 0 else { continue }
            let chunk = try report.read(upTo: 65536)
            if chunk.isEmpty { break }
            text += chunk
            guard text.count <= 1 << 20 else { break }
        }
        let reply = String(decoding: text, as: UTF8.self)
        if reply.hasPrefix("created\n") {
            return reply.dropFirst(8).split(separator: "\n").compactMap { line -> OCIAnnotation? in
                let kv = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                return kv.count == 2 ? OCIAnnotation(key: String(kv[0]), value: String(kv[1])) : nil
            }
        }
        if reply.hasPrefix("error\n") { throw SwvmError(.vmFailed, String(reply.dropFirst(6))) }
        throw SwvmError(.vmFailed, "the VMM (pid \(vmm.pid)) ended before the container was created")
    }

    public func pids(_ cgroupPaths: [String]) -> [pid_t] { CgroupDirectories(cgroupPaths).pids() }


    /// The cgroup (killing the VMM and its keeper, which are in it), and
    /// what the keeper would have removed: the run record (tap, published
    /// ports, address lease), the uid lease and the temporary of a boot
    /// snapshot or template the VMM was writing (the sweep takes only
    /// those whose writer's lock died with their VMM).
    public func destroy(cgroupPaths: [String], cgroupsPath: String?, id: String) {
        ContainerEngine().destroy(cgroupPaths: cgroupPaths, cgroupsPath: cgroupsPath, id: id)
        VMEngine.cleanUpAfterVMM(runRecord: RunRecord.directory(for: id))
        SnapshotCache.removeStaleTemporaries()
        SnapshotCache.removeStaleTemporaries(root: SwvmPaths.templatesDir)
    }

    /// Once the VMM that owns `dir` is gone (a zombie counts as gone: its
    /// parent may be slow to reap it), removes its record and its lease.
    static func cleanUpAfterVMM(runRecord dir: String) {
        guard let text = try? FS.readText(Path.join(dir, "owner"), limit: 4096) else { return }
        let f = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard f.count == 2, let pid = pid_t(f[0]), let start = UInt64(f[1]) else { return }
        let owner = ProcessIdentity(pid: pid, startTime: start)
        for _ in 0..<250 where owner.isAlive { usleep(20_000) }
        guard !owner.isAlive else {
            RuntimeLog.current.warning("the VMM (pid \(pid)) outlived its cgroup; its run record \(dir) stays")
            return
        }
        RunRecord.cleanup(dir)
        VMMIdentity.release(ownedBy: pid, startTime: start)
    }
}

extension VMEngine {
    /// The bundle the VMM reads config.json from (root.path is relative to
    /// it), as `create` recorded it in state.json before calling the engine.
    static func bundle(stateDir: String) throws -> String {
        let store = StateStore(root: Path.dirname(stateDir))
        guard let record = try store.read(Path.basename(stateDir)) else {
            throw SwvmError(.internalError, "VMEngine: \(stateDir) has no state.json to name the bundle")
        }
        return record.bundle
    }
}
