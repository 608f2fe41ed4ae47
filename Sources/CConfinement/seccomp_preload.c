/*
 * Whether a template may hold the workload's seccomp filter already
 * loaded (issue 22): loading a large filter costs a noticeable part of a
 * restored run in an emulated guest kernel, and the filter is part of the
 * template's key. Once loaded, though, it also confines the child's own
 * steps after the template point (reading the per-run settings, the
 * working directory, /etc files, rlimits, stdio, the user, capabilities,
 * execve). So it is loaded early only if it allows every system call
 * those steps may make, whatever their arguments; otherwise it is loaded
 * where it always was, just before the exec. Any doubt means "no".
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include "swvm_confine.h"

/* The system calls of swvm_confine_template_exec after the template
 * point, of musl's functions it calls (malloc, stat, access, setrlimit,
 * dup2) and of its error report, with each alternative musl may take. */
static const int setup_syscalls[] = {
    SYS_read, SYS_write, SYS_close, SYS_brk, SYS_mmap, SYS_munmap, SYS_mremap, SYS_madvise,
    SYS_open, SYS_openat, SYS_openat2, SYS_mkdirat, SYS_readlinkat, SYS_unlinkat,
    SYS_stat, SYS_lstat, SYS_fstat, SYS_newfstatat, SYS_access, SYS_faccessat, SYS_faccessat2,
    SYS_prlimit64, SYS_setrlimit, SYS_dup2, SYS_dup3, SYS_fcntl, SYS_chdir, SYS_umask,
    SYS_prctl, SYS_setgroups, SYS_setresgid, SYS_setresuid, SYS_capset, SYS_capget,
    SYS_rt_sigaction, SYS_rt_sigprocmask, SYS_close_range, SYS_execve, SYS_exit, SYS_exit_group,
    SYS_getpid, SYS_gettid,
};
/* With a terminal (TIOCSCTTY) and with --init (PID 1 forks the workload,
 * forwards signals and reaps). */
static const int terminal_syscalls[] = { SYS_ioctl };
static const int init_syscalls[] = { SYS_clone, SYS_wait4, SYS_rt_sigtimedwait, SYS_kill };

#define AUDIT_ARCH_X86_64_ 0xc000003eu
#define SECCOMP_RET_ALLOW_ 0x7fff0000u

/* Runs a classic BPF seccomp program for system call `nr` of x86_64 whose
 * arguments in the bit mask `known` are `args` and the rest unknown: 1 if it surely
 * returns ALLOW, 0 for any other action and whenever the result depends
 * on an unknown argument or the instruction pointer, or the program uses
 * anything beyond loads of nr, arch and arguments, constant jumps and
 * returns (libseccomp's shape). */
static int allows_call(const uint8_t *prog, uint32_t ninsns, int nr, const uint64_t *args, uint32_t known) {
    uint32_t a = 0;
    for (uint32_t pc = 0, steps = 0; pc < ninsns && steps < 4096; steps++) {
        uint16_t code; uint8_t jt, jf; uint32_t k;
        memcpy(&code, prog + pc * 8, 2);
        jt = prog[pc * 8 + 2];
        jf = prog[pc * 8 + 3];
        memcpy(&k, prog + pc * 8 + 4, 4);
        pc++;
        switch (code) {
        case 0x20:   /* BPF_LD | BPF_W | BPF_ABS */
            if (k == 0) a = (uint32_t)nr;
            else if (k == 4) a = AUDIT_ARCH_X86_64_;
            else if (k >= 16 && k < 64 && k % 4 == 0 && (known >> ((k - 16) / 8) & 1))
                a = (uint32_t)(args[(k - 16) / 8] >> ((k - 16) % 8 ? 32 : 0));
            else return 0;   /* the instruction pointer or an unknown argument */
            break;
        case 0x54: a &= k; break;                                /* BPF_ALU | BPF_AND | BPF_K */
        case 0x05: pc += k; break;                               /* BPF_JMP | BPF_JA */
        case 0x15: pc += a == k ? jt : jf; break;                /* BPF_JEQ | BPF_K */
        case 0x25: pc += a > k ? jt : jf; break;                 /* BPF_JGT | BPF_K */
        case 0x35: pc += a >= k ? jt : jf; break;                /* BPF_JGE | BPF_K */
        case 0x45: pc += (a & k) ? jt : jf; break;               /* BPF_JSET | BPF_K */
        case 0x06: return k == SECCOMP_RET_ALLOW_;               /* BPF_RET | BPF_K */
        default: return 0;
        }
    }
    return 0;
}

static int allows_all(const uint8_t *prog, uint32_t ninsns, const int *nrs, size_t count) {
    for (size_t i = 0; i < count; i++)
        if (!allows_call(prog, ninsns, nrs[i], NULL, 0)) return 0;
    return 1;
}

int swvm_seccomp_allows_template_setup(const uint8_t *filter, uint32_t len, int terminal, int init) {
    if (!filter || len == 0 || len % 8 != 0 || len / 8 > 4096) return 0;
    uint32_t n = len / 8;
    return allows_all(filter, n, setup_syscalls, sizeof setup_syscalls / sizeof *setup_syscalls)
        && (!terminal || allows_all(filter, n, terminal_syscalls, 1))
        && (!init || allows_all(filter, n, init_syscalls, sizeof init_syscalls / sizeof *init_syscalls));
}

/* An exec zygote's own calls (guest-init's exec.c: requests and fds over
 * a socket, decoded with malloc, the pid written back) and its children's
 * before their process stage (the cgroup join is a write; setsid; with a
 * terminal, the pty's ioctls and its master sent on). */
static const int zygote_syscalls[] = { SYS_recvmsg, SYS_sendmsg, SYS_setsid, SYS_ioctl };

int swvm_seccomp_allows_exec_zygote(const uint8_t *filter, uint32_t len) {
    if (!filter || len == 0 || len % 8 != 0 || len / 8 > 4096) return 0;
    uint32_t n = len / 8;
    /* The zygote's one clone, as swvm_zygote_spawn makes it: these flags,
     * no tids or TLS (x86_64: flags, stack, parent tid, child tid, tls),
     * and a stack address a filter must not depend on. */
    const uint64_t clone_args[5] = { SWVM_ZYGOTE_CLONE_FLAGS, 0, 0, 0, 0 };
    const uint32_t known = 1u << 0 | 1u << 2 | 1u << 3 | 1u << 4;
    return allows_all(filter, n, setup_syscalls, sizeof setup_syscalls / sizeof *setup_syscalls)
        && allows_all(filter, n, zygote_syscalls, sizeof zygote_syscalls / sizeof *zygote_syscalls)
        && allows_call(filter, n, SYS_clone, clone_args, known);
}
