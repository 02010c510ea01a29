/*
 * sink.c - the write side shared by every ingest source.
 *
 * Two batches: the source decodes into one while a writer thread commits
 * the other (ONE LMDB write transaction per batch, checkpoints included).
 * The writer owns the write transaction; the decoding thread never waits
 * for LMDB unless it has filled a second batch before the first is
 * committed, which bounds memory at two batches (back-pressure).
 */
#define _GNU_SOURCE
#include "sink.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct ht_sink_writer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct ht_batch batches[2];
    struct ht_batch *job;     /* batch being committed, NULL when idle */
    struct ht_asm_prep *prep; /* job's writes prepared by the decoder */
    struct ht_buf ckpts;      /* job's checkpoints: klen,key,vlen,val ... */
    size_t nckpts;
    int err; /* first commit error, sticky */
    bool stop;
    bool durable;      /* flush every commit (--durable) */
    int shrink;        /* the store outgrew memory: batches >> shrink */
    int64_t last_sync; /* monotonic µs of the last flush to disk */
};

static int commit_once(struct ht_sink *s, struct ht_batch *b,
                       const struct ht_asm_prep *prep, const struct ht_buf *ck,
                       size_t nck, struct ht_asm_stats *st)
{
    struct ht_txn *t;
    int rc = ht_store_begin(s->store, true, &t);
    const char *p = ck->data;

    if (rc)
        return rc;
    rc = prep ? ht_assembler_apply_prepared(t, b, prep, st)
              : ht_assembler_apply(t, b, st);
    for (size_t i = 0; !rc && i < nck; i++) {
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

static int commit(struct ht_sink *s, struct ht_batch *b,
                  const struct ht_asm_prep *prep, const struct ht_buf *ck,
                  size_t nck)
{
    int rc = HT_ERR_OK;

    for (int attempt = 0; attempt < 24; attempt++) {
        struct ht_asm_stats st = {0};

        rc = commit_once(s, b, prep, ck, nck, &st);
        if (rc == HT_ERR_OK) {
            s->tot.as.spans_written += st.spans_written;
            s->tot.as.facts_written += st.facts_written;
            s->tot.as.hops_matched += st.hops_matched;
            s->tot.documents += b->documents;
            s->tot.spans += b->nspans;
            s->tot.log_events += b->log_events;
            s->tot.dropped += b->dropped;
            s->tot.bytes += b->payload_bytes;
            s->tot.batches++;
            for (int i = 0; i < HT_REJ__COUNT; i++)
                s->tot.rejected[i] += b->rejected[i];
            return rc;
        }
        if (rc != HT_ERR_MAPFULL)
            break;
        rc = ht_store_grow(s->store);
        if (rc)
            break;
    }
    return rc;
}

/* This process's resident set, from /proc/self/statm (0 if unknown). */
static uint64_t resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, res = 0;

    if (!f)
        return 0;
    if (fscanf(f, "%llu %llu", &size, &res) != 2)
        res = 0;
    fclose(f);
    return res * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void *writer_main(void *arg)
{
    struct ht_sink *s = arg;
    struct ht_sink_writer *w = s->w;

    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->job && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->job)
            break;
        pthread_mutex_unlock(&w->mu);
        int rc =
            w->err ? w->err : commit(s, w->job, w->prep, &w->ckpts, w->nckpts);

        if (!rc && resident_bytes() > HT_SINK_RSS_TRIM) {
            ht_store_trim(s->store);
            /* the pages one commit touches grow with its batch: halve it
             * (down to a quarter) each time memory had to be given up */
            if (w->shrink < 2)
                __atomic_store_n(&w->shrink, w->shrink + 1, __ATOMIC_RELAXED);
        }
        /* in bulk mode commits are not flushed one by one; a long-running
         * source may ask for a flush every so often */
        if (!rc && !w->durable && s->sync_every_us > 0 &&
            ht_now_mono_us() - w->last_sync > s->sync_every_us) {
            rc = ht_store_sync(s->store);
            w->last_sync = ht_now_mono_us();
        }
        pthread_mutex_lock(&w->mu);
        if (rc && !w->err)
            w->err = rc;
        ht_batch_reset(w->job);
        ht_assembler_prep_free(w->prep);
        w->prep = NULL;
        w->job = NULL;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static int wait_idle(struct ht_sink_writer *w);

/*
 * ht_batch.yield: inside one large value (a GetRecords file, a big array),
 * hand what was decoded so far to the writer without waiting for the value
 * to end. The records move to the idle spare batch; their strings stay in
 * the current batch's arena, which is only reset after this batch itself
 * is committed, later. No checkpoint moves: a crash re-reads the value
 * from its start, and writing it again changes nothing.
 */
static void sink_yield(void *ctx, struct ht_batch *b)
{
    struct ht_sink *s = ctx;
    struct ht_sink_writer *w = s->w;
    struct ht_batch *spare;
    struct ht_asm_prep *prep = NULL;

    if (b != s->batch || b->nspans + b->nfacts + b->nrejects < s->batch_docs)
        return;
    spare = b == &w->batches[0] ? &w->batches[1] : &w->batches[0];
    pthread_mutex_lock(&w->mu);
    if (wait_idle(w)) {
        pthread_mutex_unlock(&w->mu);
        return; /* the next flush reports it */
    }
    pthread_mutex_unlock(&w->mu);
    ht_batch_move_records(spare, b);
    if (ht_assembler_prepare(spare, &prep) != HT_ERR_OK)
        prep = NULL;
    pthread_mutex_lock(&w->mu);
    ht_buf_reset(&w->ckpts);
    w->nckpts = 0;
    w->job = spare;
    w->prep = prep;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int ht_sink_open(struct ht_sink *s, const char *db)
{
    struct ht_sink_writer *w;
    int rc;

    memset(s, 0, sizeof(*s));
    s->batch_docs = HT_INGEST_BATCH_DEFAULT;
    rc = ht_store_open(db, false, &s->store);
    if (rc)
        return rc;
    w = calloc(1, sizeof(*w));
    if (!w || ht_batch_init(&w->batches[0]) || ht_batch_init(&w->batches[1]))
        goto nomem;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    s->w = w;
    s->batch = &w->batches[0];
    for (int i = 0; i < 2; i++) {
        w->batches[i].yield = sink_yield;
        w->batches[i].yield_ctx = s;
    }
    w->last_sync = ht_now_mono_us();
    rc = ht_store_set_nosync(s->store, true);
    if (rc) {
        ht_batch_free(&w->batches[0]);
        ht_batch_free(&w->batches[1]);
        free(w);
        s->w = NULL;
        ht_store_close(s->store);
        s->store = NULL;
        return rc;
    }
    if (pthread_create(&w->thread, NULL, writer_main, s) != 0) {
        HT_LOG_ERROR("ingest", "cannot start the writer thread");
        ht_sink_close(s);
        return HT_ERR_NOMEM;
    }
    return HT_ERR_OK;
nomem:
    if (w) {
        ht_batch_free(&w->batches[0]);
        ht_batch_free(&w->batches[1]);
        free(w);
    }
    ht_store_close(s->store);
    s->store = NULL;
    return HT_ERR_NOMEM;
}

/* Waits for the writer to be idle; returns its sticky error. Called with
 * the mutex held. */
static int wait_idle(struct ht_sink_writer *w)
{
    while (w->job)
        pthread_cond_wait(&w->cv, &w->mu);
    return w->err;
}

int ht_sink_set_durable(struct ht_sink *s, bool durable)
{
    int rc = ht_sink_sync(s);

    if (rc)
        return rc;
    s->w->durable = durable;
    return ht_store_set_nosync(s->store, !durable);
}

int ht_sink_sync(struct ht_sink *s)
{
    int rc;

    pthread_mutex_lock(&s->w->mu);
    rc = wait_idle(s->w);
    pthread_mutex_unlock(&s->w->mu);
    return rc;
}

bool ht_sink_full(const struct ht_sink *s)
{
    const struct ht_batch *b = s->batch;
    size_t cap = s->batch_docs;

    cap >>= __atomic_load_n(&s->w->shrink, __ATOMIC_RELAXED);
    if (cap < 256)
        cap = 256;
    return b->nspans + b->nfacts + b->nrejects >= cap ||
           ht_arena_used(b->arena) > (48u << 20);
}

int ht_sink_flush(struct ht_sink *s, const struct ht_sink_ckpt *ck, size_t n)
{
    struct ht_sink_writer *w = s->w;
    struct ht_batch *next;
    struct ht_asm_prep *prep = NULL;
    int rc;

    /* the writes that need no store are built here, on the decoding
     * thread, while the writer still commits the previous batch; without
     * them (out of memory) the writer does everything */
    if (ht_assembler_prepare(s->batch, &prep) != HT_ERR_OK)
        prep = NULL;
    pthread_mutex_lock(&w->mu);
    rc = wait_idle(w);
    if (rc) {
        pthread_mutex_unlock(&w->mu);
        ht_assembler_prep_free(prep);
        return rc;
    }
    ht_buf_reset(&w->ckpts);
    for (size_t i = 0; i < n; i++) {
        uint32_t kl = (uint32_t)ck[i].klen, vl = (uint32_t)ck[i].vlen;

        ht_buf_add(&w->ckpts, &kl, 4);
        ht_buf_add(&w->ckpts, &vl, 4);
        ht_buf_add(&w->ckpts, ck[i].key, kl);
        ht_buf_add(&w->ckpts, ck[i].val, vl);
    }
    w->nckpts = n;
    next = s->batch == &w->batches[0] ? &w->batches[1] : &w->batches[0];
    w->job = s->batch;
    w->prep = prep;
    s->batch = next;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return HT_ERR_OK;
}

int ht_sink_get_ckpt(struct ht_sink *s, const char *key, void *buf, size_t cap,
                     size_t *n)
{
    struct ht_txn *t;
    const void *v;
    size_t vn;
    int rc = ht_sink_sync(s);

    if (rc)
        return rc;
    rc = ht_store_begin(s->store, false, &t);
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

int ht_sink_close(struct ht_sink *s)
{
    struct ht_sink_writer *w = s->w;
    int rc = HT_ERR_OK;

    if (w) {
        pthread_mutex_lock(&w->mu);
        rc = wait_idle(w);
        w->stop = true;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
        if (!w->durable && s->sync_every_us > 0) {
            int src = ht_store_sync(s->store);

            if (!rc)
                rc = src;
        }
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        ht_batch_free(&w->batches[0]);
        ht_batch_free(&w->batches[1]);
        ht_buf_free(&w->ckpts);
        free(w);
        s->w = NULL;
    }
    if (s->store)
        ht_store_close(s->store);
    s->store = NULL;
    s->batch = NULL;
    return rc;
}

int ht_ingest_opt(struct ht_cli *cli, int argc, char **argv, int *i,
                  struct ht_ingest_opts *o)
{
    const char *a = argv[*i];
    bool has = *i + 1 < argc;

    if (strcmp(a, "--strict") == 0) {
        o->strict = true;
    } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
        o->quiet = true;
    } else if (strcmp(a, "--durable") == 0) {
        o->durable = true;
    } else if (strcmp(a, "--db") == 0 && has) {
        cli->db = argv[++*i];
    } else if (strcmp(a, "--until-idle") == 0 && has) {
        char *end;

        o->until_idle = strtod(argv[++*i], &end);
        if (*end || !(o->until_idle > 0) || o->until_idle > 1e6) {
            ht_cli_err("--until-idle takes a number of seconds > 0");
            return -1;
        }
    } else if (strcmp(a, "--batch") == 0 && has) {
        char *end;
        long v = strtol(argv[++*i], &end, 10);

        if (*end || v < 1 || v > 1000000) {
            ht_cli_err("--batch takes 1 to 1000000");
            return -1;
        }
        o->batch_docs = (size_t)v;
    } else {
        return 0;
    }
    return 1;
}

int ht_ingest_opts_apply(struct ht_sink *s, const struct ht_ingest_opts *o)
{
    int rc;

    s->batch_docs = o->batch_docs;
    if (o->durable && (rc = ht_sink_set_durable(s, true)) != HT_ERR_OK) {
        ht_cli_err("cannot switch the store to durable commits: %s",
                   ht_strerror(rc));
        return rc;
    }
    return HT_ERR_OK;
}

uint64_t ht_sink_rejected(const struct ht_sink *s)
{
    uint64_t n = 0;

    for (int r = 0; r < HT_REJ__COUNT; r++)
        n += s->tot.rejected[r];
    return n;
}

void ht_sink_summary(struct ht_sink *s, FILE *f, const char *from)
{
    struct ht_txn *t;
    int64_t pending = 0;
    uint64_t rejected = ht_sink_rejected(s);

    if (ht_store_begin(s->store, false, &t) == HT_ERR_OK) {
        pending = ht_assembler_pending(t);
        ht_store_abort(t);
    }
    fprintf(f,
            "hoptrace: ingested %llu documents (%llu spans, %llu log "
            "events) from %s; rejected %llu",
            (unsigned long long)s->tot.documents,
            (unsigned long long)s->tot.spans,
            (unsigned long long)s->tot.log_events, from,
            (unsigned long long)rejected);
    if (rejected) {
        const char *sep = " (";

        for (int r = 0; r < HT_REJ__COUNT; r++)
            if (s->tot.rejected[r]) {
                fprintf(f, "%s%s %llu", sep, ht_reject_name(r),
                        (unsigned long long)s->tot.rejected[r]);
                sep = ", ";
            }
        fputc(')', f);
    }
    fprintf(f, "; hops matched %llu, pending %lld",
            (unsigned long long)s->tot.as.hops_matched, (long long)pending);
    if (s->tot.dropped)
        fprintf(f, "; dropped %llu control messages",
                (unsigned long long)s->tot.dropped);
}
