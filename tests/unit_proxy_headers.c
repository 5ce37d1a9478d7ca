/* The proxy's header rules: hop-by-hop fields (RFC 9110 7.6.1) dropped in
 * both directions, inbound identity headers stripped whatever their case,
 * X-Forwarded-For / Via merged, CR/LF/NUL refused, RFC 9440 and XFCC
 * values, RFC 2253 subjects, and the presented chain carried through the
 * identity's serialized form (what tickets and session IDs hold). */
#include "check.h"
#include "mtlsd/proxy_headers.h"
#include "mtlsd/verify.h"

#include <stdlib.h>
#include <string.h>

#define H(n, v) {n, v, sizeof(n) - 1, sizeof(v) - 1}

static const char *text(struct mtls_buf *b)
{
    mtls_buf_append(b, "", 1);
    b->len--;
    return (const char *)b->data;
}

static void test_base64(void)
{
    struct mtls_buf b = {0};
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};

    for (int i = 0; i < 7; i++) {
        b.len = 0;
        CHECK(mtls_base64_append(&b, (const uint8_t *)in[i], strlen(in[i])) == 0);
        CHECK(strcmp(text(&b), want[i]) == 0);
    }
    mtls_buf_free(&b);
}

static void test_hop_by_hop(void)
{
    struct mtls_http_header h[] = {H("Connection", "keep-alive, X-Secret ,Foo"),
                              H("connection", "close")};
    struct mtls_http_header bad[] = {H("Connection", "a b")};
    struct mtls_conn_tokens ct;

    CHECK(mtls_conn_tokens(h, 2, &ct) == 0);
    CHECK(ct.close && ct.n == 2);
    CHECK(mtls_hop_by_hop("x-secret", 8, &ct));
    CHECK(mtls_hop_by_hop("FOO", 3, &ct));
    CHECK(!mtls_hop_by_hop("X-Secrets", 9, &ct));
    const char *always[] = {"Connection", "KEEP-ALIVE", "te", "Trailer", "Upgrade",
                            "Proxy-Authorization", "proxy-connection", "Transfer-Encoding",
                            "content-length"};
    for (size_t i = 0; i < sizeof(always) / sizeof(always[0]); i++)
        CHECK(mtls_hop_by_hop(always[i], strlen(always[i]), NULL));
    CHECK(!mtls_hop_by_hop("Host", 4, NULL));
    CHECK(!mtls_hop_by_hop("Trailers", 8, NULL));
    CHECK(mtls_conn_tokens(bad, 1, &ct) < 0);
}

static void test_strip_and_forward(void)
{
    const char *strip[] = {"X-User"};
    struct mtls_proxy_header_cfg cfg = {MTLS_CERT_HEADER_RFC9440, strip, 1, NULL};
    struct mtls_http_header h[] = {
        H("Host", "app.example"),
        H("client-cert", ":Zm9v:"),
        H("CLIENT-CERT-CHAIN", ":Zm9v:"),
        H("X-Forwarded-Client-Cert", "Hash=00"),
        H("x-user", "admin"),
        H("X-Forwarded-For", "10.0.0.1"),
        H("X-Forwarded-Proto", "http"),
        H("Via", "1.0 edge"),
        H("Connection", "X-Hop"),
        H("X-Hop", "secret"),
        H("TE", "trailers"),
        H("Content-Length", "5"),
        H("Accept", "*/*"),
    };
    struct mtls_buf ident = {0}, out = {0};
    struct mtls_forward_info fi = {"192.0.2.7", false, 5, true};

    mtls_buf_append(&ident, "Client-Cert: :AAAA:\r\n", 21);
    CHECK(mtls_proxy_request_head(&cfg, "POST", "/a?b=c", 6, h, sizeof(h) / sizeof(h[0]),
                                  &ident, &fi, &out) == 0);
    CHECK(strcmp(text(&out), "POST /a?b=c HTTP/1.1\r\n"
                             "Host: app.example\r\n"
                             "Accept: */*\r\n"
                             "X-Forwarded-For: 10.0.0.1, 192.0.2.7\r\n"
                             "X-Forwarded-Proto: https\r\n"
                             "Via: 1.0 edge, 1.1 mtlsd\r\n"
                             "Client-Cert: :AAAA:\r\n"
                             "Content-Length: 5\r\n"
                             "\r\n") == 0);

    /* Chunked re-framing, no inbound XFF. */
    struct mtls_http_header h2[] = {H("Host", "a"), H("Transfer-Encoding", "chunked")};
    struct mtls_forward_info fc = {"::1", true, 0, true};
    out.len = 0;
    CHECK(mtls_proxy_request_head(&cfg, "PUT", "/", 1, h2, 2, NULL, &fc, &out) == 0);
    CHECK(strcmp(text(&out), "PUT / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: ::1\r\n"
                             "X-Forwarded-Proto: https\r\nVia: 1.1 mtlsd\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n") == 0);

    /* A value with a NUL, CR or LF is refused, also in XFF / Via. */
    struct mtls_http_header nul[] = {{"X-A", "a\0b", 3, 3}};
    struct mtls_http_header lf[] = {H("Via", "a\nb")};
    out.len = 0;
    CHECK(mtls_proxy_request_head(&cfg, "GET", "/", 1, nul, 1, NULL, &fi, &out) == 400);
    out.len = 0;
    CHECK(mtls_proxy_request_head(&cfg, "GET", "/", 1, lf, 1, NULL, &fi, &out) == 400);
    mtls_buf_free(&ident);
    mtls_buf_free(&out);
}

static void test_response_head(void)
{
    struct mtls_http_header h[] = {H("Content-Type", "text/plain"), H("Connection", "X-Up"),
                              H("X-Up", "1"),                 H("Keep-Alive", "timeout=5"),
                              H("Content-Length", "12"),      H("Set-Cookie", "a=b")};
    struct mtls_response_framing fr = {.content_length = 12};
    struct mtls_buf out = {0};

    CHECK(mtls_proxy_response_head(201, "Created", 7, h, 6, &fr, &out) == 0);
    CHECK(strcmp(text(&out), "HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\n"
                             "Set-Cookie: a=b\r\nVia: 1.1 mtlsd\r\nContent-Length: 12\r\n\r\n") ==
          0);
    fr.chunked = true;
    fr.close = true;
    out.len = 0;
    CHECK(mtls_proxy_response_head(200, "OK", 2, h, 1, &fr, &out) == 0);
    CHECK(strstr(text(&out), "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"));
    struct mtls_http_header bad[] = {{"X-A", "a\rb", 3, 3}};
    out.len = 0;
    CHECK(mtls_proxy_response_head(200, "OK", 2, bad, 1, &fr, &out) == 502);
    mtls_buf_free(&out);
}

/* A tiny DER writer for hand-built certificate skeletons. */
struct tlv {
    uint8_t b[512];
    size_t n;
};

static void raw(struct tlv *t, const void *p, size_t n)
{
    memcpy(t->b + t->n, p, n);
    t->n += n;
}

/* Wraps t[from..) in a TLV with `tag` (lengths < 128). */
static void wrap(struct tlv *t, size_t from, uint8_t tag)
{
    size_t n = t->n - from;
    memmove(t->b + from + 2, t->b + from, n);
    t->b[from] = tag;
    t->b[from + 1] = (uint8_t)n;
    t->n += 2;
}

static void atv(struct tlv *t, const uint8_t *oid, size_t oid_len, uint8_t vtag, const char *v)
{
    size_t seq = t->n, o;
    o = t->n;
    raw(t, oid, oid_len);
    wrap(t, o, 0x06);
    o = t->n;
    raw(t, v, strlen(v));
    wrap(t, o, vtag);
    wrap(t, seq, 0x30);
}

/* Certificate { TBS { [0] v3, serial, sigalg, issuer, validity, subject } }:
 * the walker reads no further than the subject. */
static void skeleton(struct tlv *t, void (*subject)(struct tlv *))
{
    static const uint8_t pre[] = {0xa0, 0x03, 0x02, 0x01, 0x02, 0x02, 0x01, 0x01,
                                  0x30, 0x00, 0x30, 0x00, 0x30, 0x00};
    size_t name;
    t->n = 0;
    raw(t, pre, sizeof(pre));
    name = t->n;
    subject(t);
    wrap(t, name, 0x30);
    wrap(t, 0, 0x30);
    wrap(t, 0, 0x30);
}

static const uint8_t OID_C[] = {0x55, 0x04, 0x06}, OID_O[] = {0x55, 0x04, 0x0a},
                     OID_OU[] = {0x55, 0x04, 0x0b}, OID_CN[] = {0x55, 0x04, 0x03},
                     OID_EMAIL[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01};

static void subject_tricky(struct tlv *t)
{
    size_t set = t->n;
    atv(t, OID_C, 3, 0x13, "US");
    wrap(t, set, 0x31);
    set = t->n;
    atv(t, OID_O, 3, 0x0c, "Ex, Inc. ");
    wrap(t, set, 0x31);
    set = t->n; /* a multi-valued RDN */
    atv(t, OID_OU, 3, 0x0c, "pay+men");
    atv(t, OID_CN, 3, 0x0c, "#svc \"a\"");
    wrap(t, set, 0x31);
    set = t->n;
    atv(t, OID_EMAIL, sizeof(OID_EMAIL), 0x16, "a@b.cd");
    wrap(t, set, 0x31);
}

static void subject_cn(struct tlv *t)
{
    size_t set = t->n;
    atv(t, OID_CN, 3, 0x0c, "svc");
    wrap(t, set, 0x31);
}

static void test_rfc2253(void)
{
    struct tlv der;
    struct mtls_buf out = {0};

    skeleton(&der, subject_tricky);
    CHECK(mtls_der_subject_rfc2253(der.b, der.n, &out) == 0);
    /* Reversed order, multi-valued RDN with '+', escapes, an attribute
     * without a short name as dotted OID + #hex of the whole value. */
    CHECK(out.data && strcmp((const char *)out.data,
                             "1.2.840.113549.1.9.1=#16066140622e6364,"
                             "OU=pay\\+men+CN=\\#svc \\\"a\\\",O=Ex\\, Inc.\\ ,C=US") == 0);
    if (out.data)
        printf("subject: %s\n", (const char *)out.data);
    /* Truncated at every length: refused, never read past the end. */
    for (size_t k = 0; k < der.n; k++) {
        uint8_t *cut = malloc(k ? k : 1);
        memcpy(cut, der.b, k);
        out.len = 0;
        CHECK(mtls_der_subject_rfc2253(cut, k, &out) < 0);
        free(cut);
    }
    mtls_buf_free(&out);
}

static struct mtls_identity *fake_identity(void)
{
    static const char *uri = "spiffe://ex.org/ns/a", *dns = "svc.ex.org";
    struct mtls_identity *id = calloc(1, sizeof(*id) + 2 * sizeof(struct mtls_san));
    struct mtls_san *san = (struct mtls_san *)(id + 1);

    id->subject = "/CN=svc";
    id->issuer = "/CN=ca";
    id->serial_hex = "01";
    id->cn = "svc";
    id->ou = "";
    for (int i = 0; i < 32; i++)
        id->sha256[i] = (uint8_t)i;
    id->not_before = 1;
    id->not_after = 2000000000;
    id->valid_until = 2000000000;
    id->refs = 1;
    san[0].type = MTLS_SAN_URI;
    san[0].value = uri;
    san[1].type = MTLS_SAN_DNS;
    san[1].value = dns;
    id->n_san = 2;
    id->san = san;
    return id;
}

static void test_identity_lines(void)
{
    static const uint8_t inter1[] = {1, 2, 3}, inter2[] = {4, 5};
    struct tlv leaf;
    struct mtls_der certs[3];
    struct mtls_proxy_header_cfg cfg = {MTLS_CERT_HEADER_RFC9440 | MTLS_CERT_HEADER_XFCC, NULL,
                                        0, "spiffe://ex.org/mtlsd"};
    struct mtls_identity *id = fake_identity(), *with, *back;
    struct mtls_buf out = {0}, raw = {0};
    struct mtls_der got[MTLS_IDENTITY_MAX_CERTS];
    const char *s;
    uint8_t rec[4096];
    long len;

    skeleton(&leaf, subject_cn);
    certs[0] = (struct mtls_der){leaf.b, leaf.n};
    certs[1] = (struct mtls_der){inter1, 3};
    certs[2] = (struct mtls_der){inter2, 2};
    CHECK(mtls_identity_header_lines(&cfg, id, certs, 3, &out) == 0);
    s = text(&out);
    CHECK(strstr(s, "Client-Cert: :MCAwHqADAgECAgEBMAAwADAAMA4xDDAKBgNVBAMMA3N2Yw==:\r\n") == s);
    CHECK(strstr(s, "Client-Cert-Chain: :AQID:, :BAU=:\r\n") != NULL);
    CHECK(strstr(s, "X-Forwarded-Client-Cert: By=spiffe://ex.org/mtlsd;Hash=000102") != NULL);
    CHECK(strstr(s, ";Cert=\"-----BEGIN%20CERTIFICATE-----%0AMCAwHqADAgECAgEBMAAwADAAMA4xDDAKBgNVBAMMA3N2Yw"
                    "%3D%3D%0A-----END%20CERTIFICATE-----%0A\";Subject=\"CN=svc\";"
                    "URI=spiffe://ex.org/ns/a;DNS=svc.ex.org\r\n") != NULL);
    if (!strstr(s, "URI=spiffe"))
        fprintf(stderr, "lines: %s\n", s);
    /* Only the leaf: no chain header. */
    out.len = 0;
    cfg.cert_headers = MTLS_CERT_HEADER_RFC9440;
    CHECK(mtls_identity_header_lines(&cfg, id, certs, 1, &out) == 0);
    CHECK(strstr(text(&out), "Client-Cert-Chain") == NULL);
    /* none: nothing */
    out.len = 0;
    cfg.cert_headers = 0;
    CHECK(mtls_identity_header_lines(&cfg, id, certs, 3, &out) == 0 && out.len == 0);

    /* The chain travels with the identity, through its serialized form. */
    with = mtls_identity_with_certs(id, certs, 3);
    CHECK(with != id && with->certs_z && with->certs_z_len > 0);
    len = mtls_identity_serialize(with, rec, sizeof(rec));
    CHECK(len > 0);
    back = mtls_identity_deserialize(rec, (size_t)len);
    CHECK(back && back->certs_z_len == with->certs_z_len);
    CHECK(back && mtls_identity_certs(back, &raw, got, MTLS_IDENTITY_MAX_CERTS) == 3);
    CHECK(got[0].len == leaf.n && memcmp(got[0].der, leaf.b, leaf.n) == 0);
    CHECK(got[2].len == 2 && memcmp(got[2].der, inter2, 2) == 0);
    /* Every truncation of the version-2 record is refused. */
    for (long k = 0; k < len; k++) {
        struct mtls_identity *t = mtls_identity_deserialize(rec, (size_t)k);
        CHECK(t == NULL);
        mtls_identity_free(t);
    }
    /* A corrupted compressed blob is refused when inflated, not trusted. */
    if (back) {
        ((uint8_t *)back->certs_z)[0] ^= 0xff;
        raw.len = 0;
        int r = mtls_identity_certs(back, &raw, got, MTLS_IDENTITY_MAX_CERTS);
        CHECK(r < 0 || r == 3); /* deflate may still decode; never more */
    }
    mtls_identity_free(back);
    mtls_identity_free(with);
    mtls_buf_free(&raw);
    mtls_buf_free(&out);
}

int main(void)
{
    test_base64();
    test_hop_by_hop();
    test_strip_and_forward();
    test_response_head();
    test_rfc2253();
    test_identity_lines();
    return check_report();
}
