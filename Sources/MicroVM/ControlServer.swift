#if canImport(Glibc)
import Glibc
#endif
import CConfinement
import SwvmBase
import Virtio
import VMControl
import VMM
import CSyscalls
import NativeThreads

/// The running VMM's control socket (VMControl is its client): exec, kill
/// --all, pause, resume and ps. The socket is bound before the VMM jails
/// itself (the jail leaves no file to bind) and kept as a descriptor; one
/// service thread, under its own seccomp filter, serves it: it reads the
/// clients' requests, relays each exec's stdio between the descriptors
/// the client passed and the guest, and writes without ever blocking on a
/// client's descriptor. The device thread hands it the guest's exec frames
/// (`guestFrame`). Every frame from the guest is checked before it reaches
/// a client; one that breaks the protocol ends its exec with an error.
final class ControlServer: @unchecked Sendable {
    static let maxConnections = 16
    /// Descriptors the server may hold beyond what is open at the jail:
    /// each exec's three, and the connections.
    static let descriptorBudget = Int(SWVM_MAX_EXECS) * 3 + maxConnections + 8

    let path: String
    let listener: FileDescriptor
    let wake: FileDescriptor
    let inbox = Locked<[(UInt32, [UInt8])]>([])
    /// Set once the workload runs (STARTED): execs are taken from then on.
    let workloadRunning = Locked(false)
    let console: ConsoleDevice
    let port: ConsoleDevice.Port
    let machine: Machine

    /// The serving thread's own state.
    final class Connection {
        let fd: FileDescriptor
        var reader = GuestProtocol.Reader()
        var passed: [Int32] = []
        var out: [UInt8] = []
        var exec: UInt32?
        init(_ fd: Int32) { self.fd = FileDescriptor(fd) }
        deinit { for f in passed { close(f) } }
    }
    var connections: [Int32: Connection] = [:]
    var execs: [UInt32: ExecRelay] = [:]
    var psWaiters: [UInt32: Int32] = [:]
    /// MSG_UPDATE's request ids and their clients' connections.
    var updateWaiters: [UInt32: Int32] = [:]
    var nextID: UInt32 = 0

    /// Binds `path` (0600; its directory is root's run record) for `machine`.
    init(path: String, console: ConsoleDevice, port: ConsoleDevice.Port, machine: Machine) throws {
        self.path = path
        self.console = console
        self.port = port
        self.machine = machine
        listener = FileDescriptor(try sys("socket for \(path)") {
            socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        })
        wake = FileDescriptor(try sys("eventfd for the control socket") { eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK)) })
        try bindAndListen()
    }

    private func bindAndListen() throws {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            throw SwvmError(.internalError, "the control socket's path is too long: \(path)")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { p in for (i, b) in bytes.enumerated() { p[i] = b } }
        unlink(path)
        let old = umask(0o177)   // the socket is created 0600
        defer { umask(old) }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener.raw, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { throw SwvmError.errno("bind the control socket \(path)") }
        try sys("listen on \(path)") { listen(listener.raw, 16) }
    }

    // MARK: from other threads

    /// A frame of the exec range from the guest (the device thread).
    func guestFrame(_ type: UInt32, _ payload: [UInt8]) {
        inbox.with { $0.append((type, payload)) }
        var one: UInt64 = 1
        _ = write(wake.raw, &one, 8)
    }

    func workloadStarted() { workloadRunning.replace(true) }

    // MARK: the thread

    enum Target { case wake, listener, connection(Int32), input(UInt32), output(UInt32, Int) }

    /// The thread's body, until `stop` (the VM ended) is readable.
    func serve(stop: Int32) {
        while true {
            var (fds, targets) = pollSet()
            fds.insert(pollfd(fd: stop, events: Int16(POLLIN), revents: 0), at: 0)
            if poll(&fds, nfds_t(fds.count), -1) < 0 { if errno == EINTR { continue }; return }
            if fds[0].revents != 0 { return }
            for (p, target) in zip(fds.dropFirst(), targets) where p.revents != 0 { handle(target, p.revents) }
        }
    }

    private func pollSet() -> ([pollfd], [Target]) {
        var fds = [pollfd(fd: wake.raw, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: listener.raw, events: Int16(POLLIN), revents: 0)]
        var targets: [Target] = [.wake, .listener]
        for c in connections.values {
            fds.append(pollfd(fd: c.fd.raw, events: Int16(POLLIN) | (c.out.isEmpty ? 0 : Int16(POLLOUT)), revents: 0))
            targets.append(.connection(c.fd.raw))
        }
        for e in execs.values {
            if e.wantsInput {
                fds.append(pollfd(fd: e.input.raw, events: Int16(POLLIN), revents: 0))
                targets.append(.input(e.id))
            }
            for k in 0..<2 where !e.pending[k].isEmpty {
                fds.append(pollfd(fd: e.fd(stream: k), events: Int16(POLLOUT), revents: 0))
                targets.append(.output(e.id, k))
            }
        }
        return (fds, targets)
    }

    private func handle(_ target: Target, _ revents: Int16) {
        switch target {
        case .wake:
            var v: UInt64 = 0
            _ = Glibc.read(wake.raw, &v, 8)
            for (type, payload) in inbox.with({ q in defer { q = [] }; return q }) { handleGuest(type, payload) }
        case .listener:
            accept()
        case .connection(let fd):
            guard let c = connections[fd] else { return }
            if revents & Int16(POLLOUT) != 0 { flush(c) }
            if revents & ~Int16(POLLOUT) != 0 { read(c) }
        case .input(let id):
            if let e = execs[id] { readInput(e) }
        case .output(let id, let k):
            guard let e = execs[id] else { return }
            let n = e.flush(stream: k)
            if n > 0 { toGuest(MSG_EXEC_ACK, ExecFrames.value(id, UInt32(n))) }
            if e.finished { finish(e) }
        }
    }

    private func accept() {
        let fd = swvm_accept(listener.raw)
        guard fd >= 0 else { return }
        guard connections.count < ControlServer.maxConnections else { close(fd); return }
        connections[fd] = Connection(fd)
    }

    func toGuest(_ type: swvm_message, _ payload: [UInt8]) {
        console.send(ExecFrames.frame(type, payload), to: port)
    }
}

extension ControlServer {
    /// The server of `instance`, its socket in the run's record directory,
    /// served by a thread of the VM (started with the VM's threads, after
    /// the jail) that keeps no capability.
    static func start(for instance: VMRunner.Instance, record: String) throws -> ControlServer {
        let server = try ControlServer(path: VMControl.socketPath(recordDirectory: record), console: instance.console,
                                       port: instance.control, machine: instance.machine)
        instance.machine.addServiceThread(name: "control", profile: VMMSeccomp.controlServerProfile(),
                                          prepare: { try VMMSeccomp.dropThreadCapabilities() }) { stop in
            server.serve(stop: stop)
        }
        return server
    }
}
