#if canImport(Glibc)
import Glibc
#endif
import SwvmBase

extension VMMIdentity {
    /// Ends every lease whose VMM is gone, under the leases' lock (a lease
    /// being written is not yet live): `delete --force` of a VM whose VMM
    /// and keeper were both killed leaves none behind (a later lease would
    /// take it back, but only then).
    public static func releaseStale() {
        let lockPath = Path.join(directory, ".lock")
        let lock = open(lockPath, O_RDWR | O_CLOEXEC)
        guard lock >= 0 else { return }
        defer { close(lock) }
        guard flock(lock, LOCK_EX) == 0 else { return }
        for name in (try? FS.listDirectory(directory)) ?? [] where UInt32(name) != nil {
            let path = Path.join(directory, name)
            if !isLive(path) { release(path) }
        }
    }
}
