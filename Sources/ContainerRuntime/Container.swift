#if canImport(Glibc)
import Glibc
#endif
import CConfinement
import CSyscalls
import Cgroups
import RunRecords
import Network
import RuntimeSpec
import RunSettingsWire
import Seccomp
import SwvmBase

/// What a finished container run reports.
public struct ContainerResult {
    /// The exit status as a shell reports it (128+N for signal N).
    public var status: Int32
    /// The container's init as the host sees it.
    public var hostPID: pid_t
    /// Peak RSS of the container's processes (KiB, from wait4's rusage).
    public var maxRSSKiB: Int
    /// Peak memory the cgroup saw, when the controller reports it.
    public var cgroupPeakMemory: UInt64?
    public var oomKilled: Bool
    /// Monotonic nanoseconds when swvm saw the workload's execve succeed.
    public var execNanos: UInt64?
    /// Namespaces the container got (from the clone that made it).
    public var namespaces: [String] = []
    /// The device nodes it was given.
    public var devices: [String] = []
    /// System calls the loaded seccomp filter allows (nil without one; -1
    /// when it allows by default).
    public var seccompAllowedSyscalls: Int?
    /// The masked and read-only paths the child applied (nil: it exited
    /// before it got that far without an error, e.g. killed).
    public var confinedPaths: ConfinedPaths?
}

/// Runs one container: a namespaced, confined process from a RunSpec, in
/// the manner of crun. The parent (this process) stays outside to forward
/// signals, relay the terminal and clean up; the child becomes the
/// container's PID 1 and execs the workload.
public final class Container {
    public private(set) var spec: RunSpec
    let stateDir: String
    let cgroupVersion: CgroupVersion
    /// Called with the container's host pid once it runs (tests, compare).
    public var onStart: ((pid_t) -> Void)?

    /// Signals forwarded to the container, as `docker run` does.
    static let forwardedSignals: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGALRM, SIGCONT]

    public init(spec: RunSpec) {
        self.spec = spec
        stateDir = RunRecord.directory(for: spec.id)
        cgroupVersion = Cgroups.detect()
    }

    /// How the child makes /sys/fs/cgroup: cgroup2 whole; on v1 each
    /// controller's hierarchy, or with --userns (which cannot mount v1) the
    /// run's own directories bound read-only.
    func cgroupMounts(_ paths: [String]) -> [RunSettings.CgroupMount] {
        guard case .v1(let root) = cgroupVersion else { return [] }
        if spec.userNamespace != nil {
            return paths.map { .bind(name: Path.basename(Path.dirname(Path.dirname($0))), source: $0) }
        }
        return CgroupV1.controllers.filter { FS.isDirectory(Path.join(root, $0)) && FS.exists(Path.join(root, $0, "cgroup.procs")) }
            .map { .v1(controller: $0) }
    }

    /// The device nodes the confinement binds into every container.
    static let boundDevices: [String] = {
        var list: [String] = []
        var i: UInt32 = 0
        while let p = swvm_bound_device(i) { list.append(String(cString: p)); i += 1 }
        return list
    }()

    /// The child's MSG_ERROR (swvm_error_write).
    static func decodeError(_ bytes: [UInt8]) -> SwvmError {
        SwvmError.decode(bytes) ?? SwvmError(.internalError, "container start failed: a malformed error report (\(bytes.count) bytes)")
    }

    /// Reads the child's frames until its error pipe closes at execve
    /// (swvm_confine.h): the paths it masked, then an error if it failed.
    static func readChildReport(_ fd: FileDescriptor) throws -> ConfinedPaths? {
        var confined: ConfinedPaths?
        while true {
            var type: UInt32 = 0, length: UInt32 = 0
            guard let frame = swvm_frame_read_alloc(fd.raw, &type, &length, SWVM_MAX_GUEST_FRAME) else {
                if length == 0 { return confined }
                throw SwvmError(.internalError, "container start: a report of \(length) bytes from the child, "
                                + "over the \(SWVM_MAX_GUEST_FRAME)-byte limit")
            }
            defer { free(frame) }
            let payload = Array(UnsafeBufferPointer(start: frame, count: Int(length)))
            switch type {
            case MSG_ERROR.rawValue: throw decodeError(payload)
            case MSG_CONFINED.rawValue: confined = try ConfinedPaths(decoding: payload)
            default: throw SwvmError(.internalError, "container start: an unknown report (type \(type)) from the child")
            }
        }
    }

    /// The child between clone and exit: its pid and the parent's ends of
    /// the sync pipe, the error pipe and (terminal, --userns) the socket.
    final class Child {
        let pid: pid_t
        let pidfd: Int32
        let sync: FileDescriptor
        let errors: FileDescriptor
        let socket: Int32
        let flags: UInt

        init(pid: pid_t, sync: FileDescriptor, errors: FileDescriptor, socket: Int32, flags: UInt) {
            self.pid = pid
            pidfd = sys_pidfd_open(pid, 0)
            self.sync = sync
            self.errors = errors
            self.socket = socket
            self.flags = flags
        }

        deinit {
            if pidfd >= 0 { close(pidfd) }
            if socket >= 0 { close(socket) }
        }

        /// Ends a child that must not go on, and reaps it.
        func kill() {
            Glibc.kill(pid, SIGKILL)
            _ = waitForExit(pid)
        }
    }

    public func run() throws -> ContainerResult {
        let t0 = Clock.monotonicNanos()
        func mark(_ what: String) { Log.debug("container: \(what) at \(formatFixed(Double(Clock.monotonicNanos() - t0) / 1e6, 2)) ms") }
        RunRecord.removeStale()
        let filter = try spec.seccomp.map { try SeccompCompiler.compile($0) }
        mark("seccomp compiled")
        try RunRecord.create(stateDir)
        var cgroup: Cgroup?
        defer {
            cgroup?.destroy()
            try? FS.removeTree(stateDir)
        }
        cgroup = try makeCgroup()
        mark("cgroup ready")
        // --network bridge: an address, published ports; the veth once the child exists.
        let network = try NetworkAttachment.prepare(spec, runDir: stateDir)
        defer { network?.release() }
        network?.apply(to: &spec)
        let terminal = spec.terminal ? Terminal(interactive: spec.interactive) : nil
        var settings = try decodedSettings(filter: filter, cgroup: cgroup!, terminal: terminal)
        defer { swvm_settings_free(&settings) }

        // Block the forwarded signals before the child exists; the parent
        // reads them from a signalfd, the child unblocks them before exec.
        var mask = sigset_t()
        sigemptyset(&mask)
        for s in Container.forwardedSignals + [SIGCHLD, SIGPIPE] { sigaddset(&mask, s) }
        var oldMask = sigset_t()
        sigprocmask(SIG_BLOCK, &mask, &oldMask)
        defer { sigprocmask(SIG_SETMASK, &oldMask, nil) }
        let sigfd = FileDescriptor(try sys("signalfd for the signals swvm forwards to the container") { signalfd(-1, &mask, Int32(SFD_CLOEXEC | SFD_NONBLOCK)) })

        mark("clone")
        let child = try clone(&settings)
        mark("cloned")
        let (master, confined) = try release(child, cgroup: cgroup!, network: network)
        mark("exec done")
        let execNanos = Clock.monotonicNanos()
        onStart?(child.pid)
        terminal?.start(master: master)
        defer { terminal?.finish() }
        let waited: (status: Int32, maxRSSKiB: Int)
        do {
            waited = try Container.waitForInit(pid: child.pid, pidfd: child.pidfd, signals: sigfd, terminal: terminal,
                                               grace: StopGrace(seconds: spec.stopTimeout))
        } catch {
            child.kill()
            throw error
        }
        mark("exited")
        return result(child, waited: waited, execNanos: execNanos, confined: confined, filter: filter, cgroup: cgroup)
    }

    /// The run's cgroup, with its limits and device rules, recorded for
    /// clean-up after a SIGKILL.
    func makeCgroup() throws -> Cgroup {
        let cgroup = try Cgroups.create(id: spec.id, version: cgroupVersion, limits: spec.resources, restrictDevices: true)
        do {
            try RunRecord.record(stateDir, cgroups: cgroup.paths)
            try cgroup.apply(spec.resources)
            try cgroup.restrictDevices()
        } catch {
            cgroup.destroy()
            throw error
        }
        return cgroup
    }

    /// The settings in their wire form, decoded by the same C as
    /// guest-init's before clone: the child runs only C until execve.
    func decodedSettings(filter: SeccompFilter?, cgroup: Cgroup, terminal: Terminal?) throws -> swvm_settings {
        let window = terminal?.host.windowSize().map { (rows: $0.ws_row, cols: $0.ws_col) }
        let encoded = RunSettings.encode(spec, seccompProgram: filter?.program, window: window,
                                         level: .container(stateDir: stateDir, cgroupMounts: cgroupMounts(cgroup.paths)))
        var settings = swvm_settings()
        var decodeError = [CChar](repeating: 0, count: 256)
        guard encoded.withUnsafeBufferPointer({ swvm_settings_decode($0.baseAddress, $0.count, &settings, &decodeError, decodeError.count) }) == 0 else {
            throw SwvmError(.internalError, String(cString: decodeError))
        }
        return settings
    }

    /// Clones the child into its new namespaces; it waits on the sync pipe.
    func clone(_ settings: inout swvm_settings) throws -> Child {
        let sync = try makePipe()
        let errors = try makePipe()
        var fdSocket: [Int32] = [-1, -1]
        if spec.terminal || spec.userNamespace != nil {
            try sys("socketpair to the container child") { socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fdSocket) }
        }
        if let map = spec.userNamespace {
            // The container's root must reach its scratch directory.
            try sys("chown \(stateDir)") { chown(stateDir, map.hostUID, map.hostGID) }
        }
        var flags = sys_CLONE_NEWNS | sys_CLONE_NEWUTS | sys_CLONE_NEWIPC | sys_CLONE_NEWPID
        if spec.network != .host { flags |= sys_CLONE_NEWNET }
        if spec.userNamespace != nil { flags |= sys_CLONE_NEWUSER }
        var io = swvm_child_io(sync_fd: sync.read.raw, error_fd: errors.write.raw, socket_fd: fdSocket[1],
                               in: -1, out: -1, err: -1, prepared_root: nil)
        let parentEnds = [sync.write.raw, errors.read.raw, fdSocket[0]]
        let pid = swvm_container_clone(&settings, flags, &io, parentEnds, Int32(parentEnds.count))
        if fdSocket[1] >= 0 { close(fdSocket[1]) }
        if pid < 0 {
            let e = SwvmError.errno("clone (new namespaces)")
            if fdSocket[0] >= 0 { close(fdSocket[0]) }
            throw e
        }
        return Child(pid: pid, sync: sync.write, errors: errors.read, socket: fdSocket[0], flags: flags)
    }

    /// Places the child (cgroup, veth, --userns id maps and image root) and
    /// lets it go on; then reads its report until its error pipe closes at
    /// execve (CLOEXEC). An error frame means it could not start.
    func release(_ child: Child, cgroup: Cgroup, network: NetworkAttachment?) throws -> (FileDescriptor?, ConfinedPaths?) {
        do {
            try cgroup.add(pid: child.pid)
            try network?.connectVeth(pid: child.pid)
            if let map = spec.userNamespace {
                try UserNamespace.writeMappings(pid: child.pid, map)
                // The image root, id-mapped so its root-owned files belong
                // to the container's root; the child attaches it.
                let tree = try UserNamespace.idmappedTree(spec.rootfs, pid: child.pid)
                defer { close(tree) }
                guard swvm_send_fd(child.socket, tree) == 0 else { throw SwvmError.errno("send the image root to the container") }
            }
            try child.sync.writeAll([1])
            child.sync.close()
            var master: FileDescriptor?
            if spec.terminal {
                let m = swvm_recv_fd(child.socket)
                if m >= 0 { master = FileDescriptor(m) }
            }
            return (master, try Container.readChildReport(child.errors))
        } catch {
            child.kill()   // reaped; the error says why it failed
            throw error
        }
    }

    /// What the run reports once the container's init has exited.
    func result(_ child: Child, waited: (status: Int32, maxRSSKiB: Int), execNanos: UInt64, confined: ConfinedPaths?,
                filter: SeccompFilter?, cgroup: Cgroup?) -> ContainerResult {
        var result = ContainerResult(status: waited.status, hostPID: child.pid, maxRSSKiB: waited.maxRSSKiB, cgroupPeakMemory: nil,
                                     oomKilled: false, execNanos: execNanos, seccompAllowedSyscalls: filter?.allowedSyscalls)
        // The child entered these or failed: clone's flags, and the cgroup
        // namespace it unshares (fail-closed) once placed in its cgroup.
        result.namespaces = Namespaces.names(child.flags | sys_CLONE_NEWCGROUP)
        result.devices = Container.boundDevices + ["/dev/pts (own instance)"]
        result.confinedPaths = confined
        result.cgroupPeakMemory = cgroup?.peakMemory()
        result.oomKilled = cgroup?.oomKilled() ?? false
        return result
    }

    /// Waits for the container's init to exit while forwarding signals to
    /// it and relaying its terminal; a second SIGINT/SIGTERM or the end of
    /// the grace period kills it. A failed poll or wait4 is an error: swvm
    /// never reports a status it did not see.
    static func waitForInit(pid: pid_t, pidfd: Int32, signals: FileDescriptor, terminal: Terminal?,
                            grace: StopGrace = StopGrace(seconds: 10)) throws -> (status: Int32, maxRSSKiB: Int) {
        var grace = grace
        while true {
            var fds = [pollfd(fd: signals.raw, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)]
            fds += terminal?.pollFDs() ?? []
            if poll(&fds, nfds_t(fds.count), pidfd < 0 ? -1 : grace.pollTimeoutMs) < 0 {
                if errno == EINTR { continue }
                throw SwvmError.errno("poll while waiting for the container")
            }
            if grace.expired { kill(pid, SIGKILL) }
            if fds[0].revents & Int16(POLLIN) != 0 {
                var info = signalfd_siginfo()
                while read(signals.raw, &info, MemoryLayout<signalfd_siginfo>.size) == MemoryLayout<signalfd_siginfo>.size {
                    let sig = Int32(info.ssi_signo)
                    if sig == SIGCHLD || sig == SIGPIPE { continue }
                    if sig == SIGWINCH, let t = terminal { t.resize(); continue }
                    kill(pid, StopGrace.isStopSignal(sig) && grace.stopRequested() ? SIGKILL : sig)
                }
            }
            if fds.count > 2 { terminal?.service(Array(fds[2...])) }
            guard pidfd < 0 || fds[1].revents != 0 else { continue }
            var status: Int32 = 0
            var usage = rusage()
            let r = wait4(pid, &status, pidfd < 0 ? 0 : WNOHANG, &usage)
            if r == pid { return (shellStatus(fromWaitStatus: status), Int(usage.ru_maxrss)) }
            if r < 0 && errno != EINTR { throw SwvmError.errno("wait for the container's init (pid \(pid))") }
        }
    }
}
