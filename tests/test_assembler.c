/*
 * test_assembler.c - unit tests of assembler/: a decoded batch written
 * twice leaves the store unchanged; an in-progress span never replaces its
 * complete version (in either arrival order); hop halves meet whichever
 * arrives first; rejects land in the dead-letter table; invocation facts
 * merge into one invocation record. All of it through both paths: the
 * one-step ht_assembler_apply and the sink's prepare + apply_prepared,
 * which must write byte-identical stores.
 */
#define _GNU_SOURCE
#include "ht_assembler.h"
#include "ht_test.h"

#include <stdlib.h>
#include <unistd.h>

#define PRODUCER                                                               \
    "{\"type\":\"subsegment\",\"trace_id\":\"1-6b083520-c49c720af84bd7b4b9c"   \
    "2b14a\",\"parent_id\":\"75a5c05990eab629\",\"id\":\"24f6a303b83ea7bd\","  \
    "\"name\":\"SQS\",\"start_time\":1795700000.5561056,%s,\"namespace\":"     \
    "\"aws\",\"aws\":{\"operation\":\"SendMessage\",\"queue_url\":\"https:/"   \
    "/sqs.us-east-1.amazonaws.com/1/payments-queue\",\"message_id\":\"m-1\"}}"

#define CONSUMER_LOG                                                           \
    "{\"messageType\":\"DATA_MESSAGE\",\"logGroup\":\"/aws/lambda/charge\","   \
    "\"logEvents\":[{\"id\":\"1\",\"timestamp\":1795700001004,\"message\":"    \
    "\"START RequestId: r-1 Version: $LATEST\\n\"},{\"id\":\"2\","             \
    "\"timestamp\":1795700001005,\"message\":\"{\\\"function_request_id\\\":"  \
    "\\\"r-1\\\",\\\"event\\\":{\\\"Records\\\":[{\\\"messageId\\\":"          \
    "\\\"m-1\\\",\\\"body\\\":\\\"{}\\\",\\\"eventSource\\\":\\\"aws:sqs\\\"," \
    "\\\"eventSourceARN\\\":\\\"arn:aws:sqs:us-east-1:1:payments-queue\\\"}"   \
    "]}}\"},{\"id\":\"3\",\"timestamp\":1795700001044,\"message\":\"REPORT "   \
    "RequestId: r-1\\tDuration: 38.34 ms\\tBilled Duration: 39 ms\\tMemory "   \
    "Size: 512 MB\\tMax Memory Used: 92 MB\\tInit Duration: 376.00 ms\\t\\n\"" \
    "}]}"

static struct ht_store *store;
static bool use_prep; /* apply through prepare + apply_prepared (the sink's) */

static uint64_t count(int db)
{
    struct ht_txn *t;
    uint64_t n = 0;

    CHECK(ht_store_begin(store, false, &t) == HT_ERR_OK);
    ht_store_count(t, db, &n);
    ht_store_abort(t);
    return n;
}

static struct ht_asm_stats apply(const char *payload)
{
    struct ht_batch b;
    struct ht_txn *t;
    struct ht_asm_stats st = {0};
    struct ht_srcpos pos = {"test", 7};

    CHECK(ht_batch_init(&b) == HT_ERR_OK);
    ht_ingest_payload(&b, &pos, payload, strlen(payload));
    if (use_prep) {
        struct ht_asm_prep *p;

        /* prepared before the transaction, as the sink's decoder does */
        CHECK(ht_assembler_prepare(&b, &p) == HT_ERR_OK);
        CHECK(ht_store_begin(store, true, &t) == HT_ERR_OK);
        CHECK(ht_assembler_apply_prepared(t, &b, p, &st) == HT_ERR_OK);
        CHECK(ht_store_commit(t) == HT_ERR_OK);
        ht_assembler_prep_free(p);
    } else {
        CHECK(ht_store_begin(store, true, &t) == HT_ERR_OK);
        CHECK(ht_assembler_apply(t, &b, &st) == HT_ERR_OK);
        CHECK(ht_store_commit(t) == HT_ERR_OK);
    }
    ht_batch_free(&b);
    return st;
}

static int64_t span_end(const char *hex)
{
    struct ht_txn *t;
    struct ht_id8 id;
    const void *v;
    size_t vn;
    struct ht_span s;
    struct ht_arena *a = ht_arena_create();
    int64_t end = -1;

    ht_id8_parse(hex, 16, &id);
    CHECK(ht_store_begin(store, false, &t) == HT_ERR_OK);
    if (ht_store_get(t, HT_DB_NODES, id.b, 8, &v, &vn) == HT_ERR_OK &&
        ht_span_unpack(v, vn, a, &s) == HT_ERR_OK)
        end = s.flags & HT_SPAN_IN_PROGRESS ? 0 : s.end_us;
    ht_store_abort(t);
    ht_arena_destroy(a);
    return end;
}

static int dump_one(void *ctx, const void *k, size_t kn, const void *v,
                    size_t vn)
{
    struct ht_buf *b = ctx;
    uint32_t n = (uint32_t)kn;

    ht_buf_add(b, &n, 4);
    ht_buf_add(b, k, kn);
    n = (uint32_t)vn;
    ht_buf_add(b, &n, 4);
    ht_buf_add(b, v, vn);
    return 0;
}

/* Every database of the store, serialised. */
static void dump_store(struct ht_buf *out)
{
    struct ht_txn *t;

    CHECK(ht_store_begin(store, false, &t) == HT_ERR_OK);
    for (int db = 0; db < HT_DB__COUNT; db++) {
        ht_buf_addc(out, (char)db);
        CHECK(ht_store_scan(t, db, NULL, 0, dump_one, out) == HT_ERR_OK);
    }
    ht_store_abort(t);
}

/* The whole scenario on a fresh store; leaves its dump in out. */
static void scenario(struct ht_buf *out)
{
    char dir[] = "/tmp/ht_test_asm_XXXXXX";
    char complete[2048], progress[2048];
    struct ht_asm_stats st;
    uint64_t keys, nodes, facts;

    CHECK(mkdtemp(dir) != NULL);
    CHECK(ht_store_open(dir, false, &store) == HT_ERR_OK);
    snprintf(complete, sizeof(complete), PRODUCER,
             "\"end_time\":1795700000.5768065");
    snprintf(progress, sizeof(progress), PRODUCER, "\"in_progress\":true");

    /* the consumer's logs first: its half waits, and is not "pending" */
    apply(CONSUMER_LOG);
    CHECK(count(HT_DB_INV) == 1);
    {
        struct ht_txn *t;

        CHECK(ht_store_begin(store, false, &t) == HT_ERR_OK);
        CHECK(ht_assembler_pending(t) == 0);
        ht_store_abort(t);
    }
    /* the producer: the halves meet */
    st = apply(complete);
    CHECK(st.hops_matched == 1);
    CHECK(span_end("24f6a303b83ea7bd") == 1795700000576807LL);
    /* its in-progress copy arriving late changes nothing */
    apply(progress);
    CHECK(span_end("24f6a303b83ea7bd") == 1795700000576807LL);

    /* everything again: the store does not change */
    keys = count(HT_DB_KEYS);
    nodes = count(HT_DB_NODES);
    facts = count(HT_DB_FACTS);
    st = apply(CONSUMER_LOG);
    CHECK(st.hops_matched == 0);
    st = apply(complete);
    CHECK(st.hops_matched == 0);
    CHECK(count(HT_DB_KEYS) == keys && count(HT_DB_NODES) == nodes &&
          count(HT_DB_FACTS) == facts && count(HT_DB_INV) == 1);

    /* in progress first, complete later: the complete one wins */
    snprintf(progress, sizeof(progress),
             "{\"trace_id\":\"1-6b083520-c49c720af84bd7b4b9c2b14a\",\"id\":"
             "\"1111111111111111\",\"name\":\"x\",\"start_time\":1795700000,"
             "\"in_progress\":true}");
    snprintf(complete, sizeof(complete),
             "{\"trace_id\":\"1-6b083520-c49c720af84bd7b4b9c2b14a\",\"id\":"
             "\"1111111111111111\",\"name\":\"x\",\"start_time\":1795700000,"
             "\"end_time\":1795700001}");
    apply(progress);
    CHECK(span_end("1111111111111111") == 0);
    apply(complete);
    CHECK(span_end("1111111111111111") == 1795700001000000LL);

    /* a reject is kept once, however often it is seen */
    apply("not json at all\n");
    apply("not json at all\n");
    CHECK(count(HT_DB_DLQ) == 1);

    dump_store(out);
    ht_store_close(store);
    {
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        CHECK(system(cmd) == 0);
    }
}

int main(void)
{
    struct ht_buf direct, prepared;

    ht_log_level = -1;
    ht_buf_init(&direct);
    ht_buf_init(&prepared);
    scenario(&direct);
    /* the sink's two-step path writes exactly the same store */
    use_prep = true;
    scenario(&prepared);
    CHECK(direct.len > 0 && direct.len == prepared.len &&
          memcmp(direct.data, prepared.data, direct.len) == 0);
    ht_buf_free(&direct);
    ht_buf_free(&prepared);
    TEST_DONE();
}
