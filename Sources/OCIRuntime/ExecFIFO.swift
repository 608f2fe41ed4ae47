#if canImport(Glibc)
import Glibc
#endif
import SwvmBase

/// runc's exec FIFO: `create` makes it, the init blocks opening it for
/// writing, and `start` opens it for reading, which lets the init go on
/// to exec the user's program. The FIFO is removed once read: its absence
/// is what tells "running" from "created".
enum ExecFIFO {
    static func release(_ path: String, init process: ProcessIdentity) throws {
        // Non-blocking: an init that died must not hang `start`.
        let fd = try FileDescriptor.open(path, O_RDONLY | O_NONBLOCK)
        while true {
            var p = pollfd(fd: fd.raw, events: Int16(POLLIN), revents: 0)
            let n = poll(&p, 1, 100)
            if n < 0 && errno != EINTR { throw SwvmError.errno("poll \(path)") }
            // Data (runc's init writes "0") or a writer that came and went
            // (exec closed it): either way the init went past the FIFO.
            if n > 0 && p.revents != 0 {
                var byte: UInt8 = 0
                _ = read(fd.raw, &byte, 1)
                break
            }
            guard process.isAlive else {
                throw SwvmError(.systemCall, "cannot start the container: its init (pid \(process.pid)) has exited")
            }
        }
        unlink(path)
    }

    /// Waits (up to `seconds`) for a killed process to be gone; reaps it
    /// when it is our child (a failed create, `swvm run`). The pid is
    /// state.json's: it is reaped only while it still names that process
    /// (its start time; a zombie keeps its pid and start time until
    /// reaped), never another child that got the pid since.
    static func awaitExit(_ process: ProcessIdentity, seconds: Double) {
        let deadline = Clock.monotonicNanos() + UInt64(seconds * 1e9)
        while process.isAlive && Clock.monotonicNanos() < deadline {
            reap(process)
            usleep(2000)
        }
        reap(process)
    }

    private static func reap(_ process: ProcessIdentity) {
        guard process.pid > 0, process.startTime != 0, ProcessStat.read(process.pid)?.startTime == process.startTime else { return }
        _ = waitForExit(process.pid, options: WNOHANG)
    }
}
