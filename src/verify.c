/* verify.c: client-certificate policy and identity extraction.
 *
 * wolfSSL verifies the chain against --client-ca (loaded into the CTX). With
 * WOLFSSL_ALWAYS_VERIFY_CB and WOLFSSL_VERIFY_CB_ALL_CERTS the callback sees
 * every certificate, and at depth 0 (the leaf, last) it turns the leaf into a
 * compact identity, once per connection, so nothing per request re-parses
 * the certificate. */
#include "mtlsd/verify.h"
#include "mtlsd/buf.h"
#include "mtlsd/log.h"

#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if !defined(WOLFSSL_ALWAYS_VERIFY_CB) || !defined(WOLFSSL_VERIFY_CB_ALL_CERTS)
#error "mtlsd needs wolfSSL built with WOLFSSL_ALWAYS_VERIFY_CB and WOLFSSL_VERIFY_CB_ALL_CERTS"
#endif

static uint64_t trust_generation = 1;

uint64_t mtls_verify_generation(void)
{
    return __atomic_load_n(&trust_generation, __ATOMIC_ACQUIRE);
}

void mtls_identity_free(struct mtls_identity *id)
{
    free(id);
}

/* ASN.1 UTCTime / GeneralizedTime (with or without tag and length) to
 * time_t; -1 when malformed. */
static time_t asn1_time(const uint8_t *p, int len)
{
    int digits, year, i, v[6] = {0};
    struct tm tm;

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

struct id_builder {
    struct mtls_buf strings;
    size_t off[3];                 /* subject, issuer, serial */
    struct { enum mtls_san_type type; size_t off; } san[32];
    unsigned n_san;
    int bad;
};

static size_t add_string(struct id_builder *b, const char *s, size_t n)
{
    size_t off = b->strings.len;

    if (memchr(s, '\0', n)) { /* an embedded NUL could fool a matcher */
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

struct mtls_identity *mtls_identity_from_der(const uint8_t *der, size_t len)
{
    struct id_builder b;
    struct mtls_identity *id = NULL;
    struct mtls_san *san;
    DecodedCert dc;
    DNS_entry *e;
    char serial[2 * EXTERNAL_SERIAL_SIZE + 1];
    char *base;
    int i;

    if (len > UINT32_MAX)
        return NULL;
    memset(&b, 0, sizeof(b));
    wc_InitDecodedCert(&dc, der, (word32)len, NULL);
    if (wc_ParseCert(&dc, CERT_TYPE, NO_VERIFY, NULL) != 0)
        goto out;

    b.off[0] = add_string(&b, dc.subject, strnlen(dc.subject, sizeof(dc.subject)));
    b.off[1] = add_string(&b, dc.issuer, strnlen(dc.issuer, sizeof(dc.issuer)));
    for (i = 0; i < dc.serialSz && i < EXTERNAL_SERIAL_SIZE; i++)
        snprintf(serial + 2 * i, 3, "%02x", dc.serial[i]);
    serial[2 * i] = '\0';
    b.off[2] = add_string(&b, serial, strlen(serial));

    for (e = dc.altNames; e; e = e->next) {
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
    for (e = dc.altEmailNames; e; e = e->next)
        if (e->len >= 0)
            add_san(&b, MTLS_SAN_EMAIL, e->name, (size_t)e->len);
    if (b.bad)
        goto out;

    id = malloc(sizeof(*id) + b.n_san * sizeof(struct mtls_san) + b.strings.len);
    if (!id)
        goto out;
    san = (struct mtls_san *)(id + 1);
    base = (char *)(san + b.n_san);
    memcpy(base, b.strings.data, b.strings.len);
    id->subject = base + b.off[0];
    id->issuer = base + b.off[1];
    id->serial_hex = base + b.off[2];
    for (unsigned k = 0; k < b.n_san; k++) {
        san[k].type = b.san[k].type;
        san[k].value = base + b.san[k].off;
    }
    id->n_san = b.n_san;
    id->san = san;
    id->not_before = asn1_time(dc.beforeDate, dc.beforeDateLen);
    id->not_after = asn1_time(dc.afterDate, dc.afterDateLen);
    if (wc_Sha256Hash(der, (word32)len, id->sha256) != 0) {
        free(id);
        id = NULL;
    }
out:
    wc_FreeDecodedCert(&dc);
    mtls_buf_free(&b.strings);
    return id;
}

static int on_verify(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
    struct mtls_identity **slot = store->userCtx;
    struct mtls_identity *id;
    char text[WOLFSSL_MAX_ERROR_SZ];

    if (!preverify) {
        wolfSSL_ERR_error_string_n((unsigned long)store->error, text, sizeof(text));
        log_info("client certificate refused at depth %d: %s", store->error_depth, text);
        return 0;
    }
    if (store->error_depth != 0)
        return 1; /* the chain is judged by wolfSSL; the identity is the leaf's */
    if (!slot || store->totalCerts < 1 || !store->certs)
        return 0;
    id = mtls_identity_from_der(store->certs[0].buffer, store->certs[0].length);
    if (!id) {
        log_info("client certificate refused: cannot extract its identity");
        return 0;
    }
    mtls_identity_free(*slot);
    *slot = id;
    return 1;
}

int mtls_verify_setup(WOLFSSL_CTX *ctx, const struct mtls_config *cfg, char *err,
                      size_t errlen)
{
    int ret = wolfSSL_CTX_load_verify_locations(ctx, cfg->client_ca_file, NULL);

    if (ret != WOLFSSL_SUCCESS) {
        char text[WOLFSSL_MAX_ERROR_SZ];
        wolfSSL_ERR_error_string_n((unsigned long)ret, text, sizeof(text));
        snprintf(err, errlen, "--client-ca %s: cannot load PEM CA certificates (%s)",
                 cfg->client_ca_file, text);
        return -1;
    }
    /* VERIFY_PEER alone would let certificate-less clients in. */
    wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                           on_verify);
    return 0;
}
