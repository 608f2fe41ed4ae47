#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import RuntimeSpec
@testable import Seccomp
@testable import SwvmBase

/// A hostile or broken config.json is an error naming its JSON path, never
/// a crash, a skipped field or a wrapped number.
@Suite struct OCIConfigBadInputTests {
    static let minimal = #"{"ociVersion": "1.0.2-dev", "process": {"args": ["true"], "cwd": "/"}, "root": {"path": "rootfs"}}"#

    func parseError(_ json: JSON) throws -> String {
        let dir = try makeBundle()
        let e = try #require(throws: SwvmError.self) { try OCIConfig.parse(json, bundle: dir, id: "c") }
        return e.message
    }

    @Test(arguments: [
        // wrong types
        (["process", "terminal"], "\"yes\"", "config.json process.terminal: expected true or false, found a string"),
        (["process", "args"], "\"sh\"", "config.json process.args: expected an array, found a string"),
        (["process", "args"], "[\"sh\", 1]", "config.json process.args[1]: expected a string, found a number"),
        (["process", "user"], "[]", "config.json process.user: expected an object, found an array"),
        (["mounts"], "{}", "config.json mounts: expected an array, found an object"),
        (["linux", "namespaces"], "[{\"type\": 5}]", "config.json linux.namespaces[0].type: expected a string, found a number"),
        (["annotations"], "{\"a\": 1}", "config.json annotations.a: expected a string, found a number"),
        (["linux", "resources", "memory", "limit"], "\"64m\"", "config.json linux.resources.memory.limit: expected a number, found a string"),
        (["process", "args"], "[\"a\\u0000b\"]", "config.json process.args[0]: \"a\\u0000b\" contains a NUL byte"),
        // numbers out of range, never wrapped
        (["process", "user"], "{\"uid\": 4294967296, \"gid\": 0}", "config.json process.user.uid: uid 4294967296 is out of range"),
        (["process", "user"], "{\"uid\": 0, \"gid\": 4294967295}", "config.json process.user.gid: gid 4294967295 is (gid_t)-1"),
        (["process", "user"], "{\"uid\": 0, \"gid\": 0, \"umask\": 4096}", "config.json process.user.umask: 4096 is out of range for a umask (0 to 511)"),
        (["process", "user"], "{\"uid\": -1e0, \"gid\": 0}", "config.json process.user.uid: uid -1 is out of range"),
        (["process", "user"], "{\"uid\": 1e300, \"gid\": 0}", "config.json process.user.uid: uid 1e+300 is out of range"),
        (["process", "user"], "{\"uid\": 0, \"gid\": 0, \"additionalGids\": [1, 4294967296]}", "config.json process.user.additionalGids[1]: gid 4294967296 is out of range"),
        (["process", "oomScoreAdj"], "1001", "config.json process.oomScoreAdj: 1001 is out of range (-1000 to 1000)"),
        (["process", "oomScoreAdj"], "-2.5", "config.json process.oomScoreAdj: -2.5 is not a whole number"),
        (["process", "consoleSize"], "{\"height\": 70000, \"width\": 1}", "config.json process.consoleSize.height: 70000 is out of range for a terminal size"),
        (["process", "rlimits"], "[{\"type\": \"RLIMIT_NOFILE\", \"soft\": 1, \"hard\": 18446744073709551616}]",
         "config.json process.rlimits[0].hard: 1.8446744073709552e+19 is out of range"),
        (["process", "rlimits"], "[{\"type\": \"RLIMIT_NOFILE\", \"soft\": -1, \"hard\": 1}]", "config.json process.rlimits[0].soft: -1 is out of range"),
        (["linux", "devices"], "[{\"path\": \"/dev/x\", \"type\": \"c\", \"major\": 4096, \"minor\": 0}]", "config.json linux.devices[0].major: 4096 is out of range (0 to 4095)"),
        (["linux", "resources", "memory", "limit"], "-2", "config.json linux.resources.memory.limit: -2 is out of range"),
        (["linux", "resources", "cpu", "period"], "10", "config.json linux.resources.cpu.period: 10 is out of range (1000 to 1000000"),
        (["hooks", "prestart"], "[{\"path\": \"/bin/true\", \"timeout\": 0}]", "config.json hooks.prestart[0].timeout: 0 is out of range for a timeout"),
        (["linux", "uidMappings"], "[{\"containerID\": 0, \"hostID\": 0, \"size\": 1}]", "config.json linux.uidMappings: id mappings need a user namespace"),
        (["linux"], "{\"namespaces\": [{\"type\": \"user\"}], \"uidMappings\": [{\"containerID\": 4294967295, \"hostID\": 0, \"size\": 2}]}",
         "config.json linux.uidMappings[0].size: 2 ids from 4294967295 (host 0) go past 4294967295"),
        // required fields and versions
        (["ociVersion"], "null", "config.json ociVersion: missing (it is required)"),
        (["ociVersion"], "\"2.0.0\"", "config.json ociVersion: runtime-spec 2.0.0 is not supported"),
        (["ociVersion"], "\"1.0\"", "config.json ociVersion: '1.0' is not a version"),
        (["process"], "null", "config.json process: missing (it is required)"),
        (["process", "args"], "[]", "config.json process.args: missing or empty"),
        (["process", "cwd"], "null", "config.json process.cwd: missing"),
        (["process", "cwd"], "\"srv\"", "config.json process.cwd: 'srv' is not an absolute path"),
        (["process", "env"], "[\"A=1\", \"NOEQUALS\"]", "config.json process.env[1]: 'NOEQUALS' is not NAME=VALUE"),
        (["process", "capabilities"], "{\"bounding\": [\"CAP_FLY\"]}", "config.json process.capabilities.bounding[0]: unknown capability 'CAP_FLY'"),
        (["process", "rlimits"], "[{\"type\": \"RLIMIT_NOFILE\", \"soft\": 1, \"hard\": 1}, {\"type\": \"RLIMIT_NOFILE\", \"soft\": 1, \"hard\": 1}]",
         "config.json process.rlimits[1].type: RLIMIT_NOFILE is given twice"),
        (["process", "rlimits"], "[{\"type\": \"RLIMIT_NOFILE\", \"soft\": 2, \"hard\": 1}]", "config.json process.rlimits[0]: soft limit 2 is above the hard limit 1"),
        (["process", "rlimits"], "[{\"type\": \"RLIMIT_FOO\", \"soft\": 1, \"hard\": 1}]", "config.json process.rlimits[0].type: unknown rlimit 'RLIMIT_FOO'"),
        (["process", "apparmorProfile"], "\"docker-default\"", "config.json process.apparmorProfile: 'docker-default': swvm does not apply AppArmor"),
        // mounts
        (["mounts"], "[{\"destination\": \"/ok\"}, {\"destination\": \"tmp\", \"type\": \"tmpfs\"}]", "config.json mounts[1].destination: 'tmp' is not an absolute path"),
        (["mounts"], "[{\"type\": \"tmpfs\"}]", "config.json mounts[0].destination: missing"),
        // hooks
        (["hooks", "createRuntime"], "[{\"args\": [\"x\"]}]", "config.json hooks.createRuntime[0].path: missing (it is required)"),
        (["hooks", "poststop"], "[{\"path\": \"true\"}]", "config.json hooks.poststop[0].path: 'true' is not an absolute path"),
        (["hooks", "prestart"], "[{\"path\": \"/nonexistent/hook\"}]", "config.json hooks.prestart[0].path: /nonexistent/hook does not exist"),
        (["hooks", "poststart"], "[{\"path\": \"/\"}]", "config.json hooks.poststart[0].path: / is a directory"),
        // namespaces
        (["linux", "namespaces"], "[{\"type\": \"pid\"}, {\"type\": \"net\"}]", "config.json linux.namespaces[1].type: unknown namespace type 'net'"),
        (["linux", "namespaces"], "[{\"type\": \"pid\"}, {\"type\": \"pid\"}]", "config.json linux.namespaces[1].type: the pid namespace is given twice"),
        (["linux", "namespaces"], "[{\"type\": \"network\", \"path\": \"/dev/null\"}]", "config.json linux.namespaces[0].path: /dev/null is not a namespace"),
        (["linux", "namespaces"], "[{\"type\": \"network\", \"path\": \"/proc/self/ns/ipc\"}]", "config.json linux.namespaces[0].path: /proc/self/ns/ipc is a ipc namespace, not a network namespace"),
        (["linux", "namespaces"], "[{\"type\": \"network\", \"path\": \"/nonexistent\"}]", "config.json linux.namespaces[0].path: /nonexistent: No such file"),
        (["linux", "namespaces"], "[{\"type\": \"network\", \"path\": \"run/netns/x\"}]", "config.json linux.namespaces[0].path: 'run/netns/x' is not an absolute path"),
        // sysctl, devices, seccomp, propagation
        (["linux", "sysctl"], "{\"net.ipv4.ip_forward\": \"1\"}", "config.json linux.sysctl.net.ipv4.ip_forward: not allowed in the host's network namespace"),
        (["linux", "sysctl"], "{\"vm.swappiness\": \"1\"}", "config.json linux.sysctl.vm.swappiness: not in a namespace of the container's own"),
        (["linux", "sysctl"], "{\"net/../../vm/x\": \"1\"}", "config.json linux.sysctl.net/../../vm/x: 'net/../../vm/x' is not a sysctl name"),
        (["linux", "devices"], "[{\"path\": \"/dev/x\", \"type\": \"q\"}]", "config.json linux.devices[0].type: 'q' is not c, b, u or p"),
        (["linux", "devices"], "[{\"path\": \"/dev/x\", \"type\": \"c\", \"major\": 1}]", "config.json linux.devices[0].minor: missing"),
        (["linux", "seccomp"], "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"flags\": [\"SECCOMP_FILTER_FLAG_NOPE\"]}",
         "config.json linux.seccomp: flags: unknown seccomp flag 'SECCOMP_FILTER_FLAG_NOPE'"),
        (["linux", "seccomp"], "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"architectures\": [\"SCMP_ARCH_Z80\"]}",
         "config.json linux.seccomp: architectures: unknown architecture 'SCMP_ARCH_Z80'"),
        (["linux", "seccomp"], "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"read\", 3], \"action\": \"SCMP_ACT_ERRNO\"}]}",
         "config.json linux.seccomp: syscalls[0]: names: 3 is not a string"),
        (["linux", "rootfsPropagation"], "\"sideways\"", "config.json linux.rootfsPropagation: 'sideways' is not a mount propagation"),
        (["linux", "maskedPaths"], "[\"proc/kcore\"]", "config.json linux.maskedPaths[0]: 'proc/kcore' is not an absolute path"),
        (["linux", "cgroupsPath"], "\"/machine/../../../x\"", "config.json linux.cgroupsPath: '/machine/../../../x' has a '..' component"),
        (["linux"], "{\"namespaces\": [{\"type\": \"user\"}], \"uidMappings\": [{\"containerID\": 0, \"hostID\": 0, \"size\": 1}]}",
         "config.json linux.gidMappings: missing: a user namespace of the container's own needs uidMappings and gidMappings"),
        (["linux"], "{\"namespaces\": [{\"type\": \"user\", \"path\": \"/proc/self/ns/user\"}], \"uidMappings\": [{\"containerID\": 0, \"hostID\": 0, \"size\": 1}]}",
         "config.json linux.uidMappings: the user namespace is joined by path, so it is mapped already"),
        (["linux"], "{\"namespaces\": [{\"type\": \"pid\"}], \"timeOffsets\": {\"monotonic\": {\"secs\": 1}}}",
         "config.json linux.timeOffsets: time offsets need a time namespace of the container's own"),
        (["linux"], "{\"namespaces\": [{\"type\": \"time\"}], \"timeOffsets\": {\"realtime\": {\"secs\": 1}}}",
         "config.json linux.timeOffsets.realtime: unknown clock 'realtime'"),
        (["linux"], "{\"namespaces\": [{\"type\": \"time\"}], \"timeOffsets\": {\"boottime\": {\"nanosecs\": 1000000000}}}",
         "config.json linux.timeOffsets.boottime.nanosecs: 1000000000 is out of range"),
        (["linux", "personality"], "{\"domain\": \"LINUX64\"}", "config.json linux.personality.domain: 'LINUX64' is not LINUX or LINUX32"),
        // host names
        (["hostname"], "\"box\"", "config.json hostname: 'box' needs a uts namespace"),
        (["domainname"], "\"example.org\"", "config.json domainname: 'example.org' needs a uts namespace"),
        (["hostname"], "\"\(String(repeating: "h", count: 65))\"", "config.json hostname: '\(String(repeating: "h", count: 65))' is longer than 64 bytes"),
        // root
        (["root", "path"], "\"missing-root\"", "config.json root.path: the bundle is missing its root"),
        (["root", "path"], "\"config.json\"", "config.json root.path: the bundle's root"),
        (["root"], "null", "config.json root: missing (it is required)"),
        (["root", "path"], "\"\"", "config.json root.path: empty"),
    ])
    func refused(_ path: [String], _ value: String, _ message: String) throws {
        let json = setting(try JSON.parse(Self.minimal), path, try JSON.parse(value))
        let dir = try makeBundle(json)
        let e = try #require(throws: SwvmError.self) { try OCIConfig.load(bundle: dir, id: "c") }
        #expect(e.message.hasPrefix(message), "\(e.message)")
    }

    @Test func notAnObject() throws {
        #expect(try parseError(try JSON.parse("[]")) == "config.json: expected a JSON object, found an array")
        #expect(try parseError(try JSON.parse(#"{"ociVersion": "1.0.0", "process": 3}"#)).hasPrefix("config.json process: expected an object"))
    }

    @Test func deepNestingIsRefused() throws {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        let dir = try makeBundle()
        try FS.writeText(Path.join(dir, "config.json"), #"{"ociVersion": "1.0.0", "annotations": {"a": "# + deep + "}}")
        let e = try #require(throws: SwvmError.self) { try OCIConfig.load(bundle: dir, id: "c") }
        #expect(e.message.hasPrefix("config.json: invalid JSON: nesting deeper than 128"), "\(e.message)")
    }

    /// A file past the bound is refused by its size, before it is read.
    @Test func hugeFileIsRefused() throws {
        let dir = try makeBundle()
        let path = Path.join(dir, "config.json")
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        #expect(fd >= 0)
        #expect(ftruncate(fd, off_t(OCIConfig.maxConfigSize) + 1) == 0)
        close(fd)
        let e = try #require(throws: SwvmError.self) { try OCIConfig.load(bundle: dir, id: "c") }
        #expect(e.message.contains("larger than swvm's bound of 16777216 bytes"), "\(e.message)")
    }

    @Test func configThatIsNotARegularFileIsRefused() throws {
        let dir = try makeBundle()
        try FS.makeDirectories(Path.join(dir, "config.json"))
        #expect(throws: SwvmError.self) { try OCIConfig.load(bundle: dir, id: "c") }
    }

    /// A FIFO named as a namespace is refused, not opened (open(2) would block).
    @Test func fifoAsNamespaceDoesNotHang() throws {
        let dir = try makeBundle()
        let fifo = Path.join(dir, "fifo")
        #expect(mkfifo(fifo, 0o600) == 0)
        let json = setting(try JSON.parse(Self.minimal), ["linux", "namespaces"], .array([.object([("type", "network"), ("path", .string(fifo))])]))
        let e = try #require(throws: SwvmError.self) { try OCIConfig.parse(json, bundle: dir, id: "c") }
        #expect(e.message == "config.json linux.namespaces[0].path: \(fifo) is not a namespace")
    }

    @Test func processJSONNeedsArgsAndCwd() throws {
        let p = try OCIConfig.parseProcess(try JSON.parse(#"{"args": ["ps"], "cwd": "/", "user": {"uid": 5, "gid": 6}, "terminal": true}"#))
        #expect(p.args == ["ps"] && p.uid == 5 && p.terminal)
        let e = try #require(throws: SwvmError.self) { try OCIConfig.parseProcess(try JSON.parse(#"{"args": ["ps"]}"#)) }
        #expect(e.message == "process.json cwd: missing (it is required, an absolute path)")
        let u = try #require(throws: SwvmError.self) {
            try OCIConfig.parseProcess(try JSON.parse(#"{"args": ["ps"], "cwd": "/", "user": {"uid": -1}}"#))
        }
        #expect(u.message.hasPrefix("process.json user.uid: uid -1 is out of range"))
    }

    @Test func execProcessReplacesTheContainersProcess() throws {
        let dir = try makeBundle()
        var spec = try OCIConfig.parse(try JSON.parse(fullConfig), bundle: dir, id: "c")
        let p = try OCIConfig.parseProcess(try JSON.parse(#"{"args": ["ps"], "cwd": "/tmp", "capabilities": {"bounding": ["CAP_KILL"]}}"#))
        OCIConfig.applyProcess(p, to: &spec)
        #expect(spec.process.args == ["ps"] && spec.process.cwd == "/tmp" && spec.process.uid == 0)
        #expect(spec.capabilities == ["KILL"] && !spec.noNewPrivileges && !spec.terminal)
        #expect(spec.oci?.oomScoreAdj == -500 && spec.oci?.capabilities.bounding == 1 << 5)
        #expect(spec.seccomp != nil && spec.oci?.namespaces.count == 7)
    }
}

/// The config.json that runc and crun write (`runc spec`, `crun spec`) and
/// swvm's own (`swvm spec`, OCIConfig.defaultConfig), which is runc's.
@Suite struct OCISpecToolsTests {
    func written(by command: String) throws -> (dir: String, json: JSON) {
        let dir = try makeBundle()
        let r = try Subprocess.run(["/bin/sh", "-c", "cd '\(dir)' && \(command)"])
        #expect(r.status == 0, "\(command): \(r.output)")
        return (dir, try OCIConfig.readConfig(bundle: dir))
    }

    @Test(arguments: ["runc spec", "crun spec"])
    func peersSpecParses(_ command: String) throws {
        let (dir, json) = try written(by: command)
        let s = try OCIConfig.parse(json, bundle: dir, id: "c")
        let oci = try #require(s.oci)
        #expect(s.process.args == ["sh"] && s.terminal && s.readOnlyRoot && s.noNewPrivileges)
        #expect(s.capabilities == ["AUDIT_WRITE", "KILL", "NET_BIND_SERVICE"] && oci.capabilities.ambient == oci.capabilities.bounding)
        #expect(s.process.rlimits == [Rlimit(resource: 7, name: "nofile", soft: 1024, hard: 1024)])
        #expect(oci.mounts.map(\.destination) == ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"])
        #expect(oci.namespaces.map(\.type) == ["pid", "network", "ipc", "uts", "mount"])
        #expect(oci.resources.devices == [OCIDeviceRule(allow: false, access: "rwm")])
        #expect(s.maskedPaths.contains("/proc/kcore") && s.readonlyPaths.contains("/proc/sys"))
        #expect(s.seccomp == nil)
    }

    @Test func rootlessSpecParses() throws {
        let (dir, json) = try written(by: "runc spec --rootless")
        let s = try OCIConfig.parse(json, bundle: dir, id: "c")
        #expect(s.oci?.namespaces.map(\.type) == ["pid", "ipc", "uts", "mount", "user"])
        #expect(s.oci?.uidMappings == [OCIIDMapping(containerID: 0, hostID: geteuid(), size: 1)])
        #expect(s.network == .host)
    }

    /// swvm's default config is runc's, but for the version and hostname.
    @Test(arguments: [false, true])
    func defaultConfigIsRuncs(_ rootless: Bool) throws {
        let (dir, runc) = try written(by: rootless ? "runc spec --rootless" : "runc spec")
        var ours = OCIConfig.defaultConfig(rootless: rootless)
        #expect(ours["ociVersion"]?.string == OCIConfig.specVersion && ours["hostname"]?.string == "swvm")
        ours = setting(setting(ours, ["ociVersion"], runc["ociVersion"]), ["hostname"], runc["hostname"])
        #expect(ours == runc, "\(ours.serialized(pretty: true))")
        _ = try OCIConfig.parse(OCIConfig.defaultConfig(rootless: rootless), bundle: dir, id: "c")
    }
}

/// The podman-style configs of the fuzzing corpus: as podman 4 writes them
/// for `podman run` (its network namespace joined by path, or its own).
@Suite struct OCIPodmanConfigTests {
    static let corpus = Path.join(Path.dirname(Path.dirname(Path.dirname(#filePath))), "fuzz/corpus/FuzzOCIConfig")

    @Test func podmanConfigParses() throws {
        let json = try JSON.parse(try FS.readFile(Path.join(Self.corpus, "podman-run-own-netns.json")))
        let s = try OCIConfig.parse(json, bundle: try makeBundle(), id: "c")
        #expect(s.process.additionalGids.count == 11 && s.oci?.umask == 0o22 && s.capabilities.count == 11)
        #expect(s.oci?.mounts.count == 12 && s.oci?.mounts[11].destination == "/sys/fs/cgroup")
        #expect(s.oci?.sysctl == [OCISysctl(key: "net.ipv4.ping_group_range", value: "0 0")])
        #expect(s.resources.memory == 64 << 20 && s.resources.pids == 2048 && s.oci?.resources.memory.swap == 128 << 20)
        #expect(s.seccomp?.defaultAction == .errno(38) && s.seccomp?.architectures.count == 3)
        #expect(s.oci?.annotations.first == OCIAnnotation(key: "io.container.manager", value: "libpod"))
        let process = try OCIConfig.parseProcess(try JSON.parse(try FS.readFile(Path.join(Self.corpus, "podman-exec-process.json"))))
        #expect(process.args == ["ps", "-ef"])
    }

    /// Its network namespace is not there: the error names the path.
    @Test func missingNetworkNamespaceIsNamed() throws {
        let json = try JSON.parse(try FS.readFile(Path.join(Self.corpus, "podman-run.json")))
        let e = try #require(throws: SwvmError.self) { try OCIConfig.parse(json, bundle: try makeBundle(), id: "c") }
        #expect(e.message.hasPrefix("config.json linux.namespaces[1].path: /run/netns/netns-5e1f2a3b-4c5d-6e7f-8a9b-0c1d2e3f4a5b: No such file"), "\(e.message)")
    }
}
