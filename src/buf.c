/* buf.c: growable byte buffers. */
#include "mtlsd/buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int mtls_buf_reserve(struct mtls_buf *b, size_t extra)
{
    size_t cap;
    uint8_t *p;

    if (b->cap - b->len >= extra)
        return 0;
    if (extra > SIZE_MAX / 2 - b->len)
        return -ENOMEM;
    cap = b->cap ? b->cap : 1024;
    while (cap < b->len + extra)
        cap *= 2;
    p = realloc(b->data, cap);
    if (!p)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int mtls_buf_append_slow(struct mtls_buf *b, const void *p, size_t n)
{
    if (mtls_buf_reserve(b, n) < 0)
        return -ENOMEM;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void mtls_buf_consume(struct mtls_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void mtls_buf_free(struct mtls_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void mtls_buf_pool_put(struct mtls_buf_pool *pool, struct mtls_buf *b)
{
    if (!b->data)
        return;
    if ((pool->n < pool->few && b->cap <= pool->few_cap) ||
        (pool->n < pool->max && pool->n < MTLS_BUF_POOL_MAX && b->cap <= pool->max_cap)) {
        b->len = 0;
        pool->spare[pool->n++] = *b;
        memset(b, 0, sizeof(*b));
    } else {
        mtls_buf_free(b);
    }
}

void mtls_buf_pool_get(struct mtls_buf_pool *pool, struct mtls_buf *b)
{
    if (!b->data && pool->n)
        *b = pool->spare[--pool->n];
}

void mtls_buf_pool_free(struct mtls_buf_pool *pool)
{
    while (pool->n)
        mtls_buf_free(&pool->spare[--pool->n]);
}
