#if canImport(Glibc)
import Glibc
#endif
import RuntimeSpec
import SwvmBase

/// Addresses of the bridge's subnet leased to runs: one file per address
/// under /run/swvm/net/leases naming the owner's run directory. The caller
/// holds the network lock. A lease whose run directory is gone (a run
/// killed before its record was cleaned) is free again.
enum AddressLeases {
    static var directory: String { Path.join(NetworkState.stateRoot, "leases") }

    static func lease(in bridge: HostBridge, owner: String) throws -> IPv4Address {
        try FS.makeDirectories(directory, mode: 0o700)
        var a = IPv4Address(bridge.gateway.value + 1)
        while a < bridge.subnet.broadcast {
            let file = Path.join(directory, a.description)
            let holder = try? FS.readText(file)
            if holder == nil || !FS.isDirectory(holder!) {
                try FS.writeText(file, owner, mode: 0o600)
                return a
            }
            a = IPv4Address(a.value + 1)
        }
        throw SwvmError(.unsupported, "no free address left in \(bridge.subnet)")
    }

    /// Whether any run still holds a lease (its run directory exists).
    static func anyHeld() -> Bool {
        for name in (try? FS.listDirectory(directory)) ?? [] {
            if let holder = try? FS.readText(Path.join(directory, name)), FS.isDirectory(holder) { return true }
        }
        return false
    }

    /// Removes the lease if `owner` still holds it.
    static func release(_ address: IPv4Address, owner: String) {
        let file = Path.join(directory, address.description)
        if (try? FS.readText(file)) == owner { unlink(file) }
    }
}

/// Keeps the bridge for a host-side service on its address while the
/// object lives: a file under /run/swvm/net/holds with a shared flock on it
/// (CacheItemLock's convention), which the kernel drops when the process
/// dies, SIGKILL included.
public final class BridgeHold {
    public let bridge: HostBridge
    private let path: String
    private let lock: CacheItemLock

    static var directory: String { Path.join(NetworkState.stateRoot, "holds") }

    /// The caller holds the network lock.
    init(bridge: HostBridge) throws {
        try FS.makeDirectories(BridgeHold.directory, mode: 0o700)
        var template = Array(Path.join(BridgeHold.directory, "XXXXXX").utf8CString)
        let fd = try sys("mkstemp in \(BridgeHold.directory)") { mkstemp(&template) }
        close(fd)
        path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let lock = try CacheItemLock.shared(path) else {
            unlink(path)
            throw SwvmError(.internalError, "bridge hold \(path) vanished")
        }
        self.bridge = bridge
        self.lock = lock
    }

    /// Gives the bridge up, and removes it if nothing else uses it.
    deinit {
        let lock = try? NetworkState.lock()
        unlink(path)
        if lock != nil { HostBridge.removeIfUnused() }
        withExtendedLifetime(lock) {}
    }

    /// Whether a live process holds the bridge; removes the holds of dead
    /// ones. The caller holds the network lock.
    static func anyLive() -> Bool {
        var live = false
        for name in (try? FS.listDirectory(directory)) ?? [] {
            let file = Path.join(directory, name)
            // A lock that cannot be taken (or an error) counts as live:
            // the bridge stays rather than go from under a service.
            if let dead = try? CacheItemLock.exclusive(file) {
                unlink(file)
                withExtendedLifetime(dead) {}
            } else if FS.exists(file) {
                live = true
            }
        }
        return live
    }
}

enum NetworkState {
    /// /run/swvm/net: the lock, the leases and the holds.
    static var stateRoot: String { Path.join(SwvmPaths.runRoot, "net") }

    static func lock() throws -> FileLock {
        try FS.makeDirectories(stateRoot, mode: 0o700)
        return try FileLock(path: Path.join(stateRoot, "lock"))
    }
}
