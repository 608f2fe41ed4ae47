/* File-system figures for bench.py volumes, the same static binary inside a
 * container, swvm's VM and QEMU's:
 *
 *   fsperf small DIR N    create+write N files of 100 bytes, read them all,
 *                         delete them all: "small create_ms read_ms delete_ms"
 *   fsperf big DIR MIB    write one file of MIB MiB (1 MiB writes, fsync),
 *                         then read it back: "big write_ms read_ms"
 *
 * Times are the phases' own (clock_gettime inside the run), so a VM's boot
 * is not in them. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void die(const char *what, const char *path) { perror(what); fprintf(stderr, "fsperf: %s\n", path); exit(1); }

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: fsperf small DIR N | big DIR MIB\n"); return 2; }
    const char *dir = argv[2];
    long n = atol(argv[3]);
    char path[4096];
    if (!strcmp(argv[1], "small")) {
        char data[100], back[100];
        memset(data, 'x', sizeof data);
        double t0 = now_ms();
        for (long i = 0; i < n; i++) {
            snprintf(path, sizeof path, "%s/f%ld", dir, i);
            int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0 || write(fd, data, sizeof data) != sizeof data || close(fd) != 0) die("create", path);
        }
        double t1 = now_ms();
        for (long i = 0; i < n; i++) {
            snprintf(path, sizeof path, "%s/f%ld", dir, i);
            int fd = open(path, O_RDONLY);
            if (fd < 0 || read(fd, back, sizeof back) != sizeof back || close(fd) != 0) die("read", path);
            if (memcmp(back, data, sizeof data)) die("compare", path);
        }
        double t2 = now_ms();
        for (long i = 0; i < n; i++) {
            snprintf(path, sizeof path, "%s/f%ld", dir, i);
            if (unlink(path) != 0) die("unlink", path);
        }
        double t3 = now_ms();
        printf("small %.1f %.1f %.1f\n", t1 - t0, t2 - t1, t3 - t2);
    } else if (!strcmp(argv[1], "big")) {
        static char buf[1 << 20];
        for (size_t i = 0; i < sizeof buf; i++) buf[i] = (char)(i * 7);
        snprintf(path, sizeof path, "%s/big", dir);
        double t0 = now_ms();
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) die("create", path);
        for (long i = 0; i < n; i++)
            if (write(fd, buf, sizeof buf) != sizeof buf) die("write", path);
        if (fsync(fd) != 0 || close(fd) != 0) die("fsync", path);
        double t1 = now_ms();
        fd = open(path, O_RDONLY);
        if (fd < 0) die("open", path);
        long got = 0;
        ssize_t r;
        while ((r = read(fd, buf, sizeof buf)) > 0) got += r;
        if (r < 0 || got != n << 20) die("read", path);
        close(fd);
        double t2 = now_ms();
        unlink(path);
        printf("big %.1f %.1f\n", t1 - t0, t2 - t1);
    } else {
        return 2;
    }
    return 0;
}
