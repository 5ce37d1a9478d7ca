/* verify.c: client-certificate policy, chain verification, identity.
 *
 * Design (see WOLFSSL-NOTES.md; wolfSSL 5.5.4):
 * - The WOLFSSL_CTX loads NO CA. wolfSSL therefore fails every presented
 *   certificate with ASN_NO_SIGNER_E before any signature work, and calls
 *   our callback (WOLFSSL_ALWAYS_VERIFY_CB + WOLFSSL_VERIFY_CB_ALL_CERTS) once
 *   per certificate, the leaf last (depth 0) with the whole presented chain
 *   in store->certs. Nothing a client sends is ever added to a trust store:
 *   with WOLFSSL_ALT_CERT_CHAINS wolfSSL skips AddCA for overridden CAs, and
 *   our own verification uses a temporary certificate manager per miss.
 * - At depth 0 we decide: a hit in the verified-chain cache (same chain bytes
 *   verified under the current trust generation, still valid), or a full
 *   verification against --client-ca and --crl, then insert.
 * - Proof of possession is never skipped: whatever the callback returns,
 *   wolfSSL has decoded the leaf's public key into the session and checks
 *   the client's CertificateVerify with it after the callback (TLS 1.3
 *   tls13.c DoTls13CertificateVerify; TLS 1.2 internal.c DoCertificateVerify,
 *   required before ChangeCipherSpec). A cached chain presented with another
 *   key fails there (tests/integration/client_certs.sh, wrong-key client).
 * - We only ever override ASN_NO_SIGNER_E ("issuer not found"): any other
 *   error wolfSSL reports (malformed, bad extensions) stays fatal.
 * - Without a CA wolfSSL skips date, critical-extension and key-size checks
 *   for the leaf, so all of them are done here, for every certificate. */
#include "mtlsd/verify.h"
#include "mtlsd/buf.h"
#include "mtlsd/identity_x509.h"
#include "mtlsd/log.h"
#include "mtlsd/metrics.h"
#include "mtlsd/vcache.h"

#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/rsa.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if !defined(WOLFSSL_ALWAYS_VERIFY_CB) || !defined(WOLFSSL_VERIFY_CB_ALL_CERTS)
#error "mtlsd needs wolfSSL built with WOLFSSL_ALWAYS_VERIFY_CB and WOLFSSL_VERIFY_CB_ALL_CERTS"
#endif
#ifndef WOLFSSL_ALT_CERT_CHAINS
#error "mtlsd needs WOLFSSL_ALT_CERT_CHAINS: without it client CAs are added to the CTX"
#endif

#define MAX_CHAIN 9      /* wolfSSL's MAX_CHAIN_DEPTH */

/* "Issuer not found", the one error we override. Builds with
 * OPENSSL_COMPATIBLE_DEFAULTS (Debian's libwolfssl) report it as OpenSSL's
 * X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY. */
#ifdef OPENSSL_COMPATIBLE_DEFAULTS
#define NO_SIGNER(err) ((err) == 20 || (err) == ASN_NO_SIGNER_E)
#else
#define NO_SIGNER(err) ((err) == ASN_NO_SIGNER_E)
#endif
#define MIN_RSA_BITS 2048

/* Trust material: immutable once loaded, replaced whole on reload. */
struct anchor {
    struct mtls_buf der;          /* a --client-ca certificate */
    /* This anchor alone, with the CRLs its key signed. A signature checked
     * here was made by this anchor's key, so its dates, CRLs and constraints
     * are the ones that apply even when another anchor has the same name (a
     * re-keyed CA): wolfSSL picks a signer by key identifier, and we must not
     * judge the chain by a namesake. */
    WOLFSSL_CTX *store;
    WOLFSSL_CERT_MANAGER *cm;     /* the store's */
    uint8_t subject[KEYID_SIZE];  /* name hashes, to walk between anchors */
    uint8_t issuer[KEYID_SIZE];
    uint8_t ski[KEYID_SIZE];      /* key identifier, as wolfSSL computes it */
    uint8_t aki[KEYID_SIZE];
    bool has_aki;
    bool self_issued;
    bool constrained;             /* carries nameConstraints */
    bool constrained_above;       /* an anchor above it does */
    int parent;                   /* the anchor whose key signed it, or -1 */
    time_t not_before, not_after;
};

struct trust {
    struct anchor *anchors;
    unsigned n_anchors;
    bool crl;
    /* Earliest nextUpdate of the loaded CRLs: nothing verified under them
     * (cached chains, tickets, session IDs, open connections) is trusted
     * past it; 0 without CRLs. */
    time_t crl_until;
    uint64_t id;                  /* digest of what was loaded (see below) */
};

static struct mtls_verify_settings settings;
static struct trust *trust;
static pthread_rwlock_t trust_lock = PTHREAD_RWLOCK_INITIALIZER;
static uint64_t trust_generation = 1;
static uint64_t trust_id;

/* What session tickets record instead of the generation: the generation is
 * a per-process counter (two instances sharing ticket keys would disagree
 * after different numbers of reloads), while this is the first 8 bytes of a
 * SHA-256 over the bytes of --client-ca and every --crl and the settings
 * that judge chains: instances with the same trust agree, and any change to
 * it changes the id. */
void mtls_verify_snapshot(uint64_t *generation, uint64_t *id)
{
    /* Both from the same trust: a reload changes them under the write lock. */
    pthread_rwlock_rdlock(&trust_lock);
    *generation = mtls_verify_generation();
    *id = mtls_verify_trust_id();
    pthread_rwlock_unlock(&trust_lock);
}

uint64_t mtls_verify_trust_id(void)
{
    return __atomic_load_n(&trust_id, __ATOMIC_ACQUIRE);
}

static void trust_digest_add(wc_Sha256 *h, const void *p, size_t n)
{
    uint8_t len[8];

    for (int i = 7; i >= 0; i--)
        len[7 - i] = (uint8_t)((uint64_t)n >> (8 * i));
    wc_Sha256Update(h, len, sizeof(len));
    wc_Sha256Update(h, p, (word32)n);
}

uint64_t mtls_verify_generation(void)
{
    return __atomic_load_n(&trust_generation, __ATOMIC_ACQUIRE);
}

/* ---- trust material -------------------------------------------------------- */

static int read_file(const char *path, struct mtls_buf *b)
{
    FILE *f = fopen(path, "rb");
    char chunk[4096];
    size_t n;

    if (!f)
        return -errno;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (b->len + n > (16u << 20) || mtls_buf_append(b, chunk, n) < 0) {
            fclose(f);
            return -EFBIG;
        }
    }
    fclose(f);
    return 0;
}

static const char *err_text(int err)
{
    static __thread char text[WOLFSSL_MAX_ERROR_SZ];

    wolfSSL_ERR_error_string_n((unsigned long)err, text, sizeof(text));
    return text;
}

static bool has_uri_ip_constraints(const uint8_t *der, size_t len);

static void trust_free(struct trust *t)
{
    if (!t)
        return;
    for (unsigned i = 0; i < t->n_anchors; i++) {
        if (t->anchors[i].store)
            wolfSSL_CTX_free(t->anchors[i].store);
        mtls_buf_free(&t->anchors[i].der);
    }
    free(t->anchors);
    free(t);
}

/* Dates are checked by verify_chain() itself (with --clock-skew) for every
 * certificate, before the certificate manager sees them: let the manager
 * overlook date errors only. */
static int on_cm_verify(int ok, WOLFSSL_X509_STORE_CTX *store)
{
    int e = store->error;

#ifdef OPENSSL_COMPATIBLE_DEFAULTS
    if (!ok && (e == 9 || e == 10)) /* X509_V_ERR_CERT_NOT_YET_VALID, _HAS_EXPIRED */
        return 1;
#endif
    if (!ok && (e == ASN_BEFORE_DATE_E || e == ASN_AFTER_DATE_E))
        return 1;
    return ok;
}

/* A store whose manager takes certificates without checking them against
 * what it holds (a CTX set to VERIFY_NONE: wolfSSL_CertManagerLoadCABuffer
 * would refuse an anchor whose issuer is not loaded, and an intermediate in
 * a manager without its anchor). Whatever goes in has been verified or
 * chosen as an anchor first; signatures are then checked with
 * wolfSSL_CertManagerVerifyBuffer on its manager. Costs ~0.2 us. */
static WOLFSSL_CTX *store_new(void)
{
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_server_method());

    if (ctx) {
        wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
        wolfSSL_CertManagerSetVerify(wolfSSL_CTX_GetCertManager(ctx), on_cm_verify);
    }
    return ctx;
}

static int store_add(WOLFSSL_CTX *ctx, const uint8_t *der, size_t len)
{
    WOLFSSL_CERT_MANAGER *cm = wolfSSL_CTX_GetCertManager(ctx);
    int ret;

    /* With a verify callback set, wolfSSL verifies what it just loaded
     * against the manager (ssl.c ProcessBuffer -> CM_VerifyBuffer_ex): an
     * extra signature check, and a refusal when the issuer is not there. */
    wolfSSL_CertManagerSetVerify(cm, NULL);
    ret = wolfSSL_CTX_load_verify_buffer(ctx, der, (long)len, WOLFSSL_FILETYPE_ASN1);
    wolfSSL_CertManagerSetVerify(cm, on_cm_verify);
    return ret;
}

/* May anchor `a` have signed a certificate with this issuer name hash and
 * authority key identifier (NULL when it has none)? The same match as
 * wolfSSL's signer lookup (asn.c ParseCertRelative); the signature decides
 * between namesakes. */
static bool may_sign(const struct anchor *a, const uint8_t *issuer, const uint8_t *aki)
{
    return memcmp(a->subject, issuer, KEYID_SIZE) == 0 &&
           (!aki || memcmp(a->ski, aki, KEYID_SIZE) == 0);
}

/* The first anchor from `from` on that may have signed `dc`, or -1. */
static int find_anchor(const struct trust *t, const DecodedCert *dc, unsigned from)
{
    const uint8_t *aki = dc->extAuthKeyIdSet ? dc->extAuthKeyId : NULL;

    for (unsigned a = from; a < t->n_anchors; a++)
        if (may_sign(&t->anchors[a], dc->issuerHash, aki))
            return (int)a;
    return -1;
}

/* nextUpdate of a DER CRL: 0 when it has none, -1 when unreadable. */
static time_t crl_next_update(const uint8_t *der, size_t len);
static bool key_ok(DecodedCert *dc);

/* One --client-ca certificate: a CA (CA:TRUE, keyCertSign when keyUsage is
 * present) or a self-signed X.509 v1 root, the kind `openssl x509 -req
 * -signkey` makes (RFC 5280 6.1: an anchor is a name and a key the operator
 * chose). A v1 certificate sent by a client is never a CA (verify_chain). */
static int anchor_add(struct trust *t, const uint8_t *der, int dlen, const char *file,
                      char *err, size_t errlen)
{
    struct anchor a;
    DecodedCert dc;
    bool ca, v1, strong = false;
    int ret;

    memset(&a, 0, sizeof(a));
    a.parent = -1;
    wc_InitDecodedCert(&dc, der, (word32)dlen, NULL);
    ret = wc_ParseCert(&dc, CERT_TYPE, NO_VERIFY, NULL);
    ca = ret == 0 && dc.isCA && (!dc.extKeyUsageSet || (dc.extKeyUsage & KEYUSE_KEY_CERT_SIGN));
    v1 = ret == 0 && dc.version == 0 && memcmp(dc.subjectHash, dc.issuerHash, KEYID_SIZE) == 0;
    if (ret == 0) {
        memcpy(a.subject, dc.subjectHash, KEYID_SIZE);
        memcpy(a.issuer, dc.issuerHash, KEYID_SIZE);
        memcpy(a.ski, dc.extSubjKeyId, KEYID_SIZE); /* SKID, else a hash of the key */
        memcpy(a.aki, dc.extAuthKeyId, KEYID_SIZE);
        a.has_aki = dc.extAuthKeyIdSet;
        a.self_issued = memcmp(a.subject, a.issuer, KEYID_SIZE) == 0;
        a.constrained = dc.extNameConstraintSet;
        a.not_before = mtls_asn1_time(dc.beforeDate, dc.beforeDateLen);
        a.not_after = mtls_asn1_time(dc.afterDate, dc.afterDateLen);
        strong = key_ok(&dc);
    }
    wc_FreeDecodedCert(&dc);
    if (ca && has_uri_ip_constraints(der, (size_t)dlen)) {
        snprintf(err, errlen,
                 "--client-ca %s: certificate %u has URI or IP name constraints, which "
                 "wolfSSL 5.5.4 cannot enforce; refusing to trust it",
                 file, t->n_anchors + 1);
        return -1;
    }
    if ((ca || v1) && !strong) {
        /* The key every chain's top signature is checked with: the same
         * rule as for the certificates clients send. */
        snprintf(err, errlen,
                 "--client-ca %s: certificate %u has a weak key (RSA >= 2048 bits or "
                 "ECDSA P-256/384/521 are required)",
                 file, t->n_anchors + 1);
        return -1;
    }
    if (!ca && !v1) {
        snprintf(err, errlen,
                 "--client-ca %s: certificate %u is not a CA certificate "
                 "(basicConstraints CA:TRUE and keyCertSign are required, or a self-signed "
                 "X.509 v1 root)",
                 file, t->n_anchors + 1);
        return -1;
    }
    a.store = store_new();
    if (!a.store || mtls_buf_append(&a.der, der, (size_t)dlen) < 0) {
        snprintf(err, errlen, "out of memory loading --client-ca");
        goto fail;
    }
    /* Loaded as a user CA: wolfSSL skips its CA:TRUE check, decided above. */
    a.cm = wolfSSL_CTX_GetCertManager(a.store);
    ret = store_add(a.store, der, (size_t)dlen);
    if (ret != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "--client-ca %s: certificate %u cannot be loaded (%s)", file,
                 t->n_anchors + 1, err_text(ret));
        goto fail;
    }
    if (!ca) {
        /* v1: self-issued is not enough, its own key must have signed it. */
        if (wolfSSL_CertManagerVerifyBuffer(a.cm, der, dlen, WOLFSSL_FILETYPE_ASN1) !=
            WOLFSSL_SUCCESS) {
            snprintf(err, errlen,
                     "--client-ca %s: certificate %u is an X.509 v1 certificate that is not "
                     "self-signed; only a self-signed v1 root can be a trust anchor",
                     file, t->n_anchors + 1);
            goto fail;
        }
        log_info("--client-ca %s: certificate %u is an X.509 v1 root without extensions "
                 "(openssl x509 -req -signkey): trusted as an anchor, never as an intermediate",
                 file, t->n_anchors + 1);
    }
    struct anchor *all = realloc(t->anchors, (t->n_anchors + 1) * sizeof(*all));
    if (!all) {
        snprintf(err, errlen, "out of memory loading --client-ca");
        goto fail;
    }
    t->anchors = all;
    all[t->n_anchors++] = a;
    return 0;
fail:
    if (a.store)
        wolfSSL_CTX_free(a.store);
    mtls_buf_free(&a.der);
    return -1;
}

/* Which anchor's key signed each anchor, and whether a constrained one is
 * above it (for the CRL walk and name constraints). */
static void anchors_link(struct trust *t)
{
    for (unsigned i = 0; i < t->n_anchors; i++) {
        struct anchor *a = &t->anchors[i];
        for (unsigned j = 0; !a->self_issued && j < t->n_anchors && a->parent < 0; j++)
            if (j != i && may_sign(&t->anchors[j], a->issuer, a->has_aki ? a->aki : NULL) &&
                wolfSSL_CertManagerVerifyBuffer(t->anchors[j].cm, a->der.data,
                                                (long)a->der.len,
                                                WOLFSSL_FILETYPE_ASN1) == WOLFSSL_SUCCESS)
                a->parent = (int)j;
    }
    for (unsigned i = 0; i < t->n_anchors; i++) {
        int p = t->anchors[i].parent;
        for (unsigned steps = 0; p >= 0 && steps < t->n_anchors; steps++) {
            if (t->anchors[p].constrained)
                t->anchors[i].constrained_above = true;
            p = t->anchors[p].parent;
        }
    }
}

/* One --crl file: loaded into the manager of every anchor whose key signed
 * it (at least one). */
static int crl_add(struct trust *t, const struct mtls_buf *crl, const char *file, char *err,
                   size_t errlen)
{
    DerBuffer *der = NULL;
    unsigned loaded = 0;
    int ret = WOLFSSL_FATAL_ERROR;
    time_t next;

    for (unsigned i = 0; i < t->n_anchors; i++) {
        int r = wolfSSL_CertManagerLoadCRLBuffer(t->anchors[i].cm, crl->data, (long)crl->len,
                                                 WOLFSSL_FILETYPE_PEM);
        if (r == WOLFSSL_SUCCESS)
            loaded++;
        else if (ret == WOLFSSL_FATAL_ERROR || r != ASN_CRL_NO_SIGNER_E)
            ret = r;
    }
    if (!loaded) {
        snprintf(err, errlen,
                 "--crl %s: cannot load (%s): it must be a current PEM CRL "
                 "signed by a CA in --client-ca",
                 file, err_text(ret));
        return -1;
    }
    /* wolfSSL loads the first PEM block of the file: its nextUpdate. */
    if (wc_PemToDer(crl->data, (long)crl->len, CRL_TYPE, &der, NULL, NULL, NULL) != 0 ||
        (next = crl_next_update(der->buffer, der->length)) == -1) {
        wc_FreeDer(&der);
        snprintf(err, errlen, "--crl %s: cannot read its nextUpdate", file);
        return -1;
    }
    wc_FreeDer(&der);
    if (next && (!t->crl_until || next < t->crl_until))
        t->crl_until = next;
    return 0;
}

static struct trust *trust_load(const struct mtls_verify_settings *cfg, char *err,
                                size_t errlen)
{
    static const char begin[] = "-----BEGIN CERTIFICATE-----";
    struct trust *t = calloc(1, sizeof(*t));
    struct mtls_buf pem = {0};
    const char *p, *end;
    uint8_t digest[WC_SHA256_DIGEST_SIZE];
    uint32_t knobs[2] = {cfg->verify_depth, cfg->clock_skew_s};
    wc_Sha256 h;
    int ret;

    if (wc_InitSha256(&h) != 0) {
        free(t);
        t = NULL;
    }
    if (!t)
        goto oom;
    trust_digest_add(&h, "mtlsd trust v1", 14);
    trust_digest_add(&h, knobs, sizeof(knobs));
    ret = read_file(cfg->client_ca_file, &pem);
    if (ret < 0) {
        snprintf(err, errlen, "--client-ca %s: %s", cfg->client_ca_file, strerror(-ret));
        goto fail;
    }
    trust_digest_add(&h, pem.data, pem.len);
    if (mtls_buf_append(&pem, "", 1) < 0)
        goto oom;
    /* Each PEM block on its own, each anchor in its own manager. */
    for (p = strstr((const char *)pem.data, begin); p; p = strstr(end, begin)) {
        const char *stop = strstr(p, "-----END CERTIFICATE-----");
        uint8_t der[16384];
        int dlen;

        if (!stop)
            break;
        end = stop + 25;
        dlen = wc_CertPemToDer((const unsigned char *)p, (int)(end - p), der, sizeof(der),
                               CERT_TYPE);
        if (dlen <= 0) {
            snprintf(err, errlen, "--client-ca %s: certificate %u is not valid PEM",
                     cfg->client_ca_file, t->n_anchors + 1);
            goto fail;
        }
        if (anchor_add(t, der, dlen, cfg->client_ca_file, err, errlen) < 0)
            goto fail;
    }
    if (t->n_anchors == 0) {
        snprintf(err, errlen, "--client-ca %s: no PEM certificate found", cfg->client_ca_file);
        goto fail;
    }
    anchors_link(t);
    if (cfg->n_crl_files) {
        t->crl = true;
        for (unsigned i = 0; i < t->n_anchors; i++)
            if (wolfSSL_CertManagerEnableCRL(t->anchors[i].cm, WOLFSSL_CRL_CHECKALL) !=
                WOLFSSL_SUCCESS)
                goto oom;
        for (unsigned i = 0; i < cfg->n_crl_files; i++) {
            struct mtls_buf crl = {0};
            ret = read_file(cfg->crl_files[i], &crl);
            if (ret < 0) {
                snprintf(err, errlen, "--crl %s: %s", cfg->crl_files[i], strerror(-ret));
                mtls_buf_free(&crl);
                goto fail;
            }
            trust_digest_add(&h, crl.data, crl.len);
            ret = crl_add(t, &crl, cfg->crl_files[i], err, errlen);
            mtls_buf_free(&crl);
            if (ret < 0)
                goto fail;
        }
    }
    mtls_buf_free(&pem);
    wc_Sha256Final(&h, digest);
    wc_Sha256Free(&h);
    for (int i = 0; i < 8; i++)
        t->id = (t->id << 8) | digest[i];
    return t;
oom:
    snprintf(err, errlen, "out of memory loading --client-ca");
fail:
    if (t)
        wc_Sha256Free(&h);
    mtls_buf_free(&pem);
    trust_free(t);
    return NULL;
}

/* ---- name constraints -------------------------------------------------------- */

/* Reads a DER tag and length at *p (< end); returns the value's start. */
static const uint8_t *der_item(const uint8_t *p, const uint8_t *end, uint8_t *tag, size_t *len)
{
    size_t n;

    if (end - p < 2)
        return NULL;
    *tag = *p++;
    n = *p++;
    if (n & 0x80) {
        unsigned k = n & 0x7f;
        if (k == 0 || k > 3 || (size_t)(end - p) < k)
            return NULL;
        for (n = 0; k; k--)
            n = n << 8 | *p++;
    }
    if ((size_t)(end - p) < n)
        return NULL;
    *len = n;
    return p;
}

const uint8_t *mtls_der_item(const uint8_t *p, const uint8_t *end, uint8_t *tag, size_t *len)
{
    return der_item(p, end, tag, len);
}

/* wolfSSL (5.5.4, 5.7.2) drops URI and IP subtrees when it decodes nameConstraints,
 * so it cannot enforce them, and a CA limited to one SPIFFE trust domain
 * could otherwise issue any URI. We do not enforce them either: a CA that
 * has them is refused (fail closed). DNS, email and directory-name
 * constraints are enforced by wolfSSL. Returns true for such a certificate,
 * or for a nameConstraints extension we cannot parse. */
static bool has_uri_ip_constraints(const uint8_t *der, size_t len)
{
    static const uint8_t oid[] = {0x06, 0x03, 0x55, 0x1d, 0x1e};
    const uint8_t *end = der + len, *p;

    for (p = der; p + sizeof(oid) <= end; p++) {
        const uint8_t *v, *nc, *nc_end, *sub, *sub_end;
        uint8_t tag;
        size_t n;

        if (memcmp(p, oid, sizeof(oid)) != 0)
            continue;
        v = p + sizeof(oid);
        if (v < end && *v == 0x01) { /* critical BOOLEAN */
            if (!(v = der_item(v, end, &tag, &n)))
                return true;
            v += n;
        }
        if (!(v = der_item(v, end, &tag, &n)) || tag != 0x04)
            return true;
        if (!(nc = der_item(v, v + n, &tag, &n)) || tag != 0x30)
            return true;
        for (nc_end = nc + n; nc < nc_end; nc = sub_end) {
            /* [0] permitted / [1] excluded: SEQUENCE OF GeneralSubtree */
            if (!(sub = der_item(nc, nc_end, &tag, &n)))
                return true;
            for (sub_end = sub + n; sub < sub_end;) {
                const uint8_t *gs = der_item(sub, sub_end, &tag, &n), *base;
                size_t blen;
                if (!gs || tag != 0x30 || !(base = der_item(gs, gs + n, &tag, &blen)))
                    return true;
                if ((tag & 0x1f) == 6 || (tag & 0x1f) == 7) /* URI, iPAddress */
                    return true;
                sub = gs + n;
            }
        }
    }
    return false;
}

/* nextUpdate of a DER CRL (RFC 5280 5.1): 0 when it has none, -1 when
 * unreadable. */
static time_t crl_next_update(const uint8_t *der, size_t len)
{
    const uint8_t *end = der + len, *p, *v;
    uint8_t tag;
    size_t n;

    if (!(p = der_item(der, end, &tag, &n)) || tag != 0x30) /* CertificateList */
        return -1;
    if (!(p = der_item(p, p + n, &tag, &n)) || tag != 0x30) /* tbsCertList */
        return -1;
    end = p + n;
    if (!(v = der_item(p, end, &tag, &n)))
        return -1;
    if (tag == 0x02) { /* version */
        p = v + n;
        if (!(v = der_item(p, end, &tag, &n)))
            return -1;
    }
    if (tag != 0x30) /* signature */
        return -1;
    p = v + n;
    if (!(v = der_item(p, end, &tag, &n)) || tag != 0x30) /* issuer */
        return -1;
    p = v + n;
    if (!(v = der_item(p, end, &tag, &n)) || (tag != 0x17 && tag != 0x18)) /* thisUpdate */
        return -1;
    p = v + n;
    if (p == end)
        return 0;
    if (!(v = der_item(p, end, &tag, &n)))
        return -1;
    if (tag != 0x17 && tag != 0x18)
        return 0; /* revokedCertificates or extensions follow */
    return mtls_asn1_time(p, (int)(v + n - p));
}

/* ---- chain verification ------------------------------------------------------ */

enum reject {
    OK = 0, R_NO_CERT, R_UNTRUSTED, R_EXPIRED, R_NOT_YET_VALID, R_REVOKED, R_CRL, R_USAGE,
    R_SELF_SIGNED, R_WEAK_KEY, R_DEPTH, R_MALFORMED,
};

static const char *reject_text[] = {
    [OK] = "ok",
    [R_NO_CERT] = "no client certificate",
    [R_UNTRUSTED] = "does not chain to --client-ca",
    [R_EXPIRED] = "certificate expired",
    [R_NOT_YET_VALID] = "certificate not yet valid",
    [R_REVOKED] = "certificate revoked",
    [R_CRL] = "no current CRL for an issuer in the chain",
    [R_USAGE] = "key usage, extended key usage or CA flags do not allow client authentication",
    [R_SELF_SIGNED] = "self-signed certificate",
    [R_WEAK_KEY] = "key too small",
    [R_DEPTH] = "chain longer than --verify-depth",
    [R_MALFORMED] = "malformed certificate",
};

static void count_reject(struct mtls_metrics *m, enum reject r)
{
    if (!m)
        return;
    switch (r) {
    case R_NO_CERT: METRIC_INC(m, verify_rejected_no_cert); break;
    case R_UNTRUSTED: METRIC_INC(m, verify_rejected_untrusted); break;
    case R_EXPIRED: METRIC_INC(m, verify_rejected_expired); break;
    case R_NOT_YET_VALID: METRIC_INC(m, verify_rejected_not_yet_valid); break;
    case R_REVOKED: METRIC_INC(m, verify_rejected_revoked); break;
    case R_CRL: METRIC_INC(m, verify_rejected_crl); break;
    case R_USAGE: METRIC_INC(m, verify_rejected_usage); break;
    case R_SELF_SIGNED: METRIC_INC(m, verify_rejected_self_signed); break;
    case R_WEAK_KEY: METRIC_INC(m, verify_rejected_weak_key); break;
    case R_DEPTH: METRIC_INC(m, verify_rejected_depth); break;
    default: METRIC_INC(m, verify_rejected_malformed); break;
    }
}

static enum reject check_key(DecodedCert *dc)
{
    if (dc->keyOID == ECDSAk) {
        /* P-256 and stronger only. */
        if (dc->pkCurveOID == ECC_SECP256R1_OID || dc->pkCurveOID == ECC_SECP384R1_OID ||
            dc->pkCurveOID == ECC_SECP521R1_OID)
            return OK;
        return R_WEAK_KEY;
    }
    if (dc->keyOID == RSAk) {
        RsaKey key;
        word32 idx = 0;
        int bits = 0;
        if (wc_InitRsaKey(&key, NULL) != 0)
            return R_MALFORMED;
        if (wc_RsaPublicKeyDecode(dc->publicKey, &idx, &key, dc->pubKeySize) == 0)
            bits = wc_RsaEncryptSize(&key) * 8;
        wc_FreeRsaKey(&key);
        return bits >= MIN_RSA_BITS ? OK : R_WEAK_KEY;
    }
    return R_WEAK_KEY; /* other algorithms are not accepted */
}

static bool key_ok(DecodedCert *dc)
{
    return check_key(dc) == OK;
}

static enum reject check_dates(DecodedCert *dc, time_t now, time_t *not_after)
{
    time_t nb = mtls_asn1_time(dc->beforeDate, dc->beforeDateLen);
    time_t na = mtls_asn1_time(dc->afterDate, dc->afterDateLen);
    time_t skew = (time_t)settings.clock_skew_s;

    if (nb == -1 || na == -1)
        return R_MALFORMED;
    if (now + skew < nb)
        return R_NOT_YET_VALID;
    if (now - skew > na)
        return R_EXPIRED;
    if (na < *not_after)
        *not_after = na;
    return OK;
}

/* Signature algorithms a client chain may use: SHA-2 and SHA-3 with RSA
 * (PKCS#1 v1.5 or PSS) or ECDSA. MD2, MD5 and SHA-1 signatures can be forged
 * (chosen-prefix collisions: the 2008 MD5 rogue CA, SHAttered, and
 * SHA-1 is a shambles), and anything else is refused with them. */
static enum reject check_sig_alg(const DecodedCert *dc)
{
    switch (dc->signatureOID) {
    case CTC_SHA224wRSA: case CTC_SHA256wRSA: case CTC_SHA384wRSA: case CTC_SHA512wRSA:
    case CTC_SHA224wECDSA: case CTC_SHA256wECDSA: case CTC_SHA384wECDSA:
    case CTC_SHA512wECDSA:
    case CTC_SHA3_224wRSA: case CTC_SHA3_256wRSA: case CTC_SHA3_384wRSA: case CTC_SHA3_512wRSA:
    case CTC_SHA3_224wECDSA: case CTC_SHA3_256wECDSA: case CTC_SHA3_384wECDSA:
    case CTC_SHA3_512wECDSA:
    case CTC_RSASSAPSS:
        return OK;
    default:
        return R_WEAK_KEY;
    }
}

static enum reject cm_result(int ret)
{
    switch (ret) {
    case WOLFSSL_SUCCESS: return OK;
    case CRL_CERT_REVOKED: return R_REVOKED;
    case CRL_MISSING:
    case CRL_CERT_DATE_ERR: return R_CRL;
    case ASN_AFTER_DATE_E: return R_EXPIRED;
    case ASN_BEFORE_DATE_E: return R_NOT_YET_VALID;
    default: return R_UNTRUSTED;
    }
}

static enum reject crl_result(WOLFSSL_CERT_MANAGER *cm, const uint8_t *der, size_t len)
{
    int ret = wolfSSL_CertManagerCheckCRL(cm, (unsigned char *)der, (int)len);

    return ret == WOLFSSL_SUCCESS ? OK : ret == ASN_NO_SIGNER_E ? R_CRL : cm_result(ret);
}

static enum reject anchor_dates(const struct anchor *an, time_t now)
{
    time_t skew = (time_t)settings.clock_skew_s;

    /* wolfSSL does not check a signer's dates. */
    if (an->not_before == -1 || an->not_after == -1)
        return R_MALFORMED;
    if (now + skew < an->not_before)
        return R_NOT_YET_VALID;
    if (now - skew > an->not_after)
        return R_EXPIRED;
    return OK;
}

/* The anchor whose key signed certs[top] and that is valid now, or -1 with
 * *r set. Namesakes (a re-keyed or renewed CA) are tried in turn, each in its
 * own manager, and the most telling refusal is kept. */
static int choose_anchor(const struct trust *t, const DecodedCert *dc,
                         const WOLFSSL_BUFFER_INFO *cert, time_t now, enum reject *r)
{
    *r = R_UNTRUSTED;
    for (int a = find_anchor(t, dc, 0); a >= 0; a = find_anchor(t, dc, (unsigned)a + 1)) {
        const struct anchor *an = &t->anchors[a];
        enum reject ra = cm_result(wolfSSL_CertManagerVerifyBuffer(
            an->cm, cert->buffer, (long)cert->length, WOLFSSL_FILETYPE_ASN1));
        if (ra == OK)
            ra = anchor_dates(an, now);
        if (ra == OK) {
            *r = OK;
            return a;
        }
        if (*r == R_UNTRUSTED)
            *r = ra;
    }
    return -1;
}

static bool is_anchor(const struct trust *t, const WOLFSSL_BUFFER_INFO *cert)
{
    for (unsigned a = 0; a < t->n_anchors; a++)
        if (t->anchors[a].der.len == cert->length &&
            memcmp(t->anchors[a].der.data, cert->buffer, cert->length) == 0)
            return true;
    return false;
}

/* Full verification of a presented chain (leaf first). Called with the
 * trust read-locked. On success *out gets the leaf's identity. */
static enum reject verify_chain(struct trust *t, const WOLFSSL_BUFFER_INFO *certs, int n,
                                struct mtls_identity **out)
{
    DecodedCert *dc;
    WOLFSSL_CTX *tmp = NULL;
    const struct anchor *an;
    time_t now = time(NULL), valid_until = (time_t)INT64_MAX;
    enum reject r = OK;
    int top = -1, i, parsed = 0, chosen;

    if (n < 1)
        return R_NO_CERT;
    if (n > MAX_CHAIN)
        return R_DEPTH;
    dc = calloc((size_t)n, sizeof(*dc));
    if (!dc) {
        r = R_MALFORMED;
        goto out;
    }
    for (i = 0; i < n; i++, parsed++) {
        wc_InitDecodedCert(&dc[i], certs[i].buffer, certs[i].length, NULL);
        if (wc_ParseCert(&dc[i], CERT_TYPE, NO_VERIFY, NULL) != 0) {
            parsed++;
            r = R_MALFORMED;
            goto out;
        }
    }

    /* The leaf: an end entity allowed to authenticate a client. */
    if (dc[0].isCA) {
        r = R_USAGE;
        goto out;
    }
    if (memcmp(dc[0].subjectHash, dc[0].issuerHash, KEYID_SIZE) == 0) {
        r = R_SELF_SIGNED;
        goto out;
    }
    if ((dc[0].extExtKeyUsageSet &&
         !(dc[0].extExtKeyUsage & (EXTKEYUSE_CLIENT_AUTH | EXTKEYUSE_ANY))) ||
        (dc[0].extKeyUsageSet && !(dc[0].extKeyUsage & KEYUSE_DIGITAL_SIG))) {
        r = R_USAGE;
        goto out;
    }

    /* Walk up the presented chain until a certificate an anchor may have
     * issued (by name and key identifier). */
    for (i = 0; i < n; i++) {
        if ((r = check_dates(&dc[i], now, &valid_until)) != OK ||
            (r = check_key(&dc[i])) != OK || (r = check_sig_alg(&dc[i])) != OK)
            goto out;
        if (i > 0) {
            /* An issuer must be a CA allowed to sign certificates (never a
             * v1 certificate: it has no CA flag), within its path length,
             * and (wolfSSL 5.5.4 checks EKU on the leaf only) with an EKU
             * that allows client authentication if it has one. */
            if (!dc[i].isCA || (dc[i].extKeyUsageSet &&
                                !(dc[i].extKeyUsage & KEYUSE_KEY_CERT_SIGN))) {
                r = R_USAGE;
                goto out;
            }
            if (dc[i].pathLengthSet && (unsigned)(i - 1) > dc[i].pathLength) {
                r = R_USAGE;
                goto out;
            }
            if (dc[i].extExtKeyUsageSet &&
                !(dc[i].extExtKeyUsage & (EXTKEYUSE_CLIENT_AUTH | EXTKEYUSE_ANY))) {
                r = R_USAGE;
                goto out;
            }
            if (has_uri_ip_constraints(certs[i].buffer, certs[i].length)) {
                r = R_USAGE;
                goto out;
            }
            /* wolfSSL checks a certificate against its direct signer's name
             * constraints only: a constrained CA above the leaf's issuer
             * would not bind the leaf (RFC 5280 6.1 applies them to the
             * whole path below). Such chains are refused. */
            if (i >= 2 && dc[i].extNameConstraintSet) {
                r = R_USAGE;
                goto out;
            }
            if (memcmp(dc[i - 1].issuerHash, dc[i].subjectHash, KEYID_SIZE) != 0) {
                r = R_UNTRUSTED; /* not a chain: presented out of order or unrelated */
                goto out;
            }
        }
        if (find_anchor(t, &dc[i], 0) >= 0) {
            top = i;
            break;
        }
    }
    if (top < 0) {
        r = R_UNTRUSTED;
        goto out;
    }
    /* After the verified part, only the anchors above it, in order: nothing
     * unverified may follow (it would vary the cache key at will and make
     * every handshake a miss, evicting other clients). */
    for (i = top + 1; i < n; i++) {
        if (!is_anchor(t, &certs[i]) ||
            memcmp(dc[i - 1].issuerHash, dc[i].subjectHash, KEYID_SIZE) != 0 ||
            (i > top + 1 && memcmp(dc[i - 1].subjectHash, dc[i - 1].issuerHash, KEYID_SIZE) == 0)) {
            r = R_UNTRUSTED;
            goto out;
        }
    }
    if ((unsigned)top > settings.verify_depth) {
        r = R_DEPTH;
        goto out;
    }

    /* Signatures. The top certificate against the anchor whose key signed
     * it (in that anchor's own manager: its CRLs too); below it a store that
     * lives for this verification only holds the intermediates as they are
     * proven, so nothing a client sent outlives this call. */
    chosen = choose_anchor(t, &dc[top], &certs[top], now, &r);
    if (chosen < 0)
        goto out;
    an = &t->anchors[chosen];
    if (an->not_after < valid_until)
        valid_until = an->not_after;
    /* Name constraints of the anchor bind only what it signed directly. */
    if ((top >= 1 && an->constrained) || an->constrained_above) {
        r = R_USAGE;
        goto out;
    }
    if (top > 0) {
        tmp = store_new();
        if (!tmp) {
            r = R_MALFORMED;
            goto out;
        }
        for (i = top; i >= 0 && r == OK; i--) {
            /* Proven against what is loaded, then loaded for the next one. */
            if (i < top)
                r = cm_result(wolfSSL_CertManagerVerifyBuffer(wolfSSL_CTX_GetCertManager(tmp),
                                                              certs[i].buffer,
                                                              (long)certs[i].length,
                                                              WOLFSSL_FILETYPE_ASN1));
            if (r == OK && i > 0 &&
                store_add(tmp, certs[i].buffer, certs[i].length) != WOLFSSL_SUCCESS)
                r = R_UNTRUSTED;
        }
    }
    if (r != OK)
        goto out;
    /* Revocation. A CRL is found through the issuer's manager, so it can
     * only cover certificates issued by a CA in --client-ca: a chain through
     * an intermediate the client sent has no CRL for its leaf, and with CRLs
     * configured that is a refusal (fail closed; see README). */
    if (t->crl) {
        r = top > 0 ? R_CRL : crl_result(an->cm, certs[0].buffer, certs[0].length);
        /* ...and on up through the anchors: an intermediate listed in
         * --client-ca can itself be revoked by its issuer's CRL. The walk
         * ends at a self-issued root or an anchor no other anchor signed. */
        for (unsigned steps = 0; r == OK && an->parent >= 0 && steps < t->n_anchors; steps++) {
            const struct anchor *up = &t->anchors[an->parent];
            r = crl_result(up->cm, an->der.data, an->der.len);
            an = up;
        }
        if (t->crl_until < valid_until)
            valid_until = t->crl_until;
    }
    if (r != OK)
        goto out;
    *out = mtls_identity_from_decoded(&dc[0], certs[0].buffer, certs[0].length);
    if (!*out)
        r = R_MALFORMED;
    else if (valid_until < (*out)->valid_until)
        (*out)->valid_until = valid_until;
out:
    if (tmp)
        wolfSSL_CTX_free(tmp);
    for (i = 0; dc && i < parsed && i < n; i++)
        wc_FreeDecodedCert(&dc[i]);
    free(dc);
    return r;
}

/* The cache key: SHA-256 over each presented certificate with its length. */
static int chain_key(const WOLFSSL_BUFFER_INFO *certs, int n, uint8_t key[32])
{
    wc_Sha256 sha;
    int ok = wc_InitSha256(&sha) == 0;

    for (int i = 0; ok && i < n; i++) {
        uint8_t len[4] = {(uint8_t)(certs[i].length >> 24), (uint8_t)(certs[i].length >> 16),
                          (uint8_t)(certs[i].length >> 8), (uint8_t)certs[i].length};
        ok = wc_Sha256Update(&sha, len, 4) == 0 &&
             wc_Sha256Update(&sha, certs[i].buffer, certs[i].length) == 0;
    }
    ok = ok && wc_Sha256Final(&sha, key) == 0;
    wc_Sha256Free(&sha);
    return ok ? 0 : -1;
}

/* The proxy forwards the presented certificates (RFC 9440, XFCC): the
 * identity keeps them, so the chain cache, tickets and session IDs carry
 * them too. Kept as presented: the leaf, then the client's intermediates. */
static struct mtls_identity *keep_certs(struct mtls_identity *id,
                                        const WOLFSSL_BUFFER_INFO *certs, int n)
{
    struct mtls_der der[MTLS_IDENTITY_MAX_CERTS];
    struct mtls_identity *with;

    if (n < 1 || n > MTLS_IDENTITY_MAX_CERTS)
        return id;
    for (int i = 0; i < n; i++) {
        der[i].der = certs[i].buffer;
        der[i].len = certs[i].length;
    }
    with = mtls_identity_with_certs(id, der, (unsigned)n);
    if (!with->certs_z)
        log_warn("client chain too large to forward (%d certificates): its requests get 502",
                 n);
    return with;
}

int mtls_verify_peer(int preverify, WOLFSSL_X509_STORE_CTX *store,
                     struct mtls_metrics *metrics, struct mtls_verify_result *t)
{
    struct mtls_identity *id = NULL;
    enum reject r;
    uint8_t key[32];
    uint64_t gen;
    time_t now;

    memset(t, 0, sizeof(*t));
    t->cert_presented = true;
    if (store->error_depth > 0) {
        /* An intermediate: "no signer" is expected (no CA is loaded) and the
         * whole chain is judged at depth 0. Anything else stays fatal. */
        return preverify || NO_SIGNER(store->error);
    }
    if (store->totalCerts < 1 || !store->certs) {
        /* No certificate: wolfSSL asks us too. Only optional mode goes on
         * (FAIL_IF_NO_PEER_CERT refuses it in the others anyway). */
        t->cert_presented = false;
        t->verify_error = reject_text[R_NO_CERT];
        if (settings.client_auth == MTLS_AUTH_OPTIONAL)
            return 1;
        return 0; /* counted by conn.c with the failed handshake */
    }
    if (!preverify && !NO_SIGNER(store->error)) {
        /* Something wolfSSL itself refused in the leaf. */
        r = store->error == EXTKEYUSE_AUTH_E ? R_USAGE : R_MALFORMED;
        t->verify_error = reject_text[r];
        count_reject(metrics, r);
        log_info("client certificate refused: %s (%s)", reject_text[r],
                 err_text(store->error));
        return settings.client_auth != MTLS_AUTH_VERIFY;
    }
    now = time(NULL);
    gen = mtls_verify_generation();
    if (chain_key(store->certs, store->totalCerts, key) == 0 &&
        (id = mtls_vcache_get(key, gen, now)) != NULL) {
        if (metrics)
            METRIC_INC(metrics, verify_cache_hits);
        t->chain_cached = true;
        r = OK;
    } else {
        if (metrics)
            METRIC_INC(metrics, verify_cache_misses);
        pthread_rwlock_rdlock(&trust_lock);
        gen = mtls_verify_generation(); /* the generation of the trust we use */
        r = verify_chain(trust, store->certs, store->totalCerts, &id);
        pthread_rwlock_unlock(&trust_lock);
        if (r == OK && settings.keep_certs)
            id = keep_certs(id, store->certs, store->totalCerts);
        if (r == OK && settings.verify_cache) {
            unsigned ev = mtls_vcache_put(key, gen, now, id);
            if (metrics) {
                METRIC_INC(metrics, verify_cache_inserts);
                METRIC_ADD(metrics, verify_cache_evictions, ev);
            }
        }
    }
    if (r != OK) {
        count_reject(metrics, r);
        t->verify_error = reject_text[r];
        log_info("client certificate refused: %s", reject_text[r]);
        /* present/optional: the handshake goes on (proof of possession is
         * still checked) and every request gets 403. */
        return settings.client_auth != MTLS_AUTH_VERIFY;
    }
    t->identity = id;
    return 1;
}

int mtls_verify_init(const struct mtls_verify_settings *cfg, char *err, size_t errlen)
{
    settings = *cfg;
    trust = trust_load(cfg, err, errlen);
    if (!trust)
        return -1;
    __atomic_store_n(&trust_id, trust->id, __ATOMIC_RELEASE);
    if (mtls_vcache_init(cfg->verify_cache, cfg->verify_cache_ttl_s) < 0) {
        snprintf(err, errlen, "out of memory for --verify-cache %u", cfg->verify_cache);
        return -1;
    }
    return 0;
}

int mtls_verify_reload(char *err, size_t errlen)
{
    struct trust *t = trust_load(&settings, err, errlen), *old;

    if (!t)
        return -1;
    pthread_rwlock_wrlock(&trust_lock);
    old = trust;
    trust = t;
    /* Under the write lock: no verification can pair the new trust with the
     * old generation or the reverse. */
    __atomic_add_fetch(&trust_generation, 1, __ATOMIC_ACQ_REL);
    __atomic_store_n(&trust_id, t->id, __ATOMIC_RELEASE);
    pthread_rwlock_unlock(&trust_lock);
    trust_free(old);
    return 0;
}

void mtls_verify_shutdown(void)
{
    mtls_vcache_destroy();
    trust_free(trust);
    trust = NULL;
}

void mtls_verify_setup(WOLFSSL_CTX *ctx, const struct mtls_verify_settings *cfg,
                       VerifyCallback cb)
{
    int mode = WOLFSSL_VERIFY_PEER;

    /* VERIFY_PEER alone would let certificate-less clients in. */
    if (cfg->client_auth != MTLS_AUTH_OPTIONAL)
        mode |= WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    wolfSSL_CTX_set_verify(ctx, mode, cb);
}
