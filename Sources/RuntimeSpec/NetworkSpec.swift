import SwvmBase

/// An IPv4 address, host order.
public struct IPv4Address: Hashable, Comparable, CustomStringConvertible, Sendable {
    public var value: UInt32

    public init(_ value: UInt32) { self.value = value }

    /// Dotted-quad text only (no shorthand forms such as "10.1").
    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var v: UInt32 = 0
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy({ $0.isASCII && $0.isNumber }), let b = UInt32(p), b <= 255 else { return nil }
            v = v << 8 | b
        }
        value = v
    }

    public var description: String { "\(value >> 24).\(value >> 16 & 255).\(value >> 8 & 255).\(value & 255)" }
    public var bytes: [UInt8] { [UInt8(value >> 24), UInt8(value >> 16 & 255), UInt8(value >> 8 & 255), UInt8(value & 255)] }
    public static func < (a: IPv4Address, b: IPv4Address) -> Bool { a.value < b.value }
}

/// An IPv4 network in CIDR form.
public struct IPv4Subnet: Equatable, CustomStringConvertible, Sendable {
    public var network: IPv4Address
    public var prefix: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2, let a = IPv4Address(parts[0]), let p = Int(parts[1]), p >= 0, p <= 32 else { return nil }
        self.init(a, prefix: p)
    }

    public init(_ address: IPv4Address, prefix: Int) {
        self.prefix = prefix
        network = IPv4Address(address.value & IPv4Subnet.mask(prefix))
    }

    static func mask(_ prefix: Int) -> UInt32 { prefix == 0 ? 0 : ~UInt32(0) << UInt32(32 - prefix) }

    public var description: String { "\(network)/\(prefix)" }
    public var broadcast: IPv4Address { IPv4Address(network.value | ~IPv4Subnet.mask(prefix)) }
    public func contains(_ a: IPv4Address) -> Bool { a.value & IPv4Subnet.mask(prefix) == network.value }
    public func overlaps(_ other: IPv4Subnet) -> Bool { contains(other.network) || other.contains(network) }
}

/// A published port (-p, read in CommandLineOptions).
/// An address of an interface, with its prefix (its host bits kept).
public struct IPv4InterfaceAddress: Equatable, CustomStringConvertible, Sendable {
    public var address: IPv4Address
    public var prefix: Int

    public init(_ address: IPv4Address, prefix: Int) {
        self.address = address
        self.prefix = prefix
    }

    public var description: String { "\(address)/\(prefix)" }
}

/// A route of IPv4: to `destination`/`prefix` via `gateway`, or on the
/// link when it has none.
public struct IPv4Route: Equatable, CustomStringConvertible, Sendable {
    public var destination: IPv4Address
    public var prefix: Int
    public var gateway: IPv4Address?

    public init(destination: IPv4Address, prefix: Int, gateway: IPv4Address?) {
        self.destination = destination
        self.prefix = prefix
        self.gateway = gateway
    }

    public var description: String { "\(destination)/\(prefix)" + (gateway.map { " via \($0)" } ?? " on the link") }
}

public struct PortMapping: Equatable, CustomStringConvertible, Sendable {
    public enum Proto: String, Sendable { case tcp, udp }
    /// nil: every address of the host.
    public var hostAddress: IPv4Address?
    public var hostPort: UInt16
    public var port: UInt16
    public var proto: Proto

    public init(hostAddress: IPv4Address?, hostPort: UInt16, port: UInt16, proto: Proto) {
        self.hostAddress = hostAddress
        self.hostPort = hostPort
        self.port = port
        self.proto = proto
    }

    public var description: String { "\(hostAddress.map { "\($0):" } ?? "")\(hostPort):\(port)/\(proto.rawValue)" }
}

/// The network settings of a run beyond its mode: published ports, name
/// servers, extra /etc/hosts entries. Both isolation levels get the same.
public struct NetworkSettings: Equatable {
    public var publish: [PortMapping] = []
    /// --dns; empty: the host's own name servers (except loopback ones).
    public var dns: [IPv4Address] = []
    /// --add-host NAME:IP
    public var extraHosts: [(name: String, address: IPv4Address)] = []

    public init() {}

    public static func == (a: NetworkSettings, b: NetworkSettings) -> Bool {
        a.publish == b.publish && a.dns == b.dns && a.extraHosts.elementsEqual(b.extraHosts, by: { $0.name == $1.name && $0.address == $1.address })
    }

    /// /etc/hosts of a run: localhost, the run's own name on its address
    /// (127.0.1.1 without one), then --add-host entries.
    public func hostsFile(hostname: String, address: IPv4Address?) -> String {
        var s = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        s += "\(address?.description ?? "127.0.1.1")\t\(hostname)\n"
        for h in extraHosts { s += "\(h.address)\t\(h.name)\n" }
        return s
    }

    /// /etc/resolv.conf of a run on the bridge: --dns, or else the host's
    /// name servers that a run can reach (not the host's loopback ones).
    public func resolvConf(hostResolvConf: String?) -> String {
        var servers = dns.map(\.description)
        if servers.isEmpty, let text = hostResolvConf {
            for line in text.split(separator: "\n") {
                let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
                guard f.count >= 2, f[0] == "nameserver", let a = IPv4Address(String(f[1])), a.value >> 24 != 127 else { continue }
                servers.append(a.description)
            }
        }
        return servers.map { "nameserver \($0)\n" }.joined()
    }
}
