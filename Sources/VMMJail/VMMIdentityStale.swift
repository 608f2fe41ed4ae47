#if canImport(Glibc)
import Glibc
#endif
import SwvmBase

extension VMMIdentity {
    /// Ends the lease of the VMM `pid` started at `startTime` (in clock
    /// ticks, as the lease records it), once that VMM is gone: `delete
    /// --force` of a VM whose VMM and keeper were both killed leaves no
    /// lease behind (a later lease would take it back, but only then).
    public static func release(ownedBy pid: pid_t, startTime: UInt64) {
        let owner = "\(pid) \(startTime)\n"
        for name in (try? FS.listDirectory(directory)) ?? [] where UInt32(name) != nil {
            let path = Path.join(directory, name)
            if (try? FS.readText(path, limit: 4096)) == owner { release(path) }
        }
    }

    /// Removes the leases whose VMM is gone (a monitor and its VMM both
    /// killed): what the next run's monitor does first.
    public static func removeStale() {
        // Under the leases' lock: a lease being written is not stale.
        let lock = open(Path.join(directory, ".lock"), O_RDWR | O_CLOEXEC)
        guard lock >= 0 else { return }
        defer { close(lock) }
        guard flock(lock, LOCK_EX) == 0 else { return }
        for name in (try? FS.listDirectory(directory)) ?? [] where UInt32(name) != nil {
            let path = Path.join(directory, name)
            if !isLive(path) { release(path) }
        }
    }
}
