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

#endif
