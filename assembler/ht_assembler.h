/*
 * ht_assembler.h - folding decoded batches into the causal graph store.
 *
 * For every span: its node record and the keys that index it (trace,
 * parent → child, Lambda/API Gateway request ids, correlation ids, SQS
 * message ids, stream sequence numbers, link targets). For every log fact:
 * the merged invocation record, the invocation's received records and
 * correlation lines, and their keys. Hops whose two halves are named by the
 * same id are tracked in `pending` so ingest can report matched and
 * pending hops; the full stitching (correlation + time order, batch
 * attribution) is resolved by query/ from these keys, bounded by the size
 * of one request.
 *
 * Everything is keyed by content: applying the same batch twice leaves the
 * store unchanged. An in-progress span never replaces a complete one.
 *
 * Owned by assembler/. It must not parse input or open the store.
 */
#ifndef HT_ASSEMBLER_H
#define HT_ASSEMBLER_H

#include "ht_ingest.h"
#include "ht_store.h"

struct ht_asm_stats {
    uint64_t spans_written;
    uint64_t facts_written;
    uint64_t hops_matched; /* halves that met their other half */
};

/* Write one batch inside an open write transaction. Returns HT_ERR_OK,
 * HT_ERR_MAPFULL (abort, grow, apply again) or HT_ERR_STORE. */
int ht_assembler_apply(struct ht_txn *t, const struct ht_batch *b,
                       struct ht_asm_stats *st);

/*
 * The same in two steps, so that most of the work can run on another
 * thread than the one that owns the write transaction: prepare builds,
 * without touching the store, every write that depends on nothing stored
 * (sorted); apply_prepared writes them and does the rest in the
 * transaction. Same result as ht_assembler_apply. A prepared batch can be
 * applied again after a MAPFULL retry; the batch must outlive it.
 */
struct ht_asm_prep;
int ht_assembler_prepare(const struct ht_batch *b, struct ht_asm_prep **out);
void ht_assembler_prep_free(struct ht_asm_prep *p);
int ht_assembler_apply_prepared(struct ht_txn *t, const struct ht_batch *b,
                                const struct ht_asm_prep *p,
                                struct ht_asm_stats *st);

/* Hops still waiting for their other half, store-wide. */
int64_t ht_assembler_pending(struct ht_txn *t);
/* The newest event time of a batch (µs; INT64_MIN when it has none), not
 * counting times beyond the clock's HT_WATERMARK_AHEAD_US: what the writer
 * notes as the store's newest event, and the epoch it is written into
 * follows (ht_store_rotate). */
int64_t ht_assembler_newest_event(const struct ht_batch *b);

/*
 * Retention of the stall-detection state (HT_DB_STAGES; layout and what
 * goes in assembler/stages.h). One slice, in one write transaction:
 * removes the per-hop entries (pending and matched producer halves, their
 * receipts, links and waiting consumers), the producers waiting for their
 * service and the REPORTs waiting for their function, whose latest time
 * is before cutoff_us - horizon (the same pieces store/ht_prune.h removes
 * at that cut-off go here too), drops the per-minute consumption buckets
 * before it and folds the delay histograms before it into one per stage.
 * The per-stage and per-function totals stay, so `stalls` answers for the
 * time after the cut-off as before, less the items that were removed.
 *
 * At most about 1.5 x `budget` entries are visited (0: 1000), and a slice
 * stops walking after about 25 ms of work. *more is true when expired
 * entries may remain (call again). *st must start
 * zeroed; it counts what was removed (added to) and remembers where the
 * bucket walk stopped, for the next slice. Grows the map when full. Call
 * between transactions of this process, like ht_store_grow.
 */
struct ht_stages_prune {
    uint64_t hops;       /* hop keys whose entries were removed (of an
                            epoch dropped: its producer records and
                            consumer lines, an older copy included) */
    uint64_t pending;    /* waiting producer halves among them ('P') */
    uint64_t buckets;    /* time buckets dropped or folded ('A', 'H') */
    uint64_t reports;    /* REPORTs that never learned their function */
    uint64_t unresolved; /* producers that never learned their service */
    uint64_t slices;     /* transactions committed */
    /* set before the first slice when the per-hop entries go with their
     * epochs (ht_stages_prune_epochs): slices then walk only the buckets */
    bool buckets_only;
    /* private: where the bucket walk stands */
    size_t at_n_;
    uint8_t at_[512];
    /* private: what the drop transaction under way counts (a redone one
     * starts over), added above once it has committed */
    struct {
        uint64_t hops, pending, reports, unresolved;
    } drop_;
};

int ht_stages_prune_slice(struct ht_store *s, int64_t cutoff_us, size_t budget,
                          bool *more, struct ht_stages_prune *st);
struct ht_prune_stats;
/* ht_prune_epochs (store/ht_prune.h) with the stall state: the per-hop
 * entries (HT_DB_HOPS) of each epoch dropped go with it, counted into sg
 * (once, however often the drop's transaction is redone), and the count
 * of producers waiting for their service is corrected in the same
 * transaction. */
int ht_stages_prune_epochs(struct ht_store *s, int64_t before_us,
                           struct ht_stages_prune *sg,
                           struct ht_prune_stats *st);
/* The same with an explicit horizon (0: each entry by its own times). */
int ht_stages_prune_slice_h(struct ht_store *s, int64_t cutoff_us,
                            int64_t horizon_us, size_t budget, bool *more,
                            struct ht_stages_prune *st);

#endif
