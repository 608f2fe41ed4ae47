#if canImport(Glibc)
import Glibc
#endif
import CConfinement
import CSyscalls
import SwvmBase

/// A resource limit (`--ulimit nofile=1024:2048`, OCI process.rlimits).
public struct Rlimit: Equatable, Sendable {
    public let resource: Int32
    public let name: String
    public let soft: UInt64
    public let hard: UInt64

    /// The names by resource number: CConfinement's list, which the
    /// container child's errors use too.
    public static let resources: [(String, Int32)] = (0..<UInt32(SWVM_RLIMIT_COUNT)).compactMap { r in
        swvm_rlimit_name(r).map { (String(cString: $0), Int32(r)) }
    }

    public init(resource: Int32, name: String, soft: UInt64, hard: UInt64) {
        self.resource = resource
        self.name = name
        self.soft = soft
        self.hard = hard
    }

    /// OCI's "RLIMIT_NOFILE" form.
    public init(oci type: String, soft: UInt64, hard: UInt64) throws {
        let (name, res) = try Rlimit.lookup(type)
        self.init(resource: res, name: name, soft: soft, hard: hard)
    }

    public static func lookup(_ raw: String) throws -> (String, Int32) {
        var n = raw.lowercased()
        if n.hasPrefix("rlimit_") { n = String(n.dropFirst(7)) }
        guard let r = resources.first(where: { $0.0 == n }) else {
            throw SwvmError(.invalidArgument, "unknown ulimit '\(raw)' (known: \(resources.map(\.0).joined(separator: ", ")))")
        }
        return r
    }
}
