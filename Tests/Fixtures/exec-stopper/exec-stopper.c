/* exec-stopper: run in a VM's workload (root in the guest), it SIGSTOPs
 * the first exec'd child it finds before its execve, as a workload may:
 * it spins over the pids after its own as they appear, and a process
 * whose comm is still "init" (guest-init's, inherited through the exec
 * zygote or guest-init's own clone) has not exec'd yet. A stop is
 * confirmed once the process is in state T with that comm (a SIGSTOP
 * that lands during the execve stops the new program instead: it is let
 * go and the hunt goes on). Says "stopped PID" on stdout and exits, so
 * later execs are left alone. Used by DetachedVMExecFailureTests. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define AHEAD 32   /* pids tried past the oldest one not done with */

/* The first `n` bytes of /proc/PID/FILE into out; 0 if unreadable. */
static int read_proc(int pid, const char *file, char *out, size_t n) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", pid, file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t got = fd < 0 ? -1 : read(fd, out, n - 1);
    if (fd >= 0) close(fd);
    if (got <= 0) return 0;
    out[got] = 0;
    out[strcspn(out, "\n")] = 0;
    return 1;
}

/* The state letter of /proc/PID/stat (after the comm's closing paren). */
static char state_of(int pid) {
    char stat[512];
    if (!read_proc(pid, "stat", stat, sizeof stat)) return 0;
    char *paren = strrchr(stat, ')');
    return paren && paren[1] == ' ' ? paren[2] : 0;
}

/* 1: PID is stopped before its execve. 0: not a candidate (yet). -1: gone. */
static int try_pid(int pid) {
    char comm[32];
    if (!read_proc(pid, "comm", comm, sizeof comm)) return -1;
    if (strcmp(comm, "init") != 0 || kill(pid, SIGSTOP) != 0) return 0;
    char state;
    while ((state = state_of(pid)) != 'T' && state != 0) {}
    if (state == 'T' && read_proc(pid, "comm", comm, sizeof comm) && !strcmp(comm, "init")) return 1;
    kill(pid, SIGCONT);
    return 0;
}

int main(void) {
    static unsigned char done[1 << 22];
    int base = getpid() + 1, newest = 0;
    for (;;) {
        for (int p = base; p < base + AHEAD && p < (1 << 22); p++) {
            if (done[p]) continue;
            int r = try_pid(p);
            if (r == 1) {
                printf("stopped %d\n", p);
                return fflush(stdout) != 0;
            }
            if (r == 0 && p > newest) newest = p;
            /* Gone while a later pid exists: it will not come back soon. */
            if (r < 0 && p < newest) done[p] = 1;
            /* Exec'd (or never an exec's): no longer a candidate. */
            if (r == 0) {
                char comm[32];
                if (read_proc(p, "comm", comm, sizeof comm) && strcmp(comm, "init") != 0) done[p] = 1;
            }
        }
        while (base < (1 << 22) - AHEAD && done[base]) base++;
    }
}
