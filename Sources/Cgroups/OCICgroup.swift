#if canImport(Glibc)
import Glibc
#endif
import RuntimeSpec
import SwvmBase

/// An OCI container's cgroup (linux.cgroupsPath), and what the OCI
/// lifecycle does to it later knowing only its directories (state.json
/// keeps them): freeze and thaw (pause, resume), update limits, list the
/// processes (kill --all, ps), remove.
extension Cgroups {
    /// linux.cgroupsPath as a path below each hierarchy's root: "/a/b" (or
    /// "a/b") is a/b under each v1 controller and the unified hierarchy;
    /// the systemd form "slice:prefix:name" needs systemd, which these
    /// hosts lack; ".." may not climb out.
    public static func relativePath(cgroupsPath: String) throws -> String {
        if !cgroupsPath.hasPrefix("/") && cgroupsPath.split(separator: ":", omittingEmptySubsequences: false).count == 3 {
            throw SwvmError(.unsupported, "config.json linux.cgroupsPath \"\(cgroupsPath)\": the systemd form (slice:prefix:name) "
                            + "needs systemd, which is not running on this host")
        }
        let parts = Path.components(cgroupsPath)
        guard !parts.isEmpty, !parts.contains(".."), !parts.contains("."), !cgroupsPath.utf8.contains(0) else {
            throw SwvmError(.invalidArgument, "config.json linux.cgroupsPath \"\(cgroupsPath)\": not a cgroup path (empty, or with . or ..)")
        }
        return parts.joined(separator: "/")
    }

    /// Creates the cgroup at an OCI cgroupsPath, with every controller the
    /// lifecycle uses (freezer for pause, devices, cpu for update).
    /// `cpuset`: also a cpuset cgroup (v1), for linux.resources.cpu.cpus/mems.
    public static func create(cgroupsPath: String, version: CgroupVersion = detect(), cpuset: Bool = false) throws -> Cgroup {
        let name = try relativePath(cgroupsPath: cgroupsPath)
        switch version {
        case .v1(let root):
            return try CgroupV1(root: root, name: name, controllers: CgroupV1.controllers + (cpuset ? ["cpuset"] : []), unified: true)
        case .v2(let root): return try CgroupV2(root: root, name: name)
        }
    }
}

/// A cgroup known by its directories only (from an OCI state file): each
/// is a v1 controller's (ROOT/CONTROLLER/...) or a cgroup2 one.
public struct CgroupDirectories {
    public let paths: [String]
    let root: String

    public init(_ paths: [String], root: String = "/sys/fs/cgroup") {
        self.paths = paths
        self.root = root
    }

    /// The directory of v1 controller `name`, or nil.
    func controller(_ name: String) -> String? {
        paths.first { Path.components(String($0.dropFirst(root.count))).first == name && Cgroups.detect(root: $0) != .v2(root: $0) }
    }

    /// The cgroup2 directories (the unified hierarchy, or a v2 host's).
    var unified: [String] { paths.filter { Cgroups.detect(root: $0) == .v2(root: $0) } }

    /// The pids in the cgroup (cgroup.procs of the first hierarchy that
    /// lists them: all hold the same processes).
    public func pids() -> [pid_t] {
        for p in paths {
            guard let text = Cgroups.read(Path.join(p, "cgroup.procs")) else { continue }
            // A process outside the reader's pid namespace reads as 0: never
            // one to signal (kill(0) is the caller's own group) or move.
            return text.split(separator: "\n").compactMap { pid_t($0) }.filter { $0 > 0 }
        }
        return []
    }

    /// Stops every process (pause): the v1 freezer, or cgroup.freeze on
    /// cgroup2; returns once the kernel reports the cgroup frozen.
    public func freeze() throws { try setFrozen(true) }
    public func thaw() throws { try setFrozen(false) }

    public var isFrozen: Bool {
        if let f = controller("freezer") { return Cgroups.read(Path.join(f, "freezer.state")) == "FROZEN" }
        return unified.first.flatMap { Cgroups.read(Path.join($0, "cgroup.freeze")) } == "1"
    }

    private func setFrozen(_ frozen: Bool) throws {
        if let f = controller("freezer") {
            let file = Path.join(f, "freezer.state"), want = frozen ? "FROZEN" : "THAWED"
            // FREEZING until every task has stopped: write again and wait, as runc.
            for _ in 0..<1000 {
                try Cgroups.writeFile(file, want)
                if Cgroups.read(file) == want { return }
                usleep(1000)
            }
            throw SwvmError(.systemCall, "cgroup: \(f) did not become \(want)")
        }
        guard let dir = unified.first, FS.exists(Path.join(dir, "cgroup.freeze")) else {
            throw SwvmError(.unsupported, "cgroup: no freezer for \(paths.joined(separator: ", "))")
        }
        try Cgroups.writeFile(Path.join(dir, "cgroup.freeze"), frozen ? "1" : "0")
        for _ in 0..<1000 {
            let events = Cgroups.read(Path.join(dir, "cgroup.events")) ?? ""
            if events.split(separator: "\n").contains(Substring(frozen ? "frozen 1" : "frozen 0")) { return }
            usleep(1000)
        }
        throw SwvmError(.systemCall, "cgroup: \(dir) did not become \(frozen ? "frozen" : "thawed")")
    }

    /// `swvm update`: new limits on the running cgroup (the fields set).
    public func update(_ l: ResourceLimits) throws {
        if let v2 = unified.first, controller("memory") == nil {
            if let m = l.memory { try Cgroups.writeFile(Path.join(v2, "memory.max"), String(m)) }
            if let p = l.pids { try Cgroups.writeFile(Path.join(v2, "pids.max"), p < 0 ? "max" : String(p)) }
            if let q = l.cpuQuota { try Cgroups.writeFile(Path.join(v2, "cpu.max"), "\(q < 0 ? "max" : String(q)) \(l.cpuPeriod)") }
            return
        }
        if let m = l.memory {
            guard let dir = controller("memory") else { throw SwvmError(.unsupported, "update --memory: no memory cgroup") }
            // memsw may not go below memory, nor memory above memsw: order the writes.
            let memsw = Path.join(dir, "memory.memsw.limit_in_bytes")
            let current = Cgroups.read(Path.join(dir, "memory.limit_in_bytes")).flatMap { UInt64($0) } ?? 0
            if FS.exists(memsw) && m > current { try Cgroups.writeFile(memsw, String(m)) }
            try Cgroups.writeFile(Path.join(dir, "memory.limit_in_bytes"), String(m))
            if FS.exists(memsw) && m <= current { try Cgroups.writeFile(memsw, String(m)) }
        }
        if let p = l.pids {
            guard let dir = controller("pids") else { throw SwvmError(.unsupported, "update --pids-limit: no pids cgroup") }
            try Cgroups.writeFile(Path.join(dir, "pids.max"), p < 0 ? "max" : String(p))
        }
        if let q = l.cpuQuota {
            guard let dir = controller("cpu") else { throw SwvmError(.unsupported, "update --cpu-quota: no cpu cgroup") }
            try Cgroups.writeFile(Path.join(dir, "cpu.cfs_period_us"), String(l.cpuPeriod))
            try Cgroups.writeFile(Path.join(dir, "cpu.cfs_quota_us"), String(q))
        }
    }

    /// Kills what is left and removes the directories (delete).
    public func destroy() {
        if let f = controller("freezer") { try? Cgroups.writeFile(Path.join(f, "freezer.state"), "THAWED") }
        for dir in unified where FS.exists(Path.join(dir, "cgroup.kill")) { try? Cgroups.writeFile(Path.join(dir, "cgroup.kill"), "1") }
        for dir in paths where FS.exists(dir) { Cgroups.killAndRemove(dir) }
    }
}
