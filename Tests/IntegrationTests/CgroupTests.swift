#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import Cgroups
@testable import RuntimeSpec
@testable import SwvmBase

@Suite(.serialized) struct CgroupTests {
    /// The v2 file layer on a fake hierarchy: which files get which values.
    @Test func v2WritesTheLimitFiles() throws {
        let t = try TempDir("cg2")
        defer { t.cleanup() }
        try FS.writeText(t.path + "/cgroup.controllers", "cpuset cpu io memory pids\n")
        try FS.writeText(t.path + "/cgroup.subtree_control", "")
        let cg = try CgroupV2(root: t.path, name: "swvm/abc")
        let leaf = t.path + "/swvm/abc"
        for f in ["cgroup.controllers", "memory.max", "memory.swap.max", "pids.max", "cpu.max", "cgroup.procs"] {
            try FS.writeText(leaf + "/" + f, f == "cgroup.controllers" ? "cpu memory pids\n" : "")
        }
        var l = ResourceLimits()
        l.memory = 64 << 20
        l.pids = 42
        l.cpuQuota = 50_000
        try cg.apply(l)
        #expect(try FS.readText(t.path + "/cgroup.subtree_control") == "+memory +pids +cpu")
        #expect(try FS.readText(leaf + "/memory.max") == "67108864")
        #expect(try FS.readText(leaf + "/memory.swap.max") == "0")
        #expect(try FS.readText(leaf + "/pids.max") == "42")
        #expect(try FS.readText(leaf + "/cpu.max") == "50000 100000")
        try cg.add(pid: 1234)
        #expect(try FS.readText(leaf + "/cgroup.procs") == "1234")
        // A controller the hierarchy does not delegate is an error, not ignored.
        try FS.writeText(leaf + "/cgroup.controllers", "memory\n")
        var cpuOnly = ResourceLimits()
        cpuOnly.cpuQuota = 1000
        #expect(throws: SwvmError.self) { try cg.apply(cpuOnly) }
    }

    /// The shared swvm/ parent stays while another run is inside and goes
    /// with the last one, so no empty swvm/ is left on the host.
    @Test func theSharedParentGoesWithItsLastChild() throws {
        let t = try TempDir("cgparent")
        defer { t.cleanup() }
        let a = try Cgroups.makeDirectories(base: t.path, name: "swvm/a")
        let b = try Cgroups.makeDirectories(base: t.path, name: "swvm/b")
        #expect(a == t.path + "/swvm/a" && FS.isDirectory(a) && FS.isDirectory(b))
        Cgroups.killAndRemove(a)
        #expect(!FS.exists(a))
        #expect(FS.isDirectory(t.path + "/swvm"))
        Cgroups.killAndRemove(b)
        #expect(!FS.exists(t.path + "/swvm"))
        #expect(throws: SwvmError.self) { try Cgroups.makeDirectories(base: t.path + "/missing", name: "swvm/c") }
    }

    /// A real cgroup2 hierarchy (the host's unified mount, or one mounted
    /// here): create, join, kill and remove.
    @Test func v2OnARealHierarchy() throws {
        var root = ""
        var mounted: TempDir?
        if case .v2(let r) = Cgroups.detect() {
            root = r
        } else if FS.exists("/sys/fs/cgroup/unified/cgroup.procs") {
            root = "/sys/fs/cgroup/unified"
        } else {
            let t = try TempDir("cg2mnt")
            guard mount("none", t.path, "cgroup2", 0, nil) == 0 else {
                Issue.record("cannot mount cgroup2: \(errnoText(errno))")
                return
            }
            mounted = t
            root = t.path
        }
        defer { if let m = mounted { umount2(m.path, 0); m.cleanup() } }
        let id = "test-\(randomHex(4))"
        let cg = try CgroupV2(root: root, name: "swvm/\(id)")
        var pid: pid_t = 0
        var argv: [UnsafeMutablePointer<CChar>?] = [strdup("sleep"), strdup("30"), nil]
        #expect(posix_spawnp(&pid, "sleep", nil, nil, &argv, environ) == 0)
        try cg.add(pid: pid)
        #expect(try FS.readText("/proc/\(pid)/cgroup").contains("0::/swvm/\(id)"))
        cg.destroy()
        let (_, status) = waitForExit(pid)
        #expect(shellStatus(fromWaitStatus: status) == 137)
        #expect(!FS.exists(root + "/swvm/\(id)"))
    }

    @Test(.enabled(if: FS.isDirectory("/sys/fs/cgroup/memory")))
    func v1JoinsOnlyWhatTheLimitsNeed() throws {
        var l = ResourceLimits()
        l.memory = 32 << 20
        let cg = try Cgroups.create(id: "test-\(randomHex(4))", version: .v1(root: "/sys/fs/cgroup"), limits: l)
        defer { cg.destroy() }
        #expect(cg.paths.map { Path.dirname(Path.dirname($0)) }.sorted() == ["/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids"])
        try cg.apply(l)
        #expect(try FS.readText(cg.paths.first { $0.contains("/memory/") }! + "/memory.limit_in_bytes").hasPrefix("33554432"))
    }
}
