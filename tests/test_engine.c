/*
 * test_engine.c - the ingest engine's writer: the upkeep hook runs on the
 * writer thread between batch transactions (after each committed batch,
 * seeing exactly the batches committed so far), never while one is open
 * (it opens write transactions of its own there), at least once a second
 * while idle, and an error it returns stops ingest like a failed commit.
 * Also the declarative option table: defaults, parsing, bounds, --retain.
 */
#define _GNU_SOURCE
#include "ht_engine.h"
#include "ht_test.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BATCHES 5
#define PER_BATCH 10

struct hook {
    pthread_t main, writer;
    bool have_writer;
    int busy, idle, wrong_thread;
    uint64_t seen[64]; /* nodes committed, at each busy call */
    int fail_with;     /* return this (once) */
    int own_commits;
};

static int hook(void *ctx, struct ht_store *s, bool idle)
{
    struct hook *h = ctx;
    struct ht_txn *t;
    uint64_t n = 0;

    if (pthread_equal(pthread_self(), h->main))
        h->wrong_thread++;
    if (!h->have_writer) {
        h->writer = pthread_self();
        h->have_writer = true;
    } else if (!pthread_equal(pthread_self(), h->writer)) {
        h->wrong_thread++;
    }
    /* a write transaction of the hook's own: were a batch transaction
     * open on this (the writer's) thread, this would never return and the
     * test would time out */
    CHECK(ht_store_begin(s, true, &t) == HT_ERR_OK);
    CHECK(ht_store_counter_add(t, "test_upkeep", 1) == HT_ERR_OK);
    CHECK(ht_store_commit(t) == HT_ERR_OK);
    h->own_commits++;
    CHECK(ht_store_begin(s, false, &t) == HT_ERR_OK);
    CHECK(ht_store_count(t, HT_DB_NODES, &n) == HT_ERR_OK);
    ht_store_abort(t);
    if (idle) {
        h->idle++;
    } else {
        if (h->busy < 64)
            h->seen[h->busy] = n;
        h->busy++;
    }
    if (h->fail_with) {
        int rc = h->fail_with;

        h->fail_with = 0;
        return rc;
    }
    return HT_ERR_OK;
}

static void feed_batch(struct ht_engine *e, int k)
{
    struct ht_srcpos pos = {.source = "test", .offset = 0};

    for (int i = 0; i < PER_BATCH; i++) {
        char doc[512];
        int id = k * PER_BATCH + i;

        snprintf(doc, sizeof(doc),
                 "{\"trace_id\":\"1-5f000000-%024x\",\"id\":\"%016x\","
                 "\"name\":\"svc-%d\",\"start_time\":%d.5,"
                 "\"end_time\":%d.75}",
                 id + 1, id + 1, id, 1600000000 + id, 1600000000 + id);
        ht_ingest_payload(ht_engine_batch(e), &pos, doc, strlen(doc));
    }
}

static void test_upkeep(void)
{
    char dir[] = "/tmp/ht_test_engine_XXXXXX";
    struct ht_engine *e;
    struct ht_ingest_opts o = {.batch_docs = 1000};
    struct hook h;
    struct ht_txn *t;
    uint64_t nodes = 0;
    int64_t counter;

    memset(&h, 0, sizeof(h));
    h.main = pthread_self();
    CHECK(mkdtemp(dir) != NULL);
    CHECK(ht_engine_open(dir, &e) == HT_ERR_OK);
    CHECK(ht_engine_configure(e, &o) == HT_ERR_OK);
    ht_engine_set_upkeep(e, hook, &h);
    for (int k = 0; k < BATCHES; k++) {
        feed_batch(e, k);
        CHECK(ht_engine_flush(e, NULL, 0) == HT_ERR_OK);
    }
    CHECK(ht_engine_sync(e) == HT_ERR_OK);
    CHECK(ht_engine_totals(e)->batches == BATCHES);
    CHECK(h.busy == BATCHES);
    CHECK(h.wrong_thread == 0 && h.have_writer);
    CHECK(ht_store_begin(ht_engine_store(e), false, &t) == HT_ERR_OK);
    CHECK(ht_store_count(t, HT_DB_NODES, &nodes) == HT_ERR_OK);
    ht_store_abort(t);
    CHECK(nodes > 0 && nodes % BATCHES == 0);
    /* each call saw exactly the batches committed before it */
    for (int k = 0; k < BATCHES && k < h.busy; k++)
        CHECK(h.seen[k] == (uint64_t)(k + 1) * nodes / BATCHES);

    /* idle: at least once a second */
    {
        int before = h.idle;

        usleep(2600000);
        CHECK(h.idle - before >= 2);
        CHECK(h.busy == BATCHES);
    }
    /* the hook's own writes were committed */
    CHECK(ht_engine_sync(e) == HT_ERR_OK);
    CHECK(ht_store_begin(ht_engine_store(e), false, &t) == HT_ERR_OK);
    counter = ht_store_counter(t, "test_upkeep");
    ht_store_abort(t);
    CHECK(counter >= h.own_commits - 1 && counter > BATCHES);

    /* an error from the hook is the engine's error from then on */
    h.fail_with = HT_ERR_MAPFULL;
    feed_batch(e, BATCHES);
    {
        /* an idle call may come first and fail already */
        int frc = ht_engine_flush(e, NULL, 0);

        CHECK(frc == HT_ERR_OK || frc == HT_ERR_MAPFULL);
    }
    CHECK(ht_engine_sync(e) == HT_ERR_MAPFULL);
    CHECK(ht_engine_flush(e, NULL, 0) == HT_ERR_MAPFULL);
    CHECK(ht_engine_close(e) == HT_ERR_MAPFULL);
    {
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        CHECK(system(cmd) == 0);
    }
}

static void test_opts(void)
{
    struct ht_ingest_opts o;
    char err[200];
    char *argv[] = {"ingest",
                    "--batch",
                    "100",
                    "--retain",
                    "48h",
                    "-q",
                    "--until-idle",
                    "2.5",
                    "--retain=90m",
                    "--db",
                    "x",
                    "--batch",
                    "0",
                    "--retain",
                    "2w",
                    "--until-idle",
                    "-1",
                    "--retain"};
    int argc = (int)(sizeof(argv) / sizeof(argv[0])), i;
    int64_t us;

    CHECK(ht_opt_defaults(ht_ingest_opt_table, &o) == 0);
    CHECK(o.batch_docs == HT_INGEST_BATCH_DEFAULT && !o.strict && !o.quiet &&
          o.retain_us == 0 && o.until_idle == 0 && o.db == NULL);
    i = 1;
    CHECK(ht_opt_take(ht_ingest_opt_table, &o, argc, argv, &i, err,
                      sizeof(err)) == 1 &&
          o.batch_docs == 100 && i == 2);
    i = 3;
    CHECK(ht_opt_take(ht_ingest_opt_table, &o, argc, argv, &i, err,
                      sizeof(err)) == 1 &&
          o.retain_us == 48LL * 3600 * 1000000 && i == 4);
    i = 5;
    CHECK(ht_opt_take(ht_ingest_opt_table, &o, argc, argv, &i, err,
                      sizeof(err)) == 1 &&
          o.quiet);
    i = 6;
    CHECK(ht_opt_take(ht_ingest_opt_table, &o, argc, argv, &i, err,
                      sizeof(err)) == 1 &&
          o.until_idle == 2.5);
    i = 8;
    CHECK(ht_opt_take(ht_ingest_opt_table, &o, argc, argv, &i, err,
                      sizeof(err)) == 1 &&
          o.retain_us == 90LL * 60 * 1000000);
    i = 9;
    CHECK(ht_opt_take(ht_ingest_opt_table, &o, argc, argv, &i, err,
                      sizeof(err)) == 1 &&
          o.db && strcmp(o.db, "x") == 0);
    i = 11;
    CHECK(ht_opt_take(ht_ingest_opt_table, &o, argc, argv, &i, err,
                      sizeof(err)) == -1 &&
          strstr(err, "--batch"));
    i = 13;
    CHECK(ht_opt_take(ht_ingest_opt_table, &o, argc, argv, &i, err,
                      sizeof(err)) == -1 &&
          strstr(err, "--retain"));
    i = 15;
    CHECK(ht_opt_take(ht_ingest_opt_table, &o, argc, argv, &i, err,
                      sizeof(err)) == -1);
    i = 17; /* a value is missing */
    CHECK(ht_opt_take(ht_ingest_opt_table, &o, argc, argv, &i, err,
                      sizeof(err)) == -1 &&
          strstr(err, "needs a value"));
    i = 0; /* not one of the table's */
    CHECK(ht_opt_take(ht_ingest_opt_table, &o, argc, argv, &i, err,
                      sizeof(err)) == 0);
    CHECK(ht_parse_duration("2d", &us) == 0 && us == 2LL * 86400 * 1000000);
    CHECK(ht_parse_duration("250ms", &us) == 0 && us == 250000);
    CHECK(ht_parse_duration("300", &us) == 0 && us == 300000000);
    CHECK(ht_parse_duration("1.5h", &us) == 0 && us == 5400LL * 1000000);
    CHECK(ht_parse_duration("", &us) == -1);
    CHECK(ht_parse_duration("-5m", &us) == -1);
    CHECK(ht_parse_duration("5 m", &us) == -1);
    CHECK(ht_parse_duration("h", &us) == -1);
}

int main(void)
{
    ht_log_level = -1;
    test_opts();
    test_upkeep();
    if (ht_test_failures)
        fprintf(stderr, "%d check(s) failed\n", ht_test_failures);
    return ht_test_failures ? 1 : 0;
}
