#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase

/// Docker's verbs on real detached containers (`swvm run -d` and its
/// monitor): a server reached over a published port, logs and their cap,
/// exec's exit codes, stop/kill/rm/pause, --rm, --name, and nothing left
/// after the monitor is killed. Every test removes its containers with
/// `rm -f` on every path.
@Suite(.serialized) struct DockerVerbsTests {
    static let image = Harness.exampleImage
    static let containers = Path.join(SwvmPaths.runRoot, "containers")

    /// `swvm run -d OPTIONS IMAGE -- COMMAND`: the id it printed.
    static func detached(_ options: [String], _ command: [String]) throws -> String {
        let r = try Harness.swvmCommand(["run", "-d"] + options + [image, "--"] + command, timeout: 60)
        try #require(r.status == 0, "run -d: \(r)")
        let id = r.out.trimmingCharacters(in: "\n")
        try #require(id.count == 64 && id.allSatisfy { $0.isHexDigit }, "run -d printed \(r.out.debugDescription)")
        return id
    }

    static func swvm(_ args: [String], timeout: Double = 60) throws -> CommandResult {
        try Harness.swvmCommand(args, timeout: timeout)
    }

    static func removeForcibly(_ id: String) {
        _ = try? swvm(["rm", "-f", id])
    }

    /// The line of `swvm ps -a` for a container.
    static func psLine(_ id: String) throws -> String? {
        try swvm(["ps", "-a"]).out.split(separator: "\n").first { $0.hasPrefix(id.prefix(12)) }.map(String.init)
    }

    /// Polls `body` for up to `seconds`.
    static func eventually(_ seconds: Double = 10, _ body: () throws -> Bool) rethrows -> Bool {
        let start = Clock.monotonicNanos()
        while Clock.secondsSince(start) < seconds {
            if try body() { return true }
            usleep(50_000)
        }
        return try body()
    }

    @Test func aDetachedServerAnswersOnItsPublishedPortAndRmLeavesNothing() throws {
        let p = NetworkTests.port(1)
        let id = try DockerVerbsTests.detached(["--network", "bridge", "-p", "\(p):8000", "--name", "verbs-web-\(getpid())"],
                                               ["sh", "-c", "echo served-detached > /tmp/index.html; exec httpd -f -p 8000 -h /tmp"])
        defer { DockerVerbsTests.removeForcibly(id) }
        var body = ""
        #expect(DockerVerbsTests.eventually {
            body = (try? NetworkTests.httpGet("127.0.0.1", p)) ?? ""
            return body.hasSuffix("served-detached\n")
        }, "GET over the published port: \(body.debugDescription)")
        let line = try DockerVerbsTests.psLine(id) ?? ""
        #expect(line.contains("Up ") && line.contains("verbs-web-\(getpid())") && line.contains("container"), "\(line)")
        // The name, and a unique prefix, name the container too.
        #expect(try DockerVerbsTests.swvm(["inspect", "verbs-web-\(getpid())"]).out.contains(id))
        #expect(try DockerVerbsTests.swvm(["inspect", String(id.prefix(8))]).status == 0)
        let rm = try DockerVerbsTests.swvm(["rm", "-f", id])
        #expect(rm.status == 0, "\(rm)")
        #expect(!FS.exists(Path.join(DockerVerbsTests.containers, id)))
        try NetworkTests.expectNothingLeft()
    }

    @Test func runOptionsApplyToADetachedRunAndItsExec() throws {
        let dir = "/tmp/swvm-verbs-volume-\(getpid())"
        try FS.makeDirectories(dir)
        defer { try? FS.removeTree(dir) }
        let id = try DockerVerbsTests.detached(["-v", "\(dir):/data", "-e", "FROM_RUN=42", "--memory", "64m", "--read-only", "-w", "/data"],
                                               ["sh", "-c", "echo $FROM_RUN > out; cat /sys/fs/cgroup/memory/memory.limit_in_bytes; "
                                                + "touch /x 2>/dev/null || echo read-only; exec sleep 300"])
        defer { DockerVerbsTests.removeForcibly(id) }
        #expect(DockerVerbsTests.eventually { (try? FS.readText(Path.join(dir, "out"))) == "42\n" })
        let logs = try DockerVerbsTests.swvm(["logs", id])
        #expect(logs.out == "67108864\nread-only\n", "\(logs)")
        // exec gets the container's directory, environment and mounts.
        let exec = try DockerVerbsTests.swvm(["exec", id, "sh", "-c", "echo $FROM_RUN $(pwd) $(cat /data/out)"])
        #expect(exec.out == "42 /data 42\n", "\(exec)")
    }

    @Test func logsKeepBothStreamsFollowSeesNewLinesAndTailAndTimestamps() throws {
        let id = try DockerVerbsTests.detached([], ["sh", "-c", "echo one; echo err >&2; sleep 2; echo late; printf tail-no-newline"])
        defer { DockerVerbsTests.removeForcibly(id) }
        // Started before "late" is written; returns once the container ends.
        let follow = try DockerVerbsTests.swvm(["logs", "-f", id], timeout: 30)
        #expect(follow.status == 0 && follow.out == "one\nlate\ntail-no-newline" && follow.err == "err\n", "\(follow)")
        let all = try DockerVerbsTests.swvm(["logs", id])
        #expect(all.out == "one\nlate\ntail-no-newline" && all.err == "err\n", "\(all)")
        let tail = try DockerVerbsTests.swvm(["logs", "--tail", "1", id])
        #expect(tail.out == "tail-no-newline" && tail.err == "", "\(tail)")
        let stamped = try DockerVerbsTests.swvm(["logs", "-t", id])
        #expect(stamped.out.split(separator: "\n").allSatisfy { $0.hasPrefix("20") && $0.contains("Z ") }, "\(stamped)")
    }

    @Test func theLogCapHolds() throws {
        // 5000 lines of ~10 bytes, 80+ KiB of records, into a 64 KiB cap.
        let id = try DockerVerbsTests.detached(["--log-opt", "max-size=64k"],
                                               ["sh", "-c", "i=0; while [ $i -lt 5000 ]; do echo line-$i; i=$((i+1)); done"])
        defer { DockerVerbsTests.removeForcibly(id) }
        #expect(try DockerVerbsTests.swvm(["wait", id]).out == "0\n")
        let dir = Path.join(DockerVerbsTests.containers, id)
        let size = ["container.log", "container.log.1"].compactMap { FS.stat(Path.join(dir, $0)) }.reduce(0) { $0 + Int($1.st_size) }
        #expect(size > 0 && size <= 64 << 10, "\(size) bytes of log")
        let lines = try DockerVerbsTests.swvm(["logs", id]).out.split(separator: "\n")
        #expect(lines.last == "line-4999" && lines.first != "line-0" && lines.count > 500, "\(lines.count) lines, \(lines.first ?? "")")
        // Lines are whole and in order: the oldest half went as a block.
        if let first = lines.first, let n = Int(first.dropFirst(5)) {
            #expect(lines == (n..<5000).map { "line-\($0)"[...] })
        }
    }

    @Test func execGivesTheCommandsExitStatusAnd126And127() throws {
        let id = try DockerVerbsTests.detached(["-e", "FROM_RUN=yes"], ["sleep", "300"])
        defer { DockerVerbsTests.removeForcibly(id) }
        #expect(try DockerVerbsTests.swvm(["exec", id, "true"]).status == 0)
        #expect(try DockerVerbsTests.swvm(["exec", id, "sh", "-c", "exit 3"]).status == 3)
        let notExecutable = try DockerVerbsTests.swvm(["exec", id, "/etc/passwd"])
        #expect(notExecutable.status == 126, "\(notExecutable)")
        let notFound = try DockerVerbsTests.swvm(["exec", id, "no-such-command"])
        #expect(notFound.status == 127, "\(notFound)")
        let env = try DockerVerbsTests.swvm(["exec", "-e", "FROM_EXEC=1", "-w", "/tmp", "-u", "1000", String(id.prefix(10)),
                                             "sh", "-c", "echo $FROM_RUN $FROM_EXEC $(pwd) $(id -u)"])
        #expect(env.out == "yes 1 /tmp 1000\n", "\(env)")
        // The process is in the container: its pid namespace.
        #expect(try DockerVerbsTests.swvm(["exec", id, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '"]).out == "sleep 300 ")
    }

    @Test func stopKillsAProcessThatIgnoresTermAfterTheTimeout() throws {
        let id = try DockerVerbsTests.detached([], ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"])
        defer { DockerVerbsTests.removeForcibly(id) }
        let start = Clock.monotonicNanos()
        let stop = try DockerVerbsTests.swvm(["stop", "-t", "1", id])
        let seconds = Clock.secondsSince(start)
        #expect(stop.status == 0 && seconds >= 1 && seconds < 8, "\(stop) after \(seconds) s")
        #expect(try DockerVerbsTests.psLine(id)?.contains("Exited (137)") == true)
        #expect(try DockerVerbsTests.swvm(["wait", id]).out == "137\n")
    }

    @Test func killSendsTheSignalAndPsShowsTheExitCode() throws {
        let id = try DockerVerbsTests.detached([], ["sh", "-c", "trap 'exit 7' USR1; while true; do sleep 0.2; done"])
        defer { DockerVerbsTests.removeForcibly(id) }
        usleep(300_000)   // the trap is set
        #expect(try DockerVerbsTests.swvm(["kill", "-s", "USR1", id]).status == 0)
        #expect(try DockerVerbsTests.swvm(["wait", id]).out == "7\n")
        let line = try DockerVerbsTests.psLine(id) ?? ""
        #expect(line.contains("Exited (7)"), "\(line)")
        #expect(try !DockerVerbsTests.swvm(["ps"]).out.contains(id.prefix(12)), "ps without -a lists running ones only")
        #expect(try DockerVerbsTests.swvm(["kill", id]).status != 0, "kill of a stopped container")
    }

    @Test func rmRefusesARunningContainerAndRmForceRemovesIt() throws {
        let id = try DockerVerbsTests.detached([], ["sleep", "300"])
        defer { DockerVerbsTests.removeForcibly(id) }
        let refused = try DockerVerbsTests.swvm(["rm", id])
        #expect(refused.status == 125 && refused.err.contains("stop it first"), "\(refused)")
        #expect(try DockerVerbsTests.psLine(id)?.contains("Up") == true)
        #expect(try DockerVerbsTests.swvm(["rm", "-f", id]).status == 0)
        #expect(try DockerVerbsTests.psLine(id) == nil)
        #expect(!FS.exists(Path.join(DockerVerbsTests.containers, id)))
    }

    @Test func pauseAndUnpause() throws {
        let id = try DockerVerbsTests.detached([], ["sleep", "300"])
        defer { DockerVerbsTests.removeForcibly(id) }
        #expect(try DockerVerbsTests.swvm(["pause", id]).status == 0)
        #expect(try DockerVerbsTests.psLine(id)?.contains("(Paused)") == true)
        #expect(try DockerVerbsTests.swvm(["exec", id, "true"]).status == 125, "exec in a paused container")
        #expect(try DockerVerbsTests.swvm(["unpause", id]).status == 0)
        let line = try DockerVerbsTests.psLine(id) ?? ""
        #expect(line.contains("Up") && !line.contains("Paused"), "\(line)")
    }

    @Test func rmOptionRemovesTheContainerWhenItExits() throws {
        let id = try DockerVerbsTests.detached(["--rm"], ["sh", "-c", "sleep 0.5"])
        defer { DockerVerbsTests.removeForcibly(id) }
        #expect(DockerVerbsTests.eventually { !FS.exists(Path.join(DockerVerbsTests.containers, id)) })
        #expect(try DockerVerbsTests.psLine(id) == nil)
    }

    @Test func psAllShowsExitedWithItsCode() throws {
        let id = try DockerVerbsTests.detached([], ["sh", "-c", "exit 3"])
        defer { DockerVerbsTests.removeForcibly(id) }
        #expect(try DockerVerbsTests.swvm(["wait", id]).out == "3\n")
        let line = try DockerVerbsTests.psLine(id) ?? ""
        #expect(line.contains("Exited (3)") && line.contains("\"sh -c exit 3\""), "\(line)")
        #expect(try DockerVerbsTests.swvm(["rm", id]).status == 0, "a stopped one is removed without -f")
    }

    @Test func aNameInUseIsRefused() throws {
        let name = "verbs-name-\(getpid())"
        let id = try DockerVerbsTests.detached(["--name", name], ["sleep", "300"])
        defer { DockerVerbsTests.removeForcibly(id) }
        let again = try DockerVerbsTests.swvm(["run", "-d", "--name", name, DockerVerbsTests.image, "--", "true"])
        #expect(again.status == 125 && again.err.contains("already in use") && again.err.split(separator: "\n").count == 1, "\(again)")
        let bad = try DockerVerbsTests.swvm(["run", "-d", "--name", "bad/name", DockerVerbsTests.image, "--", "true"])
        #expect(bad.status == 125, "\(bad)")
        // Names are one namespace for both levels (checked before a VM starts).
        let vm = try DockerVerbsTests.swvm(["run", "-d", "--isolation=vm", "--name", name, DockerVerbsTests.image, "--", "true"])
        #expect(vm.status == 125 && vm.err.contains("already in use"), "\(vm)")
        #expect(try DockerVerbsTests.swvm(["rm", "-f", name]).status == 0)
        #expect(try DockerVerbsTests.swvm(["ps", "-a", "-q", "--no-trunc"]).out.split(separator: "\n").allSatisfy { $0 != id })
    }

    @Test func aFailedStartIsReportedByRunAndLeavesNoContainer() throws {
        let before = try DockerVerbsTests.swvm(["ps", "-a", "-q", "--no-trunc"]).out
        let notFound = try DockerVerbsTests.swvm(["run", "-d", DockerVerbsTests.image, "--", "no-such-command"])
        #expect(notFound.status == 127 && notFound.out.isEmpty && notFound.err.contains("no-such-command"), "\(notFound)")
        let notExecutable = try DockerVerbsTests.swvm(["run", "-d", DockerVerbsTests.image, "--", "/etc/passwd"])
        #expect(notExecutable.status == 126, "\(notExecutable)")
        let badOption = try DockerVerbsTests.swvm(["run", "-d", "--memory", "1k", DockerVerbsTests.image, "--", "true"])
        #expect(badOption.status == 125 && badOption.err.contains("--memory"), "\(badOption)")
        #expect(try DockerVerbsTests.swvm(["ps", "-a", "-q", "--no-trunc"]).out == before)
    }

    @Test func aKilledMonitorThenRmForceLeavesNothing() throws {
        let p = NetworkTests.port(2)
        let id = try DockerVerbsTests.detached(["--network", "bridge", "-p", "\(p):8000"], ["sleep", "300"])
        defer { DockerVerbsTests.removeForcibly(id) }
        let dir = Path.join(DockerVerbsTests.containers, id)
        let service = try JSON.parse(FS.readFile(Path.join(dir, "service.json")))
        let state = try JSON.parse(FS.readFile(Path.join(dir, "state.json")))
        let monitor = pid_t(try #require(service["monitor"]?["pid"]?.int64))
        let initPid = pid_t(try #require(state["init"]?["pid"]?.int64))
        let cgroups = (state["cgroupPaths"]?.array ?? []).compactMap(\.string)
        #expect(!cgroups.isEmpty, "\(state)")
        kill(monitor, SIGKILL)
        #expect(DockerVerbsTests.eventually { !processExists(monitor) || (ProcessStatText.state(monitor) == "Z") })
        // Its init dies with it (parent-death signal); no exit status was kept.
        #expect(DockerVerbsTests.eventually { (try? DockerVerbsTests.psLine(id))??.contains("Exited (unknown)") == true })
        let rm = try DockerVerbsTests.swvm(["rm", "-f", id])
        #expect(rm.status == 0, "\(rm)")
        #expect(DockerVerbsTests.eventually(5) { !processExists(initPid) || ProcessStatText.state(initPid) == "Z" }, "the init is gone")
        for dir in cgroups { #expect(!FS.exists(dir), "cgroup \(dir)") }
        #expect(!FS.exists(dir) && !FS.exists(Path.join(SwvmPaths.runRoot, "runs", id)))
        let mounts = (try? FS.readText("/proc/self/mountinfo")) ?? ""
        #expect(!mounts.contains(id), "a mount of the container is left")
        try NetworkTests.expectNothingLeft()
    }
}

/// A process's state letter from /proc/PID/stat.
enum ProcessStatText {
    static func state(_ pid: pid_t) -> Character? {
        guard let text = try? FS.readText("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return nil }
        return text[text.index(after: close)...].split(separator: " ").first?.first
    }
}
