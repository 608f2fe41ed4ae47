#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import RuntimeSpec
import SwvmBase

/// Links of a namespace through rtnetlink (struct ifinfomsg: family, pad,
/// type u16, index i32, flags u32, change u32; attributes after 16 bytes).
enum Links {
    struct Link {
        var index: Int32, type: UInt16, flags: UInt32, name: String, mac: [UInt8], mtu: UInt32
    }

    static func all(_ nl: Netlink) throws -> [Link] {
        try nl.dump(Netlink.getLink, [UInt8](repeating: 0, count: 16), what: "listing the interfaces").compactMap { m in
            guard m.body.count >= 16 else { return nil }
            let a = Netlink.attributes(m.body, after: 16)
            let name = String(decoding: (a[3 /* IFLA_IFNAME */] ?? []).prefix { $0 != 0 }, as: UTF8.self)
            let mtu = a[4 /* IFLA_MTU */].flatMap { $0.count >= 4 ? $0.u32(at: 0) : nil } ?? 0
            return Link(index: Int32(bitPattern: m.body.u32(at: 4)), type: m.body.u16(at: 2), flags: m.body.u32(at: 8),
                        name: name, mac: a[1 /* IFLA_ADDRESS */] ?? [], mtu: mtu)
        }
    }

    /// The namespace's one interface that is up, other than loopback (the
    /// veth a plugin made); none or several is an error naming them.
    static func theInterface(_ nl: Netlink, namespace: String) throws -> PodInterface {
        let up = try all(nl).filter { $0.flags & UInt32(IFF_LOOPBACK) == 0 && $0.flags & UInt32(IFF_UP) != 0 }
        guard up.count == 1, let l = up.first else {
            let which = up.isEmpty ? "none" : "\(up.count): " + up.map { $0.name }.joined(separator: ", ")
            throw SwvmError(.invalidArgument, "the network namespace \(namespace) must have exactly one interface up besides loopback (the pod's, made by its network plugin); it has \(which)")
        }
        guard l.type == 1 /* ARPHRD_ETHER */, l.mac.count == 6 else {
            throw SwvmError(.unsupported, "the network namespace \(namespace): its interface \(l.name) is not Ethernet (link type \(l.type)); a VM's eth0 can only take an Ethernet interface's place")
        }
        guard l.mtu >= 68, l.mtu <= 65535 else {
            throw SwvmError(.unsupported, "the network namespace \(namespace): \(l.name)'s MTU \(l.mtu) is outside 68-65535")
        }
        return PodInterface(index: l.index, name: l.name, mac: l.mac, mtu: l.mtu)
    }

    static func index(_ nl: Netlink, name: String) throws -> Int32 {
        guard let l = try all(nl).first(where: { $0.name == name }) else {
            throw SwvmError(.systemCall, "the tap \(name) is missing in \(nl.place) right after it was made")
        }
        return l.index
    }

    /// The link up with `mtu` (RTM_NEWLINK on an existing index changes it).
    static func setUp(_ nl: Netlink, index: Int32, name: String, mtu: UInt32) throws {
        var m: [UInt8] = [0, 0, 0, 0]
        m.put32(UInt32(bitPattern: index))
        m.put32(UInt32(IFF_UP))
        m.put32(UInt32(IFF_UP))
        var v = [UInt8]()
        v.put32(mtu)
        m.attribute(4 /* IFLA_MTU */, v)
        try nl.request(Netlink.newLink, m, what: "setting \(name) up with MTU \(mtu)")
    }
}

/// Addresses of a link (struct ifaddrmsg: family, prefixlen, flags, scope,
/// index u32; attributes after 8 bytes).
enum Addresses {
    /// Its IPv4 addresses (the primary first, as the kernel lists them) and
    /// how many IPv6 addresses beyond link-local ones it has.
    static func of(_ nl: Netlink, index: Int32) throws -> ([IPv4InterfaceAddress], Int) {
        var v4: [IPv4InterfaceAddress] = [], v6 = 0
        for m in try nl.dump(Netlink.getAddress, [UInt8](repeating: 0, count: 8), what: "listing the addresses") {
            guard m.body.count >= 8, Int32(bitPattern: m.body.u32(at: 4)) == index else { continue }
            let a = Netlink.attributes(m.body, after: 8)
            switch Int32(m.body[0]) {
            case AF_INET:
                guard let b = a[2 /* IFA_LOCAL */] ?? a[1 /* IFA_ADDRESS */], b.count == 4 else { continue }
                v4.append(IPv4InterfaceAddress(IPv4Address(b.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }), prefix: Int(min(m.body[1], 32))))
            case AF_INET6 where m.body[3] != 253 /* RT_SCOPE_LINK */:
                v6 += 1
            default:
                break
            }
        }
        return (v4, v6)
    }
}

/// IPv4 routes of the main table through a link (struct rtmsg: family,
/// dst_len, src_len, tos, table, protocol, scope, type, flags u32;
/// attributes after 12 bytes).
enum Routes {
    static func of(_ nl: Netlink, index: Int32, namespace: String) throws -> (IPv4Address?, [IPv4Route]) {
        var request = [UInt8](repeating: 0, count: 12)
        request[0] = UInt8(AF_INET)
        var gateway: IPv4Address?, onLink: [IPv4Route] = [], viaGateway: [IPv4Route] = []
        for m in try nl.dump(Netlink.getRoute, request, what: "listing the routes") {
            guard m.body.count >= 12, m.body[0] == UInt8(AF_INET), m.body[7] == 1 /* RTN_UNICAST */ else { continue }
            let a = Netlink.attributes(m.body, after: 12)
            let table = a[15 /* RTA_TABLE */].flatMap { $0.count >= 4 ? $0.u32(at: 0) : nil } ?? UInt32(m.body[4])
            let oif = a[4 /* RTA_OIF */].flatMap { $0.count >= 4 ? Int32(bitPattern: $0.u32(at: 0)) : nil }
            // The kernel's route to an address's own subnet: the guest's kernel makes its own.
            guard table == 254 /* RT_TABLE_MAIN */, oif == index, !(m.body[5] == 2 /* RTPROT_KERNEL */ && m.body[6] == 253) else { continue }
            let via = a[5 /* RTA_GATEWAY */].flatMap(address)
            let route = IPv4Route(destination: a[1 /* RTA_DST */].flatMap(address) ?? IPv4Address(0), prefix: Int(min(m.body[1], 32)), gateway: via)
            if route.prefix == 0 && via != nil && gateway == nil {
                gateway = via
            } else if via == nil {
                onLink.append(route)
            } else {
                viaGateway.append(route)
            }
        }
        return (gateway, onLink + viaGateway)
    }

    static func address(_ b: [UInt8]) -> IPv4Address? {
        b.count == 4 ? IPv4Address(b.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }) : nil
    }
}

/// A tap with virtio's 12-byte header (IFF_TAP | IFF_NO_PI |
/// IFF_VNET_HDR), made on an open /dev/net/tun; not persistent, so it goes
/// away when the descriptor closes, SIGKILL included.
enum TapDevice {
    static func create(_ fd: FileDescriptor, name: String) throws {
        var ifr = [UInt8](repeating: 0, count: 40)
        for (i, b) in name.utf8.prefix(15).enumerated() { ifr[i] = b }
        let flags: UInt16 = 0x0002 /* IFF_TAP */ | 0x1000 /* IFF_NO_PI */ | 0x4000 /* IFF_VNET_HDR */
        ifr[16] = UInt8(flags & 0xff)
        ifr[17] = UInt8(flags >> 8)
        try sys("TUNSETIFF \(name)") { sys_ioctl_ptr(fd.raw, 0x4004_54ca, &ifr) }
        var size: Int32 = 12
        try sys("TUNSETVNETHDRSZ \(name)") { sys_ioctl_ptr(fd.raw, 0x4004_54d8, &size) }
    }
}
