/* pop_client: a wolfSSL mTLS client that can present a certificate with a
 * private key that does not belong to it (issue 3, proof of possession).
 *
 *   pop_client HOST PORT CERT KEY CACERT 1.2|1.3 [PATH]
 *
 * CERT (PEM, leaf first) is sent as the client certificate and KEY signs the
 * CertificateVerify. wolfSSL_CTX_check_private_key is deliberately NOT
 * called: wolfSSL's client then does not notice a key that does not match
 * the certificate, which is exactly the forgery the server must refuse.
 * Sends "GET PATH HTTP/1.1" (default /whoami), prints what happened, and
 * exits 0 only if the answer is HTTP 200; 1 on a refused handshake or any
 * other answer; 2 on a usage or local set-up error. */
#include "mtlsd/wolfssl.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static const char *err_text(int err)
{
    static char text[WOLFSSL_MAX_ERROR_SZ];

    wolfSSL_ERR_error_string_n((unsigned long)err, text, sizeof(text));
    return text;
}

int main(int argc, char **argv)
{
    WOLFSSL_CTX *ctx = NULL;
    WOLFSSL *ssl = NULL;
    struct sockaddr_in sa;
    struct timeval tv = {10, 0};
    char req[512], resp[8192];
    const char *path = argc > 7 ? argv[7] : "/whoami";
    size_t got = 0;
    int fd = -1, rc = 2, ret;

    if (argc < 7 || (strcmp(argv[6], "1.2") != 0 && strcmp(argv[6], "1.3") != 0)) {
        fprintf(stderr, "usage: pop_client HOST PORT CERT KEY CACERT 1.2|1.3 [PATH]\n");
        return 2;
    }
    if (wolfSSL_Init() != WOLFSSL_SUCCESS)
        return 2;
    ctx = wolfSSL_CTX_new(strcmp(argv[6], "1.3") == 0 ? wolfTLSv1_3_client_method()
                                                      : wolfTLSv1_2_client_method());
    if (!ctx)
        goto out;
    if (wolfSSL_CTX_load_verify_locations(ctx, argv[5], NULL) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_use_certificate_chain_file(ctx, argv[3]) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_use_PrivateKey_file(ctx, argv[4], WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
        fprintf(stderr, "pop_client: cannot load %s / %s / %s\n", argv[5], argv[3], argv[4]);
        goto out;
    }
    /* no wolfSSL_CTX_check_private_key(): see the top of the file */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)atoi(argv[2]));
    if (fd < 0 || inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) {
        fprintf(stderr, "pop_client: bad host %s (an IPv4 address)\n", argv[1]);
        goto out;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("pop_client: connect");
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
    printf("handshake ok: %s\n", wolfSSL_get_version(ssl));
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
             path);
    if (wolfSSL_write(ssl, req, (int)strlen(req)) != (int)strlen(req)) {
        /* TLS 1.3: the server's verdict on our CertificateVerify can arrive
         * after our Finished, as an alert when we write or read. */
        int err = wolfSSL_get_error(ssl, 0);
        printf("write failed: %d %s\n", err, err_text(err));
        goto out;
    }
    while (got < sizeof(resp) - 1) {
        ret = wolfSSL_read(ssl, resp + got, (int)(sizeof(resp) - 1 - got));
        if (ret <= 0) {
            int err = wolfSSL_get_error(ssl, ret);
            if (got == 0)
                printf("read failed: %d %s\n", err, err_text(err));
            break;
        }
        got += (size_t)ret;
    }
    resp[got] = '\0';
    printf("%s\n", resp);
    if (strncmp(resp, "HTTP/1.1 200 ", 13) == 0)
        rc = 0;
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
