/* proxy_headers.c: the header fields that cross the proxy (see
 * include/mtlsd/proxy_headers.h).
 *
 * Why the identity headers are built from the certificates' DER and not
 * from struct mtls_identity's strings: RFC 9440 forwards the certificate
 * itself, and XFCC's Subject must be RFC 2253 text, which the one-line
 * "/O=../CN=.." form cannot give back unambiguously (a '/' inside a value).
 * The subject is read from the DER by a small, bounded walker below; the
 * DER was verified (or restored from an authenticated ticket) before it
 * gets here. */
#include "mtlsd/proxy_headers.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Every proxied request passes here twice (its head, its answer's head):
 * the names compared and the pieces appended are mostly literals, so their
 * lengths are known at compile time, and an append that fits is a memcpy. */
struct lit {
    const char *s;
    size_t n;
};
#define LIT(s) {s, sizeof(s) - 1}

static inline bool name_is_n(const char *name, size_t len, const char *want, size_t want_len)
{
    return want_len == len && strncasecmp(name, want, len) == 0;
}

static inline bool name_is(const char *name, size_t len, const char *want)
{
    return name_is_n(name, len, want, strlen(want));
}

#define add mtls_buf_append

static inline int put(struct mtls_buf *b, const char *s)
{
    return add(b, s, strlen(s));
}

/* "<prefix><decimal v><suffix>" without printf. */
static int put_u64(struct mtls_buf *b, const char *prefix, unsigned long long v,
                   const char *suffix)
{
    char d[24];
    size_t i = sizeof(d);

    do {
        d[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return put(b, prefix) | add(b, d + i, sizeof(d) - i) | put(b, suffix);
}

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

int mtls_conn_tokens(const struct mtls_http_header *h, unsigned n, struct mtls_conn_tokens *out)
{
    memset(out, 0, sizeof(*out));
    for (unsigned i = 0; i < n; i++) {
        const char *v = h[i].value, *end;
        size_t left = h[i].value_len;

        if (!name_is(h[i].name, h[i].name_len, "connection"))
            continue;
        end = v + left;
        while (v < end) {
            const char *s;
            while (v < end && (*v == ',' || *v == ' ' || *v == '\t'))
                v++;
            s = v;
            while (v < end && is_tchar((unsigned char)*v))
                v++;
            if (v == s) {
                if (v < end)
                    return -1; /* not a token */
                break;
            }
            size_t len = (size_t)(v - s);
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            if (v < end && *v != ',')
                return -1;
            if (name_is(s, len, "close"))
                out->close = true;
            else if (!name_is(s, len, "keep-alive")) {
                if (out->n == MTLS_CONN_TOKENS)
                    return -1;
                out->tok[out->n].p = s;
                out->tok[out->n].n = len;
                out->n++;
            }
        }
    }
    return 0;
}

bool mtls_hop_by_hop(const char *name, size_t len, const struct mtls_conn_tokens *ct)
{
    static const struct lit fixed[] = {LIT("connection"), LIT("keep-alive"), LIT("te"),
                                       LIT("trailer"), LIT("upgrade"),
                                       LIT("transfer-encoding"), LIT("content-length")};

    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        if (name_is_n(name, len, fixed[i].s, fixed[i].n))
            return true;
    if (len >= 6 && strncasecmp(name, "proxy-", 6) == 0)
        return true;
    for (unsigned i = 0; ct && i < ct->n; i++)
        if (ct->tok[i].n == len && strncasecmp(ct->tok[i].p, name, len) == 0)
            return true;
    return false;
}

bool mtls_strip_inbound(const struct mtls_proxy_header_cfg *cfg, const char *name, size_t len)
{
    static const struct lit ours[] = {LIT("client-cert"), LIT("client-cert-chain"),
                                      LIT("x-forwarded-client-cert"), LIT("x-forwarded-proto")};

    for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
        if (name_is_n(name, len, ours[i].s, ours[i].n))
            return true;
    for (unsigned i = 0; cfg && i < cfg->n_strip; i++)
        if (name_is(name, len, cfg->strip[i]))
            return true;
    return false;
}

bool mtls_header_value_bad(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == '\r' || v[i] == '\n' || v[i] == '\0')
            return true;
    return false;
}

/* ---- encodings ------------------------------------------------------------ */

int mtls_base64_append(struct mtls_buf *out, const uint8_t *in, size_t n)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t need = (n + 2) / 3 * 4, i;
    char *p;

    if (mtls_buf_reserve(out, need) < 0)
        return -1;
    p = (char *)out->data + out->len;
    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *p++ = tab[v >> 18];
        *p++ = tab[(v >> 12) & 63];
        *p++ = tab[(v >> 6) & 63];
        *p++ = tab[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
        *p++ = tab[v >> 18];
        *p++ = tab[(v >> 12) & 63];
        *p++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        *p++ = '=';
    }
    out->len += need;
    return 0;
}

/* Percent-encodes all but RFC 3986 unreserved characters (what Envoy and
 * nginx's $ssl_client_escaped_cert produce for the PEM). */
static int url_encode(struct mtls_buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";

    if (mtls_buf_reserve(out, 3 * n) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            out->data[out->len++] = c;
        } else {
            out->data[out->len++] = '%';
            out->data[out->len++] = (uint8_t)hex[c >> 4];
            out->data[out->len++] = (uint8_t)hex[c & 15];
        }
    }
    return 0;
}

/* An XFCC value: quoted when it holds ',', ';', '=' or '"' (Envoy's rule),
 * with '"' and '\' escaped inside quotes. */
static int xfcc_value(struct mtls_buf *out, const char *s, size_t n, bool always_quote)
{
    bool quote = always_quote || strcspn(s, ",;=\"") < n;
    int r = 0;

    if (quote)
        r |= put(out, "\"");
    for (size_t i = 0; i < n && r == 0; i++) {
        if (quote && (s[i] == '"' || s[i] == '\\'))
            r |= put(out, "\\");
        r |= mtls_buf_append(out, &s[i], 1);
    }
    if (quote)
        r |= put(out, "\"");
    return r ? -1 : 0;
}

/* ---- a bounded DER walker for the subject --------------------------------- */

struct der_in {
    const uint8_t *p, *end;
};

/* Reads one TLV; -1 when malformed. */
static int der_next(struct der_in *d, unsigned *tag, const uint8_t **val, size_t *len)
{
    size_t l;

    if (d->end - d->p < 2)
        return -1;
    *tag = d->p[0];
    l = d->p[1];
    d->p += 2;
    if (l & 0x80) {
        unsigned k = l & 0x7f;
        if (k == 0 || k > 3 || (size_t)(d->end - d->p) < k)
            return -1;
        l = 0;
        while (k--)
            l = l << 8 | *d->p++;
    }
    if ((size_t)(d->end - d->p) < l)
        return -1;
    *val = d->p;
    *len = l;
    d->p += l;
    return 0;
}

static const struct {
    const char *oid; /* DER bytes of the OID */
    size_t n;
    const char *name;
} attr_names[] = {
    {"\x55\x04\x03", 3, "CN"},  {"\x55\x04\x06", 3, "C"},   {"\x55\x04\x07", 3, "L"},
    {"\x55\x04\x08", 3, "ST"},  {"\x55\x04\x0a", 3, "O"},   {"\x55\x04\x0b", 3, "OU"},
    {"\x55\x04\x09", 3, "STREET"},
    {"\x09\x92\x26\x89\x93\xf2\x2c\x64\x01\x19", 10, "DC"},
    {"\x09\x92\x26\x89\x93\xf2\x2c\x64\x01\x01", 10, "UID"},
};

static int dotted_oid(struct mtls_buf *out, const uint8_t *p, size_t n)
{
    char num[24];
    uint64_t v = 0;
    bool first = true;

    for (size_t i = 0; i < n; i++) {
        if (v > (UINT64_MAX >> 7))
            return -1;
        v = v << 7 | (p[i] & 0x7f);
        if (p[i] & 0x80)
            continue;
        if (first) {
            unsigned a = v < 40 ? 0 : v < 80 ? 1 : 2;
            snprintf(num, sizeof(num), "%u.%llu", a, (unsigned long long)(v - 40 * a));
            first = false;
        } else {
            snprintf(num, sizeof(num), ".%llu", (unsigned long long)v);
        }
        if (put(out, num) < 0)
            return -1;
        v = 0;
    }
    return first ? -1 : 0;
}

/* RFC 2253 2.4: escape , + " \ < > ; everywhere, '#' and ' ' at the start,
 * ' ' at the end. */
static int rfc2253_value(struct mtls_buf *out, const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = (char)s[i];
        bool esc = strchr(",+\"\\<>;", c) != NULL || (i == 0 && (c == '#' || c == ' ')) ||
                   (i == n - 1 && c == ' ');
        if (c == '\0')
            return -1;
        if ((esc && mtls_buf_append(out, "\\", 1) < 0) || mtls_buf_append(out, &c, 1) < 0)
            return -1;
    }
    return 0;
}

int mtls_der_subject_rfc2253(const uint8_t *der, size_t len, struct mtls_buf *out)
{
    struct der_in d = {der, der + len}, tbs, name;
    const uint8_t *v, *rdns[64];
    size_t l, rdn_len[64];
    unsigned tag, n_rdn = 0;
    size_t start = out->len;

    /* Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version?,
     * serial, signature, issuer, validity, subject, ... } } */
    if (der_next(&d, &tag, &v, &l) < 0 || tag != 0x30)
        return -1;
    d = (struct der_in){v, v + l};
    if (der_next(&d, &tag, &v, &l) < 0 || tag != 0x30)
        return -1;
    tbs = (struct der_in){v, v + l};
    if (der_next(&tbs, &tag, &v, &l) < 0)
        return -1;
    if (tag == 0xa0 && der_next(&tbs, &tag, &v, &l) < 0) /* serial after version */
        return -1;
    for (int skip = 0; skip < 3; skip++) /* signature, issuer, validity */
        if (der_next(&tbs, &tag, &v, &l) < 0)
            return -1;
    if (der_next(&tbs, &tag, &v, &l) < 0 || tag != 0x30)
        return -1;
    name = (struct der_in){v, v + l};
    while (name.p < name.end) {
        if (der_next(&name, &tag, &v, &l) < 0 || tag != 0x31 || n_rdn == 64)
            return -1;
        rdns[n_rdn] = v;
        rdn_len[n_rdn++] = l;
    }
    /* RFC 2253: the last RDN of the sequence comes first. */
    for (unsigned r = n_rdn; r-- > 0;) {
        struct der_in set = {rdns[r], rdns[r] + rdn_len[r]};
        bool first_in_set = true;
        if (r != n_rdn - 1 && put(out, ",") < 0)
            return -1;
        while (set.p < set.end) {
            struct der_in atv;
            const uint8_t *oid, *val, *vstart;
            size_t oid_len, val_len;
            unsigned vtag;
            size_t k;

            if (der_next(&set, &tag, &v, &l) < 0 || tag != 0x30)
                return -1;
            atv = (struct der_in){v, v + l};
            if (der_next(&atv, &tag, &oid, &oid_len) < 0 || tag != 0x06)
                return -1;
            vstart = atv.p; /* the value's tag and length, for #hex */
            if (der_next(&atv, &vtag, &val, &val_len) < 0)
                return -1;
            if (!first_in_set && put(out, "+") < 0)
                return -1;
            first_in_set = false;
            for (k = 0; k < sizeof(attr_names) / sizeof(attr_names[0]); k++)
                if (attr_names[k].n == oid_len && memcmp(attr_names[k].oid, oid, oid_len) == 0)
                    break;
            /* String types print as text; anything else as #hex of the
             * whole value's DER (RFC 2253 2.4). */
            bool text = vtag == 0x0c || vtag == 0x13 || vtag == 0x16 || vtag == 0x14;
            if (k < sizeof(attr_names) / sizeof(attr_names[0])) {
                if (put(out, attr_names[k].name) < 0)
                    return -1;
            } else if (dotted_oid(out, oid, oid_len) < 0) {
                return -1;
            }
            if (put(out, "=") < 0)
                return -1;
            if (text && k < sizeof(attr_names) / sizeof(attr_names[0])) {
                if (rfc2253_value(out, val, val_len) < 0)
                    return -1;
            } else {
                char hx[3];
                if (put(out, "#") < 0)
                    return -1;
                for (const uint8_t *q = vstart; q < val + val_len; q++) {
                    snprintf(hx, sizeof(hx), "%02x", *q);
                    if (put(out, hx) < 0)
                        return -1;
                }
            }
        }
    }
    if (mtls_buf_append(out, "", 1) < 0) {
        out->len = start;
        return -1;
    }
    return 0;
}

/* ---- the identity lines ---------------------------------------------------- */

static int pem_url_encoded(struct mtls_buf *out, const uint8_t *der, size_t len)
{
    struct mtls_buf pem = {0};
    struct mtls_buf b64 = {0};
    int r = -1;

    if (mtls_base64_append(&b64, der, len) < 0 ||
        put(&pem, "-----BEGIN CERTIFICATE-----\n") < 0)
        goto out;
    for (size_t i = 0; i < b64.len; i += 64) {
        size_t k = b64.len - i < 64 ? b64.len - i : 64;
        if (mtls_buf_append(&pem, b64.data + i, k) < 0 || put(&pem, "\n") < 0)
            goto out;
    }
    if (put(&pem, "-----END CERTIFICATE-----\n") < 0)
        goto out;
    r = url_encode(out, (const char *)pem.data, pem.len);
out:
    mtls_buf_free(&pem);
    mtls_buf_free(&b64);
    return r;
}

static int xfcc_line(const struct mtls_proxy_header_cfg *cfg, const struct mtls_identity *id,
                     const struct mtls_der *leaf, struct mtls_buf *out)
{
    struct mtls_buf subj = {0};
    char hex[65];
    int r = 0;

    if (mtls_der_subject_rfc2253(leaf->der, leaf->len, &subj) < 0)
        return -1;
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", id->sha256[i]);
    r |= put(out, "X-Forwarded-Client-Cert: ");
    if (cfg->by_uri) {
        r |= put(out, "By=");
        r |= xfcc_value(out, cfg->by_uri, strlen(cfg->by_uri), false);
        r |= put(out, ";");
    }
    r |= put(out, "Hash=");
    r |= put(out, hex);
    r |= put(out, ";Cert=\"");
    r |= pem_url_encoded(out, leaf->der, leaf->len);
    r |= put(out, "\";Subject=");
    r |= xfcc_value(out, (const char *)subj.data, strlen((const char *)subj.data), true);
    for (unsigned i = 0; i < id->n_san && r == 0; i++) {
        const struct mtls_san *s = &id->san[i];
        if (s->type != MTLS_SAN_URI && s->type != MTLS_SAN_DNS)
            continue;
        r |= put(out, s->type == MTLS_SAN_URI ? ";URI=" : ";DNS=");
        r |= xfcc_value(out, s->value, strlen(s->value), false);
    }
    r |= put(out, "\r\n");
    mtls_buf_free(&subj);
    return r ? -1 : 0;
}

int mtls_identity_header_lines(const struct mtls_proxy_header_cfg *cfg,
                               const struct mtls_identity *id, const struct mtls_der *certs,
                               unsigned n_certs, struct mtls_buf *out)
{
    size_t start = out->len;
    int r = 0;

    if (!id || n_certs == 0 || !cfg->cert_headers)
        return 0;
    if (cfg->cert_headers & MTLS_CERT_HEADER_RFC9440) {
        /* RFC 9440 2.2/2.3: RFC 8941 byte sequences (":b64:"), the chain a
         * list of them without the leaf, omitted when empty. */
        r |= put(out, "Client-Cert: :");
        r |= mtls_base64_append(out, certs[0].der, certs[0].len);
        r |= put(out, ":\r\n");
        if (n_certs > 1) {
            r |= put(out, "Client-Cert-Chain: ");
            for (unsigned i = 1; i < n_certs; i++) {
                r |= put(out, i > 1 ? ", :" : ":");
                r |= mtls_base64_append(out, certs[i].der, certs[i].len);
                r |= put(out, ":");
            }
            r |= put(out, "\r\n");
        }
    }
    if (r == 0 && (cfg->cert_headers & MTLS_CERT_HEADER_XFCC))
        r = xfcc_line(cfg, id, &certs[0], out);
    if (r) {
        out->len = start;
        return -1;
    }
    return 0;
}

/* ---- request and response heads ------------------------------------------- */

/* Appends the values of every field named `name` as one list ("a, b"). */
static int merged(const struct mtls_http_header *h, unsigned n, const char *name,
                  struct mtls_buf *out, bool *any)
{
    for (unsigned i = 0; i < n; i++) {
        if (!name_is(h[i].name, h[i].name_len, name) || h[i].value_len == 0)
            continue;
        if ((*any && put(out, ", ") < 0) || add(out, h[i].value, h[i].value_len) < 0)
            return -1;
        *any = true;
    }
    return 0;
}

int mtls_proxy_request_head(const struct mtls_proxy_header_cfg *cfg, const char *method,
                            const char *target, size_t target_len, const struct mtls_http_header *h,
                            unsigned n, const struct mtls_buf *ident,
                            const struct mtls_forward_info *fi, struct mtls_buf *out)
{
    struct mtls_conn_tokens ct;
    bool any;
    int r = 0;

    if (mtls_conn_tokens(h, n, &ct) < 0 || mtls_header_value_bad(target, target_len))
        return 400;
    r |= put(out, method);
    r |= put(out, " ");
    r |= add(out, target, target_len);
    r |= put(out, " HTTP/1.1\r\n");
    for (unsigned i = 0; i < n && r == 0; i++) {
        if (mtls_hop_by_hop(h[i].name, h[i].name_len, &ct) ||
            mtls_strip_inbound(cfg, h[i].name, h[i].name_len) ||
            name_is(h[i].name, h[i].name_len, "x-forwarded-for") ||
            name_is(h[i].name, h[i].name_len, "via"))
            continue;
        if (mtls_header_value_bad(h[i].value, h[i].value_len) ||
            mtls_header_value_bad(h[i].name, h[i].name_len))
            return 400;
        r |= add(out, h[i].name, h[i].name_len);
        r |= put(out, ": ");
        r |= add(out, h[i].value, h[i].value_len);
        r |= put(out, "\r\n");
    }
    if (r)
        return -1;
    for (unsigned i = 0; i < n; i++)
        if ((name_is(h[i].name, h[i].name_len, "x-forwarded-for") ||
             name_is(h[i].name, h[i].name_len, "via")) &&
            mtls_header_value_bad(h[i].value, h[i].value_len))
            return 400;
    any = false;
    r |= put(out, "X-Forwarded-For: ");
    r |= merged(h, n, "x-forwarded-for", out, &any);
    if (fi->client_addr) {
        r |= put(out, any ? ", " : "");
        r |= put(out, fi->client_addr);
    }
    r |= put(out, "\r\nX-Forwarded-Proto: https\r\nVia: ");
    any = false;
    r |= merged(h, n, "via", out, &any);
    r |= put(out, any ? ", 1.1 mtlsd\r\n" : "1.1 mtlsd\r\n");
    if (ident && ident->len)
        r |= add(out, ident->data, ident->len);
    if (fi->chunked)
        r |= put(out, "Transfer-Encoding: chunked\r\n");
    else if (fi->content_length || fi->has_body)
        r |= put_u64(out, "Content-Length: ", (unsigned long long)fi->content_length, "\r\n");
    r |= put(out, "\r\n");
    return r ? -1 : 0;
}

int mtls_proxy_response_head(int status, const char *reason, size_t reason_len,
                             const struct mtls_http_header *h, unsigned n,
                             const struct mtls_response_framing *fr, struct mtls_buf *out)
{
    struct mtls_conn_tokens ct;
    char line[3];
    bool any = false;
    int r = 0;

    if (status < 100 || status > 999 || mtls_conn_tokens(h, n, &ct) < 0 ||
        mtls_header_value_bad(reason, reason_len))
        return 502;
    line[0] = (char)('0' + status / 100); /* 100..999 */
    line[1] = (char)('0' + status / 10 % 10);
    line[2] = (char)('0' + status % 10);
    r |= put(out, "HTTP/1.1 ");
    r |= add(out, line, 3);
    r |= put(out, " ");
    r |= add(out, reason, reason_len);
    r |= put(out, "\r\n");
    for (unsigned i = 0; i < n && r == 0; i++) {
        if (mtls_hop_by_hop(h[i].name, h[i].name_len, &ct) ||
            name_is(h[i].name, h[i].name_len, "via"))
            continue;
        if (mtls_header_value_bad(h[i].value, h[i].value_len))
            return 502;
        r |= add(out, h[i].name, h[i].name_len);
        r |= put(out, ": ");
        r |= add(out, h[i].value, h[i].value_len);
        r |= put(out, "\r\n");
    }
    r |= put(out, "Via: ");
    r |= merged(h, n, "via", out, &any);
    r |= put(out, any ? ", 1.1 mtlsd\r\n" : "1.1 mtlsd\r\n");
    if (fr->no_body) {
        if (fr->length_known) /* HEAD, 304: the length the body would have */
            r |= put_u64(out, "Content-Length: ", (unsigned long long)fr->content_length,
                         "\r\n");
    } else if (!fr->until_close) {
        if (fr->chunked) {
            r |= put(out, "Transfer-Encoding: chunked\r\n");
        } else {
            r |= put_u64(out, "Content-Length: ", (unsigned long long)fr->content_length,
                         "\r\n");
        }
    }
    if (fr->close)
        r |= put(out, "Connection: close\r\n");
    r |= put(out, "\r\n");
    return r ? -1 : 0;
}
