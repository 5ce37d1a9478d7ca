/* HTTP/1.1 response framing, shared by the exchange (403, parse errors)
 * and the handlers. Bytes out only: no TLS, no connection. */
#ifndef MTLSD_RESPONSE_H
#define MTLSD_RESPONSE_H

#include "mtlsd/buf.h"

#include <stdbool.h>
#include <stddef.h>

/* Appends a whole response to `out`; returns `status`, or -1 when out of
 * memory. `head`: no body bytes (HEAD); `close`: "Connection: close";
 * `http10_keepalive`: "Connection: keep-alive"; `extra`: more header lines,
 * each ending in CRLF (or NULL). */
int mtls_response_frame(struct mtls_buf *out, int status, const char *ctype, const void *body,
                        size_t body_len, bool head, bool close, bool http10_keepalive,
                        const char *extra);

/* A response for a request that could not be parsed; always closes. */
int mtls_response_error(int status, struct mtls_buf *out);

#endif
