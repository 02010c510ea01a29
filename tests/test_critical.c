/*
 * test_critical.c - unit tests of the critical path (query/critical.c) on
 * hand-built requests: CRISP's choice of the last-ending child, kinds
 * (self/call/init/wait, a logs-only Init Duration), contiguity and the
 * sum invariant, and clamping with a skew warning when clocks disagree
 * (the path from the root to the sink, every skewed hop warned), and a
 * message two hops carried (SNS into SQS) as two waits.
 */
#define _GNU_SOURCE
#include "ht_query.h"
#include "ht_test.h"

#include <stdlib.h>

static struct ht_qspan mk(const char *name, int parent, int kind, int64_t start,
                          int64_t end)
{
    struct ht_qspan s;
    char hex[17];

    memset(&s, 0, sizeof(s));
    snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)(start + end));
    ht_id8_parse(hex, 16, &s.s.id);
    s.s.name = name;
    s.s.kind = (uint8_t)kind;
    s.s.start_us = start;
    s.s.end_us = end;
    s.parent = parent;
    s.wait_hop = -1;
    return s;
}

/* A request over spans[0..n) with hops[0..nh), from start to end. */
static void request_of(struct ht_request *r, struct ht_qspan *spans, size_t n,
                       struct ht_qhop *hops, size_t nh, int64_t start,
                       int64_t end)
{
    memset(r, 0, sizeof(*r));
    r->spans = spans;
    r->nspans = n;
    r->hops = hops;
    r->nhops = nh;
    r->start_us = start;
    r->end_us = end;
}

/* Contiguous entries that sum to the duration; with expect_skew a skew
 * warning instead of the sum (entries stay contiguous unless a hop's
 * consumer ran before its producer's call ended, checked by the caller). */
static void check_invariants(const struct ht_request *r, bool expect_skew)
{
    int64_t sum = 0;

    for (size_t i = 0; i < r->ncp; i++) {
        sum += r->cp[i].dur_us;
        if (i && !expect_skew)
            CHECK(r->cp[i - 1].start_us + r->cp[i - 1].dur_us ==
                  r->cp[i].start_us);
        CHECK(r->cp[i].dur_us > 0);
    }
    if (!expect_skew) {
        CHECK(sum == r->end_us - r->start_us);
        CHECK(r->nwarnings == 0);
    } else {
        CHECK(r->nwarnings > 0 && strstr(r->warnings[0], "\"skew\""));
    }
}

int main(void)
{
    struct ht_arena *a = ht_arena_create();
    struct ht_request r;
    struct ht_qspan sp[8];
    struct ht_qhop hop;

    /* root 0..100 with two overlapping children; the later-ending one is
     * critical, the earlier one only where it ends before that starts */
    sp[0] = mk("api", -1, HT_SK_APIGW, 0, 100);
    sp[1] = mk("a", 0, HT_SK_CALL, 10, 40);
    sp[2] = mk("b", 0, HT_SK_CALL, 30, 90);
    sp[3] = mk("Initialization", 2, HT_SK_INIT, 30, 50);
    request_of(&r, sp, 4, NULL, 0, 0, 100);
    ht__critical_path(&r, a);
    check_invariants(&r, false);
    /* api 0-30 self, b: init 30-50, b call 50-90, api 90-100 */
    CHECK(r.ncp == 4);
    CHECK(r.cp[0].span == 0 && r.cp[0].kind == HT_CP_SELF &&
          r.cp[0].dur_us == 30);
    CHECK(r.cp[1].span == 3 && r.cp[1].kind == HT_CP_INIT);
    CHECK(r.cp[2].span == 2 && r.cp[2].kind == HT_CP_CALL &&
          r.cp[2].dur_us == 40);
    CHECK(r.cp[3].span == 0 && r.cp[3].dur_us == 10);

    /* an async hop: producer call 20-30 inside root 0-35, consumer 80-150 */
    sp[0] = mk("producer", -1, HT_SK_FUNCTION, 0, 35);
    sp[1] = mk("SQS", 0, HT_SK_CALL, 20, 30);
    sp[2] = mk("consumer", -1, HT_SK_LAMBDA, 80, 150);
    memset(&hop, 0, sizeof(hop));
    hop.from = 1;
    hop.to = 2;
    hop.via = HT_VIA_SQS;
    hop.resource = "q";
    request_of(&r, sp, 3, &hop, 1, 0, 150);
    ht__critical_path(&r, a);
    check_invariants(&r, false);
    CHECK(r.ncp == 4);
    CHECK(r.cp[2].kind == HT_CP_WAIT && r.cp[2].start_us == 30 &&
          r.cp[2].dur_us == 50 && r.cp[2].hop == 0 && r.cp[2].span == 2);

    /* two legs (SNS into SQS): sns from the call's end (30) to when the
     * queue took the message (at 55), sqs from there to the consumer (80):
     * two wait entries that meet at 55; the inner leg is not the hop the
     * path takes, and no skew */
    {
        struct ht_qhop legs[2];

        memset(legs, 0, sizeof(legs));
        legs[0].from = legs[1].from = 1;
        legs[0].to = legs[1].to = 2;
        legs[0].via = HT_VIA_SNS;
        legs[0].resource = "topic";
        legs[0].inner = true;
        legs[0].at_us = 55;
        legs[1].via = HT_VIA_SQS;
        legs[1].resource = "q";
        legs[1].leg_of = 1;
        legs[1].at_us = 55;
        request_of(&r, sp, 3, legs, 2, 0, 150);
        ht__critical_path(&r, a);
        check_invariants(&r, false);
        CHECK(r.ncp == 5);
        CHECK(r.cp[2].kind == HT_CP_WAIT && r.cp[2].hop == 0 &&
              r.cp[2].start_us == 30 && r.cp[2].dur_us == 25);
        CHECK(r.cp[3].kind == HT_CP_WAIT && r.cp[3].hop == 1 &&
              r.cp[3].start_us == 55 && r.cp[3].dur_us == 25 &&
              r.cp[3].span == 2);
        /* a SentTimestamp outside the wait (clocks): clamped into it, the
         * path stays contiguous (here: all of it the sqs leg's) */
        legs[0].at_us = legs[1].at_us = 10;
        ht__critical_path(&r, a);
        check_invariants(&r, false);
        CHECK(r.ncp == 4 && r.cp[2].hop == 1 && r.cp[2].dur_us == 50);
        legs[0].at_us = legs[1].at_us = 95;
        ht__critical_path(&r, a);
        check_invariants(&r, false);
        CHECK(r.ncp == 4 && r.cp[2].hop == 0 && r.cp[2].dur_us == 50);
    }
    /* the next case is the single hop's again (legs is gone) */
    request_of(&r, sp, 3, &hop, 1, 0, 150);

    /* skew: the consumer starts before the producer call ended. The path
     * still starts at the root and ends at the sink; the wait is clamped
     * to nothing, the consumer is told on its own clock */
    sp[2] = mk("consumer", -1, HT_SK_LAMBDA, 25, 150);
    ht__critical_path(&r, a);
    check_invariants(&r, true);
    CHECK(r.cp[0].span == 0 && r.cp[0].start_us == 0);
    CHECK(r.cp[r.ncp - 1].span == 2 &&
          r.cp[r.ncp - 1].start_us + r.cp[r.ncp - 1].dur_us == 150);
    for (size_t i = 0; i < r.ncp; i++)
        CHECK(r.cp[i].kind != HT_CP_WAIT);
    CHECK(strstr(r.warnings[0], "\"spans\":[") != NULL);

    /* skew: the whole producer runs after the consumer started (its host's
     * clock is far behind): the path starts at the root (the producer),
     * not at the skewed consumer, and still holds the consumer */
    sp[0] = mk("producer", -1, HT_SK_FUNCTION, 100, 150);
    sp[1] = mk("SQS", 0, HT_SK_CALL, 120, 150);
    sp[2] = mk("consumer", -1, HT_SK_LAMBDA, 90, 300);
    request_of(&r, sp, 3, &hop, 1, 90, 300);
    ht__critical_path(&r, a);
    check_invariants(&r, true);
    CHECK(r.cp[0].span == 0 && r.cp[0].start_us == 100);
    CHECK(r.cp[r.ncp - 1].span == 2 &&
          r.cp[r.ncp - 1].start_us + r.cp[r.ncp - 1].dur_us == 300);
    {
        char want[80], p1[17], p2[17];

        ht_id8_format(&sp[1].s.id, p1);
        ht_id8_format(&sp[2].s.id, p2);
        snprintf(want, sizeof(want), "\"spans\":[\"%s\",\"%s\"]", p1, p2);
        CHECK(r.nwarnings == 1 && strstr(r.warnings[0], want) != NULL);
    }

    /* a skewed hop off the critical path is warned about too: root calls
     * two queues; consumer a (skewed) ends early, consumer b ends last */
    {
        struct ht_qhop hh[2];
        char want[80], p1[17], p2[17];

        sp[0] = mk("root", -1, HT_SK_FUNCTION, 0, 50);
        sp[1] = mk("SQS", 0, HT_SK_CALL, 10, 20);
        sp[2] = mk("SQS", 0, HT_SK_CALL, 25, 40);
        sp[3] = mk("a", -1, HT_SK_LAMBDA, 15, 60);
        sp[4] = mk("b", -1, HT_SK_LAMBDA, 200, 400);
        memset(hh, 0, sizeof(hh));
        hh[0].from = 1;
        hh[0].to = 3;
        hh[1].from = 2;
        hh[1].to = 4;
        hh[0].via = hh[1].via = HT_VIA_SQS;
        hh[0].resource = hh[1].resource = "q";
        request_of(&r, sp, 5, hh, 2, 0, 400);
        ht__critical_path(&r, a);
        for (size_t i = 0; i < r.ncp; i++)
            CHECK(r.cp[i].span != 3);
        ht_id8_format(&sp[1].s.id, p1);
        ht_id8_format(&sp[3].s.id, p2);
        snprintf(want, sizeof(want), "\"spans\":[\"%s\",\"%s\"]", p1, p2);
        CHECK(r.nwarnings == 1 && strstr(r.warnings[0], want) != NULL);
        /* a pending hop (no consumer) is neither on the path nor skew */
        hh[1].to = -1;
        hh[1].pending = true;
        sp[4] = mk("c", -1, HT_SK_LAMBDA, 45, 70);
        request_of(&r, sp, 5, hh, 2, 0, 70);
        ht__critical_path(&r, a);
        CHECK(r.nwarnings == 1);
    }

    /* a logs-only invocation's Init Duration is `init` on the path */
    sp[0] = mk("producer", -1, HT_SK_FUNCTION, 0, 35);
    sp[1] = mk("SQS", 0, HT_SK_CALL, 20, 30);
    sp[2] = mk("consumer", -1, HT_SK_FUNCTION, 80, 150);
    sp[2].logs_only = true;
    sp[2].init_us = 40;
    memset(&hop, 0, sizeof(hop));
    hop.from = 1;
    hop.to = 2;
    hop.via = HT_VIA_SQS;
    hop.resource = "q";
    request_of(&r, sp, 3, &hop, 1, 0, 150);
    ht__critical_path(&r, a);
    check_invariants(&r, false);
    CHECK(r.ncp == 5);
    CHECK(r.cp[3].span == 2 && r.cp[3].kind == HT_CP_INIT &&
          r.cp[3].start_us == 80 && r.cp[3].dur_us == 40);
    CHECK(r.cp[4].span == 2 && r.cp[4].kind == HT_CP_SELF &&
          r.cp[4].dur_us == 30);

    /* many sequential children: each is on the path, in order */
    {
        static struct ht_qspan many[2001];

        many[0] = mk("root", -1, HT_SK_SEGMENT, 0, 20000);
        for (int i = 1; i <= 2000; i++)
            many[i] =
                mk("call", 0, HT_SK_CALL, (i - 1) * 10, (i - 1) * 10 + 10);
        request_of(&r, many, 2001, NULL, 0, 0, 20000);
        ht__critical_path(&r, a);
        check_invariants(&r, false);
        CHECK(r.ncp == 2000);
    }

    /* an async invoke: the Lambda segment starts inside the caller's
     * Invoke call; its Dwell Time is the hop's wait on the path */
    sp[0] = mk("caller", -1, HT_SK_FUNCTION, 0, 60);
    sp[1] = mk("Lambda", 0, HT_SK_CALL, 10, 40);
    sp[2] = mk("worker", 1, HT_SK_LAMBDA, 30, 500);
    sp[3] = mk("Dwell Time", 2, HT_SK_LOCAL, 30, 230);
    sp[4] = mk("worker", 2, HT_SK_FUNCTION, 230, 500);
    sp[3].wait_hop = 0;
    memset(&hop, 0, sizeof(hop));
    hop.from = 1;
    hop.to = 2;
    hop.via = HT_VIA_LAMBDA;
    hop.resource = "worker";
    request_of(&r, sp, 5, &hop, 1, 0, 500);
    ht__critical_path(&r, a);
    check_invariants(&r, false);
    {
        bool waited = false;

        for (size_t i = 0; i < r.ncp; i++)
            if (r.cp[i].kind == HT_CP_WAIT)
                waited = r.cp[i].span == 2 && r.cp[i].dur_us == 200 &&
                         r.cp[i].hop == 0;
        CHECK(waited);
    }

    /* skew: a child starting before its parent */
    sp[0] = mk("parent", -1, HT_SK_SEGMENT, 10, 100);
    sp[1] = mk("child", 0, HT_SK_CALL, 5, 60);
    request_of(&r, sp, 2, NULL, 0, 5, 100);
    ht__critical_path(&r, a);
    check_invariants(&r, true);

    ht_arena_destroy(a);
    TEST_DONE();
}
