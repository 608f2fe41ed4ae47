import SwvmBase

/// A seccomp policy in the shape Docker and the OCI runtime spec use: a
/// default action and rules that name system calls, with optional argument
/// conditions. Compiled to BPF by the Seccomp target (libseccomp); the
/// same filter confines the process in a container and inside the VM.
public struct SeccompProfile: Equatable {
    public enum Action: Equatable {
        case allow, kill, killProcess, trap, log
        case errno(UInt32)
        case trace(UInt32)

        static func parse(_ s: String, errnoRet: UInt32?, context: String) throws -> Action {
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

    public enum Operator: String, Equatable {
        case notEqual = "SCMP_CMP_NE", lessThan = "SCMP_CMP_LT", lessOrEqual = "SCMP_CMP_LE"
        case equal = "SCMP_CMP_EQ", greaterOrEqual = "SCMP_CMP_GE", greaterThan = "SCMP_CMP_GT"
        case maskedEqual = "SCMP_CMP_MASKED_EQ"
    }

    public struct Argument: Equatable {
        public var index: UInt32
        public var value: UInt64
        public var valueTwo: UInt64
        public var op: Operator

        public init(index: UInt32, value: UInt64, valueTwo: UInt64 = 0, op: Operator) {
            self.index = index
            self.value = value
            self.valueTwo = valueTwo
            self.op = op
        }
    }

    public struct Rule: Equatable {
        public var names: [String]
        public var action: Action
        public var args: [Argument]

        public init(names: [String], action: Action, args: [Argument] = []) {
            self.names = names
            self.action = action
            self.args = args
        }
    }

    public var defaultAction: Action
    public var rules: [Rule]

    public init(defaultAction: Action, rules: [Rule]) {
        self.defaultAction = defaultAction
        self.rules = rules
    }

    /// System-call names the profile allows (unconditionally or with
    /// argument conditions), for reports.
    public var allowedNames: Set<String> {
        if defaultAction == .allow {
            return []
        }
        var s = Set<String>()
        for r in rules where r.action == .allow { s.formUnion(r.names) }
        return s
    }

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
