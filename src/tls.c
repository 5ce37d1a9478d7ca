/* tls.c: the wolfSSL adapter. Ciphertext in and out goes through buffers
 * the connection owns (h2o's read_bio/write_bio idea), so the worker can hand
 * whole flights to io_uring and wolfSSL never blocks or touches a socket. */
#include "mtlsd/tls_internal.h"
#include "mtlsd/keysign.h"
#include "mtlsd/log.h"
#include "mtlsd/metrics.h"
#include "mtlsd/sessions.h"
#include "mtlsd/tickets.h"
#include "mtlsd/verify.h"
#include "mtlsd/wolfssl_internal.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct mtls_tls_ctx {
    /* Replaced whole on SIGHUP. A WOLFSSL holds a reference to its CTX, so
     * established connections keep theirs; the lock only covers the moment
     * a new connection picks the current one. */
    WOLFSSL_CTX *ctx;
    pthread_rwlock_t lock;
    const struct mtls_config *cfg;
};

/* --key-signer openssl: wolfSSL's PK callbacks hand the server's RSA
 * signature to keysign.c (libcrypto). They need a wolfSSL built with
 * --enable-pkcallbacks (scripts/deps.sh) and its private header (the hash
 * identifiers and SendAlert); Debian's library has neither here. */
#if defined(HAVE_PK_CALLBACKS) && defined(MTLSD_HAVE_WOLFSSL_INTERNAL) && !defined(NO_RSA) && \
    defined(WC_RSA_PSS)
#define MTLS_KEYSIGN 1

/* `key` is the DER of the key in the connection's own WOLFSSL_CTX, loaded
 * with the certificate it sent (and checked against it): a reload cannot
 * slip another key in. wolfSSL then verifies the signature with that key
 * (internal.c VerifyRsaSign, ~20 us): a wrong or faulty signature fails the
 * handshake there too. */
static int keysign(WOLFSSL *ssl, enum mtls_keysign_alg alg, const unsigned char *in,
                   unsigned in_len, unsigned char *out, unsigned *out_len,
                   const unsigned char *key, unsigned key_len)
{
    struct mtls_tls *t = wolfSSL_GetIOReadCtx(ssl);
    size_t n = *out_len;

    if (!key || mtls_keysign_rsa(alg, key, key_len, in, in_len, out, &n) < 0 || n > UINT_MAX) {
        if (t) {
            t->sign_failed = true;
            METRIC_INC(t->metrics, key_sign_failures);
        }
        return WC_HW_E;
    }
    *out_len = (unsigned)n;
    if (t)
        METRIC_INC(t->metrics, key_signatures_openssl);
    return 0;
}

/* TLS 1.2 ECDHE-RSA with rsa_pkcs1_*: `in` is the DigestInfo wolfSSL
 * encoded around the digest (internal.c SendServerKeyExchange). */
static int on_rsa_sign(WOLFSSL *ssl, const unsigned char *in, unsigned int in_len,
                       unsigned char *out, word32 *out_len, const unsigned char *key,
                       unsigned int key_len, void *arg)
{
    (void)arg;
    return keysign(ssl, MTLS_KEYSIGN_PKCS1, in, in_len, out, out_len, key, key_len);
}

/* TLS 1.3 CertificateVerify and TLS 1.2 rsa_pss_rsae_*: `in` is the digest,
 * `hash` wolfSSL's hash identifier (TypeHash), `mgf` its MGF1 hash. */
static int on_rsa_pss_sign(WOLFSSL *ssl, const unsigned char *in, unsigned int in_len,
                           unsigned char *out, unsigned int *out_len, int hash, int mgf,
                           const unsigned char *key, unsigned int key_len, void *arg)
{
    enum mtls_keysign_alg alg = MTLS_KEYSIGN_N; /* anything else fails closed */

    (void)arg;
    if (hash == SHA256h && mgf == WC_MGF1SHA256)
        alg = MTLS_KEYSIGN_PSS_SHA256;
    else if (hash == SHA384h && mgf == WC_MGF1SHA384)
        alg = MTLS_KEYSIGN_PSS_SHA384;
    else if (hash == SHA512h && mgf == WC_MGF1SHA512)
        alg = MTLS_KEYSIGN_PSS_SHA512;
    return keysign(ssl, alg, in, in_len, out, out_len, key, key_len);
}
#endif

/* The key file, read once: wolfSSL and the signer's check see the same
 * bytes even while the file is being replaced. Cleansed by key_free. */
#define KEY_FILE_MAX (1u << 20)

static uint8_t *key_read(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long sz;

    if (!f || fseek(f, 0, SEEK_END) < 0 || (sz = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0) {
        snprintf(err, errlen, "--key %s: %s", path, strerror(errno));
        goto out;
    }
    if (sz == 0 || (unsigned long)sz > KEY_FILE_MAX) {
        snprintf(err, errlen, "--key %s: %ld bytes is not a PEM private key", path, sz);
        goto out;
    }
    if (!(buf = malloc((size_t)sz)) || fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
        snprintf(err, errlen, "--key %s: cannot read it", path);
        if (buf)
            explicit_bzero(buf, (size_t)sz);
        free(buf);
        buf = NULL;
        goto out;
    }
    *len = (size_t)sz;
out:
    if (f)
        fclose(f);
    return buf;
}

static void key_free(uint8_t *buf, size_t len)
{
    if (buf)
        explicit_bzero(buf, len);
    free(buf);
}

/* --key-signer: who signs with this key. auto takes libcrypto for an
 * RSA-2048 key on a CPU with AVX-512 IFMA (where it is twice as fast), else
 * wolfSSL: OpenSSL 3.0 has that code for 2048-bit keys only, and signs
 * RSA-3072 and 4096 about 7% slower than wolfSSL here.
 * An ECDSA key stays with wolfSSL whatever the flag (as fast as OpenSSL for
 * P-256; Envoy's CryptoMB also leaves ECDSA to its TLS library). Returns
 * the signer's name, or NULL with `err` set (a forced openssl that cannot
 * be had). */
static const char *signer_pick(const struct mtls_config *cfg, const uint8_t *pem, size_t len,
                               char *err, size_t errlen)
{
    enum mtls_key_signer want = cfg->key_signer;
    const char *why = NULL;
    char check[300] = "";
    unsigned bits = 0;

    if (want == MTLS_SIGNER_WOLFSSL)
        return "wolfssl";
#ifdef MTLS_KEYSIGN
    if (!mtls_keysign_built())
        why = "built without libcrypto (CMake MTLSD_OPENSSL_SIGNER=OFF)";
#else
    why = "this wolfSSL build lacks PK callbacks or its private header (the scripts/deps.sh "
          "build has both)";
#endif
    if (why) {
        if (want == MTLS_SIGNER_OPENSSL) {
            snprintf(err, errlen, "--key-signer openssl: %s; use --key-signer wolfssl", why);
            return NULL;
        }
        log_debug("key signer: wolfssl (%s)", why);
        return "wolfssl";
    }
    if (want == MTLS_SIGNER_AUTO && !mtls_keysign_cpu_fast(&why)) {
        log_info("key signer: wolfssl (--key-signer auto: %s, where libcrypto's RSA is "
                 "no faster)", why);
        return "wolfssl";
    }
    if (mtls_keysign_check(pem, len, &bits, check, sizeof(check)) < 0) {
        if (want == MTLS_SIGNER_OPENSSL) {
            snprintf(err, errlen, "--key %s: --key-signer openssl: %s", cfg->key_file, check);
            return NULL;
        }
        log_warn("key signer: wolfssl (--key-signer auto: %s)", check);
        return "wolfssl";
    }
    if (bits == 0) {
        if (want == MTLS_SIGNER_OPENSSL)
            log_info("key signer: wolfssl (--key-signer openssl applies to RSA keys; "
                     "--key %s is not one, wolfSSL signs it)", cfg->key_file);
        return "wolfssl";
    }
    if (want == MTLS_SIGNER_AUTO && bits != 2048) {
        log_info("key signer: wolfssl (--key-signer auto: libcrypto's AVX-512 code is for "
                 "RSA-2048, the key is RSA-%u)", bits);
        return "wolfssl";
    }
    log_info("key signer: openssl (libcrypto signs with the RSA-%u key%s)", bits,
             want == MTLS_SIGNER_AUTO ? "; --key-signer auto: the CPU has AVX-512 IFMA" : "");
    return "openssl";
}

/* wolfSSL asks for `sz` bytes; hand over what was fed, never more. */
static int on_cbio_recv(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
    struct mtls_tls *t = arg;
    size_t n;

    (void)ssl;
    if (t->in_len == 0)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    n = t->in_len < (size_t)sz ? t->in_len : (size_t)sz;
    memcpy(buf, t->in, n);
    t->in += n;
    t->in_len -= n;
    return (int)n;
}

/* Appending never blocks: the connection sends the whole flight at once and
 * bounds the buffer by pausing input (conn.c). */
static int on_cbio_send(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
    struct mtls_tls *t = arg;

    (void)ssl;
    if (mtls_buf_append(t->out, buf, (size_t)sz) < 0)
        return WOLFSSL_CBIO_ERR_GENERAL;
    return sz;
}

static const char *err_string(int err)
{
    static __thread char text[WOLFSSL_MAX_ERROR_SZ];

    wolfSSL_ERR_error_string_n((unsigned long)err, text, sizeof(text));
    return text;
}

static WOLFSSL_CTX *ctx_build(const struct mtls_config *cfg, const char **signer, char *err,
                              size_t errlen);

/* wolfSSL's verify callback: verify.c judges, the connection state is
 * written here only. */
static int on_verify(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
    struct mtls_tls *t = store->userCtx;
    struct mtls_verify_result r;
    int ok;

    if (!t)
        return 0;
    ok = mtls_verify_peer(preverify, store, t->metrics, &r);
    t->cert_presented = r.cert_presented;
    if (r.verify_error)
        t->verify_error = r.verify_error;
    if (r.chain_cached)
        t->chain_cached = true;
    if (r.identity) {
        mtls_identity_free(t->identity);
        t->identity = r.identity;
    }
    return ok;
}

/* The only application protocol spoken. A client offering ALPN without it
 * (h2-only gRPC) gets no_application_protocol instead of a connection it
 * cannot use; a client offering none is served. */
static char alpn_http11[] = "http/1.1";

/* A TLS 1.2 CertificateRequest is one record and its CA list a 16-bit
 * length: names beyond this would not fit (nginx has the same limit in
 * practice). */
#define CA_NAMES_MAX 16000

/* CA names go to wolfSSL as DER (scripts/patches/wolfssl-ca-names-der.patch);
 * a wolfSSL without that patch (a system library) cannot send them, and
 * --send-ca-names only warns. */
#ifdef WOLFSSL_CA_NAMES_DER
#define MTLS_CA_NAMES 1

/* The subject Name of a DER certificate (RFC 5280 4.1.2.6), its SEQUENCE
 * header included, which is what a CA name is. */
static const uint8_t *cert_subject(const uint8_t *der, size_t len, size_t *n)
{
    const uint8_t *end = der + len, *p, *v;
    uint8_t tag;
    size_t l;
    int want = 5; /* [0] version, serial, signature, issuer, validity, subject */

    if (!(p = mtls_der_item(der, end, &tag, &l)) || tag != 0x30 ||
        !(p = mtls_der_item(p, end, &tag, &l)) || tag != 0x30)
        return NULL;
    end = p + l;
    for (int i = 0; (v = mtls_der_item(p, end, &tag, &l)) != NULL; i++, p = v + l) {
        if (i == 0 && tag != 0xa0)
            want = 4; /* a v1 certificate has no version field */
        if (i == want) {
            *n = (size_t)(v + l - p);
            return tag == 0x30 ? p : NULL;
        }
    }
    return NULL;
}
#endif

/* --send-ca-names: the subject of every --client-ca certificate goes into
 * the CertificateRequest (TLS 1.2 certificate_authorities list, TLS 1.3
 * extension). Browsers, Java with several keystore entries and .NET pick
 * their certificate by it. Names only: trust stays with verify.c. */
static int ca_names_set(WOLFSSL_CTX *ctx, const char *file, char *err, size_t errlen)
{
#ifdef MTLS_CA_NAMES
    FILE *f = fopen(file, "rb");
    char *pem = NULL;
    unsigned char *der = NULL, *list = NULL;
    size_t len = 0, total = 0;
    long sz;
    int ret = -1, n = 0;

    /* DER is shorter than its PEM: one buffer of the file's size holds any. */
    if (!f || fseek(f, 0, SEEK_END) < 0 || (sz = ftell(f)) < 0 || sz > (16L << 20) ||
        fseek(f, 0, SEEK_SET) < 0 || !(pem = malloc((size_t)sz + 1)) ||
        !(der = malloc((size_t)sz + 1)) || !(list = malloc(CA_NAMES_MAX)) ||
        (len = fread(pem, 1, (size_t)sz, f)) != (size_t)sz) {
        snprintf(err, errlen, "--client-ca %s: cannot read it for --send-ca-names", file);
        goto out;
    }
    pem[len] = '\0';
    for (char *p = pem; (p = strstr(p, "-----BEGIN CERTIFICATE-----")) != NULL;) {
        char *end = strstr(p, "-----END CERTIFICATE-----");
        const uint8_t *subj;
        size_t slen;
        int dlen;

        if (!end)
            break;
        end += sizeof("-----END CERTIFICATE-----") - 1;
        dlen = wc_CertPemToDer((const unsigned char *)p, (int)(end - p), der, (int)len,
                               CERT_TYPE);
        p = end;
        if (dlen <= 0 || !(subj = cert_subject(der, (size_t)dlen, &slen)))
            continue; /* verify.c refuses the file and says why */
        n++;
        /* Each name: a 2-byte length, then the Name. */
        if (total + 2 + slen > CA_NAMES_MAX) {
            snprintf(err, errlen,
                     "--client-ca %s: its CA names exceed %d bytes, more than a certificate "
                     "request holds: use --send-ca-names off",
                     file, CA_NAMES_MAX);
            goto out;
        }
        list[total] = (unsigned char)(slen >> 8);
        list[total + 1] = (unsigned char)slen;
        memcpy(list + total + 2, subj, slen);
        total += 2 + slen;
    }
    log_debug("--send-ca-names: %d CA names, %zu bytes", n, total);
    if (wolfSSL_CTX_set_client_CA_names_der(ctx, list, (unsigned int)total) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "--send-ca-names: wolfSSL refused the CA names of %s", file);
        goto out;
    }
    ret = 0;
out:
    if (f)
        fclose(f);
    free(pem);
    free(der);
    free(list);
    return ret;
#else
    (void)ctx;
    (void)err;
    (void)errlen;
    log_warn("--send-ca-names: this wolfSSL build cannot send CA names (%s)", file);
    return 0;
#endif
}

#ifdef WOLFSSL_SSL_RNG_CB
/* One DRBG per thread, lent to every WOLFSSL the thread makes
 * (scripts/patches/wolfssl-ssl-rng-cb.patch): wolfSSL would instantiate and
 * health-test one per connection, ~4.6% of a full handshake. A connection
 * stays on the worker that accepted it, so a DRBG is never used by two
 * threads; it goes with its thread (the key's destructor). */
static pthread_key_t rng_key;
static bool rng_key_ok;

static void rng_free(void *p)
{
    wc_FreeRng(p);
    free(p);
}

static void rng_key_make(void)
{
    rng_key_ok = pthread_key_create(&rng_key, rng_free) == 0;
}

/* NULL (out of memory, no seed): wolfSSL makes the connection its own. */
static WC_RNG *on_ssl_rng(WOLFSSL_CTX *ctx)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    WC_RNG *r;

    (void)ctx;
    pthread_once(&once, rng_key_make);
    if (!rng_key_ok)
        return NULL;
    if ((r = pthread_getspecific(rng_key)))
        return r;
    if (!(r = calloc(1, sizeof(*r))))
        return NULL;
    if (wc_InitRng(r) != 0) {
        free(r);
        return NULL;
    }
    if (pthread_setspecific(rng_key, r) != 0) {
        rng_free(r);
        return NULL;
    }
    return r;
}
#endif

int mtls_tls_ctx_new(struct mtls_tls_ctx **out, const struct mtls_config *cfg, char *err,
                     size_t errlen)
{
    struct mtls_tls_ctx *c;
    const char *signer = NULL;

    if (wolfSSL_lib_version_hex() != LIBWOLFSSL_VERSION_HEX) {
        snprintf(err, errlen, "wolfSSL headers (%s) do not match the library (%s)",
                 LIBWOLFSSL_VERSION_STRING, wolfSSL_lib_version());
        return -1;
    }
    if (wolfSSL_Init() != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "wolfSSL_Init failed");
        return -1;
    }
#ifdef WOLFSSL_SSL_RNG_CB
    wolfSSL_SetSslRngCb(on_ssl_rng);
#endif
    c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->cfg = cfg;
    pthread_rwlock_init(&c->lock, NULL);
    /* Ticket keys once: a CTX rebuilt on SIGHUP keeps using them. libcrypto
     * is set up now, before the sandbox, whatever the first key is: a
     * reload may bring an RSA key. */
    if ((cfg->key_signer != MTLS_SIGNER_WOLFSSL && mtls_keysign_built() &&
         mtls_keysign_init(err, errlen) < 0) ||
        mtls_verify_init(&cfg->verify, err, errlen) < 0 ||
        mtls_tickets_init(&cfg->resume, err, errlen) < 0 ||
        !(c->ctx = ctx_build(cfg, &signer, err, errlen))) {
        mtls_verify_shutdown();
        mtls_tickets_shutdown();
        mtls_sessions_shutdown();
        pthread_rwlock_destroy(&c->lock);
        free(c);
        return -1;
    }
    mtls_metrics_set_key_signer(signer);
    *out = c;
    return 0;
}

int mtls_tls_ctx_reload(struct mtls_tls_ctx *c, char *err, size_t errlen)
{
    WOLFSSL_CTX *fresh, *old;
    const char *signer = NULL;

    /* Certificate and key first: if they fail, nothing changes. */
    fresh = ctx_build(c->cfg, &signer, err, errlen);
    if (!fresh)
        return -1;
    if (mtls_verify_reload(err, errlen) < 0) {
        wolfSSL_CTX_free(fresh);
        return -1;
    }
    pthread_rwlock_wrlock(&c->lock);
    old = c->ctx;
    c->ctx = fresh;
    pthread_rwlock_unlock(&c->lock);
    mtls_metrics_set_key_signer(signer);
    wolfSSL_CTX_free(old); /* freed once its last connection is */
    return 0;
}

static WOLFSSL_CTX *ctx_build(const struct mtls_config *cfg, const char **signer, char *err,
                              size_t errlen)
{
    /* Only AEAD suites with forward secrecy; TLS 1.0/1.1 are not compiled in. */
    static const char ciphers[] =
        "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256:"
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
        "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
        "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
    /* The key exchange groups, both versions (README "Interop"); a client
     * with none of them gets handshake_failure. set_groups limits TLS 1.2
     * ECDHE too with scripts/patches/wolfssl-groups-tls12.patch; a
     * library with the OpenSSL layer instead needs set1_groups_list. */
#if defined(OPENSSL_EXTRA) && !defined(WOLFSSL_SET_GROUPS_TLS12)
#define MTLS_GROUPS_LIST 1
    /* not const: 5.5.4 (Debian's library) declares the argument char * */
    static char groups_list[] = "X25519:P-256:P-384";
#endif
    int groups[] = {WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1, WOLFSSL_ECC_SECP384R1};
    WOLFSSL_CTX *ctx = NULL;
    uint8_t *key = NULL;
    size_t key_len = 0;
    int ret;

    ctx = wolfSSL_CTX_new(wolfSSLv23_server_method());
    if (!ctx) {
        snprintf(err, errlen, "wolfSSL_CTX_new failed");
        goto fail;
    }
    if (wolfSSL_CTX_SetMinVersion(ctx, cfg->tls_min == 13 ? WOLFSSL_TLSV1_3
                                                          : WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "cannot set the minimum TLS version");
        goto fail;
    }
    if (wolfSSL_CTX_set_cipher_list(ctx, ciphers) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_set_groups(ctx, groups, (int)(sizeof(groups) / sizeof(groups[0]))) !=
            WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "cannot set cipher suites or groups");
        goto fail;
    }
#ifdef MTLS_GROUPS_LIST
    /* set_groups orders TLS 1.3 key shares only; this also disables every
     * other curve for TLS 1.2 ECDHE (P-521 was accepted there). 5.5.4
     * (Debian's library) knows no "X25519" here: serve, and say so. */
    if (wolfSSL_CTX_set1_groups_list(ctx, groups_list) != WOLFSSL_SUCCESS)
        log_warn("wolfSSL %s cannot limit TLS 1.2 ECDHE to %s: TLS 1.2 takes any curve it has",
                 wolfSSL_lib_version(), groups_list);
#endif
    wolfSSL_CTX_SetMinRsaKey_Sz(ctx, 2048);
    wolfSSL_CTX_SetMinEccKey_Sz(ctx, 256);

    ret = wolfSSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file);
    if (ret != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "--cert %s: cannot load a PEM certificate chain (%s)",
                 cfg->cert_file, err_string(ret));
        goto fail;
    }
    if (!(key = key_read(cfg->key_file, &key_len, err, errlen)))
        goto fail;
    ret = key_len > INT_MAX ? WOLFSSL_BAD_FILE
                            : wolfSSL_CTX_use_PrivateKey_buffer(ctx, key, (long)key_len,
                                                                WOLFSSL_FILETYPE_PEM);
    if (ret != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "--key %s: cannot load a PEM private key (%s)", cfg->key_file,
                 err_string(ret));
        goto fail;
    }
    if (wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "--key %s does not match the certificate in --cert %s",
                 cfg->key_file, cfg->cert_file);
        goto fail;
    }
    if (!(*signer = signer_pick(cfg, key, key_len, err, errlen)))
        goto fail;
#ifdef MTLS_KEYSIGN
    /* Per CTX: a connection signs with the signer chosen with its key. */
    if (strcmp(*signer, "openssl") == 0) {
        wolfSSL_CTX_SetRsaSignCb(ctx, on_rsa_sign);
        wolfSSL_CTX_SetRsaPssSignCb(ctx, on_rsa_pss_sign);
    }
#endif
    key_free(key, key_len);
    key = NULL;
    if (cfg->send_ca_names && ca_names_set(ctx, cfg->verify.client_ca_file, err, errlen) < 0)
        goto fail;
    /* No CA is loaded into the CTX: verify.c judges client chains. */
    mtls_verify_setup(ctx, &cfg->verify, on_verify);

    /* Resumption skips the verify callback: the identity travels sealed in
     * the ticket instead (tickets.c). */
    if (mtls_tickets_setup(ctx, &cfg->resume, err, errlen) < 0 ||
        mtls_sessions_setup(ctx, &cfg->resume, err, errlen) < 0)
        goto fail;

    wolfSSL_CTX_SetIORecv(ctx, on_cbio_recv);
    wolfSSL_CTX_SetIOSend(ctx, on_cbio_send);
    return ctx;
fail:
    key_free(key, key_len);
    if (ctx)
        wolfSSL_CTX_free(ctx);
    return NULL;
}

void mtls_tls_ctx_free(struct mtls_tls_ctx *c)
{
    if (!c)
        return;
    wolfSSL_CTX_free(c->ctx);
    pthread_rwlock_destroy(&c->lock);
    free(c);
    mtls_keysign_shutdown();
    mtls_verify_shutdown();
    mtls_tickets_shutdown();
    mtls_sessions_shutdown();
    wolfSSL_Cleanup();
}

int mtls_tls_new(struct mtls_tls **out_t, struct mtls_tls_ctx *ctx, struct mtls_buf *out,
                 struct mtls_metrics *metrics)
{
    struct mtls_tls *t = calloc(1, sizeof(*t));
    WOLFSSL *ssl;

    *out_t = NULL;
    if (!t)
        return -ENOMEM;
    pthread_rwlock_rdlock(&ctx->lock);
    ssl = wolfSSL_new(ctx->ctx);
    pthread_rwlock_unlock(&ctx->lock);
    t->client_auth = ctx->cfg->verify.client_auth;
    if (!ssl) {
        free(t);
        return -ENOMEM;
    }
    *out_t = t;
    t->ssl = ssl;
    t->out = out;
    t->metrics = metrics;
    mtls_verify_snapshot(&t->generation, &t->trust_id);
    wolfSSL_SetIOReadCtx(ssl, t);
    wolfSSL_SetIOWriteCtx(ssl, t);
    wolfSSL_SetCertCbCtx(ssl, t);
    if (wolfSSL_UseALPN(ssl, alpn_http11, sizeof(alpn_http11) - 1,
                        WOLFSSL_ALPN_FAILED_ON_MISMATCH) != WOLFSSL_SUCCESS) {
        wolfSSL_free(ssl);
        t->ssl = NULL;
        return -ENOMEM;
    }
    return 0;
}

void mtls_tls_free(struct mtls_tls *t)
{
    if (!t)
        return;
    if (t->ssl)
        wolfSSL_free(t->ssl);
    t->ssl = NULL;
    mtls_identity_free(t->identity);
    t->identity = NULL;
    mtls_identity_free(t->ticket_identity);
    t->ticket_identity = NULL;
    free(t);
}

enum mtls_tls_status mtls_tls_handshake(struct mtls_tls *t, const char **why)
{
    int ret = wolfSSL_accept(t->ssl), err;

    if (ret == WOLFSSL_SUCCESS) {
        if (wolfSSL_session_reused(t->ssl) == 1) {
            /* Resumed: the verify callback did not run; the identity is the
             * one our ticket callback restored and checked. A resumption
             * without one (a session-ID hit, a library quirk) or with both
             * is not served. */
            if (t->identity || !t->ticket_identity) {
                *why = "resumed handshake without a restorable client identity";
                return MTLS_TLS_ERROR;
            }
            t->identity = t->ticket_identity;
            t->ticket_identity = NULL;
            t->auth_time = t->ticket_auth_time;
            t->resumed = t->ticket_kind;
            if (t->resumed == MTLS_RESUME_NONE) {
                *why = "resumed handshake of unknown kind";
                return MTLS_TLS_ERROR;
            }
            return MTLS_TLS_OK;
        }
        /* Full handshake: a ticket the callback accepted but wolfSSL did not
         * resume with counts for nothing. */
        mtls_identity_free(t->ticket_identity);
        t->ticket_identity = NULL;
        if (!t->identity && t->client_auth == MTLS_AUTH_VERIFY) {
            /* Fail closed: a handshake that ends without a verified client
             * certificate (a library quirk) is not served. In
             * present/optional modes such a connection gets 403s. */
            *why = "handshake completed without a verified client identity";
            return MTLS_TLS_ERROR;
        }
        t->auth_time = (int64_t)time(NULL);
        t->resumed = MTLS_RESUME_NONE;
        return MTLS_TLS_OK;
    }
    err = wolfSSL_get_error(t->ssl, ret);
    if (err == WOLFSSL_ERROR_WANT_READ)
        return MTLS_TLS_AGAIN;
    if (t->sign_failed) {
#ifdef MTLS_KEYSIGN
        /* wolfSSL sends no alert when its CertificateVerify or
         * ServerKeyExchange cannot be made: internal_error after the part
         * of the flight already queued. */
        SendAlert((WOLFSSL *)t->ssl, alert_fatal, internal_error);
#endif
        *why = "the server's signature failed (--key-signer openssl; see the error logged)";
        return MTLS_TLS_ERROR;
    }
    if (err == UNKNOWN_ALPN_PROTOCOL_NAME_E)
        METRIC_INC(t->metrics, alpn_refused);
    *why = err_string(err);
    return MTLS_TLS_ERROR;
}

enum mtls_tls_status mtls_tls_read(struct mtls_tls *t, uint8_t *buf, size_t cap, size_t *n)
{
    int ret, err;

    /* Nothing fed and nothing inside wolfSSL: no call (wolfssl_internal.h). */
    if (t->in_len == 0 && mtls_wolfssl_read_idle(t->ssl)) {
        *n = 0;
        return MTLS_TLS_AGAIN;
    }
    ret = wolfSSL_read(t->ssl, buf, cap > INT32_MAX ? INT32_MAX : (int)cap);

    if (ret > 0) {
        *n = (size_t)ret;
        return MTLS_TLS_OK;
    }
    *n = 0;
    err = wolfSSL_get_error(t->ssl, ret);
    if (err == WOLFSSL_ERROR_WANT_READ)
        return MTLS_TLS_AGAIN;
    if (err == WOLFSSL_ERROR_ZERO_RETURN)
        return MTLS_TLS_CLOSED;
    log_debug("tls read: %s", err_string(err));
    return MTLS_TLS_ERROR;
}

int mtls_tls_write(struct mtls_tls *t, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (n > INT32_MAX)
        return -1;
    return wolfSSL_write(t->ssl, p, (int)n) == (int)n ? 0 : -1;
}

void mtls_tls_close_notify(struct mtls_tls *t)
{
    /* One-way: we do not wait for the peer's close_notify. */
    (void)wolfSSL_shutdown(t->ssl);
}

const char *mtls_tls_version_name(const struct mtls_tls *t)
{
    return wolfSSL_get_version(t->ssl);
}

const char *mtls_tls_cipher_name(const struct mtls_tls *t)
{
    return wolfSSL_get_cipher_name(t->ssl);
}

bool mtls_tls_resumed(const struct mtls_tls *t)
{
    return t->resumed != MTLS_RESUME_NONE;
}

enum mtls_tls_resume mtls_tls_resume_kind(const struct mtls_tls *t)
{
    return t->resumed;
}

const struct mtls_identity *mtls_tls_identity(const struct mtls_tls *t)
{
    return t->identity;
}

bool mtls_tls_cert_presented(const struct mtls_tls *t)
{
    return t->cert_presented;
}

bool mtls_tls_chain_cached(const struct mtls_tls *t)
{
    return t->chain_cached;
}

bool mtls_tls_sign_failed(const struct mtls_tls *t)
{
    return t->sign_failed;
}

void mtls_tls_feed(struct mtls_tls *t, const uint8_t *p, size_t n)
{
    t->in = p;
    t->in_len = n;
}

size_t mtls_tls_unread(const struct mtls_tls *t, const uint8_t **p)
{
    *p = t->in;
    return t->in_len;
}

bool mtls_tls_looks_like_http(const uint8_t *p, size_t n)
{
    /* 0x16: a handshake record. A method is upper-case letters then a space;
     * no TLS record starts with a letter, so a short prefix is enough. */
    if (n == 0 || p[0] == 0x16)
        return false;
    for (size_t i = 0; i < n && i < 16; i++) {
        if (p[i] == ' ')
            return i > 0;
        if (p[i] < 'A' || p[i] > 'Z')
            return false;
    }
    return true;
}

void mtls_tls_describe(FILE *f)
{
    fprintf(f, "wolfSSL %s (%s)\n", wolfSSL_lib_version(),
#ifdef MTLSD_SYSTEM_WOLFSSL
            "system library"
#else
            "built from Debian's source package by scripts/deps.sh"
#endif
    );
    fputs("assembly speed-ups:", f);
    int any = 0;
#ifdef WOLFSSL_AESNI
    fputs(" aesni", f), any = 1;
#endif
#ifdef USE_INTEL_SPEEDUP
    fputs(" intelasm(avx1/avx2)", f), any = 1;
#endif
#ifdef WOLFSSL_SP_X86_64_ASM
    fputs(" sp-x86_64-asm", f), any = 1;
#endif
#if defined(WOLFSSL_HAVE_SP_ECC)
    fputs(" sp-ecc-p256", f), any = 1;
#endif
#if defined(WOLFSSL_HAVE_SP_RSA)
    fputs(" sp-rsa", f), any = 1;
#endif
    if (!any)
        fputs(" none (expect ~9x slower ECDSA and ~180x slower AES-GCM)", f);
    fputc('\n', f);
#ifdef FP_ECC
    fputs("warning: FP_ECC fixed-point cache is on (slower for ephemeral keys)\n", f);
#endif
}
