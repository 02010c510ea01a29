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
 * never blocks the writer.
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
};

struct ht_qhop {
    int from, to; /* span indexes: producer call, consumer invocation */
    uint8_t via;  /* enum ht_via */
    const char *resource;
    const char *evidence;
    double wait_ms;
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

/* Renderings (cli.md "trace"). Append to out. */
void ht_query_json(const struct ht_result *r, struct ht_buf *out);
void ht_query_text(const struct ht_result *r, struct ht_buf *out);
void ht_query_dot(const struct ht_result *r, struct ht_buf *out);

/* Internal to query/: compute r->cp and skew warnings for one request. */
void ht__critical_path(struct ht_request *r, struct ht_arena *a);
/* Internal to query/: append a rendered JSON warning (kept as given, an
 * identical one is not added twice). */
void ht__add_warning(struct ht_arena *a, struct ht_request *r,
                     const char *json);

#endif
