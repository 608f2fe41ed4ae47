/* The VMM's process (swvm_confine.h, swvm_spawn_vmm): swvm exec'd again
 * as PID 1 of a pid namespace of its own. The namespace must come with
 * the process: after unshare(CLONE_NEWPID) a process's children go to the
 * new namespace but its threads cannot (clone of a thread fails with
 * EINVAL), and the VMM is threads. So the caller clones it there
 * (cf_clone_with, the container's clone) and the child only execs. */
#define _GNU_SOURCE
#include "confine_internal.h"
#include "swvm_format.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char **environ;

/* cf_clone_with's child gets the cf_clone: this one carries the spawn. */
struct vmm_clone {
    struct cf_clone how;
    const struct swvm_vmm_spawn *spawn;
    int caller;   /* a pidfd of the caller, for the parent-death check */
};

/* Ends the child with a line on its stderr (async-signal-safe). */
static void vmm_child_fail(const struct swvm_vmm_spawn *s, const char *step, int err) {
    char line[512];
    size_t n = swvm_format(line, sizeof line, "swvm: the VMM (%s): %s: errno %d\n", s->path, step, err);
    cf_write_all(2, line, n < sizeof line ? n : sizeof line - 1);
    _exit(err == ENOENT || err == EACCES ? 127 : 125);
}

/* The parent-death signal, then whether the caller is still there: it
 * may have ended between clone and prctl (getppid cannot tell: outside
 * this pid namespace the parent is pid 0). */
static void die_with_caller(const struct vmm_clone *v) {
    if (prctl(PR_SET_PDEATHSIG, v->spawn->parent_death_signal, 0, 0, 0) != 0)
        vmm_child_fail(v->spawn, "PR_SET_PDEATHSIG", errno);
    struct pollfd p = { .fd = v->caller, .events = POLLIN, .revents = 0 };
    if (poll(&p, 1, 0) != 0) _exit(125);   /* the caller is gone (or poll failed) */
}

static void vmm_child(const struct swvm_settings *unused, const struct swvm_child_io *io, const struct cf_clone *how) {
    (void)unused;
    const struct vmm_clone *v = (const struct vmm_clone *)(const void *)how;
    const struct swvm_vmm_spawn *s = v->spawn;
    if (s->parent_death_signal) die_with_caller(v);
    if (v->caller >= 0) close(v->caller);
    if (s->hold_fd >= 0) cf_wait_for_parent(io);
    if (s->new_session && setsid() < 0) vmm_child_fail(s, "setsid", errno);
    for (int i = 0; i < s->ndup; i++) {
        int from = s->dup_from[i], to = s->dup_to[i];
        int rc = from == to ? fcntl(to, F_SETFD, 0) : dup2(from, to);
        if (rc < 0) vmm_child_fail(s, "pass a descriptor", errno);
    }
    cf_reset_signals();
    execve(s->path, s->argv, s->envp ? s->envp : environ);
    vmm_child_fail(s, "execve", errno);
}

pid_t swvm_spawn_vmm(const struct swvm_vmm_spawn *s) {
    struct vmm_clone v = { .how = { .flags = CLONE_NEWPID, .child = vmm_child }, .spawn = s, .caller = -1 };
    if (s->parent_death_signal) {
        v.caller = (int)syscall(SYS_pidfd_open, getpid(), 0);
        if (v.caller < 0) return -1;
        fcntl(v.caller, F_SETFD, FD_CLOEXEC);
    }
    struct swvm_child_io io = { .sync_fd = s->hold_fd, .error_fd = -1, .socket_fd = -1, .in = -1, .out = -1, .err = -1 };
    pid_t pid = cf_clone_with(NULL, &v.how, &s->hold_write_fd, 1, &io);
    int e = errno;
    if (v.caller >= 0) close(v.caller);
    errno = e;
    return pid;
}
