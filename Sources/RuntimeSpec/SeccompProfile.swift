import Seccomp
import SwvmBase

extension SeccompProfile.Action {
    static func parse(_ s: String, errnoRet: UInt32?, context: String) throws -> SeccompProfile.Action {
        switch s {
        case "SCMP_ACT_ALLOW": return .allow
        case "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD": return .kill
        case "SCMP_ACT_KILL_PROCESS": return .killProcess
        case "SCMP_ACT_TRAP": return .trap
        case "SCMP_ACT_LOG": return .log
        case "SCMP_ACT_ERRNO": return .errno(errnoRet ?? 1)
        case "SCMP_ACT_TRACE": return .trace(errnoRet ?? 1)
        case "SCMP_ACT_NOTIFY":
            throw SwvmError(.unsupported, "\(context): seccomp action SCMP_ACT_NOTIFY (a user-space listener) is not supported")
        default: throw SwvmError(.invalidArgument, "\(context): unsupported seccomp action '\(s)'")
        }
    }
}

extension SeccompProfile {
    // MARK: Docker / OCI JSON

    /// Parses a profile in Docker's format or the OCI runtime spec's
    /// (linux.seccomp: no includes/excludes, but architectures and flags).
    /// Rules conditioned on capabilities are kept or dropped for `capabilities`.
    public static func parse(_ json: JSON, capabilities: Set<String>, context: String) throws -> SeccompProfile {
        guard json.object != nil else { throw SwvmError(.invalidArgument, "\(context): seccomp profile is not a JSON object") }
        let defaultErrno = try errnoRet(json["defaultErrnoRet"], context: "\(context): defaultErrnoRet")
        guard let da = json["defaultAction"]?.string else {
            throw SwvmError(.invalidArgument, "\(context): seccomp profile has no defaultAction")
        }
        var profile = SeccompProfile(defaultAction: try Action.parse(da, errnoRet: defaultErrno, context: context), rules: [])
        profile.architectures = try strings(json["architectures"], context: "\(context): architectures")
        for arch in profile.architectures where !architectureNames.contains(arch) {
            throw SwvmError(.invalidArgument, "\(context): architectures: unknown architecture '\(arch)'")
        }
        for flag in try strings(json["flags"], context: "\(context): flags") {
            guard let f = Flags.names.first(where: { $0.0 == flag })?.1 else {
                throw SwvmError(.invalidArgument, "\(context): flags: unknown seccomp flag '\(flag)'")
            }
            profile.flags.insert(f)
        }
        guard let syscalls = json["syscalls"], !syscalls.isNull else { return profile }
        guard let list = syscalls.array else { throw SwvmError(.invalidArgument, "\(context): syscalls is not an array") }
        for (i, r) in list.enumerated() {
            if let rule = try rule(r, capabilities: capabilities, context: "\(context): syscalls[\(i)]") { profile.rules.append(rule) }
        }
        return profile
    }

    /// One entry of syscalls; nil when its includes/excludes leave it out.
    static func rule(_ r: JSON, capabilities: Set<String>, context ctx: String) throws -> Rule? {
        guard r.object != nil else { throw SwvmError(.invalidArgument, "\(ctx): not a JSON object") }
        var names = try strings(r["names"], context: "\(ctx): names")
        if let n = r["name"]?.string { names.append(n) }
        guard !names.isEmpty else { throw SwvmError(.invalidArgument, "\(ctx): no syscall names") }
        guard let a = r["action"]?.string else { throw SwvmError(.invalidArgument, "\(ctx): no action") }
        let action = try Action.parse(a, errnoRet: try errnoRet(r["errnoRet"], context: "\(ctx): errnoRet"), context: ctx)
        if let inc = r["includes"] {
            let caps = try (inc["caps"]?.array ?? []).compactMap(\.string).map(Capabilities.canonical)
            if !caps.isEmpty && !caps.allSatisfy(capabilities.contains) { return nil }
            let arches = (inc["arches"]?.array ?? []).compactMap(\.string)
            if !arches.isEmpty && !arches.contains(where: { ["amd64", "x86_64", "SCMP_ARCH_X86_64"].contains($0) }) { return nil }
        }
        if let exc = r["excludes"] {
            let caps = try (exc["caps"]?.array ?? []).compactMap(\.string).map(Capabilities.canonical)
            if caps.contains(where: capabilities.contains) { return nil }
            let arches = (exc["arches"]?.array ?? []).compactMap(\.string)
            if arches.contains(where: { ["amd64", "x86_64", "SCMP_ARCH_X86_64"].contains($0) }) { return nil }
        }
        var args: [Argument] = []
        for (j, arg) in (r["args"]?.array ?? []).enumerated() {
            guard let index = arg["index"]?.int64, (0...5).contains(index),
                  let opName = arg["op"]?.string, let op = Operator(rawValue: opName) else {
                throw SwvmError(.invalidArgument, "\(ctx): args[\(j)] needs an index 0-5 and a known op")
            }
            args.append(Argument(index: UInt32(index), value: try uint64(arg["value"], context: "\(ctx): args[\(j)].value"),
                                 valueTwo: try uint64(arg["valueTwo"], context: "\(ctx): args[\(j)].valueTwo"), op: op))
        }
        return Rule(names: names, action: action, args: args)
    }

    /// An optional array of strings (absent or null: empty); any other
    /// element is an error, not skipped.
    static func strings(_ j: JSON?, context: String) throws -> [String] {
        guard let j, !j.isNull else { return [] }
        guard let items = j.array else { throw SwvmError(.invalidArgument, "\(context): \(j.serialized()) is not an array of strings") }
        return try items.map {
            guard let s = $0.string else { throw SwvmError(.invalidArgument, "\(context): \($0.serialized()) is not a string") }
            return s
        }
    }

    /// An errno a rule returns: 0 to 4095 (the kernel's errno range), never truncated.
    static func errnoRet(_ j: JSON?, context: String) throws -> UInt32? {
        guard let j, !j.isNull else { return nil }
        guard let v = j.int64, (0...4095).contains(v) else {
            throw SwvmError(.invalidArgument, "\(context): \(j.serialized()) is not an errno (0 to 4095)")
        }
        return UInt32(v)
    }

    /// An argument value: absent is 0; a negative integer is its 64-bit
    /// two's complement (the system call sees that). A number the JSON
    /// parser could only keep as a double (a fraction, an exponent, or
    /// beyond 2^64) is refused: it would be rounded.
    static func uint64(_ j: JSON?, context: String) throws -> UInt64 {
        switch j {
        case nil, .null?: return 0
        case .integer(let i)?: return UInt64(bitPattern: i)
        case .unsigned(let u)?: return u
        case let other?: throw SwvmError(.invalidArgument, "\(context): \(other.serialized()) is not an integer from -2^63 to 2^64-1")
        }
    }
}
