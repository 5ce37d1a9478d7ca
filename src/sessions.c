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
 * The table is direct-mapped (--session-cache N slots; an insert replaces
 * whatever hashed to its slot: bounded memory, O(1), no LRU list to lock) and
 * sharded into 64 mutexes: session-ID resumption is the rare, legacy path, so
 * a short critical section (a memcpy) is cheaper than anything lock-free.
 * Secrets are zeroed when an entry is replaced or dropped. */
#include "mtlsd/sessions.h"
#include "mtlsd/identity.h"
#include "mtlsd/log.h"
#include "mtlsd/metrics.h"
#include "mtlsd/tickets.h"
#include "mtlsd/tls_internal.h"
#include "mtlsd/verify.h"
#include "mtlsd/wolfssl_internal.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(HAVE_EXT_CACHE) && defined(MTLSD_HAVE_WOLFSSL_INTERNAL)

#define SHARDS 64
#define ID_MAX 32
/* A serialized TLS 1.2 session without a ticket is about 120 bytes; an
 * identity at most about 1 KB (the same bound as in tickets). */
#define BLOB_MAX 512
#define IDENT_MAX 4096 /* with the presented chain kept for the proxy (compressed) */

struct entry {
    uint8_t id[ID_MAX];
    uint8_t id_len;          /* 0: empty */
    uint16_t blob_len, ident_len;
    uint64_t trust;          /* mtls_verify_trust_id() it was verified under */
    int64_t auth_time;
    int64_t not_after;
    uint8_t *data;           /* blob | identity, one allocation */
};

static struct {
    pthread_mutex_t lock;
} shards[SHARDS];
static struct entry *slots;
static unsigned n_slots;

static uint64_t slot_hash(const uint8_t *id, unsigned len)
{
    /* FNV-1a: IDs are random when we issued them; a client sending chosen
     * IDs can only make its own lookups miss. */
    uint64_t h = 1469598103934665603ull;

    for (unsigned i = 0; i < len; i++)
        h = (h ^ id[i]) * 1099511628211ull;
    return h;
}

static void entry_clear(struct entry *e)
{
    if (e->data) {
        explicit_bzero(e->data, (size_t)e->blob_len + e->ident_len);
        free(e->data);
    }
    memset(e, 0, sizeof(*e));
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
    struct entry *e;
    uint64_t h;

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

    h = slot_hash(id, id_len);
    e = &slots[h % n_slots];
    pthread_mutex_lock(&shards[(h % n_slots) % SHARDS].lock);
    entry_clear(e);
    memcpy(e->id, id, id_len);
    e->id_len = (uint8_t)id_len;
    e->blob_len = (uint16_t)bn;
    e->ident_len = (uint16_t)in;
    e->trust = t->trust_id;
    e->auth_time = (int64_t)time(NULL);
    e->not_after = mtls_identity_end(t->identity);
    e->data = data;
    pthread_mutex_unlock(&shards[(h % n_slots) % SHARDS].lock);
    return 0; /* we keep a copy, not wolfSSL's object */
}

static WOLFSSL_SESSION *on_get_session(WOLFSSL *ssl, const unsigned char *id, int len,
                                       int *copy)
{
    struct mtls_tls *t = wolfSSL_GetIOReadCtx(ssl);
    uint8_t buf[BLOB_MAX + IDENT_MAX];
    struct mtls_identity *ident = NULL;
    WOLFSSL_SESSION *sess = NULL;
    const unsigned char *p;
    struct entry *e;
    uint64_t h, gen = 0;
    int64_t auth = 0;
    size_t bn = 0, in = 0;
    int reason = MTLS_REFUSE_NONE;
    bool found = false;
    unsigned slot;

    *copy = 0; /* wolfSSL frees what we return after copying it */
    if (!t || len <= 0 || len > ID_MAX || !slots)
        return NULL;
    h = slot_hash(id, (unsigned)len);
    slot = (unsigned)(h % n_slots);
    e = &slots[slot];
    pthread_mutex_lock(&shards[slot % SHARDS].lock);
    if (e->id_len == (uint8_t)len && memcmp(e->id, id, (size_t)len) == 0) {
        found = true;
        reason = mtls_resume_check(e->trust, e->auth_time, e->not_after);
        if (reason != MTLS_REFUSE_NONE) {
            entry_clear(e); /* it will never resume again */
        } else {
            bn = e->blob_len;
            in = e->ident_len;
            memcpy(buf, e->data, bn + in);
            gen = e->trust;
            auth = e->auth_time;
        }
    }
    pthread_mutex_unlock(&shards[slot % SHARDS].lock);
    if (!found)
        goto out; /* an ordinary miss (or a ticket client's random ID) */
    if (reason != MTLS_REFUSE_NONE) {
        mtls_resume_count_refusal(t, reason);
        goto out;
    }
    ident = mtls_identity_deserialize(buf + bn, in);
    p = buf;
    if (!ident || !(sess = wolfSSL_d2i_SSL_SESSION(NULL, &p, (long)bn))) {
        mtls_resume_count_refusal(t, MTLS_REFUSE_BAD);
        mtls_identity_free(ident);
        goto out;
    }
    /* Kept apart until the handshake ends, like a ticket's identity. */
    mtls_identity_free(t->ticket_identity);
    t->ticket_identity = ident;
    t->ticket_trust = gen;
    t->ticket_auth_time = auth;
    t->ticket_kind = MTLS_RESUME_TLS12_SESSION_ID;
out:
    explicit_bzero(buf, sizeof(buf));
    return sess;
}

int mtls_sessions_setup(WOLFSSL_CTX *ctx, const struct mtls_resume_settings *cfg, char *err,
                        size_t errlen)
{
    if (cfg->session_cache == 0) {
        wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);
        return 0;
    }
    if (!slots) {
        slots = calloc(cfg->session_cache, sizeof(*slots));
        if (!slots) {
            snprintf(err, errlen, "--session-cache %u: out of memory", cfg->session_cache);
            return -1;
        }
        n_slots = cfg->session_cache;
        for (unsigned i = 0; i < SHARDS; i++)
            pthread_mutex_init(&shards[i].lock, NULL);
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
    if (!slots)
        return;
    for (unsigned i = 0; i < n_slots; i++)
        entry_clear(&slots[i]);
    free(slots);
    slots = NULL;
    n_slots = 0;
    for (unsigned i = 0; i < SHARDS; i++)
        pthread_mutex_destroy(&shards[i].lock);
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
