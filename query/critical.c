/*
 * critical.c - the critical path of one assembled request (design.md,
 * "Critical path"): contiguous intervals from the root's start to the
 * sink's end, each attributed to one span and one kind (self, call, init,
 * wait).
 *
 * CRISP style inside a span: walk back from the cursor, take the last
 * child that ends at or before it, recurse, continue before its start.
 * Across spans: from the sink, go to the sync parent or, for an invocation
 * reached by a hop, wait back to the producer call's end and continue in
 * the producer. Clock disagreements are clamped and reported as `skew`,
 * never shifted silently.
 *
 * Owned by query/. Pure computation over the request's arrays.
 */
#define _GNU_SOURCE
#include "ht_query.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cp {
    struct ht_request *r;
    struct ht_arena *a;
    int *kid_start, *kids; /* CSR children lists */
    struct ht_cp_entry *out;
    size_t n, cap;
    char skew_seen[64][40];
    int nskew;
    int64_t *eff;   /* effective start of each span (see eff_start) */
    uint8_t *effst; /* 0 unknown, 1 computing, 2 known */
    int *hop_in;    /* the hop the path takes into a span without parent */
};

static void emit(struct cp *c, int span, int kind, int hop, int64_t lo,
                 int64_t hi)
{
    if (hi <= lo)
        return;
    if (c->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 32;
        struct ht_cp_entry *ne = ht_arena_alloc(c->a, ncap * sizeof(*ne));

        if (c->n)
            memcpy(ne, c->out, c->n * sizeof(*ne));
        c->out = ne;
        c->cap = ncap;
    }
    c->out[c->n].span = span;
    c->out[c->n].kind = (uint8_t)kind;
    c->out[c->n].hop = hop;
    c->out[c->n].start_us = lo;
    c->out[c->n].dur_us = hi - lo;
    c->n++;
}

/* emit() for span x's own time: the first init_us of a logs-only
 * invocation is its cold start (REPORT's Init Duration), the rest `self`. */
static void emit_own(struct cp *c, int x, int who, int kind, int hop,
                     int64_t lo, int64_t hi)
{
    const struct ht_qspan *s = &c->r->spans[x];
    int64_t split;

    if (kind != HT_CP_SELF || s->init_us <= 0) {
        emit(c, who, kind, hop, lo, hi);
        return;
    }
    split = s->s.start_us + s->init_us;
    /* backward: the later piece first */
    emit(c, who, kind, hop, lo > split ? lo : split, hi);
    emit(c, who, HT_CP_INIT, hop, lo, hi < split ? hi : split);
}

static int kind_of(const struct ht_qspan *s)
{
    if (s->wait_hop >= 0)
        return HT_CP_WAIT;
    if (s->s.kind == HT_SK_INIT)
        return HT_CP_INIT;
    if (s->s.kind == HT_SK_CALL)
        return HT_CP_CALL;
    return HT_CP_SELF;
}

static void skew(struct cp *c, int a, int b, int64_t by_us)
{
    char ia[17], ib[17], key[40];
    struct ht_request *r = c->r;

    ht_id8_format(&r->spans[a].s.id, ia);
    ht_id8_format(&r->spans[b].s.id, ib);
    snprintf(key, sizeof(key), "%s%s", ia, ib);
    for (int i = 0; i < c->nskew; i++)
        if (strcmp(c->skew_seen[i], key) == 0)
            return;
    if (c->nskew < 64)
        strcpy(c->skew_seen[c->nskew++], key);
    {
        struct ht_buf w;

        ht_buf_init(&w);
        ht_buf_printf(&w,
                      "{\"type\":\"skew\",\"spans\":[\"%s\",\"%s\"],"
                      "\"names\":[",
                      ia, ib);
        ht_buf_json_str(&w, r->spans[a].s.name);
        ht_buf_addc(&w, ',');
        ht_buf_json_str(&w, r->spans[b].s.name);
        ht_buf_printf(&w, "],\"ms\":%.3f}", (double)by_us / 1000.0);
        ht__add_warning(c->a, r, ht_arena_strdup(c->a, w.data));
        ht_buf_free(&w);
    }
}

void ht__add_warning(struct ht_arena *a, struct ht_request *r, const char *json)
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

/*
 * Where span x starts on the path: its own start, but never before its
 * parent's (a child whose clock runs behind its parent's): clamping keeps
 * the path contiguous inside a trace; the disagreement is reported as
 * `skew`. A consumer reached by a hop keeps its host's clock (clamped to
 * its producer's end it could vanish from the path): where it started
 * before the producer's call ended, the wait is clamped to nothing and the
 * path resumes at the producer's end.
 */
static int64_t eff_start(struct cp *c, int x, int depth)
{
    const struct ht_request *r = c->r;
    int64_t st = r->spans[x].s.start_us, floor;
    int p = r->spans[x].parent;

    if (c->effst[x] == 2)
        return c->eff[x];
    if (c->effst[x] == 1 || depth > 4000 || p < 0)
        return st; /* a root, a loop or a chain too deep: its own start */
    c->effst[x] = 1;
    floor = eff_start(c, p, depth + 1);
    if (floor > st)
        st = floor;
    if (st > r->spans[x].s.end_us)
        st = r->spans[x].s.end_us;
    c->eff[x] = st;
    c->effst[x] = 2;
    return st;
}

/* Explain [lo, hi] inside span x, backward. `skip` is a child to ignore. */
static void explain(struct cp *c, int x, int64_t lo, int64_t hi, int skip,
                    int depth)
{
    struct ht_request *r = c->r;
    int64_t t = hi;
    int kind = kind_of(&r->spans[x]);
    int hop = r->spans[x].wait_hop;
    /* a queue wait inside a span (Dwell Time) is told as the wait of the
     * invocation it leads into */
    int who = hop >= 0 && r->hops[hop].to >= 0 ? r->hops[hop].to : x;
    const int *kids = c->kids + c->kid_start[x];
    int nk = c->kid_start[x + 1] - c->kid_start[x], i = 0;

    if (depth > 200 || hi <= lo) {
        emit_own(c, x, who, kind, hop, lo, hi);
        return;
    }
    /* children are sorted by end, latest first: the cursor only moves back,
     * so one pass finds each next "last child that ends before it" */
    for (;;) {
        while (i < nk && (kids[i] == skip || r->spans[kids[i]].s.end_us > t))
            i++;
        if (i >= nk || r->spans[kids[i]].s.end_us <= lo)
            break;
        int best = kids[i++];
        const struct ht_span *bs = &r->spans[best].s;
        int64_t cs = eff_start(c, best, 0);

        emit_own(c, x, who, kind, hop, bs->end_us, t);
        if (cs < lo)
            cs = lo;
        explain(c, best, cs, bs->end_us, -1, depth + 1);
        t = cs;
        if (t <= lo)
            break;
    }
    emit_own(c, x, who, kind, hop, lo, t);
}

static int cmp_kid(const void *a, const void *b, void *ctx)
{
    const struct ht_request *r = ctx;
    const struct ht_span *x = &r->spans[*(const int *)a].s;
    const struct ht_span *y = &r->spans[*(const int *)b].s;

    if (x->end_us != y->end_us)
        return x->end_us > y->end_us ? -1 : 1;
    if (x->start_us != y->start_us)
        return x->start_us > y->start_us ? -1 : 1;
    return *(const int *)a - *(const int *)b;
}

void ht__critical_path(struct ht_request *r, struct ht_arena *a)
{
    struct cp c;
    int n = (int)r->nspans;
    int sink = -1, x, guard = 0;
    int64_t cursor;
    int *fill;

    memset(&c, 0, sizeof(c));
    c.r = r;
    c.a = a;
    r->cp = NULL;
    r->ncp = 0;
    if (n == 0)
        return;
    c.kid_start = ht_arena_alloc(a, (size_t)(n + 1) * sizeof(int));
    c.kids = ht_arena_alloc(a, (size_t)(n + 1) * sizeof(int));
    fill = ht_arena_alloc(a, (size_t)(n + 1) * sizeof(int));
    memset(c.kid_start, 0, (size_t)(n + 1) * sizeof(int));
    for (int i = 0; i < n; i++)
        if (r->spans[i].parent >= 0)
            c.kid_start[r->spans[i].parent + 1]++;
    for (int i = 0; i < n; i++)
        c.kid_start[i + 1] += c.kid_start[i];
    memcpy(fill, c.kid_start, (size_t)(n + 1) * sizeof(int));
    for (int i = 0; i < n; i++)
        if (r->spans[i].parent >= 0)
            c.kids[fill[r->spans[i].parent]++] = i;
    for (int i = 0; i < n; i++)
        if (c.kid_start[i + 1] - c.kid_start[i] > 1)
            qsort_r(c.kids + c.kid_start[i],
                    (size_t)(c.kid_start[i + 1] - c.kid_start[i]), sizeof(int),
                    cmp_kid, r);

    for (int i = 0; i < n; i++) {
        const struct ht_span *s = &r->spans[i].s;

        if (sink < 0 || s->end_us > r->spans[sink].s.end_us ||
            (s->end_us == r->spans[sink].s.end_us &&
             s->start_us > r->spans[sink].s.start_us))
            sink = i;
    }
    c.eff = ht_arena_alloc(a, (size_t)(n + 1) * sizeof(int64_t));
    c.effst = ht_arena_alloc(a, (size_t)(n + 1));
    c.hop_in = ht_arena_alloc(a, (size_t)(n + 1) * sizeof(int));
    memset(c.effst, 0, (size_t)(n + 1));
    for (int i = 0; i < n; i++)
        c.hop_in[i] = -1;
    /* into a span without a sync parent, the path takes the hop whose
     * producer finished last */
    for (size_t h = 0; h < r->nhops; h++) {
        int f = r->hops[h].from, t = r->hops[h].to;

        if (f < 0 || t < 0 || f == t || r->spans[t].parent >= 0 ||
            r->hops[h].inner)
            continue;
        if (c.hop_in[t] < 0 ||
            r->spans[f].s.end_us > r->spans[r->hops[c.hop_in[t]].from].s.end_us)
            c.hop_in[t] = (int)h;
    }
    x = sink;
    cursor = r->spans[x].s.end_us;
    explain(&c, x, eff_start(&c, x, 0), cursor, -1, 0);
    cursor = eff_start(&c, x, 0);
    while (guard++ < 10000) {
        int p = r->spans[x].parent, hop = -1;
        int64_t lo;

        if (p < 0) {
            hop = c.hop_in[x];
            if (hop < 0)
                break;
            p = r->hops[hop].from;
            /* a consumer that started before the producer call ended:
             * the wait is clamped to nothing and the path resumes at the
             * call's end (not contiguous there; see eff_start) */
            if (r->hops[hop].leg_of > 0) {
                /* two legs: the later one from when the queue took the
                 * message, the earlier one up to then (clamped into the
                 * wait, so the path stays contiguous) */
                int64_t at = r->hops[hop].at_us, end = r->spans[p].s.end_us;

                if (at > cursor)
                    at = cursor;
                if (at < end)
                    at = end;
                emit(&c, x, HT_CP_WAIT, hop, at, cursor);
                emit(&c, x, HT_CP_WAIT, r->hops[hop].leg_of - 1, end, at);
            } else {
                emit(&c, x, HT_CP_WAIT, hop, r->spans[p].s.end_us, cursor);
            }
            cursor = r->spans[p].s.end_us;
            lo = eff_start(&c, p, 0);
            explain(&c, p, lo < cursor ? lo : cursor, cursor, -1, 0);
        } else {
            lo = eff_start(&c, p, 0);
            explain(&c, p, lo < cursor ? lo : cursor, cursor, x, 0);
        }
        if (lo < cursor)
            cursor = lo;
        x = p;
    }
    /* clocks that disagree: a child that starts before its parent, and
     * every hop whose consumer starts before its producer's call ends, on
     * the path or not (an async invoke's Lambda segment stays the call's
     * child and starts inside the call by design) */
    for (int i = 0; i < n; i++) {
        int p = r->spans[i].parent;

        if (p >= 0 && r->spans[i].s.start_us < r->spans[p].s.start_us)
            skew(&c, p, i, r->spans[p].s.start_us - r->spans[i].s.start_us);
    }
    for (size_t h = 0; h < r->nhops; h++) {
        int f = r->hops[h].from, t = r->hops[h].to;

        if (f < 0 || t < 0 || r->hops[h].pending || r->hops[h].inner ||
            r->spans[t].parent == f)
            continue;
        if (r->spans[t].s.start_us < r->spans[f].s.end_us)
            skew(&c, f, t, r->spans[f].s.end_us - r->spans[t].s.start_us);
    }
    /* backward → forward */
    for (size_t i = 0; i < c.n / 2; i++) {
        struct ht_cp_entry tmp = c.out[i];

        c.out[i] = c.out[c.n - 1 - i];
        c.out[c.n - 1 - i] = tmp;
    }
    /* merge adjacent pieces of the same span and kind */
    size_t m = 0;
    for (size_t i = 0; i < c.n; i++) {
        if (m && c.out[m - 1].span == c.out[i].span &&
            c.out[m - 1].kind == c.out[i].kind &&
            c.out[m - 1].hop == c.out[i].hop &&
            c.out[m - 1].start_us + c.out[m - 1].dur_us == c.out[i].start_us)
            c.out[m - 1].dur_us += c.out[i].dur_us;
        else
            c.out[m++] = c.out[i];
    }
    r->cp = c.out;
    r->ncp = m;
    {
        int64_t sum = 0;

        for (size_t i = 0; i < m; i++)
            sum += r->cp[i].dur_us;
        if (sum != r->end_us - r->start_us && c.nskew == 0) {
            /* a node outside the explained path started earlier or ended
             * later than the path: clocks disagree somewhere */
            int first = 0;

            for (int i = 0; i < n; i++)
                if (r->spans[i].s.start_us < r->spans[first].s.start_us)
                    first = i;
            skew(&c, first == r->root ? sink : r->root, first,
                 (r->end_us - r->start_us) - sum);
        }
    }
}
