/*
 * stages.c - the stall-detection state of every pipeline stage, folded in
 * at ingest time (layout in stages.h). Counters and histograms are
 * aggregated in memory for the batch and written once per record per
 * batch; pending producer halves are one entry each, so `stalls` can list
 * the stuck requests without scanning the graph.
 *
 * Owned by assembler/. Called only for the first sighting of a hop half
 * (assembler.c's half()), which is what keeps it idempotent. It must not
 * decide stage status: that is query/stalls.c's, as of an evaluation time.
 */
#define _GNU_SOURCE
#include "stages.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAG "assembler:stages"
#define MAXNAME 120   /* resource and service names kept in keys */
#define MAXHOPKEY 200 /* so every key stays under LMDB's 511 bytes */
#define MAXWALK 16    /* parent links followed to find a span's service */

enum { T_E = 'E', T_S = 'S', T_H = 'H', T_R = 'R', T_A = 'A', T_F = 'F' };
enum { OP_ADD, OP_MAX };

/* One aggregated record of the batch. */
struct agg {
    uint64_t h;
    uint8_t *key;
    size_t kn;
    int64_t v[8];
    int64_t *hist; /* T_H only: HT__STG_NHIST counts */
    bool used;
};

/* The producer half's record ('p'): what is needed to take it back out of
 * its stage when it is matched, or to move it once its service is known. */
struct prec {
    uint8_t via;
    uint8_t matched;
    int64_t ts, cons_ts;
    uint8_t trace[16];
    uint8_t span[8];
    const char *res, *prod, *cons, *corr;
};

struct ht__stg {
    struct ht_txn *t;
    const struct ht_batch *b;
    struct ht_arena *a;
    int err;
    struct agg *e;
    size_t cap, n;
    /* span id -> index in b->spans, built on first need */
    int32_t *ids;
    size_t idcap;
    int64_t unresolved, unresolved0;
    /* retention's watermark ('N' "pruned"): an item older than this has
     * had, or would at once have, its state removed, so it is not
     * counted (again) */
    int64_t pruned;
    struct ht_buf buf;
};

/* Whether an item at `ts` is older than what retention has removed. */
static bool before_pruned(const struct ht__stg *g, int64_t ts)
{
    return ts < g->pruned;
}

static const int nvals[256] = {
    [T_E] = 2, [T_S] = 4, [T_R] = 2, [T_A] = 1, [T_F] = 8};
static const uint8_t ops_s[4] = {OP_ADD, OP_MAX, OP_ADD, OP_MAX};
static const uint8_t ops_e[2] = {OP_ADD, OP_MAX};
static const uint8_t ops_f[8] = {OP_ADD, OP_ADD, OP_MAX, OP_MAX,
                                 OP_ADD, OP_ADD, OP_ADD, OP_ADD};

static int op_of(int type, int i)
{
    switch (type) {
    case T_S:
        return i >= 0 && i < 4 ? ops_s[i] : OP_ADD;
    case T_E:
    case T_R:
        return i >= 0 && i < 2 ? ops_e[i] : OP_ADD;
    case T_F:
        return i >= 0 && i < 8 ? ops_f[i] : OP_ADD;
    default:
        return OP_ADD;
    }
}

int ht__stg_hist_index(int64_t us)
{
    int e;

    if (us < 16)
        return us < 0 ? 0 : (int)us;
    e = 63 - __builtin_clzll((unsigned long long)us);
    if (e > 42)
        return HT__STG_NHIST - 1;
    return (e - 3) * 16 + (int)((us >> (e - 4)) & 15);
}

/* ---- the batch's aggregate table ------------------------------------- */

static struct agg *agg_get(struct ht__stg *g, const uint8_t *k, size_t kn)
{
    uint64_t h = ht_hash_mem(k, kn);
    size_t i;

    if ((g->n + 1) * 2 > g->cap) {
        size_t ncap = g->cap ? g->cap * 2 : 64;
        struct agg *ne = ht_table_alloc(ncap, sizeof(*ne));

        if (!ne) {
            g->err = HT_ERR_NOMEM;
            return NULL;
        }
        for (i = 0; i < g->cap; i++) {
            size_t j;

            if (!g->e[i].used)
                continue;
            for (j = g->e[i].h & (ncap - 1); ne[j].used;
                 j = (j + 1) & (ncap - 1))
                ;
            ne[j] = g->e[i];
        }
        free(g->e);
        g->e = ne;
        g->cap = ncap;
    }
    for (i = h & (g->cap - 1); g->e[i].used; i = (i + 1) & (g->cap - 1))
        if (g->e[i].h == h && g->e[i].kn == kn &&
            memcmp(g->e[i].key, k, kn) == 0)
            return &g->e[i];
    g->e[i].used = true;
    g->e[i].h = h;
    g->e[i].kn = kn;
    g->e[i].key = ht_arena_alloc(g->a, kn);
    memcpy(g->e[i].key, k, kn);
    if (k[0] == T_H) {
        g->e[i].hist = ht_arena_alloc(g->a, HT__STG_NHIST * sizeof(int64_t));
        memset(g->e[i].hist, 0, HT__STG_NHIST * sizeof(int64_t));
    }
    g->n++;
    return &g->e[i];
}

/* Key builder: type, via, then NUL-terminated strings. */
static size_t mk(uint8_t *out, int type, int via, const char *s1,
                 const char *s2, const char *s3)
{
    size_t n = 0;
    const char *ss[3] = {s1, s2, s3};

    out[n++] = (uint8_t)type;
    if (via >= 0)
        out[n++] = (uint8_t)via;
    for (int i = 0; i < 3 && ss[i]; i++) {
        size_t l = strnlen(ss[i], MAXNAME);

        memcpy(out + n, ss[i], l);
        n += l;
        out[n++] = 0;
    }
    return n;
}

static void bump(struct ht__stg *g, const uint8_t *k, size_t kn, int i,
                 int64_t v)
{
    struct agg *e = agg_get(g, k, kn);

    if (!e)
        return;
    if (op_of(k[0], i) == OP_MAX) {
        if (v > e->v[i])
            e->v[i] = v;
    } else {
        e->v[i] += v;
    }
}

static void put(struct ht__stg *g, const void *k, size_t kn, const void *v,
                size_t vn)
{
    if (!g->err)
        g->err =
            ht_store_put(g->t, ht__stg_db(*(const uint8_t *)k), k, kn, v, vn);
}

static void del(struct ht__stg *g, const void *k, size_t kn)
{
    int rc;

    if (g->err)
        return;
    rc = ht_store_del(g->t, ht__stg_db(*(const uint8_t *)k), k, kn);
    if (rc != HT_ERR_OK && rc != HT_ERR_NOTFOUND)
        g->err = rc;
}

/* ---- the time index ('T', stages.h) ---------------------------------- */

size_t ht__stg_tkey(uint8_t *k, int64_t ts, int kind, const void *name,
                    size_t nn)
{
    if (nn + 10 > HT__STG_MAXKEY)
        return 0;
    k[0] = 'T';
    ht_be64_put(k + 1, (uint64_t)ts ^ HT_BYTIME_SIGN);
    k[9] = (uint8_t)kind;
    memcpy(k + 10, name, nn);
    return nn + 10;
}

/* An 'N' record's number (i64 big endian), dflt when it has none. */
static int64_t n_record(struct ht_txn *t, const char *key, int64_t dflt)
{
    const void *v;
    size_t vn;

    if (ht_store_get(t, HT_DB_STAGES, key, strlen(key), &v, &vn) != HT_ERR_OK ||
        vn != 8)
        return dflt;
    return (int64_t)ht_be64_get(v);
}

int64_t ht__stg_watermark(struct ht_txn *t)
{
    return n_record(t, HT__STG_WATERMARK, INT64_MIN);
}

int64_t ht__stg_unresolved(struct ht_txn *t)
{
    return n_record(t, HT__STG_UNRESOLVED, 0);
}

int ht__stg_unresolved_add(struct ht_txn *t, int64_t delta)
{
    int64_t n = ht__stg_unresolved(t) + delta;
    uint8_t b[8];
    int rc;

    if (!delta)
        return HT_ERR_OK;
    if (n > 0) {
        ht_be64_put(b, (uint64_t)n);
        return ht_store_put(t, HT_DB_STAGES, HT__STG_UNRESOLVED,
                            sizeof(HT__STG_UNRESOLVED) - 1, b, 8);
    }
    rc = ht_store_del(t, HT_DB_STAGES, HT__STG_UNRESOLVED,
                      sizeof(HT__STG_UNRESOLVED) - 1);
    return rc == HT_ERR_NOTFOUND ? HT_ERR_OK : rc;
}

/* Indexes `name` of `kind` at ts (on = true) or takes that entry out. */
static void tindex(struct ht__stg *g, int64_t ts, int kind, const void *name,
                   size_t nn, bool on)
{
    uint8_t k[HT__STG_MAXKEY];
    size_t kn = ht__stg_tkey(k, ts, kind, name, nn);

    if (!kn)
        return;
    if (on)
        put(g, k, kn, "", 0);
    else
        del(g, k, kn);
}

/* ---- producer records ------------------------------------------------- */

static const char *cut(const char *s)
{
    return s ? s : "";
}

static void prec_pack(struct ht__stg *g, const struct prec *p)
{
    uint8_t n[8];

    ht_buf_reset(&g->buf);
    ht_buf_addc(&g->buf, (char)p->via);
    ht_buf_addc(&g->buf, (char)p->matched);
    ht_be64_put(n, (uint64_t)p->ts);
    ht_buf_add(&g->buf, n, 8);
    ht_be64_put(n, (uint64_t)p->cons_ts);
    ht_buf_add(&g->buf, n, 8);
    ht_buf_add(&g->buf, p->trace, 16);
    ht_buf_add(&g->buf, p->span, 8);
    ht_buf_add(&g->buf, cut(p->res), strlen(cut(p->res)) + 1);
    ht_buf_add(&g->buf, cut(p->prod), strlen(cut(p->prod)) + 1);
    ht_buf_add(&g->buf, cut(p->cons), strlen(cut(p->cons)) + 1);
    ht_buf_add(&g->buf, cut(p->corr), strlen(cut(p->corr)) + 1);
}

/* Unpacks into g's arena; false on a malformed value. */
static bool prec_unpack(struct ht__stg *g, const uint8_t *v, size_t vn,
                        struct prec *p)
{
    const char *s[4];
    size_t off = 42;

    if (vn < off)
        return false;
    p->via = v[0];
    p->matched = v[1];
    p->ts = (int64_t)ht_be64_get(v + 2);
    p->cons_ts = (int64_t)ht_be64_get(v + 10);
    memcpy(p->trace, v + 18, 16);
    memcpy(p->span, v + 34, 8);
    for (int i = 0; i < 4; i++) {
        const uint8_t *z = memchr(v + off, 0, vn - off);

        if (!z)
            return false;
        s[i] = ht_arena_strndup(g->a, (const char *)v + off,
                                (size_t)(z - (v + off)));
        off = (size_t)(z - v) + 1;
        if (i < 3 && off >= vn)
            return false;
    }
    p->res = s[0];
    p->prod = s[1];
    p->cons = s[2];
    p->corr = s[3];
    return true;
}

static bool prec_get(struct ht__stg *g, const char *hk, struct prec *p)
{
    uint8_t k[512];
    size_t kn = strlen(hk);
    const void *v;
    size_t vn;

    k[0] = 'p';
    memcpy(k + 1, hk, kn);
    if (ht_store_get(g->t, HT_DB_HOPS, k, kn + 1, &v, &vn) != HT_ERR_OK)
        return false;
    return prec_unpack(g, v, vn, p);
}

static void prec_put(struct ht__stg *g, const char *hk, const struct prec *p)
{
    uint8_t k[512];
    size_t kn = strlen(hk);

    k[0] = 'p';
    memcpy(k + 1, hk, kn);
    prec_pack(g, p);
    put(g, k, kn + 1, g->buf.data, g->buf.len);
}

/* The pending entry of a producer half ('P'). */
static size_t pkey(uint8_t *k, const struct prec *p, const char *hk)
{
    size_t n = mk(k, 'P', p->via, p->res, p->prod, NULL);
    size_t hn = strlen(hk);

    ht_be64_put(k + n, (uint64_t)p->ts);
    n += 8;
    memcpy(k + n, hk, hn);
    return n + hn;
}

static void pending_put(struct ht__stg *g, const struct prec *p, const char *hk)
{
    uint8_t k[1024];
    size_t kn = pkey(k, p, hk);

    ht_buf_reset(&g->buf);
    ht_buf_add(&g->buf, p->trace, 16);
    ht_buf_add(&g->buf, p->span, 8);
    ht_buf_adds(&g->buf, cut(p->corr));
    put(g, k, kn, g->buf.data, g->buf.len);
}

static void pending_del(struct ht__stg *g, const struct prec *p, const char *hk)
{
    uint8_t k[1024];

    del(g, k, pkey(k, p, hk));
}

/* ---- the stage counters ------------------------------------------------ */

/* `sign` is +1 to add an item, -1 to take it back (a producer whose
 * service became known moves out of the unknown producer's stage). */
static void count_entered(struct ht__stg *g, const struct prec *p, int sign)
{
    uint8_t k[1024];
    size_t kn = mk(k, T_E, p->via, p->res, p->prod, NULL);

    bump(g, k, kn, 0, sign);
    /* an unknown producer keeps no times: what it holds depends on batch
     * boundaries, and the store must not */
    if (*p->prod)
        bump(g, k, kn, 1, p->ts);
}

static void count_consumed(struct ht__stg *g, const struct prec *p, int sign)
{
    uint8_t k[1024];
    size_t kn = mk(k, T_S, p->via, p->res, p->prod, p->cons);
    int64_t d = p->cons_ts - p->ts;
    struct agg *h;

    if (d < 0)
        d = 0; /* clocks that disagree: never a negative delay */
    bump(g, k, kn, 0, sign);
    bump(g, k, kn, 2, sign * d);
    if (*p->prod) {
        bump(g, k, kn, 1, p->cons_ts);
        bump(g, k, kn, 3, d);
    }
    {
        int64_t bk = p->cons_ts -
                     (((p->cons_ts % HT__STG_HBUCKET_US) + HT__STG_HBUCKET_US) %
                      HT__STG_HBUCKET_US);

        ht_be64_put(k + kn, (uint64_t)bk);
        k[0] = T_H;
        h = agg_get(g, k, kn + 8);
        if (h)
            h->hist[ht__stg_hist_index(d)] += sign;
    }
}

/* The latest receipt of a consumed record in the stage's maxima (last
 * consumption, largest delay); nothing is counted. */
static void bump_latest(struct ht__stg *g, const struct prec *p, int64_t last)
{
    uint8_t k[1024];
    size_t kn;
    int64_t d = last - p->ts;

    if (!*p->prod || last <= p->cons_ts)
        return;
    kn = mk(k, T_S, p->via, p->res, p->prod, p->cons);
    bump(g, k, kn, 0, 0);
    bump(g, k, kn, 1, last);
    bump(g, k, kn, 3, d < 0 ? 0 : d);
}

/* ---- a producer's service -------------------------------------------- */

static int32_t *id_slot(struct ht__stg *g, const uint8_t *id)
{
    uint64_t h;
    size_t i;

    memcpy(&h, id, 8);
    h *= 0x9e3779b97f4a7c15ull;
    for (i = (h >> 20) & (g->idcap - 1); g->ids[i] >= 0;
         i = (i + 1) & (g->idcap - 1))
        if (memcmp(g->b->spans[g->ids[i]].id.b, id, 8) == 0)
            break;
    return &g->ids[i];
}

static const struct ht_span *batch_span(struct ht__stg *g, const uint8_t *id)
{
    int32_t *slot;

    if (!g->ids) {
        size_t cap = 16;

        while (cap < g->b->nspans * 2)
            cap *= 2;
        g->ids = malloc(cap * sizeof(*g->ids));
        if (!g->ids) {
            g->err = HT_ERR_NOMEM;
            return NULL;
        }
        memset(g->ids, 0xff, cap * sizeof(*g->ids));
        g->idcap = cap;
        for (size_t i = 0; i < g->b->nspans && i < INT32_MAX; i++) {
            slot = id_slot(g, g->b->spans[i].id.b);
            if (*slot < 0)
                *slot = (int32_t)i;
        }
    }
    slot = id_slot(g, id);
    return *slot >= 0 ? &g->b->spans[*slot] : NULL;
}

/* The service a span belongs to: the name of the segment above it. NULL
 * when an ancestor is not known yet; *missing is then its id. */
static const char *service_of(struct ht__stg *g, const struct ht_span *s,
                              struct ht_id8 *missing)
{
    struct ht_span tmp;

    for (int i = 0; i < MAXWALK && s; i++) {
        const void *v;
        size_t vn;
        struct ht_id8 pid;
        const struct ht_span *next;

        if (!(s->flags & HT_SPAN_SUBSEGMENT) ||
            !(s->flags & HT_SPAN_HAS_PARENT))
            return s->name;
        pid = s->parent;
        next = batch_span(g, pid.b);
        if (!next &&
            ht_store_get(g->t, HT_DB_NODES, pid.b, 8, &v, &vn) == HT_ERR_OK &&
            ht_span_unpack(v, vn, g->a, &tmp) == HT_ERR_OK)
            next = &tmp;
        if (!next) {
            *missing = pid;
            return NULL;
        }
        s = next;
    }
    /* a parent chain this deep is not X-Ray's: the span names itself */
    return s ? s->name : NULL;
}

static void wait_for(struct ht__stg *g, const struct ht_id8 *id, const char *hk,
                     int64_t ts)
{
    uint8_t k[512];
    size_t hn = strlen(hk);

    k[0] = 'u';
    memcpy(k + 1, id->b, 8);
    memcpy(k + 9, hk, hn);
    put(g, k, hn + 9, "", 0);
    tindex(g, ts, 'u', k + 1, hn + 8, true);
}

/* 'l' span id -> hop key: a waiting SQS producer, for consumers known by
 * their X-Ray link only; 'k' hop key: consumed through such a link. */
static void link_key(uint8_t *k, size_t *kn, int type, const uint8_t *id,
                     const char *hk)
{
    k[0] = (uint8_t)type;
    if (id) {
        memcpy(k + 1, id, 8);
        *kn = 9;
    } else {
        size_t hn = strlen(hk);

        memcpy(k + 1, hk, hn);
        *kn = hn + 1;
    }
}

/* ---- entry points ------------------------------------------------------ */

static bool usable(const char *hk, const char *res)
{
    return strlen(hk) < MAXHOPKEY && res && *res && strlen(res) < MAXNAME;
}

/* ---- the earliest receipt of a record ----------------------------------- */

/*
 * A record can be received more than once: a message delivered again after
 * its visibility timeout, a stream batch retried after a failed
 * invocation. Its consumption counts at the earliest logged receipt, and
 * the stage's maxima (last consumption, largest delay) take the latest
 * receipt too, whichever attempt arrived first, so no figure depends on
 * arrival order. 'e' hop key -> earliest ts(8), latest ts(8), the earliest
 * receipt's consumer. The producer's record ('p') is kept once matched, so
 * a receipt that arrives later but is earlier moves the consumption.
 */
struct receipts {
    int64_t first, last;
    const char *cons;
};

static size_t receipts_key(uint8_t *k, const char *hk)
{
    size_t hn = strlen(hk);

    k[0] = 'e';
    memcpy(k + 1, hk, hn);
    return hn + 1;
}

static bool receipts_get(struct ht__stg *g, const char *hk, struct receipts *r)
{
    uint8_t k[MAXHOPKEY + 2];
    const void *v;
    size_t vn;

    if (strlen(hk) >= MAXHOPKEY ||
        ht_store_get(g->t, HT_DB_HOPS, k, receipts_key(k, hk), &v, &vn) !=
            HT_ERR_OK ||
        vn < 16)
        return false;
    r->first = (int64_t)ht_be64_get(v);
    r->last = (int64_t)ht_be64_get((const uint8_t *)v + 8);
    r->cons = ht_arena_strndup(g->a, (const char *)v + 16, vn - 16);
    return true;
}

static void receipts_put(struct ht__stg *g, const char *hk,
                         const struct receipts *r)
{
    uint8_t k[MAXHOPKEY + 2], n8[8];
    size_t kn = receipts_key(k, hk);

    ht_buf_reset(&g->buf);
    ht_be64_put(n8, (uint64_t)r->first);
    ht_buf_add(&g->buf, n8, 8);
    ht_be64_put(n8, (uint64_t)r->last);
    ht_buf_add(&g->buf, n8, 8);
    ht_buf_add(&g->buf, r->cons, strlen(r->cons));
    put(g, k, kn, g->buf.data, g->buf.len);
}

/* The hop keys a record fact names (assembler.c's): the `n`th, false when
 * there is none. */
static bool record_hop_key(const struct ht_fact *f, int n, char *hk, size_t cap)
{
    if (f->kind != HT_FACT_RECORD || !f->resource || !f->record_id)
        return false;
    if (n == 0 && ht_msgid_hop(f->via))
        snprintf(hk, cap, "%s:%s", ht_msgid_hop(f->via), f->record_id);
    else if (n == 0 && f->via == HT_VIA_KINESIS)
        snprintf(hk, cap, "kin:%s", f->record_id);
    else if (n == 1 && f->via == HT_VIA_KINESIS && f->corr)
        snprintf(hk, cap, "kinesis:%s/%s", f->resource, f->corr);
    else if (n == 0 && f->via == HT_VIA_DYNAMODB && f->corr)
        snprintf(hk, cap, "dynamodb:%s/%s", f->resource, f->corr);
    else
        return false;
    return true;
}

static void count_consumed(struct ht__stg *g, const struct prec *p, int sign);
static void bump_latest(struct ht__stg *g, const struct prec *p, int64_t last);

/* The matched producer half p of hop hk is consumed: at its earliest
 * receipt when one is known (else at p->cons_ts, by p->cons), with the
 * latest receipt in the maxima. */
static void consumed(struct ht__stg *g, struct prec *p, const char *hk)
{
    struct receipts r;
    bool have = receipts_get(g, hk, &r); /* counting leaves it as it is */

    if (have) {
        p->cons_ts = r.first;
        p->cons = r.cons;
    }
    count_consumed(g, p, 1);
    if (have)
        bump_latest(g, p, r.last);
}

/* Every receipt of the batch, before anything of it is applied. */
static void earliest_receipt(struct ht__stg *g, const struct ht_fact *f,
                             const char *cons, const char *hk)
{
    struct receipts r;
    bool have, earlier, later;
    struct prec p;

    /* every receipt's time, so the index does not depend on their order */
    tindex(g, f->ts_us, 'h', hk, strlen(hk), true);
    have = receipts_get(g, hk, &r);
    earlier = !have || f->ts_us < r.first ||
              (f->ts_us == r.first && strcmp(cons, r.cons) < 0);
    later = !have || f->ts_us > r.last;
    if (!earlier && !later)
        return;
    if (earlier) {
        r.first = f->ts_us;
        r.cons = cons;
    }
    if (later)
        r.last = f->ts_us;
    receipts_put(g, hk, &r);
    if (!prec_get(g, hk, &p) || !p.matched)
        return;
    if (earlier) {
        count_consumed(g, &p, -1);
        p.cons_ts = r.first;
        p.cons = ht_arena_strdup(g->a, r.cons);
        count_consumed(g, &p, 1);
        prec_put(g, hk, &p);
    }
    bump_latest(g, &p, r.last);
}

/* The delivery an SQS record names before its own (assembler.c,
 * consume_up): the record as a receipt of that via and resource. */
static bool up_record(const struct ht_fact *f, struct ht_fact *out)
{
    if (f->kind != HT_FACT_RECORD || !f->up_id || !ht_msgid_hop(f->up_via))
        return false;
    *out = *f;
    out->via = f->up_via;
    out->record_id = f->up_id;
    out->resource = f->up_resource;
    out->up_via = 0;
    out->up_id = out->up_resource = NULL;
    return true;
}

/* One receipt of the batch (earliest_receipts). */
static void batch_receipt(struct ht__stg *g, const struct ht_fact *f)
{
    const char *cons =
        f->function && strlen(f->function) < MAXNAME ? f->function : "";
    char hk[512];

    if (before_pruned(g, f->ts_us) || !record_hop_key(f, 0, hk, sizeof(hk)) ||
        !usable(hk, f->resource))
        return;
    {
        /* every receipt is the consumer's activity: its last one */
        uint8_t k[1024];
        size_t kn = mk(k, T_R, f->via, f->resource, cons, NULL);

        bump(g, k, kn, 0, 0);
        bump(g, k, kn, 1, f->ts_us);
    }
    for (int n = 0; n < 2 && !g->err; n++)
        if (record_hop_key(f, n, hk, sizeof(hk)) && usable(hk, f->resource))
            earliest_receipt(g, f, cons, hk);
}

/* Every receipt of the batch, before anything of it is applied: each
 * record as itself, and as the delivery before it when it names one. */
static void earliest_receipts(struct ht__stg *g)
{
    for (size_t i = 0; i < g->b->nfacts && !g->err; i++) {
        struct ht_fact upf;

        batch_receipt(g, &g->b->facts[i]);
        if (!g->err && up_record(&g->b->facts[i], &upf))
            batch_receipt(g, &upf);
    }
}

struct ht__stg *ht__stg_begin(struct ht_txn *t, const struct ht_batch *b)
{
    struct ht__stg *g = calloc(1, sizeof(*g));

    if (!g)
        return NULL;
    g->t = t;
    g->b = b;
    g->a = ht_arena_create();
    if (!g->a) {
        free(g);
        return NULL;
    }
    ht_buf_init(&g->buf);
    g->unresolved = g->unresolved0 = ht__stg_unresolved(t);
    g->pruned = ht__stg_watermark(t);
    earliest_receipts(g);
    return g;
}

static void take_links(struct ht__stg *g, const struct ht_span *s);

struct holders {
    struct ht__stg *g;
    struct ht_span best;
    bool found;
};

static int holder_visit(void *ctx, const void *k, size_t kn, const void *v,
                        size_t vn)
{
    struct holders *h = ctx;
    const uint8_t *t = v;
    const void *nv;
    size_t nn;
    struct ht_span sp;

    (void)k;
    (void)kn;
    if (vn != 9 || t[0] != HT_TARGET_SPAN ||
        ht_store_get(h->g->t, HT_DB_NODES, t + 1, 8, &nv, &nn) != HT_ERR_OK ||
        ht_span_unpack(nv, nn, h->g->a, &sp) != HT_ERR_OK)
        return 0;
    if (sp.kind != HT_SK_LAMBDA && sp.kind != HT_SK_FUNCTION)
        return 0;
    if (!h->found || sp.start_us < h->best.start_us ||
        (sp.start_us == h->best.start_us &&
         memcmp(sp.id.b, h->best.id.b, 8) < 0)) {
        h->best = sp;
        h->found = true;
    }
    return 0;
}

/* An SQS consumer known by its X-Ray link whose segment came before the
 * producer: it takes the producer now, as it would have had it come after
 * (the earliest invocation linking to it, when several do). */
static void linked_before(struct ht__stg *g, const struct ht_span *s)
{
    uint8_t key[64];
    size_t kn = ht_key_make(key, HT_K_LINK, s->id.b, 8);
    struct holders h = {.g = g};

    if (g->err ||
        ht_store_dups(g->t, HT_DB_KEYS, key, kn, holder_visit, &h) !=
            HT_ERR_OK ||
        !h.found)
        return;
    take_links(g, &h.best);
}

void ht__stg_producer(struct ht__stg *g, const struct ht_span *s,
                      const char *hk, bool matched, int64_t cons_ts)
{
    struct prec p;
    struct ht_id8 missing = {{0}};
    const char *svc;

    if (!g || g->err || !usable(hk, s->resource) || before_pruned(g, s->end_us))
        return;
    memset(&p, 0, sizeof(p));
    p.via = s->via;
    p.ts = s->end_us;
    p.res = s->resource;
    memcpy(p.trace, s->trace.b, 16);
    memcpy(p.span, s->id.b, 8);
    p.corr = s->corr;
    svc = service_of(g, s, &missing);
    p.prod = svc && strlen(svc) < MAXNAME ? svc : "";
    count_entered(g, &p, 1);
    if (matched) {
        uint8_t k[512];
        const void *v;
        size_t vn, hn = strlen(hk);

        k[0] = 'c';
        memcpy(k + 1, hk, hn);
        p.cons = "";
        if (ht_store_get(g->t, HT_DB_HOPS, k, hn + 1, &v, &vn) == HT_ERR_OK)
            p.cons = ht_arena_strndup(g->a, v, strnlen(v, vn));
        del(g, k, hn + 1);
        p.matched = 1;
        p.cons_ts = cons_ts;
        consumed(g, &p, hk);
    } else {
        pending_put(g, &p, hk);
        if (p.via == HT_VIA_SQS) {
            uint8_t k[16];
            size_t kn;

            link_key(k, &kn, 'l', p.span, NULL);
            put(g, k, kn, hk, strlen(hk));
        }
    }
    prec_put(g, hk, &p); /* kept once matched too: see earliest_receipts */
    tindex(g, p.ts, 'h', hk, strlen(hk), true);
    if (!svc) {
        wait_for(g, &missing, hk, p.ts);
        g->unresolved++;
    }
    if (!matched && p.via == HT_VIA_SQS)
        linked_before(g, s);
}

/* A record received by consumer `cons` of (via, res) at ts: the
 * consumer's activity, per minute too. */
static void count_received_n(struct ht__stg *g, int via, const char *res,
                             const char *cons, int64_t ts, int sign)
{
    uint8_t k[1024];
    size_t kn = mk(k, T_R, via, res, cons, NULL);
    int64_t bk = ts - (((ts % HT__STG_ABUCKET_US) + HT__STG_ABUCKET_US) %
                       HT__STG_ABUCKET_US);

    bump(g, k, kn, 0, sign);
    if (sign > 0)
        bump(g, k, kn, 1, ts);
    k[0] = T_A;
    ht_be64_put(k + kn, (uint64_t)bk);
    bump(g, k, kn + 8, 0, sign);
}

static void count_received(struct ht__stg *g, int via, const char *res,
                           const char *cons, int64_t ts)
{
    count_received_n(g, via, res, cons, ts, 1);
}

/* The waiting producer half p is consumed by cons at ts. */
static void take(struct ht__stg *g, struct prec *p, const char *hk,
                 const char *cons, int64_t ts)
{
    pending_del(g, p, hk);
    if (p->via == HT_VIA_SQS) {
        uint8_t k[16];
        size_t kn;

        link_key(k, &kn, 'l', p->span, NULL);
        del(g, k, kn);
    }
    p->matched = 1;
    p->cons = cons;
    p->cons_ts = ts;
    /* a logged receipt of the record wins over an X-Ray link, and the
     * earliest receipt over later ones */
    consumed(g, p, hk);
    /* kept: moved when its service is known, when the logged record comes
     * after the link, or when an earlier receipt comes */
    prec_put(g, hk, p);
}

void ht__stg_consumer(struct ht__stg *g, const struct ht_fact *f,
                      const char *hk, bool matched, bool new_record)
{
    const char *cons =
        f->function && strlen(f->function) < MAXNAME ? f->function : "";
    uint8_t k[1024];
    size_t kn;

    if (!g || g->err || !usable(hk, f->resource) || before_pruned(g, f->ts_us))
        return;
    tindex(g, f->ts_us, 'h', hk, strlen(hk), true);
    if (matched) {
        struct prec p;
        bool have = prec_get(g, hk, &p);

        if (!have || p.matched) {
            const void *v;
            size_t vn;

            /* already taken through an X-Ray link: counted then, at the
             * consumer segment's start; the logged record's own time
             * replaces it, so the figures are those of the record whether
             * it came before the link or after */
            link_key(k, &kn, 'k', NULL, hk);
            if (ht_store_get(g->t, HT_DB_HOPS, k, kn, &v, &vn) == HT_ERR_OK) {
                if (have && p.matched && vn >= 8) {
                    /* the record received, not the link */
                    const char *lcons =
                        ht_arena_strndup(g->a, (const char *)v + 8, vn - 8);

                    count_received_n(g, p.via, p.res, lcons,
                                     (int64_t)ht_be64_get(v), -1);
                    count_received(g, f->via, f->resource, cons, f->ts_us);
                    count_consumed(g, &p, -1);
                    p.cons = cons;
                    p.cons_ts = f->ts_us;
                    consumed(g, &p, hk);
                    prec_put(g, hk, &p);
                }
                del(g, k, kn);
                return;
            }
            if (new_record)
                count_received(g, f->via, f->resource, cons, f->ts_us);
            return; /* a producer recorded before stages were kept */
        }
        if (new_record)
            count_received(g, f->via, f->resource, cons, f->ts_us);
        take(g, &p, hk, cons, f->ts_us);
    } else {
        size_t hn = strlen(hk);
        uint8_t v[MAXNAME + 9];
        size_t cn = strlen(cons);

        if (new_record)
            count_received(g, f->via, f->resource, cons, f->ts_us);
        /* the consumer, then its time (stages.h) */
        memcpy(v, cons, cn);
        v[cn] = 0;
        ht_be64_put(v + cn + 1, (uint64_t)f->ts_us);
        k[0] = 'c';
        memcpy(k + 1, hk, hn);
        put(g, k, hn + 1, v, cn + 9);
    }
}

/* An invocation whose segment links to waiting SQS producers received
 * them, even when it never logged its event. */
static void take_links(struct ht__stg *g, const struct ht_span *s)
{
    const char *cons = s->name && strlen(s->name) < MAXNAME ? s->name : "";

    for (uint32_t i = 0; i < s->nlinks && !g->err; i++) {
        uint8_t k[512];
        size_t kn;
        const void *v;
        size_t vn;
        char *hk;
        struct prec p;

        link_key(k, &kn, 'l', s->links[i].id.b, NULL);
        if (ht_store_get(g->t, HT_DB_HOPS, k, kn, &v, &vn) != HT_ERR_OK)
            continue;
        hk = ht_arena_strndup(g->a, v, vn);
        if (!prec_get(g, hk, &p) || p.matched) {
            del(g, k, kn);
            continue;
        }
        count_received(g, p.via, p.res, cons, s->start_us);
        take(g, &p, hk, cons, s->start_us);
        /* the link's receipt (time, consumer), for the logged record to
         * replace when it comes */
        link_key(k, &kn, 'k', NULL, hk);
        {
            uint8_t n8[8];

            ht_buf_reset(&g->buf);
            ht_be64_put(n8, (uint64_t)s->start_us);
            ht_buf_add(&g->buf, n8, 8);
            ht_buf_add(&g->buf, cons, strlen(cons));
            put(g, k, kn, g->buf.data, g->buf.len);
        }
    }
}

struct ucoll {
    struct ht_arena *a;
    char **hk;
    size_t n, cap;
};

static int collect_u(void *ctx, const void *k, size_t kn, const void *v,
                     size_t vn)
{
    struct ucoll *c = ctx;

    (void)v;
    (void)vn;
    if (c->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 8;
        char **nh = ht_arena_alloc(c->a, ncap * sizeof(*nh));

        if (c->n)
            memcpy(nh, c->hk, c->n * sizeof(*nh));
        c->hk = nh;
        c->cap = ncap;
    }
    c->hk[c->n++] = ht_arena_strndup(c->a, (const char *)k + 9, kn - 9);
    return 0;
}

/*
 * A Kinesis write that names no stream (the SDKs' PutRecord records none)
 * and no sequence number, or a stream but no correlation id: nothing at
 * ingest can meet it with its consumer. It is kept as a waiting producer
 * half of the stream "" under its own hop key, "kput:" + span id (+ ":" +
 * the stream when it names one); query/stalls.c learns its stream and whether
 * it was consumed from what names them (the correlation id the write is
 * attributed to, and the consumer's logged records), as of the query, so
 * the answer depends on neither arrival order nor batch boundaries. A
 * failed write wrote nothing and is not kept.
 */
static void unnamed_write(struct ht__stg *g, const struct ht_span *s)
{
    char hk[MAXHOPKEY], id[17];
    struct prec p;
    struct ht_id8 missing = {{0}};
    const char *svc;

    ht_id8_format(&s->id, id);
    /* a stream the write does name (with no correlation id to meet its
     * consumer by) rides in the hop key, for stalls.c to place it */
    if (s->resource && *s->resource && strlen(s->resource) < MAXNAME)
        snprintf(hk, sizeof(hk), "kput:%s:%s", id, s->resource);
    else
        snprintf(hk, sizeof(hk), "kput:%s", id);
    if (prec_get(g, hk, &p))
        return; /* seen before */
    memset(&p, 0, sizeof(p));
    p.via = HT_VIA_KINESIS;
    p.ts = s->end_us;
    p.res = "";
    memcpy(p.trace, s->trace.b, 16);
    memcpy(p.span, s->id.b, 8);
    p.corr = s->corr && strlen(s->corr) < MAXNAME ? s->corr : NULL;
    svc = service_of(g, s, &missing);
    p.prod = svc && strlen(svc) < MAXNAME ? svc : "";
    count_entered(g, &p, 1);
    pending_put(g, &p, hk);
    prec_put(g, hk, &p);
    if (!svc) {
        wait_for(g, &missing, hk, p.ts);
        g->unresolved++;
    }
    tindex(g, p.ts, 'h', hk, strlen(hk), true);
}

static void named_by_segment(struct ht__stg *g, const struct ht_span *s);

/* A Kinesis write that makes no hop half at ingest: no sequence number,
 * and not both a stream and a correlation id (assembler.c's keys). */
static bool is_unnamed_write(const struct ht_span *s)
{
    return s->via == HT_VIA_KINESIS && (s->flags & HT_SPAN_WRITE) &&
           !(s->flags & (HT_SPAN_IN_PROGRESS | HT_SPAN_ERROR |
                         HT_SPAN_THROTTLE | HT_SPAN_FAULT)) &&
           !s->sequence && !(s->corr && s->resource);
}

void ht__stg_span(struct ht__stg *g, const struct ht_span *s)
{
    uint8_t k[16];
    struct ucoll c = {0};

    if (g && !g->err && s->nlinks &&
        (s->kind == HT_SK_LAMBDA || s->kind == HT_SK_FUNCTION) &&
        !before_pruned(g, s->start_us))
        take_links(g, s);
    if (g && !g->err && is_unnamed_write(s) && !before_pruned(g, s->end_us))
        unnamed_write(g, s);
    if (g && !g->err && s->kind == HT_SK_LAMBDA)
        named_by_segment(g, s);
    if (!g || g->err || g->unresolved <= 0)
        return;
    k[0] = 'u';
    memcpy(k + 1, s->id.b, 8);
    c.a = g->a;
    if (ht_store_scan(g->t, HT_DB_HOPS, k, 9, collect_u, &c) != HT_ERR_OK)
        return;
    for (size_t i = 0; i < c.n && !g->err; i++) {
        const char *hk = c.hk[i];
        struct prec p, q;
        struct ht_id8 missing = {{0}};
        const char *svc;
        uint8_t uk[512];
        size_t hn = strlen(hk);

        uk[0] = 'u';
        memcpy(uk + 1, s->id.b, 8);
        memcpy(uk + 9, hk, hn);
        del(g, uk, hn + 9);
        if (!prec_get(g, hk, &p)) {
            g->unresolved--;
            continue;
        }
        tindex(g, p.ts, 'u', uk + 1, hn + 8, false);
        svc = service_of(g, s, &missing);
        if (!svc) {
            wait_for(g, &missing, hk, p.ts);
            continue;
        }
        g->unresolved--;
        if (strlen(svc) >= MAXNAME || !*svc)
            svc = "";
        /* out of the unknown producer's stage, into its own */
        q = p;
        q.prod = svc;
        count_entered(g, &p, -1);
        count_entered(g, &q, 1);
        if (p.matched) {
            count_consumed(g, &p, -1);
            consumed(g, &q, hk);
            /* kept for a later, earlier receipt (earliest_receipts) */
            prec_put(g, hk, &q);
        } else {
            pending_del(g, &p, hk);
            pending_put(g, &q, hk);
            prec_put(g, hk, &q);
        }
    }
}

static void count_report(struct ht__stg *g, const char *fn,
                         const struct ht_inv *inv)
{
    uint8_t k[256];
    size_t kn = mk(k, T_F, -1, fn, NULL, NULL);

    bump(g, k, kn, 0, 1);
    bump(g, k, kn, 1, inv->billed_ms);
    bump(g, k, kn, 2, inv->memory_mb);
    bump(g, k, kn, 3, inv->max_memory_mb);
    bump(g, k, kn, 4, inv->max_memory_mb);
    bump(g, k, kn, 5, inv->duration_us);
    bump(g, k, kn, 6, (inv->flags & HT_INV_FAILED) ? 1 : 0);
    bump(g, k, kn, 7, (inv->flags & HT_INV_COLD) ? 1 : 0);
}

/* The name of the AWS::Lambda segment of request id rid, when stored. */
static const char *lambda_name(struct ht__stg *g, const char *rid)
{
    uint8_t key[HT_KEY_MAX];
    const void *v;
    size_t vn;
    struct ht_span sp;
    const uint8_t *t;

    if (strlen(rid) > 200 ||
        ht_store_get(g->t, HT_DB_KEYS, key,
                     ht_key_make_id(key, HT_K_LAMBDA, rid), &v,
                     &vn) != HT_ERR_OK ||
        vn != 9)
        return NULL;
    t = v;
    if (t[0] != HT_TARGET_SPAN ||
        ht_store_get(g->t, HT_DB_NODES, t + 1, 8, &v, &vn) != HT_ERR_OK ||
        ht_span_unpack(v, vn, g->a, &sp) != HT_ERR_OK || !sp.name ||
        !*sp.name || strlen(sp.name) >= MAXNAME)
        return NULL;
    return sp.name;
}

/* 'f' request id -> the REPORT of an invocation whose logs named no
 * function, until its AWS::Lambda segment names it. */
static size_t unnamed_report_key(uint8_t *k, const char *rid)
{
    size_t n = strlen(rid);

    k[0] = 'f';
    memcpy(k + 1, rid, n);
    return n + 1;
}

void ht__stg_report(struct ht__stg *g, const struct ht_inv *inv)
{
    const char *fn;

    if (!g || g->err || before_pruned(g, ht_inv_last_us(inv)))
        return;
    fn = inv->function;
    if ((!fn || !*fn) && inv->request_id && *inv->request_id) {
        /* plain logs without a log group: the X-Ray segment of the same
         * request id names the function, now or when it comes */
        fn = lambda_name(g, inv->request_id);
        if (!fn && strlen(inv->request_id) <= 200) {
            uint8_t k[256];
            struct ht_inv kept;

            ht_buf_reset(&g->buf);
            ht_inv_pack(inv, &g->buf);
            put(g, k, unnamed_report_key(k, inv->request_id), g->buf.data,
                g->buf.len);
            /* indexed at the time of the record as stored, which is what
             * named_by_segment and retention read back */
            memset(&kept, 0, sizeof(kept));
            if (ht_inv_unpack(g->buf.data, g->buf.len, g->a, &kept) ==
                HT_ERR_OK)
                tindex(g, ht_inv_last_us(&kept), 'f', inv->request_id,
                       strlen(inv->request_id), true);
            return;
        }
    }
    if (!fn || !*fn || strlen(fn) >= MAXNAME)
        return;
    count_report(g, fn, inv);
}

/* An AWS::Lambda segment: the REPORT of its request id waiting for a
 * function name is counted under the segment's name. */
static void named_by_segment(struct ht__stg *g, const struct ht_span *s)
{
    uint8_t k[256];
    const void *v;
    size_t vn;
    size_t kn;
    struct ht_inv inv;

    if (!s->request_id || strlen(s->request_id) > 200 || !s->name ||
        !*s->name || strlen(s->name) >= MAXNAME)
        return;
    kn = unnamed_report_key(k, s->request_id);
    if (ht_store_get(g->t, HT_DB_HOPS, k, kn, &v, &vn) != HT_ERR_OK)
        return;
    memset(&inv, 0, sizeof(inv));
    if (ht_inv_unpack(v, vn, g->a, &inv) == HT_ERR_OK) {
        count_report(g, s->name, &inv);
        tindex(g, ht_inv_last_us(&inv), 'f', s->request_id,
               strlen(s->request_id), false);
    }
    del(g, k, kn);
}

/* Merge one aggregate into its stored record. A record that comes back to
 * all zeros is deleted, so the store does not depend on batch boundaries. */
static void flush_one(struct ht__stg *g, const struct agg *e)
{
    const void *v;
    size_t vn;
    bool have =
        ht_store_get(g->t, HT_DB_STAGES, e->key, e->kn, &v, &vn) == HT_ERR_OK;

    if (e->key[0] == T_H) {
        int64_t *c = e->hist;
        const uint8_t *p = v;
        bool any = false;

        for (size_t i = 0; have && i + 6 <= vn; i += 6) {
            unsigned idx = (unsigned)p[i] << 8 | p[i + 1];
            uint32_t n = (uint32_t)p[i + 2] << 24 | (uint32_t)p[i + 3] << 16 |
                         (uint32_t)p[i + 4] << 8 | p[i + 5];

            if (idx < HT__STG_NHIST)
                c[idx] += n;
        }
        ht_buf_reset(&g->buf);
        for (unsigned i = 0; i < HT__STG_NHIST; i++) {
            uint8_t r[6];
            uint32_t n;

            if (c[i] <= 0)
                continue;
            n = c[i] > UINT32_MAX ? UINT32_MAX : (uint32_t)c[i];
            r[0] = (uint8_t)(i >> 8);
            r[1] = (uint8_t)i;
            r[2] = (uint8_t)(n >> 24);
            r[3] = (uint8_t)(n >> 16);
            r[4] = (uint8_t)(n >> 8);
            r[5] = (uint8_t)n;
            ht_buf_add(&g->buf, r, 6);
            any = true;
        }
        if (any)
            put(g, e->key, e->kn, g->buf.data, g->buf.len);
        else if (have)
            del(g, e->key, e->kn);
        return;
    }
    {
        int nv = nvals[e->key[0]];
        int64_t val[8] = {0};
        uint8_t out[64];

        if (nv <= 0)
            return;

        for (int i = 0; i < nv; i++) {
            int64_t old = have && vn >= (size_t)(i + 1) * 8
                              ? (int64_t)ht_be64_get((const uint8_t *)v + i * 8)
                              : 0;

            val[i] = op_of(e->key[0], i) == OP_MAX
                         ? (e->v[i] > old ? e->v[i] : old)
                         : old + e->v[i];
        }
        if (val[0] <= 0) {
            /* nothing counted any more: the record goes */
            if (have)
                del(g, e->key, e->kn);
            return;
        }
        for (int i = 0; i < nv; i++)
            ht_be64_put(out + i * 8, (uint64_t)val[i]);
        put(g, e->key, e->kn, out, (size_t)nv * 8);
    }
}

int ht__stg_end(struct ht__stg *g)
{
    int err;

    if (!g)
        return HT_ERR_NOMEM;
    for (size_t i = 0; i < g->cap && !g->err; i++)
        if (g->e[i].used)
            flush_one(g, &g->e[i]);
    if (!g->err)
        g->err = ht__stg_unresolved_add(g->t, g->unresolved - g->unresolved0);
    err = g->err;
    free(g->e);
    free(g->ids);
    ht_buf_free(&g->buf);
    ht_arena_destroy(g->a);
    free(g);
    return err;
}
