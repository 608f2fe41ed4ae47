#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase

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
    static func detached(_ podman: Podman, _ runtime: [String], _ name: String, _ extra: [String], _ script: String) throws -> String? {
        let r = try podman(runtime + ["run", "-d", "--name", name] + extra + [podman.image, "sh", "-c", script + "; echo ready; sleep 1000"],
                           timeout: 300)
        #expect(r.status == 0, "\(r)")
        _ = try podman.waitForLog(name, "ready", seconds: 120)
        return try vmStart(podman, name)
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
            #expect(rebuilt == "boot snapshot (template saved)", "\(rebuilt ?? "no annotation")")
            #expect(try podman(["rm", "-f", "-t", "0", "four"]).status == 0)
            #expect(try PodmanVMTests.bytes(of: memory, at: 0x100_0000, count: 4096) != junk, "the damaged template was saved again")
            let restored = try Self.detached(podman, runtime, "five", [], "true")
            #expect(restored == "template", "\(restored ?? "no annotation")")
            #expect(try podman(["rm", "-f", "-t", "0", "five"]).status == 0)
            for t in Self.templates() where !before.contains(t) { try? FS.removeTree(t) }
        }
    }
}
