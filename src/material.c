/* material.c: the dates of what is in service, read with a small DER walker
 * of our own (wolfSSL is built without its OpenSSL layer, and its decoder
 * has no CRL nextUpdate accessor): only the fields needed here are read,
 * and a file that does not parse is refused like a bad reload. */
#include "mtlsd/material.h"
#include "mtlsd/identity_x509.h"
#include "mtlsd/log.h"
#include "mtlsd/verify.h"
#include "mtlsd/wolfssl.h"

#include <wolfssl/wolfcrypt/coding.h>

#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PEM_BYTES (16u << 20)
#define MAX_DER 65536
#define MAX_ENTRIES 512 /* series in /metrics, bounded */
#define SUBJECT_MAX 200

struct dated {
    char role;                 /* 's' server, 'c' client CA, 'r' CRL */
    char name[SUBJECT_MAX];    /* subject, or the CRL's issuer */
    time_t when;               /* notAfter, or the CRL's nextUpdate (-1: none) */
};

struct mtls_material {
    struct dated *e;
    unsigned n;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct mtls_material *current;
static uint64_t reloads_ok, reloads_failed;
static time_t last_reload;

/* One TLV; 0 on success. Lengths beyond what remains are refused. */
static int der_next(const uint8_t **p, const uint8_t *end, uint8_t *tag, const uint8_t **val,
                    size_t *len)
{
    const uint8_t *q = *p;
    size_t l;

    if (end - q < 2)
        return -1;
    *tag = *q++;
    l = *q++;
    if (l & 0x80) {
        unsigned n = l & 0x7f;
        if (n == 0 || n > 3 || (size_t)(end - q) < n)
            return -1;
        for (l = 0; n; n--)
            l = (l << 8) | *q++;
    }
    if (l > (size_t)(end - q))
        return -1;
    *val = q;
    *len = l;
    *p = q + l;
    return 0;
}

static time_t der_time(uint8_t tag, const uint8_t *v, size_t len)
{
    if ((tag != 0x17 && tag != 0x18) || len > 32)
        return -1;
    return mtls_asn1_time(v, (int)len);
}

/* "CN=a,O=b": the usual attributes by name, others skipped; anything that
 * is not printable ASCII becomes '?' (the label goes into /metrics). */
static void der_name(const uint8_t *v, size_t len, char *out, size_t outlen)
{
    static const struct { uint8_t id; const char *name; } attrs[] = {
        {3, "CN"}, {6, "C"}, {7, "L"}, {8, "ST"}, {10, "O"}, {11, "OU"}};
    const uint8_t *p = v, *end = v + len, *set, *seq, *oid, *val;
    size_t o = 0, sl, ql, ol, vl;
    uint8_t tag;

    out[0] = '\0';
    while (p < end && der_next(&p, end, &tag, &set, &sl) == 0) {
        const uint8_t *sp = set;
        while (sp < set + sl && der_next(&sp, set + sl, &tag, &seq, &ql) == 0) {
            const uint8_t *qp = seq;
            if (der_next(&qp, seq + ql, &tag, &oid, &ol) < 0 || tag != 0x06 ||
                der_next(&qp, seq + ql, &tag, &val, &vl) < 0)
                continue;
            const char *name = NULL;
            if (ol == 3 && oid[0] == 0x55 && oid[1] == 0x04)
                for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++)
                    if (attrs[i].id == oid[2])
                        name = attrs[i].name;
            if (!name)
                continue;
            int n = snprintf(out + o, outlen - o, "%s%s=", o ? "," : "", name);
            if (n < 0 || (size_t)n >= outlen - o)
                return;
            o += (size_t)n;
            for (size_t i = 0; i < vl && o + 1 < outlen; i++)
                out[o++] = val[i] >= 0x20 && val[i] < 0x7f ? (char)val[i] : '?';
            out[o] = '\0';
        }
    }
}

/* Certificate: subject and notAfter. CRL: issuer and nextUpdate. */
static int der_dates(const uint8_t *der, size_t len, bool crl, struct dated *d)
{
    const uint8_t *p = der, *end = der + len, *v, *tbs, *f;
    size_t l, tl, fl;
    uint8_t tag;

    if (der_next(&p, end, &tag, &v, &l) < 0 || tag != 0x30)
        return -1;
    p = v;
    if (der_next(&p, v + l, &tag, &tbs, &tl) < 0 || tag != 0x30)
        return -1;
    p = tbs;
    end = tbs + tl;
    if (der_next(&p, end, &tag, &f, &fl) < 0)
        return -1;
    if (!crl) {
        if (tag == 0xa0 && der_next(&p, end, &tag, &f, &fl) < 0) /* version, serial */
            return -1;
        if (der_next(&p, end, &tag, &f, &fl) < 0 ||  /* signature algorithm */
            der_next(&p, end, &tag, &f, &fl) < 0 ||  /* issuer */
            der_next(&p, end, &tag, &v, &l) < 0 || tag != 0x30) /* validity */
            return -1;
        const uint8_t *vp = v;
        if (der_next(&vp, v + l, &tag, &f, &fl) < 0 ||  /* notBefore */
            der_next(&vp, v + l, &tag, &f, &fl) < 0)
            return -1;
        d->when = der_time(tag, f, fl);
        if (der_next(&p, end, &tag, &f, &fl) < 0 || tag != 0x30) /* subject */
            return -1;
        der_name(f, fl, d->name, sizeof(d->name));
        return d->when == -1 ? -1 : 0;
    }
    if (tag == 0x02 && der_next(&p, end, &tag, &f, &fl) < 0) /* version, algorithm */
        return -1;
    if (der_next(&p, end, &tag, &f, &fl) < 0 || tag != 0x30) /* issuer */
        return -1;
    der_name(f, fl, d->name, sizeof(d->name));
    if (der_next(&p, end, &tag, &f, &fl) < 0 || der_time(tag, f, fl) == -1) /* thisUpdate */
        return -1;
    d->when = -1;
    if (p < end && der_next(&p, end, &tag, &f, &fl) == 0)
        d->when = der_time(tag, f, fl); /* nextUpdate, or the revoked list: -1 */
    return 0;
}

static int read_all(const char *path, struct mtls_buf *b)
{
    FILE *f = fopen(path, "rb");
    char chunk[4096];
    size_t n;
    int ret = 0;

    if (!f)
        return -errno;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if (b->len + n > MAX_PEM_BYTES || mtls_buf_append(b, chunk, n) < 0) {
            ret = -EFBIG;
            break;
        }
    fclose(f);
    return ret == 0 ? mtls_buf_append(b, "", 1) : ret;
}

/* Every PEM block of `label` in `path`, each decoded and dated. */
static int read_pem(struct mtls_material *m, const char *flag, const char *path, char role,
                    const char *label, char *err, size_t errlen)
{
    char begin[64], stop[64];
    struct mtls_buf pem = {0};
    const char *p, *body, *e;
    unsigned found = 0;
    int ret;
    uint8_t *der = malloc(MAX_DER);

    snprintf(begin, sizeof(begin), "-----BEGIN %s-----", label);
    snprintf(stop, sizeof(stop), "-----END %s-----", label);
    if (!der || (ret = read_all(path, &pem)) < 0) {
        snprintf(err, errlen, "%s %s: %s", flag, path, der ? strerror(-ret) : "out of memory");
        goto fail;
    }
    for (p = strstr((const char *)pem.data, begin); p; p = strstr(e, begin)) {
        body = p + strlen(begin);
        e = strstr(body, stop);
        if (!e)
            break;
        word32 dlen = MAX_DER;
        struct dated d = {.role = role};
        if (Base64_Decode((const byte *)body, (word32)(e - body), der, &dlen) != 0 ||
            der_dates(der, dlen, role == 'r', &d) < 0) {
            snprintf(err, errlen, "%s %s: block %u does not parse as a %s", flag, path,
                     found + 1, role == 'r' ? "CRL" : "certificate");
            goto fail;
        }
        found++;
        if (m->n >= MAX_ENTRIES)
            continue;
        struct dated *grown = realloc(m->e, (m->n + 1) * sizeof(*grown));
        if (!grown) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        m->e = grown;
        m->e[m->n++] = d;
    }
    if (!found) {
        snprintf(err, errlen, "%s %s: no PEM %s found", flag, path, label);
        goto fail;
    }
    free(der);
    mtls_buf_free(&pem);
    return 0;
fail:
    free(der);
    mtls_buf_free(&pem);
    return -1;
}

struct mtls_material *mtls_material_read(const struct mtls_config *cfg, bool refuse_expired,
                                         char *err, size_t errlen)
{
    struct mtls_material *m = calloc(1, sizeof(*m));
    time_t now = time(NULL);

    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (read_pem(m, "--cert", cfg->cert_file, 's', "CERTIFICATE", err, errlen) < 0 ||
        read_pem(m, "--client-ca", cfg->verify.client_ca_file, 'c', "CERTIFICATE", err, errlen) < 0)
        goto fail;
    for (unsigned i = 0; i < cfg->verify.n_crl_files; i++)
        if (read_pem(m, "--crl", cfg->verify.crl_files[i], 'r', "X509 CRL", err, errlen) < 0)
            goto fail;
    for (unsigned i = 0; refuse_expired && i < m->n; i++)
        if (m->e[i].role == 's' && m->e[i].when < now) {
            snprintf(err, errlen, "--cert %s: certificate '%s' has expired", cfg->cert_file,
                     m->e[i].name);
            goto fail;
        }
    return m;
fail:
    mtls_material_free(m);
    return NULL;
}

void mtls_material_free(struct mtls_material *m)
{
    if (!m)
        return;
    free(m->e);
    free(m);
}

/* Under `lock`. */
static void warn_expiry(const struct mtls_material *m, const struct mtls_config *cfg)
{
    time_t now = time(NULL), soonest = (time_t)-1;
    const char *name = "";

    for (unsigned i = 0; m && i < m->n; i++)
        if (m->e[i].role == 's' && (soonest == (time_t)-1 || m->e[i].when < soonest)) {
            soonest = m->e[i].when;
            name = m->e[i].name;
        }
    if (soonest != (time_t)-1 && soonest - now < (time_t)cfg->expiry_warning_s)
        log_warn("server certificate '%s' (--cert %s) %s in %lld s: renew it", name,
                 cfg->cert_file, soonest < now ? "expired" : "expires",
                 (long long)(soonest - now));
}

void mtls_material_commit(struct mtls_material *m, const struct mtls_config *cfg)
{
    pthread_mutex_lock(&lock);
    struct mtls_material *old = current;
    current = m;
    last_reload = time(NULL);
    warn_expiry(m, cfg);
    pthread_mutex_unlock(&lock);
    mtls_material_free(old);
}

void mtls_material_check_expiry(const struct mtls_config *cfg)
{
    pthread_mutex_lock(&lock);
    warn_expiry(current, cfg);
    pthread_mutex_unlock(&lock);
}

void mtls_material_count_reload(bool ok)
{
    pthread_mutex_lock(&lock);
    if (ok)
        reloads_ok++;
    else
        reloads_failed++;
    pthread_mutex_unlock(&lock);
}

static int put(struct mtls_buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int put(struct mtls_buf *out, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line))
        return -1;
    return mtls_buf_append(out, line, (size_t)n);
}

/* Prometheus label values escape backslash and double quote. */
static void label(char *dst, size_t dlen, const char *src)
{
    size_t o = 0;

    for (; *src && o + 2 < dlen; src++) {
        if (*src == '\\' || *src == '"')
            dst[o++] = '\\';
        dst[o++] = *src;
    }
    dst[o] = '\0';
}

int mtls_material_render(struct mtls_buf *out)
{
    char name[2 * SUBJECT_MAX + 1];
    int ret = 0;

    pthread_mutex_lock(&lock);
    ret |= put(out, "# HELP mtlsd_reloads_total reloads of certificates, keys, CAs, CRLs and "
                    "ticket keys (SIGHUP, file watch or --reload-interval)\n"
                    "# TYPE mtlsd_reloads_total counter\n"
                    "mtlsd_reloads_total{result=\"ok\"} %llu\n"
                    "mtlsd_reloads_total{result=\"failed\"} %llu\n",
               (unsigned long long)reloads_ok, (unsigned long long)reloads_failed);
    ret |= put(out, "# HELP mtlsd_last_reload_timestamp_seconds time of the last successful "
                    "load (start-up or reload)\n"
                    "# TYPE mtlsd_last_reload_timestamp_seconds gauge\n"
                    "mtlsd_last_reload_timestamp_seconds %lld\n",
               (long long)last_reload);
    ret |= put(out, "# HELP mtlsd_certificate_not_after_timestamp_seconds notAfter of each "
                    "certificate in service\n"
                    "# TYPE mtlsd_certificate_not_after_timestamp_seconds gauge\n");
    for (unsigned i = 0; current && i < current->n; i++) {
        const struct dated *d = &current->e[i];
        if (d->role == 'r')
            continue;
        label(name, sizeof(name), d->name);
        ret |= put(out,
                   "mtlsd_certificate_not_after_timestamp_seconds{role=\"%s\",subject=\"%s\"} "
                   "%lld\n",
                   d->role == 's' ? "server" : "client_ca", name, (long long)d->when);
    }
    ret |= put(out, "# HELP mtlsd_crl_next_update_timestamp_seconds nextUpdate of each CRL "
                    "in service (-1: none)\n"
                    "# TYPE mtlsd_crl_next_update_timestamp_seconds gauge\n");
    for (unsigned i = 0; current && i < current->n; i++) {
        const struct dated *d = &current->e[i];
        if (d->role != 'r')
            continue;
        label(name, sizeof(name), d->name);
        ret |= put(out, "mtlsd_crl_next_update_timestamp_seconds{issuer=\"%s\"} %lld\n", name,
                   (long long)d->when);
    }
    pthread_mutex_unlock(&lock);
    return ret < 0 ? -1 : 0;
}

void mtls_material_shutdown(void)
{
    pthread_mutex_lock(&lock);
    mtls_material_free(current);
    current = NULL;
    pthread_mutex_unlock(&lock);
}
