/* Built-in routes and response framing. Input: a parsed request and what
 * the connection knows about its peer; output: response bytes. */
#ifndef MTLSD_ROUTES_H
#define MTLSD_ROUTES_H

#include "mtlsd/buf.h"
#include "mtlsd/http.h"
#include "mtlsd/identity.h"

#include <stdbool.h>

struct mtls_peer {
    const struct mtls_identity *identity;
    const char *tls_version;
    const char *cipher;
    unsigned worker;
    bool resumed;
    bool chain_cached;
};

/* Appends the response to `out`; returns its status, or -1 when out of
 * memory. `close` adds "Connection: close". */
int mtls_route(const struct mtls_http_request *req, const struct mtls_peer *peer, bool close,
               struct mtls_buf *out);

/* A response for a request that could not be parsed; always closes. */
int mtls_route_error(int status, struct mtls_buf *out);
/* The plain-HTTP answer for a request sent to the TLS port (400, close). */
int mtls_route_plain_http(struct mtls_buf *out);

#endif
