/* routes.c: the built-in routes and HTTP/1.1 response framing. */
#include "mtlsd/routes.h"
#include "mtlsd/authz.h"
#include "mtlsd/metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

/* The Date header changes once a second: format it once per thread then. */
static const char *http_date(void)
{
    static __thread char text[40];
    static __thread time_t cached;
    time_t now = time(NULL);
    struct tm tm;

    if (now != cached) {
        gmtime_r(&now, &tm);
        strftime(text, sizeof(text), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        cached = now;
    }
    return text;
}

static char *put(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

/* Framing is on every request's path: plain copies, not snprintf (which
 * was ~5% of a keep-alive request's server CPU). */
static int respond(struct mtls_buf *out, int status, const char *ctype, const void *body,
                   size_t body_len, bool head, bool close, bool http10_keepalive,
                   const char *extra)
{
    char num[24], *p, *start;
    size_t i = sizeof(num);
    size_t len = body_len;

    if (mtls_buf_reserve(out, 256 + strlen(ctype) + (extra ? strlen(extra) : 0) +
                                  (head ? 0 : body_len)) < 0)
        return -1;
    start = p = (char *)out->data + out->len;
    do {
        num[--i] = (char)('0' + len % 10);
        len /= 10;
    } while (len);
    p = put(p, "HTTP/1.1 ");
    *p++ = (char)('0' + status / 100);
    *p++ = (char)('0' + status / 10 % 10);
    *p++ = (char)('0' + status % 10);
    *p++ = ' ';
    p = put(p, reason(status));
    p = put(p, "\r\nServer: mtlsd\r\nDate: ");
    p = put(p, http_date());
    p = put(p, "\r\nContent-Type: ");
    p = put(p, ctype);
    p = put(p, "\r\nContent-Length: ");
    memcpy(p, num + i, sizeof(num) - i);
    p += sizeof(num) - i;
    p = put(p, "\r\n");
    if (close)
        p = put(p, "Connection: close\r\n");
    else if (http10_keepalive)
        p = put(p, "Connection: keep-alive\r\n");
    if (extra)
        p = put(p, extra);
    p = put(p, "\r\n");
    if (!head && body_len) {
        memcpy(p, body, body_len);
        p += body_len;
    }
    out->len += (size_t)(p - start);
    return status;
}

static void json_str(struct mtls_buf *b, const char *s)
{
    char esc[8];

    mtls_buf_append(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            mtls_buf_append(b, esc, 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            mtls_buf_append(b, esc, 6);
        } else {
            mtls_buf_append(b, s, 1);
        }
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

int mtls_route(const struct mtls_http_request *req, const struct mtls_peer *peer, bool close,
               struct mtls_buf *out)
{
    static const char hello[] = "Hello World!";
    bool head = req->method == HTTP_HEAD;
    bool known = path_is(req, "/") || path_is(req, "/whoami") || path_is(req, "/healthz") ||
                 path_is(req, "/metrics");
    bool ka10 = !close && req->version_major == 1 && req->version_minor == 0;
    struct mtls_buf body = {0};
    int status;

    /* Authorization before anything else: without it a client learns
     * nothing, not even which paths exist. */
    if (!mtls_authz_public(req->target, req->path_len) &&
        !mtls_authz_allowed(peer->identity, time(NULL))) {
        static const char msg[] = "forbidden: no verified and authorized client certificate\n";
        return respond(out, 403, "text/plain", msg, sizeof(msg) - 1, head, close, ka10, NULL);
    }
    if (!known) {
        static const char msg[] = "not found\n";
        return respond(out, 404, "text/plain", msg, sizeof(msg) - 1, head, close, ka10, NULL);
    }
    if (req->method != HTTP_GET && !head) {
        static const char msg[] = "method not allowed\n";
        return respond(out, 405, "text/plain", msg, sizeof(msg) - 1, false, close, ka10,
                       "Allow: GET, HEAD\r\n");
    }
    if (path_is(req, "/"))
        return respond(out, 200, "text/plain", hello, sizeof(hello) - 1, head, close, ka10,
                       NULL);
    if (path_is(req, "/healthz"))
        return respond(out, 200, "text/plain", "ok\n", 3, head, close, ka10, NULL);
    if (path_is(req, "/whoami")) {
        if (!peer->identity) /* a public /whoami without a certificate */
            return respond(out, 403, "text/plain", "forbidden\n", 10, head, close, ka10,
                           NULL);
        if (whoami(&body, peer) < 0)
            status = -1;
        else
            status = respond(out, 200, "application/json", body.data, body.len, head, close,
                             ka10, NULL);
    } else {
        if (mtls_metrics_render(&body) < 0)
            status = -1;
        else
            status = respond(out, 200, "text/plain; version=0.0.4", body.data, body.len,
                             head, close, ka10, NULL);
    }
    mtls_buf_free(&body);
    return status;
}

int mtls_route_plain_http(struct mtls_buf *out)
{
    static const char body[] = "This port speaks HTTPS with client certificates (mutual TLS): "
                               "use https:// and present a client certificate.\n";

    return respond(out, 400, "text/plain", body, sizeof(body) - 1, false, true, false, NULL);
}

int mtls_route_error(int status, struct mtls_buf *out)
{
    char body[64];
    int n = snprintf(body, sizeof(body), "%s\n", reason(status));

    return respond(out, status, "text/plain", body, (size_t)n, false, true, false, NULL);
}
