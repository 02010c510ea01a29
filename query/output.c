/*
 * output.c - the three renderings of `hoptrace trace`: JSON exactly per
 * cli.md (extended with a few extra fields, never renamed), a readable
 * text report (critical-path table + indented timeline), and Graphviz DOT
 * (only the critical path bold, hops dashed and labelled, labels
 * escaped; text escapes control characters from the data).
 *
 * Owned by query/. Rendering only: no store access.
 */
#define _GNU_SOURCE
#include "ht_query.h"

#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <time.h>

static const char *const cp_kinds[] = {"self", "call", "init", "wait"};

static void hex8(const struct ht_id8 *id, char out[17])
{
    ht_id8_format(id, out);
}

/* "%.3f" of ms. Nearly every value is a whole number of µs / 1000 (span
 * times are µs); those are written from the integer, which is what
 * printf's rounding of the nearest double gives, at a fraction of its
 * cost (it was a tenth of serve's time per trace). Others go to printf. */
static void jms(struct ht_buf *b, double ms)
{
    double us = ms * 1000.0;
    long long v, a;
    char tmp[32], *p = tmp + sizeof(tmp);

    if (!(us > -9e15 && us < 9e15) || (ms == 0 && signbit(ms))) {
        ht_buf_printf(b, "%.3f", ms);
        return;
    }
    v = llround(us);
    if ((double)v / 1000.0 != ms) {
        ht_buf_printf(b, "%.3f", ms);
        return;
    }
    a = v < 0 ? -v : v;
    for (int i = 0; i < 3; i++, a /= 10)
        *--p = (char)('0' + a % 10);
    *--p = '.';
    do {
        *--p = (char)('0' + a % 10);
        a /= 10;
    } while (a);
    if (v < 0)
        *--p = '-';
    ht_buf_add(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

/* "%lld" of v, without printf (the trace JSON writes several per span). */
static void jint(struct ht_buf *b, long long v)
{
    char tmp[24], *p = tmp + sizeof(tmp);
    unsigned long long a =
        v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;

    do {
        *--p = (char)('0' + a % 10);
        a /= 10;
    } while (a);
    if (v < 0)
        *--p = '-';
    ht_buf_add(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

static const char *jbool(bool v)
{
    return v ? "true" : "false";
}

static void span_json(struct ht_buf *b, const struct ht_request *r,
                      const struct ht_qspan *q)
{
    const struct ht_span *s = &q->s;
    char id[17], tid[36];

    (void)r;
    hex8(&s->id, id);
    ht_buf_adds(b, "{");
    ht_buf_json_key(b, "id");
    ht_buf_json_str(b, id);
    ht_buf_addc(b, ',');
    ht_buf_json_key(b, "trace_id");
    if (ht_tid_is_zero(&s->trace)) {
        ht_buf_adds(b, "null");
    } else {
        ht_tid_format(&s->trace, tid);
        ht_buf_json_str(b, tid);
    }
    ht_buf_addc(b, ',');
    ht_buf_json_key(b, "parent_id");
    if (s->flags & HT_SPAN_HAS_PARENT) {
        hex8(&s->parent, id);
        ht_buf_json_str(b, id);
    } else {
        ht_buf_adds(b, "null");
    }
    ht_buf_addc(b, ',');
    ht_buf_json_key(b, "name");
    ht_buf_json_str(b, s->name);
    ht_buf_addc(b, ',');
    ht_buf_json_key(b, "origin");
    ht_buf_json_str_or_null(b, s->origin);
    ht_buf_adds(b, ",\"start_us\":");
    jint(b, (long long)s->start_us);
    ht_buf_adds(b, ",\"end_us\":");
    jint(b, (long long)s->end_us);
    ht_buf_adds(b, ",\"duration_ms\":");
    jms(b, (double)(s->end_us - s->start_us) / 1000.0);
    ht_buf_adds(b, ",\"error\":");
    ht_buf_adds(b, jbool(s->flags & HT_SPAN_ERROR));
    ht_buf_adds(b, ",\"fault\":");
    ht_buf_adds(b, jbool(s->flags & HT_SPAN_FAULT));
    ht_buf_adds(b, ",\"throttle\":");
    ht_buf_adds(b, jbool(s->flags & HT_SPAN_THROTTLE));
    ht_buf_adds(b, ",\"cold_start\":");
    ht_buf_adds(b, jbool(q->cold));
    ht_buf_addc(b, ',');
    ht_buf_json_key(b, "request_id");
    ht_buf_json_str_or_null(b, s->kind == HT_SK_APIGW ? s->request_id
                                                      : q->request_id);
    ht_buf_addc(b, ',');
    ht_buf_json_key(b, "service");
    ht_buf_json_str_or_null(b, q->service);
    ht_buf_adds(b, ",\"shared\":");
    ht_buf_adds(b, jbool(q->shared));
    ht_buf_adds(b, ",\"logs_only\":");
    ht_buf_adds(b, jbool(q->logs_only));
    ht_buf_adds(b, ",\"in_progress\":");
    ht_buf_adds(b, jbool(s->flags & HT_SPAN_IN_PROGRESS));
    if (s->operation) {
        ht_buf_addc(b, ',');
        ht_buf_json_key(b, "operation");
        ht_buf_json_str(b, s->operation);
    }
    if (s->resource) {
        ht_buf_addc(b, ',');
        ht_buf_json_key(b, "resource");
        ht_buf_json_str(b, s->resource);
    }
    ht_buf_addc(b, '}');
}

/* ---- fan-out ------------------------------------------------------------
 * A producer that started several hops to one queue, stream or function
 * (SendMessageBatch, PutRecords, a loop of sends): its hops are grouped by
 * the span that holds the sends (the write itself, or for a loop the span
 * around it), via and resource. A branch is one hop with everything it
 * leads to; the critical branch is the one that finishes last. */
struct fanout {
    int producer; /* span index */
    uint8_t via;
    const char *resource;
    int *hops; /* hop indexes, in hop order */
    int width;
    int critical; /* hop index */
};

struct fan_ctx {
    const struct ht_request *r;
    int *first_kid, *next_sib; /* children by sync parent */
    int *first_hop, *next_hop; /* hops out of a span */
    int64_t *end;              /* subtree end, or INT64_MIN until known */
    uint8_t *state;            /* 0 new, 1 on the stack, 2 done */
};

static int64_t subtree_end(struct fan_ctx *c, int i, int depth)
{
    int64_t e;

    if (c->state[i] == 2)
        return c->end[i];
    e = c->r->spans[i].s.end_us;
    if (c->state[i] == 1 || depth > 2000)
        return e; /* a loop or a chain too deep: its own end */
    c->state[i] = 1;
    for (int k = c->first_kid[i]; k >= 0; k = c->next_sib[k]) {
        int64_t x = subtree_end(c, k, depth + 1);

        if (x > e)
            e = x;
    }
    for (int h = c->first_hop[i]; h >= 0; h = c->next_hop[h]) {
        int to = c->r->hops[h].to;

        if (to >= 0) {
            int64_t x = subtree_end(c, to, depth + 1);

            if (x > e)
                e = x;
        }
    }
    c->state[i] = 2;
    c->end[i] = e;
    return e;
}

/* Fills *out (malloc'd, free with fanout_free) and returns the count. */
static size_t fanouts(const struct ht_request *r, struct fanout **out,
                      int64_t **branch_end)
{
    size_t n = r->nspans, nh = r->nhops, nf = 0;
    struct fan_ctx c = {.r = r};
    struct fanout *f;
    int *group;

    *out = NULL;
    *branch_end = NULL;
    if (nh < 2)
        return 0;
    c.first_kid = malloc((n + 1) * sizeof(int));
    c.next_sib = malloc((n + 1) * sizeof(int));
    c.first_hop = malloc((n + 1) * sizeof(int));
    c.next_hop = malloc((nh + 1) * sizeof(int));
    c.end = malloc((n + 1) * sizeof(int64_t));
    c.state = calloc(n + 1, 1);
    group = malloc((nh + 1) * sizeof(int));
    f = calloc(nh + 1, sizeof(*f));
    *branch_end = malloc((nh + 1) * sizeof(int64_t));
    HT_ASSERT(c.first_kid && c.next_sib && c.first_hop && c.next_hop && c.end &&
              c.state && group && f && *branch_end);
    for (size_t i = 0; i < n; i++)
        c.first_kid[i] = c.next_sib[i] = c.first_hop[i] = -1;
    for (size_t i = n; i-- > 0;) {
        int p = r->spans[i].parent;

        if (p >= 0 && p != (int)i) {
            c.next_sib[i] = c.first_kid[p];
            c.first_kid[p] = (int)i;
        }
    }
    for (size_t h = nh; h-- > 0;) {
        int from = r->hops[h].from;

        c.next_hop[h] = -1;
        if (from >= 0) {
            c.next_hop[h] = c.first_hop[from];
            c.first_hop[from] = (int)h;
        }
    }
    /* the span holding the sends: the write itself when it started
     * several hops, else its parent (a loop of single sends) */
    for (size_t h = 0; h < nh; h++) {
        int from = r->hops[h].from, holder = from, same = 0;

        group[h] = -1;
        if (from < 0 || r->hops[h].to < 0 || r->hops[h].via == HT_VIA_LAMBDA)
            continue;
        for (size_t k = 0; k < nh; k++)
            same += r->hops[k].from == from;
        if (same < 2 && r->spans[from].parent >= 0)
            holder = r->spans[from].parent;
        for (size_t g = 0; g < nf; g++)
            if (f[g].producer == holder && f[g].via == r->hops[h].via &&
                strcmp(f[g].resource, r->hops[h].resource) == 0)
                group[h] = (int)g;
        if (group[h] < 0) {
            f[nf].producer = holder;
            f[nf].via = r->hops[h].via;
            f[nf].resource = r->hops[h].resource;
            f[nf].hops = malloc((nh + 1) * sizeof(int));
            HT_ASSERT(f[nf].hops);
            group[h] = (int)nf++;
        }
        f[group[h]].hops[f[group[h]].width++] = (int)h;
    }
    for (size_t h = 0; h < nh; h++)
        (*branch_end)[h] =
            r->hops[h].to >= 0 ? subtree_end(&c, r->hops[h].to, 0) : INT64_MIN;
    /* keep the groups of two or more branches */
    size_t kept = 0;

    for (size_t g = 0; g < nf; g++) {
        if (f[g].width < 2) {
            free(f[g].hops);
            continue;
        }
        f[g].critical = f[g].hops[0];
        for (int k = 1; k < f[g].width; k++)
            if ((*branch_end)[f[g].hops[k]] > (*branch_end)[f[g].critical])
                f[g].critical = f[g].hops[k];
        f[kept++] = f[g];
    }
    free(c.first_kid);
    free(c.next_sib);
    free(c.first_hop);
    free(c.next_hop);
    free(c.end);
    free(c.state);
    free(group);
    if (!kept) {
        free(f);
        free(*branch_end);
        *branch_end = NULL;
        return 0;
    }
    *out = f;
    return kept;
}

static void fanout_free(struct fanout *f, size_t n, int64_t *branch_end)
{
    for (size_t i = 0; i < n; i++)
        free(f[i].hops);
    free(f);
    free(branch_end);
}

static void fanout_json(struct ht_buf *b, const struct ht_request *r)
{
    struct fanout *f;
    int64_t *be;
    size_t n = fanouts(r, &f, &be);
    char id[17];

    ht_buf_adds(b, ",\"fan_out\":[");
    for (size_t i = 0; i < n; i++) {
        const struct ht_qspan *p = &r->spans[f[i].producer];
        const struct ht_qhop *ch = &r->hops[f[i].critical];

        if (i)
            ht_buf_addc(b, ',');
        hex8(&p->s.id, id);
        ht_buf_adds(b, "{");
        ht_buf_json_key(b, "span");
        ht_buf_json_str(b, id);
        ht_buf_addc(b, ',');
        ht_buf_json_key(b, "name");
        ht_buf_json_str(b, p->s.name);
        ht_buf_addc(b, ',');
        ht_buf_json_key(b, "service");
        ht_buf_json_str_or_null(b, p->service);
        ht_buf_addc(b, ',');
        ht_buf_json_key(b, "via");
        ht_buf_json_str(b, ht_via_name(f[i].via));
        ht_buf_addc(b, ',');
        ht_buf_json_key(b, "resource");
        ht_buf_json_str(b, f[i].resource);
        ht_buf_printf(b, ",\"width\":%d,", f[i].width);
        ht_buf_json_key(b, "critical");
        hex8(&r->spans[ch->to].s.id, id);
        ht_buf_json_str(b, id);
        ht_buf_adds(b, ",\"branches\":[");
        for (int k = 0; k < f[i].width; k++) {
            const struct ht_qhop *h = &r->hops[f[i].hops[k]];

            if (k)
                ht_buf_addc(b, ',');
            hex8(&r->spans[h->to].s.id, id);
            ht_buf_adds(b, "{");
            ht_buf_json_key(b, "to");
            ht_buf_json_str(b, id);
            ht_buf_adds(b, ",\"wait_ms\":");
            jms(b, h->wait_ms);
            ht_buf_printf(b, ",\"end_us\":%lld,\"critical\":%s}",
                          (long long)be[f[i].hops[k]],
                          f[i].hops[k] == f[i].critical ? "true" : "false");
        }
        ht_buf_adds(b, "]}");
    }
    ht_buf_addc(b, ']');
    fanout_free(f, n, be);
}

static const char *esc(struct ht_arena *a, const char *s);

static void fanout_text(struct ht_buf *b, const struct ht_request *r,
                        struct ht_arena *a)
{
    struct fanout *f;
    int64_t *be;
    size_t n = fanouts(r, &f, &be);

    if (n)
        ht_buf_adds(b, "\nfan-out\n");
    for (size_t i = 0; i < n; i++) {
        const struct ht_qspan *p = &r->spans[f[i].producer];
        const struct ht_qhop *ch = &r->hops[f[i].critical];
        int64_t first = INT64_MAX;

        for (int k = 0; k < f[i].width; k++)
            if (be[f[i].hops[k]] < first)
                first = be[f[i].hops[k]];
        ht_buf_printf(b,
                      "  %s %s -> %s %s: %d branches; critical: %s, "
                      "done at +%.3f ms (waited %.3f ms), %.3f ms after the "
                      "first branch\n",
                      p->service ? esc(a, p->service) : "?",
                      esc(a, p->s.operation ? p->s.operation : p->s.name),
                      ht_via_name(f[i].via), esc(a, f[i].resource), f[i].width,
                      esc(a, r->spans[ch->to].s.name),
                      (double)(be[f[i].critical] - r->start_us) / 1000.0,
                      ch->wait_ms,
                      (double)(be[f[i].critical] - first) / 1000.0);
    }
    fanout_free(f, n, be);
}

static void request_json(struct ht_buf *b, const struct ht_request *r)
{
    char id[17];

    ht_buf_adds(b, "{");
    ht_buf_json_key(b, "root");
    hex8(&r->spans[r->root].s.id, id);
    ht_buf_json_str(b, id);
    ht_buf_adds(b, ",\"trace_ids\":[");
    for (size_t i = 0; i < r->ntrace_ids; i++) {
        if (i)
            ht_buf_addc(b, ',');
        ht_buf_json_str(b, r->trace_ids[i]);
    }
    ht_buf_adds(b, "],\"correlation_ids\":[");
    for (size_t i = 0; i < r->ncorr_ids; i++) {
        if (i)
            ht_buf_addc(b, ',');
        ht_buf_json_str(b, r->corr_ids[i]);
    }
    ht_buf_printf(b, "],\"start_us\":%lld,\"end_us\":%lld,\"duration_ms\":",
                  (long long)r->start_us, (long long)r->end_us);
    jms(b, (double)(r->end_us - r->start_us) / 1000.0);
    ht_buf_adds(b, ",\"spans\":[");
    for (size_t i = 0; i < r->nspans; i++) {
        if (i)
            ht_buf_addc(b, ',');
        span_json(b, r, &r->spans[i]);
    }
    ht_buf_adds(b, "],\"hops\":[");
    for (size_t i = 0; i < r->nhops; i++) {
        const struct ht_qhop *h = &r->hops[i];

        if (i)
            ht_buf_addc(b, ',');
        ht_buf_adds(b, "{");
        ht_buf_json_key(b, "from");
        if (h->from >= 0) {
            hex8(&r->spans[h->from].s.id, id);
            ht_buf_json_str(b, id);
        } else {
            ht_buf_adds(b, "null");
        }
        ht_buf_addc(b, ',');
        ht_buf_json_key(b, "to");
        if (h->to >= 0) {
            hex8(&r->spans[h->to].s.id, id);
            ht_buf_json_str(b, id);
        } else {
            ht_buf_adds(b, "null");
        }
        ht_buf_addc(b, ',');
        ht_buf_json_key(b, "via");
        ht_buf_json_str(b, ht_via_name(h->via));
        ht_buf_addc(b, ',');
        ht_buf_json_key(b, "resource");
        ht_buf_json_str(b, h->resource);
        ht_buf_adds(b, ",\"wait_ms\":");
        jms(b, h->wait_ms);
        ht_buf_addc(b, ',');
        ht_buf_json_key(b, "evidence");
        ht_buf_json_str(b, h->evidence);
        ht_buf_adds(b,
                    h->pending ? ",\"pending\":true}" : ",\"pending\":false}");
    }
    ht_buf_adds(b, "],\"critical_path\":[");
    for (size_t i = 0; i < r->ncp; i++) {
        const struct ht_cp_entry *e = &r->cp[i];
        const struct ht_qspan *s = &r->spans[e->span];

        if (i)
            ht_buf_addc(b, ',');
        hex8(&s->s.id, id);
        ht_buf_adds(b, "{");
        ht_buf_json_key(b, "span");
        ht_buf_json_str(b, id);
        ht_buf_addc(b, ',');
        ht_buf_json_key(b, "name");
        ht_buf_json_str(b, s->s.name);
        ht_buf_addc(b, ',');
        ht_buf_json_key(b, "service");
        ht_buf_json_str_or_null(b, s->service);
        ht_buf_addc(b, ',');
        ht_buf_json_key(b, "kind");
        ht_buf_json_str(b, cp_kinds[e->kind]);
        if (e->kind == HT_CP_WAIT && e->hop >= 0) {
            ht_buf_addc(b, ',');
            ht_buf_json_key(b, "via");
            ht_buf_json_str(b, ht_via_name(r->hops[e->hop].via));
            ht_buf_addc(b, ',');
            ht_buf_json_key(b, "resource");
            ht_buf_json_str(b, r->hops[e->hop].resource);
        }
        ht_buf_adds(b, ",\"start_us\":");
        jint(b, (long long)e->start_us);
        ht_buf_adds(b, ",\"duration_ms\":");
        jms(b, (double)e->dur_us / 1000.0);
        ht_buf_addc(b, '}');
    }
    ht_buf_addc(b, ']');
    fanout_json(b, r);
    ht_buf_adds(b, ",\"warnings\":[");
    for (size_t i = 0; i < r->nwarnings; i++) {
        if (i)
            ht_buf_addc(b, ',');
        ht_buf_adds(b, r->warnings[i]);
    }
    ht_buf_adds(b, "]}");
}

void ht_query_json(const struct ht_result *res, struct ht_buf *b)
{
    ht_buf_adds(b, "{\"query\":");
    ht_buf_json_str(b, res->query);
    ht_buf_adds(b, ",\"requests\":[");
    for (size_t i = 0; i < res->nrequests; i++) {
        if (i)
            ht_buf_addc(b, ',');
        request_json(b, &res->requests[i]);
    }
    ht_buf_adds(b, "]}\n");
}

/* ---- text ---------------------------------------------------------------- */

/* Strings from the data as text shows them: control characters (an
 * escape sequence in a service name, a newline in an id) are written as
 * \xNN so that they never act on the terminal. The copy, when one is
 * needed, lives in `a`. */
static const char *esc(struct ht_arena *a, const char *s)
{
    size_t n = 0, bad = 0;
    char *o, *p;

    if (!s)
        return ""; /* for printf's %s, which must not see NULL */
    for (; s[n]; n++)
        bad += (unsigned char)s[n] < 0x20 || (unsigned char)s[n] == 0x7f;
    if (!bad)
        return s;
    o = p = ht_arena_alloc(a, n + 3 * bad + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x20 || c == 0x7f) {
            snprintf(p, 5, "\\x%02x", c);
            p += 4;
        } else {
            *p++ = (char)c;
        }
    }
    *p = 0;
    return o;
}

static void fmt_time(int64_t us, char *out, size_t n)
{
    time_t secs = (time_t)(us / 1000000);
    struct tm tm;

    gmtime_r(&secs, &tm);
    char date[64];

    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, n, "%s.%06dZ", date, (int)(us % 1000000));
}

static void tree_line(struct ht_buf *b, const struct ht_request *r, int i,
                      int depth, const int *first_kid, const int *next_sib,
                      const int *hop_into, int guard, struct ht_arena *a)
{
    const struct ht_qspan *s = &r->spans[i];

    if (guard > 200)
        return;
    ht_buf_printf(b, "  %+10.3f ms  ",
                  (double)(s->s.start_us - r->start_us) / 1000.0);
    for (int d = 0; d < depth; d++)
        ht_buf_adds(b, "  ");
    if (hop_into[i] >= 0) {
        const struct ht_qhop *h = &r->hops[hop_into[i]];

        ht_buf_printf(b, "~> %s %s (waited %.3f ms, %s) ", ht_via_name(h->via),
                      esc(a, h->resource), h->wait_ms, h->evidence);
        /* a message two hops carried (SNS into SQS): the second leg too */
        for (size_t k = 0; h->inner && k < r->nhops; k++)
            if (r->hops[k].leg_of == hop_into[i] + 1)
                ht_buf_printf(b, "~> %s %s (waited %.3f ms) ",
                              ht_via_name(r->hops[k].via),
                              esc(a, r->hops[k].resource), r->hops[k].wait_ms);
    }
    ht_buf_printf(b, "%s  %.3f ms", esc(a, s->s.name),
                  (double)(s->s.end_us - s->s.start_us) / 1000.0);
    if (s->s.operation)
        ht_buf_printf(b, "  [%s%s%s]", esc(a, s->s.operation),
                      s->s.resource ? " " : "",
                      s->s.resource ? esc(a, s->s.resource) : "");
    if (s->cold && (s->s.kind == HT_SK_INIT || s->s.kind == HT_SK_FUNCTION))
        ht_buf_adds(b, "  cold");
    if (s->s.flags & (HT_SPAN_ERROR | HT_SPAN_FAULT | HT_SPAN_THROTTLE))
        ht_buf_adds(b, "  ERROR");
    if (s->shared)
        ht_buf_adds(b, "  (shared with other requests of the batch)");
    if (s->logs_only)
        ht_buf_adds(b, "  (from logs)");
    for (size_t h = 0; h < r->nhops; h++)
        if (r->hops[h].pending && r->hops[h].from == i) {
            ht_buf_printf(b, "  ~> PENDING %s %s: no consumer yet",
                          ht_via_name(r->hops[h].via),
                          esc(a, r->hops[h].resource));
            break;
        }
    ht_buf_addc(b, '\n');
    for (int k = first_kid[i]; k >= 0; k = next_sib[k])
        tree_line(b, r, k, depth + 1, first_kid, next_sib, hop_into, guard + 1,
                  a);
}

static void request_text(struct ht_buf *b, const struct ht_request *r,
                         size_t idx, size_t total, struct ht_arena *a)
{
    char t0[96];
    int n = (int)r->nspans;
    int *first_kid, *next_sib, *hop_into, *last;

    fmt_time(r->start_us, t0, sizeof(t0));
    if (total > 1)
        ht_buf_printf(b, "request %zu of %zu\n", idx + 1, total);
    ht_buf_printf(b, "request root %s  start %s  duration %.3f ms\n",
                  esc(a, r->spans[r->root].s.name), t0,
                  (double)(r->end_us - r->start_us) / 1000.0);
    if (r->ntrace_ids) {
        ht_buf_adds(b, "traces:");
        for (size_t i = 0; i < r->ntrace_ids; i++)
            ht_buf_printf(b, " %s", esc(a, r->trace_ids[i]));
        ht_buf_addc(b, '\n');
    }
    if (r->ncorr_ids) {
        ht_buf_adds(b, "correlation ids:");
        for (size_t i = 0; i < r->ncorr_ids; i++)
            ht_buf_printf(b, " %s", esc(a, r->corr_ids[i]));
        ht_buf_addc(b, '\n');
    }
    ht_buf_adds(b, "\ncritical path\n");
    ht_buf_printf(b, "  %-10s %-6s %-28s %-30s %10s %7s\n", "at (ms)", "kind",
                  "service", "span", "ms", "share");
    for (size_t i = 0; i < r->ncp; i++) {
        const struct ht_cp_entry *e = &r->cp[i];
        const struct ht_qspan *s = &r->spans[e->span];
        double total_ms = (double)(r->end_us - r->start_us) / 1000.0;
        char what[128];

        if (e->kind == HT_CP_WAIT && e->hop >= 0)
            snprintf(what, sizeof(what), "~ %s %s",
                     ht_via_name(r->hops[e->hop].via),
                     esc(a, r->hops[e->hop].resource));
        else
            snprintf(what, sizeof(what), "%s", esc(a, s->s.name));
        ht_buf_printf(
            b, "  %10.3f %-6s %-28.28s %-30.30s %10.3f %6.1f%%\n",
            (double)(e->start_us - r->start_us) / 1000.0, cp_kinds[e->kind],
            s->service ? esc(a, s->service) : "", what,
            (double)e->dur_us / 1000.0,
            total_ms > 0 ? 100.0 * (double)e->dur_us / 1000.0 / total_ms : 0.0);
    }
    {
        /* where the time went, by kind */
        int64_t by[4] = {0, 0, 0, 0};
        double span_us = (double)(r->end_us - r->start_us);

        for (size_t i = 0; i < r->ncp; i++)
            by[r->cp[i].kind] += r->cp[i].dur_us;
        if (span_us > 0)
            ht_buf_printf(
                b,
                "  = %.3f ms in functions and services (%.1f%%), %.3f ms in "
                "calls (%.1f%%), %.3f ms cold starts (%.1f%%), %.3f ms "
                "waiting in queues and streams (%.1f%%)\n",
                (double)by[HT_CP_SELF] / 1000.0,
                100.0 * (double)by[HT_CP_SELF] / span_us,
                (double)by[HT_CP_CALL] / 1000.0,
                100.0 * (double)by[HT_CP_CALL] / span_us,
                (double)by[HT_CP_INIT] / 1000.0,
                100.0 * (double)by[HT_CP_INIT] / span_us,
                (double)by[HT_CP_WAIT] / 1000.0,
                100.0 * (double)by[HT_CP_WAIT] / span_us);
    }
    if (r->nhops) {
        ht_buf_adds(b, "\nhops\n");
        for (size_t i = 0; i < r->nhops; i++) {
            const struct ht_qhop *h = &r->hops[i];
            const char *from = h->from >= 0 ? r->spans[h->from].service : NULL;

            if (h->pending) {
                ht_buf_printf(b,
                              "  %-8s %-24s PENDING: no consumer has received "
                              "it yet; waiting %.3f ms as of the newest event "
                              "in the store  (%s)  %s -> ?\n",
                              ht_via_name(h->via), esc(a, h->resource),
                              h->wait_ms, h->evidence,
                              from ? esc(a, from) : "?");
                continue;
            }
            ht_buf_printf(b, "  %-8s %-24s wait %10.3f ms  (%s)  %s -> %s\n",
                          ht_via_name(h->via), esc(a, h->resource), h->wait_ms,
                          h->evidence, from ? esc(a, from) : "?",
                          h->to >= 0 ? esc(a, r->spans[h->to].s.name) : "?");
        }
    }
    fanout_text(b, r, a);
    {
        int np = 0;

        for (size_t i = 0; i < r->nhops; i++)
            np += r->hops[i].pending;
        if (np)
            ht_buf_printf(b,
                          "\nSTUCK: %d write%s of this request %s not reached "
                          "a consumer yet: the request is not complete\n",
                          np, np == 1 ? "" : "s", np == 1 ? "has" : "have");
    }
    for (size_t i = 0; i < r->nwarnings; i++)
        ht_buf_printf(b, "warning: %s\n", esc(a, r->warnings[i]));

    first_kid = malloc(sizeof(int) * (size_t)(n + 1));
    next_sib = malloc(sizeof(int) * (size_t)(n + 1));
    hop_into = malloc(sizeof(int) * (size_t)(n + 1));
    last = malloc(sizeof(int) * (size_t)(n + 1));
    HT_ASSERT(first_kid && next_sib && hop_into && last);
    for (int i = 0; i < n; i++)
        first_kid[i] = next_sib[i] = hop_into[i] = last[i] = -1;
    for (size_t h = 0; h < r->nhops; h++)
        if (r->hops[h].to >= 0 && hop_into[r->hops[h].to] < 0)
            hop_into[r->hops[h].to] = (int)h;
    /* children in start order (spans are roughly in visit order) */
    for (int i = 0; i < n; i++) {
        int p = r->spans[i].parent;

        if (p < 0 && hop_into[i] >= 0)
            p = r->hops[hop_into[i]].from;
        if (p < 0 || p == i)
            continue;
        if (last[p] < 0)
            first_kid[p] = i;
        else
            next_sib[last[p]] = i;
        last[p] = i;
    }
    ht_buf_adds(b, "\ntimeline\n");
    tree_line(b, r, r->root, 0, first_kid, next_sib, hop_into, 0, a);
    ht_buf_addc(b, '\n');
    free(first_kid);
    free(next_sib);
    free(hop_into);
    free(last);
}

void ht_query_text(const struct ht_result *res, struct ht_buf *b)
{
    struct ht_arena *a = ht_arena_create();

    HT_ASSERT(a);
    if (res->nrequests > 1)
        ht_buf_printf(b,
                      "%s names %zu requests (a batch served them "
                      "together); most recent first\n\n",
                      esc(a, res->query), res->nrequests);
    for (size_t i = 0; i < res->nrequests; i++)
        request_text(b, &res->requests[i], i, res->nrequests, a);
    ht_arena_destroy(a);
}

/* ---- DOT ------------------------------------------------------------------
 */

static void dot_str(struct ht_buf *b, const char *s)
{
    ht_buf_addc(b, '"');
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\')
            ht_buf_addc(b, '\\');
        if (*s == '\n') {
            ht_buf_adds(b, "\\n");
            continue;
        }
        if ((unsigned char)*s < 0x20)
            continue;
        ht_buf_addc(b, *s);
    }
    ht_buf_addc(b, '"');
}

void ht_query_dot(const struct ht_result *res, struct ht_buf *b)
{
    ht_buf_adds(b, "digraph hoptrace {\n  rankdir=LR;\n  node [shape=box, "
                   "fontname=\"Helvetica\", fontsize=10];\n  edge "
                   "[fontname=\"Helvetica\", fontsize=9];\n");
    for (size_t ri = 0; ri < res->nrequests; ri++) {
        const struct ht_request *r = &res->requests[ri];
        bool *on_cp = calloc(r->nspans + 1, sizeof(bool));
        bool *hop_cp = calloc(r->nhops + 1, sizeof(bool));
        char id[17];

        HT_ASSERT(on_cp && hop_cp);
        /* only the critical path is bold: the spans its entries name and
         * the hops it waits on, not the spans that merely contain them */
        for (size_t i = 0; i < r->ncp; i++) {
            on_cp[r->cp[i].span] = true;
            if (r->cp[i].kind == HT_CP_WAIT && r->cp[i].hop >= 0 &&
                (size_t)r->cp[i].hop < r->nhops)
                hop_cp[r->cp[i].hop] = true;
        }
        ht_buf_printf(b, "  subgraph cluster_r%zu {\n    label=", ri);
        {
            char lbl[160];

            hex8(&r->spans[r->root].s.id, id);
            snprintf(lbl, sizeof(lbl), "request %s: %.3f ms", id,
                     (double)(r->end_us - r->start_us) / 1000.0);
            dot_str(b, lbl);
        }
        ht_buf_adds(b, ";\n");
        for (size_t i = 0; i < r->nspans; i++) {
            const struct ht_qspan *s = &r->spans[i];
            struct ht_buf l;

            ht_buf_init(&l);
            ht_buf_printf(&l, "%s\n%.3f ms", s->s.name,
                          (double)(s->s.end_us - s->s.start_us) / 1000.0);
            if (s->s.operation)
                ht_buf_printf(&l, "\n%s", s->s.operation);
            if (s->cold &&
                (s->s.kind == HT_SK_INIT || s->s.kind == HT_SK_FUNCTION))
                ht_buf_adds(&l, "\ncold start");
            if (s->s.flags & (HT_SPAN_ERROR | HT_SPAN_FAULT | HT_SPAN_THROTTLE))
                ht_buf_adds(&l, "\nERROR");
            if (s->shared)
                ht_buf_adds(&l, "\nshared");
            hex8(&s->s.id, id);
            ht_buf_printf(b, "    \"r%zu_%s\" [label=", ri, id);
            dot_str(b, l.data);
            if (s->cold && s->s.kind == HT_SK_INIT)
                ht_buf_adds(b, on_cp[i]
                                   ? ", fillcolor=lightblue, "
                                     "style=\"filled,bold\", penwidth=2.5"
                                   : ", fillcolor=lightblue, style=filled");
            else if (on_cp[i])
                ht_buf_adds(b, ", style=bold, penwidth=2.5");
            if (s->s.flags & (HT_SPAN_ERROR | HT_SPAN_FAULT | HT_SPAN_THROTTLE))
                ht_buf_adds(b, ", color=red");
            ht_buf_adds(b, "];\n");
            ht_buf_free(&l);
        }
        for (size_t i = 0; i < r->nspans; i++) {
            char pid[17];
            int p = r->spans[i].parent;

            if (p < 0)
                continue;
            hex8(&r->spans[i].s.id, id);
            hex8(&r->spans[p].s.id, pid);
            ht_buf_printf(
                b, "    \"r%zu_%s\" -> \"r%zu_%s\"%s;\n", ri, pid, ri, id,
                on_cp[i] && on_cp[p] ? " [style=bold, penwidth=2.5]" : "");
        }
        for (size_t i = 0; i < r->nhops; i++) {
            const struct ht_qhop *h = &r->hops[i];
            char fid[17], tid[17], lbl[200];

            if (h->pending && h->from >= 0) {
                /* a stuck write: a node that says what it waits for */
                hex8(&r->spans[h->from].s.id, fid);
                snprintf(lbl, sizeof(lbl),
                         "PENDING %s %s\nno consumer yet\nwaiting %.3f ms",
                         ht_via_name(h->via), h->resource, h->wait_ms);
                ht_buf_printf(b,
                              "    \"r%zu_pending%zu\" [shape=note, color=red, "
                              "label=",
                              ri, i);
                dot_str(b, lbl);
                ht_buf_printf(b,
                              "];\n    \"r%zu_%s\" -> \"r%zu_pending%zu\" "
                              "[style=dashed, color=red];\n",
                              ri, fid, ri, i);
                continue;
            }
            if (h->from < 0 || h->to < 0)
                continue;
            hex8(&r->spans[h->from].s.id, fid);
            hex8(&r->spans[h->to].s.id, tid);
            snprintf(lbl, sizeof(lbl), "%s %s\nwait %.3f ms",
                     ht_via_name(h->via), h->resource, h->wait_ms);
            ht_buf_printf(
                b, "    \"r%zu_%s\" -> \"r%zu_%s\" [style=%s, label=", ri, fid,
                ri, tid,
                hop_cp[i] ? "\"dashed,bold\", penwidth=2.5" : "dashed");
            dot_str(b, lbl);
            ht_buf_adds(b, "];\n");
        }
        ht_buf_adds(b, "  }\n");
        free(on_cp);
        free(hop_cp);
    }
    ht_buf_adds(b, "}\n");
}
