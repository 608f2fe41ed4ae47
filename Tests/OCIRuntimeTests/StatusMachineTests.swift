#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import OCIRuntime
import RuntimeSpec
@testable import SwvmBase

/// An isolation level made of a plain process, so the lifecycle's status
/// machine runs against real processes and a real FIFO: the "init" is a
/// shell that blocks opening the exec FIFO for writing, writes runc's "0"
/// and then execs `sleep`. Pausing is SIGSTOP (a stopped process is
/// "frozen").
struct ShellEngine: IsolationEngine {
    func create(_ spec: RunSpec, io: ProcessIO, stateDir: String, execFIFO: String) throws -> CreatedInit {
        let script = "echo 0 > \"$1\"; exec " + spec.process.args.joined(separator: " ")
        let words: [String] = ["/bin/sh", "-c", script, "sh", execFIFO]
        let pid: pid_t
        do { pid = try Spawn.start("/bin/sh", argv: words) } catch { throw SwvmError.errno("spawn", error.errno) }
        // Its start time is in /proc once it exists.
        return CreatedInit(process: ProcessIdentity(pid: pid, startTime: ProcessStat.read(pid)?.startTime ?? 0), cgroupPaths: ["\(pid)"])
    }

    func exec(into container: ProcessIdentity, cgroupPaths: [String], spec: RunSpec, io: ProcessIO,
              detach: Bool, pidFile: String?) throws -> Int32 { 0 }

    func isFrozen(_ record: ContainerRecord) -> Bool {
        record.cgroupPaths.first.flatMap { pid_t($0) }.flatMap { ProcessStat.read($0)?.state } == "T"
    }

    func freeze(_ record: ContainerRecord) throws {
        for p in pids(record.cgroupPaths) { kill(p, SIGSTOP) }
        for _ in 0..<200 where !isFrozen(record) { usleep(5000) }   // as the freezer's FREEZING to FROZEN
    }
    func thaw(_ record: ContainerRecord) throws { for p in pids(record.cgroupPaths) { kill(p, SIGCONT) } }
    func update(_ record: ContainerRecord, _ resources: ResourceUpdate) throws {}
    func signalAll(_ record: ContainerRecord, signal: Int32) throws { for p in pids(record.cgroupPaths) { kill(p, signal) } }
    func processes(_ record: ContainerRecord) throws -> ProcessListing { .host(pids(record.cgroupPaths)) }
    func pids(_ cgroupPaths: [String]) -> [pid_t] { cgroupPaths.compactMap { pid_t($0) } }
    func destroy(cgroupPaths: [String], cgroupsPath: String?, id: String) {
        for p in pids(cgroupPaths) { kill(p, SIGKILL) }
    }
}

/// A bundle directory with a config.json (its content is the test's: the
/// lifecycle copies it; the spec comes from `spec`).
final class ScratchBundle {
    let path: String

    init() throws {
        path = "/tmp/swvm-oci-bundle-\(getpid())-\(randomHex(4))"
        try FS.makeDirectories(path)
        try FS.writeText(Path.join(path, "config.json"), "{\"ociVersion\":\"1.1.0\"}")
    }

    deinit { try? FS.removeTree(path) }
}

func shellLifecycle(_ root: ScratchRoot, args: [String] = ["sleep", "100"], hooks: OCIHooks = OCIHooks()) -> Lifecycle {
    var l = Lifecycle(store: root.store, engine: ShellEngine())
    l.loadConfig = { bundle, id in
        var spec = RunSpec(id: id, rootfs: bundle, process: ProcessSpec(args: args, env: [], cwd: "/", uid: 0, gid: 0,
                                                                         additionalGids: [], user: ""),
                           hostname: id, capabilities: [])
        var oci = OCISettings(rootPath: Path.join(bundle, "rootfs"))
        oci.hooks = hooks
        oci.annotations = [OCIAnnotation(key: "org.example", value: "yes")]
        spec.oci = oci
        return BundleConfig(spec: spec, json: .object([("ociVersion", "1.1.0")]))
    }
    return l
}

/// /proc/PID/exe's target: what the process runs now.
func executable(_ pid: pid_t) -> String { FS.readLink("/proc/\(pid)/exe") ?? "" }

@Suite(.serialized) struct StatusMachineTests {
    @Test func createStartPauseKillDelete() throws {
        let root = try ScratchRoot(), bundle = try ScratchBundle()
        let l = shellLifecycle(root)
        try l.create("c1", CreateOptions(bundle: bundle.path))
        var s = try l.state("c1")
        #expect(s.status == .created)
        let pid = s.pid
        #expect(pid > 0)
        // Created: still the shell, blocked on the FIFO, not yet `sleep`.
        #expect(!executable(pid).contains("sleep"))
        #expect(s.specJSON["annotations"]?["org.example"] == "yes")
        try l.start("c1")
        #expect(try l.state("c1").status == .running)
        #expect(!FS.exists(root.store.execFIFO("c1")))
        for _ in 0..<100 where !executable(pid).contains("sleep") { usleep(10_000) }
        #expect(executable(pid).contains("sleep"))
        #expect(throws: SwvmError.self) { try l.start("c1") }
        try l.pause("c1")
        #expect(try l.state("c1").status == .paused)
        try l.resume("c1")
        #expect(try l.state("c1").status == .running)
        #expect(throws: SwvmError.self) { try l.delete("c1", force: false) }
        try l.kill("c1", signal: SIGKILL, all: false)
        for _ in 0..<100 where (try l.state("c1")).status != .stopped { usleep(10_000) }
        s = try l.state("c1")
        #expect(s.status == .stopped && s.pid == 0)
        try l.delete("c1", force: false)
        #expect(!FS.exists(root.store.directory("c1")))
        #expect(ProcessStat.read(pid) == nil)   // killed and reaped
        #expect(throws: SwvmError.self) { _ = try l.state("c1") }
    }

    /// A pid the kernel gave to another process is not the container's.
    @Test func aReusedPidIsStopped() throws {
        let root = try ScratchRoot()
        let lock = try root.store.makeContainer("c1")
        var r = sampleRecord()
        r.initProcess = ProcessIdentity(pid: getpid(), startTime: 1)   // alive, but not started at tick 1
        try root.store.write(r, lock)
        #expect(try Lifecycle(store: root.store, engine: ShellEngine()).state("c1").status == .stopped)
        r.initProcess = .current()
        try root.store.write(r, lock)
        #expect(try Lifecycle(store: root.store, engine: ShellEngine()).state("c1").status == .running)
    }

    /// A create killed part-way: its record says "creating" with a creator
    /// that is gone, and an init still waiting. The state is "stopped" and
    /// delete --force kills the init and removes the directory.
    @Test func aKilledCreateIsRemovedByForce() throws {
        let root = try ScratchRoot(), bundle = try ScratchBundle()
        let l = shellLifecycle(root)
        try l.create("c1", CreateOptions(bundle: bundle.path))
        var record = try #require(try root.store.read("c1"))
        let initProcess = try #require(record.initProcess)
        let gone = try Command.run(["true"])
        record.createFinished = false
        record.creator = ProcessIdentity(pid: gone.pid, startTime: 1)
        try FS.writeFile(root.store.stateFile("c1"), record.encoded())
        #expect(try l.state("c1").status == .stopped)
        try l.delete("c1", force: true)
        #expect(!FS.exists(root.store.directory("c1")))
        #expect(!initProcess.isAlive)
        // And a directory without state.json (killed before it wrote one).
        try FS.makeDirectories(root.store.directory("c2"))
        #expect(try l.state("c2").status == .stopped)
        try l.delete("c2", force: true)
        #expect(!FS.exists(root.store.directory("c2")))
        try l.delete("never-made", force: true)
        #expect(throws: SwvmError.self) { try l.delete("never-made", force: false) }
    }

    @Test func killAllAndSignalNames() throws {
        let root = try ScratchRoot(), bundle = try ScratchBundle()
        let l = shellLifecycle(root)
        try l.create("c1", CreateOptions(bundle: bundle.path))
        try l.start("c1")
        try l.kill("c1", signal: SignalName.parse("SIGTERM"), all: true)
        for _ in 0..<100 where (try l.state("c1")).status != .stopped { usleep(10_000) }
        #expect(try l.state("c1").status == .stopped)
        #expect(throws: SwvmError.self) { try l.kill("c1", signal: SIGTERM, all: false) }
        try l.delete("c1", force: false)
        #expect(try SignalName.parse("9") == SIGKILL && SignalName.parse("kill") == SIGKILL && SignalName.parse("RTMIN+2") == 36)
        for bad in ["0", "65", "SIGFOO", "", "-1"] { #expect(throws: SwvmError.self) { _ = try SignalName.parse(bad) } }
    }

    @Test func deletingACreatedContainerKillsIt() throws {
        let root = try ScratchRoot(), bundle = try ScratchBundle()
        let l = shellLifecycle(root)
        try l.create("c1", CreateOptions(bundle: bundle.path))
        let initProcess = try #require(try root.store.read("c1")?.initProcess)
        try l.delete("c1", force: false)
        #expect(!initProcess.isAlive)
        #expect(!FS.exists(root.store.directory("c1")))
    }
}
