#if canImport(Glibc)
import Glibc
#endif
import SwvmBase

/// The fields of /proc/PID/stat the lifecycle needs.
public struct ProcessStat: Equatable, Sendable {
    /// "R", "S", "D", "Z", "T"...
    public var state: Character
    /// Clock ticks since boot (field 22).
    public var startTime: UInt64

    public static func read(_ pid: pid_t) -> ProcessStat? {
        guard pid > 0, let text = try? FS.readText("/proc/\(pid)/stat", limit: 4096) else { return nil }
        return parse(text)
    }

    /// The comm field (2) may hold spaces and ')': the fields after it
    /// start after the last ')'.
    public static func parse(_ text: String) -> ProcessStat? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let state = fields[0].first, let start = UInt64(fields[19]) else { return nil }
        return ProcessStat(state: state, startTime: start)
    }
}
