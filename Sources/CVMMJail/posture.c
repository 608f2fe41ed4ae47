// The posture of a process as the kernel reports it (swvm_keeper.h):
// compiled into swvm (the tests and JailPosture read it this way) and
// into the keeper, so there is one reader; JailPosture parses the records.
#define _GNU_SOURCE
#include "swvm_keeper.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct out { char *buf; size_t cap, len; int full; };

static void put(struct out *o, const char *s, size_t n) {
    if (o->len + n > o->cap) { o->full = 1; return; }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void put_text(struct out *o, const char *s) { put(o, s, strlen(s)); }
static void end_field(struct out *o) { put(o, "", 1); }

/// Appends the file at `path` (without NUL bytes: /proc's texts have none).
static int put_file(struct out *o, const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    char chunk[4096];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof chunk)) > 0) {
        for (ssize_t i = 0; i < n; i++) if (chunk[i] == 0) chunk[i] = ' ';
        put(o, chunk, (size_t)n);
    }
    close(fd);
    return n < 0 ? -1 : 0;
}

static int compare_tids(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/// One "task" record per thread, in tid order.
static int put_tasks(struct out *o, pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d) return -1;
    long tids[1024];
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) && count < 1024) if (e->d_name[0] >= '0' && e->d_name[0] <= '9') tids[count++] = atol(e->d_name);
    closedir(d);
    qsort(tids, (size_t)count, sizeof tids[0], compare_tids);
    for (int i = 0; i < count; i++) {
        char head[32], status[96];
        snprintf(head, sizeof head, "%ld\n", tids[i]);
        snprintf(status, sizeof status, "/proc/%d/task/%ld/status", (int)pid, tids[i]);
        size_t mark = o->len;
        put_text(o, "task");
        end_field(o);
        put_text(o, head);
        // A thread that ended meanwhile is left out.
        if (put_file(o, status) != 0) { o->len = mark; continue; }
        end_field(o);
    }
    return 0;
}

static void put_namespaces(struct out *o, pid_t pid) {
    static const char *const names[] = { "mnt", "net", "ipc", "uts", "pid", "user", "cgroup" };
    put_text(o, "ns");
    end_field(o);
    int first = 1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char theirs_path[64], ours_path[64], theirs[128], ours[128];
        snprintf(theirs_path, sizeof theirs_path, "/proc/%d/ns/%s", (int)pid, names[i]);
        /* The pid namespace against the one /proc numbers processes in
         * (its PID 1's, the host's): an OCI or detached VMM's keeper is
         * its child and shares its pid namespace, which is still the
         * VMM's own. The others against the reader's. */
        snprintf(ours_path, sizeof ours_path, strcmp(names[i], "pid") == 0 ? "/proc/1/ns/%s" : "/proc/self/ns/%s", names[i]);
        ssize_t a = readlink(theirs_path, theirs, sizeof theirs - 1), b = readlink(ours_path, ours, sizeof ours - 1);
        if (a <= 0) continue;
        theirs[a] = 0;
        ours[b > 0 ? b : 0] = 0;
        if (strcmp(theirs, ours) == 0) continue;
        if (!first) put_text(o, " ");
        put_text(o, names[i]);
        first = 0;
    }
    end_field(o);
}

/// Its root's names (none in the jail) and whether it is the caller's root.
static void put_root(struct out *o, pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/root/", (int)pid);
    put_text(o, "root");
    end_field(o);
    DIR *d = opendir(path);
    int first = 1;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (!first) put_text(o, "/");
        put_text(o, e->d_name);
        first = 0;
    }
    if (d) closedir(d);
    end_field(o);
    struct stat theirs, ours;
    int own = stat(path, &theirs) == 0 && stat("/", &ours) == 0
        && (theirs.st_dev != ours.st_dev || theirs.st_ino != ours.st_ino);
    put_text(o, "rootIsOwn");
    end_field(o);
    put_text(o, own ? "1" : "0");
    end_field(o);
}

static void put_file_record(struct out *o, const char *key, const char *path) {
    put_text(o, key);
    end_field(o);
    put_file(o, path);
    end_field(o);
}

long swvm_posture_collect(pid_t pid, char *buf, size_t cap) {
    struct out o = { .buf = buf, .cap = cap, .len = 0, .full = 0 };
    if (put_tasks(&o, pid) != 0) { errno = ESRCH; return -1; }
    put_namespaces(&o, pid);
    put_root(&o, pid);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/limits", (int)pid);
    put_file_record(&o, "limits", path);
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    put_file_record(&o, "status", path);
    put_file_record(&o, "reader", "/proc/self/status");
    if (o.full) { errno = E2BIG; return -1; }
    return (long)o.len;
}
