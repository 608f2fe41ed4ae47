#if canImport(Glibc)
import Glibc
#endif

/// The CMOS real-time clock at ports 0x70/0x71, read-only: Linux reads the
/// wall-clock time from it at boot. Without it the guest either waits for
/// an update-in-progress bit that never clears or starts in 1970.
import Snapshot
import SwvmBase
import NativeThreads

public final class CMOSClock: BusDevice, StateSaving {
    /// The register selected through port 0x70.
    private let selected = Locked<UInt8>(0)
    private let now: @Sendable () -> time_t

    public init(now: @escaping @Sendable () -> time_t = { time(nil) }) { self.now = now }

    public func saveState(_ w: inout StateWriter) { w.u8(selected.current) }
    public func restoreState(_ r: inout StateReader) throws { selected.replace(try r.u8()) }

    static func bcd(_ v: Int32) -> UInt8 { UInt8((v / 10) << 4 | (v % 10)) }

    public func read(offset: UInt64, data: UnsafeMutableRawBufferPointer) {
        guard data.count >= 1 else { return }
        var value: UInt8 = 0
        if offset == 1 {
            var t = now()
            var tm = tm()
            gmtime_r(&t, &tm)
            switch selected.current {
            case 0x00: value = CMOSClock.bcd(tm.tm_sec)
            case 0x02: value = CMOSClock.bcd(tm.tm_min)
            case 0x04: value = CMOSClock.bcd(tm.tm_hour)
            case 0x06: value = CMOSClock.bcd(tm.tm_wday + 1)
            case 0x07: value = CMOSClock.bcd(tm.tm_mday)
            case 0x08: value = CMOSClock.bcd(tm.tm_mon + 1)
            case 0x09: value = CMOSClock.bcd(tm.tm_year % 100)
            case 0x32: value = CMOSClock.bcd(19 + tm.tm_year / 100)
            case 0x0a: value = 0x26          // no update in progress, 32.768 kHz base
            case 0x0b: value = 0x02          // 24-hour mode, BCD, no interrupts
            case 0x0d: value = 0x80          // RAM and time valid
            default: value = 0
            }
        }
        data[0] = value
        for i in 1..<data.count { data[i] = 0 }
    }

    public func write(offset: UInt64, data: UnsafeRawBufferPointer) {
        if offset == 0, data.count >= 1 { selected.replace(data[0] & 0x7f) }
    }
}
