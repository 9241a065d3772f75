/* checked.h: size arithmetic that cannot wrap. Every count that comes from a
 * file (a manifest, a header) goes through these before it sizes memory. */
#ifndef IMS_CHECKED_H
#define IMS_CHECKED_H

#include <stddef.h>

/* *out = a * b; 0 (and *out untouched) if it would overflow size_t. */
static inline int imsi_size_mul(size_t a, size_t b, size_t *out)
{
    size_t r;
    if (__builtin_mul_overflow(a, b, &r))
        return 0;
    *out = r;
    return 1;
}

/* *out = a + b; 0 (and *out untouched) if it would overflow size_t. */
static inline int imsi_size_add(size_t a, size_t b, size_t *out)
{
    size_t r;
    if (__builtin_add_overflow(a, b, &r))
        return 0;
    *out = r;
    return 1;
}

#endif /* IMS_CHECKED_H */
