#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import Testing
@testable import ContainerRuntime
@testable import SwvmBase

/// Container.run must never report a status it did not see.
@Suite struct WaitForInitTests {
    /// A process that exits but is not ours to reap: wait4 fails (ECHILD),
    /// which used to end the wait loop with status 0.
    @Test func aFailedWaitIsAnErrorNotStatusZero() throws {
        // sh starts `sleep` in the background and exits: the sleep is
        // re-parented away from this process.
        let r = try Subprocess.run(["/bin/sh", "-c", "sleep 0.3 >/dev/null 2>&1 & echo $!"])
        let orphan = pid_t(r.output.trimmingCharacters(in: " ")) ?? 0
        #expect(orphan > 0)
        let pidfd = sys_pidfd_open(orphan, 0)
        #expect(pidfd >= 0)
        defer { close(pidfd) }
        var mask = sigset_t()
        sigemptyset(&mask)
        let signals = FileDescriptor(signalfd(-1, &mask, Int32(SFD_CLOEXEC | SFD_NONBLOCK)))
        var caught: SwvmError?
        do {
            let status = try Container.waitForInit(pid: orphan, pidfd: pidfd, signals: signals, terminal: nil)
            Issue.record("reported status \(status.status) for a process it could not wait for")
        } catch let e as SwvmError {
            caught = e
        }
        #expect(caught?.code == .systemCall)
        #expect(caught?.message.contains("wait for the container's init (pid \(orphan))") == true, "\(caught?.message ?? "no error")")
    }
}
