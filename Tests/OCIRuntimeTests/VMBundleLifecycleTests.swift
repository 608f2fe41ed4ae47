#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import OCIRuntime
@testable import SwvmBase
import NativeThreads

/// The lifecycle at the VM level, through a `swvm-vm` link to the built
/// binary: the container's pid is a VMM process in the container's cgroup,
/// the workload stops at guest-init's start gate until `start`, its exit
/// status is the VMM's, and `delete --force` after a SIGKILL of `create`
/// part-way or of the VMM leaves no process, cgroup, run record, uid lease
/// or state directory.
@Suite(.serialized, .enabled(if: VMReadiness.ready, "needs /dev/kvm, the guest kernel and guest-init"))
struct VMBundleLifecycleTests {
    /// `swvm-vm --root ROOT args...`, its stdio in ROOT/out and ROOT/err:
    /// the VMM that `create` starts keeps create's stdout and stderr (the
    /// container's), which would hold a pipe open for the VM's lifetime.
    func vm(_ root: ScratchRoot, _ args: [String], timeout: Double = 300) throws -> Int32 {
        try Self.vm(root.path, args, timeout: timeout)
    }

    static func vm(_ root: String, _ args: [String], timeout: Double = 300) throws -> Int32 {
        let link = Path.join(root, "swvm-vm")
        if FS.readLink(link) == nil { try sys("symlink \(link)") { symlink(Binary.swvm, link) } }
        let out = Path.join(root, "out"), err = Path.join(root, "err")
        return try Command.run(["sh", "-c", "exec \"$0\" \"$@\" </dev/null >>\(out) 2>>\(err)", link, "--root", root] + args,
                               timeout: timeout).status
    }

    func output(_ root: ScratchRoot) -> String {
        ["out", "err"].map { (try? FS.readText(Path.join(root.path, $0))) ?? "" }.joined(separator: " | stderr: ")
    }

    func state(_ root: ScratchRoot, _ id: String) throws -> JSON {
        try JSON.parse(Binary.run(["--root", root.path, "state", id]).out)
    }

    static func uniqueID(_ name: String) -> String { "vmt-\(getpid())-\(randomHex(3))-\(name)" }

    /// What a VM container can leave on the host, each named.
    func leftovers(_ root: ScratchRoot, id: String, vmm: ProcessIdentity?) -> [String] {
        var found: [String] = []
        if FS.exists(root.store.directory(id)) { found.append("state directory") }
        if let vmm, vmm.isAlive { found.append("VMM \(vmm.pid)") }
        for h in (try? FS.listDirectory("/sys/fs/cgroup")) ?? [] where FS.exists("/sys/fs/cgroup/\(h)/swvm/\(id)") {
            found.append("cgroup \(h)/swvm/\(id)")
        }
        if FS.exists(Path.join(SwvmPaths.runRoot, "runs", id)) { found.append("run record") }
        let leases = Path.join(SwvmPaths.runRoot, "vmm-ids")
        for name in (try? FS.listDirectory(leases)) ?? [] where vmm != nil {
            if (try? FS.readText(Path.join(leases, name)))?.hasPrefix("\(vmm!.pid) ") == true { found.append("uid lease \(name)") }
        }
        found += HostProcesses.mentioning(root.path).map { "process \($0)" }
        return found
    }

    /// Polls for up to 15 s: the keeper cleans up just after its VMM ends.
    func expectNothingLeft(_ root: ScratchRoot, id: String, vmm: ProcessIdentity?, sourceLocation: SourceLocation = #_sourceLocation) {
        var left = leftovers(root, id: id, vmm: vmm)
        for _ in 0..<150 where !left.isEmpty {
            usleep(100_000)
            left = leftovers(root, id: id, vmm: vmm)
        }
        #expect(left.isEmpty, "left on the host: \(left)", sourceLocation: sourceLocation)
    }

    @Test func createStartKillDelete() throws {
        let root = try ScratchRoot(), bundle = try RealBundle(args: ["sleep", "1000"]), id = Self.uniqueID("c1")
        defer { _ = try? vm(root, ["delete", "--force", id]) }
        #expect(try vm(root, ["create", "--bundle", bundle.path, id]) == 0, "\(output(root))")
        let created = try state(root, id)
        #expect(created["status"]?.string == "created" && created["annotations"]?["swvm.isolation"]?.string == "vm", "\(created)")
        let record = try #require(try root.store.read(id))
        let vmm = try #require(record.initProcess)
        let cmdline = String(decoding: (try? FS.readFile("/proc/\(vmm.pid)/cmdline")) ?? [], as: UTF8.self)
        #expect(cmdline.hasPrefix("swvm\0vmm\0"), "the container's pid is the VMM: \(cmdline)")
        #expect(!record.cgroupPaths.isEmpty && record.cgroupPaths.allSatisfy {
            ((try? FS.readText(Path.join($0, "cgroup.procs"))) ?? "").split(separator: "\n").contains(Substring(String(vmm.pid)))
        }, "the VMM runs in the container's cgroup")
        #expect(try vm(root, ["start", id]) == 0, "\(output(root))")
        #expect(try state(root, id)["status"]?.string == "running")
        #expect(try vm(root, ["kill", id, "KILL"]) == 0)
        for _ in 0..<100 where try state(root, id)["status"]?.string != "stopped" { usleep(50_000) }
        #expect(try state(root, id)["status"]?.string == "stopped")
        #expect(try vm(root, ["delete", id]) == 0, "\(output(root))")
        expectNothingLeft(root, id: id, vmm: vmm)
    }

    /// runc run: the workload's exit status is the VMM's, its output the
    /// container's stdout; a missing program is reported by create.
    @Test func runPassesTheExitStatusThrough() throws {
        let root = try ScratchRoot(), id = Self.uniqueID("run")
        let bundle = try RealBundle(args: ["sh", "-c", "echo from-the-vm; uname -r; exit 3"])
        #expect(try vm(root, ["run", "--bundle", bundle.path, id]) == 3, "\(output(root))")
        let out = (try? FS.readText(Path.join(root.path, "out"))) ?? ""
        #expect(out.hasPrefix("from-the-vm\n") && !out.contains(HostKernel.release), "\(output(root))")
        let missing = try RealBundle(args: ["no-such-command"]), missingID = Self.uniqueID("missing")
        #expect(try vm(root, ["create", "--bundle", missing.path, missingID]) == 1)
        #expect(output(root).contains("executable file not found"), "\(output(root))")
        expectNothingLeft(root, id: missingID, vmm: nil)
        expectNothingLeft(root, id: id, vmm: nil)
    }

    @Test func deleteForceAfterCreateWasKilledPartWay() throws {
        let root = try ScratchRoot(), bundle = try RealBundle(args: ["sleep", "1000"]), id = Self.uniqueID("killed")
        let rootPath = root.path, bundlePath = bundle.path
        let t = try NativeThread { _ = try? Self.vm(rootPath, ["create", "--bundle", bundlePath, id]) }
        // Part-way: the VMM exists (restoring the VM), create waits for it.
        var vmm: ProcessIdentity?
        for _ in 0..<500 where vmm == nil {
            vmm = HostProcesses.pids(mentioning: root.path).first { pid in
                String(decoding: (try? FS.readFile("/proc/\(pid)/cmdline")) ?? [], as: UTF8.self).hasPrefix("swvm\0vmm\0")
            }.map { ProcessIdentity(pid: $0, startTime: ProcessStat.read($0)?.startTime ?? 0) }
            usleep(10_000)
        }
        #expect(vmm != nil, "no VMM appeared: \(output(root))")
        usleep(500_000)
        let creator = try #require(try root.store.read(id)).creator
        kill(creator.pid, SIGKILL)
        t.join()
        #expect(try state(root, id)["status"]?.string == "stopped")
        #expect(try vm(root, ["delete", "--force", id]) == 0, "\(output(root))")
        expectNothingLeft(root, id: id, vmm: vmm)
    }

    @Test func deleteForceAfterTheVMMWasKilled() throws {
        let root = try ScratchRoot(), bundle = try RealBundle(args: ["sleep", "1000"]), id = Self.uniqueID("vmm")
        defer { _ = try? vm(root, ["delete", "--force", id]) }
        #expect(try vm(root, ["create", "--bundle", bundle.path, id]) == 0, "\(output(root))")
        #expect(try vm(root, ["start", id]) == 0, "\(output(root))")
        let vmm = try #require(try root.store.read(id)?.initProcess)
        kill(vmm.pid, SIGKILL)
        for _ in 0..<100 where try state(root, id)["status"]?.string != "stopped" { usleep(50_000) }
        #expect(try vm(root, ["delete", "--force", id]) == 0, "\(output(root))")
        expectNothingLeft(root, id: id, vmm: vmm)
    }
}

enum VMReadiness {
    static var ready: Bool {
        access("/dev/kvm", R_OK | W_OK) == 0 && FS.exists(Path.join(SwvmPaths.cacheRoot, "kernel/current/vmlinux"))
            && FS.exists(Path.join(SwvmPaths.cacheRoot, "guest-init/current/init"))
    }
}

/// Processes whose command line names a path, or whose root or working
/// directory is under it.
enum HostProcesses {
    static func pids(mentioning path: String) -> [pid_t] {
        ((try? FS.listDirectory("/proc")) ?? []).compactMap { name -> pid_t? in
            guard let pid = pid_t(name), pid != getpid() else { return nil }
            let cmdline = String(decoding: (try? FS.readFile("/proc/\(pid)/cmdline", limit: 65536)) ?? [], as: UTF8.self)
            let cwd = FS.readLink("/proc/\(pid)/cwd") ?? ""
            return cmdline.contains(path) || cwd.hasPrefix(path) ? pid : nil
        }
    }

    static func mentioning(_ path: String) -> [String] {
        pids(mentioning: path).map { pid in
            "\(pid) " + String(decoding: (try? FS.readFile("/proc/\(pid)/cmdline", limit: 4096)) ?? [], as: UTF8.self)
                .split(separator: "\0").joined(separator: " ")
        }
    }
}

enum HostKernel {
    static var release: String {
        var u = utsname()
        uname(&u)
        return withUnsafeBytes(of: u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
}
