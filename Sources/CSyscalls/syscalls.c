#define _GNU_SOURCE
#include "CSyscalls.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>
#include <linux/openat2.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <malloc.h>

int sys_malloc_trim(void) { return malloc_trim(0); }
int sys_ioctl_int(int fd, unsigned long request, unsigned long arg) { return ioctl(fd, request, arg); }
int sys_ioctl_ptr(int fd, unsigned long request, void *arg) { return ioctl(fd, request, arg); }
int sys_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5) {
    return prctl(option, a2, a3, a4, a5);
}

int sys_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve) {
    struct open_how how = { .flags = flags, .mode = mode, .resolve = resolve };
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

long sys_getdents64(int fd, void *buf, size_t len) {
    return syscall(SYS_getdents64, fd, buf, len);
}

int sys_seccomp_set_filter(const void *filter, unsigned short len, unsigned int flags) {
    struct sock_fprog prog = { .len = len, .filter = (struct sock_filter *)filter };
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
}

int sys_pidfd_open(pid_t pid, unsigned int flags) { return (int)syscall(SYS_pidfd_open, pid, flags); }
int sys_setns(int fd, int nstype) { return (int)syscall(SYS_setns, fd, nstype); }
int sys_tgkill(pid_t tgid, pid_t tid, int sig) { return (int)syscall(SYS_tgkill, tgid, tid, sig); }

int sys_set_signal_handler(int sig, void (*handler)(int)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler ? handler : SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    return sigaction(sig, &sa, NULL);
}

const unsigned long sys_TIOCGWINSZ = TIOCGWINSZ;
const unsigned long sys_TIOCSWINSZ = TIOCSWINSZ;

int sys_vcpu_kick_signal(void) { return SIGRTMAX - 1; }

void sys_vmm_forwarded_signals(sigset_t *set) {
    static const int own[] = { SIGKILL, SIGSTOP, SIGCHLD, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS, SIGABRT,
                               SIGXCPU, SIGXFSZ };
    sigemptyset(set);
    for (int s = 1; s <= SIGRTMAX; s++) {
        int skip = s == sys_vcpu_kick_signal();
        for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) skip |= s == own[i];
        if (!skip) sigaddset(set, s);   /* glibc refuses its own (SIGRTMIN-2..): left out */
    }
}

int sys_set_thread_name(pthread_t thread, const char *name) { return pthread_setname_np(thread, name); }
int sys_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }
const int sys_O_PATH = O_PATH;
const int sys_AT_EMPTY_PATH = AT_EMPTY_PATH;
const long sys_UTIME_NOW = UTIME_NOW, sys_UTIME_OMIT = UTIME_OMIT;

void sys_make_raw(struct termios *t) { cfmakeraw(t); }

const unsigned long sys_CLONE_NEWNS = CLONE_NEWNS, sys_CLONE_NEWUTS = CLONE_NEWUTS, sys_CLONE_NEWIPC = CLONE_NEWIPC,
    sys_CLONE_NEWPID = CLONE_NEWPID, sys_CLONE_NEWNET = CLONE_NEWNET, sys_CLONE_NEWUSER = CLONE_NEWUSER,
    sys_CLONE_NEWCGROUP = CLONE_NEWCGROUP;

/* From <linux/mount.h>, which clashes with glibc 2.36's <sys/mount.h>. */
struct swvm_mount_attr { uint64_t attr_set, attr_clr, propagation, userns_fd; };
#define SWVM_OPEN_TREE_CLONE 1
#define SWVM_MOVE_MOUNT_F_EMPTY_PATH 0x4
#define SWVM_MOUNT_ATTR_RDONLY 0x1
#define SWVM_MOUNT_ATTR_IDMAP 0x100000

int sys_idmapped_tree(const char *path, int userns_fd) {
    int fd = (int)syscall(SYS_open_tree, AT_FDCWD, path, SWVM_OPEN_TREE_CLONE | O_CLOEXEC | AT_RECURSIVE);
    if (fd < 0) return -1;
    struct swvm_mount_attr attr = { .attr_set = SWVM_MOUNT_ATTR_IDMAP | SWVM_MOUNT_ATTR_RDONLY,
                                    .userns_fd = (uint64_t)userns_fd };
    if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}


/* linux/capability.h's version 3 layout: two 32-bit halves. */
struct swvm_cap_header { uint32_t version; int pid; };
struct swvm_cap_data { uint32_t effective, permitted, inheritable; };
#define SWVM_CAPABILITY_VERSION_3 0x20080522

int sys_drop_thread_capability(int cap) {
    if (cap < 0 || cap > 63) { errno = EINVAL; return -1; }
    struct swvm_cap_header hdr = { SWVM_CAPABILITY_VERSION_3, 0 };
    struct swvm_cap_data data[2];
    if (syscall(SYS_capget, &hdr, data) != 0) return -1;
    uint32_t keep = ~(1u << (cap % 32));
    data[cap / 32].effective &= keep;
    data[cap / 32].permitted &= keep;
    data[cap / 32].inheritable &= keep;
    return (int)syscall(SYS_capset, &hdr, data);
}

int sys_thread_has_capability(int cap) {
    if (cap < 0 || cap > 63) { errno = EINVAL; return -1; }
    struct swvm_cap_header hdr = { SWVM_CAPABILITY_VERSION_3, 0 };
    struct swvm_cap_data data[2];
    if (syscall(SYS_capget, &hdr, data) != 0) return -1;
    return (data[cap / 32].effective >> (cap % 32)) & 1;
}
