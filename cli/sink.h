/*
 * sink.h - where every ingest source (files, stdin, Kafka, Kinesis, UDP)
 * puts what it decoded: a batch that is written to the store in ONE LMDB
 * write transaction together with the source's checkpoints.
 *
 * Usage: decode into ht_sink_batch(); when ht_sink_full() (or on a timer),
 * call ht_sink_flush() with the checkpoint entries that describe "everything
 * up to here is in this batch". A flush may return before the batch is
 * committed (the write can overlap the next batch's decoding); call
 * ht_sink_sync() before telling anyone outside the store that data is safe
 * (committing Kafka offsets, acknowledging, exiting). Errors of an
 * asynchronous commit are returned by the next flush or sync.
 */
#ifndef HT_SINK_H
#define HT_SINK_H

#include "cli.h"
#include "ht_assembler.h"
#include "ht_ingest.h"
#include "ht_store.h"

#include <stdio.h>

struct ht_sink_totals {
    uint64_t documents, spans, log_events, dropped, bytes;
    uint64_t rejected[HT_REJ__COUNT];
    struct ht_asm_stats as;
    uint64_t batches;
};

/* One checkpoint entry written with a batch (key/value in HT_DB_CHECKPOINTS).
 * Both are copied by ht_sink_flush. */
struct ht_sink_ckpt {
    const char *key;
    size_t klen;
    const void *val;
    size_t vlen;
};

struct ht_sink_writer;

struct ht_sink {
    struct ht_store *store;
    struct ht_batch *batch; /* the batch being filled */
    struct ht_sink_totals tot;
    size_t batch_docs;        /* flush after this many records
                                 (HT_INGEST_BATCH_DEFAULT) */
    int64_t sync_every_us;    /* 0: never flush to disk (see below) */
    struct ht_sink_writer *w; /* private */
};

/* Opens the store (created if missing). Logs and returns an error code. */
int ht_sink_open(struct ht_sink *s, const char *db);
/* Syncs, then closes the store. Returns the first pending error. */
int ht_sink_close(struct ht_sink *s);

static inline struct ht_batch *ht_sink_batch(struct ht_sink *s)
{
    return s->batch;
}

/* True when the current batch should be flushed. */
bool ht_sink_full(const struct ht_sink *s);

/* Hands the current batch and the checkpoints to the writer and starts a
 * new batch. An empty batch with checkpoints still writes them. */
int ht_sink_flush(struct ht_sink *s, const struct ht_sink_ckpt *ck, size_t n);
/* By default commits are atomic and survive a killed process but are not
 * flushed to disk by hoptrace (LMDB nosync mode, see ht_store_set_nosync):
 * the OS writes them back. Set sync_every_us for a flush at most that far
 * apart and at close (long-running sources), or ht_sink_set_durable(true)
 * for a flush per commit (`ingest --durable`). */
int ht_sink_set_durable(struct ht_sink *s, bool durable);

/* Above this resident size the writer lets go of the store's mapped pages
 * after a commit (ht_store_trim) and halves the batch (twice at most),
 * so memory stays
 * bounded however large the store grows, at the price of page faults once
 * the store's working set no longer fits (docs/performance.md, "Memory").
 * Below it, nothing is given up. */
#define HT_SINK_RSS_TRIM ((uint64_t)176 << 20)

/* Waits until everything flushed is committed (visible to readers and
 * safe from a killed process). */
int ht_sink_sync(struct ht_sink *s);

/* Reads a checkpoint value (committed state). Returns HT_ERR_OK,
 * HT_ERR_NOTFOUND, or a store error; copies at most cap bytes. */
int ht_sink_get_ckpt(struct ht_sink *s, const char *key, void *buf, size_t cap,
                     size_t *n);

/* ---- the options every ingest source takes ---------------------------- */

/* 2048: as fast as 4096 here, and one commit touches half the store pages
 * (docs/performance.md, "Memory") */
#define HT_INGEST_BATCH_DEFAULT 2048

struct ht_ingest_opts {
    size_t batch_docs; /* --batch N: records per write transaction */
    bool strict;       /* --strict: exit 3 when anything was rejected */
    bool quiet;        /* --quiet, -q: no summary line */
    bool durable;      /* --durable: flush every commit to disk */
    double until_idle; /* --until-idle S: live sources stop after S idle
                          seconds (0: never) */
};

#define HT_INGEST_OPTS_INIT                                                    \
    {                                                                          \
        HT_INGEST_BATCH_DEFAULT, false, false, false, 0                        \
    }

/* If argv[*i] is one of the shared options (--batch N, --db DIR, --strict,
 * --quiet/-q, --durable, --until-idle S), takes it, moving *i past its value,
 * and returns 1; returns 0 when it is not one; -1 after reporting a bad value.
 */
int ht_ingest_opt(struct ht_cli *cli, int argc, char **argv, int *i,
                  struct ht_ingest_opts *o);
/* Batch size and durability for an open sink. Reports its own error. */
int ht_ingest_opts_apply(struct ht_sink *s, const struct ht_ingest_opts *o);

/* Total rejected. */
uint64_t ht_sink_rejected(const struct ht_sink *s);
/* Prints the standard summary line ("hoptrace: ingested N documents (...)
 * from WHAT; rejected ...; hops matched ..., pending ...") without its
 * newline, so a source can append its own "; ..." parts. Call after
 * ht_sink_sync. */
void ht_sink_summary(struct ht_sink *s, FILE *f, const char *from);

#endif
