/* main.c: flags, signals, exit codes. 0: clean stop; 1: runtime failure;
 * 2: bad command line or files. */
#include "mtlsd/config.h"
#include "mtlsd/log.h"
#include "mtlsd/metrics.h"
#include "mtlsd/server.h"
#include "mtlsd/tls.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define MTLSD_VERSION "0.1.0"

int main(int argc, char **argv)
{
    struct mtls_config cfg;
    struct mtls_server srv;
    char err[512] = "";
    sigset_t sigs;
    int sig, code;

    mtls_config_defaults(&cfg);
    switch (mtls_config_parse(&cfg, argc, argv, stdout, err, sizeof(err))) {
    case MTLS_CONFIG_OK:
        break;
    case MTLS_CONFIG_EXIT:
        return 0;
    case MTLS_CONFIG_VERSION:
        printf("mtlsd %s\n", MTLSD_VERSION);
        printf("I/O backends: io_uring, epoll (--io %s)\n", mtls_io_backend_name(cfg.io));
        mtls_tls_describe(stdout);
        return 0;
    default:
        fprintf(stderr, "mtlsd: %s\n", err);
        return 2;
    }
    mtls_log_level = (enum mtls_log_level)cfg.log_level;

    /* Workers inherit this mask: only this thread takes the signals. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (mtls_server_init(&srv, &cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "mtlsd: %s\n", err);
        return 2;
    }
    if (mtls_server_start(&srv, err, sizeof(err)) < 0) {
        fprintf(stderr, "mtlsd: %s\n", err);
        mtls_server_stop(&srv);
        mtls_server_wait(&srv);
        mtls_server_destroy(&srv);
        return 1;
    }
    static const char *const modes[] = {"client certificates required and verified",
                                        "client certificates required, verified per request",
                                        "client certificates optional"};
    log_info("listening on %s with %u worker%s (%s, TLS >= 1.%d, %s)", cfg.listen_str,
             cfg.workers, cfg.workers == 1 ? "" : "s", mtls_io_backend_name(srv.io),
             cfg.tls_min - 10, modes[cfg.verify.client_auth]);

    for (;;) {
        unsigned wait_ms = mtls_server_tick(&srv);
        struct timespec ts = {(time_t)(wait_ms / 1000), (long)(wait_ms % 1000) * 1000000L};
        sig = sigtimedwait(&sigs, NULL, &ts);
        if (sig < 0)
            continue; /* timeout (EAGAIN) or EINTR: tick again */
        if (sig == SIGHUP) {
            mtls_metrics_log_identity();
            mtls_server_reload(&srv);
            continue;
        }
        log_info("%s: stopping (grace %u ms)", sig == SIGINT ? "SIGINT" : "SIGTERM",
                 cfg.shutdown_grace_ms);
        break;
    }
    mtls_server_stop(&srv);
    code = mtls_server_wait(&srv);
    mtls_metrics_log_identity();
    mtls_server_destroy(&srv);
    log_info("stopped");
    return code;
}
