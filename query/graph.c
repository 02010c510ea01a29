/*
 * graph.c - the query graph's nodes: spans and Lambda invocations loaded
 * lazily from the store (with their parents, children, received records
 * and correlation lines), synthetic nodes for invocations known from logs
 * alone, and the attribution of work inside a batch invocation to the
 * request it served (annotation, runs of logged correlation ids, nearest
 * line). See design.md, "Requests".
 *
 * Owned by query/. Read-only: it never writes to the store.
 */
#define _GNU_SOURCE
#include "qgraph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- tiny hash map (pointer values, byte keys in the arena) ---------- */

void *ht__map_get(struct map *m, const void *k, size_t kn)
{
    uint64_t h = ht_hash_mem(k, kn);

    if (!m->cap)
        return NULL;
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        struct ment *e = &m->e[i];

        if (!e->k)
            return NULL;
        if (e->h == h && e->kn == kn && memcmp(e->k, k, kn) == 0)
            return e->v;
    }
}

/* Twice the slots (16 at first: most maps stay small), entries moved by
 * their kept hashes. */
static void map_grow(struct map *m)
{
    size_t cap = m->cap ? m->cap * 2 : 16;
    struct ment *e = ht_table_alloc(cap, sizeof(*e));

    HT_ASSERT(e);
    for (size_t i = 0; i < m->cap; i++) {
        size_t j;

        if (!m->e[i].k)
            continue;
        for (j = m->e[i].h & (cap - 1); e[j].k; j = (j + 1) & (cap - 1))
            ;
        e[j] = m->e[i];
    }
    free(m->e);
    m->e = e;
    m->cap = cap;
}

void ht__map_put(struct map *m, const void *k, size_t kn, void *v)
{
    if ((m->n + 1) * 2 > m->cap)
        map_grow(m);
    uint64_t h = ht_hash_mem(k, kn);
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        struct ment *e = &m->e[i];

        if (!e->k) {
            e->h = h;
            e->k = k;
            e->kn = kn;
            e->v = v;
            m->n++;
            return;
        }
        if (e->h == h && e->kn == kn && memcmp(e->k, k, kn) == 0) {
            e->v = v;
            return;
        }
    }
}

void ht__map_free(struct map *m)
{
    free(m->e);
    m->e = NULL;
    m->cap = m->n = 0;
}

/* ---- growable pointer vector in the arena ----------------------------- */

void ht__vec_push(struct ht_arena *a, struct vec *v, void *x)
{
    if (v->n == v->cap) {
        size_t ncap = v->cap ? v->cap * 2 : 8;
        void **np = ht_arena_alloc(a, ncap * sizeof(void *));

        if (v->n)
            memcpy(np, v->p, v->n * sizeof(void *));
        v->p = np;
        v->cap = ncap;
    }
    v->p[v->n++] = x;
}

/* Marks pointer x in a set kept as a map; true when it was there already.
 * The key is stored in the arena. */
bool ht__ptr_seen(struct ht_arena *a, struct map *m, const void *x)
{
    const void **k;

    if (ht__map_get(m, &x, sizeof(x)))
        return true;
    k = ht_arena_alloc(a, sizeof(x));
    *k = x;
    ht__map_put(m, k, sizeof(x), (void *)1);
    return false;
}

bool ht__vec_has(const struct vec *v, const void *x)
{
    for (size_t i = 0; i < v->n; i++)
        if (v->p[i] == x)
            return true;
    return false;
}

/* ---- the query graph --------------------------------------------------- */

bool ht__streq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* A new invocation of the session, with its record (under packed id
 * pid, pn bytes) when the store holds one. */
static struct qinv *inv_read(struct q *q, const char *rid, size_t rn,
                             const uint8_t *pid, size_t pn)
{
    struct qinv *inv = ht_arena_alloc(q->a, sizeof(*inv));
    const void *v;
    size_t vn;

    memset(inv, 0, sizeof(*inv));
    inv->rid = ht_arena_strndup(q->a, rid, rn);
    if (ht_store_get(q->t, HT_DB_INV, pid, pn, &v, &vn) == HT_ERR_OK) {
        inv->exists = true;
        inv->has_rec = ht_inv_unpack(v, vn, q->a, &inv->rec) == HT_ERR_OK;
    }
    return inv;
}

/*
 * Whether invocation rid (packed: pid, pn bytes) exists. Its record is
 * read into the session's invocation, which stays partial (its facts not
 * read) until ht__q_inv is asked for it: a target's invocation is almost
 * always asked for next, and its record is then not read twice.
 */
static bool inv_exists(struct q *q, const char *rid, size_t rn,
                       const uint8_t *pid, size_t pn)
{
    struct qinv *inv = ht__map_get(&q->invs, rid, rn);

    if (!inv) {
        inv = inv_read(q, rid, rn, pid, pn);
        inv->partial = true;
        ht__map_put(&q->invs, inv->rid, rn, inv);
    }
    return inv->exists;
}

static int tgt_visit(void *ctx, const void *k, size_t kn, const void *v,
                     size_t vn)
{
    struct tgt_ctx *c = ctx;
    const uint8_t *p = v;

    (void)k;
    (void)kn;
    if (c->spans.n + c->invs.n >= MAX_TARGETS) {
        c->q->truncated = true;
        return 1;
    }
    if (vn == 9 && p[0] == HT_TARGET_SPAN) {
        struct ht_id8 *id = ht_arena_alloc(c->q->a, sizeof(*id));

        memcpy(id->b, p + 1, 8);
        ht__vec_push(c->q->a, &c->spans, id);
    } else if (vn > 1 && p[0] == HT_TARGET_INV) {
        char rid[HT_ID_PACKED_MAX];
        const void *iv;
        size_t ivn;

        uint8_t again[HT_ID_PACKED_MAX];
        size_t rn = ht_id_unpack(p + 1, vn - 1, rid, sizeof(rid));

        if (!rn)
            return 0;
        /* an invocation removed by retention may leave a key behind (see
         * store/prune.c): a key only counts while its invocation exists,
         * which is known once the invocation is read under the same
         * record key */
        if (strlen(rid) == rn && rn <= 255 &&
            ht_id_pack(rid, rn, again) == vn - 1 &&
            memcmp(again, p + 1, vn - 1) == 0) {
            if (!inv_exists(c->q, rid, rn, p + 1, vn - 1))
                return 0;
        } else if (ht_store_get(c->q->t, HT_DB_INV, p + 1, vn - 1, &iv, &ivn) !=
                   HT_ERR_OK) {
            return 0;
        }
        ht__vec_push(c->q->a, &c->invs, ht_arena_strdup(c->q->a, rid));
    }
    return 0;
}

/* A node from its stored value, into the graph. */
static struct qnode *adopt(struct q *q, const void *v, size_t vn)
{
    struct qnode *n = ht_arena_alloc(q->a, sizeof(*n));

    memset(n, 0, sizeof(*n));
    if (ht_span_unpack(v, vn, q->a, &n->s) != HT_ERR_OK)
        return NULL;
    ht__map_put(&q->spans, n->s.id.b, 8, n);
    return n;
}

/* A node met while reading its trace's range (key trace id + span id):
 * taken into the graph as q_span_in(trace, id) would take it, which saves
 * looking it up again when it is asked for (a trace's nodes are asked for
 * together). Only the first EAGER_MAX nodes of a range are taken, and none
 * past the work bound. */
#define EAGER_MAX 2048
static void eager(struct q *q, const void *k, const void *v, size_t vn,
                  size_t *taken)
{
    if (*taken >= EAGER_MAX || q->loads >= MAX_LOADS ||
        ht__map_get(&q->spans, (const uint8_t *)k + 16, 8))
        return;
    (*taken)++;
    q->loads++;
    adopt(q, v, vn);
}

/* Span id k + 16 of a trace's range, a target. */
static int add_trace_span(struct tgt_ctx *c, const void *k)
{
    struct ht_id8 *id;

    if (c->spans.n + c->invs.n >= MAX_TARGETS) {
        c->q->truncated = true;
        return 1;
    }
    id = ht_arena_alloc(c->q->a, sizeof(*id));
    memcpy(id->b, (const uint8_t *)k + 16, 8);
    ht__vec_push(c->q->a, &c->spans, id);
    return 0;
}

/* A span of a trace's range of nodes (key trace id + span id). */
static int trace_span_visit(void *ctx, const void *k, size_t kn, const void *v,
                            size_t vn)
{
    struct tgt_ctx *c = ctx;

    if (kn != 24)
        return 0;
    eager(c->q, k, v, vn, &c->eager);
    return add_trace_span(c, k);
}

static void trace_targets(struct q *q, const struct ht_tid *tr,
                          struct tgt_ctx *out);

/* The keys entries of a binary id alone. */
static void key_targets(struct q *q, char prefix, const void *p, size_t n,
                        struct tgt_ctx *out)
{
    uint8_t key[HT_KEY_MAX];

    memset(out, 0, sizeof(*out));
    out->q = q;
    if (!p || !n)
        return;
    ht_store_dups(q->t, HT_DB_KEYS, key, ht_key_make(key, prefix, p, n),
                  tgt_visit, out);
}

void ht__targets(struct q *q, char prefix, const void *p, size_t n,
                 struct tgt_ctx *out)
{
    key_targets(q, prefix, p, n, out);
    /* a trace's spans are its range of nodes, not keys entries */
    if (p && prefix == HT_K_TRACE && n == 16) {
        struct ht_tid tr;

        memcpy(tr.b, p, 16);
        trace_targets(q, &tr, out);
    }
}

/* The targets of a text id (packed like the assembler packs it). */
void ht__targets_s(struct q *q, char prefix, const char *s, struct tgt_ctx *out)
{
    uint8_t key[HT_KEY_MAX];

    memset(out, 0, sizeof(*out));
    out->q = q;
    if (!s || !*s)
        return;
    ht_store_dups(q->t, HT_DB_KEYS, key, ht_key_make_id(key, prefix, s),
                  tgt_visit, out);
}

/* ---- key presence by prefix ------------------------------------------- */

static size_t ks_slot(const struct keyset *ks, uint64_t v)
{
    size_t i = (size_t)((v * 0x9E3779B97F4A7C15ull) >> 32) & (ks->cap - 1);

    while (ks->k[i] && ks->k[i] != v)
        i = (i + 1) & (ks->cap - 1);
    return i;
}

struct ks_load {
    struct q *q;
    uint64_t *ids;
    size_t n;
    bool zero, large;
};

static int ks_visit(void *ctx, const void *k, size_t kn, const void *v,
                    size_t vn)
{
    struct ks_load *l = ctx;
    uint64_t id;

    (void)v;
    (void)vn;
    if (kn != 9)
        return 0; /* not prefix + span id: never asked for */
    memcpy(&id, (const uint8_t *)k + 1, 8);
    if (!id) {
        l->zero = true;
        return 0;
    }
    /* duplicates (several targets) are adjacent */
    if (l->n && l->ids[l->n - 1] == id)
        return 0;
    if (l->n == KS_MAX) {
        l->large = true;
        return 1;
    }
    l->ids[l->n++] = id;
    return 0;
}

static void ks_load(struct q *q, struct keyset *ks, char prefix)
{
    struct ks_load l = {.q = q};
    uint8_t p = (uint8_t)prefix;

    l.ids = malloc(KS_MAX * sizeof(*l.ids));
    if (!l.ids ||
        ht_store_scan(q->t, HT_DB_KEYS, &p, 1, ks_visit, &l) != HT_ERR_OK ||
        l.large) {
        free(l.ids);
        ks->state = KS_LARGE;
        return;
    }
    ks->cap = 64;
    while (ks->cap < 2 * l.n + 2)
        ks->cap *= 2;
    ks->k = ht_arena_alloc(q->a, ks->cap * sizeof(*ks->k));
    memset(ks->k, 0, ks->cap * sizeof(*ks->k));
    for (size_t i = 0; i < l.n; i++)
        ks->k[ks_slot(ks, l.ids[i])] = l.ids[i];
    ks->n = l.n;
    ks->zero = l.zero;
    ks->state = KS_LOADED;
    free(l.ids);
}

bool ht__key_absent(struct q *q, char prefix, const struct ht_id8 *id)
{
    struct keyset *ks = prefix == HT_K_HEADER ? &q->ks_header
                        : prefix == HT_K_LINK ? &q->ks_link
                                              : NULL;
    uint64_t v;

    if (!ks || ks->state == KS_LARGE)
        return false;
    if (ks->state == KS_UNKNOWN) {
        if (++ks->asks < KS_ASKS)
            return false;
        ks_load(q, ks, prefix);
        if (ks->state != KS_LOADED)
            return false;
    }
    memcpy(&v, id->b, 8);
    if (!v)
        return !ks->zero;
    return ks->k[ks_slot(ks, v)] != v;
}

/* Node `id`, of trace `tr` when known (read straight from its range of
 * nodes), else found through the span index. */
static struct qnode *q_span_in(struct q *q, const struct ht_tid *tr,
                               const struct ht_id8 *id)
{
    struct qnode *n = ht__map_get(&q->spans, id->b, 8);
    const void *v;
    size_t vn;
    uint8_t key[24];
    int rc;

    if (n)
        return n;
    if (++q->loads > MAX_LOADS) {
        q->truncated = true;
        return NULL;
    }
    if (tr) {
        memcpy(key, tr->b, 16);
        memcpy(key + 16, id->b, 8);
        rc = ht_store_get(q->t, HT_DB_NODES, key, 24, &v, &vn);
    } else {
        rc = ht_store_get(q->t, HT_DB_NODES, id->b, 8, &v, &vn);
    }
    if (rc != HT_ERR_OK)
        return NULL;
    return adopt(q, v, vn);
}

struct qnode *ht__q_span(struct q *q, const struct ht_id8 *id)
{
    return q_span_in(q, NULL, id);
}

static struct qnode *q_span_near(struct q *q, const struct ht_tid *tr,
                                 const struct ht_id8 *id);

bool ht__gw_take(struct qgw *g, const char *route, const char *api,
                 const char *stage)
{
    if (!g->route && route && *route)
        g->route = route;
    if (!g->api && api && *api)
        g->api = api;
    if (!g->stage && stage && *stage)
        g->stage = stage;
    return g->route && g->api && g->stage;
}

struct facts_ctx {
    struct q *q;
    struct qinv *inv;
    struct vec recs, lines;
};

static int facts_visit(void *ctx, const void *k, size_t kn, const void *v,
                       size_t vn)
{
    struct facts_ctx *c = ctx;
    struct ht_fact *f = ht_arena_alloc(c->q->a, sizeof(*f));

    (void)k;
    (void)kn;
    if (ht_fact_unpack(v, vn, c->q->a, f) != HT_ERR_OK)
        return 0;
    if (f->kind == HT_FACT_RECORD) {
        ht__vec_push(c->q->a, &c->recs, f);
    } else if (f->kind == HT_FACT_CORR) {
        ht__vec_push(c->q->a, &c->lines, f);
    } else if (f->kind == HT_FACT_APIGW) {
        ht__gw_take(&c->inv->gw, f->route, f->api_id, f->stage);
    }
    return 0;
}

static int cmp_fact_ts(const void *a, const void *b)
{
    const struct ht_fact *x = a, *y = b;

    if (x->ts_us != y->ts_us)
        return x->ts_us < y->ts_us ? -1 : 1;
    return 0;
}

/* The invocation's own correlation id when it has exactly one: from the
 * records it received (strong), else from its log lines (weak: ambient
 * fields can outlive the invocation that set them, so the most frequent
 * one wins, the later on a tie). */
static void inv_settle_corr(struct q *q, struct qinv *inv)
{
    for (size_t i = 0; i < inv->nrecs; i++) {
        const char *c = inv->recs[i].corr;
        bool seen = false;

        if (!c)
            continue;
        for (size_t j = 0; j < inv->corrs.n; j++)
            if (ht__streq(inv->corrs.p[j], c))
                seen = true;
        if (!seen)
            ht__vec_push(q->a, &inv->corrs, (void *)c);
    }
    if (inv->corrs.n == 1) {
        inv->corr = inv->corrs.p[0];
    } else if (inv->corrs.n > 1) {
        inv->batch = true;
    } else if (inv->nrecs > 1) {
        /* several records, none with a correlation id: count distinct
         * senders later; treat as a batch so nothing merges through it */
        inv->batch = true;
    } else if (inv->nlines) {
        struct map counts = {0};
        size_t best = 0, bestn = 0;

        /* lines are in time order: on a tie the later one wins */
        for (size_t i = 0; i < inv->nlines; i++) {
            const char *c = inv->lines[i].corr;
            size_t cl = c ? strlen(c) : 0;
            size_t cnt = (size_t)(uintptr_t)ht__map_get(&counts, c, cl) + 1;

            if (!c)
                continue;
            ht__map_put(&counts, c, cl, (void *)(uintptr_t)cnt);
            if (cnt >= bestn) {
                bestn = cnt;
                best = i;
            }
        }
        ht__map_free(&counts);
        if (bestn)
            inv->corr = inv->lines[best].corr;
    }
}

/* Distinct X-Ray link targets of node n, added to *seen (at most 2 are
 * needed). */
static void count_links(struct qnode *n, const struct ht_id8 **seen, int *nseen)
{
    for (uint32_t i = 0; n && i < n->s.nlinks && *nseen < 2; i++) {
        bool dup = false;

        for (int j = 0; j < *nseen; j++)
            dup |= memcmp(seen[j]->b, n->s.links[i].id.b, 8) == 0;
        if (!dup)
            seen[(*nseen)++] = &n->s.links[i].id;
    }
}

/* The targets of the invocation's Lambda request id key (its AWS::Lambda
 * spans), read once: telling a batch and finding the top both ask. */
static void lambda_targets(struct q *q, struct qinv *inv, struct tgt_ctx *c)
{
    bool was = q->truncated;

    if (inv->lambda) {
        *c = *inv->lambda;
        return;
    }
    q->truncated = false;
    ht__targets_s(q, HT_K_LAMBDA, inv->rid, c);
    if (!q->truncated) {
        inv->lambda = ht_arena_alloc(q->a, sizeof(*c));
        *inv->lambda = *c;
    }
    q->truncated |= was;
}

/* The trace an invocation's own spans are in, when its record says. */
static const struct ht_tid *inv_trace(const struct qinv *inv)
{
    return inv->has_rec && (inv->rec.flags & HT_INV_HAS_TRACE) ? &inv->rec.trace
                                                               : NULL;
}

/*
 * An invocation that logged no record can still be a batch: its
 * AWS::Lambda (or function) segment links to one SendMessage per message
 * it received. Two or more distinct links make it a batch, so that its
 * writes are attributed request by request and never leak into every
 * request of the batch. Read-only: it does not settle the invocation's top.
 */
static void inv_links_batch(struct q *q, struct qinv *inv)
{
    const struct ht_id8 *seen[2];
    int nseen = 0;
    struct tgt_ctx c;

    lambda_targets(q, inv, &c);
    for (size_t i = 0; i < c.spans.n && nseen < 2; i++) {
        struct qnode *n = q_span_near(q, inv_trace(inv), c.spans.p[i]);
        struct vec *kids;

        if (!n)
            continue;
        count_links(n, seen, &nseen);
        kids = ht__q_kids(q, n);
        for (size_t k = 0; k < kids->n && nseen < 2; k++) {
            struct qnode *f = kids->p[k];

            if (f->s.kind == HT_SK_FUNCTION)
                count_links(f, seen, &nseen);
        }
    }
    if (nseen < 2 && inv->has_rec && (inv->rec.flags & HT_INV_HAS_SEGMENT)) {
        struct qnode *f = ht__q_span(q, &inv->rec.segment);

        count_links(f, seen, &nseen);
        if (f && nseen < 2)
            count_links(ht__q_parent(q, f), seen, &nseen);
    }
    if (nseen >= 2) {
        inv->batch = true;
        inv->corr = NULL;
    }
}

struct qinv *ht__q_inv(struct q *q, const char *rid)
{
    struct qinv *inv;
    size_t rn, prn;
    uint8_t prid[HT_ID_PACKED_MAX];
    uint8_t *prefix;

    if (!rid || !*rid)
        return NULL;
    rn = strlen(rid);
    inv = ht__map_get(&q->invs, rid, rn);
    if (inv && !inv->partial)
        return inv;
    if (++q->loads > MAX_LOADS) {
        q->truncated = true;
        return NULL;
    }
    if (rn > 255)
        return NULL; /* never stored */
    prn = ht_id_pack(rid, rn, prid);
    if (inv) /* its record was read by inv_exists */
        inv->partial = false;
    else
        inv = inv_read(q, rid, rn, prid, prn);
    {
        struct facts_ctx c = {.q = q, .inv = inv};

        prefix = ht_arena_alloc(q->a, prn + 1);
        memcpy(prefix, prid, prn);
        prefix[prn] = 0;
        ht_store_scan(q->t, HT_DB_FACTS, prefix, prn + 1, facts_visit, &c);
        inv->nrecs = c.recs.n;
        inv->recs = ht_arena_alloc(q->a, (c.recs.n + 1) * sizeof(*inv->recs));
        for (size_t i = 0; i < c.recs.n; i++)
            inv->recs[i] = *(struct ht_fact *)c.recs.p[i];
        inv->nlines = c.lines.n;
        inv->lines =
            ht_arena_alloc(q->a, (c.lines.n + 1) * sizeof(*inv->lines));
        for (size_t i = 0; i < c.lines.n; i++)
            inv->lines[i] = *(struct ht_fact *)c.lines.p[i];
        qsort(inv->lines, inv->nlines, sizeof(*inv->lines), cmp_fact_ts);
    }
    inv_settle_corr(q, inv);
    ht__map_put(&q->invs, inv->rid, rn, inv);
    if (!inv->nrecs)
        inv_links_batch(q, inv);
    return inv;
}

struct qnode *ht__q_parent(struct q *q, struct qnode *n)
{
    if (!n->parent_done) {
        n->parent_done = true;
        if (!n->synthetic && (n->s.flags & HT_SPAN_HAS_PARENT))
            n->parent = q_span_near(q, &n->s.trace, &n->s.parent);
    }
    return n->parent;
}

static int cmp_node_start(const void *a, const void *b)
{
    const struct qnode *x = *(struct qnode *const *)a;
    const struct qnode *y = *(struct qnode *const *)b;

    if (x->s.start_us != y->s.start_us)
        return x->s.start_us < y->s.start_us ? -1 : 1;
    return memcmp(x->s.id.b, y->s.id.b, 8);
}

struct kids_scan {
    struct q *q;
    struct ht_id8 *pairs;
    size_t n, cap;
    size_t eager;       /* nodes taken whole (eager) */
    struct ht_id8 *ids; /* every span id of the range, in key order */
    size_t nids, capids;
    bool stopped; /* a bound cut the scan short: ids and pairs not whole */
};

static int kids_visit(void *ctx, const void *k, size_t kn, const void *v,
                      size_t vn)
{
    struct kids_scan *c = ctx;
    struct ht_id8 parent;

    if (kn != 24)
        return 0;
    eager(c->q, k, v, vn, &c->eager);
    if (!c->stopped && c->nids >= MAX_TARGETS)
        c->stopped = true; /* the ids are not whole (the pairs may be) */
    if (!c->stopped) {
        if (c->nids == c->capids) {
            size_t cap = c->capids ? c->capids * 2 : 64;
            struct ht_id8 *np = ht_arena_alloc(c->q->a, cap * sizeof(*np));

            if (c->nids)
                memcpy(np, c->ids, c->nids * sizeof(*np));
            c->ids = np;
            c->capids = cap;
        }
        memcpy(c->ids[c->nids++].b, (const uint8_t *)k + 16, 8);
    }
    if (ht_span_peek_parent(v, vn, &parent) != HT_ERR_OK ||
        ht_id8_is_zero(&parent))
        return 0;
    if (c->n >= MAX_TARGETS) {
        c->q->truncated = true;
        c->stopped = true;
        return 1;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        struct ht_id8 *np = ht_arena_alloc(c->q->a, cap * 2 * sizeof(*np));

        if (c->n)
            memcpy(np, c->pairs, c->n * 2 * sizeof(*np));
        c->pairs = np;
        c->cap = cap;
    }
    c->pairs[2 * c->n] = parent;
    memcpy(c->pairs[2 * c->n + 1].b, (const uint8_t *)k + 16, 8);
    c->n++;
    return 0;
}

static int cmp_pair(const void *a, const void *b)
{
    int c = memcmp(a, b, 8);

    return c ? c : memcmp((const uint8_t *)a + 8, (const uint8_t *)b + 8, 8);
}

static size_t kc_slot(const struct ktab *t, const struct ht_tid *tr)
{
    size_t i = (size_t)ht_hash_mem(tr->b, 16) & (t->cap - 1);

    while (t->e[i] && memcmp(t->e[i]->trace.b, tr->b, 16) != 0)
        i = (i + 1) & (t->cap - 1);
    return i;
}

/* The pairs of trace `tr`, once read whole in this query. */
static struct kcache *kc_find(struct q *q, const struct ht_tid *tr)
{
    return q->kc.cap ? q->kc.e[kc_slot(&q->kc, tr)] : NULL;
}

/* Keeps the pairs a whole scan of trace `tr` found. */
static struct kcache *kc_keep(struct q *q, const struct ht_tid *tr,
                              struct kids_scan *c)
{
    struct kcache *e = ht_arena_alloc(q->a, sizeof(*e));

    if (c->n > 1)
        qsort(c->pairs, c->n, 2 * sizeof(*c->pairs), cmp_pair);
    e->trace = *tr;
    e->pairs = c->pairs;
    e->n = c->n;
    e->ids = c->stopped ? NULL : c->ids;
    e->nids = c->stopped ? 0 : c->nids;
    e->whole = !c->stopped;
    if ((q->kc.n + 1) * 2 > q->kc.cap) {
        struct ktab g;

        g.cap = q->kc.cap ? q->kc.cap * 2 : 64;
        g.n = q->kc.n;
        g.e = ht_arena_alloc(q->a, g.cap * sizeof(*g.e));
        memset(g.e, 0, g.cap * sizeof(*g.e));
        for (size_t i = 0; i < q->kc.cap; i++)
            if (q->kc.e[i])
                g.e[kc_slot(&g, &q->kc.e[i]->trace)] = q->kc.e[i];
        q->kc = g;
    }
    q->kc.e[kc_slot(&q->kc, tr)] = e;
    q->kc.n++;
    return e;
}

/* The parent -> child pairs of trace `tr` (one scan of its nodes per
 * query). */
static struct kcache *trace_kids(struct q *q, const struct ht_tid *tr)
{
    struct kids_scan c = {.q = q};
    struct kcache *e = kc_find(q, tr);

    if (e)
        return e;
    ht_store_scan(q->t, HT_DB_NODES, tr->b, 16, kids_visit, &c);
    return kc_keep(q, tr, &c);
}

/*
 * Node `id`, expected in trace `tr` (a parent, an invocation's Lambda
 * span) but not known to be there: unless the session has read it, the
 * trace's range is read whole first (one scan instead of a look-up
 * through the span index per node; a request's traces are read whole
 * anyway when their nodes' children are asked for), then the span index
 * for a node found elsewhere. A span id that two traces hold (the store
 * allows it) is taken from `tr` when `tr` holds it; which copy a session
 * takes already depended on which trace it read first, since a trace's
 * nodes are taken as its range is read (eager).
 */
static struct qnode *q_span_near(struct q *q, const struct ht_tid *tr,
                                 const struct ht_id8 *id)
{
    struct qnode *n = ht__map_get(&q->spans, id->b, 8);

    if (n)
        return n;
    if (tr && !kc_find(q, tr)) {
        trace_kids(q, tr);
        n = ht__map_get(&q->spans, id->b, 8);
        if (n)
            return n;
    }
    return q_span_in(q, NULL, id);
}

/* A trace id's spans (trace_span_visit) and, from the same scan, its
 * parent -> child pairs for ht__q_kids (kids_visit), unless the range is
 * larger than either keeps. */
struct trace_scan {
    struct tgt_ctx *out;
    struct kids_scan k;
    bool cut; /* the pairs are not whole */
};

static int trace_scan_visit(void *ctx, const void *k, size_t kn, const void *v,
                            size_t vn)
{
    struct trace_scan *ts = ctx;

    if (kn != 24)
        return 0;
    if (ts->k.n >= MAX_TARGETS)
        ts->cut = true;
    if (ts->cut)
        return trace_span_visit(ts->out, k, kn, v, vn);
    ts->k.eager = ts->out->eager;
    kids_visit(&ts->k, k, kn, v, vn); /* takes the node (eager) */
    ts->out->eager = ts->k.eager;
    return add_trace_span(ts->out, k);
}

static void trace_targets(struct q *q, const struct ht_tid *tr,
                          struct tgt_ctx *out)
{
    struct trace_scan ts = {.out = out, .k = {.q = q}};
    struct kcache *kc = kc_find(q, tr);

    if (kc && kc->whole) {
        /* read whole before: its span ids, as the scan lists them */
        for (size_t i = 0; i < kc->nids; i++) {
            uint8_t key[24];

            memcpy(key, tr->b, 16);
            memcpy(key + 16, kc->ids[i].b, 8);
            if (add_trace_span(out, key))
                break;
        }
        return;
    }
    if (kc) {
        ht_store_scan(q->t, HT_DB_NODES, tr->b, 16, trace_span_visit, out);
        return;
    }
    ts.cut = false;
    if (ht_store_scan(q->t, HT_DB_NODES, tr->b, 16, trace_scan_visit, &ts) ==
            HT_ERR_OK &&
        !ts.cut && !(out->spans.n + out->invs.n >= MAX_TARGETS))
        kc_keep(q, tr, &ts.k);
}

struct vec *ht__q_kids(struct q *q, struct qnode *n)
{
    if (!n->kids_done) {
        struct kcache *kc;
        size_t lo = 0, hi;

        n->kids_done = true;
        if (n->synthetic)
            return &n->kids;
        /* children share their parent's trace: its range of nodes (cut
         * short by MAX_TARGETS: some are missing, whichever lookup first
         * read it) */
        kc = trace_kids(q, &n->s.trace);
        if (!kc->whole)
            q->truncated = true;
        hi = kc->n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;

            if (memcmp(kc->pairs[2 * mid].b, n->s.id.b, 8) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (size_t i = lo;
             i < kc->n && memcmp(kc->pairs[2 * i].b, n->s.id.b, 8) == 0; i++) {
            struct qnode *k = q_span_in(q, &n->s.trace, &kc->pairs[2 * i + 1]);

            if (k && k != n)
                ht__vec_push(q->a, &n->kids, k);
        }
        if (n->kids.n > 1)
            qsort(n->kids.p, n->kids.n, sizeof(void *), cmp_node_start);
    }
    return &n->kids;
}

static struct qnode *synth_node(struct q *q, struct qinv *inv)
{
    struct qnode *n = ht_arena_alloc(q->a, sizeof(*n));
    struct ht_inv *r = &inv->rec;
    char buf[300];
    uint64_t h;

    memset(n, 0, sizeof(*n));
    n->synthetic = true;
    n->inv = inv;
    n->inv_done = true;
    snprintf(buf, sizeof(buf), "inv:%s", inv->rid);
    h = ht_hash64(buf, strlen(buf));
    ht_be64_put(n->s.id.b, h);
    n->s.kind = HT_SK_FUNCTION;
    n->s.name = r->function ? r->function : "lambda";
    n->s.origin = "AWS::Lambda::Function";
    n->s.request_id = inv->rid;
    n->s.resource = r->function;
    if (r->flags & HT_INV_HAS_TRACE)
        n->s.trace = r->trace;
    if (r->flags & HT_INV_HAS_START) {
        n->s.start_us = r->start_ts - r->init_us;
        n->s.end_us = r->flags & HT_INV_HAS_REPORT
                          ? r->start_ts + r->duration_us
                          : (r->end_ts > r->start_ts ? r->end_ts : r->start_ts);
    } else if (r->flags & HT_INV_HAS_REPORT) {
        n->s.end_us = r->report_ts;
        n->s.start_us = r->report_ts - r->duration_us - r->init_us;
    } else {
        n->s.start_us = n->s.end_us = r->first_ts;
    }
    if (r->flags & HT_INV_FAILED)
        n->s.flags |= HT_SPAN_FAULT;
    ht__map_put(&q->spans, n->s.id.b, 8, n);
    return n;
}

struct qnode *ht__q_inv_top(struct q *q, struct qinv *inv)
{
    struct tgt_ctx c;

    if (inv->top_done)
        return inv->top;
    inv->top_done = true;
    lambda_targets(q, inv, &c);
    for (size_t i = 0; i < c.spans.n && !inv->top; i++)
        inv->top = q_span_near(q, inv_trace(inv), c.spans.p[i]);
    if (!inv->top && inv->has_rec && (inv->rec.flags & HT_INV_HAS_SEGMENT)) {
        struct qnode *f = ht__q_span(q, &inv->rec.segment);
        struct qnode *p = f ? ht__q_parent(q, f) : NULL;

        inv->top = p && p->s.kind == HT_SK_LAMBDA ? p : f;
    }
    if (!inv->top)
        inv->top = synth_node(q, inv);
    inv->top->inv = inv;
    inv->top->inv_done = true;
    return inv->top;
}

/* The invocation `n` is the top of, or NULL. */
struct qinv *ht__q_node_inv(struct q *q, struct qnode *n)
{
    if (n->inv_done)
        return n->inv;
    n->inv_done = true;
    if (n->s.kind == HT_SK_LAMBDA && n->s.request_id) {
        n->inv = ht__q_inv(q, n->s.request_id);
    } else if (n->s.kind == HT_SK_FUNCTION) {
        struct qnode *p = ht__q_parent(q, n);
        struct tgt_ctx c;

        if (p && p->s.kind == HT_SK_LAMBDA)
            return NULL;
        ht__targets(q, HT_K_SEGMENT, n->s.id.b, 8, &c);
        if (c.invs.n)
            n->inv = ht__q_inv(q, c.invs.p[0]);
        if (!n->inv) {
            /* logs that name the trace and the function: its keys
             * entries, not its range of nodes (spans are not wanted) */
            key_targets(q, HT_K_TRACE, n->s.trace.b, 16, &c);
            for (size_t i = 0; i < c.invs.n && !n->inv; i++) {
                struct qinv *cand = ht__q_inv(q, c.invs.p[i]);

                if (cand && ht__streq(cand->rec.function, n->s.name))
                    n->inv = cand;
            }
        }
    }
    if (n->inv && !n->inv->top_done) {
        n->inv->top = n;
        n->inv->top_done = true;
    }
    return n->inv;
}

struct qinv *ht__q_owner(struct q *q, struct qnode *n)
{
    struct qnode *x = n;
    int guard = 0;

    if (n->owner_done)
        return n->owner;
    n->owner_done = true;
    while (x && guard++ < 256) {
        struct qinv *inv = ht__q_node_inv(q, x);

        if (inv) {
            n->owner = inv;
            break;
        }
        x = ht__q_parent(q, x);
    }
    return n->owner;
}

static bool corr_known(const struct qinv *inv, const char *c)
{
    if (!inv->corrs.n)
        return c != NULL;
    for (size_t j = 0; j < inv->corrs.n; j++)
        if (ht__streq(inv->corrs.p[j], c))
            return true;
    return false;
}

/*
 * The correlation id logged nearest to a call: among the invocation's lines
 * logged after the call began (their millisecond stamps may round down by
 * up to 1 ms), the one closest to the call's end. NULL on a tie between
 * two ids, or when no line qualifies.
 */
static const char *nearest_corr(const struct qinv *inv, const struct ht_span *s)
{
    int64_t best = INT64_MAX;
    const char *bc = NULL;
    bool tie = false;

    for (size_t j = 0; j < inv->nlines; j++) {
        const struct ht_fact *l = &inv->lines[j];
        int64_t d;

        if (!corr_known(inv, l->corr) || l->ts_us < s->start_us - 1000)
            continue;
        d = l->ts_us > s->end_us ? l->ts_us - s->end_us : s->end_us - l->ts_us;
        if (d < best) {
            best = d;
            bc = l->corr;
            tie = false;
        } else if (d == best && !ht__streq(bc, l->corr)) {
            tie = true;
        }
    }
    return tie ? NULL : bc;
}

/*
 * The unannotated writes of a batch invocation, attributed from its log
 * lines. A batch handler works record by record, logging the record's
 * correlation id around its write: when the runs of lines with one
 * correlation id are as many as the writes, the i-th write belongs to the
 * i-th run (whether lines come before, after or on both sides of the
 * write). Otherwise each write takes the nearest line logged after it
 * began, measured to the write's end; a tie stays shared.
 */
static void assign_writes(struct q *q, struct qinv *inv)
{
    struct vec spans = {0}, writes = {0};
    const char **runs;
    size_t nruns = 0;

    inv->writes_assigned = true;
    q->cgen++;
    ht__collect_inv_spans(q, ht__q_inv_top(q, inv), &spans, 0);
    for (size_t i = 0; i < spans.n; i++) {
        struct qnode *s = spans.p[i];

        if ((s->s.flags & HT_SPAN_WRITE) && !s->s.corr)
            ht__vec_push(q->a, &writes, s);
    }
    if (!writes.n || !inv->nlines)
        return;
    if (writes.n > 1)
        qsort(writes.p, writes.n, sizeof(void *), cmp_node_start);
    runs = ht_arena_alloc(q->a, inv->nlines * sizeof(*runs));
    for (size_t i = 0; i < inv->nlines; i++) {
        const char *c = inv->lines[i].corr;

        if (!corr_known(inv, c))
            continue;
        if (!nruns || !ht__streq(runs[nruns - 1], c))
            runs[nruns++] = c;
    }
    if (nruns == writes.n) {
        for (size_t i = 0; i < writes.n; i++) {
            struct qnode *w = writes.p[i];

            w->attr_state = ATTR_CORR;
            w->attr = runs[i];
        }
        return;
    }
    for (size_t i = 0; i < writes.n; i++) {
        struct qnode *w = writes.p[i];
        const char *bc = nearest_corr(inv, &w->s);

        w->attr_state = bc ? ATTR_CORR : ATTR_SHARED;
        w->attr = bc;
    }
}

/*
 * Which request's correlation id a node inside a batch invocation works
 * for: its own (or an enclosing subsegment's) annotation, else for a
 * downstream call the correlation id logged nearest to it. Containers
 * (Invocation, Overhead, the segments) are shared.
 */
int ht__q_attr(struct q *q, struct qnode *n, const char **corr)
{
    struct qinv *inv;

    if (n->attr_state != ATTR_UNKNOWN) {
        *corr = n->attr;
        return n->attr_state;
    }
    n->attr_state = ATTR_SHARED;
    inv = ht__q_owner(q, n);
    if (n->s.corr) {
        n->attr_state = ATTR_CORR;
        n->attr = n->s.corr;
    } else if (inv && !inv->batch) {
        if (inv->corr) {
            n->attr_state = ATTR_CORR;
            n->attr = inv->corr;
        }
    } else if (inv && (n->s.flags & HT_SPAN_WRITE)) {
        /* the batch's writes are attributed together, once */
        n->attr_state = ATTR_UNKNOWN;
        if (!inv->writes_assigned)
            assign_writes(q, inv);
        if (n->attr_state == ATTR_UNKNOWN)
            n->attr_state = ATTR_SHARED;
    } else if (inv) {
        struct qnode *p = ht__q_parent(q, n);
        const char *pc;

        if (p && !ht__q_node_inv(q, p) && p->s.kind == HT_SK_CALL &&
            ht__q_attr(q, p, &pc) == ATTR_CORR) {
            n->attr_state = ATTR_CORR;
            n->attr = pc;
        } else if (n->s.kind == HT_SK_CALL && inv->nlines) {
            const char *bc = nearest_corr(inv, &n->s);

            if (bc) {
                n->attr_state = ATTR_CORR;
                n->attr = bc;
            }
        }
    }
    *corr = n->attr;
    return n->attr_state;
}

void ht__collect_inv_spans(struct q *q, struct qnode *n, struct vec *out,
                           int depth)
{
    struct vec *kids;

    if (depth > 64 || n->cgen == q->cgen)
        return;
    n->cgen = q->cgen;
    ht__vec_push(q->a, out, n);
    kids = ht__q_kids(q, n);
    for (size_t i = 0; i < kids->n; i++) {
        struct qnode *k = kids->p[i];

        /* stay inside this invocation */
        if (k->s.kind == HT_SK_LAMBDA && ht__q_node_inv(q, k))
            continue;
        ht__collect_inv_spans(q, k, out, depth + 1);
    }
}
