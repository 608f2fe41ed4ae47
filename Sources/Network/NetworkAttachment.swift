#if canImport(Glibc)
import Glibc
#endif
import CConfinement
import CSyscalls
import RuntimeSpec
import SwvmBase

/// One run's place on the bridge: its leased address, its host-side link
/// (a veth for a container, a tap for a VM) with the elements that let it
/// pass only the lease's frames, its published ports (a bound socket
/// holding each host port, and an element in the nftables maps).
///
/// Every resource is written to <run dir>/network before it is made, so
/// `release` (at the end of the run) and `removeRecorded` (the next swvm,
/// after a SIGKILL) undo exactly what exists, by the same code.
public final class NetworkAttachment {
    public let bridge: HostBridge
    public let address: IPv4Address
    public let settings: NetworkSettings
    /// The host end's name: swvm + 8 hex digits of the run id.
    public let linkName: String
    let runDir: String
    /// Sockets bound to the published host ports, held for the whole run
    /// so that nothing else on the host takes them.
    private var reservations: [FileDescriptor] = []

    static let recordFile = "network"

    /// The bridge attachment of a --network bridge run (nil for the other
    /// modes): bridge, lease, port reservations and DNAT entries. The link
    /// itself comes with connectVeth or openTap.
    public static func prepare(_ spec: RunSpec, runDir: String) throws -> NetworkAttachment? {
        guard spec.network == .bridge else { return nil }
        let bridge = try HostBridge.configured()
        let address: IPv4Address = try {
            let lock = try NetworkState.lock()
            try bridge.ensure()
            let a: IPv4Address
            do {
                a = try AddressLeases.lease(in: bridge, owner: runDir)
            } catch {
                HostBridge.removeIfUnused()
                throw error
            }
            try append(runDir, "lease \(a)")
            _ = lock
            return a
        }()
        let n = NetworkAttachment(bridge: bridge, address: address, settings: spec.networkSettings,
                                  linkName: "swvm" + spec.id.prefix(8), runDir: runDir)
        do {
            try n.publish()
        } catch {
            n.release()
            throw error
        }
        return n
    }

    init(bridge: HostBridge, address: IPv4Address, settings: NetworkSettings, linkName: String, runDir: String) {
        self.bridge = bridge
        self.address = address
        self.settings = settings
        self.linkName = linkName
        self.runDir = runDir
        resolvConf = settings.resolvConf(hostResolvConf: try? FS.readText("/etc/resolv.conf"))
    }

    /// The run's MAC, derived from its address.
    public var mac: [UInt8] { HostBridge.mac(for: address) }
    var macText: String { HostBridge.text(mac: mac) }

    /// The run's /etc/resolv.conf, read from the host's at prepare time (a
    /// VM's settings are encoded on its confined device thread).
    public let resolvConf: String

    /// Puts the run's address and resolv.conf in `spec`, for the run
    /// settings (/etc/hosts and resolv.conf at both levels).
    public func apply(to spec: inout RunSpec) {
        spec.networkAddress = address
        spec.resolvConf = resolvConf
    }

    /// eth0 of a VM as the run settings carry it (CFG_NET_IF): address,
    /// prefix, gateway, MTU, MAC.
    public var guestInterface: swvm_net_if {
        var n = swvm_net_if()
        withUnsafeMutableBytes(of: &n.addr) { $0.copyBytes(from: address.bytes.prefix(4)) }
        n.prefix = UInt8(bridge.subnet.prefix)
        withUnsafeMutableBytes(of: &n.gateway) { $0.copyBytes(from: bridge.gateway.bytes.prefix(4)) }
        n.mtu = UInt16(bridge.mtu)
        withUnsafeMutableBytes(of: &n.mac) { $0.copyBytes(from: mac.prefix(6)) }
        return n
    }

    // MARK: published ports

    func publish() throws {
        for p in settings.publish {
            reservations.append(try reserve(p))
            let line = "publish \(p.proto.rawValue) \(p.hostPort) \(p.hostAddress?.description ?? "*")"
            try NetworkAttachment.append(runDir, line)
            let (map, key) = NetworkAttachment.mapKey(p.proto.rawValue, p.hostPort, p.hostAddress?.description)
            try Net.run(["nft", "add element ip \(HostBridge.table) \(map) { \(key) : \(address) . \(p.port) }"])
        }
    }

    static func mapKey(_ proto: String, _ port: UInt16, _ addr: String?) -> (String, String) {
        addr.map { ("pub_addr", "\($0) . \(proto) . \(port)") } ?? ("pub_any", "\(proto) . \(port)")
    }

    /// Binds the host port as the published mapping names it: this fails
    /// when a program of the host (or another run) already has it.
    func reserve(_ p: PortMapping) throws -> FileDescriptor {
        let fd = FileDescriptor(socket(AF_INET, (p.proto == .tcp ? Int32(SOCK_STREAM.rawValue) : Int32(SOCK_DGRAM.rawValue)) | Int32(SOCK_CLOEXEC.rawValue), 0))
        guard fd.raw >= 0 else { throw SwvmError.errno("socket for -p \(p)") }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = p.hostPort.bigEndian
        sa.sin_addr.s_addr = (p.hostAddress?.value ?? 0).bigEndian
        let r = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd.raw, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if r != 0 {
            switch errno {
            case EADDRINUSE: throw SwvmError(.invalidArgument, "-p \(p): port \(p.hostPort)/\(p.proto.rawValue) of the host is already in use")
            case EADDRNOTAVAIL: throw SwvmError(.invalidArgument, "-p \(p): \(p.hostAddress?.description ?? "") is not an address of this host")
            default: throw SwvmError.errno("-p \(p): bind host port \(p.hostPort)")
            }
        }
        return fd
    }

    // MARK: links

    /// The container's veth pair: eth0 in the network namespace of `pid`
    /// with the run's address, route and MTU, lo up, no IPv6; the host end
    /// on the bridge as a guarded, isolated port (no frames to other
    /// isolated ports, so runs do not see each other; the forward chain
    /// stops routed ones).
    public func connectVeth(pid: pid_t) throws {
        try guardPort()
        try NetworkAttachment.append(runDir, "link \(linkName)")
        try Net.run(["ip", "link", "add", linkName, "mtu", "\(bridge.mtu)", "type", "veth",
                     "peer", "name", "eth0", "mtu", "\(bridge.mtu)", "netns", "\(pid)"])
        try attachToBridge()
        // swvm uses IPv4 only (a VM's kernel has no IPv6 at all): off
        // before eth0 is up, so it never gets an IPv6 address or takes a
        // router advertisement. lo keeps ::1.
        // Written from a thread inside the namespace: no process of its own.
        if FS.exists("/proc/sys/net/ipv6") {
            try NetworkNamespace(path: "/proc/\(pid)/ns/net").writeSysctl("/proc/sys/net/ipv6/conf/eth0/disable_ipv6", "1\n")
        }
        try Net.run(["nsenter", "--net=/proc/\(pid)/ns/net", "ip", "-batch", "-"], input: """
            link set lo up
            link set eth0 address \(macText)
            addr add \(address)/\(bridge.subnet.prefix) dev eth0
            link set eth0 up
            route add default via \(bridge.gateway)

            """)
    }

    /// The VM's tap device (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, with
    /// virtio's 12-byte header), on the bridge as a guarded port. It goes
    /// away when the descriptor closes, SIGKILL included.
    public func openTap() throws -> FileDescriptor {
        try guardPort()
        try NetworkAttachment.append(runDir, "link \(linkName)")
        let fd = FileDescriptor(try sys("open /dev/net/tun") { open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK) })
        try TapDevice.create(fd, name: linkName)
        try Net.run(["ip", "link", "set", linkName, "mtu", "\(bridge.mtu)"])
        try attachToBridge()
        return fd
    }

    /// Which offloads the tap may pass to its reader (TUN_F_* flags): what
    /// the guest's driver accepts.
    public static func setTapOffloads(_ fd: Int32, _ flags: UInt32) throws {
        try sys("TUNSETOFFLOAD on the tap (fd \(fd))") { sys_ioctl_int(fd, 0x4004_54d0, UInt(flags)) }
    }

    /// The port learns no address: the bridge's only entry for it is the
    /// run's own MAC, static, so no frame moves another run's MAC to it
    /// (the bridge table drops such frames first). Unknown unicast is not
    /// flooded to it either, so it sees none of the host's traffic for
    /// others. The host end has no IPv6 of its own to send into the run.
    func attachToBridge() throws {
        try Net.run(["ip", "-batch", "-"], input: """
            link set \(linkName) master \(HostBridge.name)
            link set \(linkName) type bridge_slave isolated on learning off flood off

            """)
        try Net.run(["bridge", "fdb", "add", macText, "dev", linkName, "master", "static"])
        try HostBridge.disableIPv6(linkName)
        try Net.run(["ip", "link", "set", linkName, "up"])
    }

    /// Lets the run's port (which does not exist yet) pass only frames from
    /// the lease: recorded, then added in one nftables transaction.
    func guardPort() throws {
        try NetworkAttachment.append(runDir, "guard \(linkName) \(macText) \(address)")
        try Net.run(["nft", "-f", "-"], input: NetworkAttachment.guardElements("add", linkName, macText, address.description).joined(separator: "\n") + "\n")
    }

    /// The bridge table's elements for a port; `ports` last, so that while
    /// they are deleted one by one the port drops everything.
    static func guardElements(_ verb: String, _ link: String, _ mac: String, _ ip: String) -> [String] {
        let t = "bridge \(HostBridge.table)"
        return ["\(verb) element \(t) ip_from { \"\(link)\" . \(mac) . \(ip) }",
                "\(verb) element \(t) arp_from { \"\(link)\" . \(mac) . \(mac) . \(ip) }",
                "\(verb) element \(t) ports { \"\(link)\" }"]
    }

    // MARK: cleanup

    /// Undoes everything recorded for the run; safe to call twice.
    public func release() {
        reservations.removeAll()
        NetworkAttachment.removeRecorded(runDir: runDir)
    }

    /// A port's guard elements go in one nftables transaction; if it fails
    /// (one is gone already: a transaction is all or nothing), one by one,
    /// so the others still go.
    static func removeGuard(_ link: String, _ mac: String, _ ip: String) {
        let commands = guardElements("delete", link, mac, ip)
        if (try? Net.run(["nft", "-f", "-"], input: commands.joined(separator: "\n") + "\n")) != nil { return }
        for command in commands { _ = try? Net.run(["nft", command]) }
    }

    static func append(_ runDir: String, _ line: String) throws {
        let path = Path.join(runDir, recordFile)
        let fd = try sys("open \(path)") { open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600) }
        defer { close(fd) }
        try Array((line + "\n").utf8).withUnsafeBytes { try FileDescriptor.writeAll(fd, $0, name: path) }
    }

    /// Removes the links (with their bridge FDB entries), guard elements,
    /// DNAT entries, lease and pod network qdiscs and filters a run recorded (the run's own end, or the
    /// next swvm after the run's swvm was killed).
    public static func removeRecorded(runDir: String) {
        let path = Path.join(runDir, recordFile)
        guard let text = try? FS.readText(path) else { return }
        var link: String?
        for line in text.split(separator: "\n").reversed() {
            let f = line.split(separator: " ").map(String.init)
            switch (f.first, f.count) {
            case ("link", 2):
                link = f[1]
                if FS.exists("/sys/class/net/\(f[1])") { _ = try? Net.run(["ip", "link", "del", f[1]]) }
            case ("guard", 4):
                removeGuard(f[1], f[2], f[3])
            case ("publish", 4):
                let (map, key) = mapKey(f[1], UInt16(f[2]) ?? 0, f[3] == "*" ? nil : f[3])
                _ = try? Net.run(["nft", "delete element ip \(HostBridge.table) \(map) { \(key) }"])
            case ("podfilter", 5...), ("podqdisc", 5...):
                PodNetwork.removeRecorded(f)
            case ("lease", 2):
                // The last run to leave takes the bridge and table with it.
                if let a = IPv4Address(f[1]) {
                    let lock = try? NetworkState.lock()
                    AddressLeases.release(a, owner: runDir)
                    if lock != nil { HostBridge.removeIfUnused(ignoring: link) }
                    withExtendedLifetime(lock) {}
                }
            default:
                break
            }
        }
        unlink(path)
    }
}
