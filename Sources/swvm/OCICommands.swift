#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import OCIRuntime
import SwvmBase

/// runc create's flags (shared with runc run).
struct CreateFlags: ParsableArguments {
    @Option(name: [.short, .long], help: "The bundle: config.json and its root (default: the current directory).")
    var bundle: String?

    @Option(help: "Write the container's init pid to this file.")
    var pidFile: String?

    @Option(help: "A Unix socket to send the pty master to (process.terminal).")
    var consoleSocket: String?

    @Option(help: "Pass this many more file descriptors (from 3) to the container.")
    var preserveFds: Int = 0

    @Flag(help: "Accepted, as runc's callers pass it (swvm always uses pivot_root).")
    var noPivot = false

    @Flag(help: "Accepted, as runc's callers pass it (swvm makes no session keyring).")
    var noNewKeyring = false

    var options: CreateOptions {
        var o = CreateOptions(bundle: bundle ?? ".")
        o.pidFile = pidFile
        o.consoleSocket = consoleSocket
        o.preserveFDs = preserveFds
        o.noPivot = noPivot
        o.noNewKeyring = noNewKeyring
        return o
    }

    func validate() throws {
        guard (0...65536).contains(preserveFds) else { throw ValidationError("--preserve-fds \(preserveFds): out of range") }
    }
}

struct CreateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Create a container from an OCI bundle (runc create); `start` runs it.")

    @OptionGroup var flags: CreateFlags
    @Argument(help: "The container id.") var id: String

    func run() throws {
        try runOCI { try $0.create(id, flags.options); return 0 }
    }
}

struct StartCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "start", abstract: "Run a created container's process.")
    @Argument(help: "The container id.") var id: String

    func run() throws {
        try runOCI { try $0.start(id); return 0 }
    }
}

struct StateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "state", abstract: "Print a container's state (JSON).")
    @Argument(help: "The container id.") var id: String

    func run() throws {
        try runOCI {
            Log.out(try $0.state(id).runcJSON.serialized(pretty: true) + "\n")
            return 0
        }
    }
}

struct KillCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kill", abstract: "Send a signal (default TERM; a name or a number) to a container's init.")

    @Flag(name: [.short, .long], help: "Signal every process of the container.") var all = false
    @Argument(help: "The container id.") var id: String
    @Argument(help: "The signal: KILL, SIGKILL or 9.") var signal: String = "TERM"

    func run() throws {
        try runOCI { try $0.kill(id, signal: try SignalName.parse(signal), all: all); return 0 }
    }
}

struct DeleteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete", abstract: "Remove a stopped container (--force: any container, killing it).")

    @Flag(name: [.short, .long], help: "Kill the container first if it runs; no error if it does not exist.") var force = false
    @Argument(help: "The container id.") var id: String

    func run() throws {
        try runOCI { try $0.delete(id, force: force); return 0 }
    }
}

struct PauseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pause", abstract: "Freeze every process of a container.")
    @Argument(help: "The container id.") var id: String

    func run() throws {
        try runOCI { try $0.pause(id); return 0 }
    }
}

struct ResumeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "resume", abstract: "Thaw a paused container.")
    @Argument(help: "The container id.") var id: String

    func run() throws {
        try runOCI { try $0.resume(id); return 0 }
    }
}

/// runc run: only when --bundle or a runc global flag is given (see
/// Swvm.main); otherwise `swvm run IMAGE` is Docker's.
struct OCIRunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Create and start a container from an OCI bundle, wait for it, delete it.")

    @OptionGroup var flags: CreateFlags
    @Flag(name: [.short, .long], help: "Do not wait for the container.") var detach = false
    @Flag(help: "Do not delete the container when it exits.") var keep = false
    @Flag(help: "Accepted, as runc's callers pass it.") var noSubreaper = false
    @Argument(help: "The container id.") var id: String

    func run() throws {
        try runOCI { try $0.run(id, flags.options, detach: detach, keep: keep) }
    }
}
