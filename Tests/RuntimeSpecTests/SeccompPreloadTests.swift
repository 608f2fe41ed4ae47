import CConfinement
import Testing
@testable import RuntimeSpec
@testable import Seccomp

/// swvm_seccomp_allows_template_setup (issue 22): a template's child loads
/// the workload's filter before the template point only if the filter
/// surely allows every system call of the steps after it, whatever their
/// arguments; any doubt means it is loaded after the restore, as before.
struct SeccompPreloadTests {
    static func allows(_ profile: SeccompProfile, terminal: Bool = false, initProcess: Bool = false) throws -> Bool {
        let program = try SeccompCompiler.compileUncached(profile, compatArches: false).program
        return allows(program, terminal: terminal, initProcess: initProcess)
    }

    static func allows(_ program: [UInt8], terminal: Bool = false, initProcess: Bool = false) -> Bool {
        program.withUnsafeBufferPointer {
            swvm_seccomp_allows_template_setup($0.baseAddress, UInt32($0.count), terminal ? 1 : 0, initProcess ? 1 : 0) == 1
        }
    }

    /// One classic BPF instruction, little-endian.
    static func insn(_ code: UInt16, _ jt: UInt8, _ jf: UInt8, _ k: UInt32) -> [UInt8] {
        [UInt8(code & 0xff), UInt8(code >> 8), jt, jf] + (0..<4).map { UInt8((k >> (8 * $0)) & 0xff) }
    }

    @Test func theDefaultProfileAllowsTheStepsAfterTheTemplatePoint() throws {
        let profile = DefaultSeccompProfile.profile(capabilities: Capabilities.dockerDefault)
        #expect(try Self.allows(profile))
        #expect(try Self.allows(profile, terminal: true))
        // --init's PID 1 forks: clone is allowed only for some flags, so the filter waits.
        #expect(try !Self.allows(profile, initProcess: true))
    }

    @Test func aProfileThatDeniesAStepKeepsTheFilterAfterTheRestore() throws {
        for name in ["mkdirat", "execve", "setresuid", "openat2", "prlimit64", "write"] {
            let p = SeccompProfile(defaultAction: .allow, rules: [.init(names: [name], action: .errno(13))])
            #expect(try !Self.allows(p), "\(name)")
        }
        // A step whose verdict depends on an argument is a doubt too.
        let byArgument = SeccompProfile(defaultAction: .allow, rules: [.init(names: ["write"], action: .errno(1), args: [.init(index: 0, value: 99, op: .equal)])])
        #expect(try !Self.allows(byArgument))
        // A denial of something the steps never make does not matter.
        let other = SeccompProfile(defaultAction: .allow, rules: [.init(names: ["mkdir", "swapon"], action: .errno(13))])
        #expect(try Self.allows(other))
        #expect(try !Self.allows(SeccompProfile(defaultAction: .log, rules: [])))
    }

    @Test func programsItCannotFollowAreADoubt() {
        let retAllow = Self.insn(0x06, 0, 0, 0x7fff_0000)
        #expect(Self.allows(retAllow))
        #expect(!Self.allows(Self.insn(0x06, 0, 0, 0x0005_0001)))            // errno
        #expect(!Self.allows(Self.insn(0x20, 0, 0, 16) + retAllow))          // loads an argument
        #expect(!Self.allows(Self.insn(0x20, 0, 0, 8) + retAllow))           // the instruction pointer
        #expect(!Self.allows(Self.insn(0x61, 0, 0, 0) + retAllow))           // the X register
        #expect(!Self.allows(Self.insn(0x05, 0, 0, 5) + retAllow))           // jumps past the end
        #expect(!Self.allows([]))
        #expect(!Self.allows(Array(retAllow.prefix(7))))
        // Checks the architecture: another arch's filter allows nothing here.
        let otherArch = Self.insn(0x20, 0, 0, 4) + Self.insn(0x15, 0, 1, 0x4000_0003) + retAllow + Self.insn(0x06, 0, 0, 0)
        #expect(!Self.allows(otherArch))
        let x86_64 = Self.insn(0x20, 0, 0, 4) + Self.insn(0x15, 0, 1, 0xc000_003e) + retAllow + Self.insn(0x06, 0, 0, 0)
        #expect(Self.allows(x86_64))
    }

    static func allowsZygote(_ profile: SeccompProfile) throws -> Bool {
        let program = try SeccompCompiler.compileUncached(profile, compatArches: false).program
        return program.withUnsafeBufferPointer { swvm_seccomp_allows_exec_zygote($0.baseAddress, UInt32($0.count)) == 1 }
    }

    /// swvm_seccomp_allows_exec_zygote (issue 19): the exec zygote loads the
    /// filter only if it surely allows the zygote's calls, its clone with
    /// its known flags (an argument check on clone's flags is followed),
    /// and the children's steps.
    @Test func theExecZygoteTakesTheDefaultProfileButNoDoubt() throws {
        // The default profile allows clone only without namespace flags: the zygote's clone has none.
        #expect(try Self.allowsZygote(DefaultSeccompProfile.profile(capabilities: Capabilities.dockerDefault)))
        for name in ["clone", "recvmsg", "sendmsg", "setsid", "ioctl", "setresuid", "execve"] {
            let p = SeccompProfile(defaultAction: .allow, rules: [.init(names: [name], action: .errno(1))])
            #expect(try !Self.allowsZygote(p), "\(name)")
        }
        // clone refused for exactly the zygote's flags (CLONE_PARENT | SIGCHLD), or depending on another argument.
        let parent = SeccompProfile(defaultAction: .allow, rules: [.init(names: ["clone"], action: .errno(1),
                                                                         args: [.init(index: 0, value: 0x8000, valueTwo: 0x8000, op: .maskedEqual)])])
        #expect(try !Self.allowsZygote(parent))
        let stack = SeccompProfile(defaultAction: .allow, rules: [.init(names: ["clone"], action: .errno(1), args: [.init(index: 1, value: 0, op: .equal)])])
        #expect(try !Self.allowsZygote(stack))
        // The zygote spawns as posix_spawn does (CLONE_VM | CLONE_VFORK): a filter refusing either is no.
        for flag: UInt64 in [0x100, 0x4000] {
            let p = SeccompProfile(defaultAction: .allow, rules: [.init(names: ["clone"], action: .errno(1),
                                                                        args: [.init(index: 0, value: flag, valueTwo: flag, op: .maskedEqual)])])
            #expect(try !Self.allowsZygote(p), "clone flag \(flag)")
        }
        // The stack is any address: a filter that checks it is a doubt, whatever it allows at 0.
        let stackNonZero = SeccompProfile(defaultAction: .allow, rules: [.init(names: ["clone"], action: .errno(1),
                                                                               args: [.init(index: 1, value: 0, op: .notEqual)])])
        #expect(try !Self.allowsZygote(stackNonZero))
        // A clone check the zygote's flags pass is no doubt.
        let newUser = SeccompProfile(defaultAction: .allow, rules: [.init(names: ["clone"], action: .errno(1),
                                                                          args: [.init(index: 0, value: 0x1000_0000, valueTwo: 0x1000_0000, op: .maskedEqual)])])
        #expect(try Self.allowsZygote(newUser))
    }
}
