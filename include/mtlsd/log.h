/* Logging to stderr. Never pass key material or ticket keys to these. */
#ifndef MTLSD_LOG_H
#define MTLSD_LOG_H

enum mtls_log_level { MTLS_LOG_ERROR, MTLS_LOG_WARN, MTLS_LOG_INFO, MTLS_LOG_DEBUG };

extern enum mtls_log_level mtls_log_level;

void mtls_log(enum mtls_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...) mtls_log(MTLS_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) mtls_log(MTLS_LOG_WARN, __VA_ARGS__)
#define log_info(...) mtls_log(MTLS_LOG_INFO, __VA_ARGS__)
#define log_debug(...) \
    do { if (mtls_log_level >= MTLS_LOG_DEBUG) mtls_log(MTLS_LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
