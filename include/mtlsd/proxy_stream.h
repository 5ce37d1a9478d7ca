/* The proxy's HTTP/1.1 towards the upstream, without I/O: the response
 * parser (llhttp in response mode) with its framing checks, the response
 * re-framed for the client as it is parsed, and the request body framing.
 * The caller owns sockets, timers and buffers' flow control: it feeds what
 * the upstream sent and moves `to_client` to the client, and stops reading
 * the upstream while the client is behind (memory stays bounded by what one
 * feed can add). */
#ifndef MTLSD_PROXY_STREAM_H
#define MTLSD_PROXY_STREAM_H

#include "mtlsd/buf.h"
#include "mtlsd/http.h" /* llhttp_t: only http.h includes llhttp */
#include "mtlsd/proxy_headers.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds on an upstream response head. */
#define MTLS_UPS_MAX_HEAD_BYTES (64 * 1024)
#define MTLS_UPS_MAX_HEADERS 128

enum mtls_ups_event {
    MTLS_UPS_NEED_MORE, /* all input consumed */
    MTLS_UPS_HEAD,      /* the head went to to_client (or a 1xx was skipped): call again */
    MTLS_UPS_DONE,      /* the response is complete; see `reusable` */
    MTLS_UPS_ERROR,     /* malformed or cut: 502 when !head_sent, else close the client */
};

struct mtls_ups_resp {
    llhttp_t parser;
    struct mtls_buf fields;     /* head names and values */
    struct mtls_buf spans;      /* per field: 4 x uint32_t (name off/len, value off/len) */
    struct mtls_buf reason;
    struct mtls_buf *to_client; /* response bytes for the client (appended) */
    bool head_request;          /* the request was HEAD: no body follows */
    bool client_close;          /* the client's answer must say Connection: close */
    bool client_http10;         /* the client speaks HTTP/1.0: no chunked framing */
    bool in_value;
    bool head_sent;             /* the head is in to_client */
    bool chunked_out;           /* the body goes to the client chunked */
    bool body_expected;         /* delimited by close (neither CL nor chunked) */
    bool close_delimited;
    bool complete;
    bool reusable;              /* after DONE: the upstream connection may be reused */
    bool paused_head;
    bool last_lf;               /* the last head byte seen was LF */
    unsigned n_cl, n_te;
    int status;
    uint64_t content_length;
    uint64_t body_bytes;
    const char *error;          /* why MTLS_UPS_ERROR */
};

void mtls_ups_resp_init(struct mtls_ups_resp *r, struct mtls_buf *to_client, bool head_request,
                        bool client_close);
void mtls_ups_resp_free(struct mtls_ups_resp *r);
/* Feeds upstream bytes; *consumed says how far (bytes after DONE are not
 * consumed: an upstream that sends more than one response is not reused). */
enum mtls_ups_event mtls_ups_resp_feed(struct mtls_ups_resp *r, const uint8_t *p, size_t n,
                                       size_t *consumed);
/* The upstream closed its side: DONE for a body delimited by the close,
 * else ERROR (nothing yet: 502; mid-response: close the client). */
enum mtls_ups_event mtls_ups_resp_eof(struct mtls_ups_resp *r);

/* Request bodies towards the upstream: one chunk, and the last chunk. */
int mtls_chunk_append(struct mtls_buf *out, const void *p, size_t n);
int mtls_chunk_last(struct mtls_buf *out);

#endif
