#if canImport(Glibc)
import Glibc
#endif
import CSeccomp
import SwvmBase

/// A compiled seccomp filter: classic BPF, ready for seccomp(2). Compiled
/// on the host (libseccomp) for both isolation levels: the container
/// runtime loads it before exec, guest-init loads the same bytes inside
/// the VM.
public struct SeccompFilter: Equatable {
    public let program: [UInt8]
    /// System calls (native x86_64) the profile allows.
    public let allowedSyscalls: Int
    /// Names in the profile this kernel's libseccomp does not know (skipped).
    public let unknownNames: [String]

    public var instructionCount: Int { program.count / 8 }

    /// The filter with each `jeq #placeholder` made `jeq #value`: a rule on
    /// a number known only at run time (the process's id) is compiled once,
    /// through the cache, with a placeholder no other rule of the profile
    /// uses, and the number put in here. Throws when the program has no
    /// such comparison (the rule would not hold: fail closed).
    public func replacingConstant(_ placeholder: UInt32, with value: UInt32) throws -> SeccompFilter {
        var program = self.program
        var replaced = 0
        for at in stride(from: 0, to: program.count - 7, by: 8)
        where program[at] == 0x15 && program[at + 1] == 0 && le32(program, at + 4) == placeholder {   // BPF_JMP|BPF_JEQ|BPF_K
            program.replaceSubrange(at + 4 ..< at + 8, with: le32(value))
            replaced += 1
        }
        guard replaced > 0 else {
            throw SwvmError(.internalError, "seccomp: the compiled filter has no comparison with the placeholder 0x\(String(placeholder, radix: 16))")
        }
        return SeccompFilter(program: program, allowedSyscalls: allowedSyscalls, unknownNames: unknownNames)
    }
}

public enum SeccompCompiler {
    /// Compiles through a cache in /var/cache/swvm/seccomp: libseccomp takes
    /// ~10 ms for the default profile, most of a container's start time.
    /// The key covers the whole profile, the ABIs and libseccomp's version.
    public static func compile(_ profile: SeccompProfile, compatArches: Bool = true) throws -> SeccompFilter {
        let dir = SwvmPaths.seccompDir
        let key = SHA256.hash(Array("v2 \(String(cString: cseccomp_version())) \(compatArches)\n\(profile.canonicalText)".utf8))
        let path = Path.join(dir, key + ".bpf")
        let lock = try? CacheItemLock.shared(path)   // read under the cache's lock (and stamped as used)
        defer { withExtendedLifetime(lock) {} }
        if lock != nil, let bytes = try? FS.readFile(path, limit: 1 << 20), bytes.count >= 8, bytes.count % 8 == 0,
           Array(bytes[0..<4]) == Array("SWSC".utf8) {
            let allowed = Int32(bitPattern: le32(bytes, 4))
            return SeccompFilter(program: Array(bytes[8...]), allowedSyscalls: Int(allowed), unknownNames: [])
        }
        let filter = try compileUncached(profile, compatArches: compatArches)
        let allowed = UInt32(bitPattern: Int32(filter.allowedSyscalls))
        let header = Array("SWSC".utf8) + le32(allowed)
        if (try? FS.makeDirectories(dir, mode: 0o700)) != nil {
            try? FS.writeFile(path, header + filter.program, mode: 0o600)
        }
        return filter
    }

    /// `compatArches`: also filter the 32-bit x86 and x32 ABIs (as Docker
    /// does). swvm's guest kernel has neither, so the VM's filter is native
    /// only (smaller, and cheaper to attach).
    public static func compileUncached(_ profile: SeccompProfile, compatArches: Bool = true) throws -> SeccompFilter {
        guard let ctx = cseccomp_new(action(profile.defaultAction)) else {
            throw SwvmError(.internalError, "libseccomp: cannot create a filter")
        }
        defer { cseccomp_release(ctx) }
        if compatArches {
            try addArchitectures(profile.architectures, to: ctx)
        }
        var unknown: [String] = []
        var allowed = Set<String>()
        for rule in profile.rules {
            let act = action(rule.action)
            // A rule with the default action is a no-op that libseccomp refuses.
            if rule.action == profile.defaultAction { continue }
            for name in rule.names {
                var known = true
                for args in argumentSets(rule.args) {
                    let rc = args.withUnsafeBufferPointer { cseccomp_add_rule(ctx, act, name, $0.baseAddress, UInt32(args.count)) }
                    if rc == -EDOM { known = false; break }
                    guard rc == 0 else {
                        throw SwvmError(.invalidArgument, "seccomp rule for \(name): \(errnoText(-rc))")
                    }
                }
                if !known { unknown.append(name); continue }
                if rule.action == .allow { allowed.insert(name) }
            }
        }
        var out: UnsafeMutablePointer<UInt8>? = nil
        var len = 0
        let e = cseccomp_export(ctx, &out, &len)
        guard e == 0, let out else { throw SwvmError(.internalError, "libseccomp: cannot export the filter (\(errnoText(-e)))") }
        defer { cseccomp_free(out) }
        let allowedCount = profile.defaultAction == .allow ? -1 : allowed.count
        return SeccompFilter(program: Array(UnsafeBufferPointer(start: out, count: len)), allowedSyscalls: allowedCount,
                             unknownNames: unknown)
    }

    /// The libseccomp rules one profile rule becomes. Its conditions are
    /// AND'ed, but libseccomp refuses two on the same argument (EINVAL);
    /// then, as runc and crun do, each condition is a rule of its own, so
    /// they are OR'ed: Docker's and runtime-tools' default profiles allow
    /// personality(0), personality(8), ... this way.
    static func argumentSets(_ args: [SeccompProfile.Argument]) -> [[cseccomp_arg]] {
        let converted = args.map { cseccomp_arg(index: $0.index, value: $0.value, value_two: $0.valueTwo, op: op($0.op)) }
        guard Set(args.map(\.index)).count < args.count else { return [converted] }
        return converted.map { [$0] }
    }

    /// The profile's ABIs beside the native one (which the filter always
    /// has, as runc's); none listed: x86 and x32, as Docker's default.
    static func addArchitectures(_ names: [String], to ctx: UnsafeMutableRawPointer) throws {
        if names.isEmpty {
            let r = cseccomp_add_compat_arches(ctx)
            guard r == 0 else { throw SwvmError(.internalError, "libseccomp: cannot add the x86/x32 ABIs (\(errnoText(-r)))") }
            return
        }
        for name in names {
            // "SCMP_ARCH_X86_64" is libseccomp's "x86_64".
            let short = (name.hasPrefix("SCMP_ARCH_") ? String(name.dropFirst(10)) : name).lowercased()
            let r = cseccomp_add_arch(ctx, short)
            if r == -EDOM { throw SwvmError(.invalidArgument, "seccomp architecture \(name): libseccomp does not know it") }
            guard r == 0 else { throw SwvmError(.internalError, "libseccomp: cannot add the ABI \(name) (\(errnoText(-r)))") }
        }
    }

    static func action(_ a: SeccompProfile.Action) -> UInt32 {
        switch a {
        case .allow: return cseccomp_action(Int32(CSECCOMP_ALLOW.rawValue), 0)
        case .errno(let e): return cseccomp_action(Int32(CSECCOMP_ERRNO.rawValue), e)
        case .kill: return cseccomp_action(Int32(CSECCOMP_KILL_THREAD.rawValue), 0)
        case .killProcess: return cseccomp_action(Int32(CSECCOMP_KILL_PROCESS.rawValue), 0)
        case .trap: return cseccomp_action(Int32(CSECCOMP_TRAP.rawValue), 0)
        case .log: return cseccomp_action(Int32(CSECCOMP_LOG.rawValue), 0)
        case .trace(let v): return cseccomp_action(Int32(CSECCOMP_TRACE.rawValue), v)
        }
    }

    static func op(_ o: SeccompProfile.Operator) -> Int32 {
        switch o {
        case .notEqual: return Int32(CSECCOMP_NE.rawValue)
        case .lessThan: return Int32(CSECCOMP_LT.rawValue)
        case .lessOrEqual: return Int32(CSECCOMP_LE.rawValue)
        case .equal: return Int32(CSECCOMP_EQ.rawValue)
        case .greaterOrEqual: return Int32(CSECCOMP_GE.rawValue)
        case .greaterThan: return Int32(CSECCOMP_GT.rawValue)
        case .maskedEqual: return Int32(CSECCOMP_MASKED_EQ.rawValue)
        }
    }
}

extension SeccompProfile {
    /// The whole profile as text, for the cache key: written out rather
    /// than interpolated ("\(profile)"), whose reflection cost about a
    /// millisecond and pulled the runtime's Mirror code into every run.
    var canonicalText: String {
        var text = "default \(defaultAction.canonicalText)\n"
        // Only when set, so the keys of profiles without it stay as they were.
        if !architectures.isEmpty { text += "arches \(architectures.joined(separator: ","))\n" }
        for rule in rules {
            let args = rule.args.map { "\($0.index) \($0.op.rawValue) \($0.value) \($0.valueTwo)" }
            text += "\(rule.action.canonicalText) \(rule.names.joined(separator: ",")) [\(args.joined(separator: ";"))]\n"
        }
        return text
    }
}

extension SeccompProfile.Action {
    var canonicalText: String {
        switch self {
        case .allow: return "allow"
        case .kill: return "kill"
        case .killProcess: return "killProcess"
        case .trap: return "trap"
        case .log: return "log"
        case .errno(let e): return "errno \(e)"
        case .trace(let e): return "trace \(e)"
        }
    }
}
