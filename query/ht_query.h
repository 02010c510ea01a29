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

/* Internal to query/: compute r->cp and skew warnings for one request. */
void ht__critical_path(struct ht_request *r, struct ht_arena *a);
/* Internal to query/: append a rendered JSON warning (kept as given, an
 * identical one is not added twice). */
void ht__add_warning(struct ht_arena *a, struct ht_request *r,
                     const char *json);

#endif
