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

#endif
