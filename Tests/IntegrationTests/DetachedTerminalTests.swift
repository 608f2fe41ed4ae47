#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase

/// `swvm run -d` with -t and/or -i at the container level, as Docker's
/// `run -dit`: the pty's output goes to the log, -i keeps stdin open so a
/// shell waits instead of ending, exec still reaches it, `rm -f` leaves
/// nothing (monitor, init, cgroups, state). The VM level still refuses.
@Suite(.serialized) struct DetachedTerminalTests {
    /// The monitor, the init and the cgroups of a running detached container.
    static func processes(_ id: String) throws -> (monitor: pid_t, initPid: pid_t, cgroups: [String]) {
        let dir = Path.join(DockerVerbsTests.containers, id)
        let service = try JSON.parse(FS.readFile(Path.join(dir, "service.json")))
        let state = try JSON.parse(FS.readFile(Path.join(dir, "state.json")))
        return (pid_t(try #require(service["monitor"]?["pid"]?.int64)), pid_t(try #require(state["init"]?["pid"]?.int64)),
                (state["cgroupPaths"]?.array ?? []).compactMap(\.string))
    }

    static func gone(_ pid: pid_t) -> Bool {
        DockerVerbsTests.eventually(5) { !processExists(pid) || ProcessStatText.state(pid) == "Z" }
    }

    /// Runs `swvm run RUNWORDS IMAGE sh` and checks the shell is still up
    /// a moment later, that exec reaches it, and that rm -f ends it all.
    static func expectAShellStaysUpThenRmLeavesNothing(_ runWords: [String], prompt: Bool) throws {
        let r = try DockerVerbsTests.swvm(["run"] + runWords + [DockerVerbsTests.image, "sh"])
        try #require(r.status == 0, "run \(runWords): \(r)")
        let id = r.out.trimmingCharacters(in: "\n")
        defer { DockerVerbsTests.removeForcibly(id) }
        let (monitor, initPid, cgroups) = try processes(id)
        usleep(1_500_000)
        let line = try DockerVerbsTests.psLine(id) ?? ""
        #expect(line.contains("Up "), "the shell ended: \(line)")
        // With a terminal the shell is interactive: busybox's banner (its
        // prompt has no newline, and the log keeps whole lines) is in the log.
        if prompt { #expect(DockerVerbsTests.eventually { (try? DockerVerbsTests.swvm(["logs", id]).out.contains("built-in shell")) == true }) }
        let exec = try DockerVerbsTests.swvm(["exec", id, "sh", "-c", "echo in-exec"])
        #expect(exec.status == 0 && exec.out == "in-exec\n", "\(exec)")
        let rm = try DockerVerbsTests.swvm(["rm", "-f", id])
        #expect(rm.status == 0, "\(rm)")
        #expect(gone(monitor), "the monitor is gone")
        #expect(gone(initPid), "the init is gone")
        for dir in cgroups { #expect(!FS.exists(dir), "cgroup \(dir)") }
        #expect(!FS.exists(Path.join(DockerVerbsTests.containers, id)) && !FS.exists(Path.join(SwvmPaths.runRoot, "runs", id)))
    }

    @Test func runDitKeepsAShellRunningAndRmForceLeavesNothing() throws {
        try DetachedTerminalTests.expectAShellStaysUpThenRmLeavesNothing(["-dit"], prompt: true)
    }

    @Test func runDiWithoutATerminalKeepsAShellRunning() throws {
        try DetachedTerminalTests.expectAShellStaysUpThenRmLeavesNothing(["-d", "-i"], prompt: false)
    }

    @Test func runDtLogsThePtysOutputAndKeepsTheExitStatus() throws {
        let id = try DockerVerbsTests.detached(["-t"], ["sh", "-c", "tty; echo hi; exit 3"])
        defer { DockerVerbsTests.removeForcibly(id) }
        #expect(try DockerVerbsTests.swvm(["wait", id]).out == "3\n")
        let logs = try DockerVerbsTests.swvm(["logs", id])
        #expect(logs.out.contains("/dev/pts/") && logs.out.contains("hi"), "\(logs)")
        #expect(try DockerVerbsTests.psLine(id)?.contains("Exited (3)") == true)
    }

    @Test func theVMLevelStillRefusesATerminalOrStdinByName() throws {
        let r = try DockerVerbsTests.swvm(["run", "-d", "-t", "--isolation=vm", DockerVerbsTests.image, "--", "true"])
        #expect(r.status == 125 && r.err.contains("at the VM level is not supported yet"), "\(r)")
    }
}
