#define _GNU_SOURCE
#include "CVMMJail.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define FAIL(name) do { *step = (name); return -1; } while (0)

static int kept(const struct swvm_jail *j, int fd) {
    if (fd <= 2) return 1;
    for (int i = 0; i < j->keep_count; i++) if (j->keep_fds[i] == fd) return 1;
    return 0;
}

/// Descriptors without close-on-exec came from swvm's caller: swvm opens
/// all of its own with it. Only the open ones are looked at (/proc/self/fd:
/// the descriptor limit may be a million).
static int close_inherited(const struct swvm_jail *j) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int inherited[256], count = 0, overflow = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        int fd = atoi(e->d_name);
        if (fd == dirfd(d) || kept(j, fd)) continue;
        int flags = fcntl(fd, F_GETFD);
        if (flags < 0 || (flags & FD_CLOEXEC)) continue;
        if (count < 256) inherited[count++] = fd; else overflow = 1;
    }
    closedir(d);
    for (int i = 0; i < count; i++) close(inherited[i]);
    // More than 256 inherited descriptors: go round again.
    return overflow ? close_inherited(j) : 0;
}

/// pivot_root(".", ".") then a lazy unmount of the old root (runc's way:
/// no directory for the old root is needed in the new one).
/// A procfs of the jail's own, mounted, opened at self/fd and detached.
static int open_private_proc(const struct swvm_jail *j, const char **step) {
    if (mount("proc", j->root_mount, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "subset=pid,hidepid=invisible") != 0)
        FAIL("mount the jail's procfs (subset=pid)");
    int dir = open(j->root_mount, O_PATH | O_DIRECTORY | O_CLOEXEC);
    int fd = dir < 0 ? -1 : openat(dir, "self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
    int saved = errno;
    if (dir >= 0) close(dir);
    if (fd < 0) { errno = saved; FAIL("open the jail's /proc/self/fd"); }
    if (umount2(j->root_mount, MNT_DETACH) != 0) { saved = errno; close(fd); errno = saved; FAIL("detach the jail's procfs"); }
    *j->proc_fd_out = fd;
    return 0;
}

static int enter_empty_root(const struct swvm_jail *j, const char **step) {
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) FAIL("make the mounts private");
    if (j->proc_fd_out && open_private_proc(j, step) != 0) return -1;
    if (mount("swvm-jail", j->root_mount, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "size=4k,nr_inodes=2,mode=0555") != 0) FAIL("mount the empty root");
    if (chdir(j->root_mount) != 0) FAIL("chdir to the empty root");
    if (syscall(SYS_pivot_root, ".", ".") != 0) FAIL("pivot_root");
    if (umount2(".", MNT_DETACH) != 0) FAIL("detach the old root");
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
        FAIL("remount the root read-only");
    if (chdir("/") != 0) FAIL("chdir /");
    return 0;
}

static int set_capabilities(uint64_t keep) {
    struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof d);
    d[0].permitted = d[0].effective = (uint32_t)keep;
    d[1].permitted = d[1].effective = (uint32_t)(keep >> 32);
    return (int)syscall(SYS_capset, &h, d);
}

static int drop_identity(const struct swvm_jail *j, const char **step) {
    // The bounding set first: dropping it needs CAP_SETPCAP.
    for (int cap = 0; cap < 64; cap++) {
        if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0) break;   // past the last capability
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) FAIL("drop the capability bounding set");
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) FAIL("clear the ambient capabilities");
    if (setgroups(0, NULL) != 0) FAIL("setgroups");
    if (j->keep_caps && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) FAIL("PR_SET_KEEPCAPS");
    if (setresgid(j->gid, j->gid, j->gid) != 0) FAIL("setresgid");
    if (setresuid(j->uid, j->uid, j->uid) != 0) FAIL("setresuid");
    if (set_capabilities(j->keep_caps) != 0) FAIL("capset");
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) FAIL("PR_SET_KEEPCAPS");
    uid_t r, e, s;
    if (getresuid(&r, &e, &s) != 0 || r != j->uid || e != j->uid || s != j->uid) {
        errno = EPERM;
        FAIL("check the uid");
    }
    return 0;
}

/// The parent-death signal again, after the uid switch cleared it; then
/// whether the monitor is still there (it may have ended in between, and
/// then the signal never comes). monitor_fd hangs up (a socket) or errs
/// (a pipe's write end) once the monitor is gone.
static int die_with_monitor(const struct swvm_jail *j, int death_signal, const char **step) {
    if (prctl(PR_SET_PDEATHSIG, death_signal, 0, 0, 0) != 0) FAIL("PR_SET_PDEATHSIG");
    struct pollfd p = { .fd = j->monitor_fd, .events = POLLIN, .revents = 0 };
    if (poll(&p, 1, 0) < 0) FAIL("poll the monitor's descriptor");
    if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) { errno = ESRCH; FAIL("check that the monitor is there"); }
    return 0;
}

/// The tests' window between the uid switch and the re-armed signal, where
/// a monitor that ends is seen only by die_with_monitor's check.
static void test_pause(const struct swvm_jail *j) {
    if (j->test_pause_ms <= 0) return;
    struct timespec t = { .tv_sec = j->test_pause_ms / 1000, .tv_nsec = (long)(j->test_pause_ms % 1000) * 1000000L };
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {}
}

int swvm_jail_apply(const struct swvm_jail *j, const char **step) {
    if (j->uid == 0 || j->gid == 0 || j->uid == (uid_t)-1 || j->gid == (gid_t)-1) {
        errno = EINVAL;
        FAIL("check the jail's uid and gid");
    }
    if (close_inherited(j) != 0) FAIL("close inherited descriptors");
    if (unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET) != 0)
        FAIL("unshare the mount, IPC, UTS and network namespaces");
    if (enter_empty_root(j, step) != 0) return -1;
    for (int i = 0; i < j->limit_count; i++) {
        struct rlimit l = { .rlim_cur = j->limits[i].value, .rlim_max = j->limits[i].value };
        if (setrlimit(j->limits[i].resource, &l) != 0) FAIL("setrlimit");
    }
    // Past RLIMIT_FSIZE a write fails with EFBIG instead of killing.
    if (signal(SIGXFSZ, SIG_IGN) == SIG_ERR) FAIL("ignore SIGXFSZ");
    /* A VMM spawned to die with its monitor (foreground or detached): the
     * uid switch clears the signal, so it is set again and the monitor
     * checked. Without a descriptor to check it by, a monitor gone in
     * between would go unseen: that fails closed. */
    int death_signal = 0;
    if (prctl(PR_GET_PDEATHSIG, &death_signal, 0, 0, 0) != 0) FAIL("PR_GET_PDEATHSIG");
    if (death_signal && j->monitor_fd < 0) { errno = EINVAL; FAIL("re-arm the parent-death signal (no monitor descriptor to check)"); }
    if (drop_identity(j, step) != 0) return -1;
    test_pause(j);
    if (death_signal && die_with_monitor(j, death_signal, step) != 0) return -1;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) FAIL("PR_SET_NO_NEW_PRIVS");
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) FAIL("PR_SET_DUMPABLE");
    return 0;
}

int swvm_jail_drop_thread_capabilities(void) { return set_capabilities(0); }

int swvm_jail_open_page_flags(void) {
    struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct saved[2], without[2];
    if (syscall(SYS_capget, &h, saved) != 0) return -1;
    memcpy(without, saved, sizeof saved);
    without[0].effective &= ~(1u << 21);   /* CAP_SYS_ADMIN */
    if (syscall(SYS_capset, &h, without) != 0) return -1;
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    int e = errno;
    if (syscall(SYS_capset, &h, saved) != 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    errno = e;
    return fd;
}

static void put(char **p, const char *s) { while (*s) *(*p)++ = *s++; }

static void put_number(char **p, long v) {
    char digits[24];
    int n = 0;
    if (v < 0) { *(*p)++ = '-'; v = -v; }
    do { digits[n++] = (char)('0' + v % 10); v /= 10; } while (v && n < 23);
    while (n) *(*p)++ = digits[--n];
}

static void put_hex(char **p, unsigned long v) {
    char digits[17];
    int n = 0;
    do { digits[n++] = "0123456789abcdef"[v & 15]; v >>= 4; } while (v && n < 16);
    put(p, "0x");
    while (n) *(*p)++ = digits[--n];
}

/// Async-signal-safe: no stdio, no malloc.
static void on_sigsys(int sig, siginfo_t *info, void *context) {
    (void)sig;
    char buf[240], *p = buf;
    put(&p, "swvm: the VMM's seccomp filter refused system call ");
    put_number(&p, info->si_syscall);
#if defined(__x86_64__)
    // ioctl is allowed for some requests only: name the one refused (the
    // second argument, in rsi when the call trapped).
    if (info->si_syscall == SYS_ioctl) {
        put(&p, " (ioctl request ");
        put_hex(&p, (unsigned long)((ucontext_t *)context)->uc_mcontext.gregs[REG_RSI]);
        put(&p, ")");
    }
#else
    (void)context;
#endif
    put(&p, " on thread ");
    long tid = (long)syscall(SYS_gettid);
    put_number(&p, tid);
    // Which thread made it tells where to look (vCPU and device threads
    // have no name the handler could read: their filters refuse prctl).
    if (tid == (long)getpid()) put(&p, " (the main thread)");
    put(&p, "; the VM is stopped\n");
    ssize_t ignored = write(2, buf, (size_t)(p - buf));
    (void)ignored;
    _exit(125);
}

int swvm_jail_report_seccomp_traps(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGSYS, &sa, NULL);
}

int swvm_jail_try_open(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) close(fd);
    return fd >= 0 ? 0 : -1;
}
