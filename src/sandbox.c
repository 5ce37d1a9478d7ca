/* sandbox.c: what mtlsd may still do once it serves. Reading: only the
 * directories holding its configured files (read-only, whole subtrees, so
 * the kubelet's new ..TIMESTAMP directories stay readable and the watch
 * reload keeps working), /dev/urandom for wolfSSL's RNG; writing: only its
 * access log. Everything else on the file system is refused by the kernel,
 * so a bug in a parser cannot read /etc/shadow or the service account
 * token. Landlock is used where the kernel has it (5.13+); without it the
 * server runs with NO_NEW_PRIVS only and says so. */
#define _GNU_SOURCE /* O_PATH */
#include "mtlsd/sandbox.h"
#include "mtlsd/log.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <linux/landlock.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Access rights by ABI version, as numbers: older kernel headers lack the
 * newer names, and every right the kernel knows must be handled or it stays
 * allowed. */
#define LL_FS_ABI1 ((1ull << 13) - 1) /* EXECUTE .. MAKE_SYM */
#define LL_FS_REFER (1ull << 13)       /* ABI 2 */
#define LL_FS_TRUNCATE (1ull << 14)    /* ABI 3 */
#define LL_FS_IOCTL_DEV (1ull << 15)   /* ABI 5 */
#define LL_READ_FILE (1ull << 2)
#define LL_READ_DIR (1ull << 3)
#define LL_WRITE_FILE (1ull << 1)
#define LL_EXECUTE (1ull << 0)

struct ll_ruleset_attr {
    uint64_t handled_access_fs;
};
struct ll_path_beneath {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

static int drop_user(const char *user, char *err, size_t errlen)
{
    struct passwd *pw = getpwnam(user);

    if (!pw) {
        snprintf(err, errlen, "--user %s: no such user", user);
        return -1;
    }
    if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
        snprintf(err, errlen, "--user %s: cannot switch to uid %u (%s): mtlsd must start as "
                 "root to use --user", user, (unsigned)pw->pw_uid, strerror(errno));
        return -1;
    }
    if (pw->pw_uid != 0 && setuid(0) == 0) {
        snprintf(err, errlen, "--user %s: root could be regained; refusing to run", user);
        return -1;
    }
    return 0;
}

/* Reloads read the files again as the new user: say now if they cannot. */
static void warn_unreadable(const struct mtls_config *cfg)
{
    const char *files[] = {cfg->cert_file, cfg->key_file, cfg->verify.client_ca_file,
                           cfg->resume.ticket_key_file};

    for (unsigned i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        if (files[i] && access(files[i], R_OK) < 0)
            log_warn("--user %s cannot read %s (%s): reloads will fail", cfg->user, files[i],
                     strerror(errno));
}

static int add_rule(int ruleset, const char *path, uint64_t access, uint64_t handled,
                    char *err, size_t errlen)
{
    struct ll_path_beneath pb = {.allowed_access = access & handled};
    struct stat st;

    pb.parent_fd = open(path, O_PATH | O_CLOEXEC);
    if (pb.parent_fd < 0) {
        snprintf(err, errlen, "sandbox: %s: %s", path, strerror(errno));
        return -1;
    }
    /* A rule on a file may only hold file rights. */
    if (fstat(pb.parent_fd, &st) == 0 && !S_ISDIR(st.st_mode))
        pb.allowed_access &= LL_READ_FILE | LL_WRITE_FILE | LL_EXECUTE | LL_FS_TRUNCATE |
                             LL_FS_IOCTL_DEV;
    if (syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) < 0) {
        snprintf(err, errlen, "sandbox: Landlock rule for %s: %s", path, strerror(errno));
        close(pb.parent_fd);
        return -1;
    }
    close(pb.parent_fd);
    return 0;
}

/* The directory of `path`, and that of the file it resolves to. */
static int allow_dirs_of(int ruleset, const char *path, uint64_t handled, char *err,
                         size_t errlen)
{
    char copy[PATH_MAX], real[PATH_MAX];

    if (!path)
        return 0;
    snprintf(copy, sizeof(copy), "%s", path);
    if (add_rule(ruleset, dirname(copy), LL_READ_FILE | LL_READ_DIR, handled, err, errlen) < 0)
        return -1;
    if (realpath(path, real) &&
        add_rule(ruleset, dirname(real), LL_READ_FILE | LL_READ_DIR, handled, err, errlen) < 0)
        return -1;
    return 0;
}

static int landlock(const struct mtls_config *cfg, char *err, size_t errlen)
{
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    struct ll_ruleset_attr attr = {.handled_access_fs = LL_FS_ABI1};
    int ruleset, ret = -1;

    if (abi < 1) {
        log_info("sandbox: Landlock not available (%s): file access not restricted",
                 strerror(errno));
        return 0;
    }
    if (abi >= 2)
        attr.handled_access_fs |= LL_FS_REFER;
    if (abi >= 3)
        attr.handled_access_fs |= LL_FS_TRUNCATE;
    if (abi >= 5)
        attr.handled_access_fs |= LL_FS_IOCTL_DEV;
    ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
    if (ruleset < 0) {
        snprintf(err, errlen, "sandbox: Landlock: %s (--no-sandbox runs without it)",
                 strerror(errno));
        return -1;
    }
    uint64_t h = attr.handled_access_fs;
    if (allow_dirs_of(ruleset, cfg->cert_file, h, err, errlen) < 0 ||
        allow_dirs_of(ruleset, cfg->key_file, h, err, errlen) < 0 ||
        allow_dirs_of(ruleset, cfg->verify.client_ca_file, h, err, errlen) < 0 ||
        allow_dirs_of(ruleset, cfg->resume.ticket_key_file, h, err, errlen) < 0)
        goto out;
    for (unsigned i = 0; i < cfg->verify.n_crl_files; i++)
        if (allow_dirs_of(ruleset, cfg->verify.crl_files[i], h, err, errlen) < 0)
            goto out;
    if (access("/dev/urandom", F_OK) == 0 &&
        add_rule(ruleset, "/dev/urandom", LL_READ_FILE, h, err, errlen) < 0)
        goto out;
    if (cfg->access_log && strcmp(cfg->access_log, "-") != 0 &&
        add_rule(ruleset, cfg->access_log, LL_WRITE_FILE, h, err, errlen) < 0)
        goto out;
#ifdef MTLSD_SANITIZED
    /* The sanitizers' runtime reads /proc/self/maps and runs the symbolizer. */
    if (add_rule(ruleset, "/proc", LL_READ_FILE | LL_READ_DIR, h, err, errlen) < 0 ||
        add_rule(ruleset, "/usr", LL_READ_FILE | LL_READ_DIR | LL_EXECUTE, h, err, errlen) < 0)
        goto out;
#endif
    if (syscall(SYS_landlock_restrict_self, ruleset, 0) < 0) {
        snprintf(err, errlen, "sandbox: landlock_restrict_self: %s", strerror(errno));
        goto out;
    }
    log_info("sandbox: Landlock ABI %ld: files readable only in the directories of the "
             "configured files", abi);
    ret = 0;
out:
    close(ruleset);
    return ret;
}

int mtls_sandbox_apply(const struct mtls_config *cfg, char *err, size_t errlen)
{
    if (cfg->user) {
        if (drop_user(cfg->user, err, errlen) < 0)
            return -1;
        warn_unreadable(cfg);
    }
    if (!cfg->sandbox)
        return 0;
    /* Also a precondition of an unprivileged landlock_restrict_self. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        snprintf(err, errlen, "sandbox: PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
        return -1;
    }
    return landlock(cfg, err, errlen);
}
