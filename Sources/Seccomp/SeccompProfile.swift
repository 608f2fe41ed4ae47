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

    /// seccomp(2)'s SECCOMP_FILTER_FLAG_* bits (OCI linux.seccomp.flags),
    /// given to the kernel when the filter is loaded; not part of the BPF.
    public struct Flags: OptionSet, Equatable, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let tsync = Flags(rawValue: 1)
        public static let log = Flags(rawValue: 2)
        public static let specAllow = Flags(rawValue: 4)
        public static let waitKillableRecv = Flags(rawValue: 32)

        /// The OCI names, as runc and crun accept them.
        public static let names: [(String, Flags)] = [
            ("SECCOMP_FILTER_FLAG_TSYNC", .tsync), ("SECCOMP_FILTER_FLAG_LOG", .log),
            ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", .specAllow), ("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", .waitKillableRecv),
        ]
    }

    /// The OCI architecture names (SCMP_ARCH_*) libseccomp 2.5 knows.
    public static let architectureNames: Set<String> = [
        "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64",
        "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390",
        "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64",
    ]

    public var defaultAction: Action
    public var rules: [Rule]
    /// The ABIs the filter covers (SCMP_ARCH_* names, as OCI's
    /// linux.seccomp.architectures). Empty: the compiler's choice (the
    /// native ABI, plus x86 and x32 with compatArches, as Docker does).
    public var architectures: [String] = []
    public var flags: Flags = []

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
