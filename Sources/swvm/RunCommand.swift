#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Compare
import ContainerRuntime
import MicroVM
import OCIImage
import RuntimeSpec
import SwvmBase

/// The options `swvm run` and `swvm compare` share: Docker's names.
struct ProcessOptions: ParsableArguments {
    @Option(help: "Pick the manifest with this org.opencontainers.image.ref.name (OCI image layouts).")
    var ref: String?

    @Option(help: ArgumentHelp("Override the image's Entrypoint (\"\" clears it).", valueName: "command"))
    var entrypoint: String?

    @Option(name: [.short, .customLong("env")], help: ArgumentHelp("Set an environment variable (KEY=VALUE, or KEY to copy it from swvm's environment).", valueName: "KEY[=VALUE]"))
    var env: [String] = []

    @Option(name: .customLong("env-file"), help: ArgumentHelp("Read environment variables from a file (KEY=VALUE lines, # comments).", valueName: "file"))
    var envFile: [String] = []

    @Option(name: [.short, .long], help: ArgumentHelp("Working directory inside the container.", valueName: "dir"))
    var workdir: String?

    @Option(name: [.short, .long], help: ArgumentHelp("User to run as: name or uid, with an optional :group or :gid.", valueName: "user[:group]"))
    var user: String?

    @Option(help: "Host name (default: the first 12 characters of the run's id).")
    var hostname: String?

    @Flag(name: .customLong("read-only"), help: "Mount the root filesystem read-only.")
    var readOnly = false

    @Option(help: ArgumentHelp("Mount a tmpfs (Docker's options: size=, mode=, exec, ...).", valueName: "path[:options]"))
    var tmpfs: [String] = []

    @Option(name: [.short, .long], help: ArgumentHelp("Bind-mount a host directory (in a VM: shared over virtio-9p).", valueName: "host:container[:ro]"))
    var volume: [String] = []

    @Option(help: ArgumentHelp("Docker's long form of -v and --tmpfs.", valueName: "type=bind,source=HOST,target=CTR[,readonly]"))
    var mount: [String] = []

    @Flag(name: [.short, .long], help: "Allocate a pseudo-terminal with the terminal's size.")
    var tty = false

    @Flag(name: [.short, .long], help: "Keep stdin open and pass it to the process.")
    var interactive = false

    // .unconditional: "-5" is this option's (bad) value, not an unknown option.
    @Option(name: [.short, .long], parsing: .unconditional, help: ArgumentHelp("Memory limit (e.g. 64m, 1g); in a VM it also sizes the guest.", valueName: "bytes"))
    var memory: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("CPU limit as a number of CPUs (e.g. 0.5, 2); in a VM, the vCPU count (rounded up).", valueName: "n"))
    var cpus: String?

    @Option(name: .customLong("pids-limit"), parsing: .unconditional, help: ArgumentHelp("Maximum number of processes (-1: unlimited).", valueName: "n"))
    var pidsLimit: Int64?

    @Option(help: ArgumentHelp("A resource limit, e.g. nofile=1024:2048.", valueName: "name=soft[:hard]"))
    var ulimit: [String] = []

    @Option(name: .customLong("cap-add"), help: ArgumentHelp("Add a capability (or ALL) to Docker's default set.", valueName: "cap"))
    var capAdd: [String] = []

    @Option(name: .customLong("cap-drop"), help: ArgumentHelp("Drop a capability (or ALL) from Docker's default set.", valueName: "cap"))
    var capDrop: [String] = []

    @Option(name: .customLong("security-opt"), help: ArgumentHelp("seccomp=PROFILE.json, seccomp=unconfined, or no-new-privileges[=false].", valueName: "opt"))
    var securityOpt: [String] = []

    @Option(help: ArgumentHelp("Network: none (loopback only, the safe default), bridge (an address on swvm0, NAT, -p) or host (containers only).", valueName: "mode"))
    var network = "none"

    @Option(name: [.short, .customLong("publish")], help: ArgumentHelp("Publish a port of the run on the host (--network bridge).", valueName: "[IP:]HOSTPORT:PORT[/tcp|udp]"))
    var publish: [String] = []

    @Option(help: ArgumentHelp("A name server for the run's /etc/resolv.conf.", valueName: "IP"))
    var dns: [String] = []

    @Option(name: .customLong("add-host"), help: ArgumentHelp("Add a line to the run's /etc/hosts.", valueName: "NAME:IP"))
    var addHost: [String] = []

    @Option(help: ArgumentHelp("User namespace: host (default), auto, or HOSTUID:HOSTGID:SIZE (containers only).", valueName: "mode"))
    var userns: String?

    @Flag(name: .customLong("init"), help: "Run a minimal init as PID 1 that forwards signals and reaps orphans.")
    var initProcess = false

    @Option(name: .customLong("stop-timeout"), help: ArgumentHelp("Seconds between a first SIGINT/SIGTERM and killing the process (default 10; a second signal kills it at once).", valueName: "seconds"))
    var stopTimeout: String?

    /// The options again as `swvm run` arguments (swvm compare passes them on).
    func arguments() -> [String] {
        var a: [String] = []
        if let v = ref { a += ["--ref", v] }
        if let v = entrypoint { a += ["--entrypoint", v] }
        for v in env { a += ["--env", v] }
        for v in envFile { a += ["--env-file", v] }
        if let v = workdir { a += ["--workdir", v] }
        if let v = user { a += ["--user", v] }
        if let v = hostname { a += ["--hostname", v] }
        if readOnly { a.append("--read-only") }
        for v in tmpfs { a += ["--tmpfs", v] }
        for v in volume { a += ["--volume", v] }
        for v in mount { a += ["--mount", v] }
        if tty { a.append("--tty") }
        if interactive { a.append("--interactive") }
        if let v = memory { a += ["--memory", v] }
        if let v = cpus { a += ["--cpus", v] }
        if let v = pidsLimit { a += ["--pids-limit", String(v)] }
        for v in ulimit { a += ["--ulimit", v] }
        for v in capAdd { a += ["--cap-add", v] }
        for v in capDrop { a += ["--cap-drop", v] }
        for v in securityOpt { a += ["--security-opt", v] }
        a += ["--network", network]
        for v in publish { a += ["--publish", v] }
        for v in dns { a += ["--dns", v] }
        for v in addHost { a += ["--add-host", v] }
        if let v = userns { a += ["--userns", v] }
        if initProcess { a.append("--init") }
        if let v = stopTimeout { a += ["--stop-timeout", v] }
        return a
    }

    func runOptions(command: [String]) -> RunOptions {
        var o = RunOptions()
        o.command = command
        o.entrypoint = entrypoint
        o.env = env
        o.envFiles = envFile
        o.workdir = workdir
        o.user = user
        o.hostname = hostname
        o.readOnly = readOnly
        o.tmpfs = tmpfs
        o.volumes = volume
        o.mounts = mount
        o.tty = tty
        o.interactive = interactive
        o.memory = memory
        o.cpus = cpus
        o.pidsLimit = pidsLimit
        o.ulimits = ulimit
        o.capAdd = capAdd
        o.capDrop = capDrop
        o.securityOpts = securityOpt
        o.network = network
        o.publish = publish
        o.dns = dns
        o.addHosts = addHost
        o.userns = userns
        o.initProcess = initProcess
        o.stopTimeout = stopTimeout
        return o
    }
}

/// Options of the micro-VM (run --isolation=vm, compare).
struct VMOptions: ParsableArguments {
    @Option(help: "Guest kernel (default: the one kernel/build.sh built).")
    var kernel: String?

    @Option(help: "CPU profile for the VM: auto, host or safe (see swvm boot --help).")
    var cpuProfile: String = "auto"

    @Flag(name: .customLong("cold-boot"), help: "Boot the guest kernel instead of restoring the cached snapshot; read or write no snapshot.")
    var coldBoot = false

    func arguments() -> [String] {
        (kernel.map { ["--kernel", $0] } ?? []) + ["--cpu-profile", cpuProfile] + (coldBoot ? ["--cold-boot"] : [])
    }
}

enum Isolation: String, ExpressibleByArgument, CaseIterable {
    case container, vm
}

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

    @OptionGroup var options: ProcessOptions
    @OptionGroup(title: "VM options") var vmOptions: VMOptions

    @Option(help: ArgumentHelp("Write a JSON report of the run to this file descriptor (swvm compare).", visibility: .hidden))
    var reportFd: Int32?

    @Option(help: ArgumentHelp("Run swvm compare's probe instead of the command, with this time budget in seconds.", visibility: .hidden))
    var probe: Double?

    @Option(help: ArgumentHelp("With --probe: also time TCP requests to this ADDRESS:PORT (swvm compare --network bridge).", visibility: .hidden))
    var probeConnect: String?

    @Argument(help: "The image directory.")
    var image: String

    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments (after '--' or after IMAGE).")
    var command: [String] = []

    func run() throws {
        try runReportingErrors {
            var cmd = command.first == "--" ? Array(command.dropFirst()) : command
            if let budget = probe { cmd = [RunSpec.probePath, formatFixed(budget, 2), probeConnect ?? "-"] }
            let resolved = try ImageSource.resolve(image, ref: options.ref)
            defer { withExtendedLifetime(resolved) {} }   // its cache lock, for the whole run
            var spec = try SpecBuilder.build(image: resolved, options: options.runOptions(command: cmd))
            if probe != nil {
                spec.probe = try ProbeBinary.locate()
                // With -v, the probe also times its file cycle on the first volume.
                if let volume = spec.mounts.first(where: { if case .bind = $0.kind { return true }; return false }) {
                    spec.process.args.append(volume.destination)
                }
            }
            switch isolation {
            case .container:
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
                var vm = MicroVM.VMOptions()
                if let k = vmOptions.kernel { vm.kernelPath = k }
                vm.cpuProfile = try resolveCPUProfile(vmOptions.cpuProfile)
                vm.coldBoot = vmOptions.coldBoot
                let result = try VMRunner(spec: spec, image: resolved, options: vm).run()
                if let fd = reportFd {
                    RunReport(isolation: "vm", status: result.status, execNanos: result.execNanos,
                              endNanos: Clock.monotonicNanos(), swvmPeakRSS: RunReport.selfPeakRSS(), workloadPeak: nil,
                              guestMemoryTouched: result.guestMemoryTouched, guestMemorySize: result.guestMemorySize,
                              workloadPID: result.workloadPID, vmStart: result.start.rawValue, readyNanos: result.guestReadyNanos,
                              posture: .init(sharesHostKernel: false,
                                             namespaces: ["guest kernel"] + result.namespaces.map { "\($0) (in the guest)" },
                                             capabilities: spec.capabilities.sorted(), seccompAllowedSyscalls: result.seccompAllowedSyscalls,
                                             noNewPrivileges: spec.noNewPrivileges, devices: result.devices,
                                             maskedPaths: result.confinedPaths?.masked ?? [],
                                             readOnlyPaths: result.confinedPaths?.readOnly ?? [],
                                             vmmConfinement: result.vmmConfinement)).write(to: fd)
                }
                return result.status
            }
        }
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
