/*
 * guest-init's template mode (issue 22): image templates.
 *
 * With CFG_TEMPLATE, MSG_CONFIG holds only the fixed part of the run's
 * settings (the template's key covers it). guest-init then mounts the
 * image's disk, clones the workload's child, which builds its root's
 * fixed mounts (swvm_confine_template_exec), and says MSG_TEMPLATE_POINT.
 * The host may save the VM here (a template) and later restore it
 * instead of doing all of this again. Then the host sends MSG_RUN, the
 * per-run fields: guest-init reseeds the kernel's CRNG, sets the clock,
 * the cgroup limits and eth0, and passes the fields to the child, which
 * finishes its root and execs. Nothing of a run is in the template: it
 * is taken before MSG_RUN arrives, and everything the workload draws from
 * the random pool is drawn after the reseed.
 *
 * Included by init.c (it uses guest-init's own helpers).
 */

/* The child's frames up to the template point: MSG_CONFINED is kept (the
 * host gets it after MSG_RUN, in every run restored from the template); a
 * MSG_ERROR goes to the host and powers the VM off. */
static uint8_t *await_template_point(struct workload *w, uint32_t *confined_len) {
    uint8_t *confined = NULL;
    *confined_len = 0;
    for (;;) {
        uint32_t type, len;
        uint8_t *frame = swvm_frame_read_alloc(w->error_pipe[0], &type, &len, SWVM_MAX_GUEST_FRAME);
        if (!frame) {
            /* EOF before the template point: the child failed without a report. */
            waitpid(w->pid, NULL, 0);
            fatal(SWVM_ERR_INTERNAL, "the workload's child ended before the template point");
        }
        if (type == MSG_TEMPLATE_POINT) { free(frame); return confined; }
        if (type == MSG_ERROR) {
            send_msg(type, frame, len);
            waitpid(w->pid, NULL, 0);
            power_off();
        }
        if (type == MSG_CONFINED && !confined) { confined = frame; *confined_len = len; continue; }
        free(frame);
    }
}

/* Reads frames until MSG_RUN; returns its payload. */
static uint8_t *receive_run(uint32_t *len) {
    for (;;) {
        uint32_t type;
        uint8_t *buf = swvm_frame_read_alloc(control_fd, &type, len, SWVM_MAX_CONFIG);
        if (!buf && *len == 0) fatal(SWVM_ERR_INTERNAL, "control channel closed before the per-run settings");
        if (!buf) fatal(SWVM_ERR_INTERNAL, "per-run settings of %u bytes are too large", *len);
        if (type == MSG_RUN) return buf;
        free(buf);
    }
}

/* The run's host name, set in the workload's UTS namespace by guest-init:
 * the workload's seccomp filter, loaded before the template point, may
 * deny sethostname to the child. */
static void set_workload_hostname(pid_t pid) {
    char ns[64];
    snprintf(ns, sizeof ns, "/proc/%d/ns/uts", pid);
    int own = open("/proc/self/ns/uts", O_RDONLY | O_CLOEXEC), theirs = open(ns, O_RDONLY | O_CLOEXEC);
    if (own < 0 || theirs < 0) fatal(SWVM_ERR_SYSTEM_CALL, "open the UTS namespaces for the host name: %s", strerror(errno));
    if (setns(theirs, CLONE_NEWUTS) != 0) fatal(SWVM_ERR_SYSTEM_CALL, "enter the workload's UTS namespace: %s", strerror(errno));
    if (sethostname(cfg.hostname, strlen(cfg.hostname)) != 0) fatal(SWVM_ERR_SYSTEM_CALL, "sethostname %s: %s", cfg.hostname, strerror(errno));
    if (setns(own, CLONE_NEWUTS) != 0) fatal(SWVM_ERR_SYSTEM_CALL, "return to guest-init's UTS namespace: %s", strerror(errno));
    close(own);
    close(theirs);
}

/* The run's volumes after a restore: the share mount (mount_volumes, as
 * without a template) made in the workload's mount namespace, which its
 * child built before the template point and whose root is still the
 * initramfs; the child then binds the shares from there. guest-init
 * enters that namespace for the mount and comes back. */
static void mount_volumes_for(pid_t pid) {
    if (!cfg.nvolumes) return;
    char ns[64];
    snprintf(ns, sizeof ns, "/proc/%d/ns/mnt", pid);
    int own = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC), theirs = open(ns, O_RDONLY | O_CLOEXEC);
    if (own < 0 || theirs < 0) fatal(SWVM_ERR_SYSTEM_CALL, "open the mount namespaces for the volumes: %s", strerror(errno));
    /* PID 1 shares its root and cwd (CLONE_FS) with the kernel's threads:
     * setns refuses a mount namespace to a shared fs_struct. */
    if (unshare(CLONE_FS) != 0) fatal(SWVM_ERR_SYSTEM_CALL, "unshare CLONE_FS: %s", strerror(errno));
    if (setns(theirs, CLONE_NEWNS) != 0) fatal(SWVM_ERR_SYSTEM_CALL, "enter the workload's mount namespace: %s", strerror(errno));
    mount_volumes();
    if (setns(own, CLONE_NEWNS) != 0 || chdir("/") != 0) fatal(SWVM_ERR_SYSTEM_CALL, "return to guest-init's mount namespace: %s", strerror(errno));
    close(own);
    close(theirs);
}

/* guest-init's own copies of the stdio ports, kept past the template
 * point: whether the run has a terminal (whose relay needs them) comes
 * with MSG_RUN. A port opens once, so they are duplicates. */
struct kept_ports { int in, out; };

static struct kept_ports keep_ports(const struct workload *w) {
    struct kept_ports k = { w->io.in >= 0 ? fcntl(w->io.in, F_DUPFD_CLOEXEC, 0) : -1, fcntl(w->io.out, F_DUPFD_CLOEXEC, 0) };
    if (k.out < 0 || (w->io.in >= 0 && k.in < 0)) fatal(SWVM_ERR_SYSTEM_CALL, "keep the stdio ports: %s", strerror(errno));
    return k;
}

/* With a terminal the relay takes them (stdin without blocking, as
 * open_stdio opens it for a terminal); otherwise they go now, so that a
 * port closes when the workload closes it. Stdin only with -i (the child
 * drops its copy then too). */
static void use_kept_ports(struct workload *w, struct kept_ports k) {
    if (!cfg.interactive && k.in >= 0) {
        close(k.in);
        k.in = -1;
    }
    if (!cfg.terminal) {
        if (k.in >= 0) close(k.in);
        close(k.out);
        return;
    }
    w->stdout_port = k.out;
    w->stdin_port = k.in;
    if (k.in >= 0 && fcntl(k.in, F_SETFL, fcntl(k.in, F_GETFL) | O_NONBLOCK) != 0) fatal(SWVM_ERR_SYSTEM_CALL, "stdin port: %s", strerror(errno));
}

/* After the template point: the per-run settings, applied in guest-init,
 * then handed to the child (which adds them to its own copy). */
static void apply_run_settings(struct workload *w, int run_fd, struct kept_ports ports) {
    uint32_t len;
    uint8_t *run = receive_run(&len);
    char error[256];
    if (swvm_run_fields_apply(run, len, &cfg, error, sizeof error) != 0) fatal(SWVM_ERR_INVALID_ARGUMENT, "%s", error);
    int shared_net = (cfg.template_flags & SWVM_TEMPLATE_SHARED_NET) != 0;
    if (cfg.net != shared_net) fatal(SWVM_ERR_INVALID_ARGUMENT, "the per-run settings %s eth0, the template %s", cfg.net ? "configure" : "do not configure", shared_net ? "shares it" : "does not");
    /* A plain template's child is in its root, maybe under its filter: nothing more can be mounted there. */
    if ((cfg.template_flags & SWVM_TEMPLATE_PLAIN) && (cfg.nvolumes || cfg.terminal))
        fatal(SWVM_ERR_INVALID_ARGUMENT, "the per-run settings have volumes or a terminal, the template is a plain one");
    add_host_entropy();
    set_clock();
    setup_cgroup();
    if (cfg.net) configure_network();
    set_workload_hostname(w->pid);
    mount_volumes_for(w->pid);
    use_kept_ports(w, ports);
    if (swvm_frame_write(run_fd, MSG_RUN, run, len) != 0) fatal(SWVM_ERR_SYSTEM_CALL, "pass the per-run settings on: %s", strerror(errno));
    close(run_fd);
    explicit_bzero(run, len);
    free(run);
}

/* <linux/openat2.h>, which musl's headers do not carry. */
struct open_how_ { uint64_t flags, mode, resolve; };
#define RESOLVE_NO_MAGICLINKS_ 0x02
#define RESOLVE_IN_ROOT_ 0x10

/* A file's pages into the page cache, at most `budget` bytes: sendfile to
 * /dev/null (the kernel reads them in and drops nothing but the copy),
 * else read(). In the emulated guest kernel the copy to user space is
 * most of the cost: busybox's 2 MB took 1.2 s through sendfile, 1.6 s
 * through read(). Returns the bytes read. */
static long long read_into_page_cache(int fd, int devnull, long long budget) {
    static char buf[65536];
    long long got = 0;
    ssize_t n = -1;
    if (devnull >= 0) {
        while (got < budget && (n = sendfile(devnull, fd, NULL, (size_t)(budget - got))) > 0) got += n;
        if (n >= 0) return got;
    }
    while (got < budget && (n = read(fd, buf, sizeof buf)) > 0) got += n;
    return got;
}

/* Reads the files the host named (CFG_WARM_FILE: the image's own command,
 * the shell, the files the template's first run read) into the page
 * cache, so a run restored from the template does not wait on virtio-blk
 * and the emulated block layer for them. Resolved inside the image's root
 * (its symlinks stay in it); a directory's entries are read, a file
 * that is missing or neither regular nor a directory is skipped; at most
 * WARM_BYTES in all (guest RAM is small). */
#define WARM_BYTES (32 << 20)
static void warm_page_cache(void) {
    int root = open("/newroot", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) return;
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    static char entries[65536];
    long long budget = WARM_BYTES;
    for (uint32_t i = 0; i < cfg.nwarm_files && budget > 0; i++) {
        struct open_how_ how = { .flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
                                 .resolve = RESOLVE_IN_ROOT_ | RESOLVE_NO_MAGICLINKS_ };
        int fd = (int)syscall(SYS_openat2, root, cfg.warm_files[i], &how, sizeof how);
        if (fd < 0) continue;
        struct stat st;
        ssize_t n;
        if (fstat(fd, &st) != 0) st.st_mode = 0;
        if (S_ISREG(st.st_mode) && st.st_size <= budget)
            budget -= read_into_page_cache(fd, devnull, budget);
        else if (S_ISDIR(st.st_mode))   /* its blocks: lookups in it, found or not, read no disk */
            while (budget > 0 && (n = syscall(SYS_getdents64, fd, entries, sizeof entries)) > 0) budget -= n;
        close(fd);
    }
    if (devnull >= 0) close(devnull);
    close(root);
}

/* An OCI bundle's root template (SWVM_TEMPLATE_OCI_ROOT): the image layers'
 * disk mounted, the upper layer made and the workload's files warmed, then
 * the template point, before the container's own settings. Those come whole
 * with MSG_RUN (the entropy first reseeds the CRNG, in main); guest-init
 * then goes on as without a template. */
static void oci_root_template(void) {
    mount_disk_root();
    warm_page_cache();
    send_msg(MSG_TEMPLATE_POINT, NULL, 0);
    /* The template is saved here, while guest-init waits for MSG_RUN. */
    uint32_t len;
    uint8_t *run = receive_run(&len);
    char error[256];
    int bad = swvm_run_fields_apply(run, len, &cfg, error, sizeof error);
    explicit_bzero(run, len);
    free(run);
    if (bad) fatal(SWVM_ERR_INVALID_ARGUMENT, "%s", error);
    if (!cfg.oci.enabled || !cfg.oci_disk_root) fatal(SWVM_ERR_INVALID_ARGUMENT, "an OCI root template's run is not an OCI bundle's with a disk root");
}

__attribute__((noreturn)) static void template_main(void) {
    wait_for_disk(cfg.rootdev);
    setup_root();
    warm_page_cache();
    /* Whether the workload shares guest-init's network is fixed at clone. */
    cfg.net = (cfg.template_flags & SWVM_TEMPLATE_SHARED_NET) != 0;
    struct workload w = { .io = { .in = -1, .out = -1, .err = -1, .socket_fd = -1, .prepared_root = "/newroot" },
                          .pty_master = -1, .stdin_port = -1, .stdout_port = -1, .term_sock = { -1, -1 } };
    open_stdio(&w);   /* the ports: a terminal is the run's (CFG_TERMINAL comes with MSG_RUN) */
    /* And stdin in every template: whether the run relays it (-i,
     * CFG_INTERACTIVE) comes with MSG_RUN too. */
    if ((w.io.in = open(STDIN_PORT, O_RDONLY)) < 0) fatal(SWVM_ERR_INTERNAL, "open %s: %s", STDIN_PORT, strerror(errno));
    /* The socket a run's pty master comes back on, in every template. */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, w.term_sock) != 0) fatal(SWVM_ERR_SYSTEM_CALL, "socketpair: %s", strerror(errno));
    w.io.socket_fd = w.term_sock[1];
    int run_pipe[2];
    if (pipe2(run_pipe, O_CLOEXEC) != 0) fatal(SWVM_ERR_SYSTEM_CALL, "pipe: %s", strerror(errno));
    clone_workload_with(&w, run_pipe[0]);
    close(run_pipe[0]);
    close(w.term_sock[1]);
    int term = w.term_sock[0];
    w.term_sock[0] = w.term_sock[1] = -1;   /* release_workload waits for no master */
    struct kept_ports ports = keep_ports(&w);
    cfg.net = 0;   /* until MSG_RUN says how eth0 is set up */
    release_workload(&w);
    uint32_t confined_len;
    uint8_t *confined = await_template_point(&w, &confined_len);
    send_msg(MSG_TEMPLATE_POINT, NULL, 0);
    /* The template is saved here, while guest-init waits for MSG_RUN. */
    apply_run_settings(&w, run_pipe[1], ports);
    if (cfg.terminal) w.pty_master = swvm_recv_fd(term);   /* -1 if the child failed before */
    close(term);
    if (confined) { send_msg(MSG_CONFINED, confined, confined_len); free(confined); }
    finish_workload(&w);
}
