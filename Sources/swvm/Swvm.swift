#if canImport(Glibc)
import Glibc
#endif
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
        subcommands: [RunCommand.self, CompareCommand.self, BootCommand.self, CacheCommand.self, DebugCommand.self,
                      VMMKeeperCommand.self])

    /// ArgumentParser's own main, except that a usage error (a bad value,
    /// an unknown or missing option) is one line naming the option and
    /// exit 125, as Docker does, instead of the usage text and exit 64.
    /// Help and --version print as usual.
    static func main() {
        let status: ExitCode
        do {
            var command = try parseAsRoot()
            try command.run()
            status = .success
        } catch let code as ExitCode {
            status = code
        } catch {
            let code = exitCode(for: error)
            guard code == .validationFailure else { exit(withError: error) }
            let message = self.message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid arguments"
            Log.error(message)
            status = ExitCode(125)
        }
        Glibc.exit(status.rawValue)
    }
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
