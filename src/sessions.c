/* sessions.c: the TLS 1.2 session-ID cache, shared by all workers.
 *
 * wolfSSL's own cache would resume a session by ID without asking us, so a
 * session whose identity is stale (trust reloaded, lifetime over, client
 * certificate expired) or unknown could only be failed after the handshake.
 * Instead its internal cache is off and its external-cache callbacks
 * (HAVE_EXT_CACHE) are ours: wolfSSL asks us for a session by ID while it
 * parses the ClientHello, and a NULL answer is an ordinary full handshake.
 *
 * Each entry holds the session serialized by wolfSSL (wolfSSL_i2d_SSL_SESSION:
 * master secret, suite, version) next to the identity record of the full
 * handshake that created it, so no wolfSSL object is shared between threads.
 * The table is the shared bounded one (shardmap.c): --session-cache N entries
 * over 64 locked shards, the least recently used session of a full shard
 * evicted to make room (before, an insert replaced whatever hashed to its
 * slot, so two live sessions could evict each other while the table was
 * nearly empty). Session-ID resumption is the rare, legacy path, so a short
 * critical section (a memcpy) is cheaper than anything lock-free.
 * Secrets are zeroed when an entry is replaced or dropped. */
#include "mtlsd/sessions.h"
#include "mtlsd/identity.h"
#include "mtlsd/log.h"
#include "mtlsd/metrics.h"
#include "mtlsd/shardmap.h"
#include "mtlsd/tickets.h"
#include "mtlsd/tls_internal.h"
#include "mtlsd/verify.h"
#include "mtlsd/wolfssl_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(HAVE_EXT_CACHE) && defined(MTLSD_HAVE_WOLFSSL_INTERNAL)

#define SHARDS 64
#define ID_MAX 32 /* a TLS session ID (RFC 5246 7.4.1.2) */
_Static_assert(ID_MAX <= MTLS_SHARDMAP_KEY_MAX, "a session ID is the table's key");
/* A serialized TLS 1.2 session without a ticket is about 120 bytes; an
 * identity at most about 1 KB (the same bound as in tickets). */
#define BLOB_MAX 512
#define IDENT_MAX 4096 /* with the presented chain kept for the proxy (compressed) */

struct value {
    uint64_t trust;          /* mtls_verify_trust_id() it was verified under */
    int64_t auth_time;
    int64_t not_after;
    uint16_t blob_len, ident_len;
    uint8_t *data;           /* blob | identity, one allocation */
};

/* A hit copied out under the shard lock, or why the entry was refused. */
struct lookup {
    int reason;
    uint64_t trust;
    int64_t auth_time;
    size_t blob_len, ident_len;
    uint8_t buf[BLOB_MAX + IDENT_MAX];
};

static struct mtls_shardmap *table;

static void on_drop(void *value)
{
    struct value *v = value;

    if (v->data) {
        explicit_bzero(v->data, (size_t)v->blob_len + v->ident_len);
        free(v->data);
    }
    explicit_bzero(v, sizeof(*v));
}

static enum mtls_shardmap_visit on_visit(void *value, void *ctx)
{
    struct value *v = value;
    struct lookup *l = ctx;

    l->reason = mtls_resume_check(v->trust, v->auth_time, v->not_after);
    if (l->reason != MTLS_REFUSE_NONE)
        return MTLS_SHARDMAP_DROP; /* it will never resume again */
    l->blob_len = v->blob_len;
    l->ident_len = v->ident_len;
    memcpy(l->buf, v->data, l->blob_len + l->ident_len);
    l->trust = v->trust;
    l->auth_time = v->auth_time;
    return MTLS_SHARDMAP_KEEP;
}

static int on_new_session(WOLFSSL *ssl, WOLFSSL_SESSION *sess)
{
    struct mtls_tls *t = wolfSSL_GetIOReadCtx(ssl);
    uint8_t ident[IDENT_MAX];
    const unsigned char *id;
    unsigned id_len;
    uint8_t *data, *p;
    long in;
    int bn;
    struct value v;

    /* Only TLS 1.2 sessions of a full handshake with a verified identity:
     * wolfSSL also calls this for every TLS 1.3 ticket. */
    if (!t || !t->identity || wolfSSL_GetVersion(ssl) != WOLFSSL_TLSV1_2 ||
        wolfSSL_session_reused(ssl) == 1)
        return 0;
    /* A reload during the handshake: which trust verified it is unclear. */
    if (mtls_verify_generation() != t->generation)
        return 0;
    /* The server's own session ID (AddSession copied it into the session;
     * there is no public getter without the OpenSSL compatibility layer). */
    id = sess->sessionID;
    id_len = sess->sessionIDSz;
    if (id_len == 0 || id_len > ID_MAX)
        return 0;
    in = mtls_identity_serialize(t->identity, ident, sizeof(ident));
    bn = wolfSSL_i2d_SSL_SESSION(sess, NULL);
    if (in < 0 || bn <= 0 || bn > BLOB_MAX) {
        log_debug("session not cached: identity or session too large");
        return 0;
    }
    data = malloc((size_t)bn + (size_t)in);
    if (!data)
        return 0;
    p = data;
    if (wolfSSL_i2d_SSL_SESSION(sess, &p) != bn) {
        explicit_bzero(data, (size_t)bn);
        free(data);
        return 0;
    }
    memcpy(data + bn, ident, (size_t)in);

    v.trust = t->trust_id;
    v.auth_time = (int64_t)time(NULL);
    v.not_after = mtls_identity_end(t->identity);
    v.blob_len = (uint16_t)bn;
    v.ident_len = (uint16_t)in;
    v.data = data;
    mtls_shardmap_put(table, mtls_shardmap_hash(id, id_len), id, id_len, &v);
    return 0; /* we keep a copy, not wolfSSL's object */
}

static WOLFSSL_SESSION *on_get_session(WOLFSSL *ssl, const unsigned char *id, int len,
                                       int *copy)
{
    struct mtls_tls *t = wolfSSL_GetIOReadCtx(ssl);
    struct lookup l;
    struct mtls_identity *ident = NULL;
    WOLFSSL_SESSION *sess = NULL;
    const unsigned char *p;
    int found;

    *copy = 0; /* wolfSSL frees what we return after copying it */
    if (!t || len <= 0 || len > ID_MAX || !table)
        return NULL;
    found = mtls_shardmap_get(table, mtls_shardmap_hash(id, (size_t)len), id, (size_t)len,
                              on_visit, &l);
    if (found == 0)
        return NULL; /* an ordinary miss (or a ticket client's random ID) */
    if (found < 0) {
        mtls_resume_count_refusal(t, l.reason);
        return NULL;
    }
    ident = mtls_identity_deserialize(l.buf + l.blob_len, l.ident_len);
    p = l.buf;
    if (!ident || !(sess = wolfSSL_d2i_SSL_SESSION(NULL, &p, (long)l.blob_len))) {
        mtls_resume_count_refusal(t, MTLS_REFUSE_BAD);
        mtls_identity_free(ident);
        goto out;
    }
    /* Kept apart until the handshake ends, like a ticket's identity. */
    mtls_identity_free(t->ticket_identity);
    t->ticket_identity = ident;
    t->ticket_trust = l.trust;
    t->ticket_auth_time = l.auth_time;
    t->ticket_kind = MTLS_RESUME_TLS12_SESSION_ID;
out:
    explicit_bzero(l.buf, l.blob_len + l.ident_len);
    return sess;
}

int mtls_sessions_setup(WOLFSSL_CTX *ctx, const struct mtls_resume_settings *cfg, char *err,
                        size_t errlen)
{
    if (cfg->session_cache == 0) {
        wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);
        return 0;
    }
    if (!table) {
        table = mtls_shardmap_create(cfg->session_cache, SHARDS, sizeof(struct value), on_drop);
        if (!table) {
            snprintf(err, errlen, "--session-cache %u: out of memory", cfg->session_cache);
            return -1;
        }
    }
    wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_SERVER |
                                                WOLFSSL_SESS_CACHE_NO_INTERNAL_STORE |
                                                WOLFSSL_SESS_CACHE_NO_INTERNAL_LOOKUP);
    wolfSSL_CTX_sess_set_new_cb(ctx, on_new_session);
    wolfSSL_CTX_sess_set_get_cb(ctx, on_get_session);
    return 0;
}

void mtls_sessions_shutdown(void)
{
    mtls_shardmap_destroy(table);
    table = NULL;
}

#else /* no external cache or no internal.h: no session-ID resumption */

int mtls_sessions_setup(WOLFSSL_CTX *ctx, const struct mtls_resume_settings *cfg, char *err,
                        size_t errlen)
{
    wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);
    if (cfg->session_cache && cfg->session_cache_set) {
        snprintf(err, errlen,
                 "--session-cache %u: this wolfSSL build lacks HAVE_EXT_CACHE or "
                 "wolfssl/internal.h (see scripts/deps.sh); use --session-cache 0",
                 cfg->session_cache);
        return -1;
    }
    if (cfg->session_cache)
        log_warn("TLS 1.2 session-ID resumption is off: this wolfSSL build lacks "
                 "HAVE_EXT_CACHE or wolfssl/internal.h");
    return 0;
}

void mtls_sessions_shutdown(void)
{
}

#endif
