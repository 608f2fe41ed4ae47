#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase
import NativeThreads

/// podman at the VM level from an OCI root template (issue 19): the first
/// run of an image's command saves the VM with its image layers disk
/// mounted and the command's files warmed; later runs restore it, and
/// everything of the container (process, env, hostname, /etc files, the
/// pod's network, the start gate) comes after the restore, per run.
@Suite(.serialized, .enabled(if: EngineRuntime.podmanReady && Harness.vmReady && !EngineRuntime.isRunc,
                             "needs podman, conmon, skopeo, netavark, /dev/kvm, the guest kernel and guest-init"))
struct PodmanVMTemplateTests {
    /// How a running container's VM started (state's swvm.vm-start).
    static func vmStart(_ podman: Podman, _ name: String) throws -> String? {
        let id = try podman.inspect(name, "{{.Id}}")
        let state = try Command.run([EngineRuntime.path, "--root", EngineRuntime.stateRoot, "state", id])
        return (try? JSON.parse(state.out)["annotations"]?["swvm.vm-start"]?.string) ?? nil
    }

    /// The OCI root templates in the cache, newest first.
    static func templates() -> [String] {
        let dir = SwvmPaths.templatesDir
        let items = ((try? FS.listDirectory(dir)) ?? []).map { Path.join(dir, $0) }.filter { FS.isRegularFile(Path.join($0, "memory")) }
        func mtime(_ p: String) -> Int { FS.stat(Path.join(p, "memory")).map { Int($0.st_mtim.tv_sec) } ?? 0 }
        return items.sorted { mtime($0) > mtime($1) }
    }

    /// A detached run of `script` (sh -c: the same command, so the same
    /// template); its start, once its log says `ready`.
    static func detached(_ podman: Podman, _ runtime: [String], _ name: String, _ extra: [String], _ script: String,
                         via: [String] = []) throws -> String? {
        let r = try podman(detachedArgs(podman, runtime, name, extra, script, via: via), timeout: 300)
        #expect(r.status == 0, "\(r)")
        _ = try podman.waitForLog(name, "ready", seconds: 120)
        return try vmStart(podman, name)
    }

    /// `run -d` of `via sh -c script` (a `via` command such as `env` is the
    /// command's args[0], so its template is another than sh's).
    static func detachedArgs(_ podman: Podman, _ runtime: [String], _ name: String, _ extra: [String], _ script: String,
                             via: [String] = []) -> [String] {
        runtime + ["run", "-d", "--name", name] + extra + [podman.image] + via + ["sh", "-c", script + "; echo ready; sleep 1000"]
    }

    /// The fault tests' command: `env sh -c ...`, a template of their own
    /// that they may remove.
    static let via = ["env"]

    /// The template that a running container's VM was restored from: its
    /// VMM maps the template's memory file.
    static func restoredFrom(_ podman: Podman, _ name: String) throws -> String? {
        let pid = try podman.inspect(name, "{{.State.Pid}}")
        let prefix = SwvmPaths.templatesDir + "/"
        for line in ((try? FS.readText("/proc/\(pid)/maps")) ?? "").split(separator: "\n") {
            if let r = line.range(of: prefix) { return Path.dirname(String(line[r.lowerBound...])) }
        }
        return nil
    }

    /// The template of the fault tests' command, made if there is none, and
    /// named by a run that restores it.
    static func faultTestTemplate(_ podman: Podman, _ runtime: [String]) throws -> String {
        for i in 0..<2 {
            let start = try detached(podman, runtime, "learn\(i)", [], "true", via: via)
            let dir = start == "template" ? try restoredFrom(podman, "learn\(i)") : nil
            #expect(try podman(["rm", "-f", "-t", "0", "learn\(i)"]).status == 0)
            if let dir { return dir }
        }
        throw SwvmError(.internalError, "no run restored the template of \(via + ["sh"])")
    }

    /// A writer's temporaries for the template `dir` (SnapshotCache's
    /// `.tmp-KEY16-*`).
    static func temporaries(of dir: String) -> [String] {
        let prefix = ".tmp-\(Path.basename(dir).prefix(16))-"
        return ((try? FS.listDirectory(SwvmPaths.templatesDir)) ?? []).filter { $0.hasPrefix(prefix) }
    }

    @Test func aSecondRunRestoresTheTemplateWithItsOwnSettings() throws {
        try Podman.with { podman in
            let runtime = ["--runtime", try PodNetworkPodmanTests.vmRuntime(in: podman.dir)]
            let before = Set(Self.templates())
            let probe = "echo $(hostname) $V; grep -q \"$(hostname)\" /etc/hosts && echo hosts-ok"
            let first = try podman(runtime + ["run", "--rm", "--hostname", "one", "-e", "V=1", podman.image, "sh", "-c", probe + "; exit 3"],
                                   timeout: 300)
            #expect(first.status == 3 && first.out == "one 1\nhosts-ok\n", "\(first)")
            let made = Self.templates().filter { !before.contains($0) }
            #expect(made.count == 1, "the first run saved one template: \(made)")

            // The second restores it; its own hostname, env, /etc/hosts, exit code and -p.
            let port = PodmanTests.port(7)
            let server = probe + "; echo served-two > /tmp/index.html; httpd -p 80 -h /tmp"
            let start = try Self.detached(podman, runtime, "two", ["--hostname", "two", "-e", "V=2", "-p", "\(port):80"], server)
            #expect(start == "template", "\(start ?? "no annotation")")
            #expect(try podman(["logs", "two"]).out == "two 2\nhosts-ok\nready\n")
            #expect(try NetworkTests.httpGet("127.0.0.1", port).hasSuffix("served-two\n"))
            let exec = try podman(["exec", "two", "sh", "-c", "exit 5"])
            #expect(exec.status == 5, "\(exec)")
            #expect(try podman(["rm", "-f", "-t", "0", "two"]).status == 0)
            let again = try podman(runtime + ["run", "--rm", "--hostname", "three", "-e", "V=3", podman.image, "sh", "-c", probe + "; exit 4"],
                                   timeout: 300)
            #expect(again.status == 4 && again.out == "three 3\nhosts-ok\n", "\(again)")

            // The annotation skips it.
            let skipped = try Self.detached(podman, runtime, "off", ["--annotation", "swvm.vm-template=off"], "true")
            #expect(skipped == "boot snapshot", "\(skipped ?? "no annotation")")
            #expect(try podman(["rm", "-f", "-t", "0", "off"]).status == 0)

            // A damaged template is reported, removed and saved again.
            guard let dir = made.first else { return }
            let memory = Path.join(dir, "memory"), junk = [UInt8](repeating: 0xcc, count: 4096)
            try PodmanVMTests.overwrite(memory, at: 0x100_0000, with: junk)
            let rebuilt = try Self.detached(podman, runtime, "four", [], "true")
            #expect(rebuilt == "boot snapshot (saving a template)", "\(rebuilt ?? "no annotation")")
            #expect(try podman(["rm", "-f", "-t", "0", "four"]).status == 0)
            #expect(try PodmanVMTests.bytes(of: memory, at: 0x100_0000, count: 4096) != junk, "the damaged template was saved again")
            let restored = try Self.detached(podman, runtime, "five", [], "true")
            #expect(restored == "template", "\(restored ?? "no annotation")")
            #expect(try podman(["rm", "-f", "-t", "0", "five"]).status == 0)
            for t in Self.templates() where !before.contains(t) { try? FS.removeTree(t) }
        }
    }

    /// Two first creates of one bundle image's command at once: one saves
    /// the template (SnapshotCache's writer lock), the other starts without
    /// writing; both run with their own settings, no temporary is left, and
    /// the next create restores the one template.
    @Test func concurrentFirstCreatesWriteOneTemplate() throws {
        try Podman.with { podman in
            let runtime = ["--runtime", try PodNetworkPodmanTests.vmRuntime(in: podman.dir)]
            let dir = try Self.faultTestTemplate(podman, runtime)
            try FS.removeTree(dir)
            let threads = try (0..<2).map { i in
                try NativeThread {
                    _ = try? podman(Self.detachedArgs(podman, runtime, "first\(i)", ["-e", "V=\(i)"], "echo run $V", via: Self.via),
                                    timeout: 300)
                }
            }
            for t in threads { t.join() }
            var starts: [String] = []
            for i in 0..<2 {
                #expect(try podman.waitForLog("first\(i)", "run \(i)\nready", seconds: 120).hasPrefix("run \(i)\nready"))
                starts.append(try Self.vmStart(podman, "first\(i)") ?? "no annotation")
                #expect(try podman(["rm", "-f", "-t", "0", "first\(i)"]).status == 0)
            }
            #expect(starts.filter { $0 == "boot snapshot (saving a template)" }.count == 1, "\(starts)")
            #expect(starts.allSatisfy { ["boot snapshot (saving a template)", "boot snapshot", "template"].contains($0) }, "\(starts)")
            #expect(Self.temporaries(of: dir).isEmpty, "\(Self.temporaries(of: dir))")
            #expect(try Self.detached(podman, runtime, "next", [], "true", via: Self.via) == "template")
            #expect(try Self.restoredFrom(podman, "next") == dir)
            #expect(try podman(["rm", "-f", "-t", "0", "next"]).status == 0)
            try? FS.removeTree(dir)
        }
    }

    /// A VMM SIGKILLed while it writes the template leaves no temporary and
    /// publishes nothing damaged; `rm -f` (swvm delete --force) leaves
    /// nothing on the host (Podman.with: processes, mounts, cgroups, state
    /// directories, network namespaces, taps); the next create works and
    /// saves (or restores) a whole template.
    @Test func aVMMKilledWhileSavingTheTemplateLeavesNoHalfWrittenOne() throws {
        try Podman.with { podman in
            let runtime = ["--runtime", try PodNetworkPodmanTests.vmRuntime(in: podman.dir)]
            let dir = try Self.faultTestTemplate(podman, runtime)
            var killed = false
            for attempt in 0..<3 where !killed {
                try FS.removeTree(dir)
                let name = "killed\(attempt)", done = Locked(false)
                let t = try NativeThread {
                    _ = try? podman(Self.detachedArgs(podman, runtime, name, [], "true", via: Self.via), timeout: 300)
                    done.with { $0 = true }
                }
                killed = Self.killVMMWhileSaving(podman, dir, done)
                t.join()
                let id = try? podman.inspect(name, "{{.Id}}")
                #expect(try podman(["rm", "-f", "-t", "0", name]).status == 0)
                if let id { #expect(!FS.exists(Path.join(SwvmPaths.runRoot, "runs", id)), "run record of \(id)") }
            }
            #expect(killed, "no VMM was caught saving the template")
            for _ in 0..<150 where !Self.temporaries(of: dir).isEmpty { usleep(100_000) }
            #expect(Self.temporaries(of: dir).isEmpty, "\(Self.temporaries(of: dir))")
            // Published only if the kill came after the keeper's publish: then whole.
            let published = FS.exists(dir)
            let next = try Self.detached(podman, runtime, "next", [], "true", via: Self.via)
            #expect(next == (published ? "template" : "boot snapshot (saving a template)"), "\(next ?? "no annotation")")
            #expect(try podman(["rm", "-f", "-t", "0", "next"]).status == 0)
            #expect(try Self.detached(podman, runtime, "again", [], "true", via: Self.via) == "template")
            #expect(try podman(["rm", "-f", "-t", "0", "again"]).status == 0)
            try? FS.removeTree(dir)
        }
    }

    /// SIGKILLs this podman's VMM once the memory file in a temporary of
    /// the template `dir` has a size (the VMM made the temporary at its
    /// start; now it is writing it); false if the template was published or
    /// the run ended first.
    static func killVMMWhileSaving(_ podman: Podman, _ dir: String, _ done: Locked<Bool>) -> Bool {
        func writing() -> Bool {
            temporaries(of: dir).contains { (FS.stat(Path.join(SwvmPaths.templatesDir, $0, "memory"))?.st_size ?? 0) > 0 }
        }
        while !done.current && !FS.exists(dir) {
            if writing() {
                let vmms = HostLeftovers.processes(mentioning: podman.dir).compactMap { entry -> pid_t? in
                    let words = entry.split(separator: " ")
                    return words.count > 2 && words[1] == "swvm" && words[2] == "vmm" ? pid_t(words[0]) : nil
                }
                for pid in vmms { kill(pid, SIGKILL) }
                if !vmms.isEmpty { return true }
            }
            usleep(1000)
        }
        return false
    }
}
