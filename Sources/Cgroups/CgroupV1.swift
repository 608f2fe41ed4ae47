#if canImport(Glibc)
import Glibc
#endif
import RuntimeSpec
import SwvmBase

/// cgroup v1: one directory per controller (memory, cpu, pids, ...).
public final class CgroupV1: Cgroup {
    /// Controllers swvm knows; a run joins only those it needs (every
    /// cgroup.procs write is a migration, milliseconds on some kernels).
    public static let controllers = ["memory", "cpu", "cpuacct", "pids", "freezer", "blkio", "devices"]

    /// What a run with these limits needs: memory and pids always (limits,
    /// peak memory, OOM reports), devices for the device allow-list, cpu
    /// only with a CPU quota.
    public static func needed(for limits: ResourceLimits, devices: Bool) -> [String] {
        ["memory", "pids"] + (devices ? ["devices"] : []) + (limits.cpuQuota != nil ? ["cpu"] : [])
    }

    let root: String
    public private(set) var paths: [String] = []
    private var dirs: [String: String] = [:]

    /// `unified`: also the cgroup2 hierarchy of a hybrid host (ROOT/unified),
    /// as runc joins it.
    public init(root: String, name: String, controllers: [String] = CgroupV1.controllers, unified: Bool = false) throws {
        self.root = root
        for c in controllers + (unified && Cgroups.detect(root: Path.join(root, "unified")) == .v2(root: Path.join(root, "unified")) ? ["unified"] : []) {
            let base = Path.join(root, c)
            guard FS.isDirectory(base), FS.exists(Path.join(base, "cgroup.procs")) else { continue }
            let dir: String
            do {
                dir = c == "cpuset" ? try Cgroups.makeCpusetDirectories(base: base, name: name)
                                    : try Cgroups.makeDirectories(base: base, name: name)
            } catch {
                destroy()
                throw error
            }
            dirs[c] = dir
            paths.append(dir)
        }
        guard dirs["memory"] != nil, dirs["pids"] != nil else {
            destroy()
            throw SwvmError(.unsupported, "cgroup v1 at \(root) lacks the memory or pids controller")
        }
    }

    public func apply(_ l: ResourceLimits) throws {
        if let mem = l.memory, let dir = dirs["memory"] {
            try Cgroups.writeFile(Path.join(dir, "memory.limit_in_bytes"), String(mem))
            // No swap beyond the limit: exceeding --memory means the OOM killer.
            let memsw = Path.join(dir, "memory.memsw.limit_in_bytes")
            if FS.exists(memsw) { try Cgroups.writeFile(memsw, String(mem)) }
        }
        if let pids = l.pids, let dir = dirs["pids"] {
            try Cgroups.writeFile(Path.join(dir, "pids.max"), String(pids))
        }
        if let quota = l.cpuQuota {
            guard let dir = dirs["cpu"] else { throw SwvmError(.unsupported, "--cpus: the cpu controller is not mounted") }
            try Cgroups.writeFile(Path.join(dir, "cpu.cfs_period_us"), String(l.cpuPeriod))
            try Cgroups.writeFile(Path.join(dir, "cpu.cfs_quota_us"), String(quota))
        }
    }

    /// Device nodes: only the standard ones may be opened (defence in
    /// depth; a container's writable mounts are nodev as well).
    public func restrictDevices(allowing extra: [String]) throws {
        if let dir = dirs["devices"] {
            try Cgroups.writeFile(Path.join(dir, "devices.deny"), "a")
            for rule in CgroupV1.allowedDevices + extra { try Cgroups.writeFile(Path.join(dir, "devices.allow"), rule) }
        }
    }

    static let allowedDevices = [
        "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm", "c 5:1 rwm",
        "c 5:2 rwm", "c 136:* rwm", "c *:* m", "b *:* m",
    ]

    public func add(pid: pid_t) throws {
        for dir in paths { try Cgroups.writeFile(Path.join(dir, "cgroup.procs"), String(pid)) }
    }

    public func destroy() {
        for dir in paths { Cgroups.killAndRemove(dir) }
        paths.removeAll()
    }

    public func peakMemory() -> UInt64? {
        dirs["memory"].flatMap { Cgroups.read(Path.join($0, "memory.max_usage_in_bytes")) }.flatMap { UInt64($0) }
    }

    public func oomKilled() -> Bool {
        guard let dir = dirs["memory"], let text = Cgroups.read(Path.join(dir, "memory.oom_control")) else { return false }
        for line in text.split(separator: "\n") where line.hasPrefix("oom_kill ") {
            return (Int(line.split(separator: " ").last ?? "0") ?? 0) > 0
        }
        return false
    }
}
