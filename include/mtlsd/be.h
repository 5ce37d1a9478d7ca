/* Big-endian integers in byte strings (ticket records, the identity's
 * binary form): one codec. */
#ifndef MTLSD_BE_H
#define MTLSD_BE_H

#include <stddef.h>
#include <stdint.h>

static inline void mtls_put_be(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = n; i-- > 0; v >>= 8)
        p[i] = (uint8_t)v;
}

static inline uint64_t mtls_get_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

#endif
