/* The namespaces of an OCI container (swvm_confine.h): new ones, and
 * ones joined by path (config.json's linux.namespaces[].path), as runc's
 * nsexec enters them. A namespace that is per thread (network, UTS, IPC,
 * cgroup, and the pid namespace of children) is entered by the cloning
 * thread around clone, so the child starts in it and the pid namespace
 * applies to it (setns(CLONE_NEWPID) only affects children); the user and
 * mount namespaces can be joined by a single-threaded process only: the
 * child joins them. */
#define _GNU_SOURCE
#include "confine_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int joined_fd(const struct swvm_oci *o, uint32_t type) {
    for (uint32_t i = 0; i < o->njoin; i++)
        if (o->join[i].type == type) return o->join[i].fd;
    return -1;
}

/* The namespaces a thread can enter for the child it clones, and their
 * names under /proc/thread-self/ns. */
static const struct { uint32_t type; const char *name; } per_thread[] = {
    { CLONE_NEWNET, "net" }, { CLONE_NEWUTS, "uts" }, { CLONE_NEWIPC, "ipc" },
    { CLONE_NEWCGROUP, "cgroup" }, { CLONE_NEWPID, "pid_for_children" },
};
#define NPER_THREAD (sizeof per_thread / sizeof *per_thread)

/* Puts the calling thread back where `saved` says; -1 if one failed. */
static int restore_thread(int saved[NPER_THREAD]) {
    int failed = 0;
    for (size_t i = 0; i < NPER_THREAD; i++) {
        if (saved[i] < 0) continue;
        if (setns(saved[i], (int)per_thread[i].type) != 0) failed = 1;
        close(saved[i]);
        saved[i] = -1;
    }
    return failed ? -1 : 0;
}

/* Enters the calling thread into the joined per-thread namespaces
 * (`pidfd` >= 0: the pid namespace of that process instead), saving where
 * it was. 0, or -1 with errno (and the thread restored). */
static int enter_thread(const struct swvm_oci *o, int pidfd, int saved[NPER_THREAD]) {
    for (size_t i = 0; i < NPER_THREAD; i++) saved[i] = -1;
    for (size_t i = 0; i < NPER_THREAD; i++) {
        int fd = pidfd >= 0 ? (per_thread[i].type == CLONE_NEWPID ? pidfd : -1) : joined_fd(o, per_thread[i].type);
        if (fd < 0) continue;
        char path[64] = "/proc/thread-self/ns/";
        size_t n = 21;
        for (const char *p = per_thread[i].name; *p; p++) path[n++] = *p;
        path[n] = 0;
        if ((saved[i] = open(path, O_RDONLY | O_CLOEXEC)) < 0 || setns(fd, (int)per_thread[i].type) != 0) {
            int e = errno;
            restore_thread(saved);
            errno = e;
            return -1;
        }
    }
    return 0;
}

/* What clone creates: with a user namespace joined, only the pid one (the
 * child creates the rest once in that user namespace, which then owns
 * them); the cgroup namespace is the child's, once placed in its cgroup. */
static unsigned long oci_clone_flags(const struct swvm_oci *o) {
    unsigned long flags = o->new_namespaces & ~(uint32_t)CLONE_NEWCGROUP;
    return joined_fd(o, CLONE_NEWUSER) >= 0 ? flags & CLONE_NEWPID : flags;
}

pid_t cf_clone_with(const struct swvm_settings *s, const struct cf_clone *how, const int *close_in_child, int nclose,
                    const struct swvm_child_io *io) {
    int saved[NPER_THREAD];
    int enter = how->joins || how->enter_pid;
    if (enter && enter_thread(&s->oci, how->joins ? -1 : how->pidfd, saved) != 0) return -1;
    /* fork semantics (no new stack): the child continues here, in C. */
    pid_t pid = (pid_t)syscall(SYS_clone, how->flags | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) {
        for (int i = 0; i < nclose; i++)
            if (close_in_child[i] >= 0) close(close_in_child[i]);
        how->child(s, io, how);
        _exit(125);
    }
    int e = errno;
    if (enter && restore_thread(saved) != 0) {
        /* This thread would stay in the container's namespaces: fail. */
        e = errno;
        if (pid > 0) { kill(pid, SIGKILL); waitpid(pid, NULL, 0); }
        pid = -1;
    }
    errno = e;
    return pid;
}

static void init_child(const struct swvm_settings *s, const struct swvm_child_io *io, const struct cf_clone *how) {
    (void)how;
    swvm_confine_exec(s, io);
}

pid_t cf_clone_in_namespaces(const struct swvm_settings *s, unsigned long flags, const struct swvm_child_io *io,
                             const int *close_in_child, int nclose) {
    struct cf_clone how = { .flags = s->oci.enabled ? oci_clone_flags(&s->oci) : flags, .joins = s->oci.enabled,
                            .pidfd = -1, .child = init_child };
    return cf_clone_with(s, &how, close_in_child, nclose, io);
}

void cf_enter_namespaces(const struct child *c) {
    const struct swvm_oci *o = &c->s->oci;
    if (!o->enabled) {
        /* Now in our cgroup: a cgroup namespace rooted there. */
        if (unshare(CLONE_NEWCGROUP) != 0) cf_fail_errno(c, "unshare", "CLONE_NEWCGROUP");
        return;
    }
    /* The user namespace first: it owns what is created or joined after. */
    int user = joined_fd(o, CLONE_NEWUSER), mnt = joined_fd(o, CLONE_NEWNS);
    if (user >= 0 && setns(user, CLONE_NEWUSER) != 0) cf_fail_errno(c, "join", "the user namespace of linux.namespaces");
    if (mnt >= 0 && setns(mnt, CLONE_NEWNS) != 0) cf_fail_errno(c, "join", "the mount namespace of linux.namespaces");
    uint32_t rest = o->new_namespaces & ~(uint32_t)(CLONE_NEWPID | CLONE_NEWUSER | CLONE_NEWCGROUP);
    if (user >= 0 && rest && unshare((int)rest) != 0) cf_fail_errno(c, "unshare", "the new namespaces");
    if ((o->new_namespaces & CLONE_NEWCGROUP) && unshare(CLONE_NEWCGROUP) != 0) cf_fail_errno(c, "unshare", "CLONE_NEWCGROUP");
}
