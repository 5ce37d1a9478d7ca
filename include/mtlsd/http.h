/* The HTTP/1.1 adapter over llhttp. It sees plaintext bytes only: nothing
 * here knows about TLS or io_uring. Pull-style: each call returns at most
 * one complete request, so pipelined responses stay in order. */
#ifndef MTLSD_HTTP_H
#define MTLSD_HTTP_H

#include "mtlsd/buf.h"
#include "mtlsd/config.h" /* struct mtls_http_limits */

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mtls_http_request {
    int method;                /* llhttp_method_t */
    const char *method_name;
    const char *target;        /* request-target, NUL-terminated */
    size_t target_len;
    size_t path_len;           /* target up to '?' */
    uint8_t version_major;
    uint8_t version_minor;
    bool keep_alive;
};

enum mtls_http_result {
    MTLS_HTTP_NEED_MORE,       /* all input consumed, no complete request yet */
    MTLS_HTTP_REQUEST,         /* a request is complete: answer it, then call again */
    MTLS_HTTP_ERROR,           /* answer *status and close the connection */
};

struct mtls_http {
    llhttp_t parser;
    const struct mtls_http_limits *limits;
    struct mtls_buf target;    /* held only while a request line is incomplete */
    char field[8];             /* enough of a header name to spot "Host" */
    uint8_t field_len;
    bool field_long;
    bool keep_alive;
    bool complete;
    bool in_message;
    bool in_headers;           /* bytes fed now belong to a request head */
    bool headers_paused;       /* llhttp paused at the end of a head */
    bool last_lf;              /* last header byte seen was LF */
    unsigned header_count;
    unsigned host_count;
    size_t header_bytes;
    uint64_t body_bytes;
    int error_status;
};

void mtls_http_init(struct mtls_http *h, const struct mtls_http_limits *limits);
void mtls_http_free(struct mtls_http *h);

/* Parses from `data`; `*consumed` says how far. A REQUEST's fields stay valid
 * until the next call. After an ERROR the parser must not be used again. */
enum mtls_http_result mtls_http_parse(struct mtls_http *h, const uint8_t *data, size_t len,
                                      size_t *consumed, struct mtls_http_request *req,
                                      int *status);

/* True between requests: no partial request is buffered. */
bool mtls_http_idle(const struct mtls_http *h);

#endif
