/* systemd's readiness protocol without libsystemd: datagrams to
 * $NOTIFY_SOCKET (sd_notify(3)). Silent no-ops when it is unset. */
#ifndef MTLSD_NOTIFY_H
#define MTLSD_NOTIFY_H

/* Connects once, before the sandbox closes the file system. */
void mtls_notify_open(void);
/* "READY=1", "RELOADING=1", "STOPPING=1", "STATUS=..." */
void mtls_notify(const char *state);
void mtls_notify_close(void);

#endif
