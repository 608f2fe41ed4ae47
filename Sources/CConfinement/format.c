/* swvm_format.h: an allocation-free, lock-free printf subset. */
#include "swvm_format.h"

#include <stdint.h>

struct out { char *buf; size_t size, len; };

/* Counts every byte, writes those that fit (snprintf's contract). */
static void put(struct out *o, char ch) {
    if (o->len + 1 < o->size) o->buf[o->len] = ch;
    o->len++;
}

static void put_text(struct out *o, const char *s, size_t max) {
    if (!s) s = "(null)";
    for (size_t i = 0; i < max && s[i]; i++) put(o, s[i]);
}

static void put_unsigned(struct out *o, unsigned long long v, unsigned base) {
    char digits[24];
    int n = 0;
    do { digits[n++] = "0123456789abcdef"[v % base]; v /= base; } while (v);
    while (n) put(o, digits[--n]);
}

static void put_signed(struct out *o, long long v) {
    if (v < 0) { put(o, '-'); put_unsigned(o, 0ull - (unsigned long long)v, 10); }
    else put_unsigned(o, (unsigned long long)v, 10);
}

/* One conversion after '%' at *f; advances *f past it. */
static void convert(struct out *o, const char **f, va_list *ap) {
    const char *p = *f;
    size_t max = SIZE_MAX;
    if (p[0] == '.' && p[1] == '*') { int m = va_arg(*ap, int); max = m < 0 ? SIZE_MAX : (size_t)m; p += 2; }
    int longs = 0;
    while (*p == 'l' && longs < 2) { longs++; p++; }
    switch (*p) {
    case 's': put_text(o, va_arg(*ap, const char *), max); break;
    case 'c': put(o, (char)va_arg(*ap, int)); break;
    case '%': put(o, '%'); break;
    case 'd': put_signed(o, longs == 2 ? va_arg(*ap, long long) : longs ? va_arg(*ap, long) : va_arg(*ap, int)); break;
    case 'u': case 'x': {
        unsigned long long v = longs == 2 ? va_arg(*ap, unsigned long long)
                             : longs ? va_arg(*ap, unsigned long) : va_arg(*ap, unsigned int);
        put_unsigned(o, v, *p == 'x' ? 16 : 10);
        break;
    }
    default:
        /* Not ours: copy it, so the mistake shows. */
        put(o, '%');
        for (const char *q = *f; q <= p && *q; q++) put(o, *q);
        if (!*p) { *f = p; return; }
    }
    *f = p + 1;
}

size_t swvm_vformat(char *buf, size_t size, const char *fmt, va_list ap) {
    struct out o = { buf, size, 0 };
    va_list args;
    va_copy(args, ap);
    for (const char *f = fmt; *f;) {
        if (*f != '%') { put(&o, *f++); continue; }
        f++;
        convert(&o, &f, &args);
    }
    va_end(args);
    if (size) buf[o.len < size ? o.len : size - 1] = 0;
    return o.len;
}

size_t swvm_format(char *buf, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t n = swvm_vformat(buf, size, fmt, ap);
    va_end(ap);
    return n;
}
