#if canImport(Glibc)
import Glibc
#endif
import SwvmBase

/// One kind of cached item: where its items live, and what they are.
public struct CacheKind: Sendable {
    public let name: String
    public let directory: @Sendable () -> String
    /// Items are the files with this suffix, or the directories when empty.
    public let suffix: String
    /// Builds (kernel, guest-init, probe) name the one in use with a
    /// symlink `current` beside them: that item is never removed.
    public var hasCurrent = false
}

public struct CacheItem: Equatable {
    public let kind: String
    public let key: String
    public let path: String
    /// Bytes on disk (allocated blocks), without crossing mounts.
    public let size: UInt64
    /// When a swvm last took it (its mtime, stamped by CacheItemLock; a
    /// build's mtime is when it was built).
    public let lastUse: Int64
    /// The build its kind's `current` names: never removed.
    public var isCurrent = false

    public var name: String { "\(kind)/\(key)" }
}

/// What `swvm cache ls/rm/prune` see: every item of every kind. An item a
/// running swvm uses (holds CacheItemLock.shared on) is never removed.
public enum CacheStore {
    /// Adding a kind of cache is one line here.
    public static let kinds: [CacheKind] = [
        CacheKind(name: "image", directory: { SwvmPaths.imagesDir }, suffix: ""),
        CacheKind(name: "disk", directory: { SwvmPaths.disksDir }, suffix: ".ext4"),
        CacheKind(name: "seccomp", directory: { SwvmPaths.seccompDir }, suffix: ".bpf"),
        CacheKind(name: "snapshot", directory: { SwvmPaths.snapshotsDir }, suffix: ""),
        CacheKind(name: "template", directory: { SwvmPaths.templatesDir }, suffix: ""),
        // Builds made by kernel/build.sh, guest-init/build.sh and
        // probe/build.sh, one directory per hash of their inputs.
        CacheKind(name: "kernel", directory: { Path.join(SwvmPaths.cacheRoot, "kernel") }, suffix: "", hasCurrent: true),
        CacheKind(name: "guest-init", directory: { Path.join(SwvmPaths.cacheRoot, "guest-init") }, suffix: "", hasCurrent: true),
        CacheKind(name: "probe", directory: { Path.join(SwvmPaths.cacheRoot, "probe") }, suffix: "", hasCurrent: true),
    ]

    /// Every item, by kind then key.
    public static func list() throws -> [CacheItem] {
        var items: [CacheItem] = []
        for kind in kinds {
            let dir = kind.directory()
            guard FS.isDirectory(dir) else { continue }
            let current = kind.hasCurrent ? currentBuild(dir) : nil
            for name in try FS.listDirectory(dir) where isItemName(name, kind) {
                let path = Path.join(dir, name)
                guard let st = FS.lstat(path) else { continue }
                let type = st.st_mode & S_IFMT
                guard kind.suffix.isEmpty ? type == S_IFDIR : type == S_IFREG else { continue }
                items.append(CacheItem(kind: kind.name, key: String(name.dropLast(kind.suffix.count)), path: path,
                                       size: diskUsage(path, device: st.st_dev), lastUse: Int64(st.st_mtim.tv_sec),
                                       isCurrent: name == current))
            }
        }
        return items
    }

    /// The name `DIR/current` links to, if it is a link.
    static func currentBuild(_ dir: String) -> String? {
        FS.readLink(Path.join(dir, "current")).map(Path.basename)
    }

    /// Temporaries (tmp-*, *.tmp, dot files and locks) are not items.
    static func isItemName(_ name: String, _ kind: CacheKind) -> Bool {
        guard !name.hasPrefix("."), !name.hasPrefix("tmp-"), !name.contains(".tmp") else { return false }
        return kind.suffix.isEmpty || (name.hasSuffix(kind.suffix) && name.count > kind.suffix.count)
    }

    /// KIND/KEY, or a KEY or the start of one that names a single item.
    public static func find(_ text: String, in items: [CacheItem]) throws -> CacheItem {
        let byName = items.filter { $0.name == text || $0.key == text }
        if byName.count == 1 { return byName[0] }
        let matches = byName.isEmpty ? items.filter { $0.name.hasPrefix(text) || $0.key.hasPrefix(text) } : byName
        guard !text.isEmpty, !matches.isEmpty else {
            throw SwvmError(.notFound, "no cache item '\(text)' (see swvm cache ls)")
        }
        guard matches.count == 1 else {
            throw SwvmError(.invalidArgument, "'\(text)' names \(matches.count) cache items (\(matches.prefix(4).map(\.name).joined(separator: ", "))); give KIND/KEY")
        }
        return matches[0]
    }

    /// Removes the item unless a running swvm uses it; false if it does.
    /// The item is first renamed to a hidden name, so no user can take it
    /// half removed; a removal cut short is finished by the next prune.
    public static func remove(_ item: CacheItem) throws -> Bool {
        guard !item.isCurrent else { return false }
        guard let lock = try CacheItemLock.exclusive(item.path) else {
            if !FS.exists(item.path) { return true }   // removed meanwhile
            return false
        }
        let hidden = Path.join(Path.dirname(item.path), ".\(Path.basename(item.path)).removing-\(hostPID)")
        try sys("rename \(item.path)") { rename(item.path, hidden) }
        try FS.removeTree(hidden)
        withExtendedLifetime(lock) {}
        return true
    }

    /// Removes the least recently used items of `kind` until the rest take
    /// at most `bound` bytes (items in use stay, and count). The removed.
    @discardableResult
    public static func evict(kind: String, toAtMost bound: UInt64) -> [CacheItem] {
        let items = ((try? list()) ?? []).filter { $0.kind == kind }.sorted { $0.lastUse < $1.lastUse }
        var total = items.reduce(UInt64(0)) { $0 + $1.size }
        var removed: [CacheItem] = []
        for item in items where total > bound {
            if (try? remove(item)) == true {
                total -= item.size
                removed.append(item)
            }
        }
        return removed
    }

    public struct PruneResult {
        public var removed: [CacheItem] = []
        public var inUse: [CacheItem] = []
    }

    /// Removes every item not used for `olderThan` seconds (nil: every
    /// item), leaving items in use alone; also finishes removals cut short.
    public static func prune(olderThan: Int64?, now: Int64 = Int64(time(nil))) throws -> PruneResult {
        var result = PruneResult()
        for item in try list() where !item.isCurrent && (olderThan.map({ now - item.lastUse >= $0 }) ?? true) {
            if try remove(item) { result.removed.append(item) } else { result.inUse.append(item) }
        }
        for kind in kinds {
            let dir = kind.directory()
            for name in (try? FS.listDirectory(dir)) ?? [] where name.hasPrefix(".") && name.contains(".removing-") {
                if let pid = Int32(name.split(separator: "-").last ?? ""), !processExists(pid) {
                    try? FS.removeTree(Path.join(dir, name))
                }
            }
        }
        return result
    }

    /// "90s", "30m", "12h", "7d", "2w" in seconds.
    public static func parseAge(_ text: String) throws -> Int64 {
        let units: [Character: Int64] = ["s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400]
        guard let unit = text.last, let mult = units[unit], let n = Int64(text.dropLast()), n >= 0, n < Int64.max / mult else {
            throw SwvmError(.invalidArgument, "--older-than '\(text)': expected a number and a unit, s, m, h, d or w (e.g. 7d)")
        }
        return n * mult
    }

    /// Allocated bytes below `path`, not following links nor crossing mounts.
    static func diskUsage(_ path: String, device: dev_t) -> UInt64 {
        guard let st = FS.lstat(path), st.st_dev == device else { return 0 }
        var total = UInt64(st.st_blocks) * 512
        if (st.st_mode & S_IFMT) == S_IFDIR {
            for name in (try? FS.listDirectory(path)) ?? [] { total += diskUsage(Path.join(path, name), device: device) }
        }
        return total
    }
}
