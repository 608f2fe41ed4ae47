#if canImport(Glibc)
import Glibc
#endif
import CKVM
import CSyscalls
import KVM
import GuestMemory
import BootLoader
import Devices
import Virtio
import Seccomp
import Snapshot
import SwvmBase
import NativeThreads
import EventLoop

/// A micro-VM: guest memory, the in-kernel irqchip and PIT, the legacy
/// devices (COM1, i8042 reset, CMOS clock), any virtio-mmio devices added
/// before `start`, and one thread per vCPU.
///
/// Life cycle: `init` builds the VM and loads the kernel (or, from a
/// snapshot, maps its memory); the caller adds devices in the same order
/// the snapshot's machine had them, and for a restore calls `restore`;
/// `run()` writes the boot structures (unless restored), starts the vCPUs
/// and blocks until the VM ends, returning how it ended. While it runs,
/// `pause` stops every vCPU so that `captureState` can save the VM.
///
/// @unchecked Sendable: the vCPU, device and service threads share it. Its
/// vars are set while the machine is built, on one thread, before `run`
/// starts any other; after that they are only read. What changes while it
/// runs is behind a lock (`state`, `threads`, `confinedThreads`) or is the
/// devices' own (each guards its state).
public final class Machine: @unchecked Sendable {
    public let config: MachineConfig
    public let kvm: KVMSystem
    public let vm: VirtualMachine
    public let memory: GuestMemory
    public let portBus = Bus(name: "port I/O")
    public let mmioBus = Bus(name: "MMIO")
    public let events: EventLoop
    public internal(set) var cmdline = KernelCmdline()
    public let isPVMHost: Bool

    var vcpus: [VCPU] = []
    /// The vCPU threads (vCPU i at i), then the service threads: locked,
    /// as a vCPU may kick the others (`stop`) while they are still started.
    let threads = Locked<[NativeThread]>([])
    /// The loaded kernel; nil for a VM restored from a snapshot.
    let kernel: LoadedKernel?
    var restored = false
    var nextMMIOSlot = 0
    var nextIRQ = X86Layout.firstDeviceIRQ
    var serial: Serial8250!
    var cmos: CMOSClock!
    let exitEvent: FileDescriptor
    let state = Locked(RunState())
    var ownedFDs: [FileDescriptor] = []
    var virtioTransports: [MMIOTransport] = []
    /// Threads of devices that serve on their own (virtio-9p's file server).
    var services: [ServiceThread] = []
    /// What the guest can reach, as attached (for the run's posture).
    public internal(set) var attachedDevices: [String] = []
    /// The seccomp filters the VMM's threads loaded: thread, system calls allowed.
    public let confinedThreads = Locked<[(thread: String, allowedSyscalls: Int)]>([])
    /// Every queue's notification eventfd (KVM writes it when the guest
    /// notifies the queue).
    var queueNotifyFDs: [Int32] = []
    let panicScanner = PanicScanner()
    let kickSignal = sys_vcpu_kick_signal()
    /// Runs on the main thread when everything is open and before any of
    /// the VM's threads exists: the VMM's jail.
    public var beforeThreads: (() throws -> Void)?
    /// Called on the vCPU thread for each console line (diagnostics).
    public var onConsoleLine: (@Sendable (String) -> Void)?
    /// Signals swvm receives while the VM runs (sys_vmm_forwarded_signals:
    /// every catchable one but the VMM's own), on the main thread. Return true
    /// when handled (forwarded to the guest); otherwise SIGINT, SIGTERM,
    /// SIGHUP and SIGQUIT stop the VM.
    public var onSignal: ((Int32) -> Bool)?
    /// Pause requests from other threads (see `pause`): the main thread
    /// parks the vCPUs, runs the work, and resumes them.
    let pauseEvent: FileDescriptor
    /// vCPU threads report "parked" here and wait on `resumeEvent`
    /// (semaphore eventfds: read and write are all their filter allows).
    let parkedEvent: FileDescriptor
    let resumeEvent: FileDescriptor
    /// Written when pause work is done (or dropped because the VM ended).
    let pauseDoneEvent: FileDescriptor

    struct RunState {
        var exit: MachineExit?
        var haltCheckPending = 0
        var haltedVCPUs = Set<Int>()
        var profileRequested = Set<Int>()
        var samples: [[UInt64]] = []
        var emulationFixups: [String: Int] = [:]
        var pauseRequested = false
        var pauseWork: (@Sendable () -> Void)?
        /// A freeze is asked for (the pause work's vCPUs stay parked), and
        /// how many vCPUs a freeze holds parked (0: none).
        var freezeRequested = false
        var frozenVCPUs = 0
    }

    /// Builds the VM; with `snapshot`, guest RAM is mapped from its memory
    /// image instead of loading the kernel (call `restore` after adding
    /// the devices).
    public init(config: MachineConfig, snapshot: SnapshotFile? = nil) throws {
        guard config.vcpus >= 1 else { throw SwvmError(.invalidArgument, "--cpus must be at least 1") }
        guard config.memoryBytes >= MachineConfig.minimumMemory else {
            throw SwvmError(.invalidArgument, "--memory must be at least \(MachineConfig.minimumMemory >> 20) MiB")
        }
        self.config = config
        isPVMHost = KVMSystem.isPVMHost()
        kvm = try KVMSystem()
        guard config.vcpus <= min(kvm.maxVCPUs, 32) else {
            throw SwvmError(.invalidArgument, "--cpus \(config.vcpus): this host allows at most \(min(kvm.maxVCPUs, 32)) vCPUs")
        }
        vm = try kvm.createVM()
        exitEvent = FileDescriptor(try sys("eventfd") { eventfd(0, Int32(EFD_CLOEXEC)) })
        pauseEvent = FileDescriptor(try sys("eventfd") { eventfd(0, Int32(EFD_CLOEXEC)) })
        parkedEvent = FileDescriptor(try sys("eventfd") { eventfd(0, Int32(EFD_CLOEXEC | EFD_SEMAPHORE)) })
        resumeEvent = FileDescriptor(try sys("eventfd") { eventfd(0, Int32(EFD_CLOEXEC | EFD_SEMAPHORE)) })
        pauseDoneEvent = FileDescriptor(try sys("eventfd") { eventfd(0, Int32(EFD_CLOEXEC)) })
        events = try EventLoop()

        // Memory: RAM below the MMIO gap, the rest above 4 GiB.
        let ranges = X86Layout.memoryRanges(size: config.memoryBytes)
        if let snapshot {
            guard snapshot.header.memorySize == ranges.reduce(0, { $0 + $1.1 }) else {
                throw SwvmError(.invalidImage, "snapshot \(snapshot.directory): made for another memory size")
            }
            memory = try GuestMemory(ranges: ranges, file: snapshot.memory.raw)
        } else {
            memory = try GuestMemory(ranges: ranges)
        }
        let kvmVM = vm
        try memory.registerRegions { slot, region, host in
            try kvmVM.setUserMemoryRegion(slot: slot, guestAddress: region.guestBase, size: region.size, host: host)
        }
        try vm.setTSSAddress(X86Layout.kvmTSSAddress)
        try vm.setIdentityMapAddress(X86Layout.kvmIdentityMapAddress)
        try vm.createIRQChip()
        try vm.createPIT2()

        kernel = snapshot == nil ? try KernelLoader.load(path: config.kernelPath, into: memory) : nil
        try addLegacyDevices()
        try vcpus = (0..<config.vcpus).map { try vm.createVCPU(id: $0) }
        try buildDefaultCmdline()
    }

    /// Lends `body` guest RAM as host ranges, for writing a snapshot, and
    /// the snapshot memory file they are mapped from (MAP_PRIVATE) when the
    /// VM was restored; valid only during the call.
    public func withMemoryRanges<R>(_ body: ([(UnsafeRawPointer, Int)], _ base: Int32?) throws -> R) rethrows -> R {
        try memory.withHostRanges { ranges in try body(ranges.map { ($0.baseAddress!, $0.count) }, memory.backingFile?.raw) }
    }

    // MARK: running

    /// Boots the guest (or resumes the restored one) and blocks until the
    /// VM ends.
    public func run(profileIntervalMs: Int? = nil) throws -> MachineExit {
        if !restored {
            try writeBootStructures()
            Log.debug("kernel command line: \(cmdline)")
        }

        // Signals for the process are read by this thread only (signalfd);
        // vCPU threads keep just the kick signal unblocked.
        var forwarded = sigset_t()
        sys_vmm_forwarded_signals(&forwarded)
        var old = sigset_t()
        pthread_sigmask(SIG_BLOCK, &forwarded, &old)
        defer { pthread_sigmask(SIG_SETMASK, &old, nil) }
        let sigfd = FileDescriptor(try sys("signalfd") { signalfd(-1, &forwarded, Int32(SFD_CLOEXEC)) })
        _ = sys_set_signal_handler(kickSignal, { _ in })

        // What swvm ran to get here (argument parsing, image handling) need
        // not stay resident for the VM's lifetime.
        ProcessMemory.mapOnlyWhatIsUsed()
        do {
            // The threads' filters are compiled (a cache file, or a memfd)
            // before the jail, which leaves no file to open.
            let filters = try compileThreadFilters()
            try beforeThreads?()
            try startThreads(filters)
            // The threads took what they need; this thread needs no
            // capability to serve signals, pauses and snapshots.
            try VMMSeccomp.dropThreadCapabilities()
            try mainLoop(signals: sigfd, profileIntervalMs: profileIntervalMs)
        } catch {
            // Never join threads that were not told to stop.
            stop(.failed(error as? SwvmError ?? SwvmError(.internalError, "\(error)")))
        }
        for t in threads.current { t.join() }
        threads.replace([])
        events.stop()
        return state.with { $0.exit } ?? .stopped
    }

    /// The guest asked for a reset: a reboot, or the end of a panic.
    func guestReset() {
        stop(panicScanner.message.map { .panic($0) } ?? .reset)
    }

    /// Ends the VM (from any thread); the first reason wins.
    public func stop(_ reason: MachineExit) {
        let first: Bool = state.with { s in
            if s.exit != nil { return false }
            s.exit = reason
            return true
        }
        guard first else { return }
        kickAll()
        var one: UInt64 = 1
        _ = write(exitEvent.raw, &one, 8)
        // Parked vCPUs wait on resumeEvent, not on kicks.
        var all = UInt64(vcpus.count)
        _ = write(resumeEvent.raw, &all, 8)
        // A thread waiting for pause work that will not run now is released.
        releasePauseWaiter()
    }

    /// Guest RIPs sampled with `run(profileIntervalMs:)`.
    public var profileSamples: [[UInt64]] { state.with { $0.samples } }
    public var profileSampleCount: Int { state.with { $0.samples.count } }
    /// Emulation failures stepped over or injected, by instruction.
    public var emulationFixups: [String: Int] { state.with { $0.emulationFixups } }
}
