#if canImport(Glibc)
import Glibc
#endif
import CVMMJail
import CSyscalls
import Seccomp
import SwvmBase

/// What the VMM's jail applies (see `VMMJail.apply`).
public struct JailPlan {
    public var uid: UInt32
    public var gid: UInt32
    /// Keep the capabilities 9p's file server needs (a run with -v);
    /// without volumes the VMM keeps none.
    public var keepFileCapabilities: Bool
    /// An existing directory the empty root is mounted on, inside the jail's
    /// own mount namespace (the run's record directory).
    public var rootMountPoint: String
    /// RLIMIT_* and the value (soft and hard).
    public var limits: [(resource: Int32, value: UInt64)]
    /// Descriptors inherited from swvm's caller that stay open (--report-fd).
    public var keepDescriptors: [Int32] = []
    /// A descriptor that hangs up when the monitor whose child this VMM
    /// is ends (VMMMonitor's socket, a detached VM's report pipe): the VMM
    /// dies with it (swvm_jail.monitor_fd).
    public var monitorSocket: Int32?

    public init(uid: UInt32, gid: UInt32, keepFileCapabilities: Bool, rootMountPoint: String,
                limits: [(resource: Int32, value: UInt64)]) {
        self.uid = uid
        self.gid = gid
        self.keepFileCapabilities = keepFileCapabilities
        self.rootMountPoint = rootMountPoint
        self.limits = limits
    }
}

/// The VMM's jail, in the spirit of Firecracker's jailer, applied by the
/// VMM process to itself after it opened everything it needs and before
/// the guest runs an instruction (cold boot or restore): inherited
/// descriptors closed; new mount, IPC, UTS and network namespaces; an
/// empty read-only root with the host's detached; a uid and gid of its
/// own without groups; no capability (the 9p server's four with -v), no
/// bounding set, no_new_privs, not dumpable; rlimits; and one seccomp
/// filter for every thread (TSYNC). Any step that fails ends the run (125)
/// naming it: the guest never runs half-jailed.
public enum VMMJail {
    /// CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER and CAP_FSETID: what the 9p
    /// server needs to keep a share's owners 1:1 (its thread then drops
    /// CAP_FSETID itself, see NinePServer.confineThread).
    public static let fileCapabilities: UInt64 = (1 << 0) | (1 << 1) | (1 << 3) | (1 << 4)

    /// Test-only switches (bench/ and the jail's tests), never for users:
    /// SWVM_TEST_UNJAILED_VMM=1 runs the VMM as before the jail (to measure
    /// what the jail costs); SWVM_TEST_JAIL_OPEN=PATH makes the jailed VMM
    /// try to open PATH, which must fail; SWVM_TEST_JAIL_SOCKET=1 makes it
    /// call socket(2) on its main thread (=vcpu, =device: on that thread,
    /// see VMMSeccomp.injectTestTrap), which its seccomp filter traps;
    /// SWVM_TEST_JAIL_IOCTL=1 makes it make an ioctl request outside the
    /// filter's list (TIOCSTI on stderr); SWVM_TEST_JAIL_PAUSE_AFTER_UID=MS
    /// makes the jail wait MS ms after its uid switch (see swvm_jail's
    /// test_pause_ms). Only a debug build
    /// (the tests') reads them: in a release build the jail cannot be
    /// turned off by anything a user sets.
    #if DEBUG
    public static var skippedForTests: Bool { FS.environment("SWVM_TEST_UNJAILED_VMM") == "1" }
    static var faultInjectionPath: String? { FS.environment("SWVM_TEST_JAIL_OPEN").flatMap { $0.isEmpty ? nil : $0 } }
    static var trapInjected: Bool { FS.environment("SWVM_TEST_JAIL_SOCKET") == "1" }
    static var ioctlTrapInjected: Bool { FS.environment("SWVM_TEST_JAIL_IOCTL") == "1" }
    static var pauseAfterUIDSwitch: Int32 { FS.environment("SWVM_TEST_JAIL_PAUSE_AFTER_UID").flatMap { Int32($0) } ?? 0 }
    #else
    public static var skippedForTests: Bool { false }
    static var faultInjectionPath: String? { nil }
    static var trapInjected: Bool { false }
    static var ioctlTrapInjected: Bool { false }
    static var pauseAfterUIDSwitch: Int32 { 0 }
    #endif

    /// Applies `plan`, then loads `filter` on every thread (TSYNC). Call
    /// while the process has one thread. Returns the jail's /proc/self/fd
    /// (see swvm_jail.proc_fd_out) when the plan keeps file capabilities.
    @discardableResult
    public static func apply(_ plan: JailPlan, filter: SeccompFilter) throws -> Int32? {
        try checkSingleThreaded()
        _ = hostPID   // read from /proc, which the jail takes away
        guard swvm_jail_report_seccomp_traps() == 0 else { throw failure("install the SIGSYS reporter") }
        var limits = plan.limits.map { swvm_jail_limit(resource: $0.resource, value: $0.value) }
        var keep = plan.keepDescriptors
        var failedStep: UnsafePointer<CChar>?
        var procFD: Int32 = -1
        let rc = plan.rootMountPoint.withCString { root in
            limits.withUnsafeMutableBufferPointer { l in
                keep.withUnsafeMutableBufferPointer { k in
                    var j = swvm_jail(uid: plan.uid, gid: plan.gid,
                                      keep_caps: plan.keepFileCapabilities ? fileCapabilities : 0,
                                      root_mount: root, limits: l.baseAddress, limit_count: Int32(l.count),
                                      keep_fds: k.baseAddress, keep_count: Int32(k.count), proc_fd_out: nil,
                                      monitor_fd: plan.monitorSocket ?? -1, test_pause_ms: pauseAfterUIDSwitch)
                    return withUnsafeMutablePointer(to: &procFD) { out in
                        if plan.keepFileCapabilities { j.proc_fd_out = out }
                        return swvm_jail_apply(&j, &failedStep)
                    }
                }
            }
        }
        guard rc == 0 else { throw failure(failedStep.map { String(cString: $0) } ?? "an unnamed step") }
        let flagTSYNC: UInt32 = 1
        let loaded = filter.program.withUnsafeBytes { p in
            sys_seccomp_set_filter(p.baseAddress, UInt16(filter.instructionCount), flagTSYNC)
        }
        guard loaded == 0 else { throw failure("load the process-wide seccomp filter (TSYNC)") }
        if trapInjected {
            _ = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)   // ends the process (SIGSYS)
        }
        if ioctlTrapInjected {
            var c: UInt8 = 0x20
            _ = sys_ioctl_ptr(2, 0x5412, &c)   // TIOCSTI: ends the process (SIGSYS)
        }
        if let path = faultInjectionPath {
            // The test's fault: a jailed VMM must not reach the host's files.
            if swvm_jail_try_open(path) == 0 {
                throw SwvmError(.systemCall, "VMM jail: test fault: the jailed VMM opened \(path)")
            }
            throw SwvmError.errno("VMM jail: test fault: the jailed VMM could not open \(path)")
        }
        return procFD >= 0 ? procFD : nil
    }

    /// unshare and capset act on the calling thread: a second thread would
    /// stay outside the jail.
    static func checkSingleThreaded() throws {
        let status = (try? FS.readText("/proc/self/status")) ?? ""
        let threads = status.split(separator: "\n").first { $0.hasPrefix("Threads:") }
            .flatMap { Int(String($0.dropFirst(8)).trimmingCharacters(in: " ").trimmingCharacters(in: "\t")) }
        guard threads == 1 else {
            throw SwvmError(.internalError, "VMM jail: the VMM has \(threads.map(String.init) ?? "an unknown number of") threads; the jail needs exactly one")
        }
    }

    static func failure(_ step: String, _ err: Int32 = errno) -> SwvmError {
        SwvmError(.systemCall, "VMM jail: \(step): \(String(cString: strerror(err))) (the VM was not started)")
    }

    /// rlimits for a VMM that holds `openDescriptors` and runs `threads`
    /// threads: NOFILE what is open plus a margin (9p's fids with volumes),
    /// CORE 0, NPROC its threads plus a margin (the uid is its alone),
    /// FSIZE what it must still write (0 when nothing).
    public static func limits(openDescriptors: Int, threads: Int, volumes: Bool, largestWrite: UInt64?) -> [(resource: Int32, value: UInt64)] {
        let fileMargin = volumes ? 16384 + 64 : 64
        return [
            (rlimitNOFILE, UInt64(openDescriptors + fileMargin)),
            (rlimitCORE, 0),
            (rlimitNPROC, UInt64(threads + 8)),
            (rlimitFSIZE, largestWrite ?? 0),
        ]
    }

    /// Linux's RLIMIT_* numbers (glibc's enum does not reach Swift whole).
    public static let rlimitFSIZE: Int32 = 1, rlimitCORE: Int32 = 4, rlimitNPROC: Int32 = 6, rlimitNOFILE: Int32 = 7

    /// The highest open descriptor plus one.
    public static func openDescriptorBound() -> Int {
        let names = (try? FS.listDirectory("/proc/self/fd")) ?? []
        return (names.compactMap { Int($0) }.max() ?? 2) + 1
    }

    /// Whether `fd` is a regular file (FSIZE then limits writes to it).
    public static func isRegularFile(_ fd: Int32) -> Bool {
        var st = stat()
        return fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    /// The VMM is PID 1 of a pid namespace of its own (Spawn.vmm), and the
    /// kernel drops a signal that PID 1 neither handles nor blocks. So the
    /// signals the VM's main loop forwards (Machine.run reads them from a
    /// signalfd) are blocked at once, before any thread exists (threads
    /// inherit the mask): one sent before the VM runs (`swvm run`'s
    /// monitor forwards kill's) waits for it instead of vanishing.
    public static func holdForwardedSignals() {
        var set = sigset_t()
        sys_vmm_forwarded_signals(&set)
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Drops every capability of the calling thread.
    /// Holds /proc/self/pagemap for after the jail, without physical frame
    /// numbers (swvm_jail_open_page_flags): a template save reads its page flags.
    public static func holdPageFlags() throws {
        let fd = swvm_jail_open_page_flags()
        guard fd >= 0 else { throw SwvmError.errno("open /proc/self/pagemap") }
        ProcSelf.adopt("pagemap", descriptor: fd)
    }

    public static func dropThreadCapabilities() throws {
        guard swvm_jail_drop_thread_capabilities() == 0 else { throw SwvmError.errno("capset (drop this thread's capabilities)") }
    }
}
