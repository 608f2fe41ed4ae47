import SwvmBase

/// Watches console output for the kernel's panic line, so a panic followed
/// by panic=-1's reboot is reported as a panic, with its reason.
final class PanicScanner {
    private var line: [UInt8] = []
    private let found = Locked<String?>(nil)
    static let marker = Array("Kernel panic - not syncing: ".utf8)

    var message: String? { found.current }

    /// Returns the completed line when `byte` ends one.
    func feed(_ byte: UInt8) -> String? {
        if byte == 0x0a {
            defer { line.removeAll(keepingCapacity: true) }
            if found.current == nil, let r = firstRange(of: PanicScanner.marker, in: line) {
                let msg = String(decoding: line[r.upperBound...], as: UTF8.self).trimmingTrailingControl()
                found.with { $0 = msg }
            }
            return String(decoding: line, as: UTF8.self)
        }
        if line.count < 1024 { line.append(byte) }
        return nil
    }

    private func firstRange(of needle: [UInt8], in hay: [UInt8]) -> Range<Int>? {
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
