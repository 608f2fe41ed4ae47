/// Text swvm did not write (a guest's error message or console, a name
/// from an image) made safe for the user's terminal, as `ls` and
/// `systemctl` do: control characters are shown escaped, so the text
/// cannot move the cursor, send escape sequences or start a line of its
/// own (a forged "swvm: ..." line).
public enum UntrustedText {
    /// `text` on one line: C0 controls, DEL and C1 controls escaped
    /// (\n, \r, \t, \x1b, \u{9b}); everything else as it is.
    public static func escaped(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for u in text.unicodeScalars {
            switch u.value {
            case 0x0a: out += "\\n"
            case 0x0d: out += "\\r"
            case 0x09: out += "\\t"
            case 0..<0x20, 0x7f: out += "\\x" + hex(u.value, 2)
            case 0x80..<0xa0: out += "\\u{" + hex(u.value, 2) + "}"
            default: out.unicodeScalars.append(u)
            }
        }
        return out
    }

    /// Bytes as UTF-8 (invalid sequences become U+FFFD), escaped.
    public static func escaped(_ bytes: [UInt8]) -> String { escaped(String(decoding: bytes, as: UTF8.self)) }

    private static func hex(_ v: UInt32, _ width: Int) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }
}
