import SwvmBase

/// Stopping a workload whose PID 1 may ignore signals, at both isolation
/// levels: a first SIGINT or SIGTERM is forwarded; a second one, or the
/// grace period running out, kills it (`docker stop`'s --stop-timeout).
public struct StopGrace {
    public let seconds: Double
    private var deadline: UInt64?

    public init(seconds: Double) { self.seconds = seconds }

    public static func isStopSignal(_ sig: Int32) -> Bool { sig == 2 || sig == 15 }   // SIGINT, SIGTERM

    /// Records a stop signal; true when the workload must be killed now.
    public mutating func stopRequested() -> Bool {
        if deadline != nil { return true }
        deadline = Clock.monotonicNanos() + UInt64(seconds * 1e9)
        return seconds == 0
    }

    public var expired: Bool { deadline.map { Clock.monotonicNanos() >= $0 } ?? false }

    /// Milliseconds a poll may wait before the deadline (-1: no deadline).
    public var pollTimeoutMs: Int32 {
        guard let d = deadline else { return -1 }
        let now = Clock.monotonicNanos()
        return d <= now ? 0 : Int32(min((d - now) / 1_000_000 + 1, UInt64(Int32.max)))
    }
}
