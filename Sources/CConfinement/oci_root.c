/* OCI mode's root (swvm_confine.h): config.json's root.path used as it is
 * and its mounts applied in order, then the default device nodes,
 * linux.devices and linux.sysctl, as runc's rootfs_linux.go and
 * standard_init_linux.go do. Every mount point is resolved inside the
 * root (cf_open_in_root), so a destination that is a symlink out of the
 * root lands inside it. Async-signal-safe, like all of the child. */
#define _GNU_SOURCE
#include "confine_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#define AT_RECURSIVE_ 0x8000
struct mount_attr_ { uint64_t attr_set, attr_clr, propagation, userns_fd; };

static int in_user_namespace(const struct swvm_oci *o) {
    if (o->new_namespaces & CLONE_NEWUSER) return 1;
    for (uint32_t i = 0; i < o->njoin; i++)
        if (o->join[i].type == CLONE_NEWUSER) return 1;
    return 0;
}

/* "/dev", "/dev/" or "//dev": whether a destination is /dev itself. */
static int is_dev(const char *path) {
    while (*path == '/') path++;
    if (strncmp(path, "dev", 3)) return 0;
    for (path += 3; *path == '/'; path++) {}
    return !*path;
}

/* The root bound onto itself (so it is a mount point pivot_root accepts);
 * the outer mounts first made slaves (or private, as rootfsPropagation
 * asks), so nothing mounted here reaches the host. */
static void prepare_root(struct child *c) {
    const struct swvm_oci *o = &c->s->oci;
    unsigned long outer = (o->root_propagation & MS_PRIVATE) ? MS_PRIVATE : MS_SLAVE;
    if (mount(NULL, "/", NULL, MS_REC | outer, NULL) != 0) cf_fail_errno(c, "change the propagation of", "/");
    if (mount(o->root, o->root, NULL, MS_BIND | MS_REC, NULL) != 0) cf_fail_errno(c, "bind the root onto itself:", o->root);
    c->root = open(o->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (c->root < 0) cf_fail_errno(c, "open the root", o->root);
}

/* A bind mount's flags take a remount; in a user namespace the flags the
 * source's mount has locked (nosuid, nodev...) must be kept: on EPERM the
 * remount is tried again with them, as runc does. */
static void remount_bind(const struct child *c, const char *dest, unsigned long flags) {
    int fd = cf_open_in_root(c, dest, O_PATH);
    if (fd < 0) cf_fail_errno(c, "remount", dest);
    struct cf_target t = cf_target_of(fd);
    unsigned long want = MS_REMOUNT | MS_BIND | flags;
    if (mount(NULL, t.proc, NULL, want, NULL) != 0 &&
        (errno != EPERM || mount(NULL, t.proc, NULL, want | cf_mount_flags_of(t.proc), NULL) != 0))
        cf_fail_errno(c, "remount with its options", dest);
    close(fd);
}

/* Propagation ("rshared"...) and the recursive attributes ("rro"...). */
static void set_propagation(const struct child *c, const struct swvm_oci_mount *m) {
    if (m->nprop == 0 && !m->attr_set && !m->attr_clr) return;
    int fd = cf_open_in_root(c, m->destination, O_PATH);
    if (fd < 0) cf_fail_errno(c, "set the propagation of", m->destination);
    struct cf_target t = cf_target_of(fd);
    for (uint32_t i = 0; i < m->nprop; i++)
        if (mount(NULL, t.proc, NULL, m->prop[i], NULL) != 0) cf_fail_errno(c, "set the propagation of", m->destination);
    struct mount_attr_ attr = { .attr_set = m->attr_set, .attr_clr = m->attr_clr };
    if ((m->attr_set || m->attr_clr) &&
        syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE_, &attr, sizeof attr) != 0)
        cf_fail_errno(c, "set the recursive options of", m->destination);
    close(fd);
}

static void oci_mount(const struct child *c, const struct swvm_oci_mount *m) {
    if (!strcmp(m->type, "cgroup")) {
        cf_mount_cgroups(c, m->destination, (m->flags & MS_RDONLY) != 0);
        return;
    }
    int bind = (m->flags & MS_BIND) != 0, directory = 1;
    if (bind) {
        struct stat st;
        if (stat(m->source, &st) != 0) cf_fail_err(c, SWVM_ERR_NOT_FOUND, errno, "mount source %s (for %s)", m->source, m->destination);
        directory = S_ISDIR(st.st_mode);
    }
    unsigned long first = bind ? m->flags & (MS_BIND | MS_REC) : m->flags & ~(unsigned long)MS_REMOUNT;
    const char *type = bind || !*m->type ? NULL : m->type;
    cf_mount_in_root(c, "mount", m->source, m->destination, type, first, bind || !*m->data ? NULL : m->data, directory);
    unsigned long rest = m->flags & ~(unsigned long)(MS_BIND | MS_REC | MS_REMOUNT);
    if (bind && rest) remount_bind(c, m->destination, rest);
    set_propagation(c, m);
}

/* The nodes runc always makes (its AllowedDevices with a path). */
static const struct { const char *path; uint32_t major, minor; } default_devices[] = {
    { "/dev/null", 1, 3 }, { "/dev/zero", 1, 5 }, { "/dev/full", 1, 7 },
    { "/dev/random", 1, 8 }, { "/dev/urandom", 1, 9 }, { "/dev/tty", 5, 0 },
};

/* A device node inside the root: made by mknod, or, in a user namespace
 * (where mknod is not allowed), bound from the host's node at the same
 * path, as runc does. An existing node stays. */
static void make_device(const struct child *c, const struct swvm_oci_device *d) {
    if (in_user_namespace(&c->s->oci)) {
        cf_mount_in_root(c, "bind the device", d->path, d->path, NULL, MS_BIND, NULL, 0);
        return;
    }
    char parent[4096];
    cf_text_of(c, parent, sizeof parent, "%s", d->path);
    char *slash = strrchr(parent, '/');
    const char *name = slash ? d->path + (slash - parent) + 1 : d->path;
    if (slash) *slash = 0;
    if (!*name || !strcmp(name, ".") || !strcmp(name, "..")) cf_fail(c, SWVM_ERR_INVALID_ARGUMENT, "device path %s", d->path);
    int pfd = cf_ensure_in_root(c, *parent ? parent : "/", 1);
    if (pfd >= 0) close(pfd);
    int dir = cf_open_in_root(c, *parent ? parent : "/", O_RDONLY | O_DIRECTORY);
    if (dir < 0) cf_fail_errno(c, "open the directory of device", d->path);
    mode_t type = d->type == 'b' ? S_IFBLK : d->type == 'p' ? S_IFIFO : S_IFCHR;
    dev_t dev = d->type == 'p' ? 0 : makedev(d->major, d->minor);
    if (mknodat(dir, name, type | (d->mode & 07777), dev) != 0) {
        if (errno != EEXIST) cf_fail_errno(c, "mknod", d->path);
    } else if (fchownat(dir, name, d->uid, d->gid, AT_SYMLINK_NOFOLLOW) != 0) {
        cf_fail_errno(c, "chown", d->path);
    }
    close(dir);
}

/* Unless /dev is bound from outside: the default nodes, linux.devices,
 * /dev/ptmx to the devpts instance and the fd links (runc's setupDev). */
static void populate_oci_dev(const struct child *c) {
    const struct swvm_oci *o = &c->s->oci;
    for (uint32_t i = 0; i < o->nmounts; i++)
        if ((o->mounts[i].flags & MS_BIND) && is_dev(o->mounts[i].destination)) return;
    mode_t old = umask(0);
    for (size_t i = 0; i < sizeof default_devices / sizeof *default_devices; i++) {
        struct swvm_oci_device d = { .type = 'c', .major = default_devices[i].major, .minor = default_devices[i].minor,
                                     .mode = 0666, .path = (char *)default_devices[i].path };
        make_device(c, &d);
    }
    for (uint32_t i = 0; i < o->ndevices; i++) make_device(c, &o->devices[i]);
    umask(old);
    cf_make_dev_links(c);
}

/* linux.sysctl, written under the container's /proc/sys (swvm checked
 * the keys against its namespaces before sending them). */
static void write_sysctls(const struct child *c) {
    const struct swvm_oci *o = &c->s->oci;
    for (uint32_t i = 0; i < o->nsysctl; i++) {
        const struct swvm_oci_sysctl *e = &o->sysctl[i];
        char path[4096];
        cf_text_of(c, path, sizeof path, "/proc/sys/%s", e->key);
        for (char *p = path + 10; *p; p++)
            if (*p == '.') *p = '/';
        int fd = cf_open_in_root(c, path, O_WRONLY);
        if (fd < 0) cf_fail_err(c, SWVM_ERR_INVALID_ARGUMENT, errno, "linux.sysctl %s: open %s", e->key, path);
        size_t len = strlen(e->value);
        if (write(fd, e->value, len) != (ssize_t)len) cf_fail_err(c, SWVM_ERR_INVALID_ARGUMENT, errno, "linux.sysctl %s=%s", e->key, e->value);
        close(fd);
    }
}

void cf_build_oci_root(struct child *c) {
    const struct swvm_oci *o = &c->s->oci;
    prepare_root(c);
    for (uint32_t i = 0; i < o->nmounts; i++) oci_mount(c, &o->mounts[i]);
    populate_oci_dev(c);
    if (c->s->terminal) cf_open_terminal(c, 1);
    cf_make_workdir(c);
    write_sysctls(c);
    /* runc's point: the mounts made, the old root still there. */
    cf_oci_create_hooks(c);
    cf_mask_and_protect(c);
    cf_report_confined(c);
    close(c->root);
    cf_enter_root(c, o->root);
    /* As runc: the root's own propagation once it is "/". */
    if (o->root_propagation && mount(NULL, "/", NULL, o->root_propagation, NULL) != 0)
        cf_fail_errno(c, "set the propagation of", "/");
}
