#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase
@testable import VMMJail

/// `swvm run -d --isolation=vm` and Docker's verbs on the detached VM (its
/// monitor's child is the VMM): the run's options, logs, exec through the
/// control socket, kill, pause, stop, wait, inspect, rm; nothing left after
/// rm, after a --rm run ends, after SIGKILL of the monitor or of the VMM;
/// and the detached VMM's jail read from the host. Real VMs; every test
/// removes what it starts with `rm -f` on every path.
@Suite(.serialized, .enabled(if: Harness.vmReady, "needs /dev/kvm, the guest kernel and guest-init"))
struct DetachedVMTests {
    static let containers = DockerVerbsTests.containers

    /// `swvm run -d --isolation=vm OPTIONS IMAGE -- COMMAND`: the id.
    static func detachedVM(_ options: [String], _ command: [String]) throws -> String {
        // A cold boot (no snapshot in the cache yet) takes a minute here.
        let r = try Harness.swvmCommand(["run", "-d", "--isolation=vm"] + options + [Harness.exampleImage, "--"] + command, timeout: 300)
        try #require(r.status == 0, "run -d --isolation=vm: \(r)")
        let id = r.out.trimmingCharacters(in: "\n")
        try #require(id.count == 64 && id.allSatisfy { $0.isHexDigit }, "run -d printed \(r.out.debugDescription)")
        return id
    }

    static func swvm(_ args: [String], stdin: [UInt8]? = nil, timeout: Double = 60) throws -> CommandResult {
        try Harness.swvmCommand(args, stdin: stdin, timeout: timeout)
    }

    /// What the host holds for a running detached VM.
    struct Held {
        var vmm: pid_t
        var monitor: pid_t
        var cgroups: [String]
        var uid: uid_t?
    }

    static func held(_ id: String) throws -> Held {
        let dir = Path.join(containers, id)
        let service = try JSON.parse(FS.readFile(Path.join(dir, "service.json")))
        let state = try JSON.parse(FS.readFile(Path.join(dir, "state.json")))
        let vmm = pid_t(try #require(state["init"]?["pid"]?.int64))
        let status = (try? FS.readText("/proc/\(vmm)/status")) ?? ""
        let uid = status.split(separator: "\n").first { $0.hasPrefix("Uid:") }?.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().first
        return Held(vmm: vmm, monitor: pid_t(try #require(service["monitor"]?["pid"]?.int64)),
                    cgroups: (state["cgroupPaths"]?.array ?? []).compactMap(\.string), uid: uid.flatMap { uid_t($0) })
    }

    /// The ppid field of /proc/PID/stat.
    static func parent(_ pid: pid_t) -> pid_t? {
        guard let text = try? FS.readText("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return nil }
        let f = text[text.index(after: close)...].split(separator: " ")
        return f.count > 1 ? pid_t(f[1]) : nil
    }

    static func gone(_ pid: pid_t) -> Bool { !processExists(pid) || ProcessStatText.state(pid) == "Z" }

    /// No VMM, container directory, run record (with its control socket),
    /// cgroup, uid lease, tap, nft element or address lease.
    static func expectNothingLeft(_ id: String, _ h: Held) throws {
        #expect(DockerVerbsTests.eventually(10) { gone(h.vmm) }, "the VMM \(h.vmm) is still running")
        #expect(DockerVerbsTests.eventually(10) { !FS.exists(Path.join(containers, id)) }, "the container's directory is left")
        #expect(DockerVerbsTests.eventually(10) { !FS.exists(Path.join(SwvmPaths.runRoot, "runs", id)) }, "the run record is left")
        for dir in h.cgroups { #expect(!FS.exists(dir), "cgroup \(dir)") }
        if let uid = h.uid { #expect(!FS.exists(Path.join(VMMIdentity.directory, String(uid))), "the uid lease \(uid)") }
        try NetworkTests.expectNothingLeft()
    }

    /// One VM through the verbs: -e, --name, --network bridge -p, --memory;
    /// ps and inspect say vm; logs hold the guest kernel's release; exec
    /// with -e, -u, -w, -i, its exit status and 127; kill -s reaches the
    /// workload; pause stops it (exec refused) and unpause resumes it; stop
    /// sends TERM to the workload (its trap exits 7); wait, rm.
    @Test func aDetachedVMUnderDockersVerbs() throws {
        let port = NetworkTests.port(3)
        let name = "vmdetach-\(getpid())"
        let script = "echo started $FOO; uname -r; echo served-by-vm > /tmp/index.html; httpd -p 8000 -h /tmp; "
            + "trap 'echo got-usr1' USR1; trap 'echo got-alrm' ALRM; trap 'echo got-term; exit 7' TERM; while :; do sleep 1; done"
        let id = try DetachedVMTests.detachedVM(["--name", name, "-e", "FOO=bar", "--network", "bridge", "-p", "\(port):8000",
                                                 "--memory", "256m"], ["sh", "-c", script])
        defer { DockerVerbsTests.removeForcibly(id) }
        let h = try DetachedVMTests.held(id)
        #expect(!DetachedVMTests.gone(h.vmm))
        let line = try DockerVerbsTests.psLine(id) ?? ""
        #expect(line.contains("Up ") && line.contains(name) && line.hasSuffix("vm"), "\(line)")

        var logs = ""
        #expect(DockerVerbsTests.eventually(20) {
            logs = (try? DetachedVMTests.swvm(["logs", name]).out) ?? ""
            return logs.split(separator: "\n").count >= 2
        }, "\(logs)")
        let host = try Subprocess.run(["uname", "-r"]).output.trimmingCharacters(in: "\n")
        let lines = logs.split(separator: "\n").map(String.init)
        #expect(lines.first == "started bar" && lines.count >= 2 && lines[1] != host, "the guest kernel's release, not \(host): \(logs)")
        var body = ""
        #expect(DockerVerbsTests.eventually(20) {
            body = (try? NetworkTests.httpGet("127.0.0.1", port)) ?? ""
            return body.hasSuffix("served-by-vm\n")
        }, "GET over the published port: \(body.debugDescription)")

        let env = try DetachedVMTests.swvm(["exec", "-e", "BAR=baz", "-u", "1000", "-w", "/tmp", name, "sh", "-c", "echo $FOO $BAR; id -u; pwd"])
        #expect(env.status == 0 && env.out == "bar baz\n1000\n/tmp\n", "\(env)")
        #expect(try DetachedVMTests.swvm(["exec", id, "sh", "-c", "exit 3"]).status == 3)
        let missing = try DetachedVMTests.swvm(["exec", id, "no-such-binary"])
        #expect(missing.status == 127, "\(missing)")
        let piped = try DetachedVMTests.swvm(["exec", "-i", id, "cat"], stdin: Array("piped in\n".utf8))
        #expect(piped.status == 0 && piped.out == "piped in\n", "\(piped)")

        #expect(try DetachedVMTests.swvm(["kill", "-s", "USR1", name]).status == 0)
        #expect(DockerVerbsTests.eventually(10) { (try? DetachedVMTests.swvm(["logs", id]).out.contains("got-usr1")) == true })
        // Any catchable signal, not only the usual few: the VMM is PID 1 of
        // its pid namespace, where one it did not block would be dropped.
        #expect(try DetachedVMTests.swvm(["kill", "-s", "ALRM", name]).status == 0)
        #expect(DockerVerbsTests.eventually(10) { (try? DetachedVMTests.swvm(["logs", id]).out.contains("got-alrm")) == true })

        #expect(try DetachedVMTests.swvm(["pause", name]).status == 0)
        #expect((try DockerVerbsTests.psLine(id) ?? "").contains("(Paused)"))
        let inspect = try JSON.parse(Array(try DetachedVMTests.swvm(["inspect", id]).out.utf8))
        #expect(inspect[0]?["State"]?["Paused"]?.bool == true && inspect[0]?["HostConfig"]?["Isolation"]?.string == "vm", "\(inspect)")
        #expect(inspect[0]?["State"]?["Pid"]?.int64 == Int64(h.vmm), "the VMM is the container's pid: \(inspect)")
        let whilePaused = try DetachedVMTests.swvm(["exec", id, "true"])
        #expect(whilePaused.status != 0 && whilePaused.err.contains("paused"), "\(whilePaused)")
        #expect(try DetachedVMTests.swvm(["unpause", name]).status == 0)
        #expect(try DetachedVMTests.swvm(["exec", id, "true"]).status == 0)

        let stop = try DetachedVMTests.swvm(["stop", "-t", "20", name])
        #expect(stop.status == 0, "\(stop)")
        let wait = try DetachedVMTests.swvm(["wait", id])
        #expect(wait.out == "7\n", "TERM reached the workload's trap: \(wait)")
        #expect(try DetachedVMTests.swvm(["logs", id]).out.contains("got-term"))
        #expect((try DockerVerbsTests.psLine(id) ?? "").contains("Exited (7)"))
        let rm = try DetachedVMTests.swvm(["rm", id])
        #expect(rm.status == 0, "\(rm)")
        try DetachedVMTests.expectNothingLeft(id, h)
    }

    /// A workload that ignores TERM: stop's timeout, then SIGKILL ends the
    /// VM (137); a --rm run leaves nothing once it ends. A missing command
    /// fails `run -d` with 127 and leaves no container.
    /// The cgroups under swvm's parent, in every hierarchy.
    /// A detached VM's VMM (PID 1 of its own pid namespace) sweeps stale
    /// runs before its jail: a live container's run must not look stale to
    /// it. It did (kill(pid, 0) finds no host pid from there): the sweep
    /// killed the container's cgroup and deleted its veth.
    @Test func aDetachedVMLeavesOtherRunsAlone() throws {
        let port = NetworkTests.port(4)
        let r = try NetworkTests.withServingRun(isolation: "container", publish: ["\(port):8000"]) { (addr: String) throws in
            let records = Set((try? FS.listDirectory(Path.join(SwvmPaths.runRoot, "runs"))) ?? [])
            let id = try DetachedVMTests.detachedVM([], ["sleep", "300"])
            defer { DockerVerbsTests.removeForcibly(id) }
            let after = Set((try? FS.listDirectory(Path.join(SwvmPaths.runRoot, "runs"))) ?? [])
            #expect(records.isSubset(of: after), "run records removed by the VM's start: \(records.subtracting(after))")
            #expect(try NetworkTests.httpGet(addr, 8000).hasSuffix("served-by-run\n"), "the container answers after the VM started")
        }
        #expect(r.status == 0, "the container's run: \(r)")
        try NetworkTests.expectNothingLeft()
    }

    static func swvmCgroups() -> Set<String> {
        let hierarchies = (try? FS.listDirectory("/sys/fs/cgroup")) ?? []
        return Set(hierarchies.flatMap { h -> [String] in
            let parent = "/sys/fs/cgroup/\(h)/swvm"
            return ((try? FS.listDirectory(parent)) ?? []).map { "\(parent)/\($0)" }.filter { FS.isDirectory($0) }
        })
    }

    @Test func stopKillsAVMThatIgnoresTERMAndARmRunLeavesNothing() throws {
        let before = try DetachedVMTests.swvm(["ps", "-a", "-q", "--no-trunc"]).out
        let cgroupsBefore = DetachedVMTests.swvmCgroups()
        let missing = try DetachedVMTests.swvm(["run", "-d", "--isolation=vm", Harness.exampleImage, "--", "no-such-binary"], timeout: 300)
        #expect(missing.status == 127 && missing.out.isEmpty, "\(missing)")
        #expect(try DetachedVMTests.swvm(["ps", "-a", "-q", "--no-trunc"]).out == before)
        // The VMM's own cgroup goes too (its keeper, in the VMM's pid
        // namespace, moves the VMM out by the pid it has there).
        #expect(DetachedVMTests.swvmCgroups() == cgroupsBefore, "cgroups left: \(DetachedVMTests.swvmCgroups().subtracting(cgroupsBefore))")
        let id = try DetachedVMTests.detachedVM(["--rm"], ["sh", "-c", "trap '' TERM; echo up; exec sleep 1000"])
        defer { DockerVerbsTests.removeForcibly(id) }
        let h = try DetachedVMTests.held(id)
        #expect(FS.exists(Path.join(SwvmPaths.runRoot, "runs", id, "control.sock")), "the VMM's control socket")
        #expect(h.uid != nil && h.uid != 0, "a jailed VMM's uid: \(String(describing: h.uid))")
        let start = Clock.monotonicNanos()
        let stop = try DetachedVMTests.swvm(["stop", "-t", "2", id])
        let took = Clock.secondsSince(start)
        #expect(stop.status == 0 && took >= 2 && took < 20, "\(stop) after \(took) s")
        try DetachedVMTests.expectNothingLeft(id, h)
    }

    /// The detached VMM from the host (issue 20): every thread non-root,
    /// without capabilities, no_new_privs, seccomp 2, an empty root, its
    /// own namespaces (VMMJailTests' checks), a child of the monitor. Then
    /// SIGKILL of the monitor takes its VMM along and `rm -f` leaves
    /// nothing; and SIGKILL of a
    /// VMM is recorded (137), then `rm` leaves nothing.
    /// The jail's uid switch clears the VMM's parent-death signal; a
    /// monitor that ends before it is set again would leave the VMM
    /// running unwatched. The test switch holds the VMM in that window
    /// (4 s after its uid switch) while the monitor is killed, with
    /// `swvm run -d` first (whose clean-up of a failed start would end the
    /// VMM otherwise): the jail must see the monitor gone and end the VMM.
    @Test func aMonitorThatEndsDuringTheJailsUIDSwitchTakesTheVMMAlong() throws {
        let marker = "SWVM_TEST_JAIL_PAUSE_AFTER_UID=4000"
        let before = Set((try? FS.listDirectory(DetachedVMTests.containers)) ?? [])
        var vmm: pid_t?
        let r = try Command.run([Harness.swvm, "run", "-d", "--isolation=vm", Harness.exampleImage, "--", "sleep", "300"],
                                timeout: 300, environment: ["SWVM_TEST_JAIL_PAUSE_AFTER_UID": "4000"]) { run in
            // The VMM past its uid switch, in the pause: kill its monitor.
            guard DockerVerbsTests.eventually(240, { DetachedVMTests.switchedVMM(marker: marker) != nil }),
                  let pid = DetachedVMTests.switchedVMM(marker: marker), let monitor = DetachedVMTests.parent(pid) else { return }
            vmm = pid
            kill(run, SIGKILL)
            kill(monitor, SIGKILL)
        }
        // Removed only after the check below: `rm -f` would end the VMM too.
        defer {
            if let pid = vmm, !DetachedVMTests.gone(pid) { kill(pid, SIGKILL) }
            for id in Set((try? FS.listDirectory(DetachedVMTests.containers)) ?? []).subtracting(before) {
                DockerVerbsTests.removeForcibly(id)
            }
        }
        let pid = try #require(vmm, "no VMM past its uid switch was seen: \(r)")
        #expect(r.status != 0, "run -d with its monitor killed: \(r)")
        #expect(DockerVerbsTests.eventually(20) { DetachedVMTests.gone(pid) }, "the VMM outlived the monitor killed during its jail")
    }

    /// A detached VMM (`swvm vmm --service`) started with `marker` in its
    /// environment whose uid is no longer root.
    static func switchedVMM(marker: String) -> pid_t? {
        for name in (try? FS.listDirectory("/proc")) ?? [] {
            guard let pid = pid_t(name), let cmd = try? FS.readFile("/proc/\(name)/cmdline"),
                  String(decoding: cmd, as: UTF8.self).contains("vmm\0--service"),
                  let env = try? FS.readFile("/proc/\(name)/environ"),
                  String(decoding: env, as: UTF8.self).split(separator: "\0").contains(Substring(marker)),
                  let status = try? FS.readText("/proc/\(name)/status"),
                  let uid = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") }),
                  !uid.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().contains("0") else { continue }
            return pid
        }
        return nil
    }

    @Test func aDetachedVMMIsJailedAndKillingItsMonitorOrItsVMMLeavesNothing() throws {
        let port = NetworkTests.port(4)
        let first = try DetachedVMTests.detachedVM(["--network", "bridge", "-p", "\(port):8000"], ["sleep", "300"])
        defer { DockerVerbsTests.removeForcibly(first) }
        let a = try DetachedVMTests.held(first)
        let posture = try #require(JailPosture.read(pid: a.vmm), "the VMM's posture")
        VMMJailTests().expectJailed(posture, fileCapabilities: false)
        let ppid = DetachedVMTests.parent(a.vmm)
        #expect(ppid == a.monitor, "the VMM's parent \(String(describing: ppid)) is the monitor \(a.monitor)")
        kill(a.monitor, SIGKILL)
        #expect(DockerVerbsTests.eventually { DetachedVMTests.gone(a.monitor) })
        // The jail's uid switch cleared the VMM's parent-death signal: it is set again.
        #expect(DockerVerbsTests.eventually { DetachedVMTests.gone(a.vmm) }, "the VMM outlived its killed monitor")
        let rmForce = try DetachedVMTests.swvm(["rm", "-f", first])
        #expect(rmForce.status == 0, "\(rmForce)")
        try DetachedVMTests.expectNothingLeft(first, a)

        let second = try DetachedVMTests.detachedVM([], ["sleep", "300"])
        defer { DockerVerbsTests.removeForcibly(second) }
        let b = try DetachedVMTests.held(second)
        kill(b.vmm, SIGKILL)
        #expect(DockerVerbsTests.eventually(20) { (try? DockerVerbsTests.psLine(second))??.contains("Exited (137)") == true },
                "\(String(describing: try? DockerVerbsTests.psLine(second)))")
        let rm = try DetachedVMTests.swvm(["rm", second])
        #expect(rm.status == 0, "\(rm)")
        try DetachedVMTests.expectNothingLeft(second, b)
    }
}
