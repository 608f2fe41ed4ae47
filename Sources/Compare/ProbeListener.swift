#if canImport(Glibc)
import Glibc
#endif
import SwvmBase
import NativeThreads

/// The host end of the probe's network figure (compare --network bridge):
/// a TCP listener on the bridge's own address, open for the whole
/// comparison, that echoes each connection's one-line request and closes
/// it. Runs reach it exactly as they reach any host service on the bridge
/// address, through the veth or the tap and virtio-net. One connection at a
/// time, as the probe makes them; a client that says nothing within 10 s is
/// dropped.
final class ProbeListener {
    let address: String
    let port: UInt16
    private let fd: FileDescriptor
    private var thread: NativeThread?
    /// Connections answered with a complete echo.
    let served = Locked(0)

    init(address: String) throws {
        let fd = FileDescriptor(try sys("socket") { socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) })
        self.fd = fd
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        guard inet_pton(AF_INET, address, &sa.sin_addr) == 1 else {
            throw SwvmError(.invalidArgument, "probe listener: '\(address)' is not an IPv4 address")
        }
        try sys("bind the probe listener to \(address)") {
            withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd.raw, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
        try sys("listen on \(address)") { listen(fd.raw, 16) }
        var bound = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        try sys("getsockname") {
            withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd.raw, $0, &len) } }
        }
        self.address = address
        port = UInt16(bigEndian: bound.sin_port)
        let listener = fd.raw, served = served
        thread = try NativeThread(name: "probe-listener") {
            while true {
                // No swvm is spawned while a probe is connected, so setting
                // close-on-exec after accept leaves no window for a leak.
                let c = accept(listener, nil, nil)
                if c < 0 {
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    return   // shut down
                }
                _ = fcntl(c, F_SETFD, FD_CLOEXEC)
                if ProbeListener.echoLine(c) { served.with { $0 += 1 } }
                close(c)
            }
        }
    }

    /// "ADDRESS:PORT", as the probe takes it.
    var target: String { "\(address):\(port)" }

    /// Reads one line (at most 64 bytes) and sends it back.
    static func echoLine(_ c: Int32) -> Bool {
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var line = [UInt8](repeating: 0, count: 64)
        var got = 0
        while got < line.count {
            let n = line.withUnsafeMutableBytes { read(c, $0.baseAddress! + got, $0.count - got) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            got += n
            if line[got - 1] == 0x0a { break }
        }
        // One short send on a fresh connection; no SIGPIPE if the client left.
        return send(c, line, got, Int32(MSG_NOSIGNAL)) == got
    }

    deinit {
        shutdown(fd.raw, Int32(SHUT_RDWR))   // wakes accept
        thread?.join()
    }
}
