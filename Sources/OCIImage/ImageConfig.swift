import SwvmBase

/// The parts of an OCI image configuration that decide how its process
/// runs (config.Entrypoint, Cmd, Env, WorkingDir, User, StopSignal).
public struct ImageConfig: Equatable {
    public var entrypoint: [String] = []
    public var cmd: [String] = []
    public var env: [String] = []
    public var workingDir: String = ""
    public var user: String = ""
    public var stopSignal: String = ""
    public var architecture: String = ""
    public var os: String = ""
    public var diffIDs: [Digest] = []

    public init() {}

    public init(json: JSON, context: String) throws {
        guard json.object != nil else { throw SwvmError(.invalidImage, "\(context): image config is not a JSON object") }
        architecture = json["architecture"]?.string ?? ""
        os = json["os"]?.string ?? ""
        if let c = json["config"], !c.isNull {
            entrypoint = try ImageConfig.strings(c["Entrypoint"], "Entrypoint", context)
            cmd = try ImageConfig.strings(c["Cmd"], "Cmd", context)
            env = try ImageConfig.strings(c["Env"], "Env", context)
            workingDir = c["WorkingDir"]?.string ?? ""
            user = c["User"]?.string ?? ""
            stopSignal = c["StopSignal"]?.string ?? ""
        }
        for d in json["rootfs"]?["diff_ids"]?.array ?? [] {
            guard let s = d.string else { throw SwvmError(.invalidImage, "\(context): rootfs.diff_ids holds a non-string") }
            do { diffIDs.append(try Digest(s)) } catch let e as SwvmError { throw SwvmError(.invalidImage, "\(context): \(e.message)") }
        }
    }

    static func strings(_ v: JSON?, _ field: String, _ context: String) throws -> [String] {
        guard let v, !v.isNull else { return [] }
        guard let a = v.array else { throw SwvmError(.invalidImage, "\(context): config.\(field) is not a list of strings") }
        return try a.map {
            guard let s = $0.string else { throw SwvmError(.invalidImage, "\(context): config.\(field) holds a non-string") }
            return s
        }
    }

    /// The config's process part as JSON (kept beside a cached rootfs).
    public var json: JSON {
        .object([
            ("architecture", .string(architecture)), ("os", .string(os)),
            ("config", .object([
                ("Entrypoint", .array(entrypoint.map { .string($0) })),
                ("Cmd", .array(cmd.map { .string($0) })),
                ("Env", .array(env.map { .string($0) })),
                ("WorkingDir", .string(workingDir)),
                ("User", .string(user)),
                ("StopSignal", .string(stopSignal)),
            ])),
        ])
    }
}
