/*
 * ht_test.h - the few macros hoptrace's unit tests share. Assertions never
 * compile out: a failed CHECK is counted and reported, and the test exits 1.
 */
#ifndef HT_TEST_H
#define HT_TEST_H

#include <stdio.h>
#include <string.h>

static int ht_test_failures;

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                    \
            ht_test_failures++;                                                \
        }                                                                      \
    } while (0)

#define CHECK_STREQ(a, b)                                                      \
    do {                                                                       \
        const char *a_ = (a), *b_ = (b);                                       \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) {                               \
            fprintf(stderr, "%s:%d: \"%s\" != \"%s\"\n", __FILE__, __LINE__,   \
                    a_ ? a_ : "(null)", b_ ? b_ : "(null)");                   \
            ht_test_failures++;                                                \
        }                                                                      \
    } while (0)

#define TEST_DONE()                                                            \
    do {                                                                       \
        if (ht_test_failures) {                                                \
            fprintf(stderr, "%d check(s) failed\n", ht_test_failures);         \
            return 1;                                                          \
        }                                                                      \
        printf("all checks passed\n");                                         \
        return 0;                                                              \
    } while (0)

#endif
