/* The decoder for swvm_run_settings.h, shared by guest-init and swvm. */
#define _GNU_SOURCE
#include "swvm_run_settings.h"

#include <sched.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }

struct decoder {
    char *error;
    size_t error_len;
    int failed;
};

static int fail(struct decoder *d, const char *fmt, ...) {
    if (!d->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->error, d->error_len, fmt, ap);
        va_end(ap);
    }
    d->failed = 1;
    return -1;
}

/* A NUL-terminated copy; a string field may not hold a NUL itself. */
static char *text(struct decoder *d, const uint8_t *p, uint32_t len, const char *what) {
    if (memchr(p, 0, len)) { fail(d, "run settings: %s holds a NUL byte", what); return NULL; }
    char *s = malloc((size_t)len + 1);
    if (!s) { fail(d, "run settings: out of memory"); return NULL; }
    memcpy(s, p, len);
    s[len] = 0;
    return s;
}

/* Appends one element to a growing array of `size`-byte elements. */
static void *append(struct decoder *d, void **array, uint32_t *count, size_t size, const char *what) {
    if (*count >= SWVM_MAX_LIST) { fail(d, "run settings: more than %u %s", SWVM_MAX_LIST, what); return NULL; }
    uint32_t n = *count;
    /* Grow by powers of two, keeping one spare slot for a NULL terminator. */
    if ((n & (n + 1)) == 0 || n == 0) {
        size_t cap = (size_t)(n + 1) * 2;
        void *grown = realloc(*array, cap * size);
        if (!grown) { fail(d, "run settings: out of memory"); return NULL; }
        *array = grown;
    }
    char *slot = (char *)*array + (size_t)n * size;
    memset(slot, 0, size);
    memset(slot + size, 0, size);
    (*count)++;
    return slot;
}

static int add_string(struct decoder *d, char ***list, uint32_t *count, const uint8_t *v, uint32_t n, const char *what) {
    char *s = text(d, v, n, what);
    if (!s) return -1;
    char **slot = append(d, (void **)list, count, sizeof(char *), what);
    if (!slot) { free(s); return -1; }
    *slot = s;
    return 0;
}

static int set_string(struct decoder *d, char **field, const uint8_t *v, uint32_t n, const char *what) {
    char *s = text(d, v, n, what);
    if (!s) return -1;
    free(*field);
    *field = s;
    return 0;
}

static int set_bytes(struct decoder *d, uint8_t **field, uint32_t *field_len, const uint8_t *v, uint32_t n) {
    uint8_t *b = malloc(n ? n : 1);
    if (!b) return fail(d, "run settings: out of memory");
    memcpy(b, v, n);
    free(*field);
    *field = b;
    *field_len = n;
    return 0;
}

/* (uid_t)-1 means "unchanged" to setresuid and setresgid: a process sent
 * it would stay root. swvm refuses it before encoding; this refuses it
 * again on the receiving side. */
static int usable_id(struct decoder *d, uint32_t id, const char *what) {
    if (id == UINT32_MAX) return fail(d, "run settings: %s %u is (%s_t)-1", what, id, strstr(what, "gid") ? "gid" : "uid");
    return 0;
}

static int need(struct decoder *d, uint32_t n, uint32_t want, const char *what) {
    if (n != want) return fail(d, "run settings: %s is %u bytes, not %u", what, n, want);
    return 0;
}

/* u8 flag, first string, NUL, second string: tmpfs, volumes, cgroup mounts. */
static int add_mount(struct decoder *d, struct swvm_mount **list, uint32_t *count, const uint8_t *v, uint32_t n,
                     const char *what, int first_is_source) {
    if (n < 2) return fail(d, "run settings: %s is %u bytes", what, n);
    const uint8_t *nul = memchr(v + 1, 0, n - 1);
    uint32_t first_len = nul ? (uint32_t)(nul - (v + 1)) : n - 1;
    uint32_t second_off = nul ? first_len + 2 : n;
    char *first = text(d, v + 1, first_len, what);
    char *second = first ? text(d, v + second_off, n - second_off, what) : NULL;
    struct swvm_mount *m = second ? append(d, (void **)list, count, sizeof **list, what) : NULL;
    if (!m) { free(first); free(second); return -1; }
    m->read_only = v[0] & 1;
    m->kind = v[0];
    if (first_is_source) { m->source = first; m->destination = second; }
    else { m->destination = first; m->options = second; }
    return 0;
}

/* Splits `n` bytes into `count` NUL-separated strings (the last runs to
 * the end); a missing separator, or a NUL in the last, is an error. */
static int split_strings(struct decoder *d, const uint8_t *v, uint32_t n, char **out, int count, const char *what) {
    for (int i = 0; i < count; i++) out[i] = NULL;
    for (int i = 0; i < count; i++) {
        const uint8_t *nul = i < count - 1 ? memchr(v, 0, n) : NULL;
        if (i < count - 1 && !nul) { fail(d, "run settings: %s lacks a field", what); goto bad; }
        uint32_t len = nul ? (uint32_t)(nul - v) : n;
        if (!(out[i] = text(d, v, len, what))) goto bad;
        if (nul) { n -= len + 1; v = nul + 1; }
    }
    return 0;
bad:
    for (int i = 0; i < count; i++) { free(out[i]); out[i] = NULL; }
    return -1;
}

static int decode_oci_mount(struct decoder *d, struct swvm_oci *o, const uint8_t *v, uint32_t n) {
    if (n < 16 || get32(v + 12) > SWVM_OCI_MAX_PROP || n < 16 + 4 * get32(v + 12))
        return fail(d, "run settings: an OCI mount of %u bytes", n);
    uint32_t nprop = get32(v + 12), head = 16 + 4 * nprop;
    char *f[4];
    if (split_strings(d, v + head, n - head, f, 4, "an OCI mount")) return -1;
    struct swvm_oci_mount *m = append(d, (void **)&o->mounts, &o->nmounts, sizeof *m, "OCI mounts");
    if (!m) { for (int i = 0; i < 4; i++) free(f[i]); return -1; }
    m->flags = get32(v);
    m->attr_set = get32(v + 4);
    m->attr_clr = get32(v + 8);
    m->nprop = nprop;
    for (uint32_t i = 0; i < nprop; i++) m->prop[i] = get32(v + 16 + 4 * i);
    m->type = f[0]; m->source = f[1]; m->destination = f[2]; m->data = f[3];
    return 0;
}

static int decode_oci_device(struct decoder *d, struct swvm_oci *o, const uint8_t *v, uint32_t n) {
    if (n < 22 || !memchr("cbup", v[0], 4)) return fail(d, "run settings: an OCI device of %u bytes or of type %u", n, n ? v[0] : 0);
    char *path = text(d, v + 21, n - 21, "an OCI device");
    struct swvm_oci_device *dev = path ? append(d, (void **)&o->devices, &o->ndevices, sizeof *dev, "OCI devices") : NULL;
    if (!dev) { free(path); return -1; }
    dev->type = v[0];
    dev->major = get32(v + 1); dev->minor = get32(v + 5); dev->mode = get32(v + 9);
    dev->uid = get32(v + 13); dev->gid = get32(v + 17);
    dev->path = path;
    return 0;
}

static int decode_oci_sysctl(struct decoder *d, struct swvm_oci *o, const uint8_t *v, uint32_t n) {
    char *f[2];
    if (split_strings(d, v, n, f, 2, "a sysctl")) return -1;
    struct swvm_oci_sysctl *e = append(d, (void **)&o->sysctl, &o->nsysctl, sizeof *e, "sysctls");
    if (!e) { free(f[0]); free(f[1]); return -1; }
    e->key = f[0];
    e->value = f[1];
    return 0;
}

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x80
#endif
#define SWVM_NS_FLAGS (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | \
                       CLONE_NEWCGROUP | CLONE_NEWTIME)

static int decode_oci_join(struct decoder *d, struct swvm_oci *o, const uint8_t *v, uint32_t n) {
    if (need(d, n, 8, "a namespace to join")) return -1;
    uint32_t type = get32(v);
    int32_t fd = (int32_t)get32(v + 4);
    /* one CLONE_NEW* bit, each type once */
    if (!type || (type & (type - 1)) || (type & ~(uint32_t)SWVM_NS_FLAGS) || fd < 0)
        return fail(d, "run settings: namespace type %#x fd %d to join", type, fd);
    for (uint32_t i = 0; i < o->njoin; i++)
        if (o->join[i].type == type) return fail(d, "run settings: namespace type %#x joined twice", type);
    if (o->njoin >= SWVM_OCI_MAX_JOIN) return fail(d, "run settings: more than %d namespaces to join", SWVM_OCI_MAX_JOIN);
    o->join[o->njoin++] = (struct swvm_oci_join){ type, fd };
    return 0;
}

/* eth0's settings in a VM: the interface, its routes, further addresses. */
static int decode_net_field(struct decoder *d, struct swvm_settings *s, uint16_t tag, const uint8_t *v, uint32_t n) {
    switch (tag) {
    case CFG_NET_IF:
        if (need(d, n, SWVM_NET_IF_LEN, "eth0's settings")) return -1;
        if (swvm_net_if_decode(v, n, &s->net_if) != 0) return fail(d, "run settings: eth0's prefix /%u", v[4]);
        s->net = 1;
        return 0;
    case CFG_NET_ROUTE: {
        if (need(d, n, SWVM_NET_ROUTE_LEN, "a route of eth0")) return -1;
        if (s->nnet_routes >= SWVM_MAX_NET_ROUTES) return fail(d, "run settings: more than %u routes of eth0", SWVM_MAX_NET_ROUTES);
        if (v[4] > 32) return fail(d, "run settings: a route of eth0 with prefix /%u", v[4]);
        struct swvm_net_route *r = &s->net_routes[s->nnet_routes++];
        memcpy(r->dst, v, 4);
        r->prefix = v[4];
        memcpy(r->gateway, v + 5, 4);
        return 0;
    }
    case CFG_NET_ADDR: {
        if (need(d, n, SWVM_NET_ADDR_LEN, "an address of eth0")) return -1;
        if (s->nnet_addrs >= SWVM_MAX_NET_ADDRS) return fail(d, "run settings: more than %u further addresses of eth0", SWVM_MAX_NET_ADDRS);
        if (v[4] > 32) return fail(d, "run settings: an address of eth0 with prefix /%u", v[4]);
        memcpy(s->net_addrs[s->nnet_addrs].addr, v, 4);
        s->net_addrs[s->nnet_addrs++].prefix = v[4];
        return 0;
    }
    default:
        return 0;
    }
}

static int decode_oci_field(struct decoder *d, struct swvm_oci *o, uint16_t tag, const uint8_t *v, uint32_t n) {
    switch (tag) {
    case CFG_OCI_ROOT:
        if (n < 5) return fail(d, "run settings: the OCI root is %u bytes", n);
        o->root_propagation = get32(v);
        o->enabled = 1;
        return set_string(d, &o->root, v + 4, n - 4, "the OCI root");
    case CFG_OCI_MOUNT: return decode_oci_mount(d, o, v, n);
    case CFG_OCI_DEVICE: return decode_oci_device(d, o, v, n);
    case CFG_OCI_SYSCTL: return decode_oci_sysctl(d, o, v, n);
    case CFG_OCI_CAPS:
        if (need(d, n, 40, "the capability sets")) return -1;
        o->has_caps = 1;
        o->bounding = get64(v); o->effective = get64(v + 8); o->inheritable = get64(v + 16);
        o->permitted = get64(v + 24); o->ambient = get64(v + 32);
        return 0;
    case CFG_OCI_UMASK:
        if (need(d, n, 4, "the umask")) return -1;
        if (get32(v) > 0777) return fail(d, "run settings: umask %o", get32(v));
        o->umask = get32(v);
        return 0;
    case CFG_OCI_JOIN_NS: return decode_oci_join(d, o, v, n);
    case CFG_OCI_NAMESPACES:
        if (need(d, n, 4, "the namespaces") ) return -1;
        if (get32(v) & ~(uint32_t)SWVM_NS_FLAGS) return fail(d, "run settings: namespace flags %#x", get32(v));
        o->new_namespaces = get32(v);
        return 0;
    case CFG_OCI_EXEC_FIFO:
        if (need(d, n, 4, "the exec FIFO") || (int32_t)get32(v) < 0) return fail(d, "run settings: the exec FIFO fd");
        o->exec_fifo = (int32_t)get32(v);
        return 0;
    case CFG_OCI_PRESERVE_FDS:
        if (need(d, n, 4, "the preserved fds") || get32(v) > 65536) return fail(d, "run settings: preserved fds");
        o->preserve_fds = get32(v);
        return 0;
    default:
        return 0;   /* a field from a newer swvm: skipped */
    }
}

/* Whether `p` is absolute with no empty, "." or ".." component. */
static int clean_path(const char *p) {
    if (p[0] != '/' || !p[1]) return 0;
    for (const char *c = p; *c; ) {
        const char *e = strchr(c + 1, '/');
        size_t len = e ? (size_t)(e - c - 1) : strlen(c + 1);
        if (len == 0 || (len == 1 && c[1] == '.') || (len == 2 && c[1] == '.' && c[2] == '.')) return 0;
        if (!e) break;
        c = e;
    }
    return 1;
}

/* CFG_OCI_UPPER: u8 kind, u32 mode, path, NUL, contents. */
static int decode_upper_entry(struct decoder *d, struct swvm_settings *s, const uint8_t *v, uint32_t n) {
    if (n < 7) return fail(d, "run settings: an upper-layer entry is %u bytes", n);
    if (v[0] != 'd' && v[0] != 'f' && v[0] != 'l') return fail(d, "run settings: an upper-layer entry of kind %u", v[0]);
    if (get32(v + 1) > 07777) return fail(d, "run settings: an upper-layer entry with mode %o", get32(v + 1));
    if (s->noci_upper >= SWVM_MAX_UPPER_ENTRIES) return fail(d, "run settings: more than %d upper-layer entries", SWVM_MAX_UPPER_ENTRIES);
    char *f[2];
    if (split_strings(d, v + 5, n - 5, f, 2, "an upper-layer entry") != 0) return -1;
    if (!clean_path(f[0])) { fail(d, "run settings: upper-layer entry path \"%s\"", f[0]); free(f[0]); free(f[1]); return -1; }
    struct swvm_upper_entry *e = append(d, (void **)&s->oci_upper, &s->noci_upper, sizeof *e, "an upper-layer entry");
    if (!e) { free(f[0]); free(f[1]); return -1; }
    *e = (struct swvm_upper_entry){ .kind = v[0], .mode = get32(v + 1), .path = f[0], .contents = f[1] };
    return 0;
}

/* A u8 flag field: 0 or 1. */
static int decode_flag(struct decoder *d, int *out, const uint8_t *v, uint32_t n, const char *what) {
    if (need(d, n, 1, what) || v[0] > 1) return fail(d, "run settings: %s", what);
    *out = v[0];
    return 0;
}

static int decode_field(struct decoder *d, struct swvm_settings *s, uint16_t tag, const uint8_t *v, uint32_t n) {
    switch (tag) {
    case CFG_ARG: return add_string(d, &s->args, &s->nargs, v, n, "arguments");
    case CFG_ENV: return add_string(d, &s->env, &s->nenv, v, n, "environment variables");
    case CFG_CWD: return set_string(d, &s->cwd, v, n, "the working directory");
    case CFG_UID: if (need(d, n, 4, "the uid") || usable_id(d, get32(v), "uid")) return -1; s->uid = get32(v); return 0;
    case CFG_GID: if (need(d, n, 4, "the gid") || usable_id(d, get32(v), "gid")) return -1; s->gid = get32(v); return 0;
    case CFG_GROUPS:
        if (n % 4 || n / 4 > SWVM_MAX_LIST) return fail(d, "run settings: the groups are %u bytes", n);
        for (uint32_t i = 0; i < n / 4; i++)
            if (usable_id(d, get32(v + 4 * i), "supplementary gid")) return -1;
        free(s->groups);
        s->groups = malloc(n ? n : 1);
        if (!s->groups) return fail(d, "run settings: out of memory");
        s->ngroups = n / 4;
        for (uint32_t i = 0; i < s->ngroups; i++) s->groups[i] = get32(v + 4 * i);
        return 0;
    case CFG_HOSTNAME: return set_string(d, &s->hostname, v, n, "the hostname");
    case CFG_RLIMIT: {
        if (need(d, n, 20, "an rlimit")) return -1;
        struct swvm_rlimit *r = append(d, (void **)&s->rlimits, &s->nrlimits, sizeof *r, "rlimits");
        if (!r) return -1;
        r->resource = get32(v);
        r->soft = get64(v + 4);
        r->hard = get64(v + 12);
        return 0;
    }
    case CFG_CAPS: if (need(d, n, 8, "the capabilities")) return -1; s->caps = get64(v); return 0;
    case CFG_SECCOMP:
        if (n % 8 || n / 8 > 0xffff || n == 0) return fail(d, "run settings: a seccomp program of %u bytes", n);
        return set_bytes(d, &s->seccomp, &s->seccomp_len, v, n);
    case CFG_NNP: if (need(d, n, 1, "no_new_privs")) return -1; s->nnp = v[0] != 0; return 0;
    case CFG_READONLY: if (need(d, n, 1, "the read-only flag")) return -1; s->read_only = v[0] != 0; return 0;
    case CFG_TERMINAL:
        if (need(d, n, 4, "the terminal size")) return -1;
        s->terminal = 1; s->rows = get16(v); s->cols = get16(v + 2);
        return 0;
    case CFG_INTERACTIVE: if (need(d, n, 1, "the interactive flag")) return -1; s->interactive = v[0] != 0; return 0;
    case CFG_MEMORY: if (need(d, n, 8, "the memory limit")) return -1; s->memory = get64(v); return 0;
    case CFG_PIDS: if (need(d, n, 8, "the pids limit")) return -1; s->pids = (int64_t)get64(v); return 0;
    case CFG_MASKED: return add_string(d, &s->masked, &s->nmasked, v, n, "masked paths");
    case CFG_READONLY_PATH: return add_string(d, &s->readonly_paths, &s->nreadonly_paths, v, n, "read-only paths");
    case CFG_TMPFS: return add_mount(d, &s->tmpfs, &s->ntmpfs, v, n, "a tmpfs", 0);
    case CFG_TIME: if (need(d, n, 8, "the host time")) return -1; s->host_time_ns = get64(v); return 0;
    case CFG_ROOTDEV: return set_string(d, &s->rootdev, v, n, "the root device");
    case CFG_PROBE: return set_string(d, &s->probe, v, n, "the probe");
    case CFG_ENTROPY: return set_bytes(d, &s->entropy, &s->entropy_len, v, n);
    case CFG_ROOTFS: return set_string(d, &s->rootfs, v, n, "the image root");
    case CFG_STATE_DIR: return set_string(d, &s->state_dir, v, n, "the state directory");
    case CFG_VOLUME: return add_mount(d, &s->volumes, &s->nvolumes, v, n, "a volume", 1);
    case CFG_HOST_NETWORK: if (need(d, n, 1, "the network flag")) return -1; s->host_network = v[0] != 0; return 0;
    case CFG_USERNS: if (need(d, n, 1, "the user namespace flag")) return -1; s->userns = v[0] != 0; return 0;
    case CFG_INIT: if (need(d, n, 1, "the init flag")) return -1; s->init = v[0] != 0; return 0;
    case CFG_CGROUP_MOUNT: {
        if (add_mount(d, &s->cgroup_mounts, &s->ncgroup_mounts, v, n, "a cgroup mount", 0)) return -1;
        struct swvm_mount *m = &s->cgroup_mounts[s->ncgroup_mounts - 1];
        /* name, NUL, source */
        m->source = m->options;
        m->options = NULL;
        m->read_only = 1;
        if (m->kind != CGROUP_MOUNT_V1 && m->kind != CGROUP_MOUNT_BIND) return fail(d, "run settings: cgroup mount kind %d", m->kind);
        return 0;
    }
    case CFG_NET_IF: case CFG_NET_ROUTE: case CFG_NET_ADDR: return decode_net_field(d, s, tag, v, n);
    case CFG_ETC_HOSTS: return set_string(d, &s->etc_hosts, v, n, "/etc/hosts");
    case CFG_WARM_FILE: return add_string(d, &s->warm_files, &s->nwarm_files, v, n, "files to warm");
    case CFG_RESOLV_CONF: return set_string(d, &s->resolv_conf, v, n, "/etc/resolv.conf");
    case CFG_VM_FILE: return add_mount(d, &s->vm_files, &s->nvm_files, v, n, "a copied file", 1);
    case CFG_OCI_DISK_ROOT: return decode_flag(d, &s->oci_disk_root, v, n, "the disk root flag");
    case CFG_OCI_UPPER: return decode_upper_entry(d, s, v, n);
    case CFG_EXEC_ZYGOTE: return decode_flag(d, &s->exec_zygote, v, n, "the exec zygote flag");
    default:
        return decode_oci_field(d, &s->oci, tag, v, n);
    }
}

int swvm_config_tag_per_run(uint16_t tag) {
    switch (tag) {
    case CFG_ARG: case CFG_ENV: case CFG_CWD: case CFG_HOSTNAME: case CFG_RLIMIT: case CFG_MEMORY: case CFG_PIDS:
    case CFG_TIME: case CFG_ENTROPY: case CFG_NET_IF: case CFG_ETC_HOSTS: case CFG_RESOLV_CONF:
    case CFG_TERMINAL: case CFG_INTERACTIVE: case CFG_VOLUME: case CFG_NET_ADDR: case CFG_NET_ROUTE:
    case CFG_EXEC_ZYGOTE:
        return 1;
    default:
        return 0;
    }
}

int swvm_config_tag_per_run_in(uint16_t tag, uint8_t template_flags) {
    if (!(template_flags & SWVM_TEMPLATE_OCI_ROOT)) return swvm_config_tag_per_run(tag);
    switch (tag) {
    case CFG_TEMPLATE: case CFG_OCI_DISK_ROOT: case CFG_OCI_UPPER: case CFG_WARM_FILE: case CFG_ROOTDEV:
        return 0;
    default:
        return 1;
    }
}

/* Which fields a list may hold: any, or only the per-run ones (MSG_RUN). */
enum field_set { ANY_FIELD, PER_RUN_FIELDS };

#define TEMPLATE_FLAGS (SWVM_TEMPLATE_SHARED_NET | SWVM_TEMPLATE_PLAIN | SWVM_TEMPLATE_OCI_ROOT)

/* Decodes a field list into `s` as it is. MSG_RUN's (PER_RUN_FIELDS) may
 * hold only the run's fields of the template whose flags `s` has. */
static void decode_list(struct decoder *d, const uint8_t *p, size_t len, struct swvm_settings *s, enum field_set set) {
    size_t off = 0;
    while (!d->failed && off < len) {
        if (len - off < 6) { fail(d, "run settings: a truncated field header at byte %zu", off); break; }
        uint16_t tag = get16(p + off);
        uint32_t n = get32(p + off + 2);
        off += 6;
        if (n > len - off) { fail(d, "run settings: field %u claims %u bytes, %zu remain", tag, n, len - off); break; }
        if (set == PER_RUN_FIELDS && !swvm_config_tag_per_run_in(tag, s->template_flags)) {
            fail(d, "run settings: field %u is fixed by the template, not a per-run one", tag);
            break;
        }
        if (tag == CFG_TEMPLATE) {
            if (need(d, n, 1, "the template flags")) break;
            /* One template field: a second one would silently win. */
            if (s->template_mode) { fail(d, "run settings: a second template field at byte %zu", off - 6); break; }
            if (p[off] & ~TEMPLATE_FLAGS) { fail(d, "run settings: unknown template flags 0x%x", p[off]); break; }
            if ((p[off] & SWVM_TEMPLATE_OCI_ROOT) && p[off] != SWVM_TEMPLATE_OCI_ROOT) { fail(d, "run settings: an OCI root template with other template flags 0x%x", p[off]); break; }
            s->template_mode = 1;
            s->template_flags = p[off];
        } else {
            decode_field(d, s, tag, p + off, n);
        }
        off += n;
    }
}

/* The run's fields in a well-formed list, for a template with `flags`
 * (known only once the whole list is read: CFG_TEMPLATE may come last). */
static uint32_t count_per_run(const uint8_t *p, size_t len, uint8_t flags) {
    uint32_t count = 0;
    for (size_t off = 0; off + 6 <= len; off += 6 + get32(p + off + 2))
        count += (uint32_t)swvm_config_tag_per_run_in(get16(p + off), flags);
    return count;
}

static void decode_fields(struct decoder *d, const uint8_t *p, size_t len, struct swvm_settings *s) {
    memset(s, 0, sizeof *s);
    s->pids = -1;
    s->oci.umask = 022;
    s->oci.exec_fifo = -1;
    decode_list(d, p, len, s, ANY_FIELD);
    /* A template's settings are what every later run shares: no run's own. */
    uint32_t per_run = d->failed || !s->template_mode ? 0 : count_per_run(p, len, s->template_flags);
    if (per_run) fail(d, "run settings: a template's settings hold %u per-run fields", per_run);
}

int swvm_fields_decode(const uint8_t *p, size_t len, struct swvm_settings *s, char *error, size_t error_len) {
    struct decoder d = { error, error_len, 0 };
    decode_fields(&d, p, len, s);
    if (d.failed) { swvm_settings_free(s); return -1; }
    return 0;
}

/* What MSG_CONFIG requires, and its defaults; a template's settings get
 * their command with MSG_RUN. */
static void complete_settings(struct decoder *d, struct swvm_settings *s) {
    if (!d->failed && s->nargs == 0 && !s->template_mode) fail(d, "no command to run");
    if (d->failed) return;
    static const char *defaults[] = { "/", "swvm", "/dev/vda" };
    char **fields[] = { &s->cwd, &s->hostname, &s->rootdev };
    for (int i = 0; i < 3; i++)
        if (!*fields[i] && !(*fields[i] = strdup(defaults[i]))) fail(d, "run settings: out of memory");
    /* The lists are NULL-terminated (execve takes args and env so); a
     * template's settings have no arguments yet: an empty list. */
    if (!s->env && !(s->env = calloc(1, sizeof(char *)))) fail(d, "run settings: out of memory");
    if (!s->args && !(s->args = calloc(1, sizeof(char *)))) fail(d, "run settings: out of memory");
}

int swvm_settings_decode(const uint8_t *p, size_t len, struct swvm_settings *s, char *error, size_t error_len) {
    struct decoder d = { error, error_len, 0 };
    decode_fields(&d, p, len, s);
    complete_settings(&d, s);
    if (d.failed) { swvm_settings_free(s); return -1; }
    return 0;
}

int swvm_run_fields_apply(const uint8_t *p, size_t len, struct swvm_settings *s, char *error, size_t error_len) {
    struct decoder d = { error, error_len, 0 };
    if (!s->template_mode) return fail(&d, "run settings: per-run fields for settings that are not a template's");
    decode_list(&d, p, len, s, PER_RUN_FIELDS);
    s->template_mode = 0;   /* now whole: MSG_CONFIG's checks apply */
    complete_settings(&d, s);
    return d.failed ? -1 : 0;
}

static void free_list(char **list, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) free(list[i]);
    free(list);
}

static void free_mounts(struct swvm_mount *m, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) { free(m[i].source); free(m[i].destination); free(m[i].options); }
    free(m);
}

static void free_oci(struct swvm_oci *o) {
    free(o->root);
    for (uint32_t i = 0; i < o->nmounts; i++) {
        struct swvm_oci_mount *m = &o->mounts[i];
        free(m->type); free(m->source); free(m->destination); free(m->data);
    }
    free(o->mounts);
    for (uint32_t i = 0; i < o->ndevices; i++) free(o->devices[i].path);
    free(o->devices);
    for (uint32_t i = 0; i < o->nsysctl; i++) { free(o->sysctl[i].key); free(o->sysctl[i].value); }
    free(o->sysctl);
}

void swvm_settings_free(struct swvm_settings *s) {
    free_list(s->args, s->nargs);
    free_list(s->env, s->nenv);
    free_list(s->masked, s->nmasked);
    free_list(s->readonly_paths, s->nreadonly_paths);
    free_list(s->warm_files, s->nwarm_files);
    free(s->cwd); free(s->hostname); free(s->rootdev); free(s->probe);
    free(s->rootfs); free(s->state_dir);
    free(s->groups); free(s->rlimits); free(s->seccomp); free(s->entropy);
    free(s->etc_hosts); free(s->resolv_conf);
    free_mounts(s->tmpfs, s->ntmpfs);
    free_mounts(s->volumes, s->nvolumes);
    free_mounts(s->cgroup_mounts, s->ncgroup_mounts);
    free_mounts(s->vm_files, s->nvm_files);
    for (uint32_t i = 0; i < s->noci_upper; i++) { free(s->oci_upper[i].path); free(s->oci_upper[i].contents); }
    free(s->oci_upper);
    free_oci(&s->oci);
    memset(s, 0, sizeof *s);
}

static int read_full(int fd, void *buf, size_t len) {
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0) { if (errno == EINTR) continue; return -1; }
        if (n == 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t len) {
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) { if (errno == EINTR) continue; return -1; }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void swvm_frame_header_encode(uint8_t header[SWVM_FRAME_HEADER], uint32_t type, uint32_t length) {
    put32(header, type);
    put32(header + 4, length);
}

int swvm_frame_header_decode(const uint8_t header[SWVM_FRAME_HEADER], uint32_t *type, uint32_t *length, uint32_t max) {
    *type = get32(header);
    *length = get32(header + 4);
    return *length > max ? -1 : 0;
}

int swvm_frame_read(int fd, uint32_t *type, uint32_t *length, uint8_t *buf, size_t cap, uint32_t max) {
    uint8_t hdr[SWVM_FRAME_HEADER];
    if (read_full(fd, hdr, sizeof hdr) != 0) return -1;
    if (swvm_frame_header_decode(hdr, type, length, max) != 0) return -1;
    size_t keep = *length < cap ? *length : cap;
    if (keep && read_full(fd, buf, keep) != 0) return -1;
    for (size_t left = *length - keep; left > 0;) {
        uint8_t skip[4096];
        size_t chunk = left < sizeof skip ? left : sizeof skip;
        if (read_full(fd, skip, chunk) != 0) return -1;
        left -= chunk;
    }
    return 0;
}

uint8_t *swvm_frame_read_alloc(int fd, uint32_t *type, uint32_t *length, uint32_t max) {
    uint8_t hdr[SWVM_FRAME_HEADER];
    uint32_t n;
    *length = 0;
    if (read_full(fd, hdr, sizeof hdr) != 0) return NULL;
    if (swvm_frame_header_decode(hdr, type, &n, max) != 0) {
        *length = n;
        return NULL;
    }
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) return NULL;
    if (n && read_full(fd, buf, n) != 0) { free(buf); return NULL; }
    *length = n;
    return buf;
}

int swvm_frame_write(int fd, uint32_t type, const void *payload, uint32_t len) {
    uint8_t hdr[SWVM_FRAME_HEADER];
    swvm_frame_header_encode(hdr, type, len);
    if (write_full(fd, hdr, sizeof hdr) != 0) return -1;
    return len && payload ? write_full(fd, payload, len) : 0;
}

int swvm_field_write(int fd, uint16_t tag, const void *value, uint32_t len) {
    uint8_t hdr[6];
    hdr[0] = (uint8_t)tag;
    hdr[1] = (uint8_t)(tag >> 8);
    put32(hdr + 2, len);
    if (write_full(fd, hdr, 6) != 0) return -1;
    return len ? write_full(fd, value, len) : 0;
}

int swvm_error_exit_status(uint32_t code) {
    switch (code) {
    case SWVM_ERR_COMMAND_NOT_FOUND: return 127;
    case SWVM_ERR_COMMAND_NOT_EXECUTABLE: return 126;
    default: return 125;
    }
}

int swvm_error_write(int fd, uint32_t code, int32_t err, const char *message, uint32_t len) {
    uint8_t head[8];
    put32(head, code);
    put32(head + 4, (uint32_t)err);
    if (swvm_frame_write(fd, MSG_ERROR, NULL, 8 + len) != 0 || write_full(fd, head, 8) != 0) return -1;
    return len ? write_full(fd, message, len) : 0;
}

/* ------------------------------------------------------------- payloads */

void swvm_ready_encode(const struct swvm_ready *m, uint8_t out[SWVM_READY_LEN]) { put32(out, m->version); }

int swvm_ready_decode(const uint8_t *p, size_t len, struct swvm_ready *m) {
    memset(m, 0, sizeof *m);
    if (len == 0) { m->version = 1; return 0; }
    if (len != SWVM_READY_LEN) return -1;
    m->version = get32(p);
    return 0;
}

void swvm_signal_encode(const struct swvm_signal *m, uint8_t out[SWVM_SIGNAL_LEN]) { put32(out, m->signal); }

int swvm_signal_decode(const uint8_t *p, size_t len, struct swvm_signal *m) {
    memset(m, 0, sizeof *m);
    if (len < SWVM_SIGNAL_LEN) return -1;
    m->signal = get32(p);
    return 0;
}

void swvm_resize_encode(const struct swvm_resize *m, uint8_t out[SWVM_RESIZE_LEN]) {
    put16(out, m->rows);
    put16(out + 2, m->cols);
}

int swvm_resize_decode(const uint8_t *p, size_t len, struct swvm_resize *m) {
    memset(m, 0, sizeof *m);
    if (len < SWVM_RESIZE_LEN) return -1;
    m->rows = get16(p);
    m->cols = get16(p + 2);
    return 0;
}

void swvm_started_encode(const struct swvm_started *m, uint8_t out[SWVM_STARTED_LEN]) {
    put32(out, m->pid);
    put32(out + 4, m->namespaces);
}

int swvm_started_decode(const uint8_t *p, size_t len, struct swvm_started *m) {
    memset(m, 0, sizeof *m);
    if (len < SWVM_STARTED_MIN_LEN) return -1;
    m->pid = get32(p);
    if (len >= SWVM_STARTED_LEN) m->namespaces = get32(p + 4);
    return 0;
}

void swvm_exit_encode(const struct swvm_exit *m, uint8_t out[SWVM_EXIT_LEN]) { put32(out, (uint32_t)m->status); }

int swvm_exit_decode(const uint8_t *p, size_t len, struct swvm_exit *m) {
    memset(m, 0, sizeof *m);
    if (len < SWVM_EXIT_LEN) return -1;
    m->status = (int32_t)get32(p);
    return 0;
}

void swvm_net_if_encode(const struct swvm_net_if *m, uint8_t out[SWVM_NET_IF_LEN]) {
    memcpy(out, m->addr, 4);
    out[4] = m->prefix;
    memcpy(out + 5, m->gateway, 4);
    put16(out + 9, m->mtu);
    memcpy(out + 11, m->mac, 6);
}

int swvm_net_if_decode(const uint8_t *p, size_t len, struct swvm_net_if *m) {
    memset(m, 0, sizeof *m);
    if (len < SWVM_NET_IF_LEN || p[4] > 32) return -1;
    memcpy(m->addr, p, 4);
    m->prefix = p[4];
    memcpy(m->gateway, p + 5, 4);
    m->mtu = get16(p + 9);
    memcpy(m->mac, p + 11, 6);
    return 0;
}
