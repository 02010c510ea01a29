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

/* ---- entry point and completeness (for endpoints, agg.c) -------------- */

/* A path segment that names an instance rather than a route: a number, a
 * UUID, or a long hex or digit-bearing token. */
static bool id_like(const char *p, size_t n)
{
    size_t digits = 0, hex = 0, dashes = 0;

    if (!n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];

        if (c >= '0' && c <= '9')
            digits++;
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
            (c >= 'A' && c <= 'F'))
            hex++;
        else if (c == '-')
            dashes++;
    }
    if (digits == n)
        return true;
    if (n == 36 && dashes == 4 && hex == 32)
        return true;                          /* UUID */
    return n >= 16 && hex == n && digits > 0; /* long hex */
}

/* "METHOD /path" from a stage segment's URL: scheme, host and the stage
 * prefix are dropped and instance segments collapse to {id}. */
static bool strip_prefix(const char **p, const char *q, const char *seg)
{
    size_t sl = seg ? strlen(seg) : 0;

    if (!sl || (size_t)(q - *p) <= sl || (*p)[0] != '/' ||
        strncmp(*p + 1, seg, sl) != 0 ||
        ((*p)[1 + sl] != '/' && *p + 1 + sl != q))
        return false;
    *p += 1 + sl;
    return true;
}

static const char *route_from_url(struct ht_arena *a, const char *method,
                                  const char *url, const char *stage,
                                  const char *segment_name)
{
    struct ht_buf b;
    const char *p = url, *q;
    char *out;

    if (!url || !*url)
        return NULL;
    if ((q = strstr(p, "://")))
        p = strchr(q + 3, '/');
    if (!p)
        p = "/";
    q = p + strcspn(p, "?#");
    /* the stage prefix: the stage, or the stage X-Ray names the segment
     * after ("api-name/stage") */
    if (!strip_prefix(&p, q, stage) && segment_name &&
        strchr(segment_name, '/'))
        strip_prefix(&p, q, strrchr(segment_name, '/') + 1);
    ht_buf_init(&b);
    ht_buf_printf(&b, "%s ", method && *method ? method : "ANY");
    while (p < q) {
        const char *e;

        if (*p == '/') {
            ht_buf_addc(&b, '/');
            p++;
            continue;
        }
        e = p;
        while (e < q && *e != '/')
            e++;
        if (id_like(p, (size_t)(e - p)))
            ht_buf_adds(&b, "{id}");
        else
            ht_buf_add(&b, p, (size_t)(e - p));
        p = e;
    }
    if (b.len && b.data[b.len - 1] == ' ')
        ht_buf_addc(&b, '/');
    out = ht_arena_strndup(a, b.data, b.len);
    ht_buf_free(&b);
    return out;
}

struct apigw_ctx {
    struct ht_arena *a;
    struct qgw gw;
};

static int apigw_visit(void *ctx, const void *k, size_t kn, const void *v,
                       size_t vn)
{
    struct apigw_ctx *c = ctx;
    struct ht_fact f;

    (void)k;
    (void)kn;
    if (ht_fact_unpack(v, vn, c->a, &f) != HT_ERR_OK || f.kind != HT_FACT_APIGW)
        return 0;
    return ht__gw_take(&c->gw, f.route, f.api_id, f.stage);
}

/* Whether span i is reached from the root by synchronous calls only. */
static bool sync_from_root(const struct ht_request *r, size_t i)
{
    int j = (int)i, guard = 0;

    while (j > 0 && guard++ < 256) {
        if (r->spans[j].s.flags & HT_SPAN_ASYNC_INVOKE)
            return false;
        j = r->spans[j].parent;
    }
    return j == 0;
}

/* The request's route: the template logged with the API Gateway event or
 * access log of an invocation the stage called synchronously (REST
 * `resource`, HTTP API `routeKey`), else the stage segment's URL with ids
 * collapsed. Roots that are not API Gateway have no route template. */
static void entry_point(struct q *q, struct ht_request *r)
{
    struct apigw_ctx c = {.a = q->a};
    const struct ht_qspan *root;
    const char *seen[4];
    size_t nseen = 0;
    char id[17];

    if (!r->nspans)
        return;
    root = &r->spans[0];
    if (root->logs_only)
        r->root_handle = root->request_id;
    else {
        ht_id8_format(&root->s.id, id);
        r->root_handle = ht_arena_strdup(q->a, id);
    }
    for (size_t i = 0; i < r->nspans && nseen < 4 && !c.gw.route; i++) {
        const struct ht_qspan *s = &r->spans[i];
        const char *rid = s->request_id;
        uint8_t prefix[HT_ID_PACKED_MAX + 1];
        size_t pn, rn;
        bool dup = false;
        struct qinv *inv;

        if (!rid || !*rid || (rn = strlen(rid)) > 255 || !sync_from_root(r, i))
            continue;
        for (size_t j = 0; j < nseen; j++)
            dup |= strcmp(seen[j], rid) == 0;
        if (dup)
            continue;
        seen[nseen++] = rid;
        /* an invocation the session has read whole: its facts' first */
        inv = ht__map_get(&q->invs, rid, rn);
        if (inv && !inv->partial) {
            ht__gw_take(&c.gw, inv->gw.route, inv->gw.api, inv->gw.stage);
            continue;
        }
        pn = ht_id_pack(rid, rn, prefix);
        prefix[pn++] = 0;
        ht_store_scan(q->t, HT_DB_FACTS, prefix, pn, apigw_visit, &c);
    }
    r->api_id = root->s.api_id && *root->s.api_id ? root->s.api_id : c.gw.api;
    r->stage = root->s.stage && *root->s.stage ? root->s.stage : c.gw.stage;
    if (root->s.kind == HT_SK_APIGW)
        r->url_route = route_from_url(q->a, root->s.method, root->s.url,
                                      r->stage, root->s.name);
    r->route = c.gw.route ? c.gw.route : r->url_route;
}

struct reader_ctx {
    int seen, found;
};

static int reader_visit(void *ctx, const void *k, size_t kn, const void *v,
                        size_t vn)
{
    struct reader_ctx *c = ctx;

    (void)k;
    (void)kn;
    if (vn >= 1 && ((const uint8_t *)v)[0] != 1)
        c->found = 1; /* a consumer half was seen */
    return c->found || ++c->seen >= 64;
}

/* Whether anything has been seen reading a table's stream: most tables
 * have none, and a write to one of those is not work left behind. The
 * first hop keys of the table are enough to tell (a read stream matches
 * most of its writes), which keeps this bounded. */
static bool table_has_reader(struct q *q, const char *table)
{
    char p[300];
    struct reader_ctx c = {0, 0};
    int n = snprintf(p, sizeof(p), "dynamodb:%s/", table);

    if (n <= 0 || (size_t)n >= sizeof(p))
        return true;
    ht_store_scan(q->t, HT_DB_PENDING, p, (size_t)n, reader_visit, &c);
    return c.found != 0;
}

/* Writes in the request with no hop out of them whose producer half the
 * assembler still holds as waiting. The keys are the assembler's hop keys
 * (assembler.c, apply_span); a write the assembler cannot key (no message
 * id, sequence number or correlation id) is not known to be pending. */
static int pending_writes(struct q *q, const struct ht_request *r,
                          struct vec *out)
{
    int n = 0;

    for (size_t i = 0; i < r->nspans; i++) {
        const struct ht_span *s = &r->spans[i].s;
        bool has_hop = false;
        char hk[512];
        const void *v;
        size_t vn;

        if (!(s->flags & HT_SPAN_WRITE) || (s->flags & HT_SPAN_ASYNC_INVOKE) ||
            r->spans[i].shared || ht__write_failed(s))
            continue;
        for (size_t h = 0; h < r->nhops && !has_hop; h++)
            has_hop = r->hops[h].from == (int)i;
        if (has_hop)
            continue;
        if (s->message_id)
            snprintf(hk, sizeof(hk), "%s:%s",
                     ht_msgid_hop(ht_span_msgid_via(s)), s->message_id);
        else if (s->sequence)
            snprintf(hk, sizeof(hk), "kin:%s", s->sequence);
        else if (s->corr && s->resource &&
                 (s->via == HT_VIA_DYNAMODB || s->via == HT_VIA_KINESIS))
            snprintf(hk, sizeof(hk), "%s:%s/%s", ht_via_name(s->via),
                     s->resource, s->corr);
        else
            continue;
        /* state byte 1: only the producer half has been seen */
        if (strlen(hk) <= 400 &&
            ht_store_get(q->t, HT_DB_PENDING, hk, strlen(hk), &v, &vn) ==
                HT_ERR_OK &&
            vn >= 1 && ((const uint8_t *)v)[0] == 1 &&
            (s->via != HT_VIA_DYNAMODB || table_has_reader(q, s->resource))) {
            n++;
            ht__vec_push(q->a, out, (void *)(uintptr_t)(i + 1));
        }
    }
    return n;
}

/* The newest event the store has seen (a span's end, a log line's time),
 * as the writer records it: what a pending hop has waited until. */
static int64_t newest_event(struct q *q)
{
    if (!q->newest_done) {
        int64_t t = ht_store_newest_event(q->t);

        q->newest_done = true;
        q->newest_us = t == INT64_MIN ? 0 : t;
    }
    return q->newest_us;
}

/* A pending write becomes a hop with no consumer (`to` -1) that has waited
 * from the end of the call to the newest event the store holds, and a
 * `pending` warning. */
static void pending_hops(struct q *q, struct ht_request *r,
                         const struct vec *idx)
{
    struct ht_qhop *nh;
    int64_t now;

    if (!idx->n)
        return;
    now = newest_event(q);
    nh = ht_arena_alloc(q->a, (r->nhops + idx->n + 1) * sizeof(*nh));
    memcpy(nh, r->hops, r->nhops * sizeof(*nh));
    for (size_t k = 0; k < idx->n; k++) {
        int i = (int)((uintptr_t)idx->p[k] - 1);
        const struct ht_span *s = &r->spans[i].s;
        struct ht_qhop *h = &nh[r->nhops++];
        int64_t waited = now > s->end_us ? now - s->end_us : 0;
        struct ht_buf w;
        char id[17];

        memset(h, 0, sizeof(*h));
        h->from = i;
        h->to = -1;
        h->via = s->via;
        h->resource = s->resource ? s->resource : "";
        h->evidence = s->message_id ? "message-id"
                      : s->sequence ? "sequence-number"
                                    : "correlation";
        h->wait_ms = (double)waited / 1000.0;
        h->pending = true;
        ht_id8_format(&s->id, id);
        ht_buf_init(&w);
        ht_buf_printf(&w,
                      "{\"type\":\"pending\",\"span\":\"%s\",\"name\":", id);
        ht_buf_json_str(&w, s->operation ? s->operation : s->name);
        ht_buf_adds(&w, ",\"via\":");
        ht_buf_json_str(&w, ht_via_name(s->via));
        ht_buf_adds(&w, ",\"resource\":");
        ht_buf_json_str(&w, h->resource);
        ht_buf_printf(&w, ",\"waited_ms\":%.3f}", h->wait_ms);
        ht__add_warning(q->a, r, ht_arena_strdup(q->a, w.data));
        ht_buf_free(&w);
    }
    r->hops = nh;
}

/* ---- from nodes to the result ---------------------------------------- */

/* A node's index in the request being built, or -1 when not in it. */
static int index_of(const struct q *q, const struct qnode *n)
{
    return n && n->gen == q->gen ? n->idx : -1;
}

/* Hops out of one producer together, in the order their consumers
 * started: the attempts of a redelivered message come out first to last
 * (the one that succeeded last), whatever order the store listed them in.
 * Each producer's group stays where its first hop was. */
struct hop_key {
    struct qhop *h;
    size_t group, pos;
    int64_t start;
};

static int cmp_hop_key(const void *a, const void *b)
{
    const struct hop_key *x = a, *y = b;

    if (x->group != y->group)
        return x->group < y->group ? -1 : 1;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static void order_attempts(struct q *q, struct vec *hops)
{
    struct hop_key *k;
    struct map first = {0}; /* producer -> 1 + position of its first hop */

    if (hops->n < 2)
        return;
    k = ht_arena_alloc(q->a, hops->n * sizeof(*k));
    for (size_t i = 0; i < hops->n; i++) {
        struct qhop *h = hops->p[i];
        void *g = ht__map_get(&first, &h->prod, sizeof(h->prod));

        if (!g) {
            struct qnode **key = ht_arena_alloc(q->a, sizeof(*key));

            *key = h->prod;
            g = (void *)(uintptr_t)(i + 1);
            ht__map_put(&first, key, sizeof(*key), g);
        }
        k[i].h = h;
        k[i].group = (size_t)(uintptr_t)g - 1;
        k[i].pos = i;
        k[i].start = ht__q_inv_top(q, h->cons)->s.start_us;
    }
    ht__map_free(&first);
    qsort(k, hops->n, sizeof(*k), cmp_hop_key);
    for (size_t i = 0; i < hops->n; i++)
        hops->p[i] = k[i].h;
}

/* A hop into an SQS consumer whose message an SNS Publish or an
 * EventBridge PutEvents put in the queue (design.md "SNS and
 * EventBridge"): two legs, split where SQS took the message. */
static bool queue_leg(const struct qhop *h)
{
    return h->via == HT_VIA_SQS && h->rec && h->rec->sent_us > 0 &&
           (h->prod->s.via == HT_VIA_SNS ||
            h->prod->s.via == HT_VIA_EVENTBRIDGE) &&
           (h->prod->s.flags & HT_SPAN_WRITE);
}

/*
 * SNS and EventBridge pass the caller's trace header on to a Lambda
 * subscriber or target: its AWS::Lambda segment continues the trace with
 * the Publish / PutEvents subsegment as parent. That is a hop, not a call:
 * the delivery starts after the call returned. The segment is detached
 * from the call (the path reaches it through the hop's wait), unless a
 * hop from that call into it is already known by message id.
 */
static void notify_trace_hops(struct q *q, struct ht_request *r)
{
    size_t extra = 0;
    struct ht_qhop *nh;

    for (size_t i = 0; i < r->nspans; i++) {
        int p = r->spans[i].parent;

        if (r->spans[i].s.kind == HT_SK_LAMBDA && p >= 0 &&
            (r->spans[p].s.via == HT_VIA_SNS ||
             r->spans[p].s.via == HT_VIA_EVENTBRIDGE))
            extra++;
    }
    if (!extra)
        return;
    nh = ht_arena_alloc(q->a, (r->nhops + extra + 1) * sizeof(*nh));
    memcpy(nh, r->hops, r->nhops * sizeof(*nh));
    for (size_t i = 0; i < r->nspans; i++) {
        struct ht_qspan *s = &r->spans[i];
        int p = s->parent;
        bool known = false;

        if (s->s.kind != HT_SK_LAMBDA || p < 0 ||
            (r->spans[p].s.via != HT_VIA_SNS &&
             r->spans[p].s.via != HT_VIA_EVENTBRIDGE))
            continue;
        s->parent = -1;
        for (size_t h = 0; h < r->nhops; h++)
            known |= nh[h].from == p && nh[h].to == (int)i;
        if (known)
            continue;
        memset(&nh[r->nhops], 0, sizeof(nh[r->nhops]));
        nh[r->nhops].from = p;
        nh[r->nhops].to = (int)i;
        nh[r->nhops].via = r->spans[p].s.via;
        nh[r->nhops].resource =
            r->spans[p].s.resource ? r->spans[p].s.resource : "";
        nh[r->nhops].evidence = "trace-header";
        nh[r->nhops].wait_ms =
            (double)(s->s.start_us - r->spans[p].s.end_us) / 1000.0;
        r->nhops++;
    }
    r->hops = nh;
}

static void build_request(struct q *q, struct qnode *root, struct ht_request *r)
{
    struct down_ctx d;
    struct vec tids = {0}, btids = {0}; /* formatted; their bytes */

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
            bool cold = inv->has_rec && (inv->rec.flags & HT_INV_COLD);

            s->request_id = inv->rid;
            /* a cold start marks the invocation's own segments (and its
             * Initialization, below), not the calls it makes */
            s->cold = cold && (n->synthetic || n->s.kind == HT_SK_LAMBDA ||
                               n->s.kind == HT_SK_FUNCTION);
            if (n->synthetic && cold && inv->rec.init_us > 0)
                s->init_us = inv->rec.init_us < n->s.end_us - n->s.start_us
                                 ? inv->rec.init_us
                                 : n->s.end_us - n->s.start_us;
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
        if (!ht_tid_is_zero(&n->s.trace)) {
            bool seen = false;

            /* compared as bytes, formatted once: a request has few */
            for (size_t j = 0; j < btids.n && !seen; j++)
                seen = memcmp(btids.p[j], n->s.trace.b, 16) == 0;
            if (!seen) {
                ht__vec_push(q->a, &btids, (void *)n->s.trace.b);
                ht_tid_format(&n->s.trace, tbuf);
                ht__vec_push(q->a, &tids, ht_arena_strdup(q->a, tbuf));
            }
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
    /* a cold invocation marks its segments: the function segment and the
     * AWS::Lambda segment above it, never the caller's spans */
    for (size_t i = 0; i < r->nspans; i++)
        if (r->spans[i].s.kind == HT_SK_INIT) {
            int j = r->spans[i].parent, guard = 0;

            while (j >= 0 && guard++ < 8 &&
                   (r->spans[j].s.kind == HT_SK_FUNCTION ||
                    r->spans[j].s.kind == HT_SK_LAMBDA)) {
                r->spans[j].cold = true;
                if (r->spans[j].s.kind == HT_SK_LAMBDA)
                    break;
                j = r->spans[j].parent;
            }
        }
    /* Lambda emits a cold function segment that starts after its
     * Initialization subsegment: the initialization ran inside the
     * AWS::Lambda segment, before the function segment, and is no clock
     * disagreement. On the path it is the time before the function. */
    for (size_t i = 0; i < r->nspans; i++) {
        struct ht_qspan *ini = &r->spans[i];
        int f = ini->parent, l;

        if (ini->s.kind != HT_SK_INIT || f < 0 ||
            r->spans[f].s.kind != HT_SK_FUNCTION ||
            ini->s.start_us >= r->spans[f].s.start_us)
            continue;
        l = r->spans[f].parent;
        if (l >= 0 && r->spans[l].s.kind == HT_SK_LAMBDA &&
            ini->s.start_us >= r->spans[l].s.start_us &&
            ini->s.end_us <= r->spans[l].s.end_us)
            ini->parent = l;
    }
    order_attempts(q, &d.hops);
    r->nhops = 0;
    /* a message delivered into a queue by SNS or EventBridge is two legs:
     * at most two entries per hop */
    r->hops = ht_arena_alloc(q->a, (2 * d.hops.n + 1) * sizeof(*r->hops));
    for (size_t i = 0; i < d.hops.n; i++) {
        struct qhop *h = d.hops.p[i];
        struct ht_qhop *o = &r->hops[r->nhops];
        struct qnode *top = ht__q_inv_top(q, h->cons);

        memset(o, 0, sizeof(*o));
        o->from = index_of(q, h->prod);
        o->to = index_of(q, top);
        o->via = h->via;
        o->resource = h->resource ? h->resource : "";
        o->evidence = h->evidence;
        o->wait_ms = (double)(top->s.start_us - h->prod->s.end_us) / 1000.0;
        if (h->rec) {
            o->record_via = h->rec->via;
            o->record_id = h->rec->record_id;
            o->record_resource = h->rec->resource;
            o->up_id = h->rec->up_id;
        }
        r->nhops++;
        if (h->via == HT_VIA_SQS && !queue_leg(h) &&
            (h->prod->s.flags & HT_SPAN_WRITE) &&
            (h->prod->s.via == HT_VIA_SNS ||
             h->prod->s.via == HT_VIA_EVENTBRIDGE)) {
            /* into a queue, but when SQS took the message is not known
             * (no logged SentTimestamp: OTel spans, X-Ray links): one hop,
             * the topic's (bus's) delivery as a whole */
            o->via = h->prod->s.via;
            o->resource = h->rec && h->rec->up_resource ? h->rec->up_resource
                          : h->prod->s.resource         ? h->prod->s.resource
                                                        : "";
        } else if (queue_leg(h)) {
            /* the leg before: the topic's (or bus's) delivery into the
             * queue, which took the message at its SentTimestamp */
            struct ht_qhop *up = o, *sq = &r->hops[r->nhops];
            int64_t at = h->rec->sent_us;

            *sq = *up;
            up->via = h->prod->s.via;
            up->resource = h->rec->up_resource   ? h->rec->up_resource
                           : h->prod->s.resource ? h->prod->s.resource
                                                 : "";
            up->inner = true;
            up->at_us = at;
            up->wait_ms = (double)(at - h->prod->s.end_us) / 1000.0;
            sq->leg_of = (int)(up - r->hops) + 1;
            sq->at_us = at;
            sq->wait_ms = (double)(top->s.start_us - at) / 1000.0;
            r->nhops++;
        }
    }
    notify_trace_hops(q, r);
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
            memset(&nh[r->nhops], 0, sizeof(nh[r->nhops]));
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
    r->trace_bins = ht_arena_alloc(q->a, (btids.n + 1) * sizeof(struct ht_tid));
    for (size_t j = 0; j < btids.n; j++)
        memcpy(r->trace_bins[j].b, btids.p[j], 16);
    r->ncorr_ids = d.corrs.n;
    r->corr_ids = (const char **)d.corrs.p;
    if (!r->nspans) {
        r->start_us = r->end_us = 0;
    }
    ht__critical_path(r, q->a);
    entry_point(q, r);
    {
        struct vec pend = {0};

        r->npending = pending_writes(q, r, &pend);
        pending_hops(q, r, &pend);
    }
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

            if (h->rec && (ht__streq(h->rec->record_id, record_id) ||
                           ht__streq(h->rec->up_id, record_id))) {
                walk_up(q, u, h->prod, h->rec->corr, 0);
                any = true;
            }
        }
        if (any)
            return;
        /* the producer is unknown: the record still names one request */
        for (size_t i = 0; i < inv->nrecs; i++)
            if (ht__streq(inv->recs[i].record_id, record_id) ||
                ht__streq(inv->recs[i].up_id, record_id)) {
                /* (a target the trace header reached, as SNS and
                 * EventBridge pass it on, has its caller as parent) */
                if (!ht__vec_has(&u->roots, top) && !hops.n &&
                    !ht__q_parent(q, top))
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

/* A trace id: the requests its top nodes (or, without spans, the
 * invocations logged with it) belong to. */
static void resolve_trace(struct q *q, const struct ht_tid *tid,
                          struct up_ctx *u)
{
    bool top_found = false;
    struct tgt_ctx c;

    ht__targets(q, HT_K_TRACE, tid->b, 16, &c);
    for (size_t i = 0; i < c.spans.n; i++) {
        struct qnode *s = ht__q_span(q, c.spans.p[i]);
        struct qnode *p = s ? ht__q_parent(q, s) : NULL;

        /* the trace's top nodes: no parent, or a parent elsewhere */
        if (s && (!p || memcmp(p->s.trace.b, tid->b, 16) != 0)) {
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
    if (ht_tid_parse(id, n, &tid) || ht_tid_parse_otel(id, n, &tid))
        resolve_trace(q, &tid, u);
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
    start_key(q, u, HT_K_SNS, id, id);
    start_key(q, u, HT_K_EVENT, id, id);
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

/* Only the root of each request: enough to tell which requests an id
 * belongs to without assembling them. */
static void root_only(struct q *q, struct qnode *n, struct ht_request *r)
{
    char id[17];

    memset(r, 0, sizeof(*r));
    r->nspans = 1;
    r->spans = ht_arena_alloc(q->a, sizeof(*r->spans));
    memset(r->spans, 0, sizeof(*r->spans));
    r->spans[0].s = n->s;
    r->spans[0].parent = -1;
    r->spans[0].wait_hop = -1;
    r->spans[0].logs_only = n->synthetic;
    r->start_us = n->s.start_us;
    r->end_us = n->s.end_us;
    if (n->synthetic) {
        r->spans[0].request_id = n->s.request_id;
        r->root_handle = n->s.request_id;
    } else {
        ht_id8_format(&n->s.id, id);
        r->root_handle = ht_arena_strdup(q->a, id);
    }
}

static int query_in(struct ht_txn *t, const char *id, bool roots,
                    struct ht_result **out)
{
    struct ht_result *res;
    struct q q;
    struct up_ctx u;

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
    q.t = t;
    q.a = res->arena;
    res->query = ht_arena_strdup(q.a, id);
    u.budget = 100000;
    resolve(&q, id, &u);
    res->nrequests = u.roots.n;
    res->requests =
        ht_arena_alloc(q.a, (u.roots.n + 1) * sizeof(*res->requests));
    for (size_t i = 0; i < u.roots.n; i++)
        if (roots)
            root_only(&q, u.roots.p[i], &res->requests[i]);
        else
            build_request(&q, u.roots.p[i], &res->requests[i]);
    if (res->nrequests > 1)
        qsort(res->requests, res->nrequests, sizeof(*res->requests), cmp_req);
    ht__map_free(&q.spans);
    ht__map_free(&q.invs);
    ht__map_free(&q.pairs);
    ht__map_free(&q.records);
    if (!res->nrequests) {
        ht_result_free(res);
        return HT_ERR_NOTFOUND;
    }
    *out = res;
    return HT_ERR_OK;
}

/* ---- sessions: many ids against one loaded graph ------------------------ */

struct ht_qsession {
    struct q q;
    struct ht_arena *arena;
    bool bulk; /* ht_qsession_bulk */
};

int ht_qsession_open(struct ht_txn *t, struct ht_qsession **out)
{
    struct ht_qsession *s = calloc(1, sizeof(*s));

    *out = NULL;
    if (!s)
        return HT_ERR_NOMEM;
    s->arena = ht_arena_create();
    if (!s->arena) {
        free(s);
        return HT_ERR_NOMEM;
    }
    s->q.t = t;
    s->q.a = s->arena;
    *out = s;
    return HT_ERR_OK;
}

/* Before a lookup: the graph loaded so far stays; the work bound is per
 * lookup. */
static void lookup_begin(struct ht_qsession *s, struct up_ctx *u,
                         struct ht_request **reqs, size_t *n)
{
    memset(u, 0, sizeof(*u));
    *reqs = NULL;
    *n = 0;
    s->q.truncated = false;
    s->q.loads = 0;
    u->budget = 100000;
}

/* After it: the roots found, as bare roots or whole requests. */
static int lookup_end(struct ht_qsession *s, const struct up_ctx *u, bool roots,
                      struct ht_request **reqs, size_t *n)
{
    if (!u->roots.n)
        return HT_ERR_NOTFOUND;
    *reqs = ht_arena_alloc(s->arena, u->roots.n * sizeof(**reqs));
    for (size_t i = 0; i < u->roots.n; i++)
        if (roots)
            root_only(&s->q, u->roots.p[i], &(*reqs)[i]);
        else
            build_request(&s->q, u->roots.p[i], &(*reqs)[i]);
    *n = u->roots.n;
    return HT_ERR_OK;
}

int ht_qsession_query(struct ht_qsession *s, const char *id, bool roots,
                      struct ht_request **reqs, size_t *n)
{
    struct up_ctx u;

    lookup_begin(s, &u, reqs, n);
    resolve(&s->q, id, &u);
    return lookup_end(s, &u, roots, reqs, n);
}

/* The root among `roots` whose span id is `root`, or NULL. */
static struct qnode *root_in(const struct vec *roots, const struct ht_id8 *root)
{
    for (size_t i = 0; i < roots->n; i++) {
        struct qnode *n = roots->p[i];

        if (memcmp(n->s.id.b, root->b, 8) == 0)
            return n;
    }
    return NULL;
}

int ht_qsession_query_root(struct ht_qsession *s, const char *id,
                           const struct ht_id8 *root, struct ht_request **out)
{
    struct up_ctx u;
    struct qnode *r = NULL, *n;
    struct ht_id8 sid;

    *out = NULL;
    s->q.truncated = false;
    s->q.loads = 0;
    /* a root's own span id: the walk up from that span is the first thing
     * resolving it does, and when that walk ends at the root the rest
     * (other kinds of id spelled the same) can only add other roots */
    if (ht_id8_parse(id, strlen(id), &sid) && memcmp(sid.b, root->b, 8) == 0 &&
        (n = ht__q_span(&s->q, &sid))) {
        memset(&u, 0, sizeof(u));
        u.budget = 100000;
        walk_up(&s->q, &u, n, NULL, 0);
        r = root_in(&u.roots, root);
    }
    if (!r) {
        memset(&u, 0, sizeof(u));
        u.budget = 100000;
        resolve(&s->q, id, &u);
        r = root_in(&u.roots, root);
    }
    if (!r)
        return HT_ERR_NOTFOUND;
    *out = ht_arena_alloc(s->arena, sizeof(**out));
    build_request(&s->q, r, *out);
    return HT_ERR_OK;
}

int ht_qsession_trace_roots(struct ht_qsession *s, const struct ht_tid *tid,
                            struct ht_request **reqs, size_t *n)
{
    struct up_ctx u;

    lookup_begin(s, &u, reqs, n);
    resolve_trace(&s->q, tid, &u);
    return lookup_end(s, &u, true, reqs, n);
}

int ht_qsession_build(struct ht_qsession *s, const struct ht_request *root,
                      struct ht_request **out)
{
    struct qnode *n;

    *out = NULL;
    if (!root || !root->nspans)
        return HT_ERR_NOTFOUND;
    /* every node the session loaded or made is in its map by id */
    n = ht__map_get(&s->q.spans, root->spans[0].s.id.b, 8);
    if (!n)
        return HT_ERR_NOTFOUND;
    s->q.truncated = false;
    s->q.loads = 0;
    *out = ht_arena_alloc(s->arena, sizeof(**out));
    build_request(&s->q, n, *out);
    return HT_ERR_OK;
}

/* Emptied, its table kept (a reopened session fills it again). */
static void map_clear(struct map *m)
{
    if (m->cap)
        memset(m->e, 0, m->cap * sizeof(*m->e));
    m->n = 0;
}

/* A key set as a session begins it: too large to read whole when the last
 * one found so (state), and in a bulk session read at the first ask. */
static void ks_carry(struct keyset *ks, int state, bool bulk)
{
    if (state == KS_LARGE)
        ks->state = KS_LARGE;
    else if (bulk)
        ks->asks = KS_ASKS - 1;
}

int ht_qsession_reopen(struct ht_qsession *s, struct ht_txn *t)
{
    struct map spans = s->q.spans, invs = s->q.invs, pairs = s->q.pairs;
    struct map records = s->q.records;
    /* a key range found too large to read whole stays so (a heuristic:
     * the ids are looked up one by one, as always) */
    int hstate = s->q.ks_header.state, lstate = s->q.ks_link.state;

    map_clear(&spans);
    map_clear(&invs);
    map_clear(&pairs);
    map_clear(&records);
    ht_arena_clear(s->arena);
    memset(&s->q, 0, sizeof(s->q));
    s->q.spans = spans;
    s->q.invs = invs;
    s->q.pairs = pairs;
    s->q.records = records;
    s->q.t = t;
    s->q.a = s->arena;
    ks_carry(&s->q.ks_header, hstate, s->bulk);
    ks_carry(&s->q.ks_link, lstate, s->bulk);
    return HT_ERR_OK;
}

void ht_qsession_bulk(struct ht_qsession *s)
{
    s->bulk = true;
    ks_carry(&s->q.ks_header, s->q.ks_header.state, true);
    ks_carry(&s->q.ks_link, s->q.ks_link.state, true);
}

size_t ht_qsession_memory(const struct ht_qsession *s)
{
    return ht_arena_used(s->arena);
}

void ht_qsession_close(struct ht_qsession *s)
{
    if (!s)
        return;
    ht__map_free(&s->q.spans);
    ht__map_free(&s->q.invs);
    ht__map_free(&s->q.pairs);
    ht__map_free(&s->q.records);
    ht_arena_destroy(s->arena);
    free(s);
}

int ht_query_trace_txn(struct ht_txn *t, const char *id, struct ht_result **out)
{
    return query_in(t, id, false, out);
}

int ht_query_roots_txn(struct ht_txn *t, const char *id, struct ht_result **out)
{
    return query_in(t, id, true, out);
}

int ht_query_trace(struct ht_store *s, const char *id, struct ht_result **out)
{
    struct ht_txn *t;
    int rc;

    *out = NULL;
    rc = ht_store_begin(s, false, &t);
    if (rc)
        return rc;
    rc = query_in(t, id, false, out);
    ht_store_abort(t);
    return rc;
}

void ht_result_free(struct ht_result *r)
{
    if (!r)
        return;
    ht_arena_destroy(r->arena);
    free(r);
}
