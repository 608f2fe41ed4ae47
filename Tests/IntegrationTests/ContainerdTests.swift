#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase

/// containerd (Debian's, with its runc v2 shim), started by the test, driven
/// with `ctr`: the shim calls the OCI runtime under test (EngineRuntime)
/// instead of runc. Each test leaves nothing behind (Containerd.with).
@Suite(.serialized, .enabled(if: EngineRuntime.containerdReady, "needs containerd, ctr, the runc v2 shim and skopeo: scripts/setup.sh"))
struct ContainerdTests {
    @Test func runWithRuncBinary() throws {
        try Containerd.with { c in
            let r = try c.ctr(["run", "--rm", "--runc-binary", EngineRuntime.path, c.image, "once",
                               "sh", "-c", "echo hello-from-ctr; cat /etc/hostname; id -u; exit 4"])
            #expect(r.status == 4, "\(r)")
            #expect(r.out == "hello-from-ctr\nswvm-example\n0\n", "the image's /etc/hostname, as root: \(r)")
            let missing = try c.ctr(["run", "--rm", "--runc-binary", EngineRuntime.path, c.image, "missing", "no-such-command"])
            #expect(missing.status != 0, "\(missing)")
            #expect(missing.err.contains("no-such-command"), "the runtime's error reaches ctr: \(missing)")
        }
    }

    /// The runtime's own view of a container the shim made: `RUNTIME
    /// --root /run/containerd/runc/NAMESPACE state ID`.
    static func runtimeState(_ id: String, namespace: String = "default") throws -> String {
        let r = try Command.run([EngineRuntime.path, "--root", "/run/containerd/runc/\(namespace)", "state", id])
        guard r.status == 0 else { return "absent: \(r.err)" }
        return try JSON.parse(r.out)["status"]?.string ?? "unreadable: \(r.out)"
    }

    /// A detached task: exec (status and output), ps, pause and resume (the
    /// freezer), kill with a signal it traps and then KILL, delete.
    @Test func taskLifecycle() throws {
        try Containerd.with { c in
            let script = "trap 'echo got-usr1 > /tmp/usr1' USR1; while true; do sleep 0.1; done"
            let run = try c.ctr(["run", "-d", "--runc-binary", EngineRuntime.path, c.image, "svc", "sh", "-c", script])
            #expect(run.status == 0, "\(run)")
            try c.waitForTaskStatus("svc", "RUNNING")
            #expect(try Self.runtimeState("svc") == "running")

            let exec = try c.ctr(["task", "exec", "--exec-id", "e1", "svc", "sh", "-c", "echo exec-ok; cat /proc/1/cmdline | tr '\\0' ' '; exit 3"])
            #expect(exec.status == 3, "\(exec)")
            #expect(exec.out.hasPrefix("exec-ok\nsh -c trap"), "\(exec)")

            let pid = try #require(try c.taskPid("svc"))
            let ps = try c.ctr(["task", "ps", "svc"])
            #expect(ps.status == 0 && ps.out.split(separator: "\n").contains { $0.split(separator: " ").first.map(String.init) == pid }, "\(ps), init \(pid)")

            #expect(try c.ctr(["task", "pause", "svc"]).status == 0)
            #expect(try c.taskStatus("svc") == "PAUSED")
            #expect(try Self.runtimeState("svc") == "paused")
            #expect(try PodmanTests.freezerState(pid: pid) == "FROZEN")
            #expect(try c.ctr(["task", "resume", "svc"]).status == 0)
            #expect(try c.taskStatus("svc") == "RUNNING")
            #expect(try PodmanTests.freezerState(pid: pid) == "THAWED")

            #expect(try c.ctr(["task", "kill", "-s", "USR1", "svc"]).status == 0)
            var trapped: CommandResult?
            for i in 0..<50 {
                trapped = try c.ctr(["task", "exec", "--exec-id", "cat-\(i)", "svc", "cat", "/tmp/usr1"])
                if trapped?.out == "got-usr1\n" { break }
                usleep(100_000)
            }
            #expect(trapped?.out == "got-usr1\n", "\(trapped.map(String.init(describing:)) ?? "")")

            #expect(try c.ctr(["task", "kill", "-s", "KILL", "svc"]).status == 0)
            try c.waitForTaskStatus("svc", "STOPPED")
            #expect(try Self.runtimeState("svc") == "stopped")
            let deleted = try c.ctr(["task", "delete", "svc"])
            #expect(deleted.status == 0 && deleted.err.contains("exit code 137"), "the exit status: \(deleted)")
            #expect(try Self.runtimeState("svc").hasPrefix("absent"))
            #expect(FS.readLink("/proc/\(pid)/exe") == nil)
            #expect(try c.ctr(["containers", "rm", "svc"]).status == 0)
        }
    }

    /// A container in another's pid namespace (a pod sharing its process
    /// namespace) leaves its children running when its init exits; the
    /// shim then runs `RUNTIME kill --all ID KILL` on the stopped
    /// container, which ends them as runc's does, before anyone deletes it.
    @Test func whatAnInitInASharedPidNamespaceLeavesIsKilled() throws {
        try Containerd.with { c in
            #expect(try c.ctr(["run", "-d", "--runc-binary", EngineRuntime.path, c.image, "holder", "sleep", "1000"]).status == 0)
            try c.waitForTaskStatus("holder", "RUNNING")
            let holder = try #require(try c.taskPid("holder"))
            let run = try c.ctr(["run", "-d", "--runc-binary", EngineRuntime.path, "--with-ns", "pid:/proc/\(holder)/ns/pid",
                                 c.image, "leaver", "sh", "-c", "sleep 3141 & exit 0"])
            #expect(run.status == 0, "\(run)")
            try c.waitForTaskStatus("leaver", "STOPPED")
            var left: [String] = []
            for _ in 0..<50 {
                left = Self.processes(commandLine: "sleep 3141")
                if left.isEmpty { break }
                usleep(100_000)
            }
            #expect(left.isEmpty, "the init's child outlived it in the stopped container: pids \(left)")
            #expect(try c.ctr(["task", "kill", "-s", "KILL", "holder"]).status == 0)
            try c.waitForTaskStatus("holder", "STOPPED")
            for id in ["leaver", "holder"] {
                #expect(try c.ctr(["task", "delete", id]).status == 0)
                #expect(try c.ctr(["containers", "rm", id]).status == 0)
            }
        }
    }

    /// The pids of running processes with this command line (a zombie's is empty).
    static func processes(commandLine: String) -> [String] {
        ((try? FS.listDirectory("/proc")) ?? []).filter { pid in
            pid.allSatisfy(\.isNumber) && String(decoding: (try? FS.readFile("/proc/\(pid)/cmdline", limit: 4096)) ?? [], as: UTF8.self)
                .split(separator: "\0").joined(separator: " ") == commandLine
        }
    }

    /// A pod as a kubelet starts it, through the CRI plugin and the config's
    /// runtime handler `swvm` (a RuntimeClass's handler): the pod sandbox
    /// and its container are the runtime's (its own `state` knows them), the
    /// container's output reaches the CRI log and its exit status the CRI
    /// (which kills an exited container before deleting it: the runtime's
    /// "container not running" must read as runc's, or the exit is lost).
    @Test(.enabled(if: EngineRuntime.criClientReady, "needs Debian's python3-grpcio for the CRI client: scripts/setup.sh"))
    func aPodThroughTheSwvmHandler() throws {
        try Containerd.with { c in
            let logs = Path.join(c.dir, "pod-logs")
            try FS.makeDirectories(logs)
            let sandbox = try c.cri(["runp", "swvm-pod", "swvm", logs])
            #expect(try Self.runtimeState(sandbox, namespace: "k8s.io") == "running")
            let container = try c.cri(["create", sandbox, "hello", "swvm-pod", logs, c.image,
                                       "sh", "-c", "echo hello-from-cri; cat /proc/1/cmdline | tr '\\0' ' '; echo; exit 3"])
            try c.cri(["start", container])
            var status = ""
            for _ in 0..<100 {
                status = try c.cri(["status", container])
                if status.hasPrefix("EXITED") { break }
                usleep(100_000)
            }
            #expect(status == "EXITED 3")
            let log = try FS.readText(Path.join(logs, "hello.log"))
            #expect(log.contains(" stdout F hello-from-cri\n") && log.contains(" stdout F sh -c echo hello-from-cri"),
                    "the CRI log, and the container's own PID namespace: \(log)")
            try c.cri(["rm", container])
            try c.cri(["stopp", sandbox])
            try c.cri(["rmp", sandbox])
            #expect(try Self.runtimeState(sandbox, namespace: "k8s.io").hasPrefix("absent"))
        }
    }

    /// containerd loads the README's config: the CRI plugin with the
    /// runtime handler `swvm` (the runc v2 shim, BinaryName the runtime).
    @Test func configWithTheSwvmHandlerLoads() throws {
        try Containerd.with { c in
            let plugins = try c.ctr(["plugins", "ls"])
            let cri = plugins.out.split(separator: "\n").first { $0.contains("io.containerd.grpc.v1") && $0.contains(" cri ") }
            #expect(cri?.hasSuffix("ok") == true || cri?.split(separator: " ").last == "ok", "\(plugins)")
            let log = try FS.readText(Path.join(c.dir, "containerd.log"))
            #expect(!log.contains("failed to load plugin io.containerd.grpc.v1.cri"), "\(log)")
        }
    }
}
