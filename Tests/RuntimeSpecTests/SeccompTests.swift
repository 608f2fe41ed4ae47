#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import RuntimeSpec
@testable import Seccomp
@testable import SwvmBase

@Suite struct SeccompTests {
    @Test func defaultProfileCompiles() throws {
        let profile = DefaultSeccompProfile.profile(capabilities: Capabilities.dockerDefault)
        let filter = try SeccompCompiler.compile(profile)
        #expect(filter.program.count % 8 == 0)
        #expect(filter.allowedSyscalls > 250)
        #expect(filter.unknownNames.isEmpty)
        #expect(!profile.allowedNames.contains("mount"))
        #expect(!profile.allowedNames.contains("kexec_load"))
        // CAP_SYS_ADMIN brings mount and friends, as in Docker's profile.
        #expect(DefaultSeccompProfile.profile(capabilities: ["SYS_ADMIN"]).allowedNames.contains("mount"))
        let native = try SeccompCompiler.compile(profile, compatArches: false)
        #expect(native.instructionCount < filter.instructionCount)
    }

    @Test func dockerFormatProfilesParse() throws {
        let json = try JSON.parse(#"""
        {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
         "syscalls": [
           {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
           {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
           {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}
         ]}
        """#)
        let p = try SeccompProfile.parse(json, capabilities: ["CHOWN"], context: "test")
        #expect(p.defaultAction == .errno(38))
        #expect(p.rules.count == 2)
        #expect(p.allowedNames == ["read", "write", "exit_group", "personality"])
        #expect(p.rules[1].args == [.init(index: 0, value: 8, op: .equal)])
        _ = try SeccompCompiler.compile(p)
        #expect(throws: SwvmError.self) { try SeccompProfile.parse(try JSON.parse(#"{"syscalls": []}"#), capabilities: [], context: "t") }
        #expect(throws: SwvmError.self) {
            try SeccompProfile.parse(try JSON.parse(#"{"defaultAction": "SCMP_ACT_NOPE"}"#), capabilities: [], context: "t")
        }
    }

    /// runtime-tools' default profile (and Docker's older one) gives
    /// personality three conditions on argument 0: libseccomp refuses them
    /// in one rule; they are OR'ed, one rule each, as runc and crun do.
    @Test func conditionsOnOneArgumentAreAlternatives() throws {
        let json = try JSON.parse(#"""
        {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
         "syscalls": [
           {"names": ["read", "exit_group"], "action": "SCMP_ACT_ALLOW"},
           {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [
             {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
             {"index": 0, "value": 4294967295, "op": "SCMP_CMP_EQ"}]}
         ]}
        """#)
        let p = try SeccompProfile.parse(json, capabilities: [], context: "test")
        let three = try SeccompCompiler.compileUncached(p)
        var one = p
        one.rules[1].args = [p.rules[1].args[0]]
        let single = try SeccompCompiler.compileUncached(one)
        // Three alternatives compare three values: a longer program.
        #expect(three.instructionCount > single.instructionCount)
        #expect(three.allowedSyscalls == 3)
        // Conditions on different arguments stay one rule (AND).
        #expect(SeccompCompiler.argumentSets([.init(index: 0, value: 1, op: .equal), .init(index: 1, value: 2, op: .equal)]).count == 1)
    }
}
