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
#include <unistd.h>

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
