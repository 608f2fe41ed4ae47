import SwvmBase

/// A seccomp policy in the shape Docker and the OCI runtime spec use: a
/// default action and rules that name system calls, with optional argument
/// conditions. Compiled to BPF by SeccompCompiler (libseccomp); the same
/// filter confines the process in a container and inside the VM, and the
/// VMM's threads get theirs from this model too (without the run's
/// settings: RuntimeSpec parses Docker's and the OCI format into it).
public struct SeccompProfile: Equatable, Sendable {
    public enum Action: Equatable, Sendable {
        case allow, kill, killProcess, trap, log
        case errno(UInt32)
        case trace(UInt32)
    }

    public enum Operator: String, Equatable, Sendable {
        case notEqual = "SCMP_CMP_NE", lessThan = "SCMP_CMP_LT", lessOrEqual = "SCMP_CMP_LE"
        case equal = "SCMP_CMP_EQ", greaterOrEqual = "SCMP_CMP_GE", greaterThan = "SCMP_CMP_GT"
        case maskedEqual = "SCMP_CMP_MASKED_EQ"
    }

    public struct Argument: Equatable, Sendable {
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

    public struct Rule: Equatable, Sendable {
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
}
