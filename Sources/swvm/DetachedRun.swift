#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import CommandLineOptions
import OCIImage
import OCIRuntime
import RuntimeSpec
import SwvmBase

/// `swvm run -d`: checks the run as a foreground one would (the same
/// options, the same spec, exit 125 on a bad one), records the container
/// in the ServiceStore, starts its monitor (`swvm monitor`) and prints the
/// id once the monitor says the container runs.
struct DetachedRun {
    let command: RunCommand

    init(_ command: RunCommand) { self.command = command }

    func start() throws -> Int32 {
        try checkSupported()
        let id = randomHex(32)
        let hostEnvironment = command.options.env.filter { !$0.contains("=") }.compactMap { key in FS.environment(key).map { "\(key)=\($0)" } }
        let (spec, image) = try DetachedRun.spec(command, id: id, hostEnvironment: hostEnvironment)
        withExtendedLifetime(image) {}
        if command.isolation == .vm { try checkGuestMemory(spec.resources.memory) }
        if let name = command.service.name { try ServiceRecord.checkName(name) }
        var record = ServiceRecord(id: id, name: command.service.name ?? "swvm_\(id.prefix(12))", image: command.image,
                                   command: spec.process.args, isolation: command.isolation.rawValue,
                                   runArguments: DetachedRun.runArguments())
        record.workingDirectory = DetachedRun.currentDirectory()
        record.hostEnvironment = hostEnvironment
        record.autoRemove = command.service.remove
        record.logMaxSize = try command.service.logMaxSize() ?? ServiceRecord.defaultLogMaxSize
        let store = ServiceStore()
        _ = try store.create(record)   // the lock is released here: the monitor takes it
        let report = try makePipe()
        do {
            try MonitorProcess.spawn(id: id, report: report.write.raw)
        } catch {
            try? store.remove(id, force: true)
            throw error
        }
        report.write.close()
        if let error = try MonitorReport.receive(report.read) {
            if (try? store.read(id)) != nil { try? store.remove(id, force: true) }
            throw error
        }
        Log.out(id + "\n")
        return 0
    }

    /// What a detached run cannot do yet. At the container level -t's pty
    /// writes to the log and -i's stdin stays open (Monitor); the VM
    /// level's VMM does not relay either for a detached run yet.
    func checkSupported() throws {
        if command.isolation == .vm && (command.options.tty || command.options.interactive) {
            throw SwvmError(.unsupported, "-d with -t or -i at the VM level is not supported yet (use --isolation=container)")
        }
        if command.probe != nil || command.reportFd != nil {
            throw SwvmError(.unsupported, "-d with --probe or --report-fd is not supported")
        }
    }

    /// The spec of the run, built as a foreground `swvm run` builds it,
    /// with the container's id; `swvm run -d`, the monitor and `swvm exec`
    /// all build it this way. Keep the image while the spec is used (its
    /// cache lock).
    static func spec(_ command: RunCommand, id: String, hostEnvironment: [String]) throws -> (RunSpec, ResolvedImage) {
        let cmd = command.command.first == "--" ? Array(command.command.dropFirst()) : command.command
        let resolved = try ImageSource.resolve(command.image, ref: command.options.ref)
        let lookup: (String) -> String? = { key in
            hostEnvironment.first { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) }
        }
        let spec = try SpecBuilder.build(image: resolved, command: cmd, options: command.options, id: id, hostEnvironment: lookup)
        return (spec, resolved)
    }

    /// This invocation's words after "run" (Swvm.main takes Docker's run
    /// only without runc's global flags, so "run" is the first word).
    static func runArguments() -> [String] {
        Array(CommandLine.arguments.dropFirst(2))
    }

    static func currentDirectory() -> String {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buf, buf.count) != nil else { return "/" }
        return String(cString: buf)
    }
}

/// Starts `swvm monitor ID`: swvm's own binary, exec'd by posix_spawn (no
/// Swift runs in the child), in a new session (a terminal's hangup or ^C
/// never reaches it), with /dev/null as stdio and the report pipe as fd 3.
enum MonitorProcess {
    static let reportFD: Int32 = 3

    static func spawn(id: String, report: Int32) throws {
        // dup2 onto itself would keep FD_CLOEXEC: never hand over fd 3 as 3.
        let source = report == reportFD ? fcntl(report, F_DUPFD_CLOEXEC, 10) : report
        defer { if source != report { close(source) } }
        let path = FS.executablePath()
        do {
            _ = try Spawn.start(path, argv: ["swvm", "monitor", "--report-fd", String(reportFD), id],
                                actions: [.open(0, path: "/dev/null", flags: O_RDWR), .dup(0, to: 1), .dup(0, to: 2),
                                          .dup(source, to: reportFD)],
                                newSession: true)
        } catch {
            throw SwvmError.errno("start the monitor (\(path))", error.errno)
        }
    }
}

/// The hidden `swvm monitor ID` that `swvm run -d` starts (see Monitor).
struct MonitorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "monitor", abstract: "Keep a detached container (started by swvm run -d).", shouldDisplay: false)

    @Option(help: "The pipe to report the start on.") var reportFd: Int32
    @Argument(help: "The container id.") var id: String

    func run() throws {
        let store = ServiceStore()
        let record: ServiceRecord
        do {
            record = try store.read(id)
        } catch {
            MonitorReport.send(reportFd, error as? SwvmError ?? SwvmError(.internalError, "\(error)"))
            throw ExitCode(125)
        }
        _ = chdir(record.workingDirectory)
        let status = Monitor(store: store, id: id).run(record: record, report: reportFd) {
            // A VM's run is built by its VMM (swvm vmm --service ID).
            if record.isolation == Isolation.vm.rawValue { return VMWorkload(id: id) }
            let command = try RunCommand.parse(record.runArguments)
            let (spec, image) = try DetachedRun.spec(command, id: id, hostEnvironment: record.hostEnvironment)
            return ImageWorkload(image: image, workload: ContainerWorkload(spec: spec))
        }
        throw ExitCode(status)
    }
}

/// A workload that keeps its image (and the image's cache lock) while it runs.
struct ImageWorkload: MonitoredWorkload {
    let image: ResolvedImage
    let workload: MonitoredWorkload

    var terminal: Bool { workload.terminal }
    var interactive: Bool { workload.interactive }

    func run(started: @escaping (ProcessIdentity, [String]) -> Void) throws -> Int32 {
        try withExtendedLifetime(image) { try workload.run(started: started) }
    }
}
