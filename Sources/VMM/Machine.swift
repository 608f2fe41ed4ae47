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
public final class Machine {
    public let config: MachineConfig
    public let kvm: KVMSystem
    public let vm: VirtualMachine
    public let memory: GuestMemory
    public let portBus = Bus(name: "port I/O")
    public let mmioBus = Bus(name: "MMIO")
    public let events: EventLoop
    public private(set) var cmdline = KernelCmdline()
    public let isPVMHost: Bool

    private var vcpus: [VCPU] = []
    private var threads: [NativeThread] = []
    /// The loaded kernel; nil for a VM restored from a snapshot.
    private let kernel: LoadedKernel?
    private var restored = false
    private var nextMMIOSlot = 0
    private var nextIRQ = X86Layout.firstDeviceIRQ
    private var serial: Serial8250!
    private var cmos: CMOSClock!
    private let exitEvent: FileDescriptor
    private let state = Locked(RunState())
    private var ownedFDs: [FileDescriptor] = []
    private var virtioTransports: [MMIOTransport] = []
    /// Threads of devices that serve on their own (virtio-9p's file server).
    private var services: [(name: String, profile: SeccompProfile, prepare: () throws -> Void, body: (Int32) -> Void)] = []
    /// What the guest can reach, as attached (for the run's posture).
    public private(set) var attachedDevices: [String] = []
    /// The seccomp filters the VMM's threads loaded: thread, system calls allowed.
    public let confinedThreads = Locked<[(thread: String, allowedSyscalls: Int)]>([])
    /// Every queue's notification eventfd (KVM writes it when the guest
    /// notifies the queue).
    private var queueNotifyFDs: [Int32] = []
    private let panicScanner = PanicScanner()
    private let kickSignal = sys_vcpu_kick_signal()
    /// Called on the vCPU thread for each console line (diagnostics).
    public var onConsoleLine: ((String) -> Void)?
    /// Signals swvm receives while the VM runs (SIGINT, SIGTERM, SIGHUP,
    /// SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH), on the main thread. Return true
    /// when handled (forwarded to the guest); otherwise SIGINT, SIGTERM,
    /// SIGHUP and SIGQUIT stop the VM.
    public var onSignal: ((Int32) -> Bool)?
    /// Pause requests from other threads (see `pause`): the main thread
    /// parks the vCPUs, runs the work, and resumes them.
    private let pauseEvent: FileDescriptor
    /// vCPU threads report "parked" here and wait on `resumeEvent`
    /// (semaphore eventfds: read and write are all their filter allows).
    private let parkedEvent: FileDescriptor
    private let resumeEvent: FileDescriptor
    /// Written when pause work is done (or dropped because the VM ended).
    private let pauseDoneEvent: FileDescriptor

    struct RunState {
        var exit: MachineExit?
        var haltCheckPending = 0
        var haltedVCPUs = Set<Int>()
        var profileRequested = Set<Int>()
        var samples: [[UInt64]] = []
        var emulationFixups: [String: Int] = [:]
        var pauseRequested = false
        var pauseWork: (() -> Void)?
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

    // MARK: devices

    private func addLegacyDevices() throws {
        let serialIRQ = try makeIRQFD(gsi: 4)
        let consoleFD = config.consoleFD
        serial = Serial8250(
            output: { [panicScanner, weak self] byte in
                if let fd = consoleFD {
                    var b = byte
                    _ = write(fd, &b, 1)
                }
                if let line = panicScanner.feed(byte) { self?.onConsoleLine?(line) }
            },
            raiseInterrupt: { var one: UInt64 = 1; _ = write(serialIRQ, &one, 8) })
        try portBus.insert(serial, base: 0x3f8, length: 8)
        try portBus.insert(I8042(onReset: { [weak self] in self?.guestReset() }), base: 0x60, length: 5)
        cmos = CMOSClock()
        try portBus.insert(cmos, base: 0x70, length: 2)
        attachedDevices += ["8250 UART (console)", "i8042 (reset line only)", "CMOS clock (read-only)"]
    }

    /// An eventfd that raises `gsi` when written (KVM_IRQFD).
    public func makeIRQFD(gsi: UInt32) throws -> Int32 {
        let fd = FileDescriptor(try sys("eventfd") { eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK)) })
        try vm.registerIRQFD(eventfd: fd.raw, gsi: gsi)
        ownedFDs.append(fd)
        return fd.raw
    }

    /// An eventfd written by KVM when the guest writes `value` to `address`.
    public func makeIOEventFD(address: UInt64, length: UInt32, value: UInt64?) throws -> Int32 {
        let fd = FileDescriptor(try sys("eventfd") { eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK)) })
        try vm.registerIOEventFD(eventfd: fd.raw, address: address, length: length, datamatch: value)
        ownedFDs.append(fd)
        return fd.raw
    }

    /// Reserves the next virtio-mmio window and IRQ, and announces the
    /// device on the kernel command line (virtio_mmio.device=).
    public func allocateVirtioSlot() throws -> (base: UInt64, irq: UInt32) {
        guard nextIRQ <= X86Layout.lastDeviceIRQ else { throw SwvmError(.invalidArgument, "too many devices") }
        let base = X86Layout.virtioMMIOBase + UInt64(nextMMIOSlot) * X86Layout.virtioMMIOSize
        let irq = nextIRQ
        nextMMIOSlot += 1
        nextIRQ += 1
        try cmdline.append("virtio_mmio.device=4K@0x\(String(base, radix: 16)):\(irq)")
        return (base, irq)
    }

    /// Attaches a virtio device on the next virtio-mmio slot: its register
    /// window, an irqfd for its interrupt, and an ioeventfd per queue so
    /// that queue notifications reach the event-loop thread (or the
    /// device's own thread, `adoptNotifier`) without a userspace exit.
    @discardableResult
    public func addVirtioDevice(_ device: VirtioDevice, description: String? = nil) throws -> MMIOTransport {
        let (base, irq) = try allocateVirtioSlot()
        let irqfd = try makeIRQFD(gsi: irq)
        let transport = MMIOTransport(device: device, memory: memory, raiseIRQ: {
            var one: UInt64 = 1
            _ = write(irqfd, &one, 8)
        })
        try mmioBus.insert(transport, base: base, length: X86Layout.virtioMMIOSize)
        for q in 0..<device.queueSizes.count {
            let efd = try makeIOEventFD(address: base + 0x50, length: 4, value: UInt64(q))
            queueNotifyFDs.append(efd)
            if device.adoptNotifier(efd, queue: q) { continue }
            try events.add(fd: efd, events: UInt32(EPOLLIN.rawValue)) { [weak device] _ in
                var v: UInt64 = 0
                _ = read(efd, &v, 8)
                device?.queueNotified(q)
            }
        }
        virtioTransports.append(transport)
        attachedDevices.append(description ?? "virtio device type \(device.deviceType)")
        return transport
    }

    /// A thread of its own for a device's server, started with the vCPUs
    /// under `profile` (failing to load it ends the VM, as for the other
    /// threads) and reported in `confinedThreads`. `prepare` runs on the
    /// thread before the filter (for steps the filter forbids, such as
    /// dropping this thread's capabilities); a failure ends the VM. `body`
    /// returns when its argument, an eventfd, becomes readable: the VM has ended.
    public func addServiceThread(name: String, profile: SeccompProfile, prepare: @escaping () throws -> Void = {},
                                 body: @escaping (_ stop: Int32) -> Void) {
        services.append((name, profile, prepare, body))
    }

    /// Replaces how the posture describes an attached device (once the run
    /// has given it what it serves).
    public func describe(_ transport: MMIOTransport, as text: String) {
        guard let i = virtioTransports.firstIndex(where: { $0 === transport }) else { return }
        let offset = attachedDevices.count - virtioTransports.count
        attachedDevices[offset + i] = text
    }

    /// Feeds the guest's serial console (host terminal input).
    public func serialInput(_ bytes: [UInt8]) { serial.enqueueInput(bytes) }

    // MARK: boot structures

    private func buildDefaultCmdline() throws {
        if !config.replaceDefaultCmdline {
            // reboot=k: reset through the i8042, which this VMM sees.
            // panic=-1: reboot at once on a panic instead of spinning.
            try cmdline.append("console=ttyS0 reboot=k panic=-1 i8042.noaux tsc=reliable no_timer_check")
            // noreplace-smp: a one-vCPU guest would otherwise rewrite every
            // LOCK prefix in the kernel text at boot, one text_poke each.
            try cmdline.append("noreplace-smp")
            if config.quiet { try cmdline.append("quiet loglevel=1") }
            let profile = config.cpuProfile.kernelParameters
            if !profile.isEmpty { try cmdline.append(profile.joined(separator: " ")) }
            // Tell the kernel the TSC frequency: calibrating it against the
            // PIT fails when the kernel is emulated, and leaves the guest on
            // the 10 ms jiffies clock; it also skips the delay-loop calibration.
            if let khz = vcpus.first?.tscKHz { try cmdline.append("tsc_early_khz=\(khz)") }
        }
        if !config.extraCmdline.isEmpty { try cmdline.append(config.extraCmdline) }
    }

    private func writeBootStructures() throws {
        guard let kernel else { throw SwvmError(.internalError, "no kernel loaded to boot") }
        var zeroPage = ZeroPage(setupHeader: kernel.setupHeader)
        let cmd = cmdline.bytes
        try memory.writeBytes(cmd, at: X86Layout.cmdlineStart)
        zeroPage.setCommandLine(address: X86Layout.cmdlineStart, size: cmd.count)
        if let bytes = config.initrdBytes {
            let r = try InitrdLoader.load(bytes: bytes, into: memory, above: kernel.highestAddress)
            zeroPage.setInitrd(address: r.address, size: r.size)
        } else if let path = config.initrdPath {
            let r = try InitrdLoader.load(path: path, into: memory, above: kernel.highestAddress)
            zeroPage.setInitrd(address: r.address, size: r.size)
        }
        try zeroPage.setE820(E820.map(memorySize: config.memoryBytes))
        try memory.writeBytes(zeroPage.bytes, at: X86Layout.zeroPageStart)
        try PageTables.write(into: memory)
        try GDT.write(into: memory)
        // Always an MP table, even for one vCPU: without one Linux scans the
        // BIOS area for it 16 bytes at a time, an early_memremap() each,
        // which takes seconds when the guest kernel is emulated.
        try MPTable.write(cpus: config.vcpus, into: memory)
        try configureVCPUs()
        try VCPUSetup.configureBoot(vcpus[0], entry: kernel.entry)
    }

    private func configureVCPUs() throws {
        let supported = try kvm.supportedCPUID()
        for vcpu in vcpus {
            let cpuid = CPUIDNormalizer.normalize(supported, .init(
                vcpuID: vcpu.id, vcpuCount: config.vcpus, hideHypervisorLeaves: config.cpuProfile.hidesHypervisorLeaves))
            try VCPUSetup.configureCommon(vcpu, cpuid: cpuid)
        }
    }

    // MARK: snapshots

    /// The TSC rate of this host's vCPUs, which a snapshot needs unchanged
    /// (KVM cannot scale it on every host).
    public var tscKHz: UInt32 { vcpus.first?.tscKHz ?? 0 }

    /// Saves the vCPUs, the VM (irqchip, PIT, clock) and every device.
    /// Only while paused (inside a `pause` work item), or before `run`.
    public func captureState() throws -> [UInt8] {
        var w = StateWriter()
        w.u32(tscKHz)
        w.u32(UInt32(vcpus.count))
        let msrs = try kvm.msrIndexList()
        for vcpu in vcpus { try vcpu.saveState(&w, msrIndices: msrs, xsaveSize: vm.xsaveSize) }
        try vm.saveState(&w)
        serial.saveState(&w)
        cmos.saveState(&w)
        w.u32(UInt32(virtioTransports.count))
        for t in virtioTransports {
            w.u32(t.device.deviceType)
            t.saveState(&w)
        }
        return w.bytes
    }

    /// Puts the machine in the state `captureState` saved. The devices must
    /// be the same, added in the same order.
    public func restore(_ state: [UInt8], source: String) throws {
        var r = StateReader(state, source: source)
        let savedTSC = try r.u32()
        guard savedTSC == tscKHz else {
            throw SwvmError(.invalidImage, "\(source): made on a host whose TSC runs at \(savedTSC) kHz, not \(tscKHz) kHz")
        }
        guard try r.u32() == UInt32(vcpus.count) else { throw SwvmError(.invalidImage, "\(source): made for another vCPU count") }
        try configureVCPUs()
        for vcpu in vcpus { try vcpu.restoreState(&r) }
        try vm.restoreState(&r)
        try serial.restoreState(&r)
        try cmos.restoreState(&r)
        guard try r.u32() == UInt32(virtioTransports.count) else {
            throw SwvmError(.invalidImage, "\(source): made with other devices")
        }
        for t in virtioTransports {
            guard try r.u32() == t.device.deviceType else { throw SwvmError(.invalidImage, "\(source): made with other devices") }
            try t.restoreState(&r)
        }
        guard r.atEnd else { throw SwvmError(.invalidImage, "\(source): unexpected bytes after the device state") }
        // A notification the guest made just before the snapshot lived in
        // an eventfd, which a snapshot does not hold: serve every queue once.
        for fd in queueNotifyFDs {
            var one: UInt64 = 1
            _ = write(fd, &one, 8)
        }
        restored = true
    }

    /// Lends `body` guest RAM as host ranges, for writing a snapshot; the
    /// ranges are valid only during the call.
    public func withMemoryRanges<R>(_ body: ([(UnsafeRawPointer, Int)]) throws -> R) rethrows -> R {
        try memory.withHostRanges { ranges in try body(ranges.map { ($0.baseAddress!, $0.count) }) }
    }

    /// Runs `work` on the main thread while every vCPU is parked outside
    /// KVM_RUN, with its pending I/O completed, and blocks the calling
    /// thread until it is done. Called from the device thread (one caller
    /// at a time), so that no device changes under `work` either. Returns
    /// at once, without running `work`, if the VM is ending.
    public func pause(_ work: @escaping () -> Void) {
        let queued: Bool = state.with { s in
            guard s.exit == nil, s.pauseWork == nil else { return false }
            s.pauseWork = work
            return true
        }
        guard queued else { return }
        var one: UInt64 = 1
        _ = write(pauseEvent.raw, &one, 8)
        var v: UInt64 = 0
        while read(pauseDoneEvent.raw, &v, 8) < 0 && errno == EINTR {}
    }

    /// On the main thread: parks the vCPUs, runs the pause work, resumes.
    private func servePauseRequest() {
        var v: UInt64 = 0
        _ = read(pauseEvent.raw, &v, 8)
        guard let work = state.with({ $0.pauseWork }) else { return }
        let parked = parkVCPUs()
        if parked { work() }
        resumeVCPUs(parked ? vcpus.count : 0)
        releasePauseWaiter()
    }

    private func releasePauseWaiter() {
        let waiting: Bool = state.with { s in
            defer { s.pauseWork = nil }
            return s.pauseWork != nil
        }
        var one: UInt64 = 1
        if waiting { _ = write(pauseDoneEvent.raw, &one, 8) }
    }

    /// Kicks every vCPU and waits until each has parked; false if the VM
    /// ended first.
    private func parkVCPUs() -> Bool {
        state.with { $0.pauseRequested = true }
        kickAll()
        var count = 0
        while count < vcpus.count {
            var p = pollfd(fd: parkedEvent.raw, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 100) > 0 {
                var v: UInt64 = 0
                if read(parkedEvent.raw, &v, 8) == 8 { count += 1 }
            } else if state.with({ $0.exit != nil }) {
                resumeVCPUs(count)
                return false
            } else {
                // A kick can be lost if it lands just as a vCPU clears its
                // immediate-exit flag after an earlier one: kick again.
                kickAll()
            }
        }
        return true
    }

    private func resumeVCPUs(_ count: Int) {
        state.with { $0.pauseRequested = false }
        guard count > 0 else { return }
        var n = UInt64(count)
        _ = write(resumeEvent.raw, &n, 8)
    }

    /// On a vCPU thread after a kick: park until resumed, if asked to.
    private func parkIfRequested() {
        guard state.with({ $0.pauseRequested }) else { return }
        var one: UInt64 = 1
        _ = write(parkedEvent.raw, &one, 8)
        var v: UInt64 = 0
        while read(resumeEvent.raw, &v, 8) < 0 && errno == EINTR {}
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
        sigemptyset(&forwarded)
        for s in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGPIPE] { sigaddset(&forwarded, s) }
        var old = sigset_t()
        pthread_sigmask(SIG_BLOCK, &forwarded, &old)
        defer { pthread_sigmask(SIG_SETMASK, &old, nil) }
        let sigfd = FileDescriptor(try sys("signalfd") { signalfd(-1, &forwarded, Int32(SFD_CLOEXEC)) })
        _ = sys_set_signal_handler(kickSignal, { _ in })

        // What swvm ran to get here (argument parsing, image handling) need
        // not stay resident for the VM's lifetime.
        ProcessMemory.mapOnlyWhatIsUsed()
        do {
            try startThreads()
            try mainLoop(signals: sigfd, profileIntervalMs: profileIntervalMs)
        } catch {
            // Never join threads that were not told to stop.
            stop(.failed(error as? SwvmError ?? SwvmError(.internalError, "\(error)")))
        }
        for t in threads { t.join() }
        threads.removeAll()
        events.stop()
        return state.with { $0.exit } ?? .stopped
    }

    /// The device thread, one thread per vCPU and the devices' service
    /// threads, each under its seccomp filter (a vCPU's names its own
    /// descriptor). A filter that cannot be
    /// loaded is fatal, as in Firecracker: the threads that handle what the
    /// guest does never run unconfined.
    private func startThreads() throws {
        let vcpuFilters = try vcpus.map { try SeccompCompiler.compile(VMMSeccomp.vcpuProfile(vcpuFD: $0.fd.raw), compatArches: false) }
        let deviceFilter = try SeccompCompiler.compile(VMMSeccomp.deviceProfile(), compatArches: false)
        events.onThreadStart = { [weak self] in
            do {
                try VMMSeccomp.confineCurrentThread(deviceFilter)
                self?.confinedThreads.with { $0.append(("device", deviceFilter.allowedSyscalls)) }
            } catch {
                self?.stop(.failed(SwvmError(.systemCall, "the device thread's seccomp filter: \(error)")))
            }
        }
        try events.start()
        for (vcpu, vcpuFilter) in zip(vcpus, vcpuFilters) {
            threads.append(try NativeThread(name: "swvm-vcpu\(vcpu.id)") { [self] in
                do {
                    try VMMSeccomp.confineCurrentThread(vcpuFilter)
                    confinedThreads.with { $0.append(("vCPU \(vcpu.id)", vcpuFilter.allowedSyscalls)) }
                } catch {
                    stop(.failed(SwvmError(.systemCall, "vCPU \(vcpu.id)'s seccomp filter: \(error)")))
                    return
                }
                vcpuLoop(vcpu)
            })
        }
        // After the vCPUs: kickAll finds vCPU i at threads[i].
        for service in services {
            let filter = try SeccompCompiler.compile(service.profile, compatArches: false)
            threads.append(try NativeThread(name: "swvm-\(service.name)") { [self, exitEvent] in
                do {
                    try service.prepare()
                } catch {
                    stop(.failed(error as? SwvmError ?? SwvmError(.systemCall, "the \(service.name) thread: \(error)")))
                    return
                }
                do {
                    try VMMSeccomp.confineCurrentThread(filter)
                    confinedThreads.with { $0.append((service.name, filter.allowedSyscalls)) }
                } catch {
                    stop(.failed(SwvmError(.systemCall, "the \(service.name) thread's seccomp filter: \(error)")))
                    return
                }
                service.body(exitEvent.raw)
            })
        }
    }

    /// Until the VM ends: signals, host stdin for the serial console, pause
    /// requests, halt checks and profile samples.
    private func mainLoop(signals sigfd: FileDescriptor, profileIntervalMs: Int?) throws {
        var stdinOpen = config.consoleInput
        let runStart = Clock.monotonicNanos()
        var trimmed = false
        let haltCheckEveryMs = 200
        var sinceHaltCheck = 0
        let tick = profileIntervalMs ?? haltCheckEveryMs
        while state.with({ $0.exit }) == nil {
            var fds = [pollfd(fd: exitEvent.raw, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: sigfd.raw, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: pauseEvent.raw, events: Int16(POLLIN), revents: 0)]
            if stdinOpen { fds.append(pollfd(fd: 0, events: Int16(POLLIN), revents: 0)) }
            let n = poll(&fds, nfds_t(fds.count), Int32(tick))
            if n < 0 {
                if errno == EINTR { continue }
                throw SwvmError.errno("poll in the VMM's main loop")
            }
            if fds[1].revents & Int16(POLLIN) != 0 {
                var info = signalfd_siginfo()
                if read(sigfd.raw, &info, MemoryLayout<signalfd_siginfo>.size) > 0 {
                    let sig = Int32(info.ssi_signo)
                    let handled = onSignal?(sig) ?? false
                    if !handled && [SIGINT, SIGTERM, SIGHUP, SIGQUIT].contains(sig) { stop(.signal(sig)) }
                }
            }
            if fds[2].revents & Int16(POLLIN) != 0 { servePauseRequest() }
            if stdinOpen, fds.count > 3, fds[3].revents != 0 {
                var buf = [UInt8](repeating: 0, count: 256)
                let got = read(0, &buf, buf.count)
                if got > 0 { serialInput(Array(buf[0..<got])) } else { stdinOpen = false }
            }
            if n == 0 {
                // Once the VM is past its first second, drop the code pages
                // the start-up paths touched (see ProcessMemory).
                if !trimmed && Clock.secondsSince(runStart) > 1 {
                    trimmed = true
                    ProcessMemory.mapOnlyWhatIsUsed()
                }
                sinceHaltCheck += tick
                if let _ = profileIntervalMs { requestProfileSample() }
                if sinceHaltCheck >= haltCheckEveryMs {
                    sinceHaltCheck = 0
                    requestHaltCheck()
                }
            }
        }
    }

    /// The guest asked for a reset: a reboot, or the end of a panic.
    private func guestReset() {
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

    private func kickAll() {
        for (i, vcpu) in vcpus.enumerated() {
            vcpu.requestImmediateExit()
            if i < threads.count { threads[i].signal(kickSignal) }
        }
    }

    private func requestHaltCheck() {
        state.with { s in
            s.haltCheckPending = vcpus.count
            s.haltedVCPUs.removeAll()
        }
        kickAll()
    }

    private func requestProfileSample() {
        state.with { s in s.profileRequested.insert(0) }
        vcpus[0].requestImmediateExit()
        if !threads.isEmpty { threads[0].signal(kickSignal) }
    }

    /// Guest RIPs sampled with `run(profileIntervalMs:)`.
    public var profileSamples: [[UInt64]] { state.with { $0.samples } }
    public var profileSampleCount: Int { state.with { $0.samples.count } }
    /// Emulation failures stepped over or injected, by instruction.
    public var emulationFixups: [String: Int] { state.with { $0.emulationFixups } }

    private func vcpuLoop(_ vcpu: VCPU) {
        var unblock = sigset_t()
        sigemptyset(&unblock)
        sigaddset(&unblock, kickSignal)
        pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
        while state.with({ $0.exit }) == nil {
            do {
                let exit = try vcpu.run()
                try handle(exit, on: vcpu)
            } catch let e as SwvmError {
                stop(.failed(e))
            } catch {
                stop(.failed(SwvmError(.vmFailed, "vCPU \(vcpu.id): \(error)")))
            }
        }
    }

    private func handle(_ exit: VCPUExit, on vcpu: VCPU) throws {
        switch exit {
        case let .io(isWrite, port, size, count, data):
            for i in 0..<count {
                let p = data + i * size
                if isWrite {
                    portBus.write(address: UInt64(port), data: UnsafeRawBufferPointer(start: p, count: size))
                } else if !portBus.read(address: UInt64(port), data: UnsafeMutableRawBufferPointer(start: p, count: size)) {
                    memset(p, 0xff, size)   // nothing there: the bus floats high
                }
            }
        case let .mmio(isWrite, address, length, data):
            if isWrite {
                mmioBus.write(address: address, data: UnsafeRawBufferPointer(start: data, count: length))
            } else if !mmioBus.read(address: address, data: UnsafeMutableRawBufferPointer(start: data, count: length)) {
                memset(data, 0, length)
            }
        case .halt:
            stop(.poweroff)
        case .shutdown:
            stop(panicScanner.message.map { .panic($0) } ?? .tripleFault)
        case .systemEvent(let type):
            switch Int32(type) {
            case KVM_SYSTEM_EVENT_SHUTDOWN: stop(.poweroff)
            case KVM_SYSTEM_EVENT_RESET: guestReset()
            case KVM_SYSTEM_EVENT_CRASH: stop(.panic(panicScanner.message ?? "guest reported a crash"))
            default: stop(.failed(SwvmError(.vmFailed, "unhandled KVM_EXIT_SYSTEM_EVENT type \(type)")))
            }
        case let .internalError(suberror, data, instruction):
            try handleInternalError(vcpu, suberror: suberror, data: data, instruction: instruction)
        case .failEntry(let reason):
            let rip = (try? vcpu.getRegisters().rip) ?? 0
            throw SwvmError(.vmFailed, "vCPU \(vcpu.id): KVM_EXIT_FAIL_ENTRY (hardware reason 0x\(String(reason, radix: 16))) at RIP 0x\(String(rip, radix: 16))")
        case .interrupted:
            try serviceKick(vcpu)
        case .other(let reason):
            let rip = (try? vcpu.getRegisters().rip) ?? 0
            throw SwvmError(.vmFailed, "vCPU \(vcpu.id): unhandled KVM exit reason \(reason) at RIP 0x\(String(rip, radix: 16))")
        }
    }

    /// After a kick: park for a pause, or answer a halt check or a profile sample.
    private func serviceKick(_ vcpu: VCPU) throws {
        parkIfRequested()
        let (checkHalt, sample) = state.with { s -> (Bool, Bool) in
            (s.haltCheckPending > 0 && !s.haltedVCPUs.contains(vcpu.id), s.profileRequested.remove(vcpu.id) != nil)
        }
        if sample, let regs = try? vcpu.getRegisters() {
            // RIP, then kernel-text-looking words from the top of the stack
            // (a "guess" unwind, enough to attribute time to callers).
            var frame = [regs.rip]
            if let stack = try? readGuestVirtual(vcpu, regs.rsp, count: 2048) {
                for i in stride(from: 0, to: stack.count - 7, by: 8) {
                    let w = le64(stack, i)
                    if w >= 0xffff_ffff_8100_0000 && w < 0xffff_ffff_c000_0000 { frame.append(w) }
                }
            }
            state.with { $0.samples.append(frame) }
        }
        guard checkHalt else { return }
        let halted = try vcpu.mpState() == UInt32(KVM_MP_STATE_HALTED)
        let interruptsOff = (try vcpu.getRegisters().rflags & 0x200) == 0
        let allDead: Bool = state.with { s in
            s.haltCheckPending -= 1
            if halted && interruptsOff { s.haltedVCPUs.insert(vcpu.id) }
            return s.haltedVCPUs.count == vcpus.count
        }
        // Halted with interrupts off can never wake: Linux's halt and
        // poweroff end like that when there is no ACPI to power off with.
        if allDead { stop(panicScanner.message.map { .panic($0) } ?? .poweroff) }
    }

    private func handleInternalError(_ vcpu: VCPU, suberror: UInt32, data: [UInt64], instruction: [UInt8]) throws {
        var regs = try vcpu.getRegisters()
        var bytes = instruction
        if bytes.isEmpty { bytes = (try? readGuestVirtual(vcpu, regs.rip, count: 15)) ?? [] }
        let hexBytes = bytes.map { String($0, radix: 16).leftPad(2) }.joined(separator: " ")
        let where_ = "at RIP 0x\(String(regs.rip, radix: 16))"
        guard suberror == UInt32(KVM_INTERNAL_ERROR_EMULATION) else {
            throw SwvmError(.vmFailed, "vCPU \(vcpu.id): KVM_EXIT_INTERNAL_ERROR suberror \(suberror) \(where_), data [\(data.map { "0x" + String($0, radix: 16) }.joined(separator: ", "))]")
        }
        guard config.cpuProfile.handlesEmulationFailures, let fix = EmulationWorkarounds.decide(bytes) else {
            let hint = config.cpuProfile == .host && isPVMHost ? " (this is a PVM host: try --cpu-profile=safe)" : ""
            throw SwvmError(.vmFailed, "vCPU \(vcpu.id): the host could not emulate the guest instruction \(where_) [\(hexBytes)]\(hint)")
        }
        switch fix {
        case .skip(let length):
            regs.rip += UInt64(length)
            try vcpu.setRegisters(regs)
        case .inject(let vector, let length):
            regs.rip += UInt64(length)
            try vcpu.setRegisters(regs)
            var ev = try vcpu.getEvents()
            ev.exception.injected = 1
            ev.exception.nr = vector
            ev.exception.has_error_code = 0
            ev.exception.error_code = 0
            ev.flags = 0
            try vcpu.setEvents(ev)
        }
        let key = bytes.prefix(fixLength(fix)).map { String($0, radix: 16).leftPad(2) }.joined(separator: " ")
        state.with { $0.emulationFixups[key, default: 0] += 1 }
    }

    private func fixLength(_ f: EmulationWorkaround) -> Int {
        switch f { case .skip(let l), .inject(_, let l): return l }
    }

    /// Reads guest-virtual memory through the vCPU's page tables.
    func readGuestVirtual(_ vcpu: VCPU, _ gva: UInt64, count: Int) throws -> [UInt8] {
        var out: [UInt8] = []
        var addr = gva
        while out.count < count {
            let gpa: UInt64
            if let t = vcpu.translate(addr) {
                gpa = t
            } else {
                let sregs = try vcpu.getSpecialRegisters()
                guard let t = PageWalker.translate(addr, cr3: sregs.cr3, memory: memory) else { break }
                gpa = t
            }
            let inPage = Int(min(UInt64(count - out.count), 0x1000 - (addr & 0xfff)))
            guard let bytes = try? memory.readBytes(at: gpa, count: inPage) else { break }
            out += bytes
            addr += UInt64(inPage)
        }
        return out
    }
}

extension String {
    func leftPad(_ width: Int, with c: Character = "0") -> String {
        count >= width ? self : String(repeating: c, count: width - count) + self
    }
}

/// Watches console output for the kernel's panic line, so a panic followed
/// by panic=-1's reboot is reported as a panic, with its reason.
final class PanicScanner {
    private var line: [UInt8] = []
    private let found = Locked<String?>(nil)
    static let marker = Array("Kernel panic - not syncing: ".utf8)

    var message: String? { found.current }

    /// Returns the completed line when `byte` ends one.
    func feed(_ byte: UInt8) -> String? {
        if byte == 0x0a {
            defer { line.removeAll(keepingCapacity: true) }
            if found.current == nil, let r = firstRange(of: PanicScanner.marker, in: line) {
                let msg = String(decoding: line[r.upperBound...], as: UTF8.self).trimmingTrailingControl()
                found.with { $0 = msg }
            }
            return String(decoding: line, as: UTF8.self)
        }
        if line.count < 1024 { line.append(byte) }
        return nil
    }

    private func firstRange(of needle: [UInt8], in hay: [UInt8]) -> Range<Int>? {
        guard hay.count >= needle.count else { return nil }
        for i in 0...(hay.count - needle.count) where hay[i] == needle[0] {
            if Array(hay[i..<(i + needle.count)]) == needle { return i..<(i + needle.count) }
        }
        return nil
    }
}

extension String {
    func trimmingTrailingControl() -> String {
        var s = Substring(self)
        while let last = s.last, last.isWhitespace || last == "\r" { s = s.dropLast() }
        return String(s)
    }
}
