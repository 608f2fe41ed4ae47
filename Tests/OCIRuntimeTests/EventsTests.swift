#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import OCIRuntime
@testable import SwvmBase

/// `swvm events` as runc's: JSON lines of the container's cgroup usage,
/// and an "oom" line when the kernel OOM-kills in it; real containers.
@Suite(.serialized) struct EventsTests {
    func swvm(_ root: ScratchRoot, _ args: [String], timeout: Double = 60) throws -> CommandResult {
        try Binary.run(["--root", root.path] + args, timeout: timeout)
    }

    /// `create` with its stdio (which the init keeps) on /dev/null, so the
    /// run does not wait for the init to close the result's pipes.
    func create(_ root: ScratchRoot, _ bundle: RealBundle, _ id: String) throws -> (status: Int32, err: String) {
        let err = Path.join(bundle.path, "create.err")
        let r = try Command.run(["/bin/sh", "-c", "exec \"$0\" \"$@\" </dev/null >/dev/null 2>\(err)",
                                 Binary.swvm, "--root", root.path, "create", "--bundle", bundle.path, id])
        return (r.status, (try? FS.readText(err)) ?? "")
    }

    @Test func statsOnceFromTheCgroup() throws {
        let root = try ScratchRoot(), bundle = try RealBundle(args: ["sleep", "1000"])
        let id = "ev-\(getpid())"
        let created = try create(root, bundle, id)
        #expect(created.status == 0, "\(created.err)")
        defer { _ = try? swvm(root, ["delete", "--force", id]) }
        #expect(try swvm(root, ["start", id]).status == 0)
        let r = try swvm(root, ["events", "--stats", id])
        #expect(r.status == 0, "\(r)")
        let lines = r.out.split(separator: "\n")
        #expect(lines.count == 1, "\(r)")
        let event = try JSON.parse(String(lines.first ?? ""))
        #expect(event["type"]?.string == "stats" && event["id"]?.string == id, "\(r.out)")
        let data = event["data"]
        #expect((data?["memory"]?["usage"]?["usage"]?.int64 ?? 0) > 0, "\(r.out)")
        #expect(data?["pids"]?["current"]?.int64 == 1, "the init alone: \(r.out)")
        #expect((data?["cpu"]?["usage"]?["total"]?.int64 ?? 0) > 0, "\(r.out)")
        #expect(try swvm(root, ["kill", id, "KILL"]).status == 0)
        for _ in 0..<100 where (try? swvm(root, ["events", "--stats", id]))?.status == 0 { usleep(20_000) }
        let stopped = try swvm(root, ["events", "--stats", id])
        #expect(stopped.status == 1 && stopped.err.contains("is not running"), "\(stopped)")
    }

    /// A 16 MiB memory limit and a process that keeps 200 MiB (busybox
    /// tail holds a line with no newline): the kernel kills it, events
    /// prints "oom" and ends when the container's init exits.
    @Test func anOOMKillIsAnEvent() throws {
        let root = try ScratchRoot()
        let bundle = try RealBundle(args: ["sh", "-c", "sleep 1; head -c 200m /dev/zero | tail; sleep 1"]) { config in
            let linux = config["linux"] ?? .object([])
            let resources = (linux["resources"] ?? .object([])).setting("memory", .object([("limit", .integer(16 << 20))]))
            return config.setting("linux", linux.setting("resources", resources))
        }
        let id = "ev-oom-\(getpid())"
        let created = try create(root, bundle, id)
        #expect(created.status == 0, "\(created.err)")
        defer { _ = try? swvm(root, ["delete", "--force", id]) }
        #expect(try swvm(root, ["start", id]).status == 0)
        let r = try swvm(root, ["events", "--interval", "500ms", id], timeout: 60)
        #expect(r.status == 0 && !r.timedOut, "\(r)")
        let types = r.out.split(separator: "\n").compactMap { try? JSON.parse(String($0))["type"]?.string }
        #expect(types.contains("oom") && types.contains("stats"), "\(r.out)")
    }
}
