/* libFuzzer harness for the TASKSTATS messages guest-init reads for its
 * early exit report (Sources/CConfinement/taskstats.c): the first byte
 * picks the reader (an exit message, a GETFAMILY reply, an
 * acknowledgement), the next four are the pid watched, the rest is the
 * datagram, copied to a buffer of exactly its size so that AddressSanitizer
 * sees any read past it. Oracle besides crashes: an exit it accepts is a
 * wait status of an exit or of a death by a signal, and the same bytes
 * give the same answer again. Seeds: messages a real kernel sent (a
 * child's exit(3), SIGKILL, SIGSEGV, a group that had threads, exit_group
 * from a thread, exit(2) of each thread), a GETFAMILY reply and an
 * acknowledgement. Run with scripts/fuzz.sh. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "swvm_taskstats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 5) return 0;
    uint8_t mode = data[0] % 3;
    uint32_t pid;
    memcpy(&pid, data + 1, 4);
    size_t len = size - 5;
    uint8_t *msg = malloc(len ? len : 1);
    if (!msg) return 0;
    memcpy(msg, data + 5, len);
    if (mode == 0) {
        int ws = -1, again = -1;
        int got = swvm_taskstats_exit(msg, len, 0x17, pid, &ws);
        if (got) {
            if (ws < 0 || ws > 0xffff || !(WIFEXITED(ws) || WIFSIGNALED(ws))) abort();
            if (WIFEXITED(ws) && (ws & 0x80)) abort();
        }
        if (swvm_taskstats_exit(msg, len, 0x17, pid, &again) != got || (got && again != ws)) abort();
    } else if (mode == 1) {
        swvm_genl_family_id(msg, len, "TASKSTATS");
    } else {
        swvm_netlink_acked(msg, len);
    }
    struct swvm_bpf_insn prog[SWVM_TS_FILTER_LEN];
    swvm_taskstats_filter(pid, prog);
    free(msg);
    return 0;
}
