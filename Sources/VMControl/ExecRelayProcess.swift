#if canImport(Glibc)
import Glibc
#endif
import CConfinement
import CSyscalls
import SwvmBase

/// An exec that a host process stands for: the OCI runtime's `exec` at
/// the VM level. runc's callers wait on a host pid for the exec's status
/// (conmon and containerd's shim read --pid-file after `exec --detach` and
/// reap that pid as its subreaper), so the exec gets a relay process
/// (`swvm vm-exec-relay`, its own session) that holds the exec's control
/// connection, passes signals on, resizes the pty on SIGWINCH, and exits
/// with the exec's status (128+N after signal N). The exec's stdio goes to
/// the VMM over SCM_RIGHTS, not through the relay.
public enum ExecRelayProcess {
    /// The relay's command (hidden): `swvm vm-exec-relay --socket PATH [--tty]`,
    /// the request on fd 3.
    public static let command = "vm-exec-relay"
    static let requestFD: Int32 = 3

    /// Starts the relay with `stdio` and waits until the exec runs: the
    /// relay's host pid and the exec's pid in the guest, or the exec's
    /// failure to start (a missing binary: .commandNotFound).
    public static func start(socket path: String, _ request: ExecRequest, stdio: ExecStdio) throws -> (relay: pid_t, guestPID: UInt32) {
        var pair: [Int32] = [-1, -1]
        try sys("socketpair for the exec relay") { socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) }
        let ours = FileDescriptor(pair[0]), theirs = FileDescriptor(pair[1])
        let exe = FS.executablePath()
        let args = ["swvm", command, "--socket", path] + (request.terminal != nil ? ["--tty"] : [])
        // dup2 onto itself clears FD_CLOEXEC (glibc 2.29): no fd is skipped.
        let dups: [Spawn.Action] = [.dup(stdio.input, to: 0), .dup(stdio.output, to: 1), .dup(stdio.error, to: 2), .dup(theirs.raw, to: requestFD)]
        let pid: pid_t
        do {
            pid = try Spawn.start(exe, argv: args, actions: dups, newSession: true)
        } catch { throw SwvmError.errno("spawn the exec relay (\(exe))", error.errno) }
        theirs.close()
        do {
            try ours.writeAll(ExecFrames.frame(MSG_EXEC, request.encode(id: 0)))
            return (pid, try VMControl.awaitStarted(ours))
        } catch {
            kill(pid, SIGKILL)
            _ = waitForExit(pid, options: 0)
            throw error
        }
    }

    /// The relay's body: the exec's status, or 255 when the VM failed it
    /// after it started (said on stderr). Its failure to start goes to
    /// the starter on fd 3 instead.
    public static func serve(socket path: String, terminal: Bool) -> Int32 {
        let request = FileDescriptor(requestFD)
        let signals: FileDescriptor
        let session: ExecSession
        do {
            signals = try blockSignals()
            // The pty's own session: a resize of its master (conmon's)
            // raises SIGWINCH here. Not possible on the caller's terminal
            // (another session's): swvm exec passes its SIGWINCH on.
            if terminal { _ = ioctl(0, UInt(TIOCSCTTY), 0) }
            let (type, payload) = try VMControl.receive(request)
            guard type == MSG_EXEC.rawValue else { throw VMControl.malformed("a relay request of type \(type)") }
            session = try VMControl.startExec(socket: path, payload: payload, stdio: ExecStdio())
        } catch {
            let e = error as? SwvmError ?? SwvmError(.internalError, "\(error)")
            try? request.writeAll(ExecFrames.frame(MSG_ERROR, ExecFrames.error(e.childCode, e.message)))
            return 255
        }
        try? request.writeAll(ExecFrames.frame(MSG_EXEC_STARTED, ExecFrames.value(0, session.pid)))
        request.close()
        if terminal { resize(session) }
        return relayStatus(session, signals: signals, terminal: terminal)
    }

    /// `relay`, its failures said on stderr: 125 when output meant for a
    /// regular file was lost (ExecOutputLost), 255 when the VM failed the
    /// exec after it started.
    public static func relayStatus(_ session: ExecSession, signals: FileDescriptor, terminal: Bool,
                                   size: () -> winsize? = { stdinSize() }) -> Int32 {
        do {
            return try relay(session, signals: signals, terminal: terminal, size: size)
        } catch let lost as ExecOutputLost {
            Log.error(lost.description)
            return ExecOutputLost.exitStatus
        } catch {
            Log.error("exec \(session.pid) in the VM: \((error as? SwvmError)?.message ?? "\(error)")")
            return 255
        }
    }

    static let forwarded: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGALRM, SIGCONT]

    public static func blockSignals() throws -> FileDescriptor {
        var set = sigset_t()
        sigemptyset(&set)
        for s in forwarded { sigaddset(&set, s) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
        return FileDescriptor(try sys("signalfd for the exec relay") { signalfd(-1, &set, Int32(SFD_CLOEXEC | SFD_NONBLOCK)) })
    }

    /// Signals on to the exec until its end is readable; then its status.
    /// `size`: the terminal's size to pass on after a SIGWINCH (the
    /// relay's: its fd 0's).
    public static func relay(_ session: ExecSession, signals: FileDescriptor, terminal: Bool,
                             size: () -> winsize? = { stdinSize() }) throws -> Int32 {
        for sig in session.deferredSignals where sig != SIGWINCH { try session.signal(sig) }
        while true {
            var fds = [pollfd(fd: session.descriptor, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: signals.raw, events: Int16(POLLIN), revents: 0)]
            if poll(&fds, 2, -1) < 0 {
                if errno == EINTR { continue }
                throw SwvmError.errno("poll the exec's connection")
            }
            if fds[0].revents != 0 { return try session.wait() }
            var info = signalfd_siginfo()
            while read(signals.raw, &info, MemoryLayout<signalfd_siginfo>.size) == MemoryLayout<signalfd_siginfo>.size {
                let sig = Int32(info.ssi_signo)
                if sig == SIGWINCH { if terminal { resize(session, to: size()) } } else { try session.signal(sig) }
            }
        }
    }

    /// The pty's size (fd 0) to the exec's.
    static func resize(_ session: ExecSession) { resize(session, to: stdinSize()) }

    public static func resize(_ session: ExecSession, to size: winsize?) {
        guard let ws = size, ws.ws_row > 0, ws.ws_col > 0 else { return }
        try? session.resize(rows: ws.ws_row, cols: ws.ws_col)
    }

    public static func stdinSize() -> winsize? {
        var ws = winsize()
        return ioctl(0, UInt(TIOCGWINSZ), &ws) == 0 ? ws : nil
    }
}
