/* Runs a command and prints "SECONDS MAXRSS_KIB STATUS" on stderr.
 * A tiny launcher (vfork + exec) so that the measured process tree's peak
 * RSS is the command's own, not a copy of a big parent's. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int first = 1;
    const char *dir = NULL;
    if (argc > 2 && !strcmp(argv[1], "-C")) { dir = argv[2]; first = 3; }
    if (first >= argc) { fprintf(stderr, "usage: measure [-C DIR] COMMAND [ARG...]\n"); return 2; }
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pid_t pid = vfork();
    if (pid == 0) {
        if (dir && chdir(dir) != 0) _exit(126);
        execvp(argv[first], argv + first);
        _exit(127);
    }
    int status;
    struct rusage ru;
    wait4(pid, &status, 0, &ru);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    fprintf(stderr, "%.6f %ld %d\n", s, ru.ru_maxrss, code);
    return 0;
}
