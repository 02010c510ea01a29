/*
 * qgraph.h - the query graph shared by the files of query/: nodes and
 * invocations loaded lazily from the store, the hops between them, and the
 * small containers they use. Private to query/: nothing outside includes it.
 *
 * graph.c loads nodes and invocations and attributes batch work to
 * requests; hops.c resolves hops; request.c resolves ids and assembles
 * requests. Everything lives in the query's arena and dies with its result.
 */
#ifndef HT_QGRAPH_H
#define HT_QGRAPH_H

#include "ht_query.h"

struct ment {
    uint64_t h;
    const void *k;
    size_t kn;
    void *v;
};

struct map {
    struct ment *e;
    size_t cap, n;
};

struct vec {
    void **p;
    size_t n, cap;
};

struct qinv;

enum { ATTR_UNKNOWN, ATTR_CORR, ATTR_SHARED };

struct qnode {
    struct ht_span s;
    bool synthetic;
    struct qinv *inv; /* invocation this node is the top of */
    bool inv_done;
    struct qnode *parent;
    bool parent_done;
    struct vec kids;
    bool kids_done;
    struct qinv *owner;
    bool owner_done;
    int attr_state;
    const char *attr;
    unsigned gen;   /* the request walk that last took this node */
    int idx;        /* its index in that request's spans */
    unsigned cgen;  /* the collect_inv_spans walk that last took it */
    struct vec out; /* hops out of it (ht__q_outgoing), once out_done */
    bool out_done;
};

/* The first non-empty route, API id and stage of API Gateway facts, in
 * the order they are taken (a request's entry point). */
struct qgw {
    const char *route, *api, *stage;
};
/* Takes what g lacks of an API Gateway fact's route, API id and stage;
 * whether g has all three. */
bool ht__gw_take(struct qgw *g, const char *route, const char *api,
                 const char *stage);

struct qinv {
    const char *rid;
    struct ht_inv rec;
    bool has_rec;
    struct ht_fact *recs;
    size_t nrecs;
    struct ht_fact *lines;
    size_t nlines;
    struct qnode *top;
    bool top_done;
    struct vec corrs; /* distinct record correlation ids */
    bool batch;
    const char *corr; /* its one correlation id, NULL for batches */
    bool writes_assigned;
    bool exists;   /* the store holds its record (HT_DB_INV) */
    bool partial;  /* only its record is read yet (see inv_exists) */
    struct vec in; /* hops into it (ht__q_incoming), once in_done */
    bool in_done;
    struct tgt_ctx *lambda; /* its Lambda request id key's targets, once read */
    struct qgw gw;          /* its API Gateway facts', read with its facts */
};

struct qhop {
    struct qnode *prod;
    struct qinv *cons;
    const struct ht_fact *rec;
    uint8_t via;
    const char *resource;
    const char *evidence;
};

/* The parent -> child pairs of one trace, read from its range of nodes
 * (sorted by parent): every trace a query reads children in is kept, by
 * trace id (16 bytes of pairs per node: little next to the nodes). */
struct kcache {
    struct ht_tid trace;
    struct ht_id8 *pairs; /* parent, child, parent, child, ... */
    size_t n;             /* pairs */
    struct ht_id8 *ids;   /* every span id of the range, in key order */
    size_t nids;
    bool whole; /* ids and pairs are the whole range */
};

struct ktab {
    struct kcache **e; /* open addressing, in the query's arena */
    size_t cap, n;
};

/* The span ids a key prefix (HT_K_HEADER, HT_K_LINK) names, read whole
 * once a query has asked for enough of them one by one: most spans have
 * no such key, and one scan of a small range answers those without a
 * lookup each. A range too large to be worth it is not read (state
 * KS_LARGE) and every id is looked up as before. */
enum { KS_UNKNOWN, KS_LOADED, KS_LARGE };
struct keyset {
    uint64_t *k; /* open addressing, 0 empty (id 0 kept in `zero`) */
    size_t cap, n;
    bool zero;
    int state;
    long asks; /* lookups made while KS_UNKNOWN */
};
#define KS_ASKS 1024 /* lookups before the range is read */
#define KS_MAX 16384 /* entries read at most (16 per lookup made) */

struct q {
    struct ktab kc;
    struct keyset ks_header, ks_link;
    struct ht_txn *t;
    struct ht_arena *a;
    struct map spans;   /* id8 -> qnode */
    struct map invs;    /* request id -> qinv */
    struct map pairs;   /* "via\0corr" -> struct vec of qhop */
    struct map records; /* key prefix + record id -> struct rec_targets
                           (hops.c) */
    unsigned gen, cgen;
    long loads;        /* nodes and invocations loaded: the work bound */
    bool truncated;    /* the bound was hit: the answer may be partial */
    int64_t newest_us; /* newest span start in the store, once known */
    bool newest_done;
};

/* Work per query is bounded: a pathological id (a trace id on a million
 * spans) answers with what fits and a `truncated` warning. */
#define MAX_LOADS 2000000
#define MAX_TARGETS 200000
#define MAX_DEPTH 2000

/* Collect the targets of one key. */
struct tgt_ctx {
    struct q *q;
    struct vec spans; /* struct ht_id8 * */
    struct vec invs;  /* const char * request ids */
    size_t eager;     /* nodes of a trace's range taken whole */
};

/* A write whose subsegment failed (error, throttle or fault: a throttled
 * PutItem, a faulted PutRecord) wrote nothing: it produces no record and
 * waits for no consumer. */
#define HT_SPAN_FAILED (HT_SPAN_ERROR | HT_SPAN_FAULT | HT_SPAN_THROTTLE)
static inline bool ht__write_failed(const struct ht_span *s)
{
    return (s->flags & HT_SPAN_WRITE) && (s->flags & HT_SPAN_FAILED);
}

void *ht__map_get(struct map *m, const void *k, size_t kn);
void ht__map_put(struct map *m, const void *k, size_t kn, void *v);
void ht__map_free(struct map *m);
void ht__vec_push(struct ht_arena *a, struct vec *v, void *x);
bool ht__ptr_seen(struct ht_arena *a, struct map *m, const void *x);
bool ht__vec_has(const struct vec *v, const void *x);
bool ht__streq(const char *a, const char *b);
void ht__targets(struct q *q, char prefix, const void *p, size_t n,
                 struct tgt_ctx *out);
void ht__targets_s(struct q *q, char prefix, const char *s,
                   struct tgt_ctx *out);
/* True when no key `prefix` + span id exists (HT_K_HEADER or HT_K_LINK
 * only): the lookup can be skipped. False means "look it up". */
bool ht__key_absent(struct q *q, char prefix, const struct ht_id8 *id);
struct qnode *ht__q_span(struct q *q, const struct ht_id8 *id);
struct qinv *ht__q_inv(struct q *q, const char *rid);
struct qnode *ht__q_parent(struct q *q, struct qnode *n);
struct vec *ht__q_kids(struct q *q, struct qnode *n);
struct qnode *ht__q_inv_top(struct q *q, struct qinv *inv);
struct qinv *ht__q_node_inv(struct q *q, struct qnode *n);
struct qinv *ht__q_owner(struct q *q, struct qnode *n);
int ht__q_attr(struct q *q, struct qnode *n, const char **corr);
void ht__collect_inv_spans(struct q *q, struct qnode *n, struct vec *out,
                           int depth);
/* Hops into an invocation / out of a producer span, worked out once per
 * query graph: `out` starts empty and shares the kept array (read it, do
 * not change its elements). */
void ht__q_incoming(struct q *q, struct qinv *inv, struct vec *out);
void ht__q_outgoing(struct q *q, struct qnode *p, struct vec *out);

#endif
