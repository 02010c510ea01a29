/*
 * ht_query.h - answering "where did the time go for request R?".
 *
 * An id of any kind (API Gateway request id or extended id, Lambda request
 * id, X-Ray trace id, segment id, correlation id, SQS message id, Kinesis
 * or DynamoDB Streams sequence number) is resolved to the request(s) it
 * names, each request is assembled from the store (spans, hops with their
 * evidence, batch attribution) and explained by its critical path.
 *
 * Owned by query/. It reads the store through read transactions only and
 * never blocks the writer (ht_qsession also serves maint/'s aggregate
 * update, inside its write transaction, where it still only reads).
 */
#ifndef HT_QUERY_H
#define HT_QUERY_H

#include "ht_store.h"

enum ht_cp_kind { HT_CP_SELF, HT_CP_CALL, HT_CP_INIT, HT_CP_WAIT };

struct ht_qspan {
    struct ht_span s;       /* strings live in the result's arena */
    int parent;             /* index of the sync parent in spans, or -1 */
    bool shared;            /* batch work not attributable to this request */
    bool cold;              /* the invocation was a cold start */
    bool logs_only;         /* an invocation known from logs alone */
    const char *request_id; /* Lambda request id of its invocation */
    const char *service;    /* name of the segment it belongs to */
    int wait_hop; /* a queue wait inside a span (Dwell Time): its hop, or -1 */
    /* a logs-only invocation's Init Duration: its first init_us are told
     * as `init` on the critical path (0: warm, or not logs-only) */
    int64_t init_us;
};

struct ht_qhop {
    int from, to; /* span indexes: producer call, consumer invocation;
                     to is -1 for a pending hop */
    uint8_t via;  /* enum ht_via */
    const char *resource;
    const char *evidence;
    double wait_ms;
    /* the producer half is still waiting for its consumer: to is -1,
     * wait_ms is the time waited so far, as of the newest span start in
     * the store. Pending hops come after every resolved hop. */
    bool pending;
    /* A message that two hops carried in turn (SNS or EventBridge into an
     * SQS queue, then SQS to the consumer) is two entries with the same
     * from and to: the first leg (`inner`, waiting from the producer
     * call's end to at_us, when the queue took the message) and the second
     * (`leg_of` = index + 1 of the first, waiting from at_us to the
     * consumer's start). leg_of is 0 and at_us unused for a single hop. */
    bool inner;
    int leg_of;
    int64_t at_us;
    /* The record the consumer logged for this hop, when there is one (for
     * the OTLP export, query/otlp_out.c): its via, id and resource, and the
     * id of the delivery before it (an SNS message id, an event id). */
    uint8_t record_via;
    const char *record_id, *record_resource, *up_id;
};

struct ht_cp_entry {
    int span;
    uint8_t kind; /* enum ht_cp_kind */
    int hop;      /* for HT_CP_WAIT: index into hops */
    int64_t start_us;
    int64_t dur_us;
};

struct ht_request {
    int root; /* span index */
    int64_t start_us, end_us;
    struct ht_qspan *spans;
    size_t nspans;
    struct ht_qhop *hops;
    size_t nhops;
    struct ht_cp_entry *cp;
    size_t ncp;
    const char **trace_ids;
    struct ht_tid *trace_bins; /* the same ids as bytes, in that order */
    size_t ntrace_ids;
    const char **corr_ids;
    size_t ncorr_ids;
    const char **warnings; /* JSON objects, already rendered */
    size_t nwarnings;
    /* Entry point (agg.c): the route template "METHOD /path" of an API
     * Gateway root (NULL otherwise), its API id and stage when known. */
    const char *route;
    const char *url_route; /* from the stage segment's URL, ids collapsed */
    const char *api_id;
    const char *stage;
    /* Writes of this request whose consumer half is still pending in the
     * store (its async path is incomplete). */
    int npending;
    /* An id that resolves back to this request's root (span id, or the
     * Lambda request id of a root known from logs alone). */
    const char *root_handle;
};

struct ht_result {
    struct ht_arena *arena; /* owns everything below */
    const char *query;
    struct ht_request *requests; /* most recent first */
    size_t nrequests;
};

/* Resolve `id` and assemble its requests. HT_ERR_NOTFOUND when the store
 * has never seen the id. *out is owned: ht_result_free. */
int ht_query_trace(struct ht_store *s, const char *id, struct ht_result **out);
void ht_result_free(struct ht_result *r);
/* The same inside a transaction the caller holds (read or write; the
 * query only reads). Used by the aggregate refresh. */
int ht_query_trace_txn(struct ht_txn *t, const char *id,
                       struct ht_result **out);
/* A session answers many ids inside one transaction against one graph:
 * what one id loaded is not loaded again for the next (the aggregate
 * refresh). Requests are borrowed until ht_qsession_close; `roots` gives
 * root-only requests as ht_query_roots_txn does. HT_ERR_NOTFOUND when the
 * id names nothing. */
struct ht_qsession;
int ht_qsession_open(struct ht_txn *t, struct ht_qsession **out);
int ht_qsession_query(struct ht_qsession *s, const char *id, bool roots,
                      struct ht_request **reqs, size_t *n);
/* Root-only requests (as `roots` gives them) of the requests trace `tid`
 * belongs to: what ht_qsession_query gives for the trace id's text, less
 * the requests another kind of id spelled like it would name. */
int ht_qsession_trace_roots(struct ht_qsession *s, const struct ht_tid *tid,
                            struct ht_request **reqs, size_t *n);
/* The request rooted at span `root` among those `id` names (what
 * ht_qsession_query gives for `id`, that request alone and built alone);
 * HT_ERR_NOTFOUND when `id` no longer leads to that root. */
int ht_qsession_query_root(struct ht_qsession *s, const char *id,
                           const struct ht_id8 *root, struct ht_request **out);
/* The whole request of a root-only request this session returned (from
 * `roots`): the same request ht_qsession_query gives for the root's
 * handle, without resolving the handle again. Borrowed like the others;
 * HT_ERR_NOTFOUND when `root` did not come from this session. */
int ht_qsession_build(struct ht_qsession *s, const struct ht_request *root,
                      struct ht_request **out);
/* The session, emptied, for another transaction: what it loaded and
 * returned is gone, the memory that held it is kept for the next round
 * (no fresh pages for every slice of a refresh). */
int ht_qsession_reopen(struct ht_qsession *s, struct ht_txn *t);
/* The session is to assemble many requests (a catch-up or refresh): key
 * ranges worth reading whole are read at the first ask, not after a
 * query's worth of lookups one by one. */
void ht_qsession_bulk(struct ht_qsession *s);
/* Bytes the session holds (to bound a chunk's memory). */
size_t ht_qsession_memory(const struct ht_qsession *s);
void ht_qsession_close(struct ht_qsession *s);
/* Like ht_query_trace_txn, but each request holds only its root span
 * (nspans 1, no hops or critical path) and root_handle. */
int ht_query_roots_txn(struct ht_txn *t, const char *id,
                       struct ht_result **out);

/* Renderings (cli.md "trace"). Append to out. */
void ht_query_json(const struct ht_result *r, struct ht_buf *out);
void ht_query_text(const struct ht_result *r, struct ht_buf *out);
void ht_query_dot(const struct ht_result *r, struct ht_buf *out);
/* OTLP/JSON (query/otlp_out.c): one ExportTraceServiceRequest line per
 * request, one trace id per request, hops as links (cli.md "trace"). */
void ht_query_otlp(const struct ht_result *r, struct ht_buf *out);

/* ---- aggregates over many requests (agg.c) ----------------------------
 *
 * Request summaries (route, start, sync and end-to-end latency, pending
 * flag, error / fault / throttle, critical-path time per service, kind and
 * hop) and per-route per-minute histograms live in HT_DB_AGG (layout:
 * store/ht_agg_records.h). They are kept current on the ingest side by
 * maint/ (ht_agg_update, in slices after each committed batch; `hoptrace
 * refresh` catches up a store that is behind); these functions only read.
 * Histogram buckets are log-linear (256 per power of two, values in µs):
 * any quantile read from them is within 0.2 % of a stored value.
 */

/* Ingested traces not yet counted in the summaries (the dirty set). */
int ht_agg_pending(struct ht_store *s, uint64_t *traces);

enum { HT_AGG_TEXT, HT_AGG_JSON, HT_AGG_FOLDED };

struct ht_agg_opts {
    int64_t since_us, until_us; /* window on request start; INT64_MIN/MAX */
    bool exact;                 /* endpoints: from summaries, not histograms */
    double percentile;          /* hotspots: 0 = all requests */
    double price_gb_s;          /* functions: USD per GB-second */
    double price_request;       /* functions: USD per request */
    int format;                 /* HT_AGG_* */
};

/* Default prices: AWS Lambda, x86, us-east-1, first pricing tier
 * (https://aws.amazon.com/lambda/pricing/, unchanged 2020-2024). */
#define HT_PRICE_GB_S 0.0000166667
#define HT_PRICE_REQUEST 0.0000002

/* Each renders its answer (cli.md "endpoints, hotspots, functions") into
 * out. ht_agg_hotspots: HT_ERR_NOTFOUND when the route has no request in
 * the window. */
int ht_agg_endpoints(struct ht_store *s, const struct ht_agg_opts *o,
                     struct ht_buf *out);
int ht_agg_hotspots(struct ht_store *s, const char *route,
                    const struct ht_agg_opts *o, struct ht_buf *out);
int ht_agg_functions(struct ht_store *s, const struct ht_agg_opts *o,
                     struct ht_buf *out);

/* ---- stalled stages (stalls.c; design.md "Stall detection") ---------- */

enum { HT_STAGE_OK, HT_STAGE_LAGGING, HT_STAGE_STALLED };

struct ht_stall_cfg {
    int64_t threshold_us; /* default threshold */
    /* per-stage overrides: key is a stage name, a resource or via:resource */
    const char **override_keys;
    int64_t *override_us;
    size_t noverrides;
    size_t max_stuck; /* stuck requests listed per stage */
};

/* A producer half waiting longer than the threshold. */
struct ht_stuck {
    const char *root;          /* root span id of its request, or NULL */
    const char *root_trace_id; /* first trace id of that request */
    const char *span;          /* the producer span (write) */
    const char *trace_id;      /* its trace */
    const char *corr;          /* correlation id annotated on it, or NULL */
    const char *hop;           /* the hop key it waits under */
    int64_t produced_us;
};

/* REPORT totals of a stage's consumer function. */
struct ht_stage_cost {
    uint64_t invocations, cold_starts, failed;
    int64_t billed_ms, memory_mb, max_memory_used_mb;
    double avg_memory_used_mb, duration_ms;
};

struct ht_stage {
    const char *name; /* "producer → via:resource → consumer" */
    const char *producer, *consumer; /* NULL when unknown */
    const char *via, *resource;
    uint8_t via_id;
    int status; /* HT_STAGE_* */
    int64_t threshold_us;
    uint64_t entered, consumed, pending, overdue;
    int64_t oldest_pending_us, last_consumed_us; /* 0: none */
    double oldest_pending_age_s;
    double delay_p50_ms, delay_p90_ms, delay_p99_ms;
    int64_t delay_max_us, delay_sum_us;
    uint64_t delay_count;
    struct ht_stuck *stuck; /* the oldest overdue items, max_stuck at most */
    size_t nstuck;
    bool has_cost;
    struct ht_stage_cost cost;
    bool has_pending_;   /* internal: a producer-side stage */
    uint64_t hist_[640]; /* internal: delay histogram */
};

struct ht_stalls {
    struct ht_arena *arena; /* owns every string */
    int64_t now_us;
    struct ht_stage *stages; /* sorted by via, resource, producer, consumer */
    size_t nstages;
};

/* Evaluate every stage as of now_us. *out is owned: ht_stalls_free. */
int ht_query_stalls(struct ht_store *s, const struct ht_stall_cfg *cfg,
                    int64_t now_us, struct ht_stalls **out);
void ht_stalls_free(struct ht_stalls *st);
const char *ht_stage_status_name(int status);
/* Renderings (cli.md "stalls"; metrics in the Prometheus text format).
 * Append to out. */
void ht_stalls_json(const struct ht_stalls *st, struct ht_buf *out);
void ht_stage_json(const struct ht_stage *g, struct ht_buf *out);
void ht_stalls_text(const struct ht_stalls *st, struct ht_buf *out);
void ht_stalls_metrics(const struct ht_stalls *st, struct ht_buf *out);

/* ---- Jaeger (jaeger.c; cli.md "trace --format jaeger", "Jaeger API") --
 *
 * A stitched request as one Jaeger trace: every span of every X-Ray trace
 * it spans, sync parents as CHILD_OF, each hop a FOLLOWS_FROM reference
 * from consumer to producer and a wait span of its own. The traceID is
 * the root's X-Ray trace id as 32 hex digits, or 16 zeros and the root's
 * span id when the root has no trace id.
 */
struct ht_jaeger_rec;

/* The Jaeger traceID of a request (32 hex digits + NUL). */
void ht_jaeger_trace_id(const struct ht_request *r, char out[33]);
/* A Jaeger trace id (32 or 16 hex digits) back to what the store
 * resolves: 0 and *trace (an X-Ray trace id: the requests rooted in it),
 * 1 and *root (a root span id; its request is found through its
 * summary's handle), HT_ERR_INPUT when it is not a Jaeger trace id. */
int ht_jaeger_parse_id(const char *s, struct ht_tid *trace,
                       struct ht_id8 *root);
/* One Jaeger trace object of requests that share a traceID (the first
 * one's), spans that several of them hold counted once. Appends to out. */
void ht_jaeger_trace_json(const struct ht_request *const *reqs, size_t n,
                          struct ht_buf *out);
/* `trace --format jaeger`: {"data":[trace, ...]}, one trace per traceID
 * among the result's requests. */
void ht_query_jaeger(const struct ht_result *r, struct ht_buf *out);
/* Whether one span of the request's Jaeger trace holds every tag
 * keys[i] = vals[i] (values compared as text: "true", "200", "12.500"). */
bool ht_jaeger_match_tags(const struct ht_request *r, const char *const *keys,
                          const char *const *vals, size_t ntags);
/* A span's Jaeger service name and operation name (the operation may be
 * made in `a`). */
const char *ht_jaeger_service(const struct ht_qspan *q);
const char *ht_jaeger_operation(const struct ht_qspan *q, struct ht_arena *a);
/* What Jaeger's search keeps of a request: its (service, operation, span
 * kind) triples and service-to-service edges (sync calls and hops),
 * strings borrowed from the request or made in `a`. */
void ht_jaeger_index(const struct ht_request *r, struct ht_arena *a,
                     struct ht_jaeger_rec *out);

/* ---- Jaeger's query API (jaeger_search.c; cli.md "Jaeger API") --------
 * Each renders the `data` member of Jaeger's answer into out and sets *n
 * to the number of items; errors are the store's. */

/* Searches stop after this many summaries looked at, or once the
 * requests held take this much memory (fewer traces than asked for). */
#define HT_JAEGER_MAX_EXAMINED 200000
#define HT_JAEGER_MAX_MEMORY ((size_t)256 << 20)

struct ht_jaeger_query {
    const char *service;            /* required */
    const char *operation;          /* NULL or "": any */
    int64_t start_us, end_us;       /* window on request start; INT64_MIN/MAX */
    int64_t min_dur_us, max_dur_us; /* 0: no bound */
    size_t limit;                   /* traces at most */
    const char *const *tag_keys;    /* every tag on one span */
    const char *const *tag_vals;
    size_t ntags;
};

/* ["service", ...] sorted. */
int ht_jaeger_services(struct ht_store *s, struct ht_buf *out, size_t *n);
/* Operations of a service: names only (each once, sorted), or
 * [{"name","spanKind"}] of the given kind (NULL or "": every kind). */
int ht_jaeger_operations(struct ht_store *s, const char *service,
                         const char *kind, bool names_only, struct ht_buf *out,
                         size_t *n);
/* [trace, ...] newest first: requests whose start is in the window, that
 * have a span of the service (and operation), whose end-to-end duration
 * is within bounds and that hold the tags. */
int ht_jaeger_find(struct ht_store *s, const struct ht_jaeger_query *q,
                   struct ht_buf *out, size_t *n);
/* [trace, ...] of an id: a Jaeger traceID this module gave, else any id
 * `trace` accepts (one trace per traceID among its requests).
 * HT_ERR_NOTFOUND (out holds []) when it names nothing. */
int ht_jaeger_get(struct ht_store *s, const char *id, struct ht_buf *out,
                  size_t *n);
/* [{"parent","child","callCount"}, ...]: service-to-service calls, hops
 * included, of the requests that started in (end - lookback, end]. */
int ht_jaeger_dependencies(struct ht_store *s, int64_t end_us,
                           int64_t lookback_us, struct ht_buf *out, size_t *n);
/* "Now" for a store: its newest event (the wall clock when it has none),
 * as retention measures it; a replayed store answers for its own time. */
int64_t ht_jaeger_store_now(struct ht_store *s);

/* ---- store-wide documents (report.c) ---------------------------------- */

/* `stats` (cli.md): counts of what the store holds, its size, rejected
 * payloads by reason; JSON (one line) or the text table. Appends to out. */
int ht_query_stats(struct ht_store *s, bool json, struct ht_buf *out);
/* `metrics` (cli.md): the store-wide metrics, then every stage's as of
 * now_us (ht_stalls_metrics), in the Prometheus text format 0.0.4.
 * Appends to out; an error of the stage evaluation is returned. */
int ht_query_metrics(struct ht_store *s, const struct ht_stall_cfg *cfg,
                     int64_t now_us, struct ht_buf *out);

/* Internal to query/: compute r->cp and skew warnings for one request. */
void ht__critical_path(struct ht_request *r, struct ht_arena *a);
/* Internal to query/: append a rendered JSON warning (kept as given, an
 * identical one is not added twice). */
void ht__add_warning(struct ht_arena *a, struct ht_request *r,
                     const char *json);

#endif
