#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import CommandLineOptions
import SwvmBase
import VMM
import KVM

struct BootCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "boot",
        abstract: "Boot a Linux kernel in a micro-VM and print its console.",
        discussion: """
        The low-level command: boots KERNEL (an ELF vmlinux or a bzImage, entered \
        at its 64-bit entry point) with an optional initrd, prints the guest's \
        serial console, and exits when the guest stops.

        Exit status: 0 when the guest powers off or reboots; 1 when the guest \
        kernel panics or its CPU triple-faults; 125 when swvm itself fails \
        (bad kernel, no /dev/kvm, an exit the VMM cannot handle); 128+N when \
        swvm is stopped by signal N.

        The guest has 256M of memory and one vCPU unless --memory and --cpus \
        say otherwise (--cpus is rounded up, as with run --isolation=vm).
        """)

    @OptionGroup var guest: GuestKernelOptions

    @Option(help: "An initrd (cpio archive) for the kernel to unpack as its root.")
    var initrd: String?

    @Option(help: "Extra kernel command-line parameters (after swvm's own; words after '--' go to init).")
    var cmdline: String = ""

    @Flag(help: "Use --cmdline instead of swvm's default parameters (device parameters are still added).")
    var replaceCmdline = false

    @OptionGroup var size: SizeOptions

    @Flag(help: "Show the kernel's boot messages (default: quiet).")
    var verbose = false

    @Option(help: "Write the console to this file instead of stdout.")
    var consoleLog: String?

    @Flag(help: "Print the kernel command line swvm would use, and exit.")
    var printCmdline = false

    @Option(help: ArgumentHelp("Sample the guest RIP every N ms and write a symbolized profile here.", visibility: .hidden))
    var profile: String?

    func run() throws {
        try runReportingErrors {
            var config = MachineConfig(kernelPath: guest.kernel ?? MachineConfig.defaultKernelPath(),
                                       cpuProfile: guest.cpuProfile.resolved)
            config.initrdPath = initrd
            config.extraCmdline = cmdline
            config.replaceDefaultCmdline = replaceCmdline
            config.memoryBytes = try size.memoryBytes() ?? 256 << 20
            config.vcpus = try size.cpuCount().map { max(1, Int($0.rounded(.up))) } ?? 1
            config.quiet = !verbose
            var logFD: FileDescriptor?
            if let path = consoleLog {
                logFD = try FileDescriptor.open(path, O_WRONLY | O_CREAT | O_TRUNC)
                config.consoleFD = logFD!.raw
            }
            if guest.kernel == nil && !FS.exists(config.kernelPath) {
                throw SwvmError(.notFound, "no guest kernel at \(config.kernelPath): build it with kernel/build.sh or pass --kernel")
            }
            let machine = try Machine(config: config)
            if printCmdline {
                Log.out(machine.cmdline.description + "\n")
                return 0
            }
            let started = Clock.monotonicNanos()
            let exit = try machine.run(profileIntervalMs: profile == nil ? nil : 10)
            if let path = profile {
                try Profiler.write(samples: machine.profileSamples, kernel: config.kernelPath, to: path)
            }
            Log.debug("VM ran \(formatFixed(Clock.secondsSince(started), 2)) s; emulation fix-ups: \(machine.emulationFixups)")
            switch exit {
            case .reset, .poweroff, .stopped: Log.debug(exit.summary)
            case .failed(let e): throw e
            default: Log.error(exit.summary)
            }
            return exit.status
        }
    }
}

extension CPUProfileChoice {
    /// auto: safe on PVM hosts, host elsewhere.
    var resolved: CPUProfile {
        switch self {
        case .auto: return CPUProfile.automatic(isPVMHost: KVMSystem.isPVMHost())
        case .host: return .host
        case .safe: return .safe
        }
    }
}
