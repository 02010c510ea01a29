/*
 * ht_maint.h - upkeep of what the store derives from ingested data: the
 * request summaries and per-route histograms behind `endpoints` and
 * `hotspots` (HT_DB_AGG, laid out in store/ht_agg_records.h), brought up
 * to date from the traces every ingest batch marks dirty, and dropped
 * again under retention.
 *
 * Work comes in bounded slices, each in its own write transaction, so the
 * ingest engine's writer thread can run one between two batches (after a
 * commit, and when its sources are idle) without stalling ingest: a slice
 * stops after max_traces dirty traces, HT_AGG_SLICE_US of work or
 * HT_AGG_SLICE_BYTES of loaded graph, whichever comes first (it always
 * finishes at least one trace, so it always makes progress). A crash
 * between slices loses nothing: a trace leaves the dirty set in the same
 * transaction that writes its summaries.
 *
 * Owned by maint/, a module above query/ and store/: it assembles requests
 * with the query code (ht_qsession) and writes what it computes through
 * the store. Nothing in query/ writes.
 *
 * Threading: call from the thread that owns the store's writes, with no
 * transaction of that thread open (a slice may grow the map).
 */
#ifndef HT_MAINT_H
#define HT_MAINT_H

#include "ht_agg_records.h"
#include "ht_store.h"

/* A slice's bounds besides max_traces (see above). */
#define HT_AGG_SLICE_US 50000                 /* 50 ms of work */
#define HT_AGG_SLICE_BYTES ((size_t)48 << 20) /* 48 MiB of loaded graph */
/* max_traces 0 means this many. */
#define HT_AGG_SLICE_TRACES 1024
/* A catch-up's slices (ht_agg_catch_up), assembled on every core: larger,
 * so that the readers wait less often at a slice's end (its aggregates,
 * its commit); 4096 filled their memory bound and ran slower. */
#define HT_AGG_CATCH_UP_TRACES 2048

struct ht_agg_stats {
    uint64_t traces;     /* dirty traces consumed */
    uint64_t requests;   /* request summaries written */
    uint64_t removed;    /* summaries of requests that merged into others */
    uint64_t slices;     /* write transactions committed */
    uint64_t prefetched; /* dirty traces whose requests a reader thread
                          * assembled (ht_agg_catch_up) */
    int64_t longest_us;  /* the longest slice, commit included */
    int64_t total_us;    /* all the slices together, commits included */
};

/*
 * One slice of the update: up to max_traces dirty traces (0: the default)
 * are summarized again and leave the dirty set, in one write transaction.
 * With each summary goes the request's Jaeger search record ('J': its
 * services, operations and service edges) and its share of the
 * services/operations catalogue ('V' counts; ht_agg_records.h).
 * *more says whether dirty traces remain. Counts are added to *st (NULL:
 * not counted). Grows the map when it is full and redoes the slice.
 * Errors: the store's (the slice is rolled back, the traces stay dirty).
 */
int ht_agg_update(struct ht_store *s, size_t max_traces, bool *more,
                  struct ht_agg_stats *st);

/* Slices until nothing is dirty, for a caller that waits for all of it
 * (an exiting ingest): each slice's requests are assembled by read-only
 * threads, one per further core (at most 7), beside the slice's write
 * transaction, which writes them as they come (agg_update.c, "readers");
 * the result is the same as ht_agg_update's, slice by slice. Counts are
 * added to *st. The memory held at any time is one slice's. */
int ht_agg_catch_up(struct ht_store *s, struct ht_agg_stats *st);
/* The same with *st reset first (`hoptrace refresh`). */
int ht_agg_refresh(struct ht_store *s, struct ht_agg_stats *st);
/* Tests only: called (when set) as each slice begins, with no
 * transaction of the caller open; a test commits there to land a batch
 * between two slices. NULL in the program. */
extern void (*ht_agg_slice_hook)(void *ctx);
extern void *ht_agg_slice_ctx;

/*
 * Retention: drops the request summaries of requests that started before
 * the cut-off (each with its Jaeger search record and the catalogue
 * entries only it held) and the histogram buckets of the minutes before
 * it, in one write transaction of at most `budget` deletions of summaries
 * and buckets (0: 1024); *more says
 * whether anything older remains. The cut-off is taken down to its whole
 * minute, so a histogram bucket goes exactly when the summaries counted
 * in it go and the two never disagree. The roots remembered per trace go
 * once the time in the trace's id is an hour older than the cut-off (a
 * margin for clocks: a request starts at or before its traces' ids were
 * made, give or take the skew between hosts).
 */
int ht_agg_prune(struct ht_store *s, int64_t cutoff_us, size_t budget,
                 bool *more);

/* ---- upkeep: what the ingest engine runs between its batches ---------- */

#include "ht_assembler.h"
#include "ht_prune.h"

/*
 * The write-side upkeep of a live store, in the shape of the ingest
 * engine's upkeep hook (ht_engine_upkeep_fn): the aggregate update above,
 * and with retain_us > 0 retention (ht_prune_epochs for the requests,
 * whole epochs at a time, or ht_prune_slice piece by piece in a store
 * without epochs; ht_agg_prune for their summaries,
 * ht_stages_prune_slice for the stall-detection state), measured against
 * the newest event time the store has seen, never the wall clock.
 * Requests are removed once their epoch's newest event is more than
 * retain_us + HT_PRUNE_HORIZON_US older than that (see ht_prune.h for
 * the horizon, ht_store.h for epochs).
 *
 * The aggregates run on a bounded lag rather than after every batch: a
 * request's traces arrive over many batches, and summarising it after each
 * would assemble it several times over. After a batch (idle false), once
 * HT_UPKEEP_AGG_LAG_US have passed since the aggregates were last current,
 * a round brings them current again, at most HT_UPKEEP_ROUND_US at a time
 * so ingest never waits long; retention does one slice when anything
 * expired. While the sources are idle a round goes on for up to
 * HT_UPKEEP_ROUND_US. ht_upkeep_settle does all that is due, for an
 * ingest about to exit, so queries right after it see everything.
 */
#define HT_UPKEEP_ROUND_US 250000      /* 250 ms of upkeep per round */
#define HT_UPKEEP_AGG_LAG_US 5000000LL /* aggregates at most ~5 s behind */
/* how long an exiting ingest goes on removing expired data */
#define HT_UPKEEP_SETTLE_RETAIN_US 60000000LL

struct ht_upkeep {
    int64_t retain_us;  /* 0: keep everything */
    bool no_aggregates; /* leave the aggregates to `hoptrace refresh` */
    struct ht_agg_stats agg;
    struct ht_prune_stats prune;
    uint64_t agg_prune_slices;
    struct ht_stages_prune stages; /* the stall state's retention */
    int64_t retention_us; /* time spent in retention slices, all three */
    /* private */
    bool agg_more;          /* dirty traces may remain */
    int64_t agg_current_us; /* monotonic time the aggregates were current */
    int64_t agg_pruned_cut; /* cut-off up to which ht_agg_prune is done */
    int64_t stg_pruned_cut; /* cut-off up to which the stall state is */
    bool stg_more;          /* its last slice left work behind */
};

/* ht_engine_upkeep_fn: ctx is a struct ht_upkeep. */
int ht_upkeep_round(void *ctx, struct ht_store *s, bool idle);
/* Everything due, to the end. ctx is a struct ht_upkeep. */
int ht_upkeep_settle(void *ctx, struct ht_store *s);

#endif
