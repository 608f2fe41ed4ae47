/*
 * swvm-probe: the workload cost figures of `swvm compare`, measured inside
 * the isolation being compared (swvm bind-mounts this static binary into
 * the container or the VM as /.swvm-probe; the image is not modified).
 *
 * Prints one JSON object on stdout:
 *   syscall_ns       mean time of a getppid() round trip
 *   fork_exec_ms     mean time of fork + exec of a trivial program + wait
 *   file_ms          create, write 1 MiB, fsync, read back, unlink, on /
 *   cpu_ms           a fixed CPU-bound loop (user mode only)
 *   iterations       how many of each were timed
 *
 * Argument: the time budget in seconds (default 1).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Each figure is timed over as many iterations as fit in its time budget
 * (at least `min`, at most `max`): on a host where the guest kernel is
 * emulated a fork+exec takes a second, natively a tenth of a millisecond. */
int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "noop")) return 0;
    double budget = argc > 1 ? atof(argv[1]) : 1.0;
    const char *self = "/proc/self/exe";

    int syscalls = 0;
    double t = now(), end = t + budget * 0.5;
    while (syscalls < 200000 && (syscalls < 100 || now() < end)) {
        for (int i = 0; i < 100; i++) syscall(SYS_getppid);
        syscalls += 100;
    }
    double syscall_ns = (now() - t) / syscalls * 1e9;

    int forks = 0;
    t = now();
    end = t + budget * 2;
    while (forks < 50 && (forks < 2 || now() < end)) {
        pid_t pid = fork();
        if (pid == 0) {
            execl(self, "swvm-probe", "noop", (char *)NULL);
            _exit(127);
        }
        int st;
        waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) { fprintf(stderr, "probe: fork+exec failed\n"); return 1; }
        forks++;
    }
    double fork_ms = (now() - t) / forks * 1e3;

    static char buf[1 << 20];
    memset(buf, 0x5a, sizeof buf);
    int files = 0;
    t = now();
    end = t + budget;
    while (files < 20 && (files < 1 || now() < end)) {
        int fd = open("/.swvm-probe-file", O_CREAT | O_TRUNC | O_RDWR, 0600);
        if (fd < 0) { perror("probe: create"); return 1; }
        if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) { perror("probe: write"); return 1; }
        fsync(fd);
        lseek(fd, 0, SEEK_SET);
        if (read(fd, buf, sizeof buf) != (ssize_t)sizeof buf) { perror("probe: read"); return 1; }
        close(fd);
        unlink("/.swvm-probe-file");
        files++;
    }
    double file_ms = (now() - t) / files * 1e3;

    t = now();
    volatile uint64_t x = 0;
    for (uint64_t i = 0; i < 100000000ull; i++) x += i ^ (x >> 3);
    double cpu_ms = (now() - t) * 1e3;

    printf("{\"syscall_ns\":%.1f,\"fork_exec_ms\":%.3f,\"file_ms\":%.3f,\"cpu_ms\":%.1f,"
           "\"iterations\":{\"syscall\":%d,\"fork_exec\":%d,\"file\":%d,\"cpu\":100000000}}\n",
           syscall_ns, fork_ms, file_ms, cpu_ms, syscalls, forks, files);
    return 0;
}
