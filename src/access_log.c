/* access_log.c: a line per request; values that come from the client are
 * escaped so that a request cannot forge log lines. */
#include "mtlsd/access_log.h"
#include "mtlsd/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_fd = -1;

int mtls_access_log_open(const char *path, char *err, size_t errlen)
{
    if (!path)
        return 0;
    if (strcmp(path, "-") == 0) {
        log_fd = STDOUT_FILENO;
        return 0;
    }
    log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (log_fd < 0) {
        snprintf(err, errlen, "--access-log %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

bool mtls_access_log_enabled(void)
{
    return log_fd >= 0;
}

void mtls_access_log_close(void)
{
    if (log_fd > STDERR_FILENO)
        close(log_fd);
    log_fd = -1;
}

static void put_escaped(struct mtls_buf *b, const char *s, size_t n)
{
    char esc[5];

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e || c == '"' || c == '\\') {
            snprintf(esc, sizeof(esc), "\\x%02x", c);
            mtls_buf_append(b, esc, 4);
        } else {
            mtls_buf_append(b, &s[i], 1);
        }
    }
}

void mtls_access_log_format(struct mtls_buf *b, const struct mtls_access *a)
{
    char head[160], tail[96], stamp[MTLS_TIMESTAMP_LEN];
    const char *uri = "-";
    int n;

    mtls_timestamp(stamp);
    n = snprintf(head, sizeof(head), "%s %s \"", stamp, a->client ? a->client : "-");
    mtls_buf_append(b, head, (size_t)n);
    if (a->identity) {
        put_escaped(b, a->identity->subject, strlen(a->identity->subject));
        for (unsigned i = 0; i < a->identity->n_san; i++)
            if (a->identity->san[i].type == MTLS_SAN_URI) {
                uri = a->identity->san[i].value;
                break;
            }
    } else {
        mtls_buf_append(b, "-", 1);
    }
    mtls_buf_append(b, "\" \"", 3);
    put_escaped(b, uri, strlen(uri));
    n = snprintf(head, sizeof(head), "\" %s %s %s \"", a->tls_version ? a->tls_version : "-",
                 a->resumed ? "resumed" : "full", a->method ? a->method : "-");
    mtls_buf_append(b, head, (size_t)n);
    put_escaped(b, a->target, a->target_len);
    if (a->upstream_status)
        n = snprintf(tail, sizeof(tail), "\" %d %zu %luus upstream=%d %luus\n", a->status,
                     a->bytes, a->usec, a->upstream_status, a->upstream_usec);
    else
        n = snprintf(tail, sizeof(tail), "\" %d %zu %luus\n", a->status, a->bytes, a->usec);
    mtls_buf_append(b, tail, (size_t)n);
}

void mtls_access_log_flush(struct mtls_buf *b)
{
    size_t off = 0;

    while (log_fd >= 0 && off < b->len) {
        ssize_t w = write(log_fd, b->data + off, b->len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break; /* a full disk must not stop the server */
        off += (size_t)w;
    }
    b->len = 0;
}
