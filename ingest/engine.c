/*
 * engine.c - the write side shared by every ingest source.
 *
 * Two batches: the source decodes into one while a writer thread commits
 * the other (ONE LMDB write transaction per batch, checkpoints included).
 * The writer owns the write transaction; the decoding thread never waits
 * for LMDB unless it has filled a second batch before the first is
 * committed, which bounds memory at two batches (back-pressure). Between
 * transactions, and at least once a second while idle, the writer calls
 * the upkeep hook. Time either thread would spend waiting on the other
 * goes to mapping the store's next pages ahead of the writer
 * (ht_store_map_ahead), work its page faults would otherwise do.
 *
 * Owned by ingest/ (library ht_engine). It must not decode documents
 * (decode.c, logs.c) nor print anything but log lines.
 */
#define _GNU_SOURCE
#include "ht_engine.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Mapped ahead between two looks at the other thread: about 70 us of
 * work, so a hand-off waits that long at most (1 MiB steps made the
 * whole ingest 2 % slower). */
#define AHEAD_STEP ((size_t)128 << 10)

struct ht_engine {
    struct ht_store *store;
    struct ht_batch *batch; /* the batch being filled */
    struct ht_engine_totals tot;
    size_t batch_docs;
    unsigned handed; /* batches handed to the writer (decoding thread's) */
    int64_t sync_every_us; /* 0: never flush to disk in bulk mode */
    int64_t retain_us;
    ht_engine_upkeep_fn upkeep;
    void *upkeep_ctx;
    /* set by a signal handler or by another thread (serve's main thread
     * while the engine runs on its own): a lock-free atomic is safe for
     * both */
    atomic_int stop_requested;
    /* the input read and left, in bytes, when the source knows its size
     * (ht_engine_input; done at its first report is the base); job_in:
     * where the input stood when the job was handed (under mu), and
     * in_committed once the writer has committed it */
    _Atomic uint64_t in_base, in_done, in_left, in_committed;
    atomic_bool in_known;
    uint64_t job_in;

    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct ht_batch batches[2];
    struct ht_batch *job;     /* batch being committed, NULL when idle */
    struct ht_asm_prep *prep; /* job's writes prepared by the decoder */
    struct ht_buf ckpts;      /* job's checkpoints: klen,vlen,key,val ... */
    size_t nckpts;
    int err; /* first commit error, sticky */
    bool stop;
    bool upkeeping; /* the idle upkeep runs: flushes wait */
    bool started;
    bool durable;      /* flush every commit (--durable) */
    int shrink;        /* anonymous memory ran high: batches >> shrink */
    int64_t last_sync; /* monotonic µs of the last flush to disk */
};

uint64_t ht_engine_rss_anon(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned long long kb = 0;

    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "RssAnon:", 8) == 0) {
            kb = strtoull(line + 8, NULL, 10);
            break;
        }
    fclose(f);
    return (uint64_t)kb << 10;
}

static int commit_once(struct ht_engine *e, struct ht_batch *b,
                       const struct ht_asm_prep *prep, struct ht_asm_stats *st)
{
    struct ht_txn *t;
    int rc = ht_store_begin(e->store, true, &t);
    const char *p = e->ckpts.data;

    if (rc)
        return rc;
    rc = prep ? ht_assembler_apply_prepared(t, b, prep, st)
              : ht_assembler_apply(t, b, st);
    for (size_t i = 0; !rc && i < e->nckpts; i++) {
        uint32_t kl, vl;

        memcpy(&kl, p, 4);
        memcpy(&vl, p + 4, 4);
        rc = ht_store_put(t, HT_DB_CHECKPOINTS, p + 8, kl, p + 8 + kl, vl);
        p += 8 + kl + vl;
    }
    if (rc) {
        ht_store_abort(t);
        return rc;
    }
    return ht_store_commit(t);
}

static int commit(struct ht_engine *e, struct ht_batch *b,
                  const struct ht_asm_prep *prep)
{
    bool rotated;
    /* a batch past the current epoch's window begins the next one */
    int rc = ht_store_rotate(e->store, ht_assembler_newest_event(b),
                             e->retain_us > 0, &rotated);

    if (rc)
        return rc;

    for (int attempt = 0; attempt < 24; attempt++) {
        struct ht_asm_stats st = {0};

        rc = commit_once(e, b, prep, &st);
        if (rc == HT_ERR_OK) {
            e->tot.as.spans_written += st.spans_written;
            e->tot.as.facts_written += st.facts_written;
            e->tot.as.hops_matched += st.hops_matched;
            e->tot.documents += b->documents;
            e->tot.spans += b->nspans;
            e->tot.log_events += b->log_events;
            e->tot.dropped += b->dropped;
            e->tot.bytes += b->payload_bytes;
            e->tot.batches++;
            for (int i = 0; i < HT_REJ__COUNT; i++)
                e->tot.rejected[i] += b->rejected[i];
            return rc;
        }
        if (rc != HT_ERR_MAPFULL)
            break;
        rc = ht_store_grow(e->store);
        if (rc)
            break;
    }
    return rc;
}

/* The upkeep hook, on the writer thread with no transaction open. */
static int upkeep(struct ht_engine *e, bool idle)
{
    int rc;

    if (!e->upkeep)
        return HT_ERR_OK;
    rc = e->upkeep(e->upkeep_ctx, e->store, idle);
    if (rc)
        HT_LOG_ERROR("ingest", "upkeep between batches failed: %s",
                     ht_strerror(rc));
    return rc;
}

void ht_engine_input(struct ht_engine *e, uint64_t done, uint64_t left)
{
    if (!atomic_load(&e->in_known)) {
        atomic_store(&e->in_base, done);
        atomic_store(&e->in_known, true);
    }
    atomic_store(&e->in_done, done);
    atomic_store(&e->in_left, left);
}

/* How far ahead the store needs mapping: when the source knows how much
 * input is left, as much as the store grew per byte of input committed
 * so far, for what is not committed yet (read and left), a quarter more
 * and 1 MiB to spare; else no bound. At the input's end, pages mapped
 * ahead and never taken would only be given back at close, on the last
 * thread. */
static size_t ahead_most(struct ht_engine *e)
{
    uint64_t base = atomic_load(&e->in_base);
    uint64_t done = atomic_load(&e->in_done);
    uint64_t committed = atomic_load(&e->in_committed);
    double want;

    if (!atomic_load(&e->in_known) || committed <= base + ((uint64_t)1 << 20))
        return SIZE_MAX; /* too little committed yet to tell */
    want = (double)ht_store_grown(e->store) / (double)(committed - base) *
               (double)(atomic_load(&e->in_left) +
                        (done > committed ? done - committed : 0)) *
               1.25 +
           (double)(1 << 20);
    return want < (double)SIZE_MAX ? (size_t)want : SIZE_MAX;
}

/* One step of mapping the store's next pages ahead of the writer
 * (ht_store_map_ahead), in time the calling thread would otherwise wait;
 * whether it mapped anything. Called with the mutex held: released during
 * the step, so the caller looks at the engine's state again after it. */
static bool map_ahead_step(struct ht_engine *e)
{
    bool did;

    pthread_mutex_unlock(&e->mu);
    did = ht_store_map_ahead(e->store, AHEAD_STEP, ahead_most(e));
    pthread_mutex_lock(&e->mu);
    return did;
}

static void *writer_main(void *arg)
{
    struct ht_engine *e = arg;

    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (!e->job && !e->stop) {
            struct timespec ts;
            int wr;

            /* nothing to write yet: map the next pages meanwhile */
            if (!e->upkeeping && (map_ahead_step(e) || e->job || e->stop))
                continue;

            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += 1;
            wr = pthread_cond_timedwait(&e->cv, &e->mu, &ts);
            /* not while ht_engine_settle runs its own upkeep on the
             * caller's thread (upkeeping set there) */
            if (wr == ETIMEDOUT && !e->job && !e->stop && !e->err &&
                e->upkeep && !e->upkeeping) {
                /* idle for a second: upkeep now; a flush meanwhile waits
                 * for it (wait_idle) */
                int rc;

                e->upkeeping = true;
                pthread_mutex_unlock(&e->mu);
                rc = upkeep(e, true);
                pthread_mutex_lock(&e->mu);
                if (rc && !e->err)
                    e->err = rc;
                e->upkeeping = false;
                pthread_cond_broadcast(&e->cv);
            }
        }
        if (!e->job)
            break;
        /* the sticky error as it stands, read under the lock */
        int rc = e->err;

        pthread_mutex_unlock(&e->mu);
        /* a batch handed over while this thread was idle comes as it was
         * decoded (prepare_unless_idle): its store-free writes are built
         * here; without them (out of memory) the commit does everything */
        if (!e->prep && !rc &&
            ht_assembler_prepare(e->job, &e->prep) != HT_ERR_OK)
            e->prep = NULL;
        if (!rc)
            rc = commit(e, e->job, e->prep);
        if (!rc)
            atomic_store(&e->in_committed, e->job_in);

        /* memory: the bound is on this process's own (anonymous) memory;
         * the batch is what it grows with, so halve it (down to a
         * quarter) while it stays high */
        if (!rc && e->shrink < 2 && ht_engine_rss_anon() > HT_ENGINE_ANON_SOFT)
            __atomic_store_n(&e->shrink, e->shrink + 1, __ATOMIC_RELAXED);
        /* in bulk mode commits are not flushed one by one; a long-running
         * source may ask for a flush every so often */
        if (!rc && !e->durable && e->sync_every_us > 0 &&
            ht_now_mono_us() - e->last_sync > e->sync_every_us) {
            rc = ht_store_sync(e->store);
            e->last_sync = ht_now_mono_us();
        }
        if (!rc)
            rc = upkeep(e, false);
        pthread_mutex_lock(&e->mu);
        if (rc && !e->err)
            e->err = rc;
        ht_batch_reset(e->job);
        ht_assembler_prep_free(e->prep);
        e->prep = NULL;
        e->job = NULL;
        pthread_cond_broadcast(&e->cv);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* Waits for the writer to be idle, mapping the store's next pages ahead
 * of it meanwhile; returns its sticky error. Called with the mutex held. */
static int wait_idle(struct ht_engine *e)
{
    while (e->job || e->upkeeping)
        if (!map_ahead_step(e) && (e->job || e->upkeeping))
            pthread_cond_wait(&e->cv, &e->mu);
    return e->err;
}

/* Records per batch: --batch, halved while memory is high, and smaller
 * for the first three batches so that the writer starts early (until the
 * first hand-over it has nothing to do). */
static size_t batch_cap(const struct ht_engine *e)
{
    size_t cap = e->batch_docs;

    cap >>= __atomic_load_n(&e->shrink, __ATOMIC_RELAXED);
    if (e->handed < 3)
        cap >>= 3 - e->handed;
    return cap < 256 ? 256 : cap;
}

/*
 * The store-free writes of batch b (ht_assembler_prepare), built on the
 * decoding thread while the writer is busy. When the writer waits for
 * work, as it does while decoding is the slower side, the batch goes as
 * it was decoded and the writer builds them (writer_main): NULL. Either
 * way the same writes reach the store. Called with mu held; it is
 * released while building.
 */
static struct ht_asm_prep *prepare_unless_idle(struct ht_engine *e,
                                               const struct ht_batch *b)
{
    struct ht_asm_prep *prep = NULL;

    if (!e->job && !e->upkeeping)
        return NULL;
    pthread_mutex_unlock(&e->mu);
    if (ht_assembler_prepare(b, &prep) != HT_ERR_OK)
        prep = NULL;
    pthread_mutex_lock(&e->mu);
    return prep;
}

/*
 * ht_batch.yield: inside one large value (a GetRecords file, a big array),
 * hand what was decoded so far to the writer without waiting for the value
 * to end. The records move to the idle spare batch; their strings stay in
 * the current batch's arena, which is only reset after this batch itself
 * is committed, later. No checkpoint moves: a crash re-reads the value
 * from its start, and writing it again changes nothing.
 */
static void engine_yield(void *ctx, struct ht_batch *b)
{
    struct ht_engine *e = ctx;
    struct ht_batch *spare;
    struct ht_asm_prep *prep;

    if (b != e->batch || b->nspans + b->nfacts + b->nrejects < batch_cap(e))
        return;
    spare = b == &e->batches[0] ? &e->batches[1] : &e->batches[0];
    /* prepared while the writer still commits the spare's last records
     * (as ht_engine_flush does): the prepared writes point at the records
     * themselves, which keep their place when their arrays move */
    pthread_mutex_lock(&e->mu);
    prep = prepare_unless_idle(e, b);
    if (wait_idle(e)) {
        pthread_mutex_unlock(&e->mu);
        ht_assembler_prep_free(prep);
        return; /* the next flush reports it */
    }
    ht_batch_move_records(spare, b); /* a few pointers: the writer is idle */
    ht_buf_reset(&e->ckpts);
    e->nckpts = 0;
    e->job = spare;
    e->job_in = atomic_load(&e->in_done);
    e->prep = prep;
    e->handed++;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

int ht_engine_open(const char *db, struct ht_engine **out)
{
    struct ht_engine *e;
    pthread_condattr_t ca;
    int rc;

    *out = NULL;
    e = calloc(1, sizeof(*e));
    if (!e)
        return HT_ERR_NOMEM;
    e->batch_docs = HT_INGEST_BATCH_DEFAULT;
    rc = ht_store_open(db, false, &e->store);
    if (rc)
        goto fail;
    rc = HT_ERR_NOMEM;
    if (ht_batch_init(&e->batches[0]) || ht_batch_init(&e->batches[1]))
        goto fail;
    pthread_mutex_init(&e->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->cv, &ca);
    pthread_condattr_destroy(&ca);
    e->batch = &e->batches[0];
    for (int i = 0; i < 2; i++) {
        e->batches[i].yield = engine_yield;
        e->batches[i].yield_ctx = e;
    }
    e->last_sync = ht_now_mono_us();
    rc = ht_store_set_nosync(e->store, true);
    if (rc)
        goto fail_sync;
    if (pthread_create(&e->thread, NULL, writer_main, e) != 0) {
        HT_LOG_ERROR("ingest", "cannot start the writer thread");
        rc = HT_ERR_NOMEM;
        goto fail_sync;
    }
    e->started = true;
    *out = e;
    return HT_ERR_OK;
fail_sync:
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
fail:
    ht_batch_free(&e->batches[0]);
    ht_batch_free(&e->batches[1]);
    ht_store_close(e->store);
    free(e);
    return rc;
}

/* Half the retention, at least a minute (a store keeps the retention, the
 * horizon and up to an epoch more). */
static int64_t epoch_len_for(int64_t retain_us)
{
    int64_t len = retain_us / 2;

    return len < 60 * 1000000LL ? 60 * 1000000LL : len;
}

static int set_durable(struct ht_engine *e, bool durable)
{
    int rc = ht_engine_sync(e);

    if (rc)
        return rc;
    e->durable = durable;
    return ht_store_set_nosync(e->store, !durable);
}

int ht_engine_configure(struct ht_engine *e, const struct ht_ingest_opts *o)
{
    int rc;

    e->batch_docs = o->batch_docs ? o->batch_docs : HT_INGEST_BATCH_DEFAULT;
    e->retain_us = o->retain_us;
    if (o->retain_us > 0) {
        /* epochs of half the retention: a store keeps two or three of
         * them, and retention drops the oldest whole */
        rc = ht_store_set_epoch_len(e->store, epoch_len_for(o->retain_us));
        if (rc) {
            HT_LOG_ERROR("ingest", "cannot set the store's epoch length: %s",
                         ht_strerror(rc));
            return rc;
        }
    }
    /* a decoder option: kept by both batches across resets */
    e->batches[0].default_log_group = o->log_group;
    e->batches[1].default_log_group = o->log_group;
    if (o->durable) {
        rc = set_durable(e, true);
        if (rc) {
            HT_LOG_ERROR("ingest",
                         "cannot switch the store to durable commits: %s",
                         ht_strerror(rc));
            return rc;
        }
    }
    return HT_ERR_OK;
}

void ht_engine_set_upkeep(struct ht_engine *e, ht_engine_upkeep_fn fn,
                          void *ctx)
{
    pthread_mutex_lock(&e->mu);
    wait_idle(e);
    e->upkeep = fn;
    e->upkeep_ctx = ctx;
    pthread_mutex_unlock(&e->mu);
}

int64_t ht_engine_retain_us(const struct ht_engine *e)
{
    return e->retain_us;
}

int ht_engine_sync(struct ht_engine *e)
{
    int rc;

    pthread_mutex_lock(&e->mu);
    rc = wait_idle(e);
    pthread_mutex_unlock(&e->mu);
    return rc;
}

int ht_engine_settle(struct ht_engine *e,
                     int (*fn)(void *ctx, struct ht_store *s), void *ctx)
{
    int rc;

    pthread_mutex_lock(&e->mu);
    rc = wait_idle(e);
    if (rc) {
        pthread_mutex_unlock(&e->mu);
        return rc;
    }
    /* hold the writer off (it runs no idle upkeep while this is set) */
    e->upkeeping = true;
    pthread_mutex_unlock(&e->mu);
    rc = fn(ctx, e->store);
    pthread_mutex_lock(&e->mu);
    if (rc && !e->err)
        e->err = rc;
    e->upkeeping = false;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return rc;
}

struct ht_batch *ht_engine_batch(struct ht_engine *e)
{
    return e->batch;
}

bool ht_engine_has_data(const struct ht_engine *e)
{
    const struct ht_batch *b = e->batch;

    return b->documents || b->nrejects || b->nspans || b->nfacts || b->dropped;
}

bool ht_engine_full(const struct ht_engine *e)
{
    const struct ht_batch *b = e->batch;

    return b->nspans + b->nfacts + b->nrejects >= batch_cap(e) ||
           ht_arena_used(b->arena) >
               ((size_t)48 << 20 >>
                __atomic_load_n(&e->shrink, __ATOMIC_RELAXED));
}

int ht_engine_flush(struct ht_engine *e, const struct ht_engine_ckpt *ck,
                    size_t n)
{
    struct ht_batch *next;
    struct ht_asm_prep *prep;
    int rc;

    /* the writes that need no store are built here, on the decoding
     * thread, while the writer still commits the previous batch (when it
     * is idle, it builds them) */
    pthread_mutex_lock(&e->mu);
    prep = prepare_unless_idle(e, e->batch);
    rc = wait_idle(e);
    if (rc) {
        pthread_mutex_unlock(&e->mu);
        ht_assembler_prep_free(prep);
        return rc;
    }
    ht_buf_reset(&e->ckpts);
    for (size_t i = 0; i < n; i++) {
        uint32_t kl = (uint32_t)ck[i].klen, vl = (uint32_t)ck[i].vlen;

        ht_buf_add(&e->ckpts, &kl, 4);
        ht_buf_add(&e->ckpts, &vl, 4);
        ht_buf_add(&e->ckpts, ck[i].key, kl);
        ht_buf_add(&e->ckpts, ck[i].val, vl);
    }
    e->nckpts = n;
    next = e->batch == &e->batches[0] ? &e->batches[1] : &e->batches[0];
    e->job = e->batch;
    e->job_in = atomic_load(&e->in_done);
    e->prep = prep;
    e->batch = next;
    e->handed++;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return HT_ERR_OK;
}

int ht_engine_get_ckpt(struct ht_engine *e, const char *key, void *buf,
                       size_t cap, size_t *n)
{
    struct ht_txn *t;
    const void *v;
    size_t vn;
    int rc = ht_engine_sync(e);

    if (rc)
        return rc;
    rc = ht_store_begin(e->store, false, &t);
    if (rc)
        return rc;
    rc = ht_store_get(t, HT_DB_CHECKPOINTS, key, strlen(key), &v, &vn);
    if (rc == HT_ERR_OK) {
        memcpy(buf, v, vn < cap ? vn : cap);
        *n = vn;
    }
    ht_store_abort(t);
    return rc;
}

const struct ht_engine_totals *ht_engine_totals(const struct ht_engine *e)
{
    return &e->tot;
}

uint64_t ht_engine_rejected(const struct ht_engine *e)
{
    uint64_t n = 0;

    for (int r = 0; r < HT_REJ__COUNT; r++)
        n += e->tot.rejected[r];
    return n;
}

int64_t ht_engine_pending(struct ht_engine *e)
{
    struct ht_txn *t;
    int64_t pending = -1;

    if (ht_store_begin(e->store, false, &t) == HT_ERR_OK) {
        pending = ht_assembler_pending(t);
        ht_store_abort(t);
    }
    return pending;
}

struct ht_store *ht_engine_store(struct ht_engine *e)
{
    return e->store;
}

void ht_engine_request_stop(struct ht_engine *e)
{
    e->stop_requested = 1;
}

int ht_engine_close(struct ht_engine *e)
{
    int rc = HT_ERR_OK;

    if (!e)
        return HT_ERR_OK;
    if (e->started) {
        pthread_mutex_lock(&e->mu);
        rc = wait_idle(e);
        e->stop = true;
        pthread_cond_broadcast(&e->cv);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->thread, NULL);
        if (!e->durable && e->sync_every_us > 0) {
            int src = ht_store_sync(e->store);

            if (!rc)
                rc = src;
        }
        pthread_mutex_destroy(&e->mu);
        pthread_cond_destroy(&e->cv);
    }
    ht_batch_free(&e->batches[0]);
    ht_batch_free(&e->batches[1]);
    ht_buf_free(&e->ckpts);
    ht_store_close(e->store);
    free(e);
    return rc;
}

/* ---- driving a source -------------------------------------------------- */

int ht_engine_run(struct ht_engine *e, const struct ht_source_ops *ops,
                  void *state, const struct ht_ingest_opts *o, int commit_ms)
{
    int64_t now = ht_now_mono_us(), last_data = now, last_flush = now;
    int64_t idle_us =
        o && o->until_idle > 0 ? (int64_t)(o->until_idle * 1e6) : 0;
    int rc = HT_ERR_OK;

    for (;;) {
        int pr, timeout = commit_ms > 0 ? commit_ms : 200;

        if (e->stop_requested)
            break;
        pr = ops->poll(state, e, timeout);
        if (pr < 0) {
            rc = -pr;
            break;
        }
        now = ht_now_mono_us();
        if (pr == HT_POLL_DATA || pr == HT_POLL_FLUSH)
            last_data = now;
        if (pr == HT_POLL_END)
            break;
        /* commit when the batch is full, when the source asks, when the
         * input pauses, and at least every commit_ms while it flows */
        if (ht_engine_full(e) || pr == HT_POLL_FLUSH ||
            (ht_engine_has_data(e) &&
             (pr == HT_POLL_IDLE ||
              now - last_flush >= (int64_t)timeout * 1000))) {
            rc = ops->checkpoint(state, e);
            last_flush = ht_now_mono_us();
            if (rc)
                break;
        }
        if (idle_us && now - last_data > idle_us)
            break;
    }
    if (!rc && e->stop_requested && ops->drain_on_stop) {
        /* what already arrived is committed too */
        for (int k = 0; k < 100000; k++) {
            int pr = ops->poll(state, e, 0);

            if (pr < 0) {
                rc = -pr;
                break;
            }
            if (pr != HT_POLL_DATA && pr != HT_POLL_FLUSH)
                break;
            if (ht_engine_full(e) && (rc = ops->checkpoint(state, e)) != 0)
                break;
        }
    }
    {
        int frc = ops->checkpoint(state, e);

        if (!rc)
            rc = frc;
    }
    {
        int src = ht_engine_sync(e);

        if (!rc)
            rc = src;
    }
    return rc;
}
