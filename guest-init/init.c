/*
 * swvm guest-init: PID 1 of swvm's micro-VM.
 *
 * It mounts what the guest needs, takes the run's settings from the host
 * over the control port (swvm_run_settings.h), assembles the workload's
 * root (the image's ext4 disk, read-only, under an overlay with a tmpfs
 * upper layer), and starts the workload as PID 1 of its own namespaces
 * through the confinement swvm's container child runs too
 * (swvm_confine.h): the same mounts, masked and read-only paths,
 * capabilities, user, no_new_privs and seccomp filter (compiled by the host).
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
#include <sys/reboot.h>
#include <sys/sendfile.h>
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

#include "swvm_confine.h"
#include "exec.h"
#include "early_exit.h"

/* ---------------------------------------------------------------- config */

static struct swvm_settings cfg;
static int control_fd = -1;
static int exit_watch = -1;   /* the TASKSTATS listener (early_exit.h), or -1 */

/* ---------------------------------------------------------------- helpers */

static int write_full(int fd, const void *buf, size_t len) {
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) { if (errno == EINTR) continue; return -1; }
        p += n; len -= (size_t)n;
    }
    return 0;
}


static void send_msg(uint32_t type, const void *payload, uint32_t len) {
    if (control_fd >= 0) swvm_frame_write(control_fd, type, payload, len);
}

__attribute__((noreturn)) static void power_off(void) {
    sync();
    /* reboot=k on the command line: the i8042 reset the VMM watches. */
    reboot(RB_AUTOBOOT);
    for (;;) pause();
}

/* Reports an error to the host (a MSG_ERROR frame, swvm_error_write), or
 * on the console before the control port is open, and powers off.
 * guest-init is single-threaded, so unlike the container child it may
 * format with stdio and put errno's text into the message itself. */
__attribute__((noreturn, format(printf, 2, 3)))
static void fatal(uint32_t code, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if (n >= (int)sizeof msg) n = sizeof msg - 1;
    if (control_fd >= 0) {
        swvm_error_write(control_fd, code, 0, msg, (uint32_t)n);
    } else {
        int con = open("/dev/console", O_WRONLY);
        if (con >= 0) { dprintf(con, "swvm guest-init: %s\n", msg); close(con); }
    }
    power_off();
}

/* ---------------------------------------------------------------- config */

/* Reads frames until a MSG_CONFIG arrives, and decodes it. */
static void receive_config(void) {
    for (;;) {
        uint32_t type, len;
        uint8_t *buf = swvm_frame_read_alloc(control_fd, &type, &len, SWVM_MAX_CONFIG);
        if (!buf && len == 0) fatal(SWVM_ERR_INTERNAL, "control channel closed before the configuration");
        if (!buf) fatal(SWVM_ERR_INTERNAL, "configuration of %u bytes is too large", len);
        if (type == MSG_CONFIG) {
            char error[256];
            int bad = swvm_settings_decode(buf, len, &cfg, error, sizeof error);
            /* It may hold the run's entropy: none of it stays in freed memory. */
            explicit_bzero(buf, len);
            free(buf);
            if (bad) fatal(SWVM_ERR_INVALID_ARGUMENT, "%s", error);
            return;
        }
        free(buf);
    }
}

/* ---------------------------------------------------------------- mounts */

static void must_mount(const char *src, const char *dst, const char *type, unsigned long flags, const char *data) {
    if (mount(src, dst, type, flags, data) != 0)
        fatal(SWVM_ERR_SYSTEM_CALL, "mount %s on %s: %s", type ? type : src, dst, strerror(errno));
}

static void write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) fatal(SWVM_ERR_SYSTEM_CALL, "open %s: %s", path, strerror(errno));
    if (write_full(fd, text, strlen(text)) != 0) fatal(SWVM_ERR_SYSTEM_CALL, "write %s: %s", path, strerror(errno));
    close(fd);
}

/* The workload's cgroup in the guest: --memory and --pids-limit apply
 * inside the VM as in a container (--cpus is the host's: a quota on the
 * VMM's vCPU threads). It is made before the snapshot
 * point (it does not depend on the run; creating a cgroup is thousands of
 * emulated instructions) and gets its limits after. */
static void prepare_cgroup(void) {
    mkdir("/sys/fs/cgroup", 0755);
    /* favordynmods: a migration into the cgroup (each exec joins it)
     * then waits for no RCU grace period, tens of ms in this emulated
     * kernel; forks and exits pay a little instead. Kernels before 6.0
     * do not know the option. */
    if (mount("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, "favordynmods") != 0)
        must_mount("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    write_file("/sys/fs/cgroup/cgroup.subtree_control", "+memory +pids");
    if (mkdir("/sys/fs/cgroup/workload", 0755) != 0) fatal(SWVM_ERR_SYSTEM_CALL, "mkdir /sys/fs/cgroup/workload: %s", strerror(errno));
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

/* An OCI bundle's root as a disk: its overlay upper layer as the host had
 * it at create (podman's /etc/mtab link, say), made in the tmpfs upper
 * before the overlay is mounted. Parents come first. */
static void write_upper_entries(void) {
    for (uint32_t i = 0; i < cfg.noci_upper; i++) {
        const struct swvm_upper_entry *e = &cfg.oci_upper[i];
        char path[4096];
        if (snprintf(path, sizeof path, "/rw/upper%s", e->path) >= (int)sizeof path)
            fatal(SWVM_ERR_INVALID_ARGUMENT, "upper-layer entry %s: path too long", e->path);
        int rc;
        if (e->kind == 'd') {
            rc = mkdir(path, (mode_t)e->mode);
            if (rc == 0) rc = chmod(path, (mode_t)e->mode);   /* past the umask */
        } else if (e->kind == 'l') {
            rc = symlink(e->contents, path);
        } else {
            int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
            rc = fd < 0 ? -1 : write_full(fd, e->contents, strlen(e->contents));
            if (rc == 0) rc = fchmod(fd, (mode_t)e->mode);
            if (fd >= 0) close(fd);
        }
        if (rc != 0) fatal(SWVM_ERR_SYSTEM_CALL, "make upper-layer entry %s: %s", e->path, strerror(errno));
    }
}

/* The -v host directories: one 9p mount (swvm's server in the VMM) whose
 * entries 0, 1, ... are the volumes; the confinement binds each to its
 * target, as it binds a host directory in a container. access=user: each
 * guest uid attaches as itself, so what it creates is its own on the host.
 * cache=mmap: no page or attribute cache (the directory stays live for
 * both sides), except what shared writable mmap needs. */
static void mount_volumes(void) {
    if (!cfg.nvolumes) return;
    mkdir(SWVM_VOLUMES_DIR, 0755);
    must_mount(SWVM_9P_TAG, SWVM_VOLUMES_DIR, "9p", MS_NOSUID | MS_NODEV,
               "trans=virtio,version=9p2000.L,access=user,cache=mmap,msize=262144");
}

/* ---------------------------------------------------------------- a restored VM */

/* <linux/random.h>, which musl's headers do not carry. */
#define RNDADDENTROPY_ _IOW('R', 0x03, int[2])
#define RNDRESEEDCRNG_ _IO('R', 0x07)
struct rand_pool_info_ { int entropy_count; int buf_size; };

/* A VM restored from a snapshot shares its kernel's CRNG state with every
 * other VM restored from it: mix in the host's fresh bytes, credit them,
 * and force a reseed, before anything of the workload runs. */
static void add_host_entropy(void) {
    if (!cfg.entropy_len) fatal(SWVM_ERR_INTERNAL, "no entropy from the host");
    struct { struct rand_pool_info_ info; uint8_t buf[256]; } req;
    uint32_t n = cfg.entropy_len < sizeof req.buf ? cfg.entropy_len : (uint32_t)sizeof req.buf;
    req.info.entropy_count = (int)(n * 8);
    req.info.buf_size = (int)n;
    memcpy(req.buf, cfg.entropy, n);
    explicit_bzero(cfg.entropy, cfg.entropy_len);
    int fd = open("/dev/urandom", O_RDWR | O_CLOEXEC);
    if (fd < 0) fatal(SWVM_ERR_SYSTEM_CALL, "open /dev/urandom: %s", strerror(errno));
    if (ioctl(fd, RNDADDENTROPY_, &req) != 0) fatal(SWVM_ERR_SYSTEM_CALL, "RNDADDENTROPY: %s", strerror(errno));
    if (ioctl(fd, RNDRESEEDCRNG_) != 0) fatal(SWVM_ERR_SYSTEM_CALL, "RNDRESEEDCRNG: %s", strerror(errno));
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
    fatal(SWVM_ERR_INTERNAL, "the image's disk %s did not appear", dev);
}

/* The disk root: the image's disk, or an OCI bundle's image layers with
 * its upper layer's entries, under the overlay. */
static void mount_disk_root(void) {
    wait_for_disk(cfg.rootdev);
    write_upper_entries();
    setup_root();
}

/* A restored OCI root template's upper-layer entries carry the clock of
 * the run that saved it: dated now, as a create without a template dates
 * them (after set_clock). */
static void redate_upper_entries(void) {
    for (uint32_t i = 0; i < cfg.noci_upper; i++) {
        char path[4096];
        if (snprintf(path, sizeof path, "/rw/upper%s", cfg.oci_upper[i].path) >= (int)sizeof path)
            fatal(SWVM_ERR_INVALID_ARGUMENT, "upper-layer entry %s: path too long", cfg.oci_upper[i].path);
        if (utimensat(AT_FDCWD, path, NULL, AT_SYMLINK_NOFOLLOW) != 0)
            fatal(SWVM_ERR_SYSTEM_CALL, "date upper-layer entry %s: %s", cfg.oci_upper[i].path, strerror(errno));
    }
}

/* ---------------------------------------------------------------- the network */

static void interface_flags_up(int fd, const char *name) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) fatal(SWVM_ERR_SYSTEM_CALL, "%s: %s", name, strerror(errno));
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) != 0) fatal(SWVM_ERR_SYSTEM_CALL, "%s: up: %s", name, strerror(errno));
}

static void set_ipv4(int fd, const char *name, unsigned long request, const uint8_t addr[4], const char *what) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
    sin->sin_family = AF_INET;
    memcpy(&sin->sin_addr, addr, 4);
    if (ioctl(fd, request, &ifr) != 0) fatal(SWVM_ERR_SYSTEM_CALL, "%s: set %s: %s", name, what, strerror(errno));
}

/* A route through eth0: via `gateway`, or on the link when it is 0.0.0.0. */
static void add_route(int fd, const uint8_t dst_addr[4], uint8_t prefix, const uint8_t gateway[4], const char *what) {
    struct rtentry rt;
    memset(&rt, 0, sizeof rt);
    struct sockaddr_in *gw = (struct sockaddr_in *)&rt.rt_gateway, *dst = (struct sockaddr_in *)&rt.rt_dst,
                       *msk = (struct sockaddr_in *)&rt.rt_genmask;
    gw->sin_family = dst->sin_family = msk->sin_family = AF_INET;
    uint32_t mask = prefix ? htonl(~0u << (32 - prefix)) : 0;
    memcpy(&dst->sin_addr, dst_addr, 4);
    memcpy(&msk->sin_addr, &mask, 4);
    memcpy(&gw->sin_addr, gateway, 4);
    rt.rt_flags = RTF_UP | (gw->sin_addr.s_addr ? RTF_GATEWAY : 0) | (prefix == 32 ? RTF_HOST : 0);
    rt.rt_dev = "eth0";
    if (ioctl(fd, SIOCADDRT, &rt) != 0) fatal(SWVM_ERR_SYSTEM_CALL, "eth0: %s: %s", what, strerror(errno));
}

/* --network ns:PATH: the pod interface's further addresses (as aliases
 * eth0:N, which SIOCSIFADDR makes secondary addresses) and its routes,
 * on-link ones first as the host sends them. */
static void configure_pod_network(int fd) {
    for (uint32_t i = 0; i < cfg.nnet_addrs; i++) {
        char alias[IFNAMSIZ];
        snprintf(alias, sizeof alias, "eth0:%u", i + 1);
        set_ipv4(fd, alias, SIOCSIFADDR, cfg.net_addrs[i].addr, "a further address");
        uint32_t mask = cfg.net_addrs[i].prefix ? htonl(~0u << (32 - cfg.net_addrs[i].prefix)) : 0;
        set_ipv4(fd, alias, SIOCSIFNETMASK, (const uint8_t *)&mask, "its netmask");
    }
    for (uint32_t i = 0; i < cfg.nnet_routes; i++) {
        add_route(fd, cfg.net_routes[i].dst, cfg.net_routes[i].prefix, cfg.net_routes[i].gateway, "a route of the pod");
    }
}

/* --network bridge or ns:PATH: eth0 (virtio-net) gets the run's MAC, address, MTU
 * and default route, and lo comes up, in guest-init's own network
 * namespace, which the workload then shares: the VM is its boundary. */
static void configure_network(void) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fatal(SWVM_ERR_SYSTEM_CALL, "socket for eth0: %s", strerror(errno));
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "eth0");
    ifr.ifr_hwaddr.sa_family = 1; /* ARPHRD_ETHER */
    memcpy(ifr.ifr_hwaddr.sa_data, cfg.net_if.mac, 6);
    if (ioctl(fd, SIOCSIFHWADDR, &ifr) != 0) fatal(SWVM_ERR_SYSTEM_CALL, "eth0: set MAC: %s", strerror(errno));
    ifr.ifr_mtu = cfg.net_if.mtu;
    if (ioctl(fd, SIOCSIFMTU, &ifr) != 0) fatal(SWVM_ERR_SYSTEM_CALL, "eth0: set MTU %u: %s", cfg.net_if.mtu, strerror(errno));
    struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
    memset(&ifr.ifr_addr, 0, sizeof ifr.ifr_addr);
    sin->sin_family = AF_INET;
    memcpy(&sin->sin_addr, cfg.net_if.addr, 4);
    if (ioctl(fd, SIOCSIFADDR, &ifr) != 0) fatal(SWVM_ERR_SYSTEM_CALL, "eth0: set address: %s", strerror(errno));
    uint32_t mask = cfg.net_if.prefix ? htonl(~0u << (32 - cfg.net_if.prefix)) : 0;
    memcpy(&sin->sin_addr, &mask, 4);
    if (ioctl(fd, SIOCSIFNETMASK, &ifr) != 0) fatal(SWVM_ERR_SYSTEM_CALL, "eth0: set netmask: %s", strerror(errno));
    interface_flags_up(fd, "eth0");
    configure_pod_network(fd);
    /* 0.0.0.0: a pod's interface without a default route. */
    static const uint8_t none[4];
    if (memcmp(cfg.net_if.gateway, none, 4) != 0) add_route(fd, none, 0, cfg.net_if.gateway, "the default route");
    interface_flags_up(fd, "lo");
    close(fd);
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

/* ---------------------------------------------------------------- the workload */

/* The workload's side of the VM: its child io, the terminal relay, and the
 * descriptors guest-init keeps while it runs. */
struct workload {
    struct swvm_child_io io;
    int pty_master, stdin_port, stdout_port, term_sock[2];
    int sync_pipe[2], error_pipe[2];
    int sfd;        /* SIGCHLD */
    pid_t pid;
    uint32_t namespaces;
    int exited, status;   /* the child ended at the start gate */
};

static uint32_t oci_namespaces(void);

/* /dev, /proc and /sys of guest-init itself. */
static void mount_early(void) {
    mkdir("/dev", 0755);
    mkdir("/proc", 0755);
    mkdir("/sys", 0755);
    mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
}

static void open_control_port(void) {
    if (wait_for(CONTROL_PORT, 30000) != 0) fatal(SWVM_ERR_INTERNAL, "no control port (%s)", CONTROL_PORT);
    control_fd = open(CONTROL_PORT, O_RDWR | O_CLOEXEC);
    if (control_fd < 0) fatal(SWVM_ERR_INTERNAL, "open %s: %s", CONTROL_PORT, strerror(errno));
}

/* READY carries the protocol version; the host refuses another one. */
static void send_ready(void) {
    uint8_t ready[SWVM_READY_LEN];
    swvm_ready_encode(&(struct swvm_ready){ .version = SWVM_PROTOCOL_VERSION }, ready);
    send_msg(MSG_READY, ready, sizeof ready);
}

static void set_clock(void) {
    if (!cfg.host_time_ns) return;
    struct timeval tv = { .tv_sec = (time_t)(cfg.host_time_ns / 1000000000ull),
                          .tv_usec = (suseconds_t)(cfg.host_time_ns % 1000000000ull / 1000) };
    if (settimeofday(&tv, NULL) != 0) fatal(SWVM_ERR_SYSTEM_CALL, "settimeofday: %s", strerror(errno));
}

/* The workload's stdio: the virtio-console ports, or with a terminal a pty
 * the child makes, whose master guest-init relays to the stdout port. */
static void open_stdio(struct workload *w) {
    if (cfg.terminal) {
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, w->term_sock) != 0) fatal(SWVM_ERR_SYSTEM_CALL, "socketpair: %s", strerror(errno));
        w->io.socket_fd = w->term_sock[1];
        w->stdout_port = open(STDOUT_PORT, O_WRONLY | O_CLOEXEC);
        if (w->stdout_port < 0) fatal(SWVM_ERR_INTERNAL, "open %s: %s", STDOUT_PORT, strerror(errno));
        if (cfg.interactive && (w->stdin_port = open(STDIN_PORT, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0)
            fatal(SWVM_ERR_INTERNAL, "open %s: %s", STDIN_PORT, strerror(errno));
        return;
    }
    if (cfg.interactive && (w->io.in = open(STDIN_PORT, O_RDONLY)) < 0) fatal(SWVM_ERR_INTERNAL, "open %s: %s", STDIN_PORT, strerror(errno));
    w->io.out = open(STDOUT_PORT, O_WRONLY);
    w->io.err = open(STDERR_PORT, O_WRONLY);
    if (w->io.out < 0 || w->io.err < 0) fatal(SWVM_ERR_INTERNAL, "stdio ports: %s", strerror(errno));
}

/* Clones the workload's child into new namespaces; it runs the shared
 * confinement (swvm_confine_exec, or with run_fd >= 0 template mode's
 * swvm_confine_template_exec) and waits on the sync pipe. */
static void clone_workload_with(struct workload *w, int run_fd) {
    if (pipe2(w->sync_pipe, O_CLOEXEC) != 0 || pipe2(w->error_pipe, O_CLOEXEC) != 0) fatal(SWVM_ERR_SYSTEM_CALL, "pipe: %s", strerror(errno));
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    w->sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    w->namespaces = cfg.oci.enabled ? oci_namespaces()
                                    : CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | (cfg.net ? 0 : CLONE_NEWNET);
    w->pid = (pid_t)syscall(SYS_clone, w->namespaces | SIGCHLD, 0, 0, 0, 0);
    if (w->pid < 0) fatal(SWVM_ERR_SYSTEM_CALL, "clone: %s", strerror(errno));
    if (w->pid == 0) {
        close(w->sync_pipe[1]);
        close(w->error_pipe[0]);
        if (w->term_sock[0] >= 0) close(w->term_sock[0]);
        w->io.sync_fd = w->sync_pipe[0];
        w->io.error_fd = w->error_pipe[1];
        if (run_fd >= 0) swvm_confine_template_exec(&cfg, &w->io, run_fd);
        swvm_confine_exec(&cfg, &w->io);
    }
    close(w->sync_pipe[0]);
    close(w->error_pipe[1]);
}

/* Places the child (its namespaces held, its cgroup) and lets it go on. */
static void release_workload(struct workload *w) {
    /* Hold the workload's namespaces: when it exits they are not torn down
     * (every mount unmounted, one by one, in an emulated kernel); the VM
     * is discarded instead. */
    static const char *held[] = { "mnt", "net", "uts", "ipc" };
    for (size_t i = 0; i < sizeof held / sizeof *held; i++) {
        char ns[64];
        snprintf(ns, sizeof ns, "/proc/%d/ns/%s", w->pid, held[i]);
        open(ns, O_RDONLY | O_CLOEXEC);
    }
    char procs[32];
    snprintf(procs, sizeof procs, "%d", w->pid);
    write_file("/sys/fs/cgroup/workload/cgroup.procs", procs);
    write_full(w->sync_pipe[1], "g", 1);
    close(w->sync_pipe[1]);
    /* Our copies of the workload's streams go, so a port closes when the
     * workload (and whatever it started) closes it. */
    if (w->io.in >= 0) close(w->io.in);
    if (w->io.out >= 0) close(w->io.out);
    if (w->io.err >= 0) close(w->io.err);
    if (w->term_sock[1] >= 0) {
        close(w->term_sock[1]);
        w->pty_master = swvm_recv_fd(w->term_sock[0]);   /* -1 if the child failed before */
        close(w->term_sock[0]);
    }
}

/* ---------------------------------------------------------------- the start gate (OCI) */

/* An OCI create at the VM level: the workload's child stops right before
 * its execve, as a container's init does, with the same code (the
 * confinement's exec FIFO stage): it reports MSG_CREATED and blocks opening
 * this FIFO for writing. guest-init opens it for reading when the host
 * sends MSG_START (`swvm start` read the host's exec FIFO). */
#define START_GATE "/.swvm-start-gate"

/* The namespaces config.json asks for, and always a mount namespace of its
 * own (guest-init's mounts stay out of the workload's); the cgroup one is
 * the child's (it unshares it once in its cgroup); the host refused a user
 * namespace and namespaces joined by path. */
static uint32_t oci_namespaces(void) {
    return (cfg.oci.new_namespaces & ~(uint32_t)(CLONE_NEWCGROUP | CLONE_NEWUSER)) | CLONE_NEWNS;
}

static void make_start_gate(void) {
    if (mkfifo(START_GATE, 0622) != 0 || chmod(START_GATE, 0622) != 0) fatal(SWVM_ERR_SYSTEM_CALL, "mkfifo %s: %s", START_GATE, strerror(errno));
    /* The child opens it as /proc/self/fd/N once in its own root. */
    cfg.oci.exec_fifo = open(START_GATE, O_PATH | O_CLOEXEC);
    if (cfg.oci.exec_fifo < 0) fatal(SWVM_ERR_SYSTEM_CALL, "open %s: %s", START_GATE, strerror(errno));
}

/* A wait status as the host reports it: the exit code, or 128+N for a
 * death by signal N. */
static int host_status(int ws) { return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws); }

/* Whether the child has exited (reaped; its status kept for serve_workload). */
static int child_ended(struct workload *w) {
    struct signalfd_siginfo si;
    while (read(w->sfd, &si, sizeof si) == sizeof si) {}
    int status;
    if (waitpid(w->pid, &status, WNOHANG) != w->pid) return 0;
    w->exited = 1;
    w->status = host_status(status);
    return 1;
}

/* Waits for MSG_START (a MSG_SIGNAL meanwhile goes to the child, as a
 * signal to a created container's init does). 1 when released, 0 when the
 * child ended first (serve_workload then reports its status). */
static int await_start(struct workload *w) {
    for (;;) {
        struct pollfd pfds[2] = { { .fd = control_fd, .events = POLLIN }, { .fd = w->sfd, .events = POLLIN } };
        if (poll(pfds, 2, -1) < 0 && errno != EINTR) fatal(SWVM_ERR_SYSTEM_CALL, "poll at the start gate: %s", strerror(errno));
        if (pfds[1].revents && child_ended(w)) return 0;
        if (!pfds[0].revents) continue;   /* POLLERR alone too: the read fails */
        uint8_t body[64];
        uint32_t type, len;
        if (swvm_frame_read(control_fd, &type, &len, body, sizeof body, SWVM_MAX_CONFIG) != 0)
            fatal(SWVM_ERR_INTERNAL, "the control channel ended at the start gate");
        struct swvm_signal sig;
        if (type == MSG_START) return 1;
        if (type == MSG_SIGNAL && swvm_signal_decode(body, len < sizeof body ? len : sizeof body, &sig) == 0) kill(w->pid, (int)sig.signal);
    }
}

/* Opens the gate: the child, blocked opening it for writing, writes one
 * byte and goes on to execve. Non-blocking, so a child that died does not
 * hang guest-init. 1 when released, 0 when the child ended first. */
static int hold_at_start_gate(struct workload *w) {
    if (!await_start(w)) return 0;
    int fd = open(START_GATE, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) fatal(SWVM_ERR_SYSTEM_CALL, "open %s: %s", START_GATE, strerror(errno));
    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int n = poll(&p, 1, 100);
        char byte;
        if (n > 0 && read(fd, &byte, 1) >= 0) break;
        if (child_ended(w)) break;
    }
    close(fd);
    unlink(START_GATE);
    return 1;
}

/* config.json's binds of host files, copied by the host: written before
 * the workload's root is built, where the binds' sources now point. */
static void write_vm_files(void) {
    for (uint32_t i = 0; i < cfg.nvm_files; i++) {
        const char *path = cfg.vm_files[i].source, *text = cfg.vm_files[i].destination;
        char dir[256];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) { *slash = 0; mkdir(dir, 0755); }
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 || write_full(fd, text, strlen(text)) != 0) fatal(SWVM_ERR_SYSTEM_CALL, "write %s: %s", path, strerror(errno));
        close(fd);
    }
}

/* The child's frames (MSG_CONFINED, MSG_ERROR, and MSG_CREATED at the
 * start gate) go to the host as they are, until its error pipe closes at
 * execve (or at the gate); then MSG_STARTED. A failed child powers the VM
 * off (the host has its MSG_ERROR). */
static void report_start(struct workload *w) {
    int failed = 0;
    uint32_t rtype, rlen;
    uint8_t *report;
    int created = 0;
    while ((report = swvm_frame_read_alloc(w->error_pipe[0], &rtype, &rlen, SWVM_MAX_GUEST_FRAME)) != NULL) {
        if (rtype == MSG_CONFINED || rtype == MSG_ERROR || rtype == MSG_CREATED) send_msg(rtype, report, rlen);
        failed |= rtype == MSG_ERROR;
        created |= rtype == MSG_CREATED;
        free(report);
    }
    close(w->error_pipe[0]);
    if (failed) {
        waitpid(w->pid, NULL, 0);
        power_off();
    }
    if (created && !hold_at_start_gate(w)) return;
    /* The workload's namespaces as made: clone's, and the cgroup namespace
     * the confinement unshares (or fails). */
    uint8_t st[SWVM_STARTED_LEN];
    swvm_started_encode(&(struct swvm_started){ .pid = (uint32_t)w->pid, .namespaces = w->namespaces | CLONE_NEWCGROUP }, st);
    send_msg(MSG_STARTED, st, sizeof st);
}

/* One frame from the host while the workload runs: a signal or a resize.
 * -1 at end of stream or at a frame over the limit: the control port is
 * then not read again (the stream is out of step). */
static int handle_control_frame(struct workload *w) {
    uint32_t type, len;
    uint8_t *body = swvm_frame_read_alloc(control_fd, &type, &len, SWVM_MAX_CONFIG);
    if (!body) return -1;
    size_t have = len;
    struct swvm_signal sig;
    struct swvm_resize size;
    if (type == MSG_SIGNAL && swvm_signal_decode(body, have, &sig) == 0) kill(w->pid, (int)sig.signal);
    if (type == MSG_RESIZE && swvm_resize_decode(body, have, &size) == 0 && w->pty_master >= 0) {
        struct winsize ws = { .ws_row = size.rows, .ws_col = size.cols };
        ioctl(w->pty_master, TIOCSWINSZ, &ws);
    }
    execs_handle_frame(type, body, len);   /* exec.c: exec, kill --all, ps */
    free(body);
    return 0;
}

/* The terminal relay: the pty's output to the stdout port, the stdin
 * port's input to the pty (EOF becomes the terminal's EOF character). */
static void relay_terminal(struct workload *w, int fd) {
    if (fd == w->pty_master) {
        if (relay(w->pty_master, w->stdout_port) < 0) { close(w->pty_master); w->pty_master = -1; }
    } else if (fd == w->stdin_port) {
        if (relay(w->stdin_port, w->pty_master) < 0) {
            char eof = 4;
            if (w->pty_master >= 0) write_full(w->pty_master, &eof, 1);
            close(w->stdin_port);
            w->stdin_port = -1;
        }
    }
}

/* Reaps everything (orphans re-parented to us, and the workload); 1 with
 * *status set once the workload has exited. */
static int reap(struct workload *w, int *status) {
    struct signalfd_siginfo si;
    while (read(w->sfd, &si, sizeof si) == sizeof si) {}
    int exited = 0;
    for (;;) {
        int ws;
        pid_t r = waitpid(-1, &ws, WNOHANG);
        if (r <= 0) return exited;
        if (execs_reaped(r, ws)) continue;
        if (r == w->pid) {
            exited = 1;
            *status = host_status(ws);
        }
    }
}

/* Whether the workload's exit may be reported from the kernel's TASKSTATS
 * message, before the workload's teardown: only when nothing of the run
 * still depends on that teardown, and the message's status is the one
 * waitpid will give. Not with a terminal (the workload's output passes
 * through guest-init's pty relay, drained after the exit), nor with a 9p
 * share (volumes, an OCI bundle's root directory: pages the workload
 * wrote through a shared mapping reach the host when they are unmapped,
 * and at the sync before power-off). Nor when the workload may hold
 * CAP_SYS_BOOT: reboot(2) in its PID namespace sends its init SIGKILL and
 * has the caller exit(0), and afterwards zap_pid_ns_processes makes the
 * group's code SIGINT or SIGHUP; the message says 0 or SIGKILL. */
static int may_report_early(void) {
    uint64_t bounding = cfg.oci.has_caps ? cfg.oci.bounding : cfg.caps;
    const uint64_t cap_sys_boot = 1ull << 22;
    return exit_watch >= 0 && !cfg.terminal && cfg.nvolumes == 0 && !(cfg.oci.enabled && !cfg.oci_disk_root) &&
           !(bounding & cap_sys_boot);
}

/* The workload's end as the TASKSTATS message says it (swvm_taskstats_exit
 * takes only an unambiguous one): 1 with *status. */
static int early_exit(const struct workload *w, int *status) {
    int ws;
    if (!early_exit_read(exit_watch, w->pid, &ws)) return 0;
    *status = host_status(ws);
    return 1;
}

/* Serves the running workload until it exits; returns its status. With
 * `watch` (may_report_early), the kernel's TASKSTATS message may say so
 * first, while the workload's address space is still being torn down:
 * about 0.7 s of emulated kernel work for python3 on a PVM host. */
static int serve_workload(struct workload *w, int watch) {
    if (w->exited) return w->status;
    int status = 0, control_in = control_fd;
    for (;;) {
        struct pollfd pfds[5 + EXECS_MAX_POLL];
        int n = 0;
        pfds[n++] = (struct pollfd){ .fd = control_in, .events = POLLIN };   /* -1: poll skips it */
        pfds[n++] = (struct pollfd){ .fd = w->sfd, .events = POLLIN };
        pfds[n++] = (struct pollfd){ .fd = watch ? exit_watch : -1, .events = POLLIN };
        if (w->pty_master >= 0) pfds[n++] = (struct pollfd){ .fd = w->pty_master, .events = POLLIN };
        if (w->stdin_port >= 0) pfds[n++] = (struct pollfd){ .fd = w->stdin_port, .events = POLLIN };
        int own = n;
        n += execs_poll_fds(pfds + n, EXECS_MAX_POLL);
        if (poll(pfds, (nfds_t)n, -1) < 0 && errno != EINTR) return status;
        /* Any event, POLLHUP or POLLERR alone too (a port the host
         * unplugged): the read then ends and the port is dropped, rather
         * than polled again at once, forever. */
        if (pfds[0].revents && handle_control_frame(w) != 0) control_in = -1;
        for (int i = 3; i < own; i++)
            if (pfds[i].revents) relay_terminal(w, pfds[i].fd);
        execs_service(pfds + own, n - own);
        if (reap(w, &status)) return status;
        if (pfds[2].revents && early_exit(w, &status)) return status;
    }
}

static void clone_workload(struct workload *w) { clone_workload_with(w, -1); }

/* From the released child to the end: its start reported, the workload
 * served, its status sent, the VM off. */
__attribute__((noreturn)) static void finish_workload(struct workload *w) {
    /* As early as the run's settings are all known: a workload that ends
     * before its messages pass is reaped as without it. */
    int watch = may_report_early() && early_exit_watch(exit_watch, w->pid) == 0;
    report_start(w);
    execs_start(&cfg, w->pid, w->namespaces, control_fd);
    int status = serve_workload(w, watch);
    if (w->pty_master >= 0) {
        fcntl(w->pty_master, F_SETFL, O_NONBLOCK);
        while (relay(w->pty_master, w->stdout_port) > 0) {}
    }
    uint8_t code[SWVM_EXIT_LEN];
    swvm_exit_encode(&(struct swvm_exit){ .status = status }, code);
    send_msg(MSG_EXIT, code, sizeof code);
    power_off();
}

#include "template.c"

int main(void) {
    mount_early();
    open_control_port();
    prepare_root();
    prepare_cgroup();
    /* Before the snapshot point, so restored runs do not pay for it. */
    exit_watch = early_exit_open();
    /* A snapshot of the VM is taken here, while guest-init waits for its
     * settings: nothing above may depend on the run. */
    send_ready();
    receive_config();
    int root_ready = cfg.template_mode && (cfg.template_flags & SWVM_TEMPLATE_OCI_ROOT);
    if (root_ready) oci_root_template();
    else if (cfg.template_mode) template_main();
    add_host_entropy();
    set_clock();
    /* An OCI bundle's root is a share of the host's directory (config.json
     * root.path), or its image layers as a disk (CFG_OCI_DISK_ROOT); an
     * image's is its disk. */
    if (root_ready) redate_upper_entries();
    else if (!cfg.oci.enabled || cfg.oci_disk_root) mount_disk_root();
    setup_cgroup();
    mount_volumes();
    write_vm_files();

    struct workload w = { .io = { .in = -1, .out = -1, .err = -1, .socket_fd = -1,
                                  .prepared_root = cfg.oci.enabled ? cfg.oci.root : "/newroot" },
                          .pty_master = -1, .stdin_port = -1, .stdout_port = -1, .term_sock = { -1, -1 } };
    if (cfg.oci.enabled) make_start_gate();
    open_stdio(&w);
    if (cfg.net) configure_network();
    clone_workload(&w);
    release_workload(&w);
    finish_workload(&w);
}
