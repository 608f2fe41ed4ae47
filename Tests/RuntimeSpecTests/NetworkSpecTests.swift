import Testing
@testable import RuntimeSpec
@testable import SwvmBase

@Suite struct NetworkSpecTests {
    @Test func addressesAndSubnets() {
        #expect(IPv4Address("10.88.0.1")?.description == "10.88.0.1")
        for bad in ["10.88.0", "10.88.0.256", "1..2.3", "01234.1.1.1", " 1.1.1.1", "a.b.c.d"] { #expect(IPv4Address(bad) == nil, "\(bad)") }
        let s = IPv4Subnet("10.88.7.9/16")!
        #expect(s.description == "10.88.0.0/16" && s.broadcast.description == "10.88.255.255")
        #expect(s.overlaps(IPv4Subnet("10.0.0.0/8")!) && s.overlaps(IPv4Subnet("10.88.3.0/24")!))
        #expect(!s.overlaps(IPv4Subnet("10.89.0.0/16")!))
        #expect(IPv4Subnet("10.0.0.0/33") == nil)
    }

    @Test func hostsAndResolvConf() throws {
        var n = NetworkSettings()
        n.extraHosts = [("db", IPv4Address("10.0.0.5")!)]
        #expect(n.hostsFile(hostname: "h", address: IPv4Address("10.88.0.2")) ==
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.88.0.2\th\n10.0.0.5\tdb\n")
        #expect(n.hostsFile(hostname: "h", address: nil).contains("127.0.1.1\th\n"))
        // The host's loopback resolvers are unreachable from a run.
        let host = "# c\nnameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch x\n"
        #expect(n.resolvConf(hostResolvConf: host) == "nameserver 192.0.2.53\n")
        n.dns = [IPv4Address("10.88.0.1")!]
        #expect(n.resolvConf(hostResolvConf: host) == "nameserver 10.88.0.1\n")
    }
}
