/* Header fields crossing the proxy's trust boundary: what is dropped
 * (hop-by-hop fields, inbound copies of identity headers), what is added
 * (the verified identity as RFC 9440 or Envoy XFCC, X-Forwarded-*, Via),
 * and the identity values themselves. Pure functions over bytes: nothing
 * here knows about TLS, sockets or the event loop. */
#ifndef MTLSD_PROXY_HEADERS_H
#define MTLSD_PROXY_HEADERS_H

#include "mtlsd/buf.h"
#include "mtlsd/http.h" /* struct mtls_http_header */
#include "mtlsd/identity.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* --client-cert-header: a bit set (repeatable flag). */
#define MTLS_CERT_HEADER_RFC9440 0x1u
#define MTLS_CERT_HEADER_XFCC 0x2u

struct mtls_proxy_header_cfg {
    unsigned cert_headers;          /* MTLS_CERT_HEADER_* bits; 0: none */
    const char *const *strip;       /* --strip-header names */
    unsigned n_strip;
    const char *by_uri;             /* XFCC By=: the server certificate's URI SAN, or NULL */
};

/* The names a Connection field lists (RFC 9110 7.6.1), gathered from all
 * Connection fields of a message: they are hop-by-hop too. Bounded: a
 * message that lists more than MTLS_CONN_TOKENS names is refused. */
#define MTLS_CONN_TOKENS 16
struct mtls_conn_tokens {
    struct { const char *p; size_t n; } tok[MTLS_CONN_TOKENS];
    unsigned n;
    bool close;                     /* "close" was among them */
};

/* Collects the Connection tokens of `h[0..n)`; -1 when there are too many
 * or one is not a token. */
int mtls_conn_tokens(const struct mtls_http_header *h, unsigned n, struct mtls_conn_tokens *out);

/* True for a field the proxy never forwards as received in either
 * direction: Connection, Keep-Alive, TE, Trailer, Upgrade, Proxy-*,
 * Transfer-Encoding and Content-Length (the body is re-framed), and the
 * names listed in Connection. */
bool mtls_hop_by_hop(const char *name, size_t len, const struct mtls_conn_tokens *ct);

/* True for a request field removed before forwarding: the identity headers
 * (Client-Cert, Client-Cert-Chain, X-Forwarded-Client-Cert), those the
 * proxy sets itself (X-Forwarded-Proto; X-Forwarded-For and Via are merged
 * by the caller) and the --strip-header names. Case-insensitive. */
bool mtls_strip_inbound(const struct mtls_proxy_header_cfg *cfg, const char *name, size_t len);

/* A field value that must never be forwarded: CR, LF or NUL in it. */
bool mtls_header_value_bad(const char *v, size_t n);

/* Appends the identity header lines ("Name: value\r\n"...) for `certs`
 * (the leaf first, then the intermediates the client sent, in TLS order)
 * and `id`, per cfg->cert_headers. Nothing with no identity or no
 * certificates. -1 on out of memory or a leaf that is not DER. */
int mtls_identity_header_lines(const struct mtls_proxy_header_cfg *cfg,
                               const struct mtls_identity *id, const struct mtls_der *certs,
                               unsigned n_certs, struct mtls_buf *out);

/* RFC 2253 text of the subject of a DER certificate (for XFCC Subject=),
 * appended NUL-terminated to `out`; -1 when the certificate is malformed. */
int mtls_der_subject_rfc2253(const uint8_t *der, size_t len, struct mtls_buf *out);

/* Base64 (RFC 4648, with padding) of in[0..n) appended to `out`. */
int mtls_base64_append(struct mtls_buf *out, const uint8_t *in, size_t n);

/* How a forwarded request's body is framed and who sent it. */
struct mtls_forward_info {
    const char *client_addr;        /* text form, for X-Forwarded-For */
    bool chunked;                   /* send the body chunked */
    uint64_t content_length;        /* else: this many bytes (0: none) */
    bool has_body;                  /* send Content-Length even when 0 */
};

/* Appends the request head forwarded upstream: the request line (HTTP/1.1),
 * the client's fields minus the dropped ones, then X-Forwarded-For (inbound
 * values with the client appended), X-Forwarded-Proto: https, Via (inbound
 * value with ours appended), the identity lines `ident` (already built),
 * the framing, and the blank line. Returns 0, -1 on out of memory, or 400
 * for a field the proxy refuses (a bad value, too many Connection names). */
int mtls_proxy_request_head(const struct mtls_proxy_header_cfg *cfg, const char *method,
                            const char *target, size_t target_len, const struct mtls_http_header *h,
                            unsigned n, const struct mtls_buf *ident,
                            const struct mtls_forward_info *fi, struct mtls_buf *out);

/* Appends the response head sent to the client for an upstream response:
 * status line (HTTP/1.1, the upstream's reason), the upstream's fields
 * minus the hop-by-hop ones, Via, then the framing (chunked or
 * Content-Length, as decided by the caller) and "Connection: close" when
 * `close`. Returns 0, -1 on out of memory, 502 for a field the proxy
 * refuses to pass on. */
struct mtls_response_framing {
    bool chunked;
    bool no_body;                   /* HEAD, 1xx, 204, 304: no framing added */
    uint64_t content_length;
    bool length_known;              /* with no_body: still send Content-Length */
    bool until_close;               /* no framing: the body ends with the connection
                                       (an HTTP/1.0 client and no Content-Length) */
    bool close;
};
int mtls_proxy_response_head(int status, const char *reason, size_t reason_len,
                             const struct mtls_http_header *h, unsigned n,
                             const struct mtls_response_framing *fr, struct mtls_buf *out);

#endif
