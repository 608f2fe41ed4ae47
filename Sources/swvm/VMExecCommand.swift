#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import SwvmBase
import VMControl

/// A process in a running VM through its VMM's control socket, with this
/// command's stdio (VMControl.exec). A thin front for tests and the bench
/// until `swvm exec` (Docker's verb) and OCI exec reach VMs; hidden.
struct VMExecCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "vm-exec", abstract: "Run a process in a running VM (internal).",
                                                    shouldDisplay: false)

    @Option(help: "The VMM's pid (the `swvm run --isolation=vm` process).") var vmmPid: Int32?
    @Option(help: "The VMM's control socket.") var socket: String?
    @Flag(name: .short, help: "Relay stdin.") var interactive = false
    @Flag(name: .short, help: "A pty of this terminal's size.") var tty = false
    @Flag(name: .short, help: "Return once it runs, printing its pid.") var detach = false
    @Option(name: .short, help: "uid[:gid]") var user: String?
    @Option(name: .short, help: "Working directory.") var workdir = "/"
    @Option(name: .short, help: "KEY=VALUE") var env: [String] = []
    @Argument(parsing: .captureForPassthrough) var command: [String]

    func run() throws {
        let path = try socketPath()
        var request = ExecRequest(args: command.first == "--" ? Array(command.dropFirst()) : command, cwd: workdir,
                                  interactive: interactive)
        guard !request.args.isEmpty else { throw ValidationError("vm-exec: no command") }
        request.env += env
        if let user {
            let ids = user.split(separator: ":").map { UInt32($0) }
            guard let uid = ids.first ?? nil, ids.count <= 2, ids.allSatisfy({ $0 != nil }) else { throw ValidationError("vm-exec: -u takes uid[:gid]") }
            request.uid = uid
            request.gid = ids.count == 2 ? ids[1]! : uid
        }
        if tty {
            var ws = winsize()
            request.terminal = ioctl(1, UInt(TIOCGWINSZ), &ws) == 0 ? (ws.ws_row, ws.ws_col) : (24, 80)
        }
        do {
            let status = try VMControl.exec(socket: path, request, detach: detach)
            if detach { print(status) } else if status != 0 { throw ExitCode(status) }
        } catch let e as SwvmError {
            Log.error(e.message)
            throw ExitCode(e.exitStatus)
        } catch let lost as ExecOutputLost {
            Log.error(lost.description)
            throw ExitCode(ExecOutputLost.exitStatus)
        }
    }

    private func socketPath() throws -> String {
        if let socket { return socket }
        guard let pid = vmmPid else { throw ValidationError("vm-exec: --vmm-pid or --socket") }
        guard let path = VMControl.socketPath(vmmPID: pid) else {
            throw ValidationError("vm-exec: no running VM has VMM pid \(pid)")
        }
        return path
    }
}
