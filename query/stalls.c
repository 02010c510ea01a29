/*
 * stalls.c - stage status as of an evaluation time (design.md "Stall
 * detection and alerts"), read from the per-stage state the assembler
 * keeps in HT_DB_STAGES and HT_DB_HOPS (layout in assembler/stages.h), plus the
 * JSON, text and Prometheus renderings of it.
 *
 * Owned by query/. It reads aggregates and the pending producer halves
 * only, never the graph, except to name the root of a few stuck requests
 * (bounded by max_stuck per stage).
 */
#define _GNU_SOURCE
#include "ht_query.h"
#include "qgraph.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HBUCKET_US 300000000LL /* 'H' time buckets (assembler/stages.h) */
#define ABUCKET_US 60000000LL  /* 'A' time buckets */
#define NHIST 640

static const char *const status_names[] = {"ok", "lagging", "stalled"};

const char *ht_stage_status_name(int status)
{
    return status >= 0 && status <= HT_STAGE_STALLED ? status_names[status]
                                                     : "?";
}

/* ---- reading keys ------------------------------------------------------ */

/* Splits `n` NUL-terminated strings after the type and via bytes. Returns
 * the offset after them, 0 when malformed. */
static size_t split(const uint8_t *k, size_t kn, int n, const char **out)
{
    size_t off = 2;

    if (kn < 2)
        return 0;
    for (int i = 0; i < n; i++) {
        const uint8_t *z = memchr(k + off, 0, kn - off);

        if (!z)
            return 0;
        out[i] = (const char *)k + off;
        off = (size_t)(z - k) + 1;
        if (off > kn)
            return 0;
    }
    return off;
}

static int64_t num(const void *v, size_t vn, int i)
{
    return vn >= (size_t)(i + 1) * 8
               ? (int64_t)ht_be64_get((const uint8_t *)v + i * 8)
               : 0;
}

struct rec {
    uint8_t via;
    const char *res, *prod, *cons;
    int64_t v[8];
};

struct recs {
    struct ht_arena *a;
    struct rec *r;
    size_t n, cap;
    int nstr;
};

static int collect(void *ctx, const void *k, size_t kn, const void *v,
                   size_t vn)
{
    struct recs *c = ctx;
    const char *s[3] = {NULL, NULL, NULL};
    struct rec *r;

    if (!split(k, kn, c->nstr, s))
        return 0;
    if (c->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 16;
        struct rec *nr = ht_arena_alloc(c->a, ncap * sizeof(*nr));

        if (c->n)
            memcpy(nr, c->r, c->n * sizeof(*nr));
        c->r = nr;
        c->cap = ncap;
    }
    r = &c->r[c->n++];
    memset(r, 0, sizeof(*r));
    r->via = ((const uint8_t *)k)[1];
    r->res = ht_arena_strdup(c->a, s[0]);
    r->prod = ht_arena_strdup(c->a, s[1]);
    if (c->nstr == 3)
        r->cons = ht_arena_strdup(c->a, s[2]);
    else if (c->nstr == 2)
        r->cons = r->prod; /* 'R' records: (res, cons) */
    for (int i = 0; i < 8; i++)
        r->v[i] = num(v, vn, i);
    return 0;
}

/* ---- stages ------------------------------------------------------------ */

static const char *nz(const char *s)
{
    return s && *s ? s : NULL;
}

static bool same(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

static struct ht_stage *stage_for(struct ht_stalls *st, size_t *cap,
                                  uint8_t via, const char *res,
                                  const char *prod, const char *cons)
{
    struct ht_stage *g;

    for (size_t i = 0; i < st->nstages; i++) {
        g = &st->stages[i];
        if (g->via_id == via && same(g->resource, res) &&
            same(g->producer, prod) && same(g->consumer, cons))
            return g;
    }
    if (st->nstages == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        struct ht_stage *ns = ht_arena_alloc(st->arena, ncap * sizeof(*ns));

        if (st->nstages)
            memcpy(ns, st->stages, st->nstages * sizeof(*ns));
        st->stages = ns;
        *cap = ncap;
    }
    g = &st->stages[st->nstages++];
    memset(g, 0, sizeof(*g));
    g->via_id = via;
    g->via = ht_via_name(via);
    g->resource = res;
    g->producer = nz(prod);
    g->consumer = nz(cons);
    g->name = ht_arena_printf(
        st->arena, "%s \xe2\x86\x92 %s:%s \xe2\x86\x92 %s",
        g->producer ? g->producer : "(unknown)", g->via,
        *res ? res : "(unknown)", g->consumer ? g->consumer : "(unknown)");
    return g;
}

/* The consumer that reads (via, res): the one seen last. */
static const struct rec *primary(const struct recs *R, uint8_t via,
                                 const char *res)
{
    const struct rec *best = NULL;

    for (size_t i = 0; i < R->n; i++) {
        const struct rec *r = &R->r[i];

        if (r->via != via || strcmp(r->res, res) != 0 || !*r->cons)
            continue;
        if (!best || r->v[1] > best->v[1])
            best = r;
    }
    return best;
}

struct hist {
    uint64_t c[NHIST];
    uint64_t n;
};

static int add_hist(void *ctx, const void *k, size_t kn, const void *v,
                    size_t vn)
{
    struct hist *h = ctx;
    const uint8_t *p = v;

    (void)k;
    (void)kn;
    for (size_t i = 0; i + 6 <= vn; i += 6) {
        unsigned idx = (unsigned)p[i] << 8 | p[i + 1];
        uint32_t n = (uint32_t)p[i + 2] << 24 | (uint32_t)p[i + 3] << 16 |
                     (uint32_t)p[i + 4] << 8 | p[i + 5];

        if (idx < NHIST) {
            h->c[idx] += n;
            h->n += n;
        }
    }
    return 0;
}

/* The middle of a histogram bucket, in µs. */
static double bucket_mid(unsigned idx)
{
    int e;
    double lo, w;

    if (idx < 16)
        return idx;
    e = (int)(idx / 16) + 3;
    lo = (double)(16 + idx % 16) * ldexp(1.0, e - 4);
    w = ldexp(1.0, e - 4);
    return lo + w / 2;
}

/* Nearest rank: the smallest value with at least p of the values at or
 * below it, to the histogram's resolution (1/32 of the value). */
static double quantile_ms(const struct hist *h, double p, int64_t max_us)
{
    uint64_t rank, acc = 0;

    if (!h->n)
        return 0;
    rank = (uint64_t)ceil(p * (double)h->n);
    if (rank < 1)
        rank = 1;
    for (unsigned i = 0; i < NHIST; i++) {
        acc += h->c[i];
        if (acc >= rank) {
            double us = bucket_mid(i);

            if (max_us > 0 && us > (double)max_us)
                us = (double)max_us;
            return us / 1000.0;
        }
    }
    return 0;
}

static void delays(struct ht_txn *t, struct ht_stage *g, const char *cons)
{
    uint8_t k[1024];
    size_t n = 0;
    struct hist *h = calloc(1, sizeof(*h));
    const char *ss[3] = {g->resource, g->producer ? g->producer : "", cons};

    if (!h)
        return;
    k[n++] = 'H';
    k[n++] = g->via_id;
    for (int i = 0; i < 3; i++) {
        size_t l = strlen(ss[i]);

        memcpy(k + n, ss[i], l);
        n += l;
        k[n++] = 0;
    }
    ht_store_scan(t, HT_DB_STAGES, k, n, add_hist, h);
    if (h->n) {
        g->delay_count += h->n;
        /* quantiles over both histograms when a stage has two (its known
         * consumer and consumer lines that named no function) */
        for (unsigned i = 0; i < NHIST; i++)
            g->hist_[i] += h->c[i];
    }
    free(h);
}

static void finish_delays(struct ht_stage *g)
{
    struct hist *h = calloc(1, sizeof(*h));

    if (!h)
        return;
    for (unsigned i = 0; i < NHIST; i++) {
        h->c[i] = g->hist_[i];
        h->n += g->hist_[i];
    }
    g->delay_p50_ms = quantile_ms(h, 0.50, g->delay_max_us);
    g->delay_p90_ms = quantile_ms(h, 0.90, g->delay_max_us);
    g->delay_p99_ms = quantile_ms(h, 0.99, g->delay_max_us);
    free(h);
}

struct pscan {
    struct ht_stalls *st;
    struct ht_stage *g;
    size_t skip; /* key length before ts */
    size_t max_stuck;
    size_t taken; /* stuck items taken from the current source */
};

/* One producer half still waiting at `ts`: v is trace(16) span(8) corr. */
static void pend(struct pscan *c, int64_t ts, const void *v, size_t vn,
                 const char *hop, size_t hopn)
{
    struct ht_stage *g = c->g;

    g->pending++;
    if (!g->oldest_pending_us || ts < g->oldest_pending_us)
        g->oldest_pending_us = ts;
    if (c->st->now_us - ts > g->threshold_us) {
        g->overdue++;
        /* the oldest max_stuck of each source; merged (cmp_stuck) after */
        if (c->taken < c->max_stuck && vn >= 24) {
            struct ht_stuck *s = &g->stuck[g->nstuck++];
            char id[17], tid[36];
            struct ht_id8 sid;
            struct ht_tid tr;

            c->taken++;
            memcpy(tr.b, v, 16);
            memcpy(sid.b, (const uint8_t *)v + 16, 8);
            ht_id8_format(&sid, id);
            ht_tid_format(&tr, tid);
            s->span = ht_arena_strdup(c->st->arena, id);
            s->trace_id = ht_arena_strdup(c->st->arena, tid);
            s->corr = vn > 24 ? ht_arena_strndup(c->st->arena,
                                                 (const char *)v + 24, vn - 24)
                              : NULL;
            s->produced_us = ts;
            s->hop = ht_arena_strndup(c->st->arena, hop, hopn);
        }
    }
}

static int scan_pending(void *ctx, const void *k, size_t kn, const void *v,
                        size_t vn)
{
    struct pscan *c = ctx;
    int64_t ts;

    if (kn < c->skip + 8)
        return 0;
    ts = (int64_t)ht_be64_get((const uint8_t *)k + c->skip);
    if (ts > c->st->now_us)
        return 1; /* in time order: the rest came after `now` */
    pend(c, ts, v, vn, (const char *)k + c->skip + 8, kn - c->skip - 8);
    return 0;
}

static int cmp_stuck(const void *a, const void *b)
{
    const struct ht_stuck *x = a, *y = b;

    if (x->produced_us != y->produced_us)
        return x->produced_us < y->produced_us ? -1 : 1;
    return strcmp(x->span, y->span);
}

/* ---- Kinesis writes that name no stream --------------------------------- */

/*
 * The SDKs' PutRecord subsegment names no stream and no sequence number,
 * so the assembler keeps such a write as waiting in the stream "" of its
 * producer (assembler/stages.c, hop key "kput:<span id>"). Here, as of the
 * query, each one is followed as `trace` follows it (ht__q_outgoing: the
 * correlation id it is attributed to, met with a consumer's logged
 * record, which names the stream by its eventSourceARN). A write met that
 * way was consumed, in that stream, by that consumer, after that delay;
 * the producer's other writes belong to the stream(s) it was seen writing:
 * when that is one stream, they wait there, so a consumer that stops is
 * reported on its stage. Computed from what is stored only, so arrival
 * order and batch boundaries do not matter.
 */
struct uitem {
    int64_t ts;
    const char *res, *prod, *hop;
    const char *named;   /* the stream the write names, if it does */
    const char *wait_in; /* where it waits when not consumed */
    uint8_t v[24 + 128];
    size_t vn;
};

struct ugroup {
    const char *res, *prod, *cons;
    int64_t n, last, sum, max;
    uint64_t *hist; /* NHIST */
};

struct unamed {
    struct uitem *it;
    size_t n, cap;
    struct ugroup *gr;
    size_t ng, capg;
};

struct ucollect {
    struct ht_arena *a;
    struct uitem *it;
    size_t n, cap;
    size_t skip;
};

static int collect_unnamed(void *ctx, const void *k, size_t kn, const void *v,
                           size_t vn)
{
    struct ucollect *c = ctx;
    struct uitem *u;

    if (kn < c->skip + 8 || vn < 24)
        return 0;
    if (c->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 64;
        struct uitem *ni = malloc(ncap * sizeof(*ni));

        if (!ni)
            return 1;
        if (c->n)
            memcpy(ni, c->it, c->n * sizeof(*ni));
        free(c->it);
        c->it = ni;
        c->cap = ncap;
    }
    u = &c->it[c->n++];
    memset(u, 0, sizeof(*u));
    u->ts = (int64_t)ht_be64_get((const uint8_t *)k + c->skip);
    u->hop =
        ht_arena_strndup(c->a, (const char *)k + c->skip + 8, kn - c->skip - 8);
    u->vn = vn < sizeof(u->v) ? vn : sizeof(u->v);
    memcpy(u->v, v, u->vn);
    return 0;
}

static void q_init(struct q *q, struct ht_txn *t)
{
    memset(q, 0, sizeof(*q));
    q->t = t;
    q->a = ht_arena_create();
}

static void q_fini(struct q *q)
{
    ht__map_free(&q->spans);
    ht__map_free(&q->invs);
    ht__map_free(&q->pairs);
    ht__map_free(&q->records);
    ht_arena_destroy(q->a);
    q->a = NULL;
}

/* The consumption that met write `sid`, if any: the earliest of its
 * Kinesis hops (a record read twice was first consumed then). */
static bool write_consumed(struct q *q, const struct ht_id8 *sid,
                           struct ht_arena *a, const char **res,
                           const char **cons, int64_t *ts, const char **corr)
{
    struct qnode *n = ht__q_span(q, sid);
    struct vec out = {0};
    const struct qhop *best = NULL;

    *corr = NULL;
    if (!n)
        return false;
    ht__q_outgoing(q, n, &out);
    for (size_t i = 0; i < out.n; i++) {
        const struct qhop *h = out.p[i];

        if (h->via != HT_VIA_KINESIS || !h->rec || !h->resource ||
            !*h->resource)
            continue;
        if (!best || h->rec->ts_us < best->rec->ts_us ||
            (h->rec->ts_us == best->rec->ts_us &&
             strcmp(h->resource, best->resource) < 0))
            best = h;
    }
    if (!best) {
        const char *c = NULL;

        if (!n->s.corr && ht__q_attr(q, n, &c) == ATTR_CORR && c)
            *corr = ht_arena_strdup(a, c);
        return false;
    }
    *res = ht_arena_strdup(a, best->resource);
    *cons = best->rec->function ? best->rec->function
            : best->cons && best->cons->has_rec && best->cons->rec.function
                ? best->cons->rec.function
                : "";
    *cons = ht_arena_strdup(a, *cons);
    /* consumed when the consumer's log line lists the record, as every
     * stage delay is measured (cli.md, "stalls") */
    *ts = best->rec->ts_us;
    return true;
}

static struct ugroup *ugroup_for(struct unamed *U, struct ht_arena *a,
                                 const char *res, const char *prod,
                                 const char *cons)
{
    for (size_t i = 0; i < U->ng; i++)
        if (strcmp(U->gr[i].res, res) == 0 &&
            strcmp(U->gr[i].prod, prod) == 0 &&
            strcmp(U->gr[i].cons, cons) == 0)
            return &U->gr[i];
    if (U->ng == U->capg) {
        size_t ncap = U->capg ? U->capg * 2 : 8;
        struct ugroup *ng = ht_arena_alloc(a, ncap * sizeof(*ng));

        if (U->ng)
            memcpy(ng, U->gr, U->ng * sizeof(*ng));
        U->gr = ng;
        U->capg = ncap;
    }
    memset(&U->gr[U->ng], 0, sizeof(U->gr[U->ng]));
    U->gr[U->ng].res = res;
    U->gr[U->ng].prod = prod;
    U->gr[U->ng].cons = cons;
    U->gr[U->ng].hist = ht_arena_alloc(a, NHIST * sizeof(uint64_t));
    memset(U->gr[U->ng].hist, 0, NHIST * sizeof(uint64_t));
    return &U->gr[U->ng++];
}

static struct rec *rec_add(struct recs *R)
{
    if (R->n == R->cap) {
        size_t ncap = R->cap ? R->cap * 2 : 16;
        struct rec *nr = ht_arena_alloc(R->a, ncap * sizeof(*nr));

        if (R->n)
            memcpy(nr, R->r, R->n * sizeof(*nr));
        R->r = nr;
        R->cap = ncap;
    }
    memset(&R->r[R->n], 0, sizeof(R->r[R->n]));
    return &R->r[R->n++];
}

/* Histogram index of a delay (assembler/stages.c's, by value). */
static int hist_index(int64_t us)
{
    int e;

    if (us < 16)
        return us < 0 ? 0 : (int)us;
    e = 63 - __builtin_clzll((unsigned long long)us);
    if (e > 42)
        return NHIST - 1;
    return (e - 3) * 16 + (int)((us >> (e - 4)) & 15);
}

/* Replaces E's records of unnamed Kinesis writes by the stages they are
 * learned to belong to, adds their consumptions to S, and keeps the ones
 * still waiting in U. */
static void unnamed_kinesis(struct ht_txn *t, struct ht_stalls *st,
                            struct recs *E, struct recs *S, struct unamed *U)
{
    struct recs NE = *E;
    struct q q;

    NE.r = NULL;
    NE.n = NE.cap = 0;
    q_init(&q, t);
    if (!q.a)
        return;
    for (size_t i = 0; i < E->n; i++) {
        const struct rec *e = &E->r[i];
        uint8_t k[512];
        size_t n = 0, l = strlen(e->prod);
        struct ucollect c = {.a = st->arena};
        const char *learned[8];
        size_t nlearned = 0;
        const char *place;

        if (e->via != HT_VIA_KINESIS || *e->res || l > 300) {
            *rec_add(&NE) = *e;
            continue;
        }
        k[n++] = 'P';
        k[n++] = HT_VIA_KINESIS;
        k[n++] = 0; /* stream "" */
        memcpy(k + n, e->prod, l);
        n += l;
        k[n++] = 0;
        c.skip = n;
        ht_store_scan(t, HT_DB_HOPS, k, n, collect_unnamed, &c);
        for (size_t j = 0; j < c.n; j++) {
            struct uitem *u = &c.it[j];
            struct ht_id8 sid;
            const char *res, *cons, *corr;
            int64_t ts, d;
            struct ugroup *gr;
            size_t m = 0;

            if (j && j % 512 == 0) { /* bound the graph kept in memory */
                q_fini(&q);
                q_init(&q, t);
                if (!q.a)
                    break;
            }
            memcpy(sid.b, u->v + 16, 8);
            u->prod = e->prod;
            /* "kput:<span id>:<stream>": a write that names its stream */
            u->named =
                strlen(u->hop) > 22 && u->hop[21] == ':' ? u->hop + 22 : NULL;
            if (u->named) {
                while (m < nlearned && strcmp(learned[m], u->named) != 0)
                    m++;
                if (m == nlearned && nlearned < 8)
                    learned[nlearned++] = u->named;
                m = 0;
            }
            if (!write_consumed(&q, &sid, st->arena, &res, &cons, &ts, &corr)) {
                /* still waiting: named by the correlation id it is
                 * attributed to when it carries none itself */
                if (u->vn == 24 && corr) {
                    size_t cl = strlen(corr);

                    if (cl > sizeof(u->v) - 24)
                        cl = sizeof(u->v) - 24;
                    memcpy(u->v + 24, corr, cl);
                    u->vn = 24 + cl;
                }
                u->res = NULL;
                continue;
            }
            u->res = res;
            d = ts - u->ts;
            if (d < 0)
                d = 0; /* clocks that disagree: never a negative delay */
            gr = ugroup_for(U, st->arena, res, e->prod, cons);
            gr->n++;
            gr->sum += d;
            if (d > gr->max)
                gr->max = d;
            if (ts > gr->last)
                gr->last = ts;
            gr->hist[hist_index(d)]++;
            while (m < nlearned && strcmp(learned[m], res) != 0)
                m++;
            if (m == nlearned && nlearned < 8)
                learned[nlearned++] = res;
        }
        if (!q.a) {
            free(c.it);
            break;
        }
        /* the producer's writes not seen consumed wait in the stream it
         * writes, when that is one stream; else in the stream "" */
        place = nlearned == 1 ? learned[0] : "";
        for (size_t j = 0; j < c.n; j++)
            if (!c.it[j].res)
                c.it[j].wait_in = c.it[j].named ? c.it[j].named : place;
        for (size_t m = 0; m <= nlearned; m++) {
            const char *res = m < nlearned ? learned[m] : "";
            int64_t entered = 0;

            for (size_t j = 0; j < c.n; j++)
                if (strcmp(c.it[j].res ? c.it[j].res : c.it[j].wait_in, res) ==
                    0)
                    entered++;
            if (entered) {
                struct rec *r = rec_add(&NE);

                r->via = HT_VIA_KINESIS;
                r->res = res;
                r->prod = e->prod;
                r->v[0] = entered;
            }
        }
        for (size_t j = 0; j < c.n; j++) {
            if (c.it[j].res)
                continue;
            if (U->n == U->cap) {
                size_t ncap = U->cap ? U->cap * 2 : 64;
                struct uitem *ni =
                    ht_arena_alloc(st->arena, ncap * sizeof(*ni));

                if (U->n)
                    memcpy(ni, U->it, U->n * sizeof(*ni));
                U->it = ni;
                U->cap = ncap;
            }
            U->it[U->n] = c.it[j];
            U->it[U->n++].res = c.it[j].wait_in;
        }
        free(c.it);
    }
    *E = NE;
    for (size_t i = 0; i < U->ng; i++) {
        struct rec *r = rec_add(S);
        const struct ugroup *gr = &U->gr[i];

        r->via = HT_VIA_KINESIS;
        r->res = gr->res;
        r->prod = gr->prod;
        r->cons = gr->cons;
        r->v[0] = gr->n;
        r->v[1] = gr->last;
        r->v[2] = gr->sum;
        r->v[3] = gr->max;
    }
    if (q.a)
        q_fini(&q);
}

struct acount {
    int64_t from, to;
    uint64_t n;
};

static int count_a(void *ctx, const void *k, size_t kn, const void *v,
                   size_t vn)
{
    struct acount *c = ctx;
    int64_t b;

    if (kn < 8)
        return 0;
    b = (int64_t)ht_be64_get((const uint8_t *)k + kn - 8);
    if (b + ABUCKET_US > c->from && b <= c->to)
        c->n += (uint64_t)num(v, vn, 0);
    return 0;
}

/* Did the consumer take anything in (now - threshold, now]? Exact from the
 * last consumption when that is before `now`; from the per-minute counts
 * when evaluating a time the data has already passed. */
static bool consumed_within(struct ht_txn *t, const struct ht_stage *g,
                            int64_t last, int64_t now, int64_t window)
{
    uint8_t k[512];
    size_t n = 0, l;
    struct acount c = {now - window, now, 0};

    if (!g->consumer || !last)
        return false;
    if (last <= now)
        return last > now - window;
    k[n++] = 'A';
    k[n++] = g->via_id;
    l = strlen(g->resource);
    memcpy(k + n, g->resource, l);
    n += l;
    k[n++] = 0;
    l = strlen(g->consumer);
    memcpy(k + n, g->consumer, l);
    n += l;
    k[n++] = 0;
    ht_store_scan(t, HT_DB_STAGES, k, n, count_a, &c);
    return c.n > 0;
}

static int64_t threshold_for(const struct ht_stall_cfg *cfg,
                             const struct ht_stage *g)
{
    char vr[300];

    snprintf(vr, sizeof(vr), "%s:%s", g->via, g->resource);
    for (size_t i = 0; i < cfg->noverrides; i++) {
        const char *k = cfg->override_keys[i];

        if (strcmp(k, g->name) == 0 || strcmp(k, g->resource) == 0 ||
            strcmp(k, vr) == 0)
            return cfg->override_us[i];
    }
    return cfg->threshold_us;
}

static int cmp_stage(const void *a, const void *b)
{
    const struct ht_stage *x = a, *y = b;
    int c;

    if (x->via_id != y->via_id)
        return x->via_id - y->via_id;
    if ((c = strcmp(x->resource, y->resource)))
        return c;
    if ((c = strcmp(x->producer ? x->producer : "",
                    y->producer ? y->producer : "")))
        return c;
    return strcmp(x->consumer ? x->consumer : "",
                  y->consumer ? y->consumer : "");
}

/* The root of the request a stuck item belongs to, so `hoptrace trace`
 * can be asked about it. */
static void name_root(struct ht_store *s, struct ht_stalls *st,
                      struct ht_stuck *k)
{
    struct ht_result *r;
    size_t pick = 0;
    char id[17];

    if (ht_query_trace(s, k->span, &r) != HT_ERR_OK)
        return;
    for (size_t i = 0; k->corr && *k->corr && i < r->nrequests; i++)
        for (size_t j = 0; j < r->requests[i].ncorr_ids; j++)
            if (strcmp(r->requests[i].corr_ids[j], k->corr) == 0) {
                pick = i;
                i = r->nrequests;
                break;
            }
    if (r->nrequests && r->requests[pick].root >= 0) {
        const struct ht_request *q = &r->requests[pick];

        ht_id8_format(&q->spans[q->root].s.id, id);
        k->root = ht_arena_strdup(st->arena, id);
        if (q->ntrace_ids)
            k->root_trace_id = ht_arena_strdup(st->arena, q->trace_ids[0]);
    }
    ht_result_free(r);
}

int ht_query_stalls(struct ht_store *s, const struct ht_stall_cfg *cfg,
                    int64_t now_us, struct ht_stalls **out)
{
    struct ht_stalls *st;
    struct ht_txn *t;
    struct recs E = {0}, S = {0}, R = {0}, F = {0};
    struct unamed U = {0};
    size_t cap = 0;
    int rc;

    *out = NULL;
    st = calloc(1, sizeof(*st));
    if (!st)
        return HT_ERR_NOMEM;
    st->arena = ht_arena_create();
    if (!st->arena) {
        free(st);
        return HT_ERR_NOMEM;
    }
    st->now_us = now_us;
    rc = ht_store_begin(s, false, &t);
    if (rc) {
        ht_stalls_free(st);
        return rc;
    }
    E.a = S.a = R.a = F.a = st->arena;
    E.nstr = 2;
    S.nstr = 3;
    R.nstr = 2;
    F.nstr = 0;
    ht_store_scan(t, HT_DB_STAGES, "E", 1, collect, &E);
    ht_store_scan(t, HT_DB_STAGES, "S", 1, collect, &S);
    ht_store_scan(t, HT_DB_STAGES, "R", 1, collect, &R);
    unnamed_kinesis(t, st, &E, &S, &U);

    /* producers: entered items, and those still waiting, are the stage of
     * the resource's consumer (unknown until one consumed anything) */
    for (size_t i = 0; i < E.n; i++) {
        const struct rec *e = &E.r[i];
        const struct rec *p = primary(&R, e->via, e->res);
        struct ht_stage *g =
            stage_for(st, &cap, e->via, e->res, e->prod, p ? p->cons : NULL);

        g->entered += (uint64_t)e->v[0];
        g->has_pending_ = true;
    }
    /* consumptions matched to their producer */
    for (size_t i = 0; i < S.n; i++) {
        const struct rec *c = &S.r[i];
        const struct rec *p = primary(&R, c->via, c->res);
        const char *cons = *c->cons ? c->cons : (p ? p->cons : NULL);
        struct ht_stage *g = stage_for(st, &cap, c->via, c->res, c->prod, cons);

        g->consumed += (uint64_t)c->v[0];
        g->delay_sum_us += c->v[2];
        if (c->v[3] > g->delay_max_us)
            g->delay_max_us = c->v[3];
        if (!g->has_pending_)
            g->entered += (uint64_t)c->v[0]; /* another consumer's share */
    }
    /* consumptions whose producer was never seen (not traced, or a write
     * that names no record) */
    for (size_t i = 0; i < R.n; i++) {
        const struct rec *r = &R.r[i];
        int64_t matched = 0;
        struct ht_stage *g;

        if (!*r->cons)
            continue;
        for (size_t j = 0; j < S.n; j++)
            if (S.r[j].via == r->via && strcmp(S.r[j].res, r->res) == 0 &&
                (strcmp(S.r[j].cons, r->cons) == 0 ||
                 (!*S.r[j].cons && primary(&R, r->via, r->res) == r)))
                matched += S.r[j].v[0];
        if (r->v[0] <= matched)
            continue;
        g = stage_for(st, &cap, r->via, r->res, NULL, r->cons);
        g->consumed += (uint64_t)(r->v[0] - matched);
        g->entered += (uint64_t)(r->v[0] - matched);
    }

    for (size_t i = 0; i < st->nstages; i++) {
        struct ht_stage *g = &st->stages[i];
        const struct rec *p = primary(&R, g->via_id, g->resource);
        int64_t last = 0;

        g->threshold_us = threshold_for(cfg, g);
        if (g->producer || g->has_pending_) {
            delays(t, g, g->consumer ? g->consumer : "");
            if (g->consumer && p && strcmp(p->cons, g->consumer) == 0)
                delays(t, g, ""); /* lines that named no function */
            for (size_t j = 0; j < U.ng; j++) {
                const struct ugroup *gr = &U.gr[j];

                if (g->via_id != HT_VIA_KINESIS ||
                    !same(gr->res, g->resource) ||
                    !same(gr->prod, g->producer) ||
                    !(same(gr->cons, g->consumer) ||
                      (!*gr->cons && g->consumer && p &&
                       strcmp(p->cons, g->consumer) == 0)))
                    continue;
                g->delay_count += (uint64_t)gr->n;
                for (unsigned h = 0; h < NHIST; h++)
                    g->hist_[h] += gr->hist[h];
            }
            finish_delays(g);
        }
        for (size_t j = 0; j < R.n; j++)
            if (R.r[j].via == g->via_id &&
                strcmp(R.r[j].res, g->resource) == 0 && g->consumer &&
                strcmp(R.r[j].cons, g->consumer) == 0)
                last = R.r[j].v[1];
        g->last_consumed_us = last;
        if (g->has_pending_) {
            uint8_t k[1024];
            size_t n = 0, l;
            struct pscan c = {.st = st, .g = g, .max_stuck = cfg->max_stuck};
            const char *prod = g->producer ? g->producer : "";

            k[n++] = 'P';
            k[n++] = g->via_id;
            l = strlen(g->resource);
            memcpy(k + n, g->resource, l);
            n += l;
            k[n++] = 0;
            l = strlen(prod);
            memcpy(k + n, prod, l);
            n += l;
            k[n++] = 0;
            c.skip = n;
            /* room for the oldest of both sources, merged below */
            g->stuck = ht_arena_alloc(st->arena, (2 * cfg->max_stuck + 1) *
                                                     sizeof(*g->stuck));
            memset(g->stuck, 0, (2 * cfg->max_stuck + 1) * sizeof(*g->stuck));
            /* the stream "" holds every write that named none: those still
             * waiting are in U, as of this query */
            if (g->via_id != HT_VIA_KINESIS || *g->resource)
                ht_store_scan(t, HT_DB_HOPS, k, n, scan_pending, &c);
            c.taken = 0;
            for (size_t j = 0; j < U.n; j++) {
                const struct uitem *u = &U.it[j];

                if (g->via_id == HT_VIA_KINESIS && same(u->res, g->resource) &&
                    same(u->prod, g->producer) && u->ts <= now_us)
                    pend(&c, u->ts, u->v, u->vn, u->hop, strlen(u->hop));
            }
            if (g->nstuck > 1)
                qsort(g->stuck, g->nstuck, sizeof(*g->stuck), cmp_stuck);
            if (g->nstuck > cfg->max_stuck)
                g->nstuck = cfg->max_stuck;
        }
        if (g->pending)
            g->oldest_pending_age_s =
                (double)(now_us - g->oldest_pending_us) / 1e6;
        /* most DynamoDB tables have no stream: a write to a table whose
         * stream nobody has been seen reading is not work left behind */
        if (!g->overdue || (!g->consumer && g->via_id == HT_VIA_DYNAMODB))
            g->status = HT_STAGE_OK;
        else if (consumed_within(t, g, last, now_us, g->threshold_us))
            g->status = HT_STAGE_LAGGING;
        else
            g->status = HT_STAGE_STALLED;
        if (g->consumer) {
            uint8_t k[256];
            size_t l = strlen(g->consumer);
            const void *v;
            size_t vn;

            k[0] = 'F';
            memcpy(k + 1, g->consumer, l);
            k[l + 1] = 0;
            if (l < 200 &&
                ht_store_get(t, HT_DB_STAGES, k, l + 2, &v, &vn) == HT_ERR_OK) {
                g->has_cost = true;
                g->cost.invocations = (uint64_t)num(v, vn, 0);
                g->cost.billed_ms = num(v, vn, 1);
                g->cost.memory_mb = num(v, vn, 2);
                g->cost.max_memory_used_mb = num(v, vn, 3);
                g->cost.avg_memory_used_mb =
                    g->cost.invocations
                        ? (double)num(v, vn, 4) / (double)g->cost.invocations
                        : 0;
                g->cost.duration_ms = (double)num(v, vn, 5) / 1000.0;
                g->cost.failed = (uint64_t)num(v, vn, 6);
                g->cost.cold_starts = (uint64_t)num(v, vn, 7);
            }
        }
    }
    ht_store_abort(t);
    qsort(st->stages, st->nstages, sizeof(*st->stages), cmp_stage);
    for (size_t i = 0; i < st->nstages; i++)
        for (size_t j = 0; j < st->stages[i].nstuck; j++)
            name_root(s, st, &st->stages[i].stuck[j]);
    *out = st;
    return HT_ERR_OK;
}

void ht_stalls_free(struct ht_stalls *st)
{
    if (!st)
        return;
    ht_arena_destroy(st->arena);
    free(st);
}

/* ---- renderings -------------------------------------------------------- */

void ht_stage_json(const struct ht_stage *g, struct ht_buf *b)
{
    ht_buf_addc(b, '{');
    ht_buf_json_key(b, "stage");
    ht_buf_json_str(b, g->name);
    ht_buf_addc(b, ',');
    ht_buf_json_key(b, "producer");
    ht_buf_json_str_or_null(b, g->producer);
    ht_buf_addc(b, ',');
    ht_buf_json_key(b, "via");
    ht_buf_json_str(b, g->via);
    ht_buf_addc(b, ',');
    ht_buf_json_key(b, "resource");
    ht_buf_json_str(b, g->resource);
    ht_buf_addc(b, ',');
    ht_buf_json_key(b, "consumer");
    ht_buf_json_str_or_null(b, g->consumer);
    ht_buf_addc(b, ',');
    ht_buf_json_key(b, "status");
    ht_buf_json_str(b, ht_stage_status_name(g->status));
    ht_buf_printf(
        b,
        ",\"pending\":%llu,\"oldest_pending_age_s\":%.3f,"
        "\"entered\":%llu,\"consumed\":%llu,"
        "\"delay_p50_ms\":%.3f,\"delay_p90_ms\":%.3f,"
        "\"delay_p99_ms\":%.3f,\"delay_max_ms\":%.3f,"
        "\"threshold_s\":%.3f,\"overdue\":%llu,\"delay_count\":%llu,",
        (unsigned long long)g->pending, g->oldest_pending_age_s,
        (unsigned long long)g->entered, (unsigned long long)g->consumed,
        g->delay_p50_ms, g->delay_p90_ms, g->delay_p99_ms,
        (double)g->delay_max_us / 1000.0, (double)g->threshold_us / 1e6,
        (unsigned long long)g->overdue, (unsigned long long)g->delay_count);
    ht_buf_json_key(b, "oldest_pending_us");
    if (g->pending)
        ht_buf_printf(b, "%lld", (long long)g->oldest_pending_us);
    else
        ht_buf_adds(b, "null");
    ht_buf_addc(b, ',');
    ht_buf_json_key(b, "last_consumed_us");
    if (g->last_consumed_us)
        ht_buf_printf(b, "%lld", (long long)g->last_consumed_us);
    else
        ht_buf_adds(b, "null");
    ht_buf_adds(b, ",\"stuck\":[");
    for (size_t i = 0; i < g->nstuck; i++) {
        const struct ht_stuck *k = &g->stuck[i];

        if (i)
            ht_buf_addc(b, ',');
        ht_buf_addc(b, '{');
        ht_buf_json_key(b, "root");
        ht_buf_json_str_or_null(b, k->root);
        ht_buf_addc(b, ',');
        ht_buf_json_key(b, "root_trace_id");
        ht_buf_json_str_or_null(b, k->root_trace_id);
        ht_buf_addc(b, ',');
        ht_buf_json_key(b, "span");
        ht_buf_json_str(b, k->span);
        ht_buf_addc(b, ',');
        ht_buf_json_key(b, "trace_id");
        ht_buf_json_str(b, k->trace_id);
        ht_buf_addc(b, ',');
        ht_buf_json_key(b, "correlation_id");
        ht_buf_json_str_or_null(b, k->corr && *k->corr ? k->corr : NULL);
        ht_buf_addc(b, ',');
        ht_buf_json_key(b, "hop");
        ht_buf_json_str(b, k->hop);
        ht_buf_printf(b, ",\"produced_us\":%lld}", (long long)k->produced_us);
    }
    ht_buf_printf(b, "],\"stuck_truncated\":%s",
                  g->overdue > g->nstuck ? "true" : "false");
    if (g->has_cost) {
        const struct ht_stage_cost *c = &g->cost;

        ht_buf_printf(
            b,
            ",\"consumer_cost\":{\"invocations\":%llu,"
            "\"billed_ms\":%lld,\"duration_ms\":%.3f,"
            "\"memory_mb\":%lld,\"max_memory_used_mb\":%lld,"
            "\"avg_memory_used_mb\":%.1f,\"gb_seconds\":%.6f,"
            "\"cold_starts\":%llu,\"failed\":%llu}",
            (unsigned long long)c->invocations, (long long)c->billed_ms,
            c->duration_ms, (long long)c->memory_mb,
            (long long)c->max_memory_used_mb, c->avg_memory_used_mb,
            (double)c->billed_ms / 1000.0 * (double)c->memory_mb / 1024.0,
            (unsigned long long)c->cold_starts, (unsigned long long)c->failed);
    }
    ht_buf_addc(b, '}');
}

void ht_stalls_json(const struct ht_stalls *st, struct ht_buf *b)
{
    ht_buf_printf(b, "{\"now_us\":%lld,\"stages\":[", (long long)st->now_us);
    for (size_t i = 0; i < st->nstages; i++) {
        if (i)
            ht_buf_addc(b, ',');
        ht_stage_json(&st->stages[i], b);
    }
    ht_buf_adds(b, "]}\n");
}

void ht_stalls_text(const struct ht_stalls *st, struct ht_buf *b)
{
    size_t nbad = 0;

    ht_buf_printf(b, "%-8s %8s %10s %9s %9s %9s %9s  %s\n", "STATUS", "PENDING",
                  "OLDEST_S", "ENTERED", "CONSUMED", "P50_MS", "P99_MS",
                  "STAGE");
    for (size_t i = 0; i < st->nstages; i++) {
        const struct ht_stage *g = &st->stages[i];

        ht_buf_printf(
            b, "%-8s %8llu %10.1f %9llu %9llu %9.1f %9.1f  ",
            ht_stage_status_name(g->status), (unsigned long long)g->pending,
            g->oldest_pending_age_s, (unsigned long long)g->entered,
            (unsigned long long)g->consumed, g->delay_p50_ms, g->delay_p99_ms);
        ht_buf_add_printable(b, g->name, strlen(g->name));
        ht_buf_addc(b, '\n');
        if (g->status != HT_STAGE_OK)
            nbad++;
    }
    for (size_t i = 0; i < st->nstages; i++) {
        const struct ht_stage *g = &st->stages[i];

        if (g->status == HT_STAGE_OK)
            continue;
        ht_buf_addc(b, '\n');
        ht_buf_add_printable(b, g->name, strlen(g->name));
        ht_buf_printf(b,
                      ": %s, %llu item(s) waiting longer than %.0f s "
                      "(oldest %.1f s)\n",
                      ht_stage_status_name(g->status),
                      (unsigned long long)g->overdue,
                      (double)g->threshold_us / 1e6, g->oldest_pending_age_s);
        for (size_t j = 0; j < g->nstuck; j++)
            ht_buf_printf(b, "  hoptrace trace %s\n",
                          g->stuck[j].root ? g->stuck[j].root
                                           : g->stuck[j].span);
        if (g->overdue > g->nstuck)
            ht_buf_printf(b, "  … and %llu more\n",
                          (unsigned long long)(g->overdue - g->nstuck));
    }
    if (!st->nstages)
        ht_buf_adds(b, "no stages yet: no asynchronous hop has been seen\n");
    else if (!nbad)
        ht_buf_adds(b, "\nall stages ok\n");
}

/* Prometheus label values: backslash, quote and newline escaped. */
/* Prometheus label values: backslash, quote and newline escaped as the
 * format asks; other control characters are written as the text \xNN
 * (escaped backslash), so the exposition stays valid and shows no raw
 * control character. */
static void plabel(struct ht_buf *b, const char *k, const char *v, bool comma)
{
    struct ht_buf t;

    if (comma)
        ht_buf_addc(b, ',');
    ht_buf_printf(b, "%s=\"", k);
    ht_buf_init(&t);
    ht_buf_add_printable(&t, v ? v : "", strlen(v ? v : ""));
    for (size_t i = 0; i < t.len; i++) {
        char c = t.data[i];

        if (c == '\\' || c == '"')
            ht_buf_addc(b, '\\');
        ht_buf_addc(b, c);
    }
    ht_buf_free(&t);
    ht_buf_addc(b, '"');
}

static void stage_labels(struct ht_buf *b, const struct ht_stage *g)
{
    plabel(b, "producer", g->producer ? g->producer : "unknown", false);
    plabel(b, "via", g->via, true);
    plabel(b, "resource", g->resource, true);
    plabel(b, "consumer", g->consumer ? g->consumer : "unknown", true);
}

static void metric_head(struct ht_buf *b, const char *name, const char *type,
                        const char *help)
{
    ht_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void ht_stalls_metrics(const struct ht_stalls *st, struct ht_buf *b)
{
    static const struct {
        const char *name, *type, *help;
    } m[] = {
        {"hoptrace_stage_pending", "gauge",
         "Producer halves waiting for their consumer."},
        {"hoptrace_stage_overdue", "gauge",
         "Pending producer halves older than the stage's threshold."},
        {"hoptrace_stage_oldest_pending_age_seconds", "gauge",
         "Age of the oldest pending producer half."},
        {"hoptrace_stage_entered_total", "counter",
         "Items written into the stage by its producer."},
        {"hoptrace_stage_consumed_total", "counter",
         "Items the stage's consumer received."},
        {"hoptrace_stage_last_consumed_timestamp_seconds", "gauge",
         "When the consumer last received an item of this resource."},
        {"hoptrace_stage_threshold_seconds", "gauge",
         "The stall threshold of the stage."},
        {"hoptrace_stage_status", "gauge",
         "1 for the stage's current status (ok, lagging, stalled)."},
        {"hoptrace_stage_delay_seconds", "summary",
         "From the end of the producer's write to the consumer's logged "
         "record."},
        {"hoptrace_consumer_invocations_total", "counter",
         "Invocations of the stage's consumer (REPORT lines)."},
        {"hoptrace_consumer_billed_seconds_total", "counter",
         "Billed duration of the stage's consumer."},
        {"hoptrace_consumer_memory_configured_bytes", "gauge",
         "Memory configured for the stage's consumer."},
        {"hoptrace_consumer_memory_max_used_bytes", "gauge",
         "Largest Max Memory Used of the stage's consumer."},
    };

    for (size_t mi = 0; mi < sizeof(m) / sizeof(m[0]); mi++) {
        metric_head(b, m[mi].name, m[mi].type, m[mi].help);
        for (size_t i = 0; i < st->nstages; i++) {
            const struct ht_stage *g = &st->stages[i];
            double v = 0;

            switch (mi) {
            case 0:
                v = (double)g->pending;
                break;
            case 1:
                v = (double)g->overdue;
                break;
            case 2:
                v = g->oldest_pending_age_s;
                break;
            case 3:
                v = (double)g->entered;
                break;
            case 4:
                v = (double)g->consumed;
                break;
            case 5:
                if (!g->last_consumed_us)
                    continue;
                v = (double)g->last_consumed_us / 1e6;
                break;
            case 6:
                v = (double)g->threshold_us / 1e6;
                break;
            case 7:
                for (int s = 0; s <= HT_STAGE_STALLED; s++) {
                    ht_buf_printf(b, "%s{", m[mi].name);
                    stage_labels(b, g);
                    plabel(b, "status", status_names[s], true);
                    ht_buf_printf(b, "} %d\n", g->status == s);
                }
                continue;
            case 8: {
                const double q[3] = {0.5, 0.9, 0.99};
                const double qv[3] = {g->delay_p50_ms, g->delay_p90_ms,
                                      g->delay_p99_ms};

                if (!g->delay_count)
                    continue;
                for (int k = 0; k < 3; k++) {
                    ht_buf_printf(b, "%s{", m[mi].name);
                    stage_labels(b, g);
                    ht_buf_printf(b, ",quantile=\"%g\"} %.6f\n", q[k],
                                  qv[k] / 1000.0);
                }
                ht_buf_printf(b, "%s_sum{", m[mi].name);
                stage_labels(b, g);
                ht_buf_printf(b, "} %.6f\n", (double)g->delay_sum_us / 1e6);
                ht_buf_printf(b, "%s_count{", m[mi].name);
                stage_labels(b, g);
                ht_buf_printf(b, "} %llu\n",
                              (unsigned long long)g->delay_count);
                continue;
            }
            case 9:
            case 10:
            case 11:
            case 12:
                if (!g->has_cost)
                    continue;
                v = mi == 9    ? (double)g->cost.invocations
                    : mi == 10 ? (double)g->cost.billed_ms / 1000.0
                    : mi == 11 ? (double)g->cost.memory_mb * 1048576.0
                               : (double)g->cost.max_memory_used_mb * 1048576.0;
                break;
            default:
                continue;
            }
            ht_buf_printf(b, "%s{", m[mi].name);
            stage_labels(b, g);
            ht_buf_printf(b, "} %.15g\n", v);
        }
    }
}
