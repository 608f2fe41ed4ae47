/// Sizes as Docker writes them: "512m", "1g", "64k", "1048576", "2GiB".
public enum ByteSize {
    public static func parse(_ text: String) throws -> UInt64 {
        let t = text.trimmingCharacters(in: " ").lowercased()
        var digits = ""
        var unit = ""
        for c in t {
            if unit.isEmpty && (c.isNumber || c == ".") { digits.append(c) } else { unit.append(c) }
        }
        guard let value = Double(digits), value >= 0 else {
            throw SwvmError(.invalidArgument, "invalid size '\(text)': expected a number with an optional unit (b, k, m, g)")
        }
        let multiplier: Double
        switch unit {
        case "", "b": multiplier = 1
        case "k", "kb", "kib": multiplier = 1024
        case "m", "mb", "mib": multiplier = 1024 * 1024
        case "g", "gb", "gib": multiplier = 1024 * 1024 * 1024
        case "t", "tb", "tib": multiplier = 1024 * 1024 * 1024 * 1024
        default: throw SwvmError(.invalidArgument, "invalid size '\(text)': unknown unit '\(unit)' (use b, k, m or g)")
        }
        let bytes = value * multiplier
        guard bytes < 1.8e19 else { throw SwvmError(.invalidArgument, "invalid size '\(text)': too large") }
        return UInt64(bytes)
    }

    /// "256 MiB", "1.5 GiB", "512 KiB", "17 B".
    public static func format(_ bytes: UInt64) -> String {
        let units: [(UInt64, String)] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
        for (size, name) in units where bytes >= size {
            let v = Double(bytes) / Double(size)
            return v == v.rounded() ? "\(Int(v)) \(name)" : "\(formatFixed(v, 1)) \(name)"
        }
        return "\(bytes) B"
    }
}

/// A Double with `decimals` digits after the point.
public func formatFixed(_ v: Double, _ decimals: Int) -> String {
    guard v.isFinite else { return "\(v)" }
    var m = 1.0
    for _ in 0..<decimals { m *= 10 }
    let r = (abs(v) * m).rounded()
    let whole = UInt64(r / m)
    var frac = String(UInt64(r) % UInt64(m))
    while frac.count < decimals { frac = "0" + frac }
    let sign = v < 0 && r != 0 ? "-" : ""
    return decimals == 0 ? "\(sign)\(whole)" : "\(sign)\(whole).\(frac)"
}

extension String {
    public func trimmingCharacters(in set: Character) -> String {
        var s = Substring(self)
        while s.first == set || s.first == "\t" || s.first == "\n" { s = s.dropFirst() }
        while s.last == set || s.last == "\t" || s.last == "\n" || s.last == "\r" { s = s.dropLast() }
        return String(s)
    }
}
