#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase

/// The engines at the VM level: podman and containerd hand their
/// containers to a `swvm-vm` link to the binary under test, or to swvm
/// with the annotation swvm.isolation=vm; the workload must then run in a
/// micro-VM (the guest kernel's release, not the host's) with its exit
/// status passed through, and leave nothing behind (Podman.with,
/// Containerd.with).
@Suite(.serialized, .enabled(if: EngineRuntime.podmanReady && Harness.vmReady && !EngineRuntime.isRunc,
                             "needs podman, conmon, skopeo, netavark, /dev/kvm, the guest kernel and guest-init"))
struct PodmanVMTests {
    static let noNetwork = ["--network", "none"]

    /// A `swvm-vm` link to the binary under test in `dir` (or, named
    /// `name`, another). podman gives its runtime a curated environment:
    /// a test's own SWVM_CACHE (its guest-init) would not reach swvm, so
    /// with one set the "link" is a script that sets it and exec's swvm
    /// under its own name.
    static func vmLink(in dir: String, name: String = "swvm-vm") throws -> String {
        let link = Path.join(dir, name)
        guard !FS.exists(link) else { return link }
        if let cache = FS.environment("SWVM_CACHE"), !cache.isEmpty {
            try FS.writeText(link, "#!/bin/bash\nexport SWVM_CACHE='\(cache)'\nexec -a \"$0\" '\(Harness.swvm)' \"$@\"\n", mode: 0o755)
        } else {
            try sys("symlink \(link)") { symlink(Harness.swvm, link) }
        }
        return link
    }

    /// The release of the guest kernel (its build's config header says it).
    static let guestRelease: String = {
        let config = (try? FS.readText(Path.join(SwvmPaths.cacheRoot, "kernel/current/config"), limit: 1 << 22)) ?? ""
        let header = config.split(separator: "\n").first { $0.hasPrefix("# Linux/") } ?? ""
        return header.split(separator: " ").dropFirst(2).first.map(String.init) ?? "unknown"
    }()

    static var hostRelease: String {
        var u = utsname()
        uname(&u)
        return withUnsafeBytes(of: u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    @Test func runtimeLinkRunsAMicroVM() throws {
        try Podman.with { podman in
            let runtime = ["--runtime", try Self.vmLink(in: podman.dir)]
            let r = try podman(runtime + ["run", "--rm"] + Self.noNetwork + [podman.image, "uname", "-r"], timeout: 300)
            #expect(r.status == 0 && r.out == Self.guestRelease + "\n", "\(r)")
            #expect(Self.guestRelease != Self.hostRelease, "the guest kernel must differ from the host's to tell them apart")
            let three = try podman(runtime + ["run", "--rm"] + Self.noNetwork + [podman.image, "sh", "-c", "echo out; echo err >&2; exit 3"],
                                   timeout: 300)
            #expect(three.status == 3 && three.out == "out\n" && three.err.contains("err\n"), "\(three)")
            let notFound = try podman(runtime + ["run", "--rm"] + Self.noNetwork + [podman.image, "no-such-command"], timeout: 300)
            #expect(notFound.status == 127, "\(notFound)")
        }
    }

    @Test func annotationChoosesTheLevel() throws {
        try Podman.with { podman in
            // swvm as named (the container level) with the annotation: a VM.
            let swvm = ["--runtime", try Self.vmLink(in: podman.dir, name: "swvm")]
            let vm = try podman(swvm + ["run", "--rm"] + Self.noNetwork + ["--annotation", "swvm.isolation=vm", podman.image, "uname", "-r"],
                                timeout: 300)
            #expect(vm.status == 0 && vm.out == Self.guestRelease + "\n", "\(vm)")
            // The link with the annotation =container: a container.
            let runtime = ["--runtime", try Self.vmLink(in: podman.dir)]
            let container = try podman(runtime + ["run", "--rm"] + Self.noNetwork
                                       + ["--annotation", "swvm.isolation=container", podman.image, "uname", "-r"])
            #expect(container.status == 0 && container.out == Self.hostRelease + "\n", "\(container)")
            let bad = try podman(swvm + ["run", "--rm"] + Self.noNetwork + ["--annotation", "swvm.isolation=vmm", podman.image, "true"])
            #expect(bad.status != 0 && bad.err.contains("swvm.isolation"), "the error names the annotation: \(bad)")
        }
    }

    /// The root of a podman container at the VM level is its image layers
    /// as a read-only ext4 disk under the guest's tmpfs upper, not the
    /// overlay over 9p (issue 19): the guest's "/" is an overlay on /lower,
    /// the container layer podman made at create (/etc/mtab) is there,
    /// writes work and stay in the VM (podman diff does not see them; the
    /// annotation swvm.vm-root=9p keeps the 9p root, whose writes it does).
    /// state names the disk; a damaged disk is rebuilt, never used; no
    /// run holds the disk's cache lock afterwards.
    @Test func theRootIsTheImageLayersDisk() throws {
        try Podman.with { podman in
            let runtime = ["--runtime", try Self.vmLink(in: podman.dir)]
            let probe = "awk '$5 == \"/\"' /proc/self/mountinfo; readlink /etc/mtab; echo written > /w; cat /w"
            let r = try podman(runtime + ["run", "--rm"] + Self.noNetwork + [podman.image, "sh", "-c", probe], timeout: 300)
            #expect(r.status == 0 && r.out.contains(" - overlay overlay ") && r.out.contains("lowerdir=/lower,")
                    && r.out.hasSuffix("/proc/mounts\nwritten\n"), "\(r)")

            // Which root, in state; the disk it names.
            let d = try podman(runtime + ["run", "-d", "--name", "rootd"] + Self.noNetwork + [podman.image, "sh", "-c", "echo w > /w; sleep 1000"],
                               timeout: 300)
            #expect(d.status == 0, "\(d)")
            defer { _ = try? podman(["rm", "-f", "-t", "0", "rootd"]) }
            let id = try podman.inspect("rootd", "{{.Id}}")
            let state = try Command.run([EngineRuntime.path, "--root", EngineRuntime.stateRoot, "state", id])
            let root = (try? JSON.parse(state.out)["annotations"]?["swvm.vm-root"]?.string) ?? nil
            #expect(root?.hasPrefix("disk (1 image layers, layers-") == true, "\(state)")
            let disk = Path.join(SwvmPaths.disksDir, root.flatMap { $0.split(separator: " ").first { $0.hasPrefix("layers-") } }
                                 .map { String($0.dropLast()) } ?? "none")
            #expect(FS.isRegularFile(disk), "\(disk)")
            try podman.waitForStatus("rootd", "running")
            usleep(500_000)
            #expect(!(try podman(["diff", "rootd"]).out.contains("/w")), "writes stay in the VM's upper layer")
            #expect(try podman(["rm", "-f", "-t", "0", "rootd"]).status == 0)

            // The 9p root by annotation: its writes reach the container's layer.
            let share = try podman(runtime + ["run", "--name", "root9p", "--annotation", "swvm.vm-root=9p"] + Self.noNetwork
                                   + [podman.image, "sh", "-c", "awk '$5 == \"/\"' /proc/self/mountinfo; echo w > /w"], timeout: 300)
            #expect(share.status == 0 && share.out.contains(" - 9p "), "\(share)")
            #expect(try podman(["diff", "root9p"]).out.contains("/w"))
            #expect(try podman(["rm", "root9p"]).status == 0)

            // A damaged disk is rebuilt before use.
            try Self.overwrite(disk, at: 1024, with: [UInt8](repeating: 0x5a, count: 64))
            let again = try podman(runtime + ["run", "--rm"] + Self.noNetwork + [podman.image, "true"], timeout: 300)
            #expect(again.status == 0, "\(again)")
            #expect(try Self.bytes(of: disk, at: 1024, count: 64) != [UInt8](repeating: 0x5a, count: 64), "the damaged disk was rebuilt")
            // No run holds it now.
            #expect(try CacheItemLock.exclusive(disk) != nil, "a cache lock on \(disk) is still held")
            unlink(disk)
        }
    }

    static func bytes(of path: String, at offset: Int, count: Int) throws -> [UInt8] {
        let fd = try FileDescriptor.open(path, O_RDONLY | O_CLOEXEC)
        var b = [UInt8](repeating: 0, count: count)
        guard pread(fd.raw, &b, count, off_t(offset)) == count else { throw SwvmError.errno("pread \(path)") }
        return b
    }

    static func overwrite(_ path: String, at offset: Int, with bytes: [UInt8]) throws {
        let fd = try FileDescriptor.open(path, O_WRONLY | O_CLOEXEC)
        guard pwrite(fd.raw, bytes, bytes.count, off_t(offset)) == bytes.count else { throw SwvmError.errno("pwrite \(path)") }
    }

    /// A detached VM under podman: exec (status, output, a tty, a missing
    /// binary), pause/unpause (the vCPUs parked: the VMM's cgroup stays
    /// thawed, the guest's counter stops), logs, and stop (TERM, which the
    /// workload traps to exit 0).
    @Test func execPauseLogsAndStopOnAVM() throws {
        try Podman.with { podman in
            let runtime = ["--runtime", try Self.vmLink(in: podman.dir)]
            let workload = "trap 'echo stopping; exit 0' TERM; echo started; i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done"
            let r = try podman(runtime + ["run", "-d", "--name", "vmt"] + Self.noNetwork + [podman.image, "sh", "-c", workload], timeout: 300)
            #expect(r.status == 0, "\(r)")
            defer { _ = try? podman(["rm", "-f", "-t", "0", "vmt"]) }
            _ = try podman.waitForLog("vmt", "started", seconds: 120)

            let exec = try podman(["exec", "vmt", "sh", "-c", "echo exec-ok; uname -r; exit 7"])
            #expect(exec.status == 7 && exec.out == "exec-ok\n" + Self.guestRelease + "\n", "\(exec)")
            let tty = try podman(["exec", "-t", "vmt", "tty"])
            #expect(tty.status == 0 && tty.out.hasPrefix("/dev/pts/"), "\(tty)")
            let missing = try podman(["exec", "vmt", "no-such-command"])
            #expect(missing.status == 127, "\(missing)")

            let pid = try podman.inspect("vmt", "{{.State.Pid}}")
            #expect(try podman(["pause", "vmt"]).status == 0)
            #expect(try podman.inspect("vmt", "{{.State.Status}}") == "paused")
            #expect(try PodmanTests.freezerState(pid: pid) == "THAWED", "the VMM runs on; its vCPUs are parked")
            #expect(try podman(["unpause", "vmt"]).status == 0)
            #expect(try podman.inspect("vmt", "{{.State.Status}}") == "running")
            let a = try podman(["exec", "vmt", "cat", "/tmp/count"]).out
            usleep(600_000)
            let b = try podman(["exec", "vmt", "cat", "/tmp/count"]).out
            #expect(Int(a.trimmingWhitespace) ?? 0 < Int(b.trimmingWhitespace) ?? 0, "\(a) then \(b)")

            let stopped = try podman(["stop", "-t", "20", "vmt"], timeout: 120)
            #expect(stopped.status == 0, "\(stopped)")
            #expect(try podman.inspect("vmt", "{{.State.Status}} {{.State.ExitCode}}") == "exited 0")
            let logs = try podman(["logs", "vmt"])
            #expect(logs.out == "started\nstopping\n", "\(logs)")
            #expect(try podman(["rm", "vmt"]).status == 0)
        }
    }

    @Test(.enabled(if: EngineRuntime.containerdReady, "needs containerd, ctr, the runc v2 shim and skopeo"))
    func ctrRunWithTheVMLink() throws {
        try Containerd.with { c in
            let link = try Self.vmLink(in: c.dir)
            let r = try c.ctr(["run", "--rm", "--runc-binary", link, c.image, "vm-once", "sh", "-c", "uname -r; exit 4"], timeout: 300)
            #expect(r.status == 4 && r.out == Self.guestRelease + "\n", "\(r)")
        }
    }

    /// A Kubernetes pod through the CRI with the `swvm-vm` handler (a
    /// RuntimeClass's, README): the pod has its own network (the CNI ptp
    /// plugin) and, as always under the CRI, its containers join the
    /// sandbox's network, uts and ipc namespaces by path. The sandbox stays
    /// a container; the workload is a VM: it prints the guest kernel's
    /// release, and its eth0 has the pod's address (the VMM joined the
    /// pod's namespace). Removing the pod leaves no VMM, state, run record,
    /// network namespace or host route (Containerd.with checks the rest).
    @Test(.enabled(if: EngineRuntime.containerdReady && EngineRuntime.criClientReady && FS.exists("/usr/lib/cni/ptp"),
                   "needs containerd, python3-grpcio and containernetworking-plugins: scripts/setup.sh"))
    func aPodThroughTheVMHandler() throws {
        try Containerd.with { c in
            let logs = Path.join(c.dir, "pod-logs")
            try FS.makeDirectories(logs)
            let sandbox = try c.cri(["--pod-network", "runp", "vm-pod", "swvm-vm", logs])
            var container: String?
            do {
                #expect(try ContainerdTests.runtimeState(sandbox, namespace: "k8s.io") == "running")
                let sandboxState = try Self.runtimeState(sandbox)
                #expect(try Self.runtimeIsolation(sandbox) == "container", "the sandbox only holds the pod's namespaces: \(sandboxState)")
                let podIP = try c.cri(["podip", sandbox])
                #expect(podIP.hasPrefix("10.214.0."), "the CNI plugin's address: \(podIP)")
                let id = try c.cri(["--pod-network", "create", sandbox, "hello", "vm-pod", logs, c.image,
                                    "sh", "-c", "uname -r; ip -4 -o addr show eth0; echo ready; exec sleep 600"], timeout: 300)
                container = id
                // The CRI's start makes the runtime's container (create + start).
                try c.cri(["start", id], timeout: 300)
                let state = try Self.runtimeState(id)
                #expect(try Self.runtimeIsolation(id) == "vm", "\(state)")
                let logFile = Path.join(logs, "hello.log")
                var log = ""
                for _ in 0..<300 where !log.contains("ready\n") {
                    usleep(100_000)
                    log = (try? FS.readText(logFile)) ?? ""
                }
                #expect(log.contains(" stdout F \(Self.guestRelease)\n"), "the guest kernel's release: \(log)")
                #expect(log.contains(" inet \(podIP)/"), "the pod's address on the guest's eth0: \(log)")
                #expect(try c.cri(["status", id]) == "RUNNING 0")
                let exec = try Command.run(["/usr/bin/python3", Path.join(Harness.repo, "Tests/Fixtures/engines/cri.py"), c.address,
                                            "exec", id, "120", "sh", "-c", "uname -r; exit 3"], timeout: 180)
                Self.checkExec(exec)
                try c.cri(["stop", id, "0"], timeout: 120)
                #expect(try c.cri(["status", id]) == "EXITED 137")
                try c.cri(["rm", id])
                container = nil
                try c.cri(["stopp", sandbox], timeout: 120)
                try c.cri(["rmp", sandbox])
                for id in [sandbox, id] {
                    #expect(try ContainerdTests.runtimeState(id, namespace: "k8s.io").hasPrefix("absent"))
                    #expect(!FS.exists(Path.join(SwvmPaths.runRoot, "runs", id)), "the VMM's run record \(id)")
                    #expect(ContainerdTests.processes(commandLine: "swvm vmm").isEmpty)
                }
                let routes = try Command.run(["ip", "-4", "route"])
                #expect(!routes.out.contains("10.214.0."), "the pod's host route went with it: \(routes.out)")
            } catch {
                if let container { _ = try? c.cri(["rm", container]) }
                _ = try? c.cri(["stopp", sandbox])
                _ = try? c.cri(["rmp", sandbox])
                throw error
            }
        }
    }

    /// The CRI's ExecSync into the VM (OCI exec at the VM level): the
    /// guest's output and the process's own status.
    static func checkExec(_ r: CommandResult, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == 3 && r.out == guestRelease + "\n", "\(r)", sourceLocation: sourceLocation)
    }

    /// The isolation level a CRI container got (`state`'s annotation).
    static func runtimeIsolation(_ id: String) throws -> String? {
        let r = try runtimeState(id)
        guard r.status == 0 else { return nil }
        return try JSON.parse(r.out)["annotations"]?["swvm.isolation"]?.string
    }

    static func runtimeState(_ id: String) throws -> CommandResult {
        try Command.run([EngineRuntime.path, "--root", "/run/containerd/runc/k8s.io", "state", id])
    }
}

