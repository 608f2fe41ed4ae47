#if canImport(Glibc)
import Glibc
#endif
import CSyscalls
import Seccomp
import SwvmBase

/// Seccomp filters for the VMM's own threads, in the spirit of
/// Firecracker's: the vCPU threads (which handle every exit the guest
/// causes) and the device thread (which parses every virtqueue the guest
/// fills) may make only the system calls their loops need. Anything else
/// fails with EPERM. The main thread, which sets the VM up and cleans up
/// after it, is not filtered.
public enum VMMSeccomp {
    /// What any Swift thread needs to live and die.
    static let common = [
        "read", "write", "futex", "mmap", "munmap", "mremap", "brk", "madvise", "rt_sigreturn",
        "rt_sigprocmask", "sigaltstack", "exit", "exit_group", "getpid", "gettid", "tgkill", "sched_yield",
        "clock_gettime", "nanosleep", "clock_nanosleep", "restart_syscall", "close",
    ]

    /// mprotect without PROT_EXEC: glibc makes a thread's malloc arena
    /// with it. Refused, malloc falls back to one mmap per allocation after
    /// a failed arena attempt each time (seen: the 9p server thread spent
    /// its time in that loop, 200 ms per 4 KiB read). No memory of a
    /// confined thread can become executable.
    static let mprotectNoExec = SeccompProfile.Rule(names: ["mprotect"], action: .allow,
                                                    args: [.init(index: 2, value: UInt64(PROT_EXEC), valueTwo: 0, op: .maskedEqual)])

    /// KVM's ioctl type byte: every KVM request is (x & 0xff00) == 0xae00.
    static let kvmIoctlType: UInt64 = 0xae00

    public static func vcpuProfile() -> SeccompProfile {
        SeccompProfile(defaultAction: .errno(1), rules: [
            .init(names: common, action: .allow),
            mprotectNoExec,
            .init(names: ["ioctl"], action: .allow, args: [.init(index: 1, value: 0xff00, valueTwo: kvmIoctlType, op: .maskedEqual)]),
        ])
    }

    /// TUNSETOFFLOAD: virtio-net tells its tap which offloads the guest's
    /// driver negotiated when the tap is attached (on the device thread).
    static let tunSetOffload: UInt64 = 0x4004_54d0

    public static func deviceProfile() -> SeccompProfile {
        SeccompProfile(defaultAction: .errno(1), rules: [
            .init(names: common + ["epoll_wait", "epoll_pwait", "epoll_ctl", "pread64", "pwrite64", "preadv", "pwritev",
                                   "fdatasync", "fsync", "getrandom"], action: .allow),
            mprotectNoExec,
            .init(names: ["ioctl"], action: .allow, args: [.init(index: 1, value: tunSetOffload, op: .equal)]),
        ])
    }

    /// virtio-9p's file server: file system calls on descriptors it
    /// already holds (no open of an absolute path: openat2 and openat take
    /// the share's or /proc/self/fd's descriptor), and nothing else.
    public static func shareServerProfile() -> SeccompProfile {
        SeccompProfile(defaultAction: .errno(1), rules: [
            .init(names: common + ["poll", "ppoll", "openat", "openat2", "newfstatat", "fstat", "statx", "fstatfs",
                                   "getdents64", "lseek", "pread64", "pwrite64", "mkdirat", "unlinkat", "renameat",
                                   "renameat2", "symlinkat", "readlinkat", "linkat", "mknodat", "fchownat", "fchmodat",
                                   "fchmod", "fchown", "ftruncate", "utimensat", "fsync", "fdatasync", "dup"],
                  action: .allow),
            mprotectNoExec,
        ])
    }

    /// Confines the calling thread (no_new_privs first, as seccomp requires).
    public static func confineCurrentThread(_ filter: SeccompFilter) throws {
        try sys("prctl(PR_SET_NO_NEW_PRIVS)") { sys_prctl(38, 1, 0, 0, 0) }
        _ = try filter.program.withUnsafeBytes { p in
            try sys("seccomp (VMM thread)") { sys_seccomp_set_filter(p.baseAddress, UInt16(filter.instructionCount), 0) }
        }
    }
}
