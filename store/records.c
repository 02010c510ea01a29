/*
 * records.c - the compact binary encodings of stored records: spans,
 * invocations and invocation facts. Fixed-size fields first, then strings
 * as varint length + 1 (0 = absent) and bytes. Every record starts with a
 * format byte so it can evolve.
 *
 * Owned by store/. Unpacking never trusts its input: a short or malformed
 * value is HT_ERR_CORRUPT, never a read past the end.
 */
#define _GNU_SOURCE
#include "ht_store.h"

#include <string.h>

#define SPAN_FORMAT 1
#define INV_FORMAT 1
#define FACT_FORMAT 1
/* FACT_FORMAT, then the upstream hop a record names (up_via, up_id,
 * up_resource, up_sent_us): written only by records that name one, so every
 * other fact keeps its bytes (and its content hash) */
#define FACT_FORMAT_UP 2

size_t ht_key_make(uint8_t *out, char prefix, const void *p, size_t n)
{
    out[0] = (uint8_t)prefix;
    if (n + 1 <= HT_KEY_MAX) {
        memcpy(out + 1, p, n);
        return n + 1;
    }
    /* keep a readable head, make it unique with a hash of the whole */
    memcpy(out + 1, p, HT_KEY_MAX - 9);
    ht_be64_put(out + HT_KEY_MAX - 8, ht_hash64(p, n));
    return HT_KEY_MAX;
}

/* ---- packed text ids ---------------------------------------------------- */

/* Lowercase hex only: an uppercase UUID must round-trip as itself. */
static int hexdig(char c)
{
    return c >= 'A' && c <= 'F' ? -1 : ht_hex_tab[(unsigned char)c];
}

size_t ht_id_pack(const char *s, size_t n, uint8_t *out)
{
    /* where each byte's two digits start in a lower-case UUID */
    static const uint8_t at[16] = {0,  2,  4,  6,  9,  11, 14, 16,
                                   19, 21, 24, 26, 28, 30, 32, 34};

    if (n == 36 && s[8] == '-' && s[13] == '-' && s[18] == '-' &&
        s[23] == '-') {
        uint8_t b[16];
        int bad = 0;

        for (size_t i = 0; i < 16; i++) {
            int hi = hexdig(s[at[i]]), lo = hexdig(s[at[i] + 1]);

            bad |= hi | lo; /* negative once any is not a digit */
            b[i] = (uint8_t)((unsigned)hi << 4 | (unsigned)lo);
        }
        if (bad >= 0) {
            out[0] = 1;
            memcpy(out + 1, b, 16);
            return 17;
        }
    }
    out[0] = 0;
    memcpy(out + 1, s, n);
    return n + 1;
}

size_t ht_id_unpack(const uint8_t *p, size_t n, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";

    if (n == 17 && p[0] == 1 && cap > 36) {
        size_t o = 0;

        for (size_t i = 0; i < 16; i++) {
            if (i == 4 || i == 6 || i == 8 || i == 10)
                out[o++] = '-';
            out[o++] = hex[p[1 + i] >> 4];
            out[o++] = hex[p[1 + i] & 15];
        }
        out[o] = '\0';
        return o;
    }
    if (n >= 1 && p[0] == 0 && n - 1 < cap) {
        memcpy(out, p + 1, n - 1);
        out[n - 1] = '\0';
        return n - 1;
    }
    return 0;
}

size_t ht_key_make_id(uint8_t *out, char prefix, const char *s)
{
    uint8_t packed[HT_KEY_MAX + 1];
    size_t n = strlen(s);

    if (n > HT_KEY_MAX - 2)
        return ht_key_make(out, prefix, s, n); /* shortened with a hash */
    n = ht_id_pack(s, n, packed);
    return ht_key_make(out, prefix, packed, n);
}

/* ---- writer / reader -------------------------------------------------- */

static void put_u64(struct ht_buf *b, uint64_t v)
{
    uint8_t tmp[10];
    int n = 0;

    do {
        tmp[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            tmp[n] |= 0x80;
        n++;
    } while (v);
    ht_buf_add(b, tmp, (size_t)n);
}

static void put_i64(struct ht_buf *b, int64_t v)
{
    /* zigzag */
    put_u64(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

static void put_str(struct ht_buf *b, const char *s)
{
    if (!s) {
        put_u64(b, 0);
        return;
    }
    size_t n = strlen(s);
    put_u64(b, n + 1);
    ht_buf_add(b, s, n);
}

struct rd {
    const uint8_t *p, *end;
    bool bad;
};

static uint64_t get_u64(struct rd *r)
{
    uint64_t v = 0;
    int shift = 0;

    while (r->p < r->end && shift < 64) {
        uint8_t c = *r->p++;

        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80))
            return v;
        shift += 7;
    }
    r->bad = true;
    return 0;
}

static int64_t get_i64(struct rd *r)
{
    uint64_t u = get_u64(r);

    return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

static const char *get_str(struct rd *r, struct ht_arena *a)
{
    uint64_t n = get_u64(r);

    if (r->bad || n == 0)
        return NULL;
    n--;
    if ((uint64_t)(r->end - r->p) < n) {
        r->bad = true;
        return NULL;
    }
    const char *s = ht_arena_strndup(a, (const char *)r->p, (size_t)n);
    r->p += n;
    return s;
}

static void get_bytes(struct rd *r, void *out, size_t n)
{
    if ((size_t)(r->end - r->p) < n) {
        r->bad = true;
        memset(out, 0, n);
        return;
    }
    memcpy(out, r->p, n);
    r->p += n;
}

/* ---- spans ----------------------------------------------------------- */

void ht_span_pack(const struct ht_span *s, struct ht_buf *out)
{
    uint8_t fmt = SPAN_FORMAT;

    ht_buf_add(out, &fmt, 1);
    ht_buf_add(out, s->id.b, 8);
    ht_buf_add(out, s->parent.b, 8);
    ht_buf_add(out, s->trace.b, 16);
    put_i64(out, s->start_us);
    put_i64(out, s->end_us - s->start_us);
    put_u64(out, s->flags);
    put_u64(out, s->kind);
    put_u64(out, s->via);
    put_u64(out, s->http_status);
    put_str(out, s->name);
    put_str(out, s->origin);
    put_str(out, s->operation);
    put_str(out, s->resource);
    put_str(out, s->request_id);
    put_str(out, s->ext_request_id);
    put_str(out, s->message_id);
    put_str(out, s->sequence);
    put_str(out, s->corr);
    put_str(out, s->api_id);
    put_str(out, s->stage);
    put_str(out, s->method);
    put_str(out, s->url);
    put_u64(out, s->nlinks);
    for (uint32_t i = 0; i < s->nlinks; i++) {
        ht_buf_add(out, s->links[i].trace.b, 16);
        ht_buf_add(out, s->links[i].id.b, 8);
    }
}

int ht_span_unpack(const void *v, size_t n, struct ht_arena *a,
                   struct ht_span *s)
{
    struct rd r = {v, (const uint8_t *)v + n, false};
    uint8_t fmt = 0;

    memset(s, 0, sizeof(*s));
    get_bytes(&r, &fmt, 1);
    if (r.bad || fmt != SPAN_FORMAT)
        return HT_ERR_CORRUPT;
    get_bytes(&r, s->id.b, 8);
    get_bytes(&r, s->parent.b, 8);
    get_bytes(&r, s->trace.b, 16);
    s->start_us = get_i64(&r);
    s->end_us = s->start_us + get_i64(&r);
    s->flags = (uint32_t)get_u64(&r);
    s->kind = (uint8_t)get_u64(&r);
    s->via = (uint8_t)get_u64(&r);
    s->http_status = (uint16_t)get_u64(&r);
    s->name = get_str(&r, a);
    s->origin = get_str(&r, a);
    s->operation = get_str(&r, a);
    s->resource = get_str(&r, a);
    s->request_id = get_str(&r, a);
    s->ext_request_id = get_str(&r, a);
    s->message_id = get_str(&r, a);
    s->sequence = get_str(&r, a);
    s->corr = get_str(&r, a);
    s->api_id = get_str(&r, a);
    s->stage = get_str(&r, a);
    s->method = get_str(&r, a);
    s->url = get_str(&r, a);
    uint64_t nl = get_u64(&r);
    if (r.bad || nl > 1000 || (uint64_t)(r.end - r.p) < nl * 24)
        return HT_ERR_CORRUPT;
    s->nlinks = (uint32_t)nl;
    if (nl) {
        s->links = ht_arena_alloc(a, (size_t)nl * sizeof(*s->links));
        for (uint64_t i = 0; i < nl; i++) {
            get_bytes(&r, s->links[i].trace.b, 16);
            get_bytes(&r, s->links[i].id.b, 8);
        }
    }
    if (!s->name)
        s->name = "";
    return r.bad ? HT_ERR_CORRUPT : HT_ERR_OK;
}

int ht_span_peek_flags(const void *v, size_t n, uint32_t *flags)
{
    /* format byte, id, parent, trace, then start, duration, flags */
    struct rd r = {(const uint8_t *)v + 33, (const uint8_t *)v + n, false};

    if (n < 33 || ((const uint8_t *)v)[0] != SPAN_FORMAT)
        return HT_ERR_CORRUPT;
    get_i64(&r);
    get_i64(&r);
    *flags = (uint32_t)get_u64(&r);
    return r.bad ? HT_ERR_CORRUPT : HT_ERR_OK;
}

int ht_span_peek_trace(const void *v, size_t n, struct ht_tid *trace)
{
    /* format byte, id (8), parent (8), trace (16) */
    if (n < 33 || ((const uint8_t *)v)[0] != SPAN_FORMAT)
        return HT_ERR_CORRUPT;
    memcpy(trace->b, (const uint8_t *)v + 17, 16);
    return HT_ERR_OK;
}

int ht_span_peek_start(const void *v, size_t n, int64_t *start_us)
{
    struct rd r = {(const uint8_t *)v + 33, (const uint8_t *)v + n, false};

    if (n < 33 || ((const uint8_t *)v)[0] != SPAN_FORMAT)
        return HT_ERR_CORRUPT;
    *start_us = get_i64(&r);
    return r.bad ? HT_ERR_CORRUPT : HT_ERR_OK;
}

int ht_span_peek_parent(const void *v, size_t n, struct ht_id8 *parent)
{
    uint32_t flags;
    int rc = ht_span_peek_flags(v, n, &flags);

    if (rc)
        return rc;
    if (flags & HT_SPAN_HAS_PARENT)
        memcpy(parent->b, (const uint8_t *)v + 9, 8);
    else
        memset(parent->b, 0, 8);
    return HT_ERR_OK;
}

int64_t ht_span_last_us(const struct ht_span *s)
{
    return s->end_us > s->start_us ? s->end_us : s->start_us;
}

int64_t ht_inv_last_us(const struct ht_inv *inv)
{
    int64_t t = inv->first_ts;

    if ((inv->flags & HT_INV_HAS_START) && inv->start_ts > t)
        t = inv->start_ts;
    if ((inv->flags & HT_INV_HAS_START) && (inv->flags & HT_INV_HAS_REPORT) &&
        inv->start_ts + inv->duration_us > t)
        t = inv->start_ts + inv->duration_us;
    if ((inv->flags & HT_INV_HAS_END) && inv->end_ts > t)
        t = inv->end_ts;
    if ((inv->flags & HT_INV_HAS_REPORT) && inv->report_ts > t)
        t = inv->report_ts;
    return t;
}

int64_t ht_bytime_time(const uint8_t *key)
{
    return (int64_t)(ht_be64_get(key) ^ HT_BYTIME_SIGN);
}

size_t ht_bytime_span_key(uint8_t *out, int64_t last_us,
                          const struct ht_id8 *id)
{
    ht_be64_put(out, (uint64_t)last_us ^ HT_BYTIME_SIGN);
    out[8] = HT_BYTIME_SPAN;
    memcpy(out + 9, id->b, 8);
    return 17;
}

size_t ht_bytime_inv_key(uint8_t *out, int64_t last_us, const uint8_t *prid,
                         size_t prn)
{
    if (prn > HT_ID_PACKED_MAX)
        prn = HT_ID_PACKED_MAX;
    ht_be64_put(out, (uint64_t)last_us ^ HT_BYTIME_SIGN);
    out[8] = HT_BYTIME_INV;
    memcpy(out + 9, prid, prn);
    return 9 + prn;
}

/* ---- invocations ------------------------------------------------------ */

void ht_inv_pack(const struct ht_inv *inv, struct ht_buf *out)
{
    uint8_t fmt = INV_FORMAT;

    ht_buf_add(out, &fmt, 1);
    put_str(out, inv->request_id);
    put_str(out, inv->function);
    put_u64(out, inv->flags);
    put_i64(out, inv->start_ts);
    put_i64(out, inv->end_ts);
    put_i64(out, inv->report_ts);
    put_i64(out, inv->first_ts);
    put_i64(out, inv->duration_us);
    put_i64(out, inv->init_us);
    put_i64(out, inv->billed_ms);
    put_i64(out, inv->memory_mb);
    put_i64(out, inv->max_memory_mb);
    ht_buf_add(out, inv->trace.b, 16);
    ht_buf_add(out, inv->segment.b, 8);
}

int ht_inv_unpack(const void *v, size_t n, struct ht_arena *a,
                  struct ht_inv *inv)
{
    struct rd r = {v, (const uint8_t *)v + n, false};
    uint8_t fmt = 0;

    memset(inv, 0, sizeof(*inv));
    get_bytes(&r, &fmt, 1);
    if (r.bad || fmt != INV_FORMAT)
        return HT_ERR_CORRUPT;
    inv->request_id = get_str(&r, a);
    inv->function = get_str(&r, a);
    inv->flags = (uint32_t)get_u64(&r);
    inv->start_ts = get_i64(&r);
    inv->end_ts = get_i64(&r);
    inv->report_ts = get_i64(&r);
    inv->first_ts = get_i64(&r);
    inv->duration_us = get_i64(&r);
    inv->init_us = get_i64(&r);
    inv->billed_ms = get_i64(&r);
    inv->memory_mb = get_i64(&r);
    inv->max_memory_mb = get_i64(&r);
    get_bytes(&r, inv->trace.b, 16);
    get_bytes(&r, inv->segment.b, 8);
    return r.bad ? HT_ERR_CORRUPT : HT_ERR_OK;
}

bool ht_inv_merge(struct ht_inv *inv, const struct ht_fact *f)
{
    struct ht_inv before = *inv;

    if (!inv->function && f->function)
        inv->function = f->function;
    if (f->ts_us && (!inv->first_ts || f->ts_us < inv->first_ts))
        inv->first_ts = f->ts_us;
    if ((f->flags & HT_FACT_HAS_TRACE) && !(inv->flags & HT_INV_HAS_TRACE)) {
        inv->trace = f->trace;
        inv->flags |= HT_INV_HAS_TRACE;
    }
    if ((f->flags & HT_FACT_HAS_SEGMENT) &&
        !(inv->flags & HT_INV_HAS_SEGMENT)) {
        inv->segment = f->segment;
        inv->flags |= HT_INV_HAS_SEGMENT;
    }
    if (f->flags & HT_FACT_COLD)
        inv->flags |= HT_INV_COLD;
    if ((f->flags & HT_FACT_WARM) && f->kind != HT_FACT_REPORT)
        inv->flags |= HT_INV_WARM;
    switch (f->kind) {
    case HT_FACT_START:
        if (!(inv->flags & HT_INV_HAS_START) || f->ts_us < inv->start_ts) {
            inv->start_ts = f->ts_us;
            inv->flags |= HT_INV_HAS_START;
        }
        break;
    case HT_FACT_END:
        inv->end_ts = f->ts_us;
        inv->flags |= HT_INV_HAS_END;
        break;
    case HT_FACT_REPORT:
        inv->report_ts = f->ts_us;
        inv->duration_us = f->duration_us;
        if (f->init_us)
            inv->init_us = f->init_us;
        inv->billed_ms = f->billed_ms;
        inv->memory_mb = f->memory_mb;
        inv->max_memory_mb = f->max_memory_mb;
        inv->flags |= HT_INV_HAS_REPORT;
        if (f->flags & HT_FACT_FAILED)
            inv->flags |= HT_INV_FAILED;
        break;
    default:
        break;
    }
    return memcmp(&before, inv, sizeof(before)) != 0;
}

/* ---- facts ------------------------------------------------------------ */

void ht_fact_pack(const struct ht_fact *f, struct ht_buf *out)
{
    uint8_t fmt = f->up_via ? FACT_FORMAT_UP : FACT_FORMAT;

    ht_buf_add(out, &fmt, 1);
    put_u64(out, f->kind);
    put_u64(out, f->via);
    put_u64(out, f->flags);
    put_i64(out, f->ts_us);
    put_i64(out, f->sent_us);
    put_str(out, f->request_id);
    put_str(out, f->function);
    put_str(out, f->corr);
    put_str(out, f->resource);
    put_str(out, f->record_id);
    put_str(out, f->apigw_id);
    put_str(out, f->ext_id);
    put_str(out, f->route);
    put_str(out, f->api_id);
    put_str(out, f->stage);
    ht_buf_add(out, f->trace.b, 16);
    ht_buf_add(out, f->hdr_root.b, 16);
    ht_buf_add(out, f->hdr_parent.b, 8);
    if (fmt == FACT_FORMAT_UP) {
        put_u64(out, f->up_via);
        put_str(out, f->up_id);
        put_str(out, f->up_resource);
        put_i64(out, f->up_sent_us);
    }
}

int ht_fact_unpack(const void *v, size_t n, struct ht_arena *a,
                   struct ht_fact *f)
{
    struct rd r = {v, (const uint8_t *)v + n, false};
    uint8_t fmt = 0;

    memset(f, 0, sizeof(*f));
    get_bytes(&r, &fmt, 1);
    if (r.bad || (fmt != FACT_FORMAT && fmt != FACT_FORMAT_UP))
        return HT_ERR_CORRUPT;
    f->kind = (uint8_t)get_u64(&r);
    f->via = (uint8_t)get_u64(&r);
    f->flags = (uint16_t)get_u64(&r);
    f->ts_us = get_i64(&r);
    f->sent_us = get_i64(&r);
    f->request_id = get_str(&r, a);
    f->function = get_str(&r, a);
    f->corr = get_str(&r, a);
    f->resource = get_str(&r, a);
    f->record_id = get_str(&r, a);
    f->apigw_id = get_str(&r, a);
    f->ext_id = get_str(&r, a);
    f->route = get_str(&r, a);
    f->api_id = get_str(&r, a);
    f->stage = get_str(&r, a);
    get_bytes(&r, f->trace.b, 16);
    get_bytes(&r, f->hdr_root.b, 16);
    get_bytes(&r, f->hdr_parent.b, 8);
    if (fmt == FACT_FORMAT_UP) {
        f->up_via = (uint8_t)get_u64(&r);
        f->up_id = get_str(&r, a);
        f->up_resource = get_str(&r, a);
        f->up_sent_us = get_i64(&r);
    }
    return r.bad ? HT_ERR_CORRUPT : HT_ERR_OK;
}
