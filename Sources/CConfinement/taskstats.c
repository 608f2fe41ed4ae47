/*
 * The TASKSTATS messages guest-init reads for its early exit report
 * (swvm_taskstats.h). The kernel writes them, but every length in them is
 * checked before it is used: a parser that trusts a length field is one
 * bug away from reading past the datagram.
 */
#include <string.h>

#include "swvm_taskstats.h"

#define NLMSG_HDR_LEN 16
#define GENL_HDR_LEN 4
#define NLA_HDR_LEN 4
#define NLA_TYPE_MASK 0x3fff   /* without NLA_F_NESTED and NLA_F_NET_BYTEORDER */
#define ALIGN4(n) (((n) + 3) & ~(size_t)3)

static uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

/* One attribute at `p` of the `left` bytes that remain: its type and
 * payload, and the bytes it takes (aligned); 0 when it does not fit. */
static size_t next_attr(const uint8_t *p, size_t left, uint16_t *type, const uint8_t **payload, size_t *plen) {
    if (left < NLA_HDR_LEN) return 0;
    size_t len = get16(p);
    if (len < NLA_HDR_LEN || len > left) return 0;
    *type = get16(p + 2) & NLA_TYPE_MASK;
    *payload = p + NLA_HDR_LEN;
    *plen = len - NLA_HDR_LEN;
    size_t step = ALIGN4(len);
    return step > left ? left : step;
}

/* The AGGR_PID part: 1 with *code when it is the end of group `pid`
 * through its leader (the PID attribute, and the statistics' own pid and
 * tgid, are `pid`; AGROUP set). Each attribute at most once. */
static int leader_ended(const uint8_t *p, size_t left, uint32_t pid, uint32_t *code) {
    const uint8_t *stats = NULL;
    size_t stats_len = 0;
    int have_pid = 0;
    uint32_t task = 0;
    while (left > 0) {
        uint16_t type;
        const uint8_t *v;
        size_t vlen, step = next_attr(p, left, &type, &v, &vlen);
        if (!step) return 0;
        if (type == SWVM_TASKSTATS_TYPE_PID) {
            if (have_pid || vlen != 4) return 0;
            have_pid = 1;
            task = get32(v);
        } else if (type == SWVM_TASKSTATS_TYPE_STATS) {
            if (stats) return 0;
            stats = v;
            stats_len = vlen;
        }
        p += step;
        left -= step;
    }
    if (!have_pid || task != pid || !stats || stats_len < SWVM_TS_MIN_LEN) return 0;
    if (get16(stats) < SWVM_TS_MIN_VERSION) return 0;
    if (get32(stats + SWVM_TS_OFF_PID) != pid || get32(stats + SWVM_TS_OFF_TGID) != pid) return 0;
    if (!(stats[SWVM_TS_OFF_FLAG] & SWVM_AGROUP)) return 0;
    *code = get32(stats + SWVM_TS_OFF_EXITCODE);
    return 1;
}

/* One TASKSTATS_CMD_NEW message's attributes: the group's end, reported
 * by a message without a group part (AGGR_TGID: the group had threads). */
static int group_ended(const uint8_t *p, size_t left, uint32_t pid, uint32_t *code) {
    int parts = 0, ended = 0, threads = 0;
    while (left > 0) {
        uint16_t type;
        const uint8_t *v;
        size_t vlen, step = next_attr(p, left, &type, &v, &vlen);
        if (!step) return 0;
        if (type == SWVM_TASKSTATS_TYPE_AGGR_PID) {
            if (parts++) return 0;
            ended = leader_ended(v, vlen, pid, code);
        } else if (type == SWVM_TASKSTATS_TYPE_AGGR_TGID) {
            threads = 1;
        }
        p += step;
        left -= step;
    }
    return ended && !threads;
}

/* A wait status as an exit or a death by a signal; anything else (a stop
 * status, bits above 16) is not an exit's. */
static int is_exit_status(uint32_t code) {
    if (code > 0xffff) return 0;
    uint32_t sig = code & 0x7f;
    if (sig == 0) return (code & 0x80) == 0;   /* the core flag goes with a signal only */
    return sig != 0x7f;
}

int swvm_taskstats_exit(const uint8_t *buf, size_t len, uint16_t family, uint32_t pid, int *wait_status) {
    if (!buf || pid == 0 || family == 0) return 0;
    while (len >= NLMSG_HDR_LEN) {
        size_t mlen = get32(buf);
        if (mlen < NLMSG_HDR_LEN || mlen > len) return 0;
        uint32_t code = 0;
        if (get16(buf + 4) == family && mlen >= NLMSG_HDR_LEN + GENL_HDR_LEN &&
            buf[NLMSG_HDR_LEN] == SWVM_TASKSTATS_CMD_NEW &&
            group_ended(buf + NLMSG_HDR_LEN + GENL_HDR_LEN, mlen - NLMSG_HDR_LEN - GENL_HDR_LEN, pid, &code) &&
            is_exit_status(code)) {
            *wait_status = (int)code;
            return 1;
        }
        size_t step = ALIGN4(mlen);
        if (step >= len) break;
        buf += step;
        len -= step;
    }
    return 0;
}

uint16_t swvm_genl_family_id(const uint8_t *buf, size_t len, const char *name) {
    if (!buf || !name || len < NLMSG_HDR_LEN + GENL_HDR_LEN) return 0;
    size_t mlen = get32(buf);
    if (mlen < NLMSG_HDR_LEN + GENL_HDR_LEN || mlen > len || get16(buf + 4) != SWVM_GENL_ID_CTRL) return 0;
    const uint8_t *p = buf + NLMSG_HDR_LEN + GENL_HDR_LEN;
    size_t left = mlen - NLMSG_HDR_LEN - GENL_HDR_LEN, nlen = strlen(name);
    uint16_t id = 0;
    int named = 0;
    while (left > 0) {
        uint16_t type;
        const uint8_t *v;
        size_t vlen, step = next_attr(p, left, &type, &v, &vlen);
        if (!step) return 0;
        if (type == SWVM_CTRL_ATTR_FAMILY_ID && vlen == 2) id = get16(v);
        /* The name with its NUL, as the kernel puts it. */
        if (type == SWVM_CTRL_ATTR_FAMILY_NAME && vlen == nlen + 1 && memcmp(v, name, nlen) == 0 && v[nlen] == 0) named = 1;
        p += step;
        left -= step;
    }
    return named ? id : 0;
}

int swvm_netlink_acked(const uint8_t *buf, size_t len) {
    static const uint16_t nlmsg_error = 2;
    if (!buf || len < NLMSG_HDR_LEN + 4) return 0;
    size_t mlen = get32(buf);
    if (mlen < NLMSG_HDR_LEN + 4 || mlen > len || get16(buf + 4) != nlmsg_error) return 0;
    return get32(buf + NLMSG_HDR_LEN) == 0;
}

void swvm_taskstats_filter(uint32_t pid, struct swvm_bpf_insn prog[SWVM_TS_FILTER_LEN]) {
    /* A classic BPF load reads big-endian; the kernel wrote the pid in
     * its own order: compare with those bytes read as big-endian. */
    uint8_t b[4];
    memcpy(b, &pid, 4);
    uint32_t as_loaded = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    static const uint16_t ld_w_abs = 0x20, jeq_k = 0x15, ret_k = 0x06;
    prog[0] = (struct swvm_bpf_insn){ ld_w_abs, 0, 0, SWVM_TS_PID_OFFSET };
    prog[1] = (struct swvm_bpf_insn){ jeq_k, 0, 1, as_loaded };
    prog[2] = (struct swvm_bpf_insn){ ret_k, 0, 0, 0xffffffffu };
    prog[3] = (struct swvm_bpf_insn){ ret_k, 0, 0, 0 };
    /* pid 0 is no task's: pass nothing. */
    if (pid == 0) prog[0] = prog[3];
}
