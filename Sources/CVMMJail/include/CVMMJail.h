// The VMM's jail: the system calls that confine the VMM process before its
// guest runs (Firecracker's jailer, applied by the VMM to itself while it
// is still one thread). C because these are raw calls in a fixed order,
// each of which must fail closed.
#ifndef SWVM_CVMMJAIL_H
#define SWVM_CVMMJAIL_H

#include <stdint.h>
#include <sys/types.h>

#include "swvm_keeper.h"

struct swvm_jail_limit {
    int resource;          // RLIMIT_*
    uint64_t value;        // soft and hard
};

struct swvm_jail {
    uid_t uid;
    gid_t gid;
    /// Capabilities (bit N = capability N) kept in the permitted and
    /// effective sets of the calling thread; every other one, the whole
    /// bounding set and the ambient set are dropped.
    uint64_t keep_caps;
    /// An existing directory to mount the jail's empty root on (inside
    /// the new mount namespace only).
    const char *root_mount;
    const struct swvm_jail_limit *limits;
    int limit_count;
    /// Descriptors inherited without close-on-exec that stay open (besides
    /// 0, 1 and 2); every other one without close-on-exec is closed.
    const int *keep_fds;
    int keep_count;
    /// When not NULL: receives an O_PATH descriptor of /proc/self/fd in a
    /// procfs of the jail's own that shows only processes (subset=pid) the
    /// VMM may see (hidepid=invisible): what the 9p server reopens fids
    /// through, without the host's /proc (sysrq-trigger, sys) behind it.
    int *proc_fd_out;
    /// >= 0: the VMM is the child of a monitor, and this descriptor hangs
    /// up when the monitor is gone: a foreground run's socket to it
    /// (VMMMonitor), or a detached VM's report pipe (its write end: the
    /// monitor holds the only read end). The identity switch clears the
    /// parent-death signal (the kernel does on any change of uid): it is
    /// set again, and a monitor already gone fails the jail. A VMM with a
    /// parent-death signal and no such descriptor fails the jail.
    int monitor_fd;
    /// Tests only (0 otherwise): milliseconds to wait after the uid
    /// switch, before the parent-death signal is set again.
    int test_pause_ms;
};

/// Confines the calling process, which must be single-threaded: closes
/// inherited descriptors, enters new mount, IPC, UTS and network
/// namespaces, pivots into an empty read-only tmpfs and detaches the old
/// root, sets the rlimits, drops the bounding set, clears the groups,
/// switches to uid/gid, keeps only `keep_caps`, sets no_new_privs and
/// dumpable 0. Returns 0, or -1 with errno set and *step naming the step
/// that failed (a static string).
int swvm_jail_apply(const struct swvm_jail *jail, const char **step);

/// Drops every capability of the calling thread (capset changes one
/// thread only).
int swvm_jail_drop_thread_capabilities(void);

/// Opens /proc/self/pagemap for the jailed VMM (which loses /proc) with
/// CAP_SYS_ADMIN out of the calling thread's effective set for the open:
/// pagemap shows physical frame numbers only to an opener that had it, so
/// the descriptor gives the page flags a template save needs (present,
/// file-backed) and never where guest RAM lies in host memory. The fd or -1.
int swvm_jail_open_page_flags(void);

/// Installs a SIGSYS handler that reports a system call refused by a
/// seccomp filter whose action is SECCOMP_RET_TRAP on stderr and ends the
/// process with status 125.
int swvm_jail_report_seccomp_traps(void);

/// A test-only fault: open `path` now (the caller checks that it fails).
int swvm_jail_try_open(const char *path);

#endif
