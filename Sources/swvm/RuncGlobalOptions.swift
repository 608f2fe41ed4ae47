#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import OCIRuntime
import SwvmBase

/// runc's global flags, which come before the command (`swvm --root DIR
/// --log FILE --log-format json create ...`, as conmon and containerd's
/// shim call runc). Those runc callers pass that swvm has no use for are
/// accepted: --rootless, --criu, crun's --cgroup-manager.
struct RuncGlobalOptions: ParsableArguments {
    @Option(help: "Where container state lives (default \(StateStore.defaultRoot)).")
    var root: String?

    @Option(help: "Also write errors and warnings to this file.")
    var log: String?

    @Option(help: "The --log file's format: text or json.")
    var logFormat: String?

    @Flag(help: "Write debug lines to the --log file.")
    var debug = false

    @Flag(help: "Manage cgroups through systemd (refused: swvm manages cgroupfs itself).")
    var systemdCgroup = false

    @Option(help: ArgumentHelp("Accepted for runc's callers (true, false, auto).", visibility: .hidden))
    var rootless: String?

    @Option(help: ArgumentHelp("Accepted for runc's callers (swvm does not checkpoint).", visibility: .hidden))
    var criu: String?

    @Option(help: ArgumentHelp("Accepted for crun's callers: cgroupfs (systemd is refused).", visibility: .hidden))
    var cgroupManager: String?

    /// The command and its arguments.
    @Argument(parsing: .captureForPassthrough)
    var command: [String] = []

    /// Whether any runc flag was given (then `swvm run` is runc's run).
    var given: Bool {
        root != nil || log != nil || logFormat != nil || debug || systemdCgroup || rootless != nil || criu != nil
            || cgroupManager != nil
    }

    /// The flags of this invocation, set once by main before any command runs.
    nonisolated(unsafe) static var current: RuncGlobalOptions = {
        // A parsed value (an unparsed one cannot be read): no flags.
        do { return try parse([]) } catch { fatalError("RuncGlobalOptions: \(error)") }
    }()

    /// Splits argv into the runc flags and the rest; nil when the flags do
    /// not parse (--help, --version, a typo): the command line is then
    /// parsed whole, and its errors come from there.
    static func split(_ arguments: [String]) -> RuncGlobalOptions? {
        guard let first = arguments.first, first.hasPrefix("-") else { return nil }
        return try? parse(arguments)
    }

    /// --log, --log-format and --debug (an unknown format is refused by check()).
    func makeLog() -> RuntimeLog {
        RuntimeLog(path: log, format: RuntimeLog.Format(rawValue: logFormat ?? "text") ?? .text, debug: debug)
    }

    /// Refuses what swvm cannot do.
    func check() throws {
        guard RuntimeLog.Format(rawValue: logFormat ?? "text") != nil else {
            throw SwvmError(.invalidArgument, "--log-format \(logFormat ?? ""): expected text or json")
        }
        if systemdCgroup || cgroupManager == "systemd" {
            let running = FS.isDirectory("/run/systemd/system")
            throw SwvmError(.unsupported, "--systemd-cgroup: swvm manages cgroups through cgroupfs only"
                            + (running ? "" : ", and systemd is not running on this host"))
        }
        if let m = cgroupManager, m != "cgroupfs", m != "disabled" {
            throw SwvmError(.invalidArgument, "--cgroup-manager \(m): expected cgroupfs")
        }
    }

    /// The level comes from the name swvm is called with (a `swvm-vm`
    /// link: the VM level) unless config.json's annotation says.
    func lifecycle() -> Lifecycle {
        var lifecycle = Lifecycle(store: StateStore(root: root ?? StateStore.defaultRoot), engine: ContainerEngine())
        lifecycle.defaultLevel = IsolationLevel.of(programName: CommandLine.arguments.first ?? "swvm")
        return lifecycle
    }
}

/// Runs an OCI command as runc does: an error is exit 1 (or `failure`),
/// its message on stderr and in --log; otherwise exit with `body`'s status.
func runOCI(failure: Int32 = 1, _ body: (Lifecycle) throws -> Int32) throws {
    let status: Int32
    do {
        let globals = RuncGlobalOptions.current
        try globals.check()
        status = try body(globals.lifecycle())
    } catch let e as SwvmError {
        RuntimeLog.current.error(e.message)
        throw ExitCode(failure)
    }
    if status != 0 { throw ExitCode(status) }
}

/// The commands that are runc's (their usage errors are exit 1, as runc's).
let runcCommandNames: Set<String> = ["create", "start", "state", "kill", "delete", "exec", "list", "pause", "resume", "update",
                                     "features", "spec", "ps"]
