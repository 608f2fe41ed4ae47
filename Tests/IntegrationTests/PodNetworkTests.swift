#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase

/// --network ns:PATH at the VM level with real packets: a network
/// namespace with a veth to the host, made as a CNI plugin would; the VM
/// takes the veth's place, and the namespace is as the plugin left it
/// afterwards (also after a SIGKILL).
@Suite(.serialized) struct PodNetworkTests {
    /// A namespace like a plugin's: eth0 (a veth) with a MAC, MTU 1400, two
    /// addresses, a default route and one more route; the host end has .1.
    /// Removed (with the veth pair) on every path by `remove`.
    struct PodNamespace {
        let name: String
        let hostLink: String
        let subnet: String
        var path: String { "/run/netns/\(name)" }
        var guestAddress: String { "\(subnet).2" }
        var hostAddress: String { "\(subnet).1" }
        static let mac = "02:aa:bb:cc:dd:01"

        init(_ n: Int) throws {
            let id = Int(getpid() % 10000)
            name = "swvmpodtest\(id)-\(n)"
            hostLink = "pnh\(id)n\(n)"
            subnet = "10.231.\(Int(getpid() % 250))"
            try? PodNamespace.sh("ip netns del \(name); ip link del \(hostLink)")
            try PodNamespace.sh("""
                ip netns add \(name)
                ip link add \(hostLink) mtu 1400 type veth peer name eth0 netns \(name)
                ip addr add \(hostAddress)/24 dev \(hostLink)
                ip link set \(hostLink) up
                ip -n \(name) link set eth0 mtu 1400 address \(PodNamespace.mac)
                ip -n \(name) addr add \(guestAddress)/24 dev eth0
                ip -n \(name) addr add \(subnet).3/24 dev eth0
                ip -n \(name) link set eth0 up
                ip -n \(name) link set lo up
                ip -n \(name) route add default via \(hostAddress)
                ip -n \(name) route add 10.232.0.0/16 via \(hostAddress)
                """)
        }

        func remove() {
            _ = try? PodNamespace.sh("ip netns del \(name); ip link del \(hostLink) 2>/dev/null; true")
        }

        /// Everything a plugin's teardown depends on, and what swvm adds
        /// (an IPv6 link-local address is tentative for its first second:
        /// the flag is not what is compared).
        func state() throws -> String {
            try PodNamespace.sh("""
                ip -n \(name) -o link show
                ip -n \(name) -o addr show | sed 's/ tentative//'
                ip -n \(name) route show
                tc -n \(name) qdisc show
                tc -n \(name) filter show dev eth0 ingress
                """)
        }

        @discardableResult
        static func sh(_ script: String) throws -> String {
            let r = try Subprocess.run(["sh", "-ec", script])
            guard r.status == 0 else { throw SwvmError(.systemCall, "\(script): \(r.output)") }
            return r.output
        }
    }

    static func withNamespace(_ n: Int, _ body: (PodNamespace) throws -> Void) throws {
        let ns = try PodNamespace(n)
        defer { ns.remove() }
        try body(ns)
    }

    @Test(.enabled(if: Harness.vmReady, "needs /dev/kvm, the guest kernel and guest-init"))
    func aServerInTheVMAnswersThroughThePodInterface() throws {
        try PodNetworkTests.withNamespace(1) { ns in
            let before = try ns.state()
            var body = "", failure: Error?, served = false
            let script = "trap 'exit 0' TERM; ip -o link show eth0; ip -o -4 addr show eth0; ip route; " +
                "ping -c 1 -W 5 \(ns.hostAddress) >/dev/null && echo reached-host; " +
                "echo served-by-vm > /tmp/index.html; seq 100000 165535 > /tmp/big; httpd -p 8000 -h /tmp; echo ready; sleep 120 & wait"
            let r = try Command.run([Harness.swvm, "run", "--isolation=vm", "--network", "ns:\(ns.path)", Harness.exampleImage,
                                     "--", "sh", "-c", script], timeout: 300, onOutput: { out, pid in
                guard !served, out.contains("ready") else { return }
                served = true
                do {
                    body = try NetworkTests.httpGet(ns.guestAddress, 8000)
                    let big = try NetworkTests.httpGet(ns.guestAddress, 8000, path: "/big")
                    #expect(big.count > NetworkTests.bigBody.count && Array(big.suffix(NetworkTests.bigBody.count)) == NetworkTests.bigBody)
                } catch { failure = error }
                kill(pid, SIGTERM)
            })
            if let failure { throw failure }
            #expect(r.status == 0 && served && body.contains("served-by-vm"), "\(r) \(body)")
            // The guest's eth0 is the veth's: MAC, MTU, both addresses, routes.
            #expect(r.out.contains("mtu 1400") && r.out.contains("link/ether \(PodNamespace.mac)"), "\(r.out)")
            #expect(r.out.contains("inet \(ns.guestAddress)/24") && r.out.contains("inet \(ns.subnet).3/24"), "\(r.out)")
            #expect(r.out.contains("default via \(ns.hostAddress) dev eth0") && r.out.contains("10.232.0.0/16 via \(ns.hostAddress) dev eth0"), "\(r.out)")
            #expect(r.out.contains("reached-host"), "\(r.out)")
            #expect(try ns.state() == before)
        }
    }

    @Test(.enabled(if: Harness.vmReady, "needs /dev/kvm, the guest kernel and guest-init"))
    func aKilledRunLeavesTheNamespaceAsThePluginMadeIt() throws {
        try PodNetworkTests.withNamespace(2) { ns in
            let before = try ns.state()
            var killed = false, during = ""
            let r = try Command.run([Harness.swvm, "run", "--isolation=vm", "--network", "ns:\(ns.path)", Harness.exampleImage,
                                     "--", "sh", "-c", "echo up; sleep 60"], timeout: 300, onOutput: { out, pid in
                guard !killed, out.contains("up") else { return }
                killed = true
                during = (try? ns.state()) ?? ""
                kill(pid, SIGKILL)
            })
            #expect(killed && r.status == 137, "\(r)")
            // While it ran: the tap, and the redirects both ways.
            #expect(during.contains("mirred") && during.contains("ingress") && during.contains("swvm"), "\(during)")
            // The keeper (which held stdout, so it is done) removed them.
            #expect(try ns.state() == before)
        }
    }

    @Test(.enabled(if: Harness.vmReady, "needs /dev/kvm, the guest kernel and guest-init"))
    func aPluginsIngressQdiscStays() throws {
        try PodNetworkTests.withNamespace(3) { ns in
            try PodNamespace.sh("tc -n \(ns.name) qdisc add dev eth0 ingress")
            let before = try ns.state()
            let r = try Harness.run(["--network", "ns:\(ns.path)"], ["sh", "-c", "ping -c 1 -W 5 \(ns.hostAddress) >/dev/null && echo reached-host"],
                                    isolation: "vm")
            #expect(r.status == 0 && r.out.contains("reached-host"), "\(r)")
            let after = try ns.state()
            #expect(before.contains("ingress") && after == before, "\(after)")
        }
    }

    @Test func badNamespacesAreOneLineErrors() throws {
        try PodNetworkTests.withNamespace(4) { ns in
            try PodNamespace.sh("ip -n \(ns.name) link add second type veth peer name third && ip -n \(ns.name) link set second up && ip -n \(ns.name) link set third up")
            let before = try ns.state()
            let cases: [([String], String, String)] = [
                (["--network", "ns:/run/netns/swvm-no-such-namespace"], "vm", "the network namespace /run/netns/swvm-no-such-namespace does not exist"),
                (["--network", "ns:/etc/hostname"], "vm", "/etc/hostname is not a network namespace"),
                (["--network", "ns:run/netns/x"], "vm", "ns: takes the absolute path"),
                (["--network", "ns:\(ns.path)"], "vm", "must have exactly one interface up besides loopback"),
                (["--network", "ns:\(ns.path)"], "container", "--network ns:PATH applies to --isolation=vm"),
            ]
            for (options, isolation, message) in cases where isolation == "container" || Harness.vmReady {
                let r = try Harness.run(options, ["true"], isolation: isolation)
                #expect(r.status == 125 && r.err.contains(message) && r.err.split(separator: "\n").count == 1, "\(options): \(r)")
            }
            #expect(try ns.state() == before)
        }
    }
}
