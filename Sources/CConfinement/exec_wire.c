/* Encoders and decoders of the exec and control frames
 * (swvm_run_settings.h, "exec and control"), shared by guest-init, the
 * VMM and its clients. Every decoder checks lengths and limits itself:
 * its bytes may come from a hostile guest. */
#define _GNU_SOURCE
#include "swvm_run_settings.h"

#include <stdio.h>
#include <string.h>

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }
static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)v); put32(p + 4, (uint32_t)(v >> 32)); }

void swvm_exec_head_encode(const struct swvm_exec_head *m, uint8_t out[SWVM_EXEC_HEAD_LEN]) { put32(out, m->id); }

int swvm_exec_head_decode(const uint8_t *p, size_t len, struct swvm_exec_head *m) {
    memset(m, 0, sizeof *m);
    if (len < SWVM_EXEC_HEAD_LEN) return -1;
    m->id = get32(p);
    return 0;
}

void swvm_exec_value_encode(const struct swvm_exec_value *m, uint8_t out[SWVM_EXEC_VALUE_LEN]) {
    put32(out, m->id);
    put32(out + 4, m->value);
}

int swvm_exec_value_decode(const uint8_t *p, size_t len, struct swvm_exec_value *m) {
    memset(m, 0, sizeof *m);
    if (len < SWVM_EXEC_VALUE_LEN) return -1;
    m->id = get32(p);
    m->value = get32(p + 4);
    return 0;
}

void swvm_exec_data_encode(uint32_t id, uint32_t stream, uint8_t out[SWVM_EXEC_DATA_HEAD_LEN]) {
    put32(out, id);
    put32(out + 4, stream);
}

int swvm_exec_data_decode(const uint8_t *p, size_t len, struct swvm_exec_data *m) {
    memset(m, 0, sizeof *m);
    if (len < SWVM_EXEC_DATA_HEAD_LEN || len - SWVM_EXEC_DATA_HEAD_LEN > SWVM_EXEC_CHUNK) return -1;
    uint32_t stream = get32(p + 4);
    if (stream > 2) return -1;
    m->id = get32(p);
    m->stream = stream;
    m->data = p + SWVM_EXEC_DATA_HEAD_LEN;
    m->data_len = (uint32_t)(len - SWVM_EXEC_DATA_HEAD_LEN);
    return 0;
}

void swvm_exec_resize_encode(const struct swvm_exec_resize *m, uint8_t out[SWVM_EXEC_RESIZE_LEN]) {
    put32(out, m->id);
    put16(out + 4, m->rows);
    put16(out + 6, m->cols);
}

int swvm_exec_resize_decode(const uint8_t *p, size_t len, struct swvm_exec_resize *m) {
    memset(m, 0, sizeof *m);
    if (len < SWVM_EXEC_RESIZE_LEN) return -1;
    m->id = get32(p);
    m->rows = get16(p + 4);
    m->cols = get16(p + 6);
    return 0;
}

/* Only the fields an exec may set: the rest of its confinement is the
 * workload's, never the request's. */
static int exec_field_allowed(uint16_t tag) {
    switch (tag) {
    case CFG_ARG: case CFG_ENV: case CFG_CWD: case CFG_UID: case CFG_GID: case CFG_GROUPS:
    case CFG_TERMINAL: case CFG_INTERACTIVE:
        return 1;
    default:
        return 0;
    }
}

int swvm_exec_decode(const uint8_t *p, size_t len, struct swvm_exec_head *head, struct swvm_settings *out,
                     char *error, size_t error_len) {
    memset(out, 0, sizeof *out);
    if (swvm_exec_head_decode(p, len, head) != 0) {
        snprintf(error, error_len, "exec: a request of %zu bytes, shorter than its head", len);
        return -1;
    }
    const uint8_t *fields = p + SWVM_EXEC_HEAD_LEN;
    size_t n = len - SWVM_EXEC_HEAD_LEN;
    /* Walk the fields once for their tags; their lengths are checked again
     * by the decoder proper. */
    for (size_t off = 0; off + 6 <= n;) {
        uint16_t tag = get16(fields + off);
        uint32_t flen = get32(fields + off + 2);
        if (!exec_field_allowed(tag)) {
            snprintf(error, error_len, "exec: field %u is not one an exec may set", tag);
            return -1;
        }
        if (flen > n - off - 6) break;
        off += 6 + (size_t)flen;
    }
    if (swvm_settings_decode(fields, n, out, error, error_len) != 0) return -1;
    if (out->cwd[0] != '/') {
        snprintf(error, error_len, "exec: the working directory \"%.200s\" is not absolute", out->cwd);
        swvm_settings_free(out);
        return -1;
    }
    return 0;
}

int swvm_ps_entry_encode(const struct swvm_ps_entry *e, uint8_t *out, size_t cap, size_t *off) {
    uint16_t clen = e->command_len > SWVM_PS_COMMAND ? (uint16_t)SWVM_PS_COMMAND : e->command_len;
    if (*off > cap || cap - *off < SWVM_PS_ENTRY_HEAD_LEN + (size_t)clen) return -1;
    uint8_t *q = out + *off;
    put32(q, e->pid);
    put32(q + 4, e->ppid);
    put32(q + 8, e->uid);
    put16(q + 12, clen);
    memcpy(q + SWVM_PS_ENTRY_HEAD_LEN, e->command, clen);
    *off += SWVM_PS_ENTRY_HEAD_LEN + (size_t)clen;
    return 0;
}

int swvm_ps_entry_next(const uint8_t *p, size_t len, size_t *off, struct swvm_ps_entry *e) {
    memset(e, 0, sizeof *e);
    if (*off >= len) return 0;
    if (len - *off < SWVM_PS_ENTRY_HEAD_LEN) return -1;
    const uint8_t *q = p + *off;
    uint16_t clen = get16(q + 12);
    if (clen > SWVM_PS_COMMAND || len - *off - SWVM_PS_ENTRY_HEAD_LEN < clen) return -1;
    e->pid = get32(q);
    e->ppid = get32(q + 4);
    e->uid = get32(q + 8);
    e->command_len = clen;
    e->command = q + SWVM_PS_ENTRY_HEAD_LEN;
    *off += SWVM_PS_ENTRY_HEAD_LEN + (size_t)clen;
    return 1;
}

size_t swvm_exec_error_encode(uint32_t id, uint32_t code, int32_t err, const char *message, uint32_t len,
                              uint8_t *out, size_t cap) {
    if (cap < 12 || cap - 12 < len) return 0;
    put32(out, id);
    put32(out + 4, code);
    put32(out + 8, (uint32_t)err);
    memcpy(out + 12, message, len);
    return 12 + (size_t)len;
}

void swvm_update_encode(const struct swvm_update *m, uint8_t out[SWVM_UPDATE_LEN]) {
    put32(out, m->id);
    put32(out + 4, m->fields);
    put64(out + 8, m->memory);
    put64(out + 16, (uint64_t)m->pids);
}

int swvm_update_decode(const uint8_t *p, size_t len, struct swvm_update *m) {
    memset(m, 0, sizeof *m);
    if (len != SWVM_UPDATE_LEN) return -1;
    m->id = get32(p);
    m->fields = get32(p + 4);
    m->memory = get64(p + 8);
    m->pids = (int64_t)get64(p + 16);
    if (m->fields == 0 || (m->fields & ~(SWVM_UPDATE_MEMORY | SWVM_UPDATE_PIDS)) != 0) return -1;
    if ((m->fields & SWVM_UPDATE_MEMORY) && m->memory == 0) return -1;
    if ((m->fields & SWVM_UPDATE_PIDS) && m->pids < 1 && m->pids != SWVM_UPDATE_UNLIMITED) return -1;
    return 0;
}
