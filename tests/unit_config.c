/* Flag parsing: defaults, every kind of bad value, and messages that name
 * the flag. */
#include "check.h"
#include "mtlsd/config.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <string.h>

static enum mtls_config_result parse(struct mtls_config *cfg, char *err, size_t n, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    char *a;

    argv[argc++] = "mtlsd";
    va_start(ap, n);
    while ((a = va_arg(ap, char *)) != NULL)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    mtls_config_defaults(cfg);
    FILE *devnull = fopen("/dev/null", "w");
    enum mtls_config_result r = mtls_config_parse(cfg, argc, argv, devnull, err, n);
    fclose(devnull);
    return r;
}

#define REQ "--cert", "c", "--key", "k", "--client-ca", "ca"

int main(void)
{
    struct mtls_config cfg;
    char err[512];

    CHECK(parse(&cfg, err, sizeof(err), REQ, NULL) == MTLS_CONFIG_OK);
    CHECK(cfg.workers >= 1);
    CHECK(cfg.tls_min == 12);
    CHECK(cfg.http.max_header_bytes == 8192);
    CHECK(cfg.listen_addr.ss_family == AF_INET);
    CHECK(ntohs(((struct sockaddr_in *)&cfg.listen_addr)->sin_port) == 8443);

    /* defaults come from the flag table's rows */
    CHECK(cfg.pin_cpus && cfg.resume.tickets && !cfg.resume.tls13_psk_ke);
    CHECK(cfg.verify.verify_depth == 4 && cfg.verify.client_auth == MTLS_AUTH_VERIFY);
    CHECK(cfg.resume.session_cache == 10000 && !cfg.resume.session_cache_set);
    CHECK(cfg.idle_timeout_ms == 60000 && cfg.conn.max_conn_lifetime_ms == 0);
    CHECK(parse(&cfg, err, sizeof(err), REQ, "--no-pin", "--tls13-psk-ke", "--session-cache",
                "5", "--client-auth", "optional", "--public-path", "/a", "--public-path",
                "/b", NULL) == MTLS_CONFIG_OK);
    CHECK(!cfg.pin_cpus && cfg.resume.tls13_psk_ke);
    CHECK(cfg.resume.session_cache == 5 && cfg.resume.session_cache_set);
    CHECK(cfg.verify.client_auth == MTLS_AUTH_OPTIONAL);
    CHECK(cfg.authz.n_public_paths == 2 && strcmp(cfg.authz.public_paths[1], "/b") == 0);
    CHECK(parse(&cfg, err, sizeof(err), REQ, "--client-auth", "maybe", NULL) ==
          MTLS_CONFIG_ERROR);
    CHECK(strstr(err, "verify, present or optional") != NULL);

    CHECK(parse(&cfg, err, sizeof(err), NULL) == MTLS_CONFIG_ERROR);
    CHECK(strstr(err, "--cert") && strstr(err, "--client-ca"));

    CHECK(parse(&cfg, err, sizeof(err), REQ, "--workers", "0", NULL) == MTLS_CONFIG_ERROR);
    CHECK(strstr(err, "--workers") != NULL);
    CHECK(parse(&cfg, err, sizeof(err), REQ, "--workers", "3x", NULL) == MTLS_CONFIG_ERROR);
    CHECK(parse(&cfg, err, sizeof(err), REQ, "--workers", "-1", NULL) == MTLS_CONFIG_ERROR);
    CHECK(parse(&cfg, err, sizeof(err), REQ, "--workers", "2", NULL) == MTLS_CONFIG_OK);
    CHECK(cfg.workers == 2);

    CHECK(parse(&cfg, err, sizeof(err), REQ, "--tls-min", "1.1", NULL) == MTLS_CONFIG_ERROR);
    CHECK(strstr(err, "1.2 or 1.3") != NULL);
    CHECK(parse(&cfg, err, sizeof(err), REQ, "--tls-min", "1.3", NULL) == MTLS_CONFIG_OK);
    CHECK(cfg.tls_min == 13);

    CHECK(parse(&cfg, err, sizeof(err), REQ, "--listen", "[::1]:9443", NULL) == MTLS_CONFIG_OK);
    CHECK(cfg.listen_addr.ss_family == AF_INET6);
    CHECK(parse(&cfg, err, sizeof(err), REQ, "--listen", "127.0.0.1:0", NULL) ==
          MTLS_CONFIG_ERROR);
    CHECK(parse(&cfg, err, sizeof(err), REQ, "--listen", "127.0.0.1", NULL) ==
          MTLS_CONFIG_ERROR);
    CHECK(parse(&cfg, err, sizeof(err), REQ, "--listen", "::1:80", NULL) == MTLS_CONFIG_ERROR);
    CHECK(parse(&cfg, err, sizeof(err), REQ, "--listen", "example.com:80", NULL) ==
          MTLS_CONFIG_ERROR);
    CHECK(parse(&cfg, err, sizeof(err), REQ, "--listen", "localhost:8080", NULL) ==
          MTLS_CONFIG_OK);

    CHECK(parse(&cfg, err, sizeof(err), REQ, "--handshake-timeout", "0.5", NULL) ==
          MTLS_CONFIG_OK);
    CHECK(cfg.handshake_timeout_ms == 500);
    CHECK(parse(&cfg, err, sizeof(err), REQ, "--idle-timeout", "0", NULL) == MTLS_CONFIG_ERROR);
    CHECK(parse(&cfg, err, sizeof(err), REQ, "--idle-timeout", "abc", NULL) ==
          MTLS_CONFIG_ERROR);
    CHECK(parse(&cfg, err, sizeof(err), REQ, "--recv-buffers", "100", NULL) ==
          MTLS_CONFIG_ERROR);
    CHECK(strstr(err, "power of two") != NULL);
    CHECK(parse(&cfg, err, sizeof(err), REQ, "--max-header-bytes", "1", NULL) ==
          MTLS_CONFIG_ERROR);
    CHECK(parse(&cfg, err, sizeof(err), REQ, "--log-level", "loud", NULL) == MTLS_CONFIG_ERROR);
    CHECK(parse(&cfg, err, sizeof(err), REQ, "--bogus", NULL) == MTLS_CONFIG_ERROR);
    CHECK(strstr(err, "--bogus") != NULL);
    CHECK(parse(&cfg, err, sizeof(err), REQ, "--workers", NULL) == MTLS_CONFIG_ERROR);
    CHECK(strstr(err, "needs a value") != NULL);
    CHECK(parse(&cfg, err, sizeof(err), REQ, "stray", NULL) == MTLS_CONFIG_ERROR);
    CHECK(parse(&cfg, err, sizeof(err), "--help", NULL) == MTLS_CONFIG_EXIT);
    CHECK(parse(&cfg, err, sizeof(err), "--version", NULL) == MTLS_CONFIG_VERSION);
    return check_report();
}
