#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import RuntimeSpec
import SwvmBase

/// runc exec's options.
public struct ExecOptions: Sendable {
    /// -p: a process.json (the whole process; the flags below then do not apply).
    public var processFile: String?
    public var args: [String] = []
    public var tty = false
    public var consoleSocket: String?
    public var detach = false
    public var pidFile: String?
    public var cwd: String?
    public var env: [String] = []
    /// "UID[:GID]".
    public var user: String?
    public var capabilities: [String] = []
    public var noNewPrivileges = false
    public var preserveFDs = 0

    public init() {}
}

/// exec and run.
extension Lifecycle {
    /// Runs another process in the container; its exit status (0 with
    /// `detach`).
    public func exec(_ id: String, _ options: ExecOptions) throws -> Int32 {
        let state = try self.state(id)
        switch state.status {
        case .created, .running: break
        case .paused: throw SwvmError(.invalidArgument, "cannot exec in a paused container")
        default: throw SwvmError(.invalidArgument, "cannot exec in a stopped container")
        }
        guard let record = state.record, let initProcess = record.initProcess else { throw StateStore.notFound(id) }
        let configFile = Path.join(store.directory(id), Lifecycle.configCopy)
        let config = try JSON.parse(FS.readFile(configFile, limit: Int(OCIConfig.maxConfigSize)))
        var spec = try OCIConfig.parse(config, bundle: record.bundle, id: id)
        let process = try execProcess(options, config: config["process"] ?? .object([]))
        OCIConfig.applyProcess(try OCIConfig.parseProcess(process, file: options.processFile ?? "exec's process"), to: &spec)
        let status = try withIO(options.consoleSocket, preserveFDs: options.preserveFDs) { io in
            try engine(for: IsolationLevel.of(record)).exec(into: initProcess, cgroupPaths: record.cgroupPaths, spec: spec, io: io,
                            detach: options.detach, pidFile: options.pidFile)
        }
        // Detached, the engine's answer is the process's pid, not a status.
        return options.detach ? 0 : status
    }

    /// The process to exec, as config.json's `process`: -p's file, or the
    /// container's own process with the flags applied (as runc's exec).
    func execProcess(_ o: ExecOptions, config: JSON) throws -> JSON {
        if let file = o.processFile {
            let bytes = file == "-" ? try FileDescriptor(dup(0)).readAll(limit: 16 << 20) : try FS.readFile(file, limit: 16 << 20)
            do {
                return try JSON.parse(bytes)
            } catch let e as JSON.ParseError {
                throw SwvmError(.invalidArgument, "\(file): \(e.description)")
            }
        }
        guard !o.args.isEmpty else { throw SwvmError(.invalidArgument, "exec: no command given (args or --process)") }
        var p = config.setting("args", .array(o.args.map { .string($0) })).setting("terminal", .bool(o.tty))
        if !o.env.isEmpty { p = p.appending("env", o.env.map { .string($0) }) }
        if let cwd = o.cwd { p = p.setting("cwd", .string(cwd)) }
        if o.noNewPrivileges { p = p.setting("noNewPrivileges", .bool(true)) }
        if let user = o.user { p = p.setting("user", try Lifecycle.execUser(user, current: p["user"])) }
        if !o.capabilities.isEmpty {
            var caps = p["capabilities"] ?? .object([])
            for set in ["bounding", "effective", "inheritable", "permitted", "ambient"] {
                caps = caps.appending(set, o.capabilities.map { .string($0) })
            }
            p = p.setting("capabilities", caps)
        }
        return p
    }

    /// --user UID[:GID], numbers as runc takes them (GID defaults to 0).
    static func execUser(_ text: String, current: JSON?) throws -> JSON {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count <= 2, let uid = UInt32(parts[0]), parts.count == 1 || UInt32(parts[1]) != nil else {
            throw SwvmError(.invalidArgument, "--user \(UntrustedText.escaped(text)): expected UID[:GID], as numbers")
        }
        let gid = parts.count == 2 ? UInt32(parts[1])! : 0
        return (current ?? .object([])).setting("uid", .integer(Int64(uid))).setting("gid", .integer(Int64(gid)))
    }

    /// runc run: create, start, wait for the init (forwarding signals),
    /// delete; the init's exit status. With `detach`, create and start only.
    public func run(_ id: String, _ options: CreateOptions, detach: Bool, keep: Bool) throws -> Int32 {
        // The init and what it leaves behind are reaped here, as by runc.
        _ = sys_prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        let forwarder = detach ? nil : try SignalForwarder()
        try create(id, options)
        let state = try self.state(id)
        guard let initProcess = state.record?.initProcess else { throw StateStore.notFound(id) }
        do {
            try start(id)
        } catch {
            try? delete(id, force: true)
            throw error
        }
        guard let forwarder else { return 0 }
        let status = try forwarder.wait(for: initProcess)
        if !keep { try delete(id, force: true) }
        return status
    }
}
