/* notify.c: sd_notify(3) in a few lines. The socket is connected at start:
 * Landlock and --user may forbid reaching its path later. */
#include "mtlsd/notify.h"
#include "mtlsd/log.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int notify_fd = -1;

void mtls_notify_open(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len;

    if (!path || (path[0] != '/' && path[0] != '@'))
        return;
    len = strlen(path);
    if (len >= sizeof(sa.sun_path)) {
        log_warn("NOTIFY_SOCKET is too long: no readiness notification");
        return;
    }
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract namespace */
    notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (notify_fd >= 0 &&
        connect(notify_fd, (struct sockaddr *)&sa,
                (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0) {
        log_warn("NOTIFY_SOCKET %s: %s", path, strerror(errno));
        close(notify_fd);
        notify_fd = -1;
    }
    unsetenv("NOTIFY_SOCKET"); /* nothing we start should talk for us */
}

void mtls_notify(const char *state)
{
    char msg[256];
    struct timespec ts;
    int n;

    if (notify_fd < 0)
        return;
    if (strcmp(state, "RELOADING=1") == 0) {
        /* Type=notify-reload wants the time the reload started. */
        clock_gettime(CLOCK_MONOTONIC, &ts);
        n = snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
                     (unsigned long long)ts.tv_sec * 1000000ull +
                         (unsigned long long)ts.tv_nsec / 1000);
    } else {
        n = snprintf(msg, sizeof(msg), "%s", state);
    }
    if (n > 0 && send(notify_fd, msg, (size_t)n, MSG_NOSIGNAL) < 0)
        log_debug("sd_notify: %s", strerror(errno));
}

void mtls_notify_close(void)
{
    if (notify_fd >= 0)
        close(notify_fd);
    notify_fd = -1;
}
