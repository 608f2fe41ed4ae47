/* /init for bench.py warm's QEMU side: says it is ready, then idles, so
 * that QEMU can save the VM (migrate to a file) and restore it. */
#include <stdio.h>
#include <unistd.h>

int main(void) {
    printf("SWVM-BENCH-READY\n");
    fflush(stdout);
    for (;;) pause();
}
