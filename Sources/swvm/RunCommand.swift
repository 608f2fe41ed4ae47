#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import CommandLineOptions
import Compare
import ContainerRuntime
import MicroVM
import OCIImage
import RuntimeSpec
import SwvmBase
import VMMJail

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a command from an image in a container or a micro-VM.",
        discussion: """
        IMAGE is a directory: an OCI image layout (umoci, skopeo, buildah), an OCI \
        runtime bundle (config.json + rootfs/), or a plain root filesystem. The \
        process comes from the image and is overridden as with docker run: \
        COMMAND replaces Cmd, --entrypoint replaces Entrypoint, and so on.

        Exit status: the process's own, or 128+N when it is killed by signal N; \
        125 when swvm fails, 126 when the command cannot be run, 127 when it is \
        not found.
        """)

    @Option(help: "Isolation level: container (namespaces, cgroups, seccomp) or vm (a micro-VM).")
    var isolation: Isolation = .container

    @OptionGroup var options: RunOptions
    @OptionGroup(title: "Detached runs") var service: ServiceOptions
    @OptionGroup(title: "VM options") var vmOptions: VMRunOptions

    @Option(help: ArgumentHelp("Write a JSON report of the run to this file descriptor (swvm compare).", visibility: .hidden))
    var reportFd: Int32?

    @Option(help: ArgumentHelp("Run swvm compare's probe instead of the command, with this time budget in seconds.", visibility: .hidden))
    var probe: Double?

    @Option(help: ArgumentHelp("With --probe: also time TCP requests to this ADDRESS:PORT (swvm compare --network bridge).", visibility: .hidden))
    var probeConnect: String?

    @Option(name: .customLong("monitored-vmm"), help: ArgumentHelp("Run as the VMM of this run's monitor (set by swvm run itself: ID:UID:FD).", visibility: .private))
    var monitoredVMM: String?

    @Argument(help: "The image directory.")
    var image: String

    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments (after '--' or after IMAGE).")
    var command: [String] = []

    func run() throws {
        if service.detach { return try runReportingErrors { try DetachedRun(self).start() } }
        try runReportingErrors {
            try service.checkForeground()
            let link = try monitoredVMMLink()
            var cmd = command.first == "--" ? Array(command.dropFirst()) : command
            if let budget = probe { cmd = [RunSpec.probePath, formatFixed(budget, 2), probeConnect ?? "-"] }
            let resolved = try ImageSource.resolve(image, ref: options.ref)
            defer { withExtendedLifetime(resolved) {} }   // its cache lock, for the whole run
            var spec = try SpecBuilder.build(image: resolved, command: cmd, options: options, id: link?.id ?? randomHex(32))
            if probe != nil {
                spec.probe = try ProbeBinary.locate()
                // The probe reads no stdin and writes JSON for swvm compare to a pipe.
                spec.terminal = false
                spec.interactive = false
                // With -v, the probe also times its file cycle on the first volume.
                if let volume = spec.mounts.first(where: { if case .bind = $0.kind { return true }; return false }) {
                    spec.process.args.append(volume.destination)
                }
            }
            switch isolation {
            case .container:
                if spec.network == .namespace {
                    throw SwvmError(.unsupported, "--network ns:PATH applies to --isolation=vm (a container joins a namespace by path through config.json)")
                }
                let result = try Container(spec: spec).run()
                if let fd = reportFd {
                    RunReport(isolation: "container", status: result.status, execNanos: result.execNanos,
                              endNanos: Clock.monotonicNanos(), swvmPeakRSS: RunReport.selfPeakRSS(),
                              workloadPeak: result.cgroupPeakMemory, guestMemoryTouched: nil, guestMemorySize: nil,
                              workloadPID: UInt32(result.hostPID),
                              posture: .init(sharesHostKernel: true, namespaces: result.namespaces,
                                             capabilities: spec.capabilities.sorted(), seccompAllowedSyscalls: result.seccompAllowedSyscalls,
                                             noNewPrivileges: spec.noNewPrivileges,
                                             devices: result.devices,
                                             maskedPaths: result.confinedPaths?.masked ?? [],
                                             readOnlyPaths: result.confinedPaths?.readOnly ?? [],
                                             vmmConfinement: nil)).write(to: fd)
                }
                return result.status
            case .vm:
                try checkGuestMemory(spec.resources.memory)
                guard let link else {
                    // The run is checked: this process becomes its monitor,
                    // the VMM its child (VMMMonitor).
                    try VMRunner.checkApplicable(spec)
                    try VMMMonitor.run(id: spec.id, runArguments: DetachedRun.runArguments())
                }
                var vm = MicroVM.VMOptions()
                vm.monitor = link
                if let k = vmOptions.guest.kernel { vm.kernelPath = k }
                vm.cpuProfile = vmOptions.guest.cpuProfile.resolved
                vm.coldBoot = vmOptions.coldBoot
                vm.noTemplate = vmOptions.noTemplate
                vm.keepDescriptors = reportFd.map { [$0] } ?? []
                let result = try VMRunner(spec: spec, image: resolved, options: vm).run()
                if let fd = reportFd {
                    // The VMM's peak and its keeper's: what the run costs the host beside the guest.
                    var report = RunReport(isolation: "vm", status: result.status, execNanos: result.execNanos,
                              endNanos: Clock.monotonicNanos(), swvmPeakRSS: RunReport.selfPeakRSS() + result.keeperPeakRSS, workloadPeak: nil,
                              guestMemoryTouched: result.guestMemoryTouched, guestMemorySize: result.guestMemorySize,
                              workloadPID: result.workloadPID, vmStart: result.start.rawValue, readyNanos: result.guestReadyNanos,
                              posture: .init(sharesHostKernel: false,
                                             namespaces: ["guest kernel"] + result.namespaces.map { "\($0) (in the guest)" },
                                             capabilities: spec.capabilities.sorted(), seccompAllowedSyscalls: result.seccompAllowedSyscalls,
                                             noNewPrivileges: spec.noNewPrivileges, devices: result.devices,
                                             maskedPaths: result.confinedPaths?.masked ?? [],
                                             readOnlyPaths: result.confinedPaths?.readOnly ?? [],
                                             vmmConfinement: result.vmmConfinement, vmmJail: result.vmmJail),
                              threadsStartNanos: result.threadsStartNanos)
                    report.seccompInTemplate = result.seccompInTemplate
                    report.write(to: fd)
                }
                return result.status
            }
        }
    }
}

extension RunCommand {
    /// The VMM child of a foreground VM run's monitor (--monitored-vmm):
    /// PID 1 of its own pid namespace, so the signals its VM forwards are
    /// held first (VMMJail.holdForwardedSignals).
    func monitoredVMMLink() throws -> VMMMonitor.Link? {
        guard let monitoredVMM else { return nil }
        VMMJail.holdForwardedSignals()
        guard isolation == .vm else {
            throw SwvmError(.invalidArgument, "\(VMMMonitor.option) is for --isolation=vm (set by swvm run itself)")
        }
        return try VMMMonitor.Link(parsing: monitoredVMM)
    }
}

/// A guest's RAM is mapped lazily, so its size may exceed the host's free
/// memory (overcommit), but never the host's MemTotal: a guest larger than
/// the machine can never be backed and would only push the host into swap
/// or the OOM killer.
func checkGuestMemory(_ bytes: UInt64?) throws {
    guard let bytes, let total = HostResources.memTotal, bytes > total else { return }
    throw SwvmError(.invalidArgument, "--memory \(ByteSize.format(bytes)): a VM cannot have more memory than the host's MemTotal, \(ByteSize.format(total))")
}
