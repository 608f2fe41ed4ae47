#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import CConfinement
import Cgroups
import RunRecords
import KVM
import Network
import OCIImage
import RuntimeSpec
import RunSettingsWire
import Seccomp
import SharedDirectory
import Snapshot
import SnapshotCache
import SwvmBase
import Virtio
import VMM
import NativeThreads
import Terminal
import VMMJail

/// How to build the VM for a run.
public struct VMOptions {
    public var kernelPath: String = MachineConfig.defaultKernelPath()
    public var cpuProfile: CPUProfile = .automatic(isPVMHost: KVMSystem.isPVMHost())
    /// Show the guest's console on stderr (SWVM_DEBUG=1 does too).
    public var showConsole = Log.debugEnabled
    /// Boot the kernel instead of restoring a snapshot; read or write none.
    public var coldBoot = false
    /// Neither restore nor save an image template (Template.swift).
    public var noTemplate = false
    /// Descriptors swvm's caller passed that the jailed VMM keeps (--report-fd).
    public var keepDescriptors: [Int32] = []
    /// This process is the VMM child of `swvm run`'s monitor, which took
    /// the run's record and uid lease and keeps it (VMMMonitor); nil: it
    /// does so itself, with its keeper as its child (an OCI container's).
    public var monitor: VMMMonitor.Link?
    /// A detached VM's VMM: the write end of its monitor's report pipe,
    /// which errs once the monitor (the only reader) is gone; the jail
    /// checks it after re-arming the parent-death signal.
    public var monitorPipe: Int32?
    /// Start the guest's exec zygote with the workload (CFG_EXEC_ZYGOTE): a
    /// detached VM's, which is there to be exec'd into; never a foreground
    /// run's (the zygote's start would compete with its workload).
    public var execZygoteAtStart = false
    public init() {}

    /// Guest RAM without --memory (and its minimum), and what is added to
    /// --memory for the guest kernel and guest-init (the workload's cgroup
    /// gets --memory).
    public static let defaultMemory: UInt64 = 128 << 20
    public static let memoryMargin: UInt64 = 64 << 20
    /// What the VMM's cgroup allows beyond guest RAM: the VMM's own memory
    /// and the page cache of the snapshot it writes.
    public static let vmmMemoryMargin: UInt64 = 128 << 20
}

/// How the VM of a run started.
public enum VMStart: String {
    /// Restored from a cached snapshot.
    case warm
    /// Booted, and saved a snapshot for the runs after it.
    case coldSnapshotted = "cold"
    /// Booted without reading or writing a snapshot (--cold-boot, or
    /// another run was writing the snapshot).
    case coldOnly = "cold (no snapshot)"
    /// Restored from an image template (Template.swift): the image's root
    /// already built.
    case template
}

/// What a finished VM run reports.
public struct VMResult {
    public var status: Int32
    /// Monotonic ns when swvm started building the VM, and when guest-init
    /// reported the workload exec'd (host clock, at receipt).
    public var startNanos: UInt64
    /// When guest-init was ready for its settings: it said so (cold), or
    /// the restored VM was about to resume (warm).
    public var guestReadyNanos: UInt64?
    public var execNanos: UInt64?
    public var workloadPID: UInt32?
    /// Guest RAM the host actually backed by the end of the run.
    public var guestMemoryTouched: UInt64
    public var guestMemorySize: UInt64
    public var emulationFixups: [String: Int]
    /// System calls the loaded seccomp filter allows (nil without one; -1
    /// when it allows by default).
    public var seccompAllowedSyscalls: Int?
    public var start: VMStart
    /// The devices the VM was given, and how the VMM's threads were
    /// confined: both as the run applied them.
    public var devices: [String] = []
    public var vmmConfinement = ""
    /// The jail as the keeper read it from /proc while the workload ran.
    public var vmmJail: JSON?
    /// Peak RSS of the VMM's keeper (the jailed VMM's own is its VmHWM).
    public var keeperPeakRSS: UInt64 = 0
    /// Monotonic ns when the VM's threads were about to start: the jail
    /// applied (the bench's figure for what the jail costs a start).
    public var threadsStartNanos: UInt64?
    /// The workload's namespaces inside the guest, as guest-init made them.
    public var namespaces: [String] = []
    /// The masked and read-only paths the guest's confinement applied.
    public var confinedPaths: ConfinedPaths?
    /// Through a template: whether the workload's filter was loaded before
    /// its point (Template.seccompInTemplate); nil without a template.
    public var seccompInTemplate: Bool?
}

/// Runs a RunSpec inside a micro-VM: the image's ext4 disk on virtio-blk,
/// guest-init in an initramfs, the workload's stdio and control messages
/// on virtio-console ports, entropy from virtio-rng.
///
/// Warm starts: nothing a VM does before guest-init asks for its settings
/// depends on the image or the workload, so the first run saves the VM at
/// that point (`SnapshotCache`) and later runs restore it instead of
/// booting. The image's disk is therefore attached only after that point,
/// to a virtio-blk device that booted empty, and announced with a
/// config-change interrupt (hot-plug would need the guest to scan a new
/// virtio-mmio slot, which virtio-mmio has no way to announce). What must
/// differ between restored VMs is sent with the settings: fresh entropy,
/// which guest-init credits and uses to reseed the kernel's CRNG, the
/// host's wall-clock time, and the run's host name.
public final class VMRunner {
    public let spec: RunSpec
    /// nil for an OCI container's VM: its root is config.json's (oci).
    public let image: ResolvedImage?
    public let options: VMOptions
    /// The VMM of an OCI container (`swvm create` at the VM level).
    let oci: VMMOCI?
    /// Called when the workload has started (guest pid), for tests and compare.
    public var onStart: ((UInt32) -> Void)?

    public init(spec: RunSpec, image: ResolvedImage, options: VMOptions) {
        self.spec = spec
        self.image = image
        self.options = options
        self.oci = nil
    }

    /// An OCI container's VM: the root and mounts of `oci`'s plan.
    public init(spec: RunSpec, oci: VMMOCI, options: VMOptions) {
        self.spec = spec
        self.image = nil
        self.options = options
        self.oci = oci
    }

    /// How the VMM's threads were confined, from the filters they loaded.
    static func describeConfinement(_ threads: [(thread: String, allowedSyscalls: Int)], jail: String?) -> String {
        let each = threads.sorted { $0.thread < $1.thread }.map { "\($0.thread): \($0.allowedSyscalls) syscalls" }
        return "\(jail ?? "the jail could not be read back"); per-thread filters on \(threads.count) VMM threads (\(each.joined(separator: ", ")))"
    }

    /// Options a VM cannot honour are errors, not silently ignored.
    public static func checkApplicable(_ spec: RunSpec) throws {
        for m in spec.mounts {
            if case .bind(let source) = m.kind, !FS.isDirectory(source) {
                throw SwvmError(.unsupported, "-v \(source):\(m.destination): a VM shares host directories only, and \(source) is not one (share its directory instead)")
            }
        }
        if spec.network == .host {
            throw SwvmError(.unsupported, "--network host cannot apply to --isolation=vm: the VM has no host network interface")
        }
        if spec.userNamespace != nil {
            throw SwvmError(.unsupported, "--userns cannot apply to --isolation=vm: the VM's kernel is the boundary; --userns is for containers")
        }
    }

    // MARK: the VM and its devices

    /// A machine with swvm's devices, in the order every snapshot has them.
    struct Instance {
        let machine: Machine
        let console: ConsoleDevice
        let disk: BlockDevice
        let diskTransport: MMIOTransport
        let net: NetDevice
        let volumes: NinePDevice
        let volumesTransport: MMIOTransport

        init(_ config: MachineConfig, snapshot: SnapshotFile?) throws {
            machine = try Machine(config: config, snapshot: snapshot)
            // The stdin port starts connected in every VM, so that one
            // snapshot serves runs with and without -i; guest-init opens
            // it only with -i. A port holds at most the largest settings
            // guest-init reads, plus stdin's megabyte.
            console = ConsoleDevice(ports: [
                ("swvm.control", true), ("swvm.stdin", true), ("swvm.stdout", true), ("swvm.stderr", true),
            ], maxPending: Int(SWVM_MAX_CONFIG) + (1 << 20))
            try machine.addVirtioDevice(console, description: "virtio-console (control, stdin, stdout, stderr ports)")
            disk = BlockDevice(readOnly: true)
            diskTransport = try machine.addVirtioDevice(disk, description: "virtio-blk (the image's ext4 disk, read-only, attached after boot)")
            try machine.addVirtioDevice(RngDevice(), description: "virtio-rng")
            // In every VM, so one snapshot serves every --network mode; its
            // tap is attached only with --network bridge or ns:PATH, after the snapshot point.
            net = NetDevice()
            try machine.addVirtioDevice(net, description: "virtio-net (a tap on swvm0 with --network bridge, in the pod's namespace with ns:PATH; unconnected otherwise)")
            // In every VM too; it serves the run's -v directories, given after the snapshot point.
            volumes = try NinePDevice(tag: SWVM_9P_TAG)
            volumesTransport = try machine.addVirtioDevice(volumes, description: "virtio-9p (no host directory)")
            machine.addServiceThread(name: "9p server", profile: VMMSeccomp.shareServerProfile(),
                                     prepare: NinePServer.confineThread) { [volumes] stop in
                volumes.serve(until: stop)
            }
        }

        var control: ConsoleDevice.Port { console.ports[0] }
    }

    /// Everything a snapshot depends on, as its cache key.
    static func snapshotKey(_ config: MachineConfig, initramfs: [UInt8]) -> String {
        func identity(_ path: String) -> String {
            guard let st = FS.stat(path) else { return "missing \(path)" }
            return "\(path) \(st.st_dev) \(st.st_ino) \(st.st_size) \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)"
        }
        return SnapshotCache.key([
            "swvm snapshot format \(SnapshotFile.version)",
            // swvm itself: device models and boot defaults are its code.
            identity(FS.executablePath()),
            identity(config.kernelPath),
            SHA256.hash(initramfs),
            "memory \(config.memoryBytes) vcpus \(config.vcpus) profile \(config.cpuProfile) quiet \(config.quiet)",
            HostCPU.identity,
        ])
    }

    // MARK: running

    public func run() throws -> VMResult {
        let start = Clock.monotonicNanos()
        try VMRunner.checkApplicable(spec)
        guard FS.exists(options.kernelPath) else {
            throw SwvmError(.notFound, "no guest kernel at \(options.kernelPath): build it with kernel/build.sh or pass --kernel")
        }
        // The disk holds its cache lock (so `swvm cache rm` skips it) until the run ends.
        // An OCI bundle's: its image layers' disk (the plan holds it), or none (9p).
        let disk = try image.map { try RootDisk.ensure(for: $0) } ?? oci?.plan.rootDisk?.lock
        defer { withExtendedLifetime(disk) {} }
        let diskImage = try disk.map { try BlockDevice.DiskImage(path: $0.path, readOnly: true) }
        let filter = try spec.seccomp.map { try SeccompCompiler.compile($0, compatArches: false) }
        let config = try machineConfig()

        // --cpus: the vCPU count, and a CPU quota on this process's cgroup
        // (the vCPU threads are ours), as Firecracker's jailer does.
        let record = RunRecord.directory(for: spec.id)
        let (identity, keeper) = try options.monitor.map { ($0.identity, $0.keeper) } ?? ownKeeper(record: record)
        defer { keeper.finish() }
        // An OCI container's VMM is in the container's cgroup already.
        let scope = oci == nil ? try vmmCgroupScope(record: record, guestMemory: config.memoryBytes) : nil

        // --network bridge (the address, published ports) or ns:PATH (the
        // pod's interface), and the tap; the guest learns them with its
        // settings, after the snapshot point.
        let vmNetwork = try VMNetwork.prepare(spec, runDir: record)
        let network = vmNetwork?.network, tap = vmNetwork?.tap
        defer { withExtendedLifetime((scope, network)) {} }
        defer { withExtendedLifetime(tap) {} }   // open until the VM is gone

        // -v: the directories are opened now (the device thread, which
        // attaches them, may open nothing).
        let volumes = oci.map { VMVolumes(shares: $0.plan.shares) } ?? VMVolumes(spec)
        let sharing = !volumes.shares.isEmpty
        let shareServer = sharing ? try NinePServer(shares: volumes.shares) : nil

        let template = templateFor(config, disk: disk?.path, filter: filter, network: network)
        let fromTemplate = template?.restore(config)
        let (instance, how, writer, inUse) = try fromTemplate.map { ($0.0, VMStart.template, SnapshotCache.Writer?.none, Optional($0.1)) }
            ?? startMachine(config)
        defer { withExtendedLifetime(inUse) {} }
        if let shareServer { instance.volumes.prepare(shareServer) }
        let output = try writer.map { try SnapshotOutput(writer: $0, keeper: keeper) }
        let templateOutput = try (how == .template ? nil : template).flatMap { t in
            try SnapshotCache.writer(for: t.key, root: Template.root).map { try SnapshotOutput(writer: $0, keeper: keeper) }
        }
        // The run that saves a template records what its workload reads (RecordedReads).
        let readsOutput = templateOutput == nil ? nil : template?.recordReadsKey.flatMap(RecordedReads.output)
        let session = Session(runner: self, instance: instance, filter: filter, start: start, network: network, keeper: keeper)
        session.control = try ControlServer.start(for: instance, record: record)   // exec, kill --all, pause, ps
        if let template, let diskImage {   // a template is an image's: it has a disk
            wire(template, session: session, disk: diskImage, tap: tap, volumes: volumes, output: templateOutput,
                 restored: how == .template)
        } else {
            session.attach = attachDevices(instance, disk: diskImage, tap: tap, sharing: sharing, volumes: volumes)
        }
        if readsOutput != nil {
            let save = session.saveTemplate, disk = instance.disk
            session.saveTemplate = { save?(); disk.recordReads() }
        }
        if let output { session.beforeSettings = saveSnapshot(of: instance, to: output, label: "snapshot") }
        let plan = jailPlan(identity: identity, record: record, config: config, volumes: sharing,
                            snapshotBytes: output == nil && templateOutput == nil ? VMRunner.profileBytes : config.memoryBytes + (64 << 20))
        let threadsStart = Locked<UInt64?>(nil)
        instance.machine.beforeThreads = try jailStep(plan, instance: instance, config: config,
                                                      pageFlags: templateOutput != nil, threadsStart: threadsStart)
        oci?.start.replace(VMRunner.describe(how, savingTemplate: templateOutput != nil))
        var result = try session.run(restored: how == .warm || how == .template, fromTemplate: how == .template)
        if let readsOutput { RecordedReads.save(instance.disk.recordedBlocks() ?? [], to: readsOutput) }
        result.start = how
        result.seccompInTemplate = template?.seccompInTemplate
        result.threadsStartNanos = threadsStart.current
        if sharing { logShareCounters(instance.volumes) }
        return result
    }

    /// How the VM started, as an OCI container's state says it (VMMOCI.startAnnotation).
    static func describe(_ how: VMStart, savingTemplate: Bool) -> String {
        switch how {
        case .template: return "template"
        case .warm: return savingTemplate ? "boot snapshot (saving a template)" : "boot snapshot"
        case .coldSnapshotted: return "cold (boot snapshot saved)"
        case .coldOnly: return "cold"
        }
    }

    /// The VMM's jail, run on the main thread before the VM's threads exist
    /// (Machine.beforeThreads); notes when the threads start.
    private func jailStep(_ plan: JailPlan, instance: Instance, config: MachineConfig, pageFlags: Bool,
                          threadsStart: Locked<UInt64?>) throws -> () throws -> Void {
        let processFilter = try VMMSeccomp.compile(VMMSeccomp.processProfile())
        return {
            if !VMMJail.skippedForTests {
                try ProcSelf.hold(["smaps", "status"])
                // A template save without it reads every page (slower, not wrong).
                if pageFlags { try? VMMJail.holdPageFlags() }
                var p = plan
                p.limits = VMMJail.limits(openDescriptors: VMMJail.openDescriptorBound() + ControlServer.descriptorBudget,
                                          threads: config.vcpus + 5,
                                          volumes: plan.keepFileCapabilities, largestWrite: p.limits.first?.value)
                if let procFD = try VMMJail.apply(p, filter: processFilter) { instance.volumes.enteredJail(procDirectory: procFD) }
            }
            threadsStart.with { $0 = Clock.monotonicNanos() }
        }
    }

    /// The run's record, uid lease and keeper, when no monitor took them:
    /// the keeper cleans up what the run holds on the host (the jailed VMM
    /// cannot), is started before this process joins its cgroup, and is
    /// waited for at the end.
    private func ownKeeper(record: String) throws -> (VMMIdentity, VMMKeeper) {
        RunRecord.removeStale()
        try RunRecord.create(record)
        do {
            let identity = try VMMIdentity.lease()
            return (identity, try VMMKeeper.spawn(record: record, identity: identity))
        } catch {
            RunRecord.cleanup(record)
            throw error
        }
    }

    /// The VMM's cgroup: guest RAM plus a margin of memory, and --cpus'
    /// CPU quota (the vCPU threads are ours), as Firecracker's jailer does;
    /// recorded in the run's record, removed by the keeper.
    private func vmmCgroupScope(record: String, guestMemory: UInt64) throws -> ProcessCgroupScope {
        var limits = ResourceLimits()
        limits.memory = guestMemory + VMOptions.vmmMemoryMargin
        limits.cpuQuota = spec.resources.cpuQuota
        limits.cpuPeriod = spec.resources.cpuPeriod
        let scope = try ProcessCgroupScope(id: spec.id, limits: limits)
        try RunRecord.record(record, cgroups: scope.paths)
        return scope
    }

    /// SWVM_PROFILE: the file a run's guest profile goes to.
    static var profilePath: String? { FS.environment("SWVM_PROFILE") }
    /// What a profile may write (the jail's FSIZE when nothing else is written).
    static var profileBytes: UInt64? { profilePath == nil ? nil : Profiler.largestOutput }

    /// The jail for this run; its FSIZE (the first limit) is what the VMM
    /// must still write to a file: the snapshot it saves, a share's files
    /// (unlimited), or stdout, stderr or --report-fd when they are files
    /// (unlimited).
    private func jailPlan(identity: VMMIdentity, record: String, config: MachineConfig, volumes: Bool,
                          snapshotBytes: UInt64?) -> JailPlan {
        let unlimited = UInt64.max   // RLIM_INFINITY
        let writesFiles = volumes || ([1, 2] + options.keepDescriptors).contains(where: VMMJail.isRegularFile)
        let fsize = writesFiles ? unlimited : snapshotBytes ?? 0
        var plan = JailPlan(uid: identity.uid, gid: identity.gid, keepFileCapabilities: volumes, rootMountPoint: record,
                            limits: [(VMMJail.rlimitFSIZE, fsize)])
        plan.keepDescriptors = options.keepDescriptors
        plan.monitorSocket = options.monitor?.socket ?? options.monitorPipe
        return plan
    }

    /// What the session attaches once guest-init has its settings: the
    /// root disk, the tap and the shares.
    func attachDevices(_ instance: Instance, disk diskImage: BlockDevice.DiskImage?, tap: FileDescriptor?,
                               sharing: Bool, volumes: VMVolumes) -> () throws -> Void {
        return {
            if let diskImage {
                instance.disk.attach(diskImage)
                instance.diskTransport.signalConfigChange()
            }
            if let tap {
                try NetworkAttachment.setTapOffloads(tap.raw, instance.net.tapOffloads)
                try instance.net.attach(tap: tap.raw, events: instance.machine.events)
            }
            if sharing {
                instance.volumes.attachPrepared()
                instance.machine.describe(instance.volumesTransport, as: volumes.description)
            }
        }
    }

    /// Saves the VM for warm starts: the booted one just before its
    /// settings (a "snapshot"), or at the template point (a "template").
    func saveSnapshot(of instance: Instance, to output: SnapshotOutput, label: String) -> () -> Void {
        return {
            // On the main thread, every vCPU parked: the guest is booted
            // and guest-init waits for its settings.
            let asked = Clock.monotonicNanos()
            instance.machine.pause {
                do {
                    let paused = Clock.monotonicNanos()
                    let state = try instance.machine.captureState()
                    try instance.machine.withMemoryRanges { try output.publish(state: state, regions: $0, base: $1) }
                    let ms = { (from: UInt64) in formatFixed(Double(Clock.monotonicNanos() - from) / 1e6, 1) }
                    Log.debug("\(label) written in \(ms(paused)) ms (\(ms(asked)) ms with the pause)")
                    Log.debug("\(label) saved: \(SnapshotCache.directory(for: output.key, root: output.root))")
                } catch {
                    Log.warning("could not save a \(label) for warm starts: \(error)")
                }
            }
            // The snapshot point is past: nothing this run does from
            // here on may become a snapshot.
            output.release()
        }
    }

    private func logShareCounters(_ device: NinePDevice) {
        let c = device.counters
        let types = c.byType.sorted { $0.key < $1.key }.map { "T\($0.key): \($0.value)" }.joined(separator: ", ")
        let ms = Double(device.serviceNanos.current) / 1e6
        Log.debug("virtio-9p: \(c.requests) requests (\(types)), \(c.refusals) refused, \(formatFixed(ms, 1)) ms serving")
    }

    private func machineConfig() throws -> MachineConfig {
        let initPath = try GuestInitBinary.locate()
        var initramfs = Initramfs()
        initramfs.addFile("init", data: try FS.readFile(initPath))
        if let probe = spec.probe { initramfs.addFile("probe", data: try FS.readFile(probe)) }
        var config = MachineConfig(kernelPath: options.kernelPath, cpuProfile: options.cpuProfile)
        config.initrdBytes = initramfs.finish()
        // At least the default size: a small --memory then restores the
        // default size's snapshot (its limit is the guest cgroup's, not RAM's).
        config.memoryBytes = max(VMOptions.defaultMemory, (spec.resources.memory ?? 0) + VMOptions.memoryMargin)
        config.vcpus = spec.resources.cpus.map { max(1, Int($0.rounded(.up))) } ?? 1
        config.consoleFD = options.showConsole ? 2 : nil
        return config
    }

    /// An OCI bundle's root template (Template(ociRoot:)): only with its
    /// image layers as a disk; a 9p root (a plain directory, the
    /// annotation) has none. Its files to warm: the process's command,
    /// found as for an image's.
    private func ociRootTemplate(_ oci: VMMOCI, config: MachineConfig, disk: String?, filter: SeccompFilter?) -> Template? {
        guard let disk else {
            Log.debug("no OCI root template: the root is \(oci.plan.root)")
            return nil
        }
        do {
            let settings = try oci.plan.settings(seccompProgram: filter?.program, entropy: [])
            return Template(ociRoot: settings, warmFiles: Template.warmFiles(entrypoint: [], cmd: spec.process.args),
                            bootKey: VMRunner.snapshotKey(config, initramfs: config.initrdBytes ?? []), disk: disk)
        } catch {
            Log.debug("no OCI root template: \(error)")
            return nil
        }
    }

    /// The image template this run uses, or nil (why: in the debug log).
    private func templateFor(_ config: MachineConfig, disk: String?, filter: SeccompFilter?, network: (any GuestNetwork)?) -> Template? {
        if let why = Template.skipReason(spec, options) {
            Log.debug("no image template: \(why)")
            return nil
        }
        if let oci { return ociRootTemplate(oci, config: config, disk: disk, filter: filter) }
        guard let image, let disk else { return nil }
        let settings = VMRunner.settings(spec, filter: filter, network: network, window: nil, entropy: [])
        let bootKey = VMRunner.snapshotKey(config, initramfs: config.initrdBytes ?? [])
        func template(_ warmFiles: [String]) -> Template {
            Template(settings: settings, sharedNetwork: network != nil, plain: Template.isPlain(spec), filter: filter?.program,
                     readOnly: spec.readOnlyRoot, terminal: spec.terminal, initProcess: spec.initProcess,
                     warmFiles: warmFiles, bootKey: bootKey, disk: disk, image: image.cacheKey)
        }
        let own = Template.warmFiles(entrypoint: image.config.entrypoint, cmd: image.config.cmd)
        var base = template(own)
        // The files the first run of `base` read, when it recorded them: a template that holds them too.
        guard FS.environment("SWVM_TEMPLATE_WARM") != "0", let recorded = RecordedReads.load(key: base.key, disk: disk) else {
            base.recordReadsKey = FS.environment("SWVM_TEMPLATE_WARM") == "0" ? nil : base.key
            return base
        }
        let more = recorded.filter { !own.contains($0) }
        return more.isEmpty ? base : template(own + more)
    }

    /// MSG_CONFIG's payload for this run (RunSettings.encode at the VM level).
    static func settings(_ spec: RunSpec, filter: SeccompFilter?, network: (any GuestNetwork)?,
                         window: (rows: UInt16, cols: UInt16)?, entropy: [UInt8]) -> [UInt8] {
        var runSpec = spec
        network?.apply(to: &runSpec)
        VMVolumes(spec).apply(to: &runSpec)
        return RunSettings.encode(runSpec, seccompProgram: filter?.program, window: window,
                                  level: .vm(rootDevice: "/dev/vda", hostTimeNanos: Clock.realtimeNanos(),
                                             probeSource: spec.probe == nil ? nil : "/probe", entropy: entropy,
                                             netInterface: network?.guestInterface))
    }

    /// Restores the cached snapshot when there is a good one; otherwise
    /// builds a machine to boot, with the right to write the snapshot
    /// unless another run holds it or --cold-boot was given.
    private func startMachine(_ config: MachineConfig) throws -> (Instance, VMStart, SnapshotCache.Writer?, CacheItemLock?) {
        guard !options.coldBoot else { return (try Instance(config, snapshot: nil), .coldOnly, nil, nil) }
        SnapshotCache.removeStaleTemporaries()
        let key = VMRunner.snapshotKey(config, initramfs: config.initrdBytes ?? [])
        var unusable: String?
        if let (snapshot, inUse) = SnapshotCache.lookup(key: key, onInvalid: { Log.warning("\($0); booting and saving a new one") }) {
            do {
                let instance = try Instance(config, snapshot: snapshot)
                try instance.machine.restore(snapshot.state, source: "snapshot \(snapshot.directory)")
                Log.debug("restored from snapshot: \(snapshot.directory)")
                return (instance, .warm, nil, inUse)
            } catch let e as SwvmError {
                // A snapshot this host cannot restore (another TSC rate, a
                // KVM that refuses its state): boot, and replace it.
                Log.warning("cannot restore \(snapshot.directory): \(e.message); booting instead")
                unusable = snapshot.directory
            }
        }
        if let dir = unusable { SnapshotCache.remove(dir) }
        let writer = SnapshotCache.writer(for: key)
        return (try Instance(config, snapshot: nil), writer == nil ? .coldOnly : .coldSnapshotted, writer, nil)
    }

    /// Whether epoll can watch `fd`: it refuses regular files and /dev/null (EPERM).
    static func isPollable(_ fd: Int32) -> Bool {
        let ep = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard ep >= 0 else { return true }
        defer { close(ep) }
        var ev = epoll_event()
        ev.events = UInt32(EPOLLIN.rawValue)
        return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0 || errno != EPERM
    }

    struct RunState {
        var readyNanos: UInt64?
        var execNanos: UInt64?
        var pid: UInt32?
        var namespaces: [String] = []
        var confinedPaths: ConfinedPaths?
        var status: Int32?
        var error: SwvmError?
        /// The settings went to the guest: the snapshot point is past.
        var settingsSent = false
        /// The per-run settings went to the guest: the template point is past.
        var runSent = false
    }
}

/// One VM run's host side: the control protocol, stdio relays, signals.
///
/// @unchecked Sendable: the main thread and the device thread (the console's
/// handlers) share it. Its lets are fixed at init (the RunSpec, filter and
/// terminal are read only); `attach` and `beforeSettings` are set before the
/// VM runs and used once, in `guestReady`, on one thread; what changes
/// while the VM runs is in `state` and `phases`, behind their locks.
final class Session: @unchecked Sendable {
    let runner: VMRunner
    let instance: VMRunner.Instance
    let filter: SeccompFilter?
    let start: UInt64
    let state = Locked(VMRunner.RunState())
    let phases = Locked<[(String, Int)]>([])
    let terminal: HostTerminal?
    let network: GuestNetwork?
    let keeper: VMMKeeper
    /// The VMM's jail, read back by the keeper while the workload runs.
    let jail = Locked<(summary: String, json: JSON, keeperPeakRSS: UInt64)?>(nil)
    /// Attaches the image's disk (before the settings are sent).
    var attach: (() throws -> Void)?
    /// Runs when guest-init is ready, before it gets its settings (the
    /// snapshot point).
    var beforeSettings: (() -> Void)?
    /// The VMM's control socket (set before the VM runs).
    var control: ControlServer?
    /// With an image template: the fixed settings go at READY, the per-run
    /// ones at the template point, after `saveTemplate` (when this run
    /// writes the template) and `attachLate` (the tap).
    var template: Template?
    var saveTemplate: (() -> Void)?
    var attachLate: (() throws -> Void)?
    /// Restored from a template: guest-init waits for MSG_RUN.
    var fromTemplate = false

    var machine: Machine { instance.machine }
    var spec: RunSpec { runner.spec }

    init(runner: VMRunner, instance: VMRunner.Instance, filter: SeccompFilter?, start: UInt64, network: GuestNetwork?,
         keeper: VMMKeeper) {
        self.keeper = keeper
        self.runner = runner
        self.network = network
        self.instance = instance
        self.filter = filter
        self.start = start
        terminal = runner.spec.terminal ? HostTerminal(interactive: runner.spec.interactive) : nil
    }

    func run(restored: Bool, fromTemplate: Bool = false) throws -> VMResult {
        self.fromTemplate = fromTemplate
        wireOutput()
        wireControl(restored: restored)
        wireSignals()
        if fromTemplate {
            // guest-init already reached the template point before the template.
            templatePointReached()
        } else if restored {
            // guest-init already said it is ready before the snapshot.
            guestReady()
        }
        let tail = Locked(ConsoleTail())
        machine.onConsoleLine = { line in tail.with { $0.append(line) } }
        // SWVM_PROFILE=FILE: sample the guest's RIP (a development aid);
        // the file is opened here, before machine.run jails the VMM.
        let profile = try VMRunner.profilePath.map { try Profiler.Output(path: $0, kernel: runner.options.kernelPath) }
        terminal?.start()
        let exit: MachineExit
        if let limit = FS.environment("SWVM_PROFILE_SECONDS").flatMap(Double.init) {
            _ = try NativeThread { [machine] in usleep(UInt32(limit * 1e6)); machine.stop(.stopped) }
        }
        do {
            exit = try machine.run(profileIntervalMs: profile == nil ? nil : 10)
            try profile?.write(samples: machine.profileSamples, phases: phases.current)
        } catch {
            terminal?.finish()
            throw error
        }
        terminal?.finish()
        // guest-init reports the exit, then resets the VM at once; the
        // report travels through an ioeventfd the event loop serves, so the
        // reset can win. Frames still queued are read before the verdict.
        instance.console.drain()
        return try result(exit, tail: tail.current)
    }

    private func result(_ exit: MachineExit, tail: ConsoleTail) throws -> VMResult {
        let s = state.current
        var result = VMResult(status: 125, startNanos: start, guestReadyNanos: s.readyNanos, execNanos: s.execNanos,
                              workloadPID: s.pid, guestMemoryTouched: machine.memory.residentBytes(),
                              guestMemorySize: machine.config.memoryBytes, emulationFixups: machine.emulationFixups,
                              seccompAllowedSyscalls: filter?.allowedSyscalls, start: .coldOnly)
        result.namespaces = s.namespaces
        result.confinedPaths = s.confinedPaths
        result.devices = machine.attachedDevices
        let jail = self.jail.current
        result.vmmConfinement = VMRunner.describeConfinement(machine.confinedThreads.current, jail: jail?.summary)
        result.vmmJail = jail?.json
        result.keeperPeakRSS = jail?.keeperPeakRSS ?? 0
        if let e = s.error { throw e }
        switch exit {
        // A reset follows guest-init's exit report; one drained after it counts.
        case .stopped,
             .reset where s.status != nil:
            guard let status = s.status else { throw SwvmError(.vmFailed, "the VM stopped before the workload finished") }
            result.status = status
        case .signal(let sig):
            result.status = 128 + sig
        case .failed(let e):
            throw SwvmError(e.code, e.message + tail.hint)
        default:
            throw SwvmError(.vmFailed, "the VM ended before the workload did: \(exit.summary)\(tail.hint)")
        }
        return result
    }

    private func wireOutput() {
        let ports = instance.console.ports
        ports[2].onData = { bytes in _ = try? bytes.withUnsafeBytes { try FileDescriptor.writeAll(1, $0) } }
        ports[3].onData = { bytes in _ = try? bytes.withUnsafeBytes { try FileDescriptor.writeAll(2, $0) } }
    }

    /// guest-init is waiting for its settings: save the snapshot (cold
    /// boot), attach the disk, send the settings, open stdin.
    private func guestReady() {
        guard !state.with({ $0.settingsSent }) else {
            fail(GuestProtocol.violation("READY after the settings were sent"))
            return
        }
        state.with { $0.readyNanos = Clock.monotonicNanos() }
        phases.with { $0.append(("setup", machine.profileSampleCount)) }
        Log.debug("guest-init ready after \(formatFixed(Clock.secondsSince(start), 2)) s")
        beforeSettings?()
        beforeSettings = nil
        state.with { $0.settingsSent = true }
        do {
            try attach?()
        } catch {
            state.with { $0.error = error as? SwvmError ?? SwvmError(.internalError, "\(error)") }
            machine.stop(.stopped)
            return
        }
        if let template {
            // Template mode: the fixed part now, the run's own at the template point.
            instance.console.send(GuestProtocol.frame(GuestProtocol.config, template.fixedConfig), to: instance.control)
            return
        }
        guard let settings = runSettings() else { return }
        instance.console.send(GuestProtocol.frame(GuestProtocol.config, settings), to: instance.control)
        openStdin()
    }

    /// The run's settings, with fresh entropy and the host's time now (an
    /// OCI container's from its plan); nil: the failure is reported.
    private func runSettings() -> [UInt8]? {
        let window = terminal?.windowSize().map { (rows: $0.ws_row, cols: $0.ws_col) }
        var entropy = [UInt8](repeating: 0, count: 64)
        _ = entropy.withUnsafeMutableBytes { getrandom($0.baseAddress, 64, 0) }
        if let oci = runner.oci {
            do {
                var cfg = try oci.plan.settings(seccompProgram: filter?.program, entropy: entropy)
                // The pod's network (config.json's namespace path): eth0.
                if let network {
                    var runSpec = spec
                    network.apply(to: &runSpec)
                    var f = RunSettings.Fields()
                    f.addGuestNetwork(network.guestInterface, runSpec)
                    cfg += f.bytes
                }
                return cfg
            } catch {
                fail(error as? SwvmError ?? SwvmError(.internalError, "\(error)"))
                return nil
            }
        }
        var cfg = VMRunner.settings(spec, filter: filter, network: network, window: window, entropy: entropy)
        if runner.options.execZygoteAtStart {
            var f = RunSettings.Fields()
            f.add(CFG_EXEC_ZYGOTE, true)
            cfg += f.bytes
        }
        return cfg
    }

    private func openStdin() {
        if spec.interactive { wireStdin() } else { instance.console.setHostConnected(instance.console.ports[1], false) }
    }

    /// guest-init waits at the template point: save the template (the
    /// first run of these fixed settings), attach the tap, send the
    /// per-run settings, open stdin. Nothing of the run reaches the guest
    /// before the template is saved.
    private func templatePointReached() {
        guard let template, !state.with({ $0.runSent }) else {
            fail(GuestProtocol.violation("TEMPLATE_POINT without a template's settings"))
            return
        }
        if fromTemplate { state.with { $0.readyNanos = Clock.monotonicNanos() } }
        phases.with { $0.append(("after the template point", machine.profileSampleCount)) }
        Log.debug("template point after \(formatFixed(Clock.secondsSince(start), 2)) s")
        saveTemplate?()
        saveTemplate = nil
        state.with { $0.runSent = true }
        do {
            try attachLate?()
        } catch {
            fail(error as? SwvmError ?? SwvmError(.internalError, "\(error)"))
            return
        }
        guard let settings = runSettings() else { return }
        instance.console.send(template.runFrame(settings), to: instance.control)
        openStdin()
    }

    /// The keeper reads the VMM's posture from /proc while every thread of
    /// the VM exists (on the main thread, which may talk to the keeper).
    private func readJailBack() {
        machine.pause { [keeper, jail] in
            if let p = keeper.posture() { jail.with { $0 = (p.summary, p.json, p.keeperPeakRSS) } }
        }
    }

    /// Ends the run with `error` (the first error wins).
    private func fail(_ error: SwvmError) {
        state.with { if $0.error == nil { $0.error = error } }
        machine.stop(.stopped)
    }

    /// The control port as the protocol allows it (GuestProtocol.Sequence),
    /// and whether it is closed: after EXIT or ERROR, or a violation.
    struct ControlChannel {
        var reader = GuestProtocol.Reader()
        var sequence = GuestProtocol.Sequence()
        var closed = false
    }

    /// The frames `bytes` completes, if the protocol allows every one; at a
    /// violation none of them, the run fails and the port takes nothing
    /// more. (Under a lock: a vCPU thread may deliver too.)
    private func accepted(_ bytes: [UInt8], _ channel: Locked<ControlChannel>) -> [(type: UInt32, payload: [UInt8])] {
        do {
            return try channel.with { c in
                guard !c.closed else { return [] }
                do {
                    var frames = try c.reader.feed(bytes)
                    for (i, f) in frames.enumerated() {
                        try c.sequence.accept(f.type, payloadCount: f.payload.count)
                        if f.type == GuestProtocol.exit || f.type == GuestProtocol.error {
                            c.closed = true
                            frames.removeSubrange((i + 1)...)
                            break
                        }
                    }
                    return frames
                } catch {
                    c.closed = true
                    throw error
                }
            }
        } catch {
            fail(error as? SwvmError ?? SwvmError(.internalError, "\(error)"))
            return []
        }
    }

    private func wireControl(restored: Bool) {
        // A restored guest-init said READY before the snapshot.
        let channel = Locked(ControlChannel(sequence: GuestProtocol.Sequence(readySent: restored, templatePointSent: fromTemplate)))
        let console = instance.console
        console.onLimit = { [self] message in fail(SwvmError(.vmFailed, message)) }
        instance.control.onData = { [self] bytes in
            for (type, payload) in accepted(bytes, channel) {
                switch type {
                case GuestProtocol.ready:
                    if let error = GuestProtocol.versionError(ready: payload) {
                        fail(error)
                    } else {
                        guestReady()
                    }
                case GuestProtocol.templatePoint:
                    templatePointReached()
                case GuestProtocol.started:
                    guard let started = GuestProtocol.decodeStarted(payload) else { break }
                    let pid = started.pid
                    let namespaces = Namespaces.names(UInt(started.namespaces))
                    state.with { $0.execNanos = Clock.monotonicNanos(); $0.pid = pid; $0.namespaces = namespaces }
                    phases.with { $0.append(("workload", machine.profileSampleCount)) }
                    Log.debug("workload started (guest pid \(pid)) after \(formatFixed(Clock.secondsSince(start), 2)) s")
                    readJailBack()
                    control?.workloadStarted()
                    #if DEBUG
                    // Test-only (a debug build's): the control port hangs up under guest-init.
                    if FS.environment("SWVM_TEST_UNPLUG_CONTROL") == "1" { console.unplug(instance.control) }
                    #endif
                    runner.onStart?(pid)
                case GuestProtocol.created:
                    // The OCI start gate (VMMOCI): `swvm start` releases it.
                    runner.oci?.reachedGate(events: machine.events, release: { [instance] in
                        instance.console.send(GuestProtocol.frame(GuestProtocol.start, []), to: instance.control)
                    }, abort: fail)
                case GuestProtocol.confined:
                    do {
                        let paths = try ConfinedPaths(decoding: payload)
                        state.with { $0.confinedPaths = paths }
                    } catch {
                        state.with { $0.error = error as? SwvmError ?? SwvmError(.guestError, "\(error)") }
                        machine.stop(.stopped)
                    }
                case GuestProtocol.exit:
                    guard let status = GuestProtocol.decodeExit(payload) else { break }
                    #if DEBUG
                    // Test-only (a debug build's): the report reaches the host after the reset that follows it.
                    if FS.environment("SWVM_TEST_SLOW_EXIT_REPORT") == "1" { usleep(1_500_000) }
                    #endif
                    Log.debug("workload exited after \(formatFixed(Clock.secondsSince(start), 2)) s")
                    console.drain()
                    state.with { $0.status = status }
                    machine.stop(.stopped)
                case GuestProtocol.error:
                    console.drain()
                    // The guest's words, escaped (SwvmError.decode) and marked as such.
                    let e = SwvmError.decode(payload) ?? SwvmError(.guestError, "a malformed error report (\(payload.count) bytes)")
                    state.with { $0.error = SwvmError(e.code, "guest: " + e.message) }
                    machine.stop(.stopped)
                case let type where GuestProtocol.Sequence.isExecReply(type):
                    control?.guestFrame(type, payload)
                default:
                    break
                }
            }
        }
    }

    /// stdin: host -> guest, with EOF once everything queued is taken.
    /// A pipe, socket or terminal is read when epoll says so; a regular
    /// file or /dev/null (which epoll refuses, EPERM) is always readable,
    /// so it is read whenever the guest has taken what was queued.
    private func wireStdin() {
        let console = instance.console, stdinPort = console.ports[1], machine = self.machine
        let stdinFD: Int32 = 0
        // Set on the event-loop thread, read on the device thread.
        let eof = Locked(false)
        let pollable = VMRunner.isPollable(stdinFD)
        @Sendable func pump() {
            guard !eof.current else { return }
            // Keep at most 1 MiB queued for the guest; resume when it drains.
            if console.pendingCount(stdinPort) > (1 << 20) { if pollable { machine.events.remove(fd: stdinFD) }; return }
            var buf = [UInt8](repeating: 0, count: 65536)
            let n = read(stdinFD, &buf, buf.count)
            if n > 0 {
                console.send(Array(buf[0..<n]), to: stdinPort)
            } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                eof.replace(true)
                if pollable { machine.events.remove(fd: stdinFD) }
                if console.pendingCount(stdinPort) == 0 { console.setHostConnected(stdinPort, false) }
            }
        }
        @Sendable func pumpUnpollable() {
            while !eof.current && console.pendingCount(stdinPort) <= (1 << 20) { pump() }
        }
        console.onWritable = {
            if eof.current { console.setHostConnected(stdinPort, false) }
            else if pollable { try? machine.events.add(fd: stdinFD, events: UInt32(EPOLLIN.rawValue)) { _ in pump() } }
            else { pumpUnpollable() }
        }
        if pollable { try? machine.events.add(fd: stdinFD, events: UInt32(EPOLLIN.rawValue)) { _ in pump() } }
        else { pumpUnpollable() }
    }

    private func wireSignals() {
        let console = instance.console, control = instance.control
        let grace = Locked(StopGrace(seconds: spec.stopTimeout))
        let stopTimeout = spec.stopTimeout
        machine.onSignal = { [self] sig in
            if sig == SIGWINCH {
                if let ws = terminal?.windowSize() {
                    console.send(GuestProtocol.resizeFrame(rows: ws.ws_row, cols: ws.ws_col), to: control)
                }
                return true
            }
            if sig == SIGPIPE { return true }
            // Before the workload runs there is nothing to forward to.
            guard state.with({ $0.pid != nil }) else { return false }
            @Sendable func send(_ sig: Int32) { console.send(GuestProtocol.signalFrame(sig), to: control) }
            guard StopGrace.isStopSignal(sig) else { send(sig); return true }
            machine.thaw()   // a paused VM (the control socket's pause) must run to stop
            if grace.with({ $0.stopRequested() }) { send(SIGKILL); return true }
            send(sig)
            // The grace period: then the workload is killed, as by a second signal.
            let state = self.state
            _ = try? NativeThread {
                var wait = timespec(tv_sec: Int(stopTimeout), tv_nsec: Int((stopTimeout - stopTimeout.rounded(.down)) * 1e9))
                var left = timespec()
                while nanosleep(&wait, &left) != 0 && errno == EINTR { wait = left }
                if state.with({ $0.status == nil && $0.error == nil }) { send(SIGKILL) }
            }
            return true
        }
    }
}

/// The host CPU as a snapshot depends on it: a guest saved on one CPU
/// model may use features another lacks.
enum HostCPU {
    static let identity: String = {
        guard let text = try? FS.readText("/proc/cpuinfo", limit: 1 << 22) else { return "unknown CPU" }
        let wanted: Set<String> = ["vendor_id", "cpu family", "model", "model name", "stepping", "microcode", "flags"]
        var lines: [Substring] = []
        // The first processor's block: the fields up to its first blank line.
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.isEmpty { break }
            let name = line.split(separator: ":", maxSplits: 1).first.map { String($0).trimmingTrailingWhitespace() } ?? ""
            if wanted.contains(name) { lines.append(line) }
        }
        return lines.joined(separator: "\n")
    }()
}

extension String {
    func trimmingTrailingWhitespace() -> String {
        var s = Substring(self)
        while let c = s.last, c == " " || c == "\t" { s = s.dropLast() }
        return String(s)
    }
}

/// The last lines of the guest console, shown when a VM fails.
struct ConsoleTail: Sendable {
    private var lines: [String] = []

    mutating func append(_ line: String) {
        lines.append(line)
        if lines.count > 20 { lines.removeFirst() }
    }

    /// Each line escaped and marked as the guest's.
    var hint: String {
        lines.isEmpty ? "" : "; last guest console lines:\n" + lines.map { "guest: " + UntrustedText.escaped($0) }.joined(separator: "\n")
    }
}

/// Where swvm compare's probe is: SWVM_PROBE, or what probe/build.sh built.
public enum ProbeBinary {
    public static func locate() throws -> String {
        if let p = FS.environment("SWVM_PROBE"), !p.isEmpty { return p }
        let cached = Path.join(SwvmPaths.cacheRoot, "probe/current/swvm-probe")
        if FS.isRegularFile(cached) { return cached }
        throw SwvmError(.notFound, "swvm-probe is not built: run probe/build.sh (it installs to \(cached))")
    }
}

/// Where guest-init is: SWVM_GUEST_INIT, or what guest-init/build.sh built.
public enum GuestInitBinary {
    public static func locate() throws -> String {
        if let p = FS.environment("SWVM_GUEST_INIT"), !p.isEmpty { return p }
        let cached = Path.join(SwvmPaths.cacheRoot, "guest-init/current/init")
        if FS.isRegularFile(cached) { return cached }
        throw SwvmError(.notFound, "guest-init is not built: run guest-init/build.sh (it installs to \(cached))")
    }
}
