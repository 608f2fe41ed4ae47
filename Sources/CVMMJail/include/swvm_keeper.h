// The wire between a jailed VMM (swvm run) and its keeper
// (swvm-vmm-keeper, a small C program: it waits for the whole run, so it
// holds no Swift runtime). One header for both sides: the keeper's
// command line, its requests and the posture it reads from /proc.
#ifndef SWVM_KEEPER_H
#define SWVM_KEEPER_H

#include <stddef.h>
#include <sys/types.h>

/// The keeper's executable, next to swvm's.
#define SWVM_KEEPER_EXECUTABLE "swvm-vmm-keeper"

/// Its command line: swvm-vmm-keeper VMM-PID RECORD LEASE SWVM, with the
/// socket (SOCK_SEQPACKET) on this descriptor. SWVM is the swvm binary
/// it execs at the end to clean up (`swvm vmm-keeper`: the clean-up
/// steps are swvm's own, written once).
#define SWVM_KEEPER_SOCKET_FD 3

/// Requests, one per message, fields separated by a tab:
///   snapshot TMP FINAL LOCK   before the jail: where a snapshot may go (at most
///                             SWVM_KEEPER_SNAPSHOTS_MAX: a boot snapshot and an
///                             image template)                      -> "ok INDEX"
///   publish INDEX             move that TMP to FINAL (checked); once -> "ok" or why not
///   posture                   the VMM's posture (swvm_posture_collect's records)
/// End of file: the VMM is done or dead; the keeper cleans up and exits.
#define SWVM_KEEPER_SNAPSHOT "snapshot"
#define SWVM_KEEPER_PUBLISH "publish"
#define SWVM_KEEPER_POSTURE "posture"
#define SWVM_KEEPER_OK "ok"
#define SWVM_KEEPER_SNAPSHOTS_MAX 2
/// The largest message either side sends.
#define SWVM_KEEPER_MESSAGE_MAX (1 << 17)

/// Reads the posture of process `pid` as the kernel reports it, from
/// /proc, into `buf` as records "KEY\0VALUE\0":
///   task   "TID\n" then /proc/PID/task/TID/status (one per thread)
///   ns     the namespaces (mnt net ipc uts pid user cgroup) it does not
///          share with the caller (pid: with /proc's PID 1, as the caller
///          may be in the VMM's), space-separated
///   root   the names in its root directory, '/'-separated
///   rootIsOwn  "1" when its root is not the caller's, else "0"
///   limits /proc/PID/limits
///   status /proc/PID/status
///   reader the caller's own /proc/self/status
/// Returns the length, or -1 with errno (ESRCH: gone; E2BIG: `cap` too
/// small).
long swvm_posture_collect(pid_t pid, char *buf, size_t cap);

#endif
