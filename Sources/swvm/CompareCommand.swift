#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import CommandLineOptions
import Compare
import SwvmBase

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Run a workload in a container and in a micro-VM, and compare what each costs.",
        discussion: """
        Runs the workload under --isolation=container and --isolation=vm, alternating, \
        --repeat times each, plus a small static probe (bind-mounted at /.swvm-probe; \
        the image is not modified) that measures system calls, fork+exec, file I/O \
        and CPU inside each (with --network bridge also a TCP connect plus a small \
        request to a listener swvm opens on the bridge's host address). Prints one \
        table: each figure's median (min-max) per \
        isolation level and their ratio, and the security posture each run applied. \
        Every number is measured in this run; what cannot be measured says why.
        """)

    @OptionGroup var options: RunOptions
    @OptionGroup(title: "VM options") var vmOptions: VMRunOptions
    @OptionGroup(title: "Comparison options") var comparison: ComparisonOptions

    @Argument(help: "The image directory.")
    var image: String

    @Argument(parsing: .captureForPassthrough, help: "The workload's command (default: the image's).")
    var command: [String] = []

    func run() throws {
        try runReportingErrors {
            let c = comparison
            guard c.repeats >= 1, c.repeats <= 100 else { throw SwvmError(.invalidArgument, "--repeat must be between 1 and 100") }
            guard FS.exists(image) else { throw SwvmError(.notFound, "image \(image): no such file or directory") }
            // The run and VM options as they were given (this command's own left out).
            let words = Array(CommandLine.arguments.dropFirst().drop { $0 != Self.configuration.commandName }.dropFirst())
            let runArguments = forwardedOptionWords(words, forwarded: [RunOptions.self, VMRunOptions.self], own: [ComparisonOptions.self])
            var o = CompareOptions(image: image, runArguments: runArguments,
                                   command: command.first == "--" ? Array(command.dropFirst()) : command)
            o.repeats = c.repeats
            o.probeBudget = c.probeBudget
            o.alsoColdBoot = c.alsoColdBoot
            o.bridgeNetwork = options.network == "bridge"
            o.hasVolume = !options.volume.isEmpty || options.mount.contains { $0.contains("type=bind") }
            o.swvm = FS.executablePath()
            let result = try compare(o)
            let text: String
            switch c.format {
            case .json: text = CompareReport.json(result).serialized(pretty: true) + "\n"
            case .html: text = CompareReport.html(result)
            case .table: text = CompareReport.table(result)
            }
            if let path = c.output { try FS.writeText(path, text) } else { Log.out(text) }
            if let path = c.writeJSON { try FS.writeText(path, CompareReport.json(result).serialized(pretty: true) + "\n") }
            if let path = c.writeHTML { try FS.writeText(path, CompareReport.html(result)) }
            return 0
        }
    }

    /// Runs the comparison, with its progress on one line of a terminal.
    func compare(_ o: CompareOptions) throws -> CompareResult {
        let comparison = Comparison(options: o)
        let tty = isatty(2) != 0
        comparison.progress = { line in
            Log.emit(tty ? "\r\u{1b}[K" + line : line + "\n")
        }
        let result = try comparison.run()
        if tty { Log.emit("\r\u{1b}[K") }
        return result
    }
}

/// `swvm compare`'s own options (the rest it passes on to `swvm run`).
struct ComparisonOptions: ParsableArguments {
    @Option(name: .customLong("repeat"), help: "Runs per isolation level.")
    var repeats: Int = 3

    @Option(help: "Output format.")
    var format: ReportFormat = .table

    @Option(name: [.short, .long], help: "Write the report to this file instead of stdout.")
    var output: String?

    @Option(name: .customLong("write-json"), help: ArgumentHelp("Also write the JSON report to this file.", valueName: "file"))
    var writeJSON: String?

    @Option(name: .customLong("write-html"), help: ArgumentHelp("Also write the HTML report to this file.", valueName: "file"))
    var writeHTML: String?

    @Option(help: "Seconds the probe may spend on each of its figures.")
    var probeBudget: Double = 1.0

    @Flag(name: .customLong("also-cold-boot"), help: "Also run the VM with --cold-boot in each repetition: warm and cold starts side by side.")
    var alsoColdBoot = false
}

enum ReportFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json, html
}
