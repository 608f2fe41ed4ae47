#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import RuntimeSpec
@testable import Seccomp
@testable import SwvmBase

/// A bundle directory with a rootfs, inside the build directory (git-ignored).
func makeBundle(_ config: JSON? = nil, root: String = "rootfs") throws -> String {
    let dir = Path.join(FS.executableDirectory(), "test-fixtures/oci-\(randomHex(6))")
    try FS.makeDirectories(Path.join(dir, root))
    if let config { try FS.writeText(Path.join(dir, "config.json"), config.serialized(pretty: true)) }
    return dir
}

/// `json` with the member at `path` (object keys, or array indexes as
/// digits) set to `value`, or removed when it is nil.
func setting(_ json: JSON, _ path: [String], _ value: JSON?) -> JSON {
    guard let key = path.first else { return value ?? .null }
    switch json {
    case .array(var items):
        let i = Int(key)!
        if let v = path.count == 1 ? value : setting(items[i], Array(path.dropFirst()), value) { items[i] = v } else { items.remove(at: i) }
        return .array(items)
    case .object(var members):
        // In place, so the members keep their order.
        let index = members.firstIndex { $0.0 == key }
        let new = path.count == 1 ? value : setting(index.map { members[$0].1 } ?? .object([]), Array(path.dropFirst()), value)
        switch (index, new) {
        case let (i?, v?): members[i].1 = v
        case let (i?, nil): members.remove(at: i)
        case let (nil, v?): members.append((key, v))
        case (nil, nil): break
        }
        return .object(members)
    default:
        return setting(.object([]), path, value)
    }
}

/// A config.json with every field swvm reads, as podman and containerd write them.
let fullConfig = #"""
{
  "ociVersion": "1.1.0",
  "process": {
    "terminal": true, "consoleSize": {"height": 40, "width": 120},
    "user": {"uid": 1000, "gid": 1001, "umask": 18, "additionalGids": [5, 27], "username": "app"},
    "args": ["/bin/sh", "-c", "echo hi"], "env": ["PATH=/usr/bin:/bin", "EMPTY=", "A=b=c"], "cwd": "/srv",
    "capabilities": {"bounding": ["CAP_CHOWN", "CAP_NET_ADMIN"], "effective": ["CAP_CHOWN"], "inheritable": [],
                     "permitted": ["CAP_CHOWN", "CAP_NET_ADMIN"], "ambient": ["CAP_NET_ADMIN"]},
    "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096},
                {"type": "RLIMIT_CORE", "soft": 18446744073709551615, "hard": 18446744073709551615}],
    "noNewPrivileges": true, "oomScoreAdj": -500,
    "apparmorProfile": "", "someFutureField": {"x": [1, 2]}
  },
  "root": {"path": "rootfs", "readonly": true},
  "hostname": "box", "domainname": "example.org",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/data", "type": "bind", "source": "/var/lib/data", "options": ["rbind", "ro", "rprivate"]},
    {"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "size=1m"]},
    {"destination": "/mnt/x", "type": "overlay", "source": "overlay", "options": ["lowerdir=/a:/b"]},
    {"destination": "/nothing", "source": "/x", "options": ["bind"]}
  ],
  "hooks": {
    "prestart": [{"path": "/bin/true", "args": ["true", "a"], "env": ["K=V"], "timeout": 5}],
    "createRuntime": [{"path": "/bin/true"}],
    "createContainer": [{"path": "/usr/libexec/in-container-not-checked"}],
    "startContainer": [{"path": "/bin/inside"}],
    "poststart": [{"path": "/bin/true", "timeout": 1}],
    "poststop": [{"path": "/bin/true"}, {"path": "/bin/sh", "args": ["sh", "-c", "exit 0"]}]
  },
  "annotations": {"org.opencontainers.image.title": "t", "io.podman.annotations.autoremove": "TRUE"},
  "linux": {
    "namespaces": [{"type": "pid"}, {"type": "network", "path": "/proc/self/ns/net"}, {"type": "ipc"}, {"type": "uts"},
                   {"type": "mount"}, {"type": "user"}, {"type": "cgroup"}],
    "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
    "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}, {"containerID": 65536, "hostID": 5, "size": 1}],
    "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 0},
                {"path": "/dev/myfifo", "type": "p"}],
    "cgroupsPath": "/machine/box",
    "resources": {
      "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}],
      "memory": {"limit": 67108864, "reservation": 33554432, "swap": -1, "swappiness": 10, "disableOOMKiller": false},
      "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
      "pids": {"limit": 100},
      "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]},
      "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],
      "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]},
      "unified": {"memory.high": "50000000"}
    },
    "sysctl": {"kernel.shmmax": "4096", "kernel.domainname": "example.org", "fs.mqueue.msg_max": "10"},
    "seccomp": {
      "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
      "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
      "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_LOG"],
      "syscalls": [
        {"names": ["read", "write", "exit_group", "execve"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 18446744073709551615, "op": "SCMP_CMP_EQ"}]},
        {"names": ["ptrace"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
      ]
    },
    "maskedPaths": ["/proc/kcore", "/sys/firmware"],
    "readonlyPaths": ["/proc/sys"],
    "rootfsPropagation": "rslave",
    "personality": {"domain": "LINUX32"},
    "mountLabel": "system_u:object_r:container_file_t:s0"
  }
}
"""#

@Suite struct OCIConfigTests {
    func parse(_ json: JSON, root: String = "rootfs") throws -> RunSpec {
        let dir = try makeBundle(root: root)
        return try OCIConfig.parse(json, bundle: dir, id: "c1")
    }

    @Test func processFields() throws {
        let s = try parse(try JSON.parse(fullConfig))
        let oci = try #require(s.oci)
        #expect(s.id == "c1")
        #expect(s.terminal && oci.consoleRows == 40 && oci.consoleCols == 120)
        #expect(s.process.uid == 1000 && s.process.gid == 1001 && s.process.additionalGids == [5, 27])
        #expect(oci.umask == 0o22)
        #expect(s.process.args == ["/bin/sh", "-c", "echo hi"])
        #expect(s.process.env == ["PATH=/usr/bin:/bin", "EMPTY=", "A=b=c"])
        #expect(s.process.cwd == "/srv")
        #expect(s.capabilities == ["CHOWN", "NET_ADMIN"])
        let chown: UInt64 = 1 << 0, netAdmin: UInt64 = 1 << 12
        #expect(oci.capabilities.bounding == chown | netAdmin && oci.capabilities.effective == chown)
        #expect(oci.capabilities.inheritable == 0 && oci.capabilities.permitted == chown | netAdmin && oci.capabilities.ambient == netAdmin)
        #expect(s.process.rlimits == [Rlimit(resource: 7, name: "nofile", soft: 1024, hard: 4096),
                                      Rlimit(resource: 4, name: "core", soft: UInt64.max, hard: UInt64.max)])
        #expect(s.noNewPrivileges && oci.oomScoreAdj == -500)
    }

    @Test func rootHostnameMountsAndHooks() throws {
        let s = try parse(try JSON.parse(fullConfig))
        let oci = try #require(s.oci)
        #expect(s.rootfs.hasSuffix("/rootfs") && s.rootfs.hasPrefix("/") && oci.rootPath == s.rootfs)
        #expect(s.readOnlyRoot)
        #expect(s.hostname == "box" && oci.domainname == "example.org")
        #expect(oci.mounts.map(\.destination) == ["/proc", "/dev", "/data", "/run", "/mnt/x", "/nothing"])
        #expect(oci.mounts[2] == OCIMount(destination: "/data", type: "bind", source: "/var/lib/data", options: ["rbind", "ro", "rprivate"]))
        #expect(oci.mounts[4].type == "overlay" && oci.mounts[4].options == ["lowerdir=/a:/b"])
        #expect(oci.mounts[5].type == "" && oci.mounts[0].options == [])
        #expect(s.mounts.isEmpty)   // swvm run's own mounts: none for a bundle run by the OCI commands
        #expect(oci.hooks.prestart == [OCIHook(path: "/bin/true", args: ["true", "a"], env: ["K=V"], timeout: 5)])
        #expect(oci.hooks.createRuntime.count == 1 && oci.hooks.createContainer.count == 1 && oci.hooks.startContainer.count == 1)
        #expect(oci.hooks.poststart == [OCIHook(path: "/bin/true", timeout: 1)])
        #expect(oci.hooks.poststop.map(\.path) == ["/bin/true", "/bin/sh"])
        #expect(oci.annotations == [OCIAnnotation(key: "org.opencontainers.image.title", value: "t"),
                                    OCIAnnotation(key: "io.podman.annotations.autoremove", value: "TRUE")])
    }

    @Test func linuxFields() throws {
        let s = try parse(try JSON.parse(fullConfig))
        let oci = try #require(s.oci)
        #expect(oci.namespaces.map(\.type) == ["pid", "network", "ipc", "uts", "mount", "user", "cgroup"])
        #expect(oci.namespaces[1].path == "/proc/self/ns/net" && oci.namespaces[0].path == nil)
        #expect(s.network == .none)
        #expect(oci.uidMappings == [OCIIDMapping(containerID: 0, hostID: 100000, size: 65536)])
        #expect(oci.gidMappings.count == 2 && oci.gidMappings[1] == OCIIDMapping(containerID: 65536, hostID: 5, size: 1))
        #expect(oci.devices == [OCIDevice(path: "/dev/fuse", type: "c", major: 10, minor: 229, fileMode: 0o666, uid: 0, gid: 0),
                                OCIDevice(path: "/dev/myfifo", type: "p", major: 0, minor: 0)])
        #expect(oci.cgroupsPath == "/machine/box")
        #expect(oci.sysctl == [OCISysctl(key: "kernel.shmmax", value: "4096"), OCISysctl(key: "kernel.domainname", value: "example.org"),
                               OCISysctl(key: "fs.mqueue.msg_max", value: "10")])
        #expect(s.maskedPaths == ["/proc/kcore", "/sys/firmware"] && s.readonlyPaths == ["/proc/sys"])
        #expect(oci.rootfsPropagation == "rslave" && oci.personality == "LINUX32")
    }

    @Test func timeNamespaceOffsets() throws {
        let json = setting(setting(try JSON.parse(fullConfig), ["linux", "namespaces", "6"], .object([("type", "time")])),
                           ["linux", "timeOffsets"], try JSON.parse(#"{"monotonic": {"secs": -86400, "nanosecs": 5}, "boottime": {"secs": 7}}"#))
        let oci = try #require(try parse(json).oci)
        #expect(oci.namespaces.last == OCINamespace(type: "time"))
        #expect(oci.timeOffsets == [OCITimeOffset(clock: "monotonic", seconds: -86400, nanoseconds: 5),
                                    OCITimeOffset(clock: "boottime", seconds: 7, nanoseconds: 0)])
    }

    @Test func resources() throws {
        let s = try parse(try JSON.parse(fullConfig))
        #expect(s.resources.memory == 64 << 20 && s.resources.cpuQuota == 50000 && s.resources.cpuPeriod == 100000 && s.resources.pids == 100)
        let r = try #require(s.oci).resources
        #expect(r.devices == [OCIDeviceRule(allow: false, access: "rwm"), OCIDeviceRule(allow: true, type: "c", major: 10, minor: 229, access: "rw")])
        #expect(r.memory.reservation == 32 << 20 && r.memory.swap == -1 && r.memory.swappiness == 10 && r.memory.disableOOMKiller == false)
        #expect(r.cpu.shares == 512 && r.cpu.cpus == "0-1" && r.cpu.mems == "0")
        #expect(r.pidsLimit == 100)
        #expect(r.blockIO.weight == 500 && r.blockIO.throttleReadBpsDevice == [OCIThrottleDevice(major: 8, minor: 0, rate: 1 << 20)])
        #expect(r.hugepageLimits == [OCIHugepageLimit(pageSize: "2MB", limit: 0)])
        #expect(r.network.classID == 1048577 && r.network.priorities == [OCIInterfacePriority(name: "eth0", priority: 5)])
        #expect(r.unified == [OCIKeyValue(key: "memory.high", value: "50000000")])
        // The same parser reads `swvm update -r`'s resources.json.
        let update = try OCIConfig.parseResources(try JSON.parse(#"{"memory": {"limit": 1048576}, "pids": {"limit": -1}}"#))
        #expect(update.memory.limit == 1 << 20 && update.pidsLimit == -1)
    }

    @Test func seccompInTheOCIFormat() throws {
        let s = try parse(try JSON.parse(fullConfig))
        let p = try #require(s.seccomp)
        #expect(p.defaultAction == .errno(38))
        #expect(p.architectures == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        #expect(p.flags == [.specAllow, .log] && p.flags.rawValue == 6)
        #expect(p.rules.count == 3 && p.rules[2].action == .errno(1))
        #expect(p.rules[1].args == [.init(index: 0, value: UInt64.max, op: .equal)])
        let all = try SeccompCompiler.compileUncached(p)
        var native = p
        native.architectures = ["SCMP_ARCH_X86_64"]
        // Only the native ABI listed: a smaller filter than with x86 and x32.
        #expect(try SeccompCompiler.compileUncached(native).instructionCount < all.instructionCount)
    }

    /// No linux.seccomp, maskedPaths or capabilities: runc's defaults (none), not swvm run's.
    @Test func absentFieldsGetRuncsDefaults() throws {
        let json = try JSON.parse(#"{"ociVersion": "1.0.0", "process": {"args": ["true"], "cwd": "/"}, "root": {"path": "rootfs"}}"#)
        let s = try parse(json)
        #expect(s.seccomp == nil && s.maskedPaths.isEmpty && s.readonlyPaths.isEmpty && s.capabilities.isEmpty)
        #expect(!s.noNewPrivileges && !s.readOnlyRoot && s.network == .host && s.hostname == "")
        #expect(s.process.uid == 0 && s.process.gid == 0)
        #expect(s.oci?.namespaces == [] && s.oci?.hooks == OCIHooks())
    }

    @Test(arguments: ["1.0.0", "1.0.2-dev", "1.0.0-rc5", "1.1.0", "1.1.0-rc.1", "1.1.7+dev", "1.2.0"])
    func supportedVersions(_ version: String) throws {
        let json = try JSON.parse(#"{"ociVersion": "\#(version)", "process": {"args": ["true"], "cwd": "/"}, "root": {"path": "rootfs"}}"#)
        _ = try parse(json)
    }

    /// A bundle on disk, root.path relative to it, loaded by its path.
    @Test func loadReadsTheBundle() throws {
        let dir = try makeBundle(try JSON.parse(fullConfig))
        let s = try OCIConfig.load(bundle: dir + "/.", id: "x")
        #expect(s.rootfs == (try FS.realPath(dir)) + "/rootfs")
        #expect(throws: SwvmError.self) { try OCIConfig.load(bundle: dir + "/nope", id: "x") }
        let empty = try makeBundle()
        let e = try #require(throws: SwvmError.self) { try OCIConfig.load(bundle: empty, id: "x") }
        #expect(e.message.hasSuffix("has no config.json"))
    }
}
