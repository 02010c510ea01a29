/*
 * hops.c - resolving asynchronous hops between a producer call and a
 * consumer invocation: SQS message id, trace header and X-Ray link, Kinesis
 * sequence number, and correlation id + stream or table + time order
 * (including producers known from logs alone when tracing is off).
 *
 * Owned by query/. Read-only: it never writes to the store.
 */
#define _GNU_SOURCE
#include "qgraph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        if (inv->recs[i].via == via && ht__streq(inv->recs[i].corr, corr))
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
        struct qinv *inv = ht__q_inv(q, c->invs.p[i]);
        struct qnode *top;

        if (!inv || consumes(inv, via, corr) || !ht__streq(inv->corr, corr))
            continue;
        top = ht__q_inv_top(q, inv);
        if (top->synthetic && !ht__vec_has(&cands, top))
            ht__vec_push(q->a, &cands, top);
    }
    for (size_t k = 0; k < cons->n; k++) {
        struct cons_rec *cr = cons->p[k];
        struct qnode *ctop = ht__q_inv_top(q, cr->inv);
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
            ht__vec_push(q->a, out, h);
        }
    }
}

/* What pairing one correlation id reads whatever the stream: its key's
 * targets and, per invocation target, the spans of that invocation. Both
 * streams (Kinesis, DynamoDB) of an id ask for them; the second reads
 * them here instead of from the store and the graph again. */
struct corr_work {
    struct tgt_ctx c;
    struct vec **spans; /* per c.invs entry, once collected (else NULL) */
};

static struct corr_work *corr_work(struct q *q, const char *corr, size_t cn)
{
    char *key = ht_arena_alloc(q->a, cn + 2);
    struct corr_work *w;

    key[0] = (char)0xff; /* no via: never a (via, corr) key */
    memcpy(key + 1, corr, cn + 1);
    w = ht__map_get(&q->pairs, key, cn + 1);
    if (w)
        return w;
    w = ht_arena_alloc(q->a, sizeof(*w));
    ht__targets_s(q, HT_K_CORR, corr, &w->c);
    w->spans = ht_arena_alloc(q->a, (w->c.invs.n + 1) * sizeof(*w->spans));
    memset(w->spans, 0, (w->c.invs.n + 1) * sizeof(*w->spans));
    ht__map_put(&q->pairs, key, cn + 1, w);
    return w;
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
    struct corr_work *w;
    struct vec cons = {0}, prods = {0};
    struct map pseen = {0}, claimed = {0};

    key[0] = (char)via;
    memcpy(key + 1, corr, cn + 1);
    out = ht__map_get(&q->pairs, key, cn + 1);
    if (out)
        return out;
    out = ht_arena_alloc(q->a, sizeof(*out));
    memset(out, 0, sizeof(*out));
    ht__map_put(&q->pairs, key, cn + 1, out);

    w = corr_work(q, corr, cn);
    for (size_t i = 0; i < w->c.invs.n; i++) {
        struct qinv *inv = ht__q_inv(q, w->c.invs.p[i]);
        struct vec spans = {0};

        if (!inv)
            continue;
        for (size_t j = 0; j < inv->nrecs; j++) {
            const struct ht_fact *r = &inv->recs[j];

            if (r->via == via && ht__streq(r->corr, corr)) {
                struct cons_rec *cr = ht_arena_alloc(q->a, sizeof(*cr));

                cr->inv = inv;
                cr->rec = r;
                ht__vec_push(q->a, &cons, cr);
            }
        }
        /* the walk gives the same spans every time: kept per id */
        if (w->spans[i]) {
            spans = *w->spans[i];
        } else {
            q->cgen++;
            ht__collect_inv_spans(q, ht__q_inv_top(q, inv), &spans, 0);
            w->spans[i] = ht_arena_alloc(q->a, sizeof(spans));
            *w->spans[i] = spans;
        }
        for (size_t j = 0; j < spans.n; j++) {
            struct qnode *s = spans.p[j];
            const char *ac;

            if ((s->s.flags & HT_SPAN_WRITE) && s->s.via == via &&
                !s->s.sequence && !ht__write_failed(&s->s) &&
                ht__q_attr(q, s, &ac) == ATTR_CORR && ht__streq(ac, corr) &&
                !ht__ptr_seen(q->a, &pseen, s))
                ht__vec_push(q->a, &prods, s);
        }
    }
    for (size_t i = 0; i < w->c.spans.n; i++) {
        struct qnode *s = ht__q_span(q, w->c.spans.p[i]);

        if (s && (s->s.flags & HT_SPAN_WRITE) && s->s.via == via &&
            !s->s.sequence && !ht__write_failed(&s->s) &&
            !ht__ptr_seen(q->a, &pseen, s))
            ht__vec_push(q->a, &prods, s);
    }
    if (cons.n > 1)
        qsort(cons.p, cons.n, sizeof(void *), cmp_cons);
    ht__map_free(&pseen);
    if (!prods.n) {
        logs_only_pairs(q, via, corr, &w->c, &cons, out);
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

                if (!ht__map_get(&claimed, &cand, sizeof(cand)) &&
                    resource_fits(cand->s.resource, res)) {
                    p = cand;
                    break;
                }
            }
            if (!p)
                break;
            ht__ptr_seen(q->a, &claimed, p);
            struct qhop *h = ht_arena_alloc(q->a, sizeof(*h));
            h->prod = p;
            h->cons = cr->inv;
            h->rec = cr->rec;
            h->via = via;
            h->resource = res;
            h->evidence = "correlation";
            ht__vec_push(q->a, out, h);
        }
        i = j;
    }
    ht__map_free(&claimed);
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

/* The via of a hop known by a link to `prod`: the queue or stream its
 * write went to (X-Ray links only SQS consumers; an OpenTelemetry
 * consumer links Kinesis and DynamoDB writes too), else a plain link. */
static uint8_t link_via(const struct qnode *prod)
{
    /* (an SNS Publish or a PutEvents: a consumer that links to it, as
     * behind SNS -> SQS, is that delivery as a whole) */
    if ((prod->s.flags & HT_SPAN_WRITE) &&
        (prod->s.via == HT_VIA_SQS || prod->s.via == HT_VIA_KINESIS ||
         prod->s.via == HT_VIA_DYNAMODB || prod->s.via == HT_VIA_SNS ||
         prod->s.via == HT_VIA_EVENTBRIDGE))
        return prod->s.via;
    return HT_VIA_LINK;
}

static const char *link_resource(struct qnode *prod)
{
    return prod->s.resource ? prod->s.resource : prod->s.name;
}

/* What a record id (SQS, SNS, EventBridge message id; Kinesis sequence
 * number) names in this graph: its keys' targets, and its producer. */
struct rec_targets {
    struct tgt_ctx c;
    struct qnode *owner; /* NULL: no producer span recorded the id */
    bool cut;            /* the targets were more than MAX_TARGETS */
};

/*
 * The targets of record id `id` under key prefix `prefix`, read once per
 * graph: each producer that recorded the id and each consumer that
 * received it asks. Its producer (`owner`) is the first span in key order
 * among them that exists. A message id has one producer; when several
 * spans recorded the same one (a duplicated or reused id), a consumer's
 * record resolves to this one, and only this one's outgoing hops lead to
 * those consumers, so both sides agree. Thousands of producers of one id,
 * each with thousands of redelivered consumers, would otherwise each list
 * all of the others.
 */
static struct rec_targets *record_targets(struct q *q, char prefix,
                                          const char *id)
{
    size_t n = strlen(id);
    char probe[256], *key;
    struct rec_targets *rt;
    bool was = q->truncated;

    /* looked up from the stack; copied into the graph's arena when kept */
    key = n + 2 <= sizeof(probe) ? probe : ht_arena_alloc(q->a, n + 2);
    key[0] = prefix;
    memcpy(key + 1, id, n + 1);
    rt = ht__map_get(&q->records, key, n + 1);
    if (!rt) {
        if (key == probe) {
            key = ht_arena_alloc(q->a, n + 2);
            memcpy(key, probe, n + 2);
        }
        rt = ht_arena_alloc(q->a, sizeof(*rt));
        q->truncated = false;
        ht__targets_s(q, prefix, id, &rt->c);
        rt->cut = q->truncated;
        rt->owner = NULL;
        for (size_t j = 0; j < rt->c.spans.n && !rt->owner; j++)
            rt->owner = ht__q_span(q, rt->c.spans.p[j]);
        ht__map_put(&q->records, key, n + 1, rt);
    }
    /* a lookup that uses a cut list says so, whichever read it first */
    q->truncated = q->truncated || was || rt->cut;
    return rt;
}

static struct qnode *msg_owner(struct q *q, char prefix, const char *id)
{
    return record_targets(q, prefix, id)->owner;
}

/* Hops into invocation `inv` (its consumer side). */
static void incoming(struct q *q, struct qinv *inv, struct vec *out)
{
    struct qnode *top = ht__q_inv_top(q, inv);

    for (size_t i = 0; i < inv->nrecs; i++) {
        const struct ht_fact *r = &inv->recs[i];
        struct qnode *p = NULL;

        if (ht_msgid_prefix(r->via)) {
            /* SQS, SNS, EventBridge: the producer that recorded the
             * record's message id (or, for an SQS message that SNS or
             * EventBridge put in the queue, the id of that delivery: the
             * request builds two legs from it), else the trace header */
            const char *res = r->resource;

            if (r->record_id)
                p = msg_owner(q, ht_msgid_prefix(r->via), r->record_id);
            if (!p && r->up_id && ht_msgid_prefix(r->up_via))
                p = msg_owner(q, ht_msgid_prefix(r->up_via), r->up_id);
            if (p) {
                ht__vec_push(q->a, out,
                             mkhop(q, p, inv, r, r->via,
                                   res ? res : p->s.resource, "message-id"));
                continue;
            }
            if ((r->flags & HT_FACT_HAS_HDR) &&
                (p = ht__q_span(q, &r->hdr_parent))) {
                ht__vec_push(q->a, out,
                             mkhop(q, p, inv, r, r->via,
                                   res ? res : p->s.resource, "trace-header"));
            }
            continue;
        }
        if (r->via == HT_VIA_KINESIS && r->record_id) {
            p = msg_owner(q, HT_K_KSEQ, r->record_id);
            if (p) {
                ht__vec_push(q->a, out,
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
                    ht__streq(h->rec->record_id, r->record_id))
                    ht__vec_push(q->a, out, h);
            }
        }
    }
    /* X-Ray links on the invocation's segments */
    for (int pass = 0; pass < 2 && top; pass++) {
        struct qnode *n = top;

        if (pass == 1) {
            struct vec *k = ht__q_kids(q, top);

            n = NULL;
            for (size_t i = 0; i < k->n; i++)
                if (((struct qnode *)k->p[i])->s.kind == HT_SK_FUNCTION)
                    n = k->p[i];
            if (!n)
                break;
        }
        for (uint32_t i = 0; i < n->s.nlinks; i++) {
            struct qnode *p = ht__q_span(q, &n->s.links[i].id);

            if (!p || p == top || hop_listed(out, p, inv))
                continue;
            if (link_via(p) != HT_VIA_LINK)
                ht__vec_push(q->a, out,
                             mkhop(q, p, inv, NULL, link_via(p), p->s.resource,
                                   "xray-link"));
            else
                ht__vec_push(q->a, out,
                             mkhop(q, p, inv, NULL, HT_VIA_LINK,
                                   link_resource(p), "xray-link"));
        }
    }
}

/* Hops from producer `p` to the invocations that received a record with
 * the id it recorded (SQS message id, Kinesis sequence number). */
static void by_record_id(struct q *q, struct qnode *p, char prefix, uint8_t via,
                         const char *id, const char *evidence, struct vec *out)
{
    const struct rec_targets *rt = record_targets(q, prefix, id);

    /* another producer recorded the id first: its consumers are that
     * one's (record_targets) */
    if (rt->owner && rt->owner != p)
        return;
    for (size_t i = 0; i < rt->c.invs.n; i++) {
        struct qinv *inv = ht__q_inv(q, rt->c.invs.p[i]);

        for (size_t j = 0; inv && j < inv->nrecs; j++) {
            const struct ht_fact *r = &inv->recs[j];

            if (hop_listed(out, p, inv))
                continue;
            if (r->via == via && ht__streq(r->record_id, id))
                ht__vec_push(q->a, out,
                             mkhop(q, p, inv, r, via,
                                   r->resource ? r->resource : p->s.resource,
                                   evidence));
            else if (r->up_via == via && ht__streq(r->up_id, id))
                /* delivered into a queue: the SQS hop; the request builds
                 * the leg before it */
                ht__vec_push(
                    q->a, out,
                    mkhop(q, p, inv, r, r->via, r->resource, evidence));
        }
    }
}

/* The evidence of a hop found through the record's trace header: a
 * SendMessage that recorded a message id is taken as its message's
 * (as before); an SNS Publish or a PutEvents only when the record names
 * that id (the SNS message id in the envelope, the event id). */
static const char *header_evidence(const struct qnode *p,
                                   const struct ht_fact *r)
{
    if (!p->s.message_id)
        return "trace-header";
    if (p->s.via != HT_VIA_SNS && p->s.via != HT_VIA_EVENTBRIDGE)
        return "message-id";
    return ht__streq(p->s.message_id, r->record_id) ||
                   ht__streq(p->s.message_id, r->up_id)
               ? "message-id"
               : "trace-header";
}

/* Hops out of producer span `p`. */
static void outgoing(struct q *q, struct qnode *p, struct vec *out)
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
                    ht__vec_push(q->a, out, h);
            }
        }
        return;
    }
    if (ht__write_failed(&p->s))
        return; /* it wrote nothing */
    if (p->s.message_id) {
        int mv = ht_span_msgid_via(&p->s);

        by_record_id(q, p, ht_msgid_prefix(mv), (uint8_t)mv, p->s.message_id,
                     "message-id", out);
    }
    if (ht__key_absent(q, HT_K_HEADER, &p->s.id))
        memset(&c, 0, sizeof(c));
    else
        ht__targets(q, HT_K_HEADER, p->s.id.b, 8, &c);
    for (size_t i = 0; i < c.invs.n; i++) {
        struct qinv *inv = ht__q_inv(q, c.invs.p[i]);

        for (size_t j = 0; inv && j < inv->nrecs; j++) {
            const struct ht_fact *r = &inv->recs[j];

            if ((r->flags & HT_FACT_HAS_HDR) &&
                memcmp(r->hdr_parent.b, p->s.id.b, 8) == 0 &&
                !hop_listed(out, p, inv)) {
                /* a message id that names another producer wins */
                struct tgt_ctx m;
                bool other = false;

                ht__targets_s(q, HT_K_SQS, r->record_id, &m);
                for (size_t k = 0; k < m.spans.n; k++)
                    if (memcmp(((struct ht_id8 *)m.spans.p[k])->b, p->s.id.b,
                               8) != 0)
                        other = true;
                if (!other)
                    ht__vec_push(
                        q->a, out,
                        mkhop(q, p, inv, r, r->via ? r->via : HT_VIA_SQS,
                              r->resource ? r->resource : p->s.resource,
                              header_evidence(p, r)));
            }
        }
    }
    if (ht__key_absent(q, HT_K_LINK, &p->s.id))
        memset(&c, 0, sizeof(c));
    else
        ht__targets(q, HT_K_LINK, p->s.id.b, 8, &c);
    for (size_t i = 0; i < c.spans.n; i++) {
        struct qnode *l = ht__q_span(q, c.spans.p[i]);
        struct qinv *inv;

        if (!l)
            continue;
        inv = ht__q_node_inv(q, l);
        if (!inv && l->s.kind == HT_SK_FUNCTION) {
            struct qnode *lp = ht__q_parent(q, l);

            inv = lp ? ht__q_node_inv(q, lp) : NULL;
        }
        if (!inv || hop_listed(out, p, inv))
            continue;
        ht__vec_push(q->a, out,
                     link_via(p) != HT_VIA_LINK
                         ? mkhop(q, p, inv, NULL, link_via(p), p->s.resource,
                                 "xray-link")
                         : mkhop(q, p, inv, NULL, HT_VIA_LINK, link_resource(p),
                                 "xray-link"));
    }
    if (p->s.sequence) {
        by_record_id(q, p, HT_K_KSEQ, HT_VIA_KINESIS, p->s.sequence,
                     "sequence-number", out);
    } else if ((p->s.flags & HT_SPAN_WRITE) &&
               (p->s.via == HT_VIA_KINESIS || p->s.via == HT_VIA_DYNAMODB)) {
        const char *corr;

        if (ht__q_attr(q, p, &corr) == ATTR_CORR && corr) {
            struct vec *pairs = corr_pairs(q, p->s.via, corr);

            for (size_t i = 0; i < pairs->n; i++) {
                struct qhop *h = pairs->p[i];

                if (h->prod == p && !hop_listed(out, p, h->cons))
                    ht__vec_push(q->a, out, h);
            }
        }
    }
}

/* ---- hops, once per node ------------------------------------------------ */

/* The graph only grows while a query runs (its transaction reads one
 * snapshot), so a node's hops are the same every time they are asked
 * for: they are worked out once and kept with the node. An answer cut
 * short by the work bound is not kept (a later id, with a fresh bound,
 * works it out again). The caller's vector shares the kept array; its cap
 * equals its length, so a push onto it copies first. */
static void share(const struct vec *kept, struct vec *out)
{
    out->p = kept->p;
    out->n = out->cap = kept->n;
}

void ht__q_incoming(struct q *q, struct qinv *inv, struct vec *out)
{
    if (!inv->in_done) {
        bool was = q->truncated;
        struct vec v = {0};

        q->truncated = false;
        incoming(q, inv, &v);
        if (!q->truncated) {
            inv->in = v;
            inv->in_done = true;
        }
        q->truncated |= was;
        if (!inv->in_done) {
            *out = v;
            return;
        }
    }
    share(&inv->in, out);
}

void ht__q_outgoing(struct q *q, struct qnode *p, struct vec *out)
{
    if (!p->out_done) {
        bool was = q->truncated;
        struct vec v = {0};

        q->truncated = false;
        outgoing(q, p, &v);
        if (!q->truncated) {
            p->out = v;
            p->out_done = true;
        }
        q->truncated |= was;
        if (!p->out_done) {
            *out = v;
            return;
        }
    }
    share(&p->out, out);
}
