/*
 * agg_records.c - encodings and keys of the aggregates database (see
 * ht_agg_records.h): request summaries, per-route per-minute histogram
 * records and the log-linear histogram they are made of. Every value
 * starts with a format byte so it can evolve.
 *
 * Owned by store/. No knowledge of how requests are assembled; unpacking
 * never reads past the end of a value.
 */
#define _GNU_SOURCE
#include "ht_agg_records.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SUMMARY_FORMAT 1
#define HREC_FORMAT 1

/* ---- log-linear histogram ------------------------------------------------ */

uint32_t ht_agg_bin(int64_t v)
{
    int e;

    if (v < HT_AGG_BIN_SUB)
        return v < 0 ? 0 : (uint32_t)v;
    e = 63 - __builtin_clzll((unsigned long long)v);
    return (uint32_t)(HT_AGG_BIN_SUB + (e - 8) * HT_AGG_BIN_SUB +
                      (int)((v >> (e - 8)) - HT_AGG_BIN_SUB));
}

double ht_agg_bin_value(uint32_t idx)
{
    uint32_t k, sub;
    double lo, w;

    if (idx < HT_AGG_BIN_SUB)
        return idx;
    k = (idx - HT_AGG_BIN_SUB) / HT_AGG_BIN_SUB;
    sub = (idx - HT_AGG_BIN_SUB) % HT_AGG_BIN_SUB;
    lo = ldexp(HT_AGG_BIN_SUB + sub, (int)k);
    w = ldexp(1.0, (int)k);
    return lo + (w - 1) / 2;
}

void ht_agg_hist_free(struct ht_agg_hist *h)
{
    free(h->idx);
    free(h->cnt);
    memset(h, 0, sizeof(*h));
}

void ht_agg_hist_add(struct ht_agg_hist *h, uint32_t idx, int64_t d)
{
    uint32_t lo = 0, hi = h->n;

    /* values arrive mostly in order when unpacking: try the end first */
    if (h->n && h->idx[h->n - 1] < idx)
        lo = h->n;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;

        if (h->idx[mid] < idx)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < h->n && h->idx[lo] == idx) {
        h->cnt[lo] += d;
        if (h->cnt[lo] <= 0) {
            memmove(h->idx + lo, h->idx + lo + 1,
                    (h->n - lo - 1) * sizeof(*h->idx));
            memmove(h->cnt + lo, h->cnt + lo + 1,
                    (h->n - lo - 1) * sizeof(*h->cnt));
            h->n--;
        }
        return;
    }
    if (d <= 0)
        return; /* nothing to take away */
    if (h->n == h->cap) {
        uint32_t nc = h->cap ? h->cap * 2 : 16;
        uint32_t *ni = realloc(h->idx, nc * sizeof(*ni));
        int64_t *nn;

        HT_ASSERT(ni);
        h->idx = ni;
        nn = realloc(h->cnt, nc * sizeof(*nn));
        HT_ASSERT(nn);
        h->cnt = nn;
        h->cap = nc;
    }
    memmove(h->idx + lo + 1, h->idx + lo, (h->n - lo) * sizeof(*h->idx));
    memmove(h->cnt + lo + 1, h->cnt + lo, (h->n - lo) * sizeof(*h->cnt));
    h->idx[lo] = idx;
    h->cnt[lo] = d;
    h->n++;
}

/* ---- reading and writing fields ------------------------------------------ */

struct rd {
    const uint8_t *p, *end;
    bool bad;
};

static void rd_get(struct rd *r, void *out, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = true;
        memset(out, 0, n);
        return;
    }
    memcpy(out, r->p, n);
    r->p += n;
}

static int64_t rd_i64(struct rd *r)
{
    int64_t v;

    rd_get(r, &v, 8);
    return v;
}

static uint32_t rd_u32(struct rd *r)
{
    uint32_t v;

    rd_get(r, &v, 4);
    return v;
}

static uint8_t rd_u8(struct rd *r)
{
    uint8_t v;

    rd_get(r, &v, 1);
    return v;
}

static const char *rd_str(struct rd *r, struct ht_arena *a)
{
    const uint8_t *z;
    const char *s;

    if (r->bad)
        return "";
    z = memchr(r->p, 0, (size_t)(r->end - r->p));
    if (!z) {
        r->bad = true;
        return "";
    }
    s = ht_arena_strndup(a, (const char *)r->p, (size_t)(z - r->p));
    r->p = z + 1;
    return s;
}

static void put_i64(struct ht_buf *b, int64_t v)
{
    ht_buf_add(b, &v, 8);
}

static void put_u32(struct ht_buf *b, uint32_t v)
{
    ht_buf_add(b, &v, 4);
}

static void put_str(struct ht_buf *b, const char *s)
{
    ht_buf_adds(b, s ? s : "");
    ht_buf_addc(b, 0);
}

/* ---- histogram records --------------------------------------------------- */

static void hist_pack(const struct ht_agg_hist *h, struct ht_buf *b)
{
    put_u32(b, h->n);
    for (uint32_t i = 0; i < h->n; i++) {
        put_u32(b, h->idx[i]);
        put_i64(b, h->cnt[i]);
    }
}

static void hist_unpack(struct rd *r, struct ht_agg_hist *h)
{
    uint32_t n = rd_u32(r);

    for (uint32_t i = 0; i < n && !r->bad; i++) {
        uint32_t idx = rd_u32(r);
        int64_t c = rd_i64(r);

        if (!r->bad && idx < HT_AGG_BINS)
            ht_agg_hist_add(h, idx, c);
    }
}

void ht_agg_hrec_pack(const struct ht_agg_hrec *h, struct ht_buf *b)
{
    ht_buf_addc(b, HREC_FORMAT);
    put_i64(b, h->count);
    put_i64(b, h->errors);
    put_i64(b, h->faults);
    put_i64(b, h->throttles);
    put_i64(b, h->incomplete);
    hist_pack(&h->sync, b);
    hist_pack(&h->e2e, b);
}

int ht_agg_hrec_unpack(const void *v, size_t n, struct ht_agg_hrec *h)
{
    struct rd r = {v, (const uint8_t *)v + n, false};

    memset(h, 0, sizeof(*h));
    if (rd_u8(&r) != HREC_FORMAT)
        return HT_ERR_CORRUPT;
    h->count = rd_i64(&r);
    h->errors = rd_i64(&r);
    h->faults = rd_i64(&r);
    h->throttles = rd_i64(&r);
    h->incomplete = rd_i64(&r);
    hist_unpack(&r, &h->sync);
    hist_unpack(&r, &h->e2e);
    return r.bad ? HT_ERR_CORRUPT : HT_ERR_OK;
}

void ht_agg_hrec_free(struct ht_agg_hrec *h)
{
    ht_agg_hist_free(&h->sync);
    ht_agg_hist_free(&h->e2e);
}

/* ---- request summaries --------------------------------------------------- */

void ht_agg_summary_pack(const struct ht_agg_summary *s, struct ht_buf *b)
{
    ht_buf_addc(b, SUMMARY_FORMAT);
    ht_buf_addc(b, (char)s->flags);
    put_i64(b, s->start_us);
    put_i64(b, s->sync_us);
    put_i64(b, s->e2e_us);
    put_str(b, s->handle);
    put_str(b, s->api);
    put_str(b, s->stage);
    put_str(b, s->route);
    put_u32(b, s->nitems);
    for (uint32_t i = 0; i < s->nitems; i++) {
        ht_buf_addc(b, (char)s->items[i].kind);
        ht_buf_addc(b, (char)s->items[i].via);
        put_i64(b, s->items[i].us);
        put_str(b, s->items[i].service);
        put_str(b, s->items[i].resource);
    }
}

int ht_agg_summary_unpack(const void *v, size_t n, struct ht_arena *a,
                          struct ht_agg_summary *s)
{
    struct rd r = {v, (const uint8_t *)v + n, false};

    memset(s, 0, sizeof(*s));
    if (rd_u8(&r) != SUMMARY_FORMAT)
        return HT_ERR_CORRUPT;
    s->flags = rd_u8(&r);
    s->start_us = rd_i64(&r);
    s->sync_us = rd_i64(&r);
    s->e2e_us = rd_i64(&r);
    s->handle = rd_str(&r, a);
    s->api = rd_str(&r, a);
    s->stage = rd_str(&r, a);
    s->route = rd_str(&r, a);
    s->nitems = rd_u32(&r);
    /* an item takes at least 12 bytes: a count beyond that is corrupt */
    if (r.bad || s->nitems > n / 12)
        return HT_ERR_CORRUPT;
    s->items = ht_arena_alloc(a, (s->nitems + 1) * sizeof(*s->items));
    for (uint32_t i = 0; i < s->nitems; i++) {
        s->items[i].kind = rd_u8(&r);
        s->items[i].via = rd_u8(&r);
        s->items[i].us = rd_i64(&r);
        s->items[i].service = rd_str(&r, a);
        s->items[i].resource = rd_str(&r, a);
    }
    return r.bad ? HT_ERR_CORRUPT : HT_ERR_OK;
}

/* ---- keys ---------------------------------------------------------------- */

size_t ht_agg_route_key(const char *api, const char *stage, const char *route,
                        uint8_t *out, size_t cap)
{
    size_t al = strlen(api), sl = strlen(stage), rl = strlen(route);

    if (al + sl + 2 > cap)
        return 0;
    /* keep the key within LMDB's limit; a route this long is noise */
    if (al + sl + rl + 2 > cap)
        rl = cap - al - sl - 2;
    memcpy(out, api, al);
    out[al] = 0;
    memcpy(out + al + 1, stage, sl);
    out[al + 1 + sl] = 0;
    memcpy(out + al + sl + 2, route, rl);
    return al + sl + 2 + rl;
}

size_t ht_agg_key_summary(uint8_t out[9], const struct ht_id8 *root)
{
    out[0] = HT_AGG_K_SUMMARY;
    memcpy(out + 1, root->b, 8);
    return 9;
}

size_t ht_agg_key_window(uint8_t out[17], int64_t start_us,
                         const struct ht_id8 *root)
{
    out[0] = HT_AGG_K_WINDOW;
    ht_be64_put(out + 1, (uint64_t)start_us);
    memcpy(out + 9, root->b, 8);
    return 17;
}

size_t ht_agg_key_trace(uint8_t out[17], const struct ht_tid *tid)
{
    out[0] = HT_AGG_K_TRACE;
    memcpy(out + 1, tid->b, 16);
    return 17;
}

size_t ht_agg_key_hist(uint8_t *out, int64_t start_us, const char *api,
                       const char *stage, const char *route)
{
    size_t kn = ht_agg_route_key(api, stage, route, out + 9, HT_KEY_MAX - 9);

    if (!kn)
        return 0;
    out[0] = HT_AGG_K_HIST;
    ht_be64_put(out + 1, (uint64_t)(start_us / HT_AGG_BUCKET_US));
    return kn + 9;
}

size_t ht_agg_key_template(uint8_t *out, const char *api, const char *stage,
                           const char *url_route)
{
    size_t kn =
        ht_agg_route_key(api, stage, url_route, out + 1, HT_KEY_MAX - 1);

    if (!kn)
        return 0;
    out[0] = HT_AGG_K_TEMPLATE;
    return kn + 1;
}

/* ---- Jaeger search records ----------------------------------------------- */

#define JAEGER_FORMAT 1

void ht_jaeger_rec_pack(const struct ht_jaeger_rec *j, struct ht_buf *b)
{
    ht_buf_addc(b, JAEGER_FORMAT);
    put_u32(b, j->nops);
    for (uint32_t i = 0; i < j->nops; i++) {
        put_str(b, j->ops[i].service);
        put_str(b, j->ops[i].operation);
        put_str(b, j->ops[i].kind);
    }
    put_u32(b, j->nedges);
    for (uint32_t i = 0; i < j->nedges; i++) {
        put_str(b, j->edges[i].parent);
        put_str(b, j->edges[i].child);
        put_u32(b, j->edges[i].calls);
    }
}

int ht_jaeger_rec_unpack(const void *v, size_t n, struct ht_arena *a,
                         struct ht_jaeger_rec *j)
{
    struct rd r = {v, (const uint8_t *)v + n, false};

    memset(j, 0, sizeof(*j));
    if (rd_u8(&r) != JAEGER_FORMAT)
        return HT_ERR_CORRUPT;
    j->nops = rd_u32(&r);
    /* an operation takes at least 3 bytes, an edge 6 */
    if (r.bad || j->nops > n / 3)
        return HT_ERR_CORRUPT;
    j->ops = ht_arena_alloc(a, (j->nops + 1) * sizeof(*j->ops));
    for (uint32_t i = 0; i < j->nops; i++) {
        j->ops[i].service = rd_str(&r, a);
        j->ops[i].operation = rd_str(&r, a);
        j->ops[i].kind = rd_str(&r, a);
    }
    j->nedges = rd_u32(&r);
    if (r.bad || j->nedges > n / 6)
        return HT_ERR_CORRUPT;
    j->edges = ht_arena_alloc(a, (j->nedges + 1) * sizeof(*j->edges));
    for (uint32_t i = 0; i < j->nedges; i++) {
        j->edges[i].parent = rd_str(&r, a);
        j->edges[i].child = rd_str(&r, a);
        j->edges[i].calls = rd_u32(&r);
    }
    return r.bad ? HT_ERR_CORRUPT : HT_ERR_OK;
}

size_t ht_agg_key_jaeger(uint8_t out[9], const struct ht_id8 *root)
{
    out[0] = HT_AGG_K_JAEGER;
    memcpy(out + 1, root->b, 8);
    return 9;
}

size_t ht_agg_key_jcatalog(uint8_t *out, const char *service,
                           const char *operation, const char *kind)
{
    size_t sl = strlen(service), ol = strlen(operation), kl = strlen(kind);

    if (1 + sl + 1 + ol + 1 + kl > HT_KEY_MAX)
        return 0;
    out[0] = HT_AGG_K_JCATALOG;
    memcpy(out + 1, service, sl);
    out[1 + sl] = 0;
    memcpy(out + 2 + sl, operation, ol);
    out[2 + sl + ol] = 0;
    memcpy(out + 3 + sl + ol, kind, kl);
    return 3 + sl + ol + kl;
}

bool ht_agg_jcatalog_split(const void *k, size_t kn, struct ht_arena *a,
                           const char **service, const char **operation,
                           const char **kind)
{
    const char *p = k, *z1, *z2;

    if (kn < 3 || p[0] != HT_AGG_K_JCATALOG)
        return false;
    z1 = memchr(p + 1, 0, kn - 1);
    if (!z1)
        return false;
    z2 = memchr(z1 + 1, 0, (size_t)(p + kn - (z1 + 1)));
    if (!z2)
        return false;
    *service = ht_arena_strndup(a, p + 1, (size_t)(z1 - (p + 1)));
    *operation = ht_arena_strndup(a, z1 + 1, (size_t)(z2 - (z1 + 1)));
    *kind = ht_arena_strndup(a, z2 + 1, (size_t)(p + kn - (z2 + 1)));
    return true;
}
