#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import OCIRuntime
@testable import SwvmBase

/// The hooks of the container's own namespaces, through the built binary
/// and a real bundle: createContainer in the container's mount namespace
/// before pivot_root, startContainer in the container after start and
/// before the process (runtime-spec config.md, "POSIX-platform Hooks").
@Suite(.serialized) struct ContainerHookTests {
    func swvm(_ root: ScratchRoot, _ args: [String]) throws -> CommandResult {
        try Binary.run(["--root", root.path] + args, timeout: 60)
    }

    func hook(_ script: String) -> JSON {
        .object([("path", "/bin/sh"), ("args", .array(["sh", "-c", .string(script)]))])
    }

    @Test func createContainerAndStartContainerRunInTheContainer() throws {
        let root = try ScratchRoot()
        // Outside the root: reachable only before pivot_root.
        let out = "/tmp/swvm-hooks-out-\(getpid())-\(randomHex(4))"
        try FS.makeDirectories(out)
        defer { try? FS.removeTree(out) }
        let bundle = try RealBundle(args: ["sh", "-c", "cat /hook-start > /seen; exec sleep 100"]) { config in
            config.setting("root", .object([("path", "rootfs"), ("readonly", false)])).setting("hooks", .object([
                ("createContainer", .array([hook("readlink /proc/self/ns/mnt > \(out)/ns; cat > \(out)/state")])),
                // Resolved in the container: busybox's sh, writing into its root.
                ("startContainer", .array([hook("cat > /hook-start")])),
            ]))
        }
        defer { _ = try? swvm(root, ["delete", "--force", "c1"]) }
        let c = try swvm(root, ["create", "--bundle", bundle.path, "c1"])
        #expect(c.status == 0, "\(c)")
        let pid = try #require(try JSON.parse(swvm(root, ["state", "c1"]).out)["pid"]?.int)
        let hookNS = try FS.readText(Path.join(out, "ns")).split(separator: "\n").first.map(String.init) ?? ""
        #expect(hookNS == FS.readLink("/proc/\(pid)/ns/mnt"), "the hook's \(hookNS)")
        #expect(hookNS != FS.readLink("/proc/self/ns/mnt"))
        let state = try JSON.parse(FS.readText(Path.join(out, "state")))
        #expect(state["status"]?.string == "creating" && state["pid"]?.int == pid && state["id"]?.string == "c1", "\(state)")
        // Not before start.
        #expect(!FS.exists(Path.join(bundle.rootfs, "hook-start")))
        #expect(try swvm(root, ["start", "c1"]).status == 0)
        let seen = Path.join(bundle.rootfs, "seen")
        for _ in 0..<300 where ((try? FS.readText(seen)) ?? "").isEmpty { usleep(10_000) }
        // The process read what the hook wrote: the hook ran first.
        let started = try JSON.parse(FS.readText(seen))
        #expect(started["status"]?.string == "created" && started["pid"]?.int == pid, "\(started)")
    }

    /// A failing createContainer hook fails create with its message, and
    /// nothing is left.
    @Test func aFailingCreateContainerHookFailsCreate() throws {
        let root = try ScratchRoot()
        let bundle = try RealBundle(args: ["true"]) { config in
            config.setting("hooks", .object([("createContainer", .array([hook("cat > /dev/null; echo no device; exit 3")]))]))
        }
        defer { _ = try? swvm(root, ["delete", "--force", "c1"]) }
        let c = try swvm(root, ["create", "--bundle", bundle.path, "c1"])
        #expect(c.status == 1 && c.err.contains("createContainer hook #0 (/bin/sh): exit status 3, output: no device"), "\(c)")
        #expect(!FS.exists(root.store.directory("c1")))
    }
}
