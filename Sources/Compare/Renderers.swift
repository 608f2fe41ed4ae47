#if canImport(Glibc)
import Glibc
#endif
import SwvmBase

/// The comparison as a text table, JSON (schema: docs/compare.schema.json)
/// or one self-contained HTML page with inline SVG charts.
public enum CompareReport {
    public static let schemaID = "swvm-compare/1"

    // MARK: table

    public static func table(_ r: CompareResult) -> String {
        let rows = Figures.build(r)
        var lines: [[String]] = [["figure", "container", "vm", "vm/container"]]
        var group = ""
        for f in rows {
            if f.group != group {
                group = f.group
                lines.append(["[\(group)]", "", "", ""])
            }
            let ratio = f.ratio.map { formatFixed($0, $0 >= 10 ? 0 : 2) + "x" } ?? ""
            lines.append([f.name, Figures.describe(f.cells["container"], unit: f.unit), Figures.describe(f.cells["vm"], unit: f.unit), ratio])
        }
        var widths = [0, 0, 0, 0]
        for l in lines { for (i, c) in l.enumerated() { widths[i] = min(max(widths[i], c.count), i == 0 ? 52 : 46) } }
        var out = "swvm compare: \(r.options.image) -- \(shellQuoted(r.options.command))\n"
        out += "\(r.options.repeats) runs each, alternating; median (min-max). Host: \(r.hostDescription)\n\n"
        for (n, l) in lines.enumerated() {
            out += l.enumerated().map { i, c in i == 3 ? c : c + String(repeating: " ", count: max(0, widths[i] - c.count)) }
                .joined(separator: "  ").trimmingCharacters(in: " ") + "\n"
            if n == 0 { out += widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") + "\n" }
        }
        return out
    }

    // MARK: JSON

    public static func json(_ r: CompareResult) -> JSON {
        let figures: [JSON] = Figures.build(r).map { f in
            func cell(_ c: Figure.Cell?) -> JSON {
                switch c {
                case .values(let v)?:
                    let s = Figure.stats(v)
                    return .object([("median", .number(s.median)), ("min", .number(s.min)), ("max", .number(s.max)),
                                    ("values", .array(v.map { .number($0) }))])
                case .text(let t)?: return .object([("text", .string(t))])
                case .notApplicable(let why)?: return .object([("notApplicable", .string(why))])
                case nil: return .object([("notApplicable", "not measured")])
                }
            }
            return .object([("name", .string(f.name)), ("group", .string(f.group)), ("unit", .string(f.unit)),
                            ("container", cell(f.cells["container"])), ("vm", cell(f.cells["vm"])),
                            ("ratio", f.ratio.map { .number($0) } ?? .null)])
        }
        var runs: [(String, JSON)] = []
        for iso in CompareResult.isolations + (r.workload[CompareResult.coldVM] == nil ? [] : [CompareResult.coldVM]) {
            let w: [JSON] = (r.workload[iso] ?? []).map { s in
                .object([("startMs", s.startSeconds.map { .number($0 * 1000) } ?? .null), ("totalMs", .number(s.totalSeconds * 1000)),
                         ("hostPeakBytes", .integer(Int64(s.hostPeakBytes))), ("stdoutBytes", .integer(Int64(s.stdoutBytes))),
                         ("stderrBytes", .integer(Int64(s.stderrBytes))), ("report", s.report.json)])
            }
            let p: [JSON] = (r.probe[iso] ?? []).map { s in
                .object([("syscallNs", .number(s.syscallNanos)), ("forkExecMs", .number(s.forkExecMillis)),
                         ("fileMs", .number(s.fileMillis)), ("cpuMs", .number(s.cpuMillis)),
                         ("tcpRequestUs", s.tcpRequestMicros.map { .number($0) } ?? .null),
                         ("volumeMs", s.volumeMillis.map { .number($0) } ?? .null), ("iterations", s.iterations)])
            }
            runs.append((iso, .object([("workload", .array(w)), ("probe", .array(p))])))
        }
        return .object([
            ("schema", .string(schemaID)),
            ("image", .string(r.options.image)),
            ("command", .array(r.options.command.map { .string($0) })),
            ("runOptions", .array(r.options.runArguments.map { .string($0) })),
            ("repeats", .integer(Int64(r.options.repeats))),
            ("host", .string(r.hostDescription)),
            ("figures", .array(figures)),
            ("runs", .object(runs)),
        ])
    }

    // MARK: HTML

    public static func html(_ r: CompareResult) -> String {
        let rows = Figures.build(r)
        var body = ""
        var group = ""
        for f in rows {
            if f.group != group {
                if !group.isEmpty { body += "</section>\n" }
                group = f.group
                body += "<section><h2>\(escape(group))</h2>\n"
            }
            body += "<div class=\"figure\"><h3>\(escape(f.name))\(f.unit.isEmpty ? "" : " (\(escape(f.unit)))")</h3>\n"
            if f.group != "same work", let chart = chart(f) { body += chart }
            body += "<table><tr><th>container</th><td>\(escape(Figures.describe(f.cells["container"], unit: f.unit)))</td></tr>"
            body += "<tr><th>vm</th><td>\(escape(Figures.describe(f.cells["vm"], unit: f.unit)))</td></tr>"
            if let ratio = f.ratio { body += "<tr><th>vm / container</th><td>\(formatFixed(ratio, 2))x</td></tr>" }
            body += "</table></div>\n"
        }
        body += "</section>\n"
        let summaryLine = summary(rows).map { "<p class=\"summary\">\(escape($0))</p>\n" } ?? ""
        return """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>swvm compare: \(escape(r.options.image))</title>
        <style>
        body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 60em; }
        h1 { font-size: 1.4em; } h2 { font-size: 1.15em; border-bottom: 1px solid #ccc; margin-top: 1.5em; text-transform: capitalize; }
        h3 { font-size: 1em; margin: 0.8em 0 0.3em; } .figure { margin-bottom: 1em; }
        table { border-collapse: collapse; font-size: 0.9em; } th { text-align: left; padding-right: 1em; color: #555; font-weight: normal; }
        td { padding: 0.1em 0; } .meta { color: #555; font-size: 0.9em; } .summary { font-size: 1.1em; font-weight: bold; }
        svg text { font-size: 12px; fill: #222; }
        </style></head><body>
        <h1>swvm compare: \(escape(r.options.image)) -- \(escape(shellQuoted(r.options.command)))</h1>
        \(summaryLine)<p class="meta">\(r.options.repeats) runs per isolation level, alternating; bars are medians, whiskers min to max; times on a log scale. Host: \(escape(r.hostDescription)).</p>
        \(body)</body></html>

        """
    }

    /// The report's first line: how much slower the VM starts than the
    /// container and how much host memory it takes beside it, from the
    /// medians of the start and memory rows ("the VM starts 60x slower and
    /// costs 3x the memory; it runs its own kernel"); nil without both levels.
    static func summary(_ rows: [Figure]) -> String? {
        func ratio(_ name: String) -> Double? { rows.first { $0.name == name }?.ratio }
        guard let start = ratio("start (swvm start to the workload's exec)") else { return nil }
        func times(_ r: Double, _ more: String, _ less: String) -> String {
            r >= 1 ? "\(formatFixed(r, r >= 10 ? 0 : 1))x \(more)" : "\(formatFixed(1 / r, 1 / r >= 10 ? 0 : 1))x \(less)"
        }
        var line = "The VM starts \(times(start, "slower", "faster")) than the container"
        if let memory = ratio("host memory peak (swvm + workload)") {
            line += memory >= 1 ? " and costs \(formatFixed(memory, 1))x the host memory" : " and costs \(formatFixed(memory, 2))x the host memory"
        }
        return line + "; it runs its own kernel."
    }

    /// Two horizontal bars (container, vm) with min-max whiskers.
    static func chart(_ f: Figure) -> String? {
        guard case .values(let c)? = f.cells["container"] ?? nil else {
            if case .values(let v)? = f.cells["vm"] ?? nil { return bars(f, [("vm", v)]) }
            return nil
        }
        if case .values(let v)? = f.cells["vm"] ?? nil { return bars(f, [("container", c), ("vm", v)]) }
        return bars(f, [("container", c)])
    }

    /// Where a value lies on a chart's axis: linear from 0, or for times
    /// (all positive) log10 over whole decades, so that a 17 ms bar and a
    /// 5 s bar are both visible; the decades are drawn and labelled.
    struct Axis {
        let log: Bool
        let lo: Double, hi: Double   // decades (log) or 0 and the largest value
        let x0: Double, width: Double

        init(_ values: [Double], unit: String, x0: Double, width: Double) {
            let positive = values.filter { $0 > 0 }
            log = ["ns", "µs", "ms", "s"].contains(unit) && !positive.isEmpty && positive.count == values.count
            self.x0 = x0
            self.width = width
            if log {
                lo = Glibc.floor(Glibc.log10(positive.min()!))
                hi = max(lo + 1, Glibc.ceil(Glibc.log10(positive.max()!)))
            } else {
                lo = 0
                hi = max(values.max() ?? 1, 1e-9)
            }
        }

        func x(_ v: Double) -> Double {
            log ? x0 + width * (Glibc.log10(max(v, 1e-300)) - lo) / (hi - lo) : x0 + width * v / hi
        }

        /// The decades' values, for grid lines.
        var decades: [Double] { log ? stride(from: lo, through: hi, by: 1).map { Glibc.pow(10, $0) } : [] }
    }

    static func bars(_ f: Figure, _ series: [(String, [Double])]) -> String {
        let width = 520.0, label = 90.0, barH = 22.0, gap = 8.0
        let axis = Axis(series.flatMap { $0.1 }, unit: f.unit, x0: label, width: width - label - 90)
        let ticks = axis.decades.isEmpty ? 0.0 : 14.0
        let height = Double(series.count) * (barH + gap) + gap + ticks
        var svg = "<svg class=\"chart\" role=\"img\" aria-label=\"\(escape(f.name))\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" xmlns=\"http://www.w3.org/2000/svg\">"
        for d in axis.decades {
            let (ts, tu) = Figures.humanUnit(d, f.unit)
            let v = d / ts, x = formatFixed(axis.x(d), 1)
            svg += "<line x1=\"\(x)\" y1=\"0\" x2=\"\(x)\" y2=\"\(formatFixed(height - ticks, 1))\" stroke=\"#ccc\" stroke-width=\"1\"/>"
            svg += "<text x=\"\(x)\" y=\"\(formatFixed(height - 2, 1))\" text-anchor=\"middle\" font-size=\"10\">\(v == v.rounded() ? String(Int64(v)) : Figures.format(v, unit: tu)) \(escape(tu))</text>"
        }
        for (i, (name, values)) in series.enumerated() {
            let s = Figure.stats(values)
            let (hs, hu) = Figures.humanUnit(s.median, f.unit)
            let y = gap + Double(i) * (barH + gap)
            let color = name == "vm" ? "#d9822b" : "#2b7bd9"
            svg += "<text x=\"0\" y=\"\(formatFixed(y + barH * 0.7, 1))\">\(name)</text>"
            svg += "<rect x=\"\(Int(label))\" y=\"\(formatFixed(y, 1))\" width=\"\(formatFixed(max(1, axis.x(s.median) - label), 1))\" height=\"\(Int(barH))\" fill=\"\(color)\"><title>\(escape(Figures.format(s.median / hs, unit: hu))) \(escape(hu))</title></rect>"
            let x1 = axis.x(s.min), x2 = axis.x(s.max), mid = y + barH / 2
            svg += "<line x1=\"\(formatFixed(x1, 1))\" y1=\"\(formatFixed(mid, 1))\" x2=\"\(formatFixed(x2, 1))\" y2=\"\(formatFixed(mid, 1))\" stroke=\"#222\" stroke-width=\"1.5\"/>"
            svg += "<text x=\"\(formatFixed(x2 + 6, 1))\" y=\"\(formatFixed(y + barH * 0.7, 1))\">\(escape(Figures.format(s.median / hs, unit: hu))) \(escape(hu))</text>"
        }
        return svg + "</svg>\n"
    }

    /// Arguments as a shell would need them typed.
    static func shellQuoted(_ args: [String]) -> String {
        if args.isEmpty { return "(the image's command)" }
        return args.map { a in
            a.allSatisfy({ $0.isLetter || $0.isNumber || "-_./=:@".contains($0) }) && !a.isEmpty
                ? a : "'" + a.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
        }.joined(separator: " ")
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(c)
            }
        }
        return out
    }
}
