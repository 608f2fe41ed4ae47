#if canImport(Glibc)
import Glibc
#endif
import RuntimeSpec
import SwvmBase

/// Puts this whole process (and so the VMM's vCPU threads) in a cgroup with
/// the given limits for the duration of a VM run; `restore` moves it back
/// to where it was and removes the cgroup.
public final class ProcessCgroupScope {
    private let cgroup: Cgroup
    private let originalProcsFiles: [String]

    public init(id: String, limits: ResourceLimits, version: CgroupVersion = Cgroups.detect()) throws {
        let originals = ProcessCgroupScope.procsFiles(of: hostPID, version: version)
        originalProcsFiles = originals
        cgroup = try Cgroups.create(id: id, version: version, limits: limits)
        do {
            try cgroup.apply(limits)
            try cgroup.add(pid: getpid())   // cgroup.procs reads it in our pid namespace
        } catch {
            restore()
            throw error
        }
    }

    public var paths: [String] { cgroup.paths }

    /// The cgroup.procs files of the cgroups `pid` is in, one per controller.
    public static func procsFiles(of pid: pid_t, version: CgroupVersion = Cgroups.detect()) -> [String] {
        var files: [String] = []
        let text = (try? FS.readText("/proc/\(pid)/cgroup")) ?? ""
        for line in text.split(separator: "\n") {
            let f = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
            guard f.count == 3 else { continue }
            switch version {
            case .v2(let root) where f[0] == "0":
                files.append(Path.join(root, f[2], "cgroup.procs"))
            case .v1(let root) where !f[1].isEmpty && !f[1].hasPrefix("name="):
                for c in f[1].split(separator: ",") where CgroupV1.controllers.contains(String(c)) {
                    files.append(Path.join(root, String(c), f[2], "cgroup.procs"))
                }
            default:
                break
            }
        }
        return files
    }

    /// Moves `pid` (as the host sees it) into the cgroups `source` is in (a
    /// jailed VMM cannot leave its scope itself; its keeper moves it out).
    /// A pid written to cgroup.procs is read in the writer's pid namespace,
    /// and a detached or OCI VMM's keeper is in the VMM's: it is translated.
    public static func moveToCgroupsOf(_ source: pid_t, pid: pid_t) {
        guard let own = pidInOwnNamespace(pid) else { return }
        for f in procsFiles(of: source) { try? Cgroups.writeFile(f, String(own)) }
    }

    /// `pid` (a host pid; /proc is the host's) in this process's pid
    /// namespace, from NSpid (one entry per level, the host's first), or
    /// nil when it is not in it.
    static func pidInOwnNamespace(_ pid: pid_t) -> pid_t? {
        func nspids(_ p: String) -> [pid_t] {
            let status = (try? FS.readText("/proc/\(p)/status")) ?? ""
            let line = status.split(separator: "\n").first { $0.hasPrefix("NSpid:") } ?? ""
            return line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().compactMap { pid_t($0) }
        }
        let level = nspids("self").count - 1, theirs = nspids(String(pid))
        guard level >= 0 else { return pid }   // no NSpid (an old kernel): one namespace
        return level < theirs.count ? theirs[level] : nil
    }

    public func restore() {
        for f in originalProcsFiles { try? Cgroups.writeFile(f, String(getpid())) }
        cgroup.destroy()
    }
}
