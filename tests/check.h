/* Minimal test helpers: CHECK prints the expression, file:line and the lmr error string. */
#ifndef LMR_TEST_CHECK_H
#define LMR_TEST_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "lmr_error.h"

static int check_failures;

#define CHECK(expr)                                                                 \
    do {                                                                            \
        if (!(expr)) {                                                              \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr); \
            check_failures++;                                                       \
        }                                                                           \
    } while (0)

/* CHECK_RC(expr, want): expr returns an lmr code that must equal want. */
#define CHECK_RC(expr, want)                                                              \
    do {                                                                                  \
        int check_rc_ = (expr);                                                           \
        if (check_rc_ != (want)) {                                                        \
            fprintf(stderr, "%s:%d: %s returned %d (%s), want %d (%s)\n", __FILE__, __LINE__, \
                    #expr, check_rc_, lmr_strerror(check_rc_), (want), lmr_strerror(want)); \
            check_failures++;                                                             \
        }                                                                                 \
    } while (0)

/* |got - want| <= atol + rtol * |want| */
#define CHECK_CLOSE(got, want, atol, rtol)                                                  \
    do {                                                                                    \
        double g_ = (got), w_ = (want);                                                     \
        if (!(fabs(g_ - w_) <= (atol) + (rtol) * fabs(w_))) {                               \
            fprintf(stderr, "%s:%d: %s = %.9g, want %.9g\n", __FILE__, __LINE__, #got, g_, w_); \
            check_failures++;                                                               \
        }                                                                                   \
    } while (0)

#define TEST(n, what) printf("test %d: %s\n", (n), (what))

#define CHECK_DONE()                                                  \
    do {                                                              \
        if (check_failures) {                                         \
            fprintf(stderr, "%d check(s) failed\n", check_failures);  \
            return 1;                                                 \
        }                                                             \
        printf("all checks passed\n");                                \
        return 0;                                                     \
    } while (0)

#endif
