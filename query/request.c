/*
 * request.c - from an id to assembled requests (design.md, "Resolving an id
 * to requests"):
 *   1. resolve the id to start nodes (with an attribution constraint for
 *      request-scoped and record ids);
 *   2. walk up through sync parents and resolved hops to the roots; inside
 *      a batch invocation the way up follows only the records of the
 *      request the start node is attributed to;
 *   3. from each root walk down through children and hops, skipping inside
 *      a batch invocation the children attributed to another request and
 *      flagging the unattributable ones `shared`;
 *   4. lay the request out as arrays and explain it (critical.c).
 * Work is bounded by the size of one request, and capped.
 *
 * Owned by query/. Read-only: it never writes to the store.
 */
#define _GNU_SOURCE
#include "qgraph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        if (ht__q_attr(q, n, &ac) == ATTR_CORR && ac) {
            struct qinv *o = ht__q_owner(q, n);

            if (o && o->batch)
                constraint = ac;
        }
        p = ht__q_parent(q, n);
        if (!p)
            break;
        n = p;
    }
    inv = ht__q_node_inv(q, n);
    if (inv) {
        struct vec hops = {0}, keep = {0};

        ht__q_incoming(q, inv, &hops);
        if (constraint) {
            for (size_t i = 0; i < hops.n; i++) {
                struct qhop *h = hops.p[i];

                if (h->rec && ht__streq(h->rec->corr, constraint))
                    ht__vec_push(q->a, &keep, h);
            }
            /* records without the id: follow the producer's own attribution */
            if (!keep.n)
                for (size_t i = 0; i < hops.n; i++) {
                    struct qhop *h = hops.p[i];
                    const char *pc;

                    if (ht__q_attr(q, h->prod, &pc) == ATTR_CORR &&
                        ht__streq(pc, constraint))
                        ht__vec_push(q->a, &keep, h);
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
                    (e->c == constraint || ht__streq(e->c, constraint)))
                    return;
            }
            struct seen_up *e = ht_arena_alloc(q->a, sizeof(*e));
            e->n = n;
            e->c = constraint;
            ht__vec_push(q->a, &u->seen, e);
            for (size_t i = 0; i < hops.n; i++) {
                struct qhop *h = hops.p[i];

                walk_up(q, u, h->prod,
                        h->rec && h->rec->corr ? h->rec->corr : constraint,
                        depth + 1);
            }
            return;
        }
    }
    if (!ht__vec_has(&u->roots, n))
        ht__vec_push(q->a, &u->roots, n);
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
        if (ht__streq(d->corrs.p[i], c))
            return;
    ht__vec_push(q->a, &d->corrs, (void *)c);
}

static void visit(struct q *q, struct down_ctx *d, struct qnode *n, bool shared,
                  int depth);

static void visit_kids(struct q *q, struct down_ctx *d, struct qnode *n,
                       bool shared, int depth)
{
    struct vec *kids = ht__q_kids(q, n);
    struct qinv *owner = ht__q_owner(q, n);

    for (size_t i = 0; i < kids->n; i++) {
        struct qnode *k = kids->p[i];
        bool ks = shared;

        if (owner && owner->batch && !ht__q_node_inv(q, k)) {
            const char *ac;
            int st = ht__q_attr(q, k, &ac);

            if (st == ATTR_CORR) {
                struct vec *al =
                    ht__map_get(&d->allowed, &owner, sizeof(owner));
                bool mine = false;

                if (al && al->n) {
                    for (size_t j = 0; j < al->n; j++)
                        mine |= ht__streq(al->p[j], ac);
                } else {
                    for (size_t j = 0; j < d->corrs.n; j++)
                        mine |= ht__streq(d->corrs.p[j], ac);
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
    ht__vec_push(q->a, &d->nodes, n);
    ht__vec_push(q->a, &d->shared, shared ? (void *)1 : NULL);
    inv = ht__q_node_inv(q, n);
    if (inv && !inv->batch)
        add_corr(q, d, inv->corr);
    if (n->s.corr && !shared)
        add_corr(q, d, n->s.corr);
    visit_kids(q, d, n, shared, depth);
    if (shared)
        return; /* shared work does not pull in other requests' hops */
    ht__q_outgoing(q, n, &out);
    for (size_t i = 0; i < out.n; i++) {
        struct qhop *h = out.p[i];
        struct qnode *top = ht__q_inv_top(q, h->cons);
        void **pair = ht_arena_alloc(q->a, 2 * sizeof(void *));

        pair[0] = h->prod;
        pair[1] = h->cons;
        if (ht__map_get(&d->hop_seen, pair, 2 * sizeof(void *)))
            continue;
        ht__map_put(&d->hop_seen, pair, 2 * sizeof(void *), h);
        ht__vec_push(q->a, &d->hops, h);
        if (h->rec && h->rec->corr) {
            struct qinv *ci = h->cons;
            struct vec *al = ht__map_get(&d->allowed, &ci, sizeof(ci));

            if (!al) {
                al = ht_arena_alloc(q->a, sizeof(*al));
                memset(al, 0, sizeof(*al));
                struct qinv **kp = ht_arena_alloc(q->a, sizeof(ci));
                *kp = ci;
                ht__map_put(&d->allowed, kp, sizeof(ci), al);
            }
            ht__vec_push(q->a, al, (void *)h->rec->corr);
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

static void build_request(struct q *q, struct qnode *root, struct ht_request *r)
{
    struct down_ctx d;
    struct vec tids = {0};

    memset(&d, 0, sizeof(d));
    memset(r, 0, sizeof(*r));
    d.budget = 200000;
    q->gen++;
    visit(q, &d, root, false, 0);
    ht__map_free(&d.allowed);
    ht__map_free(&d.hop_seen);

    r->nspans = d.nodes.n;
    r->spans = ht_arena_alloc(q->a, (d.nodes.n + 1) * sizeof(*r->spans));
    r->root = 0;
    r->start_us = INT64_MAX;
    r->end_us = INT64_MIN;
    for (size_t i = 0; i < d.nodes.n; i++) {
        struct qnode *n = d.nodes.p[i];
        struct ht_qspan *s = &r->spans[i];
        struct qinv *inv = ht__q_owner(q, n);
        struct qnode *p = n->synthetic ? NULL : ht__q_parent(q, n);
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
                ht__vec_push(q->a, &tids, ht_arena_strdup(q->a, tbuf));
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
            ht__add_warning(q->a, r, "{\"type\":\"parent_cycle\"}");
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
        struct qnode *top = ht__q_inv_top(q, h->cons);

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
        ht__add_warning(q->a, r,
                        "{\"type\":\"truncated\",\"message\":\"the request "
                        "is larger than one query may load; it is shown in "
                        "part\"}");
}

/* ---- resolving an id ---------------------------------------------------- */

static void start_inv(struct q *q, struct up_ctx *u, struct qinv *inv,
                      const char *record_id)
{
    struct qnode *top;

    if (!inv)
        return;
    top = ht__q_inv_top(q, inv);

    if (record_id) {
        struct vec hops = {0};
        bool any = false;

        ht__q_incoming(q, inv, &hops);
        for (size_t i = 0; i < hops.n; i++) {
            struct qhop *h = hops.p[i];

            if (h->rec && ht__streq(h->rec->record_id, record_id)) {
                walk_up(q, u, h->prod, h->rec->corr, 0);
                any = true;
            }
        }
        if (any)
            return;
        /* the producer is unknown: the record still names one request */
        for (size_t i = 0; i < inv->nrecs; i++)
            if (ht__streq(inv->recs[i].record_id, record_id)) {
                if (!ht__vec_has(&u->roots, top) && !hops.n)
                    ht__vec_push(q->a, &u->roots, top);
                else
                    walk_up(q, u, top, inv->recs[i].corr, 0);
                return;
            }
    }
    walk_up(q, u, top, NULL, 0);
}

/* Start from what a key names: its spans as they are, else its
 * invocations; `record_id` narrows an invocation to the record it names. */
static void start_key(struct q *q, struct up_ctx *u, char prefix,
                      const char *id, const char *record_id)
{
    struct tgt_ctx c;

    ht__targets_s(q, prefix, id, &c);
    for (size_t i = 0; i < c.spans.n; i++) {
        struct qnode *s = ht__q_span(q, c.spans.p[i]);

        if (s)
            walk_up(q, u, s, NULL, 0);
    }
    if (!c.spans.n)
        for (size_t i = 0; i < c.invs.n; i++)
            start_inv(q, u, ht__q_inv(q, c.invs.p[i]), record_id);
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
        struct qnode *s = ht__q_span(q, &sid);

        if (s)
            walk_up(q, u, s, NULL, 0);
        else if (ht_id8_parse(id, n, &sid)) {
            ht__targets(q, HT_K_SEGMENT, sid.b, 8, &c);
            for (size_t i = 0; i < c.invs.n; i++)
                start_inv(q, u, ht__q_inv(q, c.invs.p[i]), NULL);
        }
    }
    if (ht_tid_parse(id, n, &tid)) {
        bool top_found = false;

        ht__targets(q, HT_K_TRACE, tid.b, 16, &c);
        for (size_t i = 0; i < c.spans.n; i++) {
            struct qnode *s = ht__q_span(q, c.spans.p[i]);
            struct qnode *p = s ? ht__q_parent(q, s) : NULL;

            /* the trace's top nodes: no parent, or a parent elsewhere */
            if (s && (!p || memcmp(p->s.trace.b, tid.b, 16) != 0)) {
                walk_up(q, u, s, NULL, 0);
                top_found = true;
            }
        }
        /* parents that only loop among themselves: start anywhere */
        if (!top_found && c.spans.n) {
            struct qnode *s = ht__q_span(q, c.spans.p[0]);

            if (s)
                walk_up(q, u, s, NULL, 0);
        }
        if (!c.spans.n)
            for (size_t i = 0; i < c.invs.n; i++)
                start_inv(q, u, ht__q_inv(q, c.invs.p[i]), NULL);
    }
    start_key(q, u, HT_K_APIGW, id, NULL);
    start_key(q, u, HT_K_APIGW_EXT, id, NULL);
    /* a Lambda request id: the invocation */
    uint8_t pid[HT_ID_PACKED_MAX];

    if (n <= 255 && ht_store_get(q->t, HT_DB_INV, pid, ht_id_pack(id, n, pid),
                                 &v, &vn) == HT_ERR_OK) {
        start_inv(q, u, ht__q_inv(q, id), NULL);
    } else {
        ht__targets_s(q, HT_K_LAMBDA, id, &c);
        if (c.spans.n)
            start_inv(q, u, ht__q_inv(q, id), NULL);
    }
    /* a correlation id names its own request only */
    ht__targets_s(q, HT_K_CORR, id, &c);
    for (size_t i = 0; i < c.spans.n; i++) {
        struct qnode *s = ht__q_span(q, c.spans.p[i]);

        if (s)
            walk_up(q, u, s, id, 0);
    }
    for (size_t i = 0; i < c.invs.n; i++) {
        struct qinv *inv = ht__q_inv(q, c.invs.p[i]);
        bool strong = false;

        if (!inv)
            continue;
        for (size_t j = 0; j < inv->nrecs; j++)
            strong |= ht__streq(inv->recs[j].corr, id);
        if (strong || ht__streq(inv->corr, id))
            walk_up(q, u, ht__q_inv_top(q, inv), id, 0);
    }
    /* record ids */
    start_key(q, u, HT_K_SQS, id, id);
    start_key(q, u, HT_K_KSEQ, id, id);
    start_key(q, u, HT_K_DDB, id, id);
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
    ht__map_free(&q.spans);
    ht__map_free(&q.invs);
    ht__map_free(&q.pairs);
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
