/* A growable byte buffer owned by the application (never by wolfSSL). */
#ifndef MTLSD_BUF_H
#define MTLSD_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct mtls_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

/* Make room for `extra` more bytes; 0 on success, -ENOMEM otherwise. */
int mtls_buf_reserve(struct mtls_buf *b, size_t extra);
/* Appends n bytes; 0 on success, -ENOMEM otherwise. */
int mtls_buf_append_slow(struct mtls_buf *b, const void *p, size_t n);

/* Inline when it fits: a request's parsing appends a dozen small pieces. */
static inline int mtls_buf_append(struct mtls_buf *b, const void *p, size_t n)
{
    if (n && b->cap - b->len >= n) {
        __builtin_memcpy(b->data + b->len, p, n);
        b->len += n;
        return 0;
    }
    return mtls_buf_append_slow(b, p, n);
}
/* Drop the first n bytes. */
void mtls_buf_consume(struct mtls_buf *b, size_t n);
void mtls_buf_free(struct mtls_buf *b);

/* Emptied buffers kept by one thread (no lock) for the next user instead
 * of a free and a malloc: up to `few` of at most `few_cap` bytes, and up
 * to `max` in all when at most `max_cap` bytes (many small ones are cheap
 * to keep, a few ordinary ones enough). Larger ones go back to malloc. */
#define MTLS_BUF_POOL_MAX 64
struct mtls_buf_pool {
    struct mtls_buf spare[MTLS_BUF_POOL_MAX];
    unsigned n;
    unsigned few, max;      /* max <= MTLS_BUF_POOL_MAX */
    size_t few_cap, max_cap;
};

/* Takes b's storage (b is left empty) or frees it. */
void mtls_buf_pool_put(struct mtls_buf_pool *pool, struct mtls_buf *b);
/* An empty b gets a kept buffer when there is one. */
void mtls_buf_pool_get(struct mtls_buf_pool *pool, struct mtls_buf *b);
void mtls_buf_pool_free(struct mtls_buf_pool *pool);

#endif
