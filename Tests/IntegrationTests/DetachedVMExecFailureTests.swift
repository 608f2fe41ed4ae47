#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase

/// `swvm exec` into a detached VM when things go wrong (twelfth session):
/// output that cannot be written where the caller sent it, a detached
/// exec (-d) whose caller redirected its output to a file, and an exec's
/// child that the workload stops before its execve. Real VMs and real
/// guest-init; every test removes its VM with `rm -f` on every path.
@Suite(.serialized, .enabled(if: Harness.vmReady, "needs /dev/kvm, the guest kernel and guest-init"))
struct DetachedVMExecFailureTests {
    /// A command run by sh in the background: its stdout, stderr and exit
    /// status land in files of `dir` (the status last, once it ended).
    struct Background {
        let pid: pid_t
        let dir: String

        static func start(_ command: String, in dir: String) throws -> Background {
            try FS.makeDirectories(dir)
            let script = "\(command) > \(dir)/out 2> \(dir)/err; echo $? > \(dir)/status.tmp; mv \(dir)/status.tmp \(dir)/status"
            let pid = try Spawn.start("/bin/sh", argv: ["sh", "-c", script], actions: [.open(0, path: "/dev/null", flags: O_RDONLY)])
            return Background(pid: pid, dir: dir)
        }

        /// The exit status once it ended, else nil.
        var status: Int32? { (try? FS.readText(Path.join(dir, "status"))).flatMap { Int32($0.trimmingCharacters(in: "\n")) } }
        var out: String { (try? FS.readText(Path.join(dir, "out"))) ?? "" }
        var err: String { (try? FS.readText(Path.join(dir, "err"))) ?? "" }

        /// Waits (polling) up to `seconds` for its end; its status.
        func wait(_ seconds: Double = 120) -> Int32? {
            _ = DockerVerbsTests.eventually(seconds) { status != nil }
            return status
        }

        /// The command's process (sh's child).
        var child: pid_t? {
            (try? FS.readText("/proc/\(pid)/task/\(pid)/children")).flatMap { $0.split(separator: " ").first.flatMap { pid_t($0) } }
        }

        func end() {
            if status == nil { kill(pid, SIGKILL) }
            _ = waitForExit(pid)
        }
    }

    /// A tmpfs of `size` mounted on a new directory, for a full disk.
    static func smallTmpfs(_ size: String) throws -> String {
        let dir = "/tmp/swvm-exec-full-\(getpid())-\(Clock.monotonicNanos())"
        try FS.makeDirectories(dir)
        guard mount("tmpfs", dir, "tmpfs", 0, "size=\(size)") == 0 else {
            let e = errno
            rmdir(dir)
            throw SwvmError.errno("mount a tmpfs on \(dir)", e)
        }
        return dir
    }

    static func removeTmpfs(_ dir: String) {
        umount2(dir, Int32(MNT_DETACH))
        rmdir(dir)
    }

    static func fileSize(_ path: String) -> Int { FS.stat(path).map { Int($0.st_size) } ?? -1 }

    /// Output for a regular file that cannot be written (ExecFilePump):
    /// swvm exec drained it all the same (the guest's writer finished: its
    /// last line on the caller's stderr), said which stream, which file
    /// and why, and exited 125 (swvm's own failure, not the command's 3),
    /// never hanging. A full tmpfs (ENOSPC) and the caller's RLIMIT_FSIZE
    /// (EFBIG, not SIGXFSZ killing swvm exec), on stdout and on stderr.
    /// And a detached exec (-d) drops its output as `docker exec -d`
    /// does, at the container level and the VM level alike: the caller's
    /// files stay empty (the VMM, which may not write regular files,
    /// used to get them and dropped every byte, silently), the process
    /// runs, and a missing command still fails at once.
    @Test func outputThatCannotBeWrittenFailsTheExecAndADetachedExecDropsItsOutput() throws {
        let id = try DetachedVMTests.detachedVM([], ["sleep", "3600"])
        defer { DockerVerbsTests.removeForcibly(id) }
        let full = try Self.smallTmpfs("64k")
        defer { Self.removeTmpfs(full) }
        let writer = "sh -c 'head -c 300000 /dev/zero; echo wrote-it-all >&2; exit 3'"
        let r = try Command.run(["/bin/sh", "-c", "\(Harness.swvm) exec \(id) \(writer) > \(full)/out"], timeout: 120)
        #expect(r.status == 125 && !r.timedOut, "\(r)")
        #expect(r.err.contains("wrote-it-all"), "the guest's writer finished: \(r)")
        #expect(r.err.contains("stdout") && r.err.contains("\(full)/out (fd 1)") && r.err.contains("No space left on device"), "\(r)")
        #expect(r.err.contains("exited with status 3"), "\(r)")
        #expect(Self.fileSize("\(full)/out") <= 64 << 10, "\(Self.fileSize("\(full)/out"))")

        // The stream that fails is stderr, where swvm's own message goes too: the status says it.
        unlink("\(full)/out")
        let e = try Command.run(["/bin/sh", "-c", "\(Harness.swvm) exec \(id) sh -c 'head -c 300000 /dev/zero >&2; echo fine' 2> \(full)/err"],
                                timeout: 120)
        #expect(e.status == 125 && e.out == "fine\n", "\(e)")
        unlink("\(full)/err")

        let big = "/tmp/swvm-exec-fsize-\(getpid())"
        defer { unlink(big) }
        let f = try Command.run(["/bin/sh", "-c", "ulimit -f 64; exec \(Harness.swvm) exec \(id) \(writer) > \(big)"], timeout: 120)
        #expect(f.status == 125 && f.err.contains("wrote-it-all") && f.err.contains("File too large") && f.err.contains("\(big) (fd 1)"), "\(f)")

        let after = try DetachedVMTests.swvm(["exec", id, "sh", "-c", "echo still-fine; exit 5"])
        #expect(after.status == 5 && after.out == "still-fine\n", "\(after)")

        try Self.detachedExecDropsItsOutput(id, level: "vm")
        let container = try DockerVerbsTests.detached([], ["sleep", "3600"])
        defer { DockerVerbsTests.removeForcibly(container) }
        try Self.detachedExecDropsItsOutput(container, level: "container")
    }

    /// exec -d with stdout and stderr into regular files: nothing printed,
    /// nothing in the files, status 0, and the process ran.
    static func detachedExecDropsItsOutput(_ id: String, level: String) throws {
        let out = "/tmp/swvm-exec-d-\(getpid())", err = out + ".err"
        defer { unlink(out); unlink(err) }
        let d = try Command.run(["/bin/sh", "-c",
            "\(Harness.swvm) exec -d \(id) sh -c 'echo to-stdout; echo to-stderr >&2; echo ran > /tmp/detached-ran' > \(out) 2> \(err)"],
            timeout: 120)
        #expect(d.status == 0 && d.out.isEmpty && d.err.isEmpty, "\(level): \(d)")
        #expect(DockerVerbsTests.eventually(30) {
            (try? DetachedVMTests.swvm(["exec", id, "cat", "/tmp/detached-ran"]).out) == "ran\n"
        }, "\(level): the detached process ran")
        #expect(Self.fileSize(out) == 0 && Self.fileSize(err) == 0, "\(level): \(Self.fileSize(out)) and \(Self.fileSize(err)) bytes")
        let missing = try DetachedVMTests.swvm(["exec", "-d", id, "no-such-binary"])
        #expect(missing.status == 127 && missing.out.isEmpty, "\(level): \(missing)")
        let tty = try DetachedVMTests.swvm(["exec", "-d", "-t", id, "true"])
        #expect(tty.status == 125 && tty.err.contains("-d -t"), "\(level): \(tty)")
    }

    /// Tests/Fixtures/exec-stopper, built static for the guest.
    static func stopperDirectory() throws -> String {
        let dir = Path.join(Harness.repo, ".build/test-fixtures/exec-stopper")
        try FS.makeDirectories(dir)
        let cc = try Subprocess.run(["gcc", "-static", "-O2", "-o", Path.join(dir, "exec-stopper"),
                                     Path.join(Harness.repo, "Tests/Fixtures/exec-stopper/exec-stopper.c")])
        try #require(cc.status == 0, "compiling exec-stopper.c: \(cc.output)")
        return dir
    }

    /// A detached VM whose workload (a shell, PID 1 of its namespace)
    /// starts exec-stopper on SIGUSR2 and exits 7 on SIGTERM, after the
    /// traps in `moreTraps`; returned once it says its traps are set
    /// (until then a signal would be dropped: PID 1 ignores what it has
    /// no handler for). The caller removes it.
    static func stopperVM(moreTraps: String = "") throws -> String {
        let fixtures = try stopperDirectory()
        let script = moreTraps + "trap '/fx/exec-stopper &' USR2; trap 'exit 7' TERM; echo traps-set; "
            + "while :; do sleep 3600 & wait $!; done"
        let id = try DetachedVMTests.detachedVM(["-v", "\(fixtures):/fx:ro"], ["sh", "-c", script])
        let ready = DockerVerbsTests.eventually(30) { (try? DetachedVMTests.swvm(["logs", id]).out.contains("traps-set")) == true }
        if !ready { DockerVerbsTests.removeForcibly(id) }
        try #require(ready, "the workload never said its traps were set")
        return id
    }

    /// A PATH of 300 missing directories before /bin: the child's stats
    /// before its execve make the window in which exec-stopper finds it
    /// wide; the outcome does not depend on it (an exec it misses ends,
    /// and the next one is tried).
    static let longPath = (0..<300).map { "/no\($0)" }.joined(separator: ":") + ":/bin"

    /// The pids exec-stopper reported stopped so far (the VM's log).
    static func stopped(_ id: String) -> [String] {
        let log = (try? DetachedVMTests.swvm(["logs", id]).out) ?? ""
        return log.split(separator: "\n").filter { $0.hasPrefix("stopped ") }.map { String($0.dropFirst(8)) }
    }

    /// Starts an exec-stopper in the workload (its USR2 trap) and execs
    /// until one is stopped before its execve: that exec, still waiting,
    /// and the stopped child's pid in the workload's namespace.
    static func catchAnExec(_ id: String, scratch: String) throws -> (Background, String) {
        let before = stopped(id).count
        #expect(try DetachedVMTests.swvm(["kill", "-s", "USR2", id]).status == 0)
        for attempt in 0..<20 {
            let exec = try Background.start("\(Harness.swvm) exec -e PATH=\(longPath) \(id) sh -c 'echo resumed; exit 9'",
                                            in: Path.join(scratch, "\(before)-\(attempt)"))
            var caught: String?
            _ = DockerVerbsTests.eventually(120) {
                caught = stopped(id).dropFirst(before).first
                return caught != nil || exec.status != nil
            }
            if let caught { return (exec, caught) }
            // Ended without being stopped (or stopped just as it ended): the next one.
            exec.end()
            #expect(exec.status == 9, "an exec exec-stopper missed: \(exec.status.map(String.init) ?? "none") \(exec.err)")
        }
        throw SwvmError(.internalError, "exec-stopper stopped none of 20 execs")
    }

    /// The workload (root in the VM) SIGSTOPs an exec's child before its
    /// execve (exec-stopper). guest-init waited for that child's report
    /// and the zygote's reply, and with them the whole VM's control: no
    /// other exec, no signal, no exit report. Now the stopped exec waits
    /// alone, with no deadline: another exec runs (guest-init's own clone,
    /// the zygote being held in its vfork), the workload gets a signal,
    /// the stopped child is seen stopped with guest-init's comm, and after
    /// SIGCONT that exec ends with its own output and status. A second
    /// one stopped does not keep its caller from being interrupted
    /// (SIGINT: 130; signals stay blocked for the exec, which swvm exec
    /// waited for without reading them), nor the workload's exit from
    /// being reported.
    @Test func anExecStoppedBeforeItsExecveHoldsUpNothingElse() throws {
        let id = try Self.stopperVM(moreTraps: "trap 'echo got-usr1' USR1; ")
        defer { DockerVerbsTests.removeForcibly(id) }
        let scratch = "/tmp/swvm-exec-stopped-\(getpid())"
        defer { try? FS.removeTree(scratch) }

        let (held, pid) = try Self.catchAnExec(id, scratch: scratch)
        defer { held.end() }
        let other = try DetachedVMTests.swvm(["exec", id, "sh", "-c", "echo another; exit 4"], timeout: 120)
        #expect(other.status == 4 && other.out == "another\n" && !other.timedOut, "\(other)")
        let state = try DetachedVMTests.swvm(["exec", id, "sh", "-c", "cat /proc/\(pid)/comm; grep State /proc/\(pid)/status"], timeout: 120)
        #expect(state.out == "init\nState:\tT (stopped)\n", "\(state)")
        #expect(try DetachedVMTests.swvm(["kill", "-s", "USR1", id]).status == 0)
        #expect(DockerVerbsTests.eventually(30) { (try? DetachedVMTests.swvm(["logs", id]).out.contains("got-usr1")) == true })
        #expect(held.status == nil, "the stopped exec ended: \(held.err)")
        let cont = try DetachedVMTests.swvm(["exec", id, "kill", "-CONT", pid], timeout: 120)
        #expect(cont.status == 0, "\(cont)")
        #expect(held.wait() == 9 && held.out == "resumed\n", "\(held.status.map(String.init) ?? "none"): \(held.out) \(held.err)")

        // Its caller can be interrupted while it waits (Ctrl-C: 130, said).
        let (second, _) = try Self.catchAnExec(id, scratch: scratch)
        defer { second.end() }
        let caller = try #require(second.child)
        kill(caller, SIGINT)
        #expect(second.wait(30) == 130 && second.err.contains("interrupted by signal 2"), "\(second.err)")
        #expect(try DetachedVMTests.swvm(["kill", "-s", "TERM", id]).status == 0)
        let waited = try DetachedVMTests.swvm(["wait", id], timeout: 120)
        #expect(waited.status == 0 && waited.out == "7\n", "\(waited)")
    }
}
