#if canImport(Glibc)
import Glibc
#endif
import CConfinement
import SwvmBase

/// --console-socket: a Unix stream socket the caller (conmon, containerd's
/// shim) listens on; the container's pty master is sent over it with
/// SCM_RIGHTS, as runc sends it.
public enum ConsoleSocket {
    public static func connect(_ path: String) throws -> FileDescriptor {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity, !bytes.contains(0) else {
            throw SwvmError(.invalidArgument, "--console-socket \(UntrustedText.escaped(path)): not a usable socket path (at most \(capacity - 1) bytes)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let fd = FileDescriptor(try sys("socket") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) },
                                name: path)
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + 1)
        let r = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd.raw, $0, length) }
        }
        guard r == 0 else { throw SwvmError.system(step: "--console-socket: connect", path: path) }
        return fd
    }
}

extension ConsoleSocket {
    /// Sends a pty master over a connected console socket, named as runc
    /// names it (the VM level's host pty; the container level's child
    /// sends its own with the same C call).
    static func send(master: FileDescriptor, to socket: Int32) throws {
        guard swvm_send_fd_named(socket, master.raw, "/dev/ptmx") == 0 else {
            throw SwvmError.errno("send the terminal to the console socket")
        }
    }
}
