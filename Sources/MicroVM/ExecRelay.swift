#if canImport(Glibc)
import Glibc
#endif
import CConfinement
import SwvmBase
import VMControl

/// One exec as the VMM relays it: the caller's descriptors (passed over
/// SCM_RIGHTS) on one side, MSG_EXEC_INPUT and MSG_EXEC_OUTPUT frames on
/// the other, each direction within SWVM_EXEC_WINDOW. Used only by the
/// control server's thread.
final class ExecRelay {
    let id: UInt32
    /// The client connection waiting for the exec's end (nil: detached, or gone).
    var connection: Int32?
    let input: FileDescriptor, output: FileDescriptor, error: FileDescriptor
    let interactive: Bool
    var started = false
    /// Input sent to the guest and not yet acknowledged, and whether its EOF went.
    var inputUnacked = 0
    var inputEnded = false
    /// Output from the guest not yet written (stdout, stderr), and whether
    /// each stream ended.
    var pending: [[UInt8]] = [[], []]
    var outputEnded = [false, false]
    var exitStatus: Int32?
    /// Per output descriptor: not a socket (write, not send).
    var notSocket = [false, false]

    init(id: UInt32, connection: Int32, fds: [Int32], interactive: Bool) {
        self.id = id
        self.connection = connection
        input = FileDescriptor(fds[0])
        output = FileDescriptor(fds[1])
        error = FileDescriptor(fds[2])
        self.interactive = interactive
    }

    func fd(stream k: Int) -> Int32 { k == 0 ? output.raw : error.raw }

    var pendingBytes: Int { pending[0].count + pending[1].count }

    /// Whether the client's input is to be read now.
    var wantsInput: Bool { started && interactive && !inputEnded && inputUnacked < Int(SWVM_EXEC_WINDOW) }

    /// Takes MSG_EXEC_OUTPUT's bytes; nil, or why the guest broke the protocol.
    func take(stream: UInt32, _ bytes: ArraySlice<UInt8>) -> String? {
        guard stream == 1 || stream == 2 else { return "output on stream \(stream)" }
        let k = Int(stream) - 1
        guard !outputEnded[k] else { return "output on stream \(stream) after its end" }
        guard pendingBytes + bytes.count <= Int(SWVM_EXEC_WINDOW) else {
            return "more than \(SWVM_EXEC_WINDOW) bytes of output unacknowledged"
        }
        if bytes.isEmpty { outputEnded[k] = true } else { pending[k] += bytes }
        return nil
    }

    /// Writes what stream `k` has pending without blocking this thread
    /// (after POLLOUT: a pipe takes PIPE_BUF bytes whole, a socket is
    /// sent to with MSG_DONTWAIT). Returns the bytes consumed: written,
    /// or dropped when the descriptor refuses them (its reader is gone);
    /// the guest gets them acknowledged either way.
    func flush(stream k: Int) -> Int {
        let fd = self.fd(stream: k)
        let n = min(pending[k].count, Int(PIPE_BUF))
        guard n > 0 else { return 0 }
        var written = notSocket[k] ? -1 : pending[k].withUnsafeBytes {
            send(fd, $0.baseAddress, n, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL))
        }
        if written < 0 && (notSocket[k] || errno == ENOTSOCK) {
            notSocket[k] = true
            written = pending[k].withUnsafeBytes { write(fd, $0.baseAddress, n) }
        }
        if written < 0 {
            if errno == EAGAIN || errno == EINTR { return 0 }
            let dropped = pending[k].count
            pending[k] = []
            return dropped
        }
        pending[k].removeFirst(written)
        return written
    }

    /// Done: the guest reported the exit and everything is written.
    var finished: Bool { exitStatus != nil && pendingBytes == 0 }
}
