/*
 * jaeger_search.c - the answers behind Jaeger's query API (serve/
 * jaeger_api.c parses the HTTP side): services and operations from the
 * catalogue ('V'), trace search over the request summaries newest first
 * ('W', 'S', 'J'), one trace by any id, and the service dependency graph
 * ('J' edges). Layouts: store/ht_agg_records.h; kept by maint/.
 *
 * Each function renders the `data` member of Jaeger's envelope (and tells
 * how many items it holds); the envelope itself is the caller's.
 *
 * Owned by query/. Read transactions only.
 */
#define _GNU_SOURCE
#include "ht_agg_records.h"
#include "ht_query.h"

#include <stdlib.h>
#include <string.h>

/* ---- services and operations --------------------------------------------
 */

struct cat_ctx {
    struct ht_arena *a;
    struct ht_buf *out;
    size_t n;
    const char *service; /* operations of this service; NULL: services */
    const char *kind;    /* NULL or "": every kind */
    bool names_only;     /* operations as names, each once */
    const char *last;    /* the last name written (keys come sorted) */
};

static int cat_visit(void *ctx, const void *k, size_t kn, const void *v,
                     size_t vn)
{
    struct cat_ctx *c = ctx;
    const char *svc, *op, *kind, *name;

    (void)v;
    (void)vn;
    if (!ht_agg_jcatalog_split(k, kn, c->a, &svc, &op, &kind))
        return 0;
    if (c->service) {
        if (strcmp(svc, c->service) != 0)
            return 0;
        if (c->kind && *c->kind && strcmp(kind, c->kind) != 0)
            return 0;
        name = op;
    } else {
        name = svc;
    }
    /* services, and operation names alone, come once each: a key's
     * strings end in NUL, the smallest byte, so every key of one service
     * (of one operation) comes before those of any longer name */
    if (!c->service || c->names_only) {
        if (c->last && strcmp(c->last, name) == 0)
            return 0;
        if (c->n)
            ht_buf_addc(c->out, ',');
        ht_buf_json_str(c->out, name);
        c->last = name;
        c->n++;
        return 0;
    }
    if (c->n)
        ht_buf_addc(c->out, ',');
    ht_buf_adds(c->out, "{\"name\":");
    ht_buf_json_str(c->out, op);
    ht_buf_adds(c->out, ",\"spanKind\":");
    ht_buf_json_str(c->out, kind);
    ht_buf_addc(c->out, '}');
    c->n++;
    return 0;
}

static int catalogue(struct ht_store *s, struct cat_ctx *c)
{
    struct ht_txn *t;
    uint8_t prefix[HT_KEY_MAX];
    size_t pn = 1;
    int rc = ht_store_begin(s, false, &t);

    if (rc)
        return rc;
    c->a = ht_arena_create();
    HT_ASSERT(c->a);
    prefix[0] = HT_AGG_K_JCATALOG;
    if (c->service) {
        size_t sl = strlen(c->service);

        if (sl + 2 > sizeof(prefix)) {
            ht_arena_destroy(c->a);
            ht_store_abort(t);
            ht_buf_adds(c->out, "[]"); /* no such service is catalogued */
            return HT_ERR_OK;
        }
        memcpy(prefix + 1, c->service, sl);
        prefix[1 + sl] = 0;
        pn = sl + 2;
    }
    ht_buf_addc(c->out, '[');
    rc = ht_store_scan(t, HT_DB_AGG, prefix, pn, cat_visit, c);
    ht_buf_addc(c->out, ']');
    ht_arena_destroy(c->a);
    ht_store_abort(t);
    return rc;
}

int ht_jaeger_services(struct ht_store *s, struct ht_buf *out, size_t *n)
{
    struct cat_ctx c = {.out = out};
    int rc = catalogue(s, &c);

    *n = c.n;
    return rc;
}

int ht_jaeger_operations(struct ht_store *s, const char *service,
                         const char *kind, bool names_only, struct ht_buf *out,
                         size_t *n)
{
    struct cat_ctx c = {
        .out = out, .service = service, .kind = kind, .names_only = names_only};
    int rc = catalogue(s, &c);

    *n = c.n;
    return rc;
}

/* ---- traces by id -------------------------------------------------------
 */

/* Appends the Jaeger traces of reqs (grouped by traceID, in their order)
 * to out, separated by commas after the `*count` already there. */
static void render_groups(struct ht_request **reqs, size_t n,
                          struct ht_buf *out, size_t *count)
{
    const struct ht_request **group = malloc((n + 1) * sizeof(*group));
    bool *done = calloc(n + 1, sizeof(bool));

    HT_ASSERT(group && done);
    for (size_t i = 0; i < n; i++) {
        char id[33], other[33];
        size_t ng = 0;

        if (done[i])
            continue;
        ht_jaeger_trace_id(reqs[i], id);
        for (size_t k = i; k < n; k++) {
            if (done[k])
                continue;
            ht_jaeger_trace_id(reqs[k], other);
            if (strcmp(id, other) == 0) {
                group[ng++] = reqs[k];
                done[k] = true;
            }
        }
        if (*count)
            ht_buf_addc(out, ',');
        ht_jaeger_trace_json(group, ng, out);
        (*count)++;
    }
    free(group);
    free(done);
}

/* The summary handle of root (an id that resolves to it), in a. */
static const char *root_handle(struct ht_txn *t, const struct ht_id8 *root,
                               struct ht_arena *a, struct ht_agg_summary *sum)
{
    uint8_t key[9];
    const void *v;
    size_t vn;

    ht_agg_key_summary(key, root);
    if (ht_store_get(t, HT_DB_AGG, key, 9, &v, &vn) != HT_ERR_OK ||
        ht_agg_summary_unpack(v, vn, a, sum) != HT_ERR_OK || !*sum->handle)
        return NULL;
    return sum->handle;
}

/* The requests a Jaeger trace id stands for (0 when none): those rooted
 * in the X-Ray trace it spells (else every request of that X-Ray trace),
 * or the one rooted at the span it names. reqs holds up to cap pointers
 * borrowed from the session. */
static size_t by_jaeger_id(struct ht_txn *t, struct ht_qsession *qs,
                           const char *id, struct ht_arena *a,
                           struct ht_request ***out)
{
    struct ht_tid tid;
    struct ht_id8 root;
    int kind = ht_jaeger_parse_id(id, &tid, &root);
    struct ht_request **reqs = ht_arena_alloc(a, sizeof(*reqs));
    size_t n = 0;

    *out = reqs;
    if (kind == 1) {
        struct ht_agg_summary sum;
        const char *h = root_handle(t, &root, a, &sum);
        char hex[17];
        struct ht_request *r;

        ht_id8_format(&root, hex);
        if ((h && ht_qsession_query_root(qs, h, &root, &r) == HT_ERR_OK) ||
            ht_qsession_query_root(qs, hex, &root, &r) == HT_ERR_OK)
            reqs[n++] = r;
    } else if (kind == 0) {
        char text[36];
        struct ht_request *rs;
        size_t nr;

        ht_tid_format(&tid, text);
        if (ht_qsession_query(qs, text, false, &rs, &nr) != HT_ERR_OK)
            nr = 0;
        /* every request of the trace: a trace id that thousands of roots
         * share is one Jaeger trace of all of them, as search gives it */
        reqs = ht_arena_alloc(a, (nr + 1) * sizeof(*reqs));
        *out = reqs;
        for (size_t i = 0; i < nr; i++) {
            const struct ht_request *r = &rs[i];

            if (r->nspans &&
                memcmp(r->spans[r->root].s.trace.b, tid.b, 16) == 0)
                reqs[n++] = &rs[i];
        }
        /* the X-Ray trace of a consumer, written the OpenTelemetry way:
         * the requests it belongs to, as `trace 1-…` gives them */
        if (!n) {
            n = nr;
            for (size_t i = 0; i < n; i++)
                reqs[i] = &rs[i];
        }
    }
    return n;
}

int ht_jaeger_get(struct ht_store *s, const char *id, struct ht_buf *out,
                  size_t *count)
{
    struct ht_txn *t;
    struct ht_qsession *qs;
    struct ht_arena *a;
    struct ht_request **found, **reqs;
    size_t n;
    int rc;

    *count = 0;
    if (!id || !*id)
        return HT_ERR_NOTFOUND;
    rc = ht_store_begin(s, false, &t);
    if (rc)
        return rc;
    rc = ht_qsession_open(t, &qs);
    if (rc) {
        ht_store_abort(t);
        return rc;
    }
    a = ht_arena_create();
    HT_ASSERT(a);
    /* a Jaeger trace id first (this API's own), then any id `trace`
     * accepts */
    n = by_jaeger_id(t, qs, id, a, &found);
    reqs = found;
    if (!n) {
        struct ht_request *rs;
        size_t nr;

        rc = ht_qsession_query(qs, id, false, &rs, &nr);
        if (rc == HT_ERR_OK && nr) {
            reqs = malloc(nr * sizeof(*reqs));
            HT_ASSERT(reqs);
            for (size_t i = 0; i < nr; i++)
                reqs[i] = &rs[i];
            n = nr;
        }
    }
    rc = HT_ERR_OK;
    ht_buf_addc(out, '[');
    if (n)
        render_groups(reqs, n, out, count);
    else
        rc = HT_ERR_NOTFOUND;
    ht_buf_addc(out, ']');
    if (reqs != found)
        free(reqs);
    ht_arena_destroy(a);
    ht_qsession_close(qs);
    ht_store_abort(t);
    return rc;
}

/* ---- search ---------------------------------------------------------------
 */

struct find_ctx {
    const struct ht_jaeger_query *q;
    struct ht_txn *t;
    struct ht_qsession *qs;
    struct ht_arena *a;
    struct ht_request **hits;
    size_t nhits, cap;
    char (*ids)[33]; /* traceIDs of hits, to count traces, not requests */
    size_t ntraces;
    size_t examined;
    int err;
};

static bool rec_matches(const struct ht_jaeger_rec *j,
                        const struct ht_jaeger_query *q)
{
    for (uint32_t i = 0; i < j->nops; i++) {
        if (strcmp(j->ops[i].service, q->service) != 0)
            continue;
        if (!q->operation || !*q->operation ||
            strcmp(j->ops[i].operation, q->operation) == 0)
            return true;
    }
    return false;
}

static int find_visit(void *ctx, const void *k, size_t kn, const void *v,
                      size_t vn)
{
    struct find_ctx *c = ctx;
    const struct ht_jaeger_query *q = c->q;
    const uint8_t *p = k;
    struct ht_id8 root;
    struct ht_agg_summary sum;
    struct ht_jaeger_rec rec;
    struct ht_request *r = NULL;
    uint8_t key[9];
    const void *jv;
    size_t jn;
    int64_t start;
    char id[33];
    bool have_rec;

    (void)v;
    (void)vn;
    if (kn != 17)
        return 0;
    start = (int64_t)ht_be64_get(p + 1);
    if (start < q->start_us)
        return 1; /* newest first: nothing later is in the window */
    if (start > q->end_us)
        return 0;
    if (++c->examined > HT_JAEGER_MAX_EXAMINED)
        return 1;
    memcpy(root.b, p + 9, 8);
    ht_arena_reset(c->a);
    if (!root_handle(c->t, &root, c->a, &sum))
        return 0;
    if (q->min_dur_us > 0 && sum.e2e_us < q->min_dur_us)
        return 0;
    if (q->max_dur_us > 0 && sum.e2e_us > q->max_dur_us)
        return 0;
    ht_agg_key_jaeger(key, &root);
    have_rec = ht_store_get(c->t, HT_DB_AGG, key, 9, &jv, &jn) == HT_ERR_OK &&
               ht_jaeger_rec_unpack(jv, jn, c->a, &rec) == HT_ERR_OK;
    if (have_rec && !rec_matches(&rec, q))
        return 0;
    if (ht_qsession_query_root(c->qs, sum.handle, &root, &r) != HT_ERR_OK)
        return 0;
    if (!have_rec) {
        /* a summary written before the search records: work it out */
        ht_jaeger_index(r, c->a, &rec);
        if (!rec_matches(&rec, q))
            return 0;
    }
    if (q->ntags &&
        !ht_jaeger_match_tags(r, q->tag_keys, q->tag_vals, q->ntags))
        return 0;
    ht_jaeger_trace_id(r, id);
    {
        bool seen = false;

        for (size_t i = 0; i < c->nhits && !seen; i++)
            seen = strcmp(c->ids[i], id) == 0;
        if (!seen)
            c->ntraces++;
    }
    if (c->nhits == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 32;
        c->hits = realloc(c->hits, c->cap * sizeof(*c->hits));
        c->ids = realloc(c->ids, c->cap * sizeof(*c->ids));
        HT_ASSERT(c->hits && c->ids);
    }
    c->hits[c->nhits] = r;
    memcpy(c->ids[c->nhits], id, 33);
    c->nhits++;
    if (c->ntraces >= q->limit)
        return 1;
    if (ht_qsession_memory(c->qs) > HT_JAEGER_MAX_MEMORY)
        return 1;
    return 0;
}

int ht_jaeger_find(struct ht_store *s, const struct ht_jaeger_query *q,
                   struct ht_buf *out, size_t *count)
{
    struct find_ctx c = {.q = q};
    uint8_t from[17], prefix = HT_AGG_K_WINDOW;
    int rc;

    *count = 0;
    if (!q->service || !*q->service || !q->limit) {
        ht_buf_adds(out, "[]");
        return HT_ERR_OK;
    }
    rc = ht_store_begin(s, false, &c.t);
    if (rc)
        return rc;
    rc = ht_qsession_open(c.t, &c.qs);
    if (rc) {
        ht_store_abort(c.t);
        return rc;
    }
    c.a = ht_arena_create();
    HT_ASSERT(c.a);
    from[0] = HT_AGG_K_WINDOW;
    ht_be64_put(from + 1, q->end_us < 0 ? 0 : (uint64_t)q->end_us);
    memset(from + 9, 0xff, 8);
    rc = ht_store_scan_back(c.t, HT_DB_AGG, from, 17, &prefix, 1, find_visit,
                            &c);
    ht_buf_addc(out, '[');
    if (!rc)
        render_groups(c.hits, c.nhits, out, count);
    ht_buf_addc(out, ']');
    free(c.hits);
    free(c.ids);
    ht_arena_destroy(c.a);
    ht_qsession_close(c.qs);
    ht_store_abort(c.t);
    return rc;
}

/* ---- dependencies ---------------------------------------------------------
 */

struct dep {
    const char *parent, *child;
    uint64_t calls;
};

struct dep_ctx {
    struct ht_txn *t;
    struct ht_arena *a, *tmp;
    int64_t lo;
    struct dep *d;
    size_t n, cap;
    size_t examined;
};

static int dep_visit(void *ctx, const void *k, size_t kn, const void *v,
                     size_t vn)
{
    struct dep_ctx *c = ctx;
    const uint8_t *p = k;
    uint8_t key[9];
    const void *jv;
    size_t jn;
    struct ht_jaeger_rec rec;
    struct ht_id8 root;

    (void)v;
    (void)vn;
    if (kn != 17)
        return 0;
    if ((int64_t)ht_be64_get(p + 1) < c->lo)
        return 1;
    if (++c->examined > HT_JAEGER_MAX_EXAMINED)
        return 1;
    memcpy(root.b, p + 9, 8);
    ht_agg_key_jaeger(key, &root);
    ht_arena_reset(c->tmp);
    if (ht_store_get(c->t, HT_DB_AGG, key, 9, &jv, &jn) != HT_ERR_OK ||
        ht_jaeger_rec_unpack(jv, jn, c->tmp, &rec) != HT_ERR_OK)
        return 0;
    for (uint32_t i = 0; i < rec.nedges; i++) {
        const struct ht_jaeger_edge *e = &rec.edges[i];
        size_t j;

        for (j = 0; j < c->n; j++)
            if (strcmp(c->d[j].parent, e->parent) == 0 &&
                strcmp(c->d[j].child, e->child) == 0)
                break;
        if (j == c->n) {
            if (c->n == c->cap) {
                c->cap = c->cap ? c->cap * 2 : 32;
                c->d = realloc(c->d, c->cap * sizeof(*c->d));
                HT_ASSERT(c->d);
            }
            c->d[j].parent = ht_arena_strdup(c->a, e->parent);
            c->d[j].child = ht_arena_strdup(c->a, e->child);
            c->d[j].calls = 0;
            c->n++;
        }
        c->d[j].calls += e->calls;
    }
    return 0;
}

static int cmp_dep(const void *x, const void *y)
{
    const struct dep *a = x, *b = y;
    int d = strcmp(a->parent, b->parent);

    return d ? d : strcmp(a->child, b->child);
}

int ht_jaeger_dependencies(struct ht_store *s, int64_t end_us,
                           int64_t lookback_us, struct ht_buf *out,
                           size_t *count)
{
    struct dep_ctx c = {0};
    uint8_t from[17], prefix = HT_AGG_K_WINDOW;
    int rc;

    *count = 0;
    rc = ht_store_begin(s, false, &c.t);
    if (rc)
        return rc;
    c.a = ht_arena_create();
    c.tmp = ht_arena_create();
    HT_ASSERT(c.a && c.tmp);
    /* saturating: a window reaching before the epoch starts at its start */
    c.lo = lookback_us > 0 && end_us < INT64_MIN + lookback_us
               ? INT64_MIN
               : end_us - lookback_us;
    from[0] = HT_AGG_K_WINDOW;
    ht_be64_put(from + 1, end_us < 0 ? 0 : (uint64_t)end_us);
    memset(from + 9, 0xff, 8);
    rc =
        ht_store_scan_back(c.t, HT_DB_AGG, from, 17, &prefix, 1, dep_visit, &c);
    if (c.n > 1)
        qsort(c.d, c.n, sizeof(*c.d), cmp_dep);
    ht_buf_addc(out, '[');
    for (size_t i = 0; i < c.n && !rc; i++) {
        if (i)
            ht_buf_addc(out, ',');
        ht_buf_adds(out, "{\"parent\":");
        ht_buf_json_str(out, c.d[i].parent);
        ht_buf_adds(out, ",\"child\":");
        ht_buf_json_str(out, c.d[i].child);
        ht_buf_printf(out, ",\"callCount\":%llu}",
                      (unsigned long long)c.d[i].calls);
        (*count)++;
    }
    ht_buf_addc(out, ']');
    free(c.d);
    ht_arena_destroy(c.a);
    ht_arena_destroy(c.tmp);
    ht_store_abort(c.t);
    return rc;
}

int64_t ht_jaeger_store_now(struct ht_store *s)
{
    struct ht_txn *t;
    int64_t now = ht_now_wall_us(), newest;

    if (ht_store_begin(s, false, &t) != HT_ERR_OK)
        return now;
    newest = ht_store_newest_event(t);
    ht_store_abort(t);
    return newest == INT64_MIN ? now : newest;
}
