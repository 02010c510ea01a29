/*
 * stages_prune.c - retention for the stall-detection state (layout in
 * stages.h): what ingest keeps per hop, per unresolved producer, per
 * unnamed REPORT and per time bucket goes once it is older than the
 * cut-off less the horizon, in bounded slices of one write transaction
 * each (ht_assembler.h, ht_stages_prune_slice).
 *
 * Two walks share a slice's budget:
 *   - the time index ('T'), oldest first, like store/prune.c's by_time: an
 *     entry names a hop key (its 'p' 'P' 'l' 'e' 'k' 'c' entries), a 'u'
 *     or an 'f' entry. The entry's latest time decides: before the cut,
 *     everything it names goes; else it is indexed again at that latest
 *     time, so each entry is visited a bounded number of times and a slice
 *     never walks what is still kept;
 *   - the time-bucketed records ('A', 'H') and the pending producer halves
 *     ('P'), whose keys end in their time: one seek per group of them (a
 *     stage, a consumer), its expired head taken, then a seek past the
 *     group. Where it stopped is kept by the caller (struct
 *     ht_stages_prune), so a pass resumes where the last slice left it.
 * Expired 'H' buckets are folded into their stage's HT__STG_FOLDED bucket:
 * the delay quantiles of `stalls` stay those of every delay the stage's
 * counters ('S') count, with one record per stage.
 *
 * Owned by assembler/. Keep in step with stages.c's writers.
 */
#define _GNU_SOURCE
#include "ht_assembler.h"
#include "ht_prune.h"
#include "stages.h"

#include <stdlib.h>
#include <string.h>

#define DEFAULT_BUDGET 1000
#define SLICE_US 25000 /* a slice stops walking after this much work */
#define MAXK HT__STG_MAXKEY

struct sp {
    struct ht_txn *t;
    struct ht_arena *a;
    int64_t cut;
    struct ht_stages_prune st; /* this slice's counts */
    int64_t unresolved_delta;
    int64_t deadline;  /* monotonic µs */
    bool buckets_only; /* the per-hop entries go with their epochs */
    int err;
};

static void chk(struct sp *p, int rc)
{
    if (!p->err && rc && rc != HT_ERR_NOTFOUND)
        p->err = rc;
}

static bool get(struct sp *p, const void *k, size_t kn, const void **v,
                size_t *vn)
{
    return !p->err && ht_store_get(p->t, ht__stg_db(*(const uint8_t *)k), k, kn,
                                   v, vn) == HT_ERR_OK;
}

static bool del(struct sp *p, const void *k, size_t kn)
{
    int rc;

    if (p->err)
        return false;
    rc = ht_store_del(p->t, ht__stg_db(*(const uint8_t *)k), k, kn);
    chk(p, rc);
    return rc == HT_ERR_OK;
}

static void put(struct sp *p, const void *k, size_t kn, const void *v,
                size_t vn)
{
    if (!p->err)
        chk(p,
            ht_store_put(p->t, ht__stg_db(*(const uint8_t *)k), k, kn, v, vn));
}

static void reindex(struct sp *p, int64_t ts, int kind, const void *name,
                    size_t nn)
{
    uint8_t k[MAXK];
    size_t kn = ht__stg_tkey(k, ts, kind, name, nn);

    if (kn)
        put(p, k, kn, "", 0);
}

/* A key of one type byte and a hop key (or request id). */
static size_t tk(uint8_t *k, int type, const void *name, size_t nn)
{
    k[0] = (uint8_t)type;
    memcpy(k + 1, name, nn);
    return nn + 1;
}

/* The 'P' key of a producer record (stages.c's pkey): via, res, prod, ts,
 * hop key. 0 when malformed. */
static size_t pkey_of(uint8_t *k, const uint8_t *v, size_t vn, const void *hk,
                      size_t hn)
{
    size_t n = 0, off = 42;

    k[n++] = 'P';
    k[n++] = v[0];
    for (int i = 0; i < 2; i++) {
        const uint8_t *z = memchr(v + off, 0, vn - off);
        size_t l;

        if (!z)
            return 0;
        l = strnlen((const char *)v + off, 120); /* stages.c's MAXNAME */
        if (n + l + 1 + 8 + hn > MAXK)
            return 0;
        memcpy(k + n, v + off, l);
        n += l;
        k[n++] = 0;
        off = (size_t)(z - v) + 1;
        if (off >= vn)
            return 0;
    }
    memcpy(k + n, v + 2, 8);
    n += 8;
    memcpy(k + n, hk, hn);
    return n + hn;
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* The latest time of a producer record ('p'): its end, or its consumption
 * once matched. INT64_MIN when malformed. */
static int64_t prec_latest(const uint8_t *v, size_t vn)
{
    int64_t ts;

    if (vn < 42)
        return INT64_MIN;
    ts = (int64_t)ht_be64_get(v + 2);
    return v[1] ? max64(ts, (int64_t)ht_be64_get(v + 10)) : ts;
}

/* Hop key hk's entries, seen through a 'T' entry (or the hop's waiting
 * 'P' half) at `seen`. */
static void visit_hop(struct sp *p, const uint8_t *hk, size_t hn, int64_t seen)
{
    uint8_t k[MAXK], pk[MAXK], lk[9];
    size_t kn, pkn = 0;
    const void *v;
    size_t vn;
    int64_t latest = INT64_MIN;
    bool any = false, hp = false, he = false, hkk = false, hc = false;
    bool sqs_pending = false;

    if (hn + 1 > MAXK)
        return;
    kn = tk(k, 'p', hk, hn);
    if (get(p, k, kn, &v, &vn)) {
        const uint8_t *r = v;

        hp = any = true;
        latest = max64(latest, prec_latest(r, vn));
        if (vn >= 42 && !r[1]) { /* still waiting: its 'P' (and 'l') too */
            pkn = pkey_of(pk, r, vn, hk, hn);
            if (r[0] == HT_VIA_SQS) {
                lk[0] = 'l';
                memcpy(lk + 1, r + 34, 8);
                sqs_pending = true;
            }
        }
    }
    kn = tk(k, 'e', hk, hn);
    if (get(p, k, kn, &v, &vn)) {
        he = any = true;
        if (vn >= 16)
            latest =
                max64(latest, (int64_t)ht_be64_get((const uint8_t *)v + 8));
    }
    kn = tk(k, 'k', hk, hn);
    if (get(p, k, kn, &v, &vn)) {
        hkk = any = true;
        if (vn >= 8)
            latest = max64(latest, (int64_t)ht_be64_get(v));
    }
    kn = tk(k, 'c', hk, hn);
    if (get(p, k, kn, &v, &vn)) {
        const uint8_t *z = memchr(v, 0, vn);

        hc = any = true;
        /* (a value too short for its time: the index entry's) */
        latest = max64(latest, z && (size_t)(z - (const uint8_t *)v) + 9 <= vn
                                   ? (int64_t)ht_be64_get(z + 1)
                                   : seen);
    }
    if (!any || p->err)
        return;
    if (latest >= p->cut) {
        reindex(p, latest, 'h', hk, hn);
        return;
    }
    if (pkn && del(p, pk, pkn))
        p->st.pending++;
    if (sqs_pending)
        del(p, lk, 9);
    if (hp)
        del(p, k, tk(k, 'p', hk, hn));
    if (he)
        del(p, k, tk(k, 'e', hk, hn));
    if (hkk)
        del(p, k, tk(k, 'k', hk, hn));
    if (hc)
        del(p, k, tk(k, 'c', hk, hn));
    p->st.hops++;
}

/* A producer waiting for its service ('u' span id + hop key): it goes
 * with its producer record. */
static void visit_unresolved(struct sp *p, const uint8_t *name, size_t nn)
{
    uint8_t k[MAXK];
    const void *v;
    size_t vn;
    int64_t latest = INT64_MIN;

    if (nn < 8 || nn + 1 > MAXK || !get(p, k, tk(k, 'u', name, nn), &v, &vn))
        return;
    if (get(p, k, tk(k, 'p', name + 8, nn - 8), &v, &vn))
        latest = prec_latest(v, vn);
    if (latest >= p->cut) {
        reindex(p, latest, 'u', name, nn);
        return;
    }
    if (del(p, k, tk(k, 'u', name, nn))) {
        p->unresolved_delta--;
        p->st.unresolved++;
    }
}

/* A REPORT waiting for its function's name ('f' request id). */
static void visit_report(struct sp *p, const uint8_t *name, size_t nn,
                         int64_t seen)
{
    uint8_t k[MAXK];
    const void *v;
    size_t vn, kn;
    struct ht_inv inv;
    int64_t last = seen;

    if (nn + 1 > MAXK)
        return;
    kn = tk(k, 'f', name, nn);
    if (!get(p, k, kn, &v, &vn))
        return;
    memset(&inv, 0, sizeof(inv));
    if (ht_inv_unpack(v, vn, p->a, &inv) == HT_ERR_OK)
        last = ht_inv_last_us(&inv);
    if (last >= p->cut) {
        reindex(p, last, 'f', name, nn);
        return;
    }
    if (del(p, k, kn))
        p->st.reports++;
}

/* ---- the time index ---------------------------------------------------- */

struct tcoll {
    int64_t cut;
    size_t budget, n;
    struct ht_buf keys; /* u32 length + key */
};

static int collect_t(void *ctx, const void *k, size_t kn, const void *v,
                     size_t vn)
{
    struct tcoll *c = ctx;
    uint32_t n = (uint32_t)kn;

    (void)v;
    (void)vn;
    if (c->n >= c->budget)
        return 1;
    if (kn >= 10 && (int64_t)(ht_be64_get((const uint8_t *)k + 1) ^
                              HT_BYTIME_SIGN) >= c->cut)
        return 1; /* oldest first: the rest is newer */
    ht_buf_add(&c->keys, &n, 4);
    ht_buf_add(&c->keys, k, kn);
    c->n++;
    return 0;
}

/* Up to `budget` expired 'T' entries; *more when the budget ran out. */
static void walk_index(struct sp *p, size_t budget, bool *more)
{
    struct tcoll c = {.cut = p->cut, .budget = budget};
    size_t done = 0;

    ht_buf_init(&c.keys);
    chk(p, ht_store_scan(p->t, HT_DB_HOPS, "T", 1, collect_t, &c));
    for (size_t off = 0; !p->err && off < c.keys.len; done++) {
        uint32_t kn;
        const uint8_t *k;
        int64_t ts;

        if (done % 32 == 31 && ht_now_mono_us() > p->deadline)
            break; /* the rest is for the next slice */
        memcpy(&kn, c.keys.data + off, 4);
        k = (const uint8_t *)c.keys.data + off + 4;
        off += 4 + kn;
        del(p, k, kn);
        if (kn < 10)
            continue; /* not one of ours: gone */
        ts = (int64_t)(ht_be64_get(k + 1) ^ HT_BYTIME_SIGN);
        if (k[9] == 'h')
            visit_hop(p, k + 10, kn - 10, ts);
        else if (k[9] == 'u')
            visit_unresolved(p, k + 10, kn - 10);
        else if (k[9] == 'f')
            visit_report(p, k + 10, kn - 10, ts);
        if (ht_arena_used(p->a) > (1u << 20))
            ht_arena_reset(p->a);
    }
    ht_buf_free(&c.keys);
    *more = c.n >= budget || done < c.n;
}

/* ---- time-keyed groups: 'A', 'H', 'P' ------------------------------------ */

/* The length of the group part of key k (type, via, the NUL-terminated
 * names before the time): 0 when k is not in a group or is malformed. */
static size_t group_len(const uint8_t *k, size_t kn)
{
    int names = k[0] == 'A' ? 2 : k[0] == 'H' ? 3 : k[0] == 'P' ? 2 : 0;
    size_t off = 2;

    if (!names || kn < 2)
        return 0;
    for (int i = 0; i < names; i++) {
        const uint8_t *z = memchr(k + off, 0, kn - off);

        if (!z)
            return 0;
        off = (size_t)(z - k) + 1;
    }
    return kn >= off + 8 ? off : 0;
}

struct gwalk {
    int64_t cut;
    int db;      /* the table walked: 'A' 'H' in stages, 'P' in hops */
    size_t left; /* entries this seek may still take */
    uint8_t grp[MAXK];
    size_t gn;         /* 0 until the first key of the walk */
    struct ht_buf got; /* expired: u32 kn, key, u32 vn, value */
    size_t n;
    uint8_t next[MAXK]; /* where the next seek goes */
    size_t nn;
    bool done; /* past the table's last group */
};

static void set_next(struct gwalk *w, const void *k, size_t kn)
{
    if (kn > MAXK)
        kn = MAXK;
    memcpy(w->next, k, kn);
    w->nn = kn;
}

static bool expired(const uint8_t *k, size_t gl, int64_t cut)
{
    int64_t t = (int64_t)ht_be64_get(k + gl);

    switch (k[0]) {
    case 'A':
        return t <= cut - HT__STG_ABUCKET_US;
    case 'H':
        return t != HT__STG_FOLDED && t <= cut - HT__STG_HBUCKET_US;
    default:
        return t < cut;
    }
}

static int walk_group(void *ctx, const void *kv, size_t kn, const void *v,
                      size_t vn)
{
    struct gwalk *w = ctx;
    const uint8_t *k = kv;
    uint32_t n32;

    if (!w->gn) {
        size_t gl;

        /* the first key of this seek: which group, or which next type */
        if (k[0] > 'P' || (w->db == HT_DB_STAGES && k[0] > 'H')) {
            w->done = true;
            return 1;
        }
        if (k[0] != 'A' && k[0] != 'H' && k[0] != 'P') {
            set_next(w, k[0] < 'A' ? "A" : k[0] < 'H' ? "H" : "P", 1);
            return 1;
        }
        gl = group_len(k, kn);
        if (!gl || gl > MAXK) {
            /* not a record of ours: step over it */
            set_next(w, k, kn < MAXK ? kn : MAXK - 1);
            w->next[w->nn++] = 0;
            return 1;
        }
        memcpy(w->grp, k, gl);
        w->gn = gl;
    } else if (kn < w->gn + 8 || memcmp(k, w->grp, w->gn) != 0) {
        set_next(w, k, kn); /* the next group starts here */
        return 1;
    }
    if (!expired(k, w->gn, w->cut)) {
        /* the rest of the group is newer: past it (its last name's NUL
         * made 0x01, which no key of the group reaches) */
        set_next(w, w->grp, w->gn);
        w->next[w->nn - 1] = 1;
        return 1;
    }
    if (!w->left) {
        set_next(w, k, kn); /* resume here */
        return 1;
    }
    n32 = (uint32_t)kn;
    ht_buf_add(&w->got, &n32, 4);
    ht_buf_add(&w->got, k, kn);
    n32 = (uint32_t)vn;
    ht_buf_add(&w->got, &n32, 4);
    ht_buf_add(&w->got, v, vn);
    w->n++;
    w->left--;
    return 0;
}

/* Adds a packed histogram (u16 index, u32 count pairs) to c. */
static void hist_add(int64_t *c, const uint8_t *v, size_t vn)
{
    for (size_t i = 0; i + 6 <= vn; i += 6) {
        unsigned idx = (unsigned)v[i] << 8 | v[i + 1];
        uint32_t n = (uint32_t)v[i + 2] << 24 | (uint32_t)v[i + 3] << 16 |
                     (uint32_t)v[i + 4] << 8 | v[i + 5];

        if (idx < HT__STG_NHIST)
            c[idx] += n;
    }
}

/* The expired 'H' buckets of one stage (group g) into its folded one. */
static void fold(struct sp *p, const uint8_t *grp, size_t gn, const int64_t *c)
{
    uint8_t k[MAXK];
    const void *v;
    size_t vn;
    int64_t *sum = calloc(HT__STG_NHIST, sizeof(*sum));
    struct ht_buf out;

    if (!sum) {
        chk(p, HT_ERR_NOMEM);
        return;
    }
    memcpy(k, grp, gn);
    ht_be64_put(k + gn, (uint64_t)HT__STG_FOLDED);
    if (get(p, k, gn + 8, &v, &vn))
        hist_add(sum, v, vn);
    ht_buf_init(&out);
    for (unsigned i = 0; i < HT__STG_NHIST; i++) {
        uint8_t r[6];
        int64_t x = sum[i] + c[i];
        uint32_t n = x > UINT32_MAX ? UINT32_MAX : (uint32_t)x;

        if (x <= 0)
            continue;
        r[0] = (uint8_t)(i >> 8);
        r[1] = (uint8_t)i;
        r[2] = (uint8_t)(n >> 24);
        r[3] = (uint8_t)(n >> 16);
        r[4] = (uint8_t)(n >> 8);
        r[5] = (uint8_t)n;
        ht_buf_add(&out, r, 6);
    }
    if (out.len)
        put(p, k, gn + 8, out.data, out.len);
    ht_buf_free(&out);
    free(sum);
}

/* One group's expired head, collected by walk_group. */
static void drop_group(struct sp *p, struct gwalk *w)
{
    int64_t *hist = NULL;

    if (w->grp[0] == 'H') {
        hist = calloc(HT__STG_NHIST, sizeof(*hist));
        if (!hist) {
            chk(p, HT_ERR_NOMEM);
            return;
        }
    }
    for (size_t off = 0; !p->err && off < w->got.len;) {
        uint32_t kn, vn;
        const uint8_t *k, *v;

        memcpy(&kn, w->got.data + off, 4);
        k = (const uint8_t *)w->got.data + off + 4;
        memcpy(&vn, k + kn, 4);
        v = k + kn + 4;
        off += 8 + kn + vn;
        if (k[0] == 'P') {
            /* a producer half still waiting: it goes with its hop key
             * (visit_hop: unless that was seen since), or alone when its
             * record is missing */
            uint8_t pk[MAXK];
            const void *pv;
            size_t pvn, hn = kn - w->gn - 8;

            if (hn + 1 <= MAXK &&
                get(p, pk, tk(pk, 'p', k + w->gn + 8, hn), &pv, &pvn))
                visit_hop(p, k + w->gn + 8, hn,
                          (int64_t)ht_be64_get(k + w->gn));
            else if (del(p, k, kn))
                p->st.pending++;
            continue;
        }
        if (!del(p, k, kn))
            continue;
        if (k[0] == 'H')
            hist_add(hist, v, vn);
        p->st.buckets++;
    }
    if (hist && !p->err)
        fold(p, w->grp, w->gn, hist);
    free(hist);
}

/* Seeks from *at (0 bytes: the start), one group at a time, until the
 * budget is spent (*more) or the last group is passed (*at reset): the
 * buckets in stages, then (unless they go with their epochs) the waiting
 * producer halves in hops. */
static void walk_groups(struct sp *p, size_t budget, uint8_t *at, size_t *atn,
                        bool *more)
{
    size_t left = budget;

    *more = false;
    while (!p->err && left && ht_now_mono_us() <= p->deadline) {
        struct gwalk w;

        memset(&w, 0, sizeof(w));
        w.cut = p->cut;
        w.left = left - 1; /* the seek itself is one */
        ht_buf_init(&w.got);
        if (!*atn) {
            at[0] = 'A';
            *atn = 1;
        }
        w.db = ht__stg_db(at[0]);
        chk(p, ht_store_scan_from(p->t, w.db, at, *atn, walk_group, &w));
        left = w.left;
        if (w.n)
            drop_group(p, &w);
        ht_buf_free(&w.got);
        if (p->err)
            return;
        if ((w.done || !w.nn) && w.db == HT_DB_STAGES && !p->buckets_only) {
            at[0] = 'P'; /* past the buckets: on in hops */
            *atn = 1;
            continue;
        }
        if (w.done || !w.nn) {
            *atn = 0; /* the end: the next pass starts over */
            return;
        }
        memcpy(at, w.next, w.nn);
        *atn = w.nn;
    }
    *more = true;
}

/* ---- slices ------------------------------------------------------------- */

static int slice_once(struct ht_store *s, int64_t cut, size_t budget,
                      bool *more, struct ht_stages_prune *out)
{
    struct sp p;
    uint8_t at[sizeof(out->at_)];
    size_t atn = out->at_n_;
    bool tmore = false, gmore = false;
    int rc;

    memset(&p, 0, sizeof(p));
    p.cut = cut;
    p.deadline = ht_now_mono_us() + SLICE_US;
    memcpy(at, out->at_, atn);
    rc = ht_store_begin(s, true, &p.t);
    if (rc)
        return rc;
    p.a = ht_arena_create();
    if (!p.a) {
        ht_store_abort(p.t);
        return HT_ERR_NOMEM;
    }
    p.buckets_only = out->buckets_only;
    if (!p.buckets_only)
        walk_index(&p, budget, &tmore);
    walk_groups(&p, budget / 2 + 16, at, &atn, &gmore);
    if (!p.err) {
        /* the watermark ingest reads (stages.c): what is older than the
         * cut-off is removed here, so it is not counted when it comes
         * again (a replay). Never past the newest event the store has
         * seen: a cut-off in the future (`prune --before` a later date,
         * to empty the store) must not make what comes next uncounted. */
        uint8_t b[8];
        int64_t w = cut, newest = ht_store_newest_event(p.t);

        if (w > newest)
            w = newest;
        if (newest != INT64_MIN && ht__stg_watermark(p.t) < w) {
            ht_be64_put(b, (uint64_t)w);
            put(&p, HT__STG_WATERMARK, sizeof(HT__STG_WATERMARK) - 1, b, 8);
        }
    }
    if (!p.err)
        chk(&p, ht__stg_unresolved_add(p.t, p.unresolved_delta));
    ht_arena_destroy(p.a);
    if (p.err) {
        ht_store_abort(p.t);
        return p.err;
    }
    rc = ht_store_commit(p.t);
    if (rc)
        return rc;
    *more = tmore || gmore;
    memcpy(out->at_, at, atn);
    out->at_n_ = atn;
    out->hops += p.st.hops;
    out->pending += p.st.pending;
    out->buckets += p.st.buckets;
    out->reports += p.st.reports;
    out->unresolved += p.st.unresolved;
    out->slices++;
    return HT_ERR_OK;
}

struct slice_args {
    int64_t cut;
    size_t budget;
    bool *more;
    struct ht_stages_prune *st;
};

static int slice_run(struct ht_store *s, void *ctx)
{
    struct slice_args *a = ctx;

    return slice_once(s, a->cut, a->budget, a->more, a->st);
}

int ht_stages_prune_slice_h(struct ht_store *s, int64_t cutoff_us,
                            int64_t horizon_us, size_t budget, bool *more,
                            struct ht_stages_prune *st)
{
    int64_t cut = cutoff_us;

    *more = false;
    if (horizon_us > 0)
        cut = cutoff_us > INT64_MIN / 2 + horizon_us ? cutoff_us - horizon_us
                                                     : INT64_MIN;
    if (cut <= INT64_MIN / 2)
        return HT_ERR_OK; /* nothing is that old */
    if (!budget)
        budget = DEFAULT_BUDGET;
    struct slice_args a = {cut, budget, more, st};

    return ht_store_write_growing(s, slice_run, &a);
}

int ht_stages_prune_slice(struct ht_store *s, int64_t cutoff_us, size_t budget,
                          bool *more, struct ht_stages_prune *st)
{
    return ht_stages_prune_slice_h(s, cutoff_us, HT_PRUNE_HORIZON_US, budget,
                                   more, st);
}

/* ---- whole epochs ---------------------------------------------------------
 *
 * Under `--retain` the per-hop entries (HT_DB_HOPS) go with their epoch
 * (ht_prune_epochs drops it whole) and this accounts for them in the same
 * transaction: what goes is counted, and "Nunresolved" loses the producers
 * that were still waiting for their service there ('u' entries no newer
 * epoch holds a copy of: a resolved one was deleted in every epoch).
 */
struct dropc {
    struct ht_txn *t;
    unsigned ep;
    uint64_t n, unresolved;
};

static int drop_u(void *ctx, const void *k, size_t kn, const void *v, size_t vn)
{
    struct dropc *c = ctx;

    (void)v;
    (void)vn;
    c->n++;
    if (!ht_store_in_newer(c->t, HT_DB_HOPS, c->ep, k, kn))
        c->unresolved++;
    return 0;
}

/* How many entries of type `type` epoch ep holds, added to *out. */
static int drop_count(struct ht_txn *t, unsigned ep, int type, uint64_t *out)
{
    uint8_t p = (uint8_t)type;
    uint64_t n = 0;
    int rc = ht_store_count_epoch(t, HT_DB_HOPS, ep, &p, 1, &n);

    *out += n;
    return rc;
}

/* ht_prune_epochs' hook, for the ep-th epoch (ctx a struct
 * ht_stages_prune). */
static int drop_epoch(void *ctx, struct ht_txn *t, unsigned ep, bool first)
{
    struct ht_stages_prune *st = ctx;
    struct dropc c = {.t = t, .ep = ep};
    int rc;

    if (first) /* a transaction redone counts again from nothing */
        memset(&st->drop_, 0, sizeof(st->drop_));
    if ((rc = drop_count(t, ep, 'p', &st->drop_.hops)) ||
        (rc = drop_count(t, ep, 'c', &st->drop_.hops)) ||
        (rc = drop_count(t, ep, 'P', &st->drop_.pending)) ||
        (rc = drop_count(t, ep, 'f', &st->drop_.reports)) ||
        (rc = ht_store_scan_epoch(t, HT_DB_HOPS, ep, "u", 1, drop_u, &c)))
        return rc;
    st->drop_.unresolved += c.n;
    return ht__stg_unresolved_add(t, -(int64_t)c.unresolved);
}

int ht_stages_prune_epochs(struct ht_store *s, int64_t before_us,
                           struct ht_stages_prune *sg,
                           struct ht_prune_stats *st)
{
    int rc = ht_prune_epochs(s, before_us, drop_epoch, sg, st);

    /* what the committed transaction counted (none when it failed) */
    if (rc == HT_ERR_OK) {
        sg->hops += sg->drop_.hops;
        sg->pending += sg->drop_.pending;
        sg->reports += sg->drop_.reports;
        sg->unresolved += sg->drop_.unresolved;
    }
    memset(&sg->drop_, 0, sizeof(sg->drop_));
    return rc;
}
