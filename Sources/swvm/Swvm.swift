import ArgumentParser
import SwvmBase

@main
struct Swvm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swvm",
        abstract: "Run an OCI image in a container or in a micro-VM, and compare the two.",
        discussion: """
        swvm runs the same image at two isolation levels: a namespaced container \
        (its own OCI runtime) or a micro-VM that swvm boots itself through /dev/kvm.
        """,
        version: "0.1.0",
        subcommands: [RunCommand.self, CompareCommand.self, BootCommand.self, DebugCommand.self])
}

/// Runs a command body, turning SwvmError into one line on stderr and the
/// error's exit status (125, 126, 127), as Docker does.
func runReportingErrors(_ body: () throws -> Int32) throws {
    let status: Int32
    do {
        status = try body()
    } catch let e as SwvmError {
        Log.error(e.message)
        throw ExitCode(e.exitStatus)
    }
    if status != 0 { throw ExitCode(status) }
}
