#if canImport(Glibc)
import Glibc
#endif
import CConfinement
import CSyscalls   // a whole-module (release) build finds <sys/socket.h>'s names through it (ExecRelayProcess imports it)
import RunRecords
import SwvmBase

/// The caller's descriptors an exec gets as its stdin, stdout and stderr
/// (passed to the VMM over SCM_RIGHTS; the VMM relays them to the guest,
/// so they work after the caller is gone: a detached exec).
public struct ExecStdio: Sendable {
    public var input: Int32, output: Int32, error: Int32
    public init(input: Int32 = 0, output: Int32 = 1, error: Int32 = 2) {
        self.input = input
        self.output = output
        self.error = error
    }
}

/// A running exec: its pid in the workload's pid namespace, and its
/// connection to the VMM (resize, signal, wait).
public final class ExecSession: @unchecked Sendable {
    public let pid: UInt32
    let connection: FileDescriptor
    /// Copies of the exec's output into regular files (ExecFilePump).
    let pumps: [ExecFilePump]
    /// Signals the caller got while the exec was starting, to pass on.
    public internal(set) var deferredSignals: [Int32] = []

    /// The connection, to poll: readable when the exec's end is near.
    public var descriptor: Int32 { connection.raw }

    init(pid: UInt32, connection: FileDescriptor, pumps: [ExecFilePump] = []) {
        self.pid = pid
        self.connection = connection
        self.pumps = pumps
    }

    /// A new size of the exec's terminal.
    public func resize(rows: UInt16, cols: UInt16) throws {
        try VMControl.send(connection, ExecFrames.frame(MSG_EXEC_RESIZE, ExecFrames.resize(0, rows: rows, cols: cols)))
    }

    /// A signal for the exec'd process (not the workload's).
    public func signal(_ signal: Int32) throws {
        try VMControl.send(connection, ExecFrames.frame(MSG_EXEC_SIGNAL, ExecFrames.value(0, UInt32(bitPattern: signal))))
    }

    /// Waits for the exec's exit status (128+N after signal N), once its
    /// output is all written. A failure to start (a missing binary: 127,
    /// not executable: 126, see SwvmError.exitStatus) is thrown; so is
    /// ExecOutputLost when output meant for a regular file could not be
    /// written there (its status is the process's).
    public func wait() throws -> Int32 {
        let status: Int32
        do {
            status = try receiveExit()
        } catch {
            // The process's fate is the error to report; a lost output is said too.
            for failure in finishPumps() { Log.error(failure) }
            throw error
        }
        let failures = finishPumps()
        guard failures.isEmpty else { throw ExecOutputLost(status: status, failures: failures) }
        return status
    }

    /// The VMM has written all output before it reports the exit, and
    /// closes the pipes then: the files are complete once the pumps end.
    /// What failed, per pump that did.
    private func finishPumps() -> [String] {
        pumps.compactMap { $0.finish() }
    }

    private func receiveExit() throws -> Int32 {
        while true {
            let (type, payload) = try VMControl.receive(connection)
            switch type {
            case MSG_EXEC_EXIT.rawValue:
                guard let v = ExecFrames.decodeValue(payload) else { throw VMControl.malformed("EXEC_EXIT") }
                return Int32(bitPattern: v.value)
            case MSG_EXEC_ERROR.rawValue:
                guard let e = ExecFrames.decodeExecError(payload) else { throw VMControl.malformed("EXEC_ERROR") }
                throw SwvmError(e.error.code, e.error.message)
            case MSG_ERROR.rawValue:
                throw VMControl.replyError(payload)
            default:
                throw VMControl.malformed("a reply of type \(type)")
            }
        }
    }
}

/// A terminating signal reached `swvm exec` while its exec was starting:
/// it ends with 128+N, as if the signal had ended it (Docker's client
/// dies of it), and the exec goes on in the VM.
public struct ExecStartInterrupted: Error, CustomStringConvertible {
    public let signal: Int32
    public var exitStatus: Int32 { 128 + signal }
    public var description: String {
        "exec: interrupted by signal \(signal) while the process was starting; it goes on in the VM without this caller"
    }
}

/// The client of a running VMM's control socket: `swvm exec` (Docker's
/// verb), and OCI exec, kill --all, pause, resume and ps at the VM level.
/// Every call is one connection; the socket is root's (0600).
public enum VMControl {
    /// The socket's name in the run's record directory.
    public static let socketName = "control.sock"

    /// The VMM's answer (.notFound) to a request that needs the workload
    /// before guest-init reported it running: just after `swvm start`, a
    /// moment; before it, until then.
    public static let workloadNotRunning = "the VM's workload is not running (yet)"

    /// `body` again while it meets workloadNotRunning, for `seconds`: an
    /// engine's request may come right after its `start` returned.
    public static func onceRunning<T>(seconds: Double = 10, _ body: () throws -> T) throws -> T {
        let deadline = Clock.monotonicNanos() + UInt64(seconds * 1e9)
        while true {
            do {
                return try body()
            } catch let e as SwvmError where e.code == .notFound && e.message == workloadNotRunning && Clock.monotonicNanos() < deadline {
                usleep(50_000)
            }
        }
    }

    public static func socketPath(recordDirectory: String) -> String { Path.join(recordDirectory, socketName) }

    /// The socket of the VM whose VMM is `pid` (the `swvm run` process),
    /// found by its run record's owner; nil when it has none.
    public static func socketPath(vmmPID pid: pid_t) -> String? {
        guard let names = try? FS.listDirectory(RunRecord.root) else { return nil }
        for name in names {
            let dir = RunRecord.directory(for: name)
            guard let owner = try? FS.readText(Path.join(dir, "owner")),
                  owner.split(separator: " ").first.map(String.init) == String(pid) else { continue }
            let path = socketPath(recordDirectory: dir)
            return FS.exists(path) ? path : nil
        }
        return nil
    }

    /// Starts `request` in the VM; returns once it runs (or throws its
    /// failure to start: a missing binary is SwvmError .commandNotFound).
    /// With `signals` (a signalfd of the caller's blocked signals), a
    /// terminating one while the exec is still starting throws
    /// ExecStartInterrupted.
    public static func startExec(socket path: String, _ request: ExecRequest, stdio: ExecStdio = ExecStdio(),
                                 pumpFiles: Bool = true, signals: FileDescriptor? = nil) throws -> ExecSession {
        try startExec(socket: path, payload: request.encode(id: 0), stdio: stdio, pumpFiles: pumpFiles, signals: signals)
    }

    /// startExec with MSG_EXEC's payload as ExecRequest.encode made it.
    /// With `pumpFiles`, a regular file among the outputs is written by
    /// this process (ExecFilePump), which must then wait for the exec's end;
    /// without, a detached exec's caller is gone by then, and a regular
    /// file among its outputs is refused.
    public static func startExec(socket path: String, payload: [UInt8], stdio: ExecStdio,
                                 pumpFiles: Bool = true, signals: FileDescriptor? = nil) throws -> ExecSession {
        if !pumpFiles, let file = [stdio.output, stdio.error].first(where: ExecFilePump.isRegularFile) {
            // The VMM would drop every byte (EFBIG), and silently.
            let name = FS.readLink("/proc/self/fd/\(file)").map { "\($0) (fd \(file))" } ?? "fd \(file)"
            throw SwvmError(.invalidArgument, "exec: a detached exec's output cannot go to a regular file (\(name)): the VM's VMM "
                            + "may not write files, and no swvm process stays to copy it; use a pipe or /dev/null")
        }
        let c = try connect(path)
        let frame = ExecFrames.frame(MSG_EXEC, payload)
        let (pumps, sent) = pumpFiles ? try ExecFilePump.forFiles(stdio) : ([], stdio)
        let fds = [sent.input, sent.output, sent.error]
        let r = swvm_send_fds(c.raw, frame, frame.count, fds, Int32(fds.count))
        // Only the VMM's copies are left: the pipes end with its relaying.
        for p in pumps { p.vmmEnd.close() }
        guard r == 0 else {
            throw SwvmError.errno("exec: send the request to \(path)")
        }
        // A failure to start closes the VMM's ends too: the pumps end alone.
        let deferred = try signals.map { try awaitReadable(c, signals: $0) } ?? []
        let session = ExecSession(pid: try awaitStarted(c), connection: c, pumps: pumps)
        session.deferredSignals = deferred
        return session
    }

    static let terminating: Set<Int32> = [SIGINT, SIGTERM, SIGHUP, SIGQUIT]

    /// Waits until the exec's first reply is there. The exec may take any
    /// time to start (the workload may stop its child before its execve),
    /// so a terminating signal ends the wait (ExecStartInterrupted): the
    /// exec goes on without this caller, as a `docker exec` whose client
    /// was interrupted. Other signals, for the exec, are returned to be
    /// passed on once it runs.
    static func awaitReadable(_ c: FileDescriptor, signals: FileDescriptor) throws -> [Int32] {
        var deferred: [Int32] = []
        while true {
            var fds = [pollfd(fd: c.raw, events: Int16(POLLIN), revents: 0), pollfd(fd: signals.raw, events: Int16(POLLIN), revents: 0)]
            if poll(&fds, 2, -1) < 0 {
                if errno == EINTR { continue }
                throw SwvmError.errno("poll the exec's connection")
            }
            if fds[0].revents != 0 { return deferred }
            var info = signalfd_siginfo()
            while read(signals.raw, &info, MemoryLayout<signalfd_siginfo>.size) == MemoryLayout<signalfd_siginfo>.size {
                let sig = Int32(info.ssi_signo)
                if terminating.contains(sig) { throw ExecStartInterrupted(signal: sig) }
                deferred.append(sig)
            }
        }
    }

    /// The exec's pid from the first reply on `c`, or its failure to start.
    static func awaitStarted(_ c: FileDescriptor) throws -> UInt32 {
        let (type, payload) = try receive(c)
        switch type {
        case MSG_EXEC_STARTED.rawValue:
            guard let v = ExecFrames.decodeValue(payload) else { throw malformed("EXEC_STARTED") }
            return v.value
        case MSG_EXEC_ERROR.rawValue:
            guard let e = ExecFrames.decodeExecError(payload) else { throw malformed("EXEC_ERROR") }
            throw SwvmError(e.error.code, e.error.message)
        case MSG_ERROR.rawValue:
            throw replyError(payload)
        default:
            throw malformed("a reply of type \(type)")
        }
    }

    /// Runs `request` to its end: its exit status. With `detach`, returns
    /// its pid once it runs (the VMM keeps relaying its stdio).
    public static func exec(socket path: String, _ request: ExecRequest, stdio: ExecStdio = ExecStdio(),
                            detach: Bool = false) throws -> Int32 {
        let session = try startExec(socket: path, request, stdio: stdio, pumpFiles: !detach)
        return detach ? Int32(bitPattern: session.pid) : try session.wait()
    }

    /// A signal for every process of the workload (kill --all).
    public static func signalAll(socket path: String, signal: Int32) throws {
        var m = swvm_signal(signal: UInt32(bitPattern: signal))
        var bytes = [UInt8](repeating: 0, count: Int(SWVM_SIGNAL_LEN))
        swvm_signal_encode(&m, &bytes)
        try request(path, MSG_SIGNAL_ALL, bytes, expecting: MSG_CONTROL_DONE)
    }

    /// Parks the VM's vCPUs: the guest stops (its clocks jump on resume).
    public static func pause(socket path: String) throws { try request(path, MSG_PAUSE, [], expecting: MSG_CONTROL_DONE) }

    public static func resume(socket path: String) throws { try request(path, MSG_RESUME, [], expecting: MSG_CONTROL_DONE) }

    /// New limits for the workload's cgroup in the guest (nil: unchanged;
    /// SWVM_UPDATE_UNLIMITED: none), once guest-init applied them.
    public static func update(socket path: String, memory: Int64?, pids: Int64?) throws {
        var m = swvm_update()
        if let memory { m.fields |= SWVM_UPDATE_MEMORY; m.memory = UInt64(bitPattern: memory) }
        if let pids { m.fields |= SWVM_UPDATE_PIDS; m.pids = pids }
        var bytes = [UInt8](repeating: 0, count: Int(SWVM_UPDATE_LEN))
        swvm_update_encode(&m, &bytes)
        guard swvm_update_decode(bytes, bytes.count, &m) == 0 else {
            throw SwvmError(.invalidArgument, "update: memory must be over 0 and pids at least 1 (-1: no limit)")
        }
        try request(path, MSG_UPDATE, bytes, expecting: MSG_CONTROL_DONE)
    }

    /// The workload's processes.
    public static func ps(socket path: String) throws -> [GuestProcess] {
        let payload = try request(path, MSG_PS, ExecFrames.head(0), expecting: MSG_PS_LIST)
        guard let list = ExecFrames.decodeProcesses(payload) else { throw malformed("PS_LIST") }
        return list.processes
    }

    // MARK: the connection

    @discardableResult
    static func request(_ path: String, _ type: swvm_message, _ payload: [UInt8], expecting: swvm_message) throws -> [UInt8] {
        let c = try connect(path)
        try send(c, ExecFrames.frame(type, payload))
        let (got, reply) = try receive(c)
        if got == MSG_ERROR.rawValue { throw replyError(reply) }
        guard got == expecting.rawValue else { throw malformed("a reply of type \(got)") }
        return reply
    }

    static func connect(_ path: String) throws -> FileDescriptor {
        let fd = FileDescriptor(try sys("socket for \(path)") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) })
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            throw SwvmError(.invalidArgument, "the control socket's path is too long: \(path)")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { p in for (i, b) in bytes.enumerated() { p[i] = b } }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd.raw, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            throw SwvmError(errno == ENOENT || errno == ECONNREFUSED ? .notFound : .systemCall,
                            "connect to the VM's control socket \(path): \(String(cString: strerror(errno))) (is the VM running?)")
        }
        return fd
    }

    static func send(_ c: FileDescriptor, _ frame: [UInt8]) throws {
        try c.writeAll(frame)
    }

    /// One reply frame (swvm_frame_read_alloc's limits); the VMM closing
    /// first is an error: the VM ended.
    static func receive(_ c: FileDescriptor) throws -> (UInt32, [UInt8]) {
        var type: UInt32 = 0, length: UInt32 = 0
        guard let buf = swvm_frame_read_alloc(c.raw, &type, &length, SWVM_MAX_GUEST_FRAME) else {
            if length > 0 { throw malformed("a reply of \(length) bytes") }
            throw SwvmError(.vmFailed, "the VM's control socket closed: the VM ended")
        }
        defer { free(buf) }
        return (type, Array(UnsafeBufferPointer(start: buf, count: Int(length))))
    }

    static func replyError(_ payload: [UInt8]) -> SwvmError {
        SwvmError.decode(payload) ?? malformed("ERROR")
    }

    static func malformed(_ what: String) -> SwvmError {
        SwvmError(.vmFailed, "the VM's control socket sent a malformed \(what)")
    }
}
