/*
 * Turning decoded run settings into the workload's process, written once
 * for both isolation levels (in the spirit of crun's libcrun): swvm's
 * container child and guest-init's workload child run the same steps.
 *
 * The child waits for the parent (cgroup, id maps), builds the root (the
 * image under an overlay; /proc, /dev, devpts, shm, mqueue, /sys, the
 * cgroup mount, tmpfs, volumes; masked and read-only paths), switches into
 * it, and then, in crun's order: hostname, loopback, rlimits, the working
 * directory (entered before dropping privileges, as runc does), the
 * capability bounding set, user and groups, capabilities, no_new_privs,
 * seccomp, execve. Every step fails closed: a failure ends the child with
 * one MSG_ERROR frame ("step path" and the errno, swvm_error_write) on the
 * error pipe and exit 125, 126 or 127. Before
 * that pipe closes at execve, a MSG_CONFINED frame on it names the masked
 * and read-only paths applied (swvm_run_settings.h).
 *
 * OCI mode (settings->oci.enabled, a run of a runtime bundle as runc's):
 * the root is config.json's, bound onto itself and used as it is; its
 * mounts are made in order inside it, then the default device nodes and
 * linux.devices (unless /dev is bound from outside), the terminal,
 * linux.sysctl, masked and read-only paths, pivot_root; the process stage
 * is the same, with the five capability sets, the umask, no parent-death
 * signal and the stdio as given. Last, after seccomp, the child sends
 * MSG_CREATED, closes the error pipe, and blocks opening the exec FIFO for
 * writing (a later failure goes to its stderr); `swvm start` releases it.
 * Files: confine.c (both roots' shared steps, the process stage),
 * oci_root.c (OCI mode's root), namespaces.c (new and joined namespaces),
 * exec.c (a process exec'd into a running container).
 */
#ifndef SWVM_CONFINE_H
#define SWVM_CONFINE_H

#include <sys/types.h>
#include "swvm_run_settings.h"

struct swvm_child_io {
    int sync_fd;    /* the parent writes one byte once it has placed the child */
    int error_fd;   /* close-on-exec: MSG_CONFINED, then MSG_ERROR on failure or EOF at a successful execve */
    int socket_fd;  /* unix socket to the parent: the terminal's master goes out, the id-mapped image root comes in; -1 */
    int in, out, err; /* put on 0, 1, 2 when >= 0 (otherwise inherited; stdin is /dev/null unless interactive) */
    /* The guest: the root guest-init assembled, moved over / (an initramfs
     * cannot be pivoted away). NULL: the container's root is built from
     * settings->rootfs under settings->state_dir and entered by pivot_root. */
    const char *prepared_root;
};

/* The device nodes bound from the outer /dev into the workload's: the
 * i-th, or NULL past the last. */
const char *swvm_bound_device(unsigned int i);

/* Runs in the workload's new namespaces until execve; never returns.
 * Async-signal-safe throughout (no malloc, stdio, strerror or locks), as
 * the container child is a clone of a multithreaded process. */
void swvm_confine_exec(const struct swvm_settings *s, const struct swvm_child_io *io) __attribute__((noreturn));

/* guest-init's template mode (settings->template_mode): as
 * swvm_confine_exec, but it stops at the template point, once the root's
 * fixed mounts are made (MSG_CONFINED, then MSG_TEMPLATE_POINT on
 * error_fd), reads MSG_RUN's frame from `run_fd` and adds its per-run
 * fields to `s` before the working directory, the /etc files, the host
 * name and the process stage. Never returns. */
void swvm_confine_template_exec(struct swvm_settings *s, const struct swvm_child_io *io, int run_fd) __attribute__((noreturn));

/* 1 if the classic BPF seccomp program `filter` (`len` bytes) surely
 * allows, whatever their arguments, every x86_64 system call a template's
 * workload child makes after the template point (with `terminal`, its
 * controlling terminal; with `init`, --init's PID 1): then the template
 * may hold the filter loaded (seccomp_preload.c). 0 otherwise. */
int swvm_seccomp_allows_template_setup(const uint8_t *filter, uint32_t len, int terminal, int init);

/* An exec zygote (guest-init, issue 19): a process that has joined a
 * running workload's namespaces and done once the steps every exec into
 * it shares (swvm_exec_prestage), and spawns each exec from there
 * (swvm_zygote_spawn) with these clone flags, as posix_spawn does: the
 * child shares the zygote's memory on a stack of its own until its
 * execve (no page tables copied, no copy-on-write faults, nothing to
 * unmap at the execve: each is many emulated instructions), the zygote
 * waiting meanwhile; the child is the zygote's parent's (guest-init
 * reaps it as any exec). */
#define SWVM_ZYGOTE_CLONE_FLAGS (0x00000100u /* CLONE_VM */ | 0x00004000u /* CLONE_VFORK */ | \
                                 0x00008000u /* CLONE_PARENT */ | 17u /* SIGCHLD */)
/* 1 if `filter` surely allows an exec zygote's own system calls, its
 * clone above, and every step of its children (the template steps'
 * calls, setsid, and a terminal's): the filter may then be loaded in the
 * zygote. 0 otherwise (each exec then loads it itself, as before). */
int swvm_seccomp_allows_exec_zygote(const uint8_t *filter, uint32_t len);
/* In the zygote (single-threaded, root): joins `namespaces` of the
 * workload's init `pidfd` (its pid namespace for the children only),
 * then rlimits, bounding set, no_new_privs and seccomp of `s` (the
 * workload's settings). A failure ends the process (status 125 or the
 * step's). */
void swvm_exec_prestage(const struct swvm_settings *s, int pidfd, unsigned int namespaces);
/* In the zygote: spawns an exec with settings `s` (the workload's with
 * the exec's process) on `stack` (`stack_size` bytes, the zygote's, free
 * again when this returns). The child first joins the workload's cgroup
 * by writing "0" to `cgroup_procs` (that cgroup.procs, opened by
 * guest-init: its permission checks are the opener's), then does only the
 * per-exec steps (session, terminal, stdio, working directory, user,
 * capabilities, execve); it writes nothing of the zygote's memory but
 * `*ns_pid`, its pid in the workload's pid namespace, and errno (the
 * zygote's, read only when clone failed). Returns once the
 * child has exec'd or failed (io->error_fd says which): its pid in the
 * zygote's (= guest-init's) pid namespace, or -1 with errno. */
pid_t swvm_zygote_spawn(const struct swvm_settings *s, const struct swvm_child_io *io, int cgroup_procs, void *stack,
                        size_t stack_size, const int *close_in_child, int nclose, uint32_t *ns_pid);

/* The container: clone(2) with `flags` (CLONE_NEW*) and run
 * swvm_confine_exec in the child, which first closes `close_in_child`
 * (the parent's ends). No Swift runs in the child. Returns the child's pid,
 * or -1 with errno. */
pid_t swvm_container_clone(const struct swvm_settings *s, unsigned long flags, const struct swvm_child_io *io,
                           const int *close_in_child, int nclose);

/* OCI mode (settings->oci.enabled): `flags` is ignored; the namespaces
 * are config.json's (swvm_run_settings.h, CFG_OCI_*): new ones, and ones
 * joined through fds the parent opened and checked. The per-thread ones
 * (network, UTS, IPC, cgroup, pid) are entered by the calling thread
 * around the clone and left after it (a pid namespace applies only to
 * children); the child joins the user namespace, then the mount one.
 * The child reports MSG_CREATED once it waits on the exec FIFO. */

/* A new process in the running container whose init is `pidfd` (swvm
 * exec): the child waits on the sync pipe (the parent places it in the
 * container's cgroup), joins `namespaces` (CLONE_NEW* flags: those that
 * differ from the caller's) through the pidfd, the pid namespace by the
 * calling thread around the clone, and then runs the same process stage
 * as the container's init (rlimits, terminal, user, capabilities,
 * seccomp, execve). The pid, or -1 with errno. */
pid_t swvm_exec_clone(const struct swvm_settings *s, int pidfd, unsigned int namespaces, const struct swvm_child_io *io,
                      const int *close_in_child, int nclose);

/* The VMM's process, the one way swvm starts it (`swvm run
 * --isolation=vm`'s VMM, an OCI container's `swvm vmm`, a detached VM's):
 * clone(2) with CLONE_NEWPID, so the VMM is PID 1 of a pid namespace of
 * its own (it cannot enter one itself: after unshare(CLONE_NEWPID) its
 * threads could not be created), then execve of `path`. The other
 * namespaces the VMM enters itself, when it jails itself: it opens its
 * descriptors in the host's first (spawn_vmm.c). No Swift runs in the
 * child; in order: the parent-death signal (when not 0; the caller gone
 * already ends it), one byte read from `hold_fd` (when >= 0: the caller
 * places it in a cgroup first; EOF ends it), setsid (`new_session`), each
 * dup_from[i] onto dup_to[i] (equal: kept open across execve), default
 * signal dispositions and an empty mask, execve (`envp` NULL: the
 * caller's). A failed step is a line on the child's stderr and exit 125
 * (127 when the program is missing). Returns the VMM's pid as the caller
 * sees it, or -1 with errno. */
struct swvm_vmm_spawn {
    const char *path;
    char *const *argv;
    char *const *envp;
    const int *dup_from;
    const int *dup_to;
    int ndup;
    int new_session;
    int parent_death_signal;
    int hold_fd;
    int hold_write_fd;   /* the caller's end of hold_fd's pipe, closed in the child: else the
                            child's own copy keeps the pipe open and it waits forever for a
                            caller that was killed before the release (-1: none) */
};
pid_t swvm_spawn_vmm(const struct swvm_vmm_spawn *s);

/* File descriptors over a unix socket (SCM_RIGHTS), one per call: the
 * image root and the terminal to swvm, the terminal to guest-init.
 * swvm_send_fd returns 0 or -1 with errno; swvm_recv_fd the fd (close-on-
 * exec) or -1. */
int swvm_send_fd(int sock, int fd);

/* Unlocks the slave of the pty master `master` (a ptmx): its number N
 * (/dev/pts/N), or -1 with errno. Async-signal-safe: the container child
 * and guest-init use it, and swvm's exec of a VM (one unlocking). */
int swvm_pty_unlock(int master);

/* The rlimit resources by number (RLIMIT_CPU 0 to RLIMIT_RTTIME 15) as
 * --ulimit and OCI name them without "RLIMIT_" ("nofile"): one list for
 * swvm's parser and the child's errors. NULL past the last. */
#define SWVM_RLIMIT_COUNT 16
const char *swvm_rlimit_name(unsigned int resource);
/* As swvm_send_fd, with `name` as the message's bytes: runc sends the pty
 * master to --console-socket so (the name of the terminal). */
int swvm_send_fd_named(int sock, int fd, const char *name);
int swvm_recv_fd(int sock);
/* A buffer and up to SWVM_MAX_PASSED_FDS descriptors in one message (a
 * client's exec request and its stdio, to the VMM's control socket).
 * swvm_send_fds: 0 or -1 with errno; all of `len` is sent (the descriptors
 * with its first bytes). swvm_recv_fds: the bytes read (0 at EOF) with
 * *nfds descriptors (close-on-exec) in `fds`; -1 with errno, EBADMSG when
 * more descriptors came than fit (those that did are closed). */
#define SWVM_MAX_PASSED_FDS 3

/* The directories an exec searches when the process has no PATH, and the
 * PATH swvm gives a process by default (Swift: DefaultSearchPath). */
#define SWVM_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
int swvm_send_fds(int sock, const void *buf, size_t len, const int *fds, int nfds);
long swvm_recv_fds(int sock, void *buf, size_t cap, int fds[SWVM_MAX_PASSED_FDS], int *nfds);
/* accept4 of a connection, non-blocking and close-on-exec: its fd or -1. */
int swvm_accept(int listener);

#endif
