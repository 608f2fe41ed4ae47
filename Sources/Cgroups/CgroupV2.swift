#if canImport(Glibc)
import Glibc
#endif
import RuntimeSpec
import SwvmBase

/// cgroup v2: one unified directory; controllers are enabled for the
/// subtree in each parent's cgroup.subtree_control.
public final class CgroupV2: Cgroup {
    let root: String
    let dir: String
    public private(set) var paths: [String] = []

    public init(root: String, name: String) throws {
        self.root = root
        // Enable the controllers we limit in every ancestor, top down.
        let available = Set((Cgroups.read(Path.join(root, "cgroup.controllers")) ?? "").split(separator: " ").map(String.init))
        let wanted = ["memory", "pids", "cpu"].filter(available.contains)
        dir = try Cgroups.makeDirectories(base: root, name: name) { current in
            if !wanted.isEmpty {
                try? Cgroups.writeFile(Path.join(current, "cgroup.subtree_control"), wanted.map { "+" + $0 }.joined(separator: " "))
            }
        }
        paths = [dir]
    }

    public func apply(_ l: ResourceLimits) throws {
        if let mem = l.memory {
            try requireController("memory", for: "--memory")
            try Cgroups.writeFile(Path.join(dir, "memory.max"), String(mem))
            let swap = Path.join(dir, "memory.swap.max")
            if FS.exists(swap) { try Cgroups.writeFile(swap, "0") }
        }
        if let pids = l.pids {
            try requireController("pids", for: "--pids-limit")
            try Cgroups.writeFile(Path.join(dir, "pids.max"), String(pids))
        }
        if let quota = l.cpuQuota {
            try requireController("cpu", for: "--cpus")
            try Cgroups.writeFile(Path.join(dir, "cpu.max"), "\(quota) \(l.cpuPeriod)")
        }
    }

    private func requireController(_ c: String, for flag: String) throws {
        let enabled = (Cgroups.read(Path.join(dir, "cgroup.controllers")) ?? "").split(separator: " ")
        guard enabled.contains(Substring(c)) else {
            throw SwvmError(.unsupported, "\(flag): the \(c) controller is not available in \(dir)")
        }
    }

    /// cgroup v2 controls devices with eBPF programs; swvm relies on nodev
    /// mounts and bind-mounted device nodes there instead.
    public func restrictDevices(allowing: [String]) throws {}

    public func add(pid: pid_t) throws { try Cgroups.writeFile(Path.join(dir, "cgroup.procs"), String(pid)) }

    public func destroy() {
        // cgroup.kill (5.14+) ends everything at once; fall back to SIGKILL.
        let killFile = Path.join(dir, "cgroup.kill")
        if FS.exists(killFile) { try? Cgroups.writeFile(killFile, "1") }
        for p in paths { Cgroups.killAndRemove(p) }
        paths.removeAll()
    }

    public func peakMemory() -> UInt64? { Cgroups.read(Path.join(dir, "memory.peak")).flatMap { UInt64($0) } }

    public func oomKilled() -> Bool {
        guard let text = Cgroups.read(Path.join(dir, "memory.events")) else { return false }
        for line in text.split(separator: "\n") where line.hasPrefix("oom_kill ") {
            return (Int(line.split(separator: " ").last ?? "0") ?? 0) > 0
        }
        return false
    }
}
