/* net.c: the --listen socket. */
#include "mtlsd/net.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int mtls_net_bind(const struct mtls_config *cfg, bool listener, char *err, size_t errlen)
{
    int one = 1, ret;
    int fd = socket(cfg->listen_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        ret = -errno;
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return ret;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        (listener && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)) {
        ret = -errno;
        snprintf(err, errlen, "setsockopt SO_REUSEPORT: %s", strerror(errno));
        goto fail;
    }
    if (cfg->listen_addr.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&cfg->listen_addr, cfg->listen_addrlen) < 0) {
        ret = -errno;
        snprintf(err, errlen, "--listen %s: cannot bind: %s", cfg->listen_str, strerror(errno));
        goto fail;
    }
    if (listener && listen(fd, 4096) < 0) {
        ret = -errno;
        snprintf(err, errlen, "--listen %s: cannot listen: %s", cfg->listen_str,
                 strerror(errno));
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return ret;
}
