/* A new process in a running OCI container (`swvm exec`, runc's
 * setns_init): it joins the container's namespaces and then runs the same
 * process stage as the container's init (cf_process_stage). */
#define _GNU_SOURCE
#include "confine_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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

/* Closes every descriptor the child inherited but its own: stdio, the
 * OCI --preserve-fds ones (3 on), `io`'s and the pidfd. A fork of its
 * parent (guest-init, or swvm), it holds copies of all the parent's
 * descriptors until its execve, and the workload, which sees it from
 * clone on (its pid namespace), may stop it there: a copy it held would
 * keep another exec's pipes from ever reaching EOF (its report, its
 * output, a `-i` exec's stdin). Async-signal-safe: no allocation. */
static void close_inherited(const struct swvm_child_io *io, int pidfd, uint32_t preserve) {
    int keep[] = { io->sync_fd, io->error_fd, io->socket_fd, io->in, io->out, io->err, pidfd };
    const int n = (int)(sizeof keep / sizeof *keep);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && keep[j] < keep[j - 1]; j--) { int t = keep[j]; keep[j] = keep[j - 1]; keep[j - 1] = t; }
    unsigned int from = preserve > (uint32_t)INT_MAX - 3 ? (unsigned int)INT_MAX : 3 + preserve;
    for (int i = 0; i < n; i++) {
        if (keep[i] < 0 || (unsigned int)keep[i] < from) continue;
        if ((unsigned int)keep[i] > from) syscall(SYS_close_range, from, (unsigned int)keep[i] - 1, 0);
        from = (unsigned int)keep[i] + 1;
    }
    syscall(SYS_close_range, from, ~0u, 0);
}

static void exec_child(const struct swvm_settings *s, const struct swvm_child_io *io, const struct cf_clone *how) {
    close_inherited(io, how->pidfd, s->oci.preserve_fds);
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

/* The spawned child, on the zygote's spare stack and in its memory (the
 * zygote is stopped until the execve: CLONE_VFORK). Async-signal-safe
 * steps only; its writes into the zygote's memory are z->ns_pid and errno
 * (the zygote's TLS: no CLONE_SETTLS), which the zygote reads only when
 * clone itself failed, i.e. when no child ran. */
struct zygote_child {
    const struct swvm_settings *s;
    const struct swvm_child_io *io;
    int cgroup_procs;
    const int *close_in_child;
    int nclose;
    uint32_t ns_pid;
};

static int zygote_child(void *arg) {
    struct zygote_child *z = arg;
    /* The descriptor table is the child's own (no CLONE_FILES). */
    for (int i = 0; i < z->nclose; i++)
        if (z->close_in_child[i] >= 0) close(z->close_in_child[i]);
    struct child child = { .s = z->s, .io = z->io, .root = -1, .pty_slave = -1, .seccomp_loaded = 1, .prestaged = 1 };
    /* Into the workload's cgroup before any other step, as guest-init
     * places every exec; "0" is the writer. Fails closed. */
    ssize_t n;
    do { n = write(z->cgroup_procs, "0", 1); } while (n < 0 && errno == EINTR);
    if (n != 1) cf_fail_errno(&child, "join", "the workload's cgroup");
    z->ns_pid = (uint32_t)getpid();
    exec_joined(&child);
}

pid_t swvm_zygote_spawn(const struct swvm_settings *s, const struct swvm_child_io *io, int cgroup_procs, void *stack,
                        size_t stack_size, const int *close_in_child, int nclose, uint32_t *ns_pid) {
    struct zygote_child z = { .s = s, .io = io, .cgroup_procs = cgroup_procs, .close_in_child = close_in_child,
                              .nclose = nclose, .ns_pid = 0 };
    /* The stack grows down from its end; libc's clone runs zygote_child
     * there and exits with its value (it never returns: exec or _exit). */
    pid_t pid = clone(zygote_child, (char *)stack + stack_size, (int)SWVM_ZYGOTE_CLONE_FLAGS, &z, NULL, NULL, NULL);
    if (pid > 0) *ns_pid = z.ns_pid;
    return pid;
}
