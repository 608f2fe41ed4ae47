/*
 * The run's settings as they cross from swvm into the process that builds
 * the workload: into guest-init over the VM's control port, and into the
 * container's child across clone. This header is their only definition:
 * swvm's Swift encoder (RunSettingsWire/RunSettings.swift) imports it, and
 * guest-init and the container child decode with swvm_settings_decode.
 *
 * On the control port every message is a frame: u32 type, u32 length,
 * then `length` bytes. MSG_CONFIG's payload is a list of fields: u16 tag,
 * u32 length, bytes. All integers are little-endian.
 */
#ifndef SWVM_RUN_SETTINGS_H
#define SWVM_RUN_SETTINGS_H

#include <stddef.h>
#include <stdint.h>

/* The version of everything in this header, in MSG_READY: swvm refuses a
 * guest-init that speaks another. Raised on every incompatible change. */
#define SWVM_PROTOCOL_VERSION 2u

/* Frame types. */
enum swvm_message {
    /* host -> guest */
    MSG_CONFIG = 1,   /* the fields below */
    MSG_SIGNAL = 2,   /* u32 signal number, for the workload's PID 1 */
    MSG_RESIZE = 3,   /* u16 rows, u16 cols (with a terminal) */
    /* guest -> host */
    MSG_READY = 100,  /* u32 SWVM_PROTOCOL_VERSION: guest-init waits for MSG_CONFIG */
    MSG_STARTED = 101, /* u32 pid of the workload once it exec'd, u32 the CLONE_NEW* flags of its namespaces */
    MSG_EXIT = 102,   /* i32 exit status (128+N for signal N) */
    MSG_ERROR = 103,  /* u32 code (enum swvm_error_code), i32 errno (0: none), then the message
                         (UTF-8, no NUL); the host appends errno's text (swvm_error_write) */
    MSG_CONFINED = 104, /* fields as MSG_CONFIG's: one CFG_MASKED or CFG_READONLY_PATH per path the
                           confinement applied (a path the kernel lacks is skipped, as runc does) */
};

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
    CFG_NET_IF = 40,        /* VM only: eth0's u8 addr[4], u8 prefix, u8 gateway[4], u16 mtu, u8 mac[6] (addresses in network order) */
    CFG_ETC_HOSTS = 41,     /* string: the whole /etc/hosts */
    CFG_RESOLV_CONF = 42,   /* string: the whole /etc/resolv.conf */
};

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

/* Upper bounds a decoder enforces (a longer frame is skipped whole). */
#define SWVM_MAX_CONFIG (64u << 20)
#define SWVM_MAX_LIST 65536

struct swvm_rlimit { uint32_t resource; uint64_t soft, hard; };
struct swvm_mount { int read_only; char *source; char *destination; char *options; int kind; };

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
    int net; uint8_t net_addr[4], net_prefix, net_gw[4], net_mac[6]; uint16_t net_mtu;
    char *etc_hosts, *resolv_conf;
};

/* Decodes a MSG_CONFIG payload. Returns 0, or -1 with a message naming the
 * bad field in `error` (the settings are then freed). */
int swvm_settings_decode(const uint8_t *payload, size_t len, struct swvm_settings *out, char *error, size_t error_len);
void swvm_settings_free(struct swvm_settings *s);
/* Decodes a bare list of fields (MSG_CONFINED's payload) into `out`,
 * without MSG_CONFIG's required fields and defaults. 0, or -1 as above. */
int swvm_fields_decode(const uint8_t *payload, size_t len, struct swvm_settings *out, char *error, size_t error_len);
/* Writes one field: u16 tag, u32 length, bytes. Returns 0 or -1. */
int swvm_field_write(int fd, uint16_t tag, const void *value, uint32_t len);

/* Reads one frame from `fd`: its type, its full length, and its first
 * min(length, cap) bytes into `buf`; the rest is read and discarded, so the
 * stream stays in step whatever the length. Returns 0, or -1 at end of
 * stream or on a read error. */
int swvm_frame_read(int fd, uint32_t *type, uint32_t *length, uint8_t *buf, size_t cap);
/* Reads one frame into a buffer it allocates (free it); a frame longer than
 * `max` is read and discarded, and NULL returned with *length set. NULL
 * with *length 0 means end of stream, a read error or no memory. */
uint8_t *swvm_frame_read_alloc(int fd, uint32_t *type, uint32_t *length, uint32_t max);
/* Writes one frame; with a NULL payload only its header (the caller
 * writes the `len` bytes). Returns 0 or -1. */
int swvm_frame_write(int fd, uint32_t type, const void *payload, uint32_t len);

#endif
