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
 *   tcp_request_us   with a second argument ADDRESS:PORT (swvm compare
 *                    --network bridge: a listener swvm opens on the host's
 *                    bridge address), the mean time of a TCP connect, a
 *                    small request, its echo read back to the end, and the
 *                    close; null without one
 *   volume_ms        with a third argument DIR (swvm compare -v: the first
 *                    volume's target), file_ms's cycle on DIR; null without
 *   iterations       how many of each were timed
 *
 * Arguments: the time budget in seconds (default 1), then ADDRESS:PORT (or
 * "-" for none), then DIR.
 * The probe is its own client, so the figure needs no tool in the image.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One connection: connect, send "swvm-probe N\n", read until the listener
 * closes, and check that what came back is the request (an echo, so the
 * figure is a real round trip to swvm's listener, not to anything else). */
static int tcp_request(const struct sockaddr_in *sa, int n) {
    char req[32], back[64];
    int len = snprintf(req, sizeof req, "swvm-probe %d\n", n), got = 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) { perror("probe: socket"); return -1; }
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) != 0) { perror("probe: connect"); close(fd); return -1; }
    if (write(fd, req, len) != len) { perror("probe: send"); close(fd); return -1; }
    for (;;) {
        ssize_t r = read(fd, back + got, sizeof back - got);
        if (r < 0) { perror("probe: receive"); close(fd); return -1; }
        if (r == 0 || (got += r) == (int)sizeof back) break;
    }
    close(fd);
    if (got != len || memcmp(req, back, len) != 0) { fprintf(stderr, "probe: the listener did not echo the request\n"); return -1; }
    return 0;
}

static int parse_target(const char *text, struct sockaddr_in *sa) {
    char addr[32];
    const char *colon = strrchr(text, ':');
    if (!colon || colon - text >= (long)sizeof addr) return -1;
    memcpy(addr, text, colon - text);
    addr[colon - text] = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (*end || port < 1 || port > 65535 || inet_pton(AF_INET, addr, &sa->sin_addr) != 1) return -1;
    return 0;
}

/* Create, write 1 MiB, fsync, read back, unlink `path`, as often as the
 * budget allows (1 to 20 times); the mean in ms, or -1. */
static double file_cycles(const char *path, double budget, int *count) {
    static char buf[1 << 20];
    memset(buf, 0x5a, sizeof buf);
    int files = 0;
    double t = now(), end = t + budget;
    while (files < 20 && (files < 1 || now() < end)) {
        int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0600);
        if (fd < 0) { perror("probe: create"); return -1; }
        if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) { perror("probe: write"); return -1; }
        fsync(fd);
        lseek(fd, 0, SEEK_SET);
        if (read(fd, buf, sizeof buf) != (ssize_t)sizeof buf) { perror("probe: read"); return -1; }
        close(fd);
        unlink(path);
        files++;
    }
    *count = files;
    return (now() - t) / files * 1e3;
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

    int files = 0;
    double file_ms = file_cycles("/.swvm-probe-file", budget, &files);
    if (file_ms < 0) return 1;

    t = now();
    volatile uint64_t x = 0;
    for (uint64_t i = 0; i < 100000000ull; i++) x += i ^ (x >> 3);
    double cpu_ms = (now() - t) * 1e3;

    /* The first connection resolves the bridge's MAC (ARP) and is not
     * timed; the others are what a client of a host service pays. */
    char tcp_us[32] = "null";
    int tcps = 0;
    if (argc > 2 && strcmp(argv[2], "-") != 0) {
        struct sockaddr_in sa;
        if (parse_target(argv[2], &sa) != 0) { fprintf(stderr, "probe: bad ADDRESS:PORT '%s'\n", argv[2]); return 1; }
        if (tcp_request(&sa, 0) != 0) return 1;
        t = now();
        end = t + budget;
        while (tcps < 2000 && (tcps < 3 || now() < end)) {
            if (tcp_request(&sa, tcps + 1) != 0) return 1;
            tcps++;
        }
        snprintf(tcp_us, sizeof tcp_us, "%.1f", (now() - t) / tcps * 1e6);
    }

    char volume_ms[32] = "null";
    int volume_files = 0;
    if (argc > 3) {
        char path[4096];
        snprintf(path, sizeof path, "%s/.swvm-probe-file", argv[3]);
        double ms = file_cycles(path, budget, &volume_files);
        if (ms < 0) { fprintf(stderr, "probe: on the volume %s\n", argv[3]); return 1; }
        snprintf(volume_ms, sizeof volume_ms, "%.3f", ms);
    }

    printf("{\"syscall_ns\":%.1f,\"fork_exec_ms\":%.3f,\"file_ms\":%.3f,\"cpu_ms\":%.1f,\"tcp_request_us\":%s,"
           "\"volume_ms\":%s,\"iterations\":{\"syscall\":%d,\"fork_exec\":%d,\"file\":%d,\"cpu\":100000000,"
           "\"tcp_request\":%d,\"volume\":%d}}\n",
           syscall_ns, fork_ms, file_ms, cpu_ms, tcp_us, volume_ms, syscalls, forks, files, tcps, volume_files);
    return 0;
}
