/*
 * sim_util.c - the small self-contained pieces `hoptrace simulate` needs:
 * a seeded PRNG (splitmix64 + xoshiro256**, so a seed means the same
 * corpus everywhere), MD5 for SQS md5OfBody, base64 and gzip for the
 * Kinesis-delivered log messages, buffered output files, a bounded
 * shuffle window and fast number formatting. Owned by cli/; no store, no
 * ingest.
 */
#define _GNU_SOURCE
#include "sim.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* ---- PRNG ------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = *x;

    *x += 0x9e3779b97f4a7c15ULL;
    return ht_mix64(z);
}

void sim_rng_seed(struct sim_rng *r, uint64_t seed)
{
    uint64_t x = seed;

    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t sim_rng_next(struct sim_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

int64_t sim_rng_int(struct sim_rng *r, int64_t lo, int64_t hi)
{
    uint64_t span = (uint64_t)(hi - lo) + 1, x, lim;

    if (span == 0) /* the whole 64-bit range */
        return (int64_t)sim_rng_next(r);
    /* Rejection keeps it unbiased; the loop almost never repeats. */
    lim = UINT64_MAX - UINT64_MAX % span;
    do
        x = sim_rng_next(r);
    while (x >= lim);
    return lo + (int64_t)(x % span);
}

double sim_rng_unit(struct sim_rng *r)
{
    return (double)(sim_rng_next(r) >> 11) * 0x1.0p-53;
}

void sim_rng_hex(struct sim_rng *r, int nbits, char *out)
{
    static const char hex[] = "0123456789abcdef";
    int n = nbits / 4;
    uint64_t x = 0;

    for (int i = 0; i < n; i++) {
        if (i % 16 == 0)
            x = sim_rng_next(r);
        out[i] = hex[x & 15];
        x >>= 4;
    }
    out[n] = 0;
}

/* ---- MD5 (RFC 1321) --------------------------------------------------- */

static uint32_t md5_k[64];
static const uint8_t md5_s[64] = {
    7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
    5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
    4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
    6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};

static void md5_block(uint32_t h[4], const uint8_t *p)
{
    uint32_t m[16], a = h[0], b = h[1], c = h[2], d = h[3];

    for (int i = 0; i < 16; i++)
        m[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
               (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
    for (int i = 0; i < 64; i++) {
        uint32_t f;
        int g;

        if (i < 16) {
            f = (b & c) | (~b & d);
            g = i;
        } else if (i < 32) {
            f = (d & b) | (~d & c);
            g = (5 * i + 1) % 16;
        } else if (i < 48) {
            f = b ^ c ^ d;
            g = (3 * i + 5) % 16;
        } else {
            f = c ^ (b | ~d);
            g = (7 * i) % 16;
        }
        f += a + md5_k[i] + m[g];
        a = d;
        d = c;
        c = b;
        b += (f << md5_s[i]) | (f >> (32 - md5_s[i]));
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
}

void sim_md5_hex(const void *data, size_t n, char out[33])
{
    static const char hex[] = "0123456789abcdef";
    uint32_t h[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
    const uint8_t *p = data;
    uint8_t tail[128] = {0};
    size_t full = n / 64 * 64, rest = n - full, tn;
    uint64_t bits = (uint64_t)n * 8;

    /* The constants are defined as floor(|sin(i + 1)| * 2^32); a double
     * computes them exactly. */
    if (!md5_k[0])
        for (int i = 0; i < 64; i++)
            md5_k[i] = (uint32_t)(fabs(sin((double)i + 1)) * 4294967296.0);
    for (size_t o = 0; o < full; o += 64)
        md5_block(h, p + o);
    memcpy(tail, p + full, rest);
    tail[rest] = 0x80;
    tn = rest < 56 ? 64 : 128;
    for (int i = 0; i < 8; i++)
        tail[tn - 8 + i] = (uint8_t)(bits >> (8 * i));
    md5_block(h, tail);
    if (tn == 128)
        md5_block(h, tail + 64);
    for (int i = 0; i < 16; i++) {
        uint8_t byte = (uint8_t)(h[i / 4] >> (8 * (i % 4)));

        out[2 * i] = hex[byte >> 4];
        out[2 * i + 1] = hex[byte & 15];
    }
    out[32] = 0;
}

/* ---- base64, gzip ----------------------------------------------------- */

void sim_b64(struct ht_buf *b, const void *data, size_t n)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const uint8_t *p = data;
    char q[4];
    size_t i = 0;

    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

        q[0] = tab[v >> 18];
        q[1] = tab[(v >> 12) & 63];
        q[2] = tab[(v >> 6) & 63];
        q[3] = tab[v & 63];
        ht_buf_add(b, q, 4);
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16;

        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        q[0] = tab[v >> 18];
        q[1] = tab[(v >> 12) & 63];
        q[2] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        q[3] = '=';
        ht_buf_add(b, q, 4);
    }
}

int sim_gzip(const void *p, size_t n, unsigned char **buf, size_t *cap,
             size_t *outlen)
{
    z_stream z;
    size_t need;
    int rc;

    memset(&z, 0, sizeof z);
    /* 15 + 16: a gzip wrapper; deflate writes mtime 0, so the output is a
     * function of the input alone. */
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    need = deflateBound(&z, (uLong)n) + 32;
    if (*cap < need) {
        unsigned char *nb = realloc(*buf, need);

        if (!nb) {
            deflateEnd(&z);
            return -1;
        }
        *buf = nb;
        *cap = need;
    }
    z.next_in = (Bytef *)(uintptr_t)p;
    z.avail_in = (uInt)n;
    z.next_out = *buf;
    z.avail_out = (uInt)*cap;
    rc = deflate(&z, Z_FINISH);
    *outlen = z.total_out;
    deflateEnd(&z);
    return rc == Z_STREAM_END ? 0 : -1;
}

/* ---- output files ----------------------------------------------------- */

#define SIM_BLOCK (1u << 20)

int sim_out_open(struct sim_out *o, const char *path, bool gzip)
{
    memset(o, 0, sizeof *o);
    o->path = path;
    ht_buf_init(&o->buf);
    if (gzip) {
        o->z = calloc(1, sizeof *o->z);
        /* 15 + 16: a gzip wrapper with mtime 0, so a seed still means the
         * same bytes. */
        if (!o->z || deflateInit2(o->z, 6, Z_DEFLATED, 15 + 16, 8,
                                  Z_DEFAULT_STRATEGY) != Z_OK) {
            free(o->z);
            o->z = NULL;
            return ENOMEM;
        }
    }
    o->f = fopen(path, "w");
    return o->f ? 0 : errno;
}

/* Deflates in[0..n) (flush: Z_NO_FLUSH or Z_FINISH) into the file. */
static void out_deflate(struct sim_out *o, const char *in, size_t n, int flush)
{
    unsigned char chunk[1 << 16];
    int rc;

    o->z->next_in = (Bytef *)(uintptr_t)in;
    o->z->avail_in = (uInt)n;
    do {
        o->z->next_out = chunk;
        o->z->avail_out = sizeof chunk;
        rc = deflate(o->z, flush);
        size_t got = sizeof chunk - o->z->avail_out;

        if (got && !o->err && fwrite(chunk, 1, got, o->f) != got)
            o->err = errno ? errno : EIO;
    } while (o->z->avail_out == 0 || (flush == Z_FINISH && rc == Z_OK));
}

static void out_write(struct sim_out *o)
{
    if (o->z && o->buf.len)
        out_deflate(o, o->buf.data, o->buf.len, Z_NO_FLUSH);
    else if (o->buf.len && !o->err &&
             fwrite(o->buf.data, 1, o->buf.len, o->f) != o->buf.len)
        o->err = errno ? errno : EIO;
    o->bytes += o->buf.len;
    ht_buf_reset(&o->buf);
}

void sim_out_maybe_flush(struct sim_out *o)
{
    if (o->buf.len >= SIM_BLOCK)
        out_write(o);
}

int sim_out_close(struct sim_out *o)
{
    if (o->f) {
        out_write(o);
        if (o->z)
            out_deflate(o, "", 0, Z_FINISH);
        if (fclose(o->f) && !o->err)
            o->err = errno ? errno : EIO;
        o->f = NULL;
    }
    if (o->z) {
        deflateEnd(o->z);
        free(o->z);
        o->z = NULL;
    }
    ht_buf_free(&o->buf);
    return o->err;
}

/* ---- shuffle window --------------------------------------------------- */

void sim_shuf_init(struct sim_shuf *s, size_t max_items, size_t max_bytes)
{
    memset(s, 0, sizeof *s);
    s->max_items = max_items ? max_items : 1;
    s->max_bytes = max_bytes;
}

int sim_shuf_add(struct sim_shuf *s, const void *p, size_t n, int64_t aux)
{
    char *copy;

    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        struct sim_shuf_item *it = realloc(s->it, cap * sizeof *it);

        if (!it)
            return -1;
        s->it = it;
        s->cap = cap;
    }
    copy = malloc(n ? n : 1);
    if (!copy)
        return -1;
    memcpy(copy, p, n);
    s->it[s->n++] = (struct sim_shuf_item){copy, n, aux};
    s->bytes += n;
    return 0;
}

bool sim_shuf_full(const struct sim_shuf *s)
{
    return s->n > s->max_items || (s->n > 1 && s->bytes > s->max_bytes);
}

bool sim_shuf_take(struct sim_shuf *s, struct sim_rng *r,
                   struct sim_shuf_item *out)
{
    size_t j;

    if (!s->n)
        return false;
    j = (size_t)sim_rng_int(r, 0, (int64_t)s->n - 1);
    *out = s->it[j];
    s->it[j] = s->it[--s->n];
    s->bytes -= out->n;
    return true;
}

void sim_shuf_free(struct sim_shuf *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->it[i].p);
    free(s->it);
    memset(s, 0, sizeof *s);
}

/* ---- numbers ---------------------------------------------------------- */

void sim_put_u64w(struct ht_buf *b, uint64_t v, int width)
{
    char tmp[64];
    int n = 0;

    if (width > 60)
        width = 60;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n < width)
        tmp[n++] = '0';
    for (int i = 0; i < n / 2; i++) {
        char c = tmp[i];

        tmp[i] = tmp[n - 1 - i];
        tmp[n - 1 - i] = c;
    }
    ht_buf_add(b, tmp, (size_t)n);
}

void sim_put_i64(struct ht_buf *b, int64_t v)
{
    if (v < 0) {
        ht_buf_addc(b, '-');
        sim_put_u64w(b, (uint64_t)0 - (uint64_t)v, 0);
    } else {
        sim_put_u64w(b, (uint64_t)v, 0);
    }
}

void sim_put_sec(struct ht_buf *b, int64_t us)
{
    int64_t frac = us % 1000000;
    int width = 6;

    sim_put_u64w(b, (uint64_t)(us / 1000000), 0);
    ht_buf_addc(b, '.');
    if (!frac) {
        ht_buf_addc(b, '0');
        return;
    }
    /* Trailing zeros dropped, as the SDKs print them. */
    while (frac % 10 == 0) {
        frac /= 10;
        width--;
    }
    sim_put_u64w(b, (uint64_t)frac, width);
}

void sim_put_ms3(struct ht_buf *b, int64_t us)
{
    if (us < 0) {
        ht_buf_addc(b, '-');
        us = -us;
    }
    sim_put_u64w(b, (uint64_t)(us / 1000), 0);
    ht_buf_addc(b, '.');
    sim_put_u64w(b, (uint64_t)(us % 1000), 3);
}
