/*
 * What the files of the confinement share inside CConfinement (not part
 * of its public header): the child's state, its one way to fail, and the
 * paths resolved inside the root. All of it runs in the child between
 * clone and execve: async-signal-safe (swvm_confine.h).
 */
#ifndef SWVM_CONFINE_INTERNAL_H
#define SWVM_CONFINE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "swvm_confine.h"

#define CF_HIDDEN __attribute__((visibility("hidden")))

struct child {
    const struct swvm_settings *s;
    const struct swvm_child_io *io;
    int root;       /* O_PATH of the new root, while it is built */
    int pty_slave;  /* with a terminal */
    int created;    /* OCI mode: MSG_CREATED sent and the error pipe closed; failures go to stderr */
    int seccomp_loaded;   /* template mode: the filter was loaded before the template point */
    int prestaged;        /* an exec zygote's child: signals reset, rlimits, bounding set, no_new_privs and seccomp done (cf_exec_prestage) */
    /* OCI mode, swvm_oci_hooks.h: the init runs createContainer and
     * startContainer hooks; their states, counts and list (oci_hooks.c). */
    int hooks;
    const char *hook_state[2];
    uint32_t hook_count[2];
    char *hook_list, *hook_end;
};

/* Default signal dispositions and an empty mask, before an execve. */
CF_HIDDEN void cf_reset_signals(void);

/* Reports a MSG_ERROR ("STEP PATH: reason" and errno, swvm_error_write)
 * and ends the child with the code's exit status. */
CF_HIDDEN __attribute__((noreturn, format(printf, 3, 4)))
void cf_fail(const struct child *c, uint32_t code, const char *fmt, ...);
CF_HIDDEN __attribute__((noreturn, format(printf, 4, 5)))
void cf_fail_err(const struct child *c, uint32_t code, int err, const char *fmt, ...);
CF_HIDDEN __attribute__((noreturn))
void cf_fail_errno(const struct child *c, const char *step, const char *path);
/* Formats into `buf`; a text too long for it is a failed step. */
CF_HIDDEN __attribute__((format(printf, 4, 5)))
void cf_text_of(const struct child *c, char *buf, size_t size, const char *fmt, ...);
CF_HIDDEN void cf_write_all(int fd, const char *p, size_t len);

/* `path` resolved inside c->root (symlinks and `..` stay inside). */
CF_HIDDEN int cf_open_in_root(const struct child *c, const char *path, int flags);
/* As cf_open_in_root (O_PATH), creating it and its parents if missing. */
CF_HIDDEN int cf_ensure_in_root(const struct child *c, const char *path, int directory);
struct cf_target { int fd; char proc[40]; };
CF_HIDDEN struct cf_target cf_target_of(int fd);
CF_HIDDEN void cf_mount_in_root(const struct child *c, const char *step, const char *src, const char *path, const char *type,
                                unsigned long flags, const char *data, int directory);
CF_HIDDEN void cf_remount_in_root(const struct child *c, const char *step, const char *path, unsigned long flags, const char *data);
/* The MS_* flags a mount at `path` (outside or inside the root: an fd's
 * /proc link) has now, which a bind remount must keep where locked. */
CF_HIDDEN unsigned long cf_mount_flags_of(const char *path);

/* Steps both roots share. */
CF_HIDDEN void cf_mount_cgroups(const struct child *c, const char *dest, int read_only);
CF_HIDDEN void cf_make_dev_links(const struct child *c);
CF_HIDDEN void cf_open_terminal(struct child *c, int console);
CF_HIDDEN void cf_make_workdir(const struct child *c);
CF_HIDDEN void cf_mask_and_protect(const struct child *c);
CF_HIDDEN void cf_report_confined(const struct child *c);
CF_HIDDEN void cf_enter_root(const struct child *c, const char *root);
CF_HIDDEN void cf_interface_up(const struct child *c, const char *name);

/* Namespaces (namespaces.c). The child: OCI mode joins config.json's
 * namespaces given by path and creates the rest; an image run unshares
 * its cgroup namespace. */
CF_HIDDEN void cf_enter_namespaces(const struct child *c);
/* How cf_clone_with clones: `flags`; the calling thread in config.json's
 * joined per-thread namespaces for the clone (`joins`, OCI mode) or in
 * the pid namespace of the process `pidfd` (`enter_pid`, exec); then
 * `child` runs in the child, which first closes `close_in_child`. The pid,
 * or -1 with errno. */
struct cf_clone {
    unsigned long flags;
    int joins;
    int pidfd;              /* exec: the container's init */
    int enter_pid;          /* exec: enter its pid namespace around clone */
    unsigned int namespaces; /* exec: what the child joins through pidfd */
    void (*child)(const struct swvm_settings *, const struct swvm_child_io *, const struct cf_clone *);
};
CF_HIDDEN pid_t cf_clone_with(const struct swvm_settings *s, const struct cf_clone *how, const int *close_in_child, int nclose,
                              const struct swvm_child_io *io);
CF_HIDDEN pid_t cf_clone_in_namespaces(const struct swvm_settings *s, unsigned long flags, const struct swvm_child_io *io,
                                       const int *close_in_child, int nclose);
/* Waits for the parent's go on the sync pipe; ends the child without it.
 * The go byte: SWVM_GO_WITH_HOOKS keeps the pipe open for the hooks. */
CF_HIDDEN int cf_wait_for_parent(const struct swvm_child_io *io);

/* OCI mode (oci_hooks.c): createContainer's hooks, once the mounts are
 * made (asking swvm for the hooks first); startContainer's, once `start`
 * released the init. Nothing unless c->hooks. */
CF_HIDDEN void cf_oci_create_hooks(struct child *c);
CF_HIDDEN void cf_oci_start_hooks(struct child *c);

/* OCI mode (oci_root.c): config.json's root, mounts, devices and sysctls,
 * entered by pivot_root; returns with the root entered. */
CF_HIDDEN void cf_build_oci_root(struct child *c);

/* The process itself, the same for a container's init and for a process
 * exec'd into a running container: rlimits, stdio, the working directory,
 * capabilities, user, no_new_privs, seccomp, (OCI: umask, the exec FIFO)
 * and execve. Never returns. */
CF_HIDDEN __attribute__((noreturn)) void cf_process_stage(struct child *c);
/* The steps of cf_process_stage every exec into one workload shares
 * (rlimits, bounding set, no_new_privs, seccomp), done once by an exec
 * zygote, whose children then skip them (c->prestaged). */
CF_HIDDEN void cf_exec_prestage(struct child *c);

#endif
