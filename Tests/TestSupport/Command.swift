#if canImport(Glibc)
import Glibc
#endif
import SwvmBase

/// Runs a program with separate stdout and stderr, optional stdin, and a
/// timeout (after which it is killed and the result says so).
public struct CommandResult: CustomStringConvertible, Sendable {
    public let status: Int32
    public let stdout: [UInt8]
    public let stderr: [UInt8]
    public let timedOut: Bool
    public let pid: pid_t
    public let seconds: Double
    /// The process's peak resident memory (wait4's ru_maxrss), KiB.
    public let maxRSSKiB: Int

    public var out: String { String(decoding: stdout, as: UTF8.self) }
    public var err: String { String(decoding: stderr, as: UTF8.self) }
    public var description: String { "status \(status)\(timedOut ? " (timed out)" : ""), stdout \(out.debugDescription), stderr \(err.debugDescription)" }
}

public enum Command {
    /// `untilExit`: the output ends when the process exits (what it wrote
    /// is in the pipes then, and is read), not at end of file: for a command
    /// that leaves a process holding its stdout and stderr, as OCI create
    /// leaves the container's init (read to end of file, the run would last
    /// until that process ends or the timeout).
    public static func run(_ argv: [String], stdin: [UInt8]? = nil, timeout: Double = 120,
                           environment: [String: String] = [:], untilExit: Bool = false, onStart: ((pid_t) -> Void)? = nil,
                           onOutput: ((_ stdoutSoFar: String, _ pid: pid_t) -> Void)? = nil) throws -> CommandResult {
        let outPipe = try makePipe(), errPipe = try makePipe()
        let inPipe = stdin == nil ? nil : try makePipe()
        let stdinAction: Spawn.Action = inPipe.map { .dup($0.read.raw, to: 0) } ?? .open(0, path: "/dev/null", flags: O_RDONLY)
        var env: [String: String] = [:]
        var e = environ
        while let p = e.pointee {
            let s = String(cString: p)
            if let eq = s.firstIndex(of: "=") { env[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
            e += 1
        }
        for (k, v) in environment { env[k] = v }
        let started = Clock.monotonicNanos()
        let pid: pid_t
        do {
            pid = try Spawn.start(argv[0], argv: argv, environment: env.map { "\($0.key)=\($0.value)" },
                                  actions: [stdinAction, .dup(outPipe.write.raw, to: 1), .dup(errPipe.write.raw, to: 2)],
                                  searchPath: true)
        } catch { throw SwvmError.errno("spawn \(argv[0])", error.errno) }
        outPipe.write.close()
        errPipe.write.close()
        inPipe?.read.close()
        onStart?(pid)

        var stdinBytes = stdin ?? []
        var stdinOffset = 0
        if let p = inPipe { _ = fcntl(p.write.raw, F_SETFL, O_NONBLOCK); if stdinBytes.isEmpty { p.write.close() } }
        var out: [UInt8] = [], err: [UInt8] = []
        var open = (out: true, err: true)
        var timedOut = false
        var buf = [UInt8](repeating: 0, count: 65536)
        var status: Int32 = 0
        var usage = rusage()
        var exited = false
        while open.out || open.err {
            var fds = [pollfd(fd: outPipe.read.raw, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: errPipe.read.raw, events: Int16(POLLIN), revents: 0)]
            if let p = inPipe, p.write.raw >= 0, stdinOffset < stdinBytes.count {
                fds.append(pollfd(fd: p.write.raw, events: Int16(POLLOUT), revents: 0))
            }
            let remaining = timeout - Clock.secondsSince(started)
            if remaining <= 0 {
                timedOut = true
                kill(pid, SIGKILL)
                break
            }
            _ = poll(&fds, nfds_t(fds.count), Int32(min(remaining, untilExit ? 0.05 : 1) * 1000))
            // Checked before this round's reads: what it wrote before exiting is read below or in the drain.
            if untilExit && wait4(pid, &status, WNOHANG, &usage) == pid { exited = true }
            for (i, isOut) in [(0, true), (1, false)] where fds[i].revents != 0 {
                let n = read(fds[i].fd, &buf, buf.count)
                if n > 0 {
                    if isOut { out += buf[0..<n] } else { err += buf[0..<n] }
                    if isOut, let f = onOutput { f(String(decoding: out, as: UTF8.self), pid) }
                } else if n == 0 || errno != EINTR {
                    if isOut { open.out = false } else { open.err = false }
                    fds[i].fd = -1
                }
                if n <= 0 {
                    if isOut { outPipe.read.close(); } else { errPipe.read.close() }
                }
            }
            if fds.count > 2, fds[2].revents != 0, let p = inPipe {
                let n = stdinBytes.withUnsafeBytes { write(p.write.raw, $0.baseAddress! + stdinOffset, $0.count - stdinOffset) }
                if n > 0 { stdinOffset += n }
                if n < 0 && errno != EAGAIN { stdinOffset = stdinBytes.count }
                if stdinOffset >= stdinBytes.count { p.write.close(); stdinBytes = [] }
            }
            if !open.out && !open.err { break }
            // Re-arm closed descriptors as -1 so poll ignores them.
            if !open.out && outPipe.read.raw >= 0 { outPipe.read.close() }
            if !open.err && errPipe.read.raw >= 0 { errPipe.read.close() }
            if exited {
                // The rest it wrote, without waiting for another writer's end of file.
                if open.out { out += drain(outPipe.read.raw) }
                if open.err { err += drain(errPipe.read.raw) }
                break
            }
        }
        while !exited && wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
        return CommandResult(status: shellStatus(fromWaitStatus: status), stdout: out, stderr: err,
                             timedOut: timedOut, pid: pid, seconds: Clock.secondsSince(started), maxRSSKiB: usage.ru_maxrss)
    }

    /// What a pipe holds now (non-blocking reads until it is empty).
    static func drain(_ fd: Int32) -> [UInt8] {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var bytes: [UInt8] = [], buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buf, buf.count)
            if n > 0 { bytes += buf[0..<n]; continue }
            if n < 0 && errno == EINTR { continue }
            return bytes
        }
    }
}
