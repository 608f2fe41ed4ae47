#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase
import NativeThreads
import VMControl

/// Exec and control of a running micro-VM through the VMM's control
/// socket (VMControl): real VMs running `sleep 60` in the background.
@Suite(.serialized, .enabled(if: Harness.vmReady, "needs /dev/kvm, the guest kernel and guest-init"))
struct VMExecTests {
    /// `swvm run --isolation=vm IMAGE -- COMMAND` in the background, once
    /// its workload runs (ps answers); killed and reaped by `stop`, which
    /// every test calls on every path (defer).
    final class RunningVM {
        let pid: pid_t
        let socket: String
        let log: String
        private var reaped: Int32?

        init(_ command: [String] = ["sleep", "60"], environment: [String] = [], waitForWorkload: Bool = true) throws {
            log = Path.join(Harness.repo, ".build/test-fixtures/vmexec-\(randomHex(4)).log")
            try FS.makeDirectories(Path.dirname(log))
            pid = try Containerd.spawn(["env"] + environment + [Harness.swvm, "run", "--isolation=vm", Harness.exampleImage, "--"] + command,
                                       log: log)
            var found: String?
            let start = Clock.monotonicNanos()
            while found == nil && Clock.secondsSince(start) < 120 {
                found = VMControl.socketPath(vmmPID: pid)
                if found == nil { usleep(100_000) }
            }
            guard let found else {
                RunningVM.kill(pid)
                throw SwvmError(.internalError, "no control socket for VMM \(pid): \((try? FS.readText(log)) ?? "")")
            }
            socket = found
            if waitForWorkload { try waitUntilRunning() }
        }

        /// ps answers once guest-init reported the workload started.
        private func waitUntilRunning() throws {
            let start = Clock.monotonicNanos()
            while Clock.secondsSince(start) < 120 {
                if (try? VMControl.ps(socket: socket)) != nil { return }
                usleep(200_000)
            }
            stop()
            throw SwvmError(.internalError, "the workload never ran: \((try? FS.readText(log)) ?? "")")
        }

        /// The VMM's exit status once it ended, waiting up to `seconds`.
        func exitStatus(within seconds: Double) -> Int32? {
            let start = Clock.monotonicNanos()
            while reaped == nil && Clock.secondsSince(start) < seconds {
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid { reaped = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f) }
                else { usleep(100_000) }
            }
            return reaped
        }

        var alive: Bool { exitStatus(within: 0) == nil }

        func stop() {
            if reaped == nil { RunningVM.kill(pid); reaped = -1 }
            unlink(log)
        }

        static func kill(_ pid: pid_t) {
            Glibc.kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
    }

    /// An exec with pipes for its stdio: its status (or the thrown
    /// error's exit status, 127 for a missing binary), stdout and stderr.
    static func run(_ socket: String, _ request: ExecRequest, input: String = "") throws -> (status: Int32, out: String, err: String) {
        let session: ExecSession, out: Int32, err: Int32
        do {
            (session, out, err) = try start(socket, request, input: input)
        } catch let e as SwvmError where e.code == .commandNotFound || e.code == .commandNotExecutable {
            return (e.exitStatus, "", e.message)
        }
        let status: Int32
        do { status = try session.wait() } catch let e as SwvmError { status = e.exitStatus }
        return (status, readAll(out), readAll(err))
    }

    /// Starts an exec; the caller reads its stdout and stderr (read ends).
    static func start(_ socket: String, _ request: ExecRequest, input: String = "") throws -> (ExecSession, Int32, Int32) {
        var i: [Int32] = [-1, -1], o: [Int32] = [-1, -1], e: [Int32] = [-1, -1]
        guard pipe(&i) == 0, pipe(&o) == 0, pipe(&e) == 0 else { throw SwvmError.errno("pipe") }
        for fd in i + o + e { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        defer { close(i[0]); close(o[1]); close(e[1]) }   // the VMM holds its own copies
        _ = Array(input.utf8).withUnsafeBytes { write(i[1], $0.baseAddress, $0.count) }
        close(i[1])
        do {
            return (try VMControl.startExec(socket: socket, request, stdio: ExecStdio(input: i[0], output: o[1], error: e[1])), o[0], e[0])
        } catch let error as SwvmError {
            close(o[0])
            close(e[0])
            throw error
        }
    }

    /// Reads `fd` to EOF and closes it.
    static func readAll(_ fd: Int32) -> String {
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buf, buf.count)
            if n > 0 { bytes += buf[0..<n] } else if n < 0 && errno == EINTR { continue } else { break }
        }
        close(fd)
        return String(decoding: bytes, as: UTF8.self)
    }

    @Test func execStatusesUsersStdinAndTerminal() throws {
        let vm = try RunningVM()
        defer { vm.stop() }
        #expect(try VMExecTests.run(vm.socket, ExecRequest(args: ["true"])).status == 0)
        let three = try VMExecTests.run(vm.socket, ExecRequest(args: ["sh", "-c", "echo out; echo err >&2; exit 3"]))
        #expect(three.status == 3 && three.out == "out\n" && three.err == "err\n", "\(three)")
        let missing = try VMExecTests.run(vm.socket, ExecRequest(args: ["/no/such/binary"]))
        #expect(missing.status == 127 && missing.err.contains("/no/such/binary"), "\(missing)")
        let user = try VMExecTests.run(vm.socket, ExecRequest(args: ["id", "-u"], uid: 1234, gid: 1234))
        #expect(user.status == 0 && user.out == "1234\n", "\(user)")
        let cat = try VMExecTests.run(vm.socket, ExecRequest(args: ["cat"], interactive: true), input: "hello from stdin\n")
        #expect(cat.status == 0 && cat.out == "hello from stdin\n", "\(cat)")
        let tty = try VMExecTests.run(vm.socket, ExecRequest(args: ["sh", "-c", "test -t 0 && test -t 1 && stty size"], terminal: (rows: 33, cols: 101)))
        #expect(tty.status == 0 && tty.out.contains("33 101"), "\(tty)")
        // A resize reaches the exec's terminal while it runs.
        let (resized, out, err) = try VMExecTests.start(vm.socket, ExecRequest(args: ["sh", "-c", "sleep 2; stty size"], terminal: (rows: 10, cols: 20)))
        try resized.resize(rows: 40, cols: 120)
        #expect(try resized.wait() == 0)
        let size = VMExecTests.readAll(out)
        _ = VMExecTests.readAll(err)
        #expect(size.contains("40 120"), "\(size)")
        // The exec runs in the workload's pid namespace: PID 1 is its sleep.
        let ns = try VMExecTests.run(vm.socket, ExecRequest(args: ["cat", "/proc/1/cmdline"]))
        #expect(ns.out.hasPrefix("sleep"), "\(ns)")
        #expect(vm.alive)
    }

    @Test func twoExecsAtOnceAndPs() throws {
        let vm = try RunningVM()
        defer { vm.stop() }
        let (slow, slowOut, slowErr) = try VMExecTests.start(vm.socket, ExecRequest(args: ["sh", "-c", "sleep 3; echo slow"]))
        let fast = try VMExecTests.run(vm.socket, ExecRequest(args: ["sh", "-c", "echo fast; exit 4"]))
        #expect(fast.status == 4 && fast.out == "fast\n", "\(fast)")
        let processes = try VMControl.ps(socket: vm.socket)
        #expect(processes.contains { $0.pid == 1 && $0.command == "sleep 60" }, "\(processes)")
        #expect(processes.contains { $0.pid == slow.pid && $0.command.hasPrefix("sh -c") }, "\(processes)")
        // The slow one was running all along; it ends on its own.
        #expect(try slow.wait() == 0)
        #expect(VMExecTests.readAll(slowOut) == "slow\n")
        _ = VMExecTests.readAll(slowErr)
    }

    @Test func pauseStopsTheGuestAndResumeRestartsIt() throws {
        let vm = try RunningVM()
        defer { vm.stop() }
        let (counter, out, err) = try VMExecTests.start(vm.socket, ExecRequest(args: ["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i; sleep 0.1; done"]))
        defer { close(out); close(err) }
        _ = fcntl(out, F_SETFL, O_NONBLOCK)
        func drain() -> Int {
            var total = 0
            var buf = [UInt8](repeating: 0, count: 4096)
            while case let n = read(out, &buf, buf.count), n > 0 { total += n }
            return total
        }
        usleep(2_000_000)
        #expect(drain() > 0, "the counter runs")
        try VMControl.pause(socket: vm.socket)
        usleep(500_000)
        _ = drain()   // what was on its way before the pause
        usleep(2_000_000)
        #expect(drain() == 0, "the counter advanced while paused")
        // A paused guest cannot answer: an exec is refused, not left hanging.
        #expect {
            _ = try VMExecTests.run(vm.socket, ExecRequest(args: ["true"]))
        } throws: { ($0 as? SwvmError)?.message.contains("the VM is paused") == true }
        try VMControl.resume(socket: vm.socket)
        usleep(2_000_000)
        #expect(drain() > 0, "the counter runs again")
        try counter.signal(SIGKILL)
        #expect(try counter.wait() == 128 + SIGKILL)
    }

    @Test func signalAllEndsTheWorkload() throws {
        let vm = try RunningVM()
        defer { vm.stop() }
        let (other, out, err) = try VMExecTests.start(vm.socket, ExecRequest(args: ["sleep", "100"]))
        defer { close(out); close(err) }
        try VMControl.signalAll(socket: vm.socket, signal: SIGKILL)
        #expect(vm.exitStatus(within: 60) == 128 + SIGKILL)
        _ = try? other.wait()   // killed too: its exit, or the VM's end, whichever the guest reported first
    }

    /// A guest that answers execs and ps with frames that break the
    /// protocol: each request gets a clear error, the VMM runs on.
    @Test func aGuestThatAnswersGarbageGivesAnError() throws {
        let cache = try HostileGuestTests.privateCache()
        defer { try? FS.removeTree(cache) }
        let vm = try RunningVM(["exec-garbage"], environment: ["SWVM_GUEST_INIT=\(HostileGuestTests.initPath)", "SWVM_CACHE=\(cache)"],
                               waitForWorkload: false)
        defer { vm.stop() }
        var psError: SwvmError?
        let start = Clock.monotonicNanos()
        while psError == nil && Clock.secondsSince(start) < 120 {
            do { _ = try VMControl.ps(socket: vm.socket) } catch let e as SwvmError where !e.message.contains("not running") { psError = e } catch {}
            usleep(200_000)
        }
        #expect(psError?.message.contains("the guest broke the control protocol: a malformed process list") == true, "\(String(describing: psError))")
        for _ in 0..<2 {
            let (session, out, err) = try VMExecTests.start(vm.socket, ExecRequest(args: ["true"]))
            defer { close(out); close(err) }
            #expect {
                _ = try session.wait()
            } throws: { ($0 as? SwvmError)?.message.contains("the guest broke the exec protocol: output on stream 7") == true }
        }
        #expect(vm.alive)
    }
}
