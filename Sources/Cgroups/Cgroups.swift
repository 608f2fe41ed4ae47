#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import RuntimeSpec
import SwvmBase

/// One container's cgroup, on whichever hierarchy the host has.
public protocol Cgroup: AnyObject {
    /// The directories made for this container (for clean-up records).
    var paths: [String] { get }
    func apply(_ limits: ResourceLimits) throws
    /// Lets only the standard device nodes, and the `allowing` rules
    /// ("c 10:200 rwm"), be opened (where the hierarchy can).
    func restrictDevices(allowing: [String]) throws
    func add(pid: pid_t) throws
    /// Kills what is left inside and removes the directories.
    func destroy()
    /// Peak memory use in bytes, when the controller reports it.
    func peakMemory() -> UInt64?
    /// Whether the kernel's OOM killer fired inside.
    func oomKilled() -> Bool
}

extension Cgroup {
    /// Lets only the standard device nodes be opened (where the hierarchy can).
    public func restrictDevices() throws { try restrictDevices(allowing: []) }
}

public enum CgroupVersion: Equatable {
    case v1(root: String)
    case v2(root: String)
}

/// Picks the hierarchy: cgroup2 mounted at /sys/fs/cgroup (unified, most
/// hosts today) or per-controller v1 mounts below a tmpfs there (these
/// machines).
public enum Cgroups {
    public static let cgroup2Magic: Int = 0x6367_7270

    public static func detect(root: String = "/sys/fs/cgroup") -> CgroupVersion {
        var st = statfs()
        if statfs(root, &st) == 0 && Int(st.f_type) == cgroup2Magic { return .v2(root: root) }
        return .v1(root: root)
    }

    /// The directory every swvm cgroup lives in; the last run to leave it
    /// removes it.
    static let parentName = "swvm"

    /// Creates `swvm/<id>` on the host's hierarchy, with what `limits` need.
    public static func create(id: String, version: CgroupVersion = detect(), limits: ResourceLimits = ResourceLimits(),
                              restrictDevices: Bool = false) throws -> Cgroup {
        let name = Path.join(parentName, id)
        switch version {
        case .v1(let root):
            return try CgroupV1(root: root, name: name, controllers: CgroupV1.needed(for: limits, devices: restrictDevices))
        case .v2(let root): return try CgroupV2(root: root, name: name)
        }
    }

    /// Makes `base/name` one directory at a time, calling `entering` on each
    /// existing one before making its child (cgroup v2 enables controllers
    /// there). A parent another run removed between two mkdirs (see
    /// killAndRemove) means starting over.
    static func makeDirectories(base: String, name: String, entering: (String) -> Void = { _ in }) throws -> String {
        let comps = Path.components(name)
        attempt: for _ in 0..<100 {
            var current = base
            for (i, comp) in comps.enumerated() {
                entering(current)
                current = Path.join(current, comp)
                guard mkdir(current, 0o755) != 0 else { continue }
                let e = errno
                if e == EEXIST { continue }
                if e == ENOENT && i > 0 { continue attempt }
                throw SwvmError(.systemCall, "cgroup: cannot create \(current): \(errnoText(e))")
            }
            return current
        }
        throw SwvmError(.systemCall, "cgroup: cannot create \(Path.join(base, name)): a parent kept disappearing")
    }

    /// Writes a control file, naming the file in the error.
    public static func writeFile(_ path: String, _ value: String) throws {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SwvmError(.systemCall, "cgroup: open \(path): \(errnoText(errno))") }
        defer { close(fd) }
        let bytes = Array(value.utf8)
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard n == bytes.count else { throw SwvmError(.systemCall, "cgroup: write '\(value)' to \(path): \(errnoText(errno))") }
    }

    public static func read(_ path: String) -> String? {
        (try? FS.readText(path, limit: 1 << 20)).map { $0.trimmingCharacters(in: " ") }
    }

    /// SIGKILLs every process listed in `procsFile`, then waits (briefly)
    /// until the directory can be removed.
    public static func killAndRemove(_ dir: String, procsFile: String = "cgroup.procs") {
        for _ in 0..<200 {
            if rmdir(dir) == 0 || errno == ENOENT {
                // The shared parent goes with its last child; while other
                // runs are inside, rmdir fails (EBUSY/ENOTEMPTY) and it stays.
                let parent = Path.dirname(dir)
                if Path.basename(parent) == parentName { rmdir(parent) }
                return
            }
            if let procs = read(Path.join(dir, procsFile)) {
                // A pid outside the reader's pid namespace reads as 0, and
                // kill(0) would signal the reader's own process group.
                for line in procs.split(separator: "\n") { if let pid = Int32(line), pid > 0 { kill(pid, SIGKILL) } }
            }
            usleep(5000)
        }
        Log.warning("could not remove cgroup \(dir): \(errnoText(errno))")
    }
}
