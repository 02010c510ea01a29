/*
 * agg.c - the answers of `endpoints`, `hotspots` and `functions`: latency
 * per route, where a route's tail time goes, and what each function
 * costs, read from the request summaries and per-route per-minute
 * histograms in HT_DB_AGG (layout: store/ht_agg_records.h) and from the
 * invocation records.
 *
 * Owned by query/. It only reads, in read transactions: the summaries are
 * kept current on the ingest side (maint/, ht_agg_update), so an answer
 * is as current as the last update slice; ht_agg_pending tells how many
 * ingested traces are not counted yet.
 */
#define _GNU_SOURCE
#include "ht_agg_records.h"
#include "ht_query.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ht_agg_pending(struct ht_store *s, uint64_t *traces)
{
    struct ht_txn *t;
    int rc;

    *traces = 0;
    rc = ht_store_begin(s, false, &t);
    if (rc)
        return rc;
    rc = ht_store_count(t, HT_DB_DIRTY, traces);
    ht_store_abort(t);
    return rc;
}

/* ---- reading summaries in a window --------------------------------------- */

/* Scans keys `prefix` + BE64 time in [lo, hi]: the scan starts at the
 * bytes the two bounds share, which keeps a small window cheap. */
struct win_ctx {
    int64_t lo, hi;
    ht_store_visit_fn fn;
    void *ctx;
};

static int win_visit(void *ctx, const void *k, size_t kn, const void *v,
                     size_t vn)
{
    struct win_ctx *w = ctx;
    int64_t ts;

    if (kn < 9)
        return 0;
    ts = (int64_t)ht_be64_get((const uint8_t *)k + 1);
    if (ts > w->hi)
        return 1;
    if (ts < w->lo)
        return 0;
    return w->fn(w->ctx, k, kn, v, vn);
}

static int scan_window(struct ht_txn *t, char prefix, int64_t lo, int64_t hi,
                       ht_store_visit_fn fn, void *ctx)
{
    uint8_t p[9], a[8], b[8];
    size_t pn = 1;
    struct win_ctx w = {lo < 0 ? 0 : lo, hi, fn, ctx};

    if (hi < w.lo)
        return HT_ERR_OK;
    p[0] = (uint8_t)prefix;
    ht_be64_put(a, (uint64_t)w.lo);
    ht_be64_put(b, (uint64_t)hi);
    for (int i = 0; i < 8 && a[i] == b[i]; i++)
        p[pn++] = a[i];
    return ht_store_scan(t, HT_DB_AGG, p, pn, win_visit, &w);
}

/* ---- output helpers -------------------------------------------------- */

static void jms(struct ht_buf *b, double ms)
{
    ht_buf_printf(b, "%.3f", ms);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return x < y ? -1 : x > y;
}

/* Nearest rank: the smallest value with at least p % of the values at or
 * below it. */
static size_t rank_of(double p, size_t n)
{
    double r = ceil(p / 100.0 * (double)n - 1e-9);

    if (r < 1)
        r = 1;
    if (r > (double)n)
        r = (double)n;
    return (size_t)r;
}

static double pct_exact(const int64_t *v, size_t n, double p)
{
    return n ? (double)v[rank_of(p, n) - 1] : 0;
}

static double pct_hist(const int64_t *bins, int64_t n, double p)
{
    size_t want = rank_of(p, (size_t)n);
    int64_t cum = 0;

    for (uint32_t i = 0; i < HT_AGG_BINS; i++) {
        cum += bins[i];
        if (cum >= (int64_t)want)
            return ht_agg_bin_value(i);
    }
    return 0;
}

/* ---- route templates learned from logged events ----------------------- */

struct remap {
    char **keys; /* route key, NUL-separated, with its length */
    size_t *kn;
    char **tmpl;
    size_t n, cap;
};

static int remap_visit(void *ctx, const void *k, size_t kn, const void *v,
                       size_t vn)
{
    struct remap *m = ctx;

    if (kn < 2)
        return 0;
    if (m->n == m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 16;

        m->keys = realloc(m->keys, nc * sizeof(*m->keys));
        m->kn = realloc(m->kn, nc * sizeof(*m->kn));
        m->tmpl = realloc(m->tmpl, nc * sizeof(*m->tmpl));
        HT_ASSERT(m->keys && m->kn && m->tmpl);
        m->cap = nc;
    }
    m->keys[m->n] = malloc(kn);
    m->tmpl[m->n] = strndup(v, vn);
    HT_ASSERT(m->keys[m->n] && m->tmpl[m->n]);
    memcpy(m->keys[m->n], (const char *)k + 1, kn - 1);
    m->kn[m->n] = kn - 1;
    m->n++;
    return 0;
}

static void remap_load(struct ht_txn *t, struct remap *m)
{
    memset(m, 0, sizeof(*m));
    ht_store_scan(t, HT_DB_AGG, &(uint8_t){HT_AGG_K_TEMPLATE}, 1, remap_visit,
                  m);
}

static void remap_free(struct remap *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->keys[i]);
        free(m->tmpl[i]);
    }
    free(m->keys);
    free(m->kn);
    free(m->tmpl);
}

/* The template a URL route stands for, or the route itself. Keys are in
 * LMDB order, so a binary search finds them. */
static const char *remap_route(const struct remap *m, const char *api,
                               const char *stage, const char *route)
{
    uint8_t key[HT_KEY_MAX];
    size_t kn = ht_agg_route_key(api, stage, route, key, sizeof(key));
    size_t lo = 0, hi = m->n;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2, n = m->kn[mid] < kn ? m->kn[mid] : kn;
        int c = memcmp(m->keys[mid], key, n);

        if (!c)
            c = m->kn[mid] < kn ? -1 : (m->kn[mid] > kn);
        if (!c)
            return m->tmpl[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return route;
}

/* ---- endpoints --------------------------------------------------------- */

struct route {
    const char *api, *stage, *route;
    int64_t count, errors, faults, throttles, incomplete;
    /* exact */
    int64_t *sync, *e2e;
    size_t nsync, ne2e, capsync, cape2e;
    /* histogram */
    int64_t *hsync, *he2e;
    int64_t nhsync, nhe2e;
};

struct routes {
    struct route *r;
    size_t n, cap;
    struct ht_arena *a;
};

static struct route *route_get(struct routes *rs, const char *api,
                               const char *stage, const char *route)
{
    for (size_t i = 0; i < rs->n; i++)
        if (strcmp(rs->r[i].route, route) == 0 &&
            strcmp(rs->r[i].api, api) == 0 &&
            strcmp(rs->r[i].stage, stage) == 0)
            return &rs->r[i];
    if (rs->n == rs->cap) {
        size_t nc = rs->cap ? rs->cap * 2 : 16;
        struct route *nr = realloc(rs->r, nc * sizeof(*nr));

        HT_ASSERT(nr);
        rs->r = nr;
        rs->cap = nc;
    }
    struct route *r = &rs->r[rs->n++];

    memset(r, 0, sizeof(*r));
    r->api = ht_arena_strdup(rs->a, api);
    r->stage = ht_arena_strdup(rs->a, stage);
    r->route = ht_arena_strdup(rs->a, route);
    return r;
}

static void push_i64(int64_t **v, size_t *n, size_t *cap, int64_t x)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        int64_t *nv = realloc(*v, nc * sizeof(*nv));

        HT_ASSERT(nv);
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = x;
}

static void routes_free(struct routes *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        free(rs->r[i].sync);
        free(rs->r[i].e2e);
        free(rs->r[i].hsync);
        free(rs->r[i].he2e);
    }
    free(rs->r);
    ht_arena_destroy(rs->a);
}

struct ex_ctx {
    struct ht_txn *t;
    struct routes *rs;
    struct ht_arena *tmp;
    struct remap rm;
};

static int exact_visit(void *ctx, const void *k, size_t kn, const void *v,
                       size_t vn)
{
    struct ex_ctx *c = ctx;
    uint8_t key[9] = {HT_AGG_K_SUMMARY};
    const void *sv;
    size_t sn;
    struct ht_agg_summary s;
    struct route *r;

    (void)v;
    (void)vn;
    if (kn != 17)
        return 0;
    memcpy(key + 1, (const uint8_t *)k + 9, 8);
    if (ht_store_get(c->t, HT_DB_AGG, key, 9, &sv, &sn) != HT_ERR_OK ||
        ht_agg_summary_unpack(sv, sn, c->tmp, &s) != HT_ERR_OK)
        return 0;
    r = route_get(c->rs, s.api, s.stage,
                  remap_route(&c->rm, s.api, s.stage, s.route));
    r->count++;
    r->errors += (s.flags & HT_AGG_S_ERROR) != 0;
    r->faults += (s.flags & HT_AGG_S_FAULT) != 0;
    r->throttles += (s.flags & HT_AGG_S_THROTTLE) != 0;
    push_i64(&r->sync, &r->nsync, &r->capsync, s.sync_us);
    if (s.flags & HT_AGG_S_PENDING)
        r->incomplete++;
    else
        push_i64(&r->e2e, &r->ne2e, &r->cape2e, s.e2e_us);
    ht_arena_reset(c->tmp);
    return 0;
}

static int hist_visit(void *ctx, const void *k, size_t kn, const void *v,
                      size_t vn)
{
    struct ex_ctx *c = ctx;
    const char *api = (const char *)k + 9, *stage, *route;
    char *copy;
    size_t rest = kn - 9;
    struct ht_agg_hrec h;
    struct route *r;

    copy = ht_arena_alloc(c->tmp, rest + 1);
    memcpy(copy, api, rest);
    copy[rest] = 0;
    api = copy;
    stage = memchr(copy, 0, rest) ? api + strlen(api) + 1 : NULL;
    if (!stage || stage >= copy + rest)
        return 0;
    route = stage + strlen(stage) + 1;
    if (route > copy + rest)
        return 0;
    ht_agg_hrec_unpack(v, vn, &h);
    r = route_get(c->rs, api, stage, remap_route(&c->rm, api, stage, route));
    if (!r->hsync) {
        r->hsync = calloc(HT_AGG_BINS, sizeof(int64_t));
        r->he2e = calloc(HT_AGG_BINS, sizeof(int64_t));
        HT_ASSERT(r->hsync && r->he2e);
    }
    r->count += h.count;
    r->errors += h.errors;
    r->faults += h.faults;
    r->throttles += h.throttles;
    r->incomplete += h.incomplete;
    for (uint32_t i = 0; i < h.sync.n; i++) {
        r->hsync[h.sync.idx[i]] += h.sync.cnt[i];
        r->nhsync += h.sync.cnt[i];
    }
    for (uint32_t i = 0; i < h.e2e.n; i++) {
        r->he2e[h.e2e.idx[i]] += h.e2e.cnt[i];
        r->nhe2e += h.e2e.cnt[i];
    }
    ht_agg_hrec_free(&h);
    ht_arena_reset(c->tmp);
    return 0;
}

static int cmp_route(const void *a, const void *b)
{
    const struct route *x = a, *y = b;
    int c;

    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    if ((c = strcmp(x->route, y->route)))
        return c;
    if ((c = strcmp(x->api, y->api)))
        return c;
    return strcmp(x->stage, y->stage);
}

struct q4 {
    double p50, p90, p99, max;
    bool any;
};

static struct q4 route_q(struct route *r, bool e2e, bool exact)
{
    struct q4 q = {0};

    if (exact) {
        int64_t *v = e2e ? r->e2e : r->sync;
        size_t n = e2e ? r->ne2e : r->nsync;

        if (!n)
            return q;
        qsort(v, n, sizeof(*v), cmp_i64);
        q.p50 = pct_exact(v, n, 50) / 1000.0;
        q.p90 = pct_exact(v, n, 90) / 1000.0;
        q.p99 = pct_exact(v, n, 99) / 1000.0;
        q.max = (double)v[n - 1] / 1000.0;
    } else {
        int64_t *bins = e2e ? r->he2e : r->hsync;
        int64_t n = e2e ? r->nhe2e : r->nhsync;

        if (n <= 0 || !bins)
            return q;
        q.p50 = pct_hist(bins, n, 50) / 1000.0;
        q.p90 = pct_hist(bins, n, 90) / 1000.0;
        q.p99 = pct_hist(bins, n, 99) / 1000.0;
        q.max = pct_hist(bins, n, 100) / 1000.0;
    }
    q.any = true;
    return q;
}

static void q4_json(struct ht_buf *b, const char *name, struct q4 q)
{
    ht_buf_printf(b, ",\"%s\":", name);
    if (!q.any) {
        ht_buf_adds(b, "{\"p50\":null,\"p90\":null,\"p99\":null,\"max\":null}");
        return;
    }
    ht_buf_adds(b, "{\"p50\":");
    jms(b, q.p50);
    ht_buf_adds(b, ",\"p90\":");
    jms(b, q.p90);
    ht_buf_adds(b, ",\"p99\":");
    jms(b, q.p99);
    ht_buf_adds(b, ",\"max\":");
    jms(b, q.max);
    ht_buf_addc(b, '}');
}

static void q4_text(struct ht_buf *b, struct q4 q)
{
    if (!q.any)
        ht_buf_printf(b, "  %9s %9s %9s %9s", "-", "-", "-", "-");
    else
        ht_buf_printf(b, "  %9.1f %9.1f %9.1f %9.1f", q.p50, q.p90, q.p99,
                      q.max);
}

int ht_agg_endpoints(struct ht_store *s, const struct ht_agg_opts *o,
                     struct ht_buf *out)
{
    struct routes rs = {0};
    struct ex_ctx c;
    struct ht_txn *t;
    int rc;

    rs.a = ht_arena_create();
    c.tmp = ht_arena_create();
    if (!rs.a || !c.tmp) {
        ht_arena_destroy(rs.a);
        ht_arena_destroy(c.tmp);
        return HT_ERR_NOMEM;
    }
    c.rs = &rs;
    memset(&c.rm, 0, sizeof(c.rm));
    rc = ht_store_begin(s, false, &t);
    if (rc)
        goto done;
    c.t = t;
    remap_load(t, &c.rm);
    if (o->exact)
        rc = scan_window(t, HT_AGG_K_WINDOW, o->since_us, o->until_us,
                         exact_visit, &c);
    else
        rc = scan_window(t, HT_AGG_K_HIST,
                         o->since_us <= 0 ? 0 : o->since_us / HT_AGG_BUCKET_US,
                         o->until_us == INT64_MAX
                             ? INT64_MAX
                             : o->until_us / HT_AGG_BUCKET_US,
                         hist_visit, &c);
    ht_store_abort(t);
    if (rc)
        goto done;
    if (rs.n)
        qsort(rs.r, rs.n, sizeof(*rs.r), cmp_route);
    if (o->format == HT_AGG_JSON) {
        ht_buf_adds(out, "{\"routes\":[");
        for (size_t i = 0; i < rs.n; i++) {
            struct route *r = &rs.r[i];

            if (i)
                ht_buf_addc(out, ',');
            ht_buf_adds(out, "{\"route\":");
            ht_buf_json_str(out, r->route);
            ht_buf_adds(out, ",\"api\":");
            ht_buf_json_str(out, r->api);
            ht_buf_adds(out, ",\"stage\":");
            ht_buf_json_str(out, r->stage);
            ht_buf_printf(
                out,
                ",\"count\":%lld,\"errors\":%lld,\"faults\":%lld,"
                "\"throttles\":%lld,\"incomplete\":%lld,"
                "\"incomplete_share\":%.4f",
                (long long)r->count, (long long)r->errors, (long long)r->faults,
                (long long)r->throttles, (long long)r->incomplete,
                r->count ? (double)r->incomplete / (double)r->count : 0.0);
            q4_json(out, "sync_ms", route_q(r, false, o->exact));
            q4_json(out, "e2e_ms", route_q(r, true, o->exact));
            ht_buf_addc(out, '}');
        }
        ht_buf_printf(out, "],\"exact\":%s}\n", o->exact ? "true" : "false");
    } else {
        ht_buf_printf(out,
                      "%-40s %7s %5s %5s %5s %6s  %9s %9s %9s %9s  %9s %9s "
                      "%9s %9s\n",
                      "ROUTE", "COUNT", "ERR", "FAULT", "THR", "INCOMP",
                      "sync p50", "p90", "p99", "max", "e2e p50", "p90", "p99",
                      "max");
        for (size_t i = 0; i < rs.n; i++) {
            struct route *r = &rs.r[i];
            char name[512];

            if (*r->api || *r->stage)
                snprintf(name, sizeof(name), "%s (%s/%s)", r->route, r->api,
                         r->stage);
            else
                snprintf(name, sizeof(name), "%s", r->route);
            ht_buf_printf(out, "%-40s %7lld %5lld %5lld %5lld %6lld", name,
                          (long long)r->count, (long long)r->errors,
                          (long long)r->faults, (long long)r->throttles,
                          (long long)r->incomplete);
            q4_text(out, route_q(r, false, o->exact));
            q4_text(out, route_q(r, true, o->exact));
            ht_buf_addc(out, '\n');
        }
        if (!rs.n)
            ht_buf_adds(out, "(no requests in the window)\n");
        ht_buf_printf(out, "latencies in ms; %s\n",
                      o->exact ? "exact nearest-rank percentiles"
                               : "from histograms (within 0.2 %), use "
                                 "--exact for exact values");
    }
done:
    remap_free(&c.rm);
    routes_free(&rs);
    ht_arena_destroy(c.tmp);
    return rc;
}

/* ---- hotspots -------------------------------------------------------- */

struct hitem {
    uint8_t kind, via;
    const char *service, *resource;
    int64_t us;
};

struct hs_ctx {
    struct ht_txn *t;
    struct ht_arena *a;
    struct remap rm;
    const char *route;
    /* the route as endpoints' text prints it, "ROUTE (API/STAGE)": the
     * route, and the API and stage it must come from (NULL: any) */
    char base[512], api[256], stage[256];
    bool qualified;
    struct ht_agg_summary *s;
    size_t n, cap;
};

/* Splits "POST /orders (abc123/prod)" into route, API and stage. */
static void split_qualified(struct hs_ctx *c)
{
    const char *open = strrchr(c->route, '(');
    const char *slash;
    size_t n = strlen(c->route), bl;

    c->qualified = false;
    if (!open || open == c->route || open[-1] != ' ' || n < 2 ||
        c->route[n - 1] != ')')
        return;
    slash = strchr(open, '/');
    bl = (size_t)(open - 1 - c->route);
    if (!slash || bl >= sizeof(c->base) ||
        (size_t)(slash - open - 1) >= sizeof(c->api) ||
        (size_t)(c->route + n - 1 - slash - 1) >= sizeof(c->stage))
        return;
    memcpy(c->base, c->route, bl);
    c->base[bl] = 0;
    memcpy(c->api, open + 1, (size_t)(slash - open - 1));
    c->api[slash - open - 1] = 0;
    memcpy(c->stage, slash + 1, (size_t)(c->route + n - 1 - slash - 1));
    c->stage[c->route + n - 1 - slash - 1] = 0;
    c->qualified = true;
}

static bool hs_match(const struct hs_ctx *c, const struct ht_agg_summary *s,
                     const char *route)
{
    if (strcmp(route, c->route) == 0)
        return true;
    return c->qualified && strcmp(route, c->base) == 0 &&
           strcmp(s->api ? s->api : "", c->api) == 0 &&
           strcmp(s->stage ? s->stage : "", c->stage) == 0;
}

static int hs_visit(void *ctx, const void *k, size_t kn, const void *v,
                    size_t vn)
{
    struct hs_ctx *c = ctx;
    uint8_t key[9] = {HT_AGG_K_SUMMARY};
    const void *sv;
    size_t sn;
    struct ht_agg_summary s;

    (void)v;
    (void)vn;
    if (kn != 17)
        return 0;
    memcpy(key + 1, (const uint8_t *)k + 9, 8);
    if (ht_store_get(c->t, HT_DB_AGG, key, 9, &sv, &sn) != HT_ERR_OK ||
        ht_agg_summary_unpack(sv, sn, c->a, &s) != HT_ERR_OK ||
        !hs_match(c, &s, remap_route(&c->rm, s.api, s.stage, s.route)))
        return 0;
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 64;
        struct ht_agg_summary *ns = realloc(c->s, nc * sizeof(*ns));

        HT_ASSERT(ns);
        c->s = ns;
        c->cap = nc;
    }
    c->s[c->n++] = s;
    return 0;
}

static int cmp_hitem(const void *a, const void *b)
{
    const struct hitem *x = a, *y = b;
    int c;

    if (x->us != y->us)
        return x->us > y->us ? -1 : 1;
    if ((c = strcmp(x->service, y->service)))
        return c;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    return strcmp(x->resource, y->resource);
}

static const char *const cp_kind_names[] = {"self", "call", "init", "wait"};

/* Frames of folded output cannot hold ';' and end at the last space
 * before the value: both are replaced. */
static void folded_frame(struct ht_buf *b, const char *s)
{
    for (; *s; s++)
        ht_buf_addc(b, *s == ';' ? ',' : (*s == '\n' ? ' ' : *s));
}

int ht_agg_hotspots(struct ht_store *s, const char *route,
                    const struct ht_agg_opts *o, struct ht_buf *out)
{
    struct hs_ctx c = {0};
    struct ht_txn *t;
    int64_t *e2e = NULL, thr = 0, total = 0;
    size_t ne = 0, cape = 0, nreq = 0, nit = 0, capit = 0;
    struct hitem *it = NULL;
    int rc;

    c.a = ht_arena_create();
    if (!c.a)
        return HT_ERR_NOMEM;
    c.route = route;
    split_qualified(&c);
    rc = ht_store_begin(s, false, &t);
    if (rc)
        goto done;
    c.t = t;
    remap_load(t, &c.rm);
    rc =
        scan_window(t, HT_AGG_K_WINDOW, o->since_us, o->until_us, hs_visit, &c);
    ht_store_abort(t);
    if (rc)
        goto done;
    if (!c.n) {
        rc = HT_ERR_NOTFOUND;
        goto done;
    }
    for (size_t i = 0; i < c.n; i++)
        if (!(c.s[i].flags & HT_AGG_S_PENDING))
            push_i64(&e2e, &ne, &cape, c.s[i].e2e_us);
    if (o->percentile > 0) {
        if (!ne) {
            rc = HT_ERR_NOTFOUND;
            goto done;
        }
        qsort(e2e, ne, sizeof(*e2e), cmp_i64);
        thr = (int64_t)pct_exact(e2e, ne, o->percentile);
    }
    for (size_t i = 0; i < c.n; i++) {
        const struct ht_agg_summary *sm = &c.s[i];

        if (o->percentile > 0 &&
            ((sm->flags & HT_AGG_S_PENDING) || sm->e2e_us < thr))
            continue;
        nreq++;
        for (uint32_t j = 0; j < sm->nitems; j++) {
            const struct ht_agg_item *x = &sm->items[j];
            size_t k;

            for (k = 0; k < nit; k++)
                if (it[k].kind == x->kind && it[k].via == x->via &&
                    strcmp(it[k].service, x->service) == 0 &&
                    strcmp(it[k].resource, x->resource) == 0)
                    break;
            if (k == nit) {
                if (nit == capit) {
                    size_t nc = capit ? capit * 2 : 32;
                    struct hitem *ni = realloc(it, nc * sizeof(*ni));

                    HT_ASSERT(ni);
                    it = ni;
                    capit = nc;
                }
                it[nit++] =
                    (struct hitem){x->kind, x->via, x->service, x->resource, 0};
            }
            it[k].us += x->us;
            total += x->us;
        }
    }
    if (nit)
        qsort(it, nit, sizeof(*it), cmp_hitem);
    if (o->format == HT_AGG_JSON) {
        ht_buf_adds(out, "{\"route\":");
        ht_buf_json_str(out, route);
        ht_buf_printf(out, ",\"percentile\":%g,\"requests\":%zu", o->percentile,
                      nreq);
        ht_buf_adds(out, ",\"total_ms\":");
        jms(out, (double)total / 1000.0);
        if (o->percentile > 0) {
            ht_buf_adds(out, ",\"threshold_ms\":");
            jms(out, (double)thr / 1000.0);
        }
        ht_buf_adds(out, ",\"items\":[");
        for (size_t i = 0; i < nit; i++) {
            if (i)
                ht_buf_addc(out, ',');
            ht_buf_adds(out, "{\"service\":");
            ht_buf_json_str(out, it[i].service);
            ht_buf_adds(out, ",\"kind\":");
            ht_buf_json_str(out, cp_kind_names[it[i].kind & 3]);
            if (it[i].kind == HT_CP_WAIT) {
                ht_buf_adds(out, ",\"via\":");
                ht_buf_json_str(out, ht_via_name(it[i].via));
                ht_buf_adds(out, ",\"resource\":");
                ht_buf_json_str(out, it[i].resource);
            }
            ht_buf_adds(out, ",\"ms\":");
            jms(out, (double)it[i].us / 1000.0);
            ht_buf_printf(out, ",\"share\":%.4f}",
                          total ? (double)it[i].us / (double)total : 0.0);
        }
        ht_buf_adds(out, "]}\n");
    } else if (o->format == HT_AGG_FOLDED) {
        /* route;service;kind[ via:resource] value-in-µs */
        for (size_t i = 0; i < nit; i++) {
            folded_frame(out, route);
            ht_buf_addc(out, ';');
            folded_frame(out, it[i].service);
            ht_buf_addc(out, ';');
            ht_buf_adds(out, cp_kind_names[it[i].kind & 3]);
            if (it[i].kind == HT_CP_WAIT) {
                ht_buf_addc(out, ' ');
                ht_buf_adds(out, ht_via_name(it[i].via));
                ht_buf_addc(out, ':');
                folded_frame(out, it[i].resource);
            }
            ht_buf_printf(out, " %lld\n", (long long)it[i].us);
        }
    } else {
        ht_buf_printf(out, "%s: %zu requests", route, nreq);
        if (o->percentile > 0)
            ht_buf_printf(out, " at or above p%g (%.1f ms)", o->percentile,
                          (double)thr / 1000.0);
        ht_buf_printf(out, ", %.1f ms of critical path\n\n",
                      (double)total / 1000.0);
        ht_buf_printf(out, "%7s %12s  %-24s %-5s %s\n", "SHARE", "MS",
                      "SERVICE", "KIND", "HOP");
        for (size_t i = 0; i < nit; i++) {
            ht_buf_printf(out, "%6.2f%% %12.1f  %-24s %-5s",
                          total ? 100.0 * (double)it[i].us / (double)total
                                : 0.0,
                          (double)it[i].us / 1000.0, it[i].service,
                          cp_kind_names[it[i].kind & 3]);
            if (it[i].kind == HT_CP_WAIT)
                ht_buf_printf(out, " %s:%s", ht_via_name(it[i].via),
                              it[i].resource);
            ht_buf_addc(out, '\n');
        }
    }
done:
    remap_free(&c.rm);
    free(e2e);
    free(it);
    free(c.s);
    ht_arena_destroy(c.a);
    return rc;
}

/* ---- functions ----------------------------------------------------------- */

struct fn {
    const char *name;
    int64_t invocations, cold, billed_ms, failed;
    int64_t memory_mb;
    double gb_s;
    int64_t *init, *dur, *mem;
    size_t ninit, ndur, nmem, capinit, capdur, capmem;
};

struct fn_ctx {
    struct ht_txn *t;
    struct ht_arena *a, *tmp;
    const struct ht_agg_opts *o;
    struct fn *f;
    size_t n, cap;
};

struct seg_name {
    struct ht_txn *t;
    struct ht_arena *a;
    const char *name;
};

static int seg_name_visit(void *ctx, const void *k, size_t kn, const void *v,
                          size_t vn)
{
    struct seg_name *c = ctx;
    const void *sv;
    size_t sn;
    struct ht_span sp;

    (void)k;
    (void)kn;
    if (vn != 9 || ((const uint8_t *)v)[0] != HT_TARGET_SPAN)
        return 0;
    if (ht_store_get(c->t, HT_DB_NODES, (const uint8_t *)v + 1, 8, &sv, &sn) !=
            HT_ERR_OK ||
        ht_span_unpack(sv, sn, c->a, &sp) != HT_ERR_OK)
        return 0;
    if (sp.kind == HT_SK_LAMBDA && sp.name && *sp.name) {
        c->name = sp.name;
        return 1;
    }
    return 0;
}

/* The function of an invocation whose logs named none (plain Lambda logs
 * from `aws logs filter-log-events`, which carry no log group): the name
 * of the AWS::Lambda segment with the same request id, if X-Ray has it. */
static const char *function_from_segment(struct fn_ctx *c,
                                         const char *request_id)
{
    uint8_t key[HT_KEY_MAX];
    struct seg_name sn = {c->t, c->tmp, NULL};

    if (!request_id || !*request_id || strlen(request_id) > 255)
        return NULL;
    ht_store_dups(c->t, HT_DB_KEYS, key,
                  ht_key_make_id(key, HT_K_LAMBDA, request_id), seg_name_visit,
                  &sn);
    return sn.name;
}

static int fn_visit(void *ctx, const void *k, size_t kn, const void *v,
                    size_t vn)
{
    struct fn_ctx *c = ctx;
    struct ht_inv inv;
    struct fn *f = NULL;
    int64_t ts;

    (void)k;
    (void)kn;
    memset(&inv, 0, sizeof(inv));
    if (ht_inv_unpack(v, vn, c->tmp, &inv) != HT_ERR_OK)
        goto out;
    /* an invocation is what START or REPORT lines say ran; records and
     * access logs alone create bare entries that are not invocations */
    if (!(inv.flags & (HT_INV_HAS_START | HT_INV_HAS_REPORT)))
        goto out;
    if (!inv.function)
        inv.function = function_from_segment(c, inv.request_id);
    if (!inv.function)
        goto out;
    ts = inv.flags & HT_INV_HAS_START ? inv.start_ts
                                      : inv.report_ts - inv.duration_us;
    if (ts < c->o->since_us || ts > c->o->until_us)
        goto out;
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->f[i].name, inv.function) == 0)
            f = &c->f[i];
    if (!f) {
        if (c->n == c->cap) {
            size_t nc = c->cap ? c->cap * 2 : 16;
            struct fn *nf = realloc(c->f, nc * sizeof(*nf));

            HT_ASSERT(nf);
            c->f = nf;
            c->cap = nc;
        }
        f = &c->f[c->n++];
        memset(f, 0, sizeof(*f));
        f->name = ht_arena_strdup(c->a, inv.function);
    }
    f->invocations++;
    if (inv.flags & HT_INV_COLD) {
        f->cold++;
        if (inv.init_us > 0)
            push_i64(&f->init, &f->ninit, &f->capinit, inv.init_us);
    }
    if (inv.flags & HT_INV_FAILED)
        f->failed++;
    if (inv.flags & HT_INV_HAS_REPORT) {
        push_i64(&f->dur, &f->ndur, &f->capdur, inv.duration_us);
        f->billed_ms += inv.billed_ms;
        if (inv.memory_mb > f->memory_mb)
            f->memory_mb = inv.memory_mb;
        f->gb_s +=
            (double)inv.billed_ms / 1000.0 * (double)inv.memory_mb / 1024.0;
        if (inv.max_memory_mb > 0)
            push_i64(&f->mem, &f->nmem, &f->capmem, inv.max_memory_mb);
    }
out:
    ht_arena_reset(c->tmp);
    return 0;
}

static int cmp_fn(const void *a, const void *b)
{
    return strcmp(((const struct fn *)a)->name, ((const struct fn *)b)->name);
}

/* Configured memory far above what is used, or used up to its limit. */
#define OVER_PROVISIONED 0.3
#define UNDER_PROVISIONED 0.9

int ht_agg_functions(struct ht_store *s, const struct ht_agg_opts *o,
                     struct ht_buf *out)
{
    struct fn_ctx c = {0};
    struct ht_txn *t;
    int rc;

    c.a = ht_arena_create();
    c.tmp = ht_arena_create();
    c.o = o;
    if (!c.a || !c.tmp) {
        rc = HT_ERR_NOMEM;
        goto done;
    }
    rc = ht_store_begin(s, false, &t);
    if (rc)
        goto done;
    c.t = t;
    rc = ht_store_scan(t, HT_DB_INV, NULL, 0, fn_visit, &c);
    ht_store_abort(t);
    if (rc)
        goto done;
    if (c.n)
        qsort(c.f, c.n, sizeof(*c.f), cmp_fn);
    if (o->format == HT_AGG_JSON)
        ht_buf_adds(out, "{\"functions\":[");
    else
        ht_buf_printf(out,
                      "%-28s %7s %6s %9s %9s %9s %9s %10s %6s %9s %10s "
                      "%12s  %s\n",
                      "FUNCTION", "INVOC", "COLD", "init p50", "p99", "dur p50",
                      "p99", "BILLED ms", "MEM", "used p99", "GB-s", "COST USD",
                      "FLAGS");
    for (size_t i = 0; i < c.n; i++) {
        struct fn *f = &c.f[i];
        double ip50 = 0, ip99 = 0, dp50 = 0, dp99 = 0, mp50 = 0, mp99 = 0;
        double cost =
            f->gb_s * o->price_gb_s + (double)f->invocations * o->price_request;
        bool over, under;

        if (f->ninit) {
            qsort(f->init, f->ninit, sizeof(int64_t), cmp_i64);
            ip50 = pct_exact(f->init, f->ninit, 50) / 1000.0;
            ip99 = pct_exact(f->init, f->ninit, 99) / 1000.0;
        }
        if (f->ndur) {
            qsort(f->dur, f->ndur, sizeof(int64_t), cmp_i64);
            dp50 = pct_exact(f->dur, f->ndur, 50) / 1000.0;
            dp99 = pct_exact(f->dur, f->ndur, 99) / 1000.0;
        }
        if (f->nmem) {
            qsort(f->mem, f->nmem, sizeof(int64_t), cmp_i64);
            mp50 = pct_exact(f->mem, f->nmem, 50);
            mp99 = pct_exact(f->mem, f->nmem, 99);
        }
        over = f->memory_mb > 0 && f->nmem &&
               mp99 < OVER_PROVISIONED * (double)f->memory_mb;
        under = f->memory_mb > 0 && f->nmem &&
                mp99 >= UNDER_PROVISIONED * (double)f->memory_mb;
        if (o->format == HT_AGG_JSON) {
            if (i)
                ht_buf_addc(out, ',');
            ht_buf_adds(out, "{\"name\":");
            ht_buf_json_str(out, f->name);
            ht_buf_printf(
                out,
                ",\"invocations\":%lld,\"cold_starts\":%lld,"
                "\"cold_start_rate\":%.4f,\"failed\":%lld",
                (long long)f->invocations, (long long)f->cold,
                f->invocations ? (double)f->cold / (double)f->invocations : 0.0,
                (long long)f->failed);
            if (f->ninit) {
                ht_buf_adds(out, ",\"init_ms\":{\"p50\":");
                jms(out, ip50);
                ht_buf_adds(out, ",\"p99\":");
                jms(out, ip99);
                ht_buf_addc(out, '}');
            } else {
                ht_buf_adds(out, ",\"init_ms\":{\"p50\":null,\"p99\":null}");
            }
            if (f->ndur) {
                ht_buf_adds(out, ",\"duration_ms\":{\"p50\":");
                jms(out, dp50);
                ht_buf_adds(out, ",\"p99\":");
                jms(out, dp99);
                ht_buf_addc(out, '}');
            } else {
                ht_buf_adds(out,
                            ",\"duration_ms\":{\"p50\":null,\"p99\":null}");
            }
            ht_buf_printf(out, ",\"billed_ms\":%lld,\"memory_mb\":%lld",
                          (long long)f->billed_ms, (long long)f->memory_mb);
            if (f->nmem)
                ht_buf_printf(out,
                              ",\"max_memory_used_mb\":{\"p50\":%.0f,"
                              "\"p99\":%.0f}",
                              mp50, mp99);
            else
                ht_buf_adds(out, ",\"max_memory_used_mb\":{\"p50\":null,"
                                 "\"p99\":null}");
            ht_buf_printf(out,
                          ",\"gb_seconds\":%.6f,\"cost_usd\":%.10f,"
                          "\"over_provisioned\":%s,\"under_provisioned\":%s}",
                          f->gb_s, cost, over ? "true" : "false",
                          under ? "true" : "false");
        } else {
            char i50[32] = "-", i99[32] = "-";

            if (f->ninit) {
                snprintf(i50, sizeof(i50), "%.1f", ip50);
                snprintf(i99, sizeof(i99), "%.1f", ip99);
            }
            ht_buf_printf(
                out,
                "%-28s %7lld %6lld %9s %9s %9.1f %9.1f %10lld "
                "%6lld %9.0f %10.3f %12.8f  %s\n",
                f->name, (long long)f->invocations, (long long)f->cold, i50,
                i99, dp50, dp99, (long long)f->billed_ms,
                (long long)f->memory_mb, mp99, f->gb_s, cost,
                over ? "over-provisioned" : (under ? "under-provisioned" : ""));
        }
    }
    if (o->format == HT_AGG_JSON)
        ht_buf_printf(out, "],\"price_gb_s\":%.10g,\"price_request\":%.10g}\n",
                      o->price_gb_s, o->price_request);
    else if (!c.n)
        ht_buf_adds(out, "(no invocations in the window)\n");
done:
    for (size_t i = 0; i < c.n; i++) {
        free(c.f[i].init);
        free(c.f[i].dur);
        free(c.f[i].mem);
    }
    free(c.f);
    ht_arena_destroy(c.a);
    ht_arena_destroy(c.tmp);
    return rc;
}
