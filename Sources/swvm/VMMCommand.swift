#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import MicroVM

/// The VMM of an OCI container at the VM level (MicroVM's VMMProcess):
/// exec'd by `swvm create` (VMEngine), not for users. Its exit status is
/// the workload's.
struct VMMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "vmm", abstract: "An OCI container's VMM (internal).",
                                                    shouldDisplay: false)

    @Option var bundle: String
    @Option var id: String
    @Option var execFifo: String
    @Option var reportFd: Int32
    @Option var kernel: String?

    func run() throws {
        let status = VMMProcess.run(bundle: bundle, id: id, execFIFO: execFifo, reportFD: reportFd, kernel: kernel)
        if status != 0 { throw ExitCode(status) }
    }
}
