/*
 * test_assembler.c - unit tests of assembler/: a decoded batch written
 * twice leaves the store unchanged; an in-progress span never replaces its
 * complete version (in either arrival order); hop halves meet whichever
 * arrives first; rejects land in the dead-letter table; invocation facts
 * merge into one invocation record. All of it through both paths: the
 * one-step ht_assembler_apply and the sink's prepare + apply_prepared,
 * which must write byte-identical stores. The schema 2 layout (a trace's
 * spans are a range of nodes, one by_time entry per invocation whatever
 * the order of its lines) and retention (ht_prune_slice removes expired
 * pieces with every index entry, nothing else).
 */
#define _GNU_SOURCE
#include "ht_assembler.h"
#include "ht_prune.h"
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

static int count_cb(void *ctx, const void *k, size_t kn, const void *v,
                    size_t vn)
{
    (void)k;
    (void)kn;
    (void)v;
    (void)vn;
    (*(int *)ctx)++;
    return 0;
}

static int span_target_cb(void *ctx, const void *k, size_t kn, const void *v,
                          size_t vn)
{
    (void)k;
    (void)kn;
    if (vn == 9 && ((const uint8_t *)v)[0] == HT_TARGET_SPAN)
        (*(int *)ctx)++;
    return 0;
}

/* keys entries under `prefix` that name a span */
static int count_span_targets(struct ht_txn *t, const char *prefix)
{
    int n = 0;

    CHECK(ht_store_scan(t, HT_DB_KEYS, prefix, 1, span_target_cb, &n) == 0);
    return n;
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
    /* both spans are their trace's range of nodes; no 'T' or 'C' key names
     * a span any more */
    {
        struct ht_txn *t;
        struct ht_tid tr;
        int n = 0;

        ht_tid_parse("1-6b083520-c49c720af84bd7b4b9c2b14a", 35, &tr);
        CHECK(ht_store_begin(store, false, &t) == HT_ERR_OK);
        CHECK(ht_store_scan(t, HT_DB_NODES, tr.b, 16, count_cb, &n) == 0);
        CHECK(n == 2);
        n = 0;
        CHECK(ht_store_scan(t, HT_DB_KEYS, "C", 1, count_cb, &n) == 0);
        CHECK(n == 0);
        CHECK(count_span_targets(t, "T") == 0);
        /* the newest event is the REPORT line's */
        CHECK(ht_store_newest_event(t) == 1795700001044000LL);
        ht_store_abort(t);
    }

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

#define LOG_START                                                              \
    "{\"messageType\":\"DATA_MESSAGE\",\"logGroup\":\"/aws/lambda/charge\","   \
    "\"logEvents\":[{\"id\":\"1\",\"timestamp\":1795700001004,\"message\":"    \
    "\"START RequestId: r-1 Version: $LATEST\\n\"}]}"
#define LOG_REPORT                                                             \
    "{\"messageType\":\"DATA_MESSAGE\",\"logGroup\":\"/aws/lambda/charge\","   \
    "\"logEvents\":[{\"id\":\"3\",\"timestamp\":1795700001044,\"message\":"    \
    "\"REPORT RequestId: r-1\\tDuration: 38.34 ms\\tBilled Duration: 39 "      \
    "ms\\tMemory Size: 512 MB\\tMax Memory Used: 92 MB\\t\\n\"}]}"

static char tmpdir[64];

static void fresh_store(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/ht_test_asm_XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
    CHECK(ht_store_open(tmpdir, false, &store) == HT_ERR_OK);
}

static void drop_store(void)
{
    char cmd[128];

    ht_store_close(store);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    CHECK(system(cmd) == 0);
}

/* The databases that hold data (not stall state or dead letters). */
static void dump_data(struct ht_buf *out)
{
    static const int dbs[] = {HT_DB_NODES, HT_DB_SPANS, HT_DB_INV,
                              HT_DB_FACTS, HT_DB_KEYS,  HT_DB_BYTIME};
    struct ht_txn *t;

    CHECK(ht_store_begin(store, false, &t) == HT_ERR_OK);
    for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
        ht_buf_addc(out, (char)dbs[i]);
        CHECK(ht_store_scan(t, dbs[i], NULL, 0, dump_one, out) == HT_ERR_OK);
    }
    ht_store_abort(t);
}

/* An invocation's lines in either order: one invocation record, one
 * by_time entry at its last activity, the same bytes. */
static void test_line_order(void)
{
    struct ht_buf ab, ba;
    int n = 0;
    struct ht_txn *t;

    ht_buf_init(&ab);
    ht_buf_init(&ba);
    fresh_store();
    apply(LOG_START);
    apply(LOG_REPORT);
    dump_data(&ab);
    CHECK(ht_store_begin(store, false, &t) == HT_ERR_OK);
    CHECK(ht_store_scan(t, HT_DB_BYTIME, NULL, 0, count_cb, &n) == 0);
    CHECK(n == 1);
    /* the REPORT line (START + 38.34 ms ended a little before it) */
    CHECK(ht_store_oldest_event(t) == 1795700001044000LL);
    ht_store_abort(t);
    drop_store();
    fresh_store();
    apply(LOG_REPORT);
    apply(LOG_START);
    dump_data(&ba);
    drop_store();
    CHECK(ab.len > 0 && ab.len == ba.len &&
          memcmp(ab.data, ba.data, ab.len) == 0);
    ht_buf_free(&ab);
    ht_buf_free(&ba);
}

static uint64_t all_rows(void)
{
    static const int dbs[] = {HT_DB_NODES,  HT_DB_SPANS, HT_DB_INV,
                              HT_DB_FACTS,  HT_DB_KEYS,  HT_DB_BYTIME,
                              HT_DB_PENDING};
    uint64_t n = 0;

    for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++)
        n += count(dbs[i]);
    return n;
}

/* Retention: nothing goes before its time (horizon included); then
 * everything that indexes the expired pieces goes, in bounded slices. */
static void test_prune(void)
{
    char complete[2048];
    struct ht_prune_stats st;
    bool more = true;
    uint64_t before;
    int slices = 0;
    struct ht_txn *t;

    fresh_store();
    snprintf(complete, sizeof(complete), PRODUCER,
             "\"end_time\":1795700000.5768065");
    apply(complete);
    apply(CONSUMER_LOG);
    apply("not json at all\n");
    before = all_rows();
    CHECK(before >= 8);
    memset(&st, 0, sizeof(st));
    /* the consumer ended at 1795700001.04434: with the default horizon of
     * an hour, a cut-off a minute later removes nothing */
    CHECK(ht_prune_slice(store, 1795700061000000LL, 0, &more, &st) == 0);
    CHECK(!more && st.nodes == 0 && st.invocations == 0);
    CHECK(all_rows() == before);
    /* without a horizon, a cut-off between the two removes the producer
     * only: its span, keys, span index entry and the matched hop half */
    CHECK(ht_prune_slice_h(store, 1795700001000000LL, 0, 0, &more, &st) == 0);
    CHECK(st.nodes == 1 && st.invocations == 0 && st.pending == 1);
    CHECK(span_end("24f6a303b83ea7bd") == -1);
    CHECK(count(HT_DB_SPANS) == 0 && count(HT_DB_INV) == 1);
    /* then the rest, one entry per slice */
    do {
        CHECK(ht_prune_slice_h(store, 1795700002000000LL, 0, 1, &more, &st) ==
              0);
        slices++;
    } while (more && slices < 10);
    CHECK(!more && st.invocations == 1 && st.facts >= 1);
    CHECK(all_rows() == 0);
    CHECK(count(HT_DB_DLQ) == 1); /* dead letters are not requests */
    CHECK(ht_store_begin(store, false, &t) == HT_ERR_OK);
    CHECK(ht_assembler_pending(t) == 0);
    CHECK(ht_store_oldest_event(t) == INT64_MIN);
    ht_store_abort(t);
    /* ingesting the same again after the prune stores it again */
    apply(complete);
    apply(CONSUMER_LOG);
    CHECK(all_rows() == before);
    drop_store();
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
    for (int m = 0; m < 2; m++) {
        use_prep = m == 1;
        test_line_order();
        test_prune();
    }
    TEST_DONE();
}
