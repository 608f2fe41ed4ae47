#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import OCIRuntime
import SwvmBase

/// Docker's verbs for the containers `swvm run -d` made (ServiceStore).
/// ps, exec, kill and pause are also runc's verbs: `route` picks Docker's
/// when no runc global flag was given and (ps) no container id follows, or
/// (exec, kill, pause) the id names one of these containers.
enum DockerVerbs {
    static let sharedNames: [String: String] = ["ps": "service-ps", "exec": "service-exec", "kill": "service-kill", "pause": "service-pause"]
    /// Options of either verb that take a value (to find the first operand).
    static let valueOptions: Set<String> = ["-e", "--env", "-u", "--user", "-w", "--workdir", "--cwd", "-s", "--signal", "-p", "--process",
                                            "--console-socket", "--pid-file", "-c", "--cap", "--preserve-fds", "--process-label",
                                            "--apparmor", "--format", "-f"]

    static func route(_ arguments: [String]) -> [String] {
        guard !RuncGlobalOptions.current.given, let verb = arguments.first, let docker = sharedNames[verb] else { return arguments }
        let rest = Array(arguments.dropFirst())
        let operand = firstOperand(rest)
        let isDocker = verb == "ps" ? operand == nil : operand.map(namesService) ?? false
        return isDocker ? [docker] + rest : arguments
    }

    /// Whether `reference` names a detached container and no runc
    /// container of the default root has that id (runc's callers keep
    /// their ids, which may happen to be a prefix of one of ours).
    static func namesService(_ reference: String) -> Bool {
        if (try? ContainerID.validate(reference)) != nil, FS.isDirectory(StateStore().directory(reference)) { return false }
        return (try? ServiceStore().resolve(reference)) != nil
    }

    static func firstOperand(_ words: [String]) -> String? {
        var i = 0
        while i < words.count {
            let w = words[i]
            if w == "--" { return i + 1 < words.count ? words[i + 1] : nil }
            if !w.hasPrefix("-") || w == "-" { return w }
            i += valueOptions.contains(w) ? 2 : 1
        }
        return nil
    }

    /// Runs a verb on each container named (Docker's verbs take several),
    /// printing each name as given once done; the first error ends it.
    static func each(_ references: [String], echo: Bool = true, _ body: (ServiceStore, ServiceRecord) throws -> Void) throws {
        try runReportingErrors {
            let store = ServiceStore()
            for reference in references {
                try body(store, try store.resolve(reference))
                if echo { Log.out(reference + "\n") }
            }
            return 0
        }
    }
}

struct ServicePsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "service-ps", abstract: "List the containers of swvm run -d (swvm ps).",
        usage: "swvm ps [-a] [-q] [--no-trunc]", shouldDisplay: false)

    @Flag(name: [.short, .long], help: "Show all containers (default: running ones).") var all = false
    @Flag(name: [.short, .long], help: "Only the ids.") var quiet = false
    @Flag(name: .customLong("no-trunc"), help: "Do not truncate ids and commands.") var noTrunc = false

    func run() throws {
        try runReportingErrors {
            let store = ServiceStore()
            let now = Clock.realtimeNanos()
            var rows: [[String]] = []
            for record in try store.all().reversed() {
                let status = store.status(record.id)
                if !all && status != .running && status != .paused { continue }
                let id = noTrunc ? record.id : String(record.id.prefix(12))
                if quiet { Log.out(id + "\n"); continue }
                rows.append([id, record.image, ServiceTable.command(record.command, truncate: !noTrunc),
                             ServiceTable.ago(record.created, now: now), ServiceTable.status(record, status, now: now),
                             record.name, record.isolation])
            }
            if !quiet {
                Log.out(ServiceTable.format([["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES", "ISOLATION"]] + rows))
            }
            return 0
        }
    }
}

/// ps's columns, as Docker writes them.
enum ServiceTable {
    static func format(_ rows: [[String]]) -> String {
        let widths = (0..<(rows.first?.count ?? 0)).map { c in rows.map { $0[c].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { c, cell in c == row.count - 1 ? cell : cell.padding(widths[c] + 3) }.joined()
        }.joined(separator: "\n") + "\n"
    }

    static func command(_ args: [String], truncate: Bool) -> String {
        let text = args.joined(separator: " ")
        return "\"" + (truncate && text.count > 20 ? String(text.prefix(19)) + "…" : text) + "\""
    }

    static func status(_ record: ServiceRecord, _ status: ContainerStatus, now: UInt64) -> String {
        switch status {
        case .creating, .created: return "Created"
        case .running: return "Up \(duration(now - min(now, record.created)))"
        case .paused: return "Up \(duration(now - min(now, record.created))) (Paused)"
        case .stopped:
            guard let code = record.exitCode else { return "Exited (unknown)" }
            return "Exited (\(code)) \(ago(record.finished ?? now, now: now))"
        }
    }

    static func ago(_ time: UInt64, now: UInt64) -> String { duration(now - min(now, time)) + " ago" }

    /// Docker's HumanDuration.
    static func duration(_ nanos: UInt64) -> String {
        let s = nanos / 1_000_000_000
        switch s {
        case 0: return "Less than a second"
        case 1: return "1 second"
        case ..<60: return "\(s) seconds"
        case ..<120: return "About a minute"
        case ..<3600: return "\(s / 60) minutes"
        case ..<7200: return "About an hour"
        case ..<(48 * 3600): return "\(s / 3600) hours"
        default: return "\(s / 86400) days"
        }
    }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}

struct LogsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logs", abstract: "Print a detached container's output.")

    @Flag(name: [.short, .long], help: "Follow the output until the container stops.") var follow = false
    @Option(name: .customLong("tail"), help: "The number of lines from the end (or all).") var tail: String = "all"
    @Flag(name: [.short, .long], help: "Start each line with its time.") var timestamps = false
    @Argument(help: "The container: its id (or a unique prefix) or name.") var container: String

    func run() throws {
        try runReportingErrors {
            let lines: Int?
            if tail == "all" { lines = nil } else {
                guard let n = Int(tail), n >= 0 else { throw SwvmError(.invalidArgument, "--tail \(tail): expected a number of lines or all") }
                lines = n
            }
            let store = ServiceStore()
            let record = try store.resolve(container)
            try LogReader.show(store.logFile(record.id), tail: lines, timestamps: timestamps, follow: follow) {
                record.monitor?.isAlive ?? false
            }
            return 0
        }
    }
}

struct WaitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "wait", abstract: "Wait for containers to stop; print their exit codes.")
    @Argument(help: "The containers.") var containers: [String]

    func run() throws {
        try DockerVerbs.each(containers, echo: false) { store, record in
            guard let code = store.waitForExit(record.id) else {
                throw SwvmError(.internalError, "container \(record.name): its monitor ended without an exit status")
            }
            Log.out("\(code)\n")
        }
    }
}

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Print what swvm knows of containers (JSON).")
    @Argument(help: "The containers.") var containers: [String]

    func run() throws {
        var items: [JSON] = []
        try DockerVerbs.each(containers, echo: false) { store, r in
            let state = try store.lifecycle.state(r.id)
            let s = state.status
            var st: [(String, JSON)] = [("Status", .string(s == .stopped ? "exited" : s == .creating ? "created" : s.rawValue)),
                                        ("Running", .bool(s == .running || s == .paused)), ("Paused", .bool(s == .paused)),
                                        ("Pid", .integer(Int64(state.pid)))]
            if let c = r.exitCode { st.append(("ExitCode", .integer(Int64(c)))) }
            if let f = r.finished { st.append(("FinishedAt", .string(Timestamp.rfc3339(f)))) }
            items.append(.object([("Id", .string(r.id)), ("Name", .string(r.name)), ("Created", .string(Timestamp.rfc3339(r.created))),
                                  ("State", .object(st)), ("Image", .string(r.image)),
                                  ("Config", .object([("Cmd", .array(r.command.map { .string($0) }))])),
                                  ("HostConfig", .object([("Isolation", .string(r.isolation)), ("AutoRemove", .bool(r.autoRemove))])),
                                  ("LogPath", .string(store.logFile(r.id)))]))
        }
        Log.out(JSON.array(items).serialized(pretty: true) + "\n")
    }
}
