/* The reverse proxy (--upstream): a request handler (handler.h) whose
 * answers come from upstream connections that belong to the worker using
 * them, driven by that worker's loop (no thread, no lock, no blocking
 * connect), kept alive in a per-worker pool. */
#ifndef MTLSD_PROXY_H
#define MTLSD_PROXY_H

#include "mtlsd/config.h"
#include "mtlsd/handler.h"
#include "mtlsd/metrics.h"
#include "mtlsd/io.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

extern const struct mtls_handler mtls_proxy_handler;

/* Start-up (main thread): resolves --upstream, reads the server
 * certificate's URI SAN for XFCC By=, sizes one pool per worker. A no-op
 * without --upstream. Fills `err` on failure. */
int mtls_proxy_init(const struct mtls_config *cfg, unsigned workers, char *err, size_t errlen);
void mtls_proxy_shutdown(void);

/* On worker `id`'s thread, before its loop starts: its pool uses `io`. */
void mtls_proxy_worker_start(unsigned id, struct mtls_io *io, struct mtls_metrics *m);
/* Worker teardown, after its I/O backend is gone (nothing in flight any
 * more): frees its upstream connections and cached identity headers. */
void mtls_proxy_worker_stop(unsigned id);
/* Timers: expires what is due; returns the ms until the next deadline
 * (at most `max`). */
uint64_t mtls_proxy_tick(unsigned id, uint64_t max);

#endif
