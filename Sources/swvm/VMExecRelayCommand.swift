import ArgumentParser
import VMControl

/// The host process an OCI exec at the VM level stands for
/// (ExecRelayProcess): started by `swvm exec`, never by hand; hidden.
struct VMExecRelayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: ExecRelayProcess.command,
                                                    abstract: "Relay an exec in a running VM (internal).", shouldDisplay: false)

    @Option(help: "The VMM's control socket.") var socket: String
    @Flag(help: "stdin is the exec's pty (its size is passed on).") var tty = false

    func run() throws {
        let status = ExecRelayProcess.serve(socket: socket, terminal: tty)
        if status != 0 { throw ExitCode(status) }
    }
}
