/* PID 1 for the Swift variant: a static Swift binary aborts at start when
 * /proc is not mounted ("Unable to obtain Swift runtime path"), which it
 * never is for a fresh PID 1; this mounts it and execs the Swift init. */
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
int main(void) {
    mkdir("/proc", 0755);
    mount("proc", "/proc", "proc", 0, 0);
    char *argv[] = { "/swift-init", 0 };
    execv("/swift-init", argv);
    return 127;
}
