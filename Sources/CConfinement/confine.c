/* The workload's confinement, shared by swvm's container child and
 * guest-init (swvm_confine.h). C because the container child may run no
 * Swift between clone and execve, and guest-init is a small static binary. */
#define _GNU_SOURCE
#include "confine_internal.h"
#include "swvm_format.h"
#include "swvm_oci_hooks.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

/* Kernel ABI bits not every libc (musl, glibc 2.36) exposes. */
#define CAPSET_VERSION_3 0x20080522
struct cap_header { uint32_t version; int pid; };
struct cap_data { uint32_t effective, permitted, inheritable; };
struct sock_fprog_ { unsigned short len; const void *filter; };
#define SECCOMP_SET_MODE_FILTER_ 1
#define PR_CAPBSET_DROP_ 24
#define CLOSE_RANGE_CLOEXEC_ 4
#define RESOLVE_NO_MAGICLINKS_ 0x02
#define RESOLVE_IN_ROOT_ 0x10
#define MOVE_MOUNT_F_EMPTY_PATH_ 0x4
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#endif
struct open_how_ { uint64_t flags, mode, resolve; };

#define NSE (MS_NOSUID | MS_NODEV | MS_NOEXEC)

/* ---------------------------------------------------------------- failing */

void cf_write_all(int fd, const char *p, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        p += n;
        len -= (size_t)n;
    }
}

/* Reports a MSG_ERROR (`code`, `err`: an errno or 0, the message) and ends
 * the child with the code's exit status. Async-signal-safe, like all of
 * the child: no malloc, stdio or strerror (swvm_format.h says why); the
 * parent adds errno's text. Once an OCI init has told its parent it was
 * created, nobody reads that pipe: the message goes to its stderr. */
__attribute__((noreturn))
static void vfail(const struct child *c, uint32_t code, int err, const char *fmt, va_list ap) {
    char msg[1024];
    size_t n = swvm_vformat(msg, sizeof msg, fmt, ap);
    if (n >= sizeof msg) n = sizeof msg - 1;
    if (c->created) {
        char line[1100];
        size_t m = swvm_format(line, sizeof line, "swvm: %.*s (errno %d)\n", (int)n, msg, err);
        cf_write_all(2, line, m < sizeof line ? m : sizeof line - 1);
    } else {
        swvm_error_write(c->io->error_fd, code, err, msg, (uint32_t)n);
    }
    _exit(swvm_error_exit_status(code));
}

void cf_fail(const struct child *c, uint32_t code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfail(c, code, 0, fmt, ap);
}

void cf_fail_err(const struct child *c, uint32_t code, int err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfail(c, code, err, fmt, ap);
}

/* The one form of a failed step: "STEP PATH: reason". */
void cf_fail_errno(const struct child *c, const char *step, const char *path) {
    cf_fail_err(c, SWVM_ERR_SYSTEM_CALL, errno, "%s%s%s", step, *path ? " " : "", path);
}

/* Formats a path or option string; one too long for `buf` is a failed
 * step (ENAMETOOLONG), never a silently shortened path. */
void cf_text_of(const struct child *c, char *buf, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t n = swvm_vformat(buf, size, fmt, ap);
    va_end(ap);
    if (n >= size) cf_fail_err(c, SWVM_ERR_SYSTEM_CALL, ENAMETOOLONG, "build the path %.*s...", 64, buf);
}

/* ---------------------------------------------------------------- paths inside the root */

/* An fd for `path` resolved inside the root: symlinks and `..` in the
 * image stay inside it, so no mount can be redirected onto the host. */
int cf_open_in_root(const struct child *c, const char *path, int flags) {
    struct open_how_ how = { .flags = (uint64_t)(flags | O_CLOEXEC), .mode = 0,
                             .resolve = RESOLVE_IN_ROOT_ | RESOLVE_NO_MAGICLINKS_ };
    while (*path == '/') path++;
    return (int)syscall(SYS_openat2, c->root, *path ? path : ".", &how, sizeof how);
}

/* When `name` in `dfd` (the directory `parent`) is a symlink: creates what
 * it points to, inside the root, as runc's securejoin + MkdirAll do. */
static int ensure_at(const struct child *c, const char *path, int directory, int depth);

static int ensure_link_target(const struct child *c, int dfd, const char *parent, const char *name, int directory, int depth) {
    char link[4096], target[8192];
    ssize_t n = readlinkat(dfd, name, link, sizeof link - 1);
    if (n < 0) { errno = EEXIST; return -1; }
    link[n] = 0;
    if (depth >= 40) { errno = ELOOP; return -1; }
    size_t len = link[0] == '/' ? swvm_format(target, sizeof target, "%s", link)
                                : swvm_format(target, sizeof target, "%s/%s", parent, link);
    if (len >= sizeof target) { errno = ENAMETOOLONG; return -1; }
    int fd = ensure_at(c, target, directory, depth + 1);
    if (fd < 0) return -1;
    close(fd);
    return 0;
}

/* An O_PATH fd for `path` inside the root, creating it (and missing
 * parents) as a directory or an empty file; a dangling symlink on the way
 * gets its target made inside the root. -1 with errno on failure. */
static int ensure_at(const struct child *c, const char *path, int directory, int depth) {
    int fd = cf_open_in_root(c, path, O_PATH);
    if (fd >= 0 || errno != ENOENT) return fd;
    char parent[4096];
    if (swvm_format(parent, sizeof parent, "%s", path) >= sizeof parent) { errno = ENAMETOOLONG; return -1; }
    char *slash = strrchr(parent, '/');
    const char *name = slash ? path + (slash - parent) + 1 : path;
    if (slash) *slash = 0;
    if (!*parent) strcpy(parent, "/");
    if (!*name || !strcmp(name, ".") || !strcmp(name, "..")) { errno = ENOENT; return -1; }
    int pfd = ensure_at(c, parent, 1, depth);
    if (pfd < 0) return -1;
    close(pfd);
    int dfd = cf_open_in_root(c, parent, O_RDONLY | O_DIRECTORY);
    if (dfd < 0) return -1;
    int r;
    if (directory) r = mkdirat(dfd, name, 0755);
    else { r = openat(dfd, name, O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644); if (r >= 0) close(r); }
    int saved = errno;
    if (r < 0 && saved == EEXIST) r = ensure_link_target(c, dfd, parent, name, directory, depth), saved = errno;
    close(dfd);
    if (r < 0 && saved != EEXIST) { errno = saved; return -1; }
    return cf_open_in_root(c, path, O_PATH);
}

int cf_ensure_in_root(const struct child *c, const char *path, int directory) {
    return ensure_at(c, path, directory, 0);
}

struct cf_target cf_target_of(int fd) {
    struct cf_target t = { .fd = fd };
    swvm_format(t.proc, sizeof t.proc, "/proc/self/fd/%d", fd);
    return t;
}

/* Mounts onto `path` inside the root through its /proc/self/fd link. */
void cf_mount_in_root(const struct child *c, const char *step, const char *src, const char *path, const char *type,
                          unsigned long flags, const char *data, int directory) {
    int fd = cf_ensure_in_root(c, path, directory);
    if (fd < 0) cf_fail_errno(c, step, path);
    struct cf_target t = cf_target_of(fd);
    if (mount(src, t.proc, type, flags, data) != 0) cf_fail_errno(c, step, path);
    close(fd);
}

/* Remounts the bind mount at `path` with `flags` (reopened: an fd taken
 * before the mount still points below it). */
void cf_remount_in_root(const struct child *c, const char *step, const char *path, unsigned long flags, const char *data) {
    int fd = cf_open_in_root(c, path, O_PATH);
    if (fd < 0) cf_fail_errno(c, step, path);
    struct cf_target t = cf_target_of(fd);
    if (mount(NULL, t.proc, NULL, MS_REMOUNT | flags, data) != 0) cf_fail_errno(c, step, path);
    close(fd);
}

unsigned long cf_mount_flags_of(const char *path) {
    struct statvfs st;
    if (statvfs(path, &st) != 0) return 0;
    /* ST_* and MS_* have the same values for these. */
    return st.f_flag & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_SYNCHRONOUS | MS_MANDLOCK | MS_NOATIME |
                        MS_NODIRATIME | MS_RELATIME);
}

/* ---------------------------------------------------------------- the root */

/* The container's root: a tmpfs over the run's directory (so nothing of
 * it outlives the mount namespace), the image root bound read-only there,
 * and an overlay with a tmpfs upper layer (the cache is never written). */
static const char *build_container_root(struct child *c, char *root, size_t root_len) {
    const struct swvm_settings *s = c->s;
    if (!s->rootfs || !s->state_dir) cf_fail(c, SWVM_ERR_INTERNAL, "run settings: no image root or state directory");
    if (mount("tmpfs", s->state_dir, "tmpfs", MS_NODEV | MS_NOSUID, "mode=0700") != 0) cf_fail_errno(c, "mount scratch tmpfs on", s->state_dir);
    char lower[4096], upper[4096], work[4096], opts[12800];
    cf_text_of(c, lower, sizeof lower, "%s/lower", s->state_dir);
    cf_text_of(c, upper, sizeof upper, "%s/upper", s->state_dir);
    cf_text_of(c, work, sizeof work, "%s/work", s->state_dir);
    cf_text_of(c, root, root_len, "%s/root", s->state_dir);
    const char *dirs[] = { lower, upper, work, root };
    for (int i = 0; i < 4; i++)
        if (mkdir(dirs[i], 0755) != 0) cf_fail_errno(c, "mkdir", dirs[i]);
    if (s->userns) {
        /* The image root, id-mapped by the parent into our user namespace. */
        int tree = swvm_recv_fd(c->io->socket_fd);
        if (tree < 0) cf_fail_errno(c, "receive the image root", s->rootfs);
        if (syscall(SYS_move_mount, tree, "", AT_FDCWD, lower, MOVE_MOUNT_F_EMPTY_PATH_) != 0)
            cf_fail_errno(c, "attach the id-mapped image root at", lower);
        close(tree);
    } else {
        if (mount(s->rootfs, lower, NULL, MS_BIND | MS_REC, NULL) != 0) cf_fail_errno(c, "bind the image root", s->rootfs);
        if (mount(NULL, lower, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) != 0) cf_fail_errno(c, "make read-only the image root", s->rootfs);
    }
    /* In a user namespace overlayfs keeps its metadata in user.* xattrs. */
    cf_text_of(c, opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s%s", lower, upper, work, s->userns ? ",userxattr" : "");
    /* nodev: device nodes in the image (or made by mknod) cannot be opened. */
    if (mount("overlay", root, "overlay", MS_NODEV, opts) != 0) cf_fail_errno(c, "mount the overlay root on", root);
    return root;
}

/* /sys/fs/cgroup, or an OCI mount's destination: as the settings'
 * cgroup mounts say (swvm_run_settings.h), read-only unless asked. */
void cf_mount_cgroups(const struct child *c, const char *dest, int read_only) {
    const struct swvm_settings *s = c->s;
    unsigned long ro = NSE | (read_only ? MS_RDONLY : 0);
    if (s->ncgroup_mounts == 0) {
        cf_mount_in_root(c, "mount cgroup2 on", "cgroup2", dest, "cgroup2", ro, NULL, 1);
        return;
    }
    cf_mount_in_root(c, "mount tmpfs on", "tmpfs", dest, "tmpfs", NSE, "mode=755", 1);
    for (uint32_t i = 0; i < s->ncgroup_mounts; i++) {
        const struct swvm_mount *m = &s->cgroup_mounts[i];
        char path[4096];
        cf_text_of(c, path, sizeof path, "%s/%s", dest, m->destination);
        if (m->kind == CGROUP_MOUNT_V1) {
            cf_mount_in_root(c, "mount cgroup on", "cgroup", path, "cgroup", ro, m->destination, 1);
        } else {
            /* A user namespace cannot mount v1 hierarchies: the run's own directory. */
            cf_mount_in_root(c, "bind cgroup on", m->source, path, NULL, MS_BIND, NULL, 1);
            cf_remount_in_root(c, "make read-only", path, MS_BIND | ro, NULL);
        }
    }
    if (read_only) cf_remount_in_root(c, "make read-only", dest, ro, "mode=755");
}

static void mount_kernel_filesystems(const struct child *c) {
    cf_mount_in_root(c, "mount proc on", "proc", "/proc", "proc", NSE, NULL, 1);
    cf_mount_in_root(c, "mount tmpfs on", "tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME | MS_NODEV, "mode=755,size=65536k", 1);
    cf_mount_in_root(c, "mount devpts on", "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5", 1);
    cf_mount_in_root(c, "mount shm on", "shm", "/dev/shm", "tmpfs", NSE, "mode=1777,size=65536k", 1);
    cf_mount_in_root(c, "mount mqueue on", "mqueue", "/dev/mqueue", "mqueue", NSE, NULL, 1);
    if (!c->s->host_network) {
        cf_mount_in_root(c, "mount sysfs on", "sysfs", "/sys", "sysfs", NSE | MS_RDONLY, NULL, 1);
    } else {
        /* sysfs belongs to a network namespace; with the host's, bind it. */
        cf_mount_in_root(c, "bind sysfs on", "/sys", "/sys", NULL, MS_BIND | MS_REC, NULL, 1);
        cf_remount_in_root(c, "make read-only", "/sys", MS_BIND | MS_RDONLY | NSE, NULL);
    }
    cf_mount_cgroups(c, "/sys/fs/cgroup", 1);
}

/* The standard device nodes, bound from the outer /dev (the /dev tmpfs is
 * nodev, so a node made with mknod there cannot be opened). */
static const char *const bound_devices[] = { "/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty" };

const char *swvm_bound_device(unsigned int i) {
    return i < sizeof bound_devices / sizeof *bound_devices ? bound_devices[i] : NULL;
}

static void populate_devices(const struct child *c) {
    for (size_t i = 0; i < sizeof bound_devices / sizeof *bound_devices; i++)
        cf_mount_in_root(c, "bind device", bound_devices[i], bound_devices[i], NULL, MS_BIND, NULL, 0);
    cf_make_dev_links(c);
}

/* /dev's standard links; /dev/ptmx, a node in an image, is replaced. */
void cf_make_dev_links(const struct child *c) {
    static const char *links[][2] = {
        { "/proc/self/fd", "fd" }, { "/proc/self/fd/0", "stdin" }, { "/proc/self/fd/1", "stdout" },
        { "/proc/self/fd/2", "stderr" }, { "pts/ptmx", "ptmx" }, { "/proc/kcore", "core" },
    };
    int dev = cf_open_in_root(c, "/dev", O_RDONLY | O_DIRECTORY);
    if (dev < 0) cf_fail_errno(c, "open", "/dev");
    if (unlinkat(dev, "ptmx", 0) != 0 && errno != ENOENT) cf_fail_errno(c, "remove", "/dev/ptmx");
    for (size_t i = 0; i < sizeof links / sizeof *links; i++) {
        char path[32];
        cf_text_of(c, path, sizeof path, "/dev/%s", links[i][1]);
        if (symlinkat(links[i][0], dev, links[i][1]) != 0 && errno != EEXIST) cf_fail_errno(c, "symlink", path);
    }
    close(dev);
}

int swvm_pty_unlock(int master) {
    int unlock = 0;
    unsigned int n = 0;
    if (ioctl(master, TIOCSPTLCK, &unlock) != 0 || ioctl(master, TIOCGPTN, &n) != 0) return -1;
    return (int)n;
}

/* A terminal in the workload's own devpts: its master goes to the parent,
 * which relays it; the slave becomes the stdio and, for a container's
 * init (`console`), /dev/console. */
void cf_open_terminal(struct child *c, int console) {
    const struct swvm_settings *s = c->s;
    int master = cf_open_in_root(c, "/dev/pts/ptmx", O_RDWR | O_NOCTTY);
    if (master < 0) cf_fail_errno(c, "open", "/dev/pts/ptmx");
    int n = swvm_pty_unlock(master);
    if (n < 0) cf_fail_errno(c, "unlock", "/dev/pts/ptmx");
    if (s->rows || s->cols) {
        struct winsize ws = { .ws_row = s->rows, .ws_col = s->cols };
        if (ioctl(master, TIOCSWINSZ, &ws) != 0) cf_fail_errno(c, "set the size of", "/dev/pts/ptmx");
    }
    char slave[64];
    cf_text_of(c, slave, sizeof slave, "/dev/pts/%u", (unsigned int)n);
    c->pty_slave = cf_open_in_root(c, slave, O_RDWR | O_NOCTTY);
    if (c->pty_slave < 0) cf_fail_errno(c, "open", slave);
    struct cf_target t = cf_target_of(c->pty_slave);
    if (console) cf_mount_in_root(c, "bind the terminal on", t.proc, "/dev/console", NULL, MS_BIND, NULL, 0);

    if (swvm_send_fd(c->io->socket_fd, master) != 0) cf_fail_errno(c, "send the terminal", slave);
    close(master);
}

/* --tmpfs options: the flag words become mount flags, the rest data. */
static void mount_tmpfs(const struct child *c, const struct swvm_mount *m) {
    unsigned long flags = MS_NODEV | (m->read_only ? MS_RDONLY : 0);
    char opts[4096], data[4096] = "";
    cf_text_of(c, opts, sizeof opts, "%s", m->options ? m->options : "");
    char *save = NULL;
    for (char *tok = strtok_r(opts, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (!strcmp(tok, "noexec")) flags |= MS_NOEXEC;
        else if (!strcmp(tok, "nosuid")) flags |= MS_NOSUID;
        else if (!strcmp(tok, "nodev")) flags |= MS_NODEV;
        else {
            size_t used = strlen(data);
            cf_text_of(c, data + used, sizeof data - used, "%s%s", used ? "," : "", tok);
        }
    }
    cf_mount_in_root(c, "mount tmpfs on", "tmpfs", m->destination, "tmpfs", flags, data, 1);
}

static void bind_read_only(const struct child *c, const char *step, const char *source, const char *dest,
                           int directory, unsigned long extra) {
    cf_mount_in_root(c, step, source, dest, NULL, MS_BIND | MS_REC, NULL, directory);
    cf_remount_in_root(c, step, dest, MS_BIND | MS_RDONLY | extra, NULL);
}

static void bind_volumes(const struct child *c) {
    const struct swvm_settings *s = c->s;
    for (uint32_t i = 0; i < s->nvolumes; i++) {
        const struct swvm_mount *v = &s->volumes[i];
        struct stat st;
        if (stat(v->source, &st) != 0) cf_fail_err(c, SWVM_ERR_NOT_FOUND, errno, "volume source %s", v->source);
        cf_mount_in_root(c, "mount volume on", v->source, v->destination, NULL, MS_BIND | MS_REC, NULL, S_ISDIR(st.st_mode));
        /* nosuid too: a volume is data from outside the image, at both levels. */
        cf_remount_in_root(c, "set the options of volume", v->destination,
                        MS_BIND | MS_NODEV | MS_NOSUID | (v->read_only ? MS_RDONLY : 0), NULL);
    }
}

static void mount_tmpfs_list(const struct child *c) {
    for (uint32_t i = 0; i < c->s->ntmpfs; i++) mount_tmpfs(c, &c->s->tmpfs[i]);
}

static void mount_user_mounts(const struct child *c) {
    const struct swvm_settings *s = c->s;
    if (s->probe) bind_read_only(c, "bind the probe on", s->probe, SWVM_PROBE_PATH, 0, MS_NODEV);
    bind_volumes(c);
    mount_tmpfs_list(c);
}

/* Which masked (0) and read-only (1) paths were applied, by index; static,
 * as the child may not allocate (it is a fork of a threaded process). */
static uint8_t applied[2][SWVM_MAX_LIST / 8];

static void mark_applied(int list, uint32_t i) { applied[list][i / 8] |= (uint8_t)(1u << (i % 8)); }
static int was_applied(int list, uint32_t i) { return applied[list][i / 8] >> (i % 8) & 1; }

/* Masked paths: /dev/null over files, an empty read-only tmpfs over
 * directories. Read-only paths: bound onto themselves, read-only. A path
 * the kernel does not have is skipped (as runc does); any other failure
 * ends the start. */
void cf_mask_and_protect(const struct child *c) {
    const struct swvm_settings *s = c->s;
    for (uint32_t i = 0; i < s->nmasked; i++) {
        const char *p = s->masked[i];
        int fd = cf_open_in_root(c, p, O_PATH);
        if (fd < 0 && errno == ENOENT) continue;
        if (fd < 0) cf_fail_errno(c, "mask", p);
        struct stat st;
        if (fstat(fd, &st) != 0) cf_fail_errno(c, "mask", p);
        struct cf_target t = cf_target_of(fd);
        int r = S_ISDIR(st.st_mode) ? mount("tmpfs", t.proc, "tmpfs", MS_RDONLY | NSE, "size=0")
                                    : mount("/dev/null", t.proc, NULL, MS_BIND, NULL);
        if (r != 0) cf_fail_errno(c, "mask", p);
        close(fd);
        mark_applied(0, i);
    }
    for (uint32_t i = 0; i < s->nreadonly_paths; i++) {
        const char *p = s->readonly_paths[i];
        int fd = cf_open_in_root(c, p, O_PATH);
        if (fd < 0 && errno == ENOENT) continue;
        if (fd < 0) cf_fail_errno(c, "make read-only", p);
        struct cf_target t = cf_target_of(fd);
        if (mount(t.proc, t.proc, NULL, MS_BIND | MS_REC, NULL) != 0) cf_fail_errno(c, "make read-only", p);
        close(fd);
        cf_remount_in_root(c, "make read-only", p, MS_BIND | MS_RDONLY | NSE, NULL);
        mark_applied(1, i);
    }
}

/* Tells the parent what mask_and_protect applied (MSG_CONFINED), for the
 * posture reports: the paths themselves, not the settings' list. */
void cf_report_confined(const struct child *c) {
    const struct swvm_settings *s = c->s;
    char *const *lists[2] = { s->masked, s->readonly_paths };
    const uint32_t counts[2] = { s->nmasked, s->nreadonly_paths };
    const uint16_t tags[2] = { CFG_MASKED, CFG_READONLY_PATH };
    uint32_t len = 0;
    for (int l = 0; l < 2; l++)
        for (uint32_t i = 0; i < counts[l]; i++)
            if (was_applied(l, i)) len += 6 + (uint32_t)strlen(lists[l][i]);
    if (swvm_frame_write(c->io->error_fd, MSG_CONFINED, NULL, len) != 0) cf_fail_errno(c, "report the masked paths", "");
    for (int l = 0; l < 2; l++)
        for (uint32_t i = 0; i < counts[l]; i++)
            if (was_applied(l, i) && swvm_field_write(c->io->error_fd, tags[l], lists[l][i], (uint32_t)strlen(lists[l][i])) != 0)
                cf_fail_errno(c, "report the masked paths", "");
}

/* /etc/hostname, /etc/hosts and, with a network, /etc/resolv.conf, as
 * Docker writes them (into the overlay's upper layer, never the image);
 * swvm sends the same hosts and resolv.conf text to both levels. */
static void write_host_files(const struct child *c) {
    int etc = cf_open_in_root(c, "/etc", O_RDONLY | O_DIRECTORY);
    if (etc < 0 && errno == ENOENT) return;
    if (etc < 0) cf_fail_errno(c, "open", "/etc");
    char hosts[512], name[300];
    cf_text_of(c, name, sizeof name, "%s\n", c->s->hostname);
    cf_text_of(c, hosts, sizeof hosts, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t%s\n", c->s->hostname);
    const char *files[][2] = { { "hostname", name }, { "hosts", c->s->etc_hosts ? c->s->etc_hosts : hosts },
                               { "resolv.conf", c->s->resolv_conf } };
    for (int i = 0; i < 3; i++) {
        if (!files[i][1]) continue;
        unlinkat(etc, files[i][0], 0);
        int fd = openat(etc, files[i][0], O_CREAT | O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0) cf_fail_err(c, SWVM_ERR_SYSTEM_CALL, errno, "write /etc/%s", files[i][0]);
        cf_write_all(fd, files[i][1], strlen(files[i][1]));
        close(fd);
    }
    close(etc);
}

/* Makes `root` the child's root; cf_enter_root also makes it read-only. */
static void switch_root(const struct child *c, const char *root) {
    if (chdir(root) != 0) cf_fail_errno(c, "chdir", root);
    if (c->io->prepared_root) {
        /* An initramfs cannot be pivoted away: move the new root over it
         * (switch_root's way); what is below stays unreachable. */
        if (mount(".", "/", NULL, MS_MOVE, NULL) != 0 || chroot(".") != 0) cf_fail_errno(c, "switch to the new root", root);
    } else {
        /* runc's pivot_root(".", ".") idiom: no directory for the old root. */
        if (syscall(SYS_pivot_root, ".", ".") != 0) cf_fail_errno(c, "pivot_root", root);
        if (umount2(".", MNT_DETACH) != 0) cf_fail_errno(c, "detach the old root", root);
    }
    if (chdir("/") != 0) cf_fail_errno(c, "chdir", "/");
}

static void make_root_read_only(const struct child *c) {
    /* An OCI root keeps the flags it has (locked ones in a user namespace). */
    unsigned long keep = c->s->oci.enabled ? cf_mount_flags_of("/") : MS_NODEV;
    if (c->s->read_only && mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | keep, NULL) != 0)
        cf_fail_errno(c, "make read-only", "/");
}

void cf_enter_root(const struct child *c, const char *root) {
    switch_root(c, root);
    make_root_read_only(c);
}

/* ---------------------------------------------------------------- the process */

void cf_interface_up(const struct child *c, const char *name) {
    /* AF_UNIX: interface ioctls reach the device layer from any socket,
     * and the guest kernel has no IP stack. */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) cf_fail_errno(c, "bring up", name);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) cf_fail_errno(c, "bring up", name);
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) != 0) cf_fail_errno(c, "bring up", name);
    close(fd);
}

const char *swvm_rlimit_name(unsigned int resource) {
    static const char *const names[SWVM_RLIMIT_COUNT] = { "cpu", "fsize", "data", "stack", "core", "rss", "nproc", "nofile",
                                                          "memlock", "as", "locks", "sigpending", "msgqueue", "nice", "rtprio", "rttime" };
    return resource < SWVM_RLIMIT_COUNT ? names[resource] : NULL;
}

static void apply_rlimits(const struct child *c) {
    for (uint32_t i = 0; i < c->s->nrlimits; i++) {
        const struct swvm_rlimit *l = &c->s->rlimits[i];
        struct rlimit r = { .rlim_cur = l->soft, .rlim_max = l->hard };
        if (setrlimit((int)l->resource, &r) != 0) {
            const char *name = swvm_rlimit_name(l->resource);
            if (!name) name = "?";
            cf_fail_err(c, SWVM_ERR_INVALID_ARGUMENT, errno, "--ulimit %s=%llu:%llu", name, (unsigned long long)l->soft,
                     (unsigned long long)l->hard);
        }
    }
}

static void setup_stdio(const struct child *c) {
    const struct swvm_child_io *io = c->io;
    if (c->pty_slave >= 0) {
        if (ioctl(c->pty_slave, TIOCSCTTY, 0) != 0) cf_fail_errno(c, "make the controlling terminal", "/dev/console");
        for (int i = 0; i < 3; i++)
            if (dup2(c->pty_slave, i) < 0) cf_fail_errno(c, "dup2", "/dev/console");
        if (c->pty_slave > 2) close(c->pty_slave);
        return;
    }
    int in = io->in;
    /* An OCI process keeps the stdio it was given, as runc. */
    if (in < 0 && !c->s->interactive && !c->s->oci.enabled && (in = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) cf_fail_errno(c, "open", "/dev/null");
    int fds[3] = { in, io->out, io->err };
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0 && fds[i] != i && dup2(fds[i], i) < 0) cf_fail_errno(c, "dup2", "stdio");
}

/* The working directory, created inside the root if missing (as Docker
 * does), before a read-only root is remounted so. */
void cf_make_workdir(const struct child *c) {
    int fd = cf_ensure_in_root(c, c->s->cwd, 1);
    if (fd < 0) cf_fail_errno(c, "create the working directory", c->s->cwd);
    close(fd);
}

static void load_seccomp(const struct child *c) {
    struct sock_fprog_ prog = { .len = (unsigned short)(c->s->seccomp_len / 8), .filter = c->s->seccomp };
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER_, 0, &prog) != 0) cf_fail_errno(c, "load the seccomp filter", "");
}

static void switch_user(const struct child *c) {
    const struct swvm_settings *s = c->s;
    /* (uid_t)-1 would leave the ids unchanged, i.e. root: fail closed
     * (the decoder refuses it too; this holds for any caller). */
    if (s->uid == (uid_t)-1 || s->gid == (gid_t)-1) cf_fail(c, SWVM_ERR_INVALID_ARGUMENT, "switch to uid %u gid %u: (uid_t)-1 is not an id", s->uid, s->gid);
    for (uint32_t i = 0; i < s->ngroups; i++)
        if (s->groups[i] == (gid_t)-1) cf_fail(c, SWVM_ERR_INVALID_ARGUMENT, "supplementary gid %u: (gid_t)-1 is not an id", s->groups[i]);
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) cf_fail_errno(c, "prctl", "PR_SET_KEEPCAPS");
    /* Raw system calls: the libc wrappers would broadcast to all threads. */
    if (syscall(SYS_setgroups, (size_t)s->ngroups, s->groups) != 0) cf_fail_errno(c, "setgroups", "");
    if (syscall(SYS_setresgid, s->gid, s->gid, s->gid) != 0) cf_fail_err(c, SWVM_ERR_SYSTEM_CALL, errno, "setresgid %u", s->gid);
    if (syscall(SYS_setresuid, s->uid, s->uid, s->uid) != 0) cf_fail_err(c, SWVM_ERR_SYSTEM_CALL, errno, "setresuid %u", s->uid);
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) cf_fail_errno(c, "prctl", "PR_SET_KEEPCAPS");
    /* Changing credentials clears the parent-death signal; set it again
     * (an OCI process outlives `swvm create`, as runc's). */
    if (!s->oci.enabled) prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
}

static const char *find_executable(const struct child *c, char path[4096]) {
    const char *name = c->s->args[0];
    struct stat st;
    if (strchr(name, '/')) {
        if (stat(name, &st) != 0) cf_fail(c, SWVM_ERR_COMMAND_NOT_FOUND, "exec: \"%s\": stat %s: no such file or directory", name, name);
        if (S_ISDIR(st.st_mode)) cf_fail(c, SWVM_ERR_COMMAND_NOT_EXECUTABLE, "exec: \"%s\": is a directory", name);
        if (access(name, X_OK) != 0) cf_fail(c, SWVM_ERR_COMMAND_NOT_EXECUTABLE, "exec: \"%s\": permission denied", name);
        return name;
    }
    const char *search = SWVM_DEFAULT_PATH;
    for (uint32_t i = 0; i < c->s->nenv; i++)
        if (!strncmp(c->s->env[i], "PATH=", 5)) search = c->s->env[i] + 5;
    int denied = 0;
    for (const char *p = search;;) {
        const char *end = strchr(p, ':');
        int len = end ? (int)(end - p) : (int)strlen(p);
        /* A candidate too long for a path cannot exist: skipped. */
        int fits = swvm_format(path, 4096, "%.*s/%s", len ? len : 1, len ? p : ".", name) < 4096;
        if (fits && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            if (access(path, X_OK) == 0) return path;
            denied = 1;
        }
        if (!end) break;
        p = end + 1;
    }
    if (denied) cf_fail(c, SWVM_ERR_COMMAND_NOT_EXECUTABLE, "exec: \"%s\": permission denied", name);
    cf_fail(c, SWVM_ERR_COMMAND_NOT_FOUND, "exec: \"%s\": executable file not found in $PATH", name);
}

/* Default dispositions and an empty mask, as a freshly exec'd program
 * expects (swvm blocks signals for its own handling); async-signal-safe. */
void cf_reset_signals(void) {
    sigset_t empty;
    sigemptyset(&empty);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < 32; sig++)
        if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, NULL);
    sigprocmask(SIG_SETMASK, &empty, NULL);
}

static void exec_workload(const struct child *c, const char *exe) {
    /* An exec zygote reset them once for all its children. */
    if (!c->prestaged) cf_reset_signals();
    /* OCI --preserve-fds: fds 3.. stay open across execve, as runc passes them. */
    unsigned int keep = c->s->oci.preserve_fds;
    for (unsigned int fd = 3; fd < 3 + keep; fd++) fcntl((int)fd, F_SETFD, 0);
    syscall(SYS_close_range, 3 + keep, ~0u, CLOSE_RANGE_CLOEXEC_);
    execve(exe, c->s->args, c->s->env);
    const char *name = c->s->args[0];
    switch (errno) {
    case ENOENT: cf_fail(c, SWVM_ERR_COMMAND_NOT_FOUND, "exec: \"%s\": %s: no such file or directory (or its interpreter is missing)", name, exe);
    case EACCES: case EPERM: cf_fail(c, SWVM_ERR_COMMAND_NOT_EXECUTABLE, "exec: \"%s\": permission denied", name);
    case ENOEXEC: cf_fail(c, SWVM_ERR_COMMAND_NOT_EXECUTABLE, "exec: \"%s\": exec format error", name);
    default: cf_fail_err(c, SWVM_ERR_COMMAND_NOT_EXECUTABLE, errno, "exec: \"%s\"", name);
    }
}

/* --init: PID 1 stays, confined like the workload, forwards every signal
 * to it and reaps orphans, and exits with the workload's status (as
 * `docker run --init`'s tini). The workload reports a failed exec on the
 * error pipe itself; PID 1 lets go of that pipe at once. */
static void run_init(const struct child *c, const char *exe) {
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid_t workload = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (workload < 0) cf_fail_errno(c, "fork the workload under", "--init");
    if (workload == 0) exec_workload(c, exe);
    close(c->io->error_fd);
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&all, &info);
        if (sig < 0) continue;
        if (sig != SIGCHLD) { kill(workload, sig); continue; }
        for (;;) {
            int status;
            pid_t pid = waitpid(-1, &status, WNOHANG);
            if (pid <= 0) break;
            if (pid == workload) _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
        }
    }
}

/* Effective, permitted and inheritable sets, then the ambient ones. An
 * image run grants one set (inheritable empty, as Docker since
 * CVE-2022-24769; a non-root user keeps none across exec); an OCI process
 * gets config.json's five sets. */
static void set_capabilities(const struct child *c) {
    const struct swvm_settings *s = c->s;
    const struct swvm_oci *o = &s->oci;
    uint64_t eff = o->has_caps ? o->effective : s->caps, perm = o->has_caps ? o->permitted : s->caps;
    uint64_t inh = o->has_caps ? o->inheritable : 0;
    struct cap_header hdr = { .version = CAPSET_VERSION_3, .pid = 0 };
    struct cap_data data[2] = {
        { (uint32_t)eff, (uint32_t)perm, (uint32_t)inh },
        { (uint32_t)(eff >> 32), (uint32_t)(perm >> 32), (uint32_t)(inh >> 32) },
    };
    if (syscall(SYS_capset, &hdr, data) != 0) cf_fail_errno(c, "capset", "");
    /* The kernel raises an ambient capability only if it is permitted and
     * inheritable; `runc spec` lists ambient ones without inheritable, and
     * runc (gocapability) runs that config, skipping them. So does swvm: a
     * grant the kernel would refuse is left out, never a wider one made. */
    for (int cap = 0; o->has_caps && cap <= 63; cap++)
        if ((o->ambient & perm & inh) >> cap & 1 && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0)
            cf_fail_err(c, SWVM_ERR_SYSTEM_CALL, errno, "raise capability %d in the ambient set", cap);
}

static void drop_bounding(const struct child *c) {
    const struct swvm_settings *s = c->s;
    uint64_t keep = s->oci.has_caps ? s->oci.bounding : s->caps;
    for (int cap = 0; cap <= 63; cap++)
        if (!(keep & (1ull << cap)) && prctl(PR_CAPBSET_DROP_, cap, 0, 0, 0) != 0 && errno != EINVAL)
            cf_fail_err(c, SWVM_ERR_SYSTEM_CALL, errno, "drop capability %d from the bounding set", cap);
}

/* OCI mode, the last step before execve (runc's exec FIFO): tell the
 * parent the init is created, then block opening the FIFO for writing
 * until `swvm start` opens it for reading. */
static void wait_for_start(struct child *c) {
    char path[40];
    cf_text_of(c, path, sizeof path, "/proc/self/fd/%d", c->s->oci.exec_fifo);
    if (swvm_frame_write(c->io->error_fd, MSG_CREATED, NULL, 0) != 0) cf_fail_errno(c, "report the container created", "");
    close(c->io->error_fd);
    c->created = 1;
    int fd;
    do { fd = open(path, O_WRONLY | O_CLOEXEC); } while (fd < 0 && errno == EINTR);
    if (fd < 0) cf_fail_errno(c, "open the exec FIFO", path);
    ssize_t n;
    do { n = write(fd, "0", 1); } while (n < 0 && errno == EINTR);
    if (n != 1) cf_fail_errno(c, "write to the exec FIFO", path);
    close(fd);
    close(c->s->oci.exec_fifo);
    cf_oci_start_hooks(c);
}

void cf_exec_prestage(struct child *c) {
    const struct swvm_settings *s = c->s;
    /* Once here rather than in each child: 32 system calls, each many
     * emulated instructions. */
    cf_reset_signals();
    /* Each child shares this memory until its execve (CLONE_VM) and runs as
     * the workload's user: non-dumpable, the workload cannot ptrace it (or
     * read or write /proc/PID/mem) to take over the zygote. An execve sets
     * the new image's dumpable flag afresh, so the exec'd process is as
     * before. */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) cf_fail_errno(c, "prctl", "PR_SET_DUMPABLE");
    apply_rlimits(c);
    drop_bounding(c);
    /* Still root with every capability: the filter loads with or without
     * no_new_privs, and the children can still change user (the filter
     * allows their steps: swvm_seccomp_allows_exec_zygote). */
    if (s->nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) cf_fail_errno(c, "prctl", "PR_SET_NO_NEW_PRIVS");
    if (s->seccomp_len) load_seccomp(c);
    c->seccomp_loaded = 1;
    c->prestaged = 1;
}

void cf_process_stage(struct child *c) {
    const struct swvm_settings *s = c->s;
    if (!c->prestaged) apply_rlimits(c);
    setup_stdio(c);
    /* The working directory is entered while still root (runc's order), so
     * `-u nobody -w /root` works; if root cannot, the user tries again. */
    int in_workdir = chdir(s->cwd) == 0;
    if (!c->prestaged) drop_bounding(c);
    /* Without no_new_privs, seccomp needs CAP_SYS_ADMIN: load it while root. */
    if (!s->nnp && s->seccomp_len && !c->seccomp_loaded) load_seccomp(c);
    switch_user(c);
    if (!in_workdir && chdir(s->cwd) != 0)
        cf_fail_err(c, SWVM_ERR_COMMAND_NOT_EXECUTABLE, errno, "chdir to the working directory \"%s\"", s->cwd);
    set_capabilities(c);
    if (s->nnp && !c->prestaged && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) cf_fail_errno(c, "prctl", "PR_SET_NO_NEW_PRIVS");
    char path[4096];
    const char *exe = find_executable(c, path);
    if (s->nnp && s->seccomp_len && !c->seccomp_loaded) load_seccomp(c);
    if (s->oci.enabled) umask((mode_t)s->oci.umask);
    if (s->oci.exec_fifo >= 0) wait_for_start(c);
    if (s->init) run_init(c, exe);
    exec_workload(c, exe);
    _exit(125);
}

/* The image's root under an overlay, swvm's standard mounts and the
 * run's own, entered; or guest-init's prepared root. */
static void build_image_root(struct child *c) {
    const struct swvm_settings *s = c->s;
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) cf_fail_errno(c, "make private", "/");
    char built[4096];
    const char *root = c->io->prepared_root ? c->io->prepared_root : build_container_root(c, built, sizeof built);
    c->root = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (c->root < 0) cf_fail_errno(c, "open", root);
    mount_kernel_filesystems(c);
    populate_devices(c);
    if (s->terminal) cf_open_terminal(c, 1);
    mount_user_mounts(c);
    cf_make_workdir(c);
    cf_mask_and_protect(c);
    cf_report_confined(c);
    write_host_files(c);
    close(c->root);
    cf_enter_root(c, root);
}

int cf_wait_for_parent(const struct swvm_child_io *io) {
    char go;
    ssize_t got;
    do { got = read(io->sync_fd, &go, 1); } while (got < 0 && errno == EINTR);
    if (got != 1) _exit(125);   /* the parent went away */
    if (go != SWVM_GO_WITH_HOOKS) close(io->sync_fd);
    return go;
}

void swvm_confine_exec(const struct swvm_settings *s, const struct swvm_child_io *io) {
    struct child child = { .s = s, .io = io, .root = -1, .pty_slave = -1 };
    struct child *c = &child;
    /* A template's settings lack the run's own: only swvm_confine_template_exec takes them. */
    if (s->template_mode) cf_fail(c, SWVM_ERR_INTERNAL, "a template's settings without the per-run ones");
    /* Die with the parent, even if it is SIGKILLed (an OCI init outlives
     * `swvm create`; until released, it ends at the sync pipe's EOF). */
    if (!s->oci.enabled) prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    int go = cf_wait_for_parent(io);
    if (go == SWVM_GO_WITH_HOOKS && !s->oci.enabled) close(io->sync_fd);
    c->hooks = go == SWVM_GO_WITH_HOOKS && s->oci.enabled;

    cf_enter_namespaces(c);
    if (s->userns) {
        if (syscall(SYS_setresuid, 0, 0, 0) != 0 || syscall(SYS_setresgid, 0, 0, 0) != 0) cf_fail_errno(c, "become root in", "the user namespace");
    }
    if (setsid() < 0) cf_fail_errno(c, "setsid", "");
    if (s->oci.enabled) cf_build_oci_root(c);
    else build_image_root(c);

    const struct swvm_oci *o = &s->oci;
    if (!o->enabled || ((o->new_namespaces & CLONE_NEWUTS) && *s->hostname))
        if (sethostname(s->hostname, strlen(s->hostname)) != 0) cf_fail_errno(c, "sethostname", s->hostname);
    /* A new network namespace (runc's "loopback" network) gets lo up. */
    if (o->enabled ? (o->new_namespaces & CLONE_NEWNET) != 0 : !s->host_network) cf_interface_up(c, "lo");
    cf_process_stage(c);
}

/* ---------------------------------------------------------------- templates */

/* The part of the image root a template holds (guest-init's template
 * mode): the kernel filesystems, devices, tmpfs mounts, masked and
 * read-only paths, all fixed by the template's key. The per-run parts
 * (terminal, volumes, working directory, /etc files, entering the root)
 * follow MSG_RUN. */
static void prepare_template_root(struct child *c) {
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) cf_fail_errno(c, "make private", "/");
    c->root = open(c->io->prepared_root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (c->root < 0) cf_fail_errno(c, "open", c->io->prepared_root);
    mount_kernel_filesystems(c);
    populate_devices(c);
    mount_user_mounts(c);   /* the probe and --tmpfs: the volumes are the run's */
    cf_mask_and_protect(c);
    cf_report_confined(c);
}

/* Whether `path` is `dir` or below it. */
static int is_at_or_below(const char *path, const char *dir) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    return strncmp(path, dir, n) == 0 && (path[n] == 0 || path[n] == '/');
}

/* The template's masks and read-only paths at or below a volume's
 * destination are undone before the volume covers them (they are made
 * again over it), so that none stays beneath it, unreachable, and the
 * mounts there are a container's. */
static void undo_masks_under_volumes(const struct child *c) {
    const struct swvm_settings *s = c->s;
    char *const *lists[2] = { s->masked, s->readonly_paths };
    const uint32_t counts[2] = { s->nmasked, s->nreadonly_paths };
    for (int l = 0; l < 2; l++)
        for (uint32_t i = 0; i < counts[l]; i++) {
            int covered = 0;
            for (uint32_t v = 0; v < s->nvolumes && !covered; v++) covered = is_at_or_below(lists[l][i], s->volumes[v].destination);
            if (!covered || !was_applied(l, i)) continue;
            int fd = cf_open_in_root(c, lists[l][i], O_PATH);
            if (fd < 0) cf_fail_errno(c, "open", lists[l][i]);
            struct cf_target t = cf_target_of(fd);
            if (umount2(t.proc, MNT_DETACH) != 0) cf_fail_errno(c, "undo the template's mount on", lists[l][i]);
            close(fd);
        }
}

/* After the template point: the run's terminal and volumes (its share
 * mount guest-init made in this mount namespace with MSG_RUN). A container
 * mounts volumes before its tmpfs mounts and its masked and read-only
 * paths, which the template has already made: those a volume covers are
 * undone, and all are made again over the volumes, with the same code, so
 * what covers what is as in a container (a mask over or inside a volume
 * stays on top). Nothing is written in them before this point. */
static void finish_template_root(struct child *c) {
    if (c->s->terminal) cf_open_terminal(c, 1);
    if (!c->s->nvolumes) return;
    undo_masks_under_volumes(c);
    bind_volumes(c);
    mount_tmpfs_list(c);
    cf_mask_and_protect(c);
}

/* Waits at the template point for guest-init to pass on MSG_RUN's
 * per-run fields, and adds them to the settings. */
static void receive_run_fields(struct child *c, struct swvm_settings *s, int run_fd) {
    if (swvm_frame_write(c->io->error_fd, MSG_TEMPLATE_POINT, NULL, 0) != 0) cf_fail_errno(c, "report the template point", "");
    uint32_t type, len;
    uint8_t *buf = swvm_frame_read_alloc(run_fd, &type, &len, SWVM_MAX_CONFIG);
    if (!buf || type != MSG_RUN) cf_fail(c, SWVM_ERR_INTERNAL, "no per-run settings after the template point");
    close(run_fd);
    char error[256];
    if (swvm_run_fields_apply(buf, len, s, error, sizeof error) != 0) cf_fail(c, SWVM_ERR_INVALID_ARGUMENT, "%s", error);
    explicit_bzero(buf, len);
    free(buf);
}

/* A plain template's child loads the workload's filter before the
 * template point when the filter allows every step after it
 * (swvm_seccomp_allows_template_setup); a read-only root is remounted
 * after the /etc files, so it cannot take the filter early. */
static void preload_seccomp(struct child *c) {
    const struct swvm_settings *s = c->s;
    if (!s->seccomp_len || s->read_only || !swvm_seccomp_allows_template_setup(s->seccomp, s->seccomp_len, s->terminal, s->init)) return;
    load_seccomp(c);
    c->seccomp_loaded = 1;
}

void swvm_confine_template_exec(struct swvm_settings *s, const struct swvm_child_io *io, int run_fd) {
    struct swvm_child_io run_io = *io;
    struct child child = { .s = s, .io = &run_io, .root = -1, .pty_slave = -1 };
    struct child *c = &child;
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    cf_wait_for_parent(io);
    cf_enter_namespaces(c);
    if (setsid() < 0) cf_fail_errno(c, "setsid", "");
    prepare_template_root(c);
    if (!(s->template_flags & SWVM_TEMPLATE_SHARED_NET)) cf_interface_up(c, "lo");
    int plain = (s->template_flags & SWVM_TEMPLATE_PLAIN) != 0;
    /* A plain template (no volume or terminal comes after its point):
     * the child enters its root now, which takes no per-run field. */
    if (plain) {
        switch_root(c, io->prepared_root);
        preload_seccomp(c);
    }
    /* The template point: from here on, what differs from run to run. */
    receive_run_fields(c, s, run_fd);
    /* Every template's child holds the stdin port; a run without -i gets
     * /dev/null (setup_stdio), as without a template. */
    if (!s->interactive && run_io.in >= 0) {
        close(run_io.in);
        run_io.in = -1;
    }
    finish_template_root(c);
    cf_make_workdir(c);
    write_host_files(c);
    close(c->root);
    if (!plain) cf_enter_root(c, io->prepared_root);
    else if (s->read_only) make_root_read_only(c);
    /* guest-init sets the run's host name in this UTS namespace (a filter
     * loaded here may deny sethostname). */
    cf_process_stage(c);
}

pid_t swvm_container_clone(const struct swvm_settings *s, unsigned long flags, const struct swvm_child_io *io,
                           const int *close_in_child, int nclose) {
    return cf_clone_in_namespaces(s, flags, io, close_in_child, nclose);
}
