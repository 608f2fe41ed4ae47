/*
 * OCI mode: the hooks the container's init runs itself, createContainer
 * before pivot_root and startContainer before execve (swvm_oci_hooks.h has
 * the protocol with swvm create). Async-signal-safe, like all of the child:
 * the blob lives in an anonymous mapping, each hook is a clone + execve.
 */
#define _GNU_SOURCE
#include "confine_internal.h"
#include "swvm_format.h"
#include "swvm_oci_hooks.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* A read position in the blob; any overrun fails the init. */
struct cursor { const struct child *c; char *p, *end; };

static uint32_t take_u32(struct cursor *k) {
    if (k->end - k->p < 4) cf_fail(k->c, SWVM_ERR_INTERNAL, "OCI hooks: the message from swvm is cut short");
    uint32_t v;
    memcpy(&v, k->p, 4);
    k->p += 4;
    return v;
}

static char *take_string(struct cursor *k) {
    char *nul = memchr(k->p, 0, (size_t)(k->end - k->p));
    if (!nul) cf_fail(k->c, SWVM_ERR_INTERNAL, "OCI hooks: a string from swvm has no end");
    char *s = k->p;
    k->p = nul + 1;
    return s;
}

static void read_full(const struct child *c, int fd, char *p, size_t len) {
    while (len) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) _exit(125);   /* swvm went away (a prestart hook failed: it killed us) */
        p += n;
        len -= (size_t)n;
    }
    (void)c;
}

/* MSG_HOOKS, then the blob from the sync pipe, kept for the init's life. */
static void receive_blob(struct child *c) {
    if (swvm_frame_write(c->io->error_fd, MSG_HOOKS, NULL, 0) != 0) cf_fail_errno(c, "ask swvm for the hooks", "");
    uint32_t len;
    read_full(c, c->io->sync_fd, (char *)&len, 4);
    if (len > SWVM_HOOKS_MAX_BLOB) cf_fail(c, SWVM_ERR_INTERNAL, "OCI hooks: %u bytes from swvm, over the limit", len);
    char *blob = mmap(NULL, (size_t)len + 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (blob == MAP_FAILED) cf_fail_errno(c, "map the hooks", "");
    read_full(c, c->io->sync_fd, blob, len);
    close(c->io->sync_fd);
    struct cursor k = { c, blob, blob + len };
    c->hook_state[0] = take_string(&k);
    c->hook_state[1] = take_string(&k);
    c->hook_count[0] = take_u32(&k);
    c->hook_count[1] = take_u32(&k);
    c->hook_list = k.p;
    c->hook_end = k.end;
}

/* What a failed hook printed, made printable for the error message. */
static size_t printable(char *out, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] == 0x7f) out[i] = ' ';
    return n;
}

static void exec_hook(int in, int out, char *path, char **argv, char **envp) {
    cf_reset_signals();
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0) _exit(127);
    execve(path, argv, envp);
    _exit(127);
}

static uint64_t now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* Waits for the hook, keeping the start of its output; kills it at the
 * deadline (0: none). Its wait status, or -1 when it timed out. */
static int wait_hook(pid_t pid, int out, uint64_t deadline, char *text, size_t *len, size_t cap) {
    int open_ = 1, timed_out = 0;
    for (;;) {
        struct pollfd p = { .fd = open_ ? out : -1, .events = POLLIN };
        poll(&p, 1, 50);
        if (open_ && p.revents) {
            char buf[512];
            ssize_t n = read(out, buf, sizeof buf);
            if (n > 0) {
                size_t keep = *len + (size_t)n > cap ? cap - *len : (size_t)n;
                memcpy(text + *len, buf, keep);
                *len += keep;
            } else if (n == 0 || errno != EINTR) {
                open_ = 0;
            }
        }
        if (deadline && !timed_out && now_ms() >= deadline) {
            kill(pid, SIGKILL);
            timed_out = 1;
        }
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) return timed_out ? -1 : status;
        if (r < 0 && errno != EINTR) return -1;
    }
}

/* argv and envp of a hook: argc (at least 1) + NULL + envc + NULL. */
static char *strings[SWVM_HOOKS_MAX_STRINGS + 3];

/* One hook: the state on its stdin (written before it starts, so one that
 * never reads cannot block the init), its output kept for the error. */
static void run_hook(const struct child *c, struct cursor *k, const char *kind, uint32_t index, const char *state) {
    uint32_t timeout = take_u32(k), argc = take_u32(k), envc = take_u32(k);
    if (argc > SWVM_HOOKS_MAX_STRINGS || envc > SWVM_HOOKS_MAX_STRINGS - argc)
        cf_fail(c, SWVM_ERR_INTERNAL, "OCI hooks: %s hook #%u has too many strings", kind, index);
    char *path = take_string(k);
    char **argv = strings, **envp = strings + argc + 2;
    for (uint32_t i = 0; i < argc; i++) argv[i] = take_string(k);
    if (argc == 0) argv[argc++] = path;
    argv[argc] = NULL;
    for (uint32_t i = 0; i < envc; i++) envp[i] = take_string(k);
    envp[envc] = NULL;
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) cf_fail_errno(c, "make the pipes of a hook", path);
    size_t slen = strlen(state);
    if (slen > 65536) fcntl(in[1], 1031 /* F_SETPIPE_SZ */, (int)slen);
    if (write(in[1], state, slen) != (ssize_t)slen) cf_fail_errno(c, "give its state to the hook", path);
    close(in[1]);
    pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (pid < 0) cf_fail_errno(c, "start the hook", path);
    if (pid == 0) exec_hook(in[0], out[1], path, argv, envc ? envp : environ);
    close(in[0]);
    close(out[1]);
    char text[1024];
    size_t len = 0;
    int status = wait_hook(pid, out[0], timeout ? now_ms() + (uint64_t)timeout * 1000 : 0, text, &len, sizeof text);
    close(out[0]);
    if (status == 0) return;
    printable(text, len);
    const char *sep = len ? ", output: " : "";
    if (status == -1)
        cf_fail(c, SWVM_ERR_SYSTEM_CALL, "%s hook #%u (%s): timed out after %u s%s%.*s", kind, index, path, timeout, sep, (int)len, text);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && len == 0)
        cf_fail(c, SWVM_ERR_SYSTEM_CALL, "%s hook #%u (%s): cannot run it (exit status 127)", kind, index, path);
    if (WIFSIGNALED(status))
        cf_fail(c, SWVM_ERR_SYSTEM_CALL, "%s hook #%u (%s): killed by signal %d%s%.*s", kind, index, path, WTERMSIG(status), sep, (int)len, text);
    cf_fail(c, SWVM_ERR_SYSTEM_CALL, "%s hook #%u (%s): exit status %d%s%.*s", kind, index, path, WEXITSTATUS(status), sep, (int)len, text);
}

/* The hooks of one kind (0: createContainer, 1: startContainer), in order. */
static void run_kind(struct child *c, int which) {
    struct cursor k = { c, c->hook_list, c->hook_end };
    const char *kind = which ? "startContainer" : "createContainer";
    /* startContainer's come after createContainer's: skip those. */
    for (uint32_t skip = 0; which && skip < c->hook_count[0]; skip++) {
        uint32_t argc, envc;
        take_u32(&k);
        argc = take_u32(&k);
        envc = take_u32(&k);
        for (uint64_t i = 0; i < 1 + (uint64_t)argc + envc; i++) take_string(&k);
    }
    for (uint32_t i = 0; i < c->hook_count[which]; i++) run_hook(c, &k, kind, i, c->hook_state[which]);
}

void cf_oci_create_hooks(struct child *c) {
    if (!c->hooks) return;
    receive_blob(c);
    run_kind(c, 0);
}

void cf_oci_start_hooks(struct child *c) {
    if (c->hooks) run_kind(c, 1);
}
