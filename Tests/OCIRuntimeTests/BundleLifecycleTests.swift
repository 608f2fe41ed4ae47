#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import OCIRuntime
@testable import SwvmBase
import NativeThreads

/// An OCI bundle made as a user makes one: the example image's layer
/// unpacked into rootfs/, config.json from `swvm spec`, edited.
final class RealBundle {
    let path: String
    var rootfs: String { Path.join(path, "rootfs") }

    init(args: [String], edit: (JSON) -> JSON = { $0 }) throws {
        path = "/tmp/swvm-oci-real-\(getpid())-\(randomHex(4))"
        try FS.makeDirectories(Path.join(path, "rootfs"))
        let image = Path.join(Binary.repo, "examples/busybox")
        if !FS.exists(Path.join(image, "index.json")) {
            _ = try Subprocess.run([Path.join(Binary.repo, "scripts/build-example-image.sh")])
        }
        let index = try JSON.parse(FS.readFile(Path.join(image, "index.json")))
        let blob = { (digest: String) in Path.join(image, "blobs/sha256", String(digest.dropFirst("sha256:".count))) }
        let manifest = try JSON.parse(FS.readFile(blob(index["manifests"]?[0]?["digest"]?.string ?? "")))
        for layer in manifest["layers"]?.array ?? [] {
            let r = try Subprocess.run(["tar", "-xzf", blob(layer["digest"]?.string ?? ""), "-C", rootfs])
            guard r.status == 0 else { throw SwvmError(.internalError, "tar: \(r.output)") }
        }
        let spec = try Command.run([Binary.swvm, "spec", "--bundle", path])
        guard spec.status == 0 else { throw SwvmError(.internalError, "swvm spec: \(spec)") }
        var config = try JSON.parse(FS.readFile(Path.join(path, "config.json")))
        var process = (config["process"] ?? .object([])).setting("terminal", false).setting("args", .array(args.map { .string($0) }))
        // runc spec's ambient set without an inheritable one cannot be raised.
        process = process.setting("capabilities", (process["capabilities"] ?? .object([])).setting("ambient", .array([])))
        config = edit(config.setting("process", process))
        try FS.writeText(Path.join(path, "config.json"), config.serialized(pretty: true))
    }

    deinit { try? FS.removeTree(path) }
}

/// The whole lifecycle through the built binary, as engines drive it:
/// real namespaces, cgroups and the exec FIFO.
@Suite(.serialized) struct BundleLifecycleTests {
    func swvm(_ root: ScratchRoot, _ args: [String], timeout: Double = 60) throws -> CommandResult {
        try Binary.run(["--root", root.path] + args, timeout: timeout)
    }

    func status(_ root: ScratchRoot, _ id: String) throws -> String {
        try JSON.parse(swvm(root, ["state", id]).out)["status"]?.string ?? "?"
    }

    @Test func createStartKillDeleteLeavesNothing() throws {
        let root = try ScratchRoot(), bundle = try RealBundle(args: ["sleep", "1000"])
        let pidFile = Path.join(bundle.path, "pid")
        let c = try swvm(root, ["create", "--bundle", bundle.path, "--pid-file", pidFile, "c1"])
        #expect(c.status == 0, "\(c)")
        let pid = pid_t(try FS.readText(pidFile)) ?? 0
        #expect(pid > 0)
        #expect(try status(root, "c1") == "created")
        // Not exec'd: the init is still swvm, blocked on the FIFO.
        #expect(FS.readLink("/proc/\(pid)/exe")?.hasSuffix("swvm") == true)
        let record = try #require(try root.store.read("c1"))
        #expect(!record.cgroupPaths.isEmpty && record.cgroupPaths.allSatisfy(FS.isDirectory))
        #expect(try swvm(root, ["start", "c1"]).status == 0)
        #expect(try status(root, "c1") == "running")
        for _ in 0..<100 where FS.readLink("/proc/\(pid)/exe")?.hasSuffix("busybox") != true { usleep(10_000) }
        #expect(FS.readLink("/proc/\(pid)/exe")?.hasSuffix("busybox") == true)
        #expect(try swvm(root, ["kill", "c1", "KILL"]).status == 0)
        for _ in 0..<100 where try status(root, "c1") != "stopped" { usleep(10_000) }
        #expect(try status(root, "c1") == "stopped")
        let d = try swvm(root, ["delete", "c1"])
        #expect(d.status == 0, "\(d)")
        #expect(!FS.exists(root.store.directory("c1")))
        #expect(record.cgroupPaths.allSatisfy { !FS.exists($0) })
        let initGone = !ProcessIdentity(pid: pid, startTime: record.initProcess?.startTime ?? 0).isAlive
        #expect(initGone)
    }

    /// `swvm create` SIGKILLed while its createRuntime hook runs (the init
    /// and its cgroup exist): the container is "stopped" and delete
    /// --force removes the init, the cgroup and the state.
    @Test func deleteForceAfterCreateWasKilled() throws {
        let root = try ScratchRoot()
        let bundle = try RealBundle(args: ["true"]) { config in
            config.setting("hooks", .object([("createRuntime", .array([.object([("path", "/bin/sleep"), ("args", ["sleep", "2"])])]))]))
        }
        let create = Locked<Int32?>(nil)
        let rootPath = root.path, bundlePath = bundle.path
        let t = try NativeThread {
            create.replace(try? Binary.run(["--root", rootPath, "create", "--bundle", bundlePath, "c1"], timeout: 30).status)
        }
        var record: ContainerRecord?
        for _ in 0..<500 {
            record = try? root.store.read("c1")
            if record?.initProcess != nil { break }
            usleep(10_000)
        }
        let initProcess = try #require(record?.initProcess)
        kill(try #require(record).creator.pid, SIGKILL)
        t.join()
        #expect(create.current == 128 + SIGKILL)
        // The init (waiting on swvm before pivot_root) ends by itself or
        // is left for delete --force; either way the container is stopped.
        #expect(try status(root, "c1") == "stopped")
        let d = try swvm(root, ["delete", "--force", "c1"])
        #expect(d.status == 0, "\(d)")
        #expect(!FS.exists(root.store.directory("c1")))
        #expect(!initProcess.isAlive)
        #expect(record?.cgroupPaths.allSatisfy { !FS.exists($0) } == true)
    }

    @Test func execIntoARunningContainer() throws {
        let root = try ScratchRoot(), bundle = try RealBundle(args: ["sleep", "1000"])
        defer { _ = try? swvm(root, ["delete", "--force", "c1"]) }
        #expect(try swvm(root, ["create", "--bundle", bundle.path, "c1"]).status == 0)
        #expect(try swvm(root, ["start", "c1"]).status == 0)
        let e = try swvm(root, ["exec", "c1", "sh", "-c", "echo pid1=$(cat /proc/1/comm); hostname; exit 3"])
        #expect(e.status == 3 && e.out.contains("pid1=sleep"), "\(e)")
        let missing = try swvm(root, ["exec", "c1", "/no/such/program"])
        #expect(missing.status == 255 && missing.err.contains("/no/such/program"), "\(missing)")
        let ps = try swvm(root, ["ps", "--format", "json", "c1"])
        #expect(try JSON.parse(ps.out).array?.count == 1, "\(ps)")
    }

    /// A config.json error reaches --log as JSON, naming the JSON path.
    @Test func aConfigErrorIsInTheLog() throws {
        let root = try ScratchRoot()
        let bundle = try RealBundle(args: ["true"]) { config in
            config.setting("process", (config["process"] ?? .object([])).setting("user", .object([("uid", 4_294_967_296), ("gid", 0)])))
        }
        let log = Path.join(root.path, "log.json")
        let r = try Binary.run(["--root", root.path, "--log", log, "--log-format", "json", "create", "--bundle", bundle.path, "c1"])
        #expect(r.status == 1 && r.err.contains("process.user.uid"), "\(r)")
        let line = try JSON.parse(try FS.readText(log).split(separator: "\n").last.map(String.init) ?? "")
        #expect(line["level"]?.string == "error" && line["msg"]?.string?.contains("process.user.uid") == true, "\(line)")
        #expect(!FS.exists(root.store.directory("c1")))
    }

    /// runc run: create, start, wait, delete; the process's exit status.
    @Test func runWaitsAndDeletes() throws {
        let root = try ScratchRoot(), bundle = try RealBundle(args: ["sh", "-c", "echo hello; exit 7"])
        let r = try swvm(root, ["run", "--bundle", bundle.path, "c1"])
        #expect(r.status == 7 && r.out.contains("hello"), "\(r)")
        #expect(!FS.exists(root.store.directory("c1")))
    }
}
