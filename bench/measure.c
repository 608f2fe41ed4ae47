/* Runs a command and prints "SECONDS MAXRSS_KIB STATUS" on stderr, or in
 * FILE with -o FILE (for commands that leave a process holding their
 * stderr, as an OCI runtime's `create` does).
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
    const char *dir = NULL, *out = NULL;
    for (;;) {
        if (argc > first + 1 && !strcmp(argv[first], "-C")) { dir = argv[first + 1]; first += 2; }
        else if (argc > first + 1 && !strcmp(argv[first], "-o")) { out = argv[first + 1]; first += 2; }
        else break;
    }
    if (first >= argc) { fprintf(stderr, "usage: measure [-C DIR] [-o FILE] COMMAND [ARG...]\n"); return 2; }
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
    FILE *f = out ? fopen(out, "w") : stderr;
    if (!f) { perror(out); return 2; }
    fprintf(f, "%.6f %ld %d\n", s, ru.ru_maxrss, code);
    if (out) fclose(f);
    return 0;
}
