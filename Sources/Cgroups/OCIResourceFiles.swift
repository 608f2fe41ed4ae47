#if canImport(Glibc)
import Glibc
#endif
import RuntimeSpec
import SwvmBase

/// The OCI resources beyond the limits swvm run sets (ResourceLimits), as
/// runc writes them: cpu.shares and cpuset (cpus, mems); the memory
/// reservation, swappiness and OOM killer.
extension Cgroups {
    /// cpuset's directories: a new one starts with no CPUs and no memory
    /// nodes (and then takes no task), so each level gets its parent's.
    static func makeCpusetDirectories(base: String, name: String) throws -> String {
        let leaf = try makeDirectories(base: base, name: name) { dir in if dir != base { inheritCpuset(dir) } }
        inheritCpuset(leaf)
        return leaf
    }

    static func inheritCpuset(_ dir: String) {
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let path = Path.join(dir, file)
            guard trimmed(read(path)).isEmpty, let parent = read(Path.join(Path.dirname(dir), file)) else { continue }
            try? writeFile(path, trimmed(parent))
        }
    }

    static func trimmed(_ s: String?) -> String { (s ?? "").split(whereSeparator: \.isWhitespace).joined(separator: " ") }

    /// Whether the container needs a cpuset cgroup (v1: one more controller).
    public static func needsCpuset(_ r: OCIResources) -> Bool { r.cpu.cpus != nil || r.cpu.mems != nil }
}

extension CgroupDirectories {
    /// Writes what `r` sets of the above; a controller the host lacks for a
    /// value that is set is an error naming the JSON path.
    public func applyOCI(_ r: OCIResources) throws {
        if let v2 = unified.first, controller("memory") == nil { return try applyV2(r, v2) }
        try write(r.cpu.shares.map(String.init), "cpu", "cpu.shares", "linux.resources.cpu.shares")
        try write(r.cpu.cpus, "cpuset", "cpuset.cpus", "linux.resources.cpu.cpus")
        try write(r.cpu.mems, "cpuset", "cpuset.mems", "linux.resources.cpu.mems")
        try write(r.memory.reservation.map(String.init), "memory", "memory.soft_limit_in_bytes", "linux.resources.memory.reservation")
        try write(r.memory.swappiness.map(String.init), "memory", "memory.swappiness", "linux.resources.memory.swappiness")
        try write(r.memory.disableOOMKiller == true ? "1" : nil, "memory", "memory.oom_control", "linux.resources.memory.disableOOMKiller")
    }

    private func write(_ value: String?, _ name: String, _ file: String, _ what: String) throws {
        guard let value else { return }
        guard let dir = controller(name) else {
            throw SwvmError(.unsupported, "config.json \(what): the \(name) cgroup controller is not mounted")
        }
        try Cgroups.writeFile(Path.join(dir, file), value)
    }

    /// cgroup2: cpu.weight from the shares (runc's conversion), cpuset,
    /// memory.low; swappiness and the OOM killer have no v2 file.
    private func applyV2(_ r: OCIResources, _ dir: String) throws {
        if let s = r.cpu.shares, s > 0 {
            try Cgroups.writeFile(Path.join(dir, "cpu.weight"), String(1 + ((max(s, 2) - 2) * 9999) / 262142))
        }
        if let c = r.cpu.cpus { try Cgroups.writeFile(Path.join(dir, "cpuset.cpus"), c) }
        if let m = r.cpu.mems { try Cgroups.writeFile(Path.join(dir, "cpuset.mems"), m) }
        if let low = r.memory.reservation { try Cgroups.writeFile(Path.join(dir, "memory.low"), String(low)) }
    }
}
