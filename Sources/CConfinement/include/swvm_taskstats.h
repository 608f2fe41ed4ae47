/*
 * guest-init's early exit report (issue 22): the guest kernel's TASKSTATS
 * generic-netlink messages, read without trusting their lengths.
 *
 * Linux's do_exit() sends a listener of TASKSTATS (registered with
 * TASKSTATS_CMD_ATTR_REGISTER_CPUMASK) the exiting task's statistics,
 * ac_exitcode (the wait status) among them, BEFORE it tears down the
 * task's address space (exit_mm). In the emulated guest kernel of a PVM
 * host that teardown is most of a second for python3, so guest-init
 * reports the workload's exit from this message instead of waiting for
 * SIGCHLD. Only what the kernel's message says unambiguously is taken
 * (swvm_taskstats_exit); anything else leaves the exit to waitpid.
 *
 * Here rather than in guest-init/ so that the fuzz harness (FuzzTaskstats)
 * and swvm's unit tests drive the very code guest-init runs. Constants
 * are spelled out: musl's headers do not carry <linux/taskstats.h>.
 */
#ifndef SWVM_TASKSTATS_H
#define SWVM_TASKSTATS_H

#include <stddef.h>
#include <stdint.h>

/* <linux/genetlink.h>, <linux/taskstats.h>, <linux/acct.h> (Linux 6.1). */
#define SWVM_GENL_ID_CTRL 0x10
#define SWVM_CTRL_CMD_GETFAMILY 3
#define SWVM_CTRL_ATTR_FAMILY_ID 1
#define SWVM_CTRL_ATTR_FAMILY_NAME 2
#define SWVM_TASKSTATS_CMD_GET 1
#define SWVM_TASKSTATS_CMD_NEW 2
#define SWVM_TASKSTATS_TYPE_PID 1
#define SWVM_TASKSTATS_TYPE_TGID 2
#define SWVM_TASKSTATS_TYPE_STATS 3
#define SWVM_TASKSTATS_TYPE_AGGR_PID 4
#define SWVM_TASKSTATS_TYPE_AGGR_TGID 5
#define SWVM_TASKSTATS_CMD_ATTR_REGISTER_CPUMASK 3
#define SWVM_AGROUP 0x20          /* ac_flag: the last thread of its group */
/* struct taskstats: version (u16) at 0, ac_exitcode (u32) at 4, ac_flag
 * (u8) at 8, ac_pid (u32) at 128, ac_tgid (u32) at 368; AGROUP and
 * ac_tgid exist from version 12 on (6.1 sends 13). */
#define SWVM_TS_OFF_EXITCODE 4
#define SWVM_TS_OFF_FLAG 8
#define SWVM_TS_OFF_PID 128
#define SWVM_TS_OFF_TGID 368
#define SWVM_TS_MIN_LEN 372
#define SWVM_TS_MIN_VERSION 12

/* Where the AGGR_PID part's PID value sits in a TASKSTATS_CMD_NEW message
 * (nlmsghdr 16, genlmsghdr 4, the AGGR_PID attribute's header 4, the PID
 * attribute's 4): the socket filter (swvm_taskstats_filter) reads it. */
#define SWVM_TS_PID_OFFSET 28

/* What one datagram from the TASKSTATS family says about thread group
 * `pid`: 1 with *wait_status (the status waitpid would give, as
 * <sys/wait.h>'s macros read it) when it reports that group's end and
 * nothing makes the status uncertain; 0 otherwise (another task, a
 * thread, a group that had threads, a malformed or cut message).
 * `family` is the family's id (swvm_genl_family_id).
 *
 * Why a group that had threads is left to waitpid: the status waitpid
 * gives is the group's exit code, which the thread that ends the group
 * need not carry (two threads calling exit(2) with different codes at
 * once; the last of them to leave is the one reported here, not
 * necessarily the one whose code the group kept). The kernel sends the
 * group's own part (AGGR_TGID) when the group had more than one thread
 * at some exit, so its presence is the test. Two races the message
 * cannot show, both between exits that happen at the same moment: the
 * kernel failing to allocate the group's part (then a group that had
 * threads looks like one that did not), and a fatal signal arriving while
 * a single thread is inside a bare exit(2) (glibc's and musl's exit() use
 * exit_group, which takes the signal's code): the message then gives the
 * exit's code where waitpid gives the signal's. The kernel itself does
 * the latter in reboot(2) inside a PID namespace (SIGKILL to the
 * namespace's init, then exit(0)), so guest-init does not listen when the
 * workload may hold CAP_SYS_BOOT. */
int swvm_taskstats_exit(const uint8_t *buf, size_t len, uint16_t family, uint32_t pid, int *wait_status);

/* The id of the generic-netlink family `name` in a CTRL_CMD_GETFAMILY
 * reply: 0 when the reply names another family, is an error (the kernel
 * lacks the family: CONFIG_TASKSTATS off) or is malformed. */
uint16_t swvm_genl_family_id(const uint8_t *buf, size_t len, const char *name);

/* Whether a netlink reply is the acknowledgement of a request that
 * succeeded (NLMSG_ERROR with error 0). */
int swvm_netlink_acked(const uint8_t *buf, size_t len);

/* A classic BPF socket filter (struct sock_filter's layout: u16 code,
 * u8 jt, u8 jf, u32 k) that passes only messages whose AGGR_PID part is
 * `pid`'s, or (pid 0) none. Fills `prog` (SWVM_TS_FILTER_LEN entries). */
#define SWVM_TS_FILTER_LEN 4
struct swvm_bpf_insn { uint16_t code; uint8_t jt, jf; uint32_t k; };
void swvm_taskstats_filter(uint32_t pid, struct swvm_bpf_insn prog[SWVM_TS_FILTER_LEN]);

#endif
