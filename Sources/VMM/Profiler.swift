import SwvmBase

/// Turns sampled guest RIPs into a histogram of kernel functions, using the
/// System.map next to the kernel (a development aid for boot time).
public enum Profiler {
    public static func write(samples: [UInt64], kernel: String, to path: String) throws {
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
        var counts: [String: Int] = [:]
        for rip in samples {
            var lo = 0, hi = symbols.count - 1, best = -1
            while lo <= hi {
                let mid = (lo + hi) / 2
                if symbols[mid].0 <= rip { best = mid; lo = mid + 1 } else { hi = mid - 1 }
            }
            let name = best >= 0 && rip >= 0xffff_ffff_8000_0000 ? symbols[best].1 : (rip < 0x8000_0000_0000 ? "[user]" : "0x" + String(rip, radix: 16))
            counts[name, default: 0] += 1
        }
        var out = "samples: \(samples.count)\n"
        for (name, n) in counts.sorted(by: { $0.value > $1.value }) {
            out += "\(n)\t\(formatFixed(100 * Double(n) / Double(max(1, samples.count)), 1))%\t\(name)\n"
        }
        try FS.writeText(path, out)
    }
}
