/* A small TCP throughput and round-trip tool for bench.py net, static so
 * that it runs unchanged on the host, in a container and in a VM.
 *
 *   netperf server PORT              serve forever (prints "ready")
 *   netperf tput HOST PORT SECONDS   send for SECONDS: "tput_gbps X"
 *   netperf rtt HOST PORT COUNT      1-byte ping-pong: "rtt_us_median X"
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int dial(const char *host, int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) { fprintf(stderr, "bad address %s\n", host); exit(2); }
    for (int i = 0; i < 100; i++) {
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            return fd;
        }
        close(fd);
        fd = socket(AF_INET, SOCK_STREAM, 0);
        usleep(100000);
    }
    perror("connect");
    exit(1);
}

static void serve(int c, char mode) {
    static char buf[1 << 17];
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (mode == 'T') {
        while (read(c, buf, sizeof buf) > 0) {}
    } else if (mode == 'L') {
        char b;
        while (read(c, &b, 1) == 1 && write(c, &b, 1) == 1) {}
    }
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "server")) {
        signal(SIGCHLD, SIG_IGN);
        int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2])) };
        if (bind(s, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(s, 64) != 0) { perror("listen"); return 1; }
        printf("ready\n");
        fflush(stdout);
        for (;;) {
            int c = accept(s, NULL, NULL);
            if (c < 0) continue;
            char mode;
            if (read(c, &mode, 1) != 1) { close(c); continue; }
            if (fork() == 0) { close(s); serve(c, mode); _exit(0); }
            close(c);
        }
    }
    if (argc != 5) {
        fprintf(stderr, "usage: netperf server PORT | tput|rtt HOST PORT N\n");
        return 2;
    }
    const char *host = argv[2];
    int port = atoi(argv[3]);
    double n = atof(argv[4]);
    if (!strcmp(argv[1], "tput")) {
        static char buf[1 << 17];
        memset(buf, 'x', sizeof buf);
        int fd = dial(host, port);
        write(fd, "T", 1);
        double t0 = now(), t;
        unsigned long long sent = 0;
        while ((t = now()) - t0 < n) {
            ssize_t w = write(fd, buf, sizeof buf);
            if (w <= 0) { perror("write"); return 1; }
            sent += (unsigned long long)w;
        }
        close(fd);
        printf("tput_gbps %.6f\n", (double)sent * 8 / (t - t0) / 1e9);
        return 0;
    }
    int count = (int)n;
    if (count < 1) count = 1;
    double *v = calloc((size_t)count, sizeof *v);
    if (!strcmp(argv[1], "rtt")) {
        int fd = dial(host, port);
        write(fd, "L", 1);
        char b = 'p';
        for (int i = 0; i < count; i++) {
            double t0 = now();
            if (write(fd, &b, 1) != 1 || read(fd, &b, 1) != 1) { perror("ping"); return 1; }
            v[i] = (now() - t0) * 1e6;
        }
        close(fd);
        qsort(v, (size_t)count, sizeof *v, cmp);
        printf("rtt_us_median %.1f\n", v[count / 2]);
        return 0;
    }
    fprintf(stderr, "unknown mode %s\n", argv[1]);
    return 2;
}
