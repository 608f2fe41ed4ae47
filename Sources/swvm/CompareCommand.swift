#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
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

    @OptionGroup var options: ProcessOptions
    @OptionGroup(title: "VM options") var vmOptions: VMOptions

    @Option(name: .customLong("repeat"), help: "Runs per isolation level.")
    var repeats: Int = 3

    @Option(help: "Output format: table, json or html.")
    var format: String = "table"

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

    @Argument(help: "The image directory.")
    var image: String

    @Argument(parsing: .captureForPassthrough, help: "The workload's command (default: the image's).")
    var command: [String] = []

    func run() throws {
        try runReportingErrors {
            guard ["table", "json", "html"].contains(format) else {
                throw SwvmError(.invalidArgument, "--format must be table, json or html, not '\(format)'")
            }
            guard repeats >= 1, repeats <= 100 else { throw SwvmError(.invalidArgument, "--repeat must be between 1 and 100") }
            guard FS.exists(image) else { throw SwvmError(.notFound, "image \(image): no such file or directory") }
            var o = CompareOptions(image: image, runArguments: options.arguments() + vmOptions.arguments(),
                                   command: command.first == "--" ? Array(command.dropFirst()) : command)
            o.repeats = repeats
            o.probeBudget = probeBudget
            o.alsoColdBoot = alsoColdBoot
            o.bridgeNetwork = options.network == "bridge"
            o.hasVolume = !options.volume.isEmpty || options.mount.contains { $0.contains("type=bind") }
            o.swvm = FS.executablePath()
            let comparison = Comparison(options: o)
            let tty = isatty(2) != 0
            comparison.progress = { line in
                Log.emit(tty ? "\r\u{1b}[K" + line : line + "\n")
            }
            let result = try comparison.run()
            if tty { Log.emit("\r\u{1b}[K") }
            let text: String
            switch format {
            case "json": text = CompareReport.json(result).serialized(pretty: true) + "\n"
            case "html": text = CompareReport.html(result)
            default: text = CompareReport.table(result)
            }
            if let path = output { try FS.writeText(path, text) } else { Log.out(text) }
            if let path = writeJSON { try FS.writeText(path, CompareReport.json(result).serialized(pretty: true) + "\n") }
            if let path = writeHTML { try FS.writeText(path, CompareReport.html(result)) }
            return 0
        }
    }
}
