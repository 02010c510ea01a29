/*
 * upkeep.c - the ingest engine's upkeep between batches: aggregates brought
 * up to date and, under `--retain`, expired requests removed (whole
 * epochs) with their summaries and stall-detection state (bounded slices
 * of their own write transactions; ht_maint.h).
 *
 * The retention cut-off follows the store's newest-event watermark (kept by
 * the assembler in meta), so a replay of last month's data keeps what a
 * live run would have kept, and tests need no clock.
 */
#include "ht_maint.h"

#include <limits.h>

/* Where retention stands: the request cut-off (newest event - retain)
 * and whether any piece is older than it minus the horizon. */
static int retention_due(struct ht_store *s, int64_t retain_us, int64_t *cutoff,
                         bool *due)
{
    struct ht_txn *t;
    int64_t newest, oldest;
    int rc;

    *due = false;
    *cutoff = INT64_MIN;
    rc = ht_store_begin(s, false, &t);
    if (rc)
        return rc;
    newest = ht_store_newest_event(t);
    oldest = ht_store_oldest_event(t);
    ht_store_abort(t);
    if (newest == INT64_MIN || newest < INT64_MIN + retain_us)
        return HT_ERR_OK;
    *cutoff = newest - retain_us;
    *due = oldest != INT64_MIN && oldest < *cutoff - HT_PRUNE_HORIZON_US;
    return HT_ERR_OK;
}

/* One slice of each retention job that is due; *more when work remains. */
static int retention_work(struct ht_upkeep *u, struct ht_store *s, bool *more)
{
    int64_t cutoff;
    bool due, m = false;
    int rc;

    *more = false;
    rc = retention_due(s, u->retain_us, &cutoff, &due);
    if (rc || cutoff == INT64_MIN)
        return rc;
    if (due && ht_store_epoch_len(s) > 0) {
        /* a store in epochs: the expired ones go whole */
        rc = ht_stages_prune_epochs(s, cutoff - HT_PRUNE_HORIZON_US, &u->stages,
                                    &u->prune);
        if (rc)
            return rc;
    } else if (due) {
        rc = ht_prune_slice(s, cutoff, 0, &m, &u->prune);
        if (rc)
            return rc;
        *more = m;
    }
    /* the stall state goes with the requests too (the same horizon, in
     * ht_stages_prune_slice), walked again once the cut-off has moved on
     * by a minute (its finest bucket) */
    if (u->stg_more || cutoff >= u->stg_pruned_cut + 60 * 1000000LL) {
        /* in epochs, the per-hop entries went with theirs just above */
        u->stages.buckets_only = ht_store_epoch_len(s) > 0;
        rc = ht_stages_prune_slice(s, cutoff, 0, &m, &u->stages);
        if (rc)
            return rc;
        u->stg_more = m;
        if (m)
            *more = true;
        else
            u->stg_pruned_cut = cutoff;
    }
    /* summaries go with the requests: the same cut-off less the horizon,
     * re-run once the cut-off has moved on by a minute (its granularity) */
    cutoff -= HT_PRUNE_HORIZON_US;
    if (cutoff >= u->agg_pruned_cut + 60 * 1000000LL) {
        rc = ht_agg_prune(s, cutoff, 0, &m);
        if (rc)
            return rc;
        u->agg_prune_slices++;
        if (m)
            *more = true;
        else
            u->agg_pruned_cut = cutoff;
    }
    return HT_ERR_OK;
}

/* retention_work, its time counted in u->retention_us */
static int retention_slice(struct ht_upkeep *u, struct ht_store *s, bool *more)
{
    int64_t t0 = ht_now_mono_us();
    int rc = retention_work(u, s, more);

    u->retention_us += ht_now_mono_us() - t0;
    return rc;
}

int ht_upkeep_round(void *ctx, struct ht_store *s, bool idle)
{
    struct ht_upkeep *u = ctx;
    int64_t t0 = ht_now_mono_us();
    bool agg_due, rmore = true;
    int rc;

    if (!u->agg_pruned_cut)
        u->agg_pruned_cut = INT64_MIN + 60 * 1000000LL;
    if (!u->stg_pruned_cut)
        u->stg_pruned_cut = INT64_MIN + 60 * 1000000LL;
    if (!u->agg_current_us)
        u->agg_current_us = t0;
    agg_due =
        !u->no_aggregates &&
        (idle || u->agg_more || t0 - u->agg_current_us >= HT_UPKEEP_AGG_LAG_US);
    for (;;) {
        if (agg_due) {
            rc = ht_agg_update(s, 0, &u->agg_more, &u->agg);
            if (rc)
                return rc;
            if (!u->agg_more) {
                u->agg_current_us = ht_now_mono_us();
                agg_due = false;
            }
        }
        if (u->retain_us > 0 && rmore) {
            rc = retention_slice(u, s, &rmore);
            if (rc)
                return rc;
        } else {
            rmore = false;
        }
        if ((!agg_due && !rmore) || ht_now_mono_us() - t0 >= HT_UPKEEP_ROUND_US)
            return HT_ERR_OK;
        if (!idle && !agg_due)
            return HT_ERR_OK; /* retention: one slice per batch */
    }
}

int ht_upkeep_settle(void *ctx, struct ht_store *s)
{
    struct ht_upkeep *u = ctx;
    bool rmore = true;
    int rc;

    if (!u->agg_pruned_cut)
        u->agg_pruned_cut = INT64_MIN + 60 * 1000000LL;
    if (!u->stg_pruned_cut)
        u->stg_pruned_cut = INT64_MIN + 60 * 1000000LL;
    /* retention first: no point summarising what is about to go. A first
     * --retain on a store that holds months of expired data can take long:
     * past HT_UPKEEP_SETTLE_RETAIN_US an exiting ingest leaves the rest to
     * the next run (or `hoptrace prune`) instead of hanging at exit. */
    int64_t t0 = ht_now_mono_us();

    while (u->retain_us > 0 && rmore) {
        rc = retention_slice(u, s, &rmore);
        if (rc)
            return rc;
        if (rmore && ht_now_mono_us() - t0 > HT_UPKEEP_SETTLE_RETAIN_US) {
            HT_LOG_INFO("ingest",
                        "retention is not done yet; the next ingest or "
                        "`hoptrace prune --keep` goes on with it");
            break;
        }
    }
    if (u->no_aggregates)
        return HT_ERR_OK;
    rc = ht_agg_catch_up(s, &u->agg);
    if (!rc)
        u->agg_more = false;
    return rc;
}
