/* Reload without a signal: inotify on the directories of the files mtlsd
 * reads at run time, and an optional periodic check. The main thread polls
 * the descriptor and runs the SIGHUP reload when mtls_watch_due() says so;
 * the watcher itself never touches TLS state. */
#ifndef MTLSD_WATCH_H
#define MTLSD_WATCH_H

#include "mtlsd/config.h"

#include <stdbool.h>
#include <stdint.h>

struct mtls_watch {
    const struct mtls_config *cfg;
    int fd;                 /* inotify; -1 when off or unavailable */
    uint64_t due_ms;        /* check the files at this time; 0: nothing pending */
    uint64_t first_event_ms;
    uint64_t next_poll_ms;  /* --reload-interval; 0: off */
    unsigned retries;       /* after a failed reload */
    uint64_t fingerprint;   /* of the files at the last reload attempt */
};

/* Never fails start-up: without inotify, it says so and relies on
 * --reload-interval (or SIGHUP). */
void mtls_watch_init(struct mtls_watch *w, const struct mtls_config *cfg, uint64_t now_ms);
/* Drains the inotify events; any event schedules a debounced check. */
void mtls_watch_read(struct mtls_watch *w, uint64_t now_ms);
/* Milliseconds until the next check, or -1 when none is scheduled. */
int mtls_watch_timeout(const struct mtls_watch *w, uint64_t now_ms);
/* True when a check is due and the files changed since the last reload
 * attempt: the caller reloads and reports with mtls_watch_result(). */
bool mtls_watch_due(struct mtls_watch *w, uint64_t now_ms);
/* A failed reload (a read in the middle of a swap, a half-written file) is
 * checked again a few times: a later change gets its reload. */
void mtls_watch_result(struct mtls_watch *w, bool ok, uint64_t now_ms);
/* A SIGHUP reload happened: the current files count as seen. */
void mtls_watch_seen(struct mtls_watch *w);
void mtls_watch_close(struct mtls_watch *w);

#endif
