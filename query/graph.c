/*
 * graph.c - from an id to assembled requests.
 *
 * The store holds nodes, facts and keys; joining happens here, bounded by
 * the size of one request (design.md, "Requests"):
 *   1. resolve the id to start nodes (with an attribution constraint for
 *      request-scoped and record ids);
 *   2. walk up through sync parents and resolved hops to the roots; inside
 *      a batch invocation the way up follows only the records of the
 *      request the start node is attributed to;
 *   3. from each root walk down through children and hops, skipping inside
 *      a batch invocation the children attributed to another request and
 *      flagging the unattributable ones `shared`.
 * Hops are resolved by message id, sequence number, trace header, X-Ray
 * link, or correlation id + resource + time order.
 *
 * Owned by query/. Read-only: it never writes to the store.
 */
#define _GNU_SOURCE
#include "ht_query.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- tiny hash map (pointer values, byte keys in the arena) ---------- */

struct ment {
    uint64_t h;
    const void *k;
    size_t kn;
    void *v;
};

struct map {
    struct ment *e;
    size_t cap, n;
};

static void *map_get(struct map *m, const void *k, size_t kn)
{
    uint64_t h = ht_hash64(k, kn);

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

static void map_put(struct map *m, const void *k, size_t kn, void *v)
{
    if ((m->n + 1) * 2 > m->cap) {
        struct map nm = {calloc(m->cap ? m->cap * 2 : 64, sizeof(struct ment)),
                         m->cap ? m->cap * 2 : 64, 0};

        HT_ASSERT(nm.e);
        for (size_t i = 0; i < m->cap; i++)
            if (m->e[i].k)
                map_put(&nm, m->e[i].k, m->e[i].kn, m->e[i].v);
        free(m->e);
        *m = nm;
    }
    uint64_t h = ht_hash64(k, kn);
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

static void map_free(struct map *m)
{
    free(m->e);
    m->e = NULL;
    m->cap = m->n = 0;
}

/* ---- growable pointer vector in the arena ----------------------------- */

struct vec {
    void **p;
    size_t n, cap;
};

static void vec_push(struct ht_arena *a, struct vec *v, void *x)
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
static bool ptr_seen(struct ht_arena *a, struct map *m, const void *x)
{
    const void **k;

    if (map_get(m, &x, sizeof(x)))
        return true;
    k = ht_arena_alloc(a, sizeof(x));
    *k = x;
    map_put(m, k, sizeof(x), (void *)1);
    return false;
}

static bool vec_has(const struct vec *v, const void *x)
{
    for (size_t i = 0; i < v->n; i++)
        if (v->p[i] == x)
            return true;
    return false;
}

/* ---- the query graph --------------------------------------------------- */

struct qinv;

enum { ATTR_UNKNOWN, ATTR_CORR, ATTR_SHARED };

struct qnode {
    struct ht_span s;
    bool synthetic;
    struct qinv *inv; /* invocation this node is the top of */
    bool inv_done;
    struct qnode *parent;
    bool parent_done;
    struct vec kids;
    bool kids_done;
    struct qinv *owner;
    bool owner_done;
    int attr_state;
    const char *attr;
    unsigned gen;  /* the request walk that last took this node */
    int idx;       /* its index in that request's spans */
    unsigned cgen; /* the collect_inv_spans walk that last took it */
};

struct qinv {
    const char *rid;
    struct ht_inv rec;
    bool has_rec;
    struct ht_fact *recs;
    size_t nrecs;
    struct ht_fact *lines;
    size_t nlines;
    struct qnode *top;
    bool top_done;
    struct vec corrs; /* distinct record correlation ids */
    bool batch;
    const char *corr; /* its one correlation id, NULL for batches */
    bool writes_assigned;
};

struct qhop {
    struct qnode *prod;
    struct qinv *cons;
    const struct ht_fact *rec;
    uint8_t via;
    const char *resource;
    const char *evidence;
};

struct q {
    struct ht_txn *t;
    struct ht_arena *a;
    struct map spans; /* id8 -> qnode */
    struct map invs;  /* request id -> qinv */
    struct map pairs; /* "via\0corr" -> struct vec of qhop */
    unsigned gen, cgen;
    long loads;     /* nodes and invocations loaded: the work bound */
    bool truncated; /* the bound was hit: the answer may be partial */
};

/* Work per query is bounded: a pathological id (a trace id on a million
 * spans) answers with what fits and a `truncated` warning. */
#define MAX_LOADS 2000000
#define MAX_TARGETS 200000
#define MAX_DEPTH 2000

static bool streq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* Collect the targets of one key. */
struct tgt_ctx {
    struct q *q;
    struct vec spans; /* struct ht_id8 * */
    struct vec invs;  /* const char * request ids */
};

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
        vec_push(c->q->a, &c->spans, id);
    } else if (vn > 1 && p[0] == HT_TARGET_INV) {
        char rid[HT_ID_PACKED_MAX];

        if (ht_id_unpack(p + 1, vn - 1, rid, sizeof(rid)))
            vec_push(c->q->a, &c->invs, ht_arena_strdup(c->q->a, rid));
    }
    return 0;
}

static void targets(struct q *q, char prefix, const void *p, size_t n,
                    struct tgt_ctx *out)
{
    uint8_t key[HT_KEY_MAX];
    size_t kn;

    memset(out, 0, sizeof(*out));
    out->q = q;
    if (!p || !n)
        return;
    kn = ht_key_make(key, prefix, p, n);
    ht_store_dups(q->t, HT_DB_KEYS, key, kn, tgt_visit, out);
}

/* The targets of a text id (packed like the assembler packs it). */
static void targets_s(struct q *q, char prefix, const char *s,
                      struct tgt_ctx *out)
{
    uint8_t key[HT_KEY_MAX];

    memset(out, 0, sizeof(*out));
    out->q = q;
    if (!s || !*s)
        return;
    ht_store_dups(q->t, HT_DB_KEYS, key, ht_key_make_id(key, prefix, s),
                  tgt_visit, out);
}

static struct qnode *q_span(struct q *q, const struct ht_id8 *id)
{
    struct qnode *n = map_get(&q->spans, id->b, 8);
    const void *v;
    size_t vn;

    if (n)
        return n;
    if (++q->loads > MAX_LOADS) {
        q->truncated = true;
        return NULL;
    }
    if (ht_store_get(q->t, HT_DB_NODES, id->b, 8, &v, &vn) != HT_ERR_OK)
        return NULL;
    n = ht_arena_alloc(q->a, sizeof(*n));
    memset(n, 0, sizeof(*n));
    if (ht_span_unpack(v, vn, q->a, &n->s) != HT_ERR_OK)
        return NULL;
    map_put(&q->spans, n->s.id.b, 8, n);
    return n;
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
    if (f->kind == HT_FACT_RECORD)
        vec_push(c->q->a, &c->recs, f);
    else if (f->kind == HT_FACT_CORR)
        vec_push(c->q->a, &c->lines, f);
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
            if (streq(inv->corrs.p[j], c))
                seen = true;
        if (!seen)
            vec_push(q->a, &inv->corrs, (void *)c);
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
            size_t cnt = (size_t)(uintptr_t)map_get(&counts, c, cl) + 1;

            if (!c)
                continue;
            map_put(&counts, c, cl, (void *)(uintptr_t)cnt);
            if (cnt >= bestn) {
                bestn = cnt;
                best = i;
            }
        }
        map_free(&counts);
        if (bestn)
            inv->corr = inv->lines[best].corr;
    }
}

static struct qinv *q_inv(struct q *q, const char *rid)
{
    struct qinv *inv;
    const void *v;
    size_t vn, rn, prn;
    uint8_t prid[HT_ID_PACKED_MAX];
    uint8_t *prefix;

    if (!rid || !*rid)
        return NULL;
    rn = strlen(rid);
    inv = map_get(&q->invs, rid, rn);
    if (inv)
        return inv;
    if (++q->loads > MAX_LOADS) {
        q->truncated = true;
        return NULL;
    }
    inv = ht_arena_alloc(q->a, sizeof(*inv));
    memset(inv, 0, sizeof(*inv));
    inv->rid = ht_arena_strdup(q->a, rid);
    if (rn > 255)
        return NULL; /* never stored */
    prn = ht_id_pack(rid, rn, prid);
    if (ht_store_get(q->t, HT_DB_INV, prid, prn, &v, &vn) == HT_ERR_OK &&
        ht_inv_unpack(v, vn, q->a, &inv->rec) == HT_ERR_OK)
        inv->has_rec = true;
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
    map_put(&q->invs, inv->rid, rn, inv);
    return inv;
}

static struct qnode *q_parent(struct q *q, struct qnode *n)
{
    if (!n->parent_done) {
        n->parent_done = true;
        if (!n->synthetic && (n->s.flags & HT_SPAN_HAS_PARENT))
            n->parent = q_span(q, &n->s.parent);
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

static struct vec *q_kids(struct q *q, struct qnode *n)
{
    if (!n->kids_done) {
        struct tgt_ctx c;

        n->kids_done = true;
        if (n->synthetic)
            return &n->kids;
        targets(q, HT_K_CHILD, n->s.id.b, 8, &c);
        for (size_t i = 0; i < c.spans.n; i++) {
            struct qnode *k = q_span(q, c.spans.p[i]);

            if (k && k != n)
                vec_push(q->a, &n->kids, k);
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
    map_put(&q->spans, n->s.id.b, 8, n);
    return n;
}

static struct qnode *q_inv_top(struct q *q, struct qinv *inv)
{
    struct tgt_ctx c;

    if (inv->top_done)
        return inv->top;
    inv->top_done = true;
    targets_s(q, HT_K_LAMBDA, inv->rid, &c);
    for (size_t i = 0; i < c.spans.n && !inv->top; i++)
        inv->top = q_span(q, c.spans.p[i]);
    if (!inv->top && inv->has_rec && (inv->rec.flags & HT_INV_HAS_SEGMENT)) {
        struct qnode *f = q_span(q, &inv->rec.segment);
        struct qnode *p = f ? q_parent(q, f) : NULL;

        inv->top = p && p->s.kind == HT_SK_LAMBDA ? p : f;
    }
    if (!inv->top)
        inv->top = synth_node(q, inv);
    inv->top->inv = inv;
    inv->top->inv_done = true;
    return inv->top;
}

/* The invocation `n` is the top of, or NULL. */
static struct qinv *q_node_inv(struct q *q, struct qnode *n)
{
    if (n->inv_done)
        return n->inv;
    n->inv_done = true;
    if (n->s.kind == HT_SK_LAMBDA && n->s.request_id) {
        n->inv = q_inv(q, n->s.request_id);
    } else if (n->s.kind == HT_SK_FUNCTION) {
        struct qnode *p = q_parent(q, n);
        struct tgt_ctx c;

        if (p && p->s.kind == HT_SK_LAMBDA)
            return NULL;
        targets(q, HT_K_SEGMENT, n->s.id.b, 8, &c);
        if (c.invs.n)
            n->inv = q_inv(q, c.invs.p[0]);
        if (!n->inv) {
            /* logs that name the trace and the function */
            targets(q, HT_K_TRACE, n->s.trace.b, 16, &c);
            for (size_t i = 0; i < c.invs.n && !n->inv; i++) {
                struct qinv *cand = q_inv(q, c.invs.p[i]);

                if (cand && streq(cand->rec.function, n->s.name))
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

static struct qinv *q_owner(struct q *q, struct qnode *n)
{
    struct qnode *x = n;
    int guard = 0;

    if (n->owner_done)
        return n->owner;
    n->owner_done = true;
    while (x && guard++ < 256) {
        struct qinv *inv = q_node_inv(q, x);

        if (inv) {
            n->owner = inv;
            break;
        }
        x = q_parent(q, x);
    }
    return n->owner;
}

static void collect_inv_spans(struct q *q, struct qnode *n, struct vec *out,
                              int depth);
static struct qnode *q_inv_top(struct q *q, struct qinv *inv);

static bool corr_known(const struct qinv *inv, const char *c)
{
    if (!inv->corrs.n)
        return c != NULL;
    for (size_t j = 0; j < inv->corrs.n; j++)
        if (streq(inv->corrs.p[j], c))
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
        } else if (d == best && !streq(bc, l->corr)) {
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
    collect_inv_spans(q, q_inv_top(q, inv), &spans, 0);
    for (size_t i = 0; i < spans.n; i++) {
        struct qnode *s = spans.p[i];

        if ((s->s.flags & HT_SPAN_WRITE) && !s->s.corr)
            vec_push(q->a, &writes, s);
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
        if (!nruns || !streq(runs[nruns - 1], c))
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
static int q_attr(struct q *q, struct qnode *n, const char **corr)
{
    struct qinv *inv;

    if (n->attr_state != ATTR_UNKNOWN) {
        *corr = n->attr;
        return n->attr_state;
    }
    n->attr_state = ATTR_SHARED;
    inv = q_owner(q, n);
    if (n->s.corr) {
        n->attr_state = ATTR_CORR;
        n->attr = n->s.corr;
    } else if (inv && !inv->batch) {
        if (inv->corr) {
            n->attr_state = ATTR_CORR;
            n->attr = inv->corr;
        }
    } else if (inv && (n->s.flags & HT_SPAN_WRITE)) {
        if (!inv->writes_assigned) {
            n->attr_state = ATTR_UNKNOWN;
            assign_writes(q, inv);
            if (n->attr_state == ATTR_UNKNOWN)
                n->attr_state = ATTR_SHARED;
        }
    } else if (inv) {
        struct qnode *p = q_parent(q, n);
        const char *pc;

        if (p && !q_node_inv(q, p) && p->s.kind == HT_SK_CALL &&
            q_attr(q, p, &pc) == ATTR_CORR) {
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

/* ---- hops ---------------------------------------------------------------- */

static bool resource_fits(const char *prod, const char *cons)
{
    if (!prod || !cons)
        return true;
    if (strcmp(prod, cons) == 0)
        return true;
    /* a stream ARN or URL on one side */
    size_t pl = strlen(prod), cl = strlen(cons);
    return pl > cl && prod[pl - cl - 1] == '/' &&
           strcmp(prod + pl - cl, cons) == 0;
}

static void collect_inv_spans(struct q *q, struct qnode *n, struct vec *out,
                              int depth)
{
    struct vec *kids;

    if (depth > 64 || n->cgen == q->cgen)
        return;
    n->cgen = q->cgen;
    vec_push(q->a, out, n);
    kids = q_kids(q, n);
    for (size_t i = 0; i < kids->n; i++) {
        struct qnode *k = kids->p[i];

        /* stay inside this invocation */
        if (k->s.kind == HT_SK_LAMBDA && q_node_inv(q, k))
            continue;
        collect_inv_spans(q, k, out, depth + 1);
    }
}

struct cons_rec {
    struct qinv *inv;
    const struct ht_fact *rec;
};

static int cmp_seq(const char *a, const char *b)
{
    size_t la = a ? strlen(a) : 0, lb = b ? strlen(b) : 0;

    if (la != lb)
        return la < lb ? -1 : 1;
    return la ? strcmp(a, b) : 0;
}

static int cmp_cons(const void *x, const void *y)
{
    const struct cons_rec *a = *(struct cons_rec *const *)x;
    const struct cons_rec *b = *(struct cons_rec *const *)y;
    int c = cmp_seq(a->rec->resource, b->rec->resource);

    if (c)
        return c;
    if (a->rec->sent_us != b->rec->sent_us)
        return a->rec->sent_us < b->rec->sent_us ? -1 : 1;
    return cmp_seq(a->rec->record_id, b->rec->record_id);
}

static int cmp_prod_end(const void *x, const void *y)
{
    const struct qnode *a = *(struct qnode *const *)x;
    const struct qnode *b = *(struct qnode *const *)y;

    if (a->s.end_us != b->s.end_us)
        return a->s.end_us < b->s.end_us ? -1 : 1;
    return memcmp(a->s.id.b, b->s.id.b, 8);
}

static bool consumes(const struct qinv *inv, uint8_t via, const char *corr)
{
    for (size_t i = 0; i < inv->nrecs; i++)
        if (inv->recs[i].via == via && streq(inv->recs[i].corr, corr))
            return true;
    return false;
}

/*
 * With tracing off the write itself is invisible: the producer half is the
 * invocation that worked for `corr` (logs only) and finished last before
 * the record reached the stream.
 */
static void logs_only_pairs(struct q *q, uint8_t via, const char *corr,
                            const struct tgt_ctx *c, const struct vec *cons,
                            struct vec *out)
{
    struct vec cands = {0};

    for (size_t i = 0; i < c->invs.n; i++) {
        struct qinv *inv = q_inv(q, c->invs.p[i]);
        struct qnode *top;

        if (!inv || consumes(inv, via, corr) || !streq(inv->corr, corr))
            continue;
        top = q_inv_top(q, inv);
        if (top->synthetic && !vec_has(&cands, top))
            vec_push(q->a, &cands, top);
    }
    for (size_t k = 0; k < cons->n; k++) {
        struct cons_rec *cr = cons->p[k];
        struct qnode *ctop = q_inv_top(q, cr->inv);
        int64_t by = cr->rec->sent_us ? cr->rec->sent_us : ctop->s.start_us;
        struct qnode *best = NULL;

        /* stream timestamps can be coarse (DynamoDB: seconds) */
        if (ctop->s.start_us > by)
            by = ctop->s.start_us;
        for (size_t i = 0; i < cands.n; i++) {
            struct qnode *p = cands.p[i];

            if (p->s.end_us <= by && (!best || p->s.end_us > best->s.end_us))
                best = p;
        }
        if (best) {
            struct qhop *h = ht_arena_alloc(q->a, sizeof(*h));

            h->prod = best;
            h->cons = cr->inv;
            h->rec = cr->rec;
            h->via = via;
            h->resource = cr->rec->resource;
            h->evidence = "correlation";
            vec_push(q->a, out, h);
        }
    }
}

/*
 * Stream hops without a shared record id: the writes attributed to `corr`
 * and the stream records carrying `corr`, per resource, paired in time
 * order. Cached per (via, corr).
 */
static struct vec *corr_pairs(struct q *q, uint8_t via, const char *corr)
{
    size_t cn = strlen(corr);
    char *key = ht_arena_alloc(q->a, cn + 2);
    struct vec *out;
    struct tgt_ctx c;
    struct vec cons = {0}, prods = {0};
    struct map pseen = {0}, claimed = {0};

    key[0] = (char)via;
    memcpy(key + 1, corr, cn + 1);
    out = map_get(&q->pairs, key, cn + 1);
    if (out)
        return out;
    out = ht_arena_alloc(q->a, sizeof(*out));
    memset(out, 0, sizeof(*out));
    map_put(&q->pairs, key, cn + 1, out);

    targets_s(q, HT_K_CORR, corr, &c);
    for (size_t i = 0; i < c.invs.n; i++) {
        struct qinv *inv = q_inv(q, c.invs.p[i]);
        struct vec spans = {0};

        if (!inv)
            continue;
        for (size_t j = 0; j < inv->nrecs; j++) {
            const struct ht_fact *r = &inv->recs[j];

            if (r->via == via && streq(r->corr, corr)) {
                struct cons_rec *cr = ht_arena_alloc(q->a, sizeof(*cr));

                cr->inv = inv;
                cr->rec = r;
                vec_push(q->a, &cons, cr);
            }
        }
        q->cgen++;
        collect_inv_spans(q, q_inv_top(q, inv), &spans, 0);
        for (size_t j = 0; j < spans.n; j++) {
            struct qnode *s = spans.p[j];
            const char *ac;

            if ((s->s.flags & HT_SPAN_WRITE) && s->s.via == via &&
                !s->s.sequence && q_attr(q, s, &ac) == ATTR_CORR &&
                streq(ac, corr) && !ptr_seen(q->a, &pseen, s))
                vec_push(q->a, &prods, s);
        }
    }
    for (size_t i = 0; i < c.spans.n; i++) {
        struct qnode *s = q_span(q, c.spans.p[i]);

        if (s && (s->s.flags & HT_SPAN_WRITE) && s->s.via == via &&
            !s->s.sequence && !ptr_seen(q->a, &pseen, s))
            vec_push(q->a, &prods, s);
    }
    if (cons.n > 1)
        qsort(cons.p, cons.n, sizeof(void *), cmp_cons);
    map_free(&pseen);
    if (!prods.n) {
        logs_only_pairs(q, via, corr, &c, &cons, out);
        return out;
    }
    if (prods.n > 1)
        qsort(prods.p, prods.n, sizeof(void *), cmp_prod_end);
    /* per resource, in time order: the i-th write meets the i-th record */
    for (size_t i = 0; i < cons.n;) {
        const char *res = ((struct cons_rec *)cons.p[i])->rec->resource;
        size_t j = i, pi = 0;

        while (j < cons.n &&
               cmp_seq(((struct cons_rec *)cons.p[j])->rec->resource, res) == 0)
            j++;
        for (size_t k = i; k < j; k++) {
            struct cons_rec *cr = cons.p[k];
            struct qnode *p = NULL;

            while (pi < prods.n) {
                struct qnode *cand = prods.p[pi++];

                if (!map_get(&claimed, &cand, sizeof(cand)) &&
                    resource_fits(cand->s.resource, res)) {
                    p = cand;
                    break;
                }
            }
            if (!p)
                break;
            ptr_seen(q->a, &claimed, p);
            struct qhop *h = ht_arena_alloc(q->a, sizeof(*h));
            h->prod = p;
            h->cons = cr->inv;
            h->rec = cr->rec;
            h->via = via;
            h->resource = res;
            h->evidence = "correlation";
            vec_push(q->a, out, h);
        }
        i = j;
    }
    map_free(&claimed);
    return out;
}

static struct qhop *mkhop(struct q *q, struct qnode *prod, struct qinv *cons,
                          const struct ht_fact *rec, uint8_t via,
                          const char *resource, const char *evidence)
{
    struct qhop *h = ht_arena_alloc(q->a, sizeof(*h));

    h->prod = prod;
    h->cons = cons;
    h->rec = rec;
    h->via = via;
    h->resource = resource;
    h->evidence = evidence;
    return h;
}

static bool hop_listed(const struct vec *v, const struct qnode *prod,
                       const struct qinv *cons)
{
    for (size_t i = 0; i < v->n; i++) {
        const struct qhop *h = v->p[i];

        if (h->prod == prod && h->cons == cons)
            return true;
    }
    return false;
}

static const char *link_resource(struct qnode *prod)
{
    return prod->s.resource ? prod->s.resource : prod->s.name;
}

/* Hops into invocation `inv` (its consumer side). */
static void q_incoming(struct q *q, struct qinv *inv, struct vec *out)
{
    struct qnode *top = q_inv_top(q, inv);

    for (size_t i = 0; i < inv->nrecs; i++) {
        const struct ht_fact *r = &inv->recs[i];
        struct tgt_ctx c;
        struct qnode *p = NULL;

        if (r->via == HT_VIA_SQS) {
            targets_s(q, HT_K_SQS, r->record_id, &c);
            for (size_t j = 0; j < c.spans.n && !p; j++)
                p = q_span(q, c.spans.p[j]);
            if (p) {
                vec_push(
                    q->a, out,
                    mkhop(q, p, inv, r, HT_VIA_SQS, r->resource, "message-id"));
                continue;
            }
            if ((r->flags & HT_FACT_HAS_HDR) &&
                (p = q_span(q, &r->hdr_parent))) {
                vec_push(q->a, out,
                         mkhop(q, p, inv, r, HT_VIA_SQS, r->resource,
                               "trace-header"));
            }
            continue;
        }
        if (r->via == HT_VIA_KINESIS && r->record_id) {
            targets_s(q, HT_K_KSEQ, r->record_id, &c);
            for (size_t j = 0; j < c.spans.n && !p; j++)
                p = q_span(q, c.spans.p[j]);
            if (p) {
                vec_push(q->a, out,
                         mkhop(q, p, inv, r, HT_VIA_KINESIS, r->resource,
                               "sequence-number"));
                continue;
            }
        }
        if ((r->via == HT_VIA_KINESIS || r->via == HT_VIA_DYNAMODB) &&
            r->corr) {
            struct vec *pairs = corr_pairs(q, r->via, r->corr);

            for (size_t j = 0; j < pairs->n; j++) {
                struct qhop *h = pairs->p[j];

                if (h->cons == inv && h->rec->record_id &&
                    streq(h->rec->record_id, r->record_id))
                    vec_push(q->a, out, h);
            }
        }
    }
    /* X-Ray links on the invocation's segments */
    for (int pass = 0; pass < 2 && top; pass++) {
        struct qnode *n = top;

        if (pass == 1) {
            struct vec *k = q_kids(q, top);

            n = NULL;
            for (size_t i = 0; i < k->n; i++)
                if (((struct qnode *)k->p[i])->s.kind == HT_SK_FUNCTION)
                    n = k->p[i];
            if (!n)
                break;
        }
        for (uint32_t i = 0; i < n->s.nlinks; i++) {
            struct qnode *p = q_span(q, &n->s.links[i].id);

            if (!p || p == top || hop_listed(out, p, inv))
                continue;
            if (p->s.via == HT_VIA_SQS)
                vec_push(q->a, out,
                         mkhop(q, p, inv, NULL, HT_VIA_SQS, p->s.resource,
                               "xray-link"));
            else
                vec_push(q->a, out,
                         mkhop(q, p, inv, NULL, HT_VIA_LINK, link_resource(p),
                               "xray-link"));
        }
    }
}

/* Hops out of producer span `p`. */
static void q_outgoing(struct q *q, struct qnode *p, struct vec *out)
{
    struct tgt_ctx c;

    if (p->synthetic) {
        const uint8_t vias[] = {HT_VIA_DYNAMODB, HT_VIA_KINESIS};

        if (!p->inv || !p->inv->corr)
            return;
        for (size_t v = 0; v < 2; v++) {
            struct vec *pairs = corr_pairs(q, vias[v], p->inv->corr);

            for (size_t i = 0; i < pairs->n; i++) {
                struct qhop *h = pairs->p[i];

                if (h->prod == p && !hop_listed(out, p, h->cons))
                    vec_push(q->a, out, h);
            }
        }
        return;
    }
    if (p->s.message_id) {
        targets_s(q, HT_K_SQS, p->s.message_id, &c);
        for (size_t i = 0; i < c.invs.n; i++) {
            struct qinv *inv = q_inv(q, c.invs.p[i]);

            for (size_t j = 0; inv && j < inv->nrecs; j++)
                if (inv->recs[j].via == HT_VIA_SQS &&
                    streq(inv->recs[j].record_id, p->s.message_id) &&
                    !hop_listed(out, p, inv))
                    vec_push(q->a, out,
                             mkhop(q, p, inv, &inv->recs[j], HT_VIA_SQS,
                                   inv->recs[j].resource, "message-id"));
        }
    }
    targets(q, HT_K_HEADER, p->s.id.b, 8, &c);
    for (size_t i = 0; i < c.invs.n; i++) {
        struct qinv *inv = q_inv(q, c.invs.p[i]);

        for (size_t j = 0; inv && j < inv->nrecs; j++) {
            const struct ht_fact *r = &inv->recs[j];

            if ((r->flags & HT_FACT_HAS_HDR) &&
                memcmp(r->hdr_parent.b, p->s.id.b, 8) == 0 &&
                !hop_listed(out, p, inv)) {
                /* a message id that names another producer wins */
                struct tgt_ctx m;
                bool other = false;

                targets_s(q, HT_K_SQS, r->record_id, &m);
                for (size_t k = 0; k < m.spans.n; k++)
                    if (memcmp(((struct ht_id8 *)m.spans.p[k])->b, p->s.id.b,
                               8) != 0)
                        other = true;
                if (!other)
                    vec_push(
                        q->a, out,
                        mkhop(q, p, inv, r, HT_VIA_SQS, r->resource,
                              p->s.message_id ? "message-id" : "trace-header"));
            }
        }
    }
    targets(q, HT_K_LINK, p->s.id.b, 8, &c);
    for (size_t i = 0; i < c.spans.n; i++) {
        struct qnode *l = q_span(q, c.spans.p[i]);
        struct qinv *inv;

        if (!l)
            continue;
        inv = q_node_inv(q, l);
        if (!inv && l->s.kind == HT_SK_FUNCTION) {
            struct qnode *lp = q_parent(q, l);

            inv = lp ? q_node_inv(q, lp) : NULL;
        }
        if (!inv || hop_listed(out, p, inv))
            continue;
        vec_push(q->a, out,
                 p->s.via == HT_VIA_SQS ? mkhop(q, p, inv, NULL, HT_VIA_SQS,
                                                p->s.resource, "xray-link")
                                        : mkhop(q, p, inv, NULL, HT_VIA_LINK,
                                                link_resource(p), "xray-link"));
    }
    if (p->s.sequence) {
        targets_s(q, HT_K_KSEQ, p->s.sequence, &c);
        for (size_t i = 0; i < c.invs.n; i++) {
            struct qinv *inv = q_inv(q, c.invs.p[i]);

            for (size_t j = 0; inv && j < inv->nrecs; j++)
                if (inv->recs[j].via == HT_VIA_KINESIS &&
                    streq(inv->recs[j].record_id, p->s.sequence) &&
                    !hop_listed(out, p, inv))
                    vec_push(q->a, out,
                             mkhop(q, p, inv, &inv->recs[j], HT_VIA_KINESIS,
                                   inv->recs[j].resource, "sequence-number"));
        }
    } else if ((p->s.flags & HT_SPAN_WRITE) &&
               (p->s.via == HT_VIA_KINESIS || p->s.via == HT_VIA_DYNAMODB)) {
        const char *corr;

        if (q_attr(q, p, &corr) == ATTR_CORR && corr) {
            struct vec *pairs = corr_pairs(q, p->s.via, corr);

            for (size_t i = 0; i < pairs->n; i++) {
                struct qhop *h = pairs->p[i];

                if (h->prod == p && !hop_listed(out, p, h->cons))
                    vec_push(q->a, out, h);
            }
        }
    }
}

/* ---- walking up to the roots ---------------------------------------- */

struct seen_up {
    struct qnode *n;
    const char *c;
};

struct up_ctx {
    struct vec roots;
    struct vec seen; /* nodes visited (constraint-insensitive guard) */
    int budget;
};

static void walk_up(struct q *q, struct up_ctx *u, struct qnode *n,
                    const char *constraint, int depth)
{
    struct qnode *p;
    struct qinv *inv;
    const char *ac;

    if (u->budget-- <= 0 || depth > MAX_DEPTH) {
        q->truncated = true;
        return;
    }
    for (int guard = 0; guard < 512; guard++) {
        if (q_attr(q, n, &ac) == ATTR_CORR && ac) {
            struct qinv *o = q_owner(q, n);

            if (o && o->batch)
                constraint = ac;
        }
        p = q_parent(q, n);
        if (!p)
            break;
        n = p;
    }
    inv = q_node_inv(q, n);
    if (inv) {
        struct vec hops = {0}, keep = {0};

        q_incoming(q, inv, &hops);
        if (constraint) {
            for (size_t i = 0; i < hops.n; i++) {
                struct qhop *h = hops.p[i];

                if (h->rec && streq(h->rec->corr, constraint))
                    vec_push(q->a, &keep, h);
            }
            /* records without the id: follow the producer's own attribution */
            if (!keep.n)
                for (size_t i = 0; i < hops.n; i++) {
                    struct qhop *h = hops.p[i];
                    const char *pc;

                    if (q_attr(q, h->prod, &pc) == ATTR_CORR &&
                        streq(pc, constraint))
                        vec_push(q->a, &keep, h);
                }
            if (keep.n)
                hops = keep;
        }
        if (hops.n) {
            /* the same invocation is reached once per request it served:
             * guard on (node, constraint), which also stops cycles */
            for (size_t i = 0; i < u->seen.n; i++) {
                struct seen_up *e = u->seen.p[i];

                if (e->n == n &&
                    (e->c == constraint || streq(e->c, constraint)))
                    return;
            }
            struct seen_up *e = ht_arena_alloc(q->a, sizeof(*e));
            e->n = n;
            e->c = constraint;
            vec_push(q->a, &u->seen, e);
            for (size_t i = 0; i < hops.n; i++) {
                struct qhop *h = hops.p[i];

                walk_up(q, u, h->prod,
                        h->rec && h->rec->corr ? h->rec->corr : constraint,
                        depth + 1);
            }
            return;
        }
    }
    if (!vec_has(&u->roots, n))
        vec_push(q->a, &u->roots, n);
}

/* ---- walking down: assembling one request ----------------------------- */

struct down_ctx {
    struct vec nodes;    /* qnode * in the request */
    struct vec shared;   /* parallel: (void *)1 when shared */
    struct vec hops;     /* qhop * */
    struct map allowed;  /* qinv * -> struct vec of corr ids of this request */
    struct vec corrs;    /* correlation ids of the request */
    struct map hop_seen; /* (producer, consumer) pairs already listed */
    int budget;
};

static void add_corr(struct q *q, struct down_ctx *d, const char *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < d->corrs.n; i++)
        if (streq(d->corrs.p[i], c))
            return;
    vec_push(q->a, &d->corrs, (void *)c);
}

static void visit(struct q *q, struct down_ctx *d, struct qnode *n, bool shared,
                  int depth);

static void visit_kids(struct q *q, struct down_ctx *d, struct qnode *n,
                       bool shared, int depth)
{
    struct vec *kids = q_kids(q, n);
    struct qinv *owner = q_owner(q, n);

    for (size_t i = 0; i < kids->n; i++) {
        struct qnode *k = kids->p[i];
        bool ks = shared;

        if (owner && owner->batch && !q_node_inv(q, k)) {
            const char *ac;
            int st = q_attr(q, k, &ac);

            if (st == ATTR_CORR) {
                struct vec *al = map_get(&d->allowed, &owner, sizeof(owner));
                bool mine = false;

                if (al && al->n) {
                    for (size_t j = 0; j < al->n; j++)
                        mine |= streq(al->p[j], ac);
                } else {
                    for (size_t j = 0; j < d->corrs.n; j++)
                        mine |= streq(d->corrs.p[j], ac);
                    if (!d->corrs.n)
                        mine = true;
                }
                if (!mine)
                    continue;
            } else if (k->s.kind == HT_SK_CALL ||
                       (k->s.flags & HT_SPAN_WRITE)) {
                ks = true;
            }
        }
        visit(q, d, k, ks, depth + 1);
    }
}

static void visit(struct q *q, struct down_ctx *d, struct qnode *n, bool shared,
                  int depth)
{
    struct vec out = {0};
    struct qinv *inv;

    if (n->gen == q->gen)
        return;
    if (d->budget-- <= 0 || depth > MAX_DEPTH) {
        q->truncated = true;
        return;
    }
    n->gen = q->gen;
    n->idx = (int)d->nodes.n;
    vec_push(q->a, &d->nodes, n);
    vec_push(q->a, &d->shared, shared ? (void *)1 : NULL);
    inv = q_node_inv(q, n);
    if (inv && !inv->batch)
        add_corr(q, d, inv->corr);
    if (n->s.corr && !shared)
        add_corr(q, d, n->s.corr);
    visit_kids(q, d, n, shared, depth);
    if (shared)
        return; /* shared work does not pull in other requests' hops */
    q_outgoing(q, n, &out);
    for (size_t i = 0; i < out.n; i++) {
        struct qhop *h = out.p[i];
        struct qnode *top = q_inv_top(q, h->cons);
        void **pair = ht_arena_alloc(q->a, 2 * sizeof(void *));

        pair[0] = h->prod;
        pair[1] = h->cons;
        if (map_get(&d->hop_seen, pair, 2 * sizeof(void *)))
            continue;
        map_put(&d->hop_seen, pair, 2 * sizeof(void *), h);
        vec_push(q->a, &d->hops, h);
        if (h->rec && h->rec->corr) {
            struct qinv *ci = h->cons;
            struct vec *al = map_get(&d->allowed, &ci, sizeof(ci));

            if (!al) {
                al = ht_arena_alloc(q->a, sizeof(*al));
                memset(al, 0, sizeof(*al));
                struct qinv **kp = ht_arena_alloc(q->a, sizeof(ci));
                *kp = ci;
                map_put(&d->allowed, kp, sizeof(ci), al);
            }
            vec_push(q->a, al, (void *)h->rec->corr);
            add_corr(q, d, h->rec->corr);
        }
        if (top->gen == q->gen)
            visit_kids(q, d, top, false, depth); /* a second record */
        else
            visit(q, d, top, false, depth + 1);
    }
}

/* ---- from nodes to the result ---------------------------------------- */

/* A node's index in the request being built, or -1 when not in it. */
static int index_of(const struct q *q, const struct qnode *n)
{
    return n && n->gen == q->gen ? n->idx : -1;
}

static const char *hexid(struct ht_arena *a, const struct ht_id8 *id)
{
    char buf[17];

    ht_id8_format(id, buf);
    return ht_arena_strdup(a, buf);
}

static void add_warning(struct ht_arena *a, struct ht_request *r,
                        const char *json)
{
    const char **nw = ht_arena_alloc(a, (r->nwarnings + 1) * sizeof(*nw));

    for (size_t i = 0; i < r->nwarnings; i++) {
        if (strcmp(r->warnings[i], json) == 0)
            return;
        nw[i] = r->warnings[i];
    }
    nw[r->nwarnings++] = json;
    r->warnings = nw;
}

static void build_request(struct q *q, struct qnode *root, struct ht_request *r)
{
    struct down_ctx d;
    struct vec tids = {0};

    memset(&d, 0, sizeof(d));
    memset(r, 0, sizeof(*r));
    d.budget = 200000;
    q->gen++;
    visit(q, &d, root, false, 0);
    map_free(&d.allowed);
    map_free(&d.hop_seen);

    r->nspans = d.nodes.n;
    r->spans = ht_arena_alloc(q->a, (d.nodes.n + 1) * sizeof(*r->spans));
    r->root = 0;
    r->start_us = INT64_MAX;
    r->end_us = INT64_MIN;
    for (size_t i = 0; i < d.nodes.n; i++) {
        struct qnode *n = d.nodes.p[i];
        struct ht_qspan *s = &r->spans[i];
        struct qinv *inv = q_owner(q, n);
        struct qnode *p = n->synthetic ? NULL : q_parent(q, n);
        char tbuf[36];

        memset(s, 0, sizeof(*s));
        s->wait_hop = -1;
        s->s = n->s;
        s->parent = p ? index_of(q, p) : -1;
        s->shared = d.shared.p[i] != NULL;
        s->logs_only = n->synthetic;
        if (inv) {
            s->request_id = inv->rid;
            s->cold = (inv->has_rec && (inv->rec.flags & HT_INV_COLD)) != 0;
        }
        if (n->s.kind == HT_SK_LAMBDA || n->s.kind == HT_SK_FUNCTION ||
            n->s.kind == HT_SK_APIGW || n->s.kind == HT_SK_SEGMENT || !p)
            s->service = n->s.name;
        if (n->s.kind == HT_SK_INIT && inv)
            s->cold = true;
        if (n->s.start_us < r->start_us)
            r->start_us = n->s.start_us;
        if (n->s.end_us > r->end_us)
            r->end_us = n->s.end_us;
        if (!n->synthetic || !ht_tid_is_zero(&n->s.trace)) {
            ht_tid_format(&n->s.trace, tbuf);
            bool seen = false;

            for (size_t j = 0; j < tids.n; j++)
                seen |= strcmp(tids.p[j], tbuf) == 0;
            if (!seen && !ht_tid_is_zero(&n->s.trace))
                vec_push(q->a, &tids, ht_arena_strdup(q->a, tbuf));
        }
    }
    /* parents that loop (ids reused across documents) would make every walk
     * up endless: cut the loop where it closes */
    for (size_t i = 0; i < r->nspans; i++) {
        int j = r->spans[i].parent, steps = 0;

        while (j >= 0 && j != (int)i && steps++ < 4096)
            j = r->spans[j].parent;
        if (j == (int)i) {
            r->spans[i].parent = -1;
            add_warning(q->a, r, "{\"type\":\"parent_cycle\"}");
        }
    }
    /* services: inherit the enclosing segment's name */
    for (size_t i = 0; i < r->nspans; i++) {
        int j = (int)i, guard = 0;

        while (!r->spans[j].service && r->spans[j].parent >= 0 && guard++ < 256)
            j = r->spans[j].parent;
        if (!r->spans[i].service)
            r->spans[i].service =
                r->spans[j].service ? r->spans[j].service : r->spans[i].s.name;
    }
    /* a cold invocation marks its segments */
    for (size_t i = 0; i < r->nspans; i++)
        if (r->spans[i].s.kind == HT_SK_INIT) {
            int j = r->spans[i].parent, guard = 0;

            while (j >= 0 && guard++ < 256) {
                r->spans[j].cold = true;
                j = r->spans[j].parent;
                if (j >= 0 && r->spans[j].s.kind == HT_SK_APIGW)
                    break;
            }
        }
    r->nhops = d.hops.n;
    r->hops = ht_arena_alloc(q->a, (d.hops.n + 1) * sizeof(*r->hops));
    for (size_t i = 0; i < d.hops.n; i++) {
        struct qhop *h = d.hops.p[i];
        struct ht_qhop *o = &r->hops[i];
        struct qnode *top = q_inv_top(q, h->cons);

        o->from = index_of(q, h->prod);
        o->to = index_of(q, top);
        o->via = h->via;
        o->resource = h->resource ? h->resource : "";
        o->evidence = h->evidence;
        o->wait_ms = (double)(top->s.start_us - h->prod->s.end_us) / 1000.0;
    }
    /* an async invocation's Lambda segment holds "Attempt #N" subsegments
     * that wrap the function's run, while the function segment names the
     * Lambda segment as its parent: put the function under the attempt it
     * ran in, so the path goes through the function's own work */
    for (size_t i = 0; i < r->nspans; i++) {
        struct ht_qspan *f = &r->spans[i];
        int p = f->parent;

        if (f->s.kind != HT_SK_FUNCTION || p < 0 ||
            r->spans[p].s.kind != HT_SK_LAMBDA)
            continue;
        for (size_t k = 0; k < r->nspans; k++) {
            const struct ht_qspan *a = &r->spans[k];

            if (a->parent == p && strncmp(a->s.name, "Attempt #", 9) == 0 &&
                f->s.start_us >= a->s.start_us - 1000 &&
                f->s.start_us <= a->s.end_us) {
                f->parent = (int)k;
                break;
            }
        }
    }
    /* async invokes: a Lambda segment whose parent is an Event invoke */
    for (size_t i = 0; i < r->nspans; i++) {
        struct ht_qspan *s = &r->spans[i];

        if (s->s.kind == HT_SK_LAMBDA && s->parent >= 0 &&
            (r->spans[s->parent].s.flags & HT_SPAN_ASYNC_INVOKE)) {
            struct ht_qhop *nh =
                ht_arena_alloc(q->a, (r->nhops + 1) * sizeof(*nh));

            memcpy(nh, r->hops, r->nhops * sizeof(*nh));
            nh[r->nhops].from = s->parent;
            nh[r->nhops].to = (int)i;
            nh[r->nhops].via = HT_VIA_LAMBDA;
            nh[r->nhops].resource = s->s.name;
            nh[r->nhops].evidence = "trace-header";
            /* Lambda accepts the event while the Invoke call is still
             * open, so its segment starts inside the caller's call: the
             * wait is its Dwell Time, and the segment stays a child of the
             * call so the path remains contiguous */
            int64_t wait = s->s.start_us - r->spans[s->parent].s.end_us;

            for (size_t k = 0; k < r->nspans; k++)
                if (r->spans[k].parent == (int)i &&
                    strcmp(r->spans[k].s.name, "Dwell Time") == 0) {
                    wait = r->spans[k].s.end_us - r->spans[k].s.start_us;
                    r->spans[k].wait_hop = (int)r->nhops;
                }
            nh[r->nhops].wait_ms = (double)(wait > 0 ? wait : 0) / 1000.0;
            r->hops = nh;
            r->nhops++;
        }
    }
    r->ntrace_ids = tids.n;
    r->trace_ids = (const char **)tids.p;
    r->ncorr_ids = d.corrs.n;
    r->corr_ids = (const char **)d.corrs.p;
    if (!r->nspans) {
        r->start_us = r->end_us = 0;
    }
    ht__critical_path(r, q->a);
    if (q->truncated)
        add_warning(q->a, r,
                    "{\"type\":\"truncated\",\"message\":\"the request "
                    "is larger than one query may load; it is shown in "
                    "part\"}");
    (void)hexid;
}

/* ---- resolving an id ---------------------------------------------------- */

static void start_inv(struct q *q, struct up_ctx *u, struct qinv *inv,
                      const char *record_id)
{
    struct qnode *top;

    if (!inv)
        return;
    top = q_inv_top(q, inv);

    if (record_id) {
        struct vec hops = {0};
        bool any = false;

        q_incoming(q, inv, &hops);
        for (size_t i = 0; i < hops.n; i++) {
            struct qhop *h = hops.p[i];

            if (h->rec && streq(h->rec->record_id, record_id)) {
                walk_up(q, u, h->prod, h->rec->corr, 0);
                any = true;
            }
        }
        if (any)
            return;
        /* the producer is unknown: the record still names one request */
        for (size_t i = 0; i < inv->nrecs; i++)
            if (streq(inv->recs[i].record_id, record_id)) {
                if (!vec_has(&u->roots, top) && !hops.n)
                    vec_push(q->a, &u->roots, top);
                else
                    walk_up(q, u, top, inv->recs[i].corr, 0);
                return;
            }
    }
    walk_up(q, u, top, NULL, 0);
}

static void resolve(struct q *q, const char *id, struct up_ctx *u)
{
    size_t n = strlen(id);
    struct ht_id8 sid;
    struct ht_tid tid;
    struct tgt_ctx c;
    const void *v;
    size_t vn;

    if (ht_id8_parse(id, n, &sid)) {
        struct qnode *s = q_span(q, &sid);

        if (s)
            walk_up(q, u, s, NULL, 0);
        else if (ht_id8_parse(id, n, &sid)) {
            targets(q, HT_K_SEGMENT, sid.b, 8, &c);
            for (size_t i = 0; i < c.invs.n; i++)
                start_inv(q, u, q_inv(q, c.invs.p[i]), NULL);
        }
    }
    if (ht_tid_parse(id, n, &tid)) {
        bool top_found = false;

        targets(q, HT_K_TRACE, tid.b, 16, &c);
        for (size_t i = 0; i < c.spans.n; i++) {
            struct qnode *s = q_span(q, c.spans.p[i]);
            struct qnode *p = s ? q_parent(q, s) : NULL;

            /* the trace's top nodes: no parent, or a parent elsewhere */
            if (s && (!p || memcmp(p->s.trace.b, tid.b, 16) != 0)) {
                walk_up(q, u, s, NULL, 0);
                top_found = true;
            }
        }
        /* parents that only loop among themselves: start anywhere */
        if (!top_found && c.spans.n) {
            struct qnode *s = q_span(q, c.spans.p[0]);

            if (s)
                walk_up(q, u, s, NULL, 0);
        }
        if (!c.spans.n)
            for (size_t i = 0; i < c.invs.n; i++)
                start_inv(q, u, q_inv(q, c.invs.p[i]), NULL);
    }
    targets_s(q, HT_K_APIGW, id, &c);
    for (size_t i = 0; i < c.spans.n; i++) {
        struct qnode *s = q_span(q, c.spans.p[i]);

        if (s)
            walk_up(q, u, s, NULL, 0);
    }
    if (!c.spans.n)
        for (size_t i = 0; i < c.invs.n; i++)
            start_inv(q, u, q_inv(q, c.invs.p[i]), NULL);
    targets_s(q, HT_K_APIGW_EXT, id, &c);
    for (size_t i = 0; i < c.spans.n; i++) {
        struct qnode *s = q_span(q, c.spans.p[i]);

        if (s)
            walk_up(q, u, s, NULL, 0);
    }
    if (!c.spans.n)
        for (size_t i = 0; i < c.invs.n; i++)
            start_inv(q, u, q_inv(q, c.invs.p[i]), NULL);
    /* a Lambda request id: the invocation */
    uint8_t pid[HT_ID_PACKED_MAX];

    if (n <= 255 && ht_store_get(q->t, HT_DB_INV, pid, ht_id_pack(id, n, pid),
                                 &v, &vn) == HT_ERR_OK) {
        start_inv(q, u, q_inv(q, id), NULL);
    } else {
        targets_s(q, HT_K_LAMBDA, id, &c);
        if (c.spans.n)
            start_inv(q, u, q_inv(q, id), NULL);
    }
    /* a correlation id names its own request only */
    targets_s(q, HT_K_CORR, id, &c);
    for (size_t i = 0; i < c.spans.n; i++) {
        struct qnode *s = q_span(q, c.spans.p[i]);

        if (s)
            walk_up(q, u, s, id, 0);
    }
    for (size_t i = 0; i < c.invs.n; i++) {
        struct qinv *inv = q_inv(q, c.invs.p[i]);
        bool strong = false;

        if (!inv)
            continue;
        for (size_t j = 0; j < inv->nrecs; j++)
            strong |= streq(inv->recs[j].corr, id);
        if (strong || streq(inv->corr, id))
            walk_up(q, u, q_inv_top(q, inv), id, 0);
    }
    /* record ids */
    targets_s(q, HT_K_SQS, id, &c);
    for (size_t i = 0; i < c.spans.n; i++) {
        struct qnode *s = q_span(q, c.spans.p[i]);

        if (s)
            walk_up(q, u, s, NULL, 0);
    }
    if (!c.spans.n)
        for (size_t i = 0; i < c.invs.n; i++)
            start_inv(q, u, q_inv(q, c.invs.p[i]), id);
    targets_s(q, HT_K_KSEQ, id, &c);
    for (size_t i = 0; i < c.spans.n; i++) {
        struct qnode *s = q_span(q, c.spans.p[i]);

        if (s)
            walk_up(q, u, s, NULL, 0);
    }
    if (!c.spans.n)
        for (size_t i = 0; i < c.invs.n; i++)
            start_inv(q, u, q_inv(q, c.invs.p[i]), id);
    targets_s(q, HT_K_DDB, id, &c);
    for (size_t i = 0; i < c.invs.n; i++)
        start_inv(q, u, q_inv(q, c.invs.p[i]), id);
}

static int cmp_req(const void *a, const void *b)
{
    const struct ht_request *x = a, *y = b;

    if (x->start_us != y->start_us)
        return x->start_us > y->start_us ? -1 : 1;
    return 0;
}

int ht_query_trace(struct ht_store *s, const char *id, struct ht_result **out)
{
    struct ht_result *res;
    struct q q;
    struct up_ctx u;
    int rc;

    *out = NULL;
    memset(&q, 0, sizeof(q));
    memset(&u, 0, sizeof(u));
    res = calloc(1, sizeof(*res));
    if (!res)
        return HT_ERR_NOMEM;
    res->arena = ht_arena_create();
    if (!res->arena) {
        free(res);
        return HT_ERR_NOMEM;
    }
    rc = ht_store_begin(s, false, &q.t);
    if (rc) {
        ht_result_free(res);
        return rc;
    }
    q.a = res->arena;
    res->query = ht_arena_strdup(q.a, id);
    u.budget = 100000;
    resolve(&q, id, &u);
    res->nrequests = u.roots.n;
    res->requests =
        ht_arena_alloc(q.a, (u.roots.n + 1) * sizeof(*res->requests));
    for (size_t i = 0; i < u.roots.n; i++)
        build_request(&q, u.roots.p[i], &res->requests[i]);
    if (res->nrequests > 1)
        qsort(res->requests, res->nrequests, sizeof(*res->requests), cmp_req);
    ht_store_abort(q.t);
    map_free(&q.spans);
    map_free(&q.invs);
    map_free(&q.pairs);
    if (!res->nrequests) {
        ht_result_free(res);
        return HT_ERR_NOTFOUND;
    }
    *out = res;
    return HT_ERR_OK;
}

void ht_result_free(struct ht_result *r)
{
    if (!r)
        return;
    ht_arena_destroy(r->arena);
    free(r);
}
