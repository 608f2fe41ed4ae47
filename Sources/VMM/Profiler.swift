import SwvmBase

/// Turns sampled guest RIPs into a histogram of kernel functions, using the
/// System.map next to the kernel (a development aid for boot time).
public enum Profiler {
    public static func write(samples all: [[UInt64]], kernel: String, to path: String,
                             phases: [(String, Int)] = []) throws {
        var out = ""
        var bounds = phases.sorted { $0.1 < $1.1 }
        bounds.insert(("boot", 0), at: 0)
        for (i, (label, startIndex)) in bounds.enumerated() {
            let end = i + 1 < bounds.count ? bounds[i + 1].1 : all.count
            guard startIndex < end, end <= all.count else { continue }
            out += "=== phase \(label): \(end - startIndex) samples\n"
            out += try report(samples: Array(all[startIndex..<end]), kernel: kernel)
        }
        try FS.writeText(path, out)
    }

    static func report(samples: [[UInt64]], kernel: String) throws -> String {
        let mapPath = Path.join(Path.dirname(kernel), "System.map")
        var symbols: [(UInt64, String)] = []
        if let text = try? FS.readText(mapPath) {
            for line in text.split(separator: "\n") {
                let f = line.split(separator: " ")
                guard f.count == 3, let a = UInt64(f[0], radix: 16), "tTwW".contains(f[1]) else { continue }
                symbols.append((a, String(f[2])))
            }
            symbols.sort { $0.0 < $1.0 }
        }
        func symbol(_ a: UInt64) -> String {
            if a < 0x8000_0000_0000 { return "[user]" }
            var lo = 0, hi = symbols.count - 1, best = -1
            while lo <= hi {
                let mid = (lo + hi) / 2
                if symbols[mid].0 <= a { best = mid; lo = mid + 1 } else { hi = mid - 1 }
            }
            return best >= 0 ? symbols[best].1 : "0x" + String(a, radix: 16)
        }
        var selfCounts: [String: Int] = [:]
        var inclusive: [String: Int] = [:]
        for frame in samples {
            guard let rip = frame.first else { continue }
            selfCounts[symbol(rip), default: 0] += 1
            var seen = Set<String>()
            for a in frame { let s = symbol(a); if seen.insert(s).inserted { inclusive[s, default: 0] += 1 } }
        }
        let total = Double(max(1, samples.count))
        var out = "samples: \(samples.count)\n\n# self\n"
        for (name, n) in selfCounts.sorted(by: { $0.value > $1.value }).prefix(25) {
            out += "\(n)\t\(formatFixed(100 * Double(n) / total, 1))%\t\(name)\n"
        }
        out += "\n# inclusive (guessed from stack words)\n"
        for (name, n) in inclusive.sorted(by: { $0.value > $1.value }).prefix(60) {
            out += "\(n)\t\(formatFixed(100 * Double(n) / total, 1))%\t\(name)\n"
        }
        return out
    }
}
