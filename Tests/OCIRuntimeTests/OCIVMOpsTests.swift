#if canImport(Glibc)
import Glibc
#endif
import CConfinement
import Testing
import TestSupport
@testable import OCIRuntime
@testable import SwvmBase

/// runc's exec, kill --all, ps, pause and resume on a running VM-level
/// container (a `swvm-vm` link): each reaches the guest through the VMM's
/// control socket. Every test deletes its container on every path and
/// checks that nothing is left (VMBundleLifecycleTests.leftovers).
@Suite(.serialized, .enabled(if: VMReadiness.ready, "needs /dev/kvm, the guest kernel and guest-init"))
struct OCIVMOpsTests {
    let life = VMBundleLifecycleTests()

    /// `swvm-vm --root ROOT args...` with its output (the container's own
    /// stdio, held by the VMM, went to files at create).
    func run(_ root: ScratchRoot, _ args: [String], stdin: [UInt8]? = nil) throws -> CommandResult {
        let link = Path.join(root.path, "swvm-vm")
        if FS.readLink(link) == nil { try sys("symlink \(link)") { symlink(Binary.swvm, link) } }
        return try Command.run([link, "--root", root.path] + args, stdin: stdin, timeout: 120)
    }

    /// A running VM container whose workload counts in /tmp/count and
    /// notes a SIGTERM in /tmp/term.
    /// The bundle must outlive the test: the VM's root is its rootfs.
    func started(_ root: ScratchRoot, _ id: String) throws -> (vmm: ProcessIdentity, bundle: RealBundle) {
        let bundle = try RealBundle(args: ["sh", "-c", "trap 'echo term > /tmp/term' TERM; i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done"]) { config in
            config.setting("root", (config["root"] ?? .object([])).setting("readonly", false))
        }
        #expect(try life.vm(root, ["create", "--bundle", bundle.path, id]) == 0, "\(life.output(root))")
        #expect(try life.vm(root, ["start", id]) == 0, "\(life.output(root))")
        return (try #require(try root.store.read(id)?.initProcess), bundle)
    }

    /// A started container (see `started`) for `body`; afterwards it is
    /// deleted (`delete --force`, unless `body` deleted it) and nothing of
    /// it may be left. Deleted on every path.
    func withStarted(_ name: String, _ body: (ScratchRoot, String) throws -> Void) throws {
        let root = try ScratchRoot(), id = VMBundleLifecycleTests.uniqueID(name)
        defer { _ = try? life.vm(root, ["delete", "--force", id]) }
        let (vmm, bundle) = try started(root, id)
        try withExtendedLifetime(bundle) { try body(root, id) }
        if (try? root.store.read(id)) != nil { #expect(try run(root, ["delete", "--force", id]).status == 0) }
        life.expectNothingLeft(root, id: id, vmm: vmm)
    }

    func count(_ root: ScratchRoot, _ id: String) throws -> Int {
        Int(try run(root, ["exec", id, "cat", "/tmp/count"]).out.trimmedForTest) ?? -1
    }

    @Test func execStatusStdioUserEnvCwdAndAMissingBinary() throws {
        try withStarted("exec") { root, id in
            let e = try run(root, ["exec", "--env", "GREETING=hi", "--cwd", "/tmp", id, "sh", "-c",
                                   "echo $GREETING $(pwd) $(uname -r); echo to-err >&2; exit 3"])
            #expect(e.status == 3 && e.out.hasPrefix("hi /tmp ") && !e.out.contains(HostKernel.release) && e.err.contains("to-err"), "\(e)")
            let user = try run(root, ["exec", "--user", "1000:1001", id, "id"])
            #expect(user.status == 0 && user.out.hasPrefix("uid=1000(") && user.out.contains(" gid=1001"), "\(user)")
            let input = try run(root, ["exec", id, "cat"], stdin: Array("piped in\n".utf8))
            #expect(input.status == 0 && input.out == "piped in\n", "\(input)")
            let missing = try run(root, ["exec", id, "/no/such/program"])
            #expect(missing.status == 255 && missing.err.contains("/no/such/program"), "\(missing)")
            // runc's process.json form.
            let process = Path.join(root.path, "process.json")
            try FS.writeText(process, #"{"args":["sh","-c","echo from-json; exit 5"],"cwd":"/","env":["PATH=/bin:/usr/bin"],"user":{"uid":0,"gid":0}}"#)
            let json = try run(root, ["exec", "--process", process, id])
            #expect(json.status == 5 && json.out == "from-json\n", "\(json)")
        }
    }

    /// --detach: exec returns while the process runs; --pid-file names the
    /// relay, a host process that exits with the exec's status.
    @Test func detachedExecAndItsPidFile() throws {
        try withStarted("detach") { root, id in
            let pidFile = Path.join(root.path, "exec.pid"), out = Path.join(root.path, "exec.out")
            let r = try Command.run(["sh", "-c", "exec \"$0\" \"$@\" </dev/null >\(out) 2>&1", Path.join(root.path, "swvm-vm"), "--root", root.path,
                                     "exec", "--detach", "--pid-file", pidFile, id, "sh", "-c", "sleep 2; echo late; exit 6"], timeout: 60)
            #expect(r.status == 0, "\(r) \((try? FS.readText(out)) ?? "")")
            let relay = try #require(pid_t((try? FS.readText(pidFile))?.trimmedForTest ?? ""))
            #expect(kill(relay, 0) == 0, "the relay runs while the exec does")
            let ps = try run(root, ["ps", "--format", "json", id])
            #expect((try? JSON.parse(Array(ps.out.utf8)).array?.count) ?? 0 >= 2, "the workload and the exec: \(ps)")
            for _ in 0..<100 where kill(relay, 0) == 0 { usleep(100_000) }
            #expect(kill(relay, 0) != 0, "the relay ends with the exec")
            #expect((try? FS.readText(out)) == "late\n")
        }
    }

    /// ps lists the guest's processes; kill --all reaches every one of them
    /// (not only PID 1); pause parks the vCPUs (the VMM's cgroup is not
    /// frozen, the guest's counter stops) and resume restarts them.
    @Test func psKillAllPauseResume() throws {
        try withStarted("ops") { root, id in
            // Right after start the workload may not have exec'd yet.
            var table = try run(root, ["ps", id])
            for _ in 0..<50 where !table.out.contains("sh -c trap") {
                usleep(100_000)
                table = try run(root, ["ps", id])
            }
            #expect(table.status == 0 && table.out.hasPrefix("UID") && table.out.contains("sh -c trap"), "\(table)")
            #expect(!table.out.contains("swvm"), "the guest's processes, not the host's: \(table)")

            #expect(try run(root, ["pause", id]).status == 0)
            #expect(try life.state(root, id)["status"]?.string == "paused")
            let record = try #require(try root.store.read(id))
            for dir in record.cgroupPaths where FS.exists(Path.join(dir, "freezer.state")) {
                #expect((try? FS.readText(Path.join(dir, "freezer.state")))?.trimmedForTest == "THAWED", "the VMM's cgroup is not frozen")
            }
            let refused = try run(root, ["exec", id, "true"])
            #expect(refused.status != 0 && refused.err.contains("paused"), "\(refused)")
            #expect(try run(root, ["resume", id]).status == 0)
            #expect(try life.state(root, id)["status"]?.string == "running")
            let a = try count(root, id)
            usleep(600_000)
            // One turn of the workload's loop (a fork and exec of sleep) may outlast a fast exec on a loaded host.
            var b = try count(root, id)
            for _ in 0..<30 where b <= a {
                usleep(200_000)
                b = try count(root, id)
            }
            #expect(b > a, "the guest runs again: \(a) then \(b)")

            // kill --all TERM reaches the exec'd sleep and the workload's PID 1
            // (which notes it and runs on); KILL then ends the VM.
            // Detached, the process keeps its stdio: not this test's pipes.
            let bg = try Command.run(["sh", "-c", "exec \"$0\" \"$@\" </dev/null >/dev/null 2>&1", Path.join(root.path, "swvm-vm"),
                                      "--root", root.path, "exec", "--detach", id, "sleep", "1000"], timeout: 60)
            #expect(bg.status == 0, "\(bg)")
            #expect(try run(root, ["ps", id]).out.contains("sleep 1000"))
            #expect(try run(root, ["kill", "--all", id, "TERM"]).status == 0)
            var after = ""
            for _ in 0..<50 {
                after = try run(root, ["ps", id]).out
                if !after.contains("sleep 1000") { break }
                usleep(100_000)
            }
            #expect(!after.contains("sleep 1000") && after.contains("sh -c trap"), "\(after)")
            // The workload's sh runs its trap once its sleep child ended: an exec may come first.
            var term = ""
            for _ in 0..<30 where term != "term\n" {
                term = try run(root, ["exec", id, "cat", "/tmp/term"]).out
                if term != "term\n" { usleep(100_000) }
            }
            #expect(term == "term\n")
            #expect(try run(root, ["kill", "--all", id, "KILL"]).status == 0)
            for _ in 0..<100 where try life.state(root, id)["status"]?.string != "stopped" { usleep(100_000) }
            #expect(try life.state(root, id)["status"]?.string == "stopped")
            #expect(try run(root, ["delete", id]).status == 0)
        }
    }

    /// exec --tty --console-socket: the pty master arrives on the socket;
    /// input reaches the process and a resize of the master reaches its pty.
    @Test func execWithATerminalOnTheConsoleSocket() throws {
        try withStarted("tty") { root, id in
            let console = try ConsoleListener(Path.join(root.path, "console.sock"))
            let pidFile = Path.join(root.path, "tty.pid")
            let r = try run(root, ["exec", "--tty", "--detach", "--console-socket", console.path, "--pid-file", pidFile, id,
                                   "sh", "-c", "tty; stty size; read line; stty size; echo got-$line"])
            #expect(r.status == 0, "\(r)")
            let master = try console.receive()
            ConsoleListener.resize(master, rows: 33, cols: 101)
            var seen = try ConsoleListener.read(master, until: "/dev/pts/")
            usleep(500_000)
            ConsoleListener.resize(master, rows: 40, cols: 120)
            usleep(500_000)
            try master.writeAll("hello\n")
            seen += try ConsoleListener.read(master, until: "got-hello")
            #expect(seen.contains("40 120"), "the resize reached the guest's pty: \(seen)")
            let relay = pid_t((try? FS.readText(pidFile))?.trimmedForTest ?? "") ?? 0
            for _ in 0..<100 where relay > 0 && kill(relay, 0) == 0 { usleep(100_000) }
            #expect(relay > 0 && kill(relay, 0) != 0)
        }
    }
}

extension OCIVMOpsTests {
    /// create with process.terminal: the pty master goes to
    /// --console-socket; a resize of it and the input typed reach the
    /// workload's pty in the guest.
    @Test func createWithATerminal() throws {
        let root = try ScratchRoot(), id = VMBundleLifecycleTests.uniqueID("term")
        defer { _ = try? life.vm(root, ["delete", "--force", id]) }
        let bundle = try RealBundle(args: ["sh", "-c", "tty; read a; stty size; read b; stty size; echo got-$b; exit 4"]) { config in
            config.setting("process", (config["process"] ?? .object([])).setting("terminal", true))
        }
        let console = try ConsoleListener(Path.join(root.path, "console.sock"))
        #expect(try life.vm(root, ["create", "--console-socket", console.path, "--bundle", bundle.path, id]) == 0, "\(life.output(root))")
        let master = try console.receive()
        let vmm = try #require(try root.store.read(id)?.initProcess)
        #expect(try life.vm(root, ["start", id]) == 0, "\(life.output(root))")
        var seen = try ConsoleListener.read(master, until: "/dev/pts/")
        ConsoleListener.resize(master, rows: 33, cols: 101)
        usleep(500_000)
        try master.writeAll("one\n")
        seen += try ConsoleListener.read(master, until: "33 101")
        ConsoleListener.resize(master, rows: 40, cols: 120)
        usleep(500_000)
        try master.writeAll("two\n")
        seen += try ConsoleListener.read(master, until: "got-two")
        #expect(seen.contains("40 120"), "\(seen)")
        for _ in 0..<100 where vmm.isAlive { usleep(100_000) }
        #expect(try life.state(root, id)["status"]?.string == "stopped")
        #expect(try run(root, ["delete", id]).status == 0)
        life.expectNothingLeft(root, id: id, vmm: vmm)
    }

    /// `podman run --pid container:VMCTR`: a container asked to join a VM
    /// container's pid namespace (its VMM's, where the VMM's root keeper
    /// runs; the workload's processes are in the guest) is refused with
    /// the reason, before anything is made.
    @Test func joiningAVMContainersPidNamespaceIsRefused() throws {
        try withStarted("pidjoin") { root, id in
            let vmm = try #require(try root.store.read(id)?.initProcess)
            let joiner = VMBundleLifecycleTests.uniqueID("joiner")
            let bundle = try RealBundle(args: ["sleep", "100"]) { config in
                let linux = config["linux"] ?? .object([])
                let namespaces = (linux["namespaces"]?.array ?? []).map { ns -> JSON in
                    ns["type"]?.string == "pid" ? ns.setting("path", .string("/proc/\(vmm.pid)/ns/pid")) : ns
                }
                return config.setting("linux", linux.setting("namespaces", .array(namespaces)))
            }
            defer { _ = try? BundleLifecycleTests().swvm(root, ["delete", "--force", joiner]) }
            let r = try BundleLifecycleTests().swvm(root, ["create", "--bundle", bundle.path, joiner])
            #expect(r.status != 0 && r.err.contains("pid namespace of a VM-level container"), "\(r)")
            #expect(try root.store.read(joiner) == nil, "the refused container's state is left")
        }
    }

    /// update: memory and pids reach the guest's workload cgroup.
    @Test func updateChangesTheGuestCgroup() throws {
        try withStarted("update") { root, id in
            let limits = { try self.run(root, ["exec", id, "sh", "-c", "d=/sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup); cat $d/memory.max $d/pids.max"]).out }
            #expect(try run(root, ["update", "--memory", "100m", "--pids-limit", "42", id]).status == 0)
            #expect(try limits() == "104857600\n42\n", "the workload's cgroup in the guest")
            let resources = Path.join(root.path, "resources.json")
            try FS.writeText(resources, #"{"memory":{"limit":-1},"pids":{"limit":7}}"#)
            let r = try run(root, ["update", "--resources", resources, id])
            #expect(r.status == 0, "\(r)")
            #expect(try limits() == "max\n7\n")
            // As runc: 0 leaves a limit as it is.
            #expect(try run(root, ["update", "--pids-limit", "0", id]).status == 0)
            #expect(try limits() == "max\n7\n")
        }
    }
}

/// A --console-socket listener: accepts one connection and takes the pty
/// master sent over it.
final class ConsoleListener {
    let path: String
    let fd: FileDescriptor

    init(_ path: String) throws {
        self.path = path
        fd = FileDescriptor(try sys("socket") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) })
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { p in for (i, b) in path.utf8.enumerated() { p[i] = b } }
        try sys("bind \(path)") {
            withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd.raw, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        }
        try sys("listen") { listen(fd.raw, 1) }
    }

    func receive() throws -> FileDescriptor {
        var p = pollfd(fd: fd.raw, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, 30_000) == 1 else { throw SwvmError(.internalError, "no connection on the console socket") }
        let c = FileDescriptor(try sys("accept") { accept(fd.raw, nil, nil) })
        let master = swvm_recv_fd(c.raw)
        guard master >= 0 else { throw SwvmError.errno("receive the pty master") }
        return FileDescriptor(master)
    }

    /// Sets the terminal's size on its master (the workload's pty follows).
    static func resize(_ master: FileDescriptor, rows: UInt16, cols: UInt16) {
        var ws = winsize(ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0)
        _ = ioctl(master.raw, UInt(TIOCSWINSZ), &ws)
    }

    /// What the master gives until `text` appears (30 s at most).
    static func read(_ master: FileDescriptor, until text: String) throws -> String {
        var seen = ""
        let deadline = Clock.monotonicNanos() + 30_000_000_000
        while !seen.contains(text) && Clock.monotonicNanos() < deadline {
            var p = pollfd(fd: master.raw, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 1000) == 1 else { continue }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = Glibc.read(master.raw, &chunk, chunk.count)   // what is there, not a full buffer
            if n <= 0 { break }
            seen += String(decoding: chunk[0..<n], as: UTF8.self)
        }
        guard seen.contains(text) else { throw SwvmError(.internalError, "the terminal never showed \(text): \(seen)") }
        return seen
    }
}

private extension String {
    var trimmedForTest: String { String(drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed()) }
}
