#if canImport(Glibc)
import Glibc
#endif
import CConfinement
import CSyscalls
import Cgroups
import RuntimeSpec
import RunSettingsWire
import Seccomp
import SwvmBase

extension OCIProcess {
    /// The namespaces /proc/PID/ns has that this process does not share,
    /// as CLONE_NEW* flags (setns refuses to re-enter one's own user namespace).
    static func namespacesToJoin(_ pid: pid_t) throws -> UInt32 {
        let names = ["user": "user", "mnt": "mount", "net": "network", "uts": "uts", "ipc": "ipc", "pid": "pid", "cgroup": "cgroup"]
        var flags: UInt32 = 0
        for (file, type) in names {
            guard let theirs = FS.stat("/proc/\(pid)/ns/\(file)") else {
                throw SwvmError(.notFound, "exec: the container's init (pid \(pid)) is gone")
            }
            let ours = FS.stat("/proc/self/ns/\(file)")
            if ours?.st_ino != theirs.st_ino || ours?.st_dev != theirs.st_dev { flags |= OCINamespaces.types[type]! }
        }
        return flags
    }

    /// Runs `spec.process` in the running container whose init is `pid`
    /// (swvm exec): it joins the init's namespaces and `cgroupPaths`, and
    /// goes through the same process stage as the init. Returns its exit
    /// status (128+N for signal N); with `detach`, its pid once it exec'd.
    /// A missing executable throws .commandNotFound (127), as at create.
    public static func exec(into pid: pid_t, cgroupPaths: [String], process spec: RunSpec, io: OCICreateIO,
                            detach: Bool, pidFile: String?) throws -> Int32 {
        guard spec.oci != nil else { throw SwvmError(.internalError, "OCIProcess.exec: the RunSpec has no OCI settings") }
        if spec.terminal && io.consoleSocket == nil && detach {
            throw SwvmError(.invalidArgument, "exec --tty --detach needs a --console-socket")
        }
        let pidfd = sys_pidfd_open(pid, 0)
        guard pidfd >= 0 else { throw SwvmError.errno("exec: open the container's init (pid \(pid))") }
        defer { close(pidfd) }
        let namespaces = try namespacesToJoin(pid)
        let filter = try spec.seccomp.map { try SeccompCompiler.compile($0) }
        var level = RunSettings.OCILevel()
        level.preserveFDs = UInt32(io.preserveFDs)
        var settings = try decode(RunSettings.encodeOCI(spec, seccompProgram: filter?.program, level: level))
        defer { swvm_settings_free(&settings) }

        var mask = sigset_t(), oldMask = sigset_t()
        sigemptyset(&mask)
        for s in Container.forwardedSignals + [SIGCHLD, SIGPIPE] { sigaddset(&mask, s) }
        if !detach { sigprocmask(SIG_BLOCK, &mask, &oldMask) }
        defer { if !detach { sigprocmask(SIG_SETMASK, &oldMask, nil) } }
        let sigfd = detach ? nil : FileDescriptor(try sys("signalfd for swvm exec") { signalfd(-1, &mask, Int32(SFD_CLOEXEC | SFD_NONBLOCK)) })

        let child = try execClone(&settings, pidfd: pidfd, namespaces: namespaces, io: io, terminal: spec.terminal)
        let terminal = spec.terminal && io.consoleSocket == nil ? Terminal(interactive: true) : nil
        let master = try releaseExec(child, spec: spec, cgroupPaths: cgroupPaths, io: io, oomScoreAdj: spec.oci?.oomScoreAdj)
        if let pidFile { try FS.writeText(pidFile, String(child.pid)) }
        if detach { return child.pid }
        terminal?.start(master: master)
        defer { terminal?.finish() }
        do {
            return try Container.waitForInit(pid: child.pid, pidfd: child.pidfd, signals: sigfd!, terminal: terminal).status
        } catch {
            child.kill()
            throw error
        }
    }

    static func execClone(_ settings: inout swvm_settings, pidfd: Int32, namespaces: UInt32, io: OCICreateIO,
                          terminal: Bool) throws -> Container.Child {
        let sync = try makePipe()
        let errors = try makePipe()
        var fdSocket: [Int32] = [-1, -1]
        if terminal {
            try sys("socketpair to the exec'd process") { socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fdSocket) }
        }
        var cio = swvm_child_io(sync_fd: sync.read.raw, error_fd: errors.write.raw, socket_fd: fdSocket[1],
                                in: io.stdin, out: io.stdout, err: io.stderr, prepared_root: nil)
        let parentEnds = [sync.write.raw, errors.read.raw, fdSocket[0]]
        let pid = swvm_exec_clone(&settings, pidfd, namespaces, &cio, parentEnds, Int32(parentEnds.count))
        if fdSocket[1] >= 0 { close(fdSocket[1]) }
        if pid < 0 {
            let e = SwvmError.errno("exec: clone into the container's namespaces")
            if fdSocket[0] >= 0 { close(fdSocket[0]) }
            throw e
        }
        return Container.Child(pid: pid, sync: sync.write, errors: errors.read, socket: fdSocket[0], flags: UInt(namespaces))
    }

    /// Places the exec'd process in the container's cgroup, lets it go on,
    /// and reads its report until its execve (the error pipe closes). The
    /// terminal's master goes to the console socket, or is returned.
    static func releaseExec(_ child: Container.Child, spec: RunSpec, cgroupPaths: [String], io: OCICreateIO,
                            oomScoreAdj: Int32?) throws -> FileDescriptor? {
        do {
            for dir in cgroupPaths { try Cgroups.writeFile(Path.join(dir, "cgroup.procs"), String(child.pid)) }
            if let adj = oomScoreAdj { try FS.writeControl("/proc/\(child.pid)/oom_score_adj", String(adj)) }
            try child.sync.writeAll([1])
            child.sync.close()
            var master: FileDescriptor?
            if spec.terminal {
                if io.consoleSocket != nil { try relayTerminal(child, to: io.consoleSocket) }
                else if case let m = swvm_recv_fd(child.socket), m >= 0 { master = FileDescriptor(m) }
            }
            _ = try Container.readChildReport(child.errors)
            return master
        } catch {
            child.kill()
            throw error
        }
    }
}
