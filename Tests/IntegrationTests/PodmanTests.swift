#if canImport(Glibc)
import Glibc
#endif
import NativeThreads
import Testing
import TestSupport
@testable import SwvmBase

/// podman (Debian's, with conmon and netavark) driving the OCI runtime
/// under test (EngineRuntime: swvm, or SWVM_OCI_RUNTIME) through its
/// `[engine.runtimes]` entry `swvm`, or `--runtime PATH`. Each setting is
/// checked from inside the run; each test leaves nothing behind (Podman.with).
@Suite(.serialized, .enabled(if: EngineRuntime.podmanReady, "needs podman, conmon, skopeo, netavark and iptables: scripts/setup.sh"))
struct PodmanTests {
    /// Most runs need no network: podman then asks the runtime for a new,
    /// empty network namespace. The server tests use netavark's bridge,
    /// where podman hands the runtime a namespace to join by path.
    static let noNetwork = ["--network", "none"]

    static func port(_ n: Int) -> UInt16 { UInt16(41000 + Int(getpid() % 4000) * 2 + n) }

    @Test func exitCodesReachPodman() throws {
        try Podman.with { podman in
            #expect(try podman.runRm(Self.noNetwork, ["true"]).status == 0)
            let three = try podman.runRm(Self.noNetwork, ["sh", "-c", "echo out; echo err >&2; exit 3"])
            #expect(three.status == 3 && three.out == "out\n" && three.err.contains("err\n"), "\(three)")
            // Not executable (126) and not found (127): podman reads them
            // from the runtime's error message at create.
            let notExecutable = try podman.runRm(Self.noNetwork, ["/etc/passwd"])
            #expect(notExecutable.status == 126, "\(notExecutable)")
            let notFound = try podman.runRm(Self.noNetwork, ["no-such-command"])
            #expect(notFound.status == 127, "\(notFound)")
        }
    }

    @Test func environmentUserAndWorkingDirectory() throws {
        try Podman.with { podman in
            let r = try podman.runRm(Self.noNetwork + ["-e", "GREETING=hello there", "-u", "1000:1000", "-w", "/home/app"],
                                     ["sh", "-c", "echo \"$GREETING\"; id; pwd; touch mine && ls -n mine"])
            #expect(r.status == 0, "\(r)")
            let lines = r.out.split(separator: "\n").map(String.init)
            #expect(lines.count == 4, "\(r)")
            #expect(lines.first == "hello there")
            #expect(lines.dropFirst().first == "uid=1000(app) gid=1000(app) groups=1000(app)")
            #expect(lines.dropFirst(2).first == "/home/app")
            let owner = lines.last?.split(separator: " ").dropFirst(2).prefix(2).map(String.init)
            #expect(owner == ["1000", "1000"], "the file the run made is its user's: \(r)")
            let named = try podman.runRm(Self.noNetwork + ["-u", "nobody"], ["id", "-u"])
            #expect(named.status == 0 && named.out == "65534\n", "\(named)")
        }
    }

    @Test func readOnlyRoot() throws {
        try Podman.with { podman in
            // --read-only keeps /tmp, /var/tmp and /run writable (tmpfs).
            let r = try podman.runRm(Self.noNetwork + ["--read-only"],
                                     ["sh", "-c", "touch /etc/x; echo etc=$?; touch /tmp/x; echo tmp=$?; grep ' / ' /proc/mounts"])
            #expect(r.status == 0, "\(r)")
            #expect(r.out.contains("etc=1\ntmp=0\n"), "\(r)")
            #expect(r.err.contains("Read-only file system"), "\(r)")
            #expect(r.out.split(separator: "\n").last?.split(separator: " ").dropFirst(3).first?.split(separator: ",").first == "ro", "\(r)")
            let writable = try podman.runRm(Self.noNetwork, ["sh", "-c", "touch /etc/x && echo ok"])
            #expect(writable.status == 0 && writable.out == "ok\n", "\(writable)")
        }
    }

    @Test func volumesReadWriteAndReadOnly() throws {
        try Podman.with { podman in
            let host = Path.join(podman.dir, "volume")
            try FS.makeDirectories(host)
            try FS.writeText(Path.join(host, "from-host"), "host-data\n")
            let r = try podman.runRm(Self.noNetwork + ["-v", "\(host):/data"],
                                     ["sh", "-c", "cat /data/from-host; echo run-data > /data/from-run"])
            #expect(r.status == 0 && r.out == "host-data\n", "\(r)")
            #expect(try FS.readText(Path.join(host, "from-run")) == "run-data\n")
            let ro = try podman.runRm(Self.noNetwork + ["-v", "\(host):/data:ro"],
                                      ["sh", "-c", "cat /data/from-host; echo x > /data/nope"])
            #expect(ro.status != 0 && ro.out == "host-data\n" && ro.err.contains("Read-only file system"), "\(ro)")
            #expect(!FS.exists(Path.join(host, "nope")))
        }
    }

    @Test func tmpfsWithASize() throws {
        try Podman.with { podman in
            let r = try podman.runRm(Self.noNetwork + ["--tmpfs", "/scratch:size=1m"],
                                     ["sh", "-c", "grep ' /scratch ' /proc/mounts; dd if=/dev/zero of=/scratch/f bs=512k count=4 2>/dev/null; echo dd=$?"])
            #expect(r.status == 0, "\(r)")
            #expect(r.out.hasPrefix("tmpfs /scratch tmpfs ") && r.out.contains("size=1024k"), "\(r)")
            #expect(r.out.hasSuffix("dd=1\n"), "a 2 MiB write fits in a 1 MiB tmpfs: \(r)")
        }
    }

    /// CapEff of the run's process, as a bit mask.
    static func effectiveCapabilities(_ r: CommandResult) -> UInt64? {
        let line = r.out.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") })
        return line.flatMap { UInt64(String($0.dropFirst(7)).trimmingWhitespace, radix: 16) }
    }

    @Test func capDropRemovesTheCapability() throws {
        try Podman.with { podman in
            let script = ["sh", "-c", "grep CapEff /proc/self/status; chown 1000 /tmp && echo chown-ok"]
            let kept = try podman.runRm(Self.noNetwork, script)
            let dropped = try podman.runRm(Self.noNetwork + ["--cap-drop", "CHOWN"], script)
            let chown: UInt64 = 1 << 0
            #expect(kept.status == 0 && kept.out.hasSuffix("chown-ok\n"), "\(kept)")
            #expect(Self.effectiveCapabilities(kept).map { $0 & chown } == chown, "\(kept)")
            #expect(!dropped.out.contains("chown-ok") && dropped.err.contains("Operation not permitted"), "\(dropped)")
            #expect(Self.effectiveCapabilities(dropped) == Self.effectiveCapabilities(kept).map { $0 & ~chown }, "\(dropped)")
        }
    }

    @Test func seccompProfileFromAFile() throws {
        try Podman.with { podman in
            let profile = Path.join(Harness.repo, "Tests/Fixtures/engines/seccomp-no-mkdir.json")
            let script = ["sh", "-c", "mkdir /tmp/d && echo mkdir-ok; grep Seccomp: /proc/self/status"]
            let r = try podman.runRm(Self.noNetwork + ["--security-opt", "seccomp=\(profile)"], script)
            #expect(!r.out.contains("mkdir-ok") && r.err.contains("Operation not permitted"), "\(r)")
            #expect(r.out.contains("Seccomp:\t2"), "\(r)")
            // podman's default profile allows mkdir.
            let plain = try podman.runRm(Self.noNetwork, script)
            #expect(plain.out.hasPrefix("mkdir-ok\n") && plain.out.contains("Seccomp:\t2"), "\(plain)")
        }
    }

    @Test func memoryLimitIsEnforced() throws {
        try Podman.with { podman in
            // The cgroup's limit as the run sees it, then a 64 MiB buffer
            // that does not fit in 32 MiB: the OOM killer ends the run.
            let r = try podman.runRm(Self.noNetwork + ["--memory", "32m", "--memory-swap", "32m"],
                                     ["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; dd if=/dev/zero of=/dev/null bs=64M count=1"])
            #expect(r.out.hasPrefix("33554432\n"), "\(r)")
            #expect(r.status == 137, "\(r)")
            let fits = try podman.runRm(Self.noNetwork + ["--memory", "32m"], ["dd", "if=/dev/zero", "of=/dev/null", "bs=4M", "count=1"])
            #expect(fits.status == 0, "\(fits)")
        }
    }

    @Test func pidsLimitIsEnforced() throws {
        try Podman.with { podman in
            let r = try podman.runRm(Self.noNetwork + ["--pids-limit", "10"],
                                     ["sh", "-c", "cat /sys/fs/cgroup/pids/pids.max; i=0; while [ $i -lt 20 ]; do sleep 5 & i=$((i+1)); done; echo all-started"])
            #expect(r.out.hasPrefix("10\n") && !r.out.contains("all-started"), "\(r)")
            #expect(r.err.contains("can't fork"), "\(r)")
        }
    }

    /// A detached HTTP server (busybox httpd) published with -p through
    /// netavark, reached from the host over real TCP; then exec, exec -t,
    /// logs and top on it.
    @Test func detachedServerWithPublishedPort() throws {
        try Podman.with { podman in
            let port = Self.port(0)
            let server = "echo served-by-podman > /tmp/index.html; httpd -p 8000 -h /tmp; echo listening; " +
                "trap 'echo stopping; exit 0' TERM; while true; do sleep 0.2; done"
            let started = try podman(["run", "-d", "--name", "web", "-p", "\(port):8000", podman.image, "sh", "-c", server])
            #expect(started.status == 0, "\(started)")
            let id = started.out.trimmingWhitespace
            #expect(id.count == 64, "run -d prints the id: \(started)")
            _ = try podman.waitForLog("web", "listening")
            #expect(try NetworkTests.httpGet("127.0.0.1", port).hasSuffix("served-by-podman\n"))
            if let host = NetworkTests.hostAddress() {
                #expect(try NetworkTests.httpGet(host, port).hasSuffix("served-by-podman\n"))
            }
            let address = try podman.inspect("web", "{{.NetworkSettings.IPAddress}}")
            #expect(address.hasPrefix("10.213.0."), "podman's test network: \(address)")
            #expect(try NetworkTests.httpGet(address, 8000).hasSuffix("served-by-podman\n"))

            let exec = try podman(["exec", "web", "sh", "-c", "echo exec-ok; cat /proc/1/cmdline | tr '\\0' ' '"])
            #expect(exec.status == 0 && exec.out.hasPrefix("exec-ok\nsh -c echo served-by-podman"), "\(exec)")
            let failing = try podman(["exec", "web", "sh", "-c", "exit 7"])
            #expect(failing.status == 7, "\(failing)")
            let tty = try podman(["exec", "-t", "web", "tty"])
            #expect(tty.status == 0 && tty.out.hasPrefix("/dev/pts/") && tty.out.hasSuffix("\r\n"), "\(tty)")
            let top = try podman(["top", "web"])
            #expect(top.status == 0 && top.out.contains("httpd -p 8000") && top.out.contains("sh -c echo served-by-podman"), "\(top)")

            let stopped = try podman(["stop", "-t", "10", "web"])
            #expect(stopped.status == 0, "\(stopped)")
            #expect(try podman.inspect("web", "{{.State.Status}} {{.State.ExitCode}}") == "exited 0")
            let logs = try podman(["logs", "web"])
            #expect(logs.out == "listening\nstopping\n", "\(logs)")
            #expect(try podman(["rm", "web"]).status == 0)
        }
    }

    /// The freezer state of a container's init, read on the host.
    static func freezerState(pid: String) throws -> String {
        let cgroups = try FS.readText("/proc/\(pid)/cgroup")
        let line = try #require(cgroups.split(separator: "\n").first { $0.split(separator: ":").dropFirst().first == "freezer" })
        let path = line.split(separator: ":", maxSplits: 2).last.map(String.init) ?? ""
        return try FS.readText(Path.join("/sys/fs/cgroup/freezer", path, "freezer.state")).trimmingWhitespace
    }

    static let ticker = "trap 'exit 0' TERM; i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done"

    @Test func pauseAndUnpause() throws {
        try Podman.with { podman in
            let r = try podman(["run", "-d", "--name", "ticker"] + Self.noNetwork + [podman.image, "sh", "-c", Self.ticker])
            #expect(r.status == 0, "\(r)")
            try podman.waitForStatus("ticker", "running")
            let pid = try podman.inspect("ticker", "{{.State.Pid}}")
            #expect(try podman(["pause", "ticker"]).status == 0)
            #expect(try podman.inspect("ticker", "{{.State.Status}}") == "paused")
            #expect(try Self.freezerState(pid: pid) == "FROZEN")
            #expect(FS.readLink("/proc/\(pid)/exe") != nil, "the paused init is still there")
            #expect(try podman(["unpause", "ticker"]).status == 0)
            #expect(try podman.inspect("ticker", "{{.State.Status}}") == "running")
            #expect(try Self.freezerState(pid: pid) == "THAWED")
            // It runs again: the counter moves.
            let a = try podman(["exec", "ticker", "cat", "/tmp/count"]).out
            usleep(500_000)
            let b = try podman(["exec", "ticker", "cat", "/tmp/count"]).out
            #expect(Int(a.trimmingWhitespace) ?? 0 < Int(b.trimmingWhitespace) ?? 0, "\(a) then \(b)")
            #expect(try podman(["rm", "-f", "-t", "0", "ticker"]).status == 0)
        }
    }

    @Test func stopSendsTermThenKill() throws {
        try Podman.with { podman in
            let polite = try podman(["run", "-d", "--name", "polite"] + Self.noNetwork +
                                    [podman.image, "sh", "-c", "trap 'echo got-term; exit 0' TERM; echo up; while true; do sleep 0.1; done"])
            let stubborn = try podman(["run", "-d", "--name", "stubborn"] + Self.noNetwork +
                                      [podman.image, "sh", "-c", "trap '' TERM; echo up; while true; do sleep 0.1; done"])
            #expect(polite.status == 0 && stubborn.status == 0, "\(polite) \(stubborn)")
            _ = try podman.waitForLog("polite", "up")
            _ = try podman.waitForLog("stubborn", "up")
            let t0 = Clock.monotonicNanos()
            #expect(try podman(["stop", "-t", "20", "polite"]).status == 0)
            #expect(Clock.secondsSince(t0) < 10, "TERM ended it at once")
            #expect(try podman.inspect("polite", "{{.State.Status}} {{.State.ExitCode}}") == "exited 0")
            #expect(try podman(["logs", "polite"]).out == "up\ngot-term\n")
            let t1 = Clock.monotonicNanos()
            #expect(try podman(["stop", "-t", "2", "stubborn"]).status == 0)
            let took = Clock.secondsSince(t1)
            #expect(took >= 2 && took < 15, "KILL after the 2 s grace: \(took) s")
            #expect(try podman.inspect("stubborn", "{{.State.Status}} {{.State.ExitCode}}") == "exited 137")
            #expect(try podman(["rm", "polite", "stubborn"]).status == 0)
        }
    }

    @Test func killWithASignalAndRestart() throws {
        try Podman.with { podman in
            let script = "trap 'echo got-usr1' USR1; echo started; while true; do sleep 0.1; done"
            #expect(try podman(["run", "-d", "--name", "k"] + Self.noNetwork + [podman.image, "sh", "-c", script]).status == 0)
            _ = try podman.waitForLog("k", "started")
            let firstPid = try podman.inspect("k", "{{.State.Pid}}")
            #expect(try podman(["kill", "-s", "USR1", "k"]).status == 0)
            _ = try podman.waitForLog("k", "got-usr1")
            #expect(try podman.inspect("k", "{{.State.Status}}") == "running")
            #expect(try podman(["restart", "-t", "0", "k"]).status == 0)
            try podman.waitForStatus("k", "running")
            let secondPid = try podman.inspect("k", "{{.State.Pid}}")
            #expect(secondPid != firstPid && secondPid != "0")
            #expect(FS.readLink("/proc/\(firstPid)/exe") == nil || firstPid == secondPid, "the first init is gone")
            let logs = try podman.waitForLog("k", "started\ngot-usr1\nstarted\n")
            #expect(logs.hasPrefix("started\ngot-usr1\nstarted\n"), "\(logs)")
            #expect(try podman(["kill", "k"]).status == 0)
            try podman.waitForStatus("k", "exited")
            #expect(try podman.inspect("k", "{{.State.ExitCode}}") == "137")
            #expect(try podman(["rm", "k"]).status == 0)
        }
    }

    @Test func rmForceRemovesARunningContainer() throws {
        try Podman.with { podman in
            #expect(try podman(["run", "-d", "--name", "doomed"] + Self.noNetwork + [podman.image, "sleep", "1000"]).status == 0)
            try podman.waitForStatus("doomed", "running")
            let pid = try podman.inspect("doomed", "{{.State.Pid}}")
            let r = try podman(["rm", "-f", "-t", "2", "doomed"])
            #expect(r.status == 0, "\(r)")
            #expect(try podman(["ps", "-aq"]).out.isEmpty)
            #expect(FS.readLink("/proc/\(pid)/exe") == nil, "the container's init is gone")
        }
    }

    /// inspect follows the container through created, running, paused and
    /// exited, and its Pid is the real process in the container's cgroup.
    @Test func inspectShowsTheState() throws {
        try Podman.with { podman in
            let created = try podman(["create", "--name", "s"] + Self.noNetwork + [podman.image, "sh", "-c", "exit 5"])
            #expect(created.status == 0, "\(created)")
            #expect(try podman.inspect("s", "{{.State.Status}} {{.OCIRuntime}}") == "created swvm")
            #expect(try podman(["start", "-a", "s"]).status == 5)
            #expect(try podman.inspect("s", "{{.State.Status}} {{.State.ExitCode}} {{.State.Pid}}") == "exited 5 0")
            #expect(try podman(["rm", "s"]).status == 0)

            #expect(try podman(["run", "-d", "--name", "r"] + Self.noNetwork + [podman.image, "sleep", "1000"]).status == 0)
            try podman.waitForStatus("r", "running")
            let pid = try podman.inspect("r", "{{.State.Pid}}")
            let id = try podman.inspect("r", "{{.Id}}")
            #expect(try FS.readText("/proc/\(pid)/cmdline") == "sleep\u{0}1000\u{0}")
            #expect(try FS.readText("/proc/\(pid)/cgroup").contains("/libpod_parent/libpod-\(id)"))
            #expect(try podman(["pause", "r"]).status == 0)
            #expect(try podman.inspect("r", "{{.State.Status}} {{.State.Paused}}") == "paused true")
            #expect(try podman(["unpause", "r"]).status == 0)
            #expect(try podman(["kill", "r"]).status == 0)
            try podman.waitForStatus("r", "exited")
            #expect(try podman(["rm", "r"]).status == 0)
        }
    }

    /// `podman --runtime PATH`, without the containers.conf entry.
    @Test func runtimeGivenByPath() throws {
        try Podman.with { podman in
            let r = try podman(["--runtime", EngineRuntime.path, "run", "--rm"] + Self.noNetwork + [podman.image, "sh", "-c", "echo by-path; exit 4"])
            #expect(r.status == 4 && r.out == "by-path\n", "\(r)")
            #expect(try podman(["--runtime", EngineRuntime.path, "create", "--name", "p", podman.image, "true"]).status == 0)
            #expect(try podman.inspect("p", "{{.OCIRuntime}}") == EngineRuntime.path)
            #expect(try podman(["--runtime", EngineRuntime.path, "start", "-a", "p"]).status == 0)
            #expect(try podman(["rm", "p"]).status == 0)
        }
    }

    /// 20 `podman run --rm` at once, each on netavark's bridge: every one
    /// exits with its own status and prints its own output.
    @Test func twentyConcurrentRuns() throws {
        try Podman.with { podman in
            let results = Locked<[Int: CommandResult]>([:])
            let errors = Locked<[String]>([])
            var threads: [NativeThread] = []
            for i in 0..<20 {
                threads.append(try NativeThread(name: "podman-\(i)") {
                    do {
                        let r = try podman.runRm([], ["sh", "-c", "echo run-\(i); ip -4 -o addr show eth0 | grep -q 10.213.0. || exit 99; exit \(i % 5)"],
                                                 timeout: 240)
                        results.with { $0[i] = r }
                    } catch { errors.with { $0.append("\(i): \(error)") } }
                })
            }
            for t in threads { t.join() }
            #expect(errors.current.isEmpty, "\(errors.current)")
            for i in 0..<20 {
                let r = results.current[i]
                #expect(r?.status == Int32(i % 5) && r?.out == "run-\(i)\n", "run \(i): \(r.map(String.init(describing:)) ?? "none")")
            }
        }
    }
}
