#if canImport(Glibc)
import Glibc
#endif
import SwvmBase

/// A NETLINK_ROUTE socket: links, addresses, routes, qdiscs and filters of
/// the network namespace the socket was opened in (a socket stays in its
/// namespace, so the pod's is reached without entering it again). Plain
/// rtnetlink rather than iproute2's `tc`, which a host may not have.
final class Netlink {
    let fd: FileDescriptor
    /// The namespace, for errors ("the network namespace /run/netns/x").
    let place: String
    private var sequence: UInt32 = 0

    struct Message {
        var type: UInt16
        /// The payload after the nlmsghdr: the family header, then attributes.
        var body: [UInt8]
    }

    static let newLink: UInt16 = 16, getLink: UInt16 = 18, getAddress: UInt16 = 22, getRoute: UInt16 = 26
    static let newQdisc: UInt16 = 36, deleteQdisc: UInt16 = 37, getQdisc: UInt16 = 38
    static let newFilter: UInt16 = 44, deleteFilter: UInt16 = 45
    static let create: UInt16 = 0x400, exclusive: UInt16 = 0x200

    init(_ fd: FileDescriptor, place: String) {
        self.fd = fd
        self.place = place
    }

    /// A socket in the calling thread's network namespace.
    static func socket() throws -> FileDescriptor {
        let raw = try sys("socket(AF_NETLINK, NETLINK_ROUTE)") {
            Glibc.socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0 /* NETLINK_ROUTE */)
        }
        return FileDescriptor(raw, name: "a netlink socket")
    }

    /// A request the kernel acknowledges; its error (an errno) is thrown
    /// with `what` as the step.
    func request(_ type: UInt16, flags: UInt16 = 0, _ body: [UInt8], what: String) throws {
        let seq = try send(type, flags: flags | 0x4 /* NLM_F_ACK */, body, what: what)
        _ = try receive(seq, what: what, dump: false)
    }

    /// Every object of a kind (RTM_GET* with NLM_F_DUMP).
    func dump(_ type: UInt16, _ body: [UInt8], what: String) throws -> [Message] {
        let seq = try send(type, flags: 0x300 /* NLM_F_DUMP */, body, what: what)
        return try receive(seq, what: what, dump: true)
    }

    private func send(_ type: UInt16, flags: UInt16, _ body: [UInt8], what: String) throws -> UInt32 {
        sequence &+= 1
        var m = [UInt8]()
        m.put32(UInt32(16 + body.count))
        m.put16(type)
        m.put16(flags | 0x1 /* NLM_F_REQUEST */)
        m.put32(sequence)
        m.put32(0)
        m += body
        let n = m.withUnsafeBytes { Glibc.send(fd.raw, $0.baseAddress, $0.count, 0) }
        guard n == m.count else { throw SwvmError.errno("\(what) in \(place): netlink send") }
        return sequence
    }

    /// Reads replies to `seq` until its ack (or NLMSG_DONE for a dump).
    private func receive(_ seq: UInt32, what: String, dump: Bool) throws -> [Message] {
        var out: [Message] = []
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = recv(fd.raw, &buf, buf.count, 0)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw SwvmError.errno("\(what) in \(place): netlink receive") }
            var at = 0
            while at + 16 <= n {
                let length = Int(buf.u32(at: at)), type = buf.u16(at: at + 4), s = buf.u32(at: at + 8)
                guard length >= 16, at + length <= n else { throw SwvmError(.systemCall, "\(what) in \(place): a malformed netlink reply") }
                let body = Array(buf[(at + 16)..<(at + length)])
                at += (length + 3) & ~3
                guard s == seq else { continue }
                switch type {
                case 2: // NLMSG_ERROR: an errno (0 is the ack)
                    let code = body.count >= 4 ? -Int32(bitPattern: body.u32(at: 0)) : EIO
                    if code != 0 { throw SwvmError.errno("\(what) in \(place)", code) }
                    if !dump { return out }
                case 3: // NLMSG_DONE
                    return out
                default:
                    out.append(Message(type: type, body: body))
                }
            }
        }
    }

    /// The attributes after a family header of `header` bytes, by type
    /// (the NLA_F_* flag bits masked off); the last of a repeated type wins.
    static func attributes(_ body: [UInt8], after header: Int) -> [UInt16: [UInt8]] {
        var out: [UInt16: [UInt8]] = [:]
        var at = header
        while at + 4 <= body.count {
            let length = Int(body.u16(at: at)), type = body.u16(at: at + 2) & 0x3fff
            guard length >= 4, at + length <= body.count else { break }
            out[type] = Array(body[(at + 4)..<(at + length)])
            at += (length + 3) & ~3
        }
        return out
    }
}

/// Building and reading netlink messages: native-endian integers, attributes.
extension Array where Element == UInt8 {
    mutating func put16(_ v: UInt16) { Swift.withUnsafeBytes(of: v) { append(contentsOf: $0) } }
    mutating func put32(_ v: UInt32) { Swift.withUnsafeBytes(of: v) { append(contentsOf: $0) } }

    /// One attribute, padded to 4 bytes.
    mutating func attribute(_ type: UInt16, _ value: [UInt8]) {
        put16(UInt16(4 + value.count))
        put16(type)
        append(contentsOf: value)
        while count % 4 != 0 { append(0) }
    }

    mutating func attribute(_ type: UInt16, string: String) { attribute(type, Array(string.utf8) + [0]) }

    /// A nested attribute (NLA_F_NESTED) holding what `build` appends.
    mutating func nested(_ type: UInt16, _ build: (inout [UInt8]) -> Void) {
        var inner = [UInt8]()
        build(&inner)
        attribute(type | 0x8000, inner)
    }

    func u16(at: Int) -> UInt16 { withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: UInt16.self) } }
    func u32(at: Int) -> UInt32 { withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: UInt32.self) } }
}
