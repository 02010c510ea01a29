/*
 * api.c - the JSON API of `hoptrace serve` (cli.md "serve"): the same
 * documents as the command line's --format json, rendered by the same
 * query/ functions, so one contract serves both.
 *
 *   GET /api/v1/trace/{id}[?format=json|dot|text|jaeger|otlp]
 *                                                   = hoptrace trace ID
 *   GET /api/v1/endpoints[?since&until&exact&format] = hoptrace endpoints
 *   GET /api/v1/hotspots?route=R[&percentile&since&until&format]
 *   GET /api/v1/functions[?since&until&price-gb-s&price-request&format]
 *   GET /api/v1/stalls[?threshold&now&max-stuck&format]
 *   GET /api/v1/stats[?format]
 *   GET /metrics[?threshold&now]       Prometheus text (hoptrace metrics)
 *   GET /healthz
 *
 * Parameters are spelled as the commands' options without their dashes;
 * a bad value is a 400 with a JSON error saying what is expected.
 *
 * Owned by serve/. Every handler call opens and ends its own read
 * transactions (inside the query functions).
 */
#define _GNU_SOURCE
#include "ht_engine.h"
#include "ht_query.h"
#include "ht_serve.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CT_JSON "application/json"
#define CT_NDJSON "application/x-ndjson"
#define CT_TEXT "text/plain; charset=utf-8"
#define CT_DOT "text/vnd.graphviz; charset=utf-8"
#define CT_PROM "text/plain; version=0.0.4; charset=utf-8"

/* Default stall threshold and stuck list of `stalls` / `metrics`. */
#define STALL_THRESHOLD_US 300000000LL
#define STALL_MAX_STUCK 10

/* A time parameter, when given. false after answering 400. */
static bool arg_time(const struct ht_http_req *rq, struct ht_http_resp *rs,
                     const char *name, int64_t *out)
{
    const char *v = rq->arg(rq, name);

    if (!v)
        return true;
    if (ht_parse_time(v, out))
        return true;
    ht_http_error(rs, 400,
                  "%s takes epoch seconds or an RFC 3339 time, not '%s'", name,
                  v);
    return false;
}

/* A duration parameter ("300s", "5m", "250ms"), when given. */
static bool arg_duration(const struct ht_http_req *rq, struct ht_http_resp *rs,
                         const char *name, int64_t *out)
{
    const char *v = rq->arg(rq, name);

    if (!v)
        return true;
    if (ht_parse_duration(v, out) == 0)
        return true;
    ht_http_error(rs, 400,
                  "%s takes a duration like 300s, 5m, 1h or 250ms, not '%s'",
                  name, v);
    return false;
}

/* A number within [lo, hi], when given. */
static bool arg_number(const struct ht_http_req *rq, struct ht_http_resp *rs,
                       const char *name, double lo, double hi, double *out)
{
    const char *v = rq->arg(rq, name);
    char *end;
    double d;

    if (!v)
        return true;
    errno = 0;
    d = strtod(v, &end);
    if (end != v && !*end && !errno && d >= lo && d <= hi) {
        *out = d;
        return true;
    }
    ht_http_error(rs, 400, "%s takes a number from %g to %g, not '%s'", name,
                  lo, hi, v);
    return false;
}

/* A flag: absent, "", "1" or "true" (on), "0" or "false" (off). */
static bool arg_flag(const struct ht_http_req *rq, struct ht_http_resp *rs,
                     const char *name, bool *out)
{
    const char *v = rq->arg(rq, name);

    if (!v)
        return true;
    if (!*v || strcmp(v, "1") == 0 || strcmp(v, "true") == 0) {
        *out = true;
        return true;
    }
    if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0) {
        *out = false;
        return true;
    }
    ht_http_error(rs, 400, "%s is a flag: true or false, not '%s'", name, v);
    return false;
}

/* ?format= among `allowed` ("json", "text", ...; the first is the
 * default). Its index in allowed, or -1 after answering 400. */
static int arg_format(const struct ht_http_req *rq, struct ht_http_resp *rs,
                      const char *const *allowed, size_t n)
{
    const char *v = rq->arg(rq, "format");
    char list[128] = "";

    if (!v)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(v, allowed[i]) == 0)
            return (int)i;
    for (size_t i = 0; i < n; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
                 i ? (i + 1 == n ? " or " : ", ") : "", allowed[i]);
    ht_http_error(rs, 400, "format is %s, not '%s'", list, v);
    return -1;
}

/* The answer of a query/ function: its document, or a 500 saying why. */
static void answer(struct ht_http_resp *rs, const char *what, int rc,
                   const char *ctype)
{
    if (rc) {
        ht_http_error(rs, 500, "%s failed: %s", what, ht_strerror(rc));
        return;
    }
    rs->status = 200;
    rs->ctype = ctype;
}

/* ---- the routes ------------------------------------------------------- */

static void trace(const struct ht_http_req *rq, struct ht_http_resp *rs,
                  const char *id)
{
    static const char *const fmts[] = {"json", "dot", "text", "jaeger", "otlp"};
    struct ht_result *res;
    int f = arg_format(rq, rs, fmts, 5), rc;

    if (f < 0)
        return;
    if (!*id) {
        ht_http_error(rs, 400,
                      "which request? GET /api/v1/trace/{id} with any id "
                      "hoptrace trace takes");
        return;
    }
    rc = ht_query_trace(rq->store, id, &res);
    if (rc == HT_ERR_NOTFOUND) {
        ht_http_error(rs, 404, "no request known for id '%s'", id);
        return;
    }
    if (rc) {
        ht_http_error(rs, 500, "trace failed: %s", ht_strerror(rc));
        return;
    }
    if (f == 0)
        ht_query_json(res, &rs->body);
    else if (f == 1)
        ht_query_dot(res, &rs->body);
    else if (f == 2)
        ht_query_text(res, &rs->body);
    else if (f == 3)
        ht_query_jaeger(res, &rs->body); /* Jaeger's JSON trace file */
    else
        ht_query_otlp(res, &rs->body); /* OTLP/JSON, one line per request */
    ht_result_free(res);
    rs->status = 200;
    rs->ctype = f == 1   ? CT_DOT
                : f == 2 ? CT_TEXT
                : f == 4 ? CT_NDJSON
                         : CT_JSON;
}

/* The options every aggregate query shares, with the commands' defaults. */
static bool agg_opts(const struct ht_http_req *rq, struct ht_http_resp *rs,
                     struct ht_agg_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->since_us = 0;
    o->until_us = INT64_MAX;
    o->percentile = 99;
    o->price_gb_s = HT_PRICE_GB_S;
    o->price_request = HT_PRICE_REQUEST;
    if (!arg_time(rq, rs, "since", &o->since_us) ||
        !arg_time(rq, rs, "until", &o->until_us))
        return false;
    if (o->since_us > o->until_us) {
        ht_http_error(rs, 400, "since is after until");
        return false;
    }
    return true;
}

static void endpoints(const struct ht_http_req *rq, struct ht_http_resp *rs)
{
    static const char *const fmts[] = {"json", "text"};
    struct ht_agg_opts o;
    int f;

    if (!agg_opts(rq, rs, &o) || !arg_flag(rq, rs, "exact", &o.exact) ||
        (f = arg_format(rq, rs, fmts, 2)) < 0)
        return;
    o.format = f == 0 ? HT_AGG_JSON : HT_AGG_TEXT;
    answer(rs, "endpoints", ht_agg_endpoints(rq->store, &o, &rs->body),
           f == 0 ? CT_JSON : CT_TEXT);
}

static void hotspots(const struct ht_http_req *rq, struct ht_http_resp *rs)
{
    static const char *const fmts[] = {"json", "text", "folded"};
    const char *route = rq->arg(rq, "route");
    struct ht_agg_opts o;
    int f, rc;

    if (!agg_opts(rq, rs, &o) ||
        !arg_number(rq, rs, "percentile", 0, 100, &o.percentile) ||
        (f = arg_format(rq, rs, fmts, 3)) < 0)
        return;
    if (!route || !*route) {
        ht_http_error(rs, 400,
                      "name a route as endpoints gives it: "
                      "/api/v1/hotspots?route=POST%%20/orders");
        return;
    }
    o.format = f == 0 ? HT_AGG_JSON : f == 1 ? HT_AGG_TEXT : HT_AGG_FOLDED;
    rc = ht_agg_hotspots(rq->store, route, &o, &rs->body);
    if (rc == HT_ERR_NOTFOUND) {
        ht_http_error(rs, 404,
                      "no complete request of route '%s' in the window (see "
                      "/api/v1/endpoints for the routes)",
                      route);
        return;
    }
    answer(rs, "hotspots", rc, f == 0 ? CT_JSON : CT_TEXT);
}

static void functions(const struct ht_http_req *rq, struct ht_http_resp *rs)
{
    static const char *const fmts[] = {"json", "text"};
    struct ht_agg_opts o;
    int f;

    if (!agg_opts(rq, rs, &o) ||
        !arg_number(rq, rs, "price-gb-s", 0, 1e6, &o.price_gb_s) ||
        !arg_number(rq, rs, "price-request", 0, 1e6, &o.price_request) ||
        (f = arg_format(rq, rs, fmts, 2)) < 0)
        return;
    o.format = f == 0 ? HT_AGG_JSON : HT_AGG_TEXT;
    answer(rs, "functions", ht_agg_functions(rq->store, &o, &rs->body),
           f == 0 ? CT_JSON : CT_TEXT);
}

/* threshold and now, as `stalls` and `metrics` take them, over the
 * thresholds of serve --config (the parameter wins over the file's default
 * threshold, as the flag does over --config). */
static bool stall_args(const struct ht_http_req *rq, struct ht_http_resp *rs,
                       struct ht_stall_cfg *cfg, int64_t *now)
{
    if (rq->stall_cfg) {
        size_t max_stuck = cfg->max_stuck;

        *cfg = *rq->stall_cfg;
        cfg->max_stuck = max_stuck;
    }
    *now = ht_now_wall_us();
    return arg_duration(rq, rs, "threshold", &cfg->threshold_us) &&
           arg_time(rq, rs, "now", now);
}

static void stalls(const struct ht_http_req *rq, struct ht_http_resp *rs)
{
    static const char *const fmts[] = {"json", "text"};
    struct ht_stall_cfg cfg = {.threshold_us = STALL_THRESHOLD_US,
                               .max_stuck = STALL_MAX_STUCK};
    struct ht_stalls *st;
    double max_stuck = STALL_MAX_STUCK;
    int64_t now;
    int f, rc;

    if (!stall_args(rq, rs, &cfg, &now) ||
        !arg_number(rq, rs, "max-stuck", 0, 100000, &max_stuck) ||
        (f = arg_format(rq, rs, fmts, 2)) < 0)
        return;
    if (max_stuck != floor(max_stuck)) {
        ht_http_error(rs, 400, "max-stuck takes a whole number");
        return;
    }
    cfg.max_stuck = (size_t)max_stuck;
    rc = ht_query_stalls(rq->store, &cfg, now, &st);
    if (rc) {
        answer(rs, "stalls", rc, NULL);
        return;
    }
    if (f == 0)
        ht_stalls_json(st, &rs->body);
    else
        ht_stalls_text(st, &rs->body);
    ht_stalls_free(st);
    answer(rs, "stalls", 0, f == 0 ? CT_JSON : CT_TEXT);
}

static void stats(const struct ht_http_req *rq, struct ht_http_resp *rs)
{
    static const char *const fmts[] = {"json", "text"};
    int f = arg_format(rq, rs, fmts, 2);

    if (f < 0)
        return;
    answer(rs, "stats", ht_query_stats(rq->store, f == 0, &rs->body),
           f == 0 ? CT_JSON : CT_TEXT);
}

static void metrics(const struct ht_http_req *rq, struct ht_http_resp *rs)
{
    struct ht_stall_cfg cfg = {.threshold_us = STALL_THRESHOLD_US,
                               .max_stuck = 0};
    int64_t now;

    if (!stall_args(rq, rs, &cfg, &now))
        return;
    answer(rs, "metrics", ht_query_metrics(rq->store, &cfg, now, &rs->body),
           CT_PROM);
}

int ht_serve_api(const struct ht_http_req *rq, struct ht_http_resp *rs)
{
    const char *p = rq->path;

    if (strcmp(p, "/healthz") == 0) {
        rs->status = 200;
        rs->ctype = CT_JSON;
        ht_buf_printf(&rs->body, "{\"status\":\"ok\",\"store\":%s}\n",
                      rq->store ? "true" : "false");
        return 1;
    }
    if (strcmp(p, "/metrics") == 0) {
        metrics(rq, rs);
        return 1;
    }
    if (strncmp(p, "/api/v1/", 8) != 0)
        return 0;
    p += 8;
    if (strncmp(p, "trace/", 6) == 0)
        trace(rq, rs, p + 6);
    else if (strcmp(p, "endpoints") == 0)
        endpoints(rq, rs);
    else if (strcmp(p, "hotspots") == 0)
        hotspots(rq, rs);
    else if (strcmp(p, "functions") == 0)
        functions(rq, rs);
    else if (strcmp(p, "stalls") == 0)
        stalls(rq, rs);
    else if (strcmp(p, "stats") == 0)
        stats(rq, rs);
    else
        ht_http_error(rs, 404,
                      "no such API route: %s (routes: /api/v1/trace/{id}, "
                      "endpoints, hotspots, functions, stalls, stats)",
                      rq->path);
    return 1;
}
