#if canImport(Glibc)
import Glibc
#endif
import CKVM
import CSyscalls
import CVMMJail
import Seccomp
import SwvmBase

/// Seccomp filters for the VMM's threads that handle what the guest does,
/// in the spirit of Firecracker's: the vCPU threads (every exit the guest
/// causes), the device thread (every virtqueue the guest fills, but 9p's)
/// and the 9p server thread (the guest's file requests). Each may make
/// only the system calls its loop needs; anything else fails with EPERM.
/// None of them may map memory executable.
///
/// The main thread, which sets the VM up and saves snapshots, carries only
/// the jail's process-wide filter (`processProfile`), which every thread
/// carries too; it shares these threads' address space: a thread's filter
/// bounds what code taken over on that thread can call, not what the
/// process can do.
public enum VMMSeccomp {
    /// What any Swift thread needs to live and die (mmap and mprotect
    /// come with `memoryWithoutExec`, tgkill with `tgkillOwnProcess`).
    static let common = [
        "read", "write", "futex", "munmap", "mremap", "brk", "madvise", "rt_sigreturn",
        "rt_sigprocmask", "sigaltstack", "exit", "exit_group", "getpid", "gettid", "sched_yield",
        "clock_gettime", "nanosleep", "clock_nanosleep", "restart_syscall", "close",
    ]

    /// tgkill (pthread_kill: the vCPUs' kicks, and abort) to this process's
    /// threads only: its first argument, the thread group, must be
    /// getpid(). The profiles name a placeholder, so a filter compiles once
    /// (through the cache) for every run; `compile` puts the id in. The
    /// placeholder is above any pid (pid_max is at most 2^22) and is no
    /// other constant of these profiles. The int's low 32 bits only, as for
    /// the vCPU's descriptor.
    static let ownProcessPlaceholder: UInt32 = 0x5357_564d   // "SWVM"
    static let tgkillOwnProcess = SeccompProfile.Rule(
        names: ["tgkill"], action: .allow,
        args: [.init(index: 0, value: 0xffff_ffff, valueTwo: UInt64(ownProcessPlaceholder), op: .maskedEqual)])

    /// What every VMM thread may call: `common`, `memoryWithoutExec`, `tgkillOwnProcess`.
    static var commonRules: [SeccompProfile.Rule] { [.init(names: common, action: .allow), memoryWithoutExec, tgkillOwnProcess] }

    /// A profile of this file compiled for this process (native ABI only;
    /// the thread group of tgkill's rule made getpid()).
    public static func compile(_ profile: SeccompProfile) throws -> SeccompFilter {
        try SeccompCompiler.compile(profile, compatArches: false).replacingConstant(ownProcessPlaceholder, with: UInt32(bitPattern: getpid()))
    }

    /// mmap and mprotect, only without PROT_EXEC (their third argument):
    /// malloc maps memory, and glibc makes a thread's malloc arena with
    /// mprotect (refused, malloc falls back to one mmap per allocation
    /// after a failed arena attempt each time; seen: the 9p server thread
    /// spent its time in that loop, 200 ms per 4 KiB read). No mapping of
    /// these threads becomes executable: pkey_mprotect is not allowed at
    /// all, and mremap keeps a mapping's protection. (The 9p thread can
    /// still write into the VMM's code through /proc/self/mem; see
    /// `shareServerProfile`.)
    static let memoryWithoutExec = SeccompProfile.Rule(
        names: ["mmap", "mprotect"], action: .allow,
        args: [.init(index: 2, value: UInt64(PROT_EXEC), valueTwo: 0, op: .maskedEqual)])

    /// The KVM requests the vCPU loop makes (Machine.vcpuLoop and what it
    /// calls): KVM_RUN; KVM_GET_REGS, KVM_SET_REGS and KVM_GET/SET_VCPU_EVENTS
    /// for emulation fix-ups (step over an instruction, inject #BP);
    /// KVM_GET_SREGS and KVM_TRANSLATE to read guest memory by virtual
    /// address (error messages, profile samples); KVM_GET_MP_STATE for
    /// halt checks. Snapshots are saved and restored on the main thread.
    static let vcpuLoopRequests: [UInt] = [
        ckvm_KVM_RUN, ckvm_KVM_GET_REGS, ckvm_KVM_SET_REGS, ckvm_KVM_GET_VCPU_EVENTS, ckvm_KVM_SET_VCPU_EVENTS,
        ckvm_KVM_GET_SREGS, ckvm_KVM_TRANSLATE, ckvm_KVM_GET_MP_STATE,
    ]

    /// A vCPU thread: `vcpuLoopRequests` on its own vCPU's descriptor
    /// (`vcpuFD`) and no other ioctl, so no request on the VM or /dev/kvm
    /// (no KVM_SET_USER_MEMORY_REGION, no KVM_CREATE_*) and none on
    /// another vCPU.
    public static func vcpuProfile(vcpuFD: Int32) -> SeccompProfile {
        // The descriptor is an int: compare its low 32 bits only (the
        // register's upper half is not defined for an int argument).
        let onItsVCPU = SeccompProfile.Argument(index: 0, value: 0xffff_ffff, valueTwo: UInt64(UInt32(bitPattern: vcpuFD)),
                                                op: .maskedEqual)
        let ioctls = vcpuLoopRequests.map {
            SeccompProfile.Rule(names: ["ioctl"], action: .allow, args: [onItsVCPU, .init(index: 1, value: UInt64($0), op: .equal)])
        }
        return SeccompProfile(defaultAction: .errno(1), rules: commonRules + ioctls)
    }

    /// TUNSETOFFLOAD: virtio-net tells its tap which offloads the guest's
    /// driver negotiated when the tap is attached (on the device thread
    /// after a cold boot; a warm start attaches it on the main thread).
    static let tunSetOffload: UInt64 = 0x4004_54d0

    /// The device thread: epoll, the disk's reads and writes, getrandom
    /// (virtio-rng, the settings' entropy), and two ioctls: TUNSETOFFLOAD
    /// and TIOCGWINSZ (the terminal's size for the settings). It opens
    /// nothing: what it serves (disk, tap) was opened on the main thread.
    /// After a cold boot it sends the settings, so it also checks whether
    /// stdin can be polled, with an epoll of its own (epoll_create1).
    public static func deviceProfile() -> SeccompProfile {
        SeccompProfile(defaultAction: .errno(1), rules: commonRules + [
            .init(names: ["epoll_wait", "epoll_pwait", "epoll_ctl", "epoll_create1", "pread64", "pwrite64",
                          "preadv", "pwritev", "fdatasync", "fsync", "getrandom"], action: .allow),
            .init(names: ["ioctl"], action: .allow, args: [.init(index: 1, value: tunSetOffload, op: .equal)]),
            .init(names: ["ioctl"], action: .allow, args: [.init(index: 1, value: UInt64(sys_TIOCGWINSZ), op: .equal)]),
        ])
    }

    /// virtio-9p's file server: the file calls its requests need, and no
    /// ioctl, socket, exec or new thread. seccomp cannot check a path, so
    /// the calls that take one (openat, openat2, mkdirat, linkat,
    /// renameat, fchownat...) accept any, absolute or relative to
    /// AT_FDCWD. The server's own code keeps to the shares (openat2
    /// RESOLVE_BENEATH from the share's descriptor, or /proc/self/fd of
    /// one it opened that way); code taken over on this thread could open
    /// any file the VMM can, /proc/self/mem included, until the VMM runs
    /// in a jail rooted at the shares.
    public static func shareServerProfile() -> SeccompProfile {
        SeccompProfile(defaultAction: .errno(1), rules: commonRules + [
            .init(names: ["poll", "ppoll", "openat", "openat2", "newfstatat", "fstat", "statx", "fstatfs",
                          "getdents64", "lseek", "pread64", "pwrite64", "mkdirat", "unlinkat", "renameat",
                          "renameat2", "symlinkat", "readlinkat", "linkat", "mknodat", "fchownat", "fchmodat",
                          "fchmod", "fchown", "ftruncate", "utimensat", "fsync", "fdatasync", "dup"],
                  action: .allow),
        ])
    }

    /// The control socket's thread (MicroVM's ControlServer): poll, accept
    /// its clients, their messages and passed descriptors, reads and
    /// writes of those descriptors; no ioctl, no open, no new socket. It
    /// reaches the guest through the console device's queue, and the vCPUs
    /// through the eventfds of a pause.
    public static func controlServerProfile() -> SeccompProfile {
        SeccompProfile(defaultAction: .errno(1), rules: commonRules + [
            .init(names: ["poll", "ppoll", "accept4", "recvmsg", "sendmsg", "sendto"], action: .allow),
        ])
    }

    /// Drops every capability of the calling thread (capset changes one
    /// thread only; a capability gone from the permitted set cannot return).
    public static func dropThreadCapabilities() throws {
        guard swvm_jail_drop_thread_capabilities() == 0 else { throw SwvmError.errno("capset (drop this thread's capabilities)") }
    }

    /// The filter every thread of a jailed VMM carries (loaded with TSYNC
    /// before the VM's threads exist; the threads' own filters stack on
    /// it): the union of what the threads and the main thread call, and no
    /// exec, no new process, no socket, no mount or namespace call, no
    /// ptrace, no executable memory. A call outside it traps: the VMM says
    /// which and ends with 125 (see swvm_jail_report_seccomp_traps), rather
    /// than failing somewhere unclear.
    public static func processProfile() -> SeccompProfile {
        let calls = [
            // the device and 9p threads, and the main loop
            "epoll_wait", "epoll_pwait", "epoll_ctl", "epoll_create1", "poll", "ppoll", "pread64", "pwrite64", "preadv",
            "pwritev", "readv", "writev", "fdatasync", "fsync", "getrandom", "openat", "openat2", "newfstatat", "fstat",
            "statx", "fstatfs", "getdents64", "lseek", "mkdirat", "unlinkat", "renameat", "renameat2", "symlinkat",
            "readlinkat", "linkat", "mknodat", "fchownat", "fchmodat", "fchmod", "fchown", "ftruncate", "utimensat",
            "dup", "dup3", "fcntl", "mincore",
            // the control socket's thread
            "accept4",
            // the main thread: signals, the keeper (ioctl: `jailedIoctls`)
            "eventfd2", "signalfd4", "rt_sigaction", "rt_sigtimedwait", "wait4", "sendmsg", "recvmsg", "sendto",
            "recvfrom", "set_robust_list", "rseq", "sched_getaffinity", "capget", "capset", "getuid", "geteuid", "getgid",
            "getegid", "getppid", "uname", "clock_getres", "gettimeofday", "membarrier",
        ]
        let prctlOptions: [UInt64] = [15, 16, 38, 39]   // PR_SET_NAME, PR_GET_NAME, PR_SET/GET_NO_NEW_PRIVS
        let cloneThread = UInt64(0x0001_0000)           // CLONE_THREAD
        return SeccompProfile(defaultAction: .trap, rules: commonRules + [
            .init(names: calls, action: .allow),
            // New threads only (pthread_create); clone3's flags are out of
            // reach of a filter, so it is refused and glibc falls back to clone.
            .init(names: ["clone"], action: .allow, args: [.init(index: 0, value: cloneThread, valueTwo: cloneThread, op: .maskedEqual)]),
            .init(names: ["clone3"], action: .errno(UInt32(ENOSYS))),
            // Calls by path that code shared with the unjailed paths still
            // makes (a lock file's unlink): in the empty root they could
            // reach nothing, so they fail as there instead of trapping.
            .init(names: ["unlink", "rmdir", "mkdir", "rename", "open", "stat", "lstat", "access", "readlink"],
                  action: .errno(UInt32(ENOENT))),
            // The threads' own filters: SECCOMP_SET_MODE_FILTER only.
            .init(names: ["seccomp"], action: .allow, args: [.init(index: 0, value: 1, op: .equal)]),
            // Reading limits only (a NULL new limit).
            .init(names: ["prlimit64"], action: .allow, args: [.init(index: 2, value: 0, op: .equal)]),
        ] + prctlOptions.map { .init(names: ["prctl"], action: .allow, args: [.init(index: 0, value: $0, op: .equal)]) }
          + jailedIoctls.map { .init(names: ["ioctl"], action: .allow, args: [.init(index: 1, value: $0, op: .equal)]) })
    }

    /// TCGETS (isatty, tcgetattr) and TCSETS (tcsetattr TCSANOW: the
    /// terminal's mode put back at the end), x86-64's numbers.
    static let terminalGet: UInt64 = 0x5401, terminalSet: UInt64 = 0x5402

    /// The only ioctl requests a jailed VMM makes (any other traps): the
    /// vCPU loop's; what saving a snapshot after a cold boot reads (the
    /// vCPUs' state, the irqchip, PIT and clock, the MSR list on /dev/kvm,
    /// KVM_CHECK_EXTENSION for the XSAVE size); the tap's offloads; the
    /// terminal's size and mode. Nothing that creates a VM or vCPU, maps
    /// memory into the guest, or sets state: those happen before the jail.
    /// (The descriptor is not checked here: the vCPU threads' own filters
    /// check theirs.)
    static var jailedIoctls: [UInt64] {
        let kvm = vcpuLoopRequests + [
            ckvm_KVM_GET_FPU, ckvm_KVM_GET_XSAVE, ckvm_KVM_GET_XSAVE2, ckvm_KVM_GET_XCRS, ckvm_KVM_GET_DEBUGREGS,
            ckvm_KVM_GET_LAPIC, ckvm_KVM_GET_MSRS, ckvm_KVM_GET_MSR_INDEX_LIST, ckvm_KVM_GET_IRQCHIP, ckvm_KVM_GET_PIT2,
            ckvm_KVM_GET_CLOCK, ckvm_KVM_GET_TSC_KHZ, ckvm_KVM_CHECK_EXTENSION,
        ]
        return kvm.map { UInt64($0) } + [tunSetOffload, UInt64(sys_TIOCGWINSZ), terminalGet, terminalSet]
    }

    /// Test-only, like VMMJail's switches (a debug build's tests, never a
    /// release build): SWVM_TEST_JAIL_SOCKET=THREAD ("vcpu", "device")
    /// makes that thread call socket(2) once its filters are loaded; the
    /// jail's filter traps it there, not on the main thread.
    /// SWVM_TEST_JAIL_TGKILL=THREAD:PID makes it send signal 0 to process
    /// PID with tgkill, which traps unless PID is the VMM's own.
    public static func injectTestTrap(thread: String) {
        #if DEBUG
        if FS.environment("SWVM_TEST_JAIL_SOCKET") == thread { _ = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0) }
        if let target = FS.environment("SWVM_TEST_JAIL_TGKILL"), target.hasPrefix(thread + ":"),
           let pid = Int32(target.dropFirst(thread.count + 1)) {
            _ = sys_tgkill(pid, pid, 0)
        }
        #endif
    }

    /// Confines the calling thread (no_new_privs first, as seccomp requires).
    public static func confineCurrentThread(_ filter: SeccompFilter) throws {
        try confineCurrentThread(ThreadFilter(filter))
    }

    static func confineCurrentThread(_ filter: ThreadFilter) throws {
        try sys("prctl(PR_SET_NO_NEW_PRIVS)") { sys_prctl(38, 1, 0, 0, 0) }
        _ = try filter.program.withUnsafeBytes { p in
            try sys("seccomp (VMM thread)") { sys_seccomp_set_filter(p.baseAddress, UInt16(p.count / 8), 0) }
        }
    }
}

/// What a VMM thread needs of its compiled filter, copied out of the
/// SeccompFilter for the thread that loads it.
struct ThreadFilter: Sendable {
    let program: [UInt8]
    let allowedSyscalls: Int

    init(_ filter: SeccompFilter) {
        program = filter.program
        allowedSyscalls = filter.allowedSyscalls
    }
}
