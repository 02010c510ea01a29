/*
 * prune.c - retention (ht_prune.h): walks by_time from its oldest entry
 * and removes each expired node or invocation with everything that
 * indexes it, one bounded write transaction per slice.
 *
 * What indexes a piece is derived again from the piece itself, exactly as
 * assembler/assembler.c derived it when it wrote them (keys entries,
 * pending hop halves): keep the two in step. The keys of an invocation
 * come from its record and its stored facts (received records,
 * correlation and access log lines); those of lines that are not stored
 * (START/REPORT/END, trace-only lines) repeat the record's trace and
 * segment, except in the rare invocation whose lines name two traces:
 * such an entry is left behind, and the query side ignores a key whose
 * invocation is gone.
 *
 * Owned by store/.
 */
#define _GNU_SOURCE
#include "ht_prune.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Pending-half states, as assembler/assembler.c writes them. */
enum { HALF_PRODUCER = 1 };

#define DEFAULT_BUDGET 1000
#define MAX_ATTEMPTS 24

struct pr {
    struct ht_txn *t;
    struct ht_arena *a;
    struct ht_prune_stats st;
    int64_t pending_delta;
    int err;
};

static void chk(struct pr *p, int rc)
{
    if (!p->err && rc)
        p->err = rc;
}

/* Deletes one keys entry: key (prefix + bytes) -> target type + target. */
static void del_key(struct pr *p, const uint8_t *key, size_t kn, char ttype,
                    const void *target, size_t tn)
{
    uint8_t val[HT_ID_PACKED_MAX + 1];

    if (p->err || tn + 1 > sizeof(val))
        return;
    val[0] = (uint8_t)ttype;
    memcpy(val + 1, target, tn);
    /* applied sorted, with the slice's other key deletes (counted then:
     * the facts of one invocation repeat its keys) */
    chk(p, ht_store_del_later(p->t, HT_DB_KEYS, key, kn, val, tn + 1));
}

/* A key of binary bytes. */
static void del_bin(struct pr *p, char prefix, const void *b, size_t n,
                    char ttype, const void *target, size_t tn)
{
    uint8_t key[HT_KEY_MAX];

    del_key(p, key, ht_key_make(key, prefix, b, n), ttype, target, tn);
}

/* A key of a text id (skipped when empty, as written). */
static void del_text(struct pr *p, char prefix, const char *s, char ttype,
                     const void *target, size_t tn)
{
    uint8_t key[HT_KEY_MAX];

    if (s && *s)
        del_key(p, key, ht_key_make_id(key, prefix, s), ttype, target, tn);
}

/* A pending hop half named `hk` (either side, any state). */
static void del_half(struct pr *p, const char *hk)
{
    const void *v;
    size_t vn, kn = strlen(hk);

    if (p->err || kn > 400)
        return;
    if (ht_store_get(p->t, HT_DB_PENDING, hk, kn, &v, &vn) != HT_ERR_OK)
        return;
    /* only a waiting producer is counted as a pending hop */
    if (vn >= 1 && ((const uint8_t *)v)[0] == HALF_PRODUCER)
        p->pending_delta--;
    chk(p, ht_store_del(p->t, HT_DB_PENDING, hk, kn));
    p->st.pending++;
}

/* Removes node s and its index entries (apply_span). */
static void drop_span(struct pr *p, const struct ht_span *s)
{
    char hk[512];
    const uint8_t *id = s->id.b;

    if (s->kind == HT_SK_LAMBDA)
        del_text(p, HT_K_LAMBDA, s->request_id, HT_TARGET_SPAN, id, 8);
    if (s->kind == HT_SK_APIGW) {
        del_text(p, HT_K_APIGW, s->request_id, HT_TARGET_SPAN, id, 8);
        del_text(p, HT_K_APIGW_EXT, s->ext_request_id, HT_TARGET_SPAN, id, 8);
    }
    del_text(p, HT_K_CORR, s->corr, HT_TARGET_SPAN, id, 8);
    if (s->message_id) {
        del_text(p, HT_K_SQS, s->message_id, HT_TARGET_SPAN, id, 8);
        snprintf(hk, sizeof(hk), "sqs:%s", s->message_id);
        del_half(p, hk);
    }
    if (s->sequence) {
        del_text(p, HT_K_KSEQ, s->sequence, HT_TARGET_SPAN, id, 8);
        snprintf(hk, sizeof(hk), "kin:%s", s->sequence);
        del_half(p, hk);
    } else if ((s->flags & HT_SPAN_WRITE) && s->corr && s->resource &&
               (s->via == HT_VIA_DYNAMODB || s->via == HT_VIA_KINESIS)) {
        snprintf(hk, sizeof(hk), "%s:%s/%s", ht_via_name(s->via), s->resource,
                 s->corr);
        del_half(p, hk);
    }
    for (uint32_t i = 0; i < s->nlinks; i++)
        del_bin(p, HT_K_LINK, s->links[i].id.b, 8, HT_TARGET_SPAN, id, 8);
    if (!p->err)
        chk(p, ht_store_del(p->t, HT_DB_NODES, id, 8));
    p->st.nodes++;
}

/* The keys and hop halves of one stored fact (apply_fact). */
static void drop_fact_refs(struct pr *p, const struct ht_fact *f,
                           const uint8_t *prid, size_t prn)
{
    char hk[512];
    const char *id = f->record_id;

    if (f->flags & HT_FACT_HAS_TRACE)
        del_bin(p, HT_K_TRACE, f->trace.b, 16, HT_TARGET_INV, prid, prn);
    if (f->flags & HT_FACT_HAS_SEGMENT)
        del_bin(p, HT_K_SEGMENT, f->segment.b, 8, HT_TARGET_INV, prid, prn);
    del_text(p, HT_K_CORR, f->corr, HT_TARGET_INV, prid, prn);
    if (f->kind == HT_FACT_RECORD && id) {
        if (f->via == HT_VIA_SQS) {
            del_text(p, HT_K_SQS, id, HT_TARGET_INV, prid, prn);
            snprintf(hk, sizeof(hk), "sqs:%s", id);
            del_half(p, hk);
        } else if (f->via == HT_VIA_KINESIS) {
            del_text(p, HT_K_KSEQ, id, HT_TARGET_INV, prid, prn);
            snprintf(hk, sizeof(hk), "kin:%s", id);
            del_half(p, hk);
            if (f->corr && f->resource) {
                snprintf(hk, sizeof(hk), "kinesis:%s/%s", f->resource, f->corr);
                del_half(p, hk);
            }
        } else if (f->via == HT_VIA_DYNAMODB) {
            del_text(p, HT_K_DDB, id, HT_TARGET_INV, prid, prn);
            if (f->corr && f->resource) {
                snprintf(hk, sizeof(hk), "dynamodb:%s/%s", f->resource,
                         f->corr);
                del_half(p, hk);
            }
        }
        if ((f->flags & HT_FACT_HAS_HDR) && !ht_id8_is_zero(&f->hdr_parent))
            del_bin(p, HT_K_HEADER, f->hdr_parent.b, 8, HT_TARGET_INV, prid,
                    prn);
    }
    if (f->kind == HT_FACT_APIGW) {
        del_text(p, HT_K_APIGW, f->apigw_id, HT_TARGET_INV, prid, prn);
        del_text(p, HT_K_APIGW_EXT, f->ext_id, HT_TARGET_INV, prid, prn);
    }
}

struct fact_keys {
    struct ht_buf keys; /* u32 length + key, one after another */
    size_t n;
};

static int collect_fact(void *ctx, const void *k, size_t kn, const void *v,
                        size_t vn)
{
    struct fact_keys *c = ctx;
    uint32_t n = (uint32_t)kn;

    (void)v;
    (void)vn;
    ht_buf_add(&c->keys, &n, 4);
    ht_buf_add(&c->keys, k, kn);
    c->n++;
    return 0;
}

/* Removes invocation prid, its facts and everything they index. */
static void drop_inv(struct pr *p, const uint8_t *prid, size_t prn,
                     const struct ht_inv *inv)
{
    struct fact_keys c;
    uint8_t prefix[HT_ID_PACKED_MAX + 1];
    const char *q, *end;

    if (inv->flags & HT_INV_HAS_TRACE)
        del_bin(p, HT_K_TRACE, inv->trace.b, 16, HT_TARGET_INV, prid, prn);
    if (inv->flags & HT_INV_HAS_SEGMENT)
        del_bin(p, HT_K_SEGMENT, inv->segment.b, 8, HT_TARGET_INV, prid, prn);
    memcpy(prefix, prid, prn);
    prefix[prn] = 0;
    memset(&c, 0, sizeof(c));
    ht_buf_init(&c.keys);
    if (!p->err)
        chk(p, ht_store_scan(p->t, HT_DB_FACTS, prefix, prn + 1, collect_fact,
                             &c));
    q = c.keys.data;
    end = q ? q + c.keys.len : q;
    while (q && q < end && !p->err) {
        uint32_t kn;
        const void *v;
        size_t vn;
        struct ht_fact f;

        memcpy(&kn, q, 4);
        q += 4;
        if (ht_store_get(p->t, HT_DB_FACTS, q, kn, &v, &vn) == HT_ERR_OK &&
            ht_fact_unpack(v, vn, p->a, &f) == HT_ERR_OK)
            drop_fact_refs(p, &f, prid, prn);
        if (!p->err)
            chk(p, ht_store_del(p->t, HT_DB_FACTS, q, kn));
        p->st.facts++;
        q += kn;
    }
    ht_buf_free(&c.keys);
    if (!p->err)
        chk(p, ht_store_del(p->t, HT_DB_INV, prid, prn));
    p->st.invocations++;
}

/* One by_time entry (key k): the piece it names goes if it is still the
 * piece's current entry; a replaced version's entry just goes. */
static void prune_entry(struct pr *p, const uint8_t *k, size_t kn)
{
    int64_t ts = ht_bytime_time(k);
    const void *v;
    size_t vn;
    bool stale = true;

    if (kn == 17 && k[8] == HT_BYTIME_SPAN) {
        struct ht_span s;

        if (ht_store_get(p->t, HT_DB_NODES, k + 9, 8, &v, &vn) == HT_ERR_OK &&
            ht_span_unpack(v, vn, p->a, &s) == HT_ERR_OK &&
            ht_span_last_us(&s) == ts) {
            stale = false;
            drop_span(p, &s);
        }
    } else if (kn > 9 && k[8] == HT_BYTIME_INV) {
        struct ht_inv inv;

        if (ht_store_get(p->t, HT_DB_INV, k + 9, kn - 9, &v, &vn) ==
                HT_ERR_OK &&
            ht_inv_unpack(v, vn, p->a, &inv) == HT_ERR_OK &&
            ht_inv_last_us(&inv) == ts) {
            stale = false;
            drop_inv(p, k + 9, kn - 9, &inv);
        }
    }
    if (stale)
        p->st.stale++;
    if (!p->err)
        chk(p, ht_store_del(p->t, HT_DB_BYTIME, k, kn));
}

struct expired {
    int64_t cutoff;
    size_t budget;
    struct ht_buf keys; /* u32 length + key */
    size_t n;
};

static int collect_expired(void *ctx, const void *k, size_t kn, const void *v,
                           size_t vn)
{
    struct expired *e = ctx;
    uint32_t n = (uint32_t)kn;

    (void)v;
    (void)vn;
    if (kn < 9 || ht_bytime_time(k) >= e->cutoff || e->n >= e->budget)
        return 1;
    ht_buf_add(&e->keys, &n, 4);
    ht_buf_add(&e->keys, k, kn);
    e->n++;
    return 0;
}

static int slice_once(struct ht_store *s, int64_t cutoff, size_t budget,
                      bool *more, struct ht_prune_stats *out)
{
    struct pr p;
    struct expired e = {.cutoff = cutoff, .budget = budget};
    int rc;

    memset(&p, 0, sizeof(p));
    rc = ht_store_begin(s, true, &p.t);
    if (rc)
        return rc;
    p.a = ht_arena_create();
    if (!p.a) {
        ht_store_abort(p.t);
        return HT_ERR_NOMEM;
    }
    ht_buf_init(&e.keys);
    rc = ht_store_scan(p.t, HT_DB_BYTIME, NULL, 0, collect_expired, &e);
    if (rc)
        p.err = rc;
    for (size_t off = 0; !p.err && off < e.keys.len;) {
        uint32_t kn;

        memcpy(&kn, e.keys.data + off, 4);
        prune_entry(&p, (const uint8_t *)e.keys.data + off + 4, kn);
        off += 4 + kn;
        if (ht_arena_used(p.a) > (1u << 20))
            ht_arena_reset(p.a);
    }
    ht_buf_free(&e.keys);
    if (!p.err && p.pending_delta)
        p.err = ht_store_counter_add(p.t, "pending", p.pending_delta);
    if (!p.err)
        p.err = ht_store_flush(p.t, &p.st.keys);
    ht_arena_destroy(p.a);
    if (p.err) {
        ht_store_abort(p.t);
        return p.err;
    }
    rc = ht_store_commit(p.t);
    if (rc)
        return rc;
    /* a full slice may have left more behind; a short one reached the
     * first entry that is not expired */
    *more = e.n >= budget;
    out->nodes += p.st.nodes;
    out->invocations += p.st.invocations;
    out->facts += p.st.facts;
    out->keys += p.st.keys;
    out->pending += p.st.pending;
    out->stale += p.st.stale;
    out->slices++;
    return HT_ERR_OK;
}

int ht_prune_slice_h(struct ht_store *s, int64_t cutoff_us, int64_t horizon_us,
                     size_t budget, bool *more, struct ht_prune_stats *st)
{
    int64_t cutoff = cutoff_us;
    int rc = HT_ERR_OK;

    *more = false;
    if (horizon_us > 0)
        cutoff = cutoff_us > INT64_MIN + horizon_us ? cutoff_us - horizon_us
                                                    : INT64_MIN;
    if (!budget)
        budget = DEFAULT_BUDGET;
    if (cutoff == INT64_MIN)
        return HT_ERR_OK; /* nothing ends before that */
    /* deleting copies pages too: a full map is grown and the slice redone */
    for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        rc = slice_once(s, cutoff, budget, more, st);
        if (rc != HT_ERR_MAPFULL)
            return rc;
        rc = ht_store_grow(s);
        if (rc)
            return rc;
    }
    return rc;
}

int ht_prune_slice(struct ht_store *s, int64_t cutoff_us, size_t budget,
                   bool *more, struct ht_prune_stats *st)
{
    return ht_prune_slice_h(s, cutoff_us, HT_PRUNE_HORIZON_US, budget, more,
                            st);
}

static int first_visit(void *ctx, const void *k, size_t kn, const void *v,
                       size_t vn)
{
    (void)v;
    (void)vn;
    if (kn >= 8)
        *(int64_t *)ctx = ht_bytime_time(k);
    return 1;
}

int64_t ht_store_oldest_event(struct ht_txn *t)
{
    int64_t ts = INT64_MIN;

    ht_store_scan(t, HT_DB_BYTIME, NULL, 0, first_visit, &ts);
    return ts;
}
