#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import Cgroups
import ContainerRuntime
import NativeThreads
import RunRecords
import RuntimeSpec
import SwvmBase

/// What a monitor runs: a container's (or, later, a VM's) whole life. The
/// process started gets the monitor's fds 0, 1 and 2 (/dev/null, or with
/// -i a held pipe, and the log pipes); `started` is called once it runs, with its identity and
/// cgroup directories; `run` returns its exit status (128+N for signal N)
/// after the level's own clean-up (cgroup, network, run record).
public protocol MonitoredWorkload {
    func run(started: @escaping (ProcessIdentity, [String]) -> Void) throws -> Int32
    /// -t: the level relays a pty to the monitor's fd 1 (the stdout log)
    /// for the whole run, so the monitor keeps that pipe until the end.
    var terminal: Bool { get }
    /// -i: stdin is a pipe the monitor holds open (nothing writes it), so
    /// a shell waits for input as under `docker run -di` instead of ending.
    var interactive: Bool { get }
}

extension MonitoredWorkload {
    public var terminal: Bool { false }
    public var interactive: Bool { false }
}

/// The container level: the same ContainerRuntime run as a foreground
/// `swvm run` (so every flag behaves the same), whose init is the
/// monitor's child and dies with it (parent-death signal).
public struct ContainerWorkload: MonitoredWorkload {
    let spec: RunSpec

    public init(spec: RunSpec) { self.spec = spec }

    public var terminal: Bool { spec.terminal }
    public var interactive: Bool { spec.interactive }

    public func run(started: @escaping (ProcessIdentity, [String]) -> Void) throws -> Int32 {
        let container = Container(spec: spec)
        let runDir = RunRecord.directory(for: spec.id)
        container.onStart = { pid in
            let identity = ProcessIdentity(pid: pid, startTime: ProcessStat.read(pid)?.startTime ?? 0)
            started(identity, RunRecordFiles.cgroups(runDir))
        }
        return try container.run().status
    }
}

/// The run record a container run keeps (RunRecords): where the monitor
/// finds the cgroup directories.
enum RunRecordFiles {
    static func cgroups(_ dir: String) -> [String] {
        ((try? FS.readText(Path.join(dir, "cgroups"))) ?? "").split(separator: "\n").map(String.init).filter { !$0.isEmpty }
    }
}

/// The monitor's report to `swvm run -d` over a pipe: "ok", or the exit
/// status and message of the error that stopped the container starting.
public enum MonitorReport {
    public static func send(_ fd: Int32, _ error: SwvmError?) {
        let text = error.map { "\($0.exitStatus) \($0.message)" } ?? "ok"
        Array(text.utf8).withUnsafeBytes { _ = try? FileDescriptor.writeAll(fd, $0) }
        close(fd)
    }

    /// nil: started. EOF before a report: the sender died (`endedEarly`).
    public static func receive(_ fd: FileDescriptor, endedEarly: String = "the monitor ended before the container started") throws -> SwvmError? {
        let text = String(decoding: try fd.readAll(limit: 64 << 10), as: UTF8.self)
        if text == "ok" { return nil }
        guard let space = text.firstIndex(of: " "), let status = Int32(text[..<space]) else {
            return SwvmError(.internalError, endedEarly)
        }
        let message = String(text[text.index(after: space)...])
        switch status {
        case 126: return SwvmError(.commandNotExecutable, message)
        case 127: return SwvmError(.commandNotFound, message)
        default: return SwvmError(.internalError, message)
        }
    }
}

/// Reads the container's stdout and stderr pipes into its log until both
/// are closed (every process holding them gone).
final class LogPump: @unchecked Sendable {
    let thread: NativeThread

    init(stdout: Int32, stderr: Int32, writer: LogWriter) throws {
        thread = try NativeThread(name: "log-pump") {
            // Signals are the main thread's (Container forwards them from
            // a signalfd); one taken here would kill the monitor instead.
            var all = sigset_t()
            sigfillset(&all)
            pthread_sigmask(SIG_BLOCK, &all, nil)
            var fds = [pollfd(fd: stdout, events: Int16(POLLIN), revents: 0), pollfd(fd: stderr, events: Int16(POLLIN), revents: 0)]
            var buf = [UInt8](repeating: 0, count: 65536)
            while fds.contains(where: { $0.fd >= 0 }) {
                if poll(&fds, nfds_t(fds.count), -1) < 0 { if errno == EINTR { continue }; break }
                for i in fds.indices where fds[i].fd >= 0 && fds[i].revents != 0 {
                    let stream: LogWriter.Stream = i == 0 ? .stdout : .stderr
                    let n = read(fds[i].fd, &buf, buf.count)
                    if n > 0 { try? writer.write(buf[0..<n], from: stream); continue }
                    if n < 0 && errno == EINTR { continue }
                    try? writer.finish(stream)
                    close(fds[i].fd)
                    fds[i].fd = -1
                }
            }
        }
    }
}

/// `swvm monitor`: a detached container's keeper, as conmon is podman's.
/// It holds the container's output pipes (writing the log), learns its
/// exit status (its init is the monitor's child), records it, and with
/// --rm removes the container. Started by `swvm run -d` in a session of
/// its own, with /dev/null as its stdio and `report` to answer on.
public struct Monitor {
    public let store: ServiceStore
    public let id: String

    public init(store: ServiceStore, id: String) {
        self.store = store
        self.id = id
    }

    /// Makes the workload (an error is reported to `swvm run -d`) and runs
    /// it to its end; the monitor's exit status.
    public func run(record: ServiceRecord, report: Int32, _ make: () throws -> MonitoredWorkload) -> Int32 {
        // Processes the container leaves behind are reaped here, not by init.
        _ = sys_prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        _ = fcntl(report, F_SETFD, FD_CLOEXEC)
        let pump: LogPump
        let workload: MonitoredWorkload
        let stdinWriter: FileDescriptor?
        do {
            workload = try make()
            try recordCreating(record)
            stdinWriter = workload.interactive ? try holdStdinOpen() : nil
            pump = try startLogging(record)
        } catch {
            MonitorReport.send(report, Monitor.swvmError(error))
            removeContainer()
            return 125
        }
        defer { withExtendedLifetime(stdinWriter) {} }
        let reported = ReportState()
        let terminal = workload.terminal
        do {
            let status = try workload.run { identity, cgroups in
                self.recordStarted(identity, cgroups)
                self.releaseOutput(keepStdout: terminal)
                MonitorReport.send(report, nil)
                reported.done = true
            }
            releaseOutput()
            pump.thread.join()
            finish(status: status, autoRemove: record.autoRemove)
            return status
        } catch {
            releaseOutput()
            pump.thread.join()
            if !reported.done {
                MonitorReport.send(report, Monitor.swvmError(error))
                removeContainer()
            } else {
                Log.error("container \(id): \(error)")
                finish(status: nil, autoRemove: record.autoRemove)
            }
            return 125
        }
    }

    final class ReportState: @unchecked Sendable { var done = false }

    static func swvmError(_ error: Error) -> SwvmError {
        error as? SwvmError ?? SwvmError(.internalError, "\(error)")
    }

    /// state.json before the container exists: "creating" while the
    /// monitor lives (ContainerState), "stopped" if it dies first.
    func recordCreating(_ record: ServiceRecord) throws {
        let lock = try store.state.lock(id)
        try store.write({ var r = record; r.monitor = .current(); return r }(), lock)
        var container = ContainerRecord(id: id, bundle: store.state.directory(id), rootfs: "", creator: .current(),
                                        created: Timestamp.rfc3339(record.created))
        // The level, as an OCI create records it: the lifecycle picks its engine by it.
        container.annotations = [OCIAnnotation(key: IsolationLevel.annotation, value: record.isolation)]
        try store.state.write(container, lock)
    }

    /// The container runs: the lifecycle (kill, pause, exec) finds its init.
    func recordStarted(_ initProcess: ProcessIdentity, _ cgroups: [String]) {
        do {
            let lock = try store.state.lock(id)
            guard var container = try store.state.read(id) else { return }
            container.initProcess = initProcess
            container.cgroupPaths = cgroups
            container.createFinished = true
            try store.state.write(container, lock)
        } catch {
            Log.error("container \(id): cannot record its init: \(error)")
        }
    }

    /// Pipes whose write ends become fds 1 and 2 (what the container
    /// inherits), read into the log by a thread.
    func startLogging(_ record: ServiceRecord) throws -> LogPump {
        let writer = try LogWriter(path: store.logFile(id), maxSize: record.logMaxSize)
        var out: [Int32] = [-1, -1], err: [Int32] = [-1, -1]
        try sys("pipe for the container's stdout") { sys_pipe2(&out, O_CLOEXEC) }
        try sys("pipe for the container's stderr") { sys_pipe2(&err, O_CLOEXEC) }
        guard dup2(out[1], 1) == 1, dup2(err[1], 2) == 2 else { throw SwvmError.errno("dup2 the container's output pipes") }
        close(out[1])
        close(err[1])
        return try LogPump(stdout: out[0], stderr: err[0], writer: writer)
    }

    /// -i: a pipe's read end on fd 0 (what the container inherits, or
    /// what the level's pty relay reads); the write end, kept by the
    /// monitor until it ends, never writes, so stdin never reaches EOF.
    func holdStdinOpen() throws -> FileDescriptor {
        let (read, write) = try makePipe()
        guard dup2(read.raw, 0) == 0 else { throw SwvmError.errno("dup2 the container's stdin pipe") }
        read.close()
        return write
    }

    /// Drops the monitor's copies of the pipes' write ends (so the log
    /// ends when the container's last process does); the monitor's own
    /// messages go to monitor.log beside the log. `keepStdout`: the
    /// level's pty relay still writes fd 1 until the run returns.
    func releaseOutput(keepStdout: Bool = false) {
        let own = open(Path.join(store.state.directory(id), "monitor.log"), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        let null = open("/dev/null", O_WRONLY | O_CLOEXEC)
        if !keepStdout { _ = dup2(null, 1) }
        _ = dup2(own >= 0 ? own : null, 2)
        if own >= 0 { close(own) }
        if null >= 0 { close(null) }
    }

    /// The exit status in service.json (Exited (N)), or with --rm the
    /// container gone. `swvm rm -f` may have removed it already.
    func finish(status: Int32?, autoRemove: Bool) {
        guard let lock = try? store.state.lock(id) else { return }
        // The run removed its own cgroups; a freezer `swvm pause` added is ours.
        if let container = try? store.state.read(id) { CgroupDirectories(container.cgroupPaths).destroy() }
        if autoRemove {
            try? store.state.remove(id, lock)
            return
        }
        guard var record = try? store.read(id) else { return }
        record.exitCode = status
        record.finished = Clock.realtimeNanos()
        try? store.write(record, lock)
    }

    func removeContainer() {
        guard let lock = try? store.state.lock(id) else { return }
        try? store.state.remove(id, lock)
    }
}
