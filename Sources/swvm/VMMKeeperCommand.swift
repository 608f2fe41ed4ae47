#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import VMMJail

/// The clean-up after a jailed VMM (VMMKeeper.cleanUp): exec'd by its
/// keeper (swvm-vmm-keeper) when the VMM is done or dead; not for users.
struct VMMKeeperCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "vmm-keeper", abstract: "The clean-up after a jailed VMM (internal).",
                                                    shouldDisplay: false)

    @Option var vmm: Int32
    @Option var record: String
    @Option var lease: String
    /// An announced snapshot's directory that was not published.
    @Option var discard: String?

    func run() throws {
        VMMKeeper.cleanUp(vmm: vmm, record: record, lease: lease, discard: discard)
    }
}
