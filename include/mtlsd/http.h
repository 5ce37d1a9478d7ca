/* The HTTP/1.1 adapter over llhttp. It sees plaintext bytes only: nothing
 * here knows about TLS or io_uring. Pull-style: each call returns at most
 * one request head or one complete request, so pipelined responses stay in
 * order; the body goes to a callback as it arrives (never buffered whole). */
#ifndef MTLSD_HTTP_H
#define MTLSD_HTTP_H

#include "mtlsd/buf.h"
#include "mtlsd/config.h" /* struct mtls_http_limits */

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One header field as received (names keep their case; both are
 * NUL-terminated). In order, duplicates kept. */
struct mtls_http_header {
    const char *name;
    const char *value;
    size_t name_len;
    size_t value_len;
};

struct mtls_http_request {
    int method;                /* llhttp_method_t */
    const char *method_name;
    const char *target;        /* request-target, NUL-terminated */
    size_t target_len;
    size_t path_len;           /* target up to '?' */
    uint8_t version_major;
    uint8_t version_minor;
    bool keep_alive;
    const struct mtls_http_header *headers; /* every field, in order */
    unsigned n_headers;
};

/* Receives the request body: 0, or an HTTP status that fails the request. */
typedef int (*mtls_http_body_fn)(void *ctx, const uint8_t *p, size_t n);

enum mtls_http_result {
    MTLS_HTTP_NEED_MORE,       /* all input consumed, no complete request yet */
    MTLS_HTTP_HEAD,            /* a request head is complete (its body follows,
                                  to the body callback): call again */
    MTLS_HTTP_REQUEST,         /* a request is complete: answer it, then call again */
    MTLS_HTTP_ERROR,           /* answer *status and close the connection */
};

/* The pool a worker lends request buffers from (mtls_http_set_pool): those
 * of finished requests, for the next request of any of its connections. */
#define MTLS_HTTP_POOL_INIT {.few = 16, .few_cap = 4096, .max = 16, .max_cap = 4096}

struct mtls_http {
    llhttp_t parser;
    const struct mtls_http_limits *limits;
    struct mtls_buf_pool *pool; /* NULL: every request allocates its own */
    struct mtls_buf target;    /* held only while a request is in progress */
    struct mtls_buf fields;    /* header names and values, NUL after each */
    struct mtls_buf spans;     /* per field: offsets into `fields` */
    struct mtls_buf headers;   /* struct mtls_http_header[], built at the head */
    size_t field_start;        /* in `fields`: where the current name begins */
    size_t value_start;        /* and its value */
    mtls_http_body_fn on_body;
    void *body_ctx;
    bool keep_alive;
    bool complete;
    bool in_message;
    bool in_headers;           /* bytes fed now belong to a request head */
    bool headers_paused;       /* llhttp paused at the end of a head */
    bool resume;               /* go on after a returned head, even without input */
    bool last_lf;              /* last header byte seen was LF */
    bool last_cr;              /* last header byte seen was CR */
    bool trailers_paused;      /* llhttp paused at the last chunk's size line */
    unsigned header_count;
    unsigned host_count;
    size_t header_bytes;
    uint64_t body_bytes;
    int error_status;
};

void mtls_http_init(struct mtls_http *h, const struct mtls_http_limits *limits);
void mtls_http_free(struct mtls_http *h);
/* The worker's pool for this parser's request buffers (NULL: none). */
void mtls_http_set_pool(struct mtls_http *h, struct mtls_buf_pool *pool);
/* Where body bytes go (NULL: counted and dropped). */
void mtls_http_set_body(struct mtls_http *h, mtls_http_body_fn fn, void *ctx);

/* Parses from `data`; `*consumed` says how far. A HEAD's fields stay valid
 * until the REQUEST it starts has been returned and the next call made; a
 * REQUEST repeats them. After an ERROR the parser must not be used again. */
enum mtls_http_result mtls_http_parse(struct mtls_http *h, const uint8_t *data, size_t len,
                                      size_t *consumed, struct mtls_http_request *req,
                                      int *status);

/* True between requests: no partial request is buffered. */
bool mtls_http_idle(const struct mtls_http *h);

#endif
