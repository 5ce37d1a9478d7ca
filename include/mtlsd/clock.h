/* Clocks and the one timestamp format of logs (log.c, access_log.c). */
#ifndef MTLSD_CLOCK_H
#define MTLSD_CLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

/* Monotonic time: deadlines, timers, durations (never the wall clock). */
static inline uint64_t mtls_mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static inline uint64_t mtls_mono_ms(void)
{
    return mtls_mono_us() / 1000;
}

/* "2026-12-07T01:02:03.456Z": 24 bytes; room for any struct tm. */
#define MTLS_TIMESTAMP_LEN 64

/* Now, in UTC with milliseconds (RFC 3339); returns its length. */
static inline int mtls_timestamp(char out[MTLS_TIMESTAMP_LEN])
{
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    return snprintf(out, MTLS_TIMESTAMP_LEN, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
                    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                    tm.tm_sec, ts.tv_nsec / 1000000);
}

#endif
