/* The main thread once the server runs: signals, the file watch, ticket
 * key rotation, readiness and the shutdown delay. The workers own their
 * loops; everything that reloads shared state happens here, one at a time. */
#ifndef MTLSD_CONTROL_H
#define MTLSD_CONTROL_H

#include "mtlsd/server.h"

#include <signal.h>

/* Returns when a SIGTERM/SIGINT asks to stop (after --shutdown-delay).
 * `sigs` are blocked in every thread. */
void mtls_control_run(struct mtls_server *srv, const sigset_t *sigs);

#endif
