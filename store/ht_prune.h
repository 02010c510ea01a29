/*
 * ht_prune.h - retention: removing what expired from a store, in bounded
 * slices of work (see design.md "Store", "Retention").
 *
 * The pieces of a request are its nodes (spans) and its invocations. Each
 * piece has a last-activity time (its end; ht_span_last_us,
 * ht_inv_last_us) and one by_time entry at that time. Pruning at cut-off C
 * with horizon H removes every piece whose last activity is before C - H,
 * with everything that indexes it: its keys entries, span index entry,
 * facts (invocations), pending hop halves, by_time entry. Hence, for every
 * request that lasted at most H:
 *   - a request whose last event ended before C - H is removed whole, and
 *     each of its ids then resolves to nothing (`trace` exits 1);
 *   - a request whose last event ended at or after C is kept whole (all of
 *     its pieces ended at or after its start, which is after C - H);
 *   - a request that ended in [C - H, C) may be partly removed.
 * Aggregates (agg), stall state (stages), dirty marks and dead letters are
 * not touched here.
 *
 * Owned by store/. A slice is one write transaction: it never holds the
 * writer for long, so it can run between the batches of a live ingest, or
 * next to one (`hoptrace prune`), and a crash mid-way loses nothing (the
 * next slice goes on).
 */
#ifndef HT_PRUNE_H
#define HT_PRUNE_H

#include "ht_store.h"

/* The default horizon: how long a request may run and still be kept whole
 * while its last event is after the cut-off. */
#define HT_PRUNE_HORIZON_US (3600LL * 1000000LL)

/* What slices removed (added to, so a caller can sum over slices). */
struct ht_prune_stats {
    uint64_t nodes;       /* spans removed */
    uint64_t invocations; /* invocation records removed */
    uint64_t facts;       /* their received records and correlation lines */
    uint64_t keys;        /* keys entries removed */
    uint64_t pending;     /* pending / matched hop halves removed */
    uint64_t stale;       /* by_time entries of replaced versions dropped */
    uint64_t slices;      /* transactions committed */
    uint64_t epochs;      /* whole epochs dropped (ht_prune_epochs) */
};

/*
 * One slice: removes, in one write transaction, the pieces whose last
 * activity is before cutoff_us - HT_PRUNE_HORIZON_US, visiting at most
 * `budget` by_time entries (oldest first; 0 means 8000: 25-35 ms on the
 * 2-core test machine, pruning one 8,000-request chunk in 24 slices).
 * *more is true when expired entries may remain (call again). Grows the map
 * when full. Call between transactions of this process, like ht_store_grow.
 * Returns HT_ERR_OK or the store error.
 */
int ht_prune_slice(struct ht_store *s, int64_t cutoff_us, size_t budget,
                   bool *more, struct ht_prune_stats *st);

/* The same with an explicit horizon (0: each piece by its own end). */
int ht_prune_slice_h(struct ht_store *s, int64_t cutoff_us, int64_t horizon_us,
                     size_t budget, bool *more, struct ht_prune_stats *st);

/*
 * Drops, whole, every epoch (ht_store.h) but the current one whose newest
 * event is before before_us: whatever it holds ended before that, so for
 * requests that lasted at most the horizon this removes exactly what
 * ht_prune_slice would at cut-off before_us + HT_PRUNE_HORIZON_US, except
 * that a request is kept until its whole epoch has expired. Costs next to
 * nothing per entry (nothing is read; the pending counter is corrected for
 * the producers waiting there). The counts in *st are the dropped tables'
 * entries (older copies of a key included); one slice per drop.
 * also (may be NULL) runs in the same transaction for each epoch about to
 * go, after the store's own accounting: the owner of another table kept
 * per epoch (the stall state's hops) corrects its counters there. Like
 * ht_store_drop_epochs' pre it may run more than once for an epoch (a
 * transaction redone): what it counts is what went only once this
 * returns OK.
 */
int ht_prune_epochs(struct ht_store *s, int64_t before_us,
                    ht_store_drop_fn also, void *also_ctx,
                    struct ht_prune_stats *st);

/* The oldest last-activity time in by_time (INT64_MIN when empty). */
int64_t ht_store_oldest_event(struct ht_txn *t);

#endif
