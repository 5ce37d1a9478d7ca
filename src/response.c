/* response.c: HTTP/1.1 response framing. */
#include "mtlsd/response.h"

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
int mtls_response_frame(struct mtls_buf *out, int status, const char *ctype, const void *body,
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

int mtls_response_error(int status, struct mtls_buf *out)
{
    char body[64];
    int n = snprintf(body, sizeof(body), "%s\n", reason(status));

    return mtls_response_frame(out, status, "text/plain", body, (size_t)n, false, true, false, NULL);
}
