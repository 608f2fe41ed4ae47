#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import Cgroups
import RuntimeSpec
import Seccomp
import SwvmBase

/// The child side of a container start: runs in the new namespaces as
/// their PID 1, builds the filesystem, confines itself, and execs the
/// workload. Failures go back to the parent over a close-on-exec pipe.
struct ContainerInit {
    let spec: RunSpec
    let stateDir: String
    let cgroupVersion: CgroupVersion
    let filter: SeccompFilter?
    let syncFD: Int32
    let errorFD: Int32
    let terminalSocket: Int32
    let windowSize: winsize?
    let cgroupPaths: [String]

    func run() -> Never {
        do {
            try start()
        } catch let e as SwvmError {
            report(e)
            _exit(e.exitStatus)
        } catch {
            report(SwvmError(.internalError, "\(error)"))
            _exit(125)
        }
        _exit(125)
    }

    private func report(_ e: SwvmError) {
        _ = try? e.encoded.withUnsafeBytes { try FileDescriptor.writeAll(errorFD, $0) }
    }

    static func decodeError(_ bytes: [UInt8]) -> SwvmError {
        SwvmError.decode(bytes) ?? SwvmError(.internalError, "container start failed: \(String(decoding: bytes, as: UTF8.self))")
    }

    private func start() throws {
        // Die with swvm, even if it is SIGKILLed.
        _ = sys_prctl(ProcessSetup.prSetPdeathsig, UInt(SIGKILL), 0, 0, 0)
        var go: UInt8 = 0
        guard read(syncFD, &go, 1) == 1 else { _exit(125) }   // the parent went away
        close(syncFD)

        // Now in our cgroup: a cgroup namespace rooted there.
        try sys("sys_unshare(sys_CLONE_NEWCGROUP)") { sys_unshare(sys_CLONE_NEWCGROUP) }
        var lowerTree: Int32?
        if spec.userNamespace != nil {
            try sys("setresuid(0)") { sys_setresuid(0, 0, 0) }
            try sys("setresgid(0)") { sys_setresgid(0, 0, 0) }
            let fd = sys_recv_fd(terminalSocket)
            guard fd >= 0 else { throw SwvmError.errno("receive the image root") }
            lowerTree = fd
        }
        try sys("setsid") { setsid() }

        var mounts = Mounts(spec: spec, stateDir: stateDir, cgroupVersion: cgroupVersion, idmappedLower: lowerTree,
                            cgroupPaths: cgroupPaths)
        try mounts.prepareRoot()
        try mounts.mountKernelFilesystems()

        // A terminal: the pty lives in the container's own devpts.
        var slavePath: String?
        var master: Int32 = -1
        if spec.terminal {
            let ptmx = Path.join(mounts.newRoot, "dev/pts/ptmx")
            master = open(ptmx, O_RDWR | O_NOCTTY | O_CLOEXEC)
            guard master >= 0 else { throw SwvmError.errno("open \(ptmx)") }
            var unlock: Int32 = 0
            _ = sys_ioctl_ptr(master, sys_TIOCSPTLCK, &unlock)
            var n: UInt32 = 0
            guard sys_ioctl_ptr(master, sys_TIOCGPTN, &n) == 0 else { throw SwvmError.errno("TIOCGPTN") }
            if var ws = windowSize { _ = sys_ioctl_ptr(master, sys_TIOCSWINSZ, &ws) }
            slavePath = Path.join(mounts.newRoot, "dev/pts/\(n)")
            guard sys_send_fd(terminalSocket, master) == 0 else { throw SwvmError.errno("send terminal to swvm") }
            close(terminalSocket)
        }
        try mounts.populateDevices(consolePath: slavePath)
        try mounts.mountUserMounts()
        try mounts.maskAndProtect()
        mounts.writeHostFiles()
        try mounts.pivot()
        close(mounts.rootFD)

        try ProcessSetup.setHostname(spec.hostname)
        if spec.network != .host {
            guard sys_interface_up("lo") == 0 else { throw SwvmError.errno("bring up lo") }
        }
        try ProcessSetup.applyRlimits(spec.process.rlimits)

        // Standard streams.
        if let slave = slavePath {
            let inside = "/dev/pts/" + Path.basename(slave)
            let fd = open(inside, O_RDWR)
            guard fd >= 0 else { throw SwvmError.errno("open \(inside)") }
            _ = sys_ioctl_int(fd, sys_TIOCSCTTY, 0)
            for target in [Int32(0), 1, 2] { dup2(fd, target) }
            if fd > 2 { close(fd) }
            if master >= 0 { close(master) }
        } else if !spec.interactive {
            let null = open("/dev/null", O_RDONLY)
            if null >= 0 { dup2(null, 0); if null > 0 { close(null) } }
        }

        ProcessSetup.ensureWorkdir(spec.process.cwd)
        try ProcessSetup.dropBoundingSet(keeping: spec.capabilities)
        // Without no_new_privs, seccomp needs CAP_SYS_ADMIN: load it while root.
        if !spec.noNewPrivileges, let f = filter { try ProcessSetup.loadSeccomp(f) }
        try ProcessSetup.switchUser(uid: spec.process.uid, gid: spec.process.gid, groups: spec.process.additionalGids)
        guard chdir(spec.process.cwd) == 0 else {
            throw SwvmError(.commandNotExecutable, "chdir to cwd (\"\(spec.process.cwd)\") set in config.json failed: \(errnoText(errno))")
        }
        try ProcessSetup.setCapabilities(spec.capabilities)
        if spec.noNewPrivileges { try ProcessSetup.setNoNewPrivileges() }
        let path = try ProcessSetup.resolveExecutable(spec.process.args[0], path: spec.process.environment("PATH"))
        if spec.noNewPrivileges, let f = filter { try ProcessSetup.loadSeccomp(f) }
        ProcessSetup.resetSignals()
        _ = sys_close_range(3, UInt32.max, 4 /* CLOSE_RANGE_CLOEXEC */)
        throw ProcessSetup.exec(path, args: spec.process.args, env: spec.process.env)
    }
}
