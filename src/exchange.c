/* exchange.c: between a parsed request and its handler. Authorization is
 * decided here, once per request and before any handler runs; a denied
 * request is answered here and no handler ever sees it. */
#include "mtlsd/authz.h"
#include "mtlsd/handler.h"
#include "mtlsd/response.h"

#include <string.h>
#include <time.h>

/* The proxy when --upstream is given (except under --builtin-prefix),
 * else the built-in routes. */
static const struct mtls_handler *choose(const struct mtls_http_request *req, size_t *skip)
{
    const struct mtls_handler *h = mtls_proxy_choose(req, skip);
    return h ? h : &mtls_routes_handler;
}

/* The request as a handler under a prefix sees it. */
static const struct mtls_http_request *view(const struct mtls_exchange *x,
                                            const struct mtls_http_request *req,
                                            struct mtls_http_request *tmp)
{
    if (!x->target_skip)
        return req;
    *tmp = *req;
    tmp->target += x->target_skip;
    tmp->target_len -= x->target_skip;
    tmp->path_len -= x->target_skip;
    return tmp;
}

int mtls_exchange_head(struct mtls_exchange *x, const struct mtls_http_request *req,
                       const struct mtls_peer *peer)
{
    struct mtls_http_request tmp;

    x->peer = peer;
    x->active = true;
    x->pending = false;
    x->status = 0;
    x->bytes = 0;
    x->data = NULL;
    /* Without it a client learns nothing, not even which paths exist. */
    if (mtls_authz_public(req->target, req->path_len))
        x->authz = MTLS_AUTHZ_PUBLIC;
    else if (mtls_authz_allowed(peer->identity, time(NULL)))
        x->authz = MTLS_AUTHZ_ALLOWED;
    else
        x->authz = MTLS_AUTHZ_DENIED;
    x->target_skip = 0;
    x->upstream_status = 0;
    x->upstream_usec = 0;
    x->handler = x->authz == MTLS_AUTHZ_DENIED ? NULL : choose(req, &x->target_skip);
    if (x->handler && x->handler->on_head &&
        x->handler->on_head(x, view(x, req, &tmp)) < 0)
        return -1;
    return 0;
}

int mtls_exchange_body(struct mtls_exchange *x, const uint8_t *p, size_t n)
{
    if (!x->active || !x->handler || !x->handler->on_body)
        return 0; /* dropped (counted against --max-body-bytes by http.c) */
    return x->handler->on_body(x, p, n);
}

enum mtls_handler_result mtls_exchange_request(struct mtls_exchange *x,
                                               const struct mtls_http_request *req,
                                               bool close)
{
    struct mtls_http_request tmp;
    enum mtls_handler_result r;

    x->close = close;
    if (!x->handler) {
        /* Denied: answered once the request has been read, as every
         * answer is, so pipelined answers stay in order. An empty 403, as
         * the Kestrel recipe mtlsd replaces answers (its clients test for
         * exactly that; the reason is in the log and /metrics). */
        bool head = req->method == HTTP_HEAD;
        bool ka10 = !close && req->version_major == 1 && req->version_minor == 0;
        int status;

        x->scratch->len = 0;
        status = mtls_response_frame(x->scratch, 403, "text/plain", "", 0, head,
                                     close, ka10, NULL);
        if (status < 0 || mtls_exchange_write(x, x->scratch->data, x->scratch->len) < 0)
            return MTLS_HANDLER_FAIL;
        mtls_exchange_end(x, status);
        return MTLS_HANDLER_DONE;
    }
    r = x->handler->on_request(x, view(x, req, &tmp));
    if (r == MTLS_HANDLER_PENDING && x->active)
        x->pending = true;
    return r;
}

int mtls_exchange_write(struct mtls_exchange *x, const void *p, size_t n)
{
    if (x->ops->write(x, p, n) < 0)
        return -1;
    x->bytes += n;
    return 0;
}

void mtls_exchange_end(struct mtls_exchange *x, int status)
{
    x->status = status;
    x->active = false;
    /* Sees x->pending (an answer given later) and clears it before the
     * connection goes on: parsing the next request may start a new
     * exchange in the same struct, right here. */
    x->ops->end(x, status);
}

void mtls_exchange_abort(struct mtls_exchange *x)
{
    if (!x->active)
        return;
    x->active = false;
    if (x->handler && x->handler->on_abort)
        x->handler->on_abort(x);
}
