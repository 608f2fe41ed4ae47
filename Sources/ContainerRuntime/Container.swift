#if canImport(Glibc)
import Glibc
#endif
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
    /// Namespaces the container got.
    public var namespaces: [String] = []
    /// System calls the loaded seccomp filter allows (nil without one; -1
    /// when it allows by default).
    public var seccompAllowedSyscalls: Int?
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
        let network = try NetworkAttachment.prepare(spec, runDir: stateDir)
        defer { network?.release() }
        if let n = network {
            spec.networkAddress = n.address
            spec.resolvConf = n.resolvConf
        }

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
        let cgroupPaths = cgroup!.paths
        let terminal = spec.terminal ? Terminal(interactive: spec.interactive) : nil

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
        let winsize = terminal?.host.windowSize()

        mark("clone")
        let pid = sys_clone(flags)
        if pid < 0 { throw SwvmError.errno("clone (new namespaces)") }
        if pid == 0 {
            // The child: never returns.
            sync.write.close()
            errors.read.close()
            if fdSocket[0] >= 0 { close(fdSocket[0]) }
            ContainerInit(spec: spec, stateDir: stateDir, cgroupVersion: cgroupVersion, filter: filter,
                          syncFD: sync.read.raw, errorFD: errors.write.raw, terminalSocket: fdSocket[1],
                          windowSize: winsize, cgroupPaths: cgroupPaths).run()
        }
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
                guard sys_send_fd(fdSocket[0], tree) == 0 else { throw SwvmError.errno("send the image root to the container") }
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
            let m = sys_recv_fd(fdSocket[0])
            close(fdSocket[0])
            if m >= 0 { master = FileDescriptor(m) }
        }

        // The error pipe closes on a successful execve (CLOEXEC); a message
        // means the container could not start.
        mark("child released")
        let report = try errors.read.readAll(limit: 64 << 10)
        mark("exec done")
        let execNanos = Clock.monotonicNanos()
        if !report.isEmpty {
            _ = waitForExit(pid)   // reap it; the report says why it failed
            throw ContainerInit.decodeError(report)
        }
        onStart?(pid)

        terminal?.start(master: master)
        var result = ContainerResult(status: 0, hostPID: pid, maxRSSKiB: 0, cgroupPeakMemory: nil, oomKilled: false, execNanos: execNanos,
                                     seccompAllowedSyscalls: filter?.allowedSyscalls)
        var exited = false
        while !exited {
            var fds = [pollfd(fd: sigfd.raw, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)]
            fds += terminal?.pollFDs() ?? []
            let n = poll(&fds, nfds_t(fds.count), -1)
            if n < 0 && errno != EINTR { break }
            if fds[0].revents & Int16(POLLIN) != 0 {
                var info = signalfd_siginfo()
                while read(sigfd.raw, &info, MemoryLayout<signalfd_siginfo>.size) == MemoryLayout<signalfd_siginfo>.size {
                    let sig = Int32(info.ssi_signo)
                    if sig == SIGCHLD || sig == SIGPIPE { continue }
                    if sig == SIGWINCH, let t = terminal { t.resize(); continue }
                    kill(pid, sig)
                }
            }
            if fds.count > 2 { terminal?.service(Array(fds[2...])) }
            if pidfd < 0 || fds[1].revents != 0 {
                var status: Int32 = 0
                var usage = rusage()
                let r = wait4(pid, &status, pidfd < 0 ? 0 : WNOHANG, &usage)
                if r == pid {
                    result.status = shellStatus(fromWaitStatus: status)
                    result.maxRSSKiB = Int(usage.ru_maxrss)
                    exited = true
                } else if r < 0 && errno != EINTR {
                    exited = true
                }
            }
        }
        if pidfd >= 0 { close(pidfd) }
        mark("exited")
        result.namespaces = ["mnt", "pid", "uts", "ipc", "cgroup"] + (spec.network != .host ? ["net"] : []) + (spec.userNamespace != nil ? ["user"] : [])
        terminal?.finish()
        result.cgroupPeakMemory = cgroup?.peakMemory()
        result.oomKilled = cgroup?.oomKilled() ?? false
        return result
    }
}
