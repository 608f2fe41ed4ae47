import SwvmBase

/// What to boot and with how much.
public struct MachineConfig {
    public var kernelPath: String
    public var initrdPath: String?
    /// An initrd built in memory (guest-init's initramfs); wins over initrdPath.
    public var initrdBytes: [UInt8]?
    /// Extra kernel parameters from the user, appended after swvm's own.
    public var extraCmdline: String = ""
    /// Replace swvm's default parameters entirely (still adds device ones).
    public var replaceDefaultCmdline = false
    public var memoryBytes: UInt64 = 256 << 20
    public var vcpus: Int = 1
    public var cpuProfile: CPUProfile
    /// Where the guest's serial console goes: an fd, or nil to discard.
    public var consoleFD: Int32? = 1
    /// Whether host stdin feeds the serial console.
    public var consoleInput = false
    /// Kernel log level on the console (quiet boots are faster here).
    public var quiet = true

    public init(kernelPath: String, cpuProfile: CPUProfile) {
        self.kernelPath = kernelPath
        self.cpuProfile = cpuProfile
    }

    public static let minimumMemory: UInt64 = 32 << 20

    /// The guest kernel built by kernel/build.sh, from its cache.
    public static func defaultKernelPath() -> String {
        if let p = FS.environment("SWVM_KERNEL"), !p.isEmpty { return p }
        return Path.join(SwvmPaths.cacheRoot, "kernel/current/vmlinux")
    }
}

/// How a VM ended.
public enum MachineExit: Equatable, Sendable {
    /// The guest asked for a reset (reboot, or poweroff through reboot=k).
    case reset
    /// Every vCPU halted with interrupts off: the guest powered off or halted.
    case poweroff
    /// The guest kernel panicked (message from the console).
    case panic(String)
    /// The vCPU shut down (triple fault).
    case tripleFault
    /// The host side asked the VM to stop (the workload finished).
    case stopped
    /// swvm received a signal and stopped the VM.
    case signal(Int32)
    /// The VMM could not go on (an unhandled exit, an emulation failure).
    case failed(SwvmError)

    /// The exit status of `swvm boot` for this ending.
    public var status: Int32 {
        switch self {
        case .reset, .poweroff, .stopped: return 0
        case .panic, .tripleFault: return 1
        case .signal(let s): return 128 + s
        case .failed(let e): return e.exitStatus
        }
    }

    public var summary: String {
        switch self {
        case .reset: return "guest rebooted (reset through the i8042)"
        case .poweroff: return "guest powered off"
        case .panic(let m): return "guest kernel panicked: \(UntrustedText.escaped(m))"
        case .tripleFault: return "guest vCPU shut down (triple fault)"
        case .stopped: return "VM stopped by the host"
        case .signal(let s): return "stopped by signal \(s)"
        case .failed(let e): return e.message
        }
    }
}
