/* A test /init for `swvm boot`: a few system calls, a fork and exec of a
 * second static program, a marker, and a power-off (or, with "panic" on
 * the kernel command line after "--", an exit that panics the kernel). */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The clock (ns) and jiffies that /proc/timer_list shows first; 0 if unread. */
static int timer_list(long long *ns, long long *jiffies) {
    static char text[1 << 16];
    int fd = open("/proc/timer_list", O_RDONLY);
    if (fd < 0) return 0;
    ssize_t n, got = 0;
    while (got < (ssize_t)sizeof text - 1 && (n = read(fd, text + got, sizeof text - 1 - got)) > 0) got += n;
    close(fd);
    text[got] = 0;
    char *now = strstr(text, "now at "), *j = strstr(text, "jiffies: ");
    return now && j && sscanf(now, "now at %lld", ns) == 1 && sscanf(j, "jiffies: %lld", jiffies) == 1;
}

/* The kernel's tick rate (HZ): jiffies over a second of its own clock,
 * to the nearest 10. */
static long tick_rate(void) {
    long long ns0, j0, ns1, j1;
    if (!timer_list(&ns0, &j0)) return -1;
    nanosleep(&(struct timespec){ .tv_sec = 1 }, NULL);
    if (!timer_list(&ns1, &j1) || ns1 <= ns0) return -1;
    double hz = (double)(j1 - j0) * 1e9 / (double)(ns1 - ns0);
    return (long)(hz / 10 + 0.5) * 10;
}

int main(int argc, char **argv) {
    struct utsname u;
    uname(&u);
    printf("init: pid %d on %s %s\n", getpid(), u.sysname, u.release);
    mkdir("/proc", 0755);
    if (mount("proc", "/proc", "proc", 0, NULL) != 0) { perror("mount /proc"); return 1; }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int fd = open("/proc/cpuinfo", O_RDONLY);
    char buf[65536];
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    int processors = 0;
    if (n > 0) {
        buf[n] = 0;
        for (char *p = buf; (p = strstr(p, "processor\t")); p++) processors++;
    }
    printf("init: %ld CPUs online, %d in /proc/cpuinfo\n", cpus, processors);
    printf("init: timer tick %ld Hz\n", tick_rate());
    fflush(stdout);

    pid_t pid = fork();
    if (pid == 0) {
        char *args[] = { "/child", "from-init", NULL };
        execv("/child", args);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    printf("init: child exited with %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "panic")) { printf("init: exiting to panic the kernel\n"); fflush(stdout); return 3; }
    }
    printf("SWVM-BOOT-MARKER-OK\n");
    fflush(stdout);
    reboot(RB_POWER_OFF);
    return 0;
}
