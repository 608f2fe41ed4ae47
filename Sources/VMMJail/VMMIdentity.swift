#if canImport(Glibc)
import Glibc
#endif
import RunRecords
import SwvmBase

/// The uid and gid a jailed VMM runs as: one per VM, that no other process
/// uses, taken from a range (SWVM_VMM_IDS=FIRST-LAST, by default
/// 2100000000-2100065535, far from the usual /etc/subuid ranges) with a
/// lease, like the network's addresses:
///
///     /run/swvm/vmm-ids/<uid>    "<pid> <start time>" of the VMM holding it
///
/// The run's keeper releases it when the VMM ends; a lease whose VMM is
/// gone (keeper and VMM both killed) is taken back by the next lease.
public struct VMMIdentity {
    public let uid: UInt32
    public var gid: UInt32 { uid }
    public let leasePath: String

    /// The lease of `uid` taken by the monitor of this VMM (VMMMonitor).
    public init(leased uid: UInt32) {
        self.uid = uid
        leasePath = Path.join(VMMIdentity.directory, String(uid))
    }

    init(uid: UInt32, leasePath: String) {
        self.uid = uid
        self.leasePath = leasePath
    }

    public static var directory: String { Path.join(SwvmPaths.runRoot, "vmm-ids") }

    public static func range() throws -> ClosedRange<UInt32> {
        guard let text = FS.environment("SWVM_VMM_IDS"), !text.isEmpty else { return 2_100_000_000...2_100_065_535 }
        let f = text.split(separator: "-").map { UInt32($0) }
        guard f.count == 2, let lo = f[0], let hi = f[1], lo > 0, lo <= hi, hi < UInt32.max else {
            throw SwvmError(.invalidArgument, "SWVM_VMM_IDS=\(text): expected FIRST-LAST, two uids between 1 and 4294967294")
        }
        return lo...hi
    }

    /// Leases a free id for the VMM `owner` (this process).
    public static func lease(owner: pid_t = hostPID) throws -> VMMIdentity {
        let ids = try range()
        try FS.makeDirectories(directory, mode: 0o700)
        let lockPath = Path.join(directory, ".lock")
        let lock = try sys("open \(lockPath)") { open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600) }
        defer { close(lock) }
        try sys("flock \(lockPath)") { flock(lock, LOCK_EX) }
        let taken = Set(((try? FS.listDirectory(directory)) ?? []).compactMap { name -> UInt32? in
            guard let id = UInt32(name) else { return nil }
            return isLive(Path.join(directory, name)) ? id : nil
        })
        guard let id = ids.first(where: { !taken.contains($0) }) else {
            throw SwvmError(.unsupported, "no free VMM uid in \(ids.lowerBound)-\(ids.upperBound) (SWVM_VMM_IDS): \(taken.count) VMs hold one")
        }
        let path = Path.join(directory, String(id))
        try FS.writeText(path, "\(owner) \(processStartTime(owner) ?? 0)\n")
        return VMMIdentity(uid: id, leasePath: path)
    }

    /// Ends a lease (the keeper, once the VMM is gone).
    public static func release(_ path: String) {
        unlink(path)
    }

    static func isLive(_ path: String) -> Bool {
        guard let text = try? FS.readText(path, limit: 4096) else { return false }
        let f = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard f.count == 2, let pid = pid_t(f[0]), let start = UInt64(f[1]), pid > 0 else { return false }
        return processAlive(pid, startTime: start)
    }
}

