#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import OCIRuntime
@testable import SwvmBase

/// `kill` of a container whose init has exited, as containerd's runc v2
/// shim uses it: the CRI kills an exited container before deleting it and
/// takes runc's "container not running" as "already gone" (any other text
/// and the exit is never handled); after an init that shared its pid
/// namespace exits, the shim runs `kill --all` to end what it left.
@Suite struct KillStoppedTests {
    @Test func killingAStoppedContainerSaysRuncsWords() throws {
        let root = try ScratchRoot(), bundle = try ScratchBundle()
        let l = shellLifecycle(root)
        try l.create("c1", CreateOptions(bundle: bundle.path))
        defer { try? l.delete("c1", force: true) }
        try l.start("c1")
        try l.kill("c1", signal: SIGKILL, all: false)
        for _ in 0..<100 where (try l.state("c1")).status != .stopped { usleep(10_000) }
        #expect(try l.state("c1").status == .stopped)
        do {
            try l.kill("c1", signal: SIGKILL, all: false)
            Issue.record("kill of a stopped container succeeded")
        } catch let e as SwvmError {
            #expect(e.message.contains("container not running"), "containerd's checkKillError matches this text: \(e)")
        }
    }

    /// ShellEngine's "cgroup" is its list of pids: a process put there
    /// after the init has exited stands for one the init left behind. It
    /// is reaped only after the delete (which signals that list), so its
    /// pid is never another process's.
    @Test func killAllOfAStoppedContainerSignalsWhatIsLeft() throws {
        let root = try ScratchRoot(), bundle = try ScratchBundle()
        let l = shellLifecycle(root)
        try l.create("c1", CreateOptions(bundle: bundle.path))
        try l.start("c1")
        try l.kill("c1", signal: SIGKILL, all: false)
        for _ in 0..<100 where (try l.state("c1")).status != .stopped { usleep(10_000) }

        let leftover = try Self.spawnSleep()
        defer {
            try? l.delete("c1", force: true)
            kill(leftover, SIGKILL)
            _ = waitForExit(leftover)
        }
        do {
            let lock = try root.store.lock("c1")
            var record = try #require(try root.store.read("c1"))
            record.cgroupPaths.append("\(leftover)")
            try root.store.write(record, lock)
        }
        try l.kill("c1", signal: SIGTERM, all: true)
        for _ in 0..<100 where ProcessStat.read(leftover)?.state != "Z" { usleep(10_000) }
        #expect(ProcessStat.read(leftover)?.state == "Z", "kill --all ended the process left in the stopped container")
    }

    /// `sleep 100` with no signal blocked or ignored (the test process
    /// blocks some, and a child would inherit that).
    static func spawnSleep() throws -> pid_t {
        do { return try Spawn.start("/bin/sleep", argv: ["sleep", "100"]) } catch { throw SwvmError.errno("spawn /bin/sleep", error.errno) }
    }
}
