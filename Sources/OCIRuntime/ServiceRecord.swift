#if canImport(Glibc)
import Glibc
#endif
import SwvmBase

/// What Docker's verbs know of a container beside its OCI state
/// (state.json, ContainerRecord): its name, image and command, the words
/// of the `swvm run` that made it (the monitor and `swvm exec` parse them
/// again: one options model), its log, and how it ended. Kept as
/// service.json in the container's directory of the ServiceStore.
public struct ServiceRecord: Equatable, Sendable {
    public var id: String
    public var name: String
    public var image: String
    /// The process as the image and the command line made it.
    public var command: [String]
    /// Nanoseconds since the epoch.
    public var created: UInt64
    public var isolation: String
    /// The arguments of `swvm run` after "run".
    public var runArguments: [String]
    /// Where `swvm run -d` ran (relative paths in runArguments).
    public var workingDirectory: String
    /// The host values of `-e KEY` (without =), as `swvm run -d` saw them.
    public var hostEnvironment: [String]
    /// --rm: removed once it exits.
    public var autoRemove: Bool
    /// The most bytes of output kept (--log-opt max-size).
    public var logMaxSize: UInt64
    /// The monitor (swvm monitor), once started.
    public var monitor: ProcessIdentity?
    /// 128+N for signal N; nil while it runs, or when its monitor was killed.
    public var exitCode: Int32?
    public var finished: UInt64?

    public init(id: String, name: String, image: String, command: [String], isolation: String, runArguments: [String]) {
        self.id = id
        self.name = name
        self.image = image
        self.command = command
        self.created = Clock.realtimeNanos()
        self.isolation = isolation
        self.runArguments = runArguments
        self.workingDirectory = "/"
        self.hostEnvironment = []
        self.autoRemove = false
        self.logMaxSize = ServiceRecord.defaultLogMaxSize
        self.monitor = nil
        self.exitCode = nil
        self.finished = nil
    }

    /// 8 MiB of output per container unless --log-opt max-size says otherwise.
    public static let defaultLogMaxSize: UInt64 = 8 << 20

    /// Docker's rule for names: [a-zA-Z0-9][a-zA-Z0-9_.-]+ (and a length
    /// that fits a file name).
    public static func checkName(_ name: String) throws {
        let bytes = Array(name.utf8)
        func ok(_ b: UInt8, first: Bool) -> Bool {
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || (!first && (b == 0x5f || b == 0x2e || b == 0x2d))
        }
        guard bytes.count >= 2, bytes.count <= 128, ok(bytes[0], first: true), bytes.dropFirst().allSatisfy({ ok($0, first: false) }) else {
            throw SwvmError(.invalidArgument, "--name \"\(UntrustedText.escaped(name))\": a name is 2 to 128 of [a-zA-Z0-9_.-], starting with a letter or digit")
        }
    }

    public var json: JSON {
        var members: [(String, JSON)] = [
            ("id", .string(id)), ("name", .string(name)), ("image", .string(image)),
            ("command", .array(command.map { .string($0) })), ("created", .unsigned(created)),
            ("isolation", .string(isolation)), ("runArguments", .array(runArguments.map { .string($0) })),
            ("workingDirectory", .string(workingDirectory)), ("hostEnvironment", .array(hostEnvironment.map { .string($0) })),
            ("autoRemove", .bool(autoRemove)), ("logMaxSize", .unsigned(logMaxSize)),
        ]
        if let m = monitor { members.append(("monitor", .object([("pid", .integer(Int64(m.pid))), ("startTime", .unsigned(m.startTime))]))) }
        if let e = exitCode { members.append(("exitCode", .integer(Int64(e)))) }
        if let f = finished { members.append(("finished", .unsigned(f))) }
        return .object(members)
    }

    /// Reads service.json; a field of the wrong type is an error naming it.
    public static func decode(_ json: JSON, file: String) throws -> ServiceRecord {
        func bad(_ key: String) -> SwvmError { SwvmError(.internalError, "\(file) is corrupt: \(key)") }
        func string(_ key: String) throws -> String { guard let s = json[key]?.string else { throw bad(key) }; return s }
        func strings(_ key: String) throws -> [String] {
            guard let a = json[key]?.array else { throw bad(key) }
            return try a.map { guard let s = $0.string else { throw bad(key) }; return s }
        }
        func number(_ key: String) throws -> UInt64 { guard let n = json[key]?.uint64 else { throw bad(key) }; return n }
        var r = ServiceRecord(id: try string("id"), name: try string("name"), image: try string("image"), command: try strings("command"),
                              isolation: try string("isolation"), runArguments: try strings("runArguments"))
        r.created = try number("created")
        r.workingDirectory = try string("workingDirectory")
        r.hostEnvironment = try strings("hostEnvironment")
        r.autoRemove = json["autoRemove"]?.bool ?? false
        r.logMaxSize = try number("logMaxSize")
        if let m = json["monitor"] {
            guard let pid = m["pid"]?.int64, let start = m["startTime"]?.uint64, pid > 0, pid <= Int64(Int32.max) else { throw bad("monitor") }
            r.monitor = ProcessIdentity(pid: pid_t(pid), startTime: start)
        }
        if let e = json["exitCode"] {
            guard let v = e.int64, (0...255).contains(v) else { throw bad("exitCode") }
            r.exitCode = Int32(v)
        }
        if json["finished"] != nil { r.finished = try number("finished") }
        return r
    }
}
