import ArgumentParser

/// The options of `swvm run` (and of `swvm compare`, which passes them on):
/// Docker's names. Each flag is declared here once, with its help; its value
/// is read where SpecBuilder applies it (SpecBuilder.swift, OptionValues.swift),
/// after the image is resolved, so a bad value is a one-line error naming the
/// option (exit 125) in the same order as before any run starts.
public struct RunOptions: ParsableArguments {
    @Option(help: "Pick the manifest with this org.opencontainers.image.ref.name (OCI image layouts).")
    public var ref: String?

    @Option(help: ArgumentHelp("Override the image's Entrypoint (\"\" clears it).", valueName: "command"))
    public var entrypoint: String?

    @Option(name: [.short, .customLong("env")], help: ArgumentHelp("Set an environment variable (KEY=VALUE, or KEY to copy it from swvm's environment).", valueName: "KEY[=VALUE]"))
    public var env: [String] = []

    @Option(name: .customLong("env-file"), help: ArgumentHelp("Read environment variables from a file (KEY=VALUE lines, # comments).", valueName: "file"))
    public var envFile: [String] = []

    @Option(name: [.short, .long], help: ArgumentHelp("Working directory inside the container.", valueName: "dir"))
    public var workdir: String?

    @Option(name: [.short, .long], help: ArgumentHelp("User to run as: name or uid, with an optional :group or :gid.", valueName: "user[:group]"))
    public var user: String?

    @Option(help: "Host name (default: the first 12 characters of the run's id).")
    public var hostname: String?

    @Flag(name: .customLong("read-only"), help: "Mount the root filesystem read-only.")
    public var readOnly = false

    @Option(help: ArgumentHelp("Mount a tmpfs (Docker's options: size=, mode=, exec, ...).", valueName: "path[:options]"))
    public var tmpfs: [String] = []

    @Option(name: [.short, .long], help: ArgumentHelp("Bind-mount a host directory (in a VM: shared over virtio-9p).", valueName: "host:container[:ro]"))
    public var volume: [String] = []

    @Option(help: ArgumentHelp("Docker's long form of -v and --tmpfs.", valueName: "type=bind,source=HOST,target=CTR[,readonly]"))
    public var mount: [String] = []

    @Flag(name: [.short, .long], help: "Allocate a pseudo-terminal with the terminal's size.")
    public var tty = false

    @Flag(name: [.short, .long], help: "Keep stdin open and pass it to the process.")
    public var interactive = false

    @OptionGroup public var size: SizeOptions

    @Option(name: .customLong("pids-limit"), parsing: .unconditional, help: ArgumentHelp("Maximum number of processes (-1: unlimited).", valueName: "n"))
    public var pidsLimit: Int64?

    @Option(help: ArgumentHelp("A resource limit, e.g. nofile=1024:2048.", valueName: "name=soft[:hard]"))
    public var ulimit: [String] = []

    @Option(name: .customLong("cap-add"), help: ArgumentHelp("Add a capability (or ALL) to Docker's default set.", valueName: "cap"))
    public var capAdd: [String] = []

    @Option(name: .customLong("cap-drop"), help: ArgumentHelp("Drop a capability (or ALL) from Docker's default set.", valueName: "cap"))
    public var capDrop: [String] = []

    @Option(name: .customLong("security-opt"), help: ArgumentHelp("seccomp=PROFILE.json, seccomp=unconfined, or no-new-privileges[=false].", valueName: "opt"))
    public var securityOpt: [String] = []

    @Option(help: ArgumentHelp("Network: none (loopback only, the safe default), bridge (an address on swvm0, NAT, -p), host (containers only) or ns:PATH (a network namespace a plugin made, e.g. /run/netns/NAME; VMs only).", valueName: "mode"))
    public var network = "none"

    @Option(name: [.short, .customLong("publish")], help: ArgumentHelp("Publish a port of the run on the host (--network bridge).", valueName: "[IP:]HOSTPORT:PORT[/tcp|udp]"))
    public var publish: [String] = []

    @Option(help: ArgumentHelp("A name server for the run's /etc/resolv.conf.", valueName: "IP"))
    public var dns: [String] = []

    @Option(name: .customLong("add-host"), help: ArgumentHelp("Add a line to the run's /etc/hosts.", valueName: "NAME:IP"))
    public var addHost: [String] = []

    @Option(help: ArgumentHelp("User namespace: host (default), auto, or HOSTUID:HOSTGID:SIZE (containers only).", valueName: "mode"))
    public var userns: String?

    @Flag(name: .customLong("init"), help: "Run a minimal init as PID 1 that forwards signals and reaps orphans.")
    public var initProcess = false

    @Option(name: .customLong("stop-timeout"), help: ArgumentHelp("Seconds between a first SIGINT/SIGTERM and killing the process (default 10; a second signal kills it at once).", valueName: "seconds"))
    public var stopTimeout: String?

    public init() {}
}

/// --memory and --cpus: a run's limits (at --isolation=vm also the guest's
/// size and vCPU count), and the size of the VM `swvm boot` makes.
public struct SizeOptions: ParsableArguments {
    // .unconditional: "-5" is this option's (bad) value, not an unknown option.
    @Option(name: [.short, .long], parsing: .unconditional, help: ArgumentHelp("Memory limit (e.g. 64m, 1g); in a VM it also sizes the guest.", valueName: "bytes"))
    public var memory: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("CPU limit as a number of CPUs (e.g. 0.5, 2); in a VM, the vCPU count (rounded up).", valueName: "n"))
    public var cpus: String?

    public init() {}
}

/// The guest kernel and its CPU profile: `swvm boot` and `swvm run --isolation=vm`.
public struct GuestKernelOptions: ParsableArguments {
    @Option(help: "Guest kernel, an ELF vmlinux or a bzImage (default: the one kernel/build.sh built, in /var/cache/swvm/kernel/current).")
    public var kernel: String?

    @Option(help: "CPU profile: auto (safe on PVM hosts, host elsewhere), host, or safe.")
    public var cpuProfile: CPUProfileChoice = .auto

    public init() {}
}

public enum CPUProfileChoice: String, ExpressibleByArgument, CaseIterable, Sendable {
    case auto, host, safe
}

/// Options of the micro-VM (run --isolation=vm, compare).
public struct VMRunOptions: ParsableArguments {
    @OptionGroup public var guest: GuestKernelOptions

    @Flag(name: .customLong("cold-boot"), help: "Boot the guest kernel instead of restoring the cached snapshot; read or write no snapshot.")
    public var coldBoot = false

    @Flag(name: .customLong("no-template"), help: "Neither restore nor save an image template (the VM saved after the image's root is built); the boot snapshot is still used.")
    public var noTemplate = false

    public init() {}
}

public enum Isolation: String, ExpressibleByArgument, CaseIterable, Sendable {
    case container, vm
}
