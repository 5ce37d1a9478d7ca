/* control.c: one poll(2) over a signalfd and the inotify descriptor. */
#include "mtlsd/control.h"
#include "mtlsd/log.h"
#include "mtlsd/material.h"
#include "mtlsd/metrics.h"
#include "mtlsd/notify.h"
#include "mtlsd/status.h"
#include "mtlsd/watch.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define EXPIRY_CHECK_MS (3600u * 1000) /* the warning repeats hourly until renewed */

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool reload(struct mtls_server *srv, const char *why)
{
    bool ok;

    mtls_notify("RELOADING=1");
    ok = mtls_server_reload(srv, why);
    mtls_notify("READY=1");
    return ok;
}

void mtls_control_run(struct mtls_server *srv, const sigset_t *sigs)
{
    const struct mtls_config *cfg = srv->cfg;
    struct mtls_watch w;
    uint64_t stop_at = 0; /* draining: when the delay ends */
    uint64_t expiry_check_at = mono_ms() + EXPIRY_CHECK_MS;
    int sfd = signalfd(-1, sigs, SFD_CLOEXEC | SFD_NONBLOCK);

    mtls_watch_init(&w, cfg, mono_ms());
    if (sfd < 0)
        log_error("signalfd: %s: signals are polled once a second", strerror(errno));
    mtls_status_set_loaded();
    mtls_notify("READY=1");
    for (;;) {
        uint64_t now = mono_ms();
        int timeout = (int)mtls_server_tick(srv), wt = mtls_watch_timeout(&w, now);
        struct pollfd pfd[2] = {{.fd = sfd, .events = POLLIN}, {.fd = w.fd, .events = POLLIN}};

        if (wt >= 0 && wt < timeout)
            timeout = wt;
        if (stop_at && (int)(stop_at - now) < timeout)
            timeout = stop_at > now ? (int)(stop_at - now) : 0;
        if (poll(pfd, 2, timeout) < 0 && errno != EINTR)
            log_error("poll: %s", strerror(errno));
        now = mono_ms();

        struct signalfd_siginfo si;
        int sig = 0;
        if (sfd >= 0 && read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
            sig = (int)si.ssi_signo;
        } else if (sfd < 0) {
            struct timespec zero = {0, 0};
            sig = sigtimedwait(sigs, NULL, &zero);
        }
        if (sig == SIGHUP) {
            mtls_metrics_log_identity();
            reload(srv, "SIGHUP");
            mtls_watch_seen(&w);
        } else if ((sig == SIGTERM || sig == SIGINT) && !stop_at && cfg->shutdown_delay_ms) {
            /* Endpoints controllers need a moment to stop sending us new
             * connections: fail the probe first, drain later. */
            mtls_status_set_draining();
            mtls_notify("STOPPING=1");
            stop_at = now + cfg->shutdown_delay_ms;
            log_info("%s: /readyz now 503; still serving for %u ms, then draining (grace %u ms)",
                     sig == SIGINT ? "SIGINT" : "SIGTERM", cfg->shutdown_delay_ms,
                     cfg->shutdown_grace_ms);
        } else if (sig == SIGTERM || sig == SIGINT) {
            log_info("%s: stopping (grace %u ms)", sig == SIGINT ? "SIGINT" : "SIGTERM",
                     cfg->shutdown_grace_ms);
            break; /* a second signal ends the delay */
        }
        if (stop_at && now >= stop_at) {
            log_info("shutdown delay over: stopping (grace %u ms)", cfg->shutdown_grace_ms);
            break;
        }
        if (w.fd >= 0 && (pfd[1].revents & POLLIN))
            mtls_watch_read(&w, now);
        if (now >= expiry_check_at) {
            mtls_material_check_expiry(cfg);
            expiry_check_at = now + EXPIRY_CHECK_MS;
        }
        if (mtls_watch_due(&w, now))
            mtls_watch_result(&w, reload(srv, "watch"), mono_ms());
    }
    mtls_status_set_draining();
    mtls_notify("STOPPING=1");
    mtls_watch_close(&w);
    if (sfd >= 0)
        close(sfd);
}
