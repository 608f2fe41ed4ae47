#if canImport(Glibc)
import Glibc
#endif
import CSyscalls

/// Monotonic and wall-clock time in nanoseconds.
public enum Clock {
    public static func monotonicNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    public static func realtimeNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Seconds since `start` (a monotonicNanos value).
    public static func secondsSince(_ start: UInt64) -> Double {
        Double(monotonicNanos() - start) / 1e9
    }
}
