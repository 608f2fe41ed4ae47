#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import OCIRuntime
import SwvmBase

/// runc exec: another process in a running container.
struct ExecCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec", abstract: "Run a process in a running container (argv, or --process FILE).",
        discussion: "Exit status: the process's own; 255 when swvm cannot run it, as runc's.")

    @Option(name: [.short, .customLong("process")], help: "A process.json (config.json's process) instead of argv; - is stdin.")
    var process: String?

    @Flag(name: [.short, .long], help: "Give the process a terminal.") var tty = false
    @Option(help: "A Unix socket to send the pty master to.") var consoleSocket: String?
    @Flag(name: [.short, .long], help: "Do not wait for the process.") var detach = false
    @Option(help: "Write the process's pid to this file.") var pidFile: String?
    @Option(help: "The working directory.") var cwd: String?
    @Option(name: [.short, .long], help: "Set an environment variable (NAME=VALUE; repeatable).") var env: [String] = []
    @Option(name: [.short, .long], help: "UID[:GID].") var user: String?
    @Option(name: [.short, .long], help: "Add a capability (CAP_NAME; repeatable).") var cap: [String] = []
    @Flag(help: "Set no_new_privs.") var noNewPrivs = false
    @Option(help: "Pass this many more file descriptors (from 3).") var preserveFds: Int = 0
    @Option(help: ArgumentHelp("Accepted for runc's callers (no SELinux).", visibility: .hidden)) var processLabel: String?
    @Option(help: ArgumentHelp("Accepted for runc's callers (no AppArmor).", visibility: .hidden)) var apparmor: String?

    @Argument(help: "The container id.") var id: String
    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments.") var command: [String] = []

    func run() throws {
        var o = ExecOptions()
        o.processFile = process
        o.args = command.first == "--" ? Array(command.dropFirst()) : command
        o.tty = tty
        o.consoleSocket = consoleSocket
        o.detach = detach
        o.pidFile = pidFile
        o.cwd = cwd
        o.env = env
        o.user = user
        o.capabilities = cap
        o.noNewPrivileges = noNewPrivs
        o.preserveFDs = preserveFds
        try runOCI(failure: 255) { try $0.exec(id, o) }
    }
}
