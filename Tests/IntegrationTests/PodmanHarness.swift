#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import SwvmBase

/// The OCI runtime that the engine tests (podman, containerd) hand their
/// containers to: swvm, the binary built beside the tests, or
/// SWVM_OCI_RUNTIME (e.g. /usr/sbin/runc, to check the tests themselves
/// against the reference runtime).
enum EngineRuntime {
    static let path: String = FS.environment("SWVM_OCI_RUNTIME").flatMap { $0.isEmpty ? nil : $0 } ?? Harness.swvm
    /// runc is the runtime under test (the harness's own check).
    static let isRunc = Path.basename(path) == "runc"

    /// Where the runtime keeps its containers' state when the engine gives
    /// no --root (podman as root does not): runc's /run/runc, swvm's
    /// /run/swvm/oci; SWVM_OCI_RUNTIME_ROOT for another runtime.
    static let stateRoot: String = FS.environment("SWVM_OCI_RUNTIME_ROOT")
        ?? (Path.basename(path) == "runc" ? "/run/runc" : "/run/swvm/oci")

    static let imageName = "localhost/swvm-busybox:latest"

    static func installed(_ programs: [String]) -> Bool {
        programs.allSatisfy { p in ["/usr/bin", "/usr/sbin", "/bin", "/sbin"].contains { FS.exists(Path.join($0, p)) } }
    }

    static let podmanReady = installed(["podman", "conmon", "skopeo", "iptables"]) && FS.exists("/usr/lib/podman/netavark")
    static let containerdReady = installed(["containerd", "ctr", "containerd-shim-runc-v2", "skopeo"])
    /// Tests/Fixtures/engines/cri.py's gRPC: Debian's python3-grpcio.
    static let criClientReady = FS.isDirectory("/usr/lib/python3/dist-packages/grpc")

    /// A private directory for one test's engine state, removed by the test.
    static func makeTemporaryDirectory(_ prefix: String) throws -> String {
        var template = Array("/tmp/\(prefix).XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { throw SwvmError.errno("mkdtemp /tmp/\(prefix)") }
        return String(cString: template)
    }

    /// A fixture from Tests/Fixtures/engines with @NAME@ placeholders filled in.
    static func fixture(_ name: String, _ values: [String: String] = [:]) throws -> String {
        var text = try FS.readText(Path.join(Harness.repo, "Tests/Fixtures/engines", name))
        for (key, value) in values { text = text.replacing("@\(key)@", with: value) }
        return text
    }
}

/// What an engine's container can leave on the host: the runtime's state
/// directories, named network namespaces, cgroups under the engine's
/// parent, and processes or mounts that belong to a test's directory. Taken
/// before a test and compared after it: the test must add nothing.
struct HostLeftovers: Equatable, CustomStringConvertible {
    var runtimeState: Set<String> = []
    var netns: Set<String> = []
    var cgroups: Set<String> = []
    var processes: Set<String> = []
    var mounts: Set<String> = []
    /// The host network namespace's tun/tap devices (a VM's tap made in
    /// the wrong namespace, or never removed).
    var taps: Set<String> = []

    var description: String {
        [("runtime state", runtimeState), ("netns", netns), ("cgroups", cgroups), ("processes", processes), ("mounts", mounts),
         ("taps", taps)]
            .filter { !$0.1.isEmpty }.map { "\($0.0): \($0.1.sorted())" }.joined(separator: "; ")
    }

    /// What one engine can leave: the runtime's state directories
    /// (`stateRoots`, the --root each container's runtime calls use) and
    /// its cgroup parents, relative to each hierarchy (podman's cgroupfs
    /// "libpod_parent", containerd's namespaces).
    struct Scope {
        var stateRoots: [String]
        var cgroupParents: [String]
        /// The engine's own mounts while it runs (podman's overlay driver
        /// bind-mounts its home onto itself), checked after it is reset.
        var ownMountPoints: [String] = []
    }

    static func take(mentioning dir: String, _ scope: Scope) -> HostLeftovers {
        var s = HostLeftovers()
        for root in scope.stateRoots {
            for entry in (try? FS.listDirectory(root)) ?? [] { s.runtimeState.insert(Path.join(root, entry)) }
        }
        s.netns = Set((try? FS.listDirectory("/run/netns")) ?? [])
        s.taps = Set(((try? FS.listDirectory("/sys/class/net")) ?? []).filter { FS.exists("/sys/class/net/\($0)/tun_flags") })
        for hierarchy in (try? FS.listDirectory("/sys/fs/cgroup")) ?? [] {
            for parent in scope.cgroupParents {
                let p = Path.join("/sys/fs/cgroup", hierarchy, parent)
                for child in (try? FS.listDirectory(p)) ?? [] where FS.isDirectory(Path.join(p, child)) {
                    s.cgroups.insert(Path.join(hierarchy, parent, child))
                }
            }
        }
        s.processes = processes(mentioning: dir)
        s.mounts = Set(((try? FS.readText("/proc/self/mountinfo")) ?? "").split(separator: "\n")
            .filter { $0.contains(dir) && !scope.ownMountPoints.contains(String($0.split(separator: " ").dropFirst(4).first ?? "")) }
            .map(String.init))
        return s
    }

    /// Processes whose command line names `dir` (conmon, containerd's shim)
    /// or whose root or working directory is under it (a container's).
    static func processes(mentioning dir: String) -> Set<String> {
        var found: Set<String> = []
        let me = String(getpid())
        for pid in (try? FS.listDirectory("/proc")) ?? [] where pid.allSatisfy(\.isNumber) && pid != me {
            let cmdline = String(decoding: (try? FS.readFile("/proc/\(pid)/cmdline", limit: 65536)) ?? [], as: UTF8.self)
                .split(separator: "\0").joined(separator: " ")
            let root = FS.readLink("/proc/\(pid)/root") ?? "", cwd = FS.readLink("/proc/\(pid)/cwd") ?? ""
            if cmdline.contains(dir) || root.hasPrefix(dir) || cwd.hasPrefix(dir) { found.insert("\(pid) \(cmdline)") }
        }
        return found
    }

    /// What `after` has that `self` (taken before) had not.
    func added(in after: HostLeftovers) -> HostLeftovers {
        HostLeftovers(runtimeState: after.runtimeState.subtracting(runtimeState), netns: after.netns.subtracting(netns),
                      cgroups: after.cgroups.subtracting(cgroups), processes: after.processes.subtracting(processes),
                      mounts: after.mounts.subtracting(mounts), taps: after.taps.subtracting(taps))
    }

    var isEmpty: Bool { self == HostLeftovers() }

    /// Polls for up to `seconds`: the engines tear down asynchronously
    /// (conmon and the shims exit just after the command that stopped them).
    static func expectNothingAdded(since before: HostLeftovers, mentioning dir: String, _ scope: Scope,
                                   seconds: Double = 10, sourceLocation: SourceLocation = #_sourceLocation) {
        let started = Clock.monotonicNanos()
        var added = before.added(in: take(mentioning: dir, scope))
        while !added.isEmpty && Clock.secondsSince(started) < seconds {
            usleep(100_000)
            added = before.added(in: take(mentioning: dir, scope))
        }
        #expect(added.isEmpty, "left on the host: \(added)", sourceLocation: sourceLocation)
    }
}

/// A podman of the test's own: storage, run root, temporary files and
/// networks in a temporary directory, CONTAINERS_CONF the fixture with the
/// runtime under test as `swvm`, the example image loaded as
/// localhost/swvm-busybox. `Podman.with` checks that nothing is left.
/// Sendable: all its state is immutable (the concurrency test shares it).
final class Podman: Sendable {
    let dir: String
    let environment: [String: String]
    let globalFlags: [String]
    var image: String { EngineRuntime.imageName }
    /// podman as root gives the runtime no --root.
    var scope: HostLeftovers.Scope {
        HostLeftovers.Scope(stateRoots: [EngineRuntime.stateRoot], cgroupParents: ["libpod_parent"],
                            ownMountPoints: [Path.join(dir, "storage/overlay")])
    }

    private init() throws {
        dir = try EngineRuntime.makeTemporaryDirectory("swvm-podman")
        let conf = Path.join(dir, "containers.conf")
        try FS.writeText(conf, try EngineRuntime.fixture("containers.conf", ["RUNTIME": EngineRuntime.path]))
        try FS.makeDirectories(Path.join(dir, "networks"))
        try FS.writeText(Path.join(dir, "networks/podman.json"), try EngineRuntime.fixture("podman-network.json"))
        environment = ["CONTAINERS_CONF": conf, "TMPDIR": Path.join(dir, "tmp")]
        try FS.makeDirectories(Path.join(dir, "tmp"))
        globalFlags = ["--root", Path.join(dir, "storage"), "--runroot", Path.join(dir, "run"),
                       "--tmpdir", Path.join(dir, "libpod"), "--network-config-dir", Path.join(dir, "networks")]
        let loaded = try Command.run([Path.join(Harness.repo, "scripts/engine-images.sh"), "podman"] + globalFlags,
                                     timeout: 120, environment: environment)
        guard loaded.status == 0 else { throw SwvmError(.internalError, "scripts/engine-images.sh podman: \(loaded)") }
    }

    /// `podman GLOBAL_FLAGS args...`, in the podman's directory: conmon
    /// writes a file "oom" into its working directory when a container of
    /// its meets the OOM killer.
    @discardableResult
    func callAsFunction(_ args: [String], stdin: [UInt8]? = nil, timeout: Double = 120) throws -> CommandResult {
        try Command.run(["env", "-C", dir, "podman"] + globalFlags + args, stdin: stdin, timeout: timeout, environment: environment)
    }

    /// `podman run --rm [options] IMAGE command...`
    func runRm(_ options: [String], _ command: [String], timeout: Double = 120) throws -> CommandResult {
        try self(["run", "--rm"] + options + [image] + command, timeout: timeout)
    }

    /// Runs `body` with a fresh podman; then checks that it left no
    /// container, and nothing on the host, and removes the podman's files.
    static func with(sourceLocation: SourceLocation = #_sourceLocation, _ body: (Podman) throws -> Void) throws {
        let chains = Path.join(Harness.repo, "Tests/Fixtures/engines/netavark-chains.sh")
        let chainsBefore = try Command.run([chains, "present"]).status == 0
        let p = try Podman()
        let before = HostLeftovers.take(mentioning: p.dir, p.scope)
        var failure: Error?
        do { try body(p) } catch { failure = error }
        let left = (try? p(["ps", "-aq"]))?.out.split(separator: "\n") ?? []
        #expect(left.isEmpty, "containers left in podman: \(left)", sourceLocation: sourceLocation)
        if !left.isEmpty { _ = try? p(["rm", "-f", "-t", "0"] + left.map(String.init)) }
        HostLeftovers.expectNothingAdded(since: before, mentioning: p.dir, p.scope, sourceLocation: sourceLocation)
        let reset = p.reset()
        #expect(reset?.status == 0, "podman system reset: \(reset.map(String.init(describing:)) ?? "did not run")",
                sourceLocation: sourceLocation)
        let mounts = HostLeftovers.take(mentioning: p.dir, .init(stateRoots: [], cgroupParents: [])).mounts
        #expect(mounts.isEmpty, "mounts left under \(p.dir): \(mounts)", sourceLocation: sourceLocation)
        // netavark never removes its iptables chains; they were this podman's.
        if !chainsBefore {
            let removed = try Command.run([chains, "remove"])
            let stillThere = try Command.run([chains, "present"]).status == 0
            #expect(removed.status == 0 && !stillThere,
                    "netavark's iptables chains: \(removed)", sourceLocation: sourceLocation)
        }
        try? FS.removeTree(p.dir)
        if let f = failure { throw f }
    }

    /// `podman system reset -f`, again when it lost a race with its own
    /// event log: podman writes an event into libpod/events while the reset
    /// removes that directory ("unlinkat .../events: directory not empty").
    func reset() -> CommandResult? {
        var r = try? self(["system", "reset", "-f"])
        for _ in 0..<2 where r?.status != 0 && (r?.err.contains("directory not empty") ?? false) {
            usleep(200_000)
            r = try? self(["system", "reset", "-f"])
        }
        return r
    }

    /// `podman inspect --format FORMAT ID`, trimmed.
    func inspect(_ id: String, _ format: String) throws -> String {
        let r = try self(["inspect", "--format", format, id])
        guard r.status == 0 else { throw SwvmError(.internalError, "podman inspect \(id): \(r)") }
        return r.out.trimmingWhitespace
    }

    /// Waits until `podman logs ID` contains `text` (a server announcing it is up).
    func waitForLog(_ id: String, _ text: String, seconds: Double = 30) throws -> String {
        let started = Clock.monotonicNanos()
        var last = ""
        while Clock.secondsSince(started) < seconds {
            let r = try self(["logs", id])
            last = r.out + r.err
            if last.contains(text) { return last }
            usleep(100_000)
        }
        throw SwvmError(.internalError, "podman logs \(id) never showed \(text.debugDescription): \(last.debugDescription)")
    }

    /// Waits until `podman inspect` shows `status` for ID.
    func waitForStatus(_ id: String, _ status: String, seconds: Double = 30) throws {
        let started = Clock.monotonicNanos()
        var last = ""
        while Clock.secondsSince(started) < seconds {
            last = try inspect(id, "{{.State.Status}}")
            if last == status { return }
            usleep(100_000)
        }
        throw SwvmError(.internalError, "container \(id) is \(last), never \(status)")
    }
}

extension String {
    var trimmingWhitespace: String {
        String(drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }
}
