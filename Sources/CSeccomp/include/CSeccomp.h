// libseccomp behind a small C API: its action and architecture constants
// are function-like macros Swift cannot import.
#ifndef SWVM_CSECCOMP_H
#define SWVM_CSECCOMP_H

#include <stdint.h>
#include <stddef.h>

enum cseccomp_action_kind {
    CSECCOMP_ALLOW = 0, CSECCOMP_ERRNO = 1, CSECCOMP_KILL_THREAD = 2, CSECCOMP_KILL_PROCESS = 3,
    CSECCOMP_TRAP = 4, CSECCOMP_LOG = 5, CSECCOMP_TRACE = 6,
};

enum cseccomp_op {
    CSECCOMP_NE = 1, CSECCOMP_LT = 2, CSECCOMP_LE = 3, CSECCOMP_EQ = 4, CSECCOMP_GE = 5,
    CSECCOMP_GT = 6, CSECCOMP_MASKED_EQ = 7,
};

typedef struct {
    uint32_t index;
    uint64_t value;
    uint64_t value_two;
    int op;
} cseccomp_arg;

uint32_t cseccomp_action(int kind, uint32_t value);
/// A new filter context; NULL on failure.
void *cseccomp_new(uint32_t default_action);
/// Adds the 32-bit x86 and x32 ABIs beside the native one (as Docker does).
int cseccomp_add_compat_arches(void *ctx);
/// Adds an ABI by libseccomp's name ("x86", "aarch64"); -EDOM when
/// libseccomp does not know it. Adding one already there is not an error.
int cseccomp_add_arch(void *ctx, const char *name);
/// 0 on success, -EDOM when the name is unknown on this architecture,
/// another negative errno on failure.
int cseccomp_add_rule(void *ctx, uint32_t action, const char *name, const cseccomp_arg *args, unsigned int nargs);
/// The compiled BPF program (malloc'ed; free with cseccomp_free).
int cseccomp_export(void *ctx, uint8_t **out, size_t *len);
void cseccomp_free(void *p);
void cseccomp_release(void *ctx);
/// libseccomp's version as "major.minor.micro".
const char *cseccomp_version(void);
/// The native syscall number for a name, or a negative number if unknown.
int cseccomp_resolve(const char *name);

#endif
