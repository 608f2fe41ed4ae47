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

    /// Removes the lease if `owner` still holds it.
    static func release(_ address: IPv4Address, owner: String) {
        let file = Path.join(directory, address.description)
        if (try? FS.readText(file)) == owner { unlink(file) }
    }
}

enum NetworkState {
    /// /run/swvm/net: the lock and the leases.
    static var stateRoot: String { Path.join(SwvmPaths.runRoot, "net") }

    static func lock() throws -> FileLock {
        try FS.makeDirectories(stateRoot, mode: 0o700)
        return try FileLock(path: Path.join(stateRoot, "lock"))
    }
}
