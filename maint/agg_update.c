/*
 * agg_update.c - keeps the request summaries and route histograms behind
 * `endpoints` and `hotspots` current, in bounded slices, from the traces
 * each ingest batch marks dirty; and drops them under retention.
 *
 * For every dirty trace the requests it belongs to are assembled (with
 * query/'s ht_qsession, one graph per slice) and summarized: route, start,
 * sync and end-to-end latency, pending flag, error / fault / throttle, and
 * critical-path time per (service, kind, hop). Writing a summary takes its
 * old one's contribution out of its histogram and adds the new one, so
 * histograms never drift from the summaries. A root summarized before
 * that has since become part of another request (its producer arrived
 * later) is found through the roots its traces were last seen in ('T'),
 * and rebuilt or dropped. A trace's 'T' record holds, in id order, the
 * roots with a summary whose requests hold the trace: every request a
 * dirty trace reaches is linked to all its traces, also when a recheck
 * rebuilt its summary earlier in the slice, and a root leaves a trace's
 * record when its summary goes or its request no longer holds the trace.
 * So the records, like the summaries, do not depend on how the work was
 * sliced or on the order the data arrived in. Everything of one slice
 * commits in one transaction with the dirty keys' deletion.
 *
 * Owned by maint/. Reads through query/, writes HT_DB_AGG and HT_DB_DIRTY
 * only; the record layouts are store/'s (ht_agg_records.h).
 */
#define _GNU_SOURCE
#include "ht_maint.h"

#include "ht_query.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SLICE_TRACES 4096 /* max_traces above this is taken as this */
#define T_MARGIN_US (3600LL * 1000000LL) /* see ht_agg_prune */

/* What one assembled request contributes. */
static void summarize(const struct ht_request *r, struct ht_arena *a,
                      struct ht_agg_summary *s)
{
    const struct ht_qspan *root = &r->spans[0];
    uint32_t f = root->s.flags;
    uint16_t st = root->s.http_status;

    memset(s, 0, sizeof(*s));
    s->start_us = r->start_us;
    s->e2e_us = r->end_us - r->start_us;
    s->sync_us = root->s.end_us - root->s.start_us;
    if (r->npending > 0)
        s->flags |= HT_AGG_S_PENDING;
    if ((f & HT_SPAN_THROTTLE) || st == 429)
        s->flags |= HT_AGG_S_THROTTLE;
    if ((f & HT_SPAN_FAULT) || st >= 500)
        s->flags |= HT_AGG_S_FAULT;
    if ((f & HT_SPAN_ERROR) || (st >= 400 && st < 500))
        s->flags |= HT_AGG_S_ERROR;
    s->handle = r->root_handle ? r->root_handle : "";
    s->api = r->api_id ? r->api_id : "";
    s->stage = r->stage ? r->stage : "";
    if (r->route)
        s->route = r->route;
    else
        s->route =
            root->service ? root->service : (root->s.name ? root->s.name : "?");
    /* critical-path time by (service, kind, via, resource) */
    s->items = ht_arena_alloc(a, (r->ncp + 1) * sizeof(*s->items));
    for (size_t i = 0; i < r->ncp; i++) {
        const struct ht_cp_entry *e = &r->cp[i];
        const struct ht_qspan *sp = &r->spans[e->span];
        struct ht_agg_item it = {.kind = e->kind, .us = e->dur_us};
        uint32_t j;

        it.service = sp->service ? sp->service : sp->s.name;
        it.resource = "";
        if (e->kind == HT_CP_WAIT && e->hop >= 0 && (size_t)e->hop < r->nhops) {
            it.via = r->hops[e->hop].via;
            it.resource = r->hops[e->hop].resource;
        }
        if (!it.service)
            it.service = "?";
        for (j = 0; j < s->nitems; j++) {
            struct ht_agg_item *o = &s->items[j];

            if (o->kind == it.kind && o->via == it.via &&
                strcmp(o->service, it.service) == 0 &&
                strcmp(o->resource, it.resource) == 0) {
                o->us += it.us;
                break;
            }
        }
        if (j == s->nitems)
            s->items[s->nitems++] = it;
    }
}

/* What the update writes of one assembled request: its summary, its
 * Jaeger search record, the traces it holds and, when its logged event
 * named a route template, the stage URL's route it stands for. */
struct digest {
    struct ht_id8 root;
    struct ht_agg_summary s;
    struct ht_jaeger_rec j;
    struct ht_tid *tids;
    size_t ntids;
    const char *url_route; /* NULL: nothing to learn */
};

/* The digest of r; with `whole` false only its root and traces (what
 * the test for keeping a root in a trace's 'T' record reads). */
static struct digest *digest_of(const struct ht_request *r, struct ht_arena *a,
                                bool whole)
{
    struct digest *d = ht_arena_alloc(a, sizeof(*d));

    memset(d, 0, sizeof(*d));
    d->root = r->spans[0].s.id;
    d->tids = ht_arena_alloc(a, (r->ntrace_ids + 1) * sizeof(*d->tids));
    d->ntids = r->ntrace_ids;
    if (d->ntids) /* as bytes: build_request compared them so */
        memcpy(d->tids, r->trace_bins, d->ntids * sizeof(*d->tids));
    if (!whole)
        return d;
    summarize(r, a, &d->s);
    ht_jaeger_index(r, a, &d->j);
    if (r->url_route && r->route && strcmp(r->url_route, r->route) != 0)
        d->url_route = r->url_route;
    return d;
}

/* ---- a slice's state ----------------------------------------------------- */

struct idset {
    uint64_t *k;
    size_t cap, n;
};

static uint64_t id8_u64(const struct ht_id8 *id)
{
    uint64_t v;

    memcpy(&v, id->b, 8);
    return v ? v : 1; /* 0 marks an empty slot */
}

static bool idset_has(const struct idset *s, uint64_t v)
{
    if (!s->cap)
        return false;
    for (size_t i = (v * 0x9E3779B97F4A7C15ull) >> 40 & (s->cap - 1);;
         i = (i + 1) & (s->cap - 1)) {
        if (s->k[i] == v)
            return true;
        if (!s->k[i])
            return false;
    }
}

static void idset_add(struct idset *s, uint64_t v)
{
    if (idset_has(s, v))
        return;
    if ((s->n + 1) * 2 > s->cap) {
        struct idset g = {0};

        g.cap = s->cap ? s->cap * 2 : 256;
        g.k = ht_table_alloc(g.cap, sizeof(*g.k));
        HT_ASSERT(g.k);
        for (size_t i = 0; i < s->cap; i++)
            if (s->k[i])
                idset_add(&g, s->k[i]);
        free(s->k);
        *s = g;
    }
    for (size_t i = (v * 0x9E3779B97F4A7C15ull) >> 40 & (s->cap - 1);;
         i = (i + 1) & (s->cap - 1))
        if (!s->k[i]) {
            s->k[i] = v;
            s->n++;
            return;
        }
}

/* The traces of the requests assembled in this slice, by root: whether a
 * trace is still part of a root's request ('T' keeps only those). */
struct member {
    uint64_t k; /* 0: empty slot */
    struct ht_tid *tids;
    size_t n;
};

struct members {
    struct member *m;
    size_t cap, n;
};

/* The summaries read in this slice, by root: one read each between two
 * writes (a request's traces each ask whether its root still has one). */
struct sent {
    bool used;
    struct ht_id8 root;
    int state; /* 0: not known (empty, or written since), 1: held, 2: none,
                  3: a record that does not unpack */
    struct ht_agg_summary s;
};

struct scache {
    struct sent *e;
    size_t cap, n;
};

/* The histogram records changed in this slice, by key: read once, changed
 * in memory by every summary that comes and goes, written once when the
 * slice ends (hist_flush). */
struct hent {
    uint8_t *k; /* NULL: empty slot */
    size_t kn;
    uint64_t h;
    struct ht_agg_hrec rec;
    bool gone; /* count fell to 0: deleted (and starts over from nothing) */
};

struct hcache {
    struct hent *e;
    size_t cap, n;
};

/* The catalogue counts changed in a transaction, by key: read once,
 * changed in memory by every 'J' record that comes and goes (a slice adds
 * and takes away the same few triples thousands of times), written once
 * by ccache_flush. */
struct cent {
    uint8_t *k; /* NULL: empty slot */
    size_t kn;
    uint64_t h;
    int64_t n;
};

struct ccache {
    struct cent *e;
    size_t cap, n;
    struct ht_arena *a; /* the keys */
};

/* The roots linked to traces in this slice, as (trace, root) pairs: the
 * traces' 'T' records are rewritten once each when the slice ends
 * (tl_flush, which sorts them by trace), so a trace that many requests
 * hold costs one pass over its record, not one per request. */
struct tlink {
    struct ht_tid tid;
    struct ht_id8 root;
    bool has_root; /* false: the trace is only to be rechecked */
};

struct rctx {
    struct ht_txn *t;
    struct scache sc;
    struct hcache hc;
    struct ccache cc;
    struct ht_qsession *qs; /* the graph loaded in this slice */
    struct ht_arena *a;     /* per slice */
    struct idset done;      /* roots refreshed or dropped in this slice */
    struct idset linked;    /* roots whose traces were linked (below) */
    struct members mem;
    struct ht_buf tl; /* struct tlink, in the order noted */
    struct ht_buf buf;
    struct ht_agg_stats st; /* this slice's counts */
    int err;
    /* In a slice with readers, traces are written out of their order (the
     * slice's own chunks, crew_write): the templates learnt are noted
     * (struct tmpl_note) and learnt in the traces' order at the slice's
     * end (tmpl_flush), so that the last one wins as if written in order.
     * ord: the next note's place (the trace's index << 20, then one more
     * per note of that trace). */
    bool defer_tmpl;
    uint64_t ord;
    struct ht_buf tmpl;
};

struct tmpl_note {
    uint64_t ord;
    const struct ht_agg_summary *s;
    const char *url_route;
};

static void chk(struct rctx *c, int rc)
{
    if (rc && rc != HT_ERR_NOTFOUND && !c->err)
        c->err = rc;
}

static struct hent *hc_slot(struct hcache *hc, const uint8_t *k, size_t kn,
                            uint64_t h)
{
    size_t i = (size_t)h & (hc->cap - 1);

    while (hc->e[i].k &&
           (hc->e[i].h != h || hc->e[i].kn != kn || memcmp(hc->e[i].k, k, kn)))
        i = (i + 1) & (hc->cap - 1);
    return &hc->e[i];
}

/* The record of histogram key k, read from the store the first time. */
static struct hent *hist_get(struct rctx *c, const uint8_t *k, size_t kn)
{
    uint64_t h = ht_hash_mem(k, kn);
    struct hent *e;
    const void *v;
    size_t vn;

    if ((c->hc.n + 1) * 2 > c->hc.cap) {
        struct hcache g = {0};

        g.cap = c->hc.cap ? c->hc.cap * 2 : 256;
        g.e = ht_table_alloc(g.cap, sizeof(*g.e));
        HT_ASSERT(g.e);
        for (size_t i = 0; i < c->hc.cap; i++)
            if (c->hc.e[i].k)
                *hc_slot(&g, c->hc.e[i].k, c->hc.e[i].kn, c->hc.e[i].h) =
                    c->hc.e[i];
        g.n = c->hc.n;
        free(c->hc.e);
        c->hc = g;
    }
    e = hc_slot(&c->hc, k, kn, h);
    if (e->k) {
        if (e->gone) {
            ht_agg_hrec_free(&e->rec);
            memset(&e->rec, 0, sizeof(e->rec));
            e->gone = false;
        }
        return e;
    }
    e->k = ht_arena_alloc(c->a, kn);
    memcpy(e->k, k, kn);
    e->kn = kn;
    e->h = h;
    c->hc.n++;
    memset(&e->rec, 0, sizeof(e->rec));
    if (ht_store_get(c->t, HT_DB_AGG, k, kn, &v, &vn) == HT_ERR_OK)
        ht_agg_hrec_unpack(v, vn, &e->rec); /* a corrupt one starts over */
    return e;
}

/* Writes the slice's histogram records and forgets them. */
static void hist_flush(struct rctx *c)
{
    for (size_t i = 0; i < c->hc.cap; i++) {
        struct hent *e = &c->hc.e[i];

        if (!e->k)
            continue;
        if (!c->err) {
            if (e->gone) {
                chk(c, ht_store_del(c->t, HT_DB_AGG, e->k, e->kn));
            } else {
                ht_buf_reset(&c->buf);
                ht_agg_hrec_pack(&e->rec, &c->buf);
                chk(c, ht_store_put(c->t, HT_DB_AGG, e->k, e->kn, c->buf.data,
                                    c->buf.len));
            }
        }
        ht_agg_hrec_free(&e->rec);
    }
    free(c->hc.e);
    memset(&c->hc, 0, sizeof(c->hc));
}

/* Add (sign 1) or take away (sign -1) one summary from its histogram. */
static void hist_apply(struct rctx *c, const struct ht_agg_summary *s, int sign)
{
    uint8_t key[HT_KEY_MAX];
    size_t kn = ht_agg_key_hist(key, s->start_us, s->api, s->stage, s->route);
    struct hent *e;
    struct ht_agg_hrec *h;

    if (!kn)
        return;
    e = hist_get(c, key, kn);
    h = &e->rec;
    h->count += sign;
    h->errors += (s->flags & HT_AGG_S_ERROR) ? sign : 0;
    h->faults += (s->flags & HT_AGG_S_FAULT) ? sign : 0;
    h->throttles += (s->flags & HT_AGG_S_THROTTLE) ? sign : 0;
    ht_agg_hist_add(&h->sync, ht_agg_bin(s->sync_us), sign);
    if (s->flags & HT_AGG_S_PENDING)
        h->incomplete += sign;
    else
        ht_agg_hist_add(&h->e2e, ht_agg_bin(s->e2e_us), sign);
    /* at 0 the record goes (hist_flush); a later summary of the slice
     * starts it over from nothing, as reading it back would */
    e->gone = h->count <= 0;
}

/* The slot of `root` (its own, or the empty one it would take). */
static struct sent *sc_slot(struct scache *sc, const struct ht_id8 *root)
{
    size_t i = (size_t)(ht_be64_get(root->b) * 0x9E3779B97F4A7C15ull >> 32) &
               (sc->cap - 1);

    while (sc->e[i].used && memcmp(sc->e[i].root.b, root->b, 8) != 0)
        i = (i + 1) & (sc->cap - 1);
    return &sc->e[i];
}

static void sc_put(struct scache *sc, const struct ht_id8 *root, int state,
                   const struct ht_agg_summary *s)
{
    struct sent *e;

    if ((sc->n + 1) * 2 > sc->cap) {
        struct scache g = {0};

        g.cap = sc->cap ? sc->cap * 2 : 256;
        g.e = ht_table_alloc(g.cap, sizeof(*g.e));
        HT_ASSERT(g.e);
        for (size_t i = 0; i < sc->cap; i++)
            if (sc->e[i].used)
                *sc_slot(&g, &sc->e[i].root) = sc->e[i];
        g.n = sc->n;
        free(sc->e);
        *sc = g;
    }
    e = sc_slot(sc, root);
    if (!e->used) {
        e->used = true;
        e->root = *root;
        sc->n++;
    }
    e->state = state;
    if (s)
        e->s = *s;
}

/* Written or removed: read again when next asked for. */
static void sc_forget(struct scache *sc, const struct ht_id8 *root)
{
    struct sent *e;

    if (!sc->cap)
        return;
    e = sc_slot(sc, root);
    if (e->used)
        e->state = 0;
}

/* The summary of `root` (borrowed: its strings and items live in the
 * slice's arena and are not changed by the caller); *held (may be NULL):
 * whether the store holds a record for it, readable or not. */
static bool get_summ_held(struct rctx *c, const struct ht_id8 *root,
                          struct ht_agg_summary *s, bool *held)
{
    uint8_t key[9];
    const void *v;
    size_t vn;
    bool ok, there;

    if (c->sc.cap) {
        struct sent *e = sc_slot(&c->sc, root);

        if (e->used && e->state) {
            if (e->state == 1)
                *s = e->s;
            if (held)
                *held = e->state != 2;
            return e->state == 1;
        }
    }
    ht_agg_key_summary(key, root);
    there = ht_store_get(c->t, HT_DB_AGG, key, 9, &v, &vn) == HT_ERR_OK;
    ok = there && ht_agg_summary_unpack(v, vn, c->a, s) == HT_ERR_OK;
    sc_put(&c->sc, root, ok ? 1 : there ? 3 : 2, ok ? s : NULL);
    if (held)
        *held = there;
    return ok;
}

static bool get_summ(struct rctx *c, const struct ht_id8 *root,
                     struct ht_agg_summary *s)
{
    return get_summ_held(c, root, s, NULL);
}

/* ---- Jaeger search records ('J' per root, 'V' catalogue counts) ------- */

static struct cent *cc_slot(struct ccache *cc, const uint8_t *k, size_t kn,
                            uint64_t h)
{
    size_t i = (size_t)h & (cc->cap - 1);

    while (cc->e[i].k &&
           (cc->e[i].h != h || cc->e[i].kn != kn || memcmp(cc->e[i].k, k, kn)))
        i = (i + 1) & (cc->cap - 1);
    return &cc->e[i];
}

/* The count of catalogue key k, read from the store the first time. */
static struct cent *cc_get(struct ccache *cc, struct ht_txn *t,
                           const uint8_t *k, size_t kn)
{
    uint64_t h = ht_hash_mem(k, kn);
    struct cent *e;
    const void *v;
    size_t vn;

    if ((cc->n + 1) * 2 > cc->cap) {
        struct ccache g = {0};

        g.cap = cc->cap ? cc->cap * 2 : 64;
        g.e = ht_table_alloc(g.cap, sizeof(*g.e));
        HT_ASSERT(g.e);
        for (size_t i = 0; i < cc->cap; i++)
            if (cc->e[i].k)
                *cc_slot(&g, cc->e[i].k, cc->e[i].kn, cc->e[i].h) = cc->e[i];
        free(cc->e);
        cc->e = g.e;
        cc->cap = g.cap;
    }
    e = cc_slot(cc, k, kn, h);
    if (e->k)
        return e;
    e->k = ht_arena_alloc(cc->a, kn);
    memcpy(e->k, k, kn);
    e->kn = kn;
    e->h = h;
    e->n = 0;
    cc->n++;
    if (ht_store_get(t, HT_DB_AGG, k, kn, &v, &vn) == HT_ERR_OK && vn == 8)
        memcpy(&e->n, v, 8);
    return e;
}

/* Writes the changed counts (a count at 0 or below goes) and forgets
 * them. Every cached key is written: one that only went up and down
 * again is rewritten with the value it had. */
static int ccache_flush(struct ccache *cc, struct ht_txn *t, bool write)
{
    int rc = HT_ERR_OK;

    for (size_t i = 0; i < cc->cap && write; i++) {
        struct cent *e = &cc->e[i];

        if (!e->k)
            continue;
        if (e->n > 0)
            rc = ht_store_put(t, HT_DB_AGG, e->k, e->kn, &e->n, 8);
        else
            rc = ht_store_del(t, HT_DB_AGG, e->k, e->kn);
        if (rc && rc != HT_ERR_NOTFOUND)
            break;
        rc = HT_ERR_OK;
    }
    free(cc->e);
    cc->e = NULL;
    cc->cap = cc->n = 0;
    return rc;
}

/* Adds `sign` to the catalogue count of every triple of j. */
static void jcat_apply(struct ccache *cc, struct ht_txn *t,
                       const struct ht_jaeger_rec *j, int sign)
{
    for (uint32_t i = 0; i < j->nops; i++) {
        uint8_t key[HT_KEY_MAX];
        size_t kn = ht_agg_key_jcatalog(key, j->ops[i].service,
                                        j->ops[i].operation, j->ops[i].kind);

        if (kn)
            cc_get(cc, t, key, kn)->n += sign;
    }
}

/* Removes the 'J' record of root, and its triples from the catalogue. */
static int jaeger_drop(struct ccache *cc, struct ht_txn *t,
                       const struct ht_id8 *root, struct ht_arena *a)
{
    uint8_t key[9];
    const void *v;
    size_t vn;
    struct ht_jaeger_rec old;
    int rc;

    ht_agg_key_jaeger(key, root);
    if (ht_store_get(t, HT_DB_AGG, key, 9, &v, &vn) != HT_ERR_OK)
        return HT_ERR_OK;
    if (ht_jaeger_rec_unpack(v, vn, a, &old) == HT_ERR_OK)
        jcat_apply(cc, t, &old, -1);
    rc = ht_store_del(t, HT_DB_AGG, key, 9);
    return rc == HT_ERR_NOTFOUND ? HT_ERR_OK : rc;
}

/* Writes the 'J' record `now` of root (replacing the old one). A root
 * has a 'J' record only when it has a summary record: both are written
 * and removed together (store_summ, drop_summ, prune_txn), so without
 * one (had: the store holds the summary's key, readable or not) there is
 * no old record to read. */
static int jaeger_store(struct ccache *cc, struct ht_txn *t,
                        const struct ht_id8 *root,
                        const struct ht_jaeger_rec *now, struct ht_arena *a,
                        struct ht_buf *buf, bool had)
{
    uint8_t key[9];
    int rc = had ? jaeger_drop(cc, t, root, a) : HT_ERR_OK;

    if (rc)
        return rc;
    jcat_apply(cc, t, now, 1);
    ht_agg_key_jaeger(key, root);
    ht_buf_reset(buf);
    ht_jaeger_rec_pack(now, buf);
    return ht_store_put(t, HT_DB_AGG, key, 9, buf->data, buf->len);
}

static void drop_summ(struct rctx *c, const struct ht_id8 *root)
{
    uint8_t key[17];
    struct ht_agg_summary old;

    if (!get_summ(c, root, &old))
        return;
    hist_apply(c, &old, -1);
    ht_agg_key_window(key, old.start_us, root);
    chk(c, ht_store_del(c->t, HT_DB_AGG, key, 17));
    ht_agg_key_summary(key, root);
    chk(c, ht_store_del(c->t, HT_DB_AGG, key, 9));
    chk(c, jaeger_drop(&c->cc, c->t, root, c->a));
    sc_forget(&c->sc, root);
    c->st.removed++;
}

/* A request whose logged event named its route template also tells what
 * its stage URL's route stands for. Requests of the same route whose
 * event was not logged are counted under the template at query time. */
static void learn_template(struct rctx *c, const struct ht_agg_summary *s,
                           const char *url_route)
{
    uint8_t key[HT_KEY_MAX];
    const void *v;
    size_t vn, tn = strlen(s->route);
    size_t kn = ht_agg_key_template(key, s->api, s->stage, url_route);

    if (!kn)
        return;
    if (ht_store_get(c->t, HT_DB_AGG, key, kn, &v, &vn) == HT_ERR_OK &&
        vn == tn && memcmp(v, s->route, tn) == 0)
        return;
    chk(c, ht_store_put(c->t, HT_DB_AGG, key, kn, s->route, tn));
}

static void store_summ(struct rctx *c, const struct digest *d)
{
    const struct ht_id8 *root = &d->root;
    uint8_t key[17];
    struct ht_agg_summary old;
    bool held, had = get_summ_held(c, root, &old, &held);

    if (had) {
        hist_apply(c, &old, -1);
        ht_agg_key_window(key, old.start_us, root);
        chk(c, ht_store_del(c->t, HT_DB_AGG, key, 17));
    }
    hist_apply(c, &d->s, 1);
    ht_agg_key_window(key, d->s.start_us, root);
    chk(c, ht_store_put(c->t, HT_DB_AGG, key, 17, "", 0));
    ht_agg_key_summary(key, root);
    ht_buf_reset(&c->buf);
    ht_agg_summary_pack(&d->s, &c->buf);
    chk(c, ht_store_put(c->t, HT_DB_AGG, key, 9, c->buf.data, c->buf.len));
    chk(c, jaeger_store(&c->cc, c->t, root, &d->j, c->a, &c->buf, held));
    sc_forget(&c->sc, root);
    c->st.requests++;
    if (d->url_route && c->defer_tmpl) {
        struct tmpl_note n = {c->ord++, &d->s, d->url_route};

        ht_buf_add(&c->tmpl, &n, sizeof(n));
    } else if (d->url_route) {
        learn_template(c, &d->s, d->url_route);
    }
}

static int tmpl_cmp(const void *x, const void *y)
{
    const struct tmpl_note *a = x, *b = y;

    return a->ord < b->ord ? -1 : a->ord > b->ord;
}

static bool same_tmpl(const struct tmpl_note *a, const struct tmpl_note *b)
{
    return strcmp(a->url_route, b->url_route) == 0 &&
           strcmp(a->s->route, b->s->route) == 0 &&
           strcmp(a->s->api, b->s->api) == 0 &&
           strcmp(a->s->stage, b->s->stage) == 0;
}

/* The templates noted in a slice with readers, learnt in the traces'
 * order. */
static void tmpl_flush(struct rctx *c)
{
    struct tmpl_note *p = (struct tmpl_note *)(void *)c->tmpl.data;
    size_t n = c->tmpl.len / sizeof(*p);

    c->defer_tmpl = false; /* tl_flush's rechecks learn as they go */
    if (n > 1)
        qsort(p, n, sizeof(*p), tmpl_cmp);
    for (size_t i = 0; i < n && !c->err; i++) {
        /* the one before left its key holding its template: a request of
         * the same URL route and template learns nothing */
        if (i && same_tmpl(&p[i - 1], &p[i]))
            continue;
        learn_template(c, p[i].s, p[i].url_route);
    }
    ht_buf_reset(&c->tmpl);
}

/* The roots a trace was last seen in: copied (the value is borrowed).
 * Read through seq when there is one (traces in key order). */
static size_t get_troots(struct rctx *c, const struct ht_tid *tid,
                         struct ht_id8 **out, struct ht_seq *seq)
{
    uint8_t key[17];
    const void *v;
    size_t vn, n;

    ht_agg_key_trace(key, tid);
    *out = NULL;
    if ((seq ? ht_store_seq_get(seq, key, 17, &v, &vn)
             : ht_store_get(c->t, HT_DB_AGG, key, 17, &v, &vn)) != HT_ERR_OK)
        return 0;
    n = vn / 8;
    *out = ht_arena_alloc(c->a, n * 8 + 8);
    memcpy(*out, v, n * 8);
    return n;
}

static int id8_cmp(const void *x, const void *y)
{
    return memcmp(x, y, 8);
}

/* A trace's roots are kept in id order without repeats, so the record is
 * a function of the set alone, not of the order roots joined it. Written
 * only when it changed (old: what the record held, nold roots). */
static void put_troots(struct rctx *c, const struct ht_tid *tid,
                       struct ht_id8 *ids, size_t n, const struct ht_id8 *old,
                       size_t nold, struct ht_seq *seq)
{
    uint8_t key[17];
    size_t w = 0;

    qsort(ids, n, 8, id8_cmp);
    for (size_t i = 0; i < n; i++)
        if (!w || memcmp(ids[w - 1].b, ids[i].b, 8) != 0)
            ids[w++] = ids[i];
    n = w > HT_AGG_MAX_T_ROOTS ? HT_AGG_MAX_T_ROOTS : w;
    if (n == nold && (!n || memcmp(ids, old, n * 8) == 0))
        return;
    ht_agg_key_trace(key, tid);
    if (!n)
        chk(c, ht_store_del(c->t, HT_DB_AGG, key, 17));
    else if (seq)
        chk(c, ht_store_seq_put(seq, key, 17, ids, n * 8));
    else
        chk(c, ht_store_put(c->t, HT_DB_AGG, key, 17, ids, n * 8));
}

/* ---- which traces a root's request holds, per slice -----------------------
 */

static struct member *mem_slot(struct members *m, uint64_t k)
{
    if (!m->cap)
        return NULL;
    for (size_t i = (k * 0x9E3779B97F4A7C15ull) >> 40 & (m->cap - 1);;
         i = (i + 1) & (m->cap - 1))
        if (m->m[i].k == k || !m->m[i].k)
            return &m->m[i];
}

static struct member *mem_find(struct members *m, uint64_t k)
{
    struct member *e = mem_slot(m, k);

    return e && e->k == k ? e : NULL;
}

/* The entry of k, created empty when missing. */
static struct member *mem_get(struct members *m, uint64_t k)
{
    struct member *e;

    if ((m->n + 1) * 2 > m->cap) {
        struct members g = {0};

        g.cap = m->cap ? m->cap * 2 : 256;
        g.m = ht_table_alloc(g.cap, sizeof(*g.m));
        HT_ASSERT(g.m);
        for (size_t i = 0; i < m->cap; i++)
            if (m->m[i].k) {
                *mem_slot(&g, m->m[i].k) = m->m[i];
                g.n++;
            }
        free(m->m);
        *m = g;
    }
    e = mem_slot(m, k);
    if (!e->k) {
        memset(e, 0, sizeof(*e));
        e->k = k;
        m->n++;
    }
    return e;
}

/* Remember which traces the request rooted at d->root holds. */
static void mem_record(struct rctx *c, const struct digest *d)
{
    struct member *e = mem_get(&c->mem, id8_u64(&d->root));

    e->tids = d->tids;
    e->n = d->ntids;
}

/* The request rooted at `root`, named by `handle` (NULL when the handle
 * no longer leads to that root); its traces are remembered. `whole`
 * false: only its traces are wanted (digest_of). */
static const struct digest *assemble(struct rctx *c, const struct ht_id8 *root,
                                     const char *handle, bool whole)
{
    struct ht_request *r;
    const struct digest *d;

    if (!handle || !*handle ||
        ht_qsession_query_root(c->qs, handle, root, &r) != HT_ERR_OK)
        return NULL;
    d = digest_of(r, c->a, whole);
    mem_record(c, d);
    return d;
}

/* The request of a root-only request found in this slice's session; its
 * traces are remembered. */
static const struct digest *build(struct rctx *c, const struct ht_request *root)
{
    struct ht_request *r;
    const struct digest *d;

    if (ht_qsession_build(c->qs, root, &r) != HT_ERR_OK)
        return NULL;
    d = digest_of(r, c->a, true);
    mem_record(c, d);
    return d;
}

/* Whether the request rooted at `root` still has a summary and holds the
 * trace: the test for keeping the root in the trace's 'T' record. */
static bool holds(struct rctx *c, const struct ht_id8 *root,
                  const struct ht_tid *tid)
{
    struct ht_agg_summary s;
    struct member *e;

    if (!get_summ(c, root, &s))
        return false;
    e = mem_find(&c->mem, id8_u64(root));
    if (!e) {
        if (!assemble(c, root, s.handle, false))
            return false; /* a summary its handle no longer leads to */
        e = mem_find(&c->mem, id8_u64(root));
    }
    for (size_t i = 0; i < e->n; i++)
        if (memcmp(e->tids[i].b, tid->b, 16) == 0)
            return true;
    return false;
}

/* ---- rebuilding ---------------------------------------------------------- */

/* A root summarized before may have become part of another request (its
 * producer arrived later): rebuild its summary from its handle, or drop
 * it. A recheck does not link the rebuilt request's traces (that keeps
 * the work bounded); they are linked when one of them is refreshed. */
static void recheck(struct rctx *c, const struct ht_id8 *root)
{
    struct ht_agg_summary old;
    const struct digest *r;
    uint64_t k = id8_u64(root);

    if (idset_has(&c->done, k))
        return;
    idset_add(&c->done, k);
    if (!get_summ(c, root, &old))
        return;
    r = assemble(c, root, old.handle, true);
    if (r)
        store_summ(c, r);
    else
        drop_summ(c, root);
}

/* Notes that the trace's 'T' record is to hold `root` (unless NULL) and
 * those of the roots it held before that still root a request holding the
 * trace: done by tl_flush. */
static void relink(struct rctx *c, const struct ht_tid *tid,
                   const struct ht_id8 *root)
{
    struct tlink e;

    memset(&e, 0, sizeof(e));
    e.tid = *tid;
    if (root) {
        e.root = *root;
        e.has_root = true;
    }
    ht_buf_add(&c->tl, &e, sizeof(e));
}

/* Whether trace a sorts before trace b (the keys' byte order). */
static inline bool tid_less(const struct ht_tid *a, const struct ht_tid *b)
{
    uint64_t p = ht_be64_get(a->b), q = ht_be64_get(b->b);

    if (p != q)
        return p < q;
    return ht_be64_get(a->b + 8) < ht_be64_get(b->b + 8);
}

/* Sorts p[0, n) by trace, tmp the same size: a merge sort with the compare
 * inlined, a few times quicker than qsort's calls through a pointer (the
 * order of one trace's links does not matter). */
static void tl_sort(struct tlink *p, struct tlink *tmp, size_t n)
{
    if (n < 16) {
        for (size_t i = 1; i < n; i++) {
            struct tlink x = p[i];
            size_t j = i;

            for (; j > 0 && tid_less(&x.tid, &p[j - 1].tid); j--)
                p[j] = p[j - 1];
            p[j] = x;
        }
        return;
    }
    size_t h = n / 2, i = 0, j = h, k = 0;

    tl_sort(p, tmp, h);
    tl_sort(p + h, tmp, n - h);
    if (!tid_less(&p[h].tid, &p[h - 1].tid))
        return; /* already in order */
    while (i < h && j < n)
        tmp[k++] = tid_less(&p[j].tid, &p[i].tid) ? p[j++] : p[i++];
    while (i < h)
        tmp[k++] = p[i++];
    memcpy(p, tmp, k * sizeof(*p)); /* p[j, n) is in place */
}

/* Every noted trace's 'T' record afterwards holds the roots linked to it
 * in this slice and those it held before that still root a request
 * holding the trace; the roots it held are rechecked first. The same
 * records as relinking after each request (a root linked earlier in the
 * slice still holds the trace, and a recheck is done once per slice),
 * in one read and one write per trace, in key order. */
static void tl_flush(struct rctx *c)
{
    struct tlink *p = (struct tlink *)(void *)c->tl.data;
    size_t n = c->tl.len / sizeof(*p);
    struct ht_seq *seq = NULL;

    if (!n)
        return;
    {
        struct tlink *tmp = malloc(n * sizeof(*tmp));

        HT_ASSERT(tmp); /* like every other allocation here */
        tl_sort(p, tmp, n);
        free(tmp);
    }
    /* the records are read in key order: one cursor (without one, each
     * get descends from the root) */
    if (ht_store_seq_open(c->t, HT_DB_AGG, &seq) != HT_ERR_OK)
        seq = NULL;
    for (size_t i = 0, end; i < n && !c->err; i = end) {
        const struct ht_tid *tid = &p[i].tid;
        struct ht_id8 *old, *keep;
        size_t nold = get_troots(c, tid, &old, seq), nk = 0;

        for (end = i; end < n && memcmp(p[end].tid.b, tid->b, 16) == 0; end++)
            ;
        for (size_t j = 0; j < nold; j++)
            recheck(c, &old[j]);
        keep = ht_arena_alloc(c->a, (nold + end - i + 1) * 8);
        for (size_t j = i; j < end; j++)
            if (p[j].has_root)
                keep[nk++] = p[j].root;
        for (size_t j = 0; j < nold && !c->err; j++)
            if (holds(c, &old[j], tid))
                keep[nk++] = old[j];
        put_troots(c, tid, keep, nk, old, nold, seq);
    }
    ht_store_seq_close(seq);
}

/* Every trace of the request names its root; the roots those traces named
 * before are rechecked, and kept only while their requests hold the trace
 * (a trace can leave a request that stays a root). */
static void link_traces(struct rctx *c, const struct digest *r)
{
    const struct ht_id8 *root = &r->root;
    const struct member *e = mem_find(&c->mem, id8_u64(root));

    if (!e)
        return;
    for (size_t i = 0; i < e->n && !c->err; i++)
        relink(c, &e->tids[i], root);
}

/* What a prefetch found for one dirty trace (see prefetch below). */
struct pre_root {
    struct ht_id8 root;
    const struct digest *d; /* NULL: no handle, or no request from it */
};

struct pre {
    int state; /* 0: not prefetched, 1: roots found, 2: none found */
    bool own;  /* assembled by the slice's thread, not a reader */
    size_t n;
    struct pre_root *roots;
};

static void refresh_trace(struct rctx *c, const struct ht_tid *tid,
                          const struct pre *pre)
{
    struct ht_request *reqs = NULL;
    size_t n = 0;
    uint8_t key[16];
    struct ht_agg_summary s;
    bool found;

    /* the roots first (of the requests holding the trace: an id of
     * another kind spelled like the trace id names requests whose own
     * traces refresh them): a request reached through several of its
     * traces in one slice is assembled and linked once; one already
     * rebuilt by a recheck in this slice is linked still. A prefetch
     * assembled them already, from the same data. */
    if (pre && pre->state) {
        found = pre->state == 1;
        n = pre->n;
        c->st.prefetched += !pre->own;
    } else {
        found = ht_qsession_trace_roots(c->qs, tid, &reqs, &n) == HT_ERR_OK;
    }
    for (size_t i = 0; found && i < n && !c->err; i++) {
        const struct ht_id8 *root =
            reqs ? &reqs[i].spans[0].s.id : &pre->roots[i].root;
        uint64_t k = id8_u64(root);
        const struct digest *r;

        if (idset_has(&c->linked, k))
            continue;
        idset_add(&c->linked, k);
        if (reqs) {
            const char *handle = reqs[i].root_handle;

            /* the root was just found in this session: its request is
             * built from it directly (its handle leads back to it) */
            r = handle && *handle ? build(c, &reqs[i]) : NULL;
        } else {
            r = pre->roots[i].d;
            if (r)
                mem_record(c, r);
        }
        if (!r)
            continue;
        /* rebuilt by a recheck already, unless that dropped it (its
         * old handle led elsewhere) */
        if (!idset_has(&c->done, k) || !get_summ(c, root, &s)) {
            idset_add(&c->done, k);
            store_summ(c, r);
        }
        link_traces(c, r);
    }
    /* roots the trace named before and no longer does go from its record
     * (rechecked), whether or not it still belongs to any request */
    if (!c->err)
        relink(c, tid, NULL);
    /* the slice's traces are the dirty table's first ones, in order:
     * their marks go together at commit, under one cursor */
    memcpy(key, tid->b, 16);
    chk(c, ht_store_del_later(c->t, HT_DB_DIRTY, key, 16, NULL, 0));
    c->st.traces++;
}

/* ---- readers: assembling a slice's requests on several threads ----------
 *
 * Assembling requests is most of the update, and it only reads. When the
 * caller can wait for the whole of it (`refresh`, an exiting ingest), the
 * slice's write transaction is begun first and its dirty traces are cut
 * into chunks of neighbouring ids (a request's traces have neighbouring
 * ids: they begin with the time they were made). One reader thread per
 * further core takes chunks in order and assembles them in its own read
 * transaction and session. The write transaction holds LMDB's writer lock
 * from before the readers begin to its commit, so no commit, by this
 * process or another, comes between: a reader sees exactly the data the
 * writer's transaction began from (its id is the writer's - 1, checked).
 *
 * The slice's own thread writes the chunks in order, each from the
 * digests of whoever assembled it. Whenever the next chunk is not ready it
 * assembles one itself, from its own session on the write transaction:
 * the next one if nobody has taken it, else the last one left (crew_take),
 * which it then writes at once (crew_write). So the writing, which only
 * this thread can do, overlaps the readers' assembling, and the threads
 * share the work whatever its mix. The result does not depend on which
 * thread assembled what, nor on the order the chunks were written in.
 */

#define PREFETCH_MAX_THREADS 8
#define PREFETCH_CHUNK 16 /* traces a reader takes at a time */

/* A reader's session and memory, kept from one slice to the next (as the
 * writer's are) so that every slice reuses what the first ones faulted
 * in. Its digests point into its session's and tmp's memory: the slice
 * writes them before the reader's next run reopens the session. */
struct reader {
    struct ht_qsession *qs;
    struct ht_arena *tmp; /* the digests */
    struct ht_arena *a;   /* the roots found per trace */
};

/* What the slice's thread and its readers share. */
struct chunks {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    const struct ht_tid *ids;
    struct pre *pre; /* per trace; filled by the reader of its chunk */
    size_t n, nchunks;
    size_t next;    /* the first chunk nobody has taken */
    size_t last;    /* the chunks from here on are taken (by the slice) */
    uint8_t *done;  /* per chunk: its pre are filled */
    bool stop;      /* the slice takes no more */
    bool started;   /* a reader has taken a chunk */
    uint64_t base;  /* the commit the write transaction began from */
    size_t readers; /* running */
};

struct prefetch {
    struct ht_store *s;
    struct chunks *ch;
    struct reader *rd;
    size_t max_bytes; /* the reader's session stops growing here */
};

/* Digests by root (id8_u64), for a reader's run. */
struct dmap {
    uint64_t *k; /* 0: empty slot */
    const struct digest **v;
    size_t cap, n;
};

static size_t dmap_slot(const struct dmap *m, uint64_t k)
{
    size_t i = (k * 0x9E3779B97F4A7C15ull) >> 40 & (m->cap - 1);

    while (m->k[i] && m->k[i] != k)
        i = (i + 1) & (m->cap - 1);
    return i;
}

static bool dmap_get(const struct dmap *m, uint64_t k, const struct digest **v)
{
    size_t i;

    if (!m->cap)
        return false;
    i = dmap_slot(m, k);
    if (!m->k[i])
        return false;
    *v = m->v[i];
    return true;
}

static void dmap_put(struct dmap *m, uint64_t k, const struct digest *v)
{
    size_t i;

    if ((m->n + 1) * 2 > m->cap) {
        struct dmap g = {0};

        g.cap = m->cap ? m->cap * 2 : 256;
        g.k = ht_table_alloc(g.cap, sizeof(*g.k));
        g.v = ht_table_alloc(g.cap, sizeof(*g.v));
        HT_ASSERT(g.k && g.v);
        for (size_t j = 0; j < m->cap; j++)
            if (m->k[j]) {
                i = dmap_slot(&g, m->k[j]);
                g.k[i] = m->k[j];
                g.v[i] = m->v[j];
            }
        g.n = m->n;
        free(m->k);
        free(m->v);
        *m = g;
    }
    i = dmap_slot(m, k);
    if (!m->k[i])
        m->n++;
    m->k[i] = k;
    m->v[i] = v;
}

/* The roots of trace `tid` and their digests, into o. A request reached
 * through several of the reader's traces is assembled once (built). */
static void read_trace(struct reader *rd, const struct ht_tid *tid,
                       struct pre *o, struct dmap *built)
{
    struct ht_request *reqs;
    size_t n;

    if (ht_qsession_trace_roots(rd->qs, tid, &reqs, &n) != HT_ERR_OK) {
        o->state = 2;
        return;
    }
    o->roots = ht_arena_alloc(rd->a, (n + 1) * sizeof(*o->roots));
    o->n = n;
    o->state = 1;
    for (size_t j = 0; j < n; j++) {
        struct pre_root *pr = &o->roots[j];
        const char *handle = reqs[j].root_handle;
        uint64_t k = id8_u64(&reqs[j].spans[0].s.id);
        struct ht_request *r;

        pr->root = reqs[j].spans[0].s.id;
        pr->d = NULL;
        if (!handle || !*handle || dmap_get(built, k, &pr->d))
            continue;
        if (ht_qsession_build(rd->qs, &reqs[j], &r) == HT_ERR_OK)
            pr->d = digest_of(r, rd->tmp, true);
        dmap_put(built, k, pr->d);
    }
}

/* Chunk c, taken by rd (own: the slice's thread), assembled and marked
 * done. Called and returns with ch->mu held. */
static void read_chunk(struct chunks *ch, size_t c, struct reader *rd,
                       struct dmap *built, bool own)
{
    pthread_mutex_unlock(&ch->mu);
    for (size_t i = c * PREFETCH_CHUNK;
         i < (c + 1) * PREFETCH_CHUNK && i < ch->n; i++) {
        read_trace(rd, &ch->ids[i], &ch->pre[i], built);
        ch->pre[i].own = own;
    }
    pthread_mutex_lock(&ch->mu);
    ch->done[c] = 1;
    pthread_cond_broadcast(&ch->cv);
}

/* Whether rd's session and digests have reached max bytes. */
static bool reader_full(const struct reader *rd, size_t max)
{
    return ht_qsession_memory(rd->qs) + ht_arena_used(rd->tmp) >= max;
}

/* A reader's run: chunk after chunk until none is left, the slice stops
 * or the reader's memory is full (the slice assembles the rest). */
static void *prefetch_run(void *arg)
{
    struct prefetch *p = arg;
    struct chunks *ch = p->ch;
    struct reader *rd = p->rd;
    struct ht_txn *t = NULL;
    struct dmap built = {0};
    bool ok;

    ht_arena_clear(rd->tmp);
    ht_arena_clear(rd->a);
    ok = ht_store_begin(p->s, false, &t) == HT_ERR_OK;
    /* the writer's lock is held: anything else cannot be */
    ok = ok && ht_store_txn_id(t) == ch->base;
    if (ok) {
        if (rd->qs)
            ok = ht_qsession_reopen(rd->qs, t) == HT_ERR_OK;
        else
            ok = ht_qsession_open(t, &rd->qs) == HT_ERR_OK;
        if (ok)
            ht_qsession_bulk(rd->qs); /* readers run only in a catch-up */
    }
    pthread_mutex_lock(&ch->mu);
    while (ok && !ch->stop && ch->next < ch->last &&
           !reader_full(rd, p->max_bytes)) {
        if (!ch->started) {
            ch->started = true; /* the slice may take from the back now */
            pthread_cond_broadcast(&ch->cv);
        }
        read_chunk(ch, ch->next++, rd, &built, false);
    }
    ch->readers--;
    pthread_cond_broadcast(&ch->cv);
    pthread_mutex_unlock(&ch->mu);
    /* the session keeps what the digests point to (records are copied
     * out of the map as they are read) until the next run reopens it */
    ht_store_abort(t);
    free(built.k);
    free(built.v);
    return NULL;
}

static size_t cores(void)
{
    unsigned n = ht_cores();

    return n > PREFETCH_MAX_THREADS ? PREFETCH_MAX_THREADS : n;
}

/* ---- slices -------------------------------------------------------------- */

struct dirty_ctx {
    struct ht_tid *ids;
    size_t n, max;
};

static int dirty_visit(void *ctx, const void *k, size_t kn, const void *v,
                       size_t vn)
{
    struct dirty_ctx *d = ctx;

    (void)v;
    (void)vn;
    if (kn == 16)
        memcpy(d->ids[d->n++].b, k, 16);
    return d->n == d->max;
}

/* What a run of slices (ht_agg_refresh) keeps from one slice to the next:
 * the query session and the slice arena, emptied, so that every slice
 * reuses the memory the first ones faulted in. */
struct keep {
    struct ht_qsession *qs;
    struct ht_arena *a;
    bool parallel; /* readers assemble alongside (one per further core) */
    struct reader rd[PREFETCH_MAX_THREADS];
};

static void keep_free(struct keep *k)
{
    ht_qsession_close(k->qs);
    ht_arena_destroy(k->a);
    for (size_t i = 0; i < PREFETCH_MAX_THREADS; i++) {
        ht_qsession_close(k->rd[i].qs);
        if (k->rd[i].tmp)
            ht_arena_destroy(k->rd[i].tmp);
        if (k->rd[i].a)
            ht_arena_destroy(k->rd[i].a);
    }
    memset(k, 0, sizeof(*k));
}

void (*ht_agg_slice_hook)(void *ctx);
void *ht_agg_slice_ctx;

/* A slice's readers, while it runs. */
struct crew {
    struct chunks ch;
    struct prefetch p[PREFETCH_MAX_THREADS];
    pthread_t th[PREFETCH_MAX_THREADS];
    size_t k;         /* readers started */
    uint8_t *written; /* per chunk: written out of order (the slice's) */
};

/* Readers for the n dirty traces ids of write transaction t, one per
 * further core; false (and nothing started) when not worth it or not
 * possible. */
static bool crew_start(struct crew *w, struct ht_store *s, struct ht_txn *t,
                       struct keep *keep, const struct ht_tid *ids, size_t n)
{
    size_t k = cores() - 1;

    memset(w, 0, sizeof(*w));
    if (k > n / PREFETCH_CHUNK)
        k = n / PREFETCH_CHUNK; /* not worth a thread for a few traces */
    if (!k)
        return false;
    for (size_t i = 0; i < k; i++) {
        struct reader *rd = &keep->rd[i];

        if (!rd->tmp)
            rd->tmp = ht_arena_create();
        if (!rd->a)
            rd->a = ht_arena_create();
        if (!rd->tmp || !rd->a)
            return false;
    }
    w->ch.ids = ids;
    w->ch.n = n;
    w->ch.nchunks = (n + PREFETCH_CHUNK - 1) / PREFETCH_CHUNK;
    w->ch.last = w->ch.nchunks;
    w->ch.pre = calloc(n, sizeof(*w->ch.pre));
    w->ch.done = calloc(w->ch.nchunks, 1);
    w->written = calloc(w->ch.nchunks, 1);
    w->ch.base = ht_store_txn_id(t) - 1;
    if (!w->ch.pre || !w->ch.done || !w->written) {
        free(w->ch.pre);
        free(w->ch.done);
        free(w->written);
        return false;
    }
    pthread_mutex_init(&w->ch.mu, NULL);
    pthread_cond_init(&w->ch.cv, NULL);
    for (size_t i = 0; i < k; i++) {
        w->p[i] = (struct prefetch){
            .s = s,
            .ch = &w->ch,
            .rd = &keep->rd[i],
            .max_bytes = HT_AGG_SLICE_BYTES / (k + 1),
        };
        w->ch.readers++;
        if (pthread_create(&w->th[i], NULL, prefetch_run, &w->p[i]) != 0) {
            w->ch.readers--;
            break;
        }
        w->k++;
    }
    return true;
}

/* Writes chunk b, which the slice's thread has just assembled, at once
 * rather than in its turn: the traces the slice's thread assembles come
 * from the far end, and written in their turn they would all be written
 * after the readers are done, by this thread alone. A trace's writes do
 * not depend on the traces written before it in the slice (each root is
 * stored once, from the same data whoever assembled it; counts add up;
 * the traces' roots are rewritten by tl_flush, in trace order), except
 * for the templates learnt, which are put back in order (tmpl_flush). */
static void crew_write(struct rctx *c, struct crew *w, size_t b)
{
    for (size_t i = b * PREFETCH_CHUNK;
         i < (b + 1) * PREFETCH_CHUNK && i < w->ch.n && !c->err; i++) {
        c->ord = (uint64_t)i << 20;
        refresh_trace(c, &w->ch.ids[i], &w->ch.pre[i]);
    }
    w->written[b] = 1;
}

/* The pre of trace i to write from, once its chunk is done. While a
 * reader is still on it, the slice's thread assembles chunks itself (own:
 * its session on the write transaction) from the far end, where the
 * readers come last: no thread waits while there is work, and few
 * requests are assembled by both (a request's traces are neighbours).
 * At its memory bound it takes only the chunk it needs. Until a reader
 * has begun, one chunk is left to the readers, so that every slice run
 * with readers has some of its traces assembled by them (what the tests
 * compare with the slice's own assembling) however the threads are
 * scheduled; a reader that cannot begin leaves them all to the slice. */
static const struct pre *crew_take(struct crew *w, size_t i, struct reader *own,
                                   struct dmap *built, struct rctx *ctx)
{
    struct chunks *ch = &w->ch;
    size_t c = i / PREFETCH_CHUNK;

    pthread_mutex_lock(&ch->mu);
    while (!ch->done[c]) {
        bool hold = !ch->started && ch->readers; /* one for the readers */

        if (ch->next == c && !hold) {
            read_chunk(ch, ch->next++, own, built, true); /* nobody has it */
        } else if (ch->next + hold < ch->last &&
                   !reader_full(own, HT_AGG_SLICE_BYTES)) {
            size_t b = --ch->last;

            read_chunk(ch, b, own, built, true);
            pthread_mutex_unlock(&ch->mu);
            crew_write(ctx, w, b);
            pthread_mutex_lock(&ch->mu);
        } else {
            pthread_cond_wait(&ch->cv, &ch->mu); /* its reader is on it */
        }
    }
    pthread_mutex_unlock(&ch->mu);
    return &ch->pre[i];
}

static void crew_stop(struct crew *w)
{
    pthread_mutex_lock(&w->ch.mu);
    w->ch.stop = true;
    pthread_mutex_unlock(&w->ch.mu);
    for (size_t i = 0; i < w->k; i++)
        pthread_join(w->th[i], NULL);
    pthread_mutex_destroy(&w->ch.mu);
    pthread_cond_destroy(&w->ch.cv);
    free(w->ch.pre);
    free(w->ch.done);
    free(w->written);
    memset(w, 0, sizeof(*w));
}

static int slice(struct ht_store *s, size_t max, bool *more,
                 struct ht_agg_stats *out, struct keep *keep)
{
    struct dirty_ctx d = {0};
    struct crew w;
    struct reader own;
    struct dmap built = {0};
    bool crew = false;
    struct rctx c;
    int64_t t0 = ht_now_mono_us();
    size_t i = 0;
    int rc;

    *more = false;
    memset(&c, 0, sizeof(c));
    if (ht_agg_slice_hook)
        ht_agg_slice_hook(ht_agg_slice_ctx);
    d.max = max;
    d.ids = malloc(max * sizeof(*d.ids));
    if (!d.ids)
        return HT_ERR_NOMEM;
    rc = ht_store_begin(s, true, &c.t);
    if (rc)
        goto out;
    rc = ht_store_scan(c.t, HT_DB_DIRTY, NULL, 0, dirty_visit, &d);
    if (rc || !d.n) {
        ht_store_abort(c.t);
        goto out;
    }
    if (keep && keep->qs) {
        c.qs = keep->qs;
        c.a = keep->a;
        keep->qs = NULL;
        keep->a = NULL;
        ht_arena_clear(c.a);
        rc = ht_qsession_reopen(c.qs, c.t);
    } else {
        c.a = ht_arena_create();
        rc = c.a ? ht_qsession_open(c.t, &c.qs) : HT_ERR_NOMEM;
        if (!rc && keep) /* a catch-up: many requests */
            ht_qsession_bulk(c.qs);
    }
    if (rc) {
        ht_qsession_close(c.qs);
        ht_arena_destroy(c.a);
        ht_store_abort(c.t);
        goto out;
    }
    if (keep && keep->parallel)
        crew = crew_start(&w, s, c.t, keep, d.ids, d.n);
    c.defer_tmpl = crew;
    own = (struct reader){c.qs, c.a, c.a};
    ht_buf_init(&c.buf);
    ht_buf_init(&c.tl);
    ht_buf_init(&c.tmpl);
    c.cc.a = c.a;
    /* the graph is kept for the whole slice (a request reached through
     * several traces is loaded once); the slice ends early when it has
     * taken its time or its memory */
    while (i < d.n && !c.err) {
        const struct pre *pre;

        if (crew && w.written[i / PREFETCH_CHUNK]) {
            i = (i / PREFETCH_CHUNK + 1) * PREFETCH_CHUNK; /* written */
            continue;
        }
        pre = crew ? crew_take(&w, i, &own, &built, &c) : NULL;
        c.ord = (uint64_t)i << 20;
        refresh_trace(&c, &d.ids[i], pre);
        i++;
        if ((!crew && ht_now_mono_us() - t0 >= HT_AGG_SLICE_US) ||
            reader_full(&own, HT_AGG_SLICE_BYTES))
            break;
    }
    if (crew)
        crew_stop(&w); /* the readers are done before the slice commits */
    free(built.k);
    free(built.v);
    tmpl_flush(&c);
    tl_flush(&c);
    hist_flush(&c); /* before the arena holding its keys goes */
    chk(&c, ccache_flush(&c.cc, c.t, !c.err));
    if (keep) {
        keep->qs = c.qs;
        keep->a = c.a;
    } else {
        ht_qsession_close(c.qs);
        ht_arena_destroy(c.a);
    }
    free(c.done.k);
    free(c.linked.k);
    free(c.mem.m);
    ht_buf_free(&c.tl);
    ht_buf_free(&c.tmpl);
    free(c.sc.e);
    ht_buf_free(&c.buf);
    if (c.err) {
        ht_store_abort(c.t);
        rc = c.err;
        goto out;
    }
    rc = ht_store_commit(c.t);
    if (rc)
        goto out;
    c.st.slices = 1;
    c.st.longest_us = ht_now_mono_us() - t0;
    if (out) {
        out->traces += c.st.traces;
        out->requests += c.st.requests;
        out->removed += c.st.removed;
        out->slices += c.st.slices;
        out->prefetched += c.st.prefetched;
        out->total_us += c.st.longest_us;
        if (c.st.longest_us > out->longest_us)
            out->longest_us = c.st.longest_us;
    }
    *more = d.n == max || i < d.n;
out:
    free(d.ids);
    return rc;
}

struct update_args {
    size_t max;
    bool *more;
    struct ht_agg_stats *st;
    struct keep *keep;
};

static int update_run(struct ht_store *s, void *ctx)
{
    struct update_args *a = ctx;

    return slice(s, a->max, a->more, a->st, a->keep);
}

static int update(struct ht_store *s, size_t max_traces, bool *more,
                  struct ht_agg_stats *st, struct keep *keep)
{
    struct update_args a = {max_traces, more, st, keep};

    if (!a.max)
        a.max = HT_AGG_SLICE_TRACES;
    if (a.max > MAX_SLICE_TRACES)
        a.max = MAX_SLICE_TRACES;
    return ht_store_write_growing(s, update_run, &a);
}

int ht_agg_update(struct ht_store *s, size_t max_traces, bool *more,
                  struct ht_agg_stats *st)
{
    return update(s, max_traces, more, st, NULL);
}

/* Traces per slice of a catch-up of `pending` dirty traces: as many
 * slices as HT_AGG_CATCH_UP_TRACES a slice gives when rounded to the
 * nearest (one at least), all the same size (a last slice of a few traces
 * costs a slice's end, alone on one thread, for little). Never below half
 * of it: traces another process marks dirty after the count are taken in
 * slices of a useful size too. */
static size_t catch_up_slice(uint64_t pending)
{
    const uint64_t per = HT_AGG_CATCH_UP_TRACES;
    uint64_t n = (pending + per / 2) / per, size;

    if (n < 1)
        n = 1;
    size = (pending + n - 1) / n;
    return (size_t)(size < per / 2 ? per / 2 : size);
}

int ht_agg_catch_up(struct ht_store *s, struct ht_agg_stats *st)
{
    struct keep keep = {.parallel = true};
    bool more = true;
    uint64_t pending = 0;
    size_t per = HT_AGG_CATCH_UP_TRACES;
    int rc = HT_ERR_OK;

    if (ht_agg_pending(s, &pending) == HT_ERR_OK)
        per = catch_up_slice(pending);
    while (more && !rc)
        rc = update(s, per, &more, st, &keep);
    keep_free(&keep);
    return rc;
}

int ht_agg_refresh(struct ht_store *s, struct ht_agg_stats *st)
{
    memset(st, 0, sizeof(*st));
    return ht_agg_catch_up(s, st);
}

/* ---- retention ----------------------------------------------------------- */

/* Keys collected in a read before they are deleted (no deleting under a
 * cursor). */
struct old_keys {
    uint8_t (*k)[17];
    size_t n, max;
    int64_t before; /* µs (W, T) or minutes (H) */
    uint8_t prefix;
    struct ht_buf hkeys; /* H keys have any length: len (2) + bytes */
    bool full;           /* stopped at max: more may remain */
};

static int old_visit(void *ctx, const void *k, size_t kn, const void *v,
                     size_t vn)
{
    struct old_keys *o = ctx;
    const uint8_t *p = k;
    int64_t t;

    (void)v;
    (void)vn;
    if (o->prefix == HT_AGG_K_TRACE) {
        if (kn != 17)
            return 0;
        t = (int64_t)((uint64_t)p[1] << 24 | (uint64_t)p[2] << 16 |
                      (uint64_t)p[3] << 8 | p[4]) *
            1000000;
    } else {
        if (kn < 9)
            return 0;
        t = (int64_t)ht_be64_get(p + 1);
    }
    if (t < 0 || t >= o->before)
        return 1; /* keys are in time order: nothing older follows */
    if (o->n == o->max) {
        o->full = true;
        return 1;
    }
    if (o->prefix == HT_AGG_K_HIST) {
        uint16_t l = (uint16_t)kn;

        ht_buf_add(&o->hkeys, &l, 2);
        ht_buf_add(&o->hkeys, k, kn);
    } else {
        if (kn != 17)
            return 0;
        memcpy(o->k[o->n], k, 17);
    }
    o->n++;
    return 0;
}

static int collect(struct ht_txn *t, struct old_keys *o, uint8_t prefix,
                   int64_t before, size_t max)
{
    o->prefix = prefix;
    o->before = before;
    o->n = 0;
    o->max = max;
    o->full = false;
    ht_buf_reset(&o->hkeys);
    return ht_store_scan(t, HT_DB_AGG, &prefix, 1, old_visit, o);
}

static int prune_txn(struct ht_txn *t, int64_t cut, size_t budget, bool *more)
{
    struct old_keys o = {0};
    struct ccache cc = {0};
    size_t used = 0;
    struct ht_arena *a, *ka;
    int rc;

    o.k = malloc(budget * sizeof(*o.k));
    a = ht_arena_create();
    ka = ht_arena_create();
    if (!o.k || !a || !ka) {
        free(o.k);
        if (a)
            ht_arena_destroy(a);
        if (ka)
            ht_arena_destroy(ka);
        return HT_ERR_NOMEM;
    }
    cc.a = ka;
    ht_buf_init(&o.hkeys);
    /* summaries (each is two records, counted once) with their 'J'
     * records: the 'J' records are read first and their triples taken out
     * of the catalogue in memory, then every delete is queued and applied
     * in key order */
    rc = collect(t, &o, HT_AGG_K_WINDOW, cut, budget);
    for (size_t i = 0; i < o.n && !rc; i++) {
        uint8_t jk[9];
        const void *v;
        size_t vn;
        struct ht_jaeger_rec old;
        struct ht_id8 root;

        memcpy(root.b, o.k[i] + 9, 8);
        ht_agg_key_jaeger(jk, &root);
        if (ht_store_get(t, HT_DB_AGG, jk, 9, &v, &vn) == HT_ERR_OK &&
            ht_jaeger_rec_unpack(v, vn, a, &old) == HT_ERR_OK)
            jcat_apply(&cc, t, &old, -1);
        ht_arena_reset(a);
    }
    for (size_t i = 0; i < o.n && !rc; i++) {
        uint8_t sk[9], jk[9];
        struct ht_id8 root;

        memcpy(root.b, o.k[i] + 9, 8);
        sk[0] = HT_AGG_K_SUMMARY;
        memcpy(sk + 1, root.b, 8);
        ht_agg_key_jaeger(jk, &root);
        rc = ht_store_del_later(t, HT_DB_AGG, o.k[i], 17, NULL, 0);
        if (!rc)
            rc = ht_store_del_later(t, HT_DB_AGG, sk, 9, NULL, 0);
        if (!rc)
            rc = ht_store_del_later(t, HT_DB_AGG, jk, 9, NULL, 0);
    }
    if (!rc)
        rc = ccache_flush(&cc, t, true);
    else
        ccache_flush(&cc, t, false);
    used += o.n;
    *more = o.full;
    /* histogram buckets of the minutes before the cut-off */
    if (!rc)
        rc = collect(t, &o, HT_AGG_K_HIST, cut / HT_AGG_BUCKET_US,
                     budget - used);
    for (size_t i = 0, off = 0; i < o.n && !rc; i++) {
        uint16_t l;

        memcpy(&l, o.hkeys.data + off, 2);
        rc = ht_store_del_later(t, HT_DB_AGG, o.hkeys.data + off + 2, l, NULL,
                                0);
        off += 2 + l;
    }
    used += o.n;
    *more |= o.full;
    /* the roots remembered per trace */
    if (!rc)
        rc = collect(t, &o, HT_AGG_K_TRACE, cut - T_MARGIN_US, budget - used);
    for (size_t i = 0; i < o.n && !rc; i++)
        rc = ht_store_del_later(t, HT_DB_AGG, o.k[i], 17, NULL, 0);
    *more |= o.full;
    ht_buf_free(&o.hkeys);
    free(o.k);
    ht_arena_destroy(a);
    ht_arena_destroy(ka);
    return rc;
}

struct prune_args {
    int64_t cut;
    size_t budget;
    bool *more;
};

static int prune_run(struct ht_store *s, void *ctx)
{
    struct prune_args *a = ctx;
    struct ht_txn *t;
    int rc = ht_store_begin(s, true, &t);

    if (rc)
        return rc;
    rc = prune_txn(t, a->cut, a->budget, a->more);
    if (rc) {
        ht_store_abort(t);
        *a->more = false;
        return rc;
    }
    return ht_store_commit(t);
}

int ht_agg_prune(struct ht_store *s, int64_t cutoff_us, size_t budget,
                 bool *more)
{
    /* whole minutes: a bucket goes with exactly the summaries it counts */
    struct prune_args a = {cutoff_us / HT_AGG_BUCKET_US * HT_AGG_BUCKET_US,
                           budget ? budget : 1024, more};

    *more = false;
    if (cutoff_us <= 0)
        return HT_ERR_OK;
    return ht_store_write_growing(s, prune_run, &a);
}
