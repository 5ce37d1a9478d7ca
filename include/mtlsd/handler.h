/* The request handler boundary: what answers a parsed request.
 *
 * The connection parses a request head (http.c), decides authorization
 * (authz.c: --allow, --public-path, the client-auth mode's identity) and only
 * then picks one handler for the request. A request that is not authorized
 * never reaches a handler: it gets 403 from the exchange (fail closed, and
 * a handler such as a proxy can never forward it by mistake).
 *
 * A handler sees the request, its body as a stream of chunks, the verified
 * peer and the authorization decision; it answers with framed response bytes
 * through mtls_exchange_write() and says it is done with mtls_exchange_end().
 * It may answer at once (the built-in routes) or later: return
 * MTLS_HANDLER_PENDING and call write/end when the answer is there (a proxy
 * waiting for its upstream). Nothing here knows TLS, sockets or the loop. */
#ifndef MTLSD_HANDLER_H
#define MTLSD_HANDLER_H

#include "mtlsd/buf.h"
#include "mtlsd/http.h"
#include "mtlsd/identity.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What the connection knows about its peer. */
struct mtls_peer {
    const struct mtls_identity *identity; /* verified identity; NULL: none */
    const char *tls_version;
    const char *cipher;
    unsigned worker;
    bool resumed;
    bool chain_cached;
};

enum mtls_authz_decision {
    MTLS_AUTHZ_DENIED,  /* never given to a handler: the exchange answers 403 */
    MTLS_AUTHZ_ALLOWED, /* a verified identity that --allow admits */
    MTLS_AUTHZ_PUBLIC,  /* a --public-path: served whatever the identity */
};

enum mtls_handler_result {
    MTLS_HANDLER_FAIL = -1, /* out of memory or similar: the connection closes */
    MTLS_HANDLER_DONE = 0,  /* answered (mtls_exchange_end was called) */
    MTLS_HANDLER_PENDING,   /* will answer later; input waits meanwhile */
};

struct mtls_exchange;

/* One kind of answer. Every callback gets the exchange; `data` in it is the
 * handler's own. Callbacks are called on the connection's worker thread. */
struct mtls_handler {
    const char *name;
    /* The head is parsed and authorized. 0, or MTLS_HANDLER_FAIL. */
    int (*on_head)(struct mtls_exchange *x, const struct mtls_http_request *req);
    /* A piece of the request body (decoded from chunked framing), in order,
     * bounded by --max-body-bytes in total. 0, or an HTTP status that ends
     * the connection with that answer (e.g. 502 when an upstream is gone).
     * NULL: the body is dropped. */
    int (*on_body)(struct mtls_exchange *x, const uint8_t *p, size_t n);
    /* The whole request has been read: answer now (DONE), later (PENDING)
     * or fail. `req` is the same request as in on_head. */
    enum mtls_handler_result (*on_request)(struct mtls_exchange *x,
                                           const struct mtls_http_request *req);
    /* The connection goes away before the handler called mtls_exchange_end.
     * After this the exchange must not be touched. NULL: nothing to do. */
    void (*on_abort)(struct mtls_exchange *x);
    /* While answering later: the client took the output it was behind on
     * (a handler that stopped producing because of
     * mtls_exchange_backlog() goes on). NULL: nothing to do. */
    void (*on_drain)(struct mtls_exchange *x);
};

/* The connection's side of an exchange (implemented by conn.c). */
struct mtls_exchange_ops {
    /* Queues response bytes for the client; -1 when out of memory. */
    int (*write)(struct mtls_exchange *x, const void *p, size_t n);
    /* The response is complete (status for logs and metrics). */
    void (*end)(struct mtls_exchange *x, int status);
    /* Response bytes queued for the client and not yet sent. */
    size_t (*backlog)(struct mtls_exchange *x);
    /* Stop (true) or go on (false) reading the client: back-pressure from
     * a handler that cannot take more request body now. */
    void (*hold_input)(struct mtls_exchange *x, bool hold);
    /* The answer cannot be completed honestly (an upstream closed mid-
     * response): what was written goes out, then the client connection
     * closes without close_notify. on_abort follows unless the handler
     * already let go of the exchange (data == NULL). */
    void (*kill)(struct mtls_exchange *x, const char *why);
    /* The client's address as text ("192.0.2.1", "::1"); "" if unknown. */
    void (*peer_addr)(struct mtls_exchange *x, char *buf, size_t len);
};

/* One request and its response, from head to mtls_exchange_end. */
struct mtls_exchange {
    const struct mtls_handler *handler; /* chosen once per request */
    const struct mtls_peer *peer;       /* valid until the exchange ends */
    enum mtls_authz_decision authz;
    bool close;             /* the response must end the connection
                               ("Connection: close" when framing it) */
    bool active;            /* between head and end */
    bool pending;           /* the handler answers later */
    int status;             /* set by mtls_exchange_end */
    size_t bytes;           /* response bytes written */
    struct mtls_buf *scratch; /* a buffer to frame into (reset per use) */
    void *data;             /* the handler's */
    const struct mtls_exchange_ops *ops;
    void *owner;            /* the connection */
    size_t target_skip;     /* a route under a prefix: bytes of the target
                               the handler does not see (--builtin-prefix) */
    int upstream_status;    /* for the access log: a proxy's upstream answer
                               (0: not proxied, -1: none came) */
    unsigned long upstream_usec;
};

/* For handlers: answer bytes, and the end of the answer. */
int mtls_exchange_write(struct mtls_exchange *x, const void *p, size_t n);
void mtls_exchange_end(struct mtls_exchange *x, int status);

/* For the connection: a parsed head. Decides authorization, chooses the
 * handler and calls its on_head; a denied request is answered 403 here.
 * Returns 0, or -1 when the connection must close. */
int mtls_exchange_head(struct mtls_exchange *x, const struct mtls_http_request *req,
                       const struct mtls_peer *peer);
/* A piece of body; 0 or an HTTP status to fail the request with. */
int mtls_exchange_body(struct mtls_exchange *x, const uint8_t *p, size_t n);
/* The request is complete; `close`: the answer must end the connection. */
enum mtls_handler_result mtls_exchange_request(struct mtls_exchange *x,
                                               const struct mtls_http_request *req,
                                               bool close);
/* The connection closes with the exchange still active. */
void mtls_exchange_abort(struct mtls_exchange *x);

/* The built-in routes (routes.c). */
extern const struct mtls_handler mtls_routes_handler;
/* The reverse proxy (proxy.c): chooses the handler of a request when
 * --upstream is given (NULL otherwise: the built-in routes); *skip gets the
 * bytes of --builtin-prefix to hide from the routes. */
const struct mtls_handler *mtls_proxy_choose(const struct mtls_http_request *req, size_t *skip);

#endif
