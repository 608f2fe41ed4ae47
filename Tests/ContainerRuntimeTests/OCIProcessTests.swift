#if canImport(Glibc)
import Glibc
#endif
import CConfinement
import Cgroups
import RuntimeSpec
import Testing
@testable import ContainerRuntime
@testable import SwvmBase

/// OCI mode end to end, in real namespaces: a RunSpec with `oci` set, as
/// the config.json parser makes it, created (the init waits on the exec
/// FIFO), started by opening the FIFO as `swvm start` does, and exec'd into.
@Suite(.serialized) struct OCIProcessTests {
    /// A root made of the host's static busybox.
    final class Bundle {
        let dir: String
        var root: String { dir + "/rootfs" }
        var fifo: String { dir + "/exec.fifo" }

        init() throws {
            var template = Array("/tmp/swvm-oci-test-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { throw SwvmError.errno("mkdtemp") }
            dir = String(cString: made)
            chmod(dir, 0o755)   // reachable by a container's mapped root
            for d in ["bin", "proc", "sys", "dev", "etc", "tmp"] { try FS.makeDirectories(root + "/" + d) }
            try FS.writeFile(root + "/bin/busybox", try FS.readFile("/bin/busybox"), mode: 0o755)
            for applet in ["sh", "cat", "echo", "hostname", "sleep", "true", "ls", "readlink", "test", "stat", "grep"] {
                symlink("busybox", root + "/bin/" + applet)
            }
            // As runc makes it: writable by the container's user (umask aside).
            #expect(mkfifo(fifo, 0o622) == 0 && chmod(fifo, 0o622) == 0)
        }

        deinit { try? FS.removeTree(dir) }
    }

    static let caps: UInt64 = [0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31].reduce(0) { $0 | 1 << $1 }

    func spec(_ bundle: Bundle, _ args: [String], hostname: String = "") -> RunSpec {
        let process = ProcessSpec(args: args, env: ["PATH=/bin"], cwd: "/", uid: 0, gid: 0, additionalGids: [], user: "0")
        var s = RunSpec(id: "ocitest-\(getpid())", rootfs: bundle.root, process: process, hostname: hostname, capabilities: [])
        var o = OCISettings(rootPath: bundle.root)
        o.mounts = [
            OCIMount(destination: "/proc", type: "proc", source: "proc", options: []),
            OCIMount(destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"]),
            OCIMount(destination: "/dev/pts", type: "devpts", source: "devpts",
                     options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]),
            OCIMount(destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"]),
        ]
        o.namespaces = ["pid", "ipc", "uts", "mount", "network"].map { OCINamespace(type: $0) }
        o.capabilities.bounding = Self.caps
        o.capabilities.effective = Self.caps
        o.capabilities.permitted = Self.caps
        o.cgroupsPath = "/swvm-ocitest-\(getpid())"
        s.oci = o
        return s
    }

    /// A created container: its init, its output pipe, its cgroup.
    final class Created {
        let created: OCICreated
        let output: FileDescriptor
        let fifo: String

        init(_ spec: RunSpec, _ bundle: Bundle) throws {
            let out = try makePipe()
            created = try OCIProcess.create(spec, io: OCICreateIO(stdout: out.write.raw, stderr: out.write.raw, execFIFO: bundle.fifo),
                                            stateDir: bundle.dir)
            out.write.close()
            output = out.read
            fifo = bundle.fifo
        }

        /// `swvm start`: open the FIFO, read its byte.
        func start() throws {
            let fd = try FileDescriptor.open(fifo, O_RDONLY)
            #expect(try fd.read(upTo: 1) == [UInt8(ascii: "0")])
        }

        /// Starts it and returns its output and exit status.
        func run() throws -> (String, Int32) {
            try start()
            let text = String(decoding: try output.readAll(limit: 1 << 20), as: UTF8.self)
            return (text, waitForExit(created.pid).status)
        }

        deinit {
            kill(created.pid, SIGKILL)
            _ = waitForExit(created.pid, options: WNOHANG)
            CgroupDirectories(created.cgroupPaths).destroy()
        }
    }

    @Test func mountsAreAppliedInOrder() throws {
        let bundle = try Bundle()
        let data = bundle.dir + "/data"
        try FS.makeDirectories(data)
        var s = spec(bundle, ["/bin/cat", "/proc/self/mountinfo"])
        s.oci!.mounts += [
            OCIMount(destination: "/a", type: "tmpfs", source: "tmpfs", options: ["size=1m"]),
            OCIMount(destination: "/a/b", type: "tmpfs", source: "tmpfs", options: ["size=1m", "noexec"]),
            OCIMount(destination: "/data", type: "bind", source: data, options: ["rbind", "ro", "nosuid"]),
        ]
        let (out, status) = try Created(s, bundle).run()
        #expect(status == 0, "\(out)")
        let lines = out.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        let points = lines.map { $0.count > 5 ? $0[4] : "" }
        let a = points.firstIndex(of: "/a"), b = points.firstIndex(of: "/a/b"), d = points.firstIndex(of: "/data")
        #expect(a != nil && b != nil && a! < b!, "\(out)")
        #expect(d.map { lines[$0][5].split(separator: ",").contains("ro") && lines[$0][5].contains("nosuid") } == true, "\(out)")
        #expect(b.map { lines[$0][5].contains("noexec") } == true)
    }

    @Test func aSymlinkedDestinationStaysInsideTheRoot() throws {
        let bundle = try Bundle()
        let outside = "/tmp/swvm-oci-escape-\(getpid())"
        symlink(outside, bundle.root + "/escape")
        defer { rmdir(outside) }
        var s = spec(bundle, ["/bin/cat", "/proc/self/mountinfo"])
        s.oci!.mounts.append(OCIMount(destination: "/escape", type: "tmpfs", source: "tmpfs", options: ["size=1m"]))
        let (out, status) = try Created(s, bundle).run()
        #expect(status == 0, "\(out)")
        // Mounted on the root's own tmp/..., which the container sees there.
        #expect(out.contains(" \(outside) "), "\(out)")
        #expect(FS.isDirectory(bundle.root + outside))
        #expect(!FS.exists(outside))
    }

    @Test func sysctlsAreWrittenAndANetSysctlWithTheHostNetworkIsRefused() throws {
        let bundle = try Bundle()
        var s = spec(bundle, ["/bin/cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/shmmni"])
        s.oci!.sysctl = [OCISysctl(key: "net.ipv4.ip_forward", value: "1"), OCISysctl(key: "kernel.shmmni", value: "1234")]
        let (out, status) = try Created(s, bundle).run()
        #expect(status == 0 && out == "1\n1234\n", "\(out)")

        s.oci!.namespaces.removeAll { $0.type == "network" }
        #expect { _ = try Created(s, bundle) } throws: { e in
            (e as? SwvmError).map { $0.code == .invalidArgument && $0.message.contains("host's network namespace") } ?? false
        }
    }

    @Test func aDeviceNodeIsMade() throws {
        let bundle = try Bundle()
        var s = spec(bundle, ["/bin/stat", "-c", "%F %t:%T %a %n", "/dev/mine", "/dev/null", "/dev/ptmx"])
        s.oci!.devices = [OCIDevice(path: "/dev/mine", type: "c", major: 1, minor: 7, fileMode: 0o600)]
        let (out, status) = try Created(s, bundle).run()
        #expect(status == 0, "\(out)")
        #expect(out.contains("character special file 1:7 600 /dev/mine"), "\(out)")
        #expect(out.contains("character special file 1:3 666 /dev/null"), "\(out)")
        #expect(out.contains("symbolic link"), "\(out)")
    }

    @Test func aNetworkNamespaceIsJoinedByPath() throws {
        let bundle = try Bundle()
        let name = "swvm-oci-\(getpid())"
        #expect(system("ip netns add \(name)") == 0)
        defer { _ = system("ip netns delete \(name)") }
        let path = "/run/netns/\(name)"
        var s = spec(bundle, ["/bin/readlink", "/proc/self/ns/net"])
        s.oci!.namespaces = s.oci!.namespaces.map { $0.type == "network" ? OCINamespace(type: "network", path: path) : $0 }
        let (out, status) = try Created(s, bundle).run()
        #expect(status == 0, "\(out)")
        #expect(out == "net:[\(FS.stat(path)!.st_ino)]\n", "\(out)")

        s.oci!.namespaces = s.oci!.namespaces.map { $0.type == "network" ? OCINamespace(type: "network", path: "/etc/hostname") : $0 }
        #expect { _ = try Created(s, bundle) } throws: { e in
            (e as? SwvmError)?.message.contains("/etc/hostname is not a namespace") ?? false
        }
    }

    @Test func theInitDoesNotExecUntilTheFIFOIsOpened() throws {
        let bundle = try Bundle()
        let c = try Created(spec(bundle, ["/bin/sleep", "30"]), bundle)
        let pid = c.created.pid
        usleep(200_000)
        #expect(FS.readLink("/proc/\(pid)/exe") == FS.readLink("/proc/self/exe"))
        #expect(c.created.startTime == (try OCIProcess.startTime(of: pid)))
        try c.start()
        var exe: String?
        // Seen from here as the container's mount namespace names it.
        for _ in 0..<100 where exe != "/bin/busybox" {
            usleep(10_000)
            exe = FS.readLink("/proc/\(pid)/exe")
        }
        #expect(exe == "/bin/busybox")
        let cmdline = (try? FS.readText("/proc/\(pid)/cmdline")) ?? ""
        #expect(cmdline == "/bin/sleep\0" + "30\0")
    }

    @Test func execSharesThePidNamespaceAndHostnameAndHasItsOwnStatus() throws {
        let bundle = try Bundle()
        let s = spec(bundle, ["/bin/sleep", "30"], hostname: "ocibox")
        let c = try Created(s, bundle)
        try c.start()
        func exec(_ args: [String]) throws -> (String, Int32) {
            var p = s
            p.process.args = args
            let out = try makePipe()
            let status = try OCIProcess.exec(into: c.created.pid, cgroupPaths: c.created.cgroupPaths, process: p,
                                             io: OCICreateIO(stdout: out.write.raw), detach: false, pidFile: nil)
            out.write.close()
            return (String(decoding: try out.read.readAll(limit: 1 << 20), as: UTF8.self), status)
        }
        let (out, status) = try exec(["/bin/sh", "-c", "hostname; cat /proc/1/cmdline; echo; readlink /proc/self/ns/pid; exit 7"])
        #expect(status == 7)
        let pidNS = FS.readLink("/proc/\(c.created.pid)/ns/pid") ?? "?"
        #expect(out == "ocibox\n/bin/sleep\u{0}30\u{0}\n\(pidNS)\n", "\(out)")
        #expect { _ = try exec(["/no/such/binary"]) } throws: { e in
            guard let e = e as? SwvmError else { return false }
            return e.code == .commandNotFound && swvm_error_exit_status(e.childCode.rawValue) == 127
        }
    }

    @Test func theTerminalGoesToTheConsoleSocket() throws {
        let bundle = try Bundle()
        var s = spec(bundle, ["/bin/sh", "-c", "test -t 0 && test -t 1 && echo on-a-tty"])
        s.terminal = true
        s.oci!.consoleRows = 30
        s.oci!.consoleCols = 100
        var sv: [Int32] = [-1, -1]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &sv) == 0)
        defer { close(sv[0]); close(sv[1]) }
        let out = try makePipe()
        let created = try OCIProcess.create(s, io: OCICreateIO(stdout: out.write.raw, consoleSocket: sv[0], execFIFO: bundle.fifo),
                                            stateDir: bundle.dir)
        defer { CgroupDirectories(created.cgroupPaths).destroy() }
        let master = swvm_recv_fd(sv[1])
        #expect(master >= 0)
        var ws = winsize()
        #expect(ioctl(master, UInt(TIOCGWINSZ), &ws) == 0 && ws.ws_row == 30 && ws.ws_col == 100)
        let fifo = try FileDescriptor.open(bundle.fifo, O_RDONLY)
        _ = try fifo.read(upTo: 1)
        var text = ""
        var buf = [UInt8](repeating: 0, count: 256)
        while case let n = read(master, &buf, buf.count), n > 0 { text += String(decoding: buf[0..<n], as: UTF8.self) }
        close(master)
        #expect(waitForExit(created.pid).status == 0)
        #expect(text.contains("on-a-tty"), "\(text)")
    }

    @Test func aFailedCreateLeavesNoProcessOrCgroup() throws {
        let bundle = try Bundle()
        let s = spec(bundle, ["no-such-command"])
        #expect { _ = try Created(s, bundle) } throws: { e in
            guard let e = e as? SwvmError else { return false }
            return e.code == .commandNotFound && e.message.contains("executable file not found")
        }
        #expect(!FS.exists("/sys/fs/cgroup/memory/swvm-ocitest-\(getpid())"))
        let children = (try? FS.readText("/proc/self/task/\(getpid())/children")) ?? ""
        #expect(children.isEmpty, "\(children)")
    }

    @Test func aUserNamespaceWithItsMaps() throws {
        let bundle = try Bundle()
        var s = spec(bundle, ["/bin/sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; stat -c %F /dev/null"])
        s.oci!.namespaces.append(OCINamespace(type: "user"))
        s.oci!.uidMappings = [OCIIDMapping(containerID: 0, hostID: 100_000, size: 65536)]
        s.oci!.gidMappings = [OCIIDMapping(containerID: 0, hostID: 100_000, size: 65536)]
        chown(bundle.fifo, 100_000, 100_000)   // runc chowns it to the container's root
        let (out, status) = try Created(s, bundle).run()
        #expect(status == 0, "\(out)")
        let words = out.split(whereSeparator: { $0 == " " || $0 == "\n" })
        #expect(words == ["0", "100000", "65536", "0", "100000", "65536", "character", "special", "file"], "\(out)")
    }

    @Test func theCgroupMountShowsTheContainersOwnCgroup() throws {
        let bundle = try Bundle()
        var s = spec(bundle, ["/bin/cat", "/sys/fs/cgroup/pids/pids.max"])
        s.resources.pids = 77
        s.oci!.mounts.append(OCIMount(destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup", options: ["nosuid"]))
        let (out, status) = try Created(s, bundle).run()
        #expect(status == 0 && out == "77\n", "\(out)")
    }

    @Test func pauseResumeUpdateAndListThroughTheCgroupDirectories() throws {
        let bundle = try Bundle()
        let c = try Created(spec(bundle, ["/bin/sleep", "30"]), bundle)
        try c.start()
        let cg = CgroupDirectories(c.created.cgroupPaths)
        #expect(cg.pids() == [c.created.pid])
        try cg.freeze()
        #expect(cg.isFrozen)
        try cg.thaw()
        #expect(!cg.isFrozen)
        var limits = ResourceLimits()
        limits.pids = 42
        limits.memory = 64 << 20
        try cg.update(limits)
        let pidsDir = c.created.cgroupPaths.first { $0.contains("/pids/") }!
        #expect(Cgroups.read(pidsDir + "/pids.max") == "42")
    }
}
