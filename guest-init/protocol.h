/*
 * The host <-> guest-init protocol over the "swvm.control" virtio-console
 * port (/dev/vport0p0). The Swift side is Sources/MicroVM/GuestProtocol.swift;
 * keep the two in step.
 *
 * Every message is a frame: u32 type, u32 length, then `length` bytes.
 * All integers are little-endian.
 */
#ifndef SWVM_GUEST_PROTOCOL_H
#define SWVM_GUEST_PROTOCOL_H

/* host -> guest */
#define MSG_CONFIG 1   /* fields: u16 tag, u32 length, bytes; see CFG_* */
#define MSG_SIGNAL 2   /* u32 signal number, for the workload's PID 1 */
#define MSG_RESIZE 3   /* u16 rows, u16 cols (with a terminal) */

/* guest -> host */
#define MSG_READY 100  /* u64 guest CLOCK_MONOTONIC ns when guest-init started */
#define MSG_STARTED 101 /* u32 pid, u64 CLOCK_REALTIME ns just before execve */
#define MSG_EXIT 102   /* i32 exit status (128+N for signal N) */
#define MSG_ERROR 103  /* "code\nmessage": code is a SwvmError.Code name */

/* MSG_CONFIG fields */
#define CFG_ARG 1          /* string, repeated, in order */
#define CFG_ENV 2          /* string, repeated */
#define CFG_CWD 3          /* string */
#define CFG_UID 4          /* u32 */
#define CFG_GID 5          /* u32 */
#define CFG_GROUPS 6       /* u32[] */
#define CFG_HOSTNAME 7     /* string */
#define CFG_RLIMIT 8       /* u32 resource, u64 soft, u64 hard; repeated */
#define CFG_CAPS 9         /* u64 mask: bounding, effective, permitted */
#define CFG_SECCOMP 10     /* struct sock_filter[] */
#define CFG_NNP 11         /* u8 */
#define CFG_READONLY 12    /* u8 */
#define CFG_TERMINAL 13    /* u16 rows, u16 cols */
#define CFG_INTERACTIVE 14 /* u8 */
#define CFG_MEMORY 15      /* u64 bytes */
#define CFG_PIDS 16        /* i64 */
#define CFG_CPU 17         /* i64 quota, u64 period (microseconds) */
#define CFG_MASKED 18      /* string, repeated */
#define CFG_READONLY_PATH 19 /* string, repeated */
#define CFG_TMPFS 20       /* u8 read-only, destination, NUL, options; repeated */
#define CFG_TIME 21        /* u64 CLOCK_REALTIME ns of the host */
#define CFG_ROOTDEV 22     /* string: the image's block device */
#define CFG_DEBUG 23       /* u8 */
#define CFG_PROBE 24       /* u8: bind the initramfs's /probe at /.swvm-probe */
#define CFG_ENTROPY 25     /* bytes from the host's getrandom: credited, then the CRNG reseeds */
/* 40 and up: networking (--network bridge) */
#define CFG_NET_IF 40      /* eth0: u8 addr[4], u8 prefix, u8 gateway[4], u16 mtu, u8 mac[6] (addresses in network order) */
#define CFG_ETC_HOSTS 41   /* string: the whole /etc/hosts */
#define CFG_RESOLV_CONF 42 /* string: the whole /etc/resolv.conf */

#define CONTROL_PORT "/dev/vport0p0"
#define STDIN_PORT "/dev/vport0p1"
#define STDOUT_PORT "/dev/vport0p2"
#define STDERR_PORT "/dev/vport0p3"

#endif
