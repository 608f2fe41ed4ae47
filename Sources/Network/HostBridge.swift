#if canImport(Glibc)
import Glibc
#endif
import RuntimeSpec
import SwvmBase

/// The host side every --network bridge run shares: the Linux bridge
/// swvm0 with the subnet's first address, nftables' `table ip swvm`
/// (masquerade out, published ports in, runs kept apart) and `table bridge
/// swvm` (each run's port passes only its own lease's frames). All are
/// created by the first run that needs them and removed by the last one to
/// end (as Podman's netavark removes its bridge), so nothing of swvm's stays
/// in the host's network configuration between runs; per-run state is in
/// the maps and sets.
public struct HostBridge {
    public static let name = "swvm0"
    public static let table = "swvm"

    public var subnet: IPv4Subnet
    public var mtu = 1500
    public var gateway: IPv4Address { IPv4Address(subnet.network.value + 1) }

    /// A locally administered MAC derived from an address on the bridge
    /// (as Docker's 02:42:…): every run, and the bridge itself, has its own.
    static func mac(for address: IPv4Address) -> [UInt8] { [0x02, 0x53] + address.bytes }

    static func text(mac: [UInt8]) -> String { mac.map { hex([$0]) }.joined(separator: ":") }

    /// SWVM_SUBNET (CIDR), default 10.88.0.0/16.
    public static func configured() throws -> HostBridge {
        let text = FS.environment("SWVM_SUBNET").flatMap { $0.isEmpty ? nil : $0 } ?? "10.88.0.0/16"
        // A network address (no host bits), with room for runs.
        guard let s = IPv4Subnet(text), s.prefix >= 8, s.prefix <= 28,
              s.network == IPv4Address(String(text.split(separator: "/")[0])) else {
            throw SwvmError(.invalidArgument, "SWVM_SUBNET '\(text)': expected a network address in CIDR form with a prefix of 8 to 28 bits, e.g. 10.88.0.0/16")
        }
        return HostBridge(subnet: s)
    }

    /// The configured bridge, created (under the network lock) unless it
    /// exists, and kept while the hold lives: for a host-side service runs
    /// reach on the bridge address (swvm compare's probe listener).
    public static func hold() throws -> BridgeHold {
        let bridge = try configured()
        let lock = try NetworkState.lock()
        defer { withExtendedLifetime(lock) {} }
        try bridge.ensure()
        return try BridgeHold(bridge: bridge)
    }

    /// Removes the bridge (with its route_localnet) and the tables when no
    /// run holds a lease, no host-side service holds the bridge and no
    /// link but `ignoring` (the leaving run's own) is attached to it: a
    /// port someone else put on swvm0 keeps it. The caller holds the
    /// network lock. ip_forward stays as it is (see enableForwarding).
    static func removeIfUnused(ignoring: String? = nil) {
        let ports = ((try? FS.listDirectory("/sys/class/net/\(name)/brif")) ?? []).filter { $0 != ignoring }
        guard ports.isEmpty, !AddressLeases.anyHeld(), !BridgeHold.anyLive() else { return }
        for family in ["ip", "bridge"] where (try? Net.run(["nft", "list", "table", family, table])) != nil {
            do { try Net.run(["nft", "delete", "table", family, table]) } catch { Log.warning("removing nftables' table \(family) \(table): \(error)") }
        }
        if FS.exists("/sys/class/net/\(name)") {
            do { try Net.run(["ip", "link", "del", name]) } catch { Log.warning("removing the bridge \(name): \(error)") }
        }
    }

    /// Creates the bridge and the nftables tables unless they exist; the
    /// caller holds the network lock. Fails if the subnet collides with a
    /// route of the host or the bridge exists with another subnet.
    func ensure() throws {
        try checkNoCollision()
        if FS.exists("/sys/class/net/\(HostBridge.name)") {
            let addrs = try Net.run(["ip", "-4", "-o", "addr", "show", "dev", HostBridge.name])
            guard addrs.contains(" inet \(gateway)/\(subnet.prefix) ") else {
                throw SwvmError(.invalidArgument, "the bridge \(HostBridge.name) exists without \(gateway)/\(subnet.prefix) (SWVM_SUBNET=\(subnet)); set SWVM_SUBNET to its subnet or remove it (ip link del \(HostBridge.name)) when no run uses it")
            }
            // One made before swvm turned IPv6 off there.
            try HostBridge.disableIPv6(HostBridge.name)
        } else {
            // A MAC of its own: a bridge without one takes its lowest
            // port's, so a run coming or going could change it, which
            // flushes the host's neighbour entries on swvm0 and leaves the
            // runs' entries for the gateway stale.
            let mac = HostBridge.text(mac: HostBridge.mac(for: gateway))
            try Net.run(["ip", "link", "add", HostBridge.name, "address", mac, "mtu", "\(mtu)", "type", "bridge"])
            // Before the link is up, so it never has an IPv6 address.
            try HostBridge.disableIPv6(HostBridge.name)
            _ = try Net.run(["ip", "-batch", "-"], input: """
                addr add \(gateway)/\(subnet.prefix) dev \(HostBridge.name)
                link set \(HostBridge.name) up

                """)
        }
        // Published ports from the host's 127.0.0.1 are DNATed in the
        // output chain; the kernel only routes a loopback source out of
        // the bridge with route_localnet (the guard chain drops the reverse
        // direction: runs never reach the host's 127.0.0.0/8).
        try FS.writeControl("/proc/sys/net/ipv4/conf/\(HostBridge.name)/route_localnet", "1")
        try enableForwarding()
        for (family, text) in [("ip", ruleset), ("bridge", bridgeRuleset)]
        where (try? Net.run(["nft", "list", "table", family, HostBridge.table])) == nil {
            _ = try Net.run(["nft", "-f", "-"], input: text)
        }
    }

    /// swvm uses IPv4 only. With IPv6 off on the bridge the host takes no
    /// router advertisement, neighbour or address from a run there (the
    /// class of Docker's CVE-2020-13401); the bridge table also drops every
    /// frame of a run that is not IPv4 or ARP. Nothing to do on a host
    /// without IPv6.
    static func disableIPv6(_ link: String) throws {
        guard FS.exists("/proc/sys/net/ipv6") else { return }
        try FS.writeControl("/proc/sys/net/ipv6/conf/\(link)/disable_ipv6", "1")
    }

    /// Egress and published ports from other hosts need IPv4 forwarding,
    /// and host-wide: Linux forwards a packet only if the interface it
    /// arrived on forwards (ip_route_input_slow, net/ipv4/route.c), and the
    /// replies to a run's egress and connections to its published ports
    /// arrive on the host's uplinks, not on the bridge. So this is
    /// net.ipv4.ip_forward, as Docker sets it; it stays on (other tools'
    /// traffic may rely on it by then), and turning it on is said once.
    func enableForwarding() throws {
        let path = "/proc/sys/net/ipv4/ip_forward"
        guard (try? FS.readText(path))?.hasPrefix("1") != true else { return }
        try FS.writeControl(path, "1")
        Log.warning("turned on net.ipv4.ip_forward (host-wide, as Docker does) for --network bridge; it stays on (see README, Networking)")
    }

    /// A route of the host (other than the bridge's) that overlaps the subnet.
    func checkNoCollision() throws {
        let routes = try Net.run(["ip", "-4", "-o", "route", "show", "table", "all"])
        for line in routes.split(separator: "\n") {
            let f = line.split(separator: " ").map(String.init)
            if let d = f.firstIndex(of: "dev"), d + 1 < f.count, f[d + 1] == HostBridge.name { continue }
            // [TYPE] DESTINATION ...: a default route covers everything
            // and collides with nothing.
            let types: Set<String> = ["unicast", "local", "broadcast", "multicast", "anycast", "blackhole", "unreachable", "prohibit", "throw", "nat"]
            guard let first = f.first else { continue }
            let dest = types.contains(first) && f.count > 1 ? f[1] : first
            guard let net = IPv4Subnet(dest) ?? IPv4Address(dest).map({ IPv4Subnet($0, prefix: 32) }) else { continue }
            if net.overlaps(subnet) {
                throw SwvmError(.invalidArgument, "the bridge subnet \(subnet) collides with the host's route '\(line)'; choose another with SWVM_SUBNET")
            }
        }
    }

    /// swvm's own table: other tools' tables and rules are not touched.
    /// Published ports are elements of the two maps, one per published port.
    var ruleset: String {
        let br = HostBridge.name
        return """
        table ip \(HostBridge.table) {
          map pub_any { type inet_proto . inet_service : ipv4_addr . inet_service; }
          map pub_addr { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
          chain guard {
            type filter hook prerouting priority raw; policy accept;
            iifname "\(br)" ip daddr 127.0.0.0/8 drop
          }
          chain prerouting {
            type nat hook prerouting priority dstnat; policy accept;
            fib daddr type local dnat ip to meta l4proto . th dport map @pub_any
            dnat ip to ip daddr . meta l4proto . th dport map @pub_addr
          }
          chain output {
            type nat hook output priority -100; policy accept;
            fib daddr type local dnat ip to meta l4proto . th dport map @pub_any
            dnat ip to ip daddr . meta l4proto . th dport map @pub_addr
          }
          chain postrouting {
            type nat hook postrouting priority srcnat; policy accept;
            oifname "\(br)" ip saddr 127.0.0.0/8 masquerade
            ip saddr \(subnet) oifname != "\(br)" masquerade
          }
          chain forward {
            type filter hook forward priority filter; policy accept;
            iifname "\(br)" oifname "\(br)" drop
          }
        }

        """
    }

    /// Anti-spoofing on the run ports, before the bridge learns or delivers
    /// anything: a frame from a port in `ports` passes only if it is IPv4
    /// from the run's MAC and address, or Ethernet/IPv4 ARP whose source
    /// MAC, sender MAC and sender address are the run's. Everything else
    /// (IPv6 with its router advertisements, VLAN tags, other ethertypes,
    /// source 0.0.0.0) is dropped: runs have a static address, no DHCP. Each
    /// run adds its elements (NetworkAttachment.guardPort); a port of
    /// someone else's on swvm0 is not in `ports` and is left alone.
    var bridgeRuleset: String {
        """
        table bridge \(HostBridge.table) {
          set ports { type ifname; }
          set ip_from { type ifname . ether_addr . ipv4_addr; }
          set arp_from { type ifname . ether_addr . ether_addr . ipv4_addr; }
          chain prerouting {
            type filter hook prerouting priority filter; policy accept;
            iifname @ports jump from_run
          }
          chain from_run {
            ether type ip iifname . ether saddr . ip saddr @ip_from accept
            ether type arp arp htype 1 arp ptype ip arp hlen 6 arp plen 4 iifname . ether saddr . arp saddr ether . arp saddr ip @arp_from accept
            drop
          }
        }

        """
    }
}

/// The `ip` and `nft` programs (iproute2, nftables).
enum Net {
    @discardableResult
    static func run(_ argv: [String], input: String? = nil) throws -> String {
        let r = try Subprocess.run(argv, input: input)
        guard r.status == 0 else {
            let first = r.output.split(separator: "\n").first.map(String.init) ?? "exit status \(r.status)"
            throw SwvmError(.systemCall, "\(argv.prefix(3).joined(separator: " ")): \(first)")
        }
        return r.output
    }
}
