#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase

/// A containerd of the test's own, started as an ordinary process with its
/// root, state and sockets in a temporary directory and the fixture config
/// (containerd.toml: the `swvm` runtime handler, the runc v2 shim with
/// BinaryName the runtime under test), the example image imported into the
/// "default" and "k8s.io" namespaces. `Containerd.with` stops it and checks
/// that nothing is left.
final class Containerd {
    let dir: String
    let address: String
    let pid: pid_t
    var image: String { EngineRuntime.imageName }

    /// The runc v2 shim calls the runtime with --root /run/containerd/runc/NAMESPACE.
    static let scope = HostLeftovers.Scope(stateRoots: ["/run/containerd/runc/default", "/run/containerd/runc/k8s.io"],
                                           cgroupParents: ["default", "k8s.io"])

    private init() throws {
        dir = try EngineRuntime.makeTemporaryDirectory("swvm-containerd")
        address = Path.join(dir, "containerd.sock")
        let config = Path.join(dir, "config.toml")
        try FS.writeText(config, try EngineRuntime.fixture("containerd.toml", ["DIR": dir, "RUNTIME": EngineRuntime.path]))
        pid = try Containerd.spawn(["containerd", "--config", config], log: Path.join(dir, "containerd.log"))
        do {
            try waitUntilServing()
            let loaded = try Command.run([Path.join(Harness.repo, "scripts/engine-images.sh"), "containerd", address, "default", "k8s.io"],
                                         timeout: 120)
            guard loaded.status == 0 else { throw SwvmError(.internalError, "scripts/engine-images.sh containerd: \(loaded)") }
        } catch {
            stopDaemon()
            try? FS.removeTree(dir)
            throw error
        }
    }

    /// Started with stdin /dev/null, stdout and stderr to `log` (made
    /// first: posix_spawn's open gives no mode), through swvm's one
    /// posix_spawn, which also gives it default signal handling: the test
    /// process blocks signals that the daemon, its shims and so the
    /// containers would otherwise inherit.
    static func spawn(_ argv: [String], log: String) throws -> pid_t {
        try FS.writeFile(log, [], mode: 0o644)
        do {
            return try Spawn.start(argv[0], argv: argv, actions: [.open(0, path: "/dev/null", flags: O_RDONLY),
                                                                  .open(1, path: log, flags: O_WRONLY | O_TRUNC), .dup(1, to: 2)],
                                   searchPath: true)
        } catch { throw SwvmError.errno("spawn \(argv[0])", error.errno) }
    }

    private func waitUntilServing(seconds: Double = 30) throws {
        let started = Clock.monotonicNanos()
        var last: CommandResult?
        while Clock.secondsSince(started) < seconds {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                throw SwvmError(.internalError, "containerd exited: \((try? FS.readText(Path.join(dir, "containerd.log"))) ?? "")")
            }
            if FS.exists(address) {
                last = try ctr(["version"], timeout: 10)
                if last?.status == 0 { return }
            }
            usleep(100_000)
        }
        throw SwvmError(.internalError, "containerd never answered on \(address): \(last.map(String.init(describing:)) ?? "no socket")")
    }

    /// `ctr --address SOCKET [-n NAMESPACE] args...`
    @discardableResult
    func ctr(_ args: [String], namespace: String? = nil, stdin: [UInt8]? = nil, timeout: Double = 120) throws -> CommandResult {
        try Command.run(["ctr", "--address", address] + (namespace.map { ["-n", $0] } ?? []) + args, stdin: stdin, timeout: timeout)
    }

    /// Tests/Fixtures/engines/cri.py, a minimal CRI client (the calls a
    /// kubelet makes), on containerd's socket; its output trimmed.
    @discardableResult
    func cri(_ args: [String]) throws -> String {
        let r = try Command.run(["/usr/bin/python3", Path.join(Harness.repo, "Tests/Fixtures/engines/cri.py"), address] + args,
                                timeout: 180)
        guard r.status == 0 else { throw SwvmError(.internalError, "cri.py \(args.joined(separator: " ")): \(r)") }
        return r.out.trimmingWhitespace
    }

    /// `ctr task ls`: each task's status, by id.
    func taskStatus(_ id: String) throws -> String? {
        let r = try ctr(["task", "ls"])
        for line in r.out.split(separator: "\n").dropFirst() {
            let f = line.split(separator: " ")
            if f.count >= 3 && f[0] == id { return String(f[2]) }
        }
        return nil
    }

    /// `ctr task ls`: a task's pid, by id.
    func taskPid(_ id: String) throws -> String? {
        let r = try ctr(["task", "ls"])
        for line in r.out.split(separator: "\n").dropFirst() {
            let f = line.split(separator: " ")
            if f.count >= 2 && f[0] == id { return String(f[1]) }
        }
        return nil
    }

    func waitForTaskStatus(_ id: String, _ status: String, seconds: Double = 30) throws {
        let started = Clock.monotonicNanos()
        var last: String?
        while Clock.secondsSince(started) < seconds {
            last = try taskStatus(id)
            if last == status { return }
            usleep(100_000)
        }
        throw SwvmError(.internalError, "task \(id) is \(last ?? "absent"), never \(status)")
    }

    private func stopDaemon() {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        let started = Clock.monotonicNanos()
        while waitpid(pid, &status, WNOHANG) == 0 {
            if Clock.secondsSince(started) > 15 { kill(pid, SIGKILL) }
            usleep(50_000)
        }
    }

    /// Runs `body` with a fresh containerd; then checks that it left no
    /// container or task and nothing on the host, stops containerd and
    /// removes its files.
    static func with(sourceLocation: SourceLocation = #_sourceLocation, _ body: (Containerd) throws -> Void) throws {
        let c = try Containerd()
        let before = HostLeftovers.take(mentioning: c.dir, scope)
        var failure: Error?
        do { try body(c) } catch { failure = error }
        for namespace in ["default", "k8s.io"] {
            let tasks = (try? c.ctr(["task", "ls", "-q"], namespace: namespace))?.out.split(separator: "\n").map(String.init) ?? []
            let containers = (try? c.ctr(["containers", "ls", "-q"], namespace: namespace))?.out.split(separator: "\n").map(String.init) ?? []
            #expect(tasks.isEmpty && containers.isEmpty, "left in containerd's \(namespace): tasks \(tasks), containers \(containers)",
                    sourceLocation: sourceLocation)
            for t in tasks { _ = try? c.ctr(["task", "rm", "-f", t], namespace: namespace) }
            for k in containers { _ = try? c.ctr(["containers", "rm", k], namespace: namespace) }
        }
        // The shims and the runtime's state go when the tasks go; the
        // daemon itself is still up here (its command line names c.dir).
        HostLeftovers.expectNothingAdded(since: before, mentioning: c.dir, scope, sourceLocation: sourceLocation)
        c.stopDaemon()
        let after = HostLeftovers.take(mentioning: c.dir, scope)
        #expect(after.processes.isEmpty && after.mounts.isEmpty, "after containerd stopped: \(after)", sourceLocation: sourceLocation)
        try? FS.removeTree(c.dir)
        if let f = failure { throw f }
    }
}
