// Ordered access to memory shared with the guest (virtqueue rings): the
// guest runs concurrently on another CPU, so reads of an index must come
// before the reads of what it publishes, and writes of what we publish
// before the write of the index.
#ifndef SWVM_CATOMICS_H
#define SWVM_CATOMICS_H
#include <stdint.h>

static inline uint16_t catomic_load_acquire_u16(const void *p) {
    return __atomic_load_n((const uint16_t *)p, __ATOMIC_ACQUIRE);
}
static inline void catomic_store_release_u16(void *p, uint16_t v) {
    __atomic_store_n((uint16_t *)p, v, __ATOMIC_RELEASE);
}
static inline void catomic_fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

#endif
