/*
 * jaeger_api.c - Jaeger's query API, as the Jaeger UI and Grafana's Jaeger
 * data source call it (jaegertracing/jaeger cmd/query/app/http_handler.go
 * and query_parser.go are the reference for names, units and errors):
 *
 *   GET /api/services                            service names
 *   GET /api/services/{service}/operations       operation names
 *   GET /api/operations?service=…[&spanKind=…]   [{name, spanKind}]
 *   GET /api/traces?service=…&operation=…&start=…&end=…&minDuration=…
 *                  &maxDuration=…&limit=…&tags=…&tag=k:v[&traceID=…]
 *   GET /api/traces/{id}                         any id `trace` accepts,
 *                                                and the Jaeger traceID
 *   GET /api/dependencies?endTs=…&lookback=…     service graph
 *
 * Every answer is Jaeger's envelope {"data", "total", "limit", "offset",
 * "errors"}; a bad parameter is 400 and an unknown trace 404, each with
 * errors [{"code", "msg"}]. start/end are µs, endTs/lookback ms, durations
 * Go's ("1.2s", "100ms", "1m30s"). Absent times: the search window is
 * open on both sides (bounded by limit), the dependencies window ends at
 * the store's newest event (a replayed store answers for its own time)
 * and looks back 24 h, Jaeger's default.
 *
 * Owned by serve/: it parses and answers HTTP; the documents come from
 * query/ (ht_jaeger_*).
 */
#define _GNU_SOURCE
#include "ht_query.h"
#include "ht_serve.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_LIMIT 20
#define MAX_LIMIT 1500
#define MAX_TAGS 32
#define DEFAULT_LOOKBACK_MS (24LL * 3600 * 1000)

/* Jaeger's envelope around data (already rendered JSON). */
static void envelope(struct ht_http_resp *rs, int status, const char *data,
                     size_t total, size_t limit)
{
    rs->status = status;
    rs->ctype = NULL;
    ht_buf_reset(&rs->body);
    ht_buf_adds(&rs->body, "{\"data\":");
    ht_buf_adds(&rs->body, data ? data : "[]");
    ht_buf_printf(
        &rs->body,
        ",\"total\":%zu,\"limit\":%zu,\"offset\":0,\"errors\":null}\n", total,
        limit);
}

static void jerror(struct ht_http_resp *rs, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Jaeger's error answer: no data, errors [{code, msg}]. */
static void jerror(struct ht_http_resp *rs, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    rs->status = status;
    rs->ctype = NULL;
    ht_buf_reset(&rs->body);
    ht_buf_printf(&rs->body,
                  "{\"data\":null,\"total\":0,\"limit\":0,\"offset\":0,"
                  "\"errors\":[{\"code\":%d,\"msg\":",
                  status);
    ht_buf_json_str(&rs->body, msg);
    ht_buf_adds(&rs->body, "}]}\n");
}

static const char *arg(const struct ht_http_req *rq, const char *name)
{
    const char *v = rq->arg ? rq->arg(rq, name) : NULL;

    return v && *v ? v : NULL;
}

/* ---- parameters -----------------------------------------------------------
 */

/* A whole decimal integer. */
static bool parse_int(const char *s, int64_t *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return false;
    *out = v;
    return true;
}

/* A Go duration ("300ms", "1.5h", "2h45m", "1µs") in µs; false when it
 * is not one. Negative durations are refused here (no bound can be). */
static bool parse_duration(const char *s, int64_t *out_us)
{
    static const struct {
        const char *u;
        double us;
    } units[] = {{"ns", 0.001}, {"us", 1},  {"\xc2\xb5s", 1}, {"\xce\xbcs", 1},
                 {"ms", 1000},  {"s", 1e6}, {"m", 60e6},      {"h", 3600e6}};
    double total = 0;

    if (!s || !*s)
        return false;
    if (*s == '+')
        s++;
    if (strcmp(s, "0") == 0) {
        *out_us = 0;
        return true;
    }
    while (*s) {
        char *end;
        double v;
        size_t best = 0, bi = 0;

        char num[64];
        size_t n = strspn(s, "0123456789"), digits = n;

        /* digits, a fraction, as Go's time.ParseDuration takes them (no
         * exponent, no hex: strtod alone would accept both) */
        if (s[n] == '.') {
            size_t f = strspn(s + n + 1, "0123456789");

            digits += f;
            n += 1 + f;
        }
        if (!digits || n >= sizeof(num))
            return false;
        memcpy(num, s, n);
        num[n] = 0;
        errno = 0;
        v = strtod(num, &end);
        if (errno || *end)
            return false;
        s += n;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            size_t l = strlen(units[i].u);

            if (strncmp(s, units[i].u, l) == 0 && l > best) {
                best = l;
                bi = i;
            }
        }
        if (!best)
            return false;
        s += best;
        total += v * units[bi].us;
        if (total > 9.2e18)
            return false;
    }
    *out_us = (int64_t)(total + 0.5);
    return true;
}

struct tags {
    const char *keys[MAX_TAGS], *vals[MAX_TAGS];
    size_t n;
    json_t *docs[MAX_TAGS]; /* the tags= objects the strings point into */
    size_t ndocs;
    char *copies[MAX_TAGS]; /* the tag= values, split at their colon */
    size_t ncopies;
};

/* A later value of a key replaces an earlier one, as in Jaeger's map. */
static bool add_tag(struct tags *t, const char *k, const char *v)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->keys[i], k) == 0) {
            t->vals[i] = v;
            return true;
        }
    if (t->n == MAX_TAGS)
        return false;
    t->keys[t->n] = k;
    t->vals[t->n] = v;
    t->n++;
    return true;
}

/* Every value of a parameter that may repeat, at most MAX_TAGS of them:
 * how many there are (more than MAX_TAGS: too many). */
static size_t args(const struct ht_http_req *rq, const char *name,
                   const char **out)
{
    const char *v;

    if (rq->arg_all)
        return rq->arg_all(rq, name, out, MAX_TAGS);
    v = rq->arg ? rq->arg(rq, name) : NULL;
    out[0] = v;
    return v ? 1 : 0;
}

/*
 * The tags a search must match, as Jaeger's query parser reads them: every
 * tag=key:value (repeatable; the value is what follows the first colon),
 * then every tags={"key":"value",...} (repeatable), a later value of a key
 * replacing an earlier one; an empty one is none. False with *why set.
 */
static bool parse_tags(const struct ht_http_req *rq, struct tags *t,
                       const char **why)
{
    const char *vals[MAX_TAGS];
    size_t n = args(rq, "tag", vals);

    if (n > MAX_TAGS) {
        *why = "too many tags (32 at most)";
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char *copy, *c;

        if (!*vals[i])
            continue; /* tag= with nothing: no tag */
        copy = strdup(vals[i]);
        HT_ASSERT(copy);
        t->copies[t->ncopies++] = copy;
        c = strchr(copy, ':');
        if (!c) {
            *why = "malformed 'tag' parameter, expecting key:value";
            return false;
        }
        *c = 0;
        add_tag(t, copy, c + 1);
    }
    n = args(rq, "tags", vals);
    if (n > MAX_TAGS) {
        *why = "too many tags (32 at most)";
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        json_error_t err;
        const char *k;
        json_t *doc, *v;

        if (!*vals[i])
            continue;
        doc = json_loads(vals[i], JSON_REJECT_DUPLICATES, &err);
        if (doc)
            t->docs[t->ndocs++] = doc;
        if (!doc || !json_is_object(doc)) {
            *why = "malformed 'tags' parameter, cannot unmarshal JSON: "
                   "expecting an object of strings";
            return false;
        }
        json_object_foreach(doc, k, v)
        {
            if (!json_is_string(v)) {
                *why = "malformed 'tags' parameter, cannot unmarshal JSON: "
                       "expecting an object of strings";
                return false;
            }
            if (!add_tag(t, k, json_string_value(v))) {
                *why = "too many tags (32 at most)";
                return false;
            }
        }
    }
    return true;
}

static void tags_free(struct tags *t)
{
    for (size_t i = 0; i < t->ndocs; i++)
        json_decref(t->docs[i]);
    for (size_t i = 0; i < t->ncopies; i++)
        free(t->copies[i]);
}

/* ---- routes ---------------------------------------------------------------
 */

static void store_failed(struct ht_http_resp *rs, int rc)
{
    jerror(rs, 500, "store: %s", ht_strerror(rc));
}

static void services(const struct ht_http_req *rq, struct ht_http_resp *rs)
{
    struct ht_buf d;
    size_t n;
    int rc;

    ht_buf_init(&d);
    rc = ht_jaeger_services(rq->store, &d, &n);
    if (rc)
        store_failed(rs, rc);
    else
        envelope(rs, 200, d.data, n, 0);
    ht_buf_free(&d);
}

static void operations(const struct ht_http_req *rq, struct ht_http_resp *rs,
                       const char *service, bool legacy)
{
    struct ht_buf d;
    size_t n;
    int rc;

    if (!service || !*service) {
        jerror(rs, 400, "parameter 'service' is required");
        return;
    }
    ht_buf_init(&d);
    rc = ht_jaeger_operations(rq->store, service,
                              legacy ? NULL : arg(rq, "spanKind"), legacy, &d,
                              &n);
    if (rc)
        store_failed(rs, rc);
    else
        envelope(rs, 200, d.data, n, 0);
    ht_buf_free(&d);
}

static void trace_by_id(const struct ht_http_req *rq, struct ht_http_resp *rs,
                        const char *id)
{
    struct ht_buf d;
    size_t n;
    int rc;

    ht_buf_init(&d);
    rc = ht_jaeger_get(rq->store, id, &d, &n);
    if (rc == HT_ERR_NOTFOUND)
        jerror(rs, 404, "trace not found");
    else if (rc)
        store_failed(rs, rc);
    else
        envelope(rs, 200, d.data, n, 0);
    ht_buf_free(&d);
}

static bool time_param(const struct ht_http_req *rq, struct ht_http_resp *rs,
                       const char *name, int64_t *out)
{
    const char *v = arg(rq, name);

    if (!v)
        return true;
    if (!parse_int(v, out)) {
        jerror(rs, 400, "unable to parse param '%s': not an integer: '%s'",
               name, v);
        return false;
    }
    return true;
}

static bool dur_param(const struct ht_http_req *rq, struct ht_http_resp *rs,
                      const char *name, int64_t *out)
{
    const char *v = arg(rq, name);

    if (!v)
        return true;
    if (!parse_duration(v, out)) {
        jerror(rs, 400,
               "unable to parse param '%s': invalid duration '%s' (units: "
               "ns, us, ms, s, m, h)",
               name, v);
        return false;
    }
    return true;
}

static void search(const struct ht_http_req *rq, struct ht_http_resp *rs)
{
    struct ht_jaeger_query q = {.start_us = INT64_MIN, .end_us = INT64_MAX};
    struct tags tg = {0};
    const char *why = NULL, *lim = arg(rq, "limit"), *tid = arg(rq, "traceID");
    int64_t limit = DEFAULT_LIMIT;
    struct ht_buf d;
    size_t n;
    int rc;

    if (tid) {
        /* Jaeger's search by ids: the traces found, errors for the rest */
        ht_buf_init(&d);
        rc = ht_jaeger_get(rq->store, tid, &d, &n);
        if (rc == HT_ERR_NOTFOUND) {
            rs->status = 200;
            rs->ctype = NULL;
            ht_buf_reset(&rs->body);
            ht_buf_adds(&rs->body, "{\"data\":[],\"total\":0,\"limit\":0,"
                                   "\"offset\":0,\"errors\":[{\"msg\":\"trace "
                                   "not found\",\"traceID\":");
            ht_buf_json_str(&rs->body, tid);
            ht_buf_adds(&rs->body, "}]}\n");
        } else if (rc) {
            store_failed(rs, rc);
        } else {
            envelope(rs, 200, d.data, n, 0);
        }
        ht_buf_free(&d);
        return;
    }
    q.service = arg(rq, "service");
    q.operation = arg(rq, "operation");
    if (!time_param(rq, rs, "start", &q.start_us) ||
        !time_param(rq, rs, "end", &q.end_us) ||
        !dur_param(rq, rs, "minDuration", &q.min_dur_us) ||
        !dur_param(rq, rs, "maxDuration", &q.max_dur_us))
        return;
    if (lim && (!parse_int(lim, &limit) || limit < 0)) {
        jerror(rs, 400, "unable to parse param 'limit': '%s'", lim);
        return;
    }
    if (!limit)
        limit = DEFAULT_LIMIT;
    if (limit > MAX_LIMIT)
        limit = MAX_LIMIT;
    if (!q.service) {
        jerror(rs, 400, "parameter 'service' is required");
        return;
    }
    if (q.min_dur_us && q.max_dur_us && q.max_dur_us < q.min_dur_us) {
        jerror(rs, 400, "'maxDuration' should be greater than 'minDuration'");
        return;
    }
    if (q.end_us < q.start_us) {
        jerror(rs, 400, "'end' should not be before 'start'");
        return;
    }
    if (!parse_tags(rq, &tg, &why)) {
        jerror(rs, 400, "%s", why);
        tags_free(&tg);
        return;
    }
    q.limit = (size_t)limit;
    q.tag_keys = tg.keys;
    q.tag_vals = tg.vals;
    q.ntags = tg.n;
    ht_buf_init(&d);
    rc = ht_jaeger_find(rq->store, &q, &d, &n);
    if (rc)
        store_failed(rs, rc);
    else
        envelope(rs, 200, d.data, n, (size_t)limit);
    ht_buf_free(&d);
    tags_free(&tg);
}

static void dependencies(const struct ht_http_req *rq, struct ht_http_resp *rs)
{
    int64_t end_ms = INT64_MIN, lookback_ms = DEFAULT_LOOKBACK_MS;
    struct ht_buf d;
    size_t n;
    int rc;

    if (!time_param(rq, rs, "endTs", &end_ms) ||
        !time_param(rq, rs, "lookback", &lookback_ms))
        return;
    if (lookback_ms < 0) {
        jerror(rs, 400, "unable to parse param 'lookback': negative");
        return;
    }
    if (end_ms == INT64_MIN)
        end_ms = ht_jaeger_store_now(rq->store) / 1000;
    /* µs from here on: end_ms * 1000 + 999 and end - lookback must fit */
    if (end_ms > INT64_MAX / 1000 - 1 || end_ms < 0 ||
        lookback_ms > INT64_MAX / 2000) {
        jerror(rs, 400, "unable to parse param 'endTs': out of range");
        return;
    }
    ht_buf_init(&d);
    rc = ht_jaeger_dependencies(rq->store, end_ms * 1000 + 999,
                                lookback_ms * 1000, &d, &n);
    if (rc)
        store_failed(rs, rc);
    else
        envelope(rs, 200, d.data, n, 0);
    ht_buf_free(&d);
}

int ht_serve_jaeger(const struct ht_http_req *rq, struct ht_http_resp *rs)
{
    const char *p = rq->path;
    static const char svc[] = "/api/services/", ops[] = "/operations",
                      trc[] = "/api/traces/";
    bool ours = false;
    size_t pl;

    if (!p || strncmp(p, "/api/", 5) != 0 || strncmp(p, "/api/v1/", 8) == 0)
        return 0;
    pl = strlen(p);
    ours = strcmp(p, "/api/services") == 0 ||
           strcmp(p, "/api/operations") == 0 || strcmp(p, "/api/traces") == 0 ||
           strcmp(p, "/api/dependencies") == 0 ||
           (strncmp(p, trc, sizeof(trc) - 1) == 0 && pl > sizeof(trc) - 1) ||
           (strncmp(p, svc, sizeof(svc) - 1) == 0 &&
            pl > sizeof(svc) - 1 + sizeof(ops) - 1 &&
            strcmp(p + pl - (sizeof(ops) - 1), ops) == 0);
    if (!ours)
        return 0;
    if (strcmp(rq->method, "GET") != 0 && strcmp(rq->method, "HEAD") != 0) {
        jerror(rs, 405, "method %s not allowed: the Jaeger API is read-only",
               rq->method);
        return 1;
    }
    if (!rq->store) {
        jerror(rs, 503, "no store yet");
        return 1;
    }
    if (strcmp(p, "/api/services") == 0) {
        services(rq, rs);
    } else if (strcmp(p, "/api/operations") == 0) {
        operations(rq, rs, arg(rq, "service"), false);
    } else if (strcmp(p, "/api/traces") == 0) {
        search(rq, rs);
    } else if (strcmp(p, "/api/dependencies") == 0) {
        dependencies(rq, rs);
    } else if (strncmp(p, trc, sizeof(trc) - 1) == 0) {
        trace_by_id(rq, rs, p + sizeof(trc) - 1);
    } else {
        /* a service name may hold '/' ("shop-api/prod", sent as %2F) */
        size_t sl = pl - (sizeof(svc) - 1) - (sizeof(ops) - 1);
        char *name = strndup(p + sizeof(svc) - 1, sl);

        HT_ASSERT(name);
        operations(rq, rs, name, true);
        free(name);
    }
    return 1;
}
