/* tickets.c: session-ticket keys and the ticket callback.
 *
 * What a ticket holds. wolfSSL hands its own InternalTicket (version, suite,
 * resumption secret, age obfuscation) to our callback; we seal it together
 * with an identity record in one encrypt-then-MAC envelope:
 *
 *   plaintext = InternalTicket | record | u16 len(InternalTicket) | PKCS#7 pad
 *   record    = u8 version(1) | u8 flags(bit0: usable) | u64 trust id
 *             | i64 auth time (the full handshake that verified the identity)
 *             | identity (src/identity.c)
 *   ticket    = key name[16] | IV[16] | u16 len | AES-256-CBC(plaintext)
 *             | HMAC-SHA256(name | IV | len | ciphertext)
 *
 * This is RFC 5077's recommended construction with nginx's 80-byte key
 * records, so key files are interchangeable with nginx's and the frame fits
 * wolfSSL's ExternalTicket (16-byte IV, 32-byte MAC) exactly. The MAC is
 * checked (in constant time) before anything is decrypted, so the padding
 * check is no oracle.
 *
 * Any worker and any instance with the same keys restores the identity from
 * the ticket alone: nothing is shared but the keys. On decryption the ticket
 * is refused (wolfSSL then does a full handshake, which applies today's
 * trust) when the trust changed since the identity was verified (a SIGHUP
 * reloaded other CAs or CRLs: mtls_verify_trust_id(), a digest of them, so
 * that instances with the same trust agree), when the original full handshake is older
 * than --session-lifetime (new tickets minted on a resumed connection keep
 * the original auth time, so chaining resumptions never extends it), when
 * the client certificate's notAfter has passed, or, for TLS 1.3, when the
 * client did not offer psk_dhe_ke with a key share (unless --tls13-psk-ke).
 *
 * Key sharing between workers: a seqlock over a fixed, static key table.
 * Readers (every worker, in the callback) copy the one key they need and
 * retry if a writer ran meanwhile; they never block, never write a shared
 * cache line, and there is nothing to free. The rejected alternative, an
 * RCU-style pointer swap of an immutable key set, needs either a reference
 * count (a shared cache line written by every handshake on every worker) or
 * a grace period that a descheduled worker could outlive. Writers (rotation
 * and SIGHUP reload, both on the main thread) are serialized by a mutex.
 * Key copies on the stack are zeroed after use; keys are never logged. */
#include "mtlsd/tickets.h"
#include "mtlsd/be.h"
#include "mtlsd/clock.h"
#include "mtlsd/identity.h"
#include "mtlsd/log.h"
#include "mtlsd/metrics.h"
#include "mtlsd/tls_internal.h"
#include "mtlsd/verify.h"

#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/memory.h>
#include <wolfssl/wolfcrypt/random.h>

/* wolfSSL has no server-side switch to refuse psk_ke (wolfSSL_CTX_no_dhe_psk
 * does the opposite); the callback reads the client's PSK key exchange
 * modes from the handshake's extensions, which needs the library's private
 * header. */
#include "mtlsd/wolfssl_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KEY_WORDS (MTLS_TICKET_KEY_SIZE / 8)
#define RECORD_VERSION 1
#define RECORD_USABLE 0x01
#define RECORD_HEADER (1 + 1 + 8 + 8)
#define AES_BLOCK 16
/* Largest ciphertext we accept or produce; wolfSSL's own bound is
 * WOLFSSL_TICKET_ENC_SZ (sizeof(InternalTicket) + the padding from deps.sh). */
#define TICKET_MAX 2048

_Static_assert(MTLS_TICKET_KEY_SIZE % 8 == 0, "key records are whole words");
_Static_assert(WOLFSSL_TICKET_NAME_SZ == MTLS_TICKET_NAME_SIZE, "name size");
_Static_assert(WOLFSSL_TICKET_IV_SZ == AES_BLOCK, "IV is one AES block");
_Static_assert(WOLFSSL_TICKET_MAC_SZ == WC_SHA256_DIGEST_SIZE, "MAC is HMAC-SHA256");

/* ---- the key table (seqlock) --------------------------------------------- */

static struct {
    uint64_t seq;                                  /* odd while a writer runs */
    uint32_t n;                                    /* keys in use, newest first */
    uint64_t key[MTLS_TICKET_MAX_KEYS][KEY_WORDS]; /* read with relaxed atomics */
} table;
static pthread_mutex_t writer_lock = PTHREAD_MUTEX_INITIALIZER;

/* Settings, written once before the workers start. */
static struct {
    bool enabled;
    bool allow_psk_ke;
    const char *file;
    uint64_t rotate_ms;          /* 0: no automatic rotation (key file) */
    int64_t lifetime_s;
    uint64_t next_rotation_ms;   /* main thread only */
} cfg_t;

uint64_t mtls_ticket_key_rotations; /* process-wide, rendered by metrics.c */

static void publish(const uint8_t (*keys)[MTLS_TICKET_KEY_SIZE], unsigned n)
{
    uint64_t s;

    pthread_mutex_lock(&writer_lock);
    s = __atomic_load_n(&table.seq, __ATOMIC_RELAXED);
    __atomic_store_n(&table.seq, s + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    for (unsigned i = 0; i < MTLS_TICKET_MAX_KEYS; i++) {
        for (unsigned w = 0; w < KEY_WORDS; w++) {
            uint64_t v = 0;
            if (i < n)
                memcpy(&v, keys[i] + 8 * w, 8);
            __atomic_store_n(&table.key[i][w], v, __ATOMIC_RELAXED);
            explicit_bzero(&v, sizeof(v));
        }
    }
    __atomic_store_n(&table.n, n, __ATOMIC_RELAXED);
    __atomic_store_n(&table.seq, s + 2, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&writer_lock);
}

/* Copies the key whose name matches `name` (or the newest with name NULL).
 * Returns its index (0 = newest), or -1 when there is none. */
static int key_lookup(const uint8_t *name, uint8_t out[MTLS_TICKET_KEY_SIZE])
{
    uint64_t w[KEY_WORDS];
    uint64_t s1, s2;
    int found;

    for (;;) {
        s1 = __atomic_load_n(&table.seq, __ATOMIC_ACQUIRE);
        found = -1;
        if (!(s1 & 1)) {
            uint32_t n = __atomic_load_n(&table.n, __ATOMIC_RELAXED);
            for (uint32_t i = 0; i < n && i < MTLS_TICKET_MAX_KEYS; i++) {
                for (unsigned k = 0; k < KEY_WORDS; k++)
                    w[k] = __atomic_load_n(&table.key[i][k], __ATOMIC_RELAXED);
                if (!name || memcmp(w, name, MTLS_TICKET_NAME_SIZE) == 0) {
                    found = (int)i;
                    break;
                }
            }
        }
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        s2 = __atomic_load_n(&table.seq, __ATOMIC_RELAXED);
        if (!(s1 & 1) && s1 == s2)
            break;
        /* A writer ran: it takes microseconds and happens at most once a
         * second; just read again. */
    }
    if (found >= 0)
        memcpy(out, w, MTLS_TICKET_KEY_SIZE);
    explicit_bzero(w, sizeof(w));
    return found;
}


static int random_bytes(void *p, size_t n)
{
    uint8_t *b = p;

    while (n) {
        ssize_t r = getrandom(b, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

/* ---- key file --------------------------------------------------------------- */

int mtls_tickets_read_file(const char *path, uint8_t (*keys)[MTLS_TICKET_KEY_SIZE],
                           unsigned max, unsigned *n, char *err, size_t errlen)
{
    struct stat st;
    size_t want, got = 0;
    /* Symlinks are followed: a Kubernetes Secret volume shows every file as
     * NAME -> ..data/NAME. The checks below apply to the file itself. */
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    *n = 0;
    if (fd < 0) {
        snprintf(err, errlen, "--ticket-key-file %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0) {
        snprintf(err, errlen, "--ticket-key-file %s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "--ticket-key-file %s: not a regular file", path);
        goto fail;
    }
    /* Group read only for our own group: that is how a Kubernetes Secret
     * volume with fsGroup (mode 0440, group = fsGroup) lets a non-root
     * server read it. Anyone else reading the keys could forge sessions. */
    mode_t denied = S_IRWXO | S_IWGRP | S_IXGRP | (st.st_gid == getegid() ? 0 : S_IRGRP);
    if (st.st_mode & denied) {
        snprintf(err, errlen,
                 "--ticket-key-file %s: permissions %04o let group or others use the "
                 "ticket keys; refusing it (chmod 600 %s)",
                 path, (unsigned)(st.st_mode & 07777), path);
        goto fail;
    }
    if (st.st_size <= 0 || st.st_size % MTLS_TICKET_KEY_SIZE != 0 ||
        st.st_size / MTLS_TICKET_KEY_SIZE > (off_t)max) {
        snprintf(err, errlen,
                 "--ticket-key-file %s: %lld bytes; it must hold 1 to %u records of %d "
                 "bytes (e.g. openssl rand 80 > FILE)",
                 path, (long long)st.st_size, max, MTLS_TICKET_KEY_SIZE);
        goto fail;
    }
    want = (size_t)st.st_size;
    while (got < want) {
        ssize_t r = read(fd, (uint8_t *)keys + got, want - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            snprintf(err, errlen, "--ticket-key-file %s: short read", path);
            explicit_bzero(keys, want);
            goto fail;
        }
        got += (size_t)r;
    }
    close(fd);
    *n = (unsigned)(want / MTLS_TICKET_KEY_SIZE);
    return 0;
fail:
    close(fd);
    return -1;
}

static int load_file(char *err, size_t errlen)
{
    uint8_t keys[MTLS_TICKET_MAX_KEYS][MTLS_TICKET_KEY_SIZE];
    unsigned n;
    int ret = mtls_tickets_read_file(cfg_t.file, keys, MTLS_TICKET_MAX_KEYS, &n, err, errlen);

    if (ret == 0) {
        publish((const uint8_t (*)[MTLS_TICKET_KEY_SIZE])keys, n);
        log_info("session tickets: %u key%s loaded from %s", n, n == 1 ? "" : "s",
                 cfg_t.file);
    }
    explicit_bzero(keys, sizeof(keys));
    return ret;
}

/* Generated keys: a new key becomes current; the previous one still
 * decrypts for one more period, older ones are dropped. */
static int rotate(bool first)
{
    uint8_t keys[2][MTLS_TICKET_KEY_SIZE];
    unsigned n = 1;

    if (random_bytes(keys[0], MTLS_TICKET_KEY_SIZE) < 0)
        return -1;
    if (!first && key_lookup(NULL, keys[1]) == 0)
        n = 2;
    publish((const uint8_t (*)[MTLS_TICKET_KEY_SIZE])keys, n);
    explicit_bzero(keys, sizeof(keys));
    if (!first)
        __atomic_fetch_add(&mtls_ticket_key_rotations, 1, __ATOMIC_RELAXED);
    return 0;
}

int mtls_tickets_init(const struct mtls_resume_settings *cfg, char *err, size_t errlen)
{
    memset(&cfg_t, 0, sizeof(cfg_t));
    cfg_t.enabled = cfg->tickets;
    cfg_t.allow_psk_ke = cfg->tls13_psk_ke;
    cfg_t.file = cfg->ticket_key_file;
    cfg_t.lifetime_s = (int64_t)cfg->session_lifetime_s;
    if (!cfg_t.enabled)
        return 0;
    if (cfg_t.file)
        return load_file(err, errlen);
    if (rotate(true) < 0) {
        snprintf(err, errlen, "cannot generate a session ticket key: %s", strerror(errno));
        return -1;
    }
    cfg_t.rotate_ms = (uint64_t)cfg->ticket_rotate_s * 1000;
    cfg_t.next_rotation_ms = mtls_mono_ms() + cfg_t.rotate_ms;
    return 0;
}

int mtls_tickets_reload(char *err, size_t errlen)
{
    if (!cfg_t.enabled || !cfg_t.file)
        return 0;
    return load_file(err, errlen);
}

unsigned mtls_tickets_tick(void)
{
    uint64_t now;

    if (!cfg_t.enabled || !cfg_t.rotate_ms)
        return 1000;
    now = mtls_mono_ms();
    if (now >= cfg_t.next_rotation_ms) {
        if (rotate(false) < 0) {
            log_error("session tickets: cannot generate a new key; keeping the old one");
            cfg_t.next_rotation_ms = now + 1000;
        } else {
            log_debug("session tickets: key rotated");
            cfg_t.next_rotation_ms += cfg_t.rotate_ms;
            if (cfg_t.next_rotation_ms <= now) /* the process was stopped a while */
                cfg_t.next_rotation_ms = now + cfg_t.rotate_ms;
        }
    }
    return cfg_t.next_rotation_ms - now < 1000 ? (unsigned)(cfg_t.next_rotation_ms - now)
                                               : 1000;
}

void mtls_tickets_shutdown(void)
{
    publish(NULL, 0);
}

/* ---- resumption policy (tickets and session IDs) ---------------------------- */

int mtls_resume_check(uint64_t trust, int64_t auth_time, int64_t not_after)
{
    int64_t now = (int64_t)time(NULL);

    if (trust != mtls_verify_trust_id())
        return MTLS_REFUSE_GENERATION;
    /* no now - auth_time: a sealed time may be any 64 bits (found by fuzz_ticket) */
    if (auth_time > now + 60 || auth_time < now - cfg_t.lifetime_s)
        return MTLS_REFUSE_LIFETIME;
    if (not_after == (int64_t)-1 || not_after < now)
        return MTLS_REFUSE_EXPIRED_CERT;
    return MTLS_REFUSE_NONE;
}

void mtls_resume_count_refusal(struct mtls_tls *t, int reason)
{
#define TEXT(X, e, m, text, help) [MTLS_REFUSE_##e] = text,
    static const char *const why[] = {MTLS_RESUME_REFUSALS(TEXT, _)};
#undef TEXT

    if (reason <= MTLS_REFUSE_NONE || reason >= MTLS_REFUSE_COUNT)
        reason = MTLS_REFUSE_BAD; /* fail closed on an unknown reason */
    log_debug("resumption refused: %s", why[reason]);
    /* wolfSSL may call the ticket callback for several offered tickets
     * (5.5.4: also once per candidate cipher suite; tls13.c
     * CheckPreSharedKeys): count a refusal once per connection. */
    if (!t || !t->metrics || t->ticket_refused)
        return;
    t->ticket_refused = true;
#define COUNT(X, e, m, text, help)                          \
    case MTLS_REFUSE_##e:                                   \
        METRIC_INC(t->metrics, resumption_refused_##m); \
        break;
    switch (reason) {
        MTLS_RESUME_REFUSALS(COUNT, _)
    default: METRIC_INC(t->metrics, resumption_refused_bad_ticket); break; /* fail closed */
    }
#undef COUNT
}

/* ---- the callback ------------------------------------------------------------ */


static int mac_ticket(const uint8_t *key, const uint8_t *name, const uint8_t *iv,
                      const uint8_t *ct, size_t len, uint8_t mac[WC_SHA256_DIGEST_SIZE])
{
    Hmac h;
    uint8_t l[2] = {(uint8_t)(len >> 8), (uint8_t)len};
    int ret;

    if (wc_HmacInit(&h, NULL, INVALID_DEVID) != 0)
        return -1;
    ret = wc_HmacSetKey(&h, WC_SHA256, key + MTLS_TICKET_NAME_SIZE, MTLS_TICKET_HMAC_SIZE);
    if (ret == 0)
        ret = wc_HmacUpdate(&h, name, MTLS_TICKET_NAME_SIZE);
    if (ret == 0)
        ret = wc_HmacUpdate(&h, iv, AES_BLOCK);
    if (ret == 0)
        ret = wc_HmacUpdate(&h, l, sizeof(l));
    if (ret == 0)
        ret = wc_HmacUpdate(&h, ct, (word32)len);
    if (ret == 0)
        ret = wc_HmacFinal(&h, mac);
    wc_HmacFree(&h);
    explicit_bzero(&h, sizeof(h));
    return ret == 0 ? 0 : -1;
}

static int aes_cbc(const uint8_t *key, const uint8_t *iv, uint8_t *out, const uint8_t *in,
                   size_t len, bool encrypt)
{
    Aes aes;
    int ret;

    if (wc_AesInit(&aes, NULL, INVALID_DEVID) != 0)
        return -1;
    ret = wc_AesSetKey(&aes, key + MTLS_TICKET_NAME_SIZE + MTLS_TICKET_HMAC_SIZE,
                       MTLS_TICKET_AES_SIZE, iv, encrypt ? AES_ENCRYPTION : AES_DECRYPTION);
    if (ret == 0)
        ret = encrypt ? wc_AesCbcEncrypt(&aes, out, in, (word32)len)
                      : wc_AesCbcDecrypt(&aes, out, in, (word32)len);
    wc_AesFree(&aes);
    explicit_bzero(&aes, sizeof(aes));
    return ret == 0 ? 0 : -1;
}

static bool equal_ct(const uint8_t *a, const uint8_t *b, size_t n)
{
    uint8_t d = 0;

    for (size_t i = 0; i < n; i++)
        d |= (uint8_t)(a[i] ^ b[i]);
    return d == 0;
}

static int64_t wall_now(void)
{
    return (int64_t)time(NULL);
}

/* TLS 1.3 only: will wolfSSL use (EC)DHE with the PSK? It does whenever the
 * client offers psk_dhe_ke and a key_share (tls13.c CheckPreSharedKeys), and
 * falls back to psk_ke otherwise; that fallback is what we refuse. */
static bool tls13_psk_has_dhe(WOLFSSL *ssl)
{
#ifdef MTLSD_HAVE_WOLFSSL_INTERNAL
    TLSX *modes = TLSX_Find(ssl->extensions, TLSX_PSK_KEY_EXCHANGE_MODES);
    return modes && (modes->val & (1u << PSK_DHE_KE)) &&
           TLSX_Find(ssl->extensions, TLSX_KEY_SHARE) != NULL;
#else
    (void)ssl;
    return false; /* cannot tell: refuse TLS 1.3 resumption unless --tls13-psk-ke */
#endif
}

#ifdef MTLSD_HAVE_WOLFSSL_INTERNAL
static bool within(const uint8_t *p, size_t n, const void *buf, size_t len)
{
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)buf;

    return buf && a >= b && a - b <= len && n <= len - (a - b);
}
#endif

/* Does the ticket, with its MAC after it (n bytes from `enc`), lie within
 * what the client sent? wolfSSL 5.5.4 to 5.7.2 bound the claimed length by
 * their own maximum only (scripts/patches/wolfssl-ticket-len.patch fixes the
 * library we build); this check keeps the callback from reading past the
 * ClientHello if that check is ever missing. A TLS 1.3 ticket is a PSK
 * identity (its own allocation); a TLS 1.2 ticket lies in the record being
 * parsed, or in the reassembled message when the ClientHello spanned
 * records. Without internal.h it cannot be told: trust the library. */
static bool ticket_in_bounds(WOLFSSL *ssl, const uint8_t *enc, size_t n)
{
#ifdef MTLSD_HAVE_WOLFSSL_INTERNAL
    TLSX *ext = TLSX_Find(ssl->extensions, TLSX_PRE_SHARED_KEY);

    for (PreSharedKey *psk = ext ? ext->data : NULL; psk; psk = psk->next)
        if (within(enc, n, psk->identity, psk->identityLen))
            return true;
    if (within(enc, n, ssl->buffers.inputBuffer.buffer, ssl->buffers.inputBuffer.length))
        return true;
    return ssl->arrays && within(enc, n, ssl->arrays->pendingMsg, ssl->arrays->pendingMsgSz);
#else
    (void)ssl, (void)enc, (void)n;
    return true;
#endif
}

/* Per-ticket randomness from the connection's DRBG (its worker's, lent by
 * src/tls.c): no system call. The kernel's when the connection has none. */
static int ticket_random(WOLFSSL *ssl, void *p, size_t n)
{
    WC_RNG *rng = wolfSSL_GetRNG(ssl);

    if (!rng)
        return random_bytes(p, n);
    return wc_RNG_GenerateBlock(rng, p, (word32)n) == 0 ? 0 : -1;
}

/* A ticket that can never be opened (random name, IV, bytes and MAC), for
 * when no usable one can be made (a wolfSSL without room for the record,
 * no key): wolfSSL fails the handshake when the callback fails, and a
 * ticket that never resumes costs the client only a full handshake. */
static int ticket_garbage(WOLFSSL *ssl, struct mtls_tls *t, uint8_t name[16], uint8_t iv[16],
                          uint8_t mac[32], uint8_t *ticket, int it_len, int *out_len)
{
    if (ticket_random(ssl, name, MTLS_TICKET_NAME_SIZE) < 0 ||
        ticket_random(ssl, iv, AES_BLOCK) < 0 ||
        ticket_random(ssl, mac, WC_SHA256_DIGEST_SIZE) < 0 ||
        ticket_random(ssl, ticket, (size_t)it_len) < 0)
        return WOLFSSL_TICKET_RET_FATAL;
    *out_len = it_len;
    if (t && t->metrics)
        METRIC_INC(t->metrics, tickets_unusable);
    return WOLFSSL_TICKET_RET_OK;
}

static int ticket_encrypt(WOLFSSL *ssl, struct mtls_tls *t, uint8_t name[16], uint8_t iv[16],
                          uint8_t mac[32], uint8_t *ticket, int it_len, int *out_len)
{
    uint8_t key[MTLS_TICKET_KEY_SIZE];
    uint8_t *rec;
    const struct mtls_identity *id = NULL;
    uint64_t gen = 0;
    int64_t auth = 0;
    size_t cap = (size_t)*out_len, len, pad;
    long idn = -1;
    int ret = WOLFSSL_TICKET_RET_FATAL;

    if (it_len <= 0 || cap > TICKET_MAX)
        return WOLFSSL_TICKET_RET_FATAL;
    if ((size_t)it_len + RECORD_HEADER + 2 + AES_BLOCK > cap)
        return ticket_garbage(ssl, t, name, iv, mac, ticket, it_len, out_len);
    /* Whose identity: the one verified in this handshake, or, on a resumed
     * one, the one restored from the client's ticket (with its original
     * generation and auth time). Anything else gets an unusable ticket. */
    if (t && t->identity) {
        /* Verified in this handshake under the trust of its start, unless a
         * reload happened meanwhile (the generation is a local counter that
         * only grows: equal means no reload): then the ticket is unusable. */
        if (mtls_verify_generation() == t->generation)
            id = t->identity;
        gen = t->trust_id;
        auth = wall_now();
    } else if (t && t->ticket_identity && wolfSSL_session_reused(ssl) == 1) {
        id = t->ticket_identity;
        gen = t->ticket_trust;
        auth = t->ticket_auth_time;
    }
    rec = ticket + it_len;
    len = (size_t)it_len + RECORD_HEADER;
    rec[0] = RECORD_VERSION;
    rec[1] = 0;
    mtls_put_be(rec + 2, gen, 8);
    mtls_put_be(rec + 10, (uint64_t)auth, 8);
    if (id)
        idn = mtls_identity_serialize(id, rec + RECORD_HEADER,
                                      cap - len - 2 - AES_BLOCK);
    if (idn >= 0) {
        rec[1] = RECORD_USABLE;
        len += (size_t)idn;
    } else {
        /* Too big for the ticket (or no identity): a ticket that will never
         * resume, rather than a truncated identity. wolfSSL treats a failing
         * callback as a failed handshake, so this still issues one. */
        /* Without an identity (--client-auth optional/present and no
         * verified certificate) the session simply does not resume. */
        if (id && t->metrics)
            METRIC_INC(t->metrics, tickets_unusable);
        id = NULL;
        if (id)
            log_debug("session ticket issued without identity: too large for a ticket");
    }
    ticket[len] = (uint8_t)((unsigned)it_len >> 8);
    ticket[len + 1] = (uint8_t)it_len;
    len += 2;
    pad = AES_BLOCK - len % AES_BLOCK;
    memset(ticket + len, (int)pad, pad);
    len += pad;

    if (key_lookup(NULL, key) < 0) {
        ret = ticket_garbage(ssl, t, name, iv, mac, ticket, it_len, out_len);
        goto out;
    }
    if (ticket_random(ssl, iv, AES_BLOCK) < 0)
        goto out;
    memcpy(name, key, MTLS_TICKET_NAME_SIZE);
    if (aes_cbc(key, iv, ticket, ticket, len, true) < 0 ||
        mac_ticket(key, name, iv, ticket, len, mac) < 0)
        goto out;
    *out_len = (int)len;
    if (t && t->metrics)
        METRIC_INC(t->metrics, tickets_issued);
    ret = WOLFSSL_TICKET_RET_OK;
out:
    explicit_bzero(key, sizeof(key));
    return ret;
}

#define REFUSE(t, reason)                     \
    do {                                      \
        mtls_resume_count_refusal((t), (reason)); \
        ret = WOLFSSL_TICKET_RET_REJECT;      \
        goto out;                             \
    } while (0)

static int ticket_decrypt(WOLFSSL *ssl, struct mtls_tls *t, const uint8_t name[16],
                          const uint8_t iv[16], const uint8_t mac[32], uint8_t *ticket,
                          int in_len, int *out_len)
{
    uint8_t key[MTLS_TICKET_KEY_SIZE];
    uint8_t plain[TICKET_MAX];
    uint8_t want[WC_SHA256_DIGEST_SIZE];
    struct mtls_identity *id;
    size_t len = (size_t)in_len, pad, it_len;
    const uint8_t *rec;
    uint64_t gen, tag;
    int64_t auth;
    int idx, reason, ret = WOLFSSL_TICKET_RET_REJECT;
    bool tls13 = wolfSSL_GetVersion(ssl) == WOLFSSL_TLSV1_3;

    idx = key_lookup(name, key);
    if (idx < 0)
        REFUSE(t, MTLS_REFUSE_UNKNOWN_KEY);
    if (in_len <= 0 ||  len > sizeof(plain) || len % AES_BLOCK != 0 ||
        mac_ticket(key, name, iv, ticket, len, want) < 0 || !equal_ct(want, mac, sizeof(want)))
        REFUSE(t, MTLS_REFUSE_BAD);
    /* One ticket per handshake. wolfSSL tries the client's PSK identities
     * for each candidate suite in turn and may resume with an earlier one
     * than the last we accepted (or reject one after we accepted it: a TLS
     * 1.2 ticket offered as a TLS 1.3 PSK fails wolfSSL's version check),
     * while the identity we restore is the last one accepted: a client
     * holding its own ticket and someone else's (TLS 1.2 sends tickets in
     * clear) would resume as the other. So once a ticket is accepted, only
     * the same ticket again (a second ClientHello after a
     * HelloRetryRequest) is. */
    memcpy(&tag, mac, sizeof(tag));
    if (t->ticket_identity && t->ticket_kind != MTLS_RESUME_TLS12_SESSION_ID &&
        tag != t->ticket_tag)
        REFUSE(t, MTLS_REFUSE_BAD);
    if (aes_cbc(key, iv, plain, ticket, len, false) < 0)
        REFUSE(t, MTLS_REFUSE_BAD);
    pad = plain[len - 1];
    if (pad == 0 || pad > AES_BLOCK || pad + 2 > len)
        REFUSE(t, MTLS_REFUSE_BAD);
    for (size_t i = 0; i < pad; i++)
        if (plain[len - 1 - i] != pad)
            REFUSE(t, MTLS_REFUSE_BAD);
    len -= pad + 2;
    it_len = (size_t)plain[len] << 8 | plain[len + 1];
    if (it_len == 0 || it_len + RECORD_HEADER > len)
        REFUSE(t, MTLS_REFUSE_BAD);
    rec = plain + it_len;
    if (rec[0] != RECORD_VERSION)
        REFUSE(t, MTLS_REFUSE_BAD);
    if (!(rec[1] & RECORD_USABLE))
        REFUSE(t, MTLS_REFUSE_NO_IDENTITY);
    gen = mtls_get_be(rec + 2, 8);
    auth = (int64_t)mtls_get_be(rec + 10, 8);
    reason = mtls_resume_check(gen, auth, INT64_MAX); /* notAfter below */
    if (reason != MTLS_REFUSE_NONE)
        REFUSE(t, reason);
    if (tls13 && !cfg_t.allow_psk_ke && !tls13_psk_has_dhe(ssl))
        REFUSE(t, MTLS_REFUSE_PSK_KE);
    id = mtls_identity_deserialize(rec + RECORD_HEADER, len - it_len - RECORD_HEADER);
    if (!id)
        REFUSE(t, MTLS_REFUSE_BAD);
    reason = mtls_resume_check(gen, auth, mtls_identity_end(id));
    if (reason != MTLS_REFUSE_NONE) {
        mtls_identity_free(id);
        REFUSE(t, reason);
    }
    mtls_identity_free(t->ticket_identity);
    t->ticket_identity = id;
    t->ticket_tag = tag;
    t->ticket_trust = gen;
    t->ticket_auth_time = auth;
    t->ticket_kind = tls13 ? MTLS_RESUME_TLS13_TICKET : MTLS_RESUME_TLS12_TICKET;
    memcpy(ticket, plain, it_len);
    *out_len = (int)it_len;
    /* TLS 1.2: a ticket under an older key gets a fresh one, so a client
     * that keeps resuming moves to the current key (TLS 1.3 sends a new
     * ticket on every resumption anyway, and resumes only on RET_OK).
     * wolfSSL 5.5.4 treated CREATE as OK (no renewal); 5.7.2 honours it. */
    ret = !tls13 && idx > 0 ? WOLFSSL_TICKET_RET_CREATE : WOLFSSL_TICKET_RET_OK;
out:
    explicit_bzero(key, sizeof(key));
    explicit_bzero(plain, sizeof(plain));
    return ret;
}

static int on_ticket(WOLFSSL *ssl, unsigned char key_name[WOLFSSL_TICKET_NAME_SZ],
                     unsigned char iv[WOLFSSL_TICKET_IV_SZ],
                     unsigned char mac[WOLFSSL_TICKET_MAC_SZ], int enc, unsigned char *ticket,
                     int in_len, int *out_len, void *ctx)
{
    struct mtls_tls *t = wolfSSL_GetIOReadCtx(ssl);

    (void)ctx;
    if (!t)
        return enc ? WOLFSSL_TICKET_RET_FATAL : WOLFSSL_TICKET_RET_REJECT;
    if (enc)
        return ticket_encrypt(ssl, t, key_name, iv, mac, ticket, in_len, out_len);
    /* wolfSSL's ExternalTicket: the MAC follows the ciphertext. */
    if (in_len <= 0 || mac != ticket + in_len ||
        !ticket_in_bounds(ssl, ticket, (size_t)in_len + WOLFSSL_TICKET_MAC_SZ)) {
        mtls_resume_count_refusal(t, MTLS_REFUSE_BAD);
        return WOLFSSL_TICKET_RET_REJECT;
    }
    return ticket_decrypt(ssl, t, key_name, iv, mac, ticket, in_len, out_len);
}

int mtls_tickets_setup(WOLFSSL_CTX *ctx, const struct mtls_resume_settings *cfg, char *err,
                       size_t errlen)
{
    bool enabled = cfg->tickets;
#ifdef MTLSD_HAVE_WOLFSSL_INTERNAL
    /* A wolfSSL built without the padding from scripts/deps.sh has no room
     * for even an empty record: every ticket would fail its handshake. */
    if (enabled && WOLFSSL_TICKET_ENC_SZ < sizeof(InternalTicket) + RECORD_HEADER + 2 + AES_BLOCK + 256) {
        log_warn("this wolfSSL leaves %d bytes for a session ticket: too few for a client "
                 "identity (build it with -DWOLFSSL_TICKET_EXTRA_PADDING_SZ=1024, see "
                 "scripts/deps.sh); session tickets are off",
                 (int)WOLFSSL_TICKET_ENC_SZ);
        enabled = false;
    }
#endif
    if (!enabled) {
        cfg_t.enabled = false;
        wolfSSL_CTX_no_ticket_TLSv13(ctx);
        wolfSSL_CTX_NoTicketTLSv12(ctx);
        return 0;
    }
    if (wolfSSL_CTX_set_TicketEncCb(ctx, on_ticket) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_set_timeout(ctx, cfg->session_lifetime_s) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_set_TicketHint(ctx, (int)cfg->session_lifetime_s) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "cannot install the session ticket callback: this wolfSSL lacks "
                              "it (Debian's 5.5.4 does): start with --tickets off");
        return -1;
    }
    if (cfg->tls13_tickets == 0)
        wolfSSL_CTX_no_ticket_TLSv13(ctx);
    else if (wolfSSL_CTX_set_num_tickets(ctx, cfg->tls13_tickets) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "cannot set --tls13-tickets");
        return -1;
    }
#ifndef MTLSD_HAVE_WOLFSSL_INTERNAL
    if (!cfg->tls13_psk_ke)
        log_warn("this wolfSSL build has no internal.h: TLS 1.3 tickets cannot be checked "
                 "for psk_dhe_ke and will not resume (use --tls13-psk-ke to allow them)");
#endif
    return 0;
}
