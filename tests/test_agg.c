/*
 * test_agg.c - unit tests of the aggregates: the histogram's documented
 * error bound (store/agg_records.c: a bin's value within 0.2 % of every
 * value in it, bins in value order); the update (maint/agg_update.c): a
 * consumer summarized as its own request before its producer arrives is
 * dropped once the producer makes it part of the producer's request, the
 * dirty set is consumed, a second refresh with nothing dirty changes
 * nothing; slices of ht_agg_update interleaved with ingest batches end
 * with exactly the records of one full refresh after the whole input, and
 * never take more than their max_traces; in both stores each trace's 'T'
 * record lists, in id order, exactly the summarized roots whose requests
 * hold the trace (derived again from the summaries); ht_agg_prune drops
 * exactly the summaries and buckets before the cut-off, in slices within
 * its budget, and the answers for the window after it do not change; the
 * records round-trip and refuse every truncation, and garbage in the
 * aggregates database is skipped by the queries and the update.
 *
 * usage: test_agg [INPUT_DIR [VALUES_PER_BATCH SLICE_TRACES]]  (default
 * tests/agg/routes, 40, 5; every file in the folder is read in name
 * order, as ingest would, for the slice and prune tests)
 */
#define _GNU_SOURCE
#include "ht_agg_records.h"
#include "ht_assembler.h"
#include "ht_maint.h"
#include "ht_query.h"
#include "ht_test.h"

#include <dirent.h>
#include <pthread.h>
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

static void test_bins(void)
{
    uint32_t prev = 0;
    double worst = 0;

    for (int64_t v = 0; v < 300; v++)
        CHECK(ht_agg_bin_value(ht_agg_bin(v)) == (double)v);
    /* dense near powers of two, sparse elsewhere, up to ~12 days in µs */
    for (int64_t v = 1; v < (1LL << 40); v += 1 + v / 997) {
        uint32_t b = ht_agg_bin(v);
        double got = ht_agg_bin_value(b);
        double err = fabs(got - (double)v) / (double)v;

        CHECK(b >= prev);
        prev = b;
        if (err > worst)
            worst = err;
    }
    for (int e = 8; e < 40; e++) {
        int64_t edge = 1LL << e;

        CHECK(ht_agg_bin(edge - 1) + 1 == ht_agg_bin(edge));
        CHECK(fabs(ht_agg_bin_value(ht_agg_bin(edge)) - (double)edge) <=
              (double)edge / 512);
    }
    CHECK(worst <= 1.0 / 512);
    CHECK(ht_agg_bin(-5) == 0);
    printf("histogram worst relative error %.4f %%\n", worst * 100);
}

static void rmtree(const char *dir)
{
    char cmd[256];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

/* Records round-trip, and every truncation of them is refused. */
static void test_records(void)
{
    struct ht_agg_item items[2] = {
        {.kind = 3, .via = 2, .us = 1500, .service = "charge", .resource = "q"},
        {.kind = 0, .via = 0, .us = 70, .service = "create", .resource = ""}};
    struct ht_agg_summary s = {.flags = HT_AGG_S_PENDING | HT_AGG_S_FAULT,
                               .start_us = 1795700000500000LL,
                               .sync_us = 100000,
                               .e2e_us = 750000,
                               .handle = "75a5c05990eab629",
                               .api = "abc123",
                               .stage = "prod",
                               .route = "POST /orders",
                               .nitems = 2,
                               .items = items},
                          o;
    struct ht_agg_hrec h = {.count = 3, .errors = 1, .incomplete = 1}, ho;
    struct ht_arena *a = ht_arena_create();
    struct ht_buf b;
    uint8_t k1[HT_KEY_MAX], k2[HT_KEY_MAX];
    char big[600];

    ht_buf_init(&b);
    ht_agg_summary_pack(&s, &b);
    CHECK(ht_agg_summary_unpack(b.data, b.len, a, &o) == HT_ERR_OK);
    CHECK(o.flags == s.flags && o.start_us == s.start_us &&
          o.sync_us == s.sync_us && o.e2e_us == s.e2e_us && o.nitems == 2);
    CHECK_STREQ(o.route, "POST /orders");
    CHECK_STREQ(o.items[0].service, "charge");
    CHECK(o.items[0].us == 1500 && o.items[1].us == 70 && o.items[0].via == 2 &&
          o.items[0].kind == 3);
    for (size_t n = 0; n < b.len; n++)
        CHECK(ht_agg_summary_unpack(b.data, n, a, &o) == HT_ERR_CORRUPT);
    /* an item count the value cannot hold */
    ht_buf_reset(&b);
    s.nitems = 0;
    ht_agg_summary_pack(&s, &b);
    memset(b.data + b.len - 4, 0xff, 4);
    CHECK(ht_agg_summary_unpack(b.data, b.len, a, &o) == HT_ERR_CORRUPT);

    ht_agg_hist_add(&h.sync, ht_agg_bin(1000), 2);
    ht_agg_hist_add(&h.sync, ht_agg_bin(10), 1);
    ht_agg_hist_add(&h.e2e, ht_agg_bin(5000000), 2);
    ht_agg_hist_add(&h.e2e, ht_agg_bin(5000000), -2); /* gone again */
    ht_agg_hist_add(&h.e2e, ht_agg_bin(7), -1);       /* nothing to take */
    CHECK(h.sync.n == 2 && h.sync.idx[0] < h.sync.idx[1] && h.e2e.n == 0);
    ht_buf_reset(&b);
    ht_agg_hrec_pack(&h, &b);
    CHECK(ht_agg_hrec_unpack(b.data, b.len, &ho) == HT_ERR_OK);
    CHECK(ho.count == 3 && ho.errors == 1 && ho.incomplete == 1 &&
          ho.sync.n == 2 && ho.sync.cnt[1] == 2 && ho.e2e.n == 0);
    ht_agg_hrec_free(&ho);
    for (size_t n = 0; n < b.len; n++) {
        CHECK(ht_agg_hrec_unpack(b.data, n, &ho) == HT_ERR_CORRUPT);
        ht_agg_hrec_free(&ho);
    }
    ht_agg_hrec_free(&h);

    /* keys: the minute, and a route too long for a key is cut to fit */
    CHECK(ht_agg_key_hist(k1, 120000000, "a", "b", "GET /x") == 9 + 10);
    CHECK(ht_be64_get(k1 + 1) == 2 && memcmp(k1 + 9, "a\0b\0GET /x", 10) == 0);
    memset(big, 'r', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    CHECK(ht_agg_key_hist(k2, 0, "a", "b", big) == HT_KEY_MAX);
    CHECK(ht_agg_key_template(k2, "a", "b", big) == HT_KEY_MAX);
    CHECK(ht_agg_key_hist(k2, 0, big, big, "r") == 0);
    ht_buf_free(&b);
    ht_arena_destroy(a);
}

/* Garbage in the aggregates database: queries and the update go on. */
static void test_garbage(void)
{
    char dir[] = "/tmp/ht_test_agg_g_XXXXXX";
    struct ht_store *s;
    struct ht_txn *t;
    struct ht_agg_opts o = {.until_us = INT64_MAX, .format = HT_AGG_JSON};
    struct ht_agg_stats st;
    struct ht_buf b;
    static const uint8_t junk[] = {1, 2, 3, 0xff, 0xff, 0xff, 0xff, 9};
    const char *keys[] = {"S12345678",
                          "W\0\0\0\0\0\0\0\x01"
                          "12345678",
                          "H\0\0\0\0\0\0\0\x01"
                          "a\0b\0r",
                          "T0123456789abcdef", "U\0\0"};
    const size_t kl[] = {9, 17, 14, 17, 3};

    CHECK(mkdtemp(dir) != NULL);
    CHECK(ht_store_open(dir, false, &s) == HT_ERR_OK);
    CHECK(ht_store_begin(s, true, &t) == HT_ERR_OK);
    for (int i = 0; i < 5; i++)
        CHECK(ht_store_put(t, HT_DB_AGG, keys[i], kl[i], junk, sizeof(junk)) ==
              HT_ERR_OK);
    CHECK(ht_store_put(t, HT_DB_DIRTY, "0123456789abcdef", 16, "", 0) ==
          HT_ERR_OK);
    CHECK(ht_store_commit(t) == HT_ERR_OK);
    ht_buf_init(&b);
    CHECK(ht_agg_endpoints(s, &o, &b) == HT_ERR_OK);
    o.exact = true;
    CHECK(ht_agg_endpoints(s, &o, &b) == HT_ERR_OK);
    CHECK(ht_agg_hotspots(s, "r", &o, &b) == HT_ERR_NOTFOUND);
    CHECK(ht_agg_refresh(s, &st) == HT_ERR_OK && st.traces == 1);
    ht_buf_free(&b);
    ht_store_close(s);
    rmtree(dir);
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

static char *dump(struct ht_store *s, uint8_t prefix, uint64_t *n);

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

    /* a summary record that does not unpack is still replaced with its
     * Jaeger record taken out of the catalogue first: the catalogue ends
     * as it was */
    {
        char *cat = dump(store, HT_AGG_K_JCATALOG, NULL), *again;
        static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff};
        uint8_t key[9];
        struct ht_id8 root;
        struct ht_tid tid;
        struct ht_txn *t;
        const void *v;
        size_t vn;

        CHECK(ht_id8_parse("75a5c05990eab629", 16, &root));
        CHECK(ht_tid_parse(TA, strlen(TA), &tid));
        ht_agg_key_summary(key, &root);
        CHECK(ht_store_begin(store, true, &t) == HT_ERR_OK);
        CHECK(ht_store_put(t, HT_DB_AGG, key, 9, junk, sizeof(junk)) == 0);
        CHECK(ht_store_put(t, HT_DB_DIRTY, tid.b, 16, "", 0) == 0);
        CHECK(ht_store_commit(t) == HT_ERR_OK);
        CHECK(ht_agg_refresh(store, &st) == HT_ERR_OK && st.requests == 1);
        again = dump(store, HT_AGG_K_JCATALOG, NULL);
        CHECK(*cat && strcmp(cat, again) == 0);
        CHECK(ht_store_begin(store, false, &t) == HT_ERR_OK);
        CHECK(ht_store_get(t, HT_DB_AGG, key, 9, &v, &vn) == HT_ERR_OK &&
              vn > sizeof(junk));
        ht_store_abort(t);
        free(cat);
        free(again);
    }

    ht_store_close(store);
    {
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        CHECK(system(cmd) == 0);
    }
}

/* ---- slices interleaved with batches, and retention -------------------- */

/* Batch and slice sizes (argv[2], argv[3]): small by default, so that
 * many slices see requests half ingested. */
static size_t VALUES_PER_BATCH = 40;
static size_t SLICE_TRACES = 5;

struct inputs {
    char **vals;
    size_t *lens;
    size_t n, cap;
};

static int cmp_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* Every value of every input file in dir, in name order. */
static void read_inputs(const char *dir, struct inputs *in)
{
    struct dirent **ents;
    int ne = scandir(dir, &ents, NULL, cmp_name);

    CHECK(ne > 0);
    memset(in, 0, sizeof(*in));
    for (int i = 0; i < ne; i++) {
        const char *nm = ents[i]->d_name;
        char path[4096];
        struct ht_reader *r;
        const char *val;
        size_t n;
        uint64_t off;
        bool big;

        if (nm[0] == '.' || strncmp(nm, "expected", 8) == 0 ||
            strncmp(nm, "truth", 5) == 0 ||
            (!strstr(nm, ".ndjson") && !strstr(nm, ".json"))) {
            free(ents[i]);
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, nm);
        free(ents[i]);
        CHECK(ht_reader_open(path, &r) == HT_ERR_OK);
        while (ht_reader_next(r, &val, &n, &off, &big) > 0) {
            if (in->n == in->cap) {
                in->cap = in->cap ? in->cap * 2 : 1024;
                in->vals = realloc(in->vals, in->cap * sizeof(*in->vals));
                in->lens = realloc(in->lens, in->cap * sizeof(*in->lens));
                HT_ASSERT(in->vals && in->lens);
            }
            in->vals[in->n] = malloc(n + 1);
            HT_ASSERT(in->vals[in->n]);
            memcpy(in->vals[in->n], val, n);
            in->vals[in->n][n] = 0;
            in->lens[in->n++] = n;
        }
        ht_reader_close(r);
    }
    free(ents);
}

/* Closes and removes the two stores of a comparison, and frees the input. */
static void done_pair(struct ht_store *a, const char *da, struct ht_store *b,
                      const char *db, struct inputs *in)
{
    ht_store_close(a);
    ht_store_close(b);
    rmtree(da);
    rmtree(db);
    for (size_t i = 0; i < in->n; i++)
        free(in->vals[i]);
    free(in->vals);
    free(in->lens);
}

/* Values [from, to) as one batch, in one write transaction. */
static void apply_values(struct ht_store *s, const struct inputs *in,
                         size_t from, size_t to)
{
    struct ht_batch b;
    struct ht_txn *t;
    struct ht_asm_stats st = {0};
    struct ht_srcpos pos = {"test", 0};

    CHECK(ht_batch_init(&b) == HT_ERR_OK);
    for (size_t i = from; i < to; i++) {
        pos.offset = i;
        ht_ingest_payload(&b, &pos, in->vals[i], in->lens[i]);
    }
    for (int tries = 0;; tries++) {
        int rc;

        CHECK(ht_store_begin(s, true, &t) == HT_ERR_OK);
        rc = ht_assembler_apply(t, &b, &st);
        if (!rc)
            rc = ht_store_commit(t);
        else
            ht_store_abort(t);
        if (rc == HT_ERR_MAPFULL && tries < 16) {
            CHECK(ht_store_grow(s) == HT_ERR_OK);
            continue;
        }
        CHECK(rc == HT_ERR_OK);
        break;
    }
    ht_batch_free(&b);
}

struct dump {
    struct ht_buf b;
    uint8_t prefix;
    uint64_t n;
};

static int dump_visit(void *ctx, const void *k, size_t kn, const void *v,
                      size_t vn)
{
    struct dump *d = ctx;

    for (size_t i = 0; i < kn; i++)
        ht_buf_printf(&d->b, "%02x", ((const uint8_t *)k)[i]);
    ht_buf_addc(&d->b, '=');
    for (size_t i = 0; i < vn; i++)
        ht_buf_printf(&d->b, "%02x", ((const uint8_t *)v)[i]);
    ht_buf_addc(&d->b, '\n');
    d->n++;
    return 0;
}

/* The records of one kind, as text (owned by the caller); *n counts them. */
static char *dump(struct ht_store *s, uint8_t prefix, uint64_t *n)
{
    struct dump d = {.prefix = prefix};
    struct ht_txn *t;
    char *out;

    ht_buf_init(&d.b);
    CHECK(ht_store_begin(s, false, &t) == HT_ERR_OK);
    CHECK(ht_store_scan(t, HT_DB_AGG, &prefix, 1, dump_visit, &d) == HT_ERR_OK);
    ht_store_abort(t);
    out = strdup(d.b.len ? d.b.data : "");
    ht_buf_free(&d.b);
    if (n)
        *n = d.n;
    return out;
}

static int count_visit(void *ctx, const void *k, size_t kn, const void *v,
                       size_t vn)
{
    uint64_t *n = ctx;

    (void)v;
    (void)vn;
    /* Jaeger's search records go with their summary (test_jaeger) */
    if (kn && ((const uint8_t *)k)[0] != HT_AGG_K_JAEGER &&
        ((const uint8_t *)k)[0] != HT_AGG_K_JCATALOG)
        (*n)++;
    return 0;
}

/* The summaries', histograms' and traces' records (not the search
 * records of the Jaeger API, a catalogue of their own). */
static uint64_t agg_records(struct ht_store *s)
{
    struct ht_txn *t;
    uint64_t n = 0;

    CHECK(ht_store_begin(s, false, &t) == HT_ERR_OK);
    CHECK(ht_store_scan(t, HT_DB_AGG, NULL, 0, count_visit, &n) == HT_ERR_OK);
    ht_store_abort(t);
    return n;
}

static char *answer(struct ht_store *s, int what, int64_t since)
{
    struct ht_agg_opts o = {.since_us = since,
                            .until_us = INT64_MAX,
                            .exact = what == 1,
                            .percentile = 0,
                            .format = HT_AGG_JSON};
    struct ht_buf b;
    char *r;

    ht_buf_init(&b);
    if (what == 2)
        CHECK(ht_agg_functions(s, &o, &b) == HT_ERR_OK);
    else
        CHECK(ht_agg_endpoints(s, &o, &b) == HT_ERR_OK);
    r = strdup(b.len ? b.data : "");
    ht_buf_free(&b);
    return r;
}

/* ---- the roots remembered per trace ('T') --------------------------------
 * Derived state that must not depend on slicing either: a trace's record
 * lists, in id order, exactly the roots with a summary whose request holds
 * the trace. troots_expected() rebuilds that from the summaries. */

struct tpair {
    uint8_t tid[16], root[8];
};

struct tlist {
    struct tpair *p;
    size_t n, cap;
};

static void tlist_add(struct tlist *l, const uint8_t tid[16],
                      const uint8_t root[8])
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 256;
        l->p = realloc(l->p, l->cap * sizeof(*l->p));
        CHECK(l->p != NULL);
    }
    memcpy(l->p[l->n].tid, tid, 16);
    memcpy(l->p[l->n].root, root, 8);
    l->n++;
}

static int tpair_cmp(const void *x, const void *y)
{
    return memcmp(x, y, sizeof(struct tpair));
}

/* The pairs as text, one trace a line: "tid=root root…" (sorted). */
static char *tlist_text(struct tlist *l)
{
    struct ht_buf b;
    char *out;

    qsort(l->p, l->n, sizeof(*l->p), tpair_cmp);
    ht_buf_init(&b);
    for (size_t i = 0; i < l->n; i++) {
        if (i && memcmp(&l->p[i], &l->p[i - 1], sizeof(*l->p)) == 0)
            continue; /* a repeat (stored ones fail `sorted`) */
        if (!i || memcmp(l->p[i].tid, l->p[i - 1].tid, 16) != 0) {
            if (i)
                ht_buf_addc(&b, '\n');
            for (int j = 0; j < 16; j++)
                ht_buf_printf(&b, "%02x", l->p[i].tid[j]);
            ht_buf_addc(&b, '=');
        } else {
            ht_buf_addc(&b, ' ');
        }
        for (int j = 0; j < 8; j++)
            ht_buf_printf(&b, "%02x", l->p[i].root[j]);
    }
    out = strdup(b.len ? b.data : "");
    ht_buf_free(&b);
    return out;
}

static int troots_visit(void *ctx, const void *k, size_t kn, const void *v,
                        size_t vn)
{
    struct tlist *l = ctx;

    CHECK(kn == 17 && vn % 8 == 0 && vn > 0);
    if (kn == 17)
        for (size_t i = 0; i + 8 <= vn; i += 8)
            tlist_add(l, (const uint8_t *)k + 1, (const uint8_t *)v + i);
    return 0;
}

/* The 'T' records as stored, as text; *sorted says whether every value
 * held its roots in id order without a repeat. */
static char *troots_stored(struct ht_store *s, bool *sorted)
{
    struct tlist l = {0};
    uint8_t prefix = HT_AGG_K_TRACE;
    struct ht_txn *t;
    char *out;

    CHECK(ht_store_begin(s, false, &t) == HT_ERR_OK);
    CHECK(ht_store_scan(t, HT_DB_AGG, &prefix, 1, troots_visit, &l) ==
          HT_ERR_OK);
    ht_store_abort(t);
    *sorted = true;
    for (size_t i = 1; i < l.n; i++)
        if (memcmp(l.p[i].tid, l.p[i - 1].tid, 16) == 0 &&
            memcmp(l.p[i].root, l.p[i - 1].root, 8) <= 0)
            *sorted = false;
    out = tlist_text(&l);
    free(l.p);
    return out;
}

struct sum_ctx {
    struct ht_txn *t;
    struct tlist *l;
};

static int troots_summary_visit(void *ctx, const void *k, size_t kn,
                                const void *v, size_t vn)
{
    struct sum_ctx *c = ctx;
    struct ht_arena *a = ht_arena_create();
    struct ht_agg_summary sum;
    struct ht_result *res = NULL;
    bool found = false;

    CHECK(kn == 9);
    CHECK(ht_agg_summary_unpack(v, vn, a, &sum) == HT_ERR_OK);
    CHECK(ht_query_trace_txn(c->t, sum.handle, &res) == HT_ERR_OK);
    for (size_t i = 0; res && i < res->nrequests; i++) {
        const struct ht_request *r = &res->requests[i];

        if (!r->nspans ||
            memcmp(r->spans[0].s.id.b, (const uint8_t *)k + 1, 8) != 0)
            continue;
        found = true;
        for (size_t j = 0; j < r->ntrace_ids; j++) {
            struct ht_tid tid;

            if (ht_tid_parse(r->trace_ids[j], strlen(r->trace_ids[j]), &tid))
                tlist_add(c->l, tid.b, (const uint8_t *)k + 1);
        }
    }
    /* every summary's handle leads back to its root */
    CHECK(found);
    if (res)
        ht_result_free(res);
    ht_arena_destroy(a);
    return 0;
}

/* The 'T' records the summaries call for, as text. */
static char *troots_expected(struct ht_store *s)
{
    struct tlist l = {0};
    uint8_t prefix = HT_AGG_K_SUMMARY;
    struct sum_ctx c = {.l = &l};
    char *out;

    CHECK(ht_store_begin(s, false, &c.t) == HT_ERR_OK);
    CHECK(ht_store_scan(c.t, HT_DB_AGG, &prefix, 1, troots_summary_visit, &c) ==
          HT_ERR_OK);
    ht_store_abort(c.t);
    out = tlist_text(&l);
    free(l.p);
    return out;
}

/* A store's 'T' records are exactly what its summaries call for. */
static void check_troots(struct ht_store *s, const char *which)
{
    bool sorted;
    char *got = troots_stored(s, &sorted), *want = troots_expected(s);

    if (strcmp(got, want) != 0 || !sorted) {
        char path[64];
        FILE *f;

        snprintf(path, sizeof(path), "/tmp/ht_test_agg_T_%s_got", which);
        if ((f = fopen(path, "w"))) {
            fputs(got, f);
            fclose(f);
        }
        snprintf(path, sizeof(path), "/tmp/ht_test_agg_T_%s_want", which);
        if ((f = fopen(path, "w"))) {
            fputs(want, f);
            fclose(f);
        }
        fprintf(
            stderr, "store %s: 'T' records %s (see /tmp/ht_test_agg_T_%s_*)\n",
            which, sorted ? "differ from the summaries' traces" : "unsorted",
            which);
    }
    CHECK(sorted);
    CHECK_STREQ(got, want);
    free(got);
    free(want);
}

static const uint8_t kinds[] = {HT_AGG_K_SUMMARY, HT_AGG_K_WINDOW,
                                HT_AGG_K_HIST, HT_AGG_K_TEMPLATE};

static void test_slices_and_prune(const char *input)
{
    char da[] = "/tmp/ht_test_agg_a_XXXXXX", db[] = "/tmp/ht_test_agg_b_XXXXXX";
    struct ht_store *a, *b;
    struct inputs in;
    struct ht_agg_stats st = {0}, full;
    uint64_t calls = 0, nsum = 0, pending = 1;
    int64_t worst = 0;
    bool more = true;

    read_inputs(input, &in);
    CHECK(in.n > 0);
    CHECK(mkdtemp(da) && mkdtemp(db));
    CHECK(ht_store_open(da, false, &a) == HT_ERR_OK);
    CHECK(ht_store_open(db, false, &b) == HT_ERR_OK);
    /* as ingest does: commits atomic, not flushed one by one */
    CHECK(ht_store_set_nosync(a, true) == HT_ERR_OK);
    CHECK(ht_store_set_nosync(b, true) == HT_ERR_OK);

    /* a: one slice after every batch, as the ingest writer does */
    for (size_t i = 0; i < in.n; i += VALUES_PER_BATCH) {
        struct ht_agg_stats one = {0};
        int64_t t0;

        apply_values(a, &in, i,
                     i + VALUES_PER_BATCH < in.n ? i + VALUES_PER_BATCH : in.n);
        t0 = ht_now_mono_us();
        CHECK(ht_agg_update(a, SLICE_TRACES, &more, &one) == HT_ERR_OK);
        if (ht_now_mono_us() - t0 > worst)
            worst = ht_now_mono_us() - t0;
        CHECK(one.traces <= SLICE_TRACES);
        CHECK(one.slices <= 1);
        CHECK(one.slices ? one.longest_us > 0 : one.longest_us == 0);
        st.traces += one.traces;
        calls++;
    }
    /* then idle: slices until nothing is dirty */
    while (more) {
        struct ht_agg_stats one = {0};

        CHECK(ht_agg_update(a, SLICE_TRACES, &more, &one) == HT_ERR_OK);
        CHECK(one.traces <= SLICE_TRACES);
        st.traces += one.traces;
        calls++;
    }
    CHECK(ht_agg_pending(a, &pending) == HT_ERR_OK && pending == 0);
    /* b: everything ingested, then one full refresh */
    for (size_t i = 0; i < in.n; i += VALUES_PER_BATCH)
        apply_values(b, &in, i,
                     i + VALUES_PER_BATCH < in.n ? i + VALUES_PER_BATCH : in.n);
    CHECK(ht_agg_pending(b, &pending) == HT_ERR_OK && pending > 0);
    CHECK(ht_agg_refresh(b, &full) == HT_ERR_OK);
    CHECK(full.traces == pending);
    /* with more than one core the refresh assembles on readers first:
     * what it writes is compared with the slices' below */
    if (sysconf(_SC_NPROCESSORS_ONLN) > 1 && pending >= 64)
        CHECK(full.prefetched > 0);
    printf("refresh: %llu of %llu traces assembled ahead on %ld cores\n",
           (unsigned long long)full.prefetched, (unsigned long long)full.traces,
           sysconf(_SC_NPROCESSORS_ONLN));
    printf("%zu values: %llu update calls consumed %llu dirty traces "
           "(longest %.1f ms); one refresh %llu traces in %llu slices\n",
           in.n, (unsigned long long)calls, (unsigned long long)st.traces,
           (double)worst / 1000.0, (unsigned long long)full.traces,
           (unsigned long long)full.slices);
    for (size_t k = 0; k < sizeof(kinds); k++) {
        uint64_t n;
        char *x = dump(a, kinds[k], &n), *y = dump(b, kinds[k], NULL);

        if (strcmp(x, y) != 0)
            fprintf(stderr,
                    "'%c' records differ between slices and one "
                    "refresh\n",
                    kinds[k]);
        CHECK(strcmp(x, y) == 0);
        if (kinds[k] == HT_AGG_K_SUMMARY)
            nsum = n;
        free(x);
        free(y);
    }
    CHECK(nsum > 0);
    check_troots(a, "a");
    check_troots(b, "b");
    for (int w = 0; w < 3; w++) {
        char *x = answer(a, w, 0), *y = answer(b, w, 0);

        CHECK_STREQ(x, y);
        free(x);
        free(y);
    }

    /* retention: a cut-off in the middle of the requests' starts */
    {
        int64_t lo, hi, cut, cutmin;
        char *ex_before, *hist_before, *ex_after, *hist_after, *sum;
        uint64_t n, prunes = 0;
        bool left = true;

        {
            /* the first and last start, from the window index */
            char *w = dump(a, HT_AGG_K_WINDOW, NULL), *last;
            uint8_t k[9];

            for (int i = 0; i < 9; i++)
                sscanf(w + 2 * i, "%2hhx", &k[i]);
            lo = (int64_t)ht_be64_get(k + 1);
            last = strrchr(w, '\n');
            *last = 0;
            last = strrchr(w, '\n');
            last = last ? last + 1 : w;
            for (int i = 0; i < 9; i++)
                sscanf(last + 2 * i, "%2hhx", &k[i]);
            hi = (int64_t)ht_be64_get(k + 1);
            free(w);
        }
        cut = lo + (hi - lo) / 2;
        cutmin = cut / HT_AGG_BUCKET_US * HT_AGG_BUCKET_US;
        ex_before = answer(a, 1, cutmin);
        hist_before = answer(a, 0, cutmin);
        /* nothing is older than the oldest: a no-op */
        CHECK(ht_agg_prune(a, lo / HT_AGG_BUCKET_US * HT_AGG_BUCKET_US, 3,
                           &left) == HT_ERR_OK);
        CHECK(!left);
        CHECK(agg_records(a) == agg_records(b));
        for (left = true; left;) {
            uint64_t before = agg_records(a), after;

            CHECK(ht_agg_prune(a, cut, 3, &left) == HT_ERR_OK);
            after = agg_records(a);
            /* 3 deletions at most; a summary is two records */
            CHECK(before - after <= 6);
            CHECK(prunes++ < 100000);
        }
        /* nothing before the cut-off's minute is left */
        sum = dump(a, HT_AGG_K_WINDOW, &n);
        /* a corpus within one minute keeps everything */
        CHECK(n > 0 && (cutmin > lo ? n < nsum : n == nsum));
        {
            uint8_t k[9];

            for (int i = 0; i < 9; i++)
                sscanf(sum + 2 * i, "%2hhx", &k[i]);
            CHECK((int64_t)ht_be64_get(k + 1) >= cutmin);
        }
        free(sum);
        sum = dump(a, HT_AGG_K_HIST, &n);
        {
            uint8_t k[9];

            for (int i = 0; i < 9; i++)
                sscanf(sum + 2 * i, "%2hhx", &k[i]);
            CHECK(n > 0 &&
                  (int64_t)ht_be64_get(k + 1) >= cutmin / HT_AGG_BUCKET_US);
        }
        free(sum);
        {
            uint64_t ns, nw, nj;

            free(dump(a, HT_AGG_K_SUMMARY, &ns));
            free(dump(a, HT_AGG_K_WINDOW, &nw));
            free(dump(a, HT_AGG_K_JAEGER, &nj));
            CHECK(ns == nw);
            CHECK(nj == ns); /* a summary's search record went with it */
        }
        /* the window after the cut-off answers as before */
        ex_after = answer(a, 1, cutmin);
        hist_after = answer(a, 0, cutmin);
        CHECK_STREQ(ex_after, ex_before);
        CHECK_STREQ(hist_after, hist_before);
        /* and the whole store now answers what that window did */
        free(ex_after);
        ex_after = answer(a, 1, 0);
        CHECK_STREQ(ex_after, ex_before);
        printf("prune at %lld: %llu slices of 3\n", (long long)cut,
               (unsigned long long)prunes);
        /* pruning again changes nothing */
        CHECK(ht_agg_prune(a, cut, 3, &left) == HT_ERR_OK);
        CHECK(!left);
        free(ex_before);
        free(hist_before);
        free(ex_after);
        free(hist_after);
    }

    done_pair(a, da, b, db, &in);
}

/* Another writer's batch, begun on a thread as the refresh's first slice
 * begins (the hook): it commits before the slice's write transaction or
 * waits for LMDB's writer lock until the slice commits. */
struct between {
    struct ht_store *s;
    const struct inputs *in;
    size_t from, to;
    int calls;
    pthread_t th;
};

static void *apply_between(void *ctx)
{
    struct between *b = ctx;

    apply_values(b->s, b->in, b->from, b->to);
    return NULL;
}

static void commit_between(void *ctx)
{
    struct between *b = ctx;

    if (b->calls++ == 0)
        CHECK(pthread_create(&b->th, NULL, apply_between, b) == 0);
}

/*
 * A refresh while another writer commits: whichever comes first, the
 * readers see exactly what the slice's write transaction sees, and a
 * refresh after both ends as one of everything at once.
 */
static void test_commit_between(const char *input)
{
    char da[] = "/tmp/ht_test_agg_c_XXXXXX", db[] = "/tmp/ht_test_agg_d_XXXXXX";
    struct ht_store *a, *b;
    struct inputs in;
    struct ht_agg_stats sa, sb, more;
    struct between bw = {0};
    size_t half;

    read_inputs(input, &in);
    CHECK(in.n > 1);
    half = in.n / 2;
    CHECK(mkdtemp(da) && mkdtemp(db));
    CHECK(ht_store_open(da, false, &a) == HT_ERR_OK);
    CHECK(ht_store_open(db, false, &b) == HT_ERR_OK);
    CHECK(ht_store_set_nosync(a, true) == HT_ERR_OK);
    CHECK(ht_store_set_nosync(b, true) == HT_ERR_OK);
    apply_values(a, &in, 0, in.n);
    CHECK(ht_agg_refresh(a, &sa) == HT_ERR_OK);
    /* b: half, then a refresh while the rest commits, then one more */
    apply_values(b, &in, 0, half);
    bw = (struct between){b, &in, half, in.n, 0, 0};
    ht_agg_slice_hook = commit_between;
    ht_agg_slice_ctx = &bw;
    CHECK(ht_agg_refresh(b, &sb) == HT_ERR_OK);
    ht_agg_slice_hook = NULL;
    ht_agg_slice_ctx = NULL;
    CHECK(bw.calls > 0);
    if (bw.calls > 0)
        pthread_join(bw.th, NULL);
    CHECK(ht_agg_refresh(b, &more) == HT_ERR_OK);
    printf("commit during a refresh: %llu of %llu traces assembled by "
           "readers; %llu after\n",
           (unsigned long long)sb.prefetched, (unsigned long long)sb.traces,
           (unsigned long long)more.traces);
    if (sysconf(_SC_NPROCESSORS_ONLN) > 1 && half >= 200)
        CHECK(sb.prefetched > 0); /* the readers took part */
    for (size_t k = 0; k < sizeof(kinds); k++) {
        char *x = dump(a, kinds[k], NULL), *y = dump(b, kinds[k], NULL);

        if (strcmp(x, y) != 0)
            fprintf(stderr, "'%c' records differ after a commit between\n",
                    kinds[k]);
        CHECK(strcmp(x, y) == 0);
        free(x);
        free(y);
    }
    check_troots(b, "b");
    done_pair(a, da, b, db, &in);
}

int main(int argc, char **argv)
{
    test_bins();
    test_records();
    test_garbage();
    test_refresh();
    if (argc > 3) {
        VALUES_PER_BATCH = strtoul(argv[2], NULL, 10);
        SLICE_TRACES = strtoul(argv[3], NULL, 10);
        CHECK(VALUES_PER_BATCH > 0 && SLICE_TRACES > 0);
    }
    test_slices_and_prune(argc > 1 ? argv[1] : HT_SRC_DIR "/tests/agg/routes");
    test_commit_between(argc > 1 ? argv[1] : HT_SRC_DIR "/tests/agg/routes");
    TEST_DONE();
}
