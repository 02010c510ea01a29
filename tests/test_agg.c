/*
 * test_agg.c - unit tests of query/agg.c: the histogram's documented error
 * bound (a bin's value within 0.2 % of every value in it, bins in value
 * order), and the incremental refresh: a consumer summarized as its own
 * request before its producer arrives is dropped once the producer makes
 * it part of the producer's request; the dirty set is consumed; a second
 * refresh with nothing dirty changes nothing.
 */
#define _GNU_SOURCE
#include "ht_assembler.h"
#include "ht_query.h"
#include "ht_test.h"

#include <math.h>
#include <stdlib.h>
#include <unistd.h>

static void test_bins(void)
{
    uint32_t prev = 0;
    double worst = 0;

    for (int64_t v = 0; v < 300; v++)
        CHECK(ht__agg_bin_value(ht__agg_bin(v)) == (double)v);
    /* dense near powers of two, sparse elsewhere, up to ~12 days in µs */
    for (int64_t v = 1; v < (1LL << 40); v += 1 + v / 997) {
        uint32_t b = ht__agg_bin(v);
        double got = ht__agg_bin_value(b);
        double err = fabs(got - (double)v) / (double)v;

        CHECK(b >= prev);
        prev = b;
        if (err > worst)
            worst = err;
    }
    for (int e = 8; e < 40; e++) {
        int64_t edge = 1LL << e;

        CHECK(ht__agg_bin(edge - 1) + 1 == ht__agg_bin(edge));
        CHECK(fabs(ht__agg_bin_value(ht__agg_bin(edge)) - (double)edge) <=
              (double)edge / 512);
    }
    CHECK(worst <= 1.0 / 512);
    CHECK(ht__agg_bin(-5) == 0);
    printf("histogram worst relative error %.4f %%\n", worst * 100);
}

#define TA "1-6b083520-c49c720af84bd7b4b9c2b14a"
#define TB "1-6b083521-0a0a0a0a0a0a0a0a0a0a0a0a"

/* The producer: a function invoked on its own (no parent), sending m-1. */
#define PRODUCER                                                               \
    "{\"trace_id\":\"" TA "\",\"id\":\"75a5c05990eab629\",\"name\":"           \
    "\"create\",\"origin\":\"AWS::Lambda\",\"aws\":{\"request_id\":"           \
    "\"r-0\"},\"start_time\":1795700000.500,\"end_time\":1795700000.600,"      \
    "\"subsegments\":[{\"id\":\"24f6a303b83ea7bd\",\"name\":\"SQS\","          \
    "\"start_time\":1795700000.520,\"end_time\":1795700000.540,"               \
    "\"namespace\":\"aws\",\"aws\":{\"operation\":\"SendMessage\","            \
    "\"queue_url\":\"https://sqs.us-east-1.amazonaws.com/1/q\","               \
    "\"message_id\":\"m-1\"}}]}\n"

/* The consumer: its own trace, and the logged SQS record m-1. */
#define CONSUMER                                                               \
    "{\"trace_id\":\"" TB "\",\"id\":\"1111222233334444\",\"name\":"           \
    "\"charge\",\"origin\":\"AWS::Lambda\",\"aws\":{\"request_id\":"           \
    "\"r-1\"},\"start_time\":1795700001.000,\"end_time\":1795700001.250}\n"

#define CONSUMER_LOG                                                           \
    "{\"messageType\":\"DATA_MESSAGE\",\"logGroup\":\"/aws/lambda/charge\","   \
    "\"logEvents\":[{\"id\":\"1\",\"timestamp\":1795700001004,\"message\":"    \
    "\"START RequestId: r-1 Version: $LATEST\\n\"},{\"id\":\"2\","             \
    "\"timestamp\":1795700001005,\"message\":\"{\\\"function_request_id\\\":"  \
    "\\\"r-1\\\",\\\"xray_trace_id\\\":\\\"" TB "\\\",\\\"event\\\":{"         \
    "\\\"Records\\\":[{\\\"messageId\\\":\\\"m-1\\\",\\\"body\\\":\\\"{}\\\"," \
    "\\\"eventSource\\\":\\\"aws:sqs\\\",\\\"eventSourceARN\\\":"              \
    "\\\"arn:aws:sqs:us-east-1:1:q\\\"}]}}\"}]}"

static struct ht_store *store;

static void apply(const char *payload)
{
    struct ht_batch b;
    struct ht_txn *t;
    struct ht_asm_stats st = {0};
    struct ht_srcpos pos = {"test", 1};

    CHECK(ht_batch_init(&b) == HT_ERR_OK);
    ht_ingest_payload(&b, &pos, payload, strlen(payload));
    CHECK(ht_store_begin(store, true, &t) == HT_ERR_OK);
    CHECK(ht_assembler_apply(t, &b, &st) == HT_ERR_OK);
    CHECK(ht_store_commit(t) == HT_ERR_OK);
    ht_batch_free(&b);
}

static uint64_t dirty(void)
{
    struct ht_txn *t;
    uint64_t n = 99;

    CHECK(ht_store_begin(store, false, &t) == HT_ERR_OK);
    ht_store_count(t, HT_DB_DIRTY, &n);
    ht_store_abort(t);
    return n;
}

static char *endpoints(bool exact)
{
    struct ht_agg_opts o = {.since_us = 0,
                            .until_us = INT64_MAX,
                            .exact = exact,
                            .format = HT_AGG_JSON};
    struct ht_buf b;
    char *s;

    ht_buf_init(&b);
    CHECK(ht_agg_endpoints(store, &o, &b) == HT_ERR_OK);
    s = strdup(b.len ? b.data : "");
    ht_buf_free(&b);
    return s;
}

static void test_refresh(void)
{
    char dir[] = "/tmp/ht_test_agg_XXXXXX";
    struct ht_agg_stats st;
    char *j, *h;

    CHECK(mkdtemp(dir) != NULL);
    CHECK(ht_store_open(dir, false, &store) == HT_ERR_OK);

    /* the consumer alone: a request of its own, route "charge" */
    apply(CONSUMER);
    apply(CONSUMER_LOG);
    CHECK(dirty() == 1);
    CHECK(ht_agg_refresh(store, &st) == HT_ERR_OK);
    CHECK(st.traces == 1 && st.requests == 1 && st.removed == 0);
    CHECK(dirty() == 0);
    j = endpoints(true);
    CHECK(strstr(j, "\"route\":\"charge\",\"api\":\"\",\"stage\":\"\","
                    "\"count\":1") != NULL);
    free(j);

    /* the producer arrives: one request rooted at create, sync 100 ms,
     * end to end 750 ms; the consumer's own summary is dropped */
    apply(PRODUCER);
    CHECK(ht_agg_refresh(store, &st) == HT_ERR_OK);
    CHECK(st.removed == 1);
    CHECK(dirty() == 0);
    j = endpoints(true);
    CHECK_STREQ(j, "{\"routes\":[{\"route\":\"create\",\"api\":\"\","
                   "\"stage\":\"\",\"count\":1,\"errors\":0,\"faults\":0,"
                   "\"throttles\":0,\"incomplete\":0,\"incomplete_share\":"
                   "0.0000,\"sync_ms\":{\"p50\":100.000,\"p90\":100.000,"
                   "\"p99\":100.000,\"max\":100.000},\"e2e_ms\":{\"p50\":"
                   "750.000,\"p90\":750.000,\"p99\":750.000,\"max\":750.000}}"
                   "],\"exact\":true}\n");
    /* the histograms agree within their bound, and had the consumer
     * taken away (one route left) */
    h = endpoints(false);
    CHECK(strstr(h, "\"route\":\"charge\"") == NULL);
    CHECK(strstr(h, "\"count\":1,") != NULL);
    free(h);

    /* nothing dirty: nothing changes */
    CHECK(ht_agg_refresh(store, &st) == HT_ERR_OK);
    CHECK(st.traces == 0 && st.requests == 0);
    h = endpoints(true);
    CHECK_STREQ(h, j);
    free(h);
    free(j);

    /* the same input again: dirty again, same answer */
    apply(PRODUCER);
    apply(CONSUMER);
    CHECK(ht_agg_refresh(store, &st) == HT_ERR_OK);
    CHECK(st.removed == 0);
    h = endpoints(true);
    CHECK(strstr(h, "\"count\":1,") != NULL &&
          strstr(h, "\"route\":\"charge\"") == NULL);
    free(h);

    ht_store_close(store);
    {
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        CHECK(system(cmd) == 0);
    }
}

int main(void)
{
    test_bins();
    test_refresh();
    TEST_DONE();
}
