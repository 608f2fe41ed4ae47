#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import VMMJail

/// The privileged keeper of a jailed VMM (VMMKeeper): started by `swvm run
/// --isolation=vm` itself, with its socket on fd 3; not for users.
struct VMMKeeperCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "vmm-keeper", abstract: "The keeper of a jailed VMM (internal).",
                                                    shouldDisplay: false)

    @Option var vmm: Int32
    @Option var record: String
    @Option var lease: String

    func run() throws {
        let status = VMMKeeper.serve(vmm: vmm, record: record, lease: lease)
        if status != 0 { throw ExitCode(status) }
    }
}
