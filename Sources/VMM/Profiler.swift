#if canImport(Glibc)
import Glibc
#endif
import SwvmBase

/// Turns sampled guest RIPs into a histogram of kernel functions, using the
/// System.map next to the kernel (a development aid for boot time).
public enum Profiler {
    /// SWVM_PROFILE's file and the kernel's symbols, opened and read before
    /// the VMM's jail (an empty root, FSIZE bounded) and written after the
    /// run from the descriptor.
    public final class Output: @unchecked Sendable {
        let file: FileDescriptor
        let symbols: [(UInt64, String)]

        public init(path: String, kernel: String) throws {
            file = try FileDescriptor.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC)
            symbols = Profiler.symbols(kernel: kernel)
        }

        public func write(samples: [[UInt64]], phases: [(String, Int)] = []) throws {
            try file.writeAll(Profiler.text(samples: samples, symbols: symbols, phases: phases))
        }
    }

    /// The most a profile takes on disk (the jail's FSIZE while profiling).
    public static let largestOutput: UInt64 = 16 << 20

    public static func write(samples all: [[UInt64]], kernel: String, to path: String,
                             phases: [(String, Int)] = []) throws {
        try Output(path: path, kernel: kernel).write(samples: all, phases: phases)
    }

    static func text(samples all: [[UInt64]], symbols: [(UInt64, String)], phases: [(String, Int)]) -> String {
        var out = ""
        var bounds = phases.sorted { $0.1 < $1.1 }
        bounds.insert(("boot", 0), at: 0)
        for (i, (label, startIndex)) in bounds.enumerated() {
            let end = i + 1 < bounds.count ? bounds[i + 1].1 : all.count
            guard startIndex < end, end <= all.count else { continue }
            out += "=== phase \(label): \(end - startIndex) samples\n"
            out += report(samples: Array(all[startIndex..<end]), symbols: symbols)
        }
        return out
    }

    /// The text symbols of System.map next to the kernel, sorted (none
    /// without it).
    static func symbols(kernel: String) -> [(UInt64, String)] {
        var symbols: [(UInt64, String)] = []
        guard let text = try? FS.readText(Path.join(Path.dirname(kernel), "System.map")) else { return [] }
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count == 3, let a = UInt64(f[0], radix: 16), "tTwW".contains(f[1]) else { continue }
            symbols.append((a, String(f[2])))
        }
        return symbols.sorted { $0.0 < $1.0 }
    }

    static func report(samples: [[UInt64]], symbols: [(UInt64, String)]) -> String {
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
