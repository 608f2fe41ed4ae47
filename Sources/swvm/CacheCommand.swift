#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import CacheStore
import SwvmBase

struct CacheCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache",
        abstract: "List and remove what swvm caches: unpacked images, ext4 disks, seccomp filters, VM snapshots, builds.",
        discussion: """
        Images and disks live under SWVM_ROOT (/var/lib/swvm), seccomp filters, \
        snapshots and the builds of the guest kernel, guest-init and probe under \
        SWVM_CACHE (/var/cache/swvm). An item a running swvm uses is never removed, \
        nor the current build of each kind.
        """,
        subcommands: [List.self, Remove.self, Prune.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List cached items: kind, key, size and last use.")

        func run() throws {
            try runReportingErrors {
                let now = Int64(time(nil))
                let rows = try CacheStore.list().map {
                    [$0.kind, $0.key, ByteSize.format($0.size), $0.isCurrent ? "current build" : ago(now - $0.lastUse)]
                }
                Log.out(table([["KIND", "KEY", "SIZE", "LAST USE"]] + rows))
                return 0
            }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove cached items (KIND/KEY, or a unique start of a KEY).")

        @Argument(help: "The items to remove.")
        var items: [String]

        func run() throws {
            try runReportingErrors {
                let all = try CacheStore.list()
                let chosen = try items.map { try CacheStore.find($0, in: all) }
                for item in chosen {
                    guard try CacheStore.remove(item) else {
                        throw SwvmError(.invalidArgument, item.isCurrent
                                        ? "\(item.name) is the current build; not removed"
                                        : "\(item.name) is in use by a running swvm; not removed")
                    }
                    Log.out("removed \(item.name) (\(ByteSize.format(item.size)))\n")
                }
                return 0
            }
        }
    }

    struct Prune: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "prune", abstract: "Remove every cached item, or those unused for a while.")

        @Flag(help: "Remove every item not in use.")
        var all = false

        @Option(name: .customLong("older-than"), help: ArgumentHelp("Remove items last used longer ago than this (e.g. 90s, 30m, 12h, 7d, 2w).", valueName: "age"))
        var olderThan: String?

        func run() throws {
            try runReportingErrors {
                guard all != (olderThan != nil) else {
                    throw SwvmError(.invalidArgument, "swvm cache prune: give either --all or --older-than AGE")
                }
                let result = try CacheStore.prune(olderThan: try olderThan.map(CacheStore.parseAge))
                for item in result.removed { Log.out("removed \(item.name) (\(ByteSize.format(item.size)))\n") }
                let freed = result.removed.reduce(UInt64(0)) { $0 + $1.size }
                var summary = "\(result.removed.count) item\(result.removed.count == 1 ? "" : "s") removed, \(ByteSize.format(freed)) freed"
                if !result.inUse.isEmpty { summary += "; \(result.inUse.count) in use left alone (\(result.inUse.map(\.name).joined(separator: ", ")))" }
                Log.out(summary + "\n")
                return 0
            }
        }
    }
}

/// "just now", "5 minutes ago", "3 days ago".
private func ago(_ seconds: Int64) -> String {
    let units: [(Int64, String)] = [(86400 * 7, "week"), (86400, "day"), (3600, "hour"), (60, "minute")]
    for (size, name) in units where seconds >= size {
        let n = seconds / size
        return "\(n) \(name)\(n == 1 ? "" : "s") ago"
    }
    return "just now"
}

/// Left-aligned columns, two spaces apart.
func table(_ rows: [[String]]) -> String {
    var widths = [Int](repeating: 0, count: rows.first?.count ?? 0)
    for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
    return rows.map { r in
        r.enumerated().map { i, c in i == r.count - 1 ? c : c + String(repeating: " ", count: widths[i] - c.count) }.joined(separator: "  ")
    }.joined(separator: "\n") + "\n"
}
