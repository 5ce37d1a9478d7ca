/* routes.c: the built-in routes, one request handler (handler.h). They
 * only ever see requests the exchange has authorized. */
#include "mtlsd/handler.h"
#include "mtlsd/metrics.h"
#include "mtlsd/response.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlongs,
 * no surrogates, nothing past U+10FFFF), 0 if there is none. */
static size_t utf8_len(const unsigned char *s)
{
    size_t n;
    unsigned lo = 0x80, hi = 0xbf;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4;
    else
        return 0;
    if (s[0] == 0xe0)
        lo = 0xa0; /* overlong */
    else if (s[0] == 0xed)
        hi = 0x9f; /* surrogates */
    else if (s[0] == 0xf0)
        lo = 0x90; /* overlong */
    else if (s[0] == 0xf4)
        hi = 0x8f; /* past U+10FFFF */
    for (size_t i = 1; i < n; i++, lo = 0x80, hi = 0xbf)
        if (s[i] < lo || s[i] > hi) /* a NUL ends the string here too */
            return 0;
    return n;
}

/* Certificate strings are bytes as the CA wrote them: JSON must be UTF-8,
 * so each byte that is not part of a well-formed sequence becomes U+FFFD. */
static void json_str(struct mtls_buf *b, const char *s)
{
    char esc[8];

    mtls_buf_append(b, "\"", 1);
    while (*s) {
        unsigned char c = (unsigned char)*s;
        size_t n = utf8_len((const unsigned char *)s);
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            mtls_buf_append(b, esc, 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            mtls_buf_append(b, esc, 6);
        } else if (n == 0) {
            mtls_buf_append(b, "\\ufffd", 6);
            n = 1;
        } else {
            mtls_buf_append(b, s, n);
        }
        s += n;
    }
    mtls_buf_append(b, "\"", 1);
}

static void json_key(struct mtls_buf *b, const char *key, bool first)
{
    if (!first)
        mtls_buf_append(b, ",", 1);
    json_str(b, key);
    mtls_buf_append(b, ":", 1);
}

static void json_time(struct mtls_buf *b, time_t t)
{
    char text[32];
    struct tm tm;

    if (t == (time_t)-1 || !gmtime_r(&t, &tm)) {
        mtls_buf_append(b, "null", 4);
        return;
    }
    strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_str(b, text);
}

static void json_sans(struct mtls_buf *b, const struct mtls_identity *id,
                      enum mtls_san_type type)
{
    bool first = true;

    mtls_buf_append(b, "[", 1);
    for (unsigned i = 0; i < id->n_san; i++) {
        if (id->san[i].type != type)
            continue;
        if (!first)
            mtls_buf_append(b, ",", 1);
        json_str(b, id->san[i].value);
        first = false;
    }
    mtls_buf_append(b, "]", 1);
}

static int whoami(struct mtls_buf *b, const struct mtls_peer *peer)
{
    const struct mtls_identity *id = peer->identity;
    char hex[65], num[32];

    mtls_buf_append(b, "{", 1);
    json_key(b, "subject", true);
    json_str(b, id->subject);
    json_key(b, "issuer", false);
    json_str(b, id->issuer);
    json_key(b, "serial", false);
    json_str(b, id->serial_hex);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", id->sha256[i]);
    json_key(b, "sha256", false);
    json_str(b, hex);
    json_key(b, "dns", false);
    json_sans(b, id, MTLS_SAN_DNS);
    json_key(b, "uri", false);
    json_sans(b, id, MTLS_SAN_URI);
    json_key(b, "email", false);
    json_sans(b, id, MTLS_SAN_EMAIL);
    json_key(b, "ip", false);
    json_sans(b, id, MTLS_SAN_IP);
    json_key(b, "not_before", false);
    json_time(b, id->not_before);
    json_key(b, "not_after", false);
    json_time(b, id->not_after);
    json_key(b, "tls_version", false);
    json_str(b, peer->tls_version ? peer->tls_version : "");
    json_key(b, "cipher", false);
    json_str(b, peer->cipher ? peer->cipher : "");
    json_key(b, "worker", false);
    snprintf(num, sizeof(num), "%u", peer->worker);
    mtls_buf_append(b, num, strlen(num));
    json_key(b, "resumed", false);
    mtls_buf_append(b, peer->resumed ? "true" : "false", peer->resumed ? 4 : 5);
    json_key(b, "chain_cached", false);
    mtls_buf_append(b, peer->chain_cached ? "true" : "false", peer->chain_cached ? 4 : 5);
    return mtls_buf_append(b, "}\n", 2);
}

static bool path_is(const struct mtls_http_request *req, const char *path)
{
    size_t n = strlen(path);
    return req->path_len == n && memcmp(req->target, path, n) == 0;
}

/* The built-in routes answer at once, when the whole request has been read
 * (no route takes a body: on_body is NULL and it is dropped). */
static int route(const struct mtls_http_request *req, const struct mtls_peer *peer, bool close,
                 struct mtls_buf *out)
{
    static const char hello[] = "Hello World!";
    bool head = req->method == HTTP_HEAD;
    bool known = path_is(req, "/") || path_is(req, "/whoami") || path_is(req, "/healthz") ||
                 path_is(req, "/metrics");
    bool ka10 = !close && req->version_major == 1 && req->version_minor == 0;
    struct mtls_buf body = {0};
    int status;

    if (!known) {
        static const char msg[] = "not found\n";
        return mtls_response_frame(out, 404, "text/plain", msg, sizeof(msg) - 1, head, close,
                                   ka10, NULL);
    }
    if (req->method != HTTP_GET && !head) {
        static const char msg[] = "method not allowed\n";
        return mtls_response_frame(out, 405, "text/plain", msg, sizeof(msg) - 1, false, close,
                                   ka10, "Allow: GET, HEAD\r\n");
    }
    if (path_is(req, "/"))
        return mtls_response_frame(out, 200, "text/plain", hello, sizeof(hello) - 1, head,
                                   close, ka10, NULL);
    if (path_is(req, "/healthz"))
        return mtls_response_frame(out, 200, "text/plain", "ok\n", 3, head, close, ka10, NULL);
    if (path_is(req, "/whoami")) {
        if (!peer->identity) /* a public /whoami without a certificate */
            return mtls_response_frame(out, 403, "text/plain", "forbidden\n", 10, head, close,
                                       ka10, NULL);
        if (whoami(&body, peer) < 0)
            status = -1;
        else
            status = mtls_response_frame(out, 200, "application/json", body.data, body.len,
                                         head, close, ka10, NULL);
    } else {
        if (mtls_metrics_render(&body) < 0)
            status = -1;
        else
            status = mtls_response_frame(out, 200, "text/plain; version=0.0.4", body.data,
                                         body.len, head, close, ka10, NULL);
    }
    mtls_buf_free(&body);
    return status;
}

static enum mtls_handler_result on_request(struct mtls_exchange *x,
                                           const struct mtls_http_request *req)
{
    int status;

    x->scratch->len = 0;
    status = route(req, x->peer, x->close, x->scratch);
    if (status < 0 || mtls_exchange_write(x, x->scratch->data, x->scratch->len) < 0)
        return MTLS_HANDLER_FAIL;
    mtls_exchange_end(x, status);
    return MTLS_HANDLER_DONE;
}

const struct mtls_handler mtls_routes_handler = {
    .name = "routes",
    .on_request = on_request,
};
