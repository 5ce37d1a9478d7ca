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
 * Version 2 (an identity that keeps the presented certificates for the
 * proxy's identity headers) appends: u16 length + the raw-deflate bytes
 * of the certificates (each: u24 length + DER, leaf first).
 *
 * Why compressed and not a larger ticket: the room in a ticket is
 * WOLFSSL_TICKET_EXTRA_PADDING_SZ (1024 bytes), and that define sizes the
 * ticket buffer of every connection's WOLFSSL_SESSION, idle or not. An
 * ECDSA leaf with one intermediate (about 1.1 KB of DER) deflates to about
 * 750 bytes (the names repeat between the certificates), which fits next
 * to the identity; compressing once per verified chain (the chain cache
 * shares the result) costs less than 1 KB of RSS on every connection.
 * Chains that still do not fit get a ticket that never resumes (counted in
 * tickets_unusable): a full handshake, never a resumed connection without
 * its headers.
 * The parser accepts exactly this: no trailing bytes, no NUL inside a
 * string, no unknown SAN type. The bytes are authenticated by the ticket's
 * MAC before they get here; the strict parser is the second line. */
#include "mtlsd/identity.h"

#include "mtlsd/buf.h"

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
    uint64_t u = (uint64_t)v;

    for (int i = 7; i >= 0; i--, u >>= 8)
        b[i] = (uint8_t)u;
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
    b[0] = (uint8_t)(n >> 8);
    b[1] = (uint8_t)n;
    put(w, b, 2);
    put(w, s, n);
}

long mtls_identity_serialize(const struct mtls_identity *id, uint8_t *out, size_t cap)
{
    struct writer w = {out, cap, 0, 0};

    if (!id || id->n_san > MTLS_IDENTITY_MAX_SAN || id->certs_z_len > UINT16_MAX)
        return -1;
    put_u8(&w, id->certs_z ? IDENTITY_VERSION_CERTS : IDENTITY_VERSION);
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
    if (id->certs_z) {
        uint8_t b[2] = {(uint8_t)(id->certs_z_len >> 8), (uint8_t)id->certs_z_len};
        put(&w, b, 2);
        put(&w, id->certs_z, id->certs_z_len);
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
    uint64_t u = 0;

    if (!q)
        return 0;
    for (int i = 0; i < 8; i++)
        u = (u << 8) | q[i];
    return (int64_t)u;
}

/* A string's bytes (not NUL-terminated in the input). */
static const uint8_t *get_str(struct reader *r, size_t *n)
{
    const uint8_t *q = take(r, 2), *s;

    *n = 0;
    if (!q)
        return NULL;
    *n = (size_t)q[0] << 8 | q[1];
    s = take(r, *n);
    if (s && memchr(s, '\0', *n))
        r->bad = 1; /* an embedded NUL could fool a matcher */
    return r->bad ? NULL : s;
}

struct mtls_identity *mtls_identity_deserialize(const uint8_t *in, size_t len)
{
    struct reader r = {in, len, 0, 0};
    struct { const uint8_t *s; size_t n; } str[NAMES + MTLS_IDENTITY_MAX_SAN];
    unsigned type[MTLS_IDENTITY_MAX_SAN];
    struct mtls_identity *id;
    struct mtls_san *san;
    int64_t nb, na, vu;
    uint8_t sha[32];
    const uint8_t *q;
    unsigned n_san, i, version;
    size_t total = 0, z_len = 0;
    const uint8_t *z = NULL;
    char *base;

    version = in ? get_u8(&r) : 0;
    if (version != IDENTITY_VERSION && version != IDENTITY_VERSION_CERTS)
        return NULL;
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
    if (version == IDENTITY_VERSION_CERTS) {
        q = take(&r, 2);
        z_len = q ? (size_t)q[0] << 8 | q[1] : 0;
        z = take(&r, z_len);
        if (!z || z_len == 0)
            return NULL;
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

/* ---- the presented certificates (for the proxy's identity headers) ------- */

struct mtls_identity *mtls_identity_with_certs(struct mtls_identity *id,
                                               const struct mtls_der *certs, unsigned n)
{
    struct mtls_buf raw = {0}, rec = {0};
    struct mtls_identity tmp, *out = NULL;
    uLongf z_len;
    uint8_t *z = NULL;
    z_stream zs;
    long len = -1;

    if (!id || n == 0 || n > MTLS_IDENTITY_MAX_CERTS)
        return id;
    for (unsigned i = 0; i < n; i++) {
        uint8_t l[3] = {(uint8_t)(certs[i].len >> 16), (uint8_t)(certs[i].len >> 8),
                        (uint8_t)certs[i].len};
        if (certs[i].len == 0 || certs[i].len > MTLS_IDENTITY_CERTS_MAX ||
            mtls_buf_append(&raw, l, 3) < 0 || mtls_buf_append(&raw, certs[i].der, certs[i].len) < 0)
            goto out;
    }
    if (raw.len > MTLS_IDENTITY_CERTS_MAX)
        goto out;
    /* Raw deflate (no zlib header or checksum: the ticket's MAC covers it). */
    memset(&zs, 0, sizeof(zs));
    if (deflateInit2(&zs, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY) != Z_OK)
        goto out;
    z_len = deflateBound(&zs, (uLong)raw.len);
    z = malloc(z_len);
    if (z) {
        zs.next_in = raw.data;
        zs.avail_in = (uInt)raw.len;
        zs.next_out = z;
        zs.avail_out = (uInt)z_len;
        if (deflate(&zs, Z_FINISH) == Z_STREAM_END)
            z_len = zs.total_out;
        else
            z_len = 0;
    }
    deflateEnd(&zs);
    if (!z || z_len == 0 || z_len > UINT16_MAX)
        goto out;
    /* Rebuilt through the serialized form: one allocation, as always. */
    tmp = *id;
    tmp.certs_z = z;
    tmp.certs_z_len = (uint32_t)z_len;
    for (size_t cap = 4096 + z_len; cap <= (1u << 20); cap *= 4) {
        if (mtls_buf_reserve(&rec, cap) < 0)
            goto out;
        len = mtls_identity_serialize(&tmp, rec.data, rec.cap);
        if (len > 0)
            break;
    }
    if (len > 0)
        out = mtls_identity_deserialize(rec.data, (size_t)len);
out:
    free(z);
    mtls_buf_free(&raw);
    mtls_buf_free(&rec);
    if (!out)
        return id;
    mtls_identity_free(id);
    return out;
}

int mtls_identity_certs(const struct mtls_identity *id, struct mtls_buf *raw,
                        struct mtls_der *out, unsigned max)
{
    z_stream zs;
    size_t off = 0;
    int n = 0, zr;

    if (!id || !id->certs_z)
        return 0;
    if (mtls_buf_reserve(raw, MTLS_IDENTITY_CERTS_MAX) < 0)
        return -1;
    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, -15) != Z_OK)
        return -1;
    zs.next_in = (Bytef *)id->certs_z;
    zs.avail_in = id->certs_z_len;
    zs.next_out = raw->data + raw->len;
    zs.avail_out = (uInt)MTLS_IDENTITY_CERTS_MAX;
    zr = inflate(&zs, Z_FINISH);
    if (zr == Z_STREAM_END)
        raw->len += zs.total_out;
    inflateEnd(&zs);
    if (zr != Z_STREAM_END)
        return -1;
    while (off < raw->len) {
        size_t l;
        if (raw->len - off < 3 || (unsigned)n == max)
            return -1;
        l = (size_t)raw->data[off] << 16 | (size_t)raw->data[off + 1] << 8 | raw->data[off + 2];
        off += 3;
        if (l == 0 || l > raw->len - off)
            return -1;
        out[n].der = raw->data + off;
        out[n].len = l;
        off += l;
        n++;
    }
    return n;
}
