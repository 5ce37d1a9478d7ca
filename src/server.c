/* server.c: start-up order and worker lifetime. */
#include "mtlsd/server.h"
#include "mtlsd/proxy.h"
#include "mtlsd/conn.h"
#include "mtlsd/log.h"
#include "mtlsd/tickets.h"
#include "mtlsd/tls.h"
#include "mtlsd/verify.h"
#include "mtlsd/authz.h"
#include "mtlsd/access_log.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int readable(const char *flag, const char *path, char *err, size_t errlen)
{
    if (access(path, R_OK) != 0) {
        snprintf(err, errlen, "%s %s: %s", flag, path, strerror(errno));
        return -1;
    }
    return 0;
}

/* SO_REUSEPORT would let a second server share our port silently (the
 * kernel would split connections between them): probe it without. */
static bool port_taken(const struct mtls_config *cfg, char *err, size_t errlen)
{
    int one = 1, fd = socket(cfg->listen_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool taken = false;

    if (fd < 0)
        return false;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (cfg->listen_addr.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&cfg->listen_addr, cfg->listen_addrlen) < 0 &&
        errno == EADDRINUSE) {
        snprintf(err, errlen, "--listen %s: address already in use (another server?)",
                 cfg->listen_str);
        taken = true;
    }
    close(fd);
    return taken;
}

int mtls_server_init(struct mtls_server *s, const struct mtls_config *cfg, char *err,
                     size_t errlen)
{
    memset(s, 0, sizeof(*s));
    s->cfg = cfg;
    if (readable("--cert", cfg->cert_file, err, errlen) < 0 ||
        readable("--key", cfg->key_file, err, errlen) < 0 ||
        readable("--client-ca", cfg->verify.client_ca_file, err, errlen) < 0)
        return -1;
    mtls_conn_configure(&cfg->conn);
    if (mtls_authz_init(&cfg->authz, err, errlen) < 0 ||
        mtls_access_log_open(cfg->access_log, err, errlen) < 0)
        return -1;
    if (mtls_tls_ctx_new(&s->tls, cfg, err, errlen) < 0)
        return -1;
    if (mtls_proxy_init(cfg, cfg->workers, err, errlen) < 0)
        goto fail;
    if (port_taken(cfg, err, errlen))
        goto fail;
    /* Workers are 64-byte aligned: their counters never share a line. */
    s->workers = aligned_alloc(64, ((sizeof(struct mtls_worker) * cfg->workers + 63) / 64) * 64);
    if (!s->workers) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (unsigned i = 0; i < cfg->workers; i++) {
        if (mtls_worker_init(&s->workers[i], i, cfg, s->tls, err, errlen) < 0)
            goto fail;
        s->n_workers++;
    }
    return 0;
fail:
    mtls_server_destroy(s);
    return -1;
}

int mtls_server_start(struct mtls_server *s, char *err, size_t errlen)
{
    for (unsigned i = 0; i < s->n_workers; i++) {
        if (mtls_worker_start(&s->workers[i], err, errlen) < 0)
            return -1;
        s->n_started++;
    }
    return 0;
}

void mtls_server_stop(struct mtls_server *s)
{
    for (unsigned i = 0; i < s->n_started; i++)
        mtls_worker_request_stop(&s->workers[i]);
}

void mtls_server_reload(struct mtls_server *s)
{
    char err[512];

    /* Ticket keys first and apart: a key file is independent of the
     * certificates, and a failure of one keeps only its own old material. */
    if (mtls_tickets_reload(err, sizeof(err)) < 0)
        log_error("SIGHUP: %s; keeping the previous session ticket keys", err);
    if (mtls_tls_ctx_reload(s->tls, err, sizeof(err)) < 0) {
        if (s->n_workers)
            METRIC_INC(&s->workers[0].metrics, reload_failures);
        log_error("SIGHUP: reload failed, keeping the current certificates: %s", err);
        return;
    }
    if (s->n_workers)
        METRIC_INC(&s->workers[0].metrics, reloads);
    log_info("SIGHUP: reloaded certificate, key, --client-ca and CRLs (trust generation %llu)",
             (unsigned long long)mtls_verify_generation());
}

unsigned mtls_server_tick(struct mtls_server *s)
{
    (void)s;
    return mtls_tickets_tick();
}

int mtls_server_wait(struct mtls_server *s)
{
    int code = 0;

    for (unsigned i = 0; i < s->n_started; i++) {
        mtls_worker_join(&s->workers[i]);
        if (s->workers[i].exit_code)
            code = s->workers[i].exit_code;
    }
    s->n_started = 0;
    return code;
}

void mtls_server_destroy(struct mtls_server *s)
{
    for (unsigned i = 0; i < s->n_workers; i++)
        mtls_worker_destroy(&s->workers[i]);
    free(s->workers);
    s->workers = NULL;
    s->n_workers = 0;
    mtls_tls_ctx_free(s->tls);
    s->tls = NULL;
    mtls_authz_free();
    mtls_access_log_close();
    mtls_proxy_shutdown();
}
