#if canImport(Glibc)
import Glibc
#endif
import SwvmBase

/// RFC 3339 times in UTC, as runc writes them ("created" in the state,
/// "time" in --log lines).
public enum Timestamp {
    /// `nanos` since the epoch; with `fraction`, nanoseconds as Go's
    /// RFC3339Nano writes them (trailing zeros dropped).
    public static func rfc3339(_ nanos: UInt64 = Clock.realtimeNanos(), fraction: Bool = true) -> String {
        var seconds = time_t(nanos / 1_000_000_000)
        var tm = Glibc.tm()
        gmtime_r(&seconds, &tm)
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        var text = "\(pad(tm.tm_year + 1900, 4))-\(pad(tm.tm_mon + 1, 2))-\(pad(tm.tm_mday, 2))T"
            + "\(pad(tm.tm_hour, 2)):\(pad(tm.tm_min, 2)):\(pad(tm.tm_sec, 2))"
        if fraction, nanos % 1_000_000_000 != 0 {
            var digits = pad(Int32(nanos % 1_000_000_000), 9)
            while digits.hasSuffix("0") { digits.removeLast() }
            text += "." + digits
        }
        return text + "Z"
    }
}
