/*
 * ht_serve.h - `hoptrace serve`: the HTTP side. One embedded server
 * (libmicrohttpd) answers the JSON API (/api/v1/...), the Jaeger query API
 * (/api/...), the web view (/, /trace/{id}, /static/...), /metrics and
 * /healthz, read-only over LMDB snapshots.
 *
 * Handlers are plain functions over a decoded request: they never see the
 * HTTP library. serve/server.c owns the server and the routing; each
 * family of routes lives in its own file and is reached through one
 * ht_http_handler below. A handler answers 1 when the path is its own (and
 * fills the response, errors included), 0 when it is not.
 */
#ifndef HT_SERVE_H
#define HT_SERVE_H

#include "ht_common.h"

#include <stdbool.h>

struct ht_store;

/* One request as a handler sees it. Borrowed for the call. */
struct ht_http_req {
    const char *method; /* "GET", "HEAD", "POST", ... */
    const char *path;   /* percent-decoded path, without the query */
    struct ht_store *store; /* read-only; open and end a read txn per call */
    /* Query-string parameters, percent-decoded. */
    const char *(*arg)(const struct ht_http_req *rq, const char *name);
    void *impl; /* the server's own (the connection) */
};

/* The answer. body is owned by the server (initialised empty). ctype is a
 * static string; NULL means "application/json". */
struct ht_http_resp {
    int status;
    const char *ctype;
    struct ht_buf body;
};

typedef int (*ht_http_handler)(const struct ht_http_req *rq,
                               struct ht_http_resp *rs);

/* Sets status and a body {"error": "<message>"} (application/json). */
void ht_http_error(struct ht_http_resp *rs, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* serve/api.c: /api/v1/..., /metrics, /healthz. */
int ht_serve_api(const struct ht_http_req *rq, struct ht_http_resp *rs);
/* serve/jaeger_api.c: Jaeger's query API, /api/services, /api/traces, ... */
int ht_serve_jaeger(const struct ht_http_req *rq, struct ht_http_resp *rs);
/* serve/web.c: the web view, /, /trace/{id}, /static/..., assets compiled
 * into the binary. */
int ht_serve_web(const struct ht_http_req *rq, struct ht_http_resp *rs);

#endif
