/*
 * Text formatting the container child may use. The child is a clone of a
 * multithreaded process: another thread may have held malloc's or the
 * locale's lock at clone time, so snprintf (which may allocate) and
 * strerror (gettext, a lock) could hang there for ever. These call nothing
 * but their own code: async-signal-safe.
 */
#ifndef SWVM_FORMAT_H
#define SWVM_FORMAT_H

#include <stdarg.h>
#include <stddef.h>

/* printf's subset: %s, %.*s, %c, %d, %u, %x, %ld, %lu, %lld, %llu, %llx
 * and %%. Writes at most size-1 bytes and a NUL (size > 0); returns the
 * length the whole text has, as snprintf does (>= size: it was cut). An
 * unknown conversion is copied as it stands. */
size_t swvm_vformat(char *buf, size_t size, const char *fmt, va_list ap);
size_t swvm_format(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
