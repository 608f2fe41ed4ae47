#if canImport(Glibc)
import Glibc
#endif
import Testing
import ArgumentParser
@testable import CommandLineOptions
@testable import OCIImage
@testable import RuntimeSpec
@testable import Seccomp
@testable import SwvmBase

@Suite struct SpecBuilderTests {
    func image(entrypoint: [String] = [], cmd: [String] = ["sh"], env: [String] = ["PATH=/bin", "A=1"],
               workdir: String = "/srv", user: String = "") throws -> ResolvedImage {
        var c = ImageConfig()
        c.entrypoint = entrypoint
        c.cmd = cmd
        c.env = env
        c.workingDir = workdir
        c.user = user
        // Inside the build directory (git-ignored), so tests leave no /tmp debris.
        let root = Path.join(FS.executableDirectory(), "test-fixtures/spec-\(randomHex(4))")
        try FS.makeDirectories(root + "/etc")
        try FS.writeText(root + "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
        try FS.writeText(root + "/etc/group", "root:x:0:\napp:x:1000:\nvideo:x:44:app\n")
        return ResolvedImage(kind: .rootfs, rootfs: root, config: c, bundleConfig: nil, cacheKey: "k", name: "test")
    }

    @Test func commandReplacesCmdAndKeepsEntrypoint() throws {
        let img = try image(entrypoint: ["/entry"], cmd: ["default"])
        var o = try RunOptions.parse([])
        #expect(try SpecBuilder.build(image: img, options: o).process.args == ["/entry", "default"])
        #expect(try SpecBuilder.build(image: img, command: ["x", "y"], options: o).process.args == ["/entry", "x", "y"])
        o = try RunOptions.parse(["--entrypoint", "/other"])
        #expect(try SpecBuilder.build(image: img, command: ["x", "y"], options: o).process.args == ["/other", "x", "y"])
        // --entrypoint drops the image's Cmd, as Docker does.
        #expect(try SpecBuilder.build(image: img, options: o).process.args == ["/other"])
    }

    @Test func noCommandIsAnError() throws {
        let img = try image(cmd: [])
        #expect(throws: SwvmError.self) { try SpecBuilder.build(image: img, options: try RunOptions.parse([])) }
    }

    @Test func environmentPrecedence() throws {
        let envFile = Path.join(FS.executableDirectory(), "test-fixtures/envfile-\(randomHex(4))")
        try FS.makeDirectories(Path.dirname(envFile))
        defer { unlink(envFile) }
        try FS.writeText(envFile, "# comment\nFROMFILE=f\nA=fromfile\n\nHOSTVAR\n")
        var o = try RunOptions.parse([])
        o.envFile = [envFile]
        o.env = ["A=cli", "B=2", "HOSTONLY", "UNSET_ON_HOST"]
        o.hostname = "box"
        let host = ["HOSTVAR": "hv", "HOSTONLY": "ho"]
        let spec = try SpecBuilder.build(image: try image(), options: o, hostEnvironment: { host[$0] })
        let env = spec.process.env
        #expect(spec.process.environment("A") == "cli")
        #expect(spec.process.environment("B") == "2")
        #expect(spec.process.environment("FROMFILE") == "f")
        #expect(spec.process.environment("HOSTVAR") == "hv")
        #expect(spec.process.environment("HOSTONLY") == "ho")
        #expect(!env.contains { $0.hasPrefix("UNSET_ON_HOST") })
        #expect(spec.process.environment("HOSTNAME") == "box")
        #expect(spec.process.environment("HOME") == "/root")
        #expect(spec.process.environment("PATH") == "/bin")
        #expect(env.filter { $0.hasPrefix("A=") }.count == 1)
    }

    @Test func defaultsWhenTheImageSaysNothing() throws {
        let spec = try SpecBuilder.build(image: try image(env: [], workdir: ""), options: try RunOptions.parse([]))
        #expect(spec.process.cwd == "/")
        #expect(spec.process.environment("PATH") == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        #expect(spec.hostname.count == 12)
        #expect(spec.capabilities == Capabilities.dockerDefault)
        #expect(spec.noNewPrivileges)
        #expect(spec.seccomp != nil)
        #expect(spec.network == .none)
    }

    @Test func usersResolveAgainstTheImage() throws {
        var o = try RunOptions.parse([])
        o.user = "app"
        let s = try SpecBuilder.build(image: try image(), options: o)
        #expect(s.process.uid == 1000 && s.process.gid == 1000)
        #expect(s.process.additionalGids == [44])
        #expect(s.process.environment("HOME") == "/home/app")
        o.user = "1000:video"
        let s2 = try SpecBuilder.build(image: try image(), options: o)
        #expect(s2.process.gid == 44)
        o.user = "4242:4343"
        let s3 = try SpecBuilder.build(image: try image(), options: o)
        #expect(s3.process.uid == 4242 && s3.process.gid == 4343)
        o.user = "ghost"
        do {
            _ = try SpecBuilder.build(image: try image(), options: o)
            Issue.record("an unknown user was accepted")
        } catch let e as SwvmError {
            #expect(e.code == .unknownUser)
            #expect(e.message.contains("ghost"))
        }
    }

    /// (uid_t)-1 and numbers too large for a uid_t are refused wherever
    /// they come from, naming the source (issue 23: setresuid(-1) keeps root).
    @Test(arguments: [
        ("-u", "4294967295", "", "-u '4294967295': uid 4294967295 is (uid_t)-1"),
        ("-u", "4294967295:4294967295", "", "-u '4294967295:4294967295': uid 4294967295 is (uid_t)-1"),
        ("-u", "0:4294967295", "", "-u '0:4294967295': gid 4294967295 is (gid_t)-1"),
        ("-u", "4294967296", "", "-u '4294967296': uid 4294967296 is out of range"),
        ("-u", "1:99999999999999999999999", "", "-u '1:99999999999999999999999': gid 99999999999999999999999 is out of range"),
        ("image", "4294967295", "", "the image's User '4294967295': uid 4294967295 is (uid_t)-1"),
        ("-u", "evil", "evil:x:4294967295:0::/:/bin/sh\n", "the image's /etc/passwd, user 'evil': uid 4294967295 is (uid_t)-1"),
        ("-u", "evil", "evil:x:5:4294967295::/:/bin/sh\n", "the image's /etc/passwd, user 'evil': gid 4294967295 is (gid_t)-1"),
        ("-u", "big", "big:x:4294967296:0::/:/bin/sh\n", "the image's /etc/passwd, user 'big': uid 4294967296 is out of range"),
        // By number: the entry with that uid would have given the gid.
        ("-u", "5", "evil:x:5:4294967295::/:/bin/sh\n", "the image's /etc/passwd, user 'evil': gid 4294967295 is (gid_t)-1"),
        ("-u", "0:evil", "", "the image's /etc/group, group 'evil': gid 4294967295 is (gid_t)-1"),
        // A supplementary group.
        ("-u", "app", "", "the image's /etc/group, group 'evil': gid 4294967295 is (gid_t)-1"),
    ])
    func unusableIdsAreRefused(_ from: String, _ user: String, _ passwd: String, _ message: String) throws {
        let img = try image(user: from == "image" ? user : "")
        try FS.writeText(img.rootfs + "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n" + passwd)
        try FS.writeText(img.rootfs + "/etc/group", "root:x:0:\napp:x:1000:\nevil:x:4294967295:app\n")
        var o = try RunOptions.parse([])
        if from == "-u" { o.user = user }
        do {
            let s = try SpecBuilder.build(image: img, options: o)
            Issue.record("accepted: uid \(s.process.uid) gid \(s.process.gid) groups \(s.process.additionalGids)")
        } catch let e as SwvmError {
            #expect(e.exitStatus == 125)
            #expect(e.message.hasPrefix(message), "\(e.message)")
        }
    }

    /// A bundle's ids are whole numbers in range, never truncated
    /// (4294967296 used to become uid 0).
    @Test(arguments: [
        (#"{"uid": 4294967296, "gid": 0}"#, "config.json process.user.uid: uid 4294967296 is out of range"),
        (#"{"uid": 4294967295, "gid": 0}"#, "config.json process.user.uid: uid 4294967295 is (uid_t)-1"),
        (#"{"uid": -1, "gid": 0}"#, "config.json process.user.uid: uid -1 is out of range"),
        (#"{"uid": 1, "gid": 4294967295}"#, "config.json process.user.gid: gid 4294967295 is (gid_t)-1"),
        (#"{"uid": 1, "gid": 1, "additionalGids": [3, 4294967295]}"#, "config.json process.user.additionalGids[1]: gid 4294967295 is (gid_t)-1"),
        (#"{"uid": 1.5, "gid": 1}"#, "config.json process.user.uid: uid 1.5 is not a whole number"),
    ])
    func bundleIdsAreRangeChecked(_ user: String, _ message: String) throws {
        let img = try image()
        let bundled = ResolvedImage(kind: .bundle, rootfs: img.rootfs, config: img.config,
                                    bundleConfig: try JSON.parse(#"{"process": {"args": ["id"], "user": "# + user + "}}"),
                                    cacheKey: "k", name: "test")
        #expect { try SpecBuilder.build(image: bundled, options: try RunOptions.parse([])) } throws: { e in
            (e as? SwvmError).map { $0.code == .invalidImage && $0.message.hasPrefix(message) } ?? false
        }
        let ok = ResolvedImage(kind: .bundle, rootfs: img.rootfs, config: img.config,
                               bundleConfig: try JSON.parse(#"{"process": {"args": ["id"], "user": {"uid": 4294967294, "gid": 7, "additionalGids": [8]}}}"#),
                               cacheKey: "k", name: "test")
        let s = try SpecBuilder.build(image: ok, options: try RunOptions.parse([]))
        #expect(s.process.uid == 4_294_967_294 && s.process.gid == 7 && s.process.additionalGids == [8])
    }

    /// `swvm run BUNDLE` reads config.json with OCIConfig's parser: what it
    /// used to skip without a word (an argument that is not a string, a
    /// relative mount destination, a rlimit of an unknown type) is an error
    /// naming its JSON path.
    @Test(arguments: [
        (#"{"process": {"args": ["id", 5]}}"#, "config.json process.args[1]: expected a string, found a number"),
        (#"{"process": {"args": ["id"]}, "mounts": [{"destination": "data", "type": "bind", "source": "/tmp"}]}"#,
         "config.json mounts[0].destination: 'data' is not an absolute path"),
        (#"{"process": {"args": ["id"], "rlimits": [{"type": "RLIMIT_NOPE", "soft": 1, "hard": 1}]}}"#,
         "config.json process.rlimits[0].type: unknown rlimit 'RLIMIT_NOPE'"),
        (#"{"process": {"args": ["id"], "capabilities": {"bounding": ["CAP_CHOWN", "CAP_TYPO"]}}}"#,
         "config.json process.capabilities.bounding[1]: unknown capability 'CAP_TYPO'"),
    ])
    func bundleFieldsAreCheckedNotSkipped(_ config: String, _ message: String) throws {
        let img = try image()
        let bundled = ResolvedImage(kind: .bundle, rootfs: img.rootfs, config: img.config, bundleConfig: try JSON.parse(config),
                                    cacheKey: "k", name: "test")
        #expect { try SpecBuilder.build(image: bundled, options: try RunOptions.parse([])) } throws: { e in
            (e as? SwvmError).map { $0.message == message } ?? false
        }
    }

    @Test func relativeWorkdirIsRejected() throws {
        var o = try RunOptions.parse([])
        o.workdir = "relative"
        #expect(throws: SwvmError.self) { try SpecBuilder.build(image: try image(), options: o) }
    }

    @Test func limitsAndMounts() throws {
        let o = try RunOptions.parse(["--memory", "64m", "--cpus", "1.5", "--pids-limit", "100", "--tmpfs", "/run:size=1m,exec",
                                      "-v", "/tmp:/host-tmp:ro", "--ulimit", "nofile=1024:2048"])
        let s = try SpecBuilder.build(image: try image(), options: o)
        #expect(s.resources.memory == 64 << 20)
        #expect(s.resources.cpuQuota == 150_000)
        #expect(s.resources.pids == 100)
        #expect(s.mounts.contains(MountSpec(kind: .bind(source: "/tmp"), destination: "/host-tmp", readOnly: true)))
        let tmpfs = try #require(s.mounts.first { $0.kind == .tmpfs })
        #expect(tmpfs.options.contains("size=1m"))
        #expect(!tmpfs.options.contains("noexec"))
        #expect(s.process.rlimits == [Rlimit(resource: 7, name: "nofile", soft: 1024, hard: 2048)])
    }

    @Test func mountIsTheLongFormOfVolumeAndTmpfs() throws {
        var o = try RunOptions.parse([])
        o.mount = ["type=bind,source=/tmp,target=/a,readonly", "type=bind,src=/tmp,dst=/b", "type=tmpfs,target=/c,tmpfs-size=1m"]
        let s = try SpecBuilder.build(image: try image(), options: o)
        #expect(s.mounts.contains(MountSpec(kind: .bind(source: "/tmp"), destination: "/a", readOnly: true)))
        #expect(s.mounts.contains(MountSpec(kind: .bind(source: "/tmp"), destination: "/b", readOnly: false)))
        let tmpfs = try #require(s.mounts.first { $0.kind == .tmpfs })
        #expect(tmpfs.destination == "/c" && tmpfs.options.contains("size=1m"))
        for bad in ["type=volume,source=x,target=/x", "type=bind,source=/no/such/dir,target=/x", "type=bind,source=/tmp",
                    "type=bind,source=relative,target=/x", "type=bind,source=/tmp,target=/x,readonly=maybe",
                    "type=bind,source=/tmp,target=/x,bogus=1", "type=tmpfs,source=/tmp,target=/x"] {
            var o = try RunOptions.parse([])
            o.mount = [bad]
            #expect(throws: SwvmError.self, "\(bad)") { try SpecBuilder.build(image: try image(), options: o) }
        }
    }

    @Test(arguments: ["-v", "--memory", "--cpus", "--ulimit", "--security-opt", "--network"])
    func badOptionValuesAreErrors(_ flag: String) throws {
        var o = try RunOptions.parse([])
        switch flag {
        case "-v": o.volume = ["relative:/x"]
        case "--memory": o.size.memory = "lots"
        case "--cpus": o.size.cpus = "-1"
        case "--ulimit": o.ulimit = ["bogus=1"]
        case "--security-opt": o.securityOpt = ["apparmor=x"]
        default: o.network = "macvlan"
        }
        #expect(throws: SwvmError.self) { try SpecBuilder.build(image: try image(), options: o) }
    }

    /// podman's --network ns:PATH: an absolute path; "ns", "namespace"
    /// (the mode's own name) and a relative path are errors.
    @Test func networkNamespaceByPath() throws {
        let spec = try SpecBuilder.build(image: try image(), options: try RunOptions.parse(["--network", "ns:/run/netns/pod"]))
        #expect(spec.network == .namespace && spec.networkNamespace == "/run/netns/pod")
        for bad in ["ns:", "ns:run/netns/pod", "ns", "namespace"] {
            #expect(throws: SwvmError.self, "\(bad)") { try SpecBuilder.build(image: try image(), options: try RunOptions.parse(["--network", bad])) }
        }
        #expect(throws: SwvmError.self) {
            try SpecBuilder.build(image: try image(), options: try RunOptions.parse(["--network", "ns:/run/netns/pod", "-p", "80:80"]))
        }
    }

    @Test func capabilitiesAddDropAll() throws {
        #expect(try Capabilities.apply(base: Capabilities.dockerDefault, add: ["net_admin"], drop: ["CAP_CHOWN"])
                == Capabilities.dockerDefault.union(["NET_ADMIN"]).subtracting(["CHOWN"]))
        #expect(try Capabilities.apply(base: Capabilities.dockerDefault, add: ["KILL"], drop: ["ALL"]) == ["KILL"])
        #expect(throws: SwvmError.self) { try Capabilities.apply(base: [], add: ["NOPE"], drop: []) }
        #expect(Capabilities.mask(["CHOWN", "KILL"]) == (1 << 0) | (1 << 5))
    }

    @Test func rlimitsParse() throws {
        #expect(try Rlimit(docker: "nproc=10") == Rlimit(resource: 6, name: "nproc", soft: 10, hard: 10))
        #expect(try Rlimit(docker: "core=unlimited:-1").hard == UInt64.max)
        #expect(throws: SwvmError.self) { try Rlimit(docker: "nofile=10:5") }
    }

    /// -p, --dns and --add-host, read in CommandLineOptions.
    @Test func publishForms() throws {
        #expect(try PortMapping(parsing: "8080:80") == PortMapping(hostAddress: nil, hostPort: 8080, port: 80, proto: .tcp))
        #expect(try PortMapping(parsing: "127.0.0.1:53:5353/udp") ==
                PortMapping(hostAddress: IPv4Address("127.0.0.1"), hostPort: 53, port: 5353, proto: .udp))
        #expect(try PortMapping(parsing: "0.0.0.0:1:65535/tcp").hostAddress == nil)
        for bad in ["80", "a:80", "8080:", ":80", "0:80", "65536:80", "1.2.3:1:2", "1:2/sctp", "1:2:3:4", "+1:2", "1:2/"] {
            #expect(throws: SwvmError.self, "\(bad)") { try PortMapping(parsing: bad) }
        }
        #expect(try NetworkSettings.parseHost("db:10.0.0.5") == ("db", IPv4Address("10.0.0.5")!))
        #expect(try NetworkSettings.parseDNS("10.88.0.1") == IPv4Address("10.88.0.1"))
        #expect(throws: SwvmError.self) { try NetworkSettings.parseHost("bad name:1.2.3.4") }
        #expect(throws: SwvmError.self) { try NetworkSettings.parseDNS("::1") }
    }
}
