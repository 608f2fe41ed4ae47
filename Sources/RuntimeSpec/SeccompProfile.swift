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
        default: throw SwvmError(.invalidArgument, "\(context): unsupported seccomp action '\(s)'")
        }
    }
}

extension SeccompProfile {
    // MARK: Docker / OCI JSON

    /// Parses a profile in Docker's format (also the OCI runtime spec's
    /// linux.seccomp, which lacks includes/excludes). Rules conditioned on
    /// capabilities are kept or dropped for `capabilities`.
    public static func parse(_ json: JSON, capabilities: Set<String>, context: String) throws -> SeccompProfile {
        guard json.object != nil else { throw SwvmError(.invalidArgument, "\(context): seccomp profile is not a JSON object") }
        let defaultErrno = try errnoRet(json["defaultErrnoRet"], context: "\(context): defaultErrnoRet")
        guard let da = json["defaultAction"]?.string else {
            throw SwvmError(.invalidArgument, "\(context): seccomp profile has no defaultAction")
        }
        let defaultAction = try Action.parse(da, errnoRet: defaultErrno, context: context)
        var rules: [Rule] = []
        for (i, r) in (json["syscalls"]?.array ?? []).enumerated() {
            let ctx = "\(context): syscalls[\(i)]"
            var names = (r["names"]?.array ?? []).compactMap(\.string)
            if let n = r["name"]?.string { names.append(n) }
            guard !names.isEmpty else { throw SwvmError(.invalidArgument, "\(ctx): no syscall names") }
            guard let a = r["action"]?.string else { throw SwvmError(.invalidArgument, "\(ctx): no action") }
            let action = try Action.parse(a, errnoRet: try errnoRet(r["errnoRet"], context: "\(ctx): errnoRet"), context: ctx)
            if let inc = r["includes"] {
                let caps = try (inc["caps"]?.array ?? []).compactMap(\.string).map(Capabilities.canonical)
                if !caps.isEmpty && !caps.allSatisfy(capabilities.contains) { continue }
                let arches = (inc["arches"]?.array ?? []).compactMap(\.string)
                if !arches.isEmpty && !arches.contains(where: { ["amd64", "x86_64", "SCMP_ARCH_X86_64"].contains($0) }) { continue }
            }
            if let exc = r["excludes"] {
                let caps = try (exc["caps"]?.array ?? []).compactMap(\.string).map(Capabilities.canonical)
                if caps.contains(where: capabilities.contains) { continue }
                let arches = (exc["arches"]?.array ?? []).compactMap(\.string)
                if arches.contains(where: { ["amd64", "x86_64", "SCMP_ARCH_X86_64"].contains($0) }) { continue }
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
            rules.append(Rule(names: names, action: action, args: args))
        }
        return SeccompProfile(defaultAction: defaultAction, rules: rules)
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
    /// parser could only keep as a double (a fraction, or beyond 2^63) is
    /// refused: it would be rounded.
    static func uint64(_ j: JSON?, context: String) throws -> UInt64 {
        switch j {
        case nil, .null?: return 0
        case .integer(let i)?: return UInt64(bitPattern: i)
        case let other?: throw SwvmError(.invalidArgument, "\(context): \(other.serialized()) is not an integer from -2^63 to 2^63-1")
        }
    }
}
