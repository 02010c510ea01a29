/*
 * batch.c - the decoded-input batch (spans, facts, rejects in one arena)
 * and the byte-level codecs every decoder shares: base64, gunzip, AWS
 * trace headers.
 *
 * Owned by ingest/. It must not parse JSON documents (decode.c does) or
 * persist anything.
 */
#define _GNU_SOURCE
#include "ht_ingest.h"
#include "hjson.h"
#include "ingest_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libdeflate.h>
#include <zlib.h>

static void *grow(void *p, size_t *cap, size_t elem)
{
    size_t ncap = *cap ? *cap * 2 : 256;
    void *q = realloc(p, ncap * elem);

    if (!q) {
        fprintf(stderr, "hoptrace: out of memory growing a batch\n");
        abort();
    }
    *cap = ncap;
    return q;
}

int ht_batch_init(struct ht_batch *b)
{
    memset(b, 0, sizeof(*b));
    b->arena = ht_arena_create();
    return b->arena ? HT_ERR_OK : HT_ERR_NOMEM;
}

struct hj_parser *ht__parser(struct ht_batch *b, int slot)
{
    HT_ASSERT(slot >= 0 && slot < HT_JSON_SLOTS);
    if (!b->parsers[slot]) {
        /* simdjson counts levels as the bracket scanners do: a value
         * nested deeper than HT_MAX_DEPTH does not parse */
        b->parsers[slot] = hj_parser_new(HT_MAX_DEPTH);
        HT_ASSERT(b->parsers[slot]); /* like every other allocation here */
    }
    return b->parsers[slot];
}

void ht_batch_free(struct ht_batch *b)
{
    if (!b)
        return;
    ht_arena_destroy(b->arena);
    for (int i = 0; i < HT_JSON_SLOTS; i++)
        hj_parser_free(b->parsers[i]);
    free(b->spans);
    free(b->facts);
    free(b->rejects);
    memset(b, 0, sizeof(*b));
}

void ht_batch_reset(struct ht_batch *b)
{
    ht_arena_reset(b->arena);
    b->nspans = 0;
    b->nfacts = 0;
    b->nrejects = 0;
    b->documents = 0;
    b->log_events = 0;
    b->dropped = 0;
    b->payload_bytes = 0;
    memset(b->rejected, 0, sizeof(b->rejected));
}

void ht_batch_move_records(struct ht_batch *dst, struct ht_batch *src)
{
    struct ht_span *sp = dst->spans;
    struct ht_fact *fa = dst->facts;
    struct ht_rejected *rj = dst->rejects;
    size_t cs = dst->capspans, cf = dst->capfacts, cr = dst->caprejects;

    /* swap the arrays: dst takes src's records, src keeps dst's (empty)
     * arrays for what comes next */
    dst->spans = src->spans;
    dst->capspans = src->capspans;
    dst->nspans = src->nspans;
    dst->facts = src->facts;
    dst->capfacts = src->capfacts;
    dst->nfacts = src->nfacts;
    dst->rejects = src->rejects;
    dst->caprejects = src->caprejects;
    dst->nrejects = src->nrejects;
    dst->documents = src->documents;
    dst->log_events = src->log_events;
    dst->dropped = src->dropped;
    dst->payload_bytes = src->payload_bytes;
    memcpy(dst->rejected, src->rejected, sizeof(dst->rejected));
    src->spans = sp;
    src->capspans = cs;
    src->facts = fa;
    src->capfacts = cf;
    src->rejects = rj;
    src->caprejects = cr;
    src->nspans = src->nfacts = src->nrejects = 0;
    src->documents = src->log_events = src->dropped = 0;
    src->payload_bytes = 0;
    memset(src->rejected, 0, sizeof(src->rejected));
}

void ht_batch_add_span(struct ht_batch *b, const struct ht_span *s)
{
    if (b->nspans == b->capspans)
        b->spans = grow(b->spans, &b->capspans, sizeof(*b->spans));
    b->spans[b->nspans++] = *s;
}

void ht_batch_add_fact(struct ht_batch *b, const struct ht_fact *f)
{
    if (b->nfacts == b->capfacts)
        b->facts = grow(b->facts, &b->capfacts, sizeof(*b->facts));
    b->facts[b->nfacts++] = *f;
}

void ht_batch_reject(struct ht_batch *b, int reason,
                     const struct ht_srcpos *pos, const char *detail,
                     const void *payload, size_t n)
{
    struct ht_rejected *r;

    if (reason < 0 || reason >= HT_REJ__COUNT)
        reason = HT_REJ_UNKNOWN_DOC;
    b->rejected[reason]++;
    if (b->reject_tally)
        (*b->reject_tally)++;
    if (b->nrejects == b->caprejects)
        b->rejects = grow(b->rejects, &b->caprejects, sizeof(*b->rejects));
    r = &b->rejects[b->nrejects++];
    r->reason = (uint8_t)reason;
    r->source =
        ht_arena_strdup(b->arena, pos && pos->source ? pos->source : "unknown");
    r->offset = pos ? pos->offset : 0;
    r->detail = ht_arena_strdup(b->arena, detail ? detail : "");
    if (n > HT_MAX_DLQ_SAMPLE)
        n = HT_MAX_DLQ_SAMPLE;
    r->sample = payload ? ht_arena_strndup(b->arena, payload, n) : "";
    r->sample_len = payload ? n : 0;
    HT_LOG_DEBUG("ingest", "rejected %s at %s:%llu: %s", ht_reject_name(reason),
                 r->source, (unsigned long long)r->offset, r->detail);
}

/* ---- base64 ---------------------------------------------------------- */

/* Base64 digit values, both alphabets (standard and URL-safe); -1: not a
 * digit. */
static int8_t b64_tab[256];

static void b64_init(void)
{
    static const char std[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    memset(b64_tab, -1, sizeof(b64_tab));
    for (int i = 0; i < 64; i++)
        b64_tab[(unsigned char)std[i]] = (int8_t)i;
    b64_tab['-'] = 62;
    b64_tab['_'] = 63;
}

long ht_base64_decode(const char *in, size_t n, uint8_t *out)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    const unsigned char *u = (const unsigned char *)in;
    uint32_t acc = 0;
    int bits = 0;
    long o = 0;
    size_t i = 0;

    pthread_once(&once, b64_init);
    /* fast path: whole groups of four digits, no line breaks */
    while (i + 4 <= n) {
        int a = b64_tab[u[i]], b = b64_tab[u[i + 1]], c = b64_tab[u[i + 2]],
            d = b64_tab[u[i + 3]];

        if ((a | b | c | d) < 0)
            break;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 |
                     (uint32_t)d;

        out[o] = (uint8_t)(v >> 16);
        out[o + 1] = (uint8_t)(v >> 8);
        out[o + 2] = (uint8_t)v;
        o += 3;
        i += 4;
    }
    for (; i < n; i++) {
        unsigned char ch = u[i];
        int v;

        if (ch == '=')
            break;
        if (ch == '\n' || ch == '\r')
            continue;
        v = b64_tab[ch];
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    for (; i < n; i++)
        if (in[i] != '=' && in[i] != '\n' && in[i] != '\r')
            return -1;
    /* 6 leftover bits can never be valid base64 */
    if (bits >= 6)
        return -1;
    return o;
}

/* ---- gunzip -------------------------------------------------------------- */

/*
 * A single gzip member whose trailer gives its size (every CloudWatch Logs
 * payload) is inflated by libdeflate in one call into a buffer of exactly
 * that size: about twice zlib's speed. Anything else (several members,
 * zlib headers, a trailer that lies) returns false and takes zlib's
 * streaming path.
 */
static bool gunzip_fast(const uint8_t *in, size_t n, size_t max_out,
                        uint8_t **out, size_t *out_len)
{
    struct libdeflate_decompressor *d;
    size_t isize, used = 0, got = 0;
    uint8_t *buf;
    enum libdeflate_result rc;

    if (n < 18 || in[0] != 0x1f || in[1] != 0x8b)
        return false;
    isize = (size_t)in[n - 4] | (size_t)in[n - 3] << 8 |
            (size_t)in[n - 2] << 16 | (size_t)in[n - 1] << 24;
    /* deflate expands at most ~1032:1; a larger claim is a lie */
    if (isize > max_out || isize / 1032 > n)
        return false;
    buf = malloc(isize + 1);
    d = libdeflate_alloc_decompressor();
    if (!buf || !d) {
        free(buf);
        if (d)
            libdeflate_free_decompressor(d);
        return false;
    }
    rc = libdeflate_gzip_decompress_ex(d, in, n, buf, isize, &used, &got);
    libdeflate_free_decompressor(d);
    if (rc != LIBDEFLATE_SUCCESS || used != n || got != isize) {
        free(buf);
        return false;
    }
    buf[got] = '\0';
    *out = buf;
    *out_len = got;
    return true;
}

int ht_gunzip(const void *in, size_t n, size_t max_out, uint8_t **out,
              size_t *out_len)
{
    z_stream zs;
    size_t cap = n * 4 + 1024, len = 0;
    uint8_t *buf;
    int rc, ret = -1;

    *out = NULL;
    *out_len = 0;
    if (gunzip_fast(in, n, max_out, out, out_len))
        return 0;
    if (cap > max_out)
        cap = max_out;
    buf = malloc(cap + 1);
    if (!buf)
        return -1;
    memset(&zs, 0, sizeof(zs));
    /* 32 + 15: detect gzip or zlib header automatically */
    if (inflateInit2(&zs, 32 + 15) != Z_OK) {
        free(buf);
        return -1;
    }
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)n;
    for (;;) {
        if (len == cap) {
            size_t ncap = cap * 2;
            uint8_t *q;

            if (cap >= max_out)
                goto fail;
            if (ncap > max_out)
                ncap = max_out;
            q = realloc(buf, ncap + 1);
            if (!q)
                goto fail;
            buf = q;
            cap = ncap;
        }
        zs.next_out = buf + len;
        zs.avail_out = (uInt)(cap - len);
        rc = inflate(&zs, Z_NO_FLUSH);
        len = cap - zs.avail_out;
        if (rc == Z_STREAM_END) {
            /* concatenated gzip members: keep going */
            if (zs.avail_in > 0) {
                if (inflateReset(&zs) != Z_OK)
                    goto fail;
                continue;
            }
            break;
        }
        if (rc == Z_BUF_ERROR && zs.avail_in == 0) {
            ret = -2; /* truncated: the input ends inside a member */
            goto fail;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            goto fail;
    }
    inflateEnd(&zs);
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return 0;
fail:
    inflateEnd(&zs);
    free(buf);
    return ret;
}

/* ---- trace header ------------------------------------------------------- */

bool ht_parse_trace_header(const char *s, struct ht_tid *root,
                           struct ht_id8 *parent, bool *has_parent)
{
    bool have_root = false;

    *has_parent = false;
    while (s && *s) {
        const char *end = strchr(s, ';');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        const char *eq = memchr(s, '=', len);

        while (len && (*s == ' ')) {
            s++;
            len--;
            eq = memchr(s, '=', len);
        }
        if (eq) {
            size_t klen = (size_t)(eq - s), vlen = len - klen - 1;

            if (klen == 4 && strncmp(s, "Root", 4) == 0)
                have_root = ht_tid_parse(eq + 1, vlen, root);
            else if (klen == 6 && strncmp(s, "Parent", 6) == 0)
                *has_parent = ht_id8_parse(eq + 1, vlen, parent);
        }
        s = end ? end + 1 : NULL;
    }
    return have_root;
}
