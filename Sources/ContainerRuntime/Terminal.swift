#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import SwvmBase
import Terminal

/// `-t`: the container's pty master, relayed to swvm's own terminal. The
/// host terminal goes to raw mode while the container runs (with -i) and
/// its size follows SIGWINCH.
final class Terminal {
    let host: HostTerminal
    private var master: FileDescriptor?
    private var stdinOpen: Bool

    init(interactive: Bool) {
        host = HostTerminal(interactive: interactive)
        stdinOpen = interactive
    }

    func start(master: FileDescriptor?) {
        self.master = master
        host.start()
    }

    func pollFDs() -> [pollfd] {
        guard let m = master else { return [] }
        var fds = [pollfd(fd: m.raw, events: Int16(POLLIN), revents: 0)]
        if stdinOpen { fds.append(pollfd(fd: 0, events: Int16(POLLIN), revents: 0)) }
        return fds
    }

    func service(_ fds: [pollfd]) {
        guard let m = master else { return }
        if let out = fds.first, out.revents != 0 { if !copy(from: m.raw, to: 1) { master = nil } }
        if fds.count > 1, fds[1].revents != 0 {
            if !copy(from: 0, to: m.raw) {
                stdinOpen = false
                // End of input: send the terminal's EOF character.
                var eof: UInt8 = 4
                _ = write(m.raw, &eof, 1)
            }
        }
    }

    func resize() {
        guard let m = master, var ws = host.windowSize() else { return }
        _ = sys_ioctl_ptr(m.raw, sys_TIOCSWINSZ, &ws)
    }

    /// Copies what is available; false at end of input or error.
    private func copy(from: Int32, to: Int32) -> Bool {
        var buf = [UInt8](repeating: 0, count: 16384)
        let n = read(from, &buf, buf.count)
        if n <= 0 { return n < 0 && (errno == EINTR || errno == EAGAIN) }
        _ = try? buf.withUnsafeBytes { try FileDescriptor.writeAll(to, UnsafeRawBufferPointer(start: $0.baseAddress, count: n)) }
        return true
    }

    /// Drains what the container wrote last and restores the terminal.
    func finish() {
        if let m = master {
            let flags = fcntl(m.raw, F_GETFL)
            _ = fcntl(m.raw, F_SETFL, flags | O_NONBLOCK)
            while copy(from: m.raw, to: 1) {
                var p = pollfd(fd: m.raw, events: Int16(POLLIN), revents: 0)
                if poll(&p, 1, 0) <= 0 { break }
            }
        }
        host.finish()
        master = nil
    }
}
