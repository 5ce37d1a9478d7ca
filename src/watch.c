/* watch.c: inotify on the parent directories, never on the files: the
 * kubelet (and trust-manager, and many deploy tools) replace a file by
 * renaming a new one over it, or by swapping a `..data` symlink, and a watch
 * on the file itself sees IN_DELETE_SELF once and then nothing again
 * (kubernetes #111947, #112677, linkerd2 #12573). Events only schedule a
 * check; whether to reload is decided by a fingerprint of what stat(2) sees
 * through the symlinks, so noise in a shared directory (/etc/ssl) reloads
 * nothing. */
#include "mtlsd/watch.h"
#include "mtlsd/log.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEBOUNCE_MS 200        /* the kubelet's writes and its rename come in a burst */
#define MAX_DEBOUNCE_MS 2000   /* a steady stream of events still gets a check */
#define RETRY_MS 1000
#define MAX_RETRIES 3
#define MAX_SYMLINK_HOPS 8

#define WATCH_MASK (IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE | \
                    IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)

/* The files read at run time, NULL-terminated list in `out`. */
static unsigned watched_files(const struct mtls_config *cfg, const char **out, unsigned max)
{
    unsigned n = 0;

    out[n++] = cfg->cert_file;
    out[n++] = cfg->key_file;
    out[n++] = cfg->verify.client_ca_file;
    if (cfg->resume.ticket_key_file)
        out[n++] = cfg->resume.ticket_key_file;
    for (unsigned i = 0; i < cfg->verify.n_crl_files && n < max; i++)
        out[n++] = cfg->verify.crl_files[i];
    return n;
}

static void watch_dir_of(struct mtls_watch *w, const char *path)
{
    char copy[PATH_MAX];

    if (snprintf(copy, sizeof(copy), "%s", path) >= (int)sizeof(copy))
        return;
    /* Adding a directory again returns its existing watch: no growth. A
     * directory that is gone (an old ..TIMESTAMP) loses its watch by itself. */
    if (inotify_add_watch(w->fd, dirname(copy), WATCH_MASK) < 0 && errno != ENOENT)
        log_debug("watch: %s: %s", copy, strerror(errno));
}

/* The file's directory, and that of every symlink on the way to the real
 * file: a link into another directory is watched there too. */
static void watch_file(struct mtls_watch *w, const char *path)
{
    char cur[PATH_MAX], target[PATH_MAX], next[PATH_MAX];
    struct stat st;

    snprintf(cur, sizeof(cur), "%s", path);
    for (int hop = 0; hop < MAX_SYMLINK_HOPS; hop++) {
        watch_dir_of(w, cur);
        if (lstat(cur, &st) < 0 || !S_ISLNK(st.st_mode))
            break;
        ssize_t n = readlink(cur, target, sizeof(target) - 1);
        if (n <= 0)
            break;
        target[n] = '\0';
        if (target[0] == '/') {
            snprintf(next, sizeof(next), "%s", target);
        } else {
            char dir[PATH_MAX];
            snprintf(dir, sizeof(dir), "%s", cur);
            if (snprintf(next, sizeof(next), "%s/%s", dirname(dir), target) >=
                (int)sizeof(next))
                break;
        }
        memcpy(cur, next, sizeof(cur));
    }
    if (realpath(path, target))
        watch_dir_of(w, target);
}

static void watch_all(struct mtls_watch *w)
{
    const char *files[MTLS_MAX_LIST + 4];
    unsigned n = watched_files(w->cfg, files, MTLS_MAX_LIST + 4);

    if (w->fd < 0)
        return;
    for (unsigned i = 0; i < n; i++)
        watch_file(w, files[i]);
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        h ^= (v >> (8 * i)) & 0xff;
        h *= 0x100000001b3ull; /* FNV-1a */
    }
    return h;
}

/* What the files are now, as seen through every symlink. */
static uint64_t fingerprint(const struct mtls_config *cfg)
{
    const char *files[MTLS_MAX_LIST + 4];
    unsigned n = watched_files(cfg, files, MTLS_MAX_LIST + 4);
    uint64_t h = 0xcbf29ce484222325ull;
    struct stat st;

    for (unsigned i = 0; i < n; i++) {
        if (stat(files[i], &st) < 0) {
            h = mix(h, (uint64_t)errno);
            continue;
        }
        h = mix(h, (uint64_t)st.st_dev);
        h = mix(h, (uint64_t)st.st_ino);
        h = mix(h, (uint64_t)st.st_size);
        h = mix(h, (uint64_t)st.st_mtim.tv_sec);
        h = mix(h, (uint64_t)st.st_mtim.tv_nsec);
        h = mix(h, (uint64_t)st.st_ctim.tv_sec);
        h = mix(h, (uint64_t)st.st_ctim.tv_nsec);
    }
    return h;
}

void mtls_watch_init(struct mtls_watch *w, const struct mtls_config *cfg, uint64_t now_ms)
{
    memset(w, 0, sizeof(*w));
    w->cfg = cfg;
    w->fd = -1;
    w->fingerprint = fingerprint(cfg);
    if (cfg->reload_interval_ms)
        w->next_poll_ms = now_ms + cfg->reload_interval_ms;
    if (!cfg->watch)
        return;
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0) {
        log_warn("watch: inotify unavailable (%s): reloads only on SIGHUP%s", strerror(errno),
                 cfg->reload_interval_ms ? " and --reload-interval" : "");
        return;
    }
    watch_all(w);
}

void mtls_watch_read(struct mtls_watch *w, uint64_t now_ms)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool any = false;
    ssize_t n;

    while ((n = read(w->fd, buf, sizeof(buf))) > 0)
        any = true; /* which file changed does not matter: all are re-read */
    if (!any)
        return;
    if (w->due_ms == 0)
        w->first_event_ms = now_ms;
    w->due_ms = now_ms + DEBOUNCE_MS;
    if (w->due_ms > w->first_event_ms + MAX_DEBOUNCE_MS)
        w->due_ms = w->first_event_ms + MAX_DEBOUNCE_MS;
}

int mtls_watch_timeout(const struct mtls_watch *w, uint64_t now_ms)
{
    uint64_t next = w->due_ms;

    if (w->next_poll_ms && (next == 0 || w->next_poll_ms < next))
        next = w->next_poll_ms;
    if (next == 0)
        return -1;
    return next <= now_ms ? 0 : (int)(next - now_ms);
}

bool mtls_watch_due(struct mtls_watch *w, uint64_t now_ms)
{
    bool due = false;
    uint64_t fp;

    if (w->due_ms && now_ms >= w->due_ms) {
        w->due_ms = 0;
        due = true;
    }
    if (w->next_poll_ms && now_ms >= w->next_poll_ms) {
        w->next_poll_ms = now_ms + w->cfg->reload_interval_ms;
        due = true;
    }
    if (!due)
        return false;
    watch_all(w); /* a swap may have moved a symlink's target elsewhere */
    fp = fingerprint(w->cfg);
    if (fp == w->fingerprint) {
        w->retries = 0;
        return false;
    }
    w->fingerprint = fp;
    return true;
}

void mtls_watch_result(struct mtls_watch *w, bool ok, uint64_t now_ms)
{
    if (ok || w->retries >= MAX_RETRIES) {
        w->retries = 0;
        return;
    }
    w->retries++;
    if (w->due_ms == 0 || w->due_ms > now_ms + RETRY_MS)
        w->due_ms = now_ms + RETRY_MS;
}

void mtls_watch_seen(struct mtls_watch *w)
{
    w->fingerprint = fingerprint(w->cfg);
    w->retries = 0;
}

void mtls_watch_close(struct mtls_watch *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
}
