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

    /// Moves `pid` into the cgroups `source` is in (a jailed VMM cannot
    /// leave its scope itself; its keeper moves it out).
    public static func moveToCgroupsOf(_ source: pid_t, pid: pid_t) {
        for f in procsFiles(of: source) { try? Cgroups.writeFile(f, String(pid)) }
    }

    public func restore() {
        for f in originalProcsFiles { try? Cgroups.writeFile(f, String(getpid())) }
        cgroup.destroy()
    }
}
