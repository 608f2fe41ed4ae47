#if canImport(Glibc)
import Glibc
#endif
import CConfinement
import CSyscalls
import RuntimeSpec
import SwvmBase
import Terminal
import VMControl

/// runc's exec at the VM level: the process runs in the guest (joined to
/// the workload's namespaces, cgroup and confinement by guest-init), its
/// host side a relay process (ExecRelayProcess). --pid-file gets the
/// relay's host pid, the pid runc's callers can wait on: it exits with the
/// exec's status. config.json's or --cap's capabilities and
/// no_new_privileges are the workload's in the guest, whatever the exec asks.
extension VMEngine {
    public func exec(into container: ProcessIdentity, cgroupPaths: [String], spec: RunSpec, io: ProcessIO,
                     detach: Bool, pidFile: String?) throws -> Int32 {
        guard io.preserveFDs == 0 else { throw SwvmError(.unsupported, "exec --preserve-fds: descriptors cannot be passed into a VM") }
        if spec.terminal && io.consoleSocket == nil && detach {
            throw SwvmError(.invalidArgument, "exec --tty --detach needs a --console-socket")
        }
        let socket = try Self.controlSocket(vmm: container, id: spec.id)
        let p = spec.process
        var request = ExecRequest(args: p.args, env: p.env, cwd: p.cwd, uid: p.uid, gid: p.gid, groups: p.additionalGids,
                                  interactive: true)
        // Without --detach, --pid-file or a console socket no caller needs
        // a host pid for the exec: swvm relays it itself, one process
        // start less (ExecRelayProcess's relay, in this process).
        let inProcess = !detach && pidFile == nil && io.consoleSocket == nil
        let signals = inProcess ? try ExecRelayProcess.blockSignals() : nil
        // Before the relay exists: its signals are passed on from here.
        let forwarder = detach || inProcess ? nil : try SignalForwarder()
        var stdio = ExecStdio(input: io.stdin, output: io.stdout, error: io.stderr)
        var pty: HostPty?, host: HostTerminal?
        if spec.terminal, let console = io.consoleSocket {
            let made = try HostPty.open()
            try ConsoleSocket.send(master: made.master, to: console)
            stdio = ExecStdio(input: made.slave.raw, output: made.slave.raw, error: made.slave.raw)
            request.terminal = made.size
            pty = made
        } else if spec.terminal {
            host = HostTerminal(interactive: true)
            request.terminal = host?.windowSize().map { ($0.ws_row, $0.ws_col) } ?? (24, 80)
        }
        if let signals { return try Self.relay(socket: socket, request, stdio: stdio, signals: signals, host: host) }
        let relay = try withExtendedLifetime(pty) {
            try VMControl.onceRunning { try ExecRelayProcess.start(socket: socket, request, stdio: stdio).relay }
        }
        if let pidFile { try FS.writeText(pidFile, String(relay), mode: 0o644) }
        guard let forwarder else { return relay }
        host?.start()
        defer { host?.finish() }
        return try forwarder.wait(for: ProcessIdentity(pid: relay, startTime: ProcessStat.read(relay)?.startTime ?? 0))
    }
}

extension VMEngine {
    /// The exec relayed by this process: its status, or 255 when the VM
    /// failed it after it started (said on stderr), as the relay process.
    static func relay(socket: String, _ request: ExecRequest, stdio: ExecStdio, signals: FileDescriptor,
                      host: HostTerminal?) throws -> Int32 {
        let session: ExecSession
        do {
            session = try VMControl.onceRunning { try VMControl.startExec(socket: socket, request, stdio: stdio, signals: signals) }
        } catch let interrupted as ExecStartInterrupted {
            Log.error(interrupted.description)
            return interrupted.exitStatus
        }
        host?.start()
        defer { host?.finish() }
        // The caller's terminal may be any of its stdio (a job's stdin is /dev/null).
        let size = { host?.windowSize() }
        if request.terminal != nil { ExecRelayProcess.resize(session, to: size()) }
        return ExecRelayProcess.relayStatus(session, signals: signals, terminal: request.terminal != nil, size: size)
    }
}

/// A pty made on the host for a process in the VM: its master goes to
/// --console-socket, its slave is the process's stdio, relayed to the
/// guest's own pty. The slave is raw (the guest's pty has the line
/// discipline; a second would echo and translate twice) and non-blocking
/// (the VMM's relay never waits on it).
struct HostPty {
    let master: FileDescriptor, slave: FileDescriptor
    /// The slave's path (/dev/pts/N).
    let path: String

    static func open() throws -> HostPty {
        let m = FileDescriptor(try sys("open /dev/ptmx") { Glibc.open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC) })
        let path = "/dev/pts/\(try sys("unlock the pty") { swvm_pty_unlock(m.raw) })"
        let s = FileDescriptor(try sys("open \(path)") { Glibc.open(path, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK) })
        var t = termios()
        try sys("tcgetattr \(path)") { tcgetattr(s.raw, &t) }
        sys_make_raw(&t)
        try sys("tcsetattr \(path)") { tcsetattr(s.raw, TCSANOW, &t) }
        return HostPty(master: m, slave: s, path: path)
    }

    /// The size the console socket's owner set (0x0 until it does).
    var size: (rows: UInt16, cols: UInt16) {
        var ws = winsize()
        return ioctl(slave.raw, UInt(TIOCGWINSZ), &ws) == 0 ? (ws.ws_row, ws.ws_col) : (0, 0)
    }
}
