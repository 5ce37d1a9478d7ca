/* authz.c: --allow matching and --public-path.
 *
 * Matching is exact and byte-for-byte on the decoded values: no case
 * folding, no substring matches. A trailing '*' in a uri: spec is the only
 * wildcard (a prefix, as SPIFFE trust domains are used). Identities with
 * embedded NULs never get here (verify.c refuses them). */
#include "mtlsd/authz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum kind { A_CN, A_OU, A_DNS, A_URI, A_URI_PREFIX, A_EMAIL, A_SHA256 };

struct rule {
    enum kind kind;
    const char *value;       /* points into the config's argv string */
    size_t len;
    uint8_t sha256[32];
};

static struct rule *rules;
static unsigned n_rules;
static struct mtls_authz_settings settings;

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int mtls_authz_init(const struct mtls_authz_settings *cfg, char *err, size_t errlen)
{
    static const struct { const char *prefix; enum kind kind; } kinds[] = {
        {"cn:", A_CN}, {"ou:", A_OU}, {"dns:", A_DNS}, {"uri:", A_URI},
        {"email:", A_EMAIL}, {"sha256:", A_SHA256},
    };

    settings = *cfg;
    if (!cfg->n_allow)
        return 0;
    rules = calloc(cfg->n_allow, sizeof(*rules));
    if (!rules) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (unsigned i = 0; i < cfg->n_allow; i++) {
        const char *spec = cfg->allow[i];
        struct rule *r = &rules[i];
        size_t k;

        for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
            if (strncmp(spec, kinds[k].prefix, strlen(kinds[k].prefix)) == 0)
                break;
        if (k == sizeof(kinds) / sizeof(kinds[0]) || !spec[strlen(kinds[k].prefix)]) {
            snprintf(err, errlen,
                     "--allow '%s': expected cn:NAME, ou:NAME, dns:NAME, uri:URI[*], "
                     "email:ADDR or sha256:HEX",
                     spec);
            return -1;
        }
        r->kind = kinds[k].kind;
        r->value = spec + strlen(kinds[k].prefix);
        r->len = strlen(r->value);
        if (r->kind == A_URI && r->value[r->len - 1] == '*') {
            r->kind = A_URI_PREFIX;
            r->len--;
        }
        if (r->kind == A_SHA256) {
            char hex[65];
            size_t h = 0;
            /* accept "ab:cd:..." (openssl -fingerprint) or plain hex */
            for (const char *p = r->value; *p && h < 65; p++)
                if (*p != ':')
                    hex[h++] = *p;
            if (h != 64) {
                snprintf(err, errlen, "--allow '%s': sha256 needs 64 hex digits", spec);
                return -1;
            }
            for (int b = 0; b < 32; b++) {
                int hi = hexval(hex[2 * b]), lo = hexval(hex[2 * b + 1]);
                if (hi < 0 || lo < 0) {
                    snprintf(err, errlen, "--allow '%s': sha256 needs 64 hex digits", spec);
                    return -1;
                }
                r->sha256[b] = (uint8_t)(hi << 4 | lo);
            }
        }
        n_rules++;
    }
    return 0;
}

void mtls_authz_free(void)
{
    free(rules);
    rules = NULL;
    n_rules = 0;
}

bool mtls_authz_public(const char *path, size_t len)
{
    for (unsigned i = 0; i < settings.n_public_paths; i++) {
        size_t n = strlen(settings.public_paths[i]);
        if (len >= n && memcmp(path, settings.public_paths[i], n) == 0)
            return true;
    }
    return false;
}

static bool eq(const char *a, const struct rule *r)
{
    return strlen(a) == r->len && memcmp(a, r->value, r->len) == 0;
}

static bool san_match(const struct mtls_identity *id, enum mtls_san_type type,
                      const struct rule *r, bool prefix)
{
    for (unsigned i = 0; i < id->n_san; i++) {
        if (id->san[i].type != type)
            continue;
        if (prefix ? strncmp(id->san[i].value, r->value, r->len) == 0 : eq(id->san[i].value, r))
            return true;
    }
    return false;
}

bool mtls_authz_allowed(const struct mtls_identity *id, time_t now)
{
    if (!id)
        return false;
    /* A long-lived connection must not outlive its certificate. */
    if (now > id->valid_until)
        return false;
    if (!n_rules)
        return true;
    for (unsigned i = 0; i < n_rules; i++) {
        const struct rule *r = &rules[i];
        bool ok = false;
        switch (r->kind) {
        case A_CN: ok = eq(id->cn, r); break;
        case A_OU: ok = eq(id->ou, r); break;
        case A_DNS: ok = san_match(id, MTLS_SAN_DNS, r, false); break;
        case A_URI: ok = san_match(id, MTLS_SAN_URI, r, false); break;
        case A_URI_PREFIX: ok = san_match(id, MTLS_SAN_URI, r, true); break;
        case A_EMAIL: ok = san_match(id, MTLS_SAN_EMAIL, r, false); break;
        case A_SHA256: ok = memcmp(id->sha256, r->sha256, 32) == 0; break;
        default: ok = false; break; /* fail closed */
        }
        if (ok)
            return true;
    }
    return false;
}
