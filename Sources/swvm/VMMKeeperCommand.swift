#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import VMMJail

/// The clean-up after a jailed VMM (VMMKeeper.cleanUp): exec'd by its
/// keeper (swvm-vmm-keeper) when the VMM is done or dead, the last image
/// of a foreground `swvm run --isolation=vm` (VMMMonitor); not for users.
struct VMMKeeperCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "vmm-keeper", abstract: "The clean-up after a jailed VMM (internal).",
                                                    shouldDisplay: false)

    @Option var vmm: Int32
    @Option var record: String
    @Option var lease: String
    /// An announced snapshot's directory that was not published.
    @Option var discard: [String] = []
    /// A monitor's (`swvm run --isolation=vm`): the VMM's status, which
    /// this process, `swvm run` itself, exits with.
    @Option var exitStatus: Int32?

    func run() throws {
        VMMKeeper.cleanUp(vmm: vmm, record: record, lease: lease, discard: discard)
        if let exitStatus, exitStatus != 0 { throw ExitCode(exitStatus) }
    }
}
