/*
 * jaeger.c - a stitched request as a Jaeger trace (the JSON of Jaeger's
 * query API, /api/traces, and of its trace files that the Jaeger UI and
 * Grafana's "Import trace" open), and what Jaeger's search needs to know
 * of a request (services, operations, service-to-service edges: the 'J'
 * records of store/ht_agg_records.h).
 *
 * One request is one Jaeger trace:
 *   - traceID: the root span's X-Ray trace id, its 32 hex digits without
 *     the version and dashes (1-5759e988-bd862e3fe1be46a994272793 is
 *     5759e988bd862e3fe1be46a994272793, the id OpenTelemetry's X-Ray
 *     propagator gives it too); a root with no trace id (known from logs
 *     alone) has 16 zeros and its span id. ht_jaeger_parse_id goes back.
 *   - every span of every X-Ray trace the request spans, spanID its
 *     segment / subsegment id, the X-Ray trace id as tag xray.trace_id;
 *     the sync parent is a CHILD_OF reference;
 *   - each hop: a FOLLOWS_FROM reference from the consumer to the
 *     producer span (one per hop), and a span of its own for the wait
 *     ("wait sqs orders-queue"), CHILD_OF the producer, from the
 *     consumer's start less the wait to the consumer's start, so the
 *     waterfall shows the queue time next to the consumer it leads into;
 *     a pending hop's wait span runs from the write's end for the time
 *     waited so far. Wait spans carry hop.* tags and hop.consumer.
 *   - critical_path (bool) and critical_path_ms on the spans and wait
 *     spans the critical path goes through.
 * Requests that share a root trace (two roots in one X-Ray trace) share
 * the traceID: they are one Jaeger trace, spans counted once.
 *
 * Owned by query/. Rendering and matching only: no store access.
 */
#define _GNU_SOURCE
#include "ht_agg_records.h"
#include "ht_query.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { T_STR, T_BOOL, T_INT, T_FLOAT };

struct jtag {
    const char *key;
    uint8_t type;
    const char *s;
    int64_t i;
    double f;
};

struct jref {
    bool follows; /* FOLLOWS_FROM, else CHILD_OF */
    uint64_t span;
};

struct jspan {
    uint64_t id;
    const char *op;
    int64_t start, dur;
    int proc;
    struct jref *refs;
    size_t nrefs;
    struct jtag *tags;
    size_t ntags, captags;
};

struct jproc {
    const char *service;
};

struct jtrace {
    struct ht_arena *a;
    char trace_id[33];
    struct jspan *spans;
    size_t n, cap;
    struct jproc *procs;
    size_t nprocs, capprocs;
    const char **warnings;
    size_t nwarn, capwarn;
    /* span ids taken (open addressing, 0 kept apart) */
    uint64_t *ids;
    size_t idcap, nids;
    bool zero_taken;
};

static uint64_t id8_u64(const struct ht_id8 *id)
{
    return ht_be64_get(id->b);
}

static void u64_hex(uint64_t v, char out[17])
{
    snprintf(out, 17, "%016llx", (unsigned long long)v);
}

/* Whether span id v is new to the trace (and take it). */
static bool take_id(struct jtrace *t, uint64_t v)
{
    if (!v) {
        if (t->zero_taken)
            return false;
        t->zero_taken = true;
        return true;
    }
    if ((t->nids + 1) * 2 > t->idcap) {
        size_t cap = t->idcap ? t->idcap * 2 : 256;
        uint64_t *n = ht_table_alloc(cap, sizeof(*n));

        HT_ASSERT(n);
        for (size_t i = 0; i < t->idcap; i++)
            if (t->ids[i]) {
                size_t j = (size_t)(t->ids[i] * 0x9E3779B97F4A7C15ull >> 20) &
                           (cap - 1);

                while (n[j])
                    j = (j + 1) & (cap - 1);
                n[j] = t->ids[i];
            }
        free(t->ids);
        t->ids = n;
        t->idcap = cap;
    }
    for (size_t j = (size_t)(v * 0x9E3779B97F4A7C15ull >> 20) & (t->idcap - 1);;
         j = (j + 1) & (t->idcap - 1)) {
        if (t->ids[j] == v)
            return false;
        if (!t->ids[j]) {
            t->ids[j] = v;
            t->nids++;
            return true;
        }
    }
}

static struct jspan *new_span(struct jtrace *t)
{
    struct jspan *s;

    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->spans = realloc(t->spans, t->cap * sizeof(*t->spans));
        HT_ASSERT(t->spans);
    }
    s = &t->spans[t->n++];
    memset(s, 0, sizeof(*s));
    return s;
}

static struct jtag *add_tag(struct jtrace *t, struct jspan *s, const char *k,
                            int type)
{
    struct jtag *g;

    if (s->ntags == s->captags) {
        size_t cap = s->captags ? s->captags * 2 : 16;
        struct jtag *n = ht_arena_alloc(t->a, cap * sizeof(*n));

        if (s->ntags)
            memcpy(n, s->tags, s->ntags * sizeof(*n));
        s->tags = n;
        s->captags = cap;
    }
    g = &s->tags[s->ntags++];
    memset(g, 0, sizeof(*g));
    g->key = k;
    g->type = (uint8_t)type;
    return g;
}

static void tag_str(struct jtrace *t, struct jspan *s, const char *k,
                    const char *v)
{
    if (v)
        add_tag(t, s, k, T_STR)->s = v;
}

static void tag_bool(struct jtrace *t, struct jspan *s, const char *k, bool v)
{
    add_tag(t, s, k, T_BOOL)->i = v;
}

static void tag_int(struct jtrace *t, struct jspan *s, const char *k, int64_t v)
{
    add_tag(t, s, k, T_INT)->i = v;
}

static void tag_float(struct jtrace *t, struct jspan *s, const char *k,
                      double v)
{
    add_tag(t, s, k, T_FLOAT)->f = v;
}

/* One process per service (the function, the API stage, ...): the
 * segment's origin is a tag of its spans. */
static int proc_of(struct jtrace *t, const char *service)
{
    for (size_t i = 0; i < t->nprocs; i++)
        if (strcmp(t->procs[i].service, service) == 0)
            return (int)i;
    if (t->nprocs == t->capprocs) {
        t->capprocs = t->capprocs ? t->capprocs * 2 : 8;
        t->procs = realloc(t->procs, t->capprocs * sizeof(*t->procs));
        HT_ASSERT(t->procs);
    }
    t->procs[t->nprocs].service = service;
    return (int)t->nprocs++;
}

static void add_warning(struct jtrace *t, const char *w)
{
    for (size_t i = 0; i < t->nwarn; i++)
        if (strcmp(t->warnings[i], w) == 0)
            return;
    if (t->nwarn == t->capwarn) {
        t->capwarn = t->capwarn ? t->capwarn * 2 : 8;
        t->warnings = realloc(t->warnings, t->capwarn * sizeof(*t->warnings));
        HT_ASSERT(t->warnings);
    }
    t->warnings[t->nwarn++] = w;
}

/* ---- what a span is called and what kind it is ---------------------------
 */

const char *ht_jaeger_service(const struct ht_qspan *q)
{
    if (q->service && *q->service)
        return q->service;
    if (q->s.name && *q->s.name)
        return q->s.name;
    return "unknown";
}

const char *ht_jaeger_operation(const struct ht_qspan *q, struct ht_arena *a)
{
    const char *name = q->s.name && *q->s.name ? q->s.name : "span";

    /* an AWS call: "SQS.SendMessage", as OpenTelemetry's AWS SDK
     * instrumentation names it */
    if (q->s.kind == HT_SK_CALL && q->s.operation && *q->s.operation)
        return ht_arena_printf(a, "%s.%s", name, q->s.operation);
    return name;
}

/* span.kind: server for segments, producer for a write of a hop, client
 * for other calls, consumer for an invocation a hop leads into, internal
 * for the rest (Initialization, Invocation, Overhead, ...). */
static const char *span_kind(const struct ht_request *r, size_t i,
                             const bool *consumer)
{
    const struct ht_span *s = &r->spans[i].s;

    if (consumer[i])
        return "consumer";
    switch (s->kind) {
    case HT_SK_SEGMENT:
    case HT_SK_APIGW:
    case HT_SK_LAMBDA:
    case HT_SK_FUNCTION:
        return "server";
    case HT_SK_CALL:
        return (s->flags & HT_SPAN_WRITE) ? "producer" : "client";
    default:
        return "internal";
    }
}

static uint64_t wait_span_id(const struct ht_request *r, size_t h)
{
    const struct ht_qhop *hp = &r->hops[h];
    uint8_t buf[40];
    size_t n = 0;
    uint64_t v;

    memcpy(buf, "wait", 4);
    n = 4;
    if (hp->from >= 0)
        memcpy(buf + n, r->spans[hp->from].s.id.b, 8);
    else
        memset(buf + n, 0, 8);
    n += 8;
    if (hp->to >= 0)
        memcpy(buf + n, r->spans[hp->to].s.id.b, 8);
    else
        memset(buf + n, 0xff, 8);
    n += 8;
    buf[n++] = hp->via;
    v = ht_hash64(buf, n);
    return v ^ ht_hash64(hp->resource, strlen(hp->resource));
}

/* The wait of hop h in µs as its span shows it (never negative). */
static int64_t wait_us(const struct ht_qhop *h)
{
    double us = h->wait_ms * 1000.0;

    return us > 0 ? (int64_t)(us + 0.5) : 0;
}

/* ---- one request into the trace ----------------------------------------
 */

static void add_request(struct jtrace *t, const struct ht_request *r)
{
    size_t n = r->nspans;
    bool *consumer = calloc(n + 1, sizeof(bool));
    bool *on_cp = calloc(n + 1, sizeof(bool));
    bool *hop_cp = calloc(r->nhops + 1, sizeof(bool));
    int64_t *cp_us = calloc(n + 1, sizeof(int64_t));
    int64_t *hop_cp_us = calloc(r->nhops + 1, sizeof(int64_t));
    char hex[17];

    HT_ASSERT(consumer && on_cp && hop_cp && cp_us && hop_cp_us);
    for (size_t h = 0; h < r->nhops; h++)
        if (r->hops[h].to >= 0 && (size_t)r->hops[h].to < n)
            consumer[r->hops[h].to] = true;
    for (size_t i = 0; i < r->ncp; i++) {
        const struct ht_cp_entry *e = &r->cp[i];

        if (e->kind == HT_CP_WAIT && e->hop >= 0 && (size_t)e->hop < r->nhops) {
            hop_cp[e->hop] = true;
            hop_cp_us[e->hop] += e->dur_us;
        } else if (e->span >= 0 && (size_t)e->span < n) {
            on_cp[e->span] = true;
            cp_us[e->span] += e->dur_us;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const struct ht_qspan *q = &r->spans[i];
        const struct ht_span *s = &q->s;
        struct jspan *j;
        size_t nrefs = 0;
        char tid[36];

        if (!take_id(t, id8_u64(&s->id)))
            continue; /* shared batch work of another request of the trace */
        j = new_span(t);
        j->id = id8_u64(&s->id);
        j->op = ht_jaeger_operation(q, t->a);
        j->start = s->start_us;
        j->dur = s->end_us > s->start_us ? s->end_us - s->start_us : 0;
        j->proc = proc_of(t, ht_jaeger_service(q));
        j->refs = ht_arena_alloc(t->a, (r->nhops + 2) * sizeof(*j->refs));
        if (q->parent >= 0 && (size_t)q->parent < n && q->parent != (int)i)
            j->refs[nrefs++] =
                (struct jref){false, id8_u64(&r->spans[q->parent].s.id)};
        for (size_t h = 0; h < r->nhops; h++) {
            const struct ht_qhop *hp = &r->hops[h];

            uint64_t from;
            bool seen = false;

            if (hp->to != (int)i || hp->from < 0 || (size_t)hp->from >= n)
                continue;
            /* the legs of one delivery (SNS -> SQS -> consumer) are hops
             * between the same two spans: one reference, a wait span each */
            from = id8_u64(&r->spans[hp->from].s.id);
            for (size_t k = 0; k < nrefs && !seen; k++)
                seen = j->refs[k].follows && j->refs[k].span == from;
            if (!seen)
                j->refs[nrefs++] = (struct jref){true, from};
        }
        j->nrefs = nrefs;
        if (!ht_tid_is_zero(&s->trace)) {
            ht_tid_format(&s->trace, tid);
            tag_str(t, j, "xray.trace_id", ht_arena_strdup(t->a, tid));
        }
        tag_str(t, j, "span.kind", span_kind(r, i, consumer));
        if (s->flags & (HT_SPAN_ERROR | HT_SPAN_FAULT | HT_SPAN_THROTTLE))
            tag_bool(t, j, "error", true);
        if (s->flags & HT_SPAN_ERROR)
            tag_bool(t, j, "aws.xray.error", true);
        if (s->flags & HT_SPAN_FAULT)
            tag_bool(t, j, "aws.xray.fault", true);
        if (s->flags & HT_SPAN_THROTTLE)
            tag_bool(t, j, "aws.xray.throttle", true);
        if (q->cold)
            tag_bool(t, j, "cold_start", true);
        if (s->kind == HT_SK_INIT)
            tag_bool(t, j, "init", true);
        if (q->init_us > 0)
            tag_float(t, j, "init_ms", (double)q->init_us / 1000.0);
        if (on_cp[i]) {
            tag_bool(t, j, "critical_path", true);
            tag_float(t, j, "critical_path_ms", (double)cp_us[i] / 1000.0);
        }
        tag_str(t, j, "aws.origin", s->origin);
        tag_str(t, j, "aws.operation", s->operation);
        tag_str(t, j, "aws.resource", s->resource);
        tag_str(t, j, "aws.request_id",
                s->kind == HT_SK_APIGW ? s->request_id : q->request_id);
        tag_str(t, j, "aws.extended_request_id", s->ext_request_id);
        tag_str(t, j, "aws.api_id", s->api_id);
        tag_str(t, j, "aws.stage", s->stage);
        tag_str(t, j, "messaging.message_id", s->message_id);
        tag_str(t, j, "aws.kinesis.sequence_number", s->sequence);
        tag_str(t, j, "correlation_id", s->corr);
        tag_str(t, j, "http.method", s->method);
        tag_str(t, j, "http.url", s->url);
        if (s->http_status)
            tag_int(t, j, "http.status_code", s->http_status);
        if (s->flags & HT_SPAN_WRITE)
            tag_str(t, j, "hop.produces", ht_via_name(s->via));
        if (q->shared)
            tag_bool(t, j, "shared", true);
        if (q->logs_only)
            tag_bool(t, j, "logs_only", true);
        if (s->flags & HT_SPAN_IN_PROGRESS)
            tag_bool(t, j, "in_progress", true);
        if (q->wait_hop >= 0 && (size_t)q->wait_hop < r->nhops)
            tag_str(t, j, "hop.wait_of", ht_via_name(r->hops[q->wait_hop].via));
    }
    /* a span of its own for each hop's wait */
    for (size_t h = 0; h < r->nhops; h++) {
        const struct ht_qhop *hp = &r->hops[h];
        const struct ht_qspan *from, *to;
        struct jspan *j;
        uint64_t id = wait_span_id(r, h);
        int64_t w = wait_us(hp);

        if (hp->from < 0 || (size_t)hp->from >= n)
            continue;
        if (!hp->pending && (hp->to < 0 || (size_t)hp->to >= n))
            continue;
        if (!take_id(t, id))
            continue;
        from = &r->spans[hp->from];
        to = hp->pending ? NULL : &r->spans[hp->to];
        j = new_span(t);
        j->id = id;
        j->op =
            ht_arena_printf(t->a, "%s %s %s", hp->pending ? "pending" : "wait",
                            ht_via_name(hp->via), hp->resource);
        j->start = to ? to->s.start_us - w : from->s.end_us;
        j->dur = w;
        j->proc = proc_of(t, ht_jaeger_service(from));
        j->refs = ht_arena_alloc(t->a, sizeof(*j->refs));
        j->refs[0] = (struct jref){false, id8_u64(&from->s.id)};
        j->nrefs = 1;
        if (!ht_tid_is_zero(&from->s.trace)) {
            char tid[36];

            ht_tid_format(&from->s.trace, tid);
            tag_str(t, j, "xray.trace_id", ht_arena_strdup(t->a, tid));
        }
        tag_str(t, j, "span.kind", "internal");
        tag_str(t, j, "hop.via", ht_via_name(hp->via));
        tag_str(t, j, "hop.resource", hp->resource);
        tag_float(t, j, "hop.wait_ms", hp->wait_ms);
        tag_str(t, j, "hop.evidence", hp->evidence);
        tag_bool(t, j, "hop.pending", hp->pending);
        u64_hex(id8_u64(&from->s.id), hex);
        tag_str(t, j, "hop.producer", ht_arena_strdup(t->a, hex));
        if (to) {
            u64_hex(id8_u64(&to->s.id), hex);
            tag_str(t, j, "hop.consumer", ht_arena_strdup(t->a, hex));
        }
        if (hp->pending)
            tag_bool(t, j, "error", true);
        if (hop_cp[h]) {
            tag_bool(t, j, "critical_path", true);
            tag_float(t, j, "critical_path_ms", (double)hop_cp_us[h] / 1000.0);
        }
    }
    /* the FOLLOWS_FROM references of the consumers carry the hop too */
    for (size_t h = 0; h < r->nhops; h++) {
        const struct ht_qhop *hp = &r->hops[h];

        if (hp->pending || hp->from < 0 || hp->to < 0 || (size_t)hp->to >= n ||
            (size_t)hp->from >= n)
            continue;
        for (size_t k = 0; k < t->n; k++) {
            struct jspan *j = &t->spans[k];

            if (j->id != id8_u64(&r->spans[hp->to].s.id))
                continue;
            /* one consumer may take several hops: the tags of each */
            tag_str(t, j, "hop.via", ht_via_name(hp->via));
            tag_str(t, j, "hop.resource", hp->resource);
            tag_float(t, j, "hop.wait_ms", hp->wait_ms);
            tag_str(t, j, "hop.evidence", hp->evidence);
            break;
        }
    }
    for (size_t i = 0; i < r->nwarnings; i++)
        add_warning(t, r->warnings[i]);
    free(consumer);
    free(on_cp);
    free(hop_cp);
    free(cp_us);
    free(hop_cp_us);
}

static void jt_init(struct jtrace *t, const char *trace_id)
{
    memset(t, 0, sizeof(*t));
    t->a = ht_arena_create();
    HT_ASSERT(t->a);
    snprintf(t->trace_id, sizeof(t->trace_id), "%s", trace_id);
}

static void jt_free(struct jtrace *t)
{
    free(t->spans);
    free(t->procs);
    free(t->warnings);
    free(t->ids);
    ht_arena_destroy(t->a);
}

/* ---- rendering ----------------------------------------------------------
 */

static void tag_json(struct ht_buf *b, const struct jtag *g)
{
    static const char *const types[] = {"string", "bool", "int64", "float64"};

    ht_buf_adds(b, "{\"key\":");
    ht_buf_json_str(b, g->key);
    ht_buf_printf(b, ",\"type\":\"%s\",\"value\":", types[g->type]);
    switch (g->type) {
    case T_STR:
        ht_buf_json_str(b, g->s);
        break;
    case T_BOOL:
        ht_buf_adds(b, g->i ? "true" : "false");
        break;
    case T_INT:
        ht_buf_printf(b, "%lld", (long long)g->i);
        break;
    default:
        ht_buf_printf(b, "%.3f", g->f);
        break;
    }
    ht_buf_addc(b, '}');
}

static int cmp_span_start(const void *x, const void *y)
{
    const struct jspan *a = x, *b = y;

    if (a->start != b->start)
        return a->start < b->start ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static void jt_json(struct jtrace *t, struct ht_buf *b)
{
    char hex[17];

    if (t->n > 1)
        qsort(t->spans, t->n, sizeof(*t->spans), cmp_span_start);
    ht_buf_adds(b, "{\"traceID\":");
    ht_buf_json_str(b, t->trace_id);
    ht_buf_adds(b, ",\"spans\":[");
    for (size_t i = 0; i < t->n; i++) {
        const struct jspan *s = &t->spans[i];

        if (i)
            ht_buf_addc(b, ',');
        ht_buf_adds(b, "{\"traceID\":");
        ht_buf_json_str(b, t->trace_id);
        u64_hex(s->id, hex);
        ht_buf_printf(b,
                      ",\"spanID\":\"%s\",\"flags\":1,\"operationName\":", hex);
        ht_buf_json_str(b, s->op);
        ht_buf_adds(b, ",\"references\":[");
        for (size_t k = 0; k < s->nrefs; k++) {
            if (k)
                ht_buf_addc(b, ',');
            u64_hex(s->refs[k].span, hex);
            ht_buf_printf(b,
                          "{\"refType\":\"%s\",\"traceID\":\"%s\","
                          "\"spanID\":\"%s\"}",
                          s->refs[k].follows ? "FOLLOWS_FROM" : "CHILD_OF",
                          t->trace_id, hex);
        }
        ht_buf_printf(b, "],\"startTime\":%lld,\"duration\":%lld,\"tags\":[",
                      (long long)s->start, (long long)s->dur);
        for (size_t k = 0; k < s->ntags; k++) {
            if (k)
                ht_buf_addc(b, ',');
            tag_json(b, &s->tags[k]);
        }
        ht_buf_printf(b,
                      "],\"logs\":[],\"processID\":\"p%d\",\"warnings\":null}",
                      s->proc + 1);
    }
    ht_buf_adds(b, "],\"processes\":{");
    for (size_t i = 0; i < t->nprocs; i++) {
        if (i)
            ht_buf_addc(b, ',');
        ht_buf_printf(b, "\"p%zu\":{\"serviceName\":", i + 1);
        ht_buf_json_str(b, t->procs[i].service);
        ht_buf_adds(b, ",\"tags\":[{\"key\":\"cloud.provider\",\"type\":"
                       "\"string\",\"value\":\"aws\"}]}");
    }
    ht_buf_adds(b, "},\"warnings\":");
    if (!t->nwarn) {
        ht_buf_adds(b, "null");
    } else {
        ht_buf_addc(b, '[');
        for (size_t i = 0; i < t->nwarn; i++) {
            if (i)
                ht_buf_addc(b, ',');
            ht_buf_json_str(b, t->warnings[i]);
        }
        ht_buf_addc(b, ']');
    }
    ht_buf_addc(b, '}');
}

/* ---- public ---------------------------------------------------------------
 */

void ht_jaeger_trace_id(const struct ht_request *r, char out[33])
{
    const struct ht_span *root;

    if (!r->nspans) {
        memset(out, '0', 32);
        out[32] = 0;
        return;
    }
    root =
        &r->spans[r->root >= 0 && (size_t)r->root < r->nspans ? r->root : 0].s;
    if (!ht_tid_is_zero(&root->trace)) {
        for (int i = 0; i < 16; i++)
            snprintf(out + 2 * i, 3, "%02x", root->trace.b[i]);
    } else {
        memset(out, '0', 16);
        u64_hex(id8_u64(&root->id), out + 16);
    }
    out[32] = 0;
}

int ht_jaeger_parse_id(const char *s, struct ht_tid *trace, struct ht_id8 *root)
{
    size_t n = s ? strlen(s) : 0;
    uint8_t b[16];
    size_t off;

    if (n != 32 && n != 16)
        return HT_ERR_INPUT;
    for (size_t i = 0; i < n; i++)
        if (ht_hex_tab[(unsigned char)s[i]] < 0)
            return HT_ERR_INPUT;
    memset(b, 0, sizeof(b));
    off = 16 - n / 2;
    for (size_t i = 0; i < n / 2; i++)
        b[off + i] = (uint8_t)(ht_hex_tab[(unsigned char)s[2 * i]] << 4 |
                               ht_hex_tab[(unsigned char)s[2 * i + 1]]);
    memset(trace, 0, sizeof(*trace));
    memset(root, 0, sizeof(*root));
    if (memcmp(b, "\0\0\0\0\0\0\0\0", 8) == 0) {
        memcpy(root->b, b + 8, 8);
        return 1; /* a root span id */
    }
    memcpy(trace->b, b, 16);
    return 0; /* an X-Ray trace id */
}

void ht_jaeger_trace_json(const struct ht_request *const *reqs, size_t n,
                          struct ht_buf *out)
{
    struct jtrace t;
    char id[33];

    ht_jaeger_trace_id(n ? reqs[0] : NULL, id);
    jt_init(&t, id);
    for (size_t i = 0; i < n; i++)
        add_request(&t, reqs[i]);
    jt_json(&t, out);
    jt_free(&t);
}

void ht_query_jaeger(const struct ht_result *res, struct ht_buf *out)
{
    const struct ht_request **group =
        malloc((res->nrequests + 1) * sizeof(*group));
    bool *done = calloc(res->nrequests + 1, sizeof(bool));
    bool first = true;

    HT_ASSERT(group && done);
    ht_buf_adds(out, "{\"data\":[");
    for (size_t i = 0; i < res->nrequests; i++) {
        char id[33], other[33];
        size_t ng = 0;

        if (done[i])
            continue;
        ht_jaeger_trace_id(&res->requests[i], id);
        for (size_t k = i; k < res->nrequests; k++) {
            if (done[k])
                continue;
            ht_jaeger_trace_id(&res->requests[k], other);
            if (strcmp(id, other) == 0) {
                group[ng++] = &res->requests[k];
                done[k] = true;
            }
        }
        if (!first)
            ht_buf_addc(out, ',');
        first = false;
        ht_jaeger_trace_json(group, ng, out);
    }
    ht_buf_adds(out, "]}\n");
    free(group);
    free(done);
}

bool ht_jaeger_match_tags(const struct ht_request *r, const char *const *keys,
                          const char *const *vals, size_t ntags)
{
    struct jtrace t;
    bool hit = false;
    char num[64];

    if (!ntags)
        return true;
    jt_init(&t, "");
    add_request(&t, r);
    for (size_t i = 0; i < t.n && !hit; i++) {
        const struct jspan *s = &t.spans[i];
        size_t ok = 0;

        for (size_t k = 0; k < ntags; k++) {
            bool found = false;

            for (size_t g = 0; g < s->ntags && !found; g++) {
                const struct jtag *tg = &s->tags[g];
                const char *v = num;

                if (strcmp(tg->key, keys[k]) != 0)
                    continue;
                switch (tg->type) {
                case T_STR:
                    v = tg->s;
                    break;
                case T_BOOL:
                    v = tg->i ? "true" : "false";
                    break;
                case T_INT:
                    snprintf(num, sizeof(num), "%lld", (long long)tg->i);
                    break;
                default:
                    snprintf(num, sizeof(num), "%.3f", tg->f);
                    break;
                }
                found = strcmp(v, vals[k]) == 0;
            }
            ok += found;
        }
        hit = ok == ntags;
    }
    jt_free(&t);
    return hit;
}

/* ---- what Jaeger's search keeps of a request ----------------------------
 */

/* Equal strings; the first bytes (or the same pointer) settle most. */
static bool same_str(const char *a, const char *b)
{
    return a == b || (a[0] == b[0] && strcmp(a, b) == 0);
}

static void rec_op(struct ht_jaeger_rec *o, size_t cap, const char *service,
                   const char *op, const char *kind)
{
    for (uint32_t i = 0; i < o->nops; i++)
        if (same_str(o->ops[i].operation, op) &&
            same_str(o->ops[i].service, service) &&
            same_str(o->ops[i].kind, kind))
            return;
    if (o->nops < cap) {
        o->ops[o->nops].service = service;
        o->ops[o->nops].operation = op;
        o->ops[o->nops].kind = kind;
        o->nops++;
    }
}

static void rec_edge(struct ht_jaeger_rec *o, size_t cap, const char *parent,
                     const char *child)
{
    if (strcmp(parent, child) == 0)
        return;
    for (uint32_t i = 0; i < o->nedges; i++)
        if (strcmp(o->edges[i].parent, parent) == 0 &&
            strcmp(o->edges[i].child, child) == 0) {
            o->edges[i].calls++;
            return;
        }
    if (o->nedges < cap && o->nedges < HT_JAEGER_MAX_EDGES) {
        o->edges[o->nedges].parent = parent;
        o->edges[o->nedges].child = child;
        o->edges[o->nedges].calls = 1;
        o->nedges++;
    }
}

void ht_jaeger_index(const struct ht_request *r, struct ht_arena *a,
                     struct ht_jaeger_rec *out)
{
    size_t n = r->nspans, cap = n + r->nhops + 1;
    bool *consumer = calloc(n + 1, sizeof(bool));

    HT_ASSERT(consumer);
    memset(out, 0, sizeof(*out));
    out->ops = ht_arena_alloc(a, cap * sizeof(*out->ops));
    out->edges = ht_arena_alloc(a, cap * sizeof(*out->edges));
    for (size_t h = 0; h < r->nhops; h++)
        if (r->hops[h].to >= 0 && (size_t)r->hops[h].to < n)
            consumer[r->hops[h].to] = true;
    for (size_t i = 0; i < n && out->nops < HT_JAEGER_MAX_OPS; i++)
        rec_op(out, cap, ht_jaeger_service(&r->spans[i]),
               ht_jaeger_operation(&r->spans[i], a), span_kind(r, i, consumer));
    for (size_t h = 0; h < r->nhops && out->nops < HT_JAEGER_MAX_OPS; h++) {
        const struct ht_qhop *hp = &r->hops[h];

        if (hp->from < 0 || (size_t)hp->from >= n)
            continue;
        rec_op(out, cap, ht_jaeger_service(&r->spans[hp->from]),
               ht_arena_printf(a, "%s %s %s", hp->pending ? "pending" : "wait",
                               ht_via_name(hp->via), hp->resource),
               "internal");
    }
    for (size_t i = 0; i < n; i++) {
        int p = r->spans[i].parent;

        if (p >= 0 && (size_t)p < n && p != (int)i)
            rec_edge(out, cap, ht_jaeger_service(&r->spans[p]),
                     ht_jaeger_service(&r->spans[i]));
    }
    for (size_t h = 0; h < r->nhops; h++) {
        const struct ht_qhop *hp = &r->hops[h];

        if (hp->from >= 0 && hp->to >= 0 && (size_t)hp->from < n &&
            (size_t)hp->to < n)
            rec_edge(out, cap, ht_jaeger_service(&r->spans[hp->from]),
                     ht_jaeger_service(&r->spans[hp->to]));
    }
    free(consumer);
}
