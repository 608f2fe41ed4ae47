/*
 * guest-init's TASKSTATS listener (early_exit.h): a generic-netlink
 * socket registered for every possible CPU's exit messages, filtered in
 * the kernel down to the workload's, so that no other exit in the guest
 * wakes guest-init (each wake-up is emulated kernel work on a PVM host).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "early_exit.h"
#include "swvm_taskstats.h"

/* <linux/netlink.h> and <linux/filter.h>, which musl's headers do not carry. */
#define NETLINK_GENERIC_ 16
#define NLM_F_REQUEST_ 0x1
#define NLM_F_ACK_ 0x4
struct sockaddr_nl_ { sa_family_t nl_family; unsigned short nl_pad; uint32_t nl_pid, nl_groups; };
struct nlmsghdr_ { uint32_t len; uint16_t type, flags; uint32_t seq, pid; };
struct sock_fprog_ { unsigned short len; struct swvm_bpf_insn *filter; };

static uint16_t family;

/* One request (a genetlink command with one string attribute) and its
 * reply (with `flags` NLM_F_ACK_, the acknowledgement), read at once: the
 * kernel answers within the sendto. Returns the reply's length (from the
 * kernel, port 0), or -1. */
static ssize_t request(int fd, uint16_t type, uint16_t flags, uint8_t cmd, uint16_t attr, const char *value, uint8_t *reply, size_t cap) {
    struct { struct nlmsghdr_ h; uint8_t genl[4]; uint8_t attr[4 + 64]; } req;
    size_t vlen = strlen(value) + 1;
    if (vlen > 64) return -1;
    memset(&req, 0, sizeof req);
    uint16_t alen = (uint16_t)(4 + vlen), atype = attr;
    memcpy(req.attr, &alen, 2);
    memcpy(req.attr + 2, &atype, 2);
    memcpy(req.attr + 4, value, vlen);
    req.h = (struct nlmsghdr_){ .len = (uint32_t)(sizeof req.h + 4 + ((alen + 3u) & ~3u)), .type = type,
                                .flags = (uint16_t)(NLM_F_REQUEST_ | flags), .seq = 1 };
    req.genl[0] = cmd;
    req.genl[1] = 1;   /* the families' version 1 */
    struct sockaddr_nl_ kernel = { .nl_family = AF_NETLINK };
    if (sendto(fd, &req, req.h.len, 0, (struct sockaddr *)&kernel, sizeof kernel) != (ssize_t)req.h.len) return -1;
    struct sockaddr_nl_ from;
    socklen_t flen = sizeof from;
    ssize_t n = recvfrom(fd, reply, cap, MSG_DONTWAIT, (struct sockaddr *)&from, &flen);
    if (n <= 0 || flen < sizeof from || from.nl_pid != 0) return -1;
    return n;
}

/* Every possible CPU, as the kernel's own cpulist ("0-1"). */
static int possible_cpus(char *list, size_t cap) {
    int fd = open("/sys/devices/system/cpu/possible", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, list, cap - 1);
    close(fd);
    if (n <= 0) return -1;
    while (n > 0 && (list[n - 1] == '\n' || list[n - 1] == 0)) n--;
    list[n] = 0;
    return n > 0 ? 0 : -1;
}

/* Drops what the socket queued before its filter was set. */
static void drain(int fd) {
    uint8_t buf[2048];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && errno != ENOBUFS && errno != EINTR) return;
        if (n == 0) return;
    }
}

int early_exit_open(void) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_GENERIC_);
    if (fd < 0) return -1;
    uint8_t reply[4096];
    char cpus[256];
    ssize_t n = request(fd, SWVM_GENL_ID_CTRL, 0, SWVM_CTRL_CMD_GETFAMILY, SWVM_CTRL_ATTR_FAMILY_NAME, "TASKSTATS", reply, sizeof reply);
    family = n > 0 ? swvm_genl_family_id(reply, (size_t)n, "TASKSTATS") : 0;
    /* Registering has no reply but its acknowledgement. */
    if (!family || possible_cpus(cpus, sizeof cpus) != 0 ||
        (n = request(fd, family, NLM_F_ACK_, SWVM_TASKSTATS_CMD_GET, SWVM_TASKSTATS_CMD_ATTR_REGISTER_CPUMASK, cpus, reply, sizeof reply)) <= 0 ||
        !swvm_netlink_acked(reply, (size_t)n) || early_exit_watch(fd, 0) != 0) {
        close(fd);
        return -1;
    }
    drain(fd);
    return fd;
}

int early_exit_watch(int fd, pid_t pid) {
    struct swvm_bpf_insn prog[SWVM_TS_FILTER_LEN];
    swvm_taskstats_filter((uint32_t)pid, prog);
    struct sock_fprog_ fprog = { .len = SWVM_TS_FILTER_LEN, .filter = prog };
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof fprog) == 0 ? 0 : -1;
}

int early_exit_read(int fd, pid_t pid, int *wait_status) {
    uint8_t buf[4096];
    for (;;) {
        struct sockaddr_nl_ from;
        socklen_t flen = sizeof from;
        ssize_t n = recvfrom(fd, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *)&from, &flen);
        if (n < 0 && (errno == EINTR || errno == ENOBUFS)) continue;   /* ENOBUFS: an overrun, said once */
        if (n <= 0) return 0;
        /* Only the kernel's word counts (port 0); a message cut to the buffer does not parse. */
        if (flen < sizeof from || from.nl_pid != 0) continue;
        if (swvm_taskstats_exit(buf, (size_t)n, family, (uint32_t)pid, wait_status)) return 1;
    }
}
