/* log.c: timestamped lines on stderr, one write(2) each so that lines from
 * several workers never interleave. */
#include "mtlsd/log.h"
#include "mtlsd/clock.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

enum mtls_log_level mtls_log_level = MTLS_LOG_INFO;

void mtls_log(enum mtls_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    char line[1024];
    char stamp[MTLS_TIMESTAMP_LEN];
    va_list ap;
    int n, m;

    if (level > mtls_log_level)
        return;
    mtls_timestamp(stamp);
    n = snprintf(line, sizeof(line), "%s mtlsd %s: ", stamp, names[level]);
    va_start(ap, fmt);
    m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    n += m;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, (size_t)n) < 0) {
        /* nowhere else to report it */
    }
}
