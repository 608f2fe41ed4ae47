/* libFuzzer harness for the run settings' decoder, the frame reader and
 * the payload decoders (Sources/CConfinement/run_settings.c): the bytes are
 * a MSG_CONFIG payload, a MSG_CONFINED payload, MSG_RUN's per-run fields
 * added to a template's settings (swvm_run_fields_apply), and again a stream of
 * control frames, each decoded by its type's decoder and encoded back
 * (the exec and control frames of exec_wire.c too), and as a seccomp
 * program for a template's preload check (seccomp_preload.c).
 * Run with scripts/fuzz.sh. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <unistd.h>

#include "swvm_confine.h"
#include "swvm_run_settings.h"

/* Decodes a frame's payload by its type (and a frame of type CFG_NET_IF
 * as that field's bytes) and checks that encoding the result gives back
 * the bytes the layout covers. */
static void check_payload(uint32_t type, const uint8_t *body, size_t len) {
    uint8_t out[SWVM_NET_IF_LEN];
    switch (type) {
    case MSG_SIGNAL: {
        struct swvm_signal m;
        if (swvm_signal_decode(body, len, &m) == 0) { swvm_signal_encode(&m, out); if (memcmp(out, body, SWVM_SIGNAL_LEN)) abort(); }
        break;
    }
    case MSG_RESIZE: {
        struct swvm_resize m;
        if (swvm_resize_decode(body, len, &m) == 0) { swvm_resize_encode(&m, out); if (memcmp(out, body, SWVM_RESIZE_LEN)) abort(); }
        break;
    }
    case MSG_STARTED: {
        struct swvm_started m;
        if (swvm_started_decode(body, len, &m) == 0 && len >= SWVM_STARTED_LEN) {
            swvm_started_encode(&m, out);
            if (memcmp(out, body, SWVM_STARTED_LEN)) abort();
        }
        break;
    }
    case MSG_EXIT: {
        struct swvm_exit m;
        if (swvm_exit_decode(body, len, &m) == 0) { swvm_exit_encode(&m, out); if (memcmp(out, body, SWVM_EXIT_LEN)) abort(); }
        break;
    }
    case CFG_NET_IF: {
        struct swvm_net_if m;
        if (swvm_net_if_decode(body, len, &m) == 0) { swvm_net_if_encode(&m, out); if (memcmp(out, body, SWVM_NET_IF_LEN)) abort(); }
        break;
    }
    }
}

/* The exec and control frames (exec_wire.c): decoded, and what a decoder
 * accepts encoded back to the same bytes. */
static void check_exec_payload(uint32_t type, const uint8_t *body, size_t len) {
    uint8_t out[SWVM_EXEC_VALUE_LEN];
    switch (type) {
    case MSG_EXEC: {
        struct swvm_exec_head head;
        struct swvm_settings s;
        char error[256];
        if (swvm_exec_decode(body, len, &head, &s, error, sizeof error) == 0) {
            if (s.nargs == 0 || s.args[s.nargs] != NULL || s.cwd[0] != '/') abort();
            swvm_settings_free(&s);
        }
        break;
    }
    case MSG_EXEC_INPUT: case MSG_EXEC_OUTPUT: {
        struct swvm_exec_data d;
        if (swvm_exec_data_decode(body, len, &d) == 0) {
            if (d.stream > 2 || d.data_len > SWVM_EXEC_CHUNK || d.data + d.data_len != body + len) abort();
            swvm_exec_data_encode(d.id, d.stream, out);
            if (memcmp(out, body, SWVM_EXEC_DATA_HEAD_LEN)) abort();
        }
        break;
    }
    case MSG_EXEC_RESIZE: {
        struct swvm_exec_resize m;
        if (swvm_exec_resize_decode(body, len, &m) == 0) { swvm_exec_resize_encode(&m, out); if (memcmp(out, body, SWVM_EXEC_RESIZE_LEN)) abort(); }
        break;
    }
    case MSG_EXEC_SIGNAL: case MSG_EXEC_ACK: case MSG_EXEC_STARTED: case MSG_EXEC_EXIT: case MSG_EXEC_INPUT_ACK: {
        struct swvm_exec_value m;
        if (swvm_exec_value_decode(body, len, &m) == 0) { swvm_exec_value_encode(&m, out); if (memcmp(out, body, SWVM_EXEC_VALUE_LEN)) abort(); }
        break;
    }
    case MSG_UPDATE: {
        struct swvm_update m;
        uint8_t again[SWVM_UPDATE_LEN];
        if (swvm_update_decode(body, len, &m) == 0) {
            if (len != SWVM_UPDATE_LEN || m.fields == 0 || (m.fields & ~(SWVM_UPDATE_MEMORY | SWVM_UPDATE_PIDS))) abort();
            swvm_update_encode(&m, again);
            if (memcmp(again, body, SWVM_UPDATE_LEN)) abort();
        }
        break;
    }
    case MSG_PS_LIST: {
        /* Every entry read encodes back to the bytes it was read from. */
        struct swvm_exec_head head;
        if (swvm_exec_head_decode(body, len, &head) != 0) break;
        uint8_t *copy = malloc(len);
        size_t off = SWVM_EXEC_HEAD_LEN, again = SWVM_EXEC_HEAD_LEN;
        struct swvm_ps_entry e;
        while (copy && swvm_ps_entry_next(body, len, &off, &e) == 1) {
            if (e.command_len > SWVM_PS_COMMAND || off > len) abort();
            if (swvm_ps_entry_encode(&e, copy, len, &again) != 0 || again != off) abort();
        }
        if (copy && memcmp(copy + SWVM_EXEC_HEAD_LEN, body + SWVM_EXEC_HEAD_LEN, again - SWVM_EXEC_HEAD_LEN)) abort();
        free(copy);
        break;
    }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct swvm_settings s;
    char error[256];
    if (swvm_settings_decode(data, size, &s, error, sizeof error) == 0) {
        /* Decoded lists are NULL-terminated and the strings are C strings. */
        for (uint32_t i = 0; i < s.nargs; i++) (void)strlen(s.args[i]);
        if (s.args[s.nargs] != NULL || s.env[s.nenv] != NULL) abort();
        swvm_settings_free(&s);
    }
    /* The same bytes as a MSG_CONFINED payload (from guest-init). */
    if (swvm_fields_decode(data, size, &s, error, sizeof error) == 0) {
        for (uint32_t i = 0; i < s.nmasked; i++) (void)strlen(s.masked[i]);
        for (uint32_t i = 0; i < s.nreadonly_paths; i++) (void)strlen(s.readonly_paths[i]);
        swvm_settings_free(&s);
    }
    /* The same bytes as MSG_RUN after a template's settings (CFG_TEMPLATE, flags 0). */
    static const uint8_t template_config[] = { CFG_TEMPLATE, 0, 1, 0, 0, 0, 0 };
    if (swvm_settings_decode(template_config, sizeof template_config, &s, error, sizeof error) != 0) abort();
    if (swvm_run_fields_apply(data, size, &s, error, sizeof error) == 0) {
        /* Whole settings now: a command, NULL-terminated lists, no template mode. */
        if (s.nargs == 0 || s.args[s.nargs] != NULL || s.env[s.nenv] != NULL || s.template_mode) abort();
    }
    swvm_settings_free(&s);
    /* And after an OCI root template's (flags SWVM_TEMPLATE_OCI_ROOT: every field but the root's is the run's). */
    static const uint8_t oci_root_config[] = { CFG_OCI_DISK_ROOT, 0, 1, 0, 0, 0, 1, CFG_TEMPLATE, 0, 1, 0, 0, 0, SWVM_TEMPLATE_OCI_ROOT };
    if (swvm_settings_decode(oci_root_config, sizeof oci_root_config, &s, error, sizeof error) != 0) abort();
    if (swvm_run_fields_apply(data, size, &s, error, sizeof error) == 0) {
        if (s.nargs == 0 || s.args[s.nargs] != NULL || s.env[s.nenv] != NULL || s.template_mode || !s.oci_disk_root) abort();
    }
    swvm_settings_free(&s);
    /* The same bytes as a seccomp program: the template's preload check
     * (seccomp_preload.c) says yes or no, and ends. */
    for (int flags = 0; flags < 4; flags++)
        if (swvm_seccomp_allows_template_setup(data, (uint32_t)size, flags & 1, flags >> 1) > 1) abort();
    /* And the exec zygote's (its clone's arguments known). */
    if (swvm_seccomp_allows_exec_zygote(data, (uint32_t)size) > 1) abort();
    int fd = memfd_create("frames", MFD_CLOEXEC);
    if (fd < 0) return 0;
    if (write(fd, data, size) == (ssize_t)size && lseek(fd, 0, SEEK_SET) == 0) {
        uint32_t type, len;
        uint8_t *body;
        while ((body = swvm_frame_read_alloc(fd, &type, &len, SWVM_MAX_GUEST_FRAME)) != NULL) {
            check_payload(type, body, len);
            check_exec_payload(type, body, len);
            free(body);
        }
    }
    close(fd);
    return 0;
}
