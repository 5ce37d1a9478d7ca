/* Sockets for --listen: the one place that sets them up (server.c probes
 * the port, each worker opens its own listener). */
#ifndef MTLSD_NET_H
#define MTLSD_NET_H

#include "mtlsd/config.h"

#include <stdbool.h>
#include <stddef.h>

/* A TCP socket bound to cfg->listen_addr. `listener`: SO_REUSEPORT and
 * listening (one per worker: the kernel spreads connections, and no lock is
 * shared on accept); otherwise a plain bind that tells whether the port is
 * free. Returns the descriptor, or -errno with `err` saying what failed. */
int mtls_net_bind(const struct mtls_config *cfg, bool listener, char *err, size_t errlen);

#endif
