#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import SwvmBase

/// A resource limit (`--ulimit nofile=1024:2048`, OCI process.rlimits).
public struct Rlimit: Equatable {
    public let resource: Int32
    public let name: String
    public let soft: UInt64
    public let hard: UInt64

    public static let resources: [(String, Int32)] = [
        ("cpu", 0), ("fsize", 1), ("data", 2), ("stack", 3), ("core", 4), ("rss", 5), ("nproc", 6),
        ("nofile", 7), ("memlock", 8), ("as", 9), ("locks", 10), ("sigpending", 11), ("msgqueue", 12),
        ("nice", 13), ("rtprio", 14), ("rttime", 15),
    ]

    public init(resource: Int32, name: String, soft: UInt64, hard: UInt64) {
        self.resource = resource
        self.name = name
        self.soft = soft
        self.hard = hard
    }

    /// Docker's syntax: NAME=SOFT[:HARD], values a number or "unlimited"/-1.
    public init(docker text: String) throws {
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { throw SwvmError(.invalidArgument, "--ulimit '\(text)': expected NAME=SOFT[:HARD]") }
        let (name, res) = try Rlimit.lookup(parts[0])
        let values = parts[1].split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard values.count == 1 || values.count == 2 else {
            throw SwvmError(.invalidArgument, "--ulimit '\(text)': expected NAME=SOFT[:HARD]")
        }
        let soft = try Rlimit.value(values[0], text)
        let hard = values.count == 2 ? try Rlimit.value(values[1], text) : soft
        guard soft <= hard else { throw SwvmError(.invalidArgument, "--ulimit '\(text)': soft limit above hard limit") }
        self.init(resource: res, name: name, soft: soft, hard: hard)
    }

    /// OCI's "RLIMIT_NOFILE" form.
    public init(oci type: String, soft: UInt64, hard: UInt64) throws {
        let (name, res) = try Rlimit.lookup(type)
        self.init(resource: res, name: name, soft: soft, hard: hard)
    }

    static func lookup(_ raw: String) throws -> (String, Int32) {
        var n = raw.lowercased()
        if n.hasPrefix("rlimit_") { n = String(n.dropFirst(7)) }
        guard let r = resources.first(where: { $0.0 == n }) else {
            throw SwvmError(.invalidArgument, "unknown ulimit '\(raw)' (known: \(resources.map(\.0).joined(separator: ", ")))")
        }
        return r
    }

    static func value(_ s: String, _ text: String) throws -> UInt64 {
        if s == "unlimited" || s == "-1" { return UInt64.max }
        guard let v = UInt64(s) else { throw SwvmError(.invalidArgument, "--ulimit '\(text)': '\(s)' is not a number") }
        return v
    }
}
