/*
 * report.c - the store-wide documents that both the command line and
 * `hoptrace serve` emit: `stats` (what the store holds, rejected input by
 * reason; cli.md "stats") and the store part of `metrics` (Prometheus
 * text; cli.md "metrics"), followed there by every stage's figures.
 *
 * Owned by query/: read transactions only. The command line prints these
 * bytes as they are, and serve answers them as they are, so one contract
 * serves both.
 */
#define _GNU_SOURCE
#include "ht_query.h"

#include <stdio.h>
#include <sys/stat.h>

struct rej_count {
    uint64_t n[HT_REJ__COUNT];
};

/* Dead letters by reason: a visitor over HT_DB_DLQ. */
static int count_rej(void *ctx, const void *k, size_t kn, const void *v,
                     size_t vn)
{
    struct rej_count *c = ctx;

    (void)k;
    (void)kn;
    if (vn >= 1 && ((const uint8_t *)v)[0] < HT_REJ__COUNT)
        c->n[((const uint8_t *)v)[0]]++;
    return 0;
}

int ht_query_stats(struct ht_store *s, bool json, struct ht_buf *out)
{
    struct ht_txn *t;
    struct rej_count rc = {{0}};
    uint64_t nodes = 0, inv = 0, facts = 0, keys = 0, dlq = 0, total = 0;
    uint64_t agg_pending = 0;
    int64_t pending;
    struct stat st;
    char path[4096];
    int e = ht_store_begin(s, false, &t);

    if (e)
        return e;
    ht_store_count(t, HT_DB_NODES, &nodes);
    ht_store_count(t, HT_DB_INV, &inv);
    ht_store_count(t, HT_DB_FACTS, &facts);
    ht_store_count(t, HT_DB_KEYS, &keys);
    ht_store_count(t, HT_DB_DLQ, &dlq);
    ht_store_count(t, HT_DB_DIRTY, &agg_pending);
    ht_store_scan(t, HT_DB_DLQ, NULL, 0, count_rej, &rc);
    pending = ht_store_counter(t, "pending");
    ht_store_abort(t);
    snprintf(path, sizeof(path), "%s/data.mdb", ht_store_dir(s));
    if (stat(path, &st) != 0)
        st.st_blocks = 0;
    for (int r = 0; r < HT_REJ__COUNT; r++)
        total += rc.n[r];
    if (json) {
        const char *sep = "";

        ht_buf_printf(out,
                      "{\"spans\":%llu,\"invocations\":%llu,\"facts\":%llu,"
                      "\"keys\":%llu,\"hops_pending\":%lld,\"dead_letters\":"
                      "%llu,\"store_bytes\":%llu,\"aggregates_pending\":%llu,"
                      "\"rejected_total\":%llu,\"rejected\":{",
                      (unsigned long long)nodes, (unsigned long long)inv,
                      (unsigned long long)facts, (unsigned long long)keys,
                      (long long)pending, (unsigned long long)dlq,
                      (unsigned long long)st.st_blocks * 512,
                      (unsigned long long)agg_pending,
                      (unsigned long long)total);
        for (int r = 0; r < HT_REJ__COUNT; r++)
            if (rc.n[r]) {
                ht_buf_printf(out, "%s\"%s\":%llu", sep, ht_reject_name(r),
                              (unsigned long long)rc.n[r]);
                sep = ",";
            }
        ht_buf_adds(out, "}}\n");
    } else {
        ht_buf_printf(
            out,
            "spans          %llu\ninvocations    %llu\nfacts       "
            "   %llu\nkeys           %llu\nhops pending   %lld\n"
            "store bytes    %llu\nagg pending    %llu\nrejected     "
            "  %llu\n",
            (unsigned long long)nodes, (unsigned long long)inv,
            (unsigned long long)facts, (unsigned long long)keys,
            (long long)pending, (unsigned long long)st.st_blocks * 512,
            (unsigned long long)agg_pending, (unsigned long long)total);
        for (int r = 0; r < HT_REJ__COUNT; r++)
            if (rc.n[r])
                ht_buf_printf(out, "  %-16s %llu\n", ht_reject_name(r),
                              (unsigned long long)rc.n[r]);
    }
    return HT_ERR_OK;
}

static void store_metrics(struct ht_txn *t, struct ht_buf *b)
{
    uint64_t nodes = 0, inv = 0, facts = 0, dlq = 0, dirty = 0;
    struct rej_count rc = {{0}};

    ht_store_count(t, HT_DB_NODES, &nodes);
    ht_store_count(t, HT_DB_INV, &inv);
    ht_store_count(t, HT_DB_FACTS, &facts);
    ht_store_count(t, HT_DB_DLQ, &dlq);
    ht_store_count(t, HT_DB_DIRTY, &dirty);
    ht_store_scan(t, HT_DB_DLQ, NULL, 0, count_rej, &rc);
    ht_buf_printf(b,
                  "# HELP hoptrace_spans Spans in the store.\n"
                  "# TYPE hoptrace_spans gauge\nhoptrace_spans %llu\n"
                  "# HELP hoptrace_invocations Lambda invocations known from "
                  "logs.\n# TYPE hoptrace_invocations gauge\n"
                  "hoptrace_invocations %llu\n"
                  "# HELP hoptrace_facts Log facts kept (records received, "
                  "correlation lines).\n# TYPE hoptrace_facts gauge\n"
                  "hoptrace_facts %llu\n"
                  "# HELP hoptrace_hops_pending Producer halves waiting for "
                  "their consumer, store-wide.\n"
                  "# TYPE hoptrace_hops_pending gauge\n"
                  "hoptrace_hops_pending %lld\n"
                  "# HELP hoptrace_dead_letters Rejected payloads kept.\n"
                  "# TYPE hoptrace_dead_letters gauge\n"
                  "hoptrace_dead_letters %llu\n"
                  "# HELP hoptrace_agg_pending_traces Ingested traces not "
                  "yet counted in the request summaries.\n"
                  "# TYPE hoptrace_agg_pending_traces gauge\n"
                  "hoptrace_agg_pending_traces %llu\n"
                  "# HELP hoptrace_rejected_total Rejected payloads by "
                  "reason.\n# TYPE hoptrace_rejected_total counter\n",
                  (unsigned long long)nodes, (unsigned long long)inv,
                  (unsigned long long)facts,
                  (long long)ht_store_counter(t, "pending"),
                  (unsigned long long)dlq, (unsigned long long)dirty);
    for (int r = 0; r < HT_REJ__COUNT; r++)
        ht_buf_printf(b, "hoptrace_rejected_total{reason=\"%s\"} %llu\n",
                      ht_reject_name(r), (unsigned long long)rc.n[r]);
}

int ht_query_metrics(struct ht_store *s, const struct ht_stall_cfg *cfg,
                     int64_t now_us, struct ht_buf *out)
{
    struct ht_stalls *st;
    struct ht_txn *t;
    int rc = ht_query_stalls(s, cfg, now_us, &st);

    if (rc)
        return rc;
    if (ht_store_begin(s, false, &t) == HT_ERR_OK) {
        store_metrics(t, out);
        ht_store_abort(t);
    }
    ht_stalls_metrics(st, out);
    ht_stalls_free(st);
    return HT_ERR_OK;
}
