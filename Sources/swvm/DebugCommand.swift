import ArgumentParser
import RuntimeSpec
import Seccomp
import SwvmBase

/// Hidden diagnostics for developers.
struct DebugCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "debug", abstract: "Developer diagnostics.", shouldDisplay: false)

    @Argument var what: String

    func run() throws {
        switch what {
        case "seccomp":
            for compat in [true, false] {
                let f = try SeccompCompiler.compile(DefaultSeccompProfile.profile(capabilities: Capabilities.dockerDefault), compatArches: compat)
                print("compat=\(compat): \(f.instructionCount) BPF instructions, \(f.allowedSyscalls) syscalls allowed, unknown: \(f.unknownNames)")
            }
        default:
            throw ValidationError("unknown: \(what)")
        }
    }
}
