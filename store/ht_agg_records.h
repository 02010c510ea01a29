/*
 * ht_agg_records.h - the records of the aggregates database (HT_DB_AGG):
 * request summaries, their time index, the roots each trace was last seen
 * in, per-route per-minute histograms and learned route templates. Their
 * keys, their binary encodings and the log-linear histogram they share.
 *
 *   'S' root span id (8)            -> summary of one request
 *   'W' start µs (8, BE) + root (8) -> "" : summaries in time order
 *   'T' trace id (16)               -> root ids (8 each, in id order) of
 *                                      the requests the trace was last
 *                                      seen in; the id starts with its
 *                                      epoch seconds, so these are in
 *                                      time order too
 *   'H' minute (8, BE) + route key  -> histogram record of that route's
 *                                      requests starting in that minute
 *   'U' route key of a URL route    -> the route template it stands for
 *   'J' root span id (8)            -> what Jaeger's search keeps of the
 *                                      request (ht_jaeger_rec): its
 *                                      services' operations and the
 *                                      service-to-service edges
 *   'V' service NUL operation NUL span kind
 *                                   -> u64 (LE): how many 'J' records
 *                                      hold that triple (the catalogue of
 *                                      /api/services and operations)
 * A route key is "api NUL stage NUL route".
 *
 * Owned by store/. Written by maint/ (the aggregate update), read by
 * query/agg.c. It knows how the records are laid out, not how requests
 * are assembled or summarized. Unpacking never trusts its input.
 */
#ifndef HT_AGG_RECORDS_H
#define HT_AGG_RECORDS_H

#include "ht_store.h"

enum {
    HT_AGG_K_SUMMARY = 'S',
    HT_AGG_K_WINDOW = 'W',
    HT_AGG_K_TRACE = 'T',
    HT_AGG_K_HIST = 'H',
    HT_AGG_K_TEMPLATE = 'U',
    HT_AGG_K_JAEGER = 'J',
    HT_AGG_K_JCATALOG = 'V'
};

/* Width of a histogram bucket in time (the 'H' key's minute). */
#define HT_AGG_BUCKET_US 60000000LL
/* Roots remembered per trace ('T' value). */
#define HT_AGG_MAX_T_ROOTS 4096

/* ---- log-linear histogram ------------------------------------------------
 * Values are µs. Below 256 µs every value has its own bin; above, each
 * power of two is split in 256 bins, so a bin is at most 1/256 of its
 * lower bound wide and its midpoint is within 1/512 (0.2 %) of any value
 * in it. */
#define HT_AGG_BIN_SUB 256
#define HT_AGG_BINS (HT_AGG_BIN_SUB + 56 * HT_AGG_BIN_SUB)

/* The bin of a latency in µs (negative values go to bin 0). */
uint32_t ht_agg_bin(int64_t us);
/* The value a bin reports: its midpoint, in µs. */
double ht_agg_bin_value(uint32_t bin);

/* A sparse histogram: bins in increasing order, counts > 0. The arrays
 * are owned (ht_agg_hist_free). */
struct ht_agg_hist {
    uint32_t n, cap;
    uint32_t *idx;
    int64_t *cnt;
};

/* Adds d (may be negative) to a bin; a bin that falls to 0 or below is
 * removed. Aborts on allocation failure. */
void ht_agg_hist_add(struct ht_agg_hist *h, uint32_t bin, int64_t d);
void ht_agg_hist_free(struct ht_agg_hist *h);

/* What one route's requests of one minute add up to. */
struct ht_agg_hrec {
    int64_t count, errors, faults, throttles, incomplete;
    struct ht_agg_hist sync, e2e;
};

void ht_agg_hrec_pack(const struct ht_agg_hrec *h, struct ht_buf *out);
/* Fills *out (owned: ht_agg_hrec_free, also after an error); a malformed
 * value is HT_ERR_CORRUPT and leaves what was read before the fault. */
int ht_agg_hrec_unpack(const void *v, size_t n, struct ht_agg_hrec *out);
void ht_agg_hrec_free(struct ht_agg_hrec *h);

/* ---- request summaries --------------------------------------------------- */

enum {
    HT_AGG_S_PENDING = 1, /* a write of the request still awaits its consumer */
    HT_AGG_S_ERROR = 2,
    HT_AGG_S_FAULT = 4,
    HT_AGG_S_THROTTLE = 8
};

/* Critical-path time of one (kind, via, service, resource). */
struct ht_agg_item {
    uint8_t kind, via; /* enum ht_cp_kind (query/), enum ht_via */
    int64_t us;
    const char *service, *resource;
};

struct ht_agg_summary {
    uint8_t flags; /* HT_AGG_S_* */
    int64_t start_us, sync_us, e2e_us;
    const char *handle; /* an id that resolves back to the root */
    const char *api, *stage, *route;
    uint32_t nitems;
    struct ht_agg_item *items;
};

void ht_agg_summary_pack(const struct ht_agg_summary *s, struct ht_buf *out);
/* Strings and items are copied into `a`. HT_ERR_CORRUPT on a malformed
 * value. */
int ht_agg_summary_unpack(const void *v, size_t n, struct ht_arena *a,
                          struct ht_agg_summary *out);

/* ---- Jaeger search records ('J', 'V') ------------------------------------ */

/* Triples and edges kept per request at most (a request of more has the
 * first ones; search by a later one misses it). */
#define HT_JAEGER_MAX_OPS 256
#define HT_JAEGER_MAX_EDGES 256

struct ht_jaeger_op {
    const char *service, *operation, *kind;
};

struct ht_jaeger_edge {
    const char *parent, *child;
    uint32_t calls;
};

struct ht_jaeger_rec {
    uint32_t nops;
    struct ht_jaeger_op *ops;
    uint32_t nedges;
    struct ht_jaeger_edge *edges;
};

void ht_jaeger_rec_pack(const struct ht_jaeger_rec *r, struct ht_buf *out);
/* Strings are copied into `a`. HT_ERR_CORRUPT on a malformed value. */
int ht_jaeger_rec_unpack(const void *v, size_t n, struct ht_arena *a,
                         struct ht_jaeger_rec *out);
/* 'J' + root: 9 bytes. */
size_t ht_agg_key_jaeger(uint8_t out[9], const struct ht_id8 *root);
/* 'V' + service NUL operation NUL kind; out holds HT_KEY_MAX bytes. 0
 * when it does not fit (such a triple is not catalogued). */
size_t ht_agg_key_jcatalog(uint8_t *out, const char *service,
                           const char *operation, const char *kind);
/* The three strings of a 'V' key, pointing into a copy in `a`; false
 * when the key is malformed. */
bool ht_agg_jcatalog_split(const void *k, size_t kn, struct ht_arena *a,
                           const char **service, const char **operation,
                           const char **kind);

/* ---- keys ---------------------------------------------------------------- */

/* "api NUL stage NUL route" into out (cap bytes); a route too long for
 * cap is cut. Returns the length, 0 when not even api and stage fit. */
size_t ht_agg_route_key(const char *api, const char *stage, const char *route,
                        uint8_t *out, size_t cap);
/* 'S' + root: 9 bytes. */
size_t ht_agg_key_summary(uint8_t out[9], const struct ht_id8 *root);
/* 'W' + start + root: 17 bytes. */
size_t ht_agg_key_window(uint8_t out[17], int64_t start_us,
                         const struct ht_id8 *root);
/* 'T' + trace id: 17 bytes. */
size_t ht_agg_key_trace(uint8_t out[17], const struct ht_tid *tid);
/* 'H' + minute of start_us + route key; out holds HT_KEY_MAX bytes.
 * 0 when the key cannot be made. */
size_t ht_agg_key_hist(uint8_t *out, int64_t start_us, const char *api,
                       const char *stage, const char *route);
/* 'U' + route key; out holds HT_KEY_MAX bytes. 0 when it does not fit. */
size_t ht_agg_key_template(uint8_t *out, const char *api, const char *stage,
                           const char *url_route);

#endif
