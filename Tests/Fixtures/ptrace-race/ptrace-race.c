/* ptrace-race: run as a root workload without CAP_SYS_PTRACE, it spins
 * PTRACE_ATTACH on each pid after its own as it appears, to catch an exec's
 * child between its clone from the exec zygote (sharing the root zygote's
 * memory, CLONE_VM) and its execve. Each outcome is one line on stdout:
 *   attached PID COMM  an attach worked (COMM "init": before its execve,
 *                      so the zygote could be taken over)
 *   denied PID COMM    the first EPERM seen on that pid
 * Every attach is undone at once, so the exec goes on. With the argument
 * "stop" it SIGSTOPs each pid whose comm is "init" (an exec's child before
 * its execve) instead, once, and says "stopped PID". Used by
 * DetachedVMExecTests; runs until killed. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#define PIDS (1 << 22)          /* the kernel's largest pid_max */
#define AHEAD 16                /* pids tried past the oldest still open */
static unsigned char seen[PIDS]; /* 1: denied reported, 2: done with it */

static void comm_of(int pid, char *out, size_t n) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/comm", pid);
    int fd = open(path, O_RDONLY);
    ssize_t got = fd < 0 ? -1 : read(fd, out, n - 1);
    if (fd >= 0) close(fd);
    if (got <= 0) got = 0, strcpy(out, "?");
    else out[got] = 0;
    out[strcspn(out, "\n")] = 0;
}

static void say(const char *what, int pid, const char *comm) {
    char line[128];
    int n = snprintf(line, sizeof line, "%s %d %s\n", what, pid, comm);
    if (write(1, line, (size_t)n) < 0) _exit(1);
}

/* One attempt on PID; returns 1 when it is done with (attached after its
 * execve, or gone). */
static int stop_mode;

static int try_pid(int pid) {
    char comm[32];
    if (stop_mode) {
        comm_of(pid, comm, sizeof comm);
        if (!strcmp(comm, "init") && kill(pid, SIGSTOP) == 0) { say("stopped", pid, comm); return 1; }
        return kill(pid, 0) == 0 || errno != ESRCH ? 0 : -1;
    }
    if (ptrace(PTRACE_ATTACH, pid, 0, 0) == 0) {
        int st;
        waitpid(pid, &st, __WALL);
        comm_of(pid, comm, sizeof comm);
        say("attached", pid, comm);
        ptrace(PTRACE_DETACH, pid, 0, 0);
        return strcmp(comm, "init") != 0;
    }
    if (errno == EPERM) {
        if (!seen[pid]) {
            comm_of(pid, comm, sizeof comm);
            say("denied", pid, comm);
            seen[pid] = 1;
        }
        return 0;
    }
    return errno == ESRCH ? -1 : 0;
}

int main(int argc, char **argv) {
    stop_mode = argc > 1 && !strcmp(argv[1], "stop");
    int base = getpid() + 1, newest = 0;
    for (;;) {
        for (int p = base; p < base + AHEAD && p < PIDS; p++) {
            if (seen[p] == 2) continue;
            int r = try_pid(p);
            if (r >= 0 && p > newest) newest = p;
            if (r == 1) seen[p] = 2;
            /* Gone, and a later pid was seen: it will not come back soon. */
            else if (r < 0 && p < newest) seen[p] = 2;
        }
        while (base < PIDS - AHEAD && seen[base] == 2) base++;
    }
}
