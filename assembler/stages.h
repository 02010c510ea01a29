/*
 * stages.h - per-stage stall state, kept at ingest time (internal to
 * assembler/). A stage is (producer service, via, resource, consumer
 * service); assembler.c calls in here from the points where a hop half is
 * seen for the first time, so re-ingesting input never counts twice.
 *
 * Record layout (query/stalls.c reads it; keep in step). Every key starts
 * with a type byte, then `via` (one byte, enum ht_via) and NUL-terminated
 * strings; "" is an unknown service. Numbers are int64 big endian. Two
 * tables (ht__stg_db picks one by the type byte):
 *   - HT_DB_STAGES: what is kept per stage or function, for good: 'E' 'S'
 *     'H' 'R' 'A' 'F' 'N';
 *   - HT_DB_HOPS: what is kept per hop, producer, REPORT or time, which
 *     goes with its requests: 'P' 'p' 'c' 'e' 'l' 'k' 'f' 'u' 'T'. The
 *     store keeps it per epoch, like the requests' own tables, so
 *     retention under `--retain` drops it with them, whole
 *     (ht_stages_prune_epochs); `prune` also walks it piece by piece.
 *
 *   'E' via res\0 prod\0           -> entered, last entered µs
 *   'S' via res\0 prod\0 cons\0    -> consumed, last consumed µs,
 *                                     delay sum µs, delay max µs
 *   'H' via res\0 prod\0 cons\0 bucket(8) -> delay histogram of the
 *                                     consumptions in that time bucket:
 *                                     (u16 index, u32 count) pairs
 *   'R' via res\0 cons\0           -> records consumed (any producer), last
 *   'A' via res\0 cons\0 bucket(8) -> records consumed in that time bucket
 *   'P' via res\0 prod\0 ts(8) hop key -> trace(16) span(8) corr: a
 *                                     producer half still waiting. A
 *                                     Kinesis write that names no stream
 *                                     stays here for good, in the stream
 *                                     "" under hop key "kput:<span id>":
 *                                     query/stalls.c learns its stream
 *                                     and its consumption as of a query
 *   'p' hop key                    -> the producer half's own record (see
 *                                     stages.c), kept once matched so a
 *                                     receipt that arrives later but is
 *                                     earlier can move its consumption
 *   'c' hop key                    -> consumer service of a consumer half
 *                                     that came before its producer, then
 *                                     a NUL and the half's time µs (8)
 *   'e' hop key                    -> earliest receipt µs, latest receipt
 *                                     µs, the earliest one's consumer: a
 *                                     record received more than once
 *                                     counts at its first receipt
 *   'l' span id(8)                 -> hop key of a waiting SQS producer, so
 *                                     a consumer known by its X-Ray link
 *                                     only can take it
 *   'k' hop key                    -> taken through a link: the link's
 *                                     receipt µs(8) and consumer; the
 *                                     logged record, if it comes, is not
 *                                     counted again but replaces it
 *   'f' request id                 -> a REPORT (packed ht_inv) whose
 *                                     function is unknown until the
 *                                     AWS::Lambda segment names it
 *   'u' span id(8) hop key         -> a producer whose service is unknown
 *                                     until that (ancestor) span arrives
 *   'F' function\0                 -> REPORT totals: invocations, billed
 *                                     ms, memory MB, max used MB (max),
 *                                     max used MB (sum), duration µs (sum),
 *                                     failed, cold starts
 *   'N' "unresolved"               -> how many 'u' producers there are
 *   'N' "pruned"                   -> i64 µs (big endian): retention's
 *                                     watermark (ht__stg_watermark), the latest
 *                                     cut-off less horizon it applied (at
 *                                     most the newest event then): an item
 *                                     older than it is not counted, so a
 *                                     replay of pruned data counts nothing
 *                                     twice (stages_prune.c writes it)
 *   'T' time(8) kind name          -> "": the time index retention walks,
 *                                     oldest first (stages_prune.c); time
 *                                     big endian with its sign bit flipped
 *                                     (as by_time's). kind 'h': name is a
 *                                     hop key, one entry per time that key
 *                                     was seen at (producer end, each
 *                                     receipt, the consumer half), so the
 *                                     set does not depend on arrival order;
 *                                     it stands for the key's 'p' 'P' 'l'
 *                                     'e' 'k' 'c' entries. kind 'u': name is
 *                                     a 'u' key less its type byte, at its
 *                                     producer's end (removed with the 'u'
 *                                     entry). kind 'f': name is a request
 *                                     id of an 'f' entry, at the REPORT's
 *                                     last time (removed with it).
 *
 * Retention (ht_stages_prune_slice, ht_assembler.h) removes the per-hop
 * entries whose latest time is before the cut-off less the horizon, the
 * 'u' and 'f' entries likewise, and the 'A' buckets before it; the 'H'
 * buckets before it are folded into the stage's bucket HT__STG_FOLDED
 * (INT64_MIN), so delay quantiles stay those of every delay counted in
 * 'S'. 'E' 'S' 'R' 'F' 'N' are kept: one per stage or function. Under
 * `--retain` the per-hop entries go with their epochs instead
 * (ht_stages_prune_epochs corrects "Nunresolved"), and slices walk only the
 * buckets.
 *
 * Time buckets: 'H' 300 s, 'A' 60 s, aligned on the epoch. Delay histogram
 * index: µs below 16 exactly, then 16 linear sub-buckets per power of two.
 */
#ifndef HT_STAGES_H
#define HT_STAGES_H

#include "ht_ingest.h"
#include "ht_store.h"

#define HT__STG_HBUCKET_US 300000000LL
#define HT__STG_ABUCKET_US 60000000LL
#define HT__STG_NHIST 640
#define HT__STG_FOLDED INT64_MIN /* 'H' bucket of the folded histograms */
#define HT__STG_MAXKEY 512       /* every HT_DB_STAGES key is shorter */

/* Retention's watermark ('N' "pruned"): what stall state it has removed
 * up to, µs; INT64_MIN when it has removed none. stages_prune.c raises
 * it, ht__stg_begin reads it. */
#define HT__STG_WATERMARK "Npruned"
int64_t ht__stg_watermark(struct ht_txn *t);

/* The table of the record whose key starts with type byte `type`. */
static inline int ht__stg_db(int type)
{
    switch (type) {
    case 'P':
    case 'T':
    case 'c':
    case 'e':
    case 'f':
    case 'k':
    case 'l':
    case 'p':
    case 'u':
        return HT_DB_HOPS;
    default:
        return HT_DB_STAGES;
    }
}

/* How many producers wait for their service ('N' "unresolved"), and the
 * record moved by delta (deleted at 0): stages.c counts them as they come
 * and go, retention as they expire. */
#define HT__STG_UNRESOLVED "Nunresolved"
int64_t ht__stg_unresolved(struct ht_txn *t);
int ht__stg_unresolved_add(struct ht_txn *t, int64_t delta);

/* The 'T' key of (ts, kind, name); 0 when the name is too long. */
size_t ht__stg_tkey(uint8_t *k, int64_t ts, int kind, const void *name,
                    size_t nn);

struct ht__stg;

/* Per-batch state: owned, ended (flushed and freed) by ht__stg_end.
 * NULL on allocation failure. */
struct ht__stg *ht__stg_begin(struct ht_txn *t, const struct ht_batch *b);
/* A producer half seen for the first time: waiting (matched false) or
 * meeting a consumer half that came first at cons_ts. */
void ht__stg_producer(struct ht__stg *g, const struct ht_span *s,
                      const char *hk, bool matched, int64_t cons_ts);
/* A consumer half seen for the first time: waiting for its producer
 * (matched false) or meeting it. `new_record` is true for the first half
 * of a received record (a record can be named by two hop keys). */
void ht__stg_consumer(struct ht__stg *g, const struct ht_fact *f,
                      const char *hk, bool matched, bool new_record);
/* Every span of the batch: producers waiting for it learn their service;
 * an invocation's X-Ray links take the SQS producers they name. */
void ht__stg_span(struct ht__stg *g, const struct ht_span *s);
/* An invocation's REPORT seen for the first time. */
void ht__stg_report(struct ht__stg *g, const struct ht_inv *inv);
/* Flush the batch's aggregates into the store and free g. Returns the
 * first store error (HT_ERR_MAPFULL included). */
int ht__stg_end(struct ht__stg *g);

/* Histogram index of a delay in µs (shared with query/stalls.c by value). */
int ht__stg_hist_index(int64_t us);

#endif
