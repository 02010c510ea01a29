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

#define DEFAULT_BUDGET 8000

/*
 * A slice works in three passes, so that every table's deletes are
 * applied sorted, sharing their leaf pages, instead of one B-tree descent
 * and page copy each: (1) read the expired pieces (nodes by their stored
 * key, named in by_time; invocations and their facts) and note what goes:
 * keys pairs straight into the transaction's deferred deletes (nothing
 * reads keys here), the rest into `dels`, and the hop keys they name into
 * `halves`; (2) read the named hop halves in key order, once each (the
 * pending counter needs their state); (3) queue every noted delete. The
 * store applies each database's deletes in key order at the flush.
 */
struct pr {
    struct ht_txn *t;
    struct ht_arena *a;
    struct ht_prune_stats st;
    int64_t pending_delta;
    int err;
    struct ht_buf dels;   /* u8 db, u16 kn, u16 vn, key, value; nodes:
                             trace (16) + span id (8), start (8) */
    struct ht_buf halves; /* u16 length + hop key */
};

static void chk(struct pr *p, int rc)
{
    if (!p->err && rc)
        p->err = rc;
}

/* Notes a delete for pass 3. */
static void note_del(struct pr *p, int db, const void *k, size_t kn,
                     const void *v, size_t vn)
{
    uint8_t h[5];

    if (p->err || kn > 511 || vn > 0xffff)
        return;
    h[0] = (uint8_t)db;
    h[1] = (uint8_t)(kn >> 8);
    h[2] = (uint8_t)kn;
    h[3] = (uint8_t)(vn >> 8);
    h[4] = (uint8_t)vn;
    ht_buf_add(&p->dels, h, 5);
    ht_buf_add(&p->dels, k, kn);
    ht_buf_add(&p->dels, v, vn);
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

/* A pending hop half named `hk` (either side, any state): read and
 * deleted in pass 2. */
static void del_half(struct pr *p, const char *hk)
{
    size_t kn = strlen(hk);
    uint16_t n = (uint16_t)kn;

    if (p->err || kn > 400)
        return;
    ht_buf_add(&p->halves, &n, 2);
    ht_buf_add(&p->halves, hk, kn);
}

struct marks_ctx {
    struct pr *p;
    char key[520];
};

static int mark_visit(void *ctx, const void *k, size_t kn, const void *v,
                      size_t vn)
{
    struct marks_ctx *c = ctx;

    (void)v;
    (void)vn;
    if (kn < sizeof(c->key)) {
        memcpy(c->key, k, kn);
        c->key[kn] = 0;
        del_half(c->p, c->key);
    }
    return c->p->err != 0;
}

/* Every subscriber's note under an SNS / EventBridge hop key (assembler.c,
 * fanout_consumer), the ones a trace header made (no fact names them) as
 * well: they go with the Publish / PutEvents. */
static void del_fanout_marks(struct pr *p, const char *hk)
{
    struct marks_ctx c = {.p = p};
    int n = snprintf(c.key, sizeof(c.key), "%s#", hk);

    if (n > 0 && (size_t)n < sizeof(c.key) && !p->err)
        ht_store_scan(p->t, HT_DB_PENDING, c.key, (size_t)n, mark_visit, &c);
}

/* Removes node s and its index entries (apply_span). */
static void drop_span(struct pr *p, const struct ht_span *s)
{
    char hk[512];
    uint8_t nd[32];
    const uint8_t *id = s->id.b;

    if (s->kind == HT_SK_LAMBDA)
        del_text(p, HT_K_LAMBDA, s->request_id, HT_TARGET_SPAN, id, 8);
    if (s->kind == HT_SK_APIGW) {
        del_text(p, HT_K_APIGW, s->request_id, HT_TARGET_SPAN, id, 8);
        del_text(p, HT_K_APIGW_EXT, s->ext_request_id, HT_TARGET_SPAN, id, 8);
    }
    del_text(p, HT_K_CORR, s->corr, HT_TARGET_SPAN, id, 8);
    if (s->message_id) {
        int mv = ht_span_msgid_via(s);

        del_text(p, ht_msgid_prefix(mv), s->message_id, HT_TARGET_SPAN, id, 8);
        snprintf(hk, sizeof(hk), "%s:%s", ht_msgid_hop(mv), s->message_id);
        del_half(p, hk);
        if (ht_fanout_hop(hk))
            del_fanout_marks(p, hk);
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
    memcpy(nd, s->trace.b, 16);
    memcpy(nd + 16, id, 8);
    ht_be64_put(nd + 24, (uint64_t)s->start_us);
    note_del(p, HT_DB_NODES, nd, 24, nd + 24, 8);
    p->st.nodes++;
}

/* The note of one consumer of an SNS / EventBridge hop key (assembler.c,
 * fanout_consumer). */
static void del_fanout_mark(struct pr *p, const char *hk, const char *rid)
{
    char mk[600];

    if (rid && ht_fanout_hop(hk) && ht_fanout_mark(mk, sizeof(mk), hk, rid))
        del_half(p, mk);
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
        if (ht_msgid_prefix(f->via)) {
            del_text(p, ht_msgid_prefix(f->via), id, HT_TARGET_INV, prid, prn);
            snprintf(hk, sizeof(hk), "%s:%s", ht_msgid_hop(f->via), id);
            del_half(p, hk);
            del_fanout_mark(p, hk, f->request_id);
            if (f->up_id && ht_msgid_prefix(f->up_via)) {
                del_text(p, ht_msgid_prefix(f->up_via), f->up_id, HT_TARGET_INV,
                         prid, prn);
                snprintf(hk, sizeof(hk), "%s:%s", ht_msgid_hop(f->up_via),
                         f->up_id);
                del_half(p, hk);
                del_fanout_mark(p, hk, f->request_id);
            }
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

struct inv_facts {
    struct pr *p;
    const uint8_t *prid;
    size_t prn;
};

/* One stored fact of an expired invocation: what it indexes, and itself
 * (the value is read here, in the scan: nothing is written before pass
 * 3, so it stays valid). */
static int drop_fact(void *ctx, const void *k, size_t kn, const void *v,
                     size_t vn)
{
    struct inv_facts *c = ctx;
    struct ht_fact f;

    if (ht_fact_unpack(v, vn, c->p->a, &f) == HT_ERR_OK)
        drop_fact_refs(c->p, &f, c->prid, c->prn);
    note_del(c->p, HT_DB_FACTS, k, kn, NULL, 0);
    c->p->st.facts++;
    return c->p->err != 0;
}

/* Removes invocation prid, its facts and everything they index. */
static void drop_inv(struct pr *p, const uint8_t *prid, size_t prn,
                     const struct ht_inv *inv)
{
    struct inv_facts c = {p, prid, prn};
    uint8_t prefix[HT_ID_PACKED_MAX + 1];

    if (inv->flags & HT_INV_HAS_TRACE)
        del_bin(p, HT_K_TRACE, inv->trace.b, 16, HT_TARGET_INV, prid, prn);
    if (inv->flags & HT_INV_HAS_SEGMENT)
        del_bin(p, HT_K_SEGMENT, inv->segment.b, 8, HT_TARGET_INV, prid, prn);
    memcpy(prefix, prid, prn);
    prefix[prn] = 0;
    if (!p->err)
        chk(p,
            ht_store_scan(p->t, HT_DB_FACTS, prefix, prn + 1, drop_fact, &c));
    note_del(p, HT_DB_INV, prid, prn, NULL, 0);
    p->st.invocations++;
}

/* One by_time entry (key k, value v): the piece it names goes if it is
 * still the piece's current entry; a replaced version's entry just goes. */
static void prune_entry(struct pr *p, const uint8_t *k, size_t kn,
                        const uint8_t *bv, size_t bvn)
{
    int64_t ts = ht_bytime_time(k);
    const void *v;
    size_t vn;
    bool stale = true;

    if (kn == 17 && k[8] == HT_BYTIME_SPAN) {
        struct ht_span s;
        uint8_t nk[24];
        int rc;

        if (bvn == 16) {
            /* the node's stored key: trace id (the entry's value) + id */
            memcpy(nk, bv, 16);
            memcpy(nk + 16, k + 9, 8);
            rc = ht_store_get(p->t, HT_DB_NODES, nk, 24, &v, &vn);
        } else {
            rc = ht_store_get(p->t, HT_DB_NODES, k + 9, 8, &v, &vn);
        }
        if (rc == HT_ERR_OK && ht_span_unpack(v, vn, p->a, &s) == HT_ERR_OK &&
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
    note_del(p, HT_DB_BYTIME, k, kn, NULL, 0);
}

struct half_ref {
    const char *k;
    uint16_t n;
};

static int cmp_half(const void *a, const void *b)
{
    const struct half_ref *x = a, *y = b;
    int c = memcmp(x->k, y->k, x->n < y->n ? x->n : y->n);

    return c ? c : (x->n > y->n) - (x->n < y->n);
}

/* Pass 2: the named hop halves, in key order, each once. */
static void drop_halves(struct pr *p)
{
    struct half_ref *r;
    size_t n = 0, cap = 0;

    for (size_t off = 0; off < p->halves.len; cap++) {
        uint16_t kn;

        memcpy(&kn, p->halves.data + off, 2);
        off += 2 + kn;
    }
    if (!cap || p->err)
        return;
    r = malloc(cap * sizeof(*r));
    if (!r) {
        p->err = HT_ERR_NOMEM;
        return;
    }
    for (size_t off = 0; off < p->halves.len; n++) {
        memcpy(&r[n].n, p->halves.data + off, 2);
        r[n].k = p->halves.data + off + 2;
        off += 2 + r[n].n;
    }
    qsort(r, n, sizeof(*r), cmp_half);
    for (size_t i = 0; i < n && !p->err; i++) {
        const void *v;
        size_t vn;

        if (i && cmp_half(&r[i - 1], &r[i]) == 0)
            continue;
        if (ht_store_get(p->t, HT_DB_PENDING, r[i].k, r[i].n, &v, &vn) !=
            HT_ERR_OK)
            continue;
        /* only a waiting producer is counted as a pending hop */
        if (vn >= 1 && ((const uint8_t *)v)[0] == HALF_PRODUCER)
            p->pending_delta--;
        p->st.pending++;
        note_del(p, HT_DB_PENDING, r[i].k, r[i].n, NULL, 0);
    }
    free(r);
}

/* Pass 3: every noted delete, deferred: applied per database in key
 * order when the slice flushes. */
static void queue_dels(struct pr *p)
{
    const uint8_t *q = (const uint8_t *)p->dels.data;
    const uint8_t *end = q ? q + p->dels.len : q;

    while (q && q < end && !p->err) {
        int db = q[0];
        size_t kn = (size_t)q[1] << 8 | q[2], vn = (size_t)q[3] << 8 | q[4];
        const uint8_t *k = q + 5, *v = k + kn;

        if (db == HT_DB_NODES && kn == 24 && vn == 8) {
            struct ht_tid tr;
            struct ht_id8 id;

            memcpy(tr.b, k, 16);
            memcpy(id.b, k + 16, 8);
            chk(p, ht_store_node_del_later(p->t, &tr, &id,
                                           (int64_t)ht_be64_get(v)));
        } else {
            chk(p, ht_store_del_later(p->t, db, k, kn, v, vn));
        }
        q = v + vn;
    }
}

struct expired {
    int64_t cutoff;
    size_t budget;
    struct ht_buf keys; /* u32 key length + key, u32 value length + value */
    size_t n;
};

static int collect_expired(void *ctx, const void *k, size_t kn, const void *v,
                           size_t vn)
{
    struct expired *e = ctx;
    uint32_t n = (uint32_t)kn, m = (uint32_t)(vn <= 64 ? vn : 0);

    if (kn < 9 || ht_bytime_time(k) >= e->cutoff || e->n >= e->budget)
        return 1;
    ht_buf_add(&e->keys, &n, 4);
    ht_buf_add(&e->keys, k, kn);
    ht_buf_add(&e->keys, &m, 4);
    ht_buf_add(&e->keys, v, m);
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
    ht_buf_init(&p.dels);
    ht_buf_init(&p.halves);
    rc = ht_store_scan(p.t, HT_DB_BYTIME, NULL, 0, collect_expired, &e);
    if (rc)
        p.err = rc;
    /* pass 1: read what expired, note what goes */
    for (size_t off = 0; !p.err && off < e.keys.len;) {
        uint32_t kn, vn;
        const uint8_t *k, *v;

        memcpy(&kn, e.keys.data + off, 4);
        k = (const uint8_t *)e.keys.data + off + 4;
        memcpy(&vn, k + kn, 4);
        v = k + kn + 4;
        prune_entry(&p, k, kn, v, vn);
        off += 8 + kn + vn;
        if (ht_arena_used(p.a) > (1u << 20))
            ht_arena_reset(p.a);
    }
    ht_buf_free(&e.keys);
    drop_halves(&p); /* pass 2 */
    queue_dels(&p);  /* pass 3 */
    ht_buf_free(&p.dels);
    ht_buf_free(&p.halves);
    if (!p.err && p.pending_delta)
        p.err = ht_store_counter_add(p.t, "pending", p.pending_delta);
    if (!p.err)
        p.err = ht_store_flush(p.t, NULL);
    p.st.keys = ht_store_deleted(p.t, HT_DB_KEYS);
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

struct slice_args {
    int64_t cutoff;
    size_t budget;
    bool *more;
    struct ht_prune_stats *st;
};

static int slice_run(struct ht_store *s, void *ctx)
{
    struct slice_args *a = ctx;

    return slice_once(s, a->cutoff, a->budget, a->more, a->st);
}

int ht_prune_slice_h(struct ht_store *s, int64_t cutoff_us, int64_t horizon_us,
                     size_t budget, bool *more, struct ht_prune_stats *st)
{
    int64_t cutoff = cutoff_us;

    *more = false;
    if (horizon_us > 0)
        cutoff = cutoff_us > INT64_MIN + horizon_us ? cutoff_us - horizon_us
                                                    : INT64_MIN;
    if (!budget)
        budget = DEFAULT_BUDGET;
    if (cutoff == INT64_MIN)
        return HT_ERR_OK; /* nothing ends before that */
    /* deleting copies pages too: a full map is grown and the slice redone */
    struct slice_args a = {cutoff, budget, more, st};

    return ht_store_write_growing(s, slice_run, &a);
}

int ht_prune_slice(struct ht_store *s, int64_t cutoff_us, size_t budget,
                   bool *more, struct ht_prune_stats *st)
{
    return ht_prune_slice_h(s, cutoff_us, HT_PRUNE_HORIZON_US, budget, more,
                            st);
}

/* ---- whole epochs -------------------------------------------------------- */

struct drop_ctx {
    struct ht_txn *t;
    unsigned ep;
    int64_t delta;
    struct ht_prune_stats st;
    ht_store_drop_fn also;
    void *also_ctx;
};

/* A producer waiting in a dropped epoch no longer waits (unless a newer
 * epoch holds its hop half). */
static int drop_half(void *ctx, const void *k, size_t kn, const void *v,
                     size_t vn)
{
    struct drop_ctx *c = ctx;

    c->st.pending++;
    if (vn >= 1 && ((const uint8_t *)v)[0] == HALF_PRODUCER &&
        !ht_store_in_newer(c->t, HT_DB_PENDING, c->ep, k, kn))
        c->delta--;
    return 0;
}

static int drop_pre(void *ctx, struct ht_txn *t, unsigned ep, bool first)
{
    struct drop_ctx *c = ctx;
    uint64_t n;
    int rc;

    if (first) /* a transaction redone counts again from nothing */
        memset(&c->st, 0, sizeof(c->st));
    c->t = t;
    c->ep = ep;
    c->delta = 0;
    rc = ht_store_scan_epoch(t, HT_DB_PENDING, ep, NULL, 0, drop_half, c);
    if (!rc && c->delta)
        rc = ht_store_counter_add(t, "pending", c->delta);
    if (!rc && !(rc = ht_store_count_epoch(t, HT_DB_NODES, ep, NULL, 0, &n)))
        c->st.nodes += n;
    if (!rc && !(rc = ht_store_count_epoch(t, HT_DB_INV, ep, NULL, 0, &n)))
        c->st.invocations += n;
    if (!rc && !(rc = ht_store_count_epoch(t, HT_DB_FACTS, ep, NULL, 0, &n)))
        c->st.facts += n;
    if (!rc && !(rc = ht_store_count_epoch(t, HT_DB_KEYS, ep, NULL, 0, &n)))
        c->st.keys += n;
    if (!rc && c->also)
        rc = c->also(c->also_ctx, t, ep, first);
    return rc;
}

int ht_prune_epochs(struct ht_store *s, int64_t before_us,
                    ht_store_drop_fn also, void *also_ctx,
                    struct ht_prune_stats *st)
{
    struct drop_ctx c;
    unsigned dropped = 0;
    int rc;

    memset(&c, 0, sizeof(c));
    c.also = also;
    c.also_ctx = also_ctx;
    rc = ht_store_drop_epochs(s, before_us, drop_pre, &c, &dropped);
    if (!rc && dropped) {
        st->nodes += c.st.nodes;
        st->invocations += c.st.invocations;
        st->facts += c.st.facts;
        st->keys += c.st.keys;
        st->pending += c.st.pending;
        st->epochs += dropped;
        st->slices++;
    }
    return rc;
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
