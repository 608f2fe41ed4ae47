/*
 * The run's settings as they cross from swvm into the process that builds
 * the workload: into guest-init over the VM's control port, and into the
 * container's child across clone. This header is their only definition:
 * swvm's Swift encoder (RunSettingsWire/RunSettings.swift) imports it, and
 * guest-init and the container child decode with swvm_settings_decode.
 *
 * On the control port every message is a frame (below: its header, its
 * limits, and what a reader does with a frame over them). MSG_CONFIG's
 * payload is a list of fields: u16 tag, u32 length, bytes. Each other
 * payload has its layout, encoder and decoder here. All integers are
 * little-endian.
 */
#ifndef SWVM_RUN_SETTINGS_H
#define SWVM_RUN_SETTINGS_H

#include <stddef.h>
#include <stdint.h>

/* The version of everything in this header, in MSG_READY: swvm refuses a
 * guest-init that speaks another. Raised on every incompatible change. */
#define SWVM_PROTOCOL_VERSION 7u

/* Frame types. */
enum swvm_message {
    /* host -> guest */
    MSG_CONFIG = 1,   /* the fields below */
    MSG_SIGNAL = 2,   /* struct swvm_signal */
    MSG_RESIZE = 3,   /* struct swvm_resize (with a terminal) */
    MSG_START = 4,    /* empty; an OCI create at the VM level: `swvm start` released the
                         workload, which waits at the start gate (its MSG_CREATED) */
    /* 10-19: exec and control of a running VM (below, "exec and control") */
    MSG_EXEC = 10,         /* struct swvm_exec_head, then fields as MSG_CONFIG's */
    MSG_EXEC_INPUT = 11,   /* struct swvm_exec_data (stream 0), bytes; none: EOF */
    MSG_EXEC_RESIZE = 12,  /* struct swvm_exec_resize */
    MSG_EXEC_SIGNAL = 13,  /* struct swvm_exec_value: a signal for the exec'd process */
    MSG_SIGNAL_ALL = 14,   /* struct swvm_signal: for every process of the workload */
    MSG_PS = 15,           /* struct swvm_exec_head: a request id */
    MSG_EXEC_ACK = 16,     /* struct swvm_exec_value: output bytes the host delivered */
    MSG_PAUSE = 17,        /* empty; a client to the VMM only (never the guest) */
    MSG_RESUME = 18,       /* empty; a client to the VMM only */
    /* 30-39: the OCI commands at the VM level */
    MSG_UPDATE = 30,       /* struct swvm_update: new limits for the workload's cgroup (OCI update) */
    /* 20-29: image templates (guest-init/template.c) */
    MSG_RUN = 20,     /* after MSG_TEMPLATE_POINT: the per-run fields (swvm_config_tag_per_run), as MSG_CONFIG's */
    /* guest -> host */
    MSG_READY = 100,  /* struct swvm_ready: guest-init waits for MSG_CONFIG */
    MSG_STARTED = 101, /* struct swvm_started, once the workload exec'd */
    MSG_EXIT = 102,   /* struct swvm_exit */
    MSG_ERROR = 103,  /* u32 code (enum swvm_error_code), i32 errno (0: none), then the message
                         (UTF-8, no NUL); the host appends errno's text (swvm_error_write) */
    MSG_CONFINED = 104, /* fields as MSG_CONFIG's: one CFG_MASKED or CFG_READONLY_PATH per path the
                           confinement applied (a path the kernel lacks is skipped, as runc does) */
    MSG_CREATED = 105,  /* empty; OCI mode: the init is ready and now blocks on the exec FIFO */
    MSG_HOOKS = 106,    /* empty; OCI mode: the mounts are made, the init waits for its hooks
                           (swvm_oci_hooks.h) */
    /* 110-119: exec and control of a running VM */
    MSG_EXEC_STARTED = 110, /* struct swvm_exec_value: the exec'd process's pid (in the workload's namespace) */
    MSG_EXEC_OUTPUT = 111,  /* struct swvm_exec_data (stream 1 or 2), bytes; none: that stream's EOF */
    MSG_EXEC_EXIT = 112,    /* struct swvm_exec_value: its status (128+N for signal N), after its output */
    MSG_EXEC_ERROR = 113,   /* u32 exec id, then MSG_ERROR's payload: the exec failed (no EXEC_EXIT follows); with a MSG_PS id: that ps failed */
    MSG_PS_LIST = 114,      /* struct swvm_exec_head (the request id), then swvm_ps_entry records */
    MSG_EXEC_INPUT_ACK = 115, /* struct swvm_exec_value: input bytes guest-init passed on */
    MSG_CONTROL_DONE = 116, /* empty; the VMM to a client only: a pause, resume or signal-all is done */
    /* 130-139: the OCI commands at the VM level */
    MSG_UPDATE_DONE = 130,  /* struct swvm_exec_head: MSG_UPDATE's request id, applied (a failure:
                               MSG_EXEC_ERROR with that id); the VMM answers its client MSG_CONTROL_DONE */
    /* 120-129: image templates */
    MSG_TEMPLATE_POINT = 120, /* empty; after a MSG_CONFIG with CFG_TEMPLATE: the workload's root, mounts and
                                 namespaces are built and guest-init waits for MSG_RUN (the template point) */
};

/* ------------------------------------------------------------- framing
 *
 * A frame is an 8-byte header, u32 type then u32 length, and `length`
 * bytes of payload. Each direction has its longest payload: what swvm
 * sends (MSG_CONFIG's settings are the big one) up to SWVM_MAX_CONFIG;
 * what reaches swvm (from guest-init or the container child) up to
 * SWVM_MAX_GUEST_FRAME. A header whose length is over its direction's
 * limit is a protocol error: the reader stops there and reads nothing
 * more from that stream (its bytes cannot be trusted to be in step).
 * A known frame type with a longer payload than its layout is read
 * whole and its extra bytes ignored (a newer peer's additions). */
#define SWVM_FRAME_HEADER 8u
#define SWVM_MAX_CONFIG (64u << 20)
#define SWVM_MAX_GUEST_FRAME (1u << 20)

/* Writes a frame header. */
void swvm_frame_header_encode(uint8_t header[SWVM_FRAME_HEADER], uint32_t type, uint32_t length);
/* Reads a frame header into *type and *length; returns 0, or -1 (with
 * both set) when the length is over `max`. The one check of a frame's
 * length: every reader, C and Swift, goes through it. */
int swvm_frame_header_decode(const uint8_t header[SWVM_FRAME_HEADER], uint32_t *type, uint32_t *length, uint32_t max);

/* ------------------------------------------------------------- payloads
 *
 * Each decoder takes `len` bytes of payload and returns 0, or -1 when
 * they are too few (the struct is then zeroed). Encoders write exactly
 * the *_LEN bytes. */

/* MSG_READY: u32 protocol version (SWVM_PROTOCOL_VERSION). A guest-init
 * from before versions sent it empty: it decodes as version 1. */
struct swvm_ready { uint32_t version; };
#define SWVM_READY_LEN 4u
void swvm_ready_encode(const struct swvm_ready *m, uint8_t out[SWVM_READY_LEN]);
int swvm_ready_decode(const uint8_t *p, size_t len, struct swvm_ready *m);

/* MSG_SIGNAL: u32 signal number, for the workload's PID 1. */
struct swvm_signal { uint32_t signal; };
#define SWVM_SIGNAL_LEN 4u
void swvm_signal_encode(const struct swvm_signal *m, uint8_t out[SWVM_SIGNAL_LEN]);
int swvm_signal_decode(const uint8_t *p, size_t len, struct swvm_signal *m);

/* MSG_RESIZE: u16 rows, u16 cols of the host's terminal. */
struct swvm_resize { uint16_t rows, cols; };
#define SWVM_RESIZE_LEN 4u
void swvm_resize_encode(const struct swvm_resize *m, uint8_t out[SWVM_RESIZE_LEN]);
int swvm_resize_decode(const uint8_t *p, size_t len, struct swvm_resize *m);

/* MSG_STARTED: u32 the workload's pid in the guest, u32 the CLONE_NEW*
 * flags of its namespaces. A guest-init of protocol 1 sent the pid only
 * (SWVM_STARTED_MIN_LEN): namespaces is then 0. */
struct swvm_started { uint32_t pid; uint32_t namespaces; };
#define SWVM_STARTED_LEN 8u
#define SWVM_STARTED_MIN_LEN 4u
void swvm_started_encode(const struct swvm_started *m, uint8_t out[SWVM_STARTED_LEN]);
int swvm_started_decode(const uint8_t *p, size_t len, struct swvm_started *m);

/* MSG_EXIT: i32 the workload's exit status (128+N for signal N). */
struct swvm_exit { int32_t status; };
#define SWVM_EXIT_LEN 4u
void swvm_exit_encode(const struct swvm_exit *m, uint8_t out[SWVM_EXIT_LEN]);
int swvm_exit_decode(const uint8_t *p, size_t len, struct swvm_exit *m);

/* ------------------------------------------------------------- exec and control
 *
 * A process started in a running VM (`swvm exec`, OCI exec) and the
 * control of the VM (kill --all, ps), multiplexed over the control port:
 * every frame names its exec by an id the host picks. Its stdio travels
 * in MSG_EXEC_INPUT and MSG_EXEC_OUTPUT frames of at most
 * SWVM_EXEC_CHUNK bytes, each direction with a window: a side sends at
 * most SWVM_EXEC_WINDOW bytes of an exec's data the other has not yet
 * acknowledged (MSG_EXEC_ACK, MSG_EXEC_INPUT_ACK), so neither queues more
 * than that per exec however slow the other's reader is. A guest that
 * passes the window, or names a stream that is not 1 or 2, is a protocol
 * error for that exec. guest-init runs at most SWVM_MAX_EXECS at once.
 *
 * The same frames go between a client and the VMM's control socket
 * (VMControl): the client's MSG_EXEC (its id is ignored; the VMM picks
 * one) carries the exec's stdio as SCM_RIGHTS descriptors, and the VMM
 * answers MSG_EXEC_STARTED, then MSG_EXEC_EXIT or MSG_EXEC_ERROR;
 * MSG_PAUSE, MSG_RESUME and MSG_SIGNAL_ALL get MSG_CONTROL_DONE or
 * MSG_ERROR; MSG_PS gets MSG_PS_LIST. */
#define SWVM_EXEC_CHUNK (32u << 10)
#define SWVM_EXEC_WINDOW (256u << 10)
#define SWVM_MAX_EXECS 16u
/* MSG_EXEC's fields: CFG_ARG (at least one), CFG_ENV, CFG_CWD (absolute;
 * "/" when absent), CFG_UID, CFG_GID, CFG_GROUPS, CFG_TERMINAL (rows,
 * cols: a pty), CFG_INTERACTIVE (stdin is relayed; otherwise /dev/null).
 * Any other field is refused. */

struct swvm_settings;

/* u32 exec id (MSG_EXEC, MSG_PS: a request id). */
struct swvm_exec_head { uint32_t id; };
#define SWVM_EXEC_HEAD_LEN 4u
void swvm_exec_head_encode(const struct swvm_exec_head *m, uint8_t out[SWVM_EXEC_HEAD_LEN]);
int swvm_exec_head_decode(const uint8_t *p, size_t len, struct swvm_exec_head *m);

/* u32 exec id, u32 value (a pid, a signal, a status, a byte count). */
struct swvm_exec_value { uint32_t id; uint32_t value; };
#define SWVM_EXEC_VALUE_LEN 8u
void swvm_exec_value_encode(const struct swvm_exec_value *m, uint8_t out[SWVM_EXEC_VALUE_LEN]);
int swvm_exec_value_decode(const uint8_t *p, size_t len, struct swvm_exec_value *m);

/* u32 exec id, u32 stream (0 stdin, 1 stdout, 2 stderr), then the bytes:
 * the decoder also refuses a stream over 2 and more than SWVM_EXEC_CHUNK
 * bytes; `data` points into `p` and `data_len` is what follows the head. */
struct swvm_exec_data { uint32_t id; uint32_t stream; const uint8_t *data; uint32_t data_len; };
#define SWVM_EXEC_DATA_HEAD_LEN 8u
void swvm_exec_data_encode(uint32_t id, uint32_t stream, uint8_t out[SWVM_EXEC_DATA_HEAD_LEN]);
int swvm_exec_data_decode(const uint8_t *p, size_t len, struct swvm_exec_data *m);

/* u32 exec id, u16 rows, u16 cols. */
struct swvm_exec_resize { uint32_t id; uint16_t rows, cols; };
#define SWVM_EXEC_RESIZE_LEN 8u
void swvm_exec_resize_encode(const struct swvm_exec_resize *m, uint8_t out[SWVM_EXEC_RESIZE_LEN]);
int swvm_exec_resize_decode(const uint8_t *p, size_t len, struct swvm_exec_resize *m);

/* MSG_EXEC's payload: the head, then the fields, decoded into `out` (its
 * args, env, cwd, uid, gid, groups, terminal, rows, cols, interactive;
 * free with swvm_settings_free). 0, or -1 with a message in `error`. */
int swvm_exec_decode(const uint8_t *p, size_t len, struct swvm_exec_head *head, struct swvm_settings *out,
                     char *error, size_t error_len);

/* MSG_EXEC_ERROR's payload: the exec id, then MSG_ERROR's (u32 code,
 * i32 errno, `len` bytes of message). Returns its length, or 0 when it
 * does not fit in `cap`. */
size_t swvm_exec_error_encode(uint32_t id, uint32_t code, int32_t err, const char *message, uint32_t len,
                              uint8_t *out, size_t cap);

/* MSG_UPDATE: u32 request id (a client's is ignored: the VMM picks one),
 * u32 fields (SWVM_UPDATE_* bits, at least one, no other), u64 memory.max
 * in bytes, i64 pids.max; SWVM_UPDATE_UNLIMITED: "max". Exactly
 * SWVM_UPDATE_LEN bytes. The CPU quota is the host's (on the vCPU threads). */
struct swvm_update { uint32_t id; uint32_t fields; uint64_t memory; int64_t pids; };
#define SWVM_UPDATE_LEN 24u
#define SWVM_UPDATE_MEMORY 1u
#define SWVM_UPDATE_PIDS 2u
#define SWVM_UPDATE_UNLIMITED (-1)
void swvm_update_encode(const struct swvm_update *m, uint8_t out[SWVM_UPDATE_LEN]);
/* 0, or -1: not SWVM_UPDATE_LEN bytes, no field or an unknown one, a
 * memory of 0, a pids under 1 other than SWVM_UPDATE_UNLIMITED. */
int swvm_update_decode(const uint8_t *p, size_t len, struct swvm_update *m);

/* One process in MSG_PS_LIST: u32 pid and u32 ppid (in the workload's pid
 * namespace; 0: outside it), u32 uid, u16 length, then the command line
 * (arguments separated by spaces, at most SWVM_PS_COMMAND bytes). */
struct swvm_ps_entry { uint32_t pid, ppid, uid; uint16_t command_len; const uint8_t *command; };
#define SWVM_PS_ENTRY_HEAD_LEN 14u
#define SWVM_PS_COMMAND 1024u
/* Appends an entry at out[*off] if it fits in `cap`: 0, or -1 (full). */
int swvm_ps_entry_encode(const struct swvm_ps_entry *e, uint8_t *out, size_t cap, size_t *off);
/* Reads the entry at p[*off] and moves *off past it: 1, 0 at the end of
 * the payload, -1 for an entry cut short or a command over the limit. */
int swvm_ps_entry_next(const uint8_t *p, size_t len, size_t *off, struct swvm_ps_entry *e);

/* CFG_NET_IF (VM only, --network bridge): eth0's settings. Bytes: u8
 * addr[4], u8 prefix, u8 gateway[4], u16 mtu, u8 mac[6]; the addresses in
 * network order. The decoder also refuses a prefix over 32. */
struct swvm_net_if { uint8_t addr[4]; uint8_t prefix; uint8_t gateway[4]; uint16_t mtu; uint8_t mac[6]; };
#define SWVM_NET_IF_LEN 17u
void swvm_net_if_encode(const struct swvm_net_if *m, uint8_t out[SWVM_NET_IF_LEN]);
int swvm_net_if_decode(const uint8_t *p, size_t len, struct swvm_net_if *m);

/* --network ns:PATH (VM only): what the pod's interface has beyond
 * CFG_NET_IF (whose gateway is then 0.0.0.0 without a default route).
 * CFG_NET_ROUTE: u8 destination[4], u8 prefix, u8 gateway[4] (0.0.0.0: on
 * the link), in the order they are added. CFG_NET_ADDR: u8 address[4], u8
 * prefix, a further address of eth0. The decoder refuses a prefix over 32
 * and more than the maximum of each. */
struct swvm_net_route { uint8_t dst[4]; uint8_t prefix; uint8_t gateway[4]; };
struct swvm_net_addr { uint8_t addr[4]; uint8_t prefix; };
#define SWVM_NET_ROUTE_LEN 9u
#define SWVM_NET_ADDR_LEN 5u
#define SWVM_MAX_NET_ROUTES 16u
#define SWVM_MAX_NET_ADDRS 8u

/* The workload's child reports to its parent (swvm's container parent,
 * or guest-init, which forwards them to the host as they are) with these
 * frames on a close-on-exec pipe: MSG_CONFINED once its mounts are made,
 * MSG_ERROR when a step fails; EOF alone means its execve succeeded. */

/* What failed, in a MSG_ERROR; swvm maps each to its own error codes
 * (SwvmError.Code). Numbers are never reused. */
enum swvm_error_code {
    SWVM_ERR_INTERNAL = 1,               /* a bug or a broken message */
    SWVM_ERR_SYSTEM_CALL = 2,            /* a step's system call failed */
    SWVM_ERR_NOT_FOUND = 3,              /* a file the settings name is missing */
    SWVM_ERR_INVALID_ARGUMENT = 4,       /* a setting the kernel refused */
    SWVM_ERR_COMMAND_NOT_FOUND = 5,      /* the workload's executable is missing */
    SWVM_ERR_COMMAND_NOT_EXECUTABLE = 6, /* it cannot be executed */
};

/* The exit status for a failure of this kind, the one place Docker's
 * convention is written: 127 not found, 126 not executable, 125 else. */
int swvm_error_exit_status(uint32_t code);

/* Writes a MSG_ERROR frame: `code`, `err` (an errno, or 0) and `len` bytes
 * of message. Async-signal-safe (the container child calls it). 0 or -1. */
int swvm_error_write(int fd, uint32_t code, int32_t err, const char *message, uint32_t len);

/* MSG_CONFIG fields. Numbers are never reused. */
enum swvm_config_tag {
    CFG_ARG = 1,            /* string, repeated, in order */
    CFG_ENV = 2,            /* string, repeated */
    CFG_CWD = 3,            /* string */
    CFG_UID = 4,            /* u32 */
    CFG_GID = 5,            /* u32 */
    CFG_GROUPS = 6,         /* u32[] */
    CFG_HOSTNAME = 7,       /* string */
    CFG_RLIMIT = 8,         /* u32 resource, u64 soft, u64 hard; repeated */
    CFG_CAPS = 9,           /* u64 mask: bounding, effective, permitted */
    CFG_SECCOMP = 10,       /* struct sock_filter[] (8 bytes each) */
    CFG_NNP = 11,           /* u8 */
    CFG_READONLY = 12,      /* u8: read-only root */
    CFG_TERMINAL = 13,      /* u16 rows, u16 cols */
    CFG_INTERACTIVE = 14,   /* u8: keep stdin open */
    CFG_MEMORY = 15,        /* u64 bytes (the guest's workload cgroup) */
    CFG_PIDS = 16,          /* i64 (the guest's workload cgroup) */
    /* 17 was the CPU quota: enforced on the host, never sent */
    CFG_MASKED = 18,        /* string, repeated */
    CFG_READONLY_PATH = 19, /* string, repeated */
    CFG_TMPFS = 20,         /* u8 read-only, destination, NUL, options; repeated */
    CFG_TIME = 21,          /* u64 CLOCK_REALTIME ns of the host */
    CFG_ROOTDEV = 22,       /* string: the image's block device in the guest */
    /* 23 was a debug flag nothing read */
    CFG_PROBE = 24,         /* string: a file bound read-only at /.swvm-probe */
    CFG_ENTROPY = 25,       /* bytes the guest adds to its entropy pool, credited, then forces a CRNG reseed */
    /* Container only: the guest builds its root from CFG_ROOTDEV. */
    CFG_ROOTFS = 26,        /* string: the image root on the host */
    CFG_STATE_DIR = 27,     /* string: the run's scratch directory (shadowed by a tmpfs) */
    CFG_VOLUME = 28,        /* u8 read-only, source, NUL, destination; repeated */
    CFG_HOST_NETWORK = 29,  /* u8: the host's network namespace (bind /sys, no lo) */
    CFG_USERNS = 30,        /* u8: a user namespace; the image root arrives id-mapped over the socket */
    CFG_CGROUP_MOUNT = 31,  /* u8 kind, name, NUL, source; repeated; none: one cgroup2 mount */
    CFG_INIT = 32,          /* u8: a minimal init is PID 1 and the workload its child (--init) */
    /* 40 and up: networking (--network bridge) */
    CFG_NET_IF = 40,        /* struct swvm_net_if */
    CFG_ETC_HOSTS = 41,     /* string: the whole /etc/hosts */
    CFG_RESOLV_CONF = 42,   /* string: the whole /etc/resolv.conf */
    /* podnet's range (80-89): the pod's network at the VM level. */
    CFG_NET_ROUTE = 80,     /* struct swvm_net_route; repeated */
    CFG_NET_ADDR = 81,      /* struct swvm_net_addr; repeated */
    /* 50 and up: OCI mode (a run of a runtime bundle, swvm create/exec as
     * runc). CFG_OCI_ROOT switches it on: the container child then uses
     * the root as it is and applies config.json's mounts, devices and
     * namespaces instead of swvm's own root and standard mounts. */
    CFG_OCI_ROOT = 50,      /* u32 rootfs propagation (MS_* | MS_REC, 0: rslave), root path */
    CFG_OCI_MOUNT = 51,     /* struct swvm_oci_mount, in config.json's order; repeated */
    CFG_OCI_DEVICE = 52,    /* u8 type ('c','b','u','p'), u32 major, minor, mode, uid, gid, path; repeated */
    CFG_OCI_SYSCTL = 53,    /* key, NUL, value; repeated (checked by swvm before it sends them) */
    CFG_OCI_CAPS = 54,      /* u64 bounding, effective, inheritable, permitted, ambient */
    CFG_OCI_UMASK = 55,     /* u32 */
    CFG_OCI_JOIN_NS = 56,   /* u32 CLONE_NEW* type, i32 fd (opened and checked by the parent); repeated */
    CFG_OCI_NAMESPACES = 57, /* u32 CLONE_NEW* flags of the namespaces the container gets new */
    CFG_OCI_EXEC_FIFO = 58, /* i32 an O_PATH fd of the exec FIFO */
    CFG_OCI_PRESERVE_FDS = 59, /* u32 fds 3.. that stay open across execve */
    /* 60 and up: OCI mode in a VM (guest-init). */
    CFG_VM_FILE = 60,       /* u8 0, guest path, NUL, contents: a host file a config.json bind names,
                               copied (the guest cannot reach host paths); guest-init writes it
                               before the workload's root is built; repeated */
    /* 70-79: image templates. CFG_TEMPLATE in MSG_CONFIG: the settings hold
     * only the fixed part (no per-run field); guest-init builds the
     * workload's root and namespaces, says MSG_TEMPLATE_POINT, and takes
     * the per-run fields from MSG_RUN. */
    CFG_TEMPLATE = 70,      /* u8 flags: SWVM_TEMPLATE_SHARED_NET: the workload shares guest-init's network (bridge);
                               SWVM_TEMPLATE_PLAIN: no volume or terminal after the point */
    CFG_WARM_FILE = 71,     /* string, repeated: a file in the image that guest-init reads before the template
                               point, so that its page cache is in the template (missing ones are skipped) */
    /* 90-99: an OCI bundle's root as a disk at the VM level (issue 19). */
    CFG_OCI_DISK_ROOT = 90, /* u8 1: the OCI root is CFG_ROOTDEV (the bundle's image layers as ext4) under an
                               overlay with guest-init's tmpfs upper, at "/newroot" (CFG_OCI_ROOT's path) */
    CFG_OCI_UPPER = 91,     /* u8 kind ('d' directory, 'f' file, 'l' symlink), u32 mode, path, NUL, contents
                               (a file's text, a link's target): an entry of the bundle's overlay upper layer at
                               create, made in the guest's upper before the overlay; parents first; repeated */
    /* 100-109: exec into a running VM (issue 19). */
    CFG_EXEC_ZYGOTE = 100,  /* u8 1: start the exec zygote with the workload, not after the first exec (a
                               detached or OCI VM, which is there to be exec'd into; a foreground run never
                               gets it: the zygote's start would compete with its workload); per-run */
};

#define SWVM_TEMPLATE_SHARED_NET 1u
/* No run from the template has a volume or a terminal (nothing is mounted
 * after its point): the workload's child enters its root and may load its
 * seccomp filter before the point (swvm_seccomp_allows_template_setup). */
#define SWVM_TEMPLATE_PLAIN 2u
/* An OCI bundle's root template (issue 19, `swvm create` at the VM level):
 * its point is right after guest-init mounted the bundle's image layers
 * disk (CFG_OCI_DISK_ROOT), made its upper layer (CFG_OCI_UPPER) and read
 * CFG_WARM_FILE into the page cache, before anything of the container
 * (config.json's process, mounts, confinement, copied files, shares, the
 * pod's network, the start gate): MSG_CONFIG holds only those fields
 * (swvm_config_tag_per_run_in), MSG_RUN every other one. */
#define SWVM_TEMPLATE_OCI_ROOT 4u

/* Whether a field belongs to the run rather than to its template: what
 * MSG_RUN carries and MSG_CONFIG with CFG_TEMPLATE may not. Everything
 * else is fixed at the template point and in the template's key. The
 * terminal (CFG_TERMINAL), stdin (CFG_INTERACTIVE), the volumes
 * (CFG_VOLUME) and a pod's addresses and routes (CFG_NET_ADDR,
 * CFG_NET_ROUTE) are the run's: the pty is opened, stdin kept or replaced
 * by /dev/null, the shares mounted and eth0 set up after the template
 * point. */
int swvm_config_tag_per_run(uint16_t tag);
/* The same for a template with these CFG_TEMPLATE flags: with
 * SWVM_TEMPLATE_OCI_ROOT, every field but the disk root's is the run's. */
int swvm_config_tag_per_run_in(uint16_t tag, uint8_t template_flags);

/* CFG_CGROUP_MOUNT kinds, for /sys/fs/cgroup/NAME (a tmpfs holds them). */
enum swvm_cgroup_mount_kind {
    CGROUP_MOUNT_V1 = 1,    /* mount the cgroup v1 hierarchy of controller NAME */
    CGROUP_MOUNT_BIND = 2,  /* bind SOURCE (the run's own cgroup directory) */
};

#define SWVM_PROBE_PATH "/.swvm-probe"
/* At --isolation=vm the volumes' host directories reach the guest over
 * virtio-9p with this mount tag. guest-init mounts it at SWVM_VOLUMES_DIR,
 * and volume N's CFG_VOLUME source is SWVM_VOLUMES_DIR "/N". */
#define SWVM_9P_TAG "swvm"
#define SWVM_VOLUMES_DIR "/volumes"

#define CONTROL_PORT "/dev/vport0p0"
#define STDIN_PORT "/dev/vport0p1"
#define STDOUT_PORT "/dev/vport0p2"
#define STDERR_PORT "/dev/vport0p3"

/* The most entries a list field may have. */
#define SWVM_MAX_LIST 65536

struct swvm_rlimit { uint32_t resource; uint64_t soft, hard; };
struct swvm_mount { int read_only; char *source; char *destination; char *options; int kind; };

/* CFG_OCI_MOUNT: u32 flags (MS_*), u32 attr_set, u32 attr_clr (MOUNT_ATTR_*,
 * the recursive "rro"-style options, applied with mount_setattr), u32
 * nprop, u32 prop[nprop] (MS_SHARED... | MS_REC, applied in order), then
 * type, NUL, source, NUL, destination, NUL, data. The encoder turns
 * config.json's option words into these as runc's parseMountOptions. */
#define SWVM_OCI_MAX_PROP 4
struct swvm_oci_mount {
    uint32_t flags, attr_set, attr_clr, nprop, prop[SWVM_OCI_MAX_PROP];
    char *type, *source, *destination, *data;
};
struct swvm_oci_device { uint8_t type; uint32_t major, minor, mode, uid, gid; char *path; };
struct swvm_oci_sysctl { char *key, *value; };
struct swvm_oci_join { uint32_t type; int32_t fd; };
#define SWVM_OCI_MAX_JOIN 8

/* OCI mode's settings (CFG_OCI_*); `enabled` once CFG_OCI_ROOT is seen. */
struct swvm_oci {
    int enabled;
    char *root; uint32_t root_propagation;
    struct swvm_oci_mount *mounts; uint32_t nmounts;
    struct swvm_oci_device *devices; uint32_t ndevices;
    struct swvm_oci_sysctl *sysctl; uint32_t nsysctl;
    struct swvm_oci_join join[SWVM_OCI_MAX_JOIN]; uint32_t njoin;
    uint32_t new_namespaces;
    int has_caps; uint64_t bounding, effective, inheritable, permitted, ambient;
    uint32_t umask;                 /* 022 unless sent */
    int32_t exec_fifo;              /* -1: none (exec into a running container) */
    uint32_t preserve_fds;
};

/* CFG_OCI_UPPER: one entry of the bundle's upper layer. */
struct swvm_upper_entry {
    uint8_t kind;       /* 'd', 'f' or 'l' */
    uint32_t mode;      /* permission bits (07777) */
    char *path;         /* absolute in the root, no "." or ".." component */
    char *contents;     /* a file's text, a link's target; "" for a directory */
};
#define SWVM_MAX_UPPER_ENTRIES 256

/* The decoded settings; every pointer is owned (swvm_settings_free). */
struct swvm_settings {
    char **args; uint32_t nargs;       /* NULL-terminated */
    char **env; uint32_t nenv;         /* NULL-terminated */
    char *cwd, *hostname, *rootdev, *probe;
    uint32_t uid, gid;
    uint32_t *groups; uint32_t ngroups;
    struct swvm_rlimit *rlimits; uint32_t nrlimits;
    uint64_t caps;
    uint8_t *seccomp; uint32_t seccomp_len;
    int nnp, read_only, terminal, interactive;
    uint16_t rows, cols;
    uint64_t memory; int64_t pids;
    char **masked; uint32_t nmasked;
    char **readonly_paths; uint32_t nreadonly_paths;
    struct swvm_mount *tmpfs; uint32_t ntmpfs;          /* destination, options, read_only */
    uint64_t host_time_ns;
    uint8_t *entropy; uint32_t entropy_len;
    char *rootfs, *state_dir;
    struct swvm_mount *volumes; uint32_t nvolumes;      /* source, destination, read_only */
    int host_network, userns, init;
    struct swvm_mount *cgroup_mounts; uint32_t ncgroup_mounts; /* kind, destination (name), source */
    int net; struct swvm_net_if net_if;
    struct swvm_net_route net_routes[SWVM_MAX_NET_ROUTES]; uint32_t nnet_routes;
    struct swvm_net_addr net_addrs[SWVM_MAX_NET_ADDRS]; uint32_t nnet_addrs;
    char *etc_hosts, *resolv_conf;
    int template_mode; uint8_t template_flags;   /* CFG_TEMPLATE seen, and its flags */
    char **warm_files; uint32_t nwarm_files;
    struct swvm_oci oci;
    struct swvm_mount *vm_files; uint32_t nvm_files;    /* source: the guest path, destination: the contents */
    int oci_disk_root;                                  /* CFG_OCI_DISK_ROOT */
    int exec_zygote;                                    /* CFG_EXEC_ZYGOTE */
    struct swvm_upper_entry *oci_upper; uint32_t noci_upper;
};

/* Decodes a MSG_CONFIG payload. Returns 0, or -1 with a message naming the
 * bad field in `error` (the settings are then freed). */
int swvm_settings_decode(const uint8_t *payload, size_t len, struct swvm_settings *out, char *error, size_t error_len);
void swvm_settings_free(struct swvm_settings *s);
/* Adds MSG_RUN's per-run fields to settings decoded from a CFG_TEMPLATE
 * MSG_CONFIG (a list replaces, a value overrides), then checks what
 * MSG_CONFIG checks. A fixed field is refused. 0, or -1 with a message
 * (`s` then holds what was decoded so far; free it as usual). */
int swvm_run_fields_apply(const uint8_t *payload, size_t len, struct swvm_settings *s, char *error, size_t error_len);
/* Decodes a bare list of fields (MSG_CONFINED's payload) into `out`,
 * without MSG_CONFIG's required fields and defaults. 0, or -1 as above. */
int swvm_fields_decode(const uint8_t *payload, size_t len, struct swvm_settings *out, char *error, size_t error_len);
/* Writes one field: u16 tag, u32 length, bytes. Returns 0 or -1. */
int swvm_field_write(int fd, uint16_t tag, const void *value, uint32_t len);

/* Reads one frame of up to `max` bytes from `fd`: its type, its full
 * length, and its first min(length, cap) bytes into `buf`; the rest is
 * read and discarded (a known frame's extra bytes). Returns 0, or -1 at
 * end of stream, on a read error, or for a frame over `max` (*length set;
 * the stream is then not to be read on). */
int swvm_frame_read(int fd, uint32_t *type, uint32_t *length, uint8_t *buf, size_t cap, uint32_t max);
/* Reads one frame into a buffer it allocates (free it). NULL with *length
 * set: a frame over `max` (the stream is not to be read on). NULL with
 * *length 0: end of stream, a read error or no memory. */
uint8_t *swvm_frame_read_alloc(int fd, uint32_t *type, uint32_t *length, uint32_t max);
/* Writes one frame; with a NULL payload only its header (the caller
 * writes the `len` bytes). Returns 0 or -1. */
int swvm_frame_write(int fd, uint32_t type, const void *payload, uint32_t len);

#endif
