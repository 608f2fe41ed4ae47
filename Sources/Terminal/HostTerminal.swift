#if canImport(Glibc)
import Glibc
#endif
import CSyscalls

/// swvm's own terminal under -t, for both isolation levels: its size (sent
/// to the workload's pty at start and on SIGWINCH) and raw mode while the
/// workload reads it (-i), so keys reach the pty unprocessed.
public final class HostTerminal {
    public let interactive: Bool
    private var saved: termios?

    public init(interactive: Bool) { self.interactive = interactive }

    /// The size of the first of stdin, stdout and stderr that is a terminal.
    public func windowSize() -> winsize? {
        var ws = winsize()
        for fd in [Int32(0), 1, 2] where sys_ioctl_ptr(fd, sys_TIOCGWINSZ, &ws) == 0 { return ws }
        return nil
    }

    /// Raw mode on stdin, when interactive and stdin is a terminal.
    public func start() {
        guard interactive, isatty(0) != 0 else { return }
        var t = termios()
        guard tcgetattr(0, &t) == 0 else { return }
        saved = t
        var raw = t
        sys_make_raw(&raw)
        tcsetattr(0, TCSANOW, &raw)
    }

    /// Puts the terminal back as start found it.
    public func finish() {
        if var t = saved { tcsetattr(0, TCSANOW, &t) }
    }
}
