#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase

/// Two execs whose children the workload stops before their execve, one
/// from the exec zygote and one from guest-init's own clone (the zygote
/// being held), and what each of them may hold up. A child guest-init
/// clones itself is a fork of guest-init: until it closes them, it holds
/// copies of guest-init's descriptors, among them the ends guest-init
/// kept of the zygote's request and every running exec's stdin. Stopped
/// there, it kept another exec from ever starting (its report pipe never
/// reached EOF) and a `-i` exec's stdin from ever ending. Real VM, real
/// guest-init, exec-stopper (Tests/Fixtures) as the hostile workload.
@Suite(.serialized, .enabled(if: Harness.vmReady, "needs /dev/kvm, the guest kernel and guest-init"))
struct ExecStopRaceTests {
    typealias Background = DetachedVMExecFailureTests.Background

    /// A FIFO on the host and a process holding its write end open: a
    /// reader of the FIFO sees EOF once `close()` ends the holder.
    struct HeldFIFO {
        let path: String
        let holder: pid_t

        static func make(_ path: String) throws -> HeldFIFO {
            guard mkfifo(path, 0o600) == 0 else { throw SwvmError.errno("mkfifo \(path)") }
            let holder = try Spawn.start("/bin/sh", argv: ["sh", "-c", "exec 3> \(path); exec sleep 3600"],
                                         actions: [.open(0, path: "/dev/null", flags: O_RDONLY)])
            return HeldFIFO(path: path, holder: holder)
        }

        func close() {
            kill(holder, SIGKILL)
            _ = waitForExit(holder)
        }
    }

    /// Exec A's child is stopped while the zygote spawns it (the zygote is
    /// then held in its vfork, so later execs take guest-init's own
    /// clone); an `-i` exec C then runs (own clone) with its stdin open;
    /// exec B's child, an own clone, is stopped too. B's child must hold
    /// nothing of A's or C's: once A's child is let go, A starts and ends
    /// with its own output and status, and C sees its stdin's EOF and
    /// ends, both while B's child is still stopped; B then ends after its
    /// own SIGCONT. Before the fix, A never reported its start and C never
    /// saw EOF until B's child went on.
    @Test func aStoppedOwnCloneChildHoldsUpNoOtherExec() throws {
        let id = try DetachedVMExecFailureTests.stopperVM()
        defer { DockerVerbsTests.removeForcibly(id) }
        let scratch = "/tmp/swvm-exec-race-\(getpid())"
        try FS.makeDirectories(scratch)
        defer { try? FS.removeTree(scratch) }

        // A: the first exec of a detached VM comes from the zygote.
        let (a, aPid) = try DetachedVMExecFailureTests.catchAnExec(id, scratch: Path.join(scratch, "a"))
        defer { a.end() }
        let fifo = try HeldFIFO.make(Path.join(scratch, "stdin"))
        defer { fifo.close() }
        let c = try Background.start("\(Harness.swvm) exec -i \(id) sh -c 'echo c-running; cat; echo c-done' < \(fifo.path)",
                                     in: Path.join(scratch, "c"))
        defer { c.end() }
        try #require(DockerVerbsTests.eventually(120) { c.out.contains("c-running") || c.status != nil }, "C: \(c.err)")
        let (b, bPid) = try DetachedVMExecFailureTests.catchAnExec(id, scratch: Path.join(scratch, "b"))
        defer { b.end() }
        #expect(aPid != bPid)

        #expect(try DetachedVMTests.swvm(["exec", id, "kill", "-CONT", aPid], timeout: 120).status == 0)
        #expect(a.wait() == 9 && a.out == "resumed\n", "A, with B's child stopped: \(a.status.map(String.init) ?? "none") \(a.err)")
        fifo.close()
        #expect(c.wait() == 0 && c.out == "c-running\nc-done\n", "C, with B's child stopped: \(c.status.map(String.init) ?? "none") \(c.out) \(c.err)")
        let state = try DetachedVMTests.swvm(["exec", id, "sh", "-c", "grep State /proc/\(bPid)/status"], timeout: 120)
        #expect(state.out == "State:\tT (stopped)\n" && b.status == nil, "B's child is still stopped: \(state)")

        #expect(try DetachedVMTests.swvm(["exec", id, "kill", "-CONT", bPid], timeout: 120).status == 0)
        #expect(b.wait() == 9 && b.out == "resumed\n", "B: \(b.status.map(String.init) ?? "none") \(b.err)")
        #expect(try DetachedVMTests.swvm(["kill", "-s", "TERM", id]).status == 0)
        let waited = try DetachedVMTests.swvm(["wait", id], timeout: 120)
        #expect(waited.status == 0 && waited.out == "7\n", "\(waited)")
    }
}
