import SwvmBase
import NativeThreads

/// Watches console output for the kernel's panic line, so a panic followed
/// by panic=-1's reboot is reported as a panic, with its reason.
final class PanicScanner: Sendable {
    private struct State {
        var line: [UInt8] = []
        var found: String?
    }
    /// Fed from any vCPU thread (each writes the serial port), read by the main thread.
    private let state = Locked(State())
    static let marker = Array("Kernel panic - not syncing: ".utf8)

    var message: String? { state.with { $0.found } }

    /// Returns the completed line when `byte` ends one.
    func feed(_ byte: UInt8) -> String? {
        state.with { s in
            if byte == 0x0a {
                defer { s.line.removeAll(keepingCapacity: true) }
                if s.found == nil, let r = PanicScanner.firstRange(of: PanicScanner.marker, in: s.line) {
                    s.found = String(decoding: s.line[r.upperBound...], as: UTF8.self).trimmingTrailingControl()
                }
                return String(decoding: s.line, as: UTF8.self)
            }
            if s.line.count < 1024 { s.line.append(byte) }
            return nil
        }
    }

    private static func firstRange(of needle: [UInt8], in hay: [UInt8]) -> Range<Int>? {
        guard hay.count >= needle.count else { return nil }
        for i in 0...(hay.count - needle.count) where hay[i] == needle[0] {
            if Array(hay[i..<(i + needle.count)]) == needle { return i..<(i + needle.count) }
        }
        return nil
    }
}

extension String {
    func trimmingTrailingControl() -> String {
        var s = Substring(self)
        while let last = s.last, last.isWhitespace || last == "\r" { s = s.dropLast() }
        return String(s)
    }
}
