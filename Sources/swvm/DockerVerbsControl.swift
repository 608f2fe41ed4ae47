#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import OCIRuntime
import RuntimeSpec
import SwvmBase

/// `swvm exec ID CMD` for a detached container: the process is built from
/// the container's own `swvm run` words (its user database, capabilities,
/// seccomp profile, environment), with exec's -e, -u, -w, -t and -i, and
/// joins the container's namespaces and cgroup (IsolationEngine.exec).
/// With -d, as `docker exec -d`: it returns once the process runs, which
/// has no stdio of the caller's (/dev/null: Docker attaches none, so its
/// output goes nowhere, whatever the caller's redirections), at every
/// isolation level alike.
struct ServiceExecCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "service-exec", abstract: "Run a command in a detached container (swvm exec).",
        usage: "swvm exec [-d] [-i] [-t] [-e KEY[=VALUE]] [-u USER] [-w DIR] CONTAINER COMMAND...", shouldDisplay: false)

    @Flag(name: [.short, .long], help: "Detached: run the command in the background, its output discarded.") var detach = false
    @Flag(name: [.short, .long], help: "Keep stdin open.") var interactive = false
    @Flag(name: [.short, .long], help: "Allocate a pseudo-terminal.") var tty = false
    @Option(name: [.short, .customLong("env")], help: "Set an environment variable (KEY=VALUE, or KEY from swvm's environment).") var env: [String] = []
    @Option(name: [.short, .long], help: "User: name or uid, with an optional :group or :gid.") var user: String?
    @Option(name: [.short, .long], help: "Working directory inside the container.") var workdir: String?
    @Argument(help: "The container.") var container: String
    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments.") var command: [String] = []

    func run() throws {
        try runReportingErrors {
            let cmd = command.first == "--" ? Array(command.dropFirst()) : command
            guard !cmd.isEmpty else { throw SwvmError(.invalidArgument, "exec: no command given") }
            let store = ServiceStore()
            let record = try store.resolve(container)
            let state = try store.lifecycle.state(record.id)
            guard state.status == .running, let c = state.record, let initProcess = c.initProcess else {
                throw SwvmError(.invalidArgument, "container \(record.name) is \(state.status == .paused ? "paused; unpause it first" : "not running")")
            }
            if detach && tty {
                throw SwvmError(.invalidArgument, "exec -d -t: a detached exec has no terminal to attach to (drop -t)")
            }
            let spec = try execSpec(record, cmd)
            var io = ProcessIO()
            // A detached process gets no stdio of ours, as Docker's: its
            // output is dropped, not left to whatever the caller redirected
            // (at the VM level the VMM, which writes an exec's output, may
            // not write a regular file, and no swvm process stays to copy it).
            let null = interactive && !detach ? nil : try FileDescriptor.open("/dev/null", (detach ? O_RDWR : O_RDONLY) | O_CLOEXEC)
            if let null {
                io.stdin = null.raw
                if detach { io.stdout = null.raw; io.stderr = null.raw }
            }
            let status = try withExtendedLifetime(null) {
                try store.lifecycle.engine(for: IsolationLevel.of(c)).exec(into: initProcess, cgroupPaths: c.cgroupPaths, spec: spec, io: io,
                                                                          detach: detach, pidFile: nil)
            }
            // Detached, the engine's answer is a pid (Docker prints nothing).
            return detach ? 0 : status
        }
    }

    /// The container's spec again, with exec's process: Docker's exec
    /// takes the container's environment, user and directory unless told.
    func execSpec(_ record: ServiceRecord, _ cmd: [String]) throws -> RunSpec {
        _ = chdir(record.workingDirectory)
        var run = try RunCommand.parse(record.runArguments)
        run.command = cmd
        run.options.entrypoint = ""
        run.options.env += env.compactMap { e in e.contains("=") ? e : FS.environment(e).map { "\(e)=\($0)" } }
        if let user { run.options.user = user }
        if let workdir { run.options.workdir = workdir }
        run.options.tty = tty
        run.options.interactive = interactive
        var (spec, image) = try DetachedRun.spec(run, id: record.id, hostEnvironment: record.hostEnvironment)
        withExtendedLifetime(image) {}
        spec.initProcess = false
        // The capability sets the container's process got: bounding,
        // effective and permitted; none inheritable or ambient (Docker's).
        var oci = OCISettings(rootPath: "/")
        let mask = Capabilities.mask(spec.capabilities)
        oci.capabilities.bounding = mask
        oci.capabilities.effective = mask
        oci.capabilities.permitted = mask
        spec.oci = oci
        return spec
    }
}

struct StopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stop", abstract: "Stop detached containers: TERM, then KILL after a timeout.")
    @Option(name: [.short, .customLong("time")], help: "Seconds to wait before KILL.") var time: Double = 10
    @Argument(help: "The containers.") var containers: [String]

    func run() throws {
        guard time >= 0, time <= 86400 else { throw ValidationError("-t \(time): expected 0 to 86400 seconds") }
        try DockerVerbs.each(containers) { store, r in try store.stop(r.id, timeout: time) }
    }
}

struct ServiceKillCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "service-kill", abstract: "Signal detached containers (swvm kill; default KILL).",
        usage: "swvm kill [-s SIGNAL] CONTAINER...", shouldDisplay: false)
    @Option(name: [.short, .long], help: "The signal: a name or a number.") var signal: String = "KILL"
    @Argument(help: "The containers.") var containers: [String]

    func run() throws {
        try DockerVerbs.each(containers) { store, r in
            let sig = try SignalName.parse(signal)
            guard [.running, .paused, .created].contains(store.status(r.id)) else {
                throw SwvmError(.invalidArgument, "container \(r.name) is not running")
            }
            try store.lifecycle.kill(r.id, signal: sig, all: false)
        }
    }
}

struct RmCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove detached containers (-f: kill a running one first).")
    @Flag(name: [.short, .long], help: "Kill a running container first.") var force = false
    @Argument(help: "The containers.") var containers: [String]

    func run() throws {
        try DockerVerbs.each(containers) { store, r in try store.remove(r.id, force: force) }
    }
}

struct ServicePauseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "service-pause", abstract: "Freeze detached containers (swvm pause).",
        usage: "swvm pause CONTAINER...", shouldDisplay: false)
    @Argument(help: "The containers.") var containers: [String]

    func run() throws {
        try DockerVerbs.each(containers) { store, r in try store.pause(r.id) }
    }
}

struct UnpauseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "unpause", abstract: "Thaw paused detached containers.")
    @Argument(help: "The containers.") var containers: [String]

    func run() throws {
        try DockerVerbs.each(containers) { store, r in try store.lifecycle.resume(r.id) }
    }
}
