#if canImport(Glibc)
import Glibc
#endif
import CConfinement
import Testing
import RunSettingsWire
@testable import RuntimeSpec
@testable import SwvmBase

/// The settings Swift encodes are the settings C decodes: every field of
/// swvm_run_settings.h, through the real decoder guest-init and the
/// container child use.
@Suite struct RunSettingsTests {
    func fullSpec() -> RunSpec {
        var p = ProcessSpec(args: ["/bin/sh", "-c", "echo hi"], env: ["PATH=/bin", "A=é"], cwd: "/srv/app",
                            uid: 1000, gid: 1001, additionalGids: [29, 44, 70000], user: "app")
        p.rlimits = [Rlimit(resource: 7, name: "nofile", soft: 123, hard: 456),
                     Rlimit(resource: 3, name: "stack", soft: UInt64.max, hard: UInt64.max)]
        var s = RunSpec(id: "abc", rootfs: "/var/lib/swvm/images/x/rootfs", process: p, hostname: "box1",
                        capabilities: ["CHOWN", "KILL", "SYS_ADMIN"])
        s.readOnlyRoot = true
        s.noNewPrivileges = true
        s.terminal = true
        s.interactive = true
        s.resources.memory = 64 << 20
        s.resources.pids = 50
        s.maskedPaths = ["/proc/kcore", "/sys/firmware"]
        s.readonlyPaths = ["/proc/sys"]
        s.mounts = [MountSpec(kind: .tmpfs, destination: "/scratch", readOnly: true, options: ["size=1m", "noexec"]),
                    MountSpec(kind: .bind(source: "/host/data"), destination: "/data", readOnly: true),
                    MountSpec(kind: .bind(source: "/host/rw"), destination: "/rw", readOnly: false)]
        s.network = .host
        s.userNamespace = UserNamespaceMapping(hostUID: 100000, hostGID: 100000, size: 65536)
        s.probe = "/host/probe"
        s.initProcess = true
        s.networkAddress = IPv4Address("10.88.0.7")
        s.resolvConf = "nameserver 10.88.0.1\n"
        return s
    }

    /// eth0: 10.88.0.7/16 via 10.88.0.1, MTU 1500, MAC 02:53:0a:58:00:07.
    static let netInterface = swvm_net_if(addr: (10, 88, 0, 7), prefix: 16, gateway: (10, 88, 0, 1), mtu: 1500,
                                          mac: (0x02, 0x53, 10, 88, 0, 7))

    func decode(_ bytes: [UInt8]) -> (swvm_settings, String?) {
        var s = swvm_settings()
        var error = [CChar](repeating: 0, count: 256)
        let r = bytes.withUnsafeBufferPointer { swvm_settings_decode($0.baseAddress, $0.count, &s, &error, error.count) }
        return (s, r == 0 ? nil : String(cString: error))
    }

    func strings(_ list: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ n: UInt32) -> [String] {
        (0..<Int(n)).map { String(cString: list![$0]!) }
    }

    func mounts(_ list: UnsafeMutablePointer<swvm_mount>?, _ n: UInt32) -> [(Int32, String?, String?, String?)] {
        (0..<Int(n)).map { i in
            let m = list![i]
            return (m.read_only, m.source.map { String(cString: $0) }, m.destination.map { String(cString: $0) },
                    m.options.map { String(cString: $0) })
        }
    }

    static let program: [UInt8] = Array(0..<24)

    @Test func everyVMFieldRoundTrips() throws {
        let spec = fullSpec()
        let bytes = RunSettings.encode(spec, seccompProgram: Self.program, window: (rows: 33, cols: 101),
                                       level: .vm(rootDevice: "/dev/vdb", hostTimeNanos: 1_234_567_890_123, probeSource: "/probe",
                                                  entropy: [9, 8, 7, 6], netInterface: Self.netInterface))
        var (s, error) = decode(bytes)
        defer { swvm_settings_free(&s) }
        #expect(error == nil)
        #expect(strings(s.args, s.nargs) == spec.process.args)
        #expect(s.args[Int(s.nargs)] == nil)   // execve's terminator
        #expect(strings(s.env, s.nenv) == spec.process.env)
        #expect(s.env[Int(s.nenv)] == nil)
        #expect(String(cString: s.cwd) == "/srv/app")
        #expect(s.uid == 1000 && s.gid == 1001)
        #expect(Array(UnsafeBufferPointer(start: s.groups, count: Int(s.ngroups))) == [29, 44, 70000])
        #expect(String(cString: s.hostname) == "box1")
        #expect(s.nrlimits == 2)
        #expect(s.rlimits[0].resource == 7 && s.rlimits[0].soft == 123 && s.rlimits[0].hard == 456)
        #expect(s.rlimits[1].resource == 3 && s.rlimits[1].soft == UInt64.max && s.rlimits[1].hard == UInt64.max)
        #expect(s.caps == (1 << 0) | (1 << 5) | (1 << 21))
        #expect(Array(UnsafeBufferPointer(start: s.seccomp, count: Int(s.seccomp_len))) == Self.program)
        #expect(s.nnp == 1 && s.read_only == 1 && s.interactive == 1 && s.`init` == 1)
        #expect(s.terminal == 1 && s.rows == 33 && s.cols == 101)
        #expect(s.memory == 64 << 20 && s.pids == 50)
        #expect(strings(s.masked, s.nmasked) == ["/proc/kcore", "/sys/firmware"])
        #expect(strings(s.readonly_paths, s.nreadonly_paths) == ["/proc/sys"])
        let t = mounts(s.tmpfs, s.ntmpfs)
        #expect(t.count == 1 && t[0].0 == 1 && t[0].2 == "/scratch" && t[0].3 == "size=1m,noexec")
        #expect(s.host_time_ns == 1_234_567_890_123)
        #expect(String(cString: s.rootdev) == "/dev/vdb")
        #expect(String(cString: s.probe) == "/probe")
        #expect(Array(UnsafeBufferPointer(start: s.entropy, count: Int(s.entropy_len))) == [9, 8, 7, 6])
        #expect(s.net == 1 && s.net_if.prefix == 16 && s.net_if.mtu == 1500)
        #expect(withUnsafeBytes(of: s.net_if.addr) { Array($0) } == [10, 88, 0, 7])
        #expect(withUnsafeBytes(of: s.net_if.gateway) { Array($0) } == [10, 88, 0, 1])
        #expect(withUnsafeBytes(of: s.net_if.mac) { Array($0) } == [0x02, 0x53, 10, 88, 0, 7])
        #expect(String(cString: s.etc_hosts) == spec.etcHosts && String(cString: s.etc_hosts).contains("10.88.0.7\tbox1"))
        #expect(String(cString: s.resolv_conf) == "nameserver 10.88.0.1\n")
        // The VM gets no container fields.
        #expect(s.rootfs == nil && s.state_dir == nil && s.host_network == 0 && s.userns == 0 && s.ncgroup_mounts == 0)
    }

    @Test func everyContainerFieldRoundTrips() throws {
        let spec = fullSpec()
        let bytes = RunSettings.encode(spec, seccompProgram: nil, window: nil,
                                       level: .container(stateDir: "/run/swvm/abc", cgroupMounts: [
                                           .v1(controller: "memory"), .bind(name: "pids", source: "/sys/fs/cgroup/pids/swvm/abc")]))
        var (s, error) = decode(bytes)
        defer { swvm_settings_free(&s) }
        #expect(error == nil)
        #expect(String(cString: s.rootfs) == spec.rootfs)
        #expect(String(cString: s.state_dir) == "/run/swvm/abc")
        #expect(String(cString: s.probe) == "/host/probe")
        let v = mounts(s.volumes, s.nvolumes)
        #expect(v.count == 2)
        #expect(v[0].0 == 1 && v[0].1 == "/host/data" && v[0].2 == "/data")
        #expect(v[1].0 == 0 && v[1].1 == "/host/rw" && v[1].2 == "/rw")
        #expect(s.host_network == 1 && s.userns == 1)
        #expect(s.ncgroup_mounts == 2)
        #expect(s.cgroup_mounts[0].kind == Int32(CGROUP_MOUNT_V1.rawValue) && String(cString: s.cgroup_mounts[0].destination) == "memory")
        #expect(s.cgroup_mounts[1].kind == Int32(CGROUP_MOUNT_BIND.rawValue) && String(cString: s.cgroup_mounts[1].destination) == "pids")
        #expect(String(cString: s.cgroup_mounts[1].source) == "/sys/fs/cgroup/pids/swvm/abc")
        #expect(s.terminal == 1 && s.rows == 0 && s.cols == 0)   // no window: the kernel's default
        #expect(s.seccomp == nil && s.seccomp_len == 0)
        // Limits are the host cgroup's job in a container.
        #expect(s.memory == 0 && s.pids == -1)
    }

    /// Every tag the header defines is sent by one level or the other.
    @Test func everyTagIsEncoded() {
        let spec = fullSpec()
        var tags = Set<UInt16>()
        for level in [RunSettings.Level.vm(rootDevice: "/dev/vda", hostTimeNanos: 1, probeSource: "/probe", entropy: [1],
                                           netInterface: Self.netInterface),
                      .container(stateDir: "/s", cgroupMounts: [.v1(controller: "pids")])] {
            let b = RunSettings.encode(spec, seccompProgram: Self.program, window: (1, 1), level: level)
            var off = 0
            while off + 6 <= b.count {
                tags.insert(le16(b, off))
                off += 6 + Int(le32(b, off + 2))
            }
            #expect(off == b.count)
        }
        let retired: Set<UInt16> = [17, 23]
        let defined = Set((1...UInt16(CFG_INIT.rawValue)).filter { !retired.contains($0) })
            .union([UInt16(CFG_NET_IF.rawValue), UInt16(CFG_ETC_HOSTS.rawValue), UInt16(CFG_RESOLV_CONF.rawValue)])
        #expect(tags == defined, "not encoded: \(defined.subtracting(tags).sorted())")
    }

    @Test func malformedSettingsAreRefusedWithTheField() {
        func field(_ tag: UInt16, _ v: [UInt8]) -> [UInt8] { le16(tag) + le32(UInt32(v.count)) + v }
        let arg = field(UInt16(CFG_ARG.rawValue), Array("true".utf8))
        #expect(decode(arg).1 == nil)
        #expect(decode([]).1 == "no command to run")
        #expect(decode(arg + [1, 0, 9]).1?.contains("truncated field header") == true)
        #expect(decode(arg + le16(3) + le32(100) + [1]).1?.contains("claims 100 bytes") == true)
        #expect(decode(arg + field(UInt16(CFG_UID.rawValue), [1, 2])).1?.contains("uid is 2 bytes") == true)
        #expect(decode(field(UInt16(CFG_ARG.rawValue), [65, 0, 66])).1?.contains("NUL") == true)
        #expect(decode(arg + field(UInt16(CFG_SECCOMP.rawValue), [1, 2, 3])).1?.contains("seccomp") == true)
        // An unknown tag from a newer swvm is skipped.
        var (s, e) = decode(field(999, [1, 2, 3]) + arg)
        #expect(e == nil && s.nargs == 1)
        swvm_settings_free(&s)
    }

    /// (uid_t)-1 means "unchanged" to setresuid: the decoder guest-init and
    /// the container child share refuses it in every id field (issue 23).
    @Test func uidMinusOneIsRefusedByTheDecoder() {
        func field(_ tag: UInt16, _ v: [UInt8]) -> [UInt8] { le16(tag) + le32(UInt32(v.count)) + v }
        let arg = field(UInt16(CFG_ARG.rawValue), Array("id".utf8))
        for (tag, name) in [(CFG_UID, "uid"), (CFG_GID, "gid")] {
            var (s, e) = decode(arg + field(UInt16(tag.rawValue), le32(UInt32.max)))
            #expect(e == "run settings: \(name) 4294967295 is (\(name)_t)-1")
            swvm_settings_free(&s)
            var (ok, e2) = decode(arg + field(UInt16(tag.rawValue), le32(UInt32.max - 1)))
            #expect(e2 == nil)
            swvm_settings_free(&ok)
        }
        var (s, e) = decode(arg + field(UInt16(CFG_GROUPS.rawValue), le32(5) + le32(UInt32.max)))
        #expect(e == "run settings: supplementary gid 4294967295 is (gid_t)-1")
        swvm_settings_free(&s)
    }

    /// A frame longer than the reader's buffer is consumed whole: the next
    /// frame is read intact (guest-init's control loop used to fall out of step).
    @Test func anOversizedFrameDoesNotDesynchronizeTheStream() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        let big = [UInt8](repeating: 0xAB, count: 5000)
        #expect(swvm_frame_write(fds[1], MSG_RESIZE.rawValue, big, UInt32(big.count)) == 0)
        let sig = le32(15)
        #expect(swvm_frame_write(fds[1], MSG_SIGNAL.rawValue, sig, 4) == 0)
        close(fds[1])
        var buf = [UInt8](repeating: 0, count: 64)
        var type: UInt32 = 0, length: UInt32 = 0
        #expect(swvm_frame_read(fds[0], &type, &length, &buf, buf.count, SWVM_MAX_CONFIG) == 0)
        #expect(type == MSG_RESIZE.rawValue && length == 5000 && buf.allSatisfy { $0 == 0xAB })
        #expect(swvm_frame_read(fds[0], &type, &length, &buf, buf.count, SWVM_MAX_CONFIG) == 0)
        #expect(type == MSG_SIGNAL.rawValue && length == 4 && le32(buf, 0) == 15)
        #expect(swvm_frame_read(fds[0], &type, &length, &buf, buf.count, SWVM_MAX_CONFIG) == -1)   // end of stream
    }

    /// A frame over the reader's limit ends the stream (swvm_run_settings.h):
    /// the C readers stop at its header, as GuestProtocol.Reader does,
    /// rather than skip its payload and read on.
    @Test func aFrameOverTheLimitStopsTheCReaders() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        let big = [UInt8](repeating: 0xAB, count: 5000)
        #expect(swvm_frame_write(fds[1], MSG_CONFINED.rawValue, big, UInt32(big.count)) == 0)
        close(fds[1])
        var type: UInt32 = 0, length: UInt32 = 0
        #expect(swvm_frame_read_alloc(fds[0], &type, &length, 4096) == nil)
        #expect(type == MSG_CONFINED.rawValue && length == 5000)
        var rest = [UInt8](repeating: 0, count: 8192)
        #expect(read(fds[0], &rest, rest.count) == 5000)   // the payload was left unread
    }

    /// CFG_NET_IF's bytes are swvm_net_if_encode's, field by field as the
    /// header describes them; the decoder refuses a prefix over 32.
    @Test func netInterfaceLayout() {
        var n = Self.netInterface
        var bytes = [UInt8](repeating: 0, count: Int(SWVM_NET_IF_LEN))
        swvm_net_if_encode(&n, &bytes)
        #expect(bytes == [10, 88, 0, 7, 16, 10, 88, 0, 1] + le16(1500) + [0x02, 0x53, 10, 88, 0, 7])
        var back = swvm_net_if()
        #expect(swvm_net_if_decode(bytes, bytes.count, &back) == 0 && back.mtu == 1500 && back.prefix == 16)
        bytes[4] = 33
        #expect(swvm_net_if_decode(bytes, bytes.count, &back) == -1)
        #expect(swvm_net_if_decode(bytes, 16, &back) == -1)
    }

    /// --network ns:PATH: a pod's further addresses and routes reach the C
    /// decoder in order (a gateway of 0.0.0.0 is on the link); a prefix
    /// over 32 or one route too many is refused.
    @Test func podAddressesAndRoutesRoundTrip() {
        var spec = fullSpec()
        spec.podAddresses = [IPv4InterfaceAddress(IPv4Address("10.231.0.3")!, prefix: 24)]
        spec.podRoutes = [IPv4Route(destination: IPv4Address("169.254.1.1")!, prefix: 32, gateway: nil),
                          IPv4Route(destination: IPv4Address("10.232.0.0")!, prefix: 16, gateway: IPv4Address("169.254.1.1")!)]
        var f = RunSettings.Fields()
        f.addGuestNetwork(Self.netInterface, spec)
        let base = RunSettings.encode(fullSpec(), seccompProgram: nil, window: nil,
                                      level: .vm(rootDevice: "/dev/vda", hostTimeNanos: 1, probeSource: nil, entropy: nil))
        var (s, error) = decode(base + f.bytes)
        defer { swvm_settings_free(&s) }
        #expect(error == nil && s.net == 1 && s.nnet_addrs == 1 && s.nnet_routes == 2)
        #expect(withUnsafeBytes(of: s.net_addrs.0.addr) { Array($0) } == [10, 231, 0, 3] && s.net_addrs.0.prefix == 24)
        #expect(withUnsafeBytes(of: s.net_routes.0.gateway) { Array($0) } == [0, 0, 0, 0] && s.net_routes.0.prefix == 32)
        #expect(withUnsafeBytes(of: s.net_routes.1.dst) { Array($0) } == [10, 232, 0, 0])
        #expect(withUnsafeBytes(of: s.net_routes.1.gateway) { Array($0) } == [169, 254, 1, 1])
        var bad = RunSettings.Fields()
        bad.add(CFG_NET_ROUTE, [10, 0, 0, 0, 33, 0, 0, 0, 0])
        var (b, e1) = decode(base + bad.bytes)
        swvm_settings_free(&b)
        #expect(e1?.contains("prefix /33") == true)
        var many = RunSettings.Fields()
        for _ in 0...SWVM_MAX_NET_ROUTES { many.add(CFG_NET_ROUTE, [10, 0, 0, 0, 8, 0, 0, 0, 0]) }
        var (m, e2) = decode(base + many.bytes)
        swvm_settings_free(&m)
        #expect(e2?.contains("more than 16 routes") == true, "\(String(describing: e2))")
    }

    /// MSG_CONFINED as the confinement child writes it (a frame header,
    /// then one field per path, by the C writers) is what swvm decodes.
    @Test func confinedPathsRoundTripThroughTheChildsWriters() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        let fields: [(swvm_config_tag, String)] = [(CFG_MASKED, "/proc/kcore"), (CFG_READONLY_PATH, "/proc/sys"), (CFG_MASKED, "/sys/firmware")]
        let length = fields.reduce(0) { $0 + 6 + $1.1.utf8.count }
        #expect(swvm_frame_write(fds[1], MSG_CONFINED.rawValue, nil, UInt32(length)) == 0)
        for (tag, path) in fields { #expect(swvm_field_write(fds[1], UInt16(tag.rawValue), path, UInt32(path.utf8.count)) == 0) }
        close(fds[1])
        var type: UInt32 = 0, len: UInt32 = 0
        let frame = try #require(swvm_frame_read_alloc(fds[0], &type, &len, 1 << 20))
        defer { free(frame) }
        #expect(type == MSG_CONFINED.rawValue && Int(len) == length)
        let paths = try ConfinedPaths(decoding: Array(UnsafeBufferPointer(start: frame, count: Int(len))))
        #expect(paths == ConfinedPaths(masked: ["/proc/kcore", "/sys/firmware"], readOnly: ["/proc/sys"]))
        // Garbage (as from a guest) is an error naming the field, not a crash.
        #expect(throws: SwvmError.self) { try ConfinedPaths(decoding: [18, 0, 9, 0, 0, 0, 0x2f]) }
        #expect(try ConfinedPaths(decoding: []) == ConfinedPaths())
    }
}
