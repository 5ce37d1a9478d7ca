/* Minimal assertions for the C unit tests; prints "N passed, N failed". */
#ifndef MTLSD_TEST_CHECK_H
#define MTLSD_TEST_CHECK_H

#include <stdio.h>

static int checks_passed, checks_failed;

#define CHECK(cond)                                                             \
    do {                                                                        \
        if (cond) {                                                             \
            checks_passed++;                                                    \
        } else {                                                                \
            checks_failed++;                                                    \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                       \
    } while (0)

static inline int check_report(void)
{
    printf("%d passed, %d failed\n", checks_passed, checks_failed);
    return checks_failed ? 1 : 0;
}

#endif
