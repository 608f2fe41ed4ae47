#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Cgroups
import OCIRuntime
import RuntimeSpec
import SwvmBase

enum ListFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json
}

struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the containers under --root.")

    @Flag(name: [.short, .long], help: "Print only the ids.") var quiet = false
    @Option(name: [.short, .long], help: "table or json.") var format: ListFormat = .table

    func run() throws {
        try runOCI { lifecycle in
            let states = try lifecycle.list()
            if quiet {
                Log.out(states.map { $0.id + "\n" }.joined())
            } else if format == .json {
                Log.out(JSON.array(states.map(\.runcJSON)).serialized() + "\n")
            } else {
                // runc's columns, then the isolation level.
                Log.out(table([["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER", "ISOLATION"]] + states.map {
                    [$0.id, String($0.pid), $0.status.rawValue, $0.record?.bundle ?? "", $0.record?.created ?? "", "root",
                     IsolationLevel.of($0.record).rawValue]
                }))
            }
            return 0
        }
    }
}

/// runc ps ID (the container's processes); without an ID, Docker's `ps`:
/// the containers, running ones only unless -a.
struct PsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ps", abstract: "List a container's processes (runc ps ID), or the containers (swvm ps [-a]).")

    @Option(name: [.short, .long], help: "table or json (with an ID).") var format: ListFormat = .table
    @Flag(name: [.short, .long], help: "Without an ID: stopped containers too.") var all = false
    @Argument(help: "The container id.") var id: String?
    @Argument(parsing: .captureForPassthrough, help: "ps(1)'s options for the table (default -ef).") var psArguments: [String] = []

    func run() throws {
        try runOCI { lifecycle in
            guard let id else {
                let states = try lifecycle.list().filter { all || $0.status != .stopped }
                Log.out(table([["CONTAINER ID", "STATUS", "PID", "CREATED", "BUNDLE", "ISOLATION"]] + states.map {
                    [$0.id, $0.status.rawValue, String($0.pid), $0.record?.created ?? "", $0.record?.bundle ?? "",
                     IsolationLevel.of($0.record).rawValue]
                }))
                return 0
            }
            switch try lifecycle.processes(id) {
            case .host(let pids):
                if format == .json {
                    Log.out(JSON.array(pids.map { .integer(Int64($0)) }).serialized() + "\n")
                } else {
                    Log.out(try processTable(pids, psArguments.isEmpty ? ["-ef"] : psArguments))
                }
            case .guest(let processes):
                guard psArguments.isEmpty || psArguments == ["-ef"] else {
                    throw SwvmError(.unsupported, "ps: ps(1)'s options do not apply at the VM level (its processes are the guest's)")
                }
                if format == .json {
                    Log.out(JSON.array(processes.map { .integer(Int64($0.pid)) }).serialized() + "\n")
                } else {
                    Log.out(table([["UID", "PID", "PPID", "CMD"]] + processes.map { [String($0.uid), String($0.pid), String($0.ppid), $0.command] }))
                }
            }
            return 0
        }
    }

    /// ps(1)'s output, header and the container's lines only, as runc's.
    func processTable(_ pids: [pid_t], _ arguments: [String]) throws -> String {
        let r = try Subprocess.run(["ps"] + arguments)
        guard r.status == 0 else { throw SwvmError(.systemCall, "ps \(arguments.joined(separator: " ")): \(r.output)") }
        let lines = r.output.split(separator: "\n")
        guard let header = lines.first, let column = header.split(separator: " ").firstIndex(of: "PID") else {
            throw SwvmError(.invalidArgument, "ps's output has no PID column")
        }
        let wanted = Set(pids)
        let rows = lines.dropFirst().filter { line in
            let fields = line.split(separator: " ")
            return column < fields.count && pid_t(fields[column]).map(wanted.contains) == true
        }
        return ([header] + rows).joined(separator: "\n") + "\n"
    }
}

struct UpdateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "update", abstract: "Change a container's resource limits.")

    @Option(name: [.short, .long], help: "A linux.resources JSON file; - is stdin.") var resources: String?
    @Option(help: "Memory limit (bytes, or 512m, 1g; -1: none).") var memory: String?
    @Option(help: "Memory plus swap limit (-1: none).") var memorySwap: String?
    @Option(help: "Maximum number of processes (-1: none).") var pidsLimit: Int64?
    @Option(help: "CPU time per period (microseconds; -1: none).") var cpuQuota: Int64?
    @Option(help: "The CPU period (microseconds).") var cpuPeriod: UInt64?
    @Option(help: "CPU shares (relative weight).") var cpuShare: UInt64?
    @Argument(help: "The container id.") var id: String

    func run() throws {
        try runOCI { lifecycle in
            var r = ResourceUpdate()
            if let file = resources {
                let bytes = file == "-" ? try FileDescriptor(dup(0)).readAll(limit: 1 << 20) : try FS.readFile(file, limit: 1 << 20)
                let json: JSON
                do { json = try JSON.parse(bytes) } catch let e as JSON.ParseError {
                    throw SwvmError(.invalidArgument, "\(file): invalid JSON: \(e)")
                }
                r = ResourceUpdate(try OCIConfig.parseResources(json, file: file))
            }
            if let m = memory { r.memory = try limit(m, "--memory") }
            if let m = memorySwap { r.memorySwap = try limit(m, "--memory-swap") }
            if let p = pidsLimit { r.pids = p }
            if let q = cpuQuota { r.cpuQuota = q }
            if let p = cpuPeriod { r.cpuPeriod = p }
            if let s = cpuShare { r.cpuShares = s }
            try lifecycle.update(id, r)
            return 0
        }
    }

    func limit(_ text: String, _ flag: String) throws -> Int64 {
        if text == "-1" { return -1 }
        let bytes = try ByteSize.parse(text)
        guard bytes <= UInt64(Int64.max) else { throw SwvmError(.invalidArgument, "\(flag) \(text): too large") }
        return Int64(bytes)
    }
}

struct FeaturesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "features", abstract: "Print what this runtime implements (JSON).")

    func run() throws {
        try runOCI { _ in
            let v2: Bool
            if case .v2 = Cgroups.detect() { v2 = true } else { v2 = false }
            Log.out(Features.json(cgroupV1: !v2, cgroupV2: v2).serialized(pretty: true) + "\n")
            return 0
        }
    }
}

/// runc spec: writes a default config.json into the bundle directory.
struct SpecCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "spec", abstract: "Write a default config.json for a bundle.")

    @Option(name: [.short, .long], help: "The bundle directory (default: the current one).") var bundle: String = "."
    @Flag(help: "A configuration for a container started without root.") var rootless = false

    func run() throws {
        try runOCI { _ in
            let path = Path.join(bundle, "config.json")
            guard !FS.exists(path) else { throw SwvmError(.invalidArgument, "\(path) exists; remove it first") }
            try FS.writeText(path, OCIConfig.defaultConfig(rootless: rootless).serialized(pretty: true) + "\n")
            return 0
        }
    }
}
