/* identity.c: the binary form of a client identity carried inside session
 * tickets, so that any worker or any instance sharing the ticket keys can
 * restore the identity of a resumed session without a shared cache.
 *
 * Format (big-endian), version 1:
 *   u8  version (1)
 *   i64 not_before, i64 not_after, i64 valid_until (earliest notAfter of the
 *       verified chain)
 *   u8  sha256[32]
 *   str subject, str issuer, str serial_hex, str cn, str ou
 *                                                (str = u16 length + bytes)
 *   u8  n_san (<= MTLS_IDENTITY_MAX_SAN), then per SAN: u8 type + str value
 * Version 2, an identity that keeps the presented certificates for the
 * proxy's identity headers: u8 version (2), then raw deflate of
 *   u8 n_certs, per certificate u24 length + DER (leaf first, TLS order),
 *   then the version-1 body above (everything after its version byte).
 * The identity keeps that compressed form (certs_z): a ticket issued for a
 * resumed session copies it, and the proxy inflates it once per client.
 *
 * Why compressed, and the certificates and names together: the room in a
 * ticket is WOLFSSL_TICKET_EXTRA_PADDING_SZ (1024 bytes), and that define
 * sizes the ticket buffer of every connection's WOLFSSL_SESSION, idle or
 * not. The names of the identity are also inside the DER, so deflate takes
 * them almost for free: an ECDSA leaf (2 SANs) with one intermediate and
 * the identity, 1350 bytes raw, 1031 compressed apart, compress to about
 * 820 together, inside the 988 bytes a ticket leaves. Compressing once per
 * verified chain (the chain cache shares the result) costs less than 1 KB
 * of RSS on every connection. Chains that still do not fit get a ticket
 * that never resumes (counted in tickets_unusable): a full handshake, never
 * a resumed connection without its headers.
 * The parser accepts exactly this: no trailing bytes, no NUL inside a
 * string, no unknown SAN type. The bytes are authenticated by the ticket's
 * MAC before they get here; the strict parser is the second line.
 *
 * Everything about the identity type lives here: reference counting,
 * building one from a certificate, the binary form. */
#include "mtlsd/identity.h"
#include "mtlsd/be.h"
#include "mtlsd/buf.h"
#include "mtlsd/identity_x509.h"

#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define IDENTITY_VERSION 1
#define IDENTITY_VERSION_CERTS 2
#define NAMES 5 /* subject, issuer, serial, cn, ou */

struct writer {
    uint8_t *p;
    size_t cap, len;
    int overflow;
};

static void put(struct writer *w, const void *src, size_t n)
{
    if (w->overflow || n > w->cap - w->len) {
        w->overflow = 1;
        return;
    }
    memcpy(w->p + w->len, src, n);
    w->len += n;
}

static void put_u8(struct writer *w, unsigned v)
{
    uint8_t b = (uint8_t)v;
    put(w, &b, 1);
}

static void put_i64(struct writer *w, int64_t v)
{
    uint8_t b[8];

    mtls_put_be(b, (uint64_t)v, 8);
    put(w, b, 8);
}

static void put_str(struct writer *w, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    uint8_t b[2];

    if (n > UINT16_MAX) {
        w->overflow = 1;
        return;
    }
    mtls_put_be(b, n, 2);
    put(w, b, 2);
    put(w, s, n);
}

long mtls_identity_serialize(const struct mtls_identity *id, uint8_t *out, size_t cap)
{
    struct writer w = {out, cap, 0, 0};

    if (!id || id->n_san > MTLS_IDENTITY_MAX_SAN)
        return -1;
    if (id->certs_z) { /* the names are inside the compressed form */
        put_u8(&w, IDENTITY_VERSION_CERTS);
        put(&w, id->certs_z, id->certs_z_len);
        return w.overflow ? -1 : (long)w.len;
    }
    put_u8(&w, IDENTITY_VERSION);
    put_i64(&w, (int64_t)id->not_before);
    put_i64(&w, (int64_t)id->not_after);
    put_i64(&w, (int64_t)id->valid_until);
    put(&w, id->sha256, sizeof(id->sha256));
    put_str(&w, id->subject);
    put_str(&w, id->issuer);
    put_str(&w, id->serial_hex);
    put_str(&w, id->cn);
    put_str(&w, id->ou);
    put_u8(&w, id->n_san);
    for (unsigned i = 0; i < id->n_san; i++) {
        if ((unsigned)id->san[i].type > MTLS_SAN_IP)
            return -1;
        put_u8(&w, (unsigned)id->san[i].type);
        put_str(&w, id->san[i].value);
    }
    if (w.overflow)
        return -1;
    return (long)w.len;
}

struct reader {
    const uint8_t *p;
    size_t len, off;
    int bad;
};

static const uint8_t *take(struct reader *r, size_t n)
{
    const uint8_t *q;

    if (r->bad || n > r->len - r->off) {
        r->bad = 1;
        return NULL;
    }
    q = r->p + r->off;
    r->off += n;
    return q;
}

static unsigned get_u8(struct reader *r)
{
    const uint8_t *q = take(r, 1);
    return q ? q[0] : 0;
}

static int64_t get_i64(struct reader *r)
{
    const uint8_t *q = take(r, 8);

    return q ? (int64_t)mtls_get_be(q, 8) : 0;
}

/* A string's bytes (not NUL-terminated in the input). */
static const uint8_t *get_str(struct reader *r, size_t *n)
{
    const uint8_t *q = take(r, 2), *s;

    *n = 0;
    if (!q)
        return NULL;
    *n = (size_t)mtls_get_be(q, 2);
    s = take(r, *n);
    if (s && memchr(s, '\0', *n))
        r->bad = 1; /* an embedded NUL could fool a matcher */
    return r->bad ? NULL : s;
}

/* The version-1 body (after the version byte) into a fresh identity that
 * also keeps z[0..z_len) (a version-2 record's compressed form). */
static struct mtls_identity *parse_body(const uint8_t *in, size_t len, const uint8_t *z,
                                        size_t z_len)
{
    struct reader r = {in, len, 0, 0};
    struct { const uint8_t *s; size_t n; } str[NAMES + MTLS_IDENTITY_MAX_SAN];
    unsigned type[MTLS_IDENTITY_MAX_SAN];
    struct mtls_identity *id;
    struct mtls_san *san;
    int64_t nb, na, vu;
    uint8_t sha[32];
    const uint8_t *q;
    unsigned n_san, i;
    size_t total = 0;
    char *base;

    nb = get_i64(&r);
    na = get_i64(&r);
    vu = get_i64(&r);
    q = take(&r, sizeof(sha));
    if (!q)
        return NULL;
    memcpy(sha, q, sizeof(sha));
    for (i = 0; i < NAMES; i++) {
        str[i].s = get_str(&r, &str[i].n);
        total += str[i].n + 1;
    }
    n_san = get_u8(&r);
    if (r.bad || n_san > MTLS_IDENTITY_MAX_SAN)
        return NULL;
    for (i = 0; i < n_san; i++) {
        type[i] = get_u8(&r);
        if (type[i] > MTLS_SAN_IP)
            return NULL;
        str[NAMES + i].s = get_str(&r, &str[NAMES + i].n);
        total += str[NAMES + i].n + 1;
    }
    if (r.bad || r.off != r.len)
        return NULL;

    id = calloc(1, sizeof(*id) + n_san * sizeof(struct mtls_san) + total + z_len);
    if (!id)
        return NULL;
    san = (struct mtls_san *)(id + 1);
    base = (char *)(san + n_san);
    for (i = 0; i < NAMES + n_san; i++) {
        const char *s = base;
        if (str[i].n)
            memcpy(base, str[i].s, str[i].n);
        base[str[i].n] = '\0';
        base += str[i].n + 1;
        if (i == 0)
            id->subject = s;
        else if (i == 1)
            id->issuer = s;
        else if (i == 2)
            id->serial_hex = s;
        else if (i == 3)
            id->cn = s;
        else if (i == 4)
            id->ou = s;
        else {
            san[i - NAMES].type = (enum mtls_san_type)type[i - NAMES];
            san[i - NAMES].value = s;
        }
    }
    if (z) {
        memcpy(base, z, z_len);
        id->certs_z = (const uint8_t *)base;
        id->certs_z_len = (uint32_t)z_len;
    }
    memcpy(id->sha256, sha, sizeof(sha));
    id->not_before = (time_t)nb;
    id->not_after = (time_t)na;
    id->valid_until = (time_t)vu;
    id->refs = 1;
    id->n_san = n_san;
    id->san = san;
    return id;
}

/* Inflates a version-2 payload into `raw`; returns the offset where the
 * version-1 body starts (after the certificates), or -1. out[] (may be
 * NULL) gets the certificates, *n their count. */
static long inflate_record(const uint8_t *z, size_t z_len, struct mtls_buf *raw,
                           struct mtls_der *out, unsigned max, unsigned *n)
{
    z_stream zs;
    size_t off, cap = MTLS_IDENTITY_CERTS_MAX + 8192;
    int zr;

    *n = 0;
    if (z_len == 0 || z_len > UINT32_MAX || mtls_buf_reserve(raw, cap) < 0)
        return -1;
    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, -15) != Z_OK)
        return -1;
    zs.next_in = (Bytef *)z;
    zs.avail_in = (uInt)z_len;
    zs.next_out = raw->data + raw->len;
    zs.avail_out = (uInt)cap;
    zr = inflate(&zs, Z_FINISH);
    /* The whole input, exactly one stream, within the bound. */
    if (zr == Z_STREAM_END && zs.avail_in == 0)
        raw->len += zs.total_out;
    inflateEnd(&zs);
    if (zr != Z_STREAM_END || zs.avail_in != 0 || raw->len < 1)
        return -1;
    unsigned count = raw->data[0];
    off = 1;
    if (count == 0 || count > MTLS_IDENTITY_MAX_CERTS || (out && count > max))
        return -1;
    for (unsigned i = 0; i < count; i++) {
        size_t l;
        if (raw->len - off < 3)
            return -1;
        l = (size_t)raw->data[off] << 16 | (size_t)raw->data[off + 1] << 8 | raw->data[off + 2];
        off += 3;
        if (l == 0 || l > raw->len - off)
            return -1;
        if (out) {
            out[i].der = raw->data + off;
            out[i].len = l;
        }
        off += l;
    }
    *n = count;
    return (long)off;
}

struct mtls_identity *mtls_identity_deserialize(const uint8_t *in, size_t len)
{
    struct mtls_buf raw = {0};
    struct mtls_identity *id = NULL;
    unsigned n;
    long off;

    if (!in || len < 1)
        return NULL;
    if (in[0] == IDENTITY_VERSION)
        return parse_body(in + 1, len - 1, NULL, 0);
    if (in[0] != IDENTITY_VERSION_CERTS)
        return NULL;
    off = inflate_record(in + 1, len - 1, &raw, NULL, 0, &n);
    if (off > 0)
        id = parse_body(raw.data + off, raw.len - (size_t)off, in + 1, len - 1);
    mtls_buf_free(&raw);
    return id;
}

/* ---- the presented certificates (for the proxy's identity headers) ------- */

struct mtls_identity *mtls_identity_with_certs(struct mtls_identity *id,
                                               const struct mtls_der *certs, unsigned n)
{
    struct mtls_buf raw = {0}, rec = {0};
    struct mtls_identity *out = NULL;
    uLongf z_len = 0;
    z_stream zs;
    long len = -1;
    uint8_t count = (uint8_t)n;

    if (!id || id->certs_z || n == 0 || n > MTLS_IDENTITY_MAX_CERTS)
        return id;
    if (mtls_buf_append(&raw, &count, 1) < 0)
        goto out;
    for (unsigned i = 0; i < n; i++) {
        uint8_t l[3] = {(uint8_t)(certs[i].len >> 16), (uint8_t)(certs[i].len >> 8),
                        (uint8_t)certs[i].len};
        if (certs[i].len == 0 || certs[i].len > MTLS_IDENTITY_CERTS_MAX ||
            mtls_buf_append(&raw, l, 3) < 0 || mtls_buf_append(&raw, certs[i].der, certs[i].len) < 0)
            goto out;
    }
    if (raw.len > MTLS_IDENTITY_CERTS_MAX)
        goto out;
    /* ...then the version-1 body (its version byte dropped). */
    for (size_t cap = 4096; cap <= (1u << 20); cap *= 4) {
        if (mtls_buf_reserve(&rec, cap) < 0)
            goto out;
        len = mtls_identity_serialize(id, rec.data, rec.cap);
        if (len > 0)
            break;
    }
    if (len <= 1 || raw.len + (size_t)len > MTLS_IDENTITY_CERTS_MAX + 8192 ||
        mtls_buf_append(&raw, rec.data + 1, (size_t)len - 1) < 0)
        goto out;
    /* Raw deflate (no zlib header or checksum: the ticket's MAC covers it). */
    memset(&zs, 0, sizeof(zs));
    if (deflateInit2(&zs, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY) != Z_OK)
        goto out;
    rec.len = 0;
    if (mtls_buf_reserve(&rec, 1 + deflateBound(&zs, (uLong)raw.len)) == 0) {
        rec.data[0] = IDENTITY_VERSION_CERTS;
        zs.next_in = raw.data;
        zs.avail_in = (uInt)raw.len;
        zs.next_out = rec.data + 1;
        zs.avail_out = (uInt)(rec.cap - 1);
        if (deflate(&zs, Z_FINISH) == Z_STREAM_END)
            z_len = zs.total_out;
    }
    deflateEnd(&zs);
    /* Rebuilt from the record: one allocation, as always, and the same
     * path a ticket takes. */
    if (z_len)
        out = mtls_identity_deserialize(rec.data, 1 + z_len);
out:
    mtls_buf_free(&raw);
    mtls_buf_free(&rec);
    if (!out)
        return id;
    out->valid_until = id->valid_until;
    mtls_identity_free(id);
    return out;
}

int mtls_identity_certs(const struct mtls_identity *id, struct mtls_buf *raw,
                        struct mtls_der *out, unsigned max)
{
    unsigned n;

    if (!id || !id->certs_z)
        return 0;
    return inflate_record(id->certs_z, id->certs_z_len, raw, out, max, &n) < 0 ? -1 : (int)n;
}

/* ---- lifetime ----------------------------------------------------------------- */

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

int64_t mtls_identity_end(const struct mtls_identity *id)
{
    int64_t a = (int64_t)id->not_after, b = (int64_t)id->valid_until;

    if (a == -1 || b == -1)
        return -1; /* unknown: refuse */
    return a < b ? a : b;
}

/* ---- building from a certificate ------------------------------------------- */

/* ASN.1 UTCTime / GeneralizedTime (with or without tag and length) to
 * time_t; -1 when malformed. */
time_t mtls_asn1_time(const uint8_t *p, int len)
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

struct mtls_identity *mtls_identity_from_decoded(DecodedCert *dc, const uint8_t *der,
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
    id->not_before = mtls_asn1_time(dc->beforeDate, dc->beforeDateLen);
    id->not_after = mtls_asn1_time(dc->afterDate, dc->afterDateLen);
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
        id = mtls_identity_from_decoded(&dc, der, len);
    wc_FreeDecodedCert(&dc);
    return id;
}

struct mtls_identity *mtls_identity_from_pem_file(const char *path)
{
    static const size_t max = 1u << 20;
    struct mtls_identity *id = NULL;
    uint8_t *pem = malloc(max), *der = malloc(65536);
    FILE *f = fopen(path, "rb");
    size_t n;
    int dn;

    if (f && pem && der) {
        n = fread(pem, 1, max, f);
        dn = wc_CertPemToDer(pem, (int)n, der, 65536, CERT_TYPE);
        if (dn > 0)
            id = mtls_identity_from_der(der, (size_t)dn);
    }
    if (f)
        fclose(f);
    free(pem);
    free(der);
    return id;
}
