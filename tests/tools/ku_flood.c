/* ku_flood: a wolfSSL TLS 1.3 mTLS client that floods the server with
 * KeyUpdate messages and never reads (review: output produced without any
 * request must be bounded; tests/integration/abuse.sh).
 *
 *   ku_flood HOST PORT CERT KEY CACERT COUNT SECONDS
 *
 * After the handshake it calls wolfSSL_update_keys() COUNT times. Each
 * KeyUpdate it sends has update_requested set, so the server must answer
 * with a KeyUpdate of its own; the client never reads those answers, and
 * its receive buffer is made small (SO_RCVBUF 4096, set before connect) so
 * they back up on the server. A send that blocks for SEND_WAIT_S seconds
 * (the server stopped reading: back-pressure) or fails (the server closed)
 * ends the flood early. Then the client sleeps SECONDS, holding the
 * connection open, and exits.
 *
 * Prints one line on stdout: "sent N of COUNT KeyUpdates, " followed by
 * "all", "stopped: blocked (...)" or "stopped: error E TEXT".
 * Exits 0 once the handshake succeeded (however many KeyUpdates were sent),
 * 1 if the handshake failed, 2 on a usage or local set-up error. */
#include "mtlsd/wolfssl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define SEND_WAIT_S 2

static const char *err_text(int err)
{
    static char text[WOLFSSL_MAX_ERROR_SZ];

    wolfSSL_ERR_error_string_n((unsigned long)err, text, sizeof(text));
    return text;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_seconds(long seconds)
{
    struct timespec ts = {(time_t)seconds, 0};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int main(int argc, char **argv)
{
    WOLFSSL_CTX *ctx = NULL;
    WOLFSSL *ssl = NULL;
    struct sockaddr_in sa;
    struct timeval tv = {10, 0}, send_tv = {SEND_WAIT_S, 0};
    long port, count, seconds, sent = 0;
    int fd = -1, rc = 2, ret, rcvbuf = 4096;

    if (argc != 8 || parse_long(argv[2], 1, 65535, &port) < 0 ||
        parse_long(argv[6], 0, 100000000L, &count) < 0 ||
        parse_long(argv[7], 0, 3600, &seconds) < 0) {
        fprintf(stderr, "usage: ku_flood HOST PORT CERT KEY CACERT COUNT SECONDS\n");
        return 2;
    }
    /* The server may close the connection mid-flood (it bounds KeyUpdates
     * sent without a request): a send error, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    if (wolfSSL_Init() != WOLFSSL_SUCCESS)
        return 2;
    ctx = wolfSSL_CTX_new(wolfTLSv1_3_client_method());
    if (!ctx)
        goto out;
    if (wolfSSL_CTX_load_verify_locations(ctx, argv[5], NULL) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_use_certificate_chain_file(ctx, argv[3]) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_use_PrivateKey_file(ctx, argv[4], WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
        fprintf(stderr, "ku_flood: cannot load %s / %s / %s\n", argv[5], argv[3], argv[4]);
        goto out;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) {
        fprintf(stderr, "ku_flood: bad host %s (an IPv4 address)\n", argv[1]);
        goto out;
    }
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        perror("ku_flood: socket");
        goto out;
    }
    /* before connect, so the window the server sees is small from the start */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
        perror("ku_flood: setsockopt");
        goto out;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("ku_flood: connect");
        goto out;
    }
    rc = 1;
    ssl = wolfSSL_new(ctx);
    if (!ssl || wolfSSL_set_fd(ssl, fd) != WOLFSSL_SUCCESS)
        goto out;
    ret = wolfSSL_connect(ssl);
    if (ret != WOLFSSL_SUCCESS) {
        int err = wolfSSL_get_error(ssl, ret);
        printf("handshake failed: %d %s\n", err, err_text(err));
        goto out;
    }
    rc = 0;
    /* From here a send that blocks this long means the server stopped reading. */
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_tv, sizeof(send_tv)) < 0) {
        perror("ku_flood: setsockopt");
        goto out;
    }
    for (sent = 0; sent < count; sent++) {
        double t0 = now_s();
        ret = wolfSSL_update_keys(ssl);
        if (ret != WOLFSSL_SUCCESS) {
            int err = wolfSSL_get_error(ssl, ret);
            printf("sent %ld of %ld KeyUpdates, stopped: error %d %s\n", sent, count, err,
                   err_text(err));
            break;
        }
        /* wolfSSL 5.5.4 reports success even when the send would block (the
         * KeyUpdate stays in its output buffer), so a blocked send shows as
         * a call that waited out SO_SNDTIMEO. */
        if (now_s() - t0 >= SEND_WAIT_S - 0.5) {
            printf("sent %ld of %ld KeyUpdates, stopped: blocked (the server stopped reading)\n",
                   sent + 1, count);
            break;
        }
    }
    if (sent == count)
        printf("sent %ld of %ld KeyUpdates, all\n", sent, count);
    fflush(stdout);
    sleep_seconds(seconds);
out:
    if (ssl)
        wolfSSL_free(ssl);
    if (fd >= 0)
        close(fd);
    if (ctx)
        wolfSSL_CTX_free(ctx);
    wolfSSL_Cleanup();
    return rc;
}
