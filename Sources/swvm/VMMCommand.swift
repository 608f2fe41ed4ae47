#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import MicroVM
import OCIRuntime
import VMMJail
import SwvmBase

/// A VMM (internal, not for users), exec'd by swvm itself: an OCI
/// container's at the VM level (--bundle: MicroVM's VMMProcess, started by
/// `swvm create`), or a detached VM's (--service: `swvm run -d
/// --isolation=vm`'s monitor). Its exit status is the workload's.
struct VMMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "vmm", abstract: "An OCI container's or a detached VM's VMM (internal).",
                                                    shouldDisplay: false)

    @Option var bundle: String?
    @Option var service: String?
    @Option var id: String?
    @Option var execFifo: String?
    @Option var reportFd: Int32
    @Option var kernel: String?

    func run() throws {
        let status: Int32
        if let service {
            status = DetachedVMM.run(id: service, reportFD: reportFd)
        } else if let bundle, let id, let execFifo {
            status = VMMProcess.run(bundle: bundle, id: id, execFIFO: execFifo, reportFD: reportFd, kernel: kernel)
        } else {
            throw ValidationError("vmm: --service ID, or --bundle, --id and --exec-fifo")
        }
        if status != 0 { throw ExitCode(status) }
    }
}

/// The VMM of a detached VM: the run its `swvm run -d` recorded
/// (service.json's words, parsed again: one options model), run as a
/// foreground `swvm run --isolation=vm` runs it. The monitor learns on
/// `reportFD` (MonitorReport) that the workload runs, or why it does not.
enum DetachedVMM {
    static func run(id: String, reportFD: Int32) -> Int32 {
        VMMJail.holdForwardedSignals()   // PID 1 of its own pid namespace
        // Kept through the jail (keepDescriptors), never inherited by the keeper.
        _ = fcntl(reportFD, F_SETFD, FD_CLOEXEC)
        let reported = Reported()
        do {
            let record = try ServiceStore().read(id)
            _ = chdir(record.workingDirectory)
            let command = try RunCommand.parse(record.runArguments)
            let (spec, image) = try DetachedRun.spec(command, id: id, hostEnvironment: record.hostEnvironment)
            var options = command.vmRunOptions()
            options.keepDescriptors = [reportFD]
            options.monitorPipe = reportFD
            options.execZygoteAtStart = true
            let runner = VMRunner(spec: spec, image: image, options: options)
            runner.onStart = { _ in
                reported.done = true
                MonitorReport.send(reportFD, nil)
            }
            return try withExtendedLifetime(image) { try runner.run().status }
        } catch {
            let e = error as? SwvmError ?? SwvmError(.internalError, "\(error)")
            if reported.done { Log.error(e.message) } else { MonitorReport.send(reportFD, e) }
            return e.exitStatus
        }
    }
}

/// Whether the start was reported (set on the VM's thread, read once the run ended).
final class Reported: @unchecked Sendable { var done = false }
