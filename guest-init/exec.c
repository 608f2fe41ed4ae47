/* Exec and control of the running VM, guest-init's side (exec.h). An exec
 * is cloned by the container level's exec path (swvm_exec_clone): it joins
 * the workload's namespaces through a pidfd of its PID 1, is placed in the
 * workload's cgroup, and runs the same process stage (rlimits, user,
 * capabilities, no_new_privs, seccomp) with the workload's settings; only
 * argv, env, cwd, user, groups and the terminal are the request's. */
#define _GNU_SOURCE
#include "exec.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "swvm_confine.h"

#define WORKLOAD_PROCS "/sys/fs/cgroup/workload/cgroup.procs"

/* The descriptors of one spawn: the child's ends and the parent's. */
struct spawn_fds { int sync[2], report[2], in[2], out[2], err[2], term[2]; };

struct exec {
    int used;
    uint32_t id;
    pid_t pid;                /* in guest-init's pid namespace; 0 until the zygote names it */
    int exited, status;
    int tty;                  /* in_fd and out_fd[0] are then the one pty master */
    int in_fd;                /* the stdin pipe's write end or the master; -1 */
    int out_fd[2];            /* stdout, stderr (read ends); -1 once at EOF */
    uint8_t *in_buf;          /* input not yet written, at most SWVM_EXEC_WINDOW */
    uint32_t in_len;
    int in_eof;
    uint32_t out_unacked;     /* output sent the host has not acknowledged */
    /* Until the child has exec'd or failed ("starting"), its start is
     * served from guest-init's poll loop, never waited for: the workload
     * (root in the VM) may SIGSTOP the child before its execve, and a
     * wait for its report or for the zygote's reply would stop every
     * other exec, signal and the exit report with it. No deadline
     * either: a slow start is not a failed one. */
    int starting;
    int want_reply;           /* the zygote's reply (the child's pid) is due */
    int interactive;
    struct spawn_fds f;       /* the spawn's descriptors: guest-init's ends once the child ends are cloned or sent */
    int master;               /* a terminal's master once the child sent it; -1 */
    uint32_t ns_pid;          /* its pid in the workload's namespace (0: read /proc) */
    uint8_t *request;         /* MSG_EXEC's payload while the zygote's reply is due: */
    uint32_t request_len;     /*   should its clone fail, guest-init clones the exec itself */
    uint8_t *report;          /* the child's report so far (frames on its close-on-exec pipe) */
    uint32_t report_len;
    int report_lost;          /* a part of it could not be kept (no memory): the start is a failed one */
};

static struct exec execs[SWVM_MAX_EXECS];
static const struct swvm_settings *workload_cfg;
static pid_t workload_pid;
static uint32_t workload_ns;
static int control = -1;

static void zygote_start(void);

void execs_start(const struct swvm_settings *cfg, pid_t workload, uint32_t namespaces, int control_fd) {
    workload_cfg = cfg;
    workload_pid = workload;
    workload_ns = namespaces;
    control = control_fd;
    /* A detached or OCI VM is there to be exec'd into: its first exec
     * comes from the zygote too. */
    if (cfg->exec_zygote) zygote_start();
}

static void send_value(uint32_t type, uint32_t id, uint32_t value) {
    uint8_t b[SWVM_EXEC_VALUE_LEN];
    swvm_exec_value_encode(&(struct swvm_exec_value){ .id = id, .value = value }, b);
    swvm_frame_write(control, type, b, sizeof b);
}

/* MSG_EXEC_ERROR: guest-init's own words (code, errno, message). */
static void send_error(uint32_t id, uint32_t code, int err, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void send_error(uint32_t id, uint32_t code, int err, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if (n >= (int)sizeof msg) n = sizeof msg - 1;
    uint8_t out[sizeof msg + 12];
    size_t len = swvm_exec_error_encode(id, code, err, msg, (uint32_t)n, out, sizeof out);
    swvm_frame_write(control, MSG_EXEC_ERROR, out, (uint32_t)len);
}

static struct exec *find(uint32_t id) {
    for (unsigned i = 0; i < SWVM_MAX_EXECS; i++)
        if (execs[i].used && execs[i].id == id) return &execs[i];
    return NULL;
}

static void close_fd(int *fd) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

static void close_spawn_fds(struct spawn_fds *f);
static void zygote_abandon(struct exec *e);

static void release(struct exec *e) {
    if (e->tty && e->in_fd == e->out_fd[0]) e->in_fd = -1;
    if (e->tty && e->out_fd[0] < 0) e->in_fd = -1;   /* the master, closed with the output */
    close_fd(&e->in_fd);
    close_fd(&e->out_fd[0]);
    close_fd(&e->out_fd[1]);
    close_spawn_fds(&e->f);
    close_fd(&e->master);
    zygote_abandon(e);
    free(e->in_buf);
    free(e->request);
    free(e->report);
    memset(e, 0, sizeof *e);
}

/* The exit goes after the last of the output, once both streams ended
 * (and after MSG_EXEC_STARTED: a starting exec's child may exit first). */
static void maybe_finish(struct exec *e) {
    if (e->starting || !e->exited || e->out_fd[0] >= 0 || e->out_fd[1] >= 0) return;
    send_value(MSG_EXEC_EXIT, e->id, (uint32_t)e->status);
    release(e);
    zygote_start();
}

/* The pid in the workload's pid namespace (NSpid's last field), as the
 * workload's own processes see it; 0 if unreadable. */
static uint32_t namespace_pid(pid_t pid) {
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    char *line = strstr(buf, "\nNSpid:");
    if (!line) return 0;
    char *end = strchr(line + 1, '\n');
    if (end) *end = 0;
    char *last = strrchr(line, '\t');
    return last ? (uint32_t)strtoul(last + 1, NULL, 10) : 0;
}

/* The exec's settings: the workload's, with the request's process. A
 * shallow copy: the pointers stay owned by the workload's and the
 * request's settings. */
static struct swvm_settings exec_settings(const struct swvm_settings *r) {
    struct swvm_settings es = *workload_cfg;
    es.args = r->args; es.nargs = r->nargs;
    es.env = r->env; es.nenv = r->nenv;
    es.cwd = r->cwd;
    es.uid = r->uid; es.gid = r->gid;
    es.groups = r->groups; es.ngroups = r->ngroups;
    es.terminal = r->terminal; es.rows = r->rows; es.cols = r->cols;
    es.interactive = r->interactive;
    es.init = 0;                 /* the workload's --init is its PID 1, not each exec's */
    es.oci.exec_fifo = -1;
    return es;
}

/* The sync pipe only for a child guest-init places itself (`sync`); one
 * spawned by the zygote joins the cgroup on its own. */
static int open_spawn_fds(struct spawn_fds *f, const struct swvm_settings *r, int sync) {
    int *all[] = { f->sync, f->report, f->in, f->out, f->err, f->term };
    for (unsigned i = 0; i < 6; i++) all[i][0] = all[i][1] = -1;
    if ((sync && pipe2(f->sync, O_CLOEXEC) != 0) || pipe2(f->report, O_CLOEXEC) != 0) return -1;
    if (r->terminal) return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, f->term);
    if (r->interactive && pipe2(f->in, O_CLOEXEC) != 0) return -1;
    return pipe2(f->out, O_CLOEXEC) != 0 || pipe2(f->err, O_CLOEXEC) != 0 ? -1 : 0;
}

static void close_spawn_fds(struct spawn_fds *f) {
    int *all[] = { f->sync, f->report, f->in, f->out, f->err, f->term };
    for (unsigned i = 0; i < 6; i++) { close_fd(&all[i][0]); close_fd(&all[i][1]); }
}

static void close_child_ends(struct spawn_fds *f) {
    close_fd(&f->sync[0]); close_fd(&f->report[1]); close_fd(&f->term[1]);
    close_fd(&f->in[0]); close_fd(&f->out[1]); close_fd(&f->err[1]);
}

/* Clones the exec into the workload's namespaces; the pid, or -1. */
static pid_t clone_exec(const struct swvm_settings *es, struct spawn_fds *f) {
    int pidfd = (int)syscall(SYS_pidfd_open, workload_pid, 0);
    if (pidfd < 0) return -1;
    struct swvm_child_io io = { .sync_fd = f->sync[0], .error_fd = f->report[1], .socket_fd = f->term[1],
                                .in = f->in[0], .out = f->out[1], .err = f->err[1], .prepared_root = NULL };
    int parent_ends[] = { f->sync[1], f->report[0], f->in[1], f->out[0], f->err[0], f->term[0] };
    /* The cgroup namespace is the one the workload's confinement made. */
    pid_t pid = swvm_exec_clone(es, pidfd, workload_ns | CLONE_NEWCGROUP, &io, parent_ends, 6);
    int e = errno;
    close(pidfd);
    close_child_ends(f);
    errno = e;
    return pid;
}

/* Places the child in the workload's cgroup and lets it go on. */
static int place(pid_t pid, struct spawn_fds *f) {
    char text[32];
    int n = snprintf(text, sizeof text, "%d", pid);
    int fd = open(WORKLOAD_PROCS, O_WRONLY | O_CLOEXEC);
    int ok = fd >= 0 && write(fd, text, (size_t)n) == n;
    int e = errno;
    if (fd >= 0) close(fd);
    if (!ok) { errno = e; return -1; }
    ok = write(f->sync[1], "g", 1) == 1;
    close_fd(&f->sync[1]);
    return ok ? 0 : -1;
}

/* The most of a child's report kept: its MSG_ERROR (a message of at most
 * 1 KiB) with room to spare; more is read and dropped. */
#define REPORT_MAX (16u << 10)

/* One read of the child's report pipe (non-blocking: the child writes a
 * frame in parts, and may be stopped between them); at its end (the
 * child's execve closed it, or the child ended) the pipe is closed. */
static void read_report(struct exec *e) {
    uint8_t buf[4096];
    ssize_t n = read(e->f.report[0], buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) { close_fd(&e->f.report[0]); return; }
    uint32_t keep = REPORT_MAX - e->report_len;
    if ((uint32_t)n < keep) keep = (uint32_t)n;
    if (!keep) return;
    uint8_t *grown = realloc(e->report, e->report_len + keep);
    /* The frames after a lost part would be parsed misaligned, and a
     * MSG_ERROR among them missed: the start counts as failed. */
    if (!grown) { e->report_lost = 1; return; }
    memcpy(grown + e->report_len, buf, keep);
    e->report = grown;
    e->report_len += keep;
}

/* The child's MSG_ERROR as the host's MSG_EXEC_ERROR (the exec's id
 * first); `whole` 0 when the frame was cut short. */
static void forward_error(uint32_t id, const uint8_t *payload, uint32_t len, int whole) {
    uint8_t *out = whole ? malloc((size_t)len + SWVM_EXEC_HEAD_LEN) : NULL;
    if (!out) {
        send_error(id, SWVM_ERR_INTERNAL, whole ? ENOMEM : 0, "exec: the process failed to start (its report %s)",
                   whole ? "could not be forwarded" : "was cut short");
        return;
    }
    swvm_exec_head_encode(&(struct swvm_exec_head){ .id = id }, out);
    memcpy(out + SWVM_EXEC_HEAD_LEN, payload, len);
    swvm_frame_write(control, MSG_EXEC_ERROR, out, len + SWVM_EXEC_HEAD_LEN);
    free(out);
}

/* Whether the child's whole report says it failed; its first MSG_ERROR
 * is then forwarded. */
static int report_failed(const struct exec *e) {
    uint32_t off = 0, type, len;
    while (e->report_len - off >= SWVM_FRAME_HEADER) {
        int over = swvm_frame_header_decode(e->report + off, &type, &len, SWVM_MAX_GUEST_FRAME) != 0;
        off += SWVM_FRAME_HEADER;
        int whole = !over && len <= e->report_len - off;
        if (type == MSG_ERROR) {
            forward_error(e->id, e->report + off, whole ? len : 0, whole);
            return 1;
        }
        if (!whole) break;
        off += len;
    }
    return 0;
}

static void make_nonblocking(int fd) {
    if (fd >= 0) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* The slot's descriptors once the child runs: guest-init's ends. */
static void keep_streams(struct exec *e, struct spawn_fds *f, int master, int interactive) {
    if (e->tty) {
        /* Without -i the terminal's input stays empty, as with docker exec -t. */
        e->out_fd[0] = master;
        e->in_fd = interactive ? master : -1;
        e->out_fd[1] = -1;
    } else {
        e->in_fd = f->in[1]; f->in[1] = -1;
        e->out_fd[0] = f->out[0]; f->out[0] = -1;
        e->out_fd[1] = f->err[0]; f->err[0] = -1;
    }
    make_nonblocking(e->in_fd);
    make_nonblocking(e->out_fd[0]);
    make_nonblocking(e->out_fd[1]);
}

/* ---------------------------------------------------------------- the exec zygote */

/* A process forked from guest-init after the first exec into the workload
 * ended: it has joined the workload's namespaces (its pid namespace for
 * its children only: the zygote is in none of the workload's pids, and
 * in no cgroup of it) and done the steps every exec shares, above all
 * loading the seccomp filter (a large share of an exec's time in this
 * emulated guest kernel). Each later exec is spawned from it as
 * guest-init's child (CLONE_PARENT, sharing the zygote's memory until its
 * execve: swvm_zygote_spawn), joins the workload's cgroup through the
 * cgroup.procs guest-init opened, and does only its own steps; guest-init
 * serves it as any exec. The zygote is used only when the filter surely
 * allows all of that (swvm_seccomp_allows_exec_zygote); on any failure
 * the exec takes the path above. */
#define ZYGOTE_MAX_REQUEST (64u << 10)
#define ZYGOTE_FDS 6
/* The children's stack: their steps' buffers (a 4 KiB path, a 1 KiB
 * message) and libc's, with room to spare. */
#define ZYGOTE_STACK (256u << 10)
#define ZYGOTE_GUARD 4096u
#define ZYGOTE_CAP_SYS_PTRACE 19 /* linux/capability.h, not in the guest build */

/* A zygote that dies is started again, at most this many times. */
#define ZYGOTE_MAX_STARTS 4

/* busy: a request was sent and its reply is due (the zygote serves one
 * at a time; it is stopped meanwhile, in its vfork); waiter: its exec. */
static struct { pid_t pid; int sock, failed, starts, busy; struct exec *waiter; } zygote = { 0, -1, 0, 0, 0, NULL };

/* The zygote's answer to a request. */
struct zygote_reply { int32_t pid; uint32_t ns_pid; };   /* pid: -errno on failure */

static int zygote_usable(void) {
    const struct swvm_settings *s = workload_cfg;
    if (zygote.failed || (workload_ns & CLONE_NEWUSER) || s->userns) return 0;
    /* CAP_SYS_PTRACE (an init-namespace one: no userns) lets the workload
     * attach to a child that shares the zygote's memory despite its being
     * non-dumpable (cf_exec_prestage): such a workload gets guest-init's
     * own clone. */
    const struct swvm_oci *o = &s->oci;
    uint64_t caps = o->has_caps ? o->bounding | o->effective | o->inheritable | o->permitted | o->ambient : s->caps;
    if (caps & (1ull << ZYGOTE_CAP_SYS_PTRACE)) return 0;
    return !s->seccomp_len || swvm_seccomp_allows_exec_zygote(s->seccomp, s->seccomp_len);
}

/* Closes every descriptor from 3 on but the `n` in `keep` (ascending). */
static void close_all_but(const int *keep, int n) {
    int from = 3;
    for (int i = 0; i < n; i++) {
        if (keep[i] > from) syscall(SYS_close_range, from, keep[i] - 1, 0);
        from = keep[i] + 1;
    }
    syscall(SYS_close_range, from, ~0u, 0);
}

static void sort3(int k[3]) {
    for (int i = 0; i < 3; i++)
        for (int j = i + 1; j < 3; j++)
            if (k[j] < k[i]) { int t = k[i]; k[i] = k[j]; k[j] = t; }
}

/* One request: [u32 which of the six child ends follow][MSG_EXEC payload],
 * the ends as SCM_RIGHTS. Returns the payload's length, or -1. */
static long zygote_receive(int sock, uint8_t *buf, int fds[ZYGOTE_FDS]) {
    union { char b[CMSG_SPACE(sizeof(int) * ZYGOTE_FDS)]; struct cmsghdr align; } u;
    struct iovec iov = { .iov_base = buf, .iov_len = ZYGOTE_MAX_REQUEST };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof u.b };
    for (int i = 0; i < ZYGOTE_FDS; i++) fds[i] = -1;
    ssize_t r;
    do { r = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); } while (r < 0 && errno == EINTR);
    if (r <= 0) _exit(0);   /* guest-init closed its end */
    int got[ZYGOTE_FDS], n = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
            for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int) && n < ZYGOTE_FDS; i++)
                memcpy(&got[n++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    uint32_t mask = 0;
    if (r >= 4) memcpy(&mask, buf, 4);
    int k = 0;
    for (int i = 0; i < ZYGOTE_FDS; i++)
        if (mask >> i & 1) fds[i] = k < n ? got[k++] : -1;
    for (; k < n; k++) close(got[k]);
    return (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || r < 4 ? -1 : (long)r - 4;
}

/* The zygote's loop: each request spawned as an exec once it has exec'd
 * (or failed), its pids written back: guest-init's namespace (the
 * zygote's own) or -errno, and the workload's. */
__attribute__((noreturn)) static void zygote_serve(int sock, int cgroup_procs, void *stack) {
    uint8_t *buf = malloc(ZYGOTE_MAX_REQUEST);
    if (!buf) _exit(125);
    int close_in_child[] = { sock };
    for (;;) {
        int fds[ZYGOTE_FDS];
        long len = zygote_receive(sock, buf, fds);
        struct zygote_reply reply = { .pid = -EINVAL, .ns_pid = 0 };
        struct swvm_exec_head head;
        struct swvm_settings r;
        char error[256];
        if (len >= 0 && swvm_exec_decode(buf + 4, (uint32_t)len, &head, &r, error, sizeof error) == 0) {
            struct swvm_settings es = exec_settings(&r);
            struct swvm_child_io io = { .sync_fd = fds[0], .error_fd = fds[1], .socket_fd = fds[2],
                                        .in = fds[3], .out = fds[4], .err = fds[5], .prepared_root = NULL };
            pid_t pid = swvm_zygote_spawn(&es, &io, cgroup_procs, stack, ZYGOTE_STACK, close_in_child, 1, &reply.ns_pid);
            reply.pid = pid > 0 ? pid : -errno;
            swvm_settings_free(&r);
        }
        for (int i = 0; i < ZYGOTE_FDS; i++) if (fds[i] >= 0) close(fds[i]);
        if (write(sock, &reply, sizeof reply) != sizeof reply) _exit(0);
    }
}

/* Forks the zygote (after the first exec: a run nobody execs into pays
 * nothing); it prepares itself while guest-init goes on. */
static void zygote_start(void) {
    if (zygote.pid || !zygote_usable()) return;
    if (zygote.starts++ == ZYGOTE_MAX_STARTS) { zygote.failed = 1; return; }
    int sv[2] = { -1, -1 };
    int pidfd = (int)syscall(SYS_pidfd_open, workload_pid, 0);
    /* Opened here, in guest-init's cgroup namespace and as root: the
     * children's writes are checked against that. */
    int procs = open(WORKLOAD_PROCS, O_WRONLY | O_CLOEXEC);
    if (pidfd < 0 || procs < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        if (pidfd >= 0) close(pidfd);
        if (procs >= 0) close(procs);
        zygote.failed = 1;
        return;
    }
    pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) {
        int keep[3] = { sv[1], pidfd, procs };
        sort3(keep);
        close_all_but(keep, 3);
        /* Before the filter: it need not allow mmap of the zygote's own.
         * A PROT_NONE page below the children's stack: an overflow kills
         * the child, not the zygote's memory it shares. */
        char *guard = mmap(NULL, ZYGOTE_GUARD + ZYGOTE_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (guard == MAP_FAILED || mprotect(guard, ZYGOTE_GUARD, PROT_NONE) != 0) _exit(125);
        void *stack = guard + ZYGOTE_GUARD;
        swvm_exec_prestage(workload_cfg, pidfd, workload_ns | CLONE_NEWCGROUP | CLONE_NEWPID);
        zygote_serve(sv[1], procs, stack);
    }
    close(pidfd);
    close(procs);
    close(sv[1]);
    if (pid < 0) { close(sv[0]); zygote.failed = 1; return; }
    zygote.pid = pid;
    zygote.sock = sv[0];
}

/* The zygote died (`reaped`: its pid is free, so no signal) or broke its
 * protocol (killed; reaped later as a stranger): the next exec takes the
 * path above, and a new zygote is started after an exec's end, or at its
 * reap when the host asked for one from the start. An exec whose reply
 * was due fails: its child may run, and is never started twice. */
static void zygote_gone(int reaped) {
    if (zygote.pid > 0 && !reaped) kill(zygote.pid, SIGKILL);
    close_fd(&zygote.sock);
    zygote.pid = 0;
    zygote.busy = 0;
    struct exec *e = zygote.waiter;
    zygote.waiter = NULL;
    if (!e) return;
    send_error(e->id, SWVM_ERR_SYSTEM_CALL, EPIPE, "exec: the exec zygote ended; the exec's state is unknown");
    release(e);
}

/* A released exec no longer waits for the zygote's reply. */
static void zygote_abandon(struct exec *e) {
    if (zygote.waiter == e) zygote.waiter = NULL;
}

/* Sends the request and the child ends of `f` to the zygote: what sendmsg
 * returned. */
static ssize_t zygote_send(const uint8_t *p, uint32_t len, struct spawn_fds *f) {
    int ends[ZYGOTE_FDS] = { f->sync[0], f->report[1], f->term[1], f->in[0], f->out[1], f->err[1] };
    int fds[ZYGOTE_FDS], n = 0;
    uint32_t mask = 0;
    for (int i = 0; i < ZYGOTE_FDS; i++)
        if (ends[i] >= 0) { mask |= 1u << i; fds[n++] = ends[i]; }
    uint8_t *buf = malloc((size_t)len + 4);
    if (!buf) return -1;
    memcpy(buf, &mask, 4);
    memcpy(buf + 4, p, len);
    union { char b[CMSG_SPACE(sizeof(int) * ZYGOTE_FDS)]; struct cmsghdr align; } u;
    memset(&u, 0, sizeof u);
    struct iovec iov = { .iov_base = buf, .iov_len = (size_t)len + 4 };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
                          .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n) };
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET; c->cmsg_type = SCM_RIGHTS; c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
    ssize_t sent;
    do { sent = sendmsg(zygote.sock, &msg, MSG_NOSIGNAL); } while (sent < 0 && errno == EINTR);
    free(buf);
    return sent;
}

/* A child reaped that was no exec's while the zygote's reply was due: the
 * exec's child may exec, exit and be reaped before the reply names it. */
#define UNCLAIMED 8
static struct { pid_t pid; int status; } unclaimed[UNCLAIMED];
static unsigned unclaimed_next;

/* Emptied when a request is sent: only a pid reaped after that can be its
 * child's, and an older one (a failed exec's killed child, reaped as a
 * stranger) may come back as that child's pid once pids wrap. */
static void unclaimed_reset(void) {
    memset(unclaimed, 0, sizeof unclaimed);
    unclaimed_next = 0;
}

static void claim_reaped(struct exec *e) {
    for (unsigned i = 0; i < UNCLAIMED; i++)
        if (unclaimed[i].pid == e->pid) { e->exited = 1; e->status = unclaimed[i].status; }
    unclaimed_reset();
}

/* Hands exec `e` to the zygote with the child ends of new descriptors:
 * 1 when sent (its reply is then due: zygote_reply), 0 when guest-init is
 * to clone the exec itself (no zygote, a busy one, or a failed send). */
static int zygote_request(struct exec *e, const struct swvm_settings *r, const uint8_t *p, uint32_t len) {
    if (!zygote.pid || zygote.busy || len > ZYGOTE_MAX_REQUEST - 4) return 0;
    if (open_spawn_fds(&e->f, r, 0) != 0 || !(e->request = malloc(len))) {
        close_spawn_fds(&e->f);
        return 0;
    }
    if (zygote_send(p, len, &e->f) != (ssize_t)len + 4) {
        zygote_gone(0);
        close_spawn_fds(&e->f);
        free(e->request);
        e->request = NULL;
        return 0;
    }
    /* The request's files are the zygote's now (in flight, they stay
     * open): guest-init's copies go at once. While the reply is due, the
     * next exec is guest-init's own clone, which the workload can stop
     * before it closes what it inherited; a copy it held would keep this
     * exec's report (its start) and output from ever ending. */
    close_child_ends(&e->f);
    memcpy(e->request, p, len);
    e->request_len = len;
    e->want_reply = 1;
    zygote.busy = 1;
    zygote.waiter = e;
    unclaimed_reset();
    make_nonblocking(e->f.report[0]);
    make_nonblocking(e->f.term[0]);
    return 1;
}

/* guest-init's own clone of exec `e`, placed by it: 0, or -1 with the
 * host's MSG_EXEC_ERROR sent. */
static int own_clone(struct exec *e, const struct swvm_settings *r) {
    struct swvm_settings es = exec_settings(r);
    if (open_spawn_fds(&e->f, r, 1) != 0) {
        send_error(e->id, SWVM_ERR_SYSTEM_CALL, errno, "exec: pipes for the process's stdio");
        return -1;
    }
    pid_t pid = clone_exec(&es, &e->f);
    if (pid < 0) {
        send_error(e->id, SWVM_ERR_SYSTEM_CALL, errno, "exec: clone into the workload's namespaces");
        return -1;
    }
    if (place(pid, &e->f) != 0) {
        send_error(e->id, SWVM_ERR_SYSTEM_CALL, errno, "exec: join the workload's cgroup");
        /* Killed where it waits for the sync pipe; reaped by the poll
         * loop as a stranger, never waited for here: a workload with
         * CAP_SYS_PTRACE (own clone only) may have attached to it, and
         * its exit then goes to that tracer first. */
        kill(pid, SIGKILL);
        return -1;
    }
    e->pid = pid;
    /* Read now, while no reap can have freed the pid: the poll loop may
     * reap a child that exec'd and exited before its report ends, and a
     * lookup then would name no process, or another one. */
    e->ns_pid = namespace_pid(pid);
    make_nonblocking(e->f.report[0]);
    make_nonblocking(e->f.term[0]);
    return 0;
}

/* The zygote's clone failed (no child ran): guest-init clones the exec
 * itself, from the request kept for that. */
static void clone_instead(struct exec *e) {
    struct swvm_exec_head head;
    struct swvm_settings r;
    char error[256];
    close_spawn_fds(&e->f);
    if (swvm_exec_decode(e->request, e->request_len, &head, &r, error, sizeof error) != 0) {
        send_error(e->id, SWVM_ERR_INVALID_ARGUMENT, 0, "%s", error);
        release(e);
        return;
    }
    int failed = own_clone(e, &r) != 0;
    swvm_settings_free(&r);
    if (failed) { release(e); return; }
    free(e->request);
    e->request = NULL;
}

static void advance(struct exec *e);

/* The zygote's reply to the exec waiting on it, once its child has
 * exec'd or failed (a child stopped before its execve keeps the zygote
 * in its vfork, so the reply may take any time): the child's pid, or none
 * (the zygote's clone failed). `reaped`: the zygote is gone; a reply it
 * left is taken, else the exec fails. */
static void zygote_reply(int reaped) {
    struct zygote_reply reply = { 0, 0 };
    ssize_t got = recv(zygote.sock, &reply, sizeof reply, MSG_DONTWAIT);
    if (got < 0 && (errno == EAGAIN || errno == EINTR) && !reaped) return;
    if (got != sizeof reply) { zygote_gone(reaped); return; }
    struct exec *e = zygote.waiter;
    zygote.busy = 0;
    zygote.waiter = NULL;
    if (!e) return;
    e->want_reply = 0;
    if (reply.pid <= 0) { clone_instead(e); return; }
    free(e->request);
    e->request = NULL;
    e->pid = reply.pid;
    e->ns_pid = reply.ns_pid;
    claim_reaped(e);
    advance(e);
}

/* The terminal's master from the child (sent before its execve), or the
 * socket's end without one (the child failed first). */
static void take_master(struct exec *e) {
    errno = 0;
    int m = swvm_recv_fd(e->f.term[0]);
    if (m < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (m >= 0) { close_fd(&e->master); e->master = m; }
    close_fd(&e->f.term[0]);
}

/* A starting exec once nothing of its start is due (the zygote's reply,
 * the terminal's master, the report's end): running, or failed. */
static void advance(struct exec *e) {
    if (!e->starting || e->want_reply || e->f.term[0] >= 0 || e->f.report[0] >= 0) return;
    e->starting = 0;
    if (e->report_lost) send_error(e->id, SWVM_ERR_INTERNAL, ENOMEM, "exec: the process's start report could not be kept");
    if (e->report_lost || report_failed(e)) {
        /* It failed, so it has exited or is about to; or its report is
         * lost, and whatever it runs is not what the host was told. */
        if (e->pid > 0 && !e->exited) kill(e->pid, SIGKILL);
        release(e);
        return;
    }
    keep_streams(e, &e->f, e->master, e->interactive);
    e->master = -1;
    close_spawn_fds(&e->f);
    free(e->report);
    e->report = NULL;
    e->report_len = 0;
    send_value(MSG_EXEC_STARTED, e->id, e->ns_pid ? e->ns_pid : e->exited ? 0 : namespace_pid(e->pid));
    maybe_finish(e);   /* a terminal's child that sent no master and already exited */
}

/* Starts exec `e` (its id set): from the zygote, or cloned by guest-init;
 * the poll loop then serves its start (execs_poll_fds). On a failure here
 * the host has its MSG_EXEC_ERROR and the slot is free again. */
static void spawn(struct exec *e, const struct swvm_settings *r, const uint8_t *p, uint32_t len) {
    e->tty = r->terminal;
    e->interactive = r->interactive;
    e->starting = 1;
    if (!zygote_request(e, r, p, len) && own_clone(e, r) != 0) release(e);
}

static void start_exec(const uint8_t *p, uint32_t len) {
    struct swvm_exec_head head;
    struct swvm_settings r;
    char error[256];
    if (swvm_exec_decode(p, len, &head, &r, error, sizeof error) != 0) {
        send_error(head.id, SWVM_ERR_INVALID_ARGUMENT, 0, "%s", error);
        return;
    }
    struct exec *e = NULL;
    for (unsigned i = 0; i < SWVM_MAX_EXECS && !e; i++)
        if (!execs[i].used) e = &execs[i];
    if (find(head.id)) {
        send_error(head.id, SWVM_ERR_INVALID_ARGUMENT, 0, "exec: id %u is in use", head.id);
    } else if (!e) {
        send_error(head.id, SWVM_ERR_SYSTEM_CALL, EAGAIN, "exec: %u execs are running already", SWVM_MAX_EXECS);
    } else {
        *e = (struct exec){ .used = 1, .id = head.id, .in_fd = -1, .out_fd = { -1, -1 }, .master = -1,
                            .f = { { -1, -1 }, { -1, -1 }, { -1, -1 }, { -1, -1 }, { -1, -1 }, { -1, -1 } } };
        spawn(e, &r, p, len);
    }
    swvm_settings_free(&r);
}

/* ---------------------------------------------------------------- stdio */

/* Writes what input is buffered, as far as the pipe or terminal takes it,
 * and acknowledges it; at the host's EOF, once empty, the stream ends
 * (a terminal gets its EOF character instead). */
static void flush_input(struct exec *e) {
    uint32_t written = 0;
    while (e->in_fd >= 0 && written < e->in_len) {
        ssize_t n = write(e->in_fd, e->in_buf + written, e->in_len - written);
        if (n > 0) { written += (uint32_t)n; continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) break;
        /* The reader is gone: what is left is dropped (and acknowledged). */
        written = e->in_len;
        if (e->tty) e->in_fd = -1; else close_fd(&e->in_fd);
    }
    if (written) {
        memmove(e->in_buf, e->in_buf + written, e->in_len - written);
        e->in_len -= written;
        send_value(MSG_EXEC_INPUT_ACK, e->id, written);
    }
    if (e->in_eof && e->in_len == 0 && e->in_fd >= 0) {
        if (e->tty) {
            char eof = 4;
            if (write(e->in_fd, &eof, 1) < 0) {}
            e->in_fd = -1;
        } else {
            close_fd(&e->in_fd);
        }
    }
}

/* MSG_EXEC_INPUT: buffered up to the window (the host keeps to it). */
static void take_input(const uint8_t *p, uint32_t len) {
    struct swvm_exec_data d;
    if (swvm_exec_data_decode(p, len, &d) != 0) return;
    struct exec *e = find(d.id);
    if (!e) return;
    if (d.data_len == 0) { e->in_eof = 1; flush_input(e); return; }
    uint32_t room = SWVM_EXEC_WINDOW - e->in_len;
    uint32_t n = d.data_len < room ? d.data_len : room;
    if (e->in_fd < 0 || n == 0) { send_value(MSG_EXEC_INPUT_ACK, e->id, d.data_len); return; }
    if (!e->in_buf && !(e->in_buf = malloc(SWVM_EXEC_WINDOW))) { send_value(MSG_EXEC_INPUT_ACK, e->id, d.data_len); return; }
    memcpy(e->in_buf + e->in_len, d.data, n);
    e->in_len += n;
    flush_input(e);
}

/* One read of stream `k` (0 stdout, 1 stderr) within the window, sent as
 * MSG_EXEC_OUTPUT; at EOF (or EIO: a terminal whose last slave closed)
 * an empty one. */
static void relay_output(struct exec *e, int k) {
    uint8_t buf[SWVM_EXEC_DATA_HEAD_LEN + SWVM_EXEC_CHUNK];
    uint32_t room = SWVM_EXEC_WINDOW - e->out_unacked;
    if (room > SWVM_EXEC_CHUNK) room = SWVM_EXEC_CHUNK;
    ssize_t n = read(e->out_fd[k], buf + SWVM_EXEC_DATA_HEAD_LEN, room);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n < 0) n = 0;
    swvm_exec_data_encode(e->id, (uint32_t)k + 1, buf);
    swvm_frame_write(control, MSG_EXEC_OUTPUT, buf, SWVM_EXEC_DATA_HEAD_LEN + (uint32_t)n);
    e->out_unacked += (uint32_t)n;
    if (n == 0) {
        if (e->tty && e->in_fd == e->out_fd[k]) e->in_fd = -1;
        close_fd(&e->out_fd[k]);
        maybe_finish(e);
    }
}

/* A starting exec's descriptors: its report and its terminal's socket. */
static int start_poll_fds(const struct exec *e, struct pollfd *pfds, int room) {
    int n = 0;
    if (e->f.report[0] >= 0 && n < room) pfds[n++] = (struct pollfd){ .fd = e->f.report[0], .events = POLLIN };
    if (e->f.term[0] >= 0 && n < room) pfds[n++] = (struct pollfd){ .fd = e->f.term[0], .events = POLLIN };
    return n;
}

int execs_poll_fds(struct pollfd *pfds, int room) {
    int n = 0;
    if (zygote.busy && zygote.sock >= 0 && n < room) pfds[n++] = (struct pollfd){ .fd = zygote.sock, .events = POLLIN };
    for (unsigned i = 0; i < SWVM_MAX_EXECS; i++) {
        struct exec *e = &execs[i];
        if (!e->used) continue;
        if (e->starting) { n += start_poll_fds(e, pfds + n, room - n); continue; }
        for (int k = 0; k < 2 && n < room; k++)
            if (e->out_fd[k] >= 0 && e->out_unacked < SWVM_EXEC_WINDOW)
                pfds[n++] = (struct pollfd){ .fd = e->out_fd[k], .events = POLLIN };
        if (e->in_fd >= 0 && e->in_len > 0 && n < room) pfds[n++] = (struct pollfd){ .fd = e->in_fd, .events = POLLOUT };
    }
    return n;
}

/* One event on a starting exec's descriptor `fd`: 1 when it was one. */
static int serve_start(struct exec *e, int fd) {
    if (!e->starting || fd < 0) return 0;
    if (fd == e->f.report[0]) read_report(e);
    else if (fd == e->f.term[0]) take_master(e);
    else return 0;
    advance(e);
    return 1;
}

/* Every descriptor read here is non-blocking: an event served earlier in
 * the same round may have closed a descriptor whose number is then
 * reused, and a read of it must not wait. */
void execs_service(const struct pollfd *pfds, int n) {
    for (int i = 0; i < n; i++) {
        if (!pfds[i].revents) continue;
        if (zygote.busy && pfds[i].fd == zygote.sock) { zygote_reply(0); continue; }
        for (unsigned j = 0; j < SWVM_MAX_EXECS; j++) {
            struct exec *e = &execs[j];
            if (!e->used) continue;
            if (serve_start(e, pfds[i].fd)) break;
            if ((pfds[i].events & POLLIN) && e->out_fd[0] == pfds[i].fd) { relay_output(e, 0); break; }
            if ((pfds[i].events & POLLIN) && e->out_fd[1] == pfds[i].fd) { relay_output(e, 1); break; }
            if ((pfds[i].events & POLLOUT) && e->in_fd == pfds[i].fd) { flush_input(e); break; }
        }
    }
}

static int exit_status(int ws) { return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws); }

int execs_reaped(pid_t pid, int ws) {
    if (zygote.pid && pid == zygote.pid) {
        if (zygote.busy) zygote_reply(1);
        zygote_gone(1);
        if (workload_cfg->exec_zygote) zygote_start();
        return 1;
    }
    for (unsigned i = 0; i < SWVM_MAX_EXECS; i++) {
        struct exec *e = &execs[i];
        if (!e->used || !e->pid || e->pid != pid) continue;
        e->exited = 1;
        e->status = exit_status(ws);
        maybe_finish(e);
        return 1;
    }
    if (zygote.busy) {
        unclaimed[unclaimed_next % UNCLAIMED].pid = pid;
        unclaimed[unclaimed_next % UNCLAIMED].status = exit_status(ws);
        unclaimed_next++;
    }
    return 0;
}

/* ---------------------------------------------------------------- the workload's processes */

#define PS_MAX 1024
/* A MSG_PS_LIST's payload at most (a longer list is an error, not cut). */
#define PS_LIST_MAX (256u << 10)

static void each_pid_in(const char *line, void (*each)(pid_t, void *), void *ctx) {
    long v = strtol(line, NULL, 10);
    if (v > 0) each((pid_t)v, ctx);
}

/* Calls `each` for every process of the workload (guest-init's pids),
 * from its cgroup: the workload and everything started in it, execs
 * included. Read in chunks, so no process is left out. */
static void for_each_workload_pid(void (*each)(pid_t, void *), void *ctx) {
    int fd = open(WORKLOAD_PROCS, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char buf[4096];
    size_t have = 0;
    ssize_t n;
    while ((n = read(fd, buf + have, sizeof buf - 1 - have)) > 0) {
        have += (size_t)n;
        size_t line = 0;
        for (size_t i = 0; i < have; i++) {
            if (buf[i] != '\n') continue;
            buf[i] = 0;
            each_pid_in(buf + line, each, ctx);
            line = i + 1;
        }
        memmove(buf, buf + line, have - line);
        have -= line;
        if (have == sizeof buf - 1) have = 0;   /* not a pid: skipped */
    }
    buf[have] = 0;
    if (have > 0) each_pid_in(buf, each, ctx);
    close(fd);
}

static void signal_one(pid_t pid, void *sig) { kill(pid, *(int *)sig); }

/* MSG_SIGNAL_ALL: every process of the workload (a SIGKILL through the
 * cgroup at once, so nothing forks past it). */
static void signal_all(const uint8_t *p, uint32_t len) {
    struct swvm_signal sig;
    if (swvm_signal_decode(p, len, &sig) != 0 || sig.signal == 0 || sig.signal > 64) return;
    if (sig.signal == SIGKILL) {
        int fd = open("/sys/fs/cgroup/workload/cgroup.kill", O_WRONLY | O_CLOEXEC);
        if (fd >= 0) { if (write(fd, "1", 1) < 0) {} close(fd); }
    }
    int signo = (int)sig.signal;
    for_each_workload_pid(signal_one, &signo);
}

struct proc { pid_t pid, ppid; uint32_t nspid, uid; };

static int read_proc(pid_t pid, struct proc *out) {
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    char *ppid = strstr(buf, "\nPPid:"), *uid = strstr(buf, "\nUid:");
    out->pid = pid;
    out->ppid = ppid ? (pid_t)strtol(ppid + 6, NULL, 10) : 0;
    out->uid = uid ? (uint32_t)strtoul(uid + 5, NULL, 10) : 0;
    out->nspid = namespace_pid(pid);
    return 0;
}

/* The command line, arguments joined by spaces. */
static uint16_t read_command(pid_t pid, char *out, size_t cap) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, out, cap);
    close(fd);
    if (n <= 0) return 0;
    while (n > 0 && out[n - 1] == 0) n--;
    for (ssize_t i = 0; i < n; i++) if (out[i] == 0) out[i] = ' ';
    return (uint16_t)n;
}

struct pid_list { pid_t pids[PS_MAX]; int count, more; };

static void collect_pid(pid_t pid, void *list) {
    struct pid_list *l = list;
    if (l->count < PS_MAX) l->pids[l->count++] = pid; else l->more = 1;
}

/* MSG_PS: one MSG_PS_LIST with every process, or MSG_EXEC_ERROR (the
 * request's id) when they are over PS_MAX or PS_LIST_MAX bytes. */
static void list_processes(const uint8_t *p, uint32_t len) {
    struct swvm_exec_head head;
    if (swvm_exec_head_decode(p, len, &head) != 0) return;
    static struct pid_list list;
    static struct proc procs[PS_MAX];
    list.count = list.more = 0;
    for_each_workload_pid(collect_pid, &list);
    if (list.more) { send_error(head.id, SWVM_ERR_INVALID_ARGUMENT, 0, "ps: the workload has more than %d processes", PS_MAX); return; }
    int count = 0;
    for (int i = 0; i < list.count; i++)
        if (read_proc(list.pids[i], &procs[count]) == 0) count++;
    size_t off = SWVM_EXEC_HEAD_LEN;
    uint8_t *out = malloc(PS_LIST_MAX);
    if (!out) { send_error(head.id, SWVM_ERR_INTERNAL, ENOMEM, "ps"); return; }
    swvm_exec_head_encode(&head, out);
    for (int i = 0; i < count; i++) {
        uint32_t ppid = 0;
        for (int j = 0; j < count; j++)
            if (procs[j].pid == procs[i].ppid) ppid = procs[j].nspid;
        char command[SWVM_PS_COMMAND];
        struct swvm_ps_entry e = { .pid = procs[i].nspid, .ppid = ppid, .uid = procs[i].uid,
                                   .command = (const uint8_t *)command };
        e.command_len = read_command(procs[i].pid, command, sizeof command);
        if (swvm_ps_entry_encode(&e, out, PS_LIST_MAX, &off) != 0) {
            free(out);
            send_error(head.id, SWVM_ERR_INVALID_ARGUMENT, 0, "ps: the list of the workload's %d processes is over %u KiB",
                       count, PS_LIST_MAX >> 10);
            return;
        }
    }
    swvm_frame_write(control, MSG_PS_LIST, out, (uint32_t)off);
    free(out);
}

/* ---------------------------------------------------------------- update */

/* Writes a limit into the workload's cgroup: the number, or "max". */
static int write_limit(const char *file, int unlimited, unsigned long long v) {
    char path[96], text[32];
    snprintf(path, sizeof path, "/sys/fs/cgroup/workload/%s", file);
    int n = unlimited ? snprintf(text, sizeof text, "max") : snprintf(text, sizeof text, "%llu", v);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int ok = write(fd, text, (size_t)n) == n;
    int saved = errno;
    close(fd);
    errno = saved;
    return ok ? 0 : -1;
}

/* MSG_UPDATE (OCI update): MSG_UPDATE_DONE, or MSG_EXEC_ERROR naming
 * the limit the kernel refused (a memory.max under what is in use). */
static void update_limits(const uint8_t *p, uint32_t len) {
    struct swvm_update u;
    if (swvm_update_decode(p, len, &u) != 0) {
        struct swvm_exec_head head;
        if (swvm_exec_head_decode(p, len, &head) == 0)
            send_error(head.id, SWVM_ERR_INVALID_ARGUMENT, 0, "update: a malformed request (%u bytes)", len);
        return;
    }
    if ((u.fields & SWVM_UPDATE_MEMORY) && write_limit("memory.max", u.memory == (uint64_t)SWVM_UPDATE_UNLIMITED, u.memory) != 0) {
        send_error(u.id, SWVM_ERR_SYSTEM_CALL, errno, "update: memory.max %llu", (unsigned long long)u.memory);
        return;
    }
    if ((u.fields & SWVM_UPDATE_PIDS) && write_limit("pids.max", u.pids == SWVM_UPDATE_UNLIMITED, (unsigned long long)u.pids) != 0) {
        send_error(u.id, SWVM_ERR_SYSTEM_CALL, errno, "update: pids.max %lld", (long long)u.pids);
        return;
    }
    uint8_t out[SWVM_EXEC_HEAD_LEN];
    struct swvm_exec_head head = { .id = u.id };
    swvm_exec_head_encode(&head, out);
    swvm_frame_write(control, MSG_UPDATE_DONE, out, sizeof out);
}

/* ---------------------------------------------------------------- frames */

static void exec_value_frame(uint32_t type, const uint8_t *p, uint32_t len) {
    struct swvm_exec_value v;
    struct exec *e;
    if (swvm_exec_value_decode(p, len, &v) != 0 || !(e = find(v.id))) return;
    if (type == MSG_EXEC_SIGNAL && e->pid && !e->exited && v.value > 0 && v.value <= 64) kill(e->pid, (int)v.value);
    if (type == MSG_EXEC_ACK) e->out_unacked -= v.value < e->out_unacked ? v.value : e->out_unacked;
}

static void exec_resize(const uint8_t *p, uint32_t len) {
    struct swvm_exec_resize r;
    struct exec *e;
    if (swvm_exec_resize_decode(p, len, &r) != 0 || !(e = find(r.id)) || !e->tty || e->out_fd[0] < 0) return;
    struct winsize ws = { .ws_row = r.rows, .ws_col = r.cols };
    ioctl(e->out_fd[0], TIOCSWINSZ, &ws);
}

int execs_handle_frame(uint32_t type, const uint8_t *p, uint32_t len) {
    switch (type) {
    case MSG_EXEC: if (workload_cfg) start_exec(p, len); else send_error(0, SWVM_ERR_INTERNAL, 0, "exec: the workload is not running"); return 1;
    case MSG_EXEC_INPUT: take_input(p, len); return 1;
    case MSG_EXEC_RESIZE: exec_resize(p, len); return 1;
    case MSG_EXEC_SIGNAL: case MSG_EXEC_ACK: exec_value_frame(type, p, len); return 1;
    case MSG_SIGNAL_ALL: signal_all(p, len); return 1;
    case MSG_PS: list_processes(p, len); return 1;
    case MSG_UPDATE: update_limits(p, len); return 1;
    default: return 0;
    }
}
