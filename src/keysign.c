/* keysign.c: RSA signatures by libcrypto for the TLS part (keysign.h).
 * Each worker thread builds its own EVP_PKEY and one EVP_PKEY_CTX per
 * algorithm from the key DER wolfSSL passes, and reuses them: OpenSSL 3
 * fetches providers and methods at EVP_PKEY_sign_init (locks, lookups),
 * and an RSA object shared by threads falls back to a locked blinding
 * (rsa_get_blinding's mt_blinding). Per thread, neither happens. */
#include "mtlsd/keysign.h"
#include "mtlsd/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

bool mtls_keysign_cpu_fast(const char **why)
{
#if defined(__x86_64__) || defined(__i386__)
    /* CPUID.7.0:EBX: AVX512F (16), AVX512DQ (17), AVX512IFMA (21),
     * AVX512VL (31): ossl_rsaz_avx512ifma_eligible's test. */
    const unsigned need = 1u << 16 | 1u << 17 | 1u << 21 | 1u << 31;
    unsigned a, b, c, d, lo, hi;

    if (__get_cpuid_max(0, NULL) < 7) {
        *why = "the CPU has no CPUID leaf 7";
        return false;
    }
    __cpuid(1, a, b, c, d);
    if (!(c & bit_OSXSAVE)) {
        *why = "the OS does not enable XSAVE";
        return false;
    }
    __cpuid_count(7, 0, a, b, c, d);
    if ((b & need) != need) {
        *why = "the CPU lacks AVX-512 IFMA (or AVX-512 F, DQ, VL)";
        return false;
    }
    /* XCR0: SSE, AVX, opmask, ZMM0-15 upper halves, ZMM16-31. */
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    if ((lo & 0xe6) != 0xe6) {
        *why = "the OS does not save AVX-512 register state";
        return false;
    }
    return true;
#else
    *why = "not an x86 CPU";
    return false;
#endif
}

#ifdef MTLSD_HAVE_LIBCRYPTO

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

bool mtls_keysign_built(void)
{
    return true;
}

/* Failures are logged once per cause: a broken signer must not flood the
 * log at the handshake rate. The handshake fails either way. */
enum cause { C_ALG, C_KEY, C_NOT_RSA, C_CTX, C_SIGN, C_MEM };
static unsigned logged;

static int fail(enum cause cause, const char *what)
{
    if (!(__atomic_fetch_or(&logged, 1u << cause, __ATOMIC_RELAXED) & (1u << cause))) {
        char text[256] = "";
        unsigned long e = ERR_peek_last_error();

        if (e)
            ERR_error_string_n(e, text, sizeof(text));
        log_error("--key-signer openssl: %s%s%s (handshakes needing it fail; logged once)", what,
                  e ? ": " : "", text);
    }
    ERR_clear_error();
    return -1;
}

static const EVP_MD *alg_md(enum mtls_keysign_alg alg)
{
    switch (alg) {
    case MTLS_KEYSIGN_PSS_SHA256: return EVP_sha256();
    case MTLS_KEYSIGN_PSS_SHA384: return EVP_sha384();
    case MTLS_KEYSIGN_PSS_SHA512: return EVP_sha512();
    default: return NULL;
    }
}

/* A context set up once for one algorithm: EVP_PKEY_sign may then be called
 * on it again and again (the RSA signature provider keeps no state between
 * calls). `verify`: the same for EVP_PKEY_verify (start-up check). */
static EVP_PKEY_CTX *ctx_new(EVP_PKEY *pkey, enum mtls_keysign_alg alg, bool verify)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    const EVP_MD *md = alg_md(alg);

    if (!c || (verify ? EVP_PKEY_verify_init(c) : EVP_PKEY_sign_init(c)) != 1)
        goto fail;
    if (alg == MTLS_KEYSIGN_PKCS1) {
        /* No digest set: the input (wolfSSL's DigestInfo) is padded as is. */
        if (EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) != 1)
            goto fail;
    } else if (!md || EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PSS_PADDING) != 1 ||
               EVP_PKEY_CTX_set_signature_md(c, md) != 1 ||
               EVP_PKEY_CTX_set_rsa_mgf1_md(c, md) != 1 ||
               EVP_PKEY_CTX_set_rsa_pss_saltlen(c, RSA_PSS_SALTLEN_DIGEST) != 1) {
        goto fail;
    }
    return c;
fail:
    EVP_PKEY_CTX_free(c);
    return NULL;
}

/* Never a terminal prompt: mtlsd takes unencrypted keys only, as wolfSSL. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

int mtls_keysign_init(char *err, size_t errlen)
{
    /* No openssl.cnf: its providers and engines are not ours to load, and
     * nothing is read from files once the sandbox is up. */
    if (OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, NULL) != 1) {
        snprintf(err, errlen, "--key-signer: libcrypto does not initialise");
        return -1;
    }
    return 0;
}

int mtls_keysign_check(const uint8_t *pem, size_t len, unsigned *rsa_bits, char *err,
                       size_t errlen)
{
    static const uint8_t digest[64] = {1, 2, 3};
    /* A DigestInfo for SHA-256 (RFC 8017 9.2 note 1) around `digest`. */
    static const uint8_t info_prefix[19] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                            0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                            0x01, 0x05, 0x00, 0x04, 0x20};
    uint8_t info[sizeof(info_prefix) + 32], sig[1024];
    BIO *bio = len <= INT32_MAX ? BIO_new_mem_buf(pem, (int)len) : NULL;
    EVP_PKEY *pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL) : NULL;
    EVP_PKEY_CTX *s = NULL, *v = NULL;
    int ret = -1;

    BIO_free(bio);
    if (!pkey) {
        snprintf(err, errlen, "libcrypto cannot read the key");
        goto out;
    }
    *rsa_bits = 0;
    if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA) {
        ret = 0;
        goto out;
    }
    *rsa_bits = (unsigned)EVP_PKEY_get_bits(pkey);
    if ((size_t)EVP_PKEY_get_size(pkey) > sizeof(sig)) {
        snprintf(err, errlen, "RSA keys over 8192 bits are not supported");
        goto out;
    }
    memcpy(info, info_prefix, sizeof(info_prefix));
    memcpy(info + sizeof(info_prefix), digest, 32);
    for (int alg = 0; alg < MTLS_KEYSIGN_N; alg++) {
        const uint8_t *in = alg == MTLS_KEYSIGN_PKCS1 ? info : digest;
        size_t in_len = alg == MTLS_KEYSIGN_PKCS1 ? sizeof(info)
                                                  : (size_t)EVP_MD_get_size(alg_md(alg));
        size_t n = sizeof(sig);

        if (!(s = ctx_new(pkey, alg, false)) || !(v = ctx_new(pkey, alg, true)) ||
            EVP_PKEY_sign(s, sig, &n, in, in_len) != 1 || EVP_PKEY_verify(v, sig, n, in, in_len) != 1) {
            unsigned long e = ERR_peek_last_error();
            char text[256] = "";

            if (e)
                ERR_error_string_n(e, text, sizeof(text));
            snprintf(err, errlen, "libcrypto cannot sign with the key (%s)", text);
            goto out;
        }
        EVP_PKEY_CTX_free(s);
        EVP_PKEY_CTX_free(v);
        s = v = NULL;
    }
    ret = 0;
out:
    EVP_PKEY_CTX_free(s);
    EVP_PKEY_CTX_free(v);
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    return ret;
}

/* One key a thread knows: recognised by its DER (a copy, cleansed when
 * dropped), so a reload's new key, even at the same address, is never
 * mistaken for the old one. */
struct slot {
    uint8_t *der;
    size_t der_len;
    EVP_PKEY *pkey;
    EVP_PKEY_CTX *ctx[MTLS_KEYSIGN_N];
};

/* Two slots: after a reload, handshakes of the old and the new material
 * run side by side for a while without rebuilding each other's key. */
struct cache {
    struct slot slot[2];
    struct cache *next;
};

static __thread struct cache *my_cache;
static struct cache *caches;    /* every thread's, freed at shutdown */
static pthread_mutex_t caches_lock = PTHREAD_MUTEX_INITIALIZER;

static void slot_clear(struct slot *s)
{
    for (int i = 0; i < MTLS_KEYSIGN_N; i++)
        EVP_PKEY_CTX_free(s->ctx[i]);
    EVP_PKEY_free(s->pkey);
    if (s->der)
        OPENSSL_clear_free(s->der, s->der_len);
    memset(s, 0, sizeof(*s));
}

static struct slot *slot_get(const uint8_t *key, size_t key_len)
{
    struct cache *c = my_cache;
    struct slot tmp;
    const uint8_t *p = key;

    if (!c) {
        /* Once per thread: the only lock, off the signing path after. */
        if (!(c = calloc(1, sizeof(*c)))) {
            fail(C_MEM, "out of memory");
            return NULL;
        }
        pthread_mutex_lock(&caches_lock);
        c->next = caches;
        caches = c;
        pthread_mutex_unlock(&caches_lock);
        my_cache = c;
    }
    for (int i = 0; i < 2; i++) {
        struct slot *s = &c->slot[i];

        if (s->pkey && s->der_len == key_len && memcmp(s->der, key, key_len) == 0) {
            if (i == 1) { /* most recent first */
                tmp = c->slot[0];
                c->slot[0] = c->slot[1];
                c->slot[1] = tmp;
            }
            return &c->slot[0];
        }
    }
    memset(&tmp, 0, sizeof(tmp));
    if (key_len > INT32_MAX || !(tmp.pkey = d2i_AutoPrivateKey(NULL, &p, (long)key_len))) {
        fail(C_KEY, "libcrypto cannot read the key wolfSSL holds");
        return NULL;
    }
    if (EVP_PKEY_get_base_id(tmp.pkey) != EVP_PKEY_RSA) {
        EVP_PKEY_free(tmp.pkey);
        fail(C_NOT_RSA, "the key wolfSSL holds is not an RSA key");
        return NULL;
    }
    if (!(tmp.der = OPENSSL_memdup(key, key_len))) {
        EVP_PKEY_free(tmp.pkey);
        fail(C_MEM, "out of memory");
        return NULL;
    }
    tmp.der_len = key_len;
    slot_clear(&c->slot[1]);
    c->slot[1] = c->slot[0];
    c->slot[0] = tmp;
    return &c->slot[0];
}

int mtls_keysign_rsa(enum mtls_keysign_alg alg, const uint8_t *key, size_t key_len,
                     const uint8_t *in, size_t in_len, uint8_t *out, size_t *out_len)
{
    struct slot *s;
    EVP_PKEY_CTX *c;
    size_t n = *out_len;

    if ((unsigned)alg >= MTLS_KEYSIGN_N)
        return fail(C_ALG, "unknown signature algorithm");
    if (!(s = slot_get(key, key_len)))
        return -1;
    if (!(c = s->ctx[alg]) && !(c = s->ctx[alg] = ctx_new(s->pkey, alg, false)))
        return fail(C_CTX, "cannot set up a signing context");
    if (EVP_PKEY_sign(c, out, &n, in, in_len) != 1)
        return fail(C_SIGN, "signing failed");
    *out_len = n;
    return 0;
}

void mtls_keysign_shutdown(void)
{
    pthread_mutex_lock(&caches_lock);
    while (caches) {
        struct cache *c = caches;

        caches = c->next;
        slot_clear(&c->slot[0]);
        slot_clear(&c->slot[1]);
        free(c);
    }
    pthread_mutex_unlock(&caches_lock);
    /* This thread's pointer (the main thread signs nothing after start). */
    my_cache = NULL;
}

#else /* !MTLSD_HAVE_LIBCRYPTO */

bool mtls_keysign_built(void)
{
    return false;
}

int mtls_keysign_init(char *err, size_t errlen)
{
    (void)err, (void)errlen;
    return 0;
}

int mtls_keysign_check(const uint8_t *pem, size_t len, unsigned *rsa_bits, char *err,
                       size_t errlen)
{
    (void)pem, (void)len;
    *rsa_bits = 0;
    snprintf(err, errlen, "built without libcrypto");
    return -1;
}

int mtls_keysign_rsa(enum mtls_keysign_alg alg, const uint8_t *key, size_t key_len,
                     const uint8_t *in, size_t in_len, uint8_t *out, size_t *out_len)
{
    (void)alg, (void)key, (void)key_len, (void)in, (void)in_len, (void)out, (void)out_len;
    return -1;
}

void mtls_keysign_shutdown(void)
{
}

#endif
