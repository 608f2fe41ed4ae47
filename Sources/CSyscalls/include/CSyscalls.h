// Raw and variadic Linux system calls that Swift cannot call directly
// (ioctl, prctl and syscall(2) are variadic).
// Each returns what the kernel returns: -1 with errno set on failure.
#ifndef SWVM_CSYSCALLS_H
#define SWVM_CSYSCALLS_H

#include <stdint.h>
#include <sys/types.h>
#include <signal.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <sys/resource.h>
#include <sys/mman.h>
#include <pthread.h>
#include <sys/random.h>
#include <sys/xattr.h>
#include <sys/statfs.h>
#include <termios.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <linux/magic.h>

int sys_ioctl_ptr(int fd, unsigned long request, void *arg);
int sys_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5);
/// glibc's malloc_trim(0): returns freed heap pages to the kernel (<malloc.h>
/// is not in Swift's Glibc module).
int sys_malloc_trim(void);
/// ioctl(2) with an integer argument (TUNSETOFFLOAD).
int sys_ioctl_int(int fd, unsigned long request, unsigned long arg);

int sys_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve);
/// getdents64(2): directory entries as the kernel lays them out.
long sys_getdents64(int fd, void *buf, size_t len);
int sys_seccomp_set_filter(const void *filter, unsigned short len, unsigned int flags);
int sys_pidfd_open(pid_t pid, unsigned int flags);
/// setns(2) for the calling thread (glibc declares it only with _GNU_SOURCE).
int sys_setns(int fd, int nstype);
/// tgkill(2) (a test of the VMM's thread filters sends it to another process).
int sys_tgkill(pid_t tgid, pid_t tid, int sig);

/// sigaction with a plain handler and no SA_RESTART (so blocking calls
/// return EINTR); `handler` NULL restores SIG_DFL.
int sys_set_signal_handler(int sig, void (*handler)(int));

// ioctl request numbers built by _IOW()-style macros.
extern const unsigned long sys_TIOCGWINSZ;
extern const unsigned long sys_TIOCSWINSZ;

/// The real-time signal swvm uses to kick vCPU threads out of KVM_RUN
/// (SIGRTMAX - 1: glibc keeps the lowest real-time signals for itself,
/// and ordinary signals are forwarded to the workload).
int sys_vcpu_kick_signal(void);
/// The signals a VMM passes to its guest's workload: every one a process
/// may catch, but the kick signal, SIGCHLD and those the kernel raises for
/// the VMM's own faults or limits (SEGV, BUS, ILL, FPE, TRAP, SYS, ABRT,
/// XCPU, XFSZ). The VMM is PID 1 of its own pid namespace, where a signal
/// it neither blocks nor handles is dropped: blocked and read from a
/// signalfd, each reaches the workload as it reaches a container's.
void sys_vmm_forwarded_signals(sigset_t *set);
int sys_pipe2(int fds[2], int flags);

/// Flags that need _GNU_SOURCE to be visible.
extern const int sys_O_PATH;
extern const int sys_AT_EMPTY_PATH;
extern const long sys_UTIME_NOW, sys_UTIME_OMIT;
extern const unsigned long sys_CLONE_NEWNS, sys_CLONE_NEWUTS, sys_CLONE_NEWIPC, sys_CLONE_NEWPID,
    sys_CLONE_NEWNET, sys_CLONE_NEWUSER, sys_CLONE_NEWCGROUP;

/// cfmakeraw(3).
void sys_make_raw(struct termios *t);


/// A detached, read-only copy of the mount tree at `path`, id-mapped
/// through the user namespace `userns_fd` (open_tree + mount_setattr).
int sys_idmapped_tree(const char *path, int userns_fd);

int sys_set_thread_name(pthread_t thread, const char *name);

/// Removes capability `cap` from the calling thread's effective, permitted
/// and inheritable sets (capset with pid 0 changes this thread only, and a
/// capability gone from the permitted set cannot come back).
int sys_drop_thread_capability(int cap);
/// 1 when the calling thread has `cap` in its effective set, 0 when not, -1 on error.
int sys_thread_has_capability(int cap);

#endif
