/*
 * test_store.c - unit tests of store/: record encodings round-trip and
 * reject truncated values, the LMDB primitives (put/get, dupsort keys,
 * prefix scans, counters), map growth, and the schema check on open.
 * Maps: two writers with different HOPTRACE_MAP_MB on one store, one
 * growing while the other is open, both survive (no process shrinks a
 * file another has mapped); a 1 MiB map grows silently; a write
 * transaction that hit a full map keeps saying so (never MDB_BAD_TXN).
 * Pages mapped ahead of a growing writer go back to the file system at
 * close.
 */
#define _GNU_SOURCE
#include "ht_prune.h"
#include "ht_store.h"
#include "ht_test.h"

#include <lmdb.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_span_roundtrip(void)
{
    struct ht_span s, o;
    struct ht_link links[2];
    struct ht_buf b;
    struct ht_arena *a = ht_arena_create();

    memset(&s, 0, sizeof(s));
    ht_id8_parse("941f15bb4e7924a3", 16, &s.id);
    ht_id8_parse("f73458f286018441", 16, &s.parent);
    ht_tid_parse("1-6b083520-c49c720af84bd7b4b9c2b14a", 35, &s.trace);
    s.start_us = 1795700000057593LL;
    s.end_us = 1795700000579607LL;
    s.flags = HT_SPAN_HAS_PARENT | HT_SPAN_WRITE;
    s.kind = HT_SK_CALL;
    s.via = HT_VIA_SQS;
    s.http_status = 202;
    s.name = "SQS";
    s.resource = "payments-queue";
    s.message_id = "82b6671c";
    s.corr = "order-1";
    memset(links, 0, sizeof(links));
    ht_id8_parse("24f6a303b83ea7bd", 16, &links[1].id);
    s.links = links;
    s.nlinks = 2;
    ht_buf_init(&b);
    ht_span_pack(&s, &b);
    CHECK(ht_span_unpack(b.data, b.len, a, &o) == HT_ERR_OK);
    CHECK(memcmp(o.id.b, s.id.b, 8) == 0 &&
          memcmp(o.trace.b, s.trace.b, 16) == 0);
    CHECK(o.start_us == s.start_us && o.end_us == s.end_us);
    CHECK(o.flags == s.flags && o.kind == s.kind && o.via == s.via);
    CHECK(o.http_status == 202);
    CHECK_STREQ(o.name, "SQS");
    CHECK_STREQ(o.message_id, "82b6671c");
    CHECK(o.origin == NULL && o.operation == NULL);
    CHECK(o.nlinks == 2 && memcmp(o.links[1].id.b, links[1].id.b, 8) == 0);
    for (size_t cut = 0; cut < b.len; cut++)
        CHECK(ht_span_unpack(b.data, cut, a, &o) != HT_ERR_OK);
    ht_buf_free(&b);
    ht_arena_destroy(a);
}

static void test_inv_fact(void)
{
    struct ht_inv inv, o;
    struct ht_fact f, g;
    struct ht_buf b;
    struct ht_arena *a = ht_arena_create();

    memset(&inv, 0, sizeof(inv));
    memset(&f, 0, sizeof(f));
    inv.request_id = "94c247ab";
    f.kind = HT_FACT_REPORT;
    f.ts_us = 1000;
    f.duration_us = 38340;
    f.init_us = 376000;
    f.memory_mb = 512;
    f.flags = HT_FACT_COLD;
    f.function = "charge-card";
    CHECK(ht_inv_merge(&inv, &f));
    CHECK(!ht_inv_merge(&inv, &f)); /* idempotent */
    f.kind = HT_FACT_START;
    f.ts_us = 900;
    CHECK(ht_inv_merge(&inv, &f));
    CHECK(inv.start_ts == 900 && (inv.flags & HT_INV_COLD));
    ht_buf_init(&b);
    ht_inv_pack(&inv, &b);
    CHECK(ht_inv_unpack(b.data, b.len, a, &o) == HT_ERR_OK);
    CHECK_STREQ(o.request_id, "94c247ab");
    CHECK_STREQ(o.function, "charge-card");
    CHECK(o.duration_us == 38340 && o.init_us == 376000 && o.start_ts == 900);
    ht_buf_reset(&b);
    memset(&f, 0, sizeof(f));
    f.kind = HT_FACT_RECORD;
    f.via = HT_VIA_DYNAMODB;
    f.request_id = "c7c15745";
    f.resource = "payments";
    f.record_id = "4000000000000000002478";
    f.corr = "5b437c74";
    f.sent_us = 1795700001000000LL;
    ht_fact_pack(&f, &b);
    CHECK(ht_fact_unpack(b.data, b.len, a, &g) == HT_ERR_OK);
    CHECK(g.kind == HT_FACT_RECORD && g.via == HT_VIA_DYNAMODB);
    CHECK_STREQ(g.record_id, "4000000000000000002478");
    CHECK(g.sent_us == f.sent_us);
    CHECK(ht_fact_unpack(b.data, 3, a, &g) != HT_ERR_OK);
    ht_buf_free(&b);
    ht_arena_destroy(a);
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

/* A packed span of trace `tr` (X-Ray text id), id `id` (16 hex), parent
 * `parent` (16 hex or NULL), ending at `end_us`. */
static void packed_span(struct ht_buf *b, const char *tr, const char *id,
                        const char *parent, int64_t end_us)
{
    struct ht_span s;

    memset(&s, 0, sizeof(s));
    CHECK(ht_tid_parse(tr, strlen(tr), &s.trace));
    CHECK(ht_id8_parse(id, 16, &s.id));
    if (parent) {
        CHECK(ht_id8_parse(parent, 16, &s.parent));
        s.flags |= HT_SPAN_HAS_PARENT;
    }
    s.start_us = end_us - 1000;
    s.end_us = end_us;
    s.name = "n";
    ht_buf_reset(b);
    ht_span_pack(&s, b);
}

static void test_lmdb(void)
{
    char dir[] = "/tmp/ht_test_store_XXXXXX";
    struct ht_store *s;
    struct ht_txn *t;
    const void *v;
    size_t vn;
    int n;
    uint8_t key[HT_KEY_MAX];
    char longk[1000];

    CHECK(mkdtemp(dir) != NULL);
    CHECK(ht_store_open(dir, false, &s) == HT_ERR_OK);
    struct ht_buf sp;
    struct ht_id8 id1, id2;
    struct ht_tid tr1;

    ht_buf_init(&sp);
    ht_id8_parse("1111111111111111", 16, &id1);
    ht_id8_parse("2222222222222222", 16, &id2);
    ht_tid_parse("1-6b083520-c49c720af84bd7b4b9c2b14a", 35, &tr1);
    CHECK(ht_store_begin(s, true, &t) == HT_ERR_OK);
    /* nodes take a packed span (its trace says where it is filed) */
    CHECK(ht_store_put(t, HT_DB_NODES, "12345678", 8, "abc", 3) ==
          HT_ERR_USAGE);
    packed_span(&sp, "1-6b083520-c49c720af84bd7b4b9c2b14a", "1111111111111111",
                NULL, 1795700000000000LL);
    CHECK(ht_store_put(t, HT_DB_NODES, id1.b, 8, sp.data, sp.len) == 0);
    /* read back in the same transaction (deferred puts are applied) */
    CHECK(ht_store_get(t, HT_DB_NODES, id1.b, 8, &v, &vn) == 0);
    CHECK(vn == sp.len);
    packed_span(&sp, "1-6b083520-c49c720af84bd7b4b9c2b14a", "2222222222222222",
                "1111111111111111", 1795700000500000LL);
    CHECK(ht_store_put(t, HT_DB_NODES, id2.b, 8, sp.data, sp.len) == 0);
    packed_span(&sp, "1-6b083521-000000000000000000000001", "3333333333333333",
                NULL, 1795700001000000LL);
    CHECK(ht_store_put(t, HT_DB_NODES, sp.data + 1, 8, sp.data, sp.len) == 0);
    CHECK(ht_store_put(t, HT_DB_KEYS, "Kx", 2, "S1", 2) == 0);
    CHECK(ht_store_put(t, HT_DB_KEYS, "Kx", 2, "S2", 2) == 0);
    CHECK(ht_store_put(t, HT_DB_KEYS, "Kx", 2, "S1", 2) == 0); /* dup: no-op */
    CHECK(ht_store_put(t, HT_DB_FACTS, "ab\0x", 4, "1", 1) == 0);
    CHECK(ht_store_put(t, HT_DB_FACTS, "ab\0y", 4, "2", 1) == 0);
    CHECK(ht_store_put(t, HT_DB_FACTS, "abc\0y", 5, "3", 1) == 0);
    CHECK(ht_store_counter_add(t, "pending", 3) == 0);
    CHECK(ht_store_counter_add(t, "pending", -1) == 0);
    CHECK(ht_store_commit(t) == HT_ERR_OK);

    CHECK(ht_store_begin(s, false, &t) == HT_ERR_OK);
    CHECK(ht_store_get(t, HT_DB_NODES, id2.b, 8, &v, &vn) == 0);
    {
        struct ht_id8 par;
        struct ht_tid tr;

        CHECK(ht_span_peek_parent(v, vn, &par) == 0 &&
              memcmp(par.b, id1.b, 8) == 0);
        CHECK(ht_span_peek_trace(v, vn, &tr) == 0 &&
              memcmp(tr.b, tr1.b, 16) == 0);
    }
    CHECK(ht_store_get(t, HT_DB_NODES, "nope", 4, &v, &vn) == HT_ERR_NOTFOUND);
    CHECK(ht_store_get(t, HT_DB_NODES, "nopenope", 8, &v, &vn) ==
          HT_ERR_NOTFOUND);
    /* a trace's spans are one range of nodes, in span id order */
    n = 0;
    ht_store_scan(t, HT_DB_NODES, tr1.b, 16, count_cb, &n);
    CHECK(n == 2);
    n = 0;
    ht_store_scan(t, HT_DB_SPANS, NULL, 0, count_cb, &n);
    CHECK(n == 3);
    n = 0;
    ht_store_dups(t, HT_DB_KEYS, "Kx", 2, count_cb, &n);
    CHECK(n == 2);
    n = 0;
    ht_store_scan(t, HT_DB_FACTS, "ab\0", 3, count_cb, &n);
    CHECK(n == 2);
    CHECK(ht_store_counter(t, "pending") == 2);
    ht_store_abort(t);

    memset(longk, 'k', sizeof(longk));
    CHECK(ht_key_make(key, 'K', longk, sizeof(longk)) == HT_KEY_MAX);
    CHECK(ht_key_make(key, 'K', "ab", 2) == 3 && key[0] == 'K');

    /* growing the map keeps the data */
    CHECK(ht_store_grow(s) == HT_ERR_OK);
    CHECK(ht_store_begin(s, false, &t) == HT_ERR_OK);
    CHECK(ht_store_get(t, HT_DB_NODES, id1.b, 8, &v, &vn) == 0);
    ht_store_abort(t);

    /* deleting a node by span id removes its span index entry too; a
     * single key/value pair of keys can go alone */
    CHECK(ht_store_begin(s, true, &t) == HT_ERR_OK);
    CHECK(ht_store_del(t, HT_DB_NODES, id1.b, 8) == 0);
    CHECK(ht_store_get(t, HT_DB_NODES, id1.b, 8, &v, &vn) == HT_ERR_NOTFOUND);
    n = 0;
    ht_store_scan(t, HT_DB_SPANS, NULL, 0, count_cb, &n);
    CHECK(n == 2);
    CHECK(ht_store_get(t, HT_DB_NODES, id2.b, 8, &v, &vn) == 0);
    CHECK(ht_store_del_pair(t, HT_DB_KEYS, "Kx", 2, "S1", 2) == 0);
    CHECK(ht_store_del_pair(t, HT_DB_KEYS, "Kx", 2, "S9", 2) ==
          HT_ERR_NOTFOUND);
    n = 0;
    ht_store_dups(t, HT_DB_KEYS, "Kx", 2, count_cb, &n);
    CHECK(n == 1);
    /* spans of other days: found by span id whatever their day (the span
     * index probes each day present, newest first) */
    {
        static const char *ids[] = {"4444444444444444", "5555555555555555",
                                    "6666666666666666"};
        static const int64_t days[] = {1, 3, -400};
        struct ht_id8 id;

        for (int i = 0; i < 3; i++) {
            packed_span(&sp, "1-6b083521-000000000000000000000001", ids[i],
                        NULL, 1795700001000000LL + days[i] * 86400000000LL);
            ht_id8_parse(ids[i], 16, &id);
            CHECK(ht_store_put(t, HT_DB_NODES, id.b, 8, sp.data, sp.len) == 0);
        }
        for (int i = 0; i < 3; i++) {
            ht_id8_parse(ids[i], 16, &id);
            CHECK(ht_store_get(t, HT_DB_NODES, id.b, 8, &v, &vn) == 0);
        }
        CHECK(ht_store_get(t, HT_DB_NODES, id2.b, 8, &v, &vn) == 0);
        ht_id8_parse(ids[1], 16, &id);
        CHECK(ht_store_del(t, HT_DB_NODES, id.b, 8) == 0);
        CHECK(ht_store_get(t, HT_DB_NODES, id.b, 8, &v, &vn) ==
              HT_ERR_NOTFOUND);
        ht_id8_parse(ids[0], 16, &id);
        CHECK(ht_store_get(t, HT_DB_NODES, id.b, 8, &v, &vn) == 0);
        ht_id8_parse(ids[2], 16, &id);
        CHECK(ht_store_get(t, HT_DB_NODES, id.b, 8, &v, &vn) == 0);
        CHECK(ht_store_get(t, HT_DB_NODES, "\x01\x02\x03\x04\x05\x06\x07\x08",
                           8, &v, &vn) == HT_ERR_NOTFOUND);
    }
    /* more days than a transaction lists (16): walked back day by day */
    {
        struct ht_id8 id;
        char hex[17];

        for (int i = 0; i < 20; i++) {
            snprintf(hex, sizeof(hex), "77777777777777%02x", i);
            packed_span(&sp, "1-6b083521-000000000000000000000001", hex, NULL,
                        1795700001000000LL - (i + 10) * 86400000000LL);
            ht_id8_parse(hex, 16, &id);
            CHECK(ht_store_put(t, HT_DB_NODES, id.b, 8, sp.data, sp.len) == 0);
        }
        for (int i = 0; i < 20; i++) {
            snprintf(hex, sizeof(hex), "77777777777777%02x", i);
            ht_id8_parse(hex, 16, &id);
            CHECK(ht_store_get(t, HT_DB_NODES, id.b, 8, &v, &vn) == 0);
        }
        CHECK(ht_store_get(t, HT_DB_NODES, id2.b, 8, &v, &vn) == 0);
        CHECK(ht_store_get(t, HT_DB_NODES, "\x01\x02\x03\x04\x05\x06\x07\x09",
                           8, &v, &vn) == HT_ERR_NOTFOUND);
    }
    /* the newest event only moves forward */
    CHECK(ht_store_newest_event(t) == INT64_MIN);
    CHECK(ht_store_note_event(t, 2000) == 0);
    CHECK(ht_store_note_event(t, 1000) == 0);
    CHECK(ht_store_newest_event(t) == 2000);
    CHECK(ht_store_commit(t) == HT_ERR_OK);
    ht_buf_free(&sp);

    /* a store of another schema version is refused with a clear error */
    CHECK(ht_store_begin(s, true, &t) == HT_ERR_OK);
    uint32_t ver = 99;
    CHECK(ht_store_put(t, HT_DB_META, "schema_version", 14, &ver, 4) == 0);
    CHECK(ht_store_commit(t) == HT_ERR_OK);
    ht_store_close(s);
    ht_log_level = -1;
    CHECK(ht_store_open(dir, true, &s) == HT_ERR_SCHEMA);
    CHECK(ht_store_open(dir, false, &s) == HT_ERR_SCHEMA);
    CHECK(ht_store_open("/tmp/ht_no_such_store_dir", true, &s) ==
          HT_ERR_NOTFOUND);
    {
        char cmd[256];

        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        CHECK(system(cmd) == 0);
    }
}

static void test_id_pack(void)
{
    const char *ids[] = {"55d1c098-b0fd-429c-af21-6b7d6710d5be",
                         "55D1C098-B0FD-429C-AF21-6B7D6710D5BE",
                         "55d1c098-b0fd-429c-af21-6b7d6710d5bg",
                         "LV7fzho-PHcEJPw=",
                         "order-42",
                         "x"};
    uint8_t p[HT_ID_PACKED_MAX], k1[HT_KEY_MAX], k2[HT_KEY_MAX];
    char back[HT_ID_PACKED_MAX];

    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        size_t n = ht_id_pack(ids[i], strlen(ids[i]), p);

        CHECK(ht_id_unpack(p, n, back, sizeof(back)) == strlen(ids[i]));
        CHECK_STREQ(back, ids[i]);
    }
    /* a lowercase UUID is 16 bytes; any other text keeps its case */
    CHECK(ht_id_pack(ids[0], 36, p) == 17 && p[0] == 1);
    CHECK(ht_id_pack(ids[1], 36, p) == 37 && p[0] == 0);
    CHECK(ht_id_pack(ids[2], 36, p) == 37 && p[0] == 0); /* 'g' */
    CHECK(ht_key_make_id(k1, 'L', ids[0]) == 18);
    CHECK(ht_key_make_id(k2, 'L', ids[1]) == 38);
    CHECK(ht_id_unpack(p, 0, back, sizeof(back)) == 0);
    CHECK(ht_id_unpack((const uint8_t *)"\x07"
                                        "abc",
                       4, back, sizeof(back)) == 0);
}

/* Writes `mib` MiB of dead letters tagged `tag` in transactions of about
 * 256 KiB, growing the map whenever it is full, as the sink does. */
static int write_mib(struct ht_store *s, char tag, int mib)
{
    static char val[4000];
    int done = 0;

    memset(val, tag, sizeof(val));
    while (done < mib * 256) {
        struct ht_txn *t;
        int rc = ht_store_begin(s, true, &t);

        for (int i = 0; !rc && i < 64; i++) {
            char key[32];
            int kn = snprintf(key, sizeof(key), "%c%08d", tag, done + i);

            rc = ht_store_put(t, HT_DB_DLQ, key, (size_t)kn, val, sizeof(val));
        }
        if (rc) {
            /* once full, the transaction says so to every later call */
            if (rc == HT_ERR_MAPFULL)
                CHECK(ht_store_put(t, HT_DB_META, "x", 1, "y", 1) ==
                      HT_ERR_MAPFULL);
            ht_store_abort(t);
        } else {
            rc = ht_store_commit(t);
        }
        if (rc == HT_ERR_MAPFULL) {
            if (ht_store_grow(s) != HT_ERR_OK)
                return -1;
            continue;
        }
        if (rc)
            return -1;
        done += 64;
    }
    return 0;
}

static int count_tag(struct ht_store *s, char tag)
{
    struct ht_txn *t;
    char p[1] = {tag};
    int n = 0;

    CHECK(ht_store_begin(s, false, &t) == HT_ERR_OK);
    ht_store_scan(t, HT_DB_DLQ, p, 1, count_cb, &n);
    ht_store_abort(t);
    return n;
}

/* by_time keys sort in time order, negative times first; they decode. */
static void test_bytime_keys(void)
{
    static const int64_t ts[] = {-5000000, -1, 0, 1, 1795700000000000LL};
    uint8_t prev[HT_BYTIME_KEY_MAX], cur[HT_BYTIME_KEY_MAX];
    struct ht_id8 id;
    size_t pn = 0, cn;

    memset(&id, 7, sizeof(id));
    for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
        cn = ht_bytime_span_key(cur, ts[i], &id);
        CHECK(cn == 17 && cur[8] == HT_BYTIME_SPAN);
        CHECK(ht_bytime_time(cur) == ts[i]);
        if (pn)
            CHECK(memcmp(prev, cur, 8) < 0);
        memcpy(prev, cur, cn);
        pn = cn;
    }
    cn = ht_bytime_inv_key(cur, -3, (const uint8_t *)"\0r-1", 4);
    CHECK(cn == 13 && cur[8] == HT_BYTIME_INV && ht_bytime_time(cur) == -3);
}

static void test_two_writers(void)
{
    char dir[] = "/tmp/ht_test_maps_XXXXXX";
    int ready[2], go[2], status = 0;
    struct ht_store *s;
    pid_t pid;
    char c;

    CHECK(mkdtemp(dir) != NULL);
    CHECK(pipe(ready) == 0 && pipe(go) == 0);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        /* a writer with a 64 MiB map: data.mdb is 64 MiB from its open */
        setenv("HOPTRACE_MAP_MB", "64", 1);
        if (ht_store_open(dir, false, &s) != HT_ERR_OK || write_mib(s, 'a', 1))
            _exit(3);
        if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
            _exit(4);
        /* ... writes well past what a 1 MiB writer would have left of the
         * file, and past 64 MiB (grows while the other is open) */
        if (write_mib(s, 'b', 80))
            _exit(5);
        ht_store_close(s);
        _exit(0);
    }
    CHECK(read(ready[0], &c, 1) == 1);
    setenv("HOPTRACE_MAP_MB", "1", 1);
    CHECK(ht_store_open(dir, false, &s) == HT_ERR_OK);
    {
        char path[128];
        struct stat st;

        /* opening with a smaller map did not shrink the file */
        snprintf(path, sizeof(path), "%s/data.mdb", dir);
        CHECK(stat(path, &st) == 0 && st.st_size >= (64 << 20));
    }
    CHECK(write(go[1], "g", 1) == 1);
    CHECK(write_mib(s, 'c', 24) == 0);
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (WIFSIGNALED(status))
        fprintf(stderr, "the other writer died of signal %d\n",
                WTERMSIG(status));
    /* everything both wrote is there */
    CHECK(count_tag(s, 'a') == 256 && count_tag(s, 'b') == 80 * 256 &&
          count_tag(s, 'c') == 24 * 256);
    ht_store_close(s);
    unsetenv("HOPTRACE_MAP_MB");
    close(ready[0]);
    close(ready[1]);
    close(go[0]);
    close(go[1]);
    {
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        CHECK(system(cmd) == 0);
    }
}

static int count_visit(void *ctx, const void *k, size_t kn, const void *v,
                       size_t vn)
{
    (void)k;
    (void)kn;
    (void)v;
    (void)vn;
    (*(int *)ctx)++;
    return 0;
}

/* Deferred deletes of keys pairs: applied sorted with the deferred puts,
 * a put and a delete of one pair in one transaction keep their order, a
 * missing pair is no error, and only removed pairs are counted. */
static void test_del_later(void)
{
    char dir[] = "/tmp/ht_test_dellater_XXXXXX";
    struct ht_store *s;
    struct ht_txn *t;
    uint64_t deleted = 0;
    char k[16], v[16];
    int n;

    CHECK(mkdtemp(dir) != NULL);
    CHECK(ht_store_open(dir, false, &s) == HT_ERR_OK);
    CHECK(ht_store_begin(s, true, &t) == HT_ERR_OK);
    for (int i = 0; i < 300; i++) {
        snprintf(k, sizeof(k), "K%05d", (i * 7919) % 300);
        snprintf(v, sizeof(v), "S%d", i % 3);
        CHECK(ht_store_put(t, HT_DB_KEYS, k, strlen(k), v, strlen(v)) == 0);
    }
    CHECK(ht_store_commit(t) == HT_ERR_OK);
    CHECK(ht_store_begin(s, true, &t) == HT_ERR_OK);
    /* only the nodes table is refused: deletes other than keys pairs */
    CHECK(ht_store_del_later(t, HT_DB_NODES, "x", 1, "y", 1) == HT_ERR_USAGE);
    for (int i = 299; i >= 0; i -= 2) { /* every other key, in reverse */
        snprintf(k, sizeof(k), "K%05d", (i * 7919) % 300);
        snprintf(v, sizeof(v), "S%d", i % 3);
        CHECK(ht_store_del_later(t, HT_DB_KEYS, k, strlen(k), v, strlen(v)) ==
              0);
    }
    /* a pair that is not there, and one put then deleted in this txn */
    CHECK(ht_store_del_later(t, HT_DB_KEYS, "K00001", 6, "nope", 4) == 0);
    CHECK(ht_store_put(t, HT_DB_KEYS, "Knew", 4, "S9", 2) == 0);
    CHECK(ht_store_del_later(t, HT_DB_KEYS, "Knew", 4, "S9", 2) == 0);
    CHECK(ht_store_flush(t, &deleted) == HT_ERR_OK);
    CHECK(deleted == 150); /* the pair put and deleted here never lands */
    n = 0;
    CHECK(ht_store_scan(t, HT_DB_KEYS, NULL, 0, count_visit, &n) == 0);
    CHECK(n == 150);
    /* a read sees the deletes before commit too */
    n = 0;
    snprintf(k, sizeof(k), "K%05d", (299 * 7919) % 300);
    CHECK(ht_store_dups(t, HT_DB_KEYS, k, strlen(k), count_visit, &n) == 0);
    CHECK(n == 0);
    CHECK(ht_store_commit(t) == HT_ERR_OK);
    ht_store_close(s);
    {
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        CHECK(system(cmd) == 0);
    }
}

/* What a scan saw, in order: each key once, its value, keys ascending. */
struct seen_pairs {
    int n;
    bool ordered;
    char last[32];
    char vals[64][8];
    char keys[64][32];
};

static int pairs_visit(void *ctx, const void *k, size_t kn, const void *v,
                       size_t vn)
{
    struct seen_pairs *s = ctx;

    if (s->n >= 64 || kn >= 32 || vn >= 8)
        return 1;
    memcpy(s->keys[s->n], k, kn);
    s->keys[s->n][kn] = 0;
    memcpy(s->vals[s->n], v, vn);
    s->vals[s->n][vn] = 0;
    if (s->n && strcmp(s->last, s->keys[s->n]) >= 0)
        s->ordered = false;
    memcpy(s->last, s->keys[s->n], kn + 1);
    s->n++;
    return 0;
}

/* A put set's puts whose first 8 bytes tie are written in key order, the
 * last put of a key winning, in a short run of ties and in one longer than
 * the in-place sort takes (16); in keys, a key's values in order. */
static void test_bulk_ties(void)
{
    char dir[] = "/tmp/ht_test_bulkties_XXXXXX";
    struct ht_store *s;
    struct ht_txn *t;
    struct ht_bulk *b = ht_bulk_new();
    struct seen_pairs seen = {.ordered = true};
    char k[32], v[8];
    int n;

    CHECK(b != NULL);
    CHECK(mkdtemp(dir) != NULL);
    CHECK(ht_store_open(dir, false, &s) == HT_ERR_OK);
    for (int r = 0; r < 2; r++) {
        int runs = r ? 40 : 3; /* 17 is prime to both: every key once */

        for (int i = 0; i < runs; i++) {
            snprintf(k, sizeof(k), "%cPREFIX-%03d", 'a' + r, (i * 17) % runs);
            CHECK(ht_bulk_put(b, HT_DB_FACTS, k, strlen(k), "old", 3) == 0);
        }
        for (int i = 0; i < runs; i += 2) { /* put again: these win */
            snprintf(k, sizeof(k), "%cPREFIX-%03d", 'a' + r, i);
            CHECK(ht_bulk_put(b, HT_DB_FACTS, k, strlen(k), "new", 3) == 0);
        }
    }
    for (int i = 0; i < 30; i++) {
        snprintf(v, sizeof(v), "v%02d", (i * 7) % 30);
        CHECK(ht_bulk_put(b, HT_DB_KEYS, "kPREFIX-x", 9, v, 3) == 0);
    }
    CHECK(ht_bulk_sort(b) == HT_ERR_OK);
    CHECK(ht_store_begin(s, true, &t) == HT_ERR_OK);
    CHECK(ht_store_bulk_apply(t, b) == HT_ERR_OK);
    CHECK(ht_store_commit(t) == HT_ERR_OK);
    ht_bulk_free(b);

    CHECK(ht_store_begin(s, false, &t) == HT_ERR_OK);
    CHECK(ht_store_scan(t, HT_DB_FACTS, NULL, 0, pairs_visit, &seen) == 0);
    CHECK(seen.n == 43 && seen.ordered);
    for (int i = 0; i < seen.n; i++) {
        int idx = atoi(seen.keys[i] + 8);

        CHECK(strcmp(seen.vals[i], idx % 2 == 0 ? "new" : "old") == 0);
    }
    memset(&seen, 0, sizeof(seen));
    seen.ordered = true;
    n = 0;
    CHECK(ht_store_dups(t, HT_DB_KEYS, "kPREFIX-x", 9, count_visit, &n) == 0);
    CHECK(n == 30);
    {
        /* the values in order: the scan gives key + value pairs */
        char want[8];
        int i = 0;

        CHECK(ht_store_scan(t, HT_DB_KEYS, "kPREFIX-x", 9, pairs_visit,
                            &seen) == 0);
        CHECK(seen.n == 30);
        for (i = 0; i < 30; i++) {
            snprintf(want, sizeof(want), "v%02d", i);
            CHECK(strcmp(seen.vals[i], want) == 0);
        }
    }
    ht_store_abort(t);
    ht_store_close(s);
    {
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        CHECK(system(cmd) == 0);
    }
}

/* Gets and puts in key order through one cursor (ht_store_seq_*) find
 * what ht_store_get finds, with puts and deletes through other calls in
 * between and deferred deletes applied first; tables kept per epoch and
 * deferred tables are refused. */
static void test_seq(void)
{
    char dir[] = "/tmp/ht_test_seq_XXXXXX", cmd[64];
    struct ht_store *s;
    struct ht_txn *t;
    struct ht_seq *q;
    const void *v, *w;
    size_t vn, wn;
    char k[16], val[16];

    CHECK(mkdtemp(dir) != NULL);
    CHECK(ht_store_open(dir, false, &s) == HT_ERR_OK);
    CHECK(ht_store_begin(s, true, &t) == HT_ERR_OK);
    for (int i = 0; i < 3000; i += 3) { /* T00000, T00003, ... */
        snprintf(k, sizeof(k), "T%05d", i);
        snprintf(val, sizeof(val), "v%d", i);
        CHECK(ht_store_put(t, HT_DB_AGG, k, 6, val, strlen(val)) == 0);
    }
    CHECK(ht_store_commit(t) == HT_ERR_OK);
    CHECK(ht_store_begin(s, true, &t) == HT_ERR_OK);
    CHECK(ht_store_seq_open(t, HT_DB_NODES, &q) == HT_ERR_USAGE && !q);
    CHECK(ht_store_seq_open(t, HT_DB_AGG, &q) == HT_ERR_OK);
    CHECK(ht_store_seq_put(q, "x", 1, "y", 1) == HT_ERR_OK);
    CHECK(ht_store_del(t, HT_DB_AGG, "x", 1) == HT_ERR_OK);
    /* a deferred delete waits for the next read */
    CHECK(ht_store_del_later(t, HT_DB_AGG, "T00300", 6, NULL, 0) == 0);
    for (int i = 0; i < 3000; i++) {
        int rs, rg;

        snprintf(k, sizeof(k), "T%05d", i);
        rs = ht_store_seq_get(q, k, 6, &v, &vn);
        rg = ht_store_get(t, HT_DB_AGG, k, 6, &w, &wn);
        CHECK(rs == rg);
        CHECK(rs != HT_ERR_OK || (vn == wn && memcmp(v, w, vn) == 0));
        CHECK((rs == HT_ERR_OK) == (i % 3 == 0 && i != 300));
        /* every key read is written again or dropped, on either path */
        snprintf(val, sizeof(val), "w%d", i);
        if (i % 5 == 0)
            CHECK(ht_store_seq_put(q, k, 6, val, strlen(val)) == 0);
        else if (i % 5 == 1)
            CHECK(ht_store_put(t, HT_DB_AGG, k, 6, val, strlen(val)) == 0);
        else if (i % 5 == 2 && rs == HT_ERR_OK)
            CHECK(ht_store_del(t, HT_DB_AGG, k, 6) == 0);
    }
    ht_store_seq_close(q);
    CHECK(ht_store_commit(t) == HT_ERR_OK);
    CHECK(ht_store_begin(s, false, &t) == HT_ERR_OK);
    for (int i = 0; i < 3000; i++) {
        bool there = i % 5 < 2 || (i % 5 > 2 && i % 3 == 0 && i != 300);

        snprintf(k, sizeof(k), "T%05d", i);
        CHECK((ht_store_get(t, HT_DB_AGG, k, 6, &v, &vn) == HT_ERR_OK) ==
              there);
        if (i % 5 < 2) {
            snprintf(val, sizeof(val), "w%d", i);
            CHECK(vn == strlen(val) && memcmp(v, val, vn) == 0);
        }
    }
    ht_store_abort(t);
    ht_store_close(s);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

/* A node (span id `id` of `trace`, a millisecond from start). */
static void put_span_at(struct ht_txn *t, const char *trace, const char *id,
                        int64_t start)
{
    struct ht_span sp;
    struct ht_buf b;

    memset(&sp, 0, sizeof(sp));
    ht_id8_parse(id, 16, &sp.id);
    ht_tid_parse(trace, 35, &sp.trace);
    sp.start_us = start;
    sp.end_us = start + 1000;
    sp.kind = HT_SK_CALL;
    sp.name = "n";
    ht_buf_init(&b);
    ht_span_pack(&sp, &b);
    CHECK(ht_store_put(t, HT_DB_NODES, sp.id.b, 8, b.data, b.len) == 0);
    ht_buf_free(&b);
}

/* Span 941f15bb4e7924a3 of `trace`. */
static void put_node(struct ht_txn *t, const char *trace, int64_t start)
{
    put_span_at(t, trace, "941f15bb4e7924a3", start);
}

/* Deferred deletes beyond keys: a node by its stored key with its spans
 * entry only while that names its trace, a key's delete only while it
 * holds the value given, and reads in the transaction see them all. */
static void test_del_later_tables(void)
{
    char dir[] = "/tmp/ht_test_dellater2_XXXXXX";
    const char *t1 = "1-6b083520-c49c720af84bd7b4b9c2b14a";
    const char *t2 = "1-6b083521-c49c720af84bd7b4b9c2b14b";
    struct ht_store *s;
    struct ht_txn *t;
    struct ht_tid tr1, tr2;
    struct ht_id8 id;
    const void *v;
    size_t vn;
    int64_t start = 1795700000057593LL;

    ht_tid_parse(t1, 35, &tr1);
    ht_tid_parse(t2, 35, &tr2);
    ht_id8_parse("941f15bb4e7924a3", 16, &id);
    CHECK(mkdtemp(dir) != NULL);
    CHECK(ht_store_open(dir, false, &s) == HT_ERR_OK);
    CHECK(ht_store_begin(s, true, &t) == HT_ERR_OK);
    put_node(t, t1, start);
    put_node(t, t2, start); /* one span id in two traces: spans -> t2 */
    CHECK(ht_store_put(t, HT_DB_INV, "r1", 2, "x", 1) == 0);
    CHECK(ht_store_put(t, HT_DB_PENDING, "h1", 2, "a", 1) == 0);
    CHECK(ht_store_commit(t) == HT_ERR_OK);

    CHECK(ht_store_begin(s, true, &t) == HT_ERR_OK);
    CHECK(ht_store_del_later(t, HT_DB_SPANS, "x", 1, NULL, 0) == HT_ERR_USAGE);
    /* t1's node goes; the span id's entry names t2 and stays */
    CHECK(ht_store_node_del_later(t, &tr1, &id, start) == 0);
    CHECK(ht_store_del_later(t, HT_DB_INV, "r1", 2, NULL, 0) == 0);
    CHECK(ht_store_del_later(t, HT_DB_PENDING, "h1", 2, "b", 1) == 0);
    CHECK(ht_store_flush(t, NULL) == 0);
    CHECK(ht_store_deleted(t, HT_DB_NODES) == 1);
    CHECK(ht_store_deleted(t, HT_DB_SPANS) == 0);
    CHECK(ht_store_deleted(t, HT_DB_INV) == 1);
    CHECK(ht_store_deleted(t, HT_DB_PENDING) == 0);
    CHECK(ht_store_get(t, HT_DB_INV, "r1", 2, &v, &vn) == HT_ERR_NOTFOUND);
    CHECK(ht_store_get(t, HT_DB_PENDING, "h1", 2, &v, &vn) == HT_ERR_OK);
    CHECK(ht_store_get(t, HT_DB_NODES, id.b, 8, &v, &vn) == HT_ERR_OK);
    {
        struct ht_tid got;

        CHECK(ht_span_peek_trace(v, vn, &got) == 0);
        CHECK(memcmp(got.b, tr2.b, 16) == 0);
    }
    /* the value held: deleted; a read sees it before the flush */
    CHECK(ht_store_del_later(t, HT_DB_PENDING, "h1", 2, "a", 1) == 0);
    CHECK(ht_store_get(t, HT_DB_PENDING, "h1", 2, &v, &vn) == HT_ERR_NOTFOUND);
    /* t2's node goes with its spans entry: the id resolves to nothing */
    CHECK(ht_store_node_del_later(t, &tr2, &id, start) == 0);
    CHECK(ht_store_get(t, HT_DB_NODES, id.b, 8, &v, &vn) == HT_ERR_NOTFOUND);
    CHECK(ht_store_deleted(t, HT_DB_SPANS) == 1);
    CHECK(ht_store_commit(t) == HT_ERR_OK);
    ht_store_close(s);
    {
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        CHECK(system(cmd) == 0);
    }
}

/* ---- epochs ------------------------------------------------------------ */

struct seen {
    char text[512];
};

static int seen_visit(void *ctx, const void *k, size_t kn, const void *v,
                      size_t vn)
{
    struct seen *c = ctx;
    size_t l = strlen(c->text);

    snprintf(c->text + l, sizeof(c->text) - l, "%.*s=%.*s;", (int)kn,
             (const char *)k, (int)vn, (const char *)v);
    return 0;
}

/* What scanning (or, with dups, the values of) key/prefix k gives. */
static const char *seen_of(struct ht_txn *t, int db, const char *k, size_t kn,
                           bool dups)
{
    static struct seen c;

    c.text[0] = 0;
    if (dups)
        CHECK(ht_store_dups(t, db, k, kn, seen_visit, &c) == 0);
    else
        CHECK(ht_store_scan(t, db, k, kn, seen_visit, &c) == 0);
    return c.text;
}

/* The tables of the first epoch (plain names). */
static const char *const epoch_tables[] = {
    "nodes", "spans", "facts", "keys", "pending", "inv", "by_time", "hops"};

/* Whether the store in dir has a table of that name, read with LMDB
 * itself (1, 0; -1 when it cannot tell). */
static int table_exists(const char *dir, const char *name)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    int rc, got = -1;

    if (mdb_env_create(&env))
        return -1;
    mdb_env_set_maxdbs(env, 256);
    if (mdb_env_open(env, dir, MDB_RDONLY, 0644) == 0 &&
        mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0) {
        rc = mdb_dbi_open(txn, name, 0, &dbi);
        got = rc == 0 ? 1 : rc == MDB_NOTFOUND ? 0 : -1;
        mdb_txn_abort(txn);
    }
    mdb_env_close(env);
    return got;
}

static unsigned live_epochs(struct ht_store *s, struct ht_epoch *ep)
{
    struct ht_txn *t;
    unsigned n;

    CHECK(ht_store_begin(s, false, &t) == 0);
    n = ht_store_epochs(t, ep, 8);
    ht_store_abort(t);
    return n;
}

/*
 * Epochs: a write goes to the current epoch, a read sees every live one
 * (newest copy of a key first, each keys pair once, scans merged), a
 * delete deletes in all; sealed epochs get a filter that changes no
 * answer; the oldest epochs go whole, with the pending counter; a reader
 * opening the store afterwards sees the same.
 */
static void test_epochs(void)
{
    char dir[] = "/tmp/ht_test_epochs_XXXXXX";
    const int64_t day = 86400LL * 1000000, t0 = 20400 * day;
    const char *tr = "1-6b083520-c49c720af84bd7b4b9c2b14a";
    struct ht_store *s;
    struct ht_txn *t;
    struct ht_epoch ep[8];
    const void *v;
    size_t vn;
    uint64_t n;
    bool rot;
    struct ht_id8 a, b;

    ht_id8_parse("aaaaaaaaaaaaaaaa", 16, &a);
    ht_id8_parse("bbbbbbbbbbbbbbbb", 16, &b);
    CHECK(mkdtemp(dir) != NULL);
    CHECK(ht_store_open(dir, false, &s) == HT_ERR_OK);
    CHECK(ht_store_epoch_len(s) == 0);
    CHECK(ht_store_rotate(s, t0, true, &rot) == 0 &&
          !rot); /* no length: never */
    CHECK(ht_store_set_epoch_len(s, day) == 0 && ht_store_epoch_len(s) == day);
    /* nor a writer without retention */
    CHECK(ht_store_rotate(s, t0 + 9 * day, false, &rot) == 0 && !rot);

    /* epoch 0 (facts: request id NUL and an 8-byte hash) */
    CHECK(ht_store_begin(s, true, &t) == 0);
    put_span_at(t, tr, "aaaaaaaaaaaaaaaa", t0 + 5);
    CHECK(ht_store_put(t, HT_DB_KEYS, "K1", 2, "S1", 2) == 0);
    CHECK(ht_store_put(t, HT_DB_INV, "r1", 2, "v1", 2) == 0);
    CHECK(ht_store_put(t, HT_DB_FACTS, "ab\0xxxxxxxx", 11, "1", 1) == 0);
    CHECK(ht_store_put(t, HT_DB_PENDING, "h0", 2, "\001", 1) == 0);
    CHECK(ht_store_counter_add(t, "pending", 1) == 0);
    CHECK(ht_store_note_event(t, t0 + 10) == 0);
    CHECK(ht_store_commit(t) == 0);
    /* the first call gives epoch 0 its start; a day on, epoch 1 begins */
    CHECK(ht_store_rotate(s, t0 + 10, true, &rot) == 0 && !rot);
    CHECK(ht_store_rotate(s, t0 + day / 2, true, &rot) == 0 && !rot);
    CHECK(ht_store_rotate(s, t0 + day + 5, true, &rot) == 0 && rot);
    CHECK(live_epochs(s, ep) == 2);
    CHECK(ep[0].id == 1 && ep[0].start_us == t0 + day);
    CHECK(ep[1].id == 0 && ep[1].start_us == t0 && ep[1].newest_us == t0 + 10);

    /* epoch 1: new copies, new pairs, more of a range */
    CHECK(ht_store_begin(s, true, &t) == 0);
    put_span_at(t, tr, "bbbbbbbbbbbbbbbb", t0 + day + 1);
    CHECK(ht_store_put(t, HT_DB_KEYS, "K1", 2, "S2", 2) == 0);
    CHECK(ht_store_put(t, HT_DB_KEYS, "K1", 2, "S1", 2) == 0); /* again */
    CHECK(ht_store_put(t, HT_DB_INV, "r1", 2, "v2", 2) == 0);
    CHECK(ht_store_put(t, HT_DB_FACTS, "ab\0yyyyyyyy", 11, "2", 1) == 0);
    CHECK(ht_store_put(t, HT_DB_PENDING, "h1", 2, "\001", 1) == 0);
    CHECK(ht_store_counter_add(t, "pending", 1) == 0);
    CHECK(ht_store_note_event(t, t0 + day + 5) == 0);
    CHECK(ht_store_commit(t) == 0);

    for (int round = 0; round < 2; round++) {
        /* round 1: epoch 0 sealed and filtered (the next rotate builds it) */
        if (round == 1) {
            CHECK(ht_store_rotate(s, t0 + day + 6, true, &rot) == 0 && !rot);
            CHECK(ht_store_begin(s, false, &t) == 0);
            CHECK(ht_store_get(t, HT_DB_META, "bf:\0\0\0\0\0\0", 9, &v, &vn) ==
                  0);
            ht_store_abort(t);
        }
        CHECK(ht_store_begin(s, false, &t) == 0);
        CHECK(ht_store_get(t, HT_DB_INV, "r1", 2, &v, &vn) == 0 && vn == 2 &&
              memcmp(v, "v2", 2) == 0);
        CHECK_STREQ(seen_of(t, HT_DB_KEYS, "K1", 2, true), "K1=S1;K1=S2;");
        CHECK_STREQ(seen_of(t, HT_DB_FACTS, "ab\0", 3, false),
                    "ab=1;ab=2;"); /* %.*s stops at the NUL */
        CHECK_STREQ(seen_of(t, HT_DB_INV, "", 0, false), "r1=v2;");
        CHECK(ht_store_get(t, HT_DB_NODES, a.b, 8, &v, &vn) == 0);
        CHECK(ht_store_get(t, HT_DB_NODES, b.b, 8, &v, &vn) == 0);
        CHECK(ht_store_get(t, HT_DB_INV, "r9", 2, &v, &vn) == HT_ERR_NOTFOUND);
        CHECK(ht_store_count(t, HT_DB_INV, &n) == 0 && n == 1);
        CHECK(ht_store_count(t, HT_DB_KEYS, &n) == 0 && n == 2);
        CHECK(ht_store_count(t, HT_DB_NODES, &n) == 0 && n == 2);
        CHECK(ht_store_count(t, HT_DB_SPANS, &n) == 0 && n == 2);
        ht_store_abort(t);
    }

    /* a delete deletes in every epoch; a pair goes from both */
    CHECK(ht_store_begin(s, true, &t) == 0);
    CHECK(ht_store_del(t, HT_DB_INV, "r1", 2) == 0);
    CHECK(ht_store_del_pair(t, HT_DB_KEYS, "K1", 2, "S1", 2) == 0);
    CHECK(ht_store_del_later(t, HT_DB_FACTS, "ab\0xxxxxxxx", 11, NULL, 0) == 0);
    CHECK(ht_store_commit(t) == 0);
    CHECK(ht_store_begin(s, false, &t) == 0);
    CHECK(ht_store_get(t, HT_DB_INV, "r1", 2, &v, &vn) == HT_ERR_NOTFOUND);
    CHECK_STREQ(seen_of(t, HT_DB_KEYS, "K1", 2, true), "K1=S2;");
    CHECK_STREQ(seen_of(t, HT_DB_FACTS, "ab\0", 3, false), "ab=2;");
    ht_store_abort(t);

    /* epoch 0 (newest event t0 + 10) goes whole: its node and waiting
     * producer with it, and the pending counter says so */
    {
        struct ht_prune_stats st;

        memset(&st, 0, sizeof(st));
        CHECK(ht_prune_epochs(s, t0 + 10, NULL, NULL, &st) == 0 &&
              st.epochs == 0);
        /* interrupted once its view is gone, as a crash would: the
         * epoch is listed as doomed and its tables are still there */
        ht_store_test_drop_unfinished = 1;
        CHECK(ht_prune_epochs(s, t0 + day, NULL, NULL, &st) == 0 &&
              st.epochs == 1);
        CHECK(st.nodes == 1 && st.pending == 1);
        CHECK(live_epochs(s, ep) == 1 && ep[0].id == 1);
        CHECK(ht_store_begin(s, false, &t) == 0);
        CHECK(ht_store_get(t, HT_DB_META, "doomed:\0\0\0\0", 11, &v, &vn) == 0);
        CHECK(ht_store_get(t, HT_DB_NODES, a.b, 8, &v, &vn) == HT_ERR_NOTFOUND);
        ht_store_abort(t);
        CHECK(table_exists(dir, "nodes") == 1);
        /* reopened, the next call (nothing new to drop) finishes it */
        ht_store_close(s);
        CHECK(ht_store_open(dir, false, &s) == HT_ERR_OK);
        /* never the current epoch */
        CHECK(ht_prune_epochs(s, t0 + 9 * day, NULL, NULL, &st) == 0 &&
              st.epochs == 1);
    }
    CHECK(live_epochs(s, ep) == 1 && ep[0].id == 1);
    CHECK(ht_store_begin(s, false, &t) == 0);
    CHECK(ht_store_get(t, HT_DB_NODES, a.b, 8, &v, &vn) == HT_ERR_NOTFOUND);
    CHECK(ht_store_get(t, HT_DB_NODES, b.b, 8, &v, &vn) == 0);
    CHECK(ht_store_counter(t, "pending") == 1);
    CHECK(ht_store_get(t, HT_DB_META, "bf:\0\0\0\0\0\0", 9, &v, &vn) ==
          HT_ERR_NOTFOUND);
    CHECK(ht_store_get(t, HT_DB_META, "doomed:\0\0\0\0", 11, &v, &vn) ==
          HT_ERR_NOTFOUND);
    ht_store_abort(t);
    ht_store_close(s);
    for (size_t i = 0; i < sizeof(epoch_tables) / sizeof(*epoch_tables); i++)
        CHECK(table_exists(dir, epoch_tables[i]) == 0);

    /* a reader opening it now: epoch 0's tables are gone */
    CHECK(ht_store_open(dir, true, &s) == HT_ERR_OK);
    CHECK(ht_store_begin(s, false, &t) == 0);
    CHECK(ht_store_get(t, HT_DB_NODES, b.b, 8, &v, &vn) == 0);
    CHECK_STREQ(seen_of(t, HT_DB_KEYS, "K1", 2, true), "K1=S2;");
    ht_store_abort(t);
    ht_store_close(s);
    {
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        CHECK(system(cmd) == 0);
    }
}

/* Bytes of the store at dir in use (up to its last page), read by a child
 * process through an environment of its own (LMDB allows one environment
 * of a store per process, and the test has the store open). */
static size_t used_of(const char *dir)
{
    int fds[2];
    size_t used = 0;
    pid_t pid;

    CHECK(pipe(fds) == 0);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        MDB_env *env;
        MDB_envinfo info;
        MDB_stat st;

        if (mdb_env_create(&env) == 0) {
            mdb_env_set_maxdbs(env, 256);
            if (mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0644) == 0 &&
                mdb_env_info(env, &info) == 0 && mdb_env_stat(env, &st) == 0)
                used = (info.me_last_pgno + 1) * (size_t)st.ms_psize;
            mdb_env_close(env);
        }
        _exit(write(fds[1], &used, sizeof(used)) == sizeof(used) ? 0 : 1);
    }
    close(fds[1]);
    CHECK(read(fds[0], &used, sizeof(used)) == sizeof(used));
    close(fds[0]);
    CHECK(waitpid(pid, NULL, 0) == pid);
    return used;
}

static size_t allocated(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? (size_t)st.st_blocks * 512 : 0;
}

/* Mapping ahead (ht_store_map_ahead): a store that has not grown since
 * the process first looked gets nothing; one that grew gets up to as much
 * again past its last page, a step per call, and nothing it holds
 * changes; at close what was mapped ahead and not taken is a hole again.
 * On a kernel without MADV_POPULATE_WRITE it does nothing at all. */
static void test_map_ahead(void)
{
    char dir[] = "/tmp/ht_test_ahead_XXXXXX", path[64], cmd[64];
    bool can = true;
    struct ht_store *s;
    size_t before, first, grown, ahead = 0;

    {
        void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

        CHECK(m != MAP_FAILED);
        can = madvise(m, 4096, 23 /* MADV_POPULATE_WRITE */) == 0;
        munmap(m, 4096);
    }
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    CHECK(ht_store_open(dir, false, &s) == HT_ERR_OK);
    CHECK(write_mib(s, 'a', 1) == 0);
    CHECK(!ht_store_map_ahead(s, 1 << 20, SIZE_MAX)); /* the first look */
    first = used_of(dir);
    before = allocated(path);
    CHECK(!ht_store_map_ahead(s, 1 << 20, SIZE_MAX)); /* not grown: nothing */
    CHECK(allocated(path) == before);
    CHECK(write_mib(s, 'b', 3) == 0);
    grown = used_of(dir) - first;
    CHECK(grown >= (3 << 20));
    CHECK(ht_store_grown(s) == grown);
    /* no further than asked: nothing, then one step of 1 MiB at most */
    CHECK(!ht_store_map_ahead(s, 1 << 20, 0));
    if (can) {
        CHECK(ht_store_map_ahead(s, 1 << 20, 1 << 20));
        CHECK(!ht_store_map_ahead(s, 1 << 20, 1 << 20));
        ahead = 1;
    }
    while (ht_store_map_ahead(s, 1 << 20, SIZE_MAX))
        ahead++;
    if (can && !ahead)
        fprintf(stderr,
                "test_store: the kernel populates memory, yet no "
                "page of %s was mapped ahead (is /proc mounted? "
                "does the file system give stable inode numbers?)\n",
                path);
    if (can) {
        /* steps of 1 MiB up to as far again as it grew */
        CHECK(ahead == (grown + (1 << 20) - 1) >> 20);
        CHECK(allocated(path) >= used_of(dir) + grown);
    } else {
        CHECK(ahead == 0 && allocated(path) <= used_of(dir) + (64 << 10));
    }
    /* the pages ahead are taken like any others */
    CHECK(write_mib(s, 'c', 2) == 0);
    CHECK(count_tag(s, 'a') == 256 && count_tag(s, 'b') == 3 * 256 &&
          count_tag(s, 'c') == 2 * 256);
    ht_store_close(s);
    /* closed: the file holds what is in use, not what was mapped ahead */
    CHECK(allocated(path) <= used_of(dir) + (64 << 10));
    CHECK(ht_store_open(dir, true, &s) == HT_ERR_OK);
    CHECK(count_tag(s, 'a') == 256 && count_tag(s, 'b') == 3 * 256 &&
          count_tag(s, 'c') == 2 * 256);
    CHECK(!ht_store_map_ahead(s, 1 << 20, SIZE_MAX)); /* read-only: never */
    ht_store_close(s);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

int main(void)
{
    /* test_epochs decides when epochs begin, not the test knob */
    unsetenv("HOPTRACE_EPOCH_EVERY");
    test_id_pack();
    test_span_roundtrip();
    test_inv_fact();
    test_lmdb();
    test_bytime_keys();
    test_two_writers();
    test_del_later();
    test_del_later_tables();
    test_bulk_ties();
    test_seq();
    test_epochs();
    test_map_ahead();
    TEST_DONE();
}
