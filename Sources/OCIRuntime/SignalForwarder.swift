#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import SwvmBase

/// `swvm run` (runc's run) waits for the container's init and passes on
/// the signals it gets, as runc does. The signals are blocked from
/// construction (before the init exists) and read from a signalfd.
final class SignalForwarder {
    static let forwarded: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGALRM, SIGCONT]
    private let signals: FileDescriptor
    private var mask: sigset_t

    init() throws {
        var set = sigset_t()
        sigemptyset(&set)
        for s in SignalForwarder.forwarded { sigaddset(&set, s) }
        sigaddset(&set, SIGCHLD)
        pthread_sigmask(SIG_BLOCK, &set, nil)
        signals = FileDescriptor(try sys("signalfd") { signalfd(-1, &set, Int32(SFD_CLOEXEC | SFD_NONBLOCK)) })
        mask = set
    }

    deinit { pthread_sigmask(SIG_UNBLOCK, &mask, nil) }

    /// The init's exit status as a shell reports it. Other children (what
    /// the container left behind, reparented to this subreaper) are reaped
    /// along the way.
    func wait(for process: ProcessIdentity) throws -> Int32 {
        while true {
            while true {
                var status: Int32 = 0
                let r = waitpid(-1, &status, WNOHANG)
                if r == process.pid { return shellStatus(fromWaitStatus: status) }
                if r < 0 && errno == ECHILD {
                    throw SwvmError(.systemCall, "wait for the container's init (pid \(process.pid)): it is not a child of swvm")
                }
                if r <= 0 { break }
            }
            var p = pollfd(fd: signals.raw, events: Int16(POLLIN), revents: 0)
            _ = poll(&p, 1, 1000)
            var info = signalfd_siginfo()
            while read(signals.raw, &info, MemoryLayout<signalfd_siginfo>.size) == MemoryLayout<signalfd_siginfo>.size {
                let sig = Int32(info.ssi_signo)
                if sig != SIGCHLD { Glibc.kill(process.pid, sig) }
            }
        }
    }
}
