#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import OCIRuntime
import RuntimeSpec
@testable import SwvmBase

@Suite(.serialized) struct HookTests {
    func sh(_ script: String, timeout: Int? = nil) -> OCIHook {
        OCIHook(path: "/bin/sh", args: ["sh", "-c", script], env: ["HOOKVAR=set"], timeout: timeout)
    }

    /// Each hook gets the state on stdin, its args and its env; poststart
    /// sees "running" and poststop "stopped".
    @Test func hooksGetTheStateAtEachStep() throws {
        let root = try ScratchRoot(), bundle = try ScratchBundle()
        let out = Path.join(bundle.path, "hooks.log")
        var hooks = OCIHooks()
        hooks.prestart = [sh("cat >> \(out); echo \" prestart $HOOKVAR\" >> \(out)")]
        hooks.createRuntime = [sh("cat >> \(out); echo \" createRuntime\" >> \(out)")]
        hooks.createContainer = [sh("cat >> \(out); echo \" createContainer\" >> \(out)")]
        hooks.poststart = [sh("cat >> \(out); echo \" poststart\" >> \(out)")]
        hooks.poststop = [sh("cat >> \(out); echo \" poststop\" >> \(out)")]
        let l = shellLifecycle(root, hooks: hooks)
        try l.create("c1", CreateOptions(bundle: bundle.path))
        let pid = try l.state("c1").pid
        try l.start("c1")
        try l.delete("c1", force: true)
        let lines = try FS.readText(out).split(separator: "\n").map(String.init)
        #expect(lines.count == 5, "\(lines)")
        for (line, (kind, status)) in zip(lines, [("prestart set", "creating"), ("createRuntime", "creating"),
                                                 ("createContainer", "creating"), ("poststart", "running"), ("poststop", "stopped")]) {
            #expect(line.hasSuffix(" " + kind), "\(line)")
            let state = try JSON.parse(String(line.dropLast(kind.count + 1)))
            #expect(state["status"]?.string == status && state["id"]?.string == "c1", "\(line)")
            #expect(state["bundle"]?.string == (try FS.realPath(bundle.path)))
            #expect(state["ociVersion"]?.string == "1.1.0")
            #expect(state["annotations"]?["org.example"]?.string == "yes")
            if status != "stopped" { #expect(state["pid"]?.int == Int(pid)) }
        }
    }

    /// A failing createRuntime hook fails create: nothing is left, the
    /// init is killed, and the error names the hook and what it said.
    @Test func aFailingCreateHookFailsCreate() throws {
        let root = try ScratchRoot(), bundle = try ScratchBundle()
        var hooks = OCIHooks()
        hooks.createRuntime = [sh("cat > /dev/null; echo cannot set up the network; exit 3")]
        let l = shellLifecycle(root, hooks: hooks)
        do {
            try l.create("c1", CreateOptions(bundle: bundle.path))
            Issue.record("create succeeded")
        } catch let e as SwvmError {
            #expect(e.message.contains("createRuntime hook #0 (/bin/sh): exit status 3"), "\(e.message)")
            #expect(e.message.contains("cannot set up the network"), "\(e.message)")
        }
        #expect(!FS.exists(root.store.directory("c1")))
        // The init, the engine's "cgroup", was killed (and reaped).
        #expect(try FS.listDirectory(root.path).isEmpty)
    }

    @Test func aHookPastItsTimeoutIsKilled() throws {
        let start = Clock.monotonicNanos()
        #expect(throws: SwvmError.self) {
            try HookRunner.run([sh("exec sleep 30", timeout: 1)], kind: "prestart", state: .object([]))
        }
        #expect(Clock.secondsSince(start) < 5)
        do {
            try HookRunner.run([OCIHook(path: "/nonexistent/hook")], kind: "poststop", state: .object([]))
            Issue.record("a missing hook ran")
        } catch let e as SwvmError {
            #expect(e.message.contains("poststop hook #0 (/nonexistent/hook): cannot run it"), "\(e.message)")
        }
    }

    /// A hook that does not read its stdin does not block swvm.
    @Test func aHookThatIgnoresStdinDoesNotBlock() throws {
        let big = JSON.object([("x", .string(String(repeating: "y", count: 200_000)))])
        try HookRunner.run([sh("exit 0")], kind: "prestart", state: big)
    }

    @Test func logLinesAreLogrusShaped() throws {
        let json = RuntimeLog.line(format: .json, level: "error", message: "a \"b\"\n", time: "2026-12-07T09:00:00Z")
        #expect(json == "{\"level\":\"error\",\"msg\":\"a \\\"b\\\"\\n\",\"time\":\"2026-12-07T09:00:00Z\"}\n")
        let text = RuntimeLog.line(format: .text, level: "warning", message: "x", time: "T")
        #expect(text == "time=\"T\" level=warning msg=\"x\"\n")
        #expect(Timestamp.rfc3339(1_765_098_000_123_000_000) == "2025-12-07T09:00:00.123Z")
        #expect(Timestamp.rfc3339(1_765_098_000_000_000_000) == "2025-12-07T09:00:00Z")
    }
}
