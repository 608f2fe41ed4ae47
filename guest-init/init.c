/*
 * swvm guest-init: PID 1 of swvm's micro-VM.
 *
 * It mounts what the guest needs, takes the run's settings from the host
 * over the control port (protocol.h), builds the workload's root (the
 * image's ext4 disk, read-only, under an overlay with a tmpfs upper layer),
 * and starts the workload as PID 1 of its own namespaces with the same
 * confinement the container path applies: capability bounding set, user
 * and groups, no_new_privs, and the seccomp filter compiled by the host.
 * It streams stdio through virtio-console ports (the workload writes to
 * them directly), forwards signals from the host, reaps orphans, reports
 * the exit status and powers the VM off.
 *
 * C rather than Swift: this runs inside a guest whose kernel is emulated
 * instruction by instruction on PVM hosts, where every page the initramfs
 * unpacks and every page fault costs; a static musl build is ~60 KiB
 * against megabytes for a static Swift binary (see the README).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "protocol.h"

/* Kernel ABI bits not every libc exposes. */
#define CAPSET_VERSION_3 0x20080522
struct cap_header { uint32_t version; int pid; };
struct cap_data { uint32_t effective, permitted, inheritable; };
struct sock_fprog_ { unsigned short len; void *filter; };
#ifndef SECCOMP_SET_MODE_FILTER
#define SECCOMP_SET_MODE_FILTER 1
#endif
#ifndef PR_CAPBSET_DROP
#define PR_CAPBSET_DROP 24
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC 4
#endif
#define RESOLVE_NO_MAGICLINKS 0x02
#define RESOLVE_IN_ROOT 0x10
struct open_how_ { uint64_t flags, mode, resolve; };
/* <linux/random.h>, which musl's headers do not carry. */
#define RNDADDENTROPY_ _IOW('R', 0x03, int[2])
#define RNDRESEEDCRNG_ _IO('R', 0x07)
struct rand_pool_info_ { int entropy_count; int buf_size; };

/* ---------------------------------------------------------------- config */

#define MAX_ITEMS 4096

struct tmpfs_mount { int ro; char *dest; char *options; };

struct config {
    char *args[MAX_ITEMS]; int nargs;
    char *env[MAX_ITEMS]; int nenv;
    char *cwd, *hostname, *rootdev;
    uint32_t uid, gid;
    uint32_t groups[256]; int ngroups;
    struct { uint32_t res; uint64_t soft, hard; } rlimits[32]; int nrlimits;
    uint64_t caps;
    uint8_t *seccomp; uint32_t seccomp_len;
    int nnp, readonly, terminal, interactive, debug, probe;
    uint16_t rows, cols;
    uint64_t memory; int64_t pids; int64_t cpu_quota; uint64_t cpu_period;
    char *masked[64]; int nmasked;
    char *ropaths[64]; int nropaths;
    struct tmpfs_mount tmpfs[32]; int ntmpfs;
    uint64_t host_time_ns;
    uint8_t entropy[256]; uint32_t entropy_len;
    int net; uint8_t net_addr[4], net_prefix, net_gw[4], net_mac[6]; uint16_t net_mtu;
    char *etc_hosts, *resolv_conf;
};

static struct config cfg;
static int control_fd = -1;

/* ---------------------------------------------------------------- helpers */

static uint64_t now_ns(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int write_full(int fd, const void *buf, size_t len) {
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) { if (errno == EINTR) continue; return -1; }
        p += n; len -= (size_t)n;
    }
    return 0;
}

static int read_full(int fd, void *buf, size_t len) {
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0) { if (errno == EINTR) continue; return -1; }
        if (n == 0) return -1;
        p += n; len -= (size_t)n;
    }
    return 0;
}

static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }

static void send_msg(uint32_t type, const void *payload, uint32_t len) {
    uint8_t hdr[8];
    put32(hdr, type);
    put32(hdr + 4, len);
    if (control_fd < 0) return;
    write_full(control_fd, hdr, 8);
    if (len) write_full(control_fd, payload, len);
}

/* "code\nmessage": the form an error reaches swvm in (SwvmError.decode),
 * from PID 1 over the control port or from the workload's child over its
 * error pipe. Returns the length. */
static size_t format_error(char msg[1024], const char *code, const char *fmt, va_list ap) {
    int n = snprintf(msg, 1024, "%s\n", code);
    vsnprintf(msg + n, 1024 - (size_t)n, fmt, ap);
    return strlen(msg);
}

/* Reports an error to the host. */
static void send_error(const char *code, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    size_t len = format_error(msg, code, fmt, ap);
    va_end(ap);
    send_msg(MSG_ERROR, msg, (uint32_t)len);
}

static void power_off(void) {
    sync();
    /* reboot=k on the command line: the i8042 reset the VMM watches. */
    reboot(RB_AUTOBOOT);
    for (;;) pause();
}

static void fatal(const char *code, const char *fmt, ...) {
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (control_fd >= 0) {
        send_error(code, "%s", msg);
    } else {
        int con = open("/dev/console", O_WRONLY);
        if (con >= 0) { dprintf(con, "swvm guest-init: %s\n", msg); close(con); }
    }
    power_off();
}

static char *dupbytes(const uint8_t *p, uint32_t len) {
    char *s = malloc(len + 1);
    if (!s) fatal("internalError", "out of memory");
    memcpy(s, p, len);
    s[len] = 0;
    return s;
}

/* ---------------------------------------------------------------- config parsing */

static void parse_config(const uint8_t *p, uint32_t len) {
    uint32_t off = 0;
    cfg.cwd = "/";
    cfg.hostname = "swvm";
    cfg.rootdev = "/dev/vda";
    cfg.cpu_period = 100000;
    cfg.pids = -1;
    while (off + 6 <= len) {
        uint16_t tag = get16(p + off);
        uint32_t n = get32(p + off + 2);
        off += 6;
        if (n > len - off) fatal("internalError", "malformed configuration from the host");
        const uint8_t *v = p + off;
        switch (tag) {
        case CFG_ARG: if (cfg.nargs < MAX_ITEMS - 1) cfg.args[cfg.nargs++] = dupbytes(v, n); break;
        case CFG_ENV: if (cfg.nenv < MAX_ITEMS - 1) cfg.env[cfg.nenv++] = dupbytes(v, n); break;
        case CFG_CWD: cfg.cwd = dupbytes(v, n); break;
        case CFG_UID: if (n >= 4) cfg.uid = get32(v); break;
        case CFG_GID: if (n >= 4) cfg.gid = get32(v); break;
        case CFG_GROUPS:
            for (uint32_t i = 0; i + 4 <= n && cfg.ngroups < 256; i += 4) cfg.groups[cfg.ngroups++] = get32(v + i);
            break;
        case CFG_HOSTNAME: cfg.hostname = dupbytes(v, n); break;
        case CFG_RLIMIT:
            if (n >= 20 && cfg.nrlimits < 32) {
                cfg.rlimits[cfg.nrlimits].res = get32(v);
                cfg.rlimits[cfg.nrlimits].soft = get64(v + 4);
                cfg.rlimits[cfg.nrlimits].hard = get64(v + 12);
                cfg.nrlimits++;
            }
            break;
        case CFG_CAPS: if (n >= 8) cfg.caps = get64(v); break;
        case CFG_SECCOMP:
            cfg.seccomp = malloc(n);
            if (!cfg.seccomp) fatal("internalError", "out of memory");
            memcpy(cfg.seccomp, v, n);
            cfg.seccomp_len = n;
            break;
        case CFG_NNP: cfg.nnp = n && v[0]; break;
        case CFG_READONLY: cfg.readonly = n && v[0]; break;
        case CFG_TERMINAL: if (n >= 4) { cfg.terminal = 1; cfg.rows = get16(v); cfg.cols = get16(v + 2); } break;
        case CFG_INTERACTIVE: cfg.interactive = n && v[0]; break;
        case CFG_MEMORY: if (n >= 8) cfg.memory = get64(v); break;
        case CFG_PIDS: if (n >= 8) cfg.pids = (int64_t)get64(v); break;
        case CFG_CPU: if (n >= 16) { cfg.cpu_quota = (int64_t)get64(v); cfg.cpu_period = get64(v + 8); } break;
        case CFG_MASKED: if (cfg.nmasked < 64) cfg.masked[cfg.nmasked++] = dupbytes(v, n); break;
        case CFG_READONLY_PATH: if (cfg.nropaths < 64) cfg.ropaths[cfg.nropaths++] = dupbytes(v, n); break;
        case CFG_TMPFS:
            if (n >= 2 && cfg.ntmpfs < 32) {
                char *s = dupbytes(v + 1, n - 1);
                cfg.tmpfs[cfg.ntmpfs].ro = v[0];
                cfg.tmpfs[cfg.ntmpfs].dest = s;
                cfg.tmpfs[cfg.ntmpfs].options = s + strlen(s) + ((strlen(s) < n - 1) ? 1 : 0);
                cfg.ntmpfs++;
            }
            break;
        case CFG_TIME: if (n >= 8) cfg.host_time_ns = get64(v); break;
        case CFG_ROOTDEV: cfg.rootdev = dupbytes(v, n); break;
        case CFG_DEBUG: cfg.debug = n && v[0]; break;
        case CFG_PROBE: cfg.probe = n && v[0]; break;
        case CFG_ENTROPY:
            cfg.entropy_len = n < sizeof cfg.entropy ? n : (uint32_t)sizeof cfg.entropy;
            memcpy(cfg.entropy, v, cfg.entropy_len);
            break;
        case CFG_NET_IF:
            if (n >= 17) {
                cfg.net = 1;
                memcpy(cfg.net_addr, v, 4);
                cfg.net_prefix = v[4] <= 32 ? v[4] : 32;
                memcpy(cfg.net_gw, v + 5, 4);
                cfg.net_mtu = get16(v + 9);
                memcpy(cfg.net_mac, v + 11, 6);
            }
            break;
        case CFG_ETC_HOSTS: cfg.etc_hosts = dupbytes(v, n); break;
        case CFG_RESOLV_CONF: cfg.resolv_conf = dupbytes(v, n); break;
        default: break;
        }
        off += n;
    }
    cfg.args[cfg.nargs] = NULL;
    cfg.env[cfg.nenv] = NULL;
    if (cfg.nargs == 0) fatal("invalidArgument", "no command to run");
}

/* Reads frames until a MSG_CONFIG arrives. */
static void receive_config(void) {
    for (;;) {
        uint8_t hdr[8];
        if (read_full(control_fd, hdr, 8) != 0) fatal("internalError", "control channel closed before the configuration");
        uint32_t type = get32(hdr), len = get32(hdr + 4);
        if (len > (64u << 20)) fatal("internalError", "configuration too large");
        uint8_t *buf = malloc(len ? len : 1);
        if (!buf) fatal("internalError", "out of memory");
        if (len && read_full(control_fd, buf, len) != 0) fatal("internalError", "control channel closed");
        if (type == MSG_CONFIG) { parse_config(buf, len); free(buf); return; }
        free(buf);
    }
}

/* ---------------------------------------------------------------- a restored VM */

/* A VM restored from a snapshot shares its kernel's CRNG state with every
 * other VM restored from it: mix in the host's fresh bytes, credit them,
 * and force a reseed, before anything of the workload runs. */
static void add_host_entropy(void) {
    if (!cfg.entropy_len) fatal("internalError", "no entropy from the host");
    struct { struct rand_pool_info_ info; uint8_t buf[sizeof cfg.entropy]; } req;
    req.info.entropy_count = (int)(cfg.entropy_len * 8);
    req.info.buf_size = (int)cfg.entropy_len;
    memcpy(req.buf, cfg.entropy, cfg.entropy_len);
    explicit_bzero(cfg.entropy, sizeof cfg.entropy);
    int fd = open("/dev/urandom", O_RDWR | O_CLOEXEC);
    if (fd < 0) fatal("systemCall", "open /dev/urandom: %s", strerror(errno));
    if (ioctl(fd, RNDADDENTROPY_, &req) != 0) fatal("systemCall", "RNDADDENTROPY: %s", strerror(errno));
    if (ioctl(fd, RNDRESEEDCRNG_) != 0) fatal("systemCall", "RNDRESEEDCRNG: %s", strerror(errno));
    explicit_bzero(&req, sizeof req);
    close(fd);
}

/* The image's disk is attached after the VM starts (or is restored), and
 * the kernel learns its size from a config-change interrupt, in a work
 * item: wait until the block device has sectors. */
static void wait_for_disk(const char *dev) {
    const char *name = strrchr(dev, '/');
    name = name ? name + 1 : dev;
    char path[128], buf[32];
    snprintf(path, sizeof path, "/sys/block/%s/size", name);
    struct timespec pause_ts = { 0, 1000000 };
    for (int i = 0; i < 20000; i++) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t n = read(fd, buf, sizeof buf - 1);
            close(fd);
            if (n > 0) { buf[n] = 0; if (strtoull(buf, NULL, 10) > 0) return; }
        }
        nanosleep(&pause_ts, NULL);
    }
    fatal("internalError", "the image's disk %s did not appear", dev);
}

/* ---------------------------------------------------------------- mounts */

static void must_mount(const char *src, const char *dst, const char *type, unsigned long flags, const char *data) {
    if (mount(src, dst, type, flags, data) != 0)
        fatal("systemCall", "mount %s on %s: %s", type ? type : src, dst, strerror(errno));
}

/* An O_PATH fd for `path` resolved inside the root `root_fd` (symlinks in
 * the image stay inside it), creating it as a directory or file. */
static int open_in_root(int root_fd, const char *path, int flags) {
    struct open_how_ how = { .flags = (uint64_t)(flags | O_CLOEXEC), .mode = 0,
                             .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
    while (*path == '/') path++;
    return (int)syscall(SYS_openat2, root_fd, *path ? path : ".", &how, sizeof how);
}

static int ensure_in_root(int root_fd, const char *path, int directory) {
    int fd = open_in_root(root_fd, path, O_PATH);
    if (fd >= 0 || errno != ENOENT) return fd;
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", path);
    char *slash = strrchr(parent, '/');
    const char *name = path;
    if (slash) { *slash = 0; name = path + (slash - parent) + 1; } else { strcpy(parent, "/"); }
    if (!*parent) strcpy(parent, "/");
    int pfd = ensure_in_root(root_fd, parent, 1);
    if (pfd < 0) return -1;
    close(pfd);
    int dfd = open_in_root(root_fd, parent, O_RDONLY | O_DIRECTORY);
    if (dfd < 0) return -1;
    if (directory) mkdirat(dfd, name, 0755);
    else { int f = openat(dfd, name, O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644); if (f >= 0) close(f); }
    close(dfd);
    return open_in_root(root_fd, path, O_PATH);
}

static void mount_in_root(int root_fd, const char *src, const char *path, const char *type,
                          unsigned long flags, const char *data, int directory) {
    int fd = ensure_in_root(root_fd, path, directory);
    if (fd < 0) fatal("systemCall", "mount point %s: %s", path, strerror(errno));
    char target[64];
    snprintf(target, sizeof target, "/proc/self/fd/%d", fd);
    must_mount(src, target, type, flags, data);
    close(fd);
}

static void remount_in_root(int root_fd, const char *path, unsigned long flags) {
    int fd = open_in_root(root_fd, path, O_PATH);
    if (fd < 0) return;
    char target[64];
    snprintf(target, sizeof target, "/proc/self/fd/%d", fd);
    must_mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | flags, NULL);
    close(fd);
}

static void write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) fatal("systemCall", "open %s: %s", path, strerror(errno));
    if (write_full(fd, text, strlen(text)) != 0) fatal("systemCall", "write %s: %s", path, strerror(errno));
    close(fd);
}

/* The workload's cgroup in the guest: --memory, --pids-limit, --cpus
 * apply inside the VM as in a container. It is made before the snapshot
 * point (it does not depend on the run; creating a cgroup is thousands of
 * emulated instructions) and gets its limits after. */
static void prepare_cgroup(void) {
    mkdir("/sys/fs/cgroup", 0755);
    must_mount("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    write_file("/sys/fs/cgroup/cgroup.subtree_control", "+memory +pids");
    if (mkdir("/sys/fs/cgroup/workload", 0755) != 0) fatal("systemCall", "mkdir /sys/fs/cgroup/workload: %s", strerror(errno));
}

static void setup_cgroup(void) {
    char buf[64];
    if (cfg.memory) {
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)cfg.memory);
        write_file("/sys/fs/cgroup/workload/memory.max", buf);
    }
    if (cfg.pids > 0) {
        snprintf(buf, sizeof buf, "%lld", (long long)cfg.pids);
        write_file("/sys/fs/cgroup/workload/pids.max", buf);
    }
    /* --cpus is enforced on the host, on the VMM's vCPU threads. */
}

/* The writable layer: a tmpfs, made before the snapshot point. */
static void prepare_root(void) {
    mkdir("/lower", 0755);
    mkdir("/rw", 0755);
    mkdir("/newroot", 0755);
    must_mount("tmpfs", "/rw", "tmpfs", MS_NODEV | MS_NOSUID, "mode=0755");
    mkdir("/rw/upper", 0755);
    mkdir("/rw/work", 0755);
}

/* The image's disk, read-only, under an overlay with the tmpfs upper layer. */
static void setup_root(void) {
    must_mount(cfg.rootdev, "/lower", "ext4", MS_RDONLY | MS_NODEV, NULL);
    must_mount("overlay", "/newroot", "overlay", MS_NODEV,
               "lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work");
}

/* ---------------------------------------------------------------- the workload */

struct child_fds { int sync, error, in, out, err, pty_slave, term_sock; };

/* Passes a file descriptor over a unix socket (SCM_RIGHTS). */
static int send_fd(int sock, int fd) {
    char dummy = 'F';
    struct iovec iov = { .iov_base = &dummy, .iov_len = 1 };
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
    memset(&u, 0, sizeof u);
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    return sendmsg(sock, &msg, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock) {
    char dummy;
    struct iovec iov = { .iov_base = &dummy, .iov_len = 1 };
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
    if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != 1) return -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_type != SCM_RIGHTS) return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof(int));
    return fd;
}

static void child_fail(int error_fd, const char *code, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    size_t len = format_error(msg, code, fmt, ap);
    va_end(ap);
    write_full(error_fd, msg, len);
    _exit(125);
}

static int interface_up(const char *name) {
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    int r = ioctl(fd, SIOCGIFFLAGS, &ifr);
    if (r == 0) { ifr.ifr_flags |= IFF_UP | IFF_RUNNING; r = ioctl(fd, SIOCSIFFLAGS, &ifr); }
    close(fd);
    return r;
}

static const char *find_executable(const char *name, int error_fd) {
    static char path[4096];
    if (strchr(name, '/')) {
        struct stat st;
        if (stat(name, &st) != 0)
            child_fail(error_fd, "commandNotFound", "exec: \"%s\": stat %s: no such file or directory", name, name);
        if (S_ISDIR(st.st_mode)) child_fail(error_fd, "commandNotExecutable", "exec: \"%s\": is a directory", name);
        if (access(name, X_OK) != 0) child_fail(error_fd, "commandNotExecutable", "exec: \"%s\": permission denied", name);
        return name;
    }
    const char *env_path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    for (int i = 0; i < cfg.nenv; i++)
        if (strncmp(cfg.env[i], "PATH=", 5) == 0) env_path = cfg.env[i] + 5;
    int denied = 0;
    const char *p = env_path;
    while (1) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        snprintf(path, sizeof path, "%.*s/%s", (int)(len ? len : 1), len ? p : ".", name);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            if (access(path, X_OK) == 0) return path;
            denied = 1;
        }
        if (!end) break;
        p = end + 1;
    }
    if (denied) child_fail(error_fd, "commandNotExecutable", "exec: \"%s\": permission denied", name);
    child_fail(error_fd, "commandNotFound", "exec: \"%s\": executable file not found in $PATH", name);
    return NULL;
}

static void mkdir_p(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') { *p = 0; mkdir(buf, 0755); *p = '/'; }
    }
    mkdir(buf, 0755);
}

static void put_etc_file(int root_fd, const char *name, const char *text) {
    int etc = open_in_root(root_fd, "/etc", O_RDONLY | O_DIRECTORY);
    if (etc < 0) return;
    unlinkat(etc, name, 0);
    int fd = openat(etc, name, O_CREAT | O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd >= 0) { write_full(fd, text, strlen(text)); close(fd); }
    close(etc);
}

/* --network bridge: eth0 (virtio-net) gets the run's MAC, address, MTU
 * and default route, and lo comes up, in guest-init's own network
 * namespace, which the workload then shares: the VM is its boundary. */
static void configure_network(void) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fatal("systemCall", "socket for eth0: %s", strerror(errno));
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "eth0");
    ifr.ifr_hwaddr.sa_family = 1; /* ARPHRD_ETHER */
    memcpy(ifr.ifr_hwaddr.sa_data, cfg.net_mac, 6);
    if (ioctl(fd, SIOCSIFHWADDR, &ifr) != 0) fatal("systemCall", "eth0: set MAC: %s", strerror(errno));
    ifr.ifr_mtu = cfg.net_mtu;
    if (ioctl(fd, SIOCSIFMTU, &ifr) != 0) fatal("systemCall", "eth0: set MTU %u: %s", cfg.net_mtu, strerror(errno));
    struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
    memset(&ifr.ifr_addr, 0, sizeof ifr.ifr_addr);
    sin->sin_family = AF_INET;
    memcpy(&sin->sin_addr, cfg.net_addr, 4);
    if (ioctl(fd, SIOCSIFADDR, &ifr) != 0) fatal("systemCall", "eth0: set address: %s", strerror(errno));
    uint32_t mask = cfg.net_prefix ? htonl(~0u << (32 - cfg.net_prefix)) : 0;
    memcpy(&sin->sin_addr, &mask, 4);
    if (ioctl(fd, SIOCSIFNETMASK, &ifr) != 0) fatal("systemCall", "eth0: set netmask: %s", strerror(errno));
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) fatal("systemCall", "eth0: %s", strerror(errno));
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) != 0) fatal("systemCall", "eth0: up: %s", strerror(errno));
    struct rtentry rt;
    memset(&rt, 0, sizeof rt);
    struct sockaddr_in *gw = (struct sockaddr_in *)&rt.rt_gateway, *dst = (struct sockaddr_in *)&rt.rt_dst,
                       *msk = (struct sockaddr_in *)&rt.rt_genmask;
    gw->sin_family = dst->sin_family = msk->sin_family = AF_INET;
    memcpy(&gw->sin_addr, cfg.net_gw, 4);
    rt.rt_flags = RTF_UP | RTF_GATEWAY;
    rt.rt_dev = "eth0";
    if (ioctl(fd, SIOCADDRT, &rt) != 0) fatal("systemCall", "eth0: default route: %s", strerror(errno));
    close(fd);
    if (interface_up("lo") != 0) fatal("systemCall", "lo: up: %s", strerror(errno));
}

/* Runs in the new namespaces as the workload's PID 1, until execve. */
static void workload_main(struct child_fds *f) {
    char go;
    if (read(f->sync, &go, 1) != 1) _exit(125);
    close(f->sync);
    if (unshare(CLONE_NEWCGROUP) != 0) child_fail(f->error, "systemCall", "unshare(CLONE_NEWCGROUP): %s", strerror(errno));
    setsid();
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        child_fail(f->error, "systemCall", "make / private: %s", strerror(errno));

    int root = open("/newroot", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) child_fail(f->error, "systemCall", "open /newroot: %s", strerror(errno));
    unsigned long nse = MS_NOSUID | MS_NODEV | MS_NOEXEC;
    mount_in_root(root, "proc", "/proc", "proc", nse, NULL, 1);
    mount_in_root(root, "tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME | MS_NODEV, "mode=755,size=65536k", 1);
    mount_in_root(root, "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5", 1);
    mount_in_root(root, "shm", "/dev/shm", "tmpfs", nse, "mode=1777,size=65536k", 1);
    mount_in_root(root, "mqueue", "/dev/mqueue", "mqueue", nse, NULL, 1);
    mount_in_root(root, "sysfs", "/sys", "sysfs", nse | MS_RDONLY, NULL, 1);
    mount_in_root(root, "cgroup2", "/sys/fs/cgroup", "cgroup2", nse | MS_RDONLY, NULL, 1);
    static const char *devices[] = { "null", "zero", "full", "random", "urandom", "tty" };
    for (size_t i = 0; i < sizeof devices / sizeof *devices; i++) {
        char src[64], dst[64];
        snprintf(src, sizeof src, "/dev/%s", devices[i]);
        snprintf(dst, sizeof dst, "/dev/%s", devices[i]);
        mount_in_root(root, src, dst, NULL, MS_BIND, NULL, 0);
    }
    int dev = open_in_root(root, "/dev", O_RDONLY | O_DIRECTORY);
    if (dev >= 0) {
        symlinkat("/proc/self/fd", dev, "fd");
        symlinkat("/proc/self/fd/0", dev, "stdin");
        symlinkat("/proc/self/fd/1", dev, "stdout");
        symlinkat("/proc/self/fd/2", dev, "stderr");
        symlinkat("pts/ptmx", dev, "ptmx");
        symlinkat("/proc/kcore", dev, "core");
        close(dev);
    }
    if (cfg.terminal) {
        /* The terminal lives in the workload's own devpts, as in the
         * container path: its master goes to guest-init for the relay. */
        int master = open_in_root(root, "/dev/pts/ptmx", O_RDWR | O_NOCTTY);
        int unlock = 0;
        unsigned int n = 0;
        if (master < 0 || ioctl(master, TIOCSPTLCK, &unlock) != 0 || ioctl(master, TIOCGPTN, &n) != 0)
            child_fail(f->error, "systemCall", "pseudo-terminal: %s", strerror(errno));
        struct winsize ws = { .ws_row = cfg.rows, .ws_col = cfg.cols };
        ioctl(master, TIOCSWINSZ, &ws);
        char slave[64];
        snprintf(slave, sizeof slave, "/dev/pts/%u", n);
        f->pty_slave = open_in_root(root, slave, O_RDWR | O_NOCTTY);
        if (f->pty_slave < 0) child_fail(f->error, "systemCall", "open %s: %s", slave, strerror(errno));
        fcntl(f->pty_slave, F_SETFD, 0);
        char src[64];
        snprintf(src, sizeof src, "/proc/self/fd/%d", f->pty_slave);
        mount_in_root(root, src, "/dev/console", NULL, MS_BIND, NULL, 0);
        if (send_fd(f->term_sock, master) != 0) child_fail(f->error, "systemCall", "send terminal: %s", strerror(errno));
        close(master);
        close(f->term_sock);
    }
    for (int i = 0; i < cfg.ntmpfs; i++) {
        unsigned long fl = MS_NODEV;
        char data[512] = "";
        char opts[512];
        snprintf(opts, sizeof opts, "%s", cfg.tmpfs[i].options);
        for (char *tok = strtok(opts, ","); tok; tok = strtok(NULL, ",")) {
            if (!strcmp(tok, "noexec")) fl |= MS_NOEXEC;
            else if (!strcmp(tok, "nosuid")) fl |= MS_NOSUID;
            else if (!strcmp(tok, "nodev")) fl |= MS_NODEV;
            else { if (*data) strcat(data, ","); strncat(data, tok, sizeof data - strlen(data) - 2); }
        }
        if (cfg.tmpfs[i].ro) fl |= MS_RDONLY;
        mount_in_root(root, "tmpfs", cfg.tmpfs[i].dest, "tmpfs", fl, data, 1);
    }
    if (cfg.probe) {
        mount_in_root(root, "/probe", "/.swvm-probe", NULL, MS_BIND, NULL, 0);
        remount_in_root(root, "/.swvm-probe", MS_RDONLY | MS_NODEV);
    }
    for (int i = 0; i < cfg.nmasked; i++) {
        int fd = open_in_root(root, cfg.masked[i], O_PATH);
        if (fd < 0) continue;
        struct stat st;
        char target[64];
        snprintf(target, sizeof target, "/proc/self/fd/%d", fd);
        if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) mount("tmpfs", target, "tmpfs", MS_RDONLY | nse, "size=0");
        else mount("/dev/null", target, NULL, MS_BIND, NULL);
        close(fd);
    }
    for (int i = 0; i < cfg.nropaths; i++) {
        int fd = open_in_root(root, cfg.ropaths[i], O_PATH);
        if (fd < 0) continue;
        char target[64];
        snprintf(target, sizeof target, "/proc/self/fd/%d", fd);
        if (mount(target, target, NULL, MS_BIND | MS_REC, NULL) == 0) remount_in_root(root, cfg.ropaths[i], MS_RDONLY | nse);
        close(fd);
    }
    char hn[300];
    snprintf(hn, sizeof hn, "%s\n", cfg.hostname);
    put_etc_file(root, "hostname", hn);
    /* swvm writes these, the same text a container gets. */
    if (cfg.etc_hosts) put_etc_file(root, "hosts", cfg.etc_hosts);
    if (cfg.resolv_conf) put_etc_file(root, "resolv.conf", cfg.resolv_conf);
    close(root);

    /* The guest's root is the initramfs, which pivot_root refuses; move the
     * new root over it instead (switch_root's way). The initramfs stays
     * shadowed below: nothing of it is reachable from the workload. */
    if (chdir("/newroot") != 0 || mount(".", "/", NULL, MS_MOVE, NULL) != 0 || chroot(".") != 0 || chdir("/") != 0)
        child_fail(f->error, "systemCall", "switch to the new root: %s", strerror(errno));
    if (cfg.readonly && mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NODEV, NULL) != 0)
        child_fail(f->error, "systemCall", "read-only root: %s", strerror(errno));

    if (sethostname(cfg.hostname, strlen(cfg.hostname)) != 0)
        child_fail(f->error, "systemCall", "sethostname: %s", strerror(errno));
    interface_up("lo");
    for (int i = 0; i < cfg.nrlimits; i++) {
        struct rlimit r = { .rlim_cur = cfg.rlimits[i].soft, .rlim_max = cfg.rlimits[i].hard };
        if (setrlimit((int)cfg.rlimits[i].res, &r) != 0)
            child_fail(f->error, "invalidArgument", "--ulimit (resource %u): %s", cfg.rlimits[i].res, strerror(errno));
    }

    /* Standard streams: the ports themselves, or the terminal. */
    if (f->pty_slave >= 0) {
        ioctl(f->pty_slave, TIOCSCTTY, 0);
        dup2(f->pty_slave, 0); dup2(f->pty_slave, 1); dup2(f->pty_slave, 2);
        if (f->pty_slave > 2) close(f->pty_slave);
    } else {
        int in = f->in >= 0 ? f->in : open("/dev/null", O_RDONLY);
        dup2(in, 0); dup2(f->out, 1); dup2(f->err, 2);
    }

    mkdir_p(cfg.cwd);
    for (int cap = 0; cap <= 63; cap++)
        if (!(cfg.caps & (1ull << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
            child_fail(f->error, "systemCall", "drop capability %d: %s", cap, strerror(errno));
    struct sock_fprog_ prog = { .len = (unsigned short)(cfg.seccomp_len / 8), .filter = cfg.seccomp };
    if (!cfg.nnp && cfg.seccomp_len && syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
        child_fail(f->error, "systemCall", "seccomp: %s", strerror(errno));
    prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0);
    if (syscall(SYS_setgroups, cfg.ngroups, cfg.groups) != 0) child_fail(f->error, "systemCall", "setgroups: %s", strerror(errno));
    if (syscall(SYS_setresgid, cfg.gid, cfg.gid, cfg.gid) != 0) child_fail(f->error, "systemCall", "setresgid: %s", strerror(errno));
    if (syscall(SYS_setresuid, cfg.uid, cfg.uid, cfg.uid) != 0) child_fail(f->error, "systemCall", "setresuid: %s", strerror(errno));
    prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
    if (chdir(cfg.cwd) != 0)
        child_fail(f->error, "commandNotExecutable", "chdir to cwd (\"%s\") set in config.json failed: %s", cfg.cwd, strerror(errno));
    struct cap_header hdr = { .version = CAPSET_VERSION_3, .pid = 0 };
    struct cap_data data[2] = {
        { (uint32_t)cfg.caps, (uint32_t)cfg.caps, 0 },
        { (uint32_t)(cfg.caps >> 32), (uint32_t)(cfg.caps >> 32), 0 },
    };
    if (syscall(SYS_capset, &hdr, data) != 0) child_fail(f->error, "systemCall", "capset: %s", strerror(errno));
    if (cfg.nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) child_fail(f->error, "systemCall", "no_new_privs: %s", strerror(errno));
    const char *exe = find_executable(cfg.args[0], f->error);
    if (cfg.nnp && cfg.seccomp_len && syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
        child_fail(f->error, "systemCall", "seccomp: %s", strerror(errno));

    sigset_t empty;
    sigemptyset(&empty);
    for (int s = 1; s < 32; s++) if (s != SIGKILL && s != SIGSTOP) signal(s, SIG_DFL);
    sigprocmask(SIG_SETMASK, &empty, NULL);
    syscall(SYS_close_range, 3, ~0u, CLOSE_RANGE_CLOEXEC);
    /* Let the host time the start. */
    execve(exe, cfg.args, cfg.env);
    int e = errno;
    if (e == ENOENT) child_fail(f->error, "commandNotFound", "exec: \"%s\": %s: no such file or directory (or its interpreter is missing)", cfg.args[0], exe);
    if (e == ENOEXEC) child_fail(f->error, "commandNotExecutable", "exec: \"%s\": exec format error", cfg.args[0]);
    child_fail(f->error, "commandNotExecutable", "exec: \"%s\": %s", cfg.args[0], strerror(e));
}

/* ---------------------------------------------------------------- PID 1 */

static int wait_for(const char *path, int ms) {
    struct timespec pause_ts = { 0, 1000000 };
    for (int i = 0; i < ms; i++) {
        if (access(path, F_OK) == 0) return 0;
        nanosleep(&pause_ts, NULL);
    }
    return -1;
}

/* Copies what is available: bytes copied, 0 when nothing was, -1 at EOF. */
static ssize_t relay(int from, int to) {
    char buf[16384];
    ssize_t n = read(from, buf, sizeof buf);
    if (n < 0) return (errno == EINTR || errno == EAGAIN) ? 0 : -1;
    if (n == 0) return -1;
    if (write_full(to, buf, (size_t)n) != 0) return -1;
    return n;
}

int main(void) {
    uint64_t started = now_ns(CLOCK_MONOTONIC);
    mkdir("/dev", 0755);
    mkdir("/proc", 0755);
    mkdir("/sys", 0755);
    mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);

    if (wait_for(CONTROL_PORT, 30000) != 0) fatal("internalError", "no control port (%s)", CONTROL_PORT);
    control_fd = open(CONTROL_PORT, O_RDWR | O_CLOEXEC);
    if (control_fd < 0) fatal("internalError", "open %s: %s", CONTROL_PORT, strerror(errno));
    prepare_root();
    prepare_cgroup();
    uint8_t ready[8];
    put64(ready, started);
    send_msg(MSG_READY, ready, 8);
    /* A snapshot of the VM is taken here, while guest-init waits for its
     * settings: nothing above may depend on the run. */
    receive_config();
    add_host_entropy();
    if (cfg.host_time_ns) {
        struct timeval tv = { .tv_sec = (time_t)(cfg.host_time_ns / 1000000000ull),
                              .tv_usec = (suseconds_t)(cfg.host_time_ns % 1000000000ull / 1000) };
        if (settimeofday(&tv, NULL) != 0) fatal("systemCall", "settimeofday: %s", strerror(errno));
    }
    wait_for_disk(cfg.rootdev);

    setup_root();
    setup_cgroup();

    struct child_fds f = { .in = -1, .out = -1, .err = -1, .pty_slave = -1, .term_sock = -1 };
    int pty_master = -1, stdin_port = -1, stdout_port = -1, term_sock[2] = { -1, -1 };
    if (cfg.terminal) {
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, term_sock) != 0) fatal("systemCall", "socketpair: %s", strerror(errno));
        f.term_sock = term_sock[1];
        stdout_port = open(STDOUT_PORT, O_WRONLY | O_CLOEXEC);
        if (cfg.interactive) stdin_port = open(STDIN_PORT, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    } else {
        if (cfg.interactive) f.in = open(STDIN_PORT, O_RDONLY);
        f.out = open(STDOUT_PORT, O_WRONLY);
        f.err = open(STDERR_PORT, O_WRONLY);
        if (f.out < 0 || f.err < 0) fatal("internalError", "stdio ports: %s", strerror(errno));
    }

    int sync_pipe[2], error_pipe[2];
    if (pipe2(sync_pipe, O_CLOEXEC) != 0 || pipe2(error_pipe, O_CLOEXEC) != 0) fatal("systemCall", "pipe: %s", strerror(errno));
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

    if (cfg.net) configure_network();
    pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | (cfg.net ? 0 : CLONE_NEWNET) | SIGCHLD, 0, 0, 0, 0);
    if (pid < 0) fatal("systemCall", "clone: %s", strerror(errno));
    if (pid == 0) {
        close(sync_pipe[1]);
        close(error_pipe[0]);
        f.sync = sync_pipe[0];
        f.error = error_pipe[1];
        workload_main(&f);
    }
    close(sync_pipe[0]);
    close(error_pipe[1]);
    /* Hold the workload's namespaces: when it exits they are not torn down
     * (every mount unmounted, one by one, in an emulated kernel); the VM
     * is discarded instead. */
    static const char *held[] = { "mnt", "net", "uts", "ipc" };
    for (size_t i = 0; i < sizeof held / sizeof *held; i++) {
        char ns[64];
        snprintf(ns, sizeof ns, "/proc/%d/ns/%s", pid, held[i]);
        open(ns, O_RDONLY | O_CLOEXEC);
    }
    char procs[32];
    snprintf(procs, sizeof procs, "%d", pid);
    write_file("/sys/fs/cgroup/workload/cgroup.procs", procs);
    write_full(sync_pipe[1], "g", 1);
    close(sync_pipe[1]);
    /* Our copies of the workload's streams go, so a port closes when the
     * workload (and whatever it started) closes it. */
    if (f.in >= 0) close(f.in);
    if (f.out >= 0) close(f.out);
    if (f.err >= 0) close(f.err);
    if (term_sock[1] >= 0) {
        close(term_sock[1]);
        pty_master = recv_fd(term_sock[0]);   /* -1 if the child failed before */
        close(term_sock[0]);
    }

    char report[1100];
    ssize_t rn = 0, r;
    while ((r = read(error_pipe[0], report + rn, sizeof report - 1 - (size_t)rn)) > 0 || (r < 0 && errno == EINTR))
        if (r > 0) rn += r;
    close(error_pipe[0]);
    int status = 0, exited = 0;
    if (rn > 0) {
        report[rn] = 0;
        send_msg(MSG_ERROR, report, (uint32_t)rn);
        waitpid(pid, NULL, 0);
        power_off();
    }
    uint8_t st[12];
    put32(st, (uint32_t)pid);
    put64(st + 4, now_ns(CLOCK_REALTIME));
    send_msg(MSG_STARTED, st, 12);

    while (!exited) {
        struct pollfd pfds[4];
        int n = 0;
        pfds[n++] = (struct pollfd){ .fd = control_fd, .events = POLLIN };
        pfds[n++] = (struct pollfd){ .fd = sfd, .events = POLLIN };
        if (pty_master >= 0) pfds[n++] = (struct pollfd){ .fd = pty_master, .events = POLLIN };
        if (stdin_port >= 0) pfds[n++] = (struct pollfd){ .fd = stdin_port, .events = POLLIN };
        if (poll(pfds, (nfds_t)n, -1) < 0 && errno != EINTR) break;
        if (pfds[0].revents & POLLIN) {
            uint8_t hdr[8], body[64];
            if (read_full(control_fd, hdr, 8) == 0) {
                uint32_t type = get32(hdr), len = get32(hdr + 4);
                if (len <= sizeof body && read_full(control_fd, body, len) == 0) {
                    if (type == MSG_SIGNAL && len >= 4) kill(pid, (int)get32(body));
                    if (type == MSG_RESIZE && len >= 4 && pty_master >= 0) {
                        struct winsize ws = { .ws_row = get16(body), .ws_col = get16(body + 2) };
                        ioctl(pty_master, TIOCSWINSZ, &ws);
                    }
                }
            }
        }
        for (int i = 2; i < n; i++) {
            if (!pfds[i].revents) continue;
            if (pfds[i].fd == pty_master) {
                if (relay(pty_master, stdout_port) < 0) { close(pty_master); pty_master = -1; }
            } else if (pfds[i].fd == stdin_port) {
                if (relay(stdin_port, pty_master) < 0) {
                    char eof = 4;   /* the terminal's EOF character */
                    if (pty_master >= 0) write_full(pty_master, &eof, 1);
                    close(stdin_port);
                    stdin_port = -1;
                }
            }
        }
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof si) == sizeof si) {}
        /* Reap everything: orphans re-parented to us, and the workload. */
        for (;;) {
            int ws;
            pid_t w = waitpid(-1, &ws, WNOHANG);
            if (w <= 0) break;
            if (w == pid) {
                exited = 1;
                status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
            }
        }
    }
    if (pty_master >= 0) {
        fcntl(pty_master, F_SETFL, O_NONBLOCK);
        while (relay(pty_master, stdout_port) > 0) {}
    }
    uint8_t code[4];
    put32(code, (uint32_t)status);
    send_msg(MSG_EXIT, code, 4);
    power_off();
    return 0;
}
