#define _GNU_SOURCE
#include "CSeccomp.h"
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

uint32_t cseccomp_action(int kind, uint32_t value) {
    switch (kind) {
    case CSECCOMP_ALLOW: return SCMP_ACT_ALLOW;
    case CSECCOMP_ERRNO: return SCMP_ACT_ERRNO(value);
    case CSECCOMP_KILL_THREAD: return SCMP_ACT_KILL_THREAD;
    case CSECCOMP_KILL_PROCESS: return SCMP_ACT_KILL_PROCESS;
    case CSECCOMP_TRAP: return SCMP_ACT_TRAP;
    case CSECCOMP_LOG: return SCMP_ACT_LOG;
    case CSECCOMP_TRACE: return SCMP_ACT_TRACE(value);
    default: return SCMP_ACT_KILL_PROCESS;
    }
}

void *cseccomp_new(uint32_t default_action) {
    scmp_filter_ctx ctx = seccomp_init(default_action);
    if (!ctx) return NULL;
    // No NO_NEW_PRIVS from libseccomp: the runtime sets it itself, when asked.
    seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
    // A binary tree of syscall numbers instead of a linear list: fewer BPF
    // instructions per system call, and far less work for the kernel's
    // seccomp cache when the filter is attached (which matters inside a VM
    // whose kernel is emulated).
    seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    return ctx;
}

int cseccomp_add_compat_arches(void *ctx) {
    int r = seccomp_arch_add(ctx, SCMP_ARCH_X86);
    if (r != 0 && r != -EEXIST) return r;
    r = seccomp_arch_add(ctx, SCMP_ARCH_X32);
    if (r != 0 && r != -EEXIST) return r;
    return 0;
}

int cseccomp_add_arch(void *ctx, const char *name) {
    uint32_t arch = seccomp_arch_resolve_name(name);
    if (arch == 0) return -EDOM;
    int r = seccomp_arch_add(ctx, arch);
    return r == -EEXIST ? 0 : r;
}

static enum scmp_compare op_of(int op) {
    switch (op) {
    case CSECCOMP_NE: return SCMP_CMP_NE;
    case CSECCOMP_LT: return SCMP_CMP_LT;
    case CSECCOMP_LE: return SCMP_CMP_LE;
    case CSECCOMP_EQ: return SCMP_CMP_EQ;
    case CSECCOMP_GE: return SCMP_CMP_GE;
    case CSECCOMP_GT: return SCMP_CMP_GT;
    case CSECCOMP_MASKED_EQ: return SCMP_CMP_MASKED_EQ;
    default: return _SCMP_CMP_MIN;
    }
}

int cseccomp_add_rule(void *ctx, uint32_t action, const char *name, const cseccomp_arg *args, unsigned int nargs) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) return -EDOM;
    struct scmp_arg_cmp cmps[6];
    if (nargs > 6) return -EINVAL;
    for (unsigned int i = 0; i < nargs; i++) {
        cmps[i].arg = args[i].index;
        cmps[i].op = op_of(args[i].op);
        cmps[i].datum_a = args[i].value;
        cmps[i].datum_b = args[i].value_two;
    }
    // _exact would refuse rules libseccomp must rewrite for the compat ABIs.
    return seccomp_rule_add_array(ctx, action, nr, nargs, cmps);
}

int cseccomp_export(void *ctx, uint8_t **out, size_t *len) {
    int fd = memfd_create("swvm-seccomp", MFD_CLOEXEC);
    if (fd < 0) return -errno;
    int r = seccomp_export_bpf(ctx, fd);
    if (r != 0) { close(fd); return r; }
    off_t size = lseek(fd, 0, SEEK_END);
    if (size <= 0) { close(fd); return -EINVAL; }
    uint8_t *buf = malloc((size_t)size);
    if (!buf) { close(fd); return -ENOMEM; }
    ssize_t got = pread(fd, buf, (size_t)size, 0);
    close(fd);
    if (got != size) { free(buf); return -EIO; }
    *out = buf;
    *len = (size_t)size;
    return 0;
}

void cseccomp_free(void *p) { free(p); }
void cseccomp_release(void *ctx) { seccomp_release(ctx); }
int cseccomp_resolve(const char *name) { return seccomp_syscall_resolve_name(name); }

const char *cseccomp_version(void) {
    static char buf[32];
    const struct scmp_version *v = seccomp_version();
    snprintf(buf, sizeof buf, "%u.%u.%u", v->major, v->minor, v->micro);
    return buf;
}
