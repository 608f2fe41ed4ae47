#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import Cgroups
import KVM
import OCIImage
import RuntimeSpec
import Seccomp
import SwvmBase
import Virtio
import VMM

/// How to build the VM for a run.
public struct VMOptions {
    public var kernelPath: String = MachineConfig.defaultKernelPath()
    public var cpuProfile: CPUProfile = .automatic(isPVMHost: KVMSystem.isPVMHost())
    /// Show the guest's console on stderr (SWVM_DEBUG=1 does too).
    public var showConsole = Log.debugEnabled
    public init() {}

    /// Guest RAM without --memory, and what is added to --memory for the
    /// guest kernel and guest-init (the workload's cgroup gets --memory).
    public static let defaultMemory: UInt64 = 128 << 20
    public static let memoryMargin: UInt64 = 64 << 20
}

/// What a finished VM run reports.
public struct VMResult {
    public var status: Int32
    /// Monotonic ns when swvm started building the VM, and when guest-init
    /// reported the workload exec'd (host clock, at receipt).
    public var startNanos: UInt64
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
    /// The devices the VM was given, and how the VMM's threads were
    /// confined: both as the run applied them.
    public var devices: [String] = []
    public var vmmConfinement = ""
    /// The workload's namespaces inside the guest, as guest-init made them.
    public var namespaces: [String] = []
}

/// Runs a RunSpec inside a micro-VM: the image's ext4 disk on virtio-blk,
/// guest-init in an initramfs, the workload's stdio and control messages
/// on virtio-console ports, entropy from virtio-rng.
public final class VMRunner {
    public let spec: RunSpec
    public let image: ResolvedImage
    public let options: VMOptions
    /// Called when the workload has started (guest pid), for tests and compare.
    public var onStart: ((UInt32) -> Void)?

    public init(spec: RunSpec, image: ResolvedImage, options: VMOptions) {
        self.spec = spec
        self.image = image
        self.options = options
    }

    /// How the VMM's threads were confined, from the filters they loaded.
    static func describeConfinement(_ threads: [(thread: String, allowedSyscalls: Int)]) -> String {
        let each = threads.sorted { $0.thread < $1.thread }.map { "\($0.thread): \($0.allowedSyscalls) syscalls" }
        return "seccomp on \(threads.count) VMM threads (\(each.joined(separator: ", "))); the VMM process is root in the host's namespaces, without a jail"
    }

    /// Options a VM cannot honour are errors, not silently ignored.
    public static func checkApplicable(_ spec: RunSpec) throws {
        if spec.mounts.contains(where: { if case .bind = $0.kind { return true }; return false }) {
            throw SwvmError(.unsupported, "-v/--volume cannot apply to --isolation=vm: the VM shares no filesystem with the host (use --isolation=container, or --tmpfs)")
        }
        if spec.network == .host {
            throw SwvmError(.unsupported, "--network host cannot apply to --isolation=vm: the VM has no host network interface")
        }
        if spec.userNamespace != nil {
            throw SwvmError(.unsupported, "--userns cannot apply to --isolation=vm: the VM's kernel is the boundary; --userns is for containers")
        }
    }

    public func run() throws -> VMResult {
        let start = Clock.monotonicNanos()
        try VMRunner.checkApplicable(spec)
        guard FS.exists(options.kernelPath) else {
            throw SwvmError(.notFound, "no guest kernel at \(options.kernelPath): build it with kernel/build.sh or pass --kernel")
        }
        let initPath = try GuestInitBinary.locate()
        let disk = try RootDisk.ensure(for: image)
        let filter = try spec.seccomp.map { try SeccompCompiler.compile($0, compatArches: false) }

        var initramfs = Initramfs()
        initramfs.addFile("init", data: try FS.readFile(initPath))
        if let probe = spec.probe { initramfs.addFile("probe", data: try FS.readFile(probe)) }
        var config = MachineConfig(kernelPath: options.kernelPath, cpuProfile: options.cpuProfile)
        config.initrdBytes = initramfs.finish()
        config.memoryBytes = (spec.resources.memory.map { $0 + VMOptions.memoryMargin }) ?? VMOptions.defaultMemory
        config.vcpus = spec.resources.cpus.map { max(1, Int($0.rounded(.up))) } ?? 1
        config.consoleFD = options.showConsole ? 2 : nil
        let machine = try Machine(config: config)

        // --cpus: the vCPU count above, and a CPU quota on this process's
        // cgroup (the vCPU threads are ours), as Firecracker's jailer does.
        RunRecord.removeStale()
        let record = RunRecord.directory(for: spec.id)
        try RunRecord.create(record)
        var scope: ProcessCgroupScope?
        defer {
            scope?.restore()
            try? FS.removeTree(record)
        }
        if spec.resources.cpuQuota != nil {
            var limits = ResourceLimits()
            limits.cpuQuota = spec.resources.cpuQuota
            limits.cpuPeriod = spec.resources.cpuPeriod
            scope = try ProcessCgroupScope(id: spec.id, limits: limits)
            try RunRecord.record(record, cgroups: scope!.paths)
        }

        // Devices. The disk is the only one: /dev/vda in the guest.
        let console = ConsoleDevice(ports: [
            ("swvm.control", true), ("swvm.stdin", spec.interactive), ("swvm.stdout", true), ("swvm.stderr", true),
        ])
        try machine.addVirtioDevice(console, description: "virtio-console (control, stdin, stdout, stderr ports)")
        try machine.addVirtioDevice(try BlockDevice(path: disk, readOnly: true), description: "virtio-blk (the image's ext4 disk, read-only)")
        try machine.addVirtioDevice(RngDevice(), description: "virtio-rng")

        var result = VMResult(status: 125, startNanos: start, guestReadyNanos: nil, execNanos: nil, workloadPID: nil,
                              guestMemoryTouched: 0, guestMemorySize: config.memoryBytes, emulationFixups: [:],
                              seccompAllowedSyscalls: filter?.allowedSyscalls)
        let state = Locked(RunState())
        let control = console.ports[0], stdinPort = console.ports[1], stdoutPort = console.ports[2], stderrPort = console.ports[3]
        let terminal = spec.terminal ? HostTerminal(interactive: spec.interactive) : nil

        stdoutPort.onData = { bytes in _ = try? bytes.withUnsafeBytes { try FileDescriptor.writeAll(1, $0) } }
        stderrPort.onData = { bytes in _ = try? bytes.withUnsafeBytes { try FileDescriptor.writeAll(2, $0) } }
        var reader = GuestProtocol.Reader()
        let phases = Locked<[(String, Int)]>([])
        let window = terminal?.windowSize().map { (rows: $0.ws_row, cols: $0.ws_col) }
        control.onData = { [spec] bytes in
            for (type, payload) in reader.feed(bytes) {
                switch type {
                case GuestProtocol.ready:
                    state.with { $0.readyNanos = Clock.monotonicNanos() }
                    phases.with { $0.append(("setup", machine.profileSampleCount)) }
                    Log.debug("guest-init ready after \(formatFixed(Clock.secondsSince(start), 2)) s")
                    let cfg = RunSettings.encode(spec, seccompProgram: filter?.program, window: window,
                                                 level: .vm(rootDevice: "/dev/vda", hostTimeNanos: Clock.realtimeNanos(),
                                                            probeSource: spec.probe == nil ? nil : "/probe", entropy: nil))
                    console.send(GuestProtocol.frame(GuestProtocol.config, cfg), to: control)
                case GuestProtocol.started where payload.count >= 4:
                    let pid = le32(payload, 0)
                    let namespaces = payload.count >= 8 ? Namespaces.names(UInt(le32(payload, 4))) : []
                    state.with { $0.execNanos = Clock.monotonicNanos(); $0.pid = pid; $0.namespaces = namespaces }
                    phases.with { $0.append(("workload", machine.profileSampleCount)) }
                    Log.debug("workload started (guest pid \(pid)) after \(formatFixed(Clock.secondsSince(start), 2)) s")
                    self.onStart?(pid)
                case GuestProtocol.exit where payload.count >= 4:
                    Log.debug("workload exited after \(formatFixed(Clock.secondsSince(start), 2)) s")
                    console.drain()
                    state.with { $0.status = Int32(bitPattern: le32(payload, 0)) }
                    machine.stop(.stopped)
                case GuestProtocol.error:
                    console.drain()
                    let error = SwvmError.decode(payload) ?? SwvmError(.guestError, String(decoding: payload, as: UTF8.self))
                    state.with { $0.error = error }
                    machine.stop(.stopped)
                default:
                    break
                }
            }
        }

        // stdin: host -> guest, with EOF once everything queued is taken.
        // A pipe, socket or terminal is read when epoll says so; a regular
        // file or /dev/null (which epoll refuses, EPERM) is always readable,
        // so it is read whenever the guest has taken what was queued.
        if spec.interactive {
            let stdinFD: Int32 = 0
            var eof = false
            let pollable = VMRunner.isPollable(stdinFD)
            func pump() {
                guard !eof else { return }
                // Keep at most 1 MiB queued for the guest; resume when it drains.
                if console.pendingCount(stdinPort) > (1 << 20) { if pollable { machine.events.remove(fd: stdinFD) }; return }
                var buf = [UInt8](repeating: 0, count: 65536)
                let n = read(stdinFD, &buf, buf.count)
                if n > 0 {
                    console.send(Array(buf[0..<n]), to: stdinPort)
                } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                    eof = true
                    if pollable { machine.events.remove(fd: stdinFD) }
                    if console.pendingCount(stdinPort) == 0 { console.setHostConnected(stdinPort, false) }
                }
            }
            func pumpUnpollable() {
                while !eof && console.pendingCount(stdinPort) <= (1 << 20) { pump() }
            }
            console.onWritable = {
                if eof { console.setHostConnected(stdinPort, false) }
                else if pollable { try? machine.events.add(fd: stdinFD, events: UInt32(EPOLLIN.rawValue)) { _ in pump() } }
                else { pumpUnpollable() }
            }
            if pollable { try machine.events.add(fd: stdinFD, events: UInt32(EPOLLIN.rawValue)) { _ in pump() } }
            else { pumpUnpollable() }
        }

        let grace = Locked(StopGrace(seconds: spec.stopTimeout))
        machine.onSignal = { [spec] sig in
            if sig == SIGWINCH {
                if let ws = terminal?.windowSize() {
                    console.send(GuestProtocol.frame(GuestProtocol.resize, le16(ws.ws_row) + le16(ws.ws_col)), to: control)
                }
                return true
            }
            if sig == SIGPIPE { return true }
            // Before the workload runs there is nothing to forward to.
            guard state.with({ $0.pid != nil }) else { return false }
            func send(_ sig: Int32) { console.send(GuestProtocol.frame(GuestProtocol.signal, le32(UInt32(sig))), to: control) }
            guard StopGrace.isStopSignal(sig) else { send(sig); return true }
            if grace.with({ $0.stopRequested() }) { send(SIGKILL); return true }
            send(sig)
            // The grace period: then the workload is killed, as by a second signal.
            let seconds = spec.stopTimeout
            _ = try? NativeThread {
                var wait = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - seconds.rounded(.down)) * 1e9))
                var left = timespec()
                while nanosleep(&wait, &left) != 0 && errno == EINTR { wait = left }
                if state.with({ $0.status == nil && $0.error == nil }) { send(SIGKILL) }
            }
            return true
        }

        var tail = ConsoleTail()
        machine.onConsoleLine = { line in tail.append(line) }
        terminal?.start()
        let exit: MachineExit
        // SWVM_PROFILE=FILE: sample the guest's RIP (a development aid).
        let profilePath = FS.environment("SWVM_PROFILE")
        if let limit = FS.environment("SWVM_PROFILE_SECONDS").flatMap(Double.init) {
            _ = try NativeThread { usleep(UInt32(limit * 1e6)); machine.stop(.stopped) }
        }
        do {
            exit = try machine.run(profileIntervalMs: profilePath == nil ? nil : 10)
            if let p = profilePath {
                try Profiler.write(samples: machine.profileSamples, kernel: options.kernelPath, to: p, phases: phases.current)
            }
        } catch {
            terminal?.finish()
            throw error
        }
        terminal?.finish()

        let s = state.current
        result.guestReadyNanos = s.readyNanos
        result.execNanos = s.execNanos
        result.workloadPID = s.pid
        result.namespaces = s.namespaces
        result.guestMemoryTouched = machine.memory.residentBytes()
        result.emulationFixups = machine.emulationFixups
        result.devices = machine.attachedDevices
        result.vmmConfinement = VMRunner.describeConfinement(machine.confinedThreads.current)
        if let e = s.error { throw e }
        switch exit {
        case .stopped:
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
        var status: Int32?
        var error: SwvmError?
    }
}

/// The last lines of the guest console, shown when a VM fails.
struct ConsoleTail {
    private var lines: [String] = []

    mutating func append(_ line: String) {
        lines.append(line)
        if lines.count > 20 { lines.removeFirst() }
    }

    var hint: String {
        lines.isEmpty ? "" : "; last guest console lines:\n" + lines.joined(separator: "\n")
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
