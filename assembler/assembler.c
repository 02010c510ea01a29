/*
 * assembler.c - writes a decoded batch into the store: nodes, keys,
 * invocation records, facts, dead letters and hop halves (see
 * ht_assembler.h for the model).
 *
 * Owned by assembler/. Every write is keyed by content so re-applying a
 * batch is a no-op; nothing here may depend on arrival order.
 */
#define _GNU_SOURCE
#include "ht_assembler.h"
#include "stages.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DLQ_CAP 100000

enum { HALF_PRODUCER = 1, HALF_CONSUMER = 2, HALF_MATCHED = 3 };

/*
 * A batch is applied in one of three modes. ALL does everything inside the
 * write transaction. The engine splits that in two so the writer thread
 * does less: PREP (no transaction: on the decoding thread, or on the
 * writer's before its transaction when the batch came while it was idle)
 * builds the writes that depend on nothing stored — span records, keys,
 * fact records, by_time, dirty — into a sorted bulk set; APPLY (in the
 * transaction) writes that set and does the rest, which reads the store:
 * invocation merges, hop halves, stall state, dead letters, and
 * in-progress spans (which must not replace a stored complete copy).
 */
enum mode { MODE_ALL, MODE_PREP, MODE_APPLY };

struct wr {
    enum mode mode;
    struct ht_bulk *bulk; /* MODE_PREP: where the writes go */
    struct ht_txn *t;
    struct ht_buf buf;
    int err;
    struct ht_asm_stats *st;
    int64_t pending_delta; /* written to the counter once per batch */
    struct ht__stg *stg;   /* stall state of the batch (stages.c) */
};

static void put(struct wr *w, int db, const void *k, size_t kn, const void *v,
                size_t vn)
{
    if (w->err)
        return;
    if (w->bulk) {
        /* a key too long for a bulk set is simply not indexed, as LMDB
         * would refuse it too */
        if (ht_bulk_deferrable(db) && kn > 0 && kn <= 511)
            w->err = ht_bulk_put(w->bulk, db, k, kn, v, vn);
        return;
    }
    w->err = ht_store_put(w->t, db, k, kn, v, vn);
}

/* keys-db entry: key -> type byte + target */
static void put_target(struct wr *w, const uint8_t *key, size_t kn, char ttype,
                       const void *target, size_t tn)
{
    uint8_t val[HT_ID_PACKED_MAX + 1];

    if (tn + 1 > sizeof(val))
        return;
    val[0] = (uint8_t)ttype;
    memcpy(val + 1, target, tn);
    put(w, HT_DB_KEYS, key, kn, val, tn + 1);
}

/* A key of binary bytes (trace id, span id) naming a span. */
static void put_key(struct wr *w, char prefix, const void *p, size_t n,
                    char ttype, const void *target, size_t tn)
{
    uint8_t key[HT_KEY_MAX];

    if (!p || n == 0)
        return;
    put_target(w, key, ht_key_make(key, prefix, p, n), ttype, target, tn);
}

/* A text id naming a span. */
static void key_span(struct wr *w, char prefix, const char *s,
                     const struct ht_span *sp)
{
    uint8_t key[HT_KEY_MAX];

    if (s && *s)
        put_target(w, key, ht_key_make_id(key, prefix, s), HT_TARGET_SPAN,
                   sp->id.b, 8);
}

/* An id naming an invocation; the target is its packed request id (packed
 * once per invocation by the caller). `p` is text when n == 0, binary
 * bytes otherwise. */
static void key_inv(struct wr *w, char prefix, const void *p, size_t n,
                    const uint8_t *prid, size_t prn)
{
    uint8_t key[HT_KEY_MAX];
    size_t kn;

    if (!p)
        return;
    if (n == 0) {
        if (!*(const char *)p)
            return;
        kn = ht_key_make_id(key, prefix, p);
    } else {
        kn = ht_key_make(key, prefix, p, n);
    }
    put_target(w, key, kn, HT_TARGET_INV, prid, prn);
}

/* What half() found. */
enum { HALF_SEEN, HALF_WAITING, HALF_MET };

/* A hop half named by `key`: record it, or match it with the other. The
 * stage state (stages.c) follows the same first sightings, so it is as
 * idempotent as the pending table; *other_ts is the other half's time. */
static int half(struct wr *w, const char *key, int side, int64_t ts,
                int64_t *other_ts)
{
    const void *v;
    size_t vn;
    uint8_t val[9];
    size_t kn = strlen(key);

    if (w->err || kn > 400)
        return HALF_SEEN;
    if (ht_store_get(w->t, HT_DB_PENDING, key, kn, &v, &vn) == HT_ERR_OK &&
        vn >= 1) {
        uint8_t state = ((const uint8_t *)v)[0];

        if (state == HALF_MATCHED || state == side)
            return HALF_SEEN; /* seen before: idempotent */
        *other_ts = vn >= 9 ? (int64_t)ht_be64_get((const uint8_t *)v + 1) : 0;
        val[0] = HALF_MATCHED;
        /* a matched hop keeps its consumer's time, whichever half came
         * second: the store must not depend on arrival order */
        ht_be64_put(val + 1,
                    (uint64_t)(side == HALF_CONSUMER ? ts : *other_ts));
        put(w, HT_DB_PENDING, key, kn, val, sizeof(val));
        /* only a waiting producer counts as a pending hop: a consumer
         * whose producer was never traced is not work left behind */
        if (state == HALF_PRODUCER)
            w->pending_delta--;
        w->st->hops_matched++;
        return HALF_MET;
    }
    val[0] = (uint8_t)side;
    ht_be64_put(val + 1, (uint64_t)ts);
    put(w, HT_DB_PENDING, key, kn, val, sizeof(val));
    if (side == HALF_PRODUCER)
        w->pending_delta++;
    return HALF_WAITING;
}

/* A producer half of span s. */
static void produce(struct wr *w, const struct ht_span *s, const char *key)
{
    int64_t other = 0;
    int r = half(w, key, HALF_PRODUCER, s->end_us, &other);

    if (r != HALF_SEEN)
        ht__stg_producer(w->stg, s, key, r == HALF_MET, other);
}

/*
 * SNS and EventBridge deliver one message to every subscriber or rule
 * target: its hop key has one producer half and several consumers. Each
 * consumer is noted once (ht_fanout_mark: "<key>#<request id>", state
 * HALF_CONSUMER, never a pending producer); the first takes the hop key
 * as any consumer does (returns -1: go on), a later one, which finds the
 * key taken or waiting, is a receipt of its own for the stages. Returns 1
 * for such a later consumer, 0 when this consumer was noted before.
 */
static int fanout_consumer(struct wr *w, const struct ht_fact *f,
                           const char *key, bool first)
{
    char mk[600];
    uint8_t val[9];
    const void *v;
    size_t vn, mn;
    uint8_t state;

    if (!f->request_id || w->err)
        return -1;
    mn = ht_fanout_mark(mk, sizeof(mk), key, f->request_id);
    if (!mn)
        return -1;
    if (ht_store_get(w->t, HT_DB_PENDING, mk, mn, &v, &vn) == HT_ERR_OK)
        return 0;
    val[0] = HALF_CONSUMER;
    ht_be64_put(val + 1, (uint64_t)f->ts_us);
    put(w, HT_DB_PENDING, mk, mn, val, sizeof(val));
    if (ht_store_get(w->t, HT_DB_PENDING, key, strlen(key), &v, &vn) !=
            HT_ERR_OK ||
        vn < 1)
        return -1;
    state = ((const uint8_t *)v)[0];
    if (state == HALF_PRODUCER)
        return -1;
    ht__stg_consumer(w->stg, f, key, state == HALF_MATCHED, first);
    return 1;
}

/* A consumer half of fact f; returns whether it was seen for the first
 * time. `first` is false for a record's second name. */
static bool consume(struct wr *w, const struct ht_fact *f, const char *key,
                    bool first)
{
    int64_t other = 0;
    int r;

    if (ht_fanout_hop(key)) {
        int seen = fanout_consumer(w, f, key, first);

        if (seen >= 0)
            return seen != 0;
    }
    r = half(w, key, HALF_CONSUMER, f->ts_us, &other);

    if (r != HALF_SEEN)
        ht__stg_consumer(w->stg, f, key, r == HALF_MET, first);
    return r != HALF_SEEN;
}

/*
 * SNS and EventBridge pass the caller's trace header on: a subscriber's or
 * rule target's AWS::Lambda segment whose parent is a Publish / PutEvents
 * that recorded its message id received that message, logged or not. It
 * takes the message's hop key like a logged record would, so the Publish
 * is not left pending, and is noted as that subscriber's receipt
 * (fanout_consumer: the same note as its logged record's, so the two
 * count once, in either order). Either side may come first: the segment
 * looks its parent up, the Publish its children in its trace.
 */
static void header_consumer(struct wr *w, const struct ht_span *lam,
                            const struct ht_span *call)
{
    struct ht_fact f;
    char hk[512];

    if (!call->message_id || !(call->flags & HT_SPAN_WRITE) ||
        (call->via != HT_VIA_SNS && call->via != HT_VIA_EVENTBRIDGE) ||
        (call->flags & (HT_SPAN_ERROR | HT_SPAN_THROTTLE | HT_SPAN_FAULT)))
        return;
    memset(&f, 0, sizeof(f));
    f.kind = HT_FACT_RECORD;
    f.via = call->via;
    f.request_id = lam->request_id;
    f.function = lam->name;
    f.ts_us = lam->start_us;
    f.resource = call->resource;
    f.record_id = call->message_id;
    snprintf(hk, sizeof(hk), "%s:%s", ht_msgid_hop(call->via),
             call->message_id);
    consume(w, &f, hk, true);
}

struct kids_ctx {
    struct wr *w;
    const struct ht_span *call;
    struct ht_arena *a;
};

static int header_kid(void *ctx, const void *k, size_t kn, const void *v,
                      size_t vn)
{
    struct kids_ctx *c = ctx;
    struct ht_id8 parent;
    struct ht_span kid;

    (void)k;
    (void)kn;
    if (ht_span_peek_parent(v, vn, &parent) != HT_ERR_OK ||
        memcmp(parent.b, c->call->id.b, 8) != 0)
        return 0;
    if (ht_span_unpack(v, vn, c->a, &kid) == HT_ERR_OK &&
        kid.kind == HT_SK_LAMBDA)
        header_consumer(c->w, &kid, c->call);
    return c->w->err != 0;
}

static void header_hops(struct wr *w, const struct ht_span *s)
{
    struct kids_ctx c = {w, NULL, NULL};
    struct ht_span call;
    const void *v;
    size_t vn;
    uint32_t flags;
    uint8_t key[24];

    if (w->err)
        return;
    if (s->kind == HT_SK_LAMBDA && (s->flags & HT_SPAN_HAS_PARENT)) {
        memcpy(key, s->trace.b, 16);
        memcpy(key + 16, s->parent.b, 8);
        if (ht_store_get(w->t, HT_DB_NODES, key, 24, &v, &vn) != HT_ERR_OK ||
            ht_span_peek_flags(v, vn, &flags) != HT_ERR_OK ||
            !(flags & HT_SPAN_WRITE) || !(c.a = ht_arena_create()))
            return;
        if (ht_span_unpack(v, vn, c.a, &call) == HT_ERR_OK)
            header_consumer(w, s, &call);
    } else if (s->message_id && (s->flags & HT_SPAN_WRITE) &&
               (s->via == HT_VIA_SNS || s->via == HT_VIA_EVENTBRIDGE)) {
        if (!(c.a = ht_arena_create()))
            return;
        c.call = s;
        ht_store_scan(w->t, HT_DB_NODES, s->trace.b, 16, header_kid, &c);
    }
    if (c.a)
        ht_arena_destroy(c.a);
}

static void apply_span(struct wr *w, const struct ht_span *s)
{
    const void *old;
    size_t oldn;
    uint32_t oldflags;
    char hk[512];
    bool inprog = s->flags & HT_SPAN_IN_PROGRESS;
    /* pure: the writes that depend on nothing stored; rmw: the rest */
    bool pure = w->mode == MODE_ALL || (w->mode == MODE_PREP) != inprog;
    bool rmw = w->mode != MODE_PREP;

    if (w->mode == MODE_PREP && inprog)
        return; /* in-progress spans are the writer's, whole */
    /* an in-progress copy never replaces the complete one */
    if (inprog &&
        ht_store_get(w->t, HT_DB_NODES, s->id.b, 8, &old, &oldn) == HT_ERR_OK &&
        ht_span_peek_flags(old, oldn, &oldflags) == HT_ERR_OK &&
        !(oldflags & HT_SPAN_IN_PROGRESS))
        return;
    if (pure) {
        ht_buf_reset(&w->buf);
        ht_span_pack(s, &w->buf);
        put(w, HT_DB_NODES, s->id.b, 8, w->buf.data, w->buf.len);
    }
    if (rmw) {
        w->st->spans_written++;
        ht__stg_span(w->stg, s);
    }
    /* a trace's spans and a parent's children are ranges of nodes (keyed
     * by trace id + span id): no 'T' or 'C' entries for spans */
    if (pure) {
        if (s->kind == HT_SK_LAMBDA)
            key_span(w, HT_K_LAMBDA, s->request_id, s);
        if (s->kind == HT_SK_APIGW) {
            key_span(w, HT_K_APIGW, s->request_id, s);
            key_span(w, HT_K_APIGW_EXT, s->ext_request_id, s);
        }
        key_span(w, HT_K_CORR, s->corr, s);
    }
    /* a write that failed (error, throttle, fault) wrote nothing: it is no
     * producer half and waits for no consumer */
    if (s->flags & (HT_SPAN_ERROR | HT_SPAN_THROTTLE | HT_SPAN_FAULT))
        rmw = false;
    if (s->message_id) {
        int mv = ht_span_msgid_via(s);

        if (pure)
            key_span(w, ht_msgid_prefix(mv), s->message_id, s);
        if (rmw) {
            snprintf(hk, sizeof(hk), "%s:%s", ht_msgid_hop(mv), s->message_id);
            produce(w, s, hk);
        }
    }
    if (rmw && !inprog)
        header_hops(w, s);
    if (s->sequence) {
        if (pure)
            key_span(w, HT_K_KSEQ, s->sequence, s);
        if (rmw) {
            snprintf(hk, sizeof(hk), "kin:%s", s->sequence);
            produce(w, s, hk);
        }
    } else if (rmw && (s->flags & HT_SPAN_WRITE) && s->corr && s->resource &&
               (s->via == HT_VIA_DYNAMODB || s->via == HT_VIA_KINESIS)) {
        snprintf(hk, sizeof(hk), "%s:%s/%s", ht_via_name(s->via), s->resource,
                 s->corr);
        produce(w, s, hk);
    }
    if (pure) {
        uint8_t bt[HT_BYTIME_KEY_MAX];

        for (uint32_t i = 0; i < s->nlinks; i++)
            put_key(w, HT_K_LINK, s->links[i].id.b, 8, HT_TARGET_SPAN, s->id.b,
                    8);
        /* retention's order: when the node last showed activity (an
         * in-progress copy replaced by the complete one leaves a stale
         * entry, which prune recognises and drops); the value names the
         * trace, so prune finds the node with no lookup */
        put(w, HT_DB_BYTIME, bt,
            ht_bytime_span_key(bt, ht_span_last_us(s), &s->id), s->trace.b, 16);
    }
}

/* The facts of a batch that name an invocation, grouped by request id. */
struct fact_ref {
    const struct ht_fact *f;
    size_t order; /* position in the batch: keeps each group in order */
    size_t glen;  /* on a group's first fact: the facts in the group */
};

/*
 * Every line of an invocation folds into its invocation record: the facts
 * of one request id in this batch, f[0..n), are merged into the stored
 * record in memory and written back once (a batch holds most lines of an
 * invocation, so this is one read and one write instead of one each per
 * line).
 */
static void apply_inv(struct wr *w, const struct fact_ref *f, size_t n,
                      const uint8_t *prid, size_t prn, struct ht_arena *a)
{
    struct ht_inv inv;
    const void *v;
    size_t vn;
    bool changed = false;
    uint32_t had_report;
    const char *fn = NULL;

    bool stored = true;
    int64_t old_last = 0;

    memset(&inv, 0, sizeof(inv));
    if (ht_store_get(w->t, HT_DB_INV, prid, prn, &v, &vn) != HT_ERR_OK ||
        ht_inv_unpack(v, vn, a, &inv) != HT_ERR_OK) {
        memset(&inv, 0, sizeof(inv));
        inv.request_id = f[0].f->request_id;
        changed = true; /* a new invocation is written even if bare */
        stored = false;
    } else {
        old_last = ht_inv_last_us(&inv);
    }
    had_report = inv.flags & HT_INV_HAS_REPORT;
    for (size_t i = 0; i < n; i++) {
        struct ht_fact g = *f[i].f;

        /* record and apigw lines carry no timing of the invocation */
        if (g.kind == HT_FACT_RECORD || g.kind == HT_FACT_APIGW)
            g.kind = HT_FACT_TRACE;
        changed |= ht_inv_merge(&inv, &g);
        if (!fn)
            fn = g.function;
    }
    /* cost per function: each invocation's REPORT counts once */
    if (!had_report && (inv.flags & HT_INV_HAS_REPORT)) {
        struct ht_inv c = inv;

        if (!c.function)
            c.function = fn;
        ht__stg_report(w->stg, &c);
    }
    if (changed) {
        int64_t last = ht_inv_last_us(&inv);
        uint8_t bt[HT_BYTIME_KEY_MAX];

        ht_buf_reset(&w->buf);
        ht_inv_pack(&inv, &w->buf);
        put(w, HT_DB_INV, prid, prn, w->buf.data, w->buf.len);
        /* exactly one by_time entry per invocation, at its last activity:
         * the store does not depend on the order its lines arrived in */
        if (!stored || last != old_last) {
            if (stored && !w->err)
                w->err =
                    ht_store_del(w->t, HT_DB_BYTIME, bt,
                                 ht_bytime_inv_key(bt, old_last, prid, prn));
            put(w, HT_DB_BYTIME, bt, ht_bytime_inv_key(bt, last, prid, prn), "",
                0);
        }
    }
}

/* The hop before an SQS record's (an SNS topic or an EventBridge bus that
 * delivered the message into the queue): its message id names the
 * invocation too, and its consumer half is the record as that via's
 * delivery (the topic as resource, received when SQS took it). */
static void consume_up(struct wr *w, const struct ht_fact *f, bool pure,
                       bool rmw, const uint8_t *prid, size_t prn)
{
    struct ht_fact g = *f;
    char hk[512];

    if (pure)
        key_inv(w, ht_msgid_prefix(f->up_via), f->up_id, 0, prid, prn);
    if (!rmw)
        return;
    g.via = f->up_via;
    g.record_id = f->up_id;
    g.resource = f->up_resource;
    g.up_via = 0;
    g.up_id = g.up_resource = NULL;
    snprintf(hk, sizeof(hk), "%s:%s", ht_msgid_hop(g.via), g.record_id);
    consume(w, &g, hk, true); /* another via: its own receipt */
}

/* What a fact adds besides its invocation record: keys, the fact itself,
 * hop halves. */
static void apply_fact(struct wr *w, const struct ht_fact *f,
                       const uint8_t *prid, size_t prn)
{
    char hk[512];
    bool pure = w->mode != MODE_APPLY, rmw = w->mode != MODE_PREP;

    if (pure && (f->flags & HT_FACT_HAS_TRACE))
        key_inv(w, HT_K_TRACE, f->trace.b, 16, prid, prn);
    if (pure && (f->flags & HT_FACT_HAS_SEGMENT))
        key_inv(w, HT_K_SEGMENT, f->segment.b, 8, prid, prn);
    if (f->kind == HT_FACT_CORR || f->kind == HT_FACT_RECORD ||
        f->kind == HT_FACT_APIGW) {
        if (pure) {
            uint8_t key[HT_ID_PACKED_MAX + 9];

            ht_buf_reset(&w->buf);
            ht_fact_pack(f, &w->buf);
            memcpy(key, prid, prn);
            key[prn] = 0;
            ht_be64_put(key + prn + 1, ht_hash64(w->buf.data, w->buf.len));
            put(w, HT_DB_FACTS, key, prn + 9, w->buf.data, w->buf.len);
        }
        if (rmw)
            w->st->facts_written++;
    }
    if (pure && f->corr)
        key_inv(w, HT_K_CORR, f->corr, 0, prid, prn);
    if (f->kind == HT_FACT_RECORD && f->record_id) {
        const char *id = f->record_id;

        if (ht_msgid_prefix(f->via)) {
            if (pure)
                key_inv(w, ht_msgid_prefix(f->via), id, 0, prid, prn);
            if (rmw) {
                snprintf(hk, sizeof(hk), "%s:%s", ht_msgid_hop(f->via), id);
                consume(w, f, hk, true);
            }
            if (f->up_id && ht_msgid_prefix(f->up_via))
                consume_up(w, f, pure, rmw, prid, prn);
        } else if (f->via == HT_VIA_KINESIS) {
            if (pure)
                key_inv(w, HT_K_KSEQ, id, 0, prid, prn);
            if (rmw) {
                bool first;

                snprintf(hk, sizeof(hk), "kin:%s", id);
                first = consume(w, f, hk, true);
                if (f->corr && f->resource) {
                    snprintf(hk, sizeof(hk), "kinesis:%s/%s", f->resource,
                             f->corr);
                    consume(w, f, hk, !first);
                }
            }
        } else if (f->via == HT_VIA_DYNAMODB) {
            if (pure)
                key_inv(w, HT_K_DDB, id, 0, prid, prn);
            if (rmw && f->corr && f->resource) {
                snprintf(hk, sizeof(hk), "dynamodb:%s/%s", f->resource,
                         f->corr);
                consume(w, f, hk, true);
            }
        }
        if (pure && (f->flags & HT_FACT_HAS_HDR) &&
            !ht_id8_is_zero(&f->hdr_parent))
            key_inv(w, HT_K_HEADER, f->hdr_parent.b, 8, prid, prn);
    }
    if (pure && f->kind == HT_FACT_APIGW) {
        if (f->apigw_id)
            key_inv(w, HT_K_APIGW, f->apigw_id, 0, prid, prn);
        if (f->ext_id)
            key_inv(w, HT_K_APIGW_EXT, f->ext_id, 0, prid, prn);
    }
}

static void apply_reject(struct wr *w, const struct ht_rejected *r,
                         uint32_t ordinal)
{
    uint8_t key[600];
    size_t sn = strlen(r->source);
    uint64_t n = 0;
    const char *src = r->source;
    char shortened[400];

    /* LMDB keys stop at 511 bytes: a long path keeps its tail and a hash */
    if (sn > 300) {
        snprintf(shortened, sizeof(shortened), "#%016llx:%s",
                 (unsigned long long)ht_hash64(src, sn), src + sn - 200);
        src = shortened;
        sn = strlen(src);
    }
    if (ht_store_count(w->t, HT_DB_DLQ, &n) == HT_ERR_OK && n >= DLQ_CAP)
        return; /* bounded: counted in the summary, not kept */
    memcpy(key, src, sn);
    key[sn] = 0;
    ht_be64_put(key + sn + 1, r->offset);
    /* several rejects at one offset (records inside one envelope) are
     * numbered in decoding order, which is deterministic; the content hash
     * keeps two stdin runs from overwriting each other's entries */
    ht_be64_put(key + sn + 9,
                (uint64_t)ordinal << 32 ^
                    (ht_hash64(r->sample, r->sample_len) & 0xffffffffu));
    ht_buf_reset(&w->buf);
    ht_buf_addc(&w->buf, (char)r->reason);
    ht_buf_adds(&w->buf, r->detail);
    ht_buf_addc(&w->buf, '\0');
    ht_buf_add(&w->buf, r->sample, r->sample_len);
    put(w, HT_DB_DLQ, key, sn + 17, w->buf.data, w->buf.len);
}

/* Adds a trace id to an open-addressing set (cap a power of two, more than
 * twice the ids); true when it was not there yet. */
static bool tid_set_add(struct ht_tid *set, size_t cap, const struct ht_tid *t)
{
    static const struct ht_tid zero;
    uint64_t h;
    size_t i;

    memcpy(&h, t->b + 8, 8); /* the random part of an X-Ray trace id */
    for (i = (size_t)(h * 0x9e3779b97f4a7c15ull >> 20) & (cap - 1);;
         i = (i + 1) & (cap - 1)) {
        if (memcmp(&set[i], &zero, sizeof(zero)) == 0) {
            set[i] = *t;
            return true;
        }
        if (memcmp(&set[i], t, sizeof(*t)) == 0)
            return false;
    }
}

/* Marks every trace the batch touched as dirty, once per batch, so the
 * request summaries behind `endpoints` can be refreshed incrementally. */
static void mark_dirty(struct wr *w, const struct ht_batch *b)
{
    size_t cap = 16;
    struct ht_tid *set;

    while (cap < 2 * (b->nspans + b->nfacts) + 2)
        cap *= 2;
    if (w->err || !(b->nspans + b->nfacts))
        return;
    set = ht_table_alloc(cap, sizeof(*set));
    if (!set) {
        w->err = HT_ERR_NOMEM;
        return;
    }
    for (size_t i = 0; i < b->nspans && !w->err; i++)
        if (!ht_tid_is_zero(&b->spans[i].trace) &&
            tid_set_add(set, cap, &b->spans[i].trace))
            put(w, HT_DB_DIRTY, b->spans[i].trace.b, 16, "", 0);
    for (size_t i = 0; i < b->nfacts && !w->err; i++)
        if ((b->facts[i].flags & HT_FACT_HAS_TRACE) &&
            !ht_tid_is_zero(&b->facts[i].trace) &&
            tid_set_add(set, cap, &b->facts[i].trace))
            put(w, HT_DB_DIRTY, b->facts[i].trace.b, 16, "", 0);
    free(set);
}

/* The facts of a batch that name an invocation, grouped by request id
 * (groups in order of first appearance, facts in batch order inside each;
 * glen set on each group's first fact). *out is malloc'd; returns their
 * number, or -1 out of memory. */
static long sort_facts(const struct ht_batch *b, struct fact_ref **out)
{
    struct fact_ref *refs;
    size_t n = 0, ngroups = 0, cap = 16;
    size_t *slot, *first, *last, *next, *gsize;
    const char **gkey;

    *out = NULL;
    if (!b->nfacts)
        return 0;
    while (cap < 2 * b->nfacts)
        cap *= 2;
    refs = malloc(b->nfacts * sizeof(*refs));
    slot = malloc(cap * sizeof(*slot));
    first = malloc(b->nfacts * sizeof(*first));
    last = malloc(b->nfacts * sizeof(*last));
    next = malloc(b->nfacts * sizeof(*next));
    gsize = calloc(b->nfacts, sizeof(*gsize));
    gkey = malloc(b->nfacts * sizeof(*gkey));
    if (!refs || !slot || !first || !last || !next || !gsize || !gkey) {
        free(refs);
        n = (size_t)-1;
        goto out;
    }
    memset(slot, 0xff, cap * sizeof(*slot)); /* SIZE_MAX: empty */
    for (size_t i = 0; i < b->nfacts; i++) {
        const char *rid = b->facts[i].request_id;
        size_t rn = rid ? strlen(rid) : 0, h, g;

        /* an access log line that names no integration request */
        if (!rn || rn > 200)
            continue;
        for (h = (size_t)ht_hash_mem(rid, rn) & (cap - 1);;
             h = (h + 1) & (cap - 1)) {
            g = slot[h];
            if (g == SIZE_MAX) {
                g = slot[h] = ngroups++;
                gkey[g] = rid;
                first[g] = last[g] = i;
                break;
            }
            if (strcmp(gkey[g], rid) == 0) {
                next[last[g]] = i;
                last[g] = i;
                break;
            }
        }
        next[i] = SIZE_MAX;
        gsize[g]++;
    }
    for (size_t g = 0; g < ngroups; g++)
        for (size_t i = first[g], k = 0; i != SIZE_MAX; i = next[i], k++) {
            refs[n].f = &b->facts[i];
            refs[n].order = i;
            refs[n].glen = k == 0 ? gsize[g] : 0;
            n++;
        }
    *out = refs;
out:
    free(slot);
    free(first);
    free(last);
    free(next);
    free(gsize);
    free(gkey);
    return (long)n;
}

static void apply_facts(struct wr *w, const struct fact_ref *refs, size_t n,
                        struct ht_arena *a)
{
    for (size_t i = 0, j; i < n && !w->err; i = j) {
        const char *rid = refs[i].f->request_id;
        uint8_t prid[HT_ID_PACKED_MAX];
        size_t prn = ht_id_pack(rid, strlen(rid), prid);

        j = i + refs[i].glen;
        if (w->mode != MODE_PREP)
            apply_inv(w, refs + i, j - i, prid, prn, a);
        for (size_t k = i; k < j && !w->err; k++)
            apply_fact(w, refs[k].f, prid, prn);
        if (ht_arena_used(a) > (1u << 20))
            ht_arena_reset(a);
    }
}

struct ht_asm_prep {
    struct ht_bulk *bulk;
    struct fact_ref *refs;
    size_t nrefs;
};

/* Event times further ahead of the wall clock than this do not move the
 * store's newest-event watermark: one document with a wild clock (a unit
 * mistake, a year typo) would otherwise make `--retain` expire everything
 * else at once. Replays of the past, and generated data of the coming
 * months, still move it. */
#define HT_WATERMARK_AHEAD_US (366LL * 86400 * 1000000)

/* The batch's latest plausible event time (INT64_MIN when it has none). */
int64_t ht_assembler_newest_event(const struct ht_batch *b)
{
    int64_t t = INT64_MIN;
    int64_t limit = ht_now_wall_us() + HT_WATERMARK_AHEAD_US;

    for (size_t i = 0; i < b->nspans; i++) {
        int64_t v = ht_span_last_us(&b->spans[i]);

        if (v > t && v <= limit)
            t = v;
    }
    for (size_t i = 0; i < b->nfacts; i++)
        if (b->facts[i].ts_us > t && b->facts[i].ts_us <= limit)
            t = b->facts[i].ts_us;
    return t;
}

static int run(struct wr *w, const struct ht_batch *b,
               const struct fact_ref *refs, size_t nrefs)
{
    struct ht_arena *a = ht_arena_create();
    size_t i;
    uint32_t ordinal;
    bool rmw = w->mode != MODE_PREP;

    if (!a)
        return HT_ERR_NOMEM;
    ht_buf_init(&w->buf);
    if (rmw) {
        w->stg = ht__stg_begin(w->t, b);
        if (!w->stg)
            w->err = HT_ERR_NOMEM;
    }
    for (i = 0; i < b->nspans && !w->err; i++)
        apply_span(w, &b->spans[i]);
    apply_facts(w, refs, nrefs, a);
    for (i = 0, ordinal = 0; rmw && i < b->nrejects && !w->err; i++) {
        const struct ht_rejected *r = &b->rejects[i];
        const struct ht_rejected *p = i ? &b->rejects[i - 1] : NULL;

        /* rejects of one payload come together: number them in order */
        if (p && p->offset == r->offset && strcmp(p->source, r->source) == 0)
            ordinal++;
        else
            ordinal = 0;
        apply_reject(w, r, ordinal);
    }
    if (w->mode != MODE_APPLY)
        mark_dirty(w, b);
    if (w->stg) {
        int e = ht__stg_end(w->stg);

        if (!w->err)
            w->err = e;
    }
    if (rmw && !w->err && w->pending_delta)
        w->err = ht_store_counter_add(w->t, "pending", w->pending_delta);
    if (rmw && !w->err)
        w->err = ht_store_note_event(w->t, ht_assembler_newest_event(b));
    ht_buf_free(&w->buf);
    ht_arena_destroy(a);
    return w->err;
}

int ht_assembler_apply(struct ht_txn *t, const struct ht_batch *b,
                       struct ht_asm_stats *st)
{
    struct wr w = {.mode = MODE_ALL, .t = t, .st = st};
    struct fact_ref *refs;
    long n = sort_facts(b, &refs);
    int rc;

    if (n < 0)
        return HT_ERR_NOMEM;
    rc = run(&w, b, refs, (size_t)n);
    free(refs);
    return rc;
}

int ht_assembler_prepare(const struct ht_batch *b, struct ht_asm_prep **out)
{
    struct ht_asm_stats unused = {0};
    struct ht_asm_prep *p = calloc(1, sizeof(*p));
    struct wr w = {.mode = MODE_PREP, .st = &unused};
    long n;
    int rc;

    *out = NULL;
    if (!p || !(p->bulk = ht_bulk_new())) {
        free(p);
        return HT_ERR_NOMEM;
    }
    n = sort_facts(b, &p->refs);
    if (n < 0) {
        ht_assembler_prep_free(p);
        return HT_ERR_NOMEM;
    }
    p->nrefs = (size_t)n;
    w.bulk = p->bulk;
    rc = run(&w, b, p->refs, p->nrefs);
    if (!rc)
        rc = ht_bulk_sort(p->bulk);
    if (rc) {
        ht_assembler_prep_free(p);
        return rc;
    }
    *out = p;
    return HT_ERR_OK;
}

void ht_assembler_prep_free(struct ht_asm_prep *p)
{
    if (!p)
        return;
    ht_bulk_free(p->bulk);
    free(p->refs);
    free(p);
}

int ht_assembler_apply_prepared(struct ht_txn *t, const struct ht_batch *b,
                                const struct ht_asm_prep *p,
                                struct ht_asm_stats *st)
{
    struct wr w = {.mode = MODE_APPLY, .t = t, .st = st};
    int rc = ht_store_bulk_apply(t, p->bulk);

    if (rc)
        return rc;
    return run(&w, b, p->refs, p->nrefs);
}

int64_t ht_assembler_pending(struct ht_txn *t)
{
    return ht_store_counter(t, "pending");
}
