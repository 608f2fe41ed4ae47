#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import RuntimeSpec
import SwvmBase

/// Runs config.json's hooks as the runtime spec says (config.md, "POSIX
/// platform hooks"): each with its args and env, the container's state on
/// stdin, killed when its timeout passes. A hook that fails (spawn, a
/// non-zero exit, a signal, the timeout) is an error naming it and its
/// output; the caller decides whether that fails its step.
public enum HookRunner {
    /// What a failing hook printed is kept in its error, up to this much.
    static let outputLimit = 4096

    public static func run(_ hooks: [OCIHook], kind: String, state: JSON) throws {
        let input = Array(state.serialized().utf8)
        for (i, hook) in hooks.enumerated() {
            do {
                try run(hook, input: input)
            } catch let e as SwvmError {
                throw SwvmError(e.code, "\(kind) hook #\(i) (\(hook.path)): \(e.message)")
            }
        }
    }

    /// Runs every hook and logs each failure as a warning (poststart and
    /// poststop: the spec says the lifecycle goes on).
    public static func runWarning(_ hooks: [OCIHook], kind: String, state: JSON) {
        let input = Array(state.serialized().utf8)
        for (i, hook) in hooks.enumerated() {
            do {
                try run(hook, input: input)
            } catch let e as SwvmError {
                RuntimeLog.current.warning("\(kind) hook #\(i) (\(hook.path)): \(e.message)")
            } catch {}
        }
    }

    static func run(_ hook: OCIHook, input: [UInt8]) throws {
        let stdin = try makePipe(), output = try makePipe()
        try fill(stdin.write, input)
        stdin.write.close()
        let pid = try spawn(hook, stdin: stdin.read.raw, output: output.write.raw)
        stdin.read.close()
        output.write.close()
        let pidfd = sys_pidfd_open(pid, 0)
        defer { if pidfd >= 0 { close(pidfd) } }
        let (status, text, timedOut) = try wait(pid: pid, pidfd: pidfd, output: output.read.raw, timeout: hook.timeout)
        if timedOut { throw SwvmError(.systemCall, "timed out after \(hook.timeout ?? 0) s\(describe(text))") }
        if status != 0 {
            let what = status > 128 ? "killed by signal \(status - 128)" : "exit status \(status)"
            throw SwvmError(.systemCall, "\(what)\(describe(text))")
        }
    }

    /// Puts the whole state in the pipe before the hook starts: a hook
    /// that never reads its stdin cannot block swvm, nor one that exits
    /// early raise SIGPIPE here.
    static func fill(_ pipe: FileDescriptor, _ input: [UInt8]) throws {
        guard input.count <= 1 << 20 else { throw SwvmError(.invalidArgument, "the container's state is over 1 MiB") }
        if input.count > 65536 { _ = fcntl(pipe.raw, 1031 /* F_SETPIPE_SZ */, Int32(input.count)) }
        _ = fcntl(pipe.raw, F_SETFL, O_NONBLOCK)
        var offset = 0
        while offset < input.count {
            let n = input.withUnsafeBytes { write(pipe.raw, $0.baseAddress! + offset, input.count - offset) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw SwvmError.errno("write the state for a hook (\(input.count) bytes)") }
            offset += n
        }
    }

    static func describe(_ output: [UInt8]) -> String {
        output.isEmpty ? "" : ", output: \(UntrustedText.escaped(output))"
    }

    /// posix_spawn with the hook's args (argv[0] included, as execv's) and
    /// env; an empty env inherits swvm's, as runc's (Go's exec.Cmd) does.
    static func spawn(_ hook: OCIHook, stdin: Int32, output: Int32) throws -> pid_t {
        do {
            return try Spawn.start(hook.path, argv: hook.args.isEmpty ? [hook.path] : hook.args,
                                   environment: hook.env.isEmpty ? nil : hook.env,
                                   actions: [.dup(stdin, to: 0), .dup(output, to: 1), .dup(output, to: 2)])
        } catch { throw SwvmError(.systemCall, "cannot run it: \(errnoText(error.errno))") }
    }

    /// Collects the output until the hook exits; kills it at the timeout.
    static func wait(pid: pid_t, pidfd: Int32, output: Int32, timeout: Int?) throws
        -> (status: Int32, output: [UInt8], timedOut: Bool) {
        let deadline = timeout.map { Clock.monotonicNanos() + UInt64($0) * 1_000_000_000 }
        var text: [UInt8] = [], open = true, timedOut = false
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            var fds = [pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0), pollfd(fd: open ? output : -1, events: Int16(POLLIN), revents: 0)]
            let wait = deadline.map { $0 > Clock.monotonicNanos() ? Int32(min(($0 - Clock.monotonicNanos()) / 1_000_000 + 1, 60_000)) : 0 } ?? -1
            let n = poll(&fds, 2, pidfd >= 0 ? wait : min(wait < 0 ? 100 : wait, 100))
            if n < 0 && errno != EINTR { throw SwvmError.errno("poll for a hook") }
            if open && fds[1].revents != 0 {
                let got = read(output, &buf, buf.count)
                if got > 0 { if text.count < outputLimit { text += buf[0..<min(got, outputLimit - text.count)] } } else if got == 0 || errno != EINTR { open = false }
            }
            if let d = deadline, Clock.monotonicNanos() >= d, !timedOut {
                Glibc.kill(pid, SIGKILL)
                timedOut = true
            }
            let (r, status) = waitForExit(pid, options: WNOHANG)
            if r == pid { return (shellStatus(fromWaitStatus: status), text, timedOut) }
            if r < 0 { throw SwvmError.errno("wait for a hook") }
        }
    }
}
