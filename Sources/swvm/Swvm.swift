#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import OCIRuntime
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
        version: "swvm version 0.1.0\nspec: \(ContainerState.ociVersion)",
        subcommands: [RunCommand.self, CompareCommand.self, BootCommand.self, CacheCommand.self, DebugCommand.self,
                      VMMKeeperCommand.self, VMExecCommand.self, VMExecRelayCommand.self, VMMCommand.self,
                      CreateCommand.self, StartCommand.self, StateCommand.self, KillCommand.self, DeleteCommand.self,
                      ExecCommand.self, PsCommand.self, ListCommand.self, PauseCommand.self, ResumeCommand.self,
                      UpdateCommand.self, FeaturesCommand.self, SpecCommand.self, EventsCommand.self,
                      MonitorCommand.self, ServicePsCommand.self, ServiceExecCommand.self, ServiceKillCommand.self,
                      ServicePauseCommand.self, LogsCommand.self, StopCommand.self, RmCommand.self, UnpauseCommand.self,
                      WaitCommand.self, InspectCommand.self])

    /// ArgumentParser's own main, except that runc's global flags come
    /// first (RuncGlobalOptions), `run` is runc's when it names a bundle or
    /// follows a runc flag, and a usage error (a bad value, an unknown or
    /// missing option) is one line naming the option and exit 125, as
    /// Docker does (exit 1 for runc's commands, as runc), instead of the
    /// usage text and exit 64. Help and --version print as usual.
    static func main() {
        var arguments = Array(CommandLine.arguments.dropFirst())
        if let globals = RuncGlobalOptions.split(arguments) {
            RuncGlobalOptions.current = globals
            RuntimeLog.current = globals.makeLog()
            arguments = globals.command
        }
        arguments = DockerVerbs.route(arguments)
        let runc = RuncGlobalOptions.current.given || runcCommandNames.contains(arguments.first ?? "")
        let status: ExitCode
        do {
            var command = try ociRun(arguments) ?? parseDirect(arguments) ?? parseAsRoot(arguments)
            try command.run()
            status = .success
        } catch let code as ExitCode {
            status = code
        } catch {
            let code = exitCode(for: error)
            guard code == .validationFailure else { exit(withError: error) }
            let message = self.message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid arguments"
            if runc { RuntimeLog.current.error(message) } else { Log.error(message) }
            status = ExitCode(runc ? 1 : 125)
        }
        Glibc.exit(status.rawValue)
    }

    /// runc's `run` when the arguments are its (an id, --bundle) and either
    /// name a bundle or follow a runc global flag; nil: Docker's `run`.
    /// runc's parse is tried only when a bundle flag is there at all: a
    /// failed parse builds its error through reflection, which a Docker
    /// run would pay for nothing.
    static func ociRun(_ arguments: [String]) -> ParsableCommand? {
        let bundleFlag = arguments.contains { $0 == "--bundle" || $0 == "-b" || $0.hasPrefix("--bundle=") }
        guard arguments.first == "run", bundleFlag || RuncGlobalOptions.current.given,
              let run = try? OCIRunCommand.parse(Array(arguments.dropFirst())),
              run.flags.bundle != nil || RuncGlobalOptions.current.given else { return nil }
        return run
    }

    /// The subcommand named first, parsed on its own: ArgumentParser's
    /// parse from the root reflects over the whole command tree, a cost
    /// that grows with every command (about 1 ms of a 10 ms container
    /// run). nil (the root's parse) for help, --version and names it
    /// does not know, so their output is ArgumentParser's own.
    static func parseDirect(_ arguments: [String]) throws -> ParsableCommand? {
        guard let name = arguments.first, !arguments.contains(where: { ["-h", "--help", "--version", "--experimental-dump-help"].contains($0) }),
              let sub = configuration.subcommands.first(where: { $0._commandName == name }) else { return nil }
        return try sub.parseAsRoot(Array(arguments.dropFirst()))
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
