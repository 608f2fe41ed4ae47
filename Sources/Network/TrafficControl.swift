#if canImport(Glibc)
import Glibc
#endif
import SwvmBase

/// The tc objects that join a pod's interface and a VM's tap, as Kata's
/// "tcfilter" mode: an ingress qdisc on each, and on each a u32 filter
/// matching every frame with a mirred action that redirects it to the
/// other's egress. (u32, not matchall: a kernel may lack cls_matchall;
/// this host's does.) Made through rtnetlink, so iproute2 is not needed.
enum TrafficControl {
    /// The ingress qdisc's handle (ffff:) and parent (TC_H_INGRESS).
    static let ingressHandle: UInt32 = 0xffff_0000, ingressParent: UInt32 = 0xffff_fff1
    /// The filter's priority: first, ahead of any filter a plugin put there.
    static let priority: UInt32 = 1
    /// ETH_P_ALL in network order, as the filter's protocol.
    static let allProtocols = UInt32(UInt16(0x0003).bigEndian)

    /// struct tcmsg: family, pads, ifindex, handle, parent, info.
    static func header(_ ifindex: Int32, handle: UInt32, parent: UInt32, info: UInt32 = 0) -> [UInt8] {
        var m = [UInt8](repeating: 0, count: 4)
        m.put32(UInt32(bitPattern: ifindex))
        m.put32(handle)
        m.put32(parent)
        m.put32(info)
        return m
    }

    /// Whether the interface has an ingress qdisc (a plugin's, or a
    /// crashed run's that was not cleaned up yet).
    static func hasIngress(_ nl: Netlink, ifindex: Int32) throws -> Bool {
        let all = try nl.dump(Netlink.getQdisc, header(0, handle: 0, parent: 0), what: "listing the qdiscs")
        return all.contains { m in
            guard m.body.count >= 20, Int32(bitPattern: m.body.u32(at: 4)) == ifindex, m.body.u32(at: 12) == ingressParent else { return false }
            return Netlink.attributes(m.body, after: 20)[1 /* TCA_KIND */] == Array("ingress".utf8) + [0]
        }
    }

    static func addIngress(_ nl: Netlink, ifindex: Int32, name: String) throws {
        var m = header(ifindex, handle: ingressHandle, parent: ingressParent)
        m.attribute(1 /* TCA_KIND */, string: "ingress")
        try nl.request(Netlink.newQdisc, flags: Netlink.create | Netlink.exclusive, m, what: "adding an ingress qdisc to \(name)")
    }

    /// Removes the ingress qdisc, with every filter on it; gone already is fine.
    static func removeIngress(_ nl: Netlink, ifindex: Int32) throws {
        do {
            try nl.request(Netlink.deleteQdisc, header(ifindex, handle: ingressHandle, parent: ingressParent), what: "removing the ingress qdisc")
        } catch let e as SwvmError where e.errnoValue == ENOENT || e.errnoValue == ENODEV || e.errnoValue == EINVAL {}
    }

    /// Every frame arriving on `from` leaves by `to` (mirred egress
    /// redirect; the frame is stolen, so `from`'s own stack never sees it).
    static func addRedirect(_ nl: Netlink, from: Int32, fromName: String, to: Int32, toName: String) throws {
        var m = header(from, handle: 0, parent: ingressHandle, info: priority << 16 | allProtocols)
        m.attribute(1 /* TCA_KIND */, string: "u32")
        m.nested(2 /* TCA_OPTIONS */) { o in
            o.attribute(5 /* TCA_U32_SEL */, matchEverything)
            o.nested(7 /* TCA_U32_ACT */) { acts in
                acts.nested(1 /* the first action */) { a in
                    a.attribute(1 /* TCA_ACT_KIND */, string: "mirred")
                    a.nested(2 /* TCA_ACT_OPTIONS */) { p in p.attribute(2 /* TCA_MIRRED_PARMS */, mirredRedirect(to: to)) }
                }
            }
        }
        try nl.request(Netlink.newFilter, flags: Netlink.create | Netlink.exclusive, m,
                       what: "adding a filter redirecting \(fromName) to \(toName)")
    }

    /// Removes the redirect filter (its priority) from `ifindex`; gone already is fine.
    static func removeRedirect(_ nl: Netlink, ifindex: Int32) throws {
        do {
            try nl.request(Netlink.deleteFilter, header(ifindex, handle: 0, parent: ingressHandle, info: priority << 16 | allProtocols),
                           what: "removing the redirect filter")
        } catch let e as SwvmError where e.errnoValue == ENOENT || e.errnoValue == ENODEV || e.errnoValue == EINVAL {}
    }

    /// struct tc_u32_sel with one key that matches anything (mask 0 at
    /// offset 0), terminal: `u32 match u8 0 0`.
    static var matchEverything: [UInt8] {
        var s: [UInt8] = [1 /* TC_U32_TERMINAL */, 0, 1 /* nkeys */, 0]
        s += [UInt8](repeating: 0, count: 12)   // offmask, off, offoff, hoff, hmask
        s += [UInt8](repeating: 0, count: 16)   // the key: mask, val, off, offmask
        return s
    }

    /// struct tc_mirred: tc_gen (index, capab, action TC_ACT_STOLEN,
    /// refcnt, bindcnt), eaction TCA_EGRESS_REDIR, ifindex.
    static func mirredRedirect(to ifindex: Int32) -> [UInt8] {
        var p = [UInt8]()
        for v: UInt32 in [0, 0, 4 /* TC_ACT_STOLEN */, 0, 0, 1 /* TCA_EGRESS_REDIR */, UInt32(bitPattern: ifindex)] { p.put32(v) }
        return p
    }
}
