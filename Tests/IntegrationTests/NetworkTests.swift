#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import Network
@testable import RuntimeSpec
@testable import SwvmBase
import NativeThreads

/// --network bridge with real packets, only between this host and runs on
/// its own bridge: a published port from the host, a host server from the
/// run, two runs kept apart, and nothing left behind.
@Suite(.serialized) struct NetworkTests {
    static let image = Harness.exampleImage
    static let bigBody = Array((100000...165535).map { "\($0)\n" }.joined().utf8)
    /// A port unlikely to be taken on this host, per test.
    static func port(_ n: Int) -> UInt16 { UInt16(20000 + Int(getpid() % 5000) * 4 + n) }

    /// A run serving "served-by-run" over HTTP on port 8000, published on
    /// `hostPort`; `body` runs once it answers, then the run is stopped.
    /// It also serves /big, 448 KiB of numbered lines (bigBody) that the
    /// host checks byte for byte: bulk transfers go through the offloads.
    static func withServingRun(isolation: String, publish: [String], image: String = NetworkTests.image,
                               server: String = "echo served-by-run > /tmp/index.html; seq 100000 165535 > /tmp/big; httpd -p 8000 -h /tmp",
                               _ body: @escaping (_ runAddress: String) throws -> Void) throws -> CommandResult {
        var address = ""
        var failure: Error?
        var done = false
        let script = "trap 'exit 0' TERM; \(server); " +
            "ip -4 -o addr show eth0 | sed 's/.*inet \\([0-9.]*\\).*/addr=\\1/'; sleep 120 & wait"
        let r = try Command.run([Harness.swvm, "run", "--isolation=\(isolation)", "--network", "bridge"] + publish.flatMap { ["-p", $0] } +
                                [image, "--", "sh", "-c", script], timeout: 300, onOutput: { out, pid in
            guard !done, let line = out.split(separator: "\n").first(where: { $0.hasPrefix("addr=") }) else { return }
            done = true
            address = String(line.dropFirst(5))
            do { try body(address) } catch { failure = error }
            kill(pid, SIGTERM)
        })
        if let f = failure { throw f }
        #expect(done, "the run never reported its address: \(r)")
        return r
    }

    func publishedPortAnswersFromTheHost(isolation: String) throws {
        let p = NetworkTests.port(0)
        let hostAddress = try #require(NetworkTests.hostAddress())
        let r = try NetworkTests.withServingRun(isolation: isolation, publish: ["\(p):8000"]) { (addr: String) throws in
            #expect(addr.hasPrefix("10.88."))
            let big = try NetworkTests.httpGet("127.0.0.1", p, path: "/big")
            let body = Array(big.split(separator: [13, 10, 13, 10], maxSplits: 1).last ?? [])
            let firstDifference = zip(body, NetworkTests.bigBody).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset
            #expect(body == NetworkTests.bigBody, "448 KiB through the published port: \(body.count) bytes, first difference at \(firstDifference.map(String.init) ?? "none")")
            #expect(try NetworkTests.httpGet("127.0.0.1", p).hasSuffix("served-by-run\n"))
            #expect(try NetworkTests.httpGet(hostAddress, p).hasSuffix("served-by-run\n"))
            // The run's own address from the host, without the DNAT.
            #expect(try NetworkTests.httpGet(addr, 8000).hasSuffix("served-by-run\n"))
        }
        #expect(r.status == 0, "\(r)")
        try NetworkTests.expectNothingLeft()
    }

    /// A root filesystem of busybox, a UDP echo server (Debian's busybox
    /// has no `nc -u`) and the raw-frame sender `spoof`, built once under
    /// .build.
    static let fixtureImage: String = {
        let dir = Path.join(Harness.repo, ".build/test-fixtures/net-image")
        try? FS.removeTree(dir)
        for d in ["bin", "proc", "sys", "dev", "tmp", "etc"] { try? FS.makeDirectories(Path.join(dir, d)) }
        for program in ["udp-echo", "spoof"] {
            let r = try? Subprocess.run(["gcc", "-static", "-O2", "-o", Path.join(dir, "bin", program),
                                         Path.join(Harness.repo, "Tests/Fixtures/\(program)/\(program).c")])
            if r?.status != 0 { Issue.record("compiling \(program).c: \(r?.output ?? "gcc missing")") }
        }
        _ = try? Subprocess.run(["cp", "/bin/busybox", Path.join(dir, "bin/busybox")])
        for applet in ["sh", "ip", "sed", "sleep"] { symlink("busybox", Path.join(dir, "bin", applet)) }
        return dir
    }()

    /// -p HOSTPORT:PORT/udp: a datagram from the host reaches the run's
    /// server through the DNAT (from 127.0.0.1 and from the host's own
    /// address) and directly, and its reply comes back the same way.
    func publishedUDPPortAnswersFromTheHost(isolation: String) throws {
        let p = NetworkTests.port(1)
        let hostAddress = try #require(NetworkTests.hostAddress())
        let r = try NetworkTests.withServingRun(isolation: isolation, publish: ["\(p):9000/udp"], image: NetworkTests.fixtureImage,
                                                server: "/bin/udp-echo 9000 & true") { (addr: String) throws in
            #expect(try NetworkTests.udpExchange("127.0.0.1", p, "via-loopback") == "udp:via-loopback")
            #expect(try NetworkTests.udpExchange(hostAddress, p, "via-host-address") == "udp:via-host-address")
            #expect(try NetworkTests.udpExchange(addr, 9000, "direct") == "udp:direct")
        }
        #expect(r.status == 0, "\(r)")
        try NetworkTests.expectNothingLeft()
    }

    func runFetchesFromAServerOnTheBridgeAddress(isolation: String) throws {
        // A host-side service holds the bridge (as swvm compare's probe
        // listener does), so the run's end does not take it away.
        var hold: BridgeHold? = try HostBridge.hold()
        let bridge = try #require(hold).bridge
        let server = try TinyServer(address: bridge.gateway.description, reply: "hello-from-host")
        let r = try Harness.run(["--network", "bridge"],
                                ["sh", "-c", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 30 \(bridge.gateway) \(server.port)"],
                                isolation: isolation)
        #expect(r.status == 0 && r.out.hasSuffix("hello-from-host"), "\(r)")
        #expect(try NetworkTests.state() == ["bridge \(HostBridge.name)", "table ip \(HostBridge.table)", "table bridge \(HostBridge.table)"])
        withExtendedLifetime(server) {}
        hold = nil
        try NetworkTests.expectNothingLeft()
    }

    func runsCannotReachEachOther(isolation: String) throws {
        let p = NetworkTests.port(2)
        let bridge = try HostBridge.configured()
        let r = try NetworkTests.withServingRun(isolation: isolation, publish: ["\(p):8000"]) { (addr: String) throws in
            // Directly, by ping, and through the host's DNAT of the published port.
            let b = try Harness.run(["--network", "bridge"], ["sh", "-c", """
                printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 \(addr) 8000 && echo direct-reached
                ping -c 1 -W 1 \(addr) >/dev/null 2>&1 && echo ping-reached
                printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 \(bridge.gateway) \(p) && echo hairpin-reached
                echo checked
                """], isolation: "container")
            #expect(b.out.hasSuffix("checked\n") && !b.out.contains("reached") && !b.out.contains("served-by-run"), "\(b)")
            // The host still reaches it: the isolation is between runs.
            #expect(try NetworkTests.httpGet(addr, 8000).hasSuffix("served-by-run\n"))
        }
        #expect(r.status == 0, "\(r)")
        try NetworkTests.expectNothingLeft()
    }

    /// A hostile run (NET_RAW is in the default set) sends, as raw frames,
    /// UDP from another run's address and from its MAC, gratuitous ARP
    /// claiming that run's address and an IPv6 router advertisement (spoof.c).
    /// The bridge drops them all: nothing spoofed reaches a host socket, the
    /// host's neighbour entry for the victim and its routes stay as they
    /// were, and the victim's published port still answers. The victim is
    /// a container at both levels (a VM start costs seconds here).
    func aRunCannotSpoofAnotherRunOrTheHost(attacker: String) throws {
        let p = NetworkTests.port(4)
        let bridge = try HostBridge.configured()
        let r = try NetworkTests.withServingRun(isolation: "container", publish: ["\(p):8000"]) { (victim: String) throws in
            #expect(try NetworkTests.httpGet(victim, 8000).hasSuffix("served-by-run\n"))
            let victimMAC = HostBridge.text(mac: HostBridge.mac(for: try #require(IPv4Address(victim))))
            let before = try NetworkTests.hostView(of: victim)
            #expect(before.neighbour == victimMAC, "\(before)")
            let listener = try UDPListener(address: bridge.gateway.description)
            let a = try Harness.run(["--network", "bridge"], ["/bin/spoof", victim, victimMAC, bridge.gateway.description, "\(listener.port)"],
                                    isolation: attacker, image: NetworkTests.fixtureImage)
            #expect(a.status == 0 && a.out.hasSuffix("sent\n"), "\(a)")
            let got = listener.received()
            #expect(got.contains("legit-socket") && got.contains("legit-raw"), "\(got)")
            #expect(!got.contains("spoof-ip") && !got.contains("spoof-mac"), "\(got)")
            let after = try NetworkTests.hostView(of: victim)
            #expect(after.neighbour == before.neighbour, "the host's neighbour entry for \(victim)")
            #expect(after.routes == before.routes, "\(before.routes) -> \(after.routes)")
            #expect(after.routes6 == before.routes6, "\(before.routes6) -> \(after.routes6)")
            #expect(try NetworkTests.httpGet("127.0.0.1", p).hasSuffix("served-by-run\n"))
        }
        #expect(r.status == 0, "\(r)")
        try NetworkTests.expectNothingLeft()
    }

    /// swvm uses no IPv6 on the bridge: none on swvm0, on the run's port or
    /// on eth0 (a container's is turned off, a VM's kernel has none).
    func noIPv6OnTheBridgeOrEth0(isolation: String) throws {
        do {
            // The bridge is held only for this block.
            let hold = try HostBridge.hold()
            defer { withExtendedLifetime(hold) {} }
            #expect(try FS.readText("/proc/sys/net/ipv6/conf/\(HostBridge.name)/disable_ipv6") == "1\n")
            let r = try Harness.run(["--network", "bridge"], ["sh", "-c", """
                cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6 2>/dev/null || echo no-ipv6
                ip -6 addr show dev eth0 2>/dev/null
                """], isolation: isolation)
            #expect(r.status == 0 && r.out == (isolation == "vm" ? "no-ipv6\n" : "1\n"), "\(r)")
            #expect(try Subprocess.run(["ip", "-6", "addr", "show", "dev", HostBridge.name]).output == "")
        }
        try NetworkTests.expectNothingLeft()
    }

    func networkNoneHasOnlyLoopback(isolation: String) throws {
        for opts in [[], ["--network", "none"]] {
            let r = try Harness.run(opts, ["sh", "-c", "ls /sys/class/net; ip -4 -o addr | sed 's/.*inet \\([^ ]*\\).*/\\1/'"], isolation: isolation)
            #expect(r.status == 0 && r.out == "lo\n127.0.0.1/8\n", "\(r)")
        }
    }

    func dnsAndAddHostFiles(isolation: String) throws {
        let r = try Harness.run(["--network", "bridge", "--hostname", "web1", "--dns", "10.88.0.1", "--dns", "192.0.2.53", "--add-host", "db.local:10.88.0.1"],
                                ["sh", "-c", "cat /etc/resolv.conf; grep -v localhost /etc/hosts; cat /etc/hostname"], isolation: isolation)
        #expect(r.status == 0, "\(r)")
        let lines = r.out.split(separator: "\n").map(String.init)
        #expect(lines.count == 5, "\(r)")
        #expect(Array(lines.prefix(2)) == ["nameserver 10.88.0.1", "nameserver 192.0.2.53"])
        #expect(lines.count == 5 && lines[2].hasPrefix("10.88.") && lines[2].hasSuffix("\tweb1"))
        #expect(lines.count == 5 && lines[3] == "10.88.0.1\tdb.local" && lines[4] == "web1")
    }

    @Test func badInputIsOneLineAndLeavesNothing() throws {
        // A host port that a program of the host holds.
        let held = try TinyServer(address: "0.0.0.0", reply: "x")
        let subnetOfHost = try #require(NetworkTests.hostSubnet())
        let cases: [([String], [String: String], String)] = [
            (["-p", "80"], [:], "-p '80'"),
            (["-p", "1.2.3:80:80"], [:], "'1.2.3' is not an IPv4 address"),
            (["-p", "99999:80"], [:], "not a port number"),
            (["-p", "8080:80/sctp"], [:], "tcp or udp"),
            (["-p", "\(held.port):80"], [:], "port \(held.port)/tcp of the host is already in use"),
            (["--dns", "example"], [:], "--dns 'example'"),
            (["--add-host", "nocolon"], [:], "--add-host 'nocolon'"),
            ([], ["SWVM_SUBNET": subnetOfHost], "collides with the host's route"),
            ([], ["SWVM_SUBNET": "10.88.0.0/33"], "SWVM_SUBNET"),
        ]
        for (opts, env, message) in cases {
            let r = try Command.run([Harness.swvm, "run", "--network", "bridge"] + opts + [NetworkTests.image, "--", "true"],
                                    environment: env)
            #expect(r.status == 125 && r.err.contains(message) && r.err.split(separator: "\n").count == 1, "\(opts) \(env): \(r)")
            try NetworkTests.expectNothingLeft()
        }
    }

    func aKilledRunLeavesNothing(isolation: String) throws {
        let p = NetworkTests.port(3)
        var killed = false
        let r = try Command.run([Harness.swvm, "run", "--isolation=\(isolation)", "--network", "bridge", "-p", "\(p):8000",
                                 NetworkTests.image, "--", "sh", "-c", "echo up; sleep 60"],
                                timeout: 300, onOutput: { out, pid in
            if !killed && out.contains("up") { killed = true; kill(pid, SIGKILL) }
        })
        #expect(killed && r.status == 137, "\(r)")
        if isolation == "vm" {
            // A VMM's keeper outlives it and removes everything at once
            // (it holds the run's stdout, so it is done by now).
            try NetworkTests.expectNothingLeft()
            return
        }
        // What the next swvm must remove: the published port's DNAT
        // element and the lease (and the veth or tap, unless the kernel
        // already took it with the namespace or the tap's descriptor).
        let state = try NetworkTests.state()
        #expect(state.contains { $0.hasPrefix("nft pub_any") && $0.contains("\(p)") }, "\(state)")
        #expect(state.contains { $0.hasPrefix("lease ") }, "\(state)")
        #expect(state.contains { $0.hasPrefix("nft ports") }, "\(state)")
        #expect(try Harness.run(["true"]).status == 0)
        try NetworkTests.expectNothingLeft()
    }

    // MARK: helpers

    /// swvm's network state on the host: the bridge and the tables (which
    /// the last run to end removes), links, the runs' static FDB entries,
    /// published-port map elements, guard set elements, leases.
    static func state() throws -> [String] {
        var left: [String] = []
        if FS.exists("/sys/class/net/\(HostBridge.name)") { left.append("bridge \(HostBridge.name)") }
        for family in ["ip", "bridge"] where (try? Subprocess.run(["nft", "list", "table", family, HostBridge.table]))?.status == 0 {
            left.append("table \(family) \(HostBridge.table)")
        }
        for name in (try? FS.listDirectory("/sys/class/net")) ?? [] where name.hasPrefix("swvm") && name != HostBridge.name {
            left.append("link \(name)")
        }
        let fdb = (try? Subprocess.run(["bridge", "fdb", "show"]))?.output ?? ""
        for line in fdb.split(separator: "\n") where line.hasPrefix("02:53:") && line.contains(" static") { left.append("fdb \(line)") }
        for (kind, family, name) in [("map", "ip", "pub_any"), ("map", "ip", "pub_addr"),
                                     ("set", "bridge", "ports"), ("set", "bridge", "ip_from"), ("set", "bridge", "arp_from")] {
            let text = (try? Subprocess.run(["nft", "list", kind, family, HostBridge.table, name]))?.output ?? ""
            if text.contains("elements") { left.append("nft \(name): \(text)") }
        }
        for lease in (try? FS.listDirectory(Path.join(SwvmPaths.runRoot, "net/leases"))) ?? [] { left.append("lease \(lease)") }
        return left
    }

    static func expectNothingLeft() throws {
        #expect(try state() == [])
    }

    /// What a run could change on the host: the link-layer address of its
    /// neighbour entry for `address` on swvm0, and its IPv4 and IPv6 routes.
    struct HostView: Equatable {
        var neighbour: String
        var routes: String
        var routes6: String
    }

    static func hostView(of address: String) throws -> HostView {
        let neigh = try Subprocess.run(["ip", "neigh", "show", "to", address, "dev", HostBridge.name]).output
        let f = neigh.split(separator: " ").map(String.init)
        return HostView(neighbour: f.firstIndex(of: "lladdr").flatMap { $0 + 1 < f.count ? f[$0 + 1] : nil } ?? "none: \(neigh)",
                        routes: try Subprocess.run(["ip", "-4", "route", "show", "table", "all"]).output,
                        routes6: try Subprocess.run(["ip", "-6", "route", "show", "table", "all"]).output)
    }

    /// A non-loopback IPv4 address of this host (not the bridge's).
    static func hostAddress() -> String? {
        let text = (try? Subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"]))?.output ?? ""
        for line in text.split(separator: "\n") where !line.contains(HostBridge.name) {
            let f = line.split(separator: " ")
            if let i = f.firstIndex(of: "inet"), i + 1 < f.count { return String(f[i + 1].split(separator: "/")[0]) }
        }
        return nil
    }

    /// The subnet of that address, as the host routes it.
    static func hostSubnet() -> String? {
        let text = (try? Subprocess.run(["ip", "-4", "-o", "route", "show", "scope", "link"]))?.output ?? ""
        return text.split(separator: "\n").first(where: { !$0.contains(HostBridge.name) }).map { String($0.split(separator: " ")[0]) }
    }

    /// A plain HTTP/1.0 GET; the whole response.
    static func httpGet(_ host: String, _ port: UInt16) throws -> String {
        String(decoding: try httpGet(host, port, path: "/"), as: UTF8.self)
    }

    static func httpGet(_ host: String, _ port: UInt16, path: String) throws -> [UInt8] {
        let fd = try connectTCP(host, port)
        defer { close(fd) }
        try Array("GET \(path) HTTP/1.0\r\n\r\n".utf8).withUnsafeBytes { try FileDescriptor.writeAll(fd, $0) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buf, buf.count)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return out
    }

    static func sockaddr(_ host: String, _ port: UInt16) -> sockaddr_in {
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        sa.sin_addr.s_addr = (IPv4Address(host)?.value ?? 0).bigEndian
        return sa
    }

    /// Sends one datagram and returns the reply; the server may still be
    /// starting (a refused or lost datagram is sent again, for 10 s).
    static func udpExchange(_ host: String, _ port: UInt16, _ text: String) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var tv = timeval(tv_sec: 0, tv_usec: 500_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var sa = sockaddr(host, port)
        let r = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard r == 0 else { throw SwvmError.errno("connect udp \(host):\(port)") }
        var buf = [UInt8](repeating: 0, count: 2048)
        for _ in 0..<20 {
            _ = send(fd, text, text.utf8.count, 0)
            let n = recv(fd, &buf, buf.count, 0)
            if n > 0 { return String(decoding: buf[0..<n], as: UTF8.self) }
            usleep(n < 0 && errno == ECONNREFUSED ? 500_000 : 0)
        }
        throw SwvmError(.systemCall, "no UDP reply from \(host):\(port)")
    }

    static func connectTCP(_ host: String, _ port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var tv = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var sa = sockaddr(host, port)
        // The server may still be starting: retry for a few seconds.
        for _ in 0..<50 {
            let r = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            if r == 0 { return fd }
            usleep(100_000)
        }
        close(fd)
        throw SwvmError.errno("connect \(host):\(port)")
    }
}

/// Both isolation levels behave the same: each test runs in a container,
/// and in a VM as a test of its own, which shows as skipped (not passed)
/// where /dev/kvm, the guest kernel or guest-init is missing.
extension NetworkTests {
    @Test func publishedPortAnswersFromTheHostInAContainer() throws { try publishedPortAnswersFromTheHost(isolation: "container") }
    @Test(.enabled(if: Harness.vmReady, "needs /dev/kvm, the guest kernel and guest-init"))
    func publishedPortAnswersFromTheHostInAVM() throws { try publishedPortAnswersFromTheHost(isolation: "vm") }

    @Test func publishedUDPPortAnswersFromTheHostInAContainer() throws { try publishedUDPPortAnswersFromTheHost(isolation: "container") }
    @Test(.enabled(if: Harness.vmReady, "needs /dev/kvm, the guest kernel and guest-init"))
    func publishedUDPPortAnswersFromTheHostInAVM() throws { try publishedUDPPortAnswersFromTheHost(isolation: "vm") }

    @Test func runFetchesFromAServerOnTheBridgeAddressInAContainer() throws { try runFetchesFromAServerOnTheBridgeAddress(isolation: "container") }
    @Test(.enabled(if: Harness.vmReady, "needs /dev/kvm, the guest kernel and guest-init"))
    func runFetchesFromAServerOnTheBridgeAddressInAVM() throws { try runFetchesFromAServerOnTheBridgeAddress(isolation: "vm") }

    @Test func runsCannotReachEachOtherInAContainer() throws { try runsCannotReachEachOther(isolation: "container") }
    @Test(.enabled(if: Harness.vmReady, "needs /dev/kvm, the guest kernel and guest-init"))
    func runsCannotReachEachOtherInAVM() throws { try runsCannotReachEachOther(isolation: "vm") }

    @Test func aRunCannotSpoofAnotherRunOrTheHostInAContainer() throws { try aRunCannotSpoofAnotherRunOrTheHost(attacker: "container") }
    @Test(.enabled(if: Harness.vmReady, "needs /dev/kvm, the guest kernel and guest-init"))
    func aRunCannotSpoofAnotherRunOrTheHostInAVM() throws { try aRunCannotSpoofAnotherRunOrTheHost(attacker: "vm") }

    @Test func noIPv6OnTheBridgeOrEth0InAContainer() throws { try noIPv6OnTheBridgeOrEth0(isolation: "container") }
    @Test(.enabled(if: Harness.vmReady, "needs /dev/kvm, the guest kernel and guest-init"))
    func noIPv6OnTheBridgeOrEth0InAVM() throws { try noIPv6OnTheBridgeOrEth0(isolation: "vm") }

    @Test func networkNoneHasOnlyLoopbackInAContainer() throws { try networkNoneHasOnlyLoopback(isolation: "container") }
    @Test(.enabled(if: Harness.vmReady, "needs /dev/kvm, the guest kernel and guest-init"))
    func networkNoneHasOnlyLoopbackInAVM() throws { try networkNoneHasOnlyLoopback(isolation: "vm") }

    @Test func dnsAndAddHostFilesInAContainer() throws { try dnsAndAddHostFiles(isolation: "container") }
    @Test(.enabled(if: Harness.vmReady, "needs /dev/kvm, the guest kernel and guest-init"))
    func dnsAndAddHostFilesInAVM() throws { try dnsAndAddHostFiles(isolation: "vm") }

    @Test func aKilledRunLeavesNothingInAContainer() throws { try aKilledRunLeavesNothing(isolation: "container") }
    @Test(.enabled(if: Harness.vmReady, "needs /dev/kvm, the guest kernel and guest-init"))
    func aKilledRunLeavesNothingInAVM() throws { try aKilledRunLeavesNothing(isolation: "vm") }
}

/// A UDP socket on this host that keeps what arrives until `received`.
final class UDPListener {
    let fd: Int32
    let port: UInt16

    init(address: String) throws {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        self.fd = fd
        var sa = NetworkTests.sockaddr(address, 0)
        let r = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard r == 0 else { close(fd); throw SwvmError.errno("bind udp \(address)") }
        var bound = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        port = UInt16(bigEndian: bound.sin_port)
    }

    /// The datagrams queued so far, as text.
    func received() -> [String] {
        var out: [String] = []
        var buf = [UInt8](repeating: 0, count: 2048)
        while true {
            let n = recv(fd, &buf, buf.count, Int32(MSG_DONTWAIT))
            if n <= 0 { return out }
            out.append(String(decoding: buf[0..<n], as: UTF8.self))
        }
    }

    deinit { close(fd) }
}

/// A TCP server on this host that answers every connection with a fixed
/// text, on a thread, until it is deinitialised.
final class TinyServer {
    let fd: Int32
    let port: UInt16
    private var thread: NativeThread?

    init(address: String, reply: String) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        self.fd = fd
        var sa = NetworkTests.sockaddr(address, 0)
        let r = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard r == 0, listen(fd, 8) == 0 else { throw SwvmError.errno("listen on \(address)") }
        var bound = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        port = UInt16(bigEndian: bound.sin_port)
        let listener = fd
        let bytes = Array(reply.utf8)
        thread = try NativeThread(name: "tiny-server") {
            while true {
                let c = accept(listener, nil, nil)
                if c < 0 { return }
                var buf = [UInt8](repeating: 0, count: 1024)
                _ = read(c, &buf, buf.count)
                _ = write(c, bytes, bytes.count)
                close(c)
            }
        }
    }

    deinit {
        shutdown(fd, Int32(SHUT_RDWR))
        thread?.join()
        close(fd)
    }
}
