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
struct ht_stall_cfg;

/* One request as a handler sees it. Borrowed for the call. */
struct ht_http_req {
    const char *method; /* "GET", "HEAD", "POST", ... */
    const char *path;   /* percent-decoded path, without the query */
    /* read-only; open and end a read txn per call. Never NULL, except for
     * /healthz and ht_serve_web (whose pages need none): while there is
     * no store yet the server answers every other path 503 {"error": "no
     * store yet ..."} itself. */
    struct ht_store *store;
    /* Query-string parameters, percent-decoded: the first value of name. */
    const char *(*arg)(const struct ht_http_req *rq, const char *name);
    /* Every value of a parameter that may repeat (Jaeger's tag=k:v), in
     * the order sent: how many there are, the first max of them in out.
     * NULL when the caller has only arg (then one value at most). */
    size_t (*arg_all)(const struct ht_http_req *rq, const char *name,
                      const char **out, size_t max);
    void *impl; /* the server's own (the connection) */
    /* serve --config FILE: the stage thresholds of stalls and metrics
     * (NULL: the defaults, 300 s for every stage) */
    const struct ht_stall_cfg *stall_cfg;
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

/* ---- the server (serve/server.c), for cli/cmd_serve.c ---------------- */

struct ht_server_cfg {
    const char *listen; /* ADDR:PORT, [V6]:PORT; port 0 picks a free one */
    unsigned threads;   /* worker threads (>= 1) */
    const char *token;  /* the bearer token every request must carry, or
                           NULL: none */
    const char *db;     /* the store's folder: opened read-only, when it
                           exists, by the server itself */
    /* or the store of an ingest engine in this process (borrowed until
     * ht_server_stop returns); NULL: the server opens db read-only */
    struct ht_store *store;
    /* stage thresholds for /api/v1/stalls and /metrics (borrowed until
     * ht_server_stop returns), or NULL */
    const struct ht_stall_cfg *stall_cfg;
};

struct ht_server;

/* Parses cfg->listen and starts the server. HT_ERR_USAGE when the address
 * does not parse, HT_ERR_IO when it cannot be bound (both logged, saying
 * why). Owned: ht_server_stop. */
int ht_server_start(const struct ht_server_cfg *cfg, struct ht_server **out);
/* The address it listens on, "127.0.0.1:8418" ("[::1]:8418"). */
const char *ht_server_where(const struct ht_server *srv);
/* Whether it listens on an address other hosts can reach (not loopback). */
bool ht_server_exposed(const struct ht_server *srv);
/* Lets the requests in flight finish (waiting at most drain_ms; every
 * answer meanwhile closes its connection), stops and frees the server.
 * NULL is a no-op. */
void ht_server_stop(struct ht_server *srv, int drain_ms);

#endif
