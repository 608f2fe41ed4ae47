#if canImport(Glibc)
import Glibc
#endif
import CConfinement
import CSyscalls
import Cgroups
import Network
import RuntimeSpec
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

    /// The child's report: SwvmError's encoded form.
    static func decodeError(_ bytes: [UInt8]) -> SwvmError {
        SwvmError.decode(bytes) ?? SwvmError(.internalError, "container start failed: \(UntrustedText.escaped(bytes))")
    }

    /// Reads the child's frames until its error pipe closes at execve
    /// (swvm_confine.h): the paths it masked, then an error if it failed.
    static func readChildReport(_ fd: FileDescriptor) throws -> ConfinedPaths? {
        var confined: ConfinedPaths?
        while true {
            var type: UInt32 = 0, length: UInt32 = 0
            guard let frame = swvm_frame_read_alloc(fd.raw, &type, &length, SWVM_MAX_CONFIG) else {
                if length == 0 { return confined }
                continue   // too long to be the child's: skipped whole
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
        cgroup = try Cgroups.create(id: spec.id, version: cgroupVersion, limits: spec.resources, restrictDevices: true)
        try RunRecord.record(stateDir, cgroups: cgroup!.paths)
        try cgroup!.apply(spec.resources)
        try cgroup!.restrictDevices()
        mark("cgroup ready")
        // --network bridge: an address, published ports; the veth once the child exists.
        let network = try NetworkAttachment.prepare(spec, runDir: stateDir)
        defer { network?.release() }
        network?.apply(to: &spec)

        let sync = try makePipe()
        let errors = try makePipe()
        var fdSocket: [Int32] = [-1, -1]
        if spec.terminal || spec.userNamespace != nil {
            try sys("socketpair") { socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fdSocket) }
        }
        if let map = spec.userNamespace {
            // The container's root must reach its scratch directory.
            try sys("chown \(stateDir)") { chown(stateDir, map.hostUID, map.hostGID) }
        }
        let terminal = spec.terminal ? Terminal(interactive: spec.interactive) : nil
        let window = terminal?.host.windowSize().map { (rows: $0.ws_row, cols: $0.ws_col) }

        // The child gets the settings in their wire form, decoded by the
        // same C as guest-init's, before clone: it runs only C until execve.
        let encoded = RunSettings.encode(spec, seccompProgram: filter?.program, window: window,
                                         level: .container(stateDir: stateDir, cgroupMounts: cgroupMounts(cgroup!.paths)))
        var settings = swvm_settings()
        var decodeError = [CChar](repeating: 0, count: 256)
        guard encoded.withUnsafeBufferPointer({ swvm_settings_decode($0.baseAddress, $0.count, &settings, &decodeError, decodeError.count) }) == 0 else {
            throw SwvmError(.internalError, String(cString: decodeError))
        }
        defer { swvm_settings_free(&settings) }

        // Block the forwarded signals before the child exists; the parent
        // reads them from a signalfd, the child unblocks them before exec.
        var mask = sigset_t()
        sigemptyset(&mask)
        for s in Container.forwardedSignals + [SIGCHLD, SIGPIPE] { sigaddset(&mask, s) }
        var oldMask = sigset_t()
        sigprocmask(SIG_BLOCK, &mask, &oldMask)
        defer { sigprocmask(SIG_SETMASK, &oldMask, nil) }
        let sigfd = FileDescriptor(try sys("signalfd") { signalfd(-1, &mask, Int32(SFD_CLOEXEC | SFD_NONBLOCK)) })

        var flags = sys_CLONE_NEWNS | sys_CLONE_NEWUTS | sys_CLONE_NEWIPC | sys_CLONE_NEWPID
        if spec.network != .host { flags |= sys_CLONE_NEWNET }
        if spec.userNamespace != nil { flags |= sys_CLONE_NEWUSER }

        mark("clone")
        var io = swvm_child_io(sync_fd: sync.read.raw, error_fd: errors.write.raw, socket_fd: fdSocket[1],
                               in: -1, out: -1, err: -1, prepared_root: nil)
        let parentEnds = [sync.write.raw, errors.read.raw, fdSocket[0]]
        let pid = swvm_container_clone(&settings, flags, &io, parentEnds, Int32(parentEnds.count))
        if pid < 0 { throw SwvmError.errno("clone (new namespaces)") }
        sync.read.close()
        errors.write.close()
        if fdSocket[1] >= 0 { close(fdSocket[1]) }
        let pidfd = sys_pidfd_open(pid, 0)

        // Join the cgroup and (for --userns) map ids before the child goes on.
        do {
            mark("cloned")
            try cgroup!.add(pid: pid)
            mark("cgroup joined")
            if let n = network {
                try n.connectVeth(pid: pid)
                mark("veth ready")
            }
            if let map = spec.userNamespace {
                try UserNamespace.writeMappings(pid: pid, map)
                // The image root, id-mapped so its root-owned files belong
                // to the container's root; the child attaches it.
                let tree = try UserNamespace.idmappedTree(spec.rootfs, pid: pid)
                defer { close(tree) }
                guard swvm_send_fd(fdSocket[0], tree) == 0 else { throw SwvmError.errno("send the image root to the container") }
            }
            try sync.write.writeAll([1])
        } catch {
            kill(pid, SIGKILL)
            _ = waitForExit(pid)
            throw error
        }
        sync.write.close()

        var master: FileDescriptor?
        if spec.terminal {
            let m = swvm_recv_fd(fdSocket[0])
            close(fdSocket[0])
            if m >= 0 { master = FileDescriptor(m) }
        }

        // The error pipe closes on a successful execve (CLOEXEC); an error
        // frame means the container could not start.
        mark("child released")
        let confined: ConfinedPaths?
        do {
            confined = try Container.readChildReport(errors.read)
        } catch {
            kill(pid, SIGKILL)
            _ = waitForExit(pid)   // reap it; the report says why it failed
            throw error
        }
        mark("exec done")
        let execNanos = Clock.monotonicNanos()
        onStart?(pid)

        terminal?.start(master: master)
        let waited: (status: Int32, maxRSSKiB: Int)
        do {
            waited = try Container.waitForInit(pid: pid, pidfd: pidfd, signals: sigfd, terminal: terminal,
                                               grace: StopGrace(seconds: spec.stopTimeout))
        } catch {
            kill(pid, SIGKILL)
            _ = waitForExit(pid)
            if pidfd >= 0 { close(pidfd) }
            terminal?.finish()
            throw error
        }
        var result = ContainerResult(status: waited.status, hostPID: pid, maxRSSKiB: waited.maxRSSKiB, cgroupPeakMemory: nil,
                                     oomKilled: false, execNanos: execNanos, seccompAllowedSyscalls: filter?.allowedSyscalls)
        if pidfd >= 0 { close(pidfd) }
        mark("exited")
        // The child entered these or failed: clone's flags, and the cgroup
        // namespace it unshares (fail-closed) once placed in its cgroup.
        result.namespaces = Namespaces.names(flags | sys_CLONE_NEWCGROUP)
        result.devices = Container.boundDevices + ["/dev/pts (own instance)"]
        result.confinedPaths = confined
        terminal?.finish()
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
