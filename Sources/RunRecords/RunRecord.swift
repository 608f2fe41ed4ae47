#if canImport(Glibc)
import Glibc
#endif
import Cgroups
import Network
import SwvmBase

/// /run/swvm/runs/<id>: what a run leaves on the host while it runs (its
/// owner's pid and start time, its cgroups, its network attachment), so that a swvm killed with
/// SIGKILL is cleaned up by the next one. A container's processes die with
/// swvm (parent-death signal on its PID 1) and its mounts with its mount
/// namespace; a VM dies with its VMM, which dies with its monitor (the
/// `swvm run` process: VMMMonitor).
public enum RunRecord {
    public static var root: String { Path.join(SwvmPaths.runRoot, "runs") }

    public static func directory(for id: String) -> String { Path.join(root, id) }

    public static func create(_ dir: String) throws {
        // 0711: a container's root under --userns (an unprivileged host id)
        // must be able to reach its own run directory.
        try FS.makeDirectories(root, mode: 0o711)
        chmod(SwvmPaths.runRoot, 0o711)
        chmod(root, 0o711)
        guard mkdir(dir, 0o700) == 0 else { throw SwvmError.errno("mkdir \(dir)") }
        try FS.writeText(Path.join(dir, "owner"), "\(hostPID) \(processStartTime(hostPID) ?? 0)\n")
    }

    public static func record(_ dir: String, cgroups: [String]) throws {
        try FS.writeText(Path.join(dir, "cgroups"), cgroups.joined(separator: "\n") + "\n")
    }

    /// Removes the state of runs whose swvm is gone.
    public static func removeStale() {
        // Only from the host's pid namespace: a VMM (PID 1 of its own)
        // reads other runs' cgroup pids as 0 and cannot signal them; its
        // monitor swept before starting it.
        guard FS.readLink("/proc/self") != nil, hostPID == getpid() else { return }
        guard let names = try? FS.listDirectory(root) else { return }
        for name in names {
            let dir = Path.join(root, name)
            guard let owner = try? FS.readText(Path.join(dir, "owner")) else {
                // Created but not yet recorded by a live swvm, or garbage:
                // only remove when old enough to be garbage.
                if let st = FS.lstat(dir), time(nil) - st.st_mtim.tv_sec > 60 { cleanup(dir) }
                continue
            }
            let f = owner.split(separator: " ").map { String($0).trimmingCharacters(in: " ") }
            let pid = Int32(f.first ?? "") ?? 0
            let start = f.count > 1 ? UInt64(f[1]) : nil
            if !processAlive(pid, startTime: start) { cleanup(dir) }
        }
    }

    public static func cleanup(_ dir: String) {
        // Its veth or tap, published ports and address lease.
        NetworkAttachment.removeRecorded(runDir: dir)
        if let text = try? FS.readText(Path.join(dir, "cgroups")) {
            for path in text.split(separator: "\n") where !path.isEmpty {
                Cgroups.killAndRemove(String(path))
            }
        }
        // A killed run may have left its scratch tmpfs mounted only in its
        // own (gone) namespace; on the host the directory is plain.
        try? FS.removeTree(dir)
    }
}
