#if canImport(Glibc)
import Glibc
#endif
import CConfinement
import Testing
@testable import RunSettingsWire
@testable import RuntimeSpec
@testable import SwvmBase

/// OCI mode's fields (CFG_OCI_*): config.json's option words become
/// mount flags as runc's parseMountOptions makes them, and what Swift
/// encodes is what the C decoder hands the container child.
@Suite struct OCIRunSettingsTests {
    typealias O = OCIMountOptions
    // CLONE_NEW* (sched.h; Glibc hides them without _GNU_SOURCE).
    let CLONE_NEWNS: UInt32 = 0x20000, CLONE_NEWPID: UInt32 = 0x2000_0000, CLONE_NEWNET: UInt32 = 0x4000_0000

    @Test func optionWordsBecomeFlagsPropagationAttributesAndData() throws {
        let o = try O(["rbind", "ro", "nosuid", "rprivate", "mode=755", "size=1m", "rro", "tmpcopyup", "nodev", "dev"], what: "mounts[0]")
        #expect(o.flags == O.bind | O.rec | O.rdonly | O.nosuid)
        #expect(o.propagation == [O.private | O.rec])
        #expect(o.attrSet == 1 && o.attrClear == 0)
        #expect(o.data == ["mode=755", "size=1m"])
        #expect(try O(["ro", "rw", "noexec", "exec"], what: "m").flags == 0)
        #expect(try O(["rnoatime", "rrelatime"], what: "m").attrSet == 0)
        #expect(throws: SwvmError.self) { try O(["shared", "slave", "private", "shared", "unbindable"], what: "mounts[2]") }
        #expect(throws: SwvmError.self) { try O(["a,b"], what: "mounts[2]") }
    }

    func spec() -> RunSpec {
        let p = ProcessSpec(args: ["/bin/true"], env: [], cwd: "/", uid: 0, gid: 0, additionalGids: [], user: "0")
        var s = RunSpec(id: "x", rootfs: "/b/rootfs", process: p, hostname: "h", capabilities: [])
        var o = OCISettings(rootPath: "/b/rootfs")
        o.rootfsPropagation = "rslave"
        o.mounts = [OCIMount(destination: "/proc", type: "proc", source: "proc", options: ["nosuid"]),
                    OCIMount(destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup", options: []),
                    OCIMount(destination: "/data", type: "bind", source: "/host", options: ["rbind", "rw", "rshared"])]
        o.devices = [OCIDevice(path: "/dev/fuse", type: "c", major: 10, minor: 229, fileMode: 0o20666, uid: 1, gid: 2)]
        o.sysctl = [OCISysctl(key: "net.ipv4.ip_forward", value: "1")]
        o.capabilities.bounding = 1; o.capabilities.effective = 2; o.capabilities.inheritable = 4
        o.capabilities.permitted = 8; o.capabilities.ambient = 16
        o.umask = 0o027
        s.oci = o
        return s
    }

    @Test func everyOCIFieldRoundTripsThroughTheCDecoder() throws {
        var level = RunSettings.OCILevel()
        level.join = [(CLONE_NEWNET, 7)]
        level.newNamespaces = CLONE_NEWNS | CLONE_NEWPID
        level.execFIFO = 9
        level.preserveFDs = 2
        level.cgroupMounts = [.bind(name: "pids", source: "/sys/fs/cgroup/pids/x")]
        let bytes = try RunSettings.encodeOCI(spec(), seccompProgram: nil, level: level)
        var s = swvm_settings()
        var error = [CChar](repeating: 0, count: 256)
        #expect(bytes.withUnsafeBufferPointer { swvm_settings_decode($0.baseAddress, $0.count, &s, &error, error.count) } == 0)
        defer { swvm_settings_free(&s) }
        let o = s.oci
        #expect(o.enabled == 1 && String(cString: o.root) == "/b/rootfs" && o.root_propagation == O.slave | O.rec)
        #expect(o.nmounts == 3)
        let m = (0..<3).map { o.mounts[$0] }
        #expect(String(cString: m[0].type) == "proc" && m[0].flags == O.nosuid && m[0].nprop == 0)
        #expect(String(cString: m[1].destination) == "/sys/fs/cgroup" && m[1].flags == O.rdonly)   // ro unless "rw"
        #expect(String(cString: m[2].source) == "/host" && m[2].flags == O.bind | O.rec && m[2].nprop == 1 && m[2].prop.0 == O.shared | O.rec)
        #expect(String(cString: m[2].data) == "")
        let d = o.devices[0]
        #expect(o.ndevices == 1 && d.type == UInt8(ascii: "c") && d.major == 10 && d.minor == 229 && d.mode == 0o666 && d.uid == 1 && d.gid == 2)
        #expect(o.nsysctl == 1 && String(cString: o.sysctl[0].key) == "net.ipv4.ip_forward" && String(cString: o.sysctl[0].value) == "1")
        #expect(o.has_caps == 1 && o.bounding == 1 && o.effective == 2 && o.inheritable == 4 && o.permitted == 8 && o.ambient == 16)
        #expect(o.umask == 0o027 && o.exec_fifo == 9 && o.preserve_fds == 2)
        #expect(o.njoin == 1 && o.join.0.type == CLONE_NEWNET && o.join.0.fd == 7)
        #expect(o.new_namespaces == CLONE_NEWNS | CLONE_NEWPID)
        #expect(s.ncgroup_mounts == 1)
    }

    @Test func badOCIFieldsAreRefusedByTheDecoder() {
        func field(_ tag: swvm_config_tag, _ v: [UInt8]) -> [UInt8] { le16(UInt16(tag.rawValue)) + le32(UInt32(v.count)) + v }
        func decodeError(_ b: [UInt8]) -> String? {
            var s = swvm_settings()
            var error = [CChar](repeating: 0, count: 256)
            let r = (field(CFG_ARG, Array("true".utf8)) + b).withUnsafeBufferPointer { swvm_settings_decode($0.baseAddress, $0.count, &s, &error, error.count) }
            if r == 0 { swvm_settings_free(&s); return nil }
            return String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        let net = le32(CLONE_NEWNET) + le32(3)
        #expect(decodeError(field(CFG_OCI_JOIN_NS, net)) == nil)
        #expect(decodeError(field(CFG_OCI_JOIN_NS, net) + field(CFG_OCI_JOIN_NS, net))?.contains("joined twice") == true)
        #expect(decodeError(field(CFG_OCI_JOIN_NS, le32(CLONE_NEWNET | CLONE_NEWPID) + le32(3))) != nil)
        #expect(decodeError(field(CFG_OCI_MOUNT, le32(0) + le32(0) + le32(0) + le32(9))) != nil)
        #expect(decodeError(field(CFG_OCI_MOUNT, le32(0) + le32(0) + le32(0) + le32(0) + Array("tmpfs".utf8)))?.contains("lacks a field") == true)
        #expect(decodeError(field(CFG_OCI_DEVICE, [UInt8(ascii: "x")] + [UInt8](repeating: 0, count: 21))) != nil)
        #expect(decodeError(field(CFG_OCI_UMASK, le32(0o1000))) != nil)
        #expect(decodeError(field(CFG_OCI_EXEC_FIFO, le32(UInt32(bitPattern: -1)))) != nil)
    }

    @Test func encodeOCIRefusesWhatTheWireCannotCarry() {
        var s = spec()
        s.oci!.devices[0].major = 5000
        #expect(throws: SwvmError.self) { try RunSettings.encodeOCI(s, seccompProgram: nil, level: .init()) }
        s = spec()
        s.oci!.devices[0].path = "/dev/../etc/x"
        #expect(throws: SwvmError.self) { try RunSettings.encodeOCI(s, seccompProgram: nil, level: .init()) }
        s = spec()
        s.oci!.rootfsPropagation = "sideways"
        #expect(throws: SwvmError.self) { try RunSettings.encodeOCI(s, seccompProgram: nil, level: .init()) }
    }
}
