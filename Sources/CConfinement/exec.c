/* A new process in a running OCI container (`swvm exec`, runc's
 * setns_init): it joins the container's namespaces and then runs the same
 * process stage as the container's init (cf_process_stage). */
#define _GNU_SOURCE
#include "confine_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

/* In the container's namespaces: its own session, its terminal, and the
 * process stage. */
__attribute__((noreturn)) static void exec_joined(struct child *c) {
    const struct swvm_settings *s = c->s;
    if (setsid() < 0) cf_fail_errno(c, "setsid", "");
    if (s->terminal) {
        c->root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (c->root < 0) cf_fail_errno(c, "open", "/");
        cf_open_terminal(c, 0);
        close(c->root);
        c->root = -1;
    }
    cf_process_stage(c);
}

static void exec_child(const struct swvm_settings *s, const struct swvm_child_io *io, const struct cf_clone *how) {
    struct child child = { .s = s, .io = io, .root = -1, .pty_slave = -1 };
    struct child *c = &child;
    /* Placed in the container's cgroup by the parent first. */
    cf_wait_for_parent(io);
    /* All at once, through the init's pidfd (its pid namespace is ours
     * since clone); the mount namespace brings its root and cwd. */
    if (how->namespaces && setns(how->pidfd, (int)how->namespaces) != 0) cf_fail_errno(c, "join", "the container's namespaces");
    close(how->pidfd);
    exec_joined(c);
}

pid_t swvm_exec_clone(const struct swvm_settings *s, int pidfd, unsigned int namespaces, const struct swvm_child_io *io,
                      const int *close_in_child, int nclose) {
    struct cf_clone how = { .flags = 0, .joins = 0, .pidfd = pidfd, .enter_pid = (namespaces & CLONE_NEWPID) != 0,
                            .namespaces = namespaces & ~(unsigned int)CLONE_NEWPID, .child = exec_child };
    return cf_clone_with(s, &how, close_in_child, nclose, io);
}

/* ---------------------------------------------------------------- exec zygote */

void swvm_exec_prestage(const struct swvm_settings *s, int pidfd, unsigned int namespaces) {
    struct swvm_child_io io = { .sync_fd = -1, .error_fd = -1, .socket_fd = -1, .in = -1, .out = -1, .err = -1 };
    struct child child = { .s = s, .io = &io, .root = -1, .pty_slave = -1 };
    struct child *c = &child;
    /* The pid namespace too: it is the one of this process's children
     * only, so the zygote itself stays out of the workload's. */
    if (setns(pidfd, (int)namespaces) != 0) cf_fail_errno(c, "join", "the workload's namespaces");
    close(pidfd);
    cf_exec_prestage(c);
}

pid_t swvm_zygote_fork(const struct swvm_settings *s, const struct swvm_child_io *io, const int *close_in_child, int nclose) {
    /* fork semantics (no new stack): the child continues here, in C. */
    pid_t pid = (pid_t)syscall(SYS_clone, SWVM_ZYGOTE_CLONE_FLAGS, 0, 0, 0, 0);
    if (pid != 0) return pid;
    for (int i = 0; i < nclose; i++)
        if (close_in_child[i] >= 0) close(close_in_child[i]);
    struct child child = { .s = s, .io = io, .root = -1, .pty_slave = -1, .seccomp_loaded = 1, .prestaged = 1 };
    /* Placed in the workload's cgroup by guest-init first, as any exec. */
    cf_wait_for_parent(io);
    exec_joined(&child);
}
