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
#include "mtlsd/log.h"
#include "mtlsd/tls.h"
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
    uint8_t subject[KEYID_SIZE];  /* name hashes, to walk between anchors */
    uint8_t issuer[KEYID_SIZE];
    time_t not_before, not_after;
};

struct trust {
    WOLFSSL_CERT_MANAGER *cm;     /* anchors, and CRLs when configured */
    struct anchor *anchors;
    unsigned n_anchors;
    bool crl;
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

struct mtls_identity *mtls_identity_ref(struct mtls_identity *id)
{
    if (id)
        __atomic_fetch_add(&id->refs, 1, __ATOMIC_RELAXED);
    return id;
}

void mtls_identity_free(struct mtls_identity *id)
{
    if (id && __atomic_sub_fetch(&id->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(id);
}

/* ASN.1 UTCTime / GeneralizedTime (with or without tag and length) to
 * time_t; -1 when malformed. */
static time_t asn1_time(const uint8_t *p, int len)
{
    int digits, year, i, v[6] = {0};
    struct tm tm;

    if (!p)
        return -1;
    if (len >= 2 && (p[0] == 0x17 || p[0] == 0x18) && p[1] == len - 2) {
        digits = p[0] == 0x17 ? 2 : 4;
        p += 2;
        len -= 2;
    } else {
        digits = len >= 15 ? 4 : 2;
    }
    if (len != digits + 11 || p[len - 1] != 'Z')
        return -1;
    for (i = 0; i < len - 1; i++)
        if (p[i] < '0' || p[i] > '9')
            return -1;
    year = 0;
    for (i = 0; i < digits; i++)
        year = year * 10 + (p[i] - '0');
    if (digits == 2)
        year += year < 50 ? 2000 : 1900; /* RFC 5280 4.1.2.5.1 */
    for (i = 0; i < 5; i++)
        v[i] = (p[digits + 2 * i] - '0') * 10 + (p[digits + 2 * i + 1] - '0');
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = year - 1900;
    tm.tm_mon = v[0] - 1;
    tm.tm_mday = v[1];
    tm.tm_hour = v[2];
    tm.tm_min = v[3];
    tm.tm_sec = v[4];
    return timegm(&tm);
}

/* ---- identity extraction ------------------------------------------------- */

struct id_builder {
    struct mtls_buf strings;
    size_t off[5];                 /* subject, issuer, serial, cn, ou */
    struct { enum mtls_san_type type; size_t off; } san[32];
    unsigned n_san;
    int bad;
};

static size_t add_string(struct id_builder *b, const char *s, size_t n)
{
    size_t off = b->strings.len;

    if (n && memchr(s, '\0', n)) { /* an embedded NUL could fool a matcher */
        b->bad = 1;
        return 0;
    }
    if (mtls_buf_append(&b->strings, s, n) < 0 || mtls_buf_append(&b->strings, "", 1) < 0)
        b->bad = 1;
    return off;
}

static void add_san(struct id_builder *b, enum mtls_san_type type, const char *s, size_t n)
{
    if (b->n_san == sizeof(b->san) / sizeof(b->san[0]))
        return; /* identity keeps the first 32 names */
    b->san[b->n_san].type = type;
    b->san[b->n_san].off = add_string(b, s, n);
    b->n_san++;
}

static struct mtls_identity *identity_from_decoded(DecodedCert *dc, const uint8_t *der,
                                                   size_t len)
{
    struct id_builder b;
    struct mtls_identity *id = NULL;
    struct mtls_san *san;
    DNS_entry *e;
    char serial[2 * EXTERNAL_SERIAL_SIZE + 1];
    char *base;
    int i;

    memset(&b, 0, sizeof(b));
    b.off[0] = add_string(&b, dc->subject, strnlen(dc->subject, sizeof(dc->subject)));
    b.off[1] = add_string(&b, dc->issuer, strnlen(dc->issuer, sizeof(dc->issuer)));
    for (i = 0; i < dc->serialSz && i < EXTERNAL_SERIAL_SIZE; i++)
        snprintf(serial + 2 * i, 3, "%02x", dc->serial[i]);
    serial[2 * i] = '\0';
    b.off[2] = add_string(&b, serial, strlen(serial));
    b.off[3] = add_string(&b, dc->subjectCN ? dc->subjectCN : "",
                          dc->subjectCN && dc->subjectCNLen > 0 ? (size_t)dc->subjectCNLen : 0);
    b.off[4] = add_string(&b, dc->subjectOU ? dc->subjectOU : "",
                          dc->subjectOU && dc->subjectOULen > 0 ? (size_t)dc->subjectOULen : 0);

    for (e = dc->altNames; e; e = e->next) {
        if (e->len < 0)
            continue;
        if (e->type == ASN_DNS_TYPE)
            add_san(&b, MTLS_SAN_DNS, e->name, (size_t)e->len);
        else if (e->type == ASN_URI_TYPE)
            add_san(&b, MTLS_SAN_URI, e->name, (size_t)e->len);
        else if (e->type == ASN_IP_TYPE) {
            char text[INET6_ADDRSTRLEN];
            int af = e->len == 4 ? AF_INET : e->len == 16 ? AF_INET6 : 0;
            if (af && inet_ntop(af, e->name, text, sizeof(text)))
                add_san(&b, MTLS_SAN_IP, text, strlen(text));
        }
    }
    for (e = dc->altEmailNames; e; e = e->next)
        if (e->len >= 0)
            add_san(&b, MTLS_SAN_EMAIL, e->name, (size_t)e->len);
    if (b.bad)
        goto out;

    id = calloc(1, sizeof(*id) + b.n_san * sizeof(struct mtls_san) + b.strings.len);
    if (!id)
        goto out;
    san = (struct mtls_san *)(id + 1);
    base = (char *)(san + b.n_san);
    memcpy(base, b.strings.data, b.strings.len);
    id->subject = base + b.off[0];
    id->issuer = base + b.off[1];
    id->serial_hex = base + b.off[2];
    id->cn = base + b.off[3];
    id->ou = base + b.off[4];
    for (unsigned k = 0; k < b.n_san; k++) {
        san[k].type = b.san[k].type;
        san[k].value = base + b.san[k].off;
    }
    id->refs = 1;
    id->n_san = b.n_san;
    id->san = san;
    id->not_before = asn1_time(dc->beforeDate, dc->beforeDateLen);
    id->not_after = asn1_time(dc->afterDate, dc->afterDateLen);
    id->valid_until = id->not_after;
    if (wc_Sha256Hash(der, (word32)len, id->sha256) != 0) {
        free(id);
        id = NULL;
    }
out:
    mtls_buf_free(&b.strings);
    return id;
}

struct mtls_identity *mtls_identity_from_der(const uint8_t *der, size_t len)
{
    struct mtls_identity *id = NULL;
    DecodedCert dc;

    if (len > UINT32_MAX)
        return NULL;
    wc_InitDecodedCert(&dc, der, (word32)len, NULL);
    if (wc_ParseCert(&dc, CERT_TYPE, NO_VERIFY, NULL) == 0)
        id = identity_from_decoded(&dc, der, len);
    wc_FreeDecodedCert(&dc);
    return id;
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
    if (t->cm)
        wolfSSL_CertManagerFree(t->cm);
    for (unsigned i = 0; i < t->n_anchors; i++)
        mtls_buf_free(&t->anchors[i].der);
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
    t->cm = wolfSSL_CertManagerNew();
    if (!t->cm)
        goto oom;
    wolfSSL_CertManagerSetVerify(t->cm, on_cm_verify);
    ret = read_file(cfg->client_ca_file, &pem);
    if (ret < 0) {
        snprintf(err, errlen, "--client-ca %s: %s", cfg->client_ca_file, strerror(-ret));
        goto fail;
    }
    trust_digest_add(&h, pem.data, pem.len);
    if (mtls_buf_append(&pem, "", 1) < 0)
        goto oom;
    /* Each PEM block on its own: the DER is kept for per-miss managers, and
     * every anchor must be a CA (a leaf is not a trust anchor here). */
    for (p = strstr((const char *)pem.data, begin); p; p = strstr(end, begin)) {
        const char *stop = strstr(p, "-----END CERTIFICATE-----");
        uint8_t der[16384];
        DecodedCert dc;
        int dlen, ok;

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
        uint8_t subject[KEYID_SIZE], issuer[KEYID_SIZE];
        time_t nb, na;
        wc_InitDecodedCert(&dc, der, (word32)dlen, NULL);
        ok = wc_ParseCert(&dc, CERT_TYPE, NO_VERIFY, NULL) == 0 && dc.isCA &&
             (!dc.extKeyUsageSet || (dc.extKeyUsage & KEYUSE_KEY_CERT_SIGN));
        memcpy(subject, dc.subjectHash, KEYID_SIZE);
        memcpy(issuer, dc.issuerHash, KEYID_SIZE);
        nb = asn1_time(dc.beforeDate, dc.beforeDateLen);
        na = asn1_time(dc.afterDate, dc.afterDateLen);
        wc_FreeDecodedCert(&dc);
        if (ok && has_uri_ip_constraints(der, (size_t)dlen)) {
            snprintf(err, errlen,
                     "--client-ca %s: certificate %u has URI or IP name constraints, which "
                     "wolfSSL 5.5.4 cannot enforce; refusing to trust it",
                     cfg->client_ca_file, t->n_anchors + 1);
            goto fail;
        }
        if (!ok) {
            snprintf(err, errlen,
                     "--client-ca %s: certificate %u is not a CA certificate "
                     "(basicConstraints CA:TRUE and keyCertSign are required)",
                     cfg->client_ca_file, t->n_anchors + 1);
            goto fail;
        }
        ret = wolfSSL_CertManagerLoadCABuffer(t->cm, der, dlen, WOLFSSL_FILETYPE_ASN1);
        if (ret != WOLFSSL_SUCCESS) {
            snprintf(err, errlen, "--client-ca %s: certificate %u cannot be loaded (%s)",
                     cfg->client_ca_file, t->n_anchors + 1,
                     err_text(ret));
            goto fail;
        }
        struct anchor *a = realloc(t->anchors, (t->n_anchors + 1) * sizeof(*a));
        if (!a)
            goto oom;
        t->anchors = a;
        a += t->n_anchors;
        memset(a, 0, sizeof(*a));
        memcpy(a->subject, subject, KEYID_SIZE);
        memcpy(a->issuer, issuer, KEYID_SIZE);
        a->not_before = nb;
        a->not_after = na;
        if (mtls_buf_append(&a->der, der, (size_t)dlen) < 0)
            goto oom;
        t->n_anchors++;
    }
    if (t->n_anchors == 0) {
        snprintf(err, errlen, "--client-ca %s: no PEM certificate found", cfg->client_ca_file);
        goto fail;
    }
    if (cfg->n_crl_files) {
        if (wolfSSL_CertManagerEnableCRL(t->cm, WOLFSSL_CRL_CHECKALL) != WOLFSSL_SUCCESS)
            goto oom;
        t->crl = true;
        for (unsigned i = 0; i < cfg->n_crl_files; i++) {
            struct mtls_buf crl = {0};
            ret = read_file(cfg->crl_files[i], &crl);
            if (ret < 0) {
                snprintf(err, errlen, "--crl %s: %s", cfg->crl_files[i], strerror(-ret));
                mtls_buf_free(&crl);
                goto fail;
            }
            trust_digest_add(&h, crl.data, crl.len);
            ret = wolfSSL_CertManagerLoadCRLBuffer(t->cm, crl.data, (long)crl.len,
                                                   WOLFSSL_FILETYPE_PEM);
            mtls_buf_free(&crl);
            if (ret != WOLFSSL_SUCCESS) {
                snprintf(err, errlen,
                         "--crl %s: cannot load (%s): it must be a current PEM CRL "
                         "signed by a CA in --client-ca",
                         cfg->crl_files[i], err_text(ret));
                goto fail;
            }
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

/* wolfSSL 5.5.4 drops URI and IP subtrees when it decodes nameConstraints,
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

static enum reject check_dates(DecodedCert *dc, time_t now, time_t *not_after)
{
    time_t nb = asn1_time(dc->beforeDate, dc->beforeDateLen);
    time_t na = asn1_time(dc->afterDate, dc->afterDateLen);
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

/* The anchor named `issuer` (a name hash; signatures are checked by the
 * certificate manager), or -1. */
static int find_anchor(const struct trust *t, const uint8_t *issuer)
{
    for (unsigned a = 0; a < t->n_anchors; a++)
        if (memcmp(issuer, t->anchors[a].subject, KEYID_SIZE) == 0)
            return (int)a;
    return -1;
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

/* Full verification of a presented chain (leaf first). Called with the
 * trust read-locked. On success *out gets the leaf's identity. */
static enum reject verify_chain(struct trust *t, const WOLFSSL_BUFFER_INFO *certs, int n,
                                struct mtls_identity **out)
{
    DecodedCert *dc;
    WOLFSSL_CERT_MANAGER *tmp = NULL;
    time_t now = time(NULL), valid_until = (time_t)INT64_MAX;
    enum reject r = OK;
    int top = -1, i, parsed = 0;

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

    /* Walk up the presented chain until a certificate an anchor issued. */
    for (i = 0; i < n; i++) {
        if ((r = check_dates(&dc[i], now, &valid_until)) != OK ||
            (r = check_key(&dc[i])) != OK)
            goto out;
        if (i > 0) {
            /* An issuer must be a CA allowed to sign certificates, within its
             * path length, and (wolfSSL 5.5.4 checks EKU on the leaf only)
             * with an EKU that allows client authentication if it has one. */
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
            if (memcmp(dc[i - 1].issuerHash, dc[i].subjectHash, KEYID_SIZE) != 0) {
                r = R_UNTRUSTED; /* not a chain: presented out of order or unrelated */
                goto out;
            }
        }
        if (find_anchor(t, dc[i].issuerHash) >= 0) {
            top = i;
            break;
        }
    }
    if (top < 0) {
        r = R_UNTRUSTED;
        goto out;
    }
    {
        /* The anchor itself must be valid now: wolfSSL does not check a
         * signer's dates. */
        const struct anchor *an = &t->anchors[find_anchor(t, dc[top].issuerHash)];
        time_t skew = (time_t)settings.clock_skew_s;
        if (an->not_before == -1 || an->not_after == -1 || now + skew < an->not_before) {
            r = an->not_before == -1 ? R_MALFORMED : R_NOT_YET_VALID;
            goto out;
        }
        if (now - skew > an->not_after) {
            r = R_EXPIRED;
            goto out;
        }
        if (an->not_after < valid_until)
            valid_until = an->not_after;
    }
    if ((unsigned)top > settings.verify_depth) {
        r = R_DEPTH;
        goto out;
    }

    /* Signatures. The top certificate against the anchors; below it a
     * manager that lives for this verification only holds the anchors and
     * the intermediates as they are proven, so nothing a client sent
     * outlives this call. */
    if (top == 0) {
        r = cm_result(wolfSSL_CertManagerVerifyBuffer(t->cm, certs[0].buffer,
                                                      (long)certs[0].length,
                                                      WOLFSSL_FILETYPE_ASN1));
    } else {
        tmp = wolfSSL_CertManagerNew();
        if (!tmp) {
            r = R_MALFORMED;
            goto out;
        }
        wolfSSL_CertManagerSetVerify(tmp, on_cm_verify);
        for (unsigned a = 0; a < t->n_anchors; a++)
            wolfSSL_CertManagerLoadCABuffer(tmp, t->anchors[a].der.data,
                                            (long)t->anchors[a].der.len, WOLFSSL_FILETYPE_ASN1);
        for (i = top; i >= 1 && r == OK; i--) {
            /* Proven against what is loaded, then loaded for the next one. */
            r = cm_result(wolfSSL_CertManagerVerifyBuffer(tmp, certs[i].buffer,
                                                          (long)certs[i].length,
                                                          WOLFSSL_FILETYPE_ASN1));
            if (r == OK &&
                wolfSSL_CertManagerLoadCABuffer(tmp, certs[i].buffer, (long)certs[i].length,
                                                WOLFSSL_FILETYPE_ASN1) != WOLFSSL_SUCCESS)
                r = R_UNTRUSTED;
        }
        if (r == OK)
            r = cm_result(wolfSSL_CertManagerVerifyBuffer(tmp, certs[0].buffer,
                                                          (long)certs[0].length,
                                                          WOLFSSL_FILETYPE_ASN1));
    }
    if (r != OK)
        goto out;
    /* Revocation, for every certificate up to the anchor. */
    /* Revocation, for every certificate up to the anchor. The manager
     * finds a certificate's CRL through its issuer, so a CRL can only cover
     * certificates issued by a CA in --client-ca: a chain through an
     * intermediate the client sent has no CRL for its leaf, and with CRLs
     * configured that is a refusal (fail closed; see README). */
    for (i = 0; t->crl && i <= top && r == OK; i++) {
        int ret = wolfSSL_CertManagerCheckCRL(t->cm, (unsigned char *)certs[i].buffer,
                                              (int)certs[i].length);
        r = ret == WOLFSSL_SUCCESS ? OK : ret == ASN_NO_SIGNER_E ? R_CRL : cm_result(ret);
    }
    /* ...and on up through the anchors: an intermediate listed in
     * --client-ca can itself be revoked by its issuer's CRL. The walk ends
     * at a self-issued root or at an anchor whose issuer is not listed. */
    if (t->crl && r == OK) {
        int a = find_anchor(t, dc[top].issuerHash);
        for (unsigned steps = 0; a >= 0 && r == OK && steps < t->n_anchors; steps++) {
            const struct anchor *an = &t->anchors[a];
            if (memcmp(an->subject, an->issuer, KEYID_SIZE) == 0 ||
                find_anchor(t, an->issuer) < 0)
                break;
            int ret = wolfSSL_CertManagerCheckCRL(t->cm, an->der.data, (int)an->der.len);
            r = ret == WOLFSSL_SUCCESS ? OK : ret == ASN_NO_SIGNER_E ? R_CRL : cm_result(ret);
            a = find_anchor(t, an->issuer);
        }
    }
    if (r != OK)
        goto out;
    *out = identity_from_decoded(&dc[0], certs[0].buffer, certs[0].length);
    if (!*out)
        r = R_MALFORMED;
    else if (valid_until < (*out)->valid_until)
        (*out)->valid_until = valid_until;
out:
    if (tmp)
        wolfSSL_CertManagerFree(tmp);
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

static int on_verify(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
    struct mtls_tls *t = store->userCtx;
    struct mtls_identity *id = NULL;
    enum reject r;
    uint8_t key[32];
    uint64_t gen;
    time_t now;

    if (!t)
        return 0;
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
        count_reject(t->metrics, r);
        log_info("client certificate refused: %s (%s)", reject_text[r],
                 err_text(store->error));
        return settings.client_auth != MTLS_AUTH_VERIFY;
    }
    now = time(NULL);
    gen = mtls_verify_generation();
    if (chain_key(store->certs, store->totalCerts, key) == 0 &&
        (id = mtls_vcache_get(key, gen, now)) != NULL) {
        if (t->metrics)
            METRIC_INC(t->metrics, verify_cache_hits);
        t->chain_cached = true;
        r = OK;
    } else {
        if (t->metrics)
            METRIC_INC(t->metrics, verify_cache_misses);
        pthread_rwlock_rdlock(&trust_lock);
        gen = mtls_verify_generation(); /* the generation of the trust we use */
        r = verify_chain(trust, store->certs, store->totalCerts, &id);
        pthread_rwlock_unlock(&trust_lock);
        if (r == OK && settings.keep_certs)
            id = keep_certs(id, store->certs, store->totalCerts);
        if (r == OK && settings.verify_cache) {
            unsigned ev = mtls_vcache_put(key, gen, now, id);
            if (t->metrics) {
                METRIC_INC(t->metrics, verify_cache_inserts);
                METRIC_ADD(t->metrics, verify_cache_evictions, ev);
            }
        }
    }
    if (r != OK) {
        count_reject(t->metrics, r);
        t->verify_error = reject_text[r];
        log_info("client certificate refused: %s", reject_text[r]);
        /* present/optional: the handshake goes on (proof of possession is
         * still checked) and every request gets 403. */
        return settings.client_auth != MTLS_AUTH_VERIFY;
    }
    mtls_identity_free(t->identity);
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

void mtls_verify_setup(WOLFSSL_CTX *ctx, const struct mtls_verify_settings *cfg)
{
    int mode = WOLFSSL_VERIFY_PEER;

    /* VERIFY_PEER alone would let certificate-less clients in. */
    if (cfg->client_auth != MTLS_AUTH_OPTIONAL)
        mode |= WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    wolfSSL_CTX_set_verify(ctx, mode, on_verify);
}
