#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import OCIRuntime
@testable import SwvmBase

/// linux.resources beyond swvm run's limits, as runc writes them: cpu
/// shares, cpuset, the memory reservation, swappiness and OOM killer.
@Suite(.serialized) struct OCIResourcesCgroupTests {
    @Test func cpuSharesCpusetAndMemoryExtrasAreWritten() throws {
        guard FS.isDirectory("/sys/fs/cgroup/cpuset"), FS.isDirectory("/sys/fs/cgroup/memory") else { return }   // cgroup v1 hosts
        let root = try ScratchRoot()
        let name = "swvm-restest-\(getpid())"
        let bundle = try RealBundle(args: ["sleep", "100"]) { config in
            let linux = (config["linux"] ?? .object([])).setting("cgroupsPath", .string("/\(name)")).setting("resources", .object([
                ("cpu", .object([("shares", 512), ("cpus", "0"), ("mems", "0")])),
                ("memory", .object([("reservation", 33554432), ("swappiness", 10), ("disableOOMKiller", true)])),
            ]))
            return config.setting("linux", linux)
        }
        defer { _ = try? Binary.run(["--root", root.path, "delete", "--force", "c1"]) }
        let c = try Binary.run(["--root", root.path, "create", "--bundle", bundle.path, "c1"])
        #expect(c.status == 0, "\(c)")
        func value(_ controller: String, _ file: String) -> String {
            ((try? FS.readText("/sys/fs/cgroup/\(controller)/\(name)/\(file)")) ?? "").split(separator: "\n").first.map(String.init) ?? ""
        }
        #expect(value("cpu", "cpu.shares") == "512")
        #expect(value("cpuset", "cpuset.cpus") == "0" && value("cpuset", "cpuset.mems") == "0")
        let pid = try #require(try JSON.parse(Binary.run(["--root", root.path, "state", "c1"]).out)["pid"]?.int)
        #expect(value("cpuset", "cgroup.procs") == String(pid))
        #expect(value("memory", "memory.soft_limit_in_bytes") == "33554432")
        #expect(value("memory", "memory.swappiness") == "10")
        #expect(value("memory", "memory.oom_control") == "oom_kill_disable 1")
        #expect(try Binary.run(["--root", root.path, "delete", "--force", "c1"]).status == 0)
        #expect(!FS.exists("/sys/fs/cgroup/cpuset/\(name)") && !FS.exists("/sys/fs/cgroup/cpu/\(name)"))
    }
}
