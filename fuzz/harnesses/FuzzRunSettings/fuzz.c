/* libFuzzer harness for the run settings' decoder and the frame reader
 * (Sources/CConfinement/run_settings.c): the bytes are a MSG_CONFIG payload,
 * a MSG_CONFINED payload, and again a stream of control frames. Build and run: ./build.sh [seconds]. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <unistd.h>

#include "swvm_run_settings.h"

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
    int fd = memfd_create("frames", MFD_CLOEXEC);
    if (fd < 0) return 0;
    if (write(fd, data, size) == (ssize_t)size && lseek(fd, 0, SEEK_SET) == 0) {
        uint8_t body[64];
        uint32_t type, len;
        while (swvm_frame_read(fd, &type, &len, body, sizeof body) == 0) {}
    }
    close(fd);
    return 0;
}
