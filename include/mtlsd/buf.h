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
int mtls_buf_append(struct mtls_buf *b, const void *p, size_t n);
/* mtls_buf_append for hot paths that append many small pieces (the proxy's
 * header rewriting): when it fits, a memcpy without a call. */
static inline int mtls_buf_add(struct mtls_buf *b, const void *p, size_t n)
{
    if (b->cap - b->len < n || n == 0)
        return mtls_buf_append(b, p, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}
/* Drop the first n bytes. */
void mtls_buf_consume(struct mtls_buf *b, size_t n);
void mtls_buf_free(struct mtls_buf *b);

#endif
