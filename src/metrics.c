/* metrics.c: the sum over workers, read with relaxed loads. */
#include "mtlsd/metrics.h"

#include <stdio.h>

#define MAX_WORKERS 1024

static struct mtls_metrics *workers[MAX_WORKERS];
static unsigned n_workers;

void mtls_metrics_register(struct mtls_metrics *m)
{
    if (n_workers < MAX_WORKERS)
        workers[n_workers++] = m;
}

int mtls_metrics_render(struct mtls_buf *out)
{
    char line[256];
    int n;

#define X(name, help)                                                                  \
    do {                                                                               \
        uint64_t sum = 0;                                                              \
        for (unsigned i = 0; i < n_workers; i++)                                       \
            sum += __atomic_load_n(&workers[i]->name, __ATOMIC_RELAXED);               \
        n = snprintf(line, sizeof(line), "# HELP mtlsd_" #name " " help "\n# TYPE mtlsd_" \
                     #name " %s\nmtlsd_" #name " %llu\n",                              \
                     __builtin_strcmp(#name, "connections_open") ? "counter" : "gauge", \
                     (unsigned long long)sum);                                         \
        if (n < 0 || mtls_buf_append(out, line, (size_t)n) < 0)                        \
            return -1;                                                                 \
    } while (0);
    MTLS_METRICS(X)
#undef X
    return 0;
}
