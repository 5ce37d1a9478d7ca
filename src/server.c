/* server.c: start-up order and worker lifetime. */
#include "mtlsd/server.h"
#include "mtlsd/proxy.h"
#include "mtlsd/conn.h"
#include "mtlsd/log.h"
#include "mtlsd/net.h"
#include "mtlsd/tickets.h"
#include "mtlsd/tls.h"
#include "mtlsd/verify.h"
#include "mtlsd/authz.h"
#include "mtlsd/access_log.h"
#include "mtlsd/material.h"

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
    int fd = mtls_net_bind(cfg, false, err, errlen);

    if (fd >= 0)
        close(fd);
    if (fd != -EADDRINUSE) {
        err[0] = '\0'; /* other failures are the workers' to report */
        return false;
    }
    snprintf(err, errlen, "--listen %s: address already in use (another server?)",
             cfg->listen_str);
    return true;
}

/* --io: auto probes io_uring (the ring, its features, the buffer ring)
 * and falls back to epoll, saying why; io_uring refuses without it. */
static int resolve_io(struct mtls_server *s, char *err, size_t errlen)
{
    struct mtls_io_params p;
    char why[400] = "";

    mtls_worker_io_params(s->cfg, &p);
    if (mtls_io_resolve(s->cfg->io, &p, &s->io, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "--io io_uring: %s", why);
        return -1;
    }
    if (s->cfg->io == MTLS_IO_AUTO && s->io == MTLS_IO_EPOLL)
        log_warn("io_uring unavailable (%s): serving on epoll", why);
    mtls_metrics_set_io_backend(mtls_io_backend_name(s->io));
    return 0;
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
    if (mtls_authz_init(&cfg->authz, err, errlen) < 0 ||
        mtls_access_log_open(cfg->access_log, err, errlen) < 0)
        return -1;
    if (mtls_tls_ctx_new(&s->tls, cfg, err, errlen) < 0)
        return -1;
    /* Dates for /metrics; an expired server certificate is only warned
     * about at start (it is what the operator gave), refused on reload. */
    struct mtls_material *m = mtls_material_read(cfg, false, err, errlen);
    if (!m)
        goto fail;
    mtls_material_commit(m, cfg);
    if (mtls_proxy_init(cfg, cfg->workers, err, errlen) < 0)
        goto fail;
    if (port_taken(cfg, err, errlen))
        goto fail;
    if (resolve_io(s, err, errlen) < 0)
        goto fail;
    /* Workers are 64-byte aligned: their counters never share a line. */
    s->workers = aligned_alloc(64, ((sizeof(struct mtls_worker) * cfg->workers + 63) / 64) * 64);
    if (!s->workers) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (unsigned i = 0; i < cfg->workers; i++) {
        if (mtls_worker_init(&s->workers[i], i, cfg, s->io, s->tls, err, errlen) < 0)
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

bool mtls_server_reload(struct mtls_server *s, const char *why)
{
    struct mtls_material *m;
    char err[512];
    bool ok = true;

    /* Ticket keys first and apart: a key file is independent of the
     * certificates, and a failure of one keeps only its own old material. */
    if (mtls_tickets_reload(err, sizeof(err)) < 0) {
        log_error("%s: %s; keeping the previous session ticket keys", why, err);
        ok = false;
    }
    m = mtls_material_read(s->cfg, true, err, sizeof(err));
    if (!m || mtls_tls_ctx_reload(s->tls, err, sizeof(err)) < 0) {
        mtls_material_free(m);
        if (s->n_workers)
            METRIC_INC(&s->workers[0].metrics, reload_failures);
        mtls_material_count_reload(false);
        log_error("%s: reload failed, keeping the current certificates: %s", why, err);
        return false;
    }
    mtls_material_commit(m, s->cfg);
    mtls_material_count_reload(ok);
    if (s->n_workers)
        METRIC_INC(&s->workers[0].metrics, reloads);
    log_info("%s: reloaded certificate, key, --client-ca and CRLs (trust generation %llu)", why,
             (unsigned long long)mtls_verify_generation());
    return ok;
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
    mtls_material_shutdown();
    mtls_proxy_shutdown();
}
