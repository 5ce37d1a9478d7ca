/* The handler boundary (exchange.c): authorization is decided before any
 * handler runs, a denied request never reaches one and gets 403, and a
 * handler may answer later (pending) or be aborted. The handler chosen for
 * every request is replaced here by a recording one. */
#define mtls_routes_handler test_handler
#include "../src/exchange.c"
#include "check.h"

#include <string.h>

extern const struct mtls_handler test_handler;

static struct {
    int heads, bodies, requests, aborts, ends;
    enum mtls_authz_decision authz;
    bool pend;          /* on_request answers later */
    bool end_saw_pending;
    int end_status;
    char out[512];
    size_t out_len;
} rec;

static int t_head(struct mtls_exchange *x, const struct mtls_http_request *req)
{
    (void)req;
    rec.heads++;
    rec.authz = x->authz;
    return 0;
}

static int t_body(struct mtls_exchange *x, const uint8_t *p, size_t n)
{
    (void)x;
    (void)p;
    rec.bodies += (int)n;
    return 0;
}

static enum mtls_handler_result t_request(struct mtls_exchange *x,
                                          const struct mtls_http_request *req)
{
    (void)req;
    rec.requests++;
    if (rec.pend)
        return MTLS_HANDLER_PENDING;
    if (mtls_exchange_write(x, "ok", 2) < 0)
        return MTLS_HANDLER_FAIL;
    mtls_exchange_end(x, 200);
    return MTLS_HANDLER_DONE;
}

static void t_abort(struct mtls_exchange *x)
{
    (void)x;
    rec.aborts++;
}

const struct mtls_handler test_handler = {
    .name = "test", .on_head = t_head, .on_body = t_body, .on_request = t_request, .on_abort = t_abort};

static int o_write(struct mtls_exchange *x, const void *p, size_t n)
{
    (void)x;
    if (rec.out_len + n > sizeof(rec.out))
        return -1;
    memcpy(rec.out + rec.out_len, p, n);
    rec.out_len += n;
    return 0;
}

static void o_end(struct mtls_exchange *x, int status)
{
    rec.ends++;
    rec.end_status = status;
    rec.end_saw_pending = x->pending;
    x->pending = false; /* the connection's end() clears it (handler.h) */
}

static const struct mtls_exchange_ops ops = {.write = o_write, .end = o_end};

static void run(const char *path, const struct mtls_identity *id, bool pend)
{
    static struct mtls_buf scratch;
    struct mtls_exchange x = {.ops = &ops, .scratch = &scratch};
    struct mtls_peer peer = {.identity = id};
    struct mtls_http_request req = {.method = HTTP_GET, .target = path,
                                    .target_len = strlen(path), .path_len = strlen(path),
                                    .version_major = 1, .version_minor = 1, .keep_alive = true};

    memset(&rec, 0, sizeof(rec));
    rec.pend = pend;
    CHECK(mtls_exchange_head(&x, &req, &peer) == 0);
    CHECK(mtls_exchange_body(&x, (const uint8_t *)"abc", 3) == 0);
    enum mtls_handler_result r = mtls_exchange_request(&x, &req, false);
    if (pend) {
        CHECK(r == MTLS_HANDLER_PENDING && x.pending && x.active && rec.ends == 0);
        /* the answer comes later */
        CHECK(mtls_exchange_write(&x, "late", 4) == 0);
        mtls_exchange_end(&x, 202);
        CHECK(rec.ends == 1 && rec.end_status == 202 && rec.end_saw_pending);
        CHECK(!x.pending && !x.active && x.bytes == 4);
        mtls_exchange_abort(&x); /* after the end: nothing to abort */
        CHECK(rec.aborts == 0);
    } else {
        CHECK(r == MTLS_HANDLER_DONE && !x.pending && !x.active && rec.ends == 1);
        CHECK(x.bytes == rec.out_len);
    }
    mtls_buf_free(&scratch);
}

int main(void)
{
    struct mtls_authz_settings az;
    struct mtls_identity alice = {.subject = "/CN=alice", .issuer = "", .serial_hex = "",
                                  .cn = "alice", .ou = "", .valid_until = time(NULL) + 3600};
    struct mtls_identity bob = alice;
    char err[256];

    bob.cn = "bob";
    memset(&az, 0, sizeof(az));
    az.allow[az.n_allow++] = "cn:alice";
    az.public_paths[az.n_public_paths++] = "/pub";
    CHECK(mtls_authz_init(&az, err, sizeof(err)) == 0);

    /* No identity, not public: 403 from the exchange; no handler call. */
    run("/x", NULL, false);
    CHECK(rec.heads == 0 && rec.bodies == 0 && rec.requests == 0);
    CHECK(rec.end_status == 403 && strstr(rec.out, "HTTP/1.1 403 ") == rec.out);
    /* An identity --allow does not admit: the same. */
    run("/x", &bob, false);
    CHECK(rec.requests == 0 && rec.end_status == 403);
    /* Allowed: the handler gets the head, the body and the request. */
    run("/x", &alice, false);
    CHECK(rec.heads == 1 && rec.bodies == 3 && rec.requests == 1);
    CHECK(rec.authz == MTLS_AUTHZ_ALLOWED && rec.end_status == 200);
    CHECK(rec.out_len == 2 && memcmp(rec.out, "ok", 2) == 0);
    /* Public: served without an identity, and says so. */
    run("/pub/a", NULL, false);
    CHECK(rec.requests == 1 && rec.authz == MTLS_AUTHZ_PUBLIC && rec.end_status == 200);
    /* A handler that answers later. */
    run("/x", &alice, true);

    /* The connection goes away while the handler still answers. */
    {
        static struct mtls_buf scratch;
        struct mtls_exchange x = {.ops = &ops, .scratch = &scratch};
        struct mtls_peer peer = {.identity = &alice};
        struct mtls_http_request req = {.method = HTTP_GET, .target = "/x", .target_len = 2,
                                        .path_len = 2, .version_major = 1, .version_minor = 1};
        memset(&rec, 0, sizeof(rec));
        rec.pend = true;
        CHECK(mtls_exchange_head(&x, &req, &peer) == 0);
        CHECK(mtls_exchange_request(&x, &req, false) == MTLS_HANDLER_PENDING);
        mtls_exchange_abort(&x);
        CHECK(rec.aborts == 1 && !x.active && rec.ends == 0);
        mtls_exchange_abort(&x);
        CHECK(rec.aborts == 1);
    }
    mtls_authz_free();
    return check_report();
}
