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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

void ht_batch_free(struct ht_batch *b)
{
    if (!b)
        return;
    ht_arena_destroy(b->arena);
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

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

long ht_base64_decode(const char *in, size_t n, uint8_t *out)
{
    uint32_t acc = 0;
    int bits = 0;
    long o = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        int v;

        if (c == '=')
            break;
        if (c == '\n' || c == '\r')
            continue;
        v = b64val(c);
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

int ht_gunzip(const void *in, size_t n, size_t max_out, uint8_t **out,
              size_t *out_len)
{
    z_stream zs;
    size_t cap = n * 4 + 1024, len = 0;
    uint8_t *buf;
    int rc;

    *out = NULL;
    *out_len = 0;
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
        if (rc == Z_BUF_ERROR && zs.avail_in == 0)
            goto fail; /* truncated */
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
    return -1;
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
