/*
 * common.c - error strings, logging, arena, buffer and id/time helpers for
 * every hoptrace module (see ht_common.h for the contracts).
 *
 * Owned by common/. Nothing here may depend on another module.
 */
#define _GNU_SOURCE
#include "ht_common.h"
#include "ht_model.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

/* ---- errors ----------------------------------------------------------- */

static const char *const err_strings[] = {
#define HT_E(name, str) str,
    HT_ERRORS(HT_E)
#undef HT_E
};

const char *ht_strerror(int err)
{
    if (err < 0 || err >= HT_ERR__COUNT)
        return "unknown error";
    return err_strings[err];
}

static const char *const reject_names[] = {
#define HT_R(name, str) str,
    HT_REJECTS(HT_R)
#undef HT_R
};

const char *ht_reject_name(int reason)
{
    if (reason < 0 || reason >= HT_REJ__COUNT)
        return "unknown";
    return reject_names[reason];
}

int ht_reject_from_name(const char *name)
{
    for (int i = 0; i < HT_REJ__COUNT; i++)
        if (strcmp(reject_names[i], name) == 0)
            return i;
    return -1;
}

const char *ht_via_name(int via)
{
    switch (via) {
    case HT_VIA_SQS:
        return "sqs";
    case HT_VIA_KINESIS:
        return "kinesis";
    case HT_VIA_DYNAMODB:
        return "dynamodb";
    case HT_VIA_LAMBDA:
        return "lambda";
    case HT_VIA_LINK:
        return "link";
    case HT_VIA_SNS:
        return "sns";
    case HT_VIA_EVENTBRIDGE:
        return "eventbridge";
    default:
        return "none";
    }
}

/* ---- logging ------------------------------------------------------------ */

int ht_log_level = HT_LOG_LVL_WARN;

void ht_log_write(int level, const char *tag, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    va_list ap;

    fprintf(stderr, "hoptrace: %s: [%s] ", names[level & 3], tag);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void ht_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "hoptrace: assertion failed: %s (%s:%d)\n", expr, file,
            line);
    abort();
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);

    if (!q) {
        fprintf(stderr, "hoptrace: out of memory (%zu bytes)\n", n);
        abort();
    }
    return q;
}

/* ---- arena ----------------------------------------------------------------
 */

struct arena_block {
    struct arena_block *next;
    size_t cap;
    size_t used;
    /* data follows, max-aligned */
    max_align_t data[];
};

struct ht_arena {
    struct arena_block *head;
    struct arena_block *spare; /* emptied by ht_arena_clear */
    size_t total;
};

#define ARENA_BLOCK (64 * 1024)

struct ht_arena *ht_arena_create(void)
{
    return calloc(1, sizeof(struct ht_arena));
}

void ht_arena_destroy(struct ht_arena *a)
{
    struct arena_block *b, *next;

    if (!a)
        return;
    for (b = a->head; b; b = next) {
        next = b->next;
        free(b);
    }
    for (b = a->spare; b; b = next) {
        next = b->next;
        free(b);
    }
    free(a);
}

void ht_arena_clear(struct ht_arena *a)
{
    struct arena_block *b, *next;

    for (b = a->head; b; b = next) {
        next = b->next;
        b->used = 0;
        b->next = a->spare;
        a->spare = b;
    }
    a->head = NULL;
    a->total = 0;
}

void ht_arena_reset(struct ht_arena *a)
{
    struct arena_block *b, *next;

    for (b = a->spare; b; b = next) {
        next = b->next;
        free(b);
    }
    a->spare = NULL;
    if (!a->head)
        return;
    /* keep the last (oldest) block, which is the first one allocated */
    b = a->head;
    while (b->next) {
        next = b->next;
        free(b);
        b = next;
    }
    b->used = 0;
    a->head = b;
    a->total = 0;
}

void *ht_arena_alloc(struct ht_arena *a, size_t n)
{
    struct arena_block *b = a->head;
    size_t align = sizeof(max_align_t);
    size_t need = (n + align - 1) & ~(align - 1);
    void *p;

    if (!b || b->cap - b->used < need) {
        size_t cap = need > ARENA_BLOCK ? need : ARENA_BLOCK;

        if (a->spare && a->spare->cap >= need) {
            b = a->spare;
            a->spare = b->next;
        } else {
            b = xrealloc(NULL, sizeof(*b) + cap);
            b->cap = cap;
        }
        b->used = 0;
        b->next = a->head;
        a->head = b;
    }
    p = (char *)b->data + b->used;
    b->used += need;
    a->total += need;
    return p;
}

char *ht_arena_strndup(struct ht_arena *a, const char *s, size_t n)
{
    char *p = ht_arena_alloc(a, n + 1);

    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *ht_arena_strdup(struct ht_arena *a, const char *s)
{
    return s ? ht_arena_strndup(a, s, strlen(s)) : NULL;
}

char *ht_arena_printf(struct ht_arena *a, const char *fmt, ...)
{
    va_list ap, ap2;
    int n;
    char *p, small[256];

    /* one pass when it fits (almost always): formatting twice, once to
     * measure, costs as much again */
    va_start(ap, fmt);
    va_copy(ap2, ap);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) { /* an encoding error: nothing */
        n = 0;
        small[0] = '\0';
    }
    p = ht_arena_alloc(a, (size_t)n + 1);
    if ((size_t)n < sizeof(small))
        memcpy(p, small, (size_t)n + 1);
    else
        vsnprintf(p, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return p;
}

size_t ht_arena_used(const struct ht_arena *a)
{
    return a->total;
}

/* ---- tables ----------------------------------------------------------- */

void *ht_table_alloc(size_t n, size_t size)
{
    size_t bytes;
    void *p;

    if (size && n > SIZE_MAX / size)
        return NULL;
    bytes = n * size;
    p = malloc(bytes > 0 ? bytes : 1);
    if (p)
        memset(p, 0, bytes); /* written, not left to the zero page */
    return p;
}

/* ---- buffer -----------------------------------------------------------------
 */

void ht_buf_init(struct ht_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void ht_buf_free(struct ht_buf *b)
{
    free(b->data);
    ht_buf_init(b);
}

void ht_buf_reset(struct ht_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static void buf_reserve(struct ht_buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;

    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap * 2 : 256;
    while (cap < need)
        cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

void ht_buf_add_grow(struct ht_buf *b, const void *p, size_t n)
{
    buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void ht_buf_addc(struct ht_buf *b, char c)
{
    buf_reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void ht_buf_adds(struct ht_buf *b, const char *s)
{
    ht_buf_add(b, s, strlen(s));
}

void ht_buf_printf(struct ht_buf *b, const char *fmt, ...)
{
    va_list ap, ap2;
    int n;

    va_start(ap, fmt);
    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    buf_reserve(b, (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    b->len += (size_t)n;
}

size_t ht_utf8_len(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n;
    uint32_t cp;

    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        n = 2, cp = p[0] & 0x1f;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        n = 3, cp = p[0] & 0x0f;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        n = 4, cp = p[0] & 0x07;
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) /* a NUL ends the sequence here too */
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

void ht_buf_json_str(struct ht_buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";

    ht_buf_addc(b, '"');
    while (s && *s) {
        /* the run of bytes that need no escape, copied at once (ids and
         * names: the whole string) */
        size_t run = 0;
        unsigned char c;

        while ((c = (unsigned char)s[run]) >= 0x20 && c < 0x80 && c != '"' &&
               c != '\\')
            run++;
        if (run) {
            ht_buf_add(b, s, run);
            s += run;
            continue;
        }
        if (c >= 0x80) {
            /* UTF-8 as it is; a byte that is not (only a client's bytes
             * can be: ingest's JSON parser validates) is written as '?',
             * so that the output stays JSON */
            size_t n = ht_utf8_len(s);

            if (n)
                ht_buf_add(b, s, n);
            else
                ht_buf_addc(b, '?');
            s += n ? n : 1;
            continue;
        }
        switch (c) {
        case '"':
            ht_buf_adds(b, "\\\"");
            break;
        case '\\':
            ht_buf_adds(b, "\\\\");
            break;
        case '\n':
            ht_buf_adds(b, "\\n");
            break;
        case '\r':
            ht_buf_adds(b, "\\r");
            break;
        case '\t':
            ht_buf_adds(b, "\\t");
            break;
        default: {
            char esc[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0};

            ht_buf_adds(b, esc);
        }
        }
        s++;
    }
    ht_buf_addc(b, '"');
}

void ht_buf_json_key(struct ht_buf *b, const char *k)
{
    ht_buf_json_str(b, k);
    ht_buf_addc(b, ':');
}

void ht_buf_json_str_or_null(struct ht_buf *b, const char *s)
{
    if (s)
        ht_buf_json_str(b, s);
    else
        ht_buf_adds(b, "null");
}

void ht_buf_add_printable(struct ht_buf *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;

    for (size_t i = 0; i < n; i++) {
        if (p[i] < 0x20 || p[i] == 0x7f)
            ht_buf_printf(b, "\\x%02x", p[i]);
        else if (p[i] == 0xc2 && i + 1 < n && p[i + 1] >= 0x80 &&
                 p[i + 1] <= 0x9f)
            ht_buf_printf(b, "\\u00%02x", p[++i]);
        else
            ht_buf_addc(b, (char)p[i]);
    }
}

/* ---- ids -------------------------------------------------------------------
 */

/* Hex digit values (-1: not a digit), for the id parsers on the hot path. */
const int8_t ht_hex_tab[256] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0,  1,  2,  3,  4,  5,  6,  7,  8,
    9,  -1, -1, -1, -1, -1, -1, -1, 10, 11, 12, 13, 14, 15, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, 10, 11, 12, 13, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

static int hexval(char c)
{
    return ht_hex_tab[(unsigned char)c];
}

static bool parse_hex(const char *s, size_t ndigits, uint8_t *out)
{
    for (size_t i = 0; i < ndigits; i += 2) {
        int hi = hexval(s[i]), lo = hexval(s[i + 1]);

        if (hi < 0 || lo < 0)
            return false;
        out[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static void format_hex(const uint8_t *in, size_t nbytes, char *out)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < nbytes; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
}

bool ht_id8_parse(const char *s, size_t n, struct ht_id8 *out)
{
    if (!s || n != 16)
        return false;
    return parse_hex(s, 16, out->b);
}

void ht_id8_format(const struct ht_id8 *id, char out[17])
{
    format_hex(id->b, 8, out);
    out[16] = '\0';
}

bool ht_id8_is_zero(const struct ht_id8 *id)
{
    static const uint8_t zero[8];

    return memcmp(id->b, zero, 8) == 0;
}

bool ht_tid_parse(const char *s, size_t n, struct ht_tid *out)
{
    if (!s || n != 35 || s[0] != '1' || s[1] != '-' || s[10] != '-')
        return false;
    return parse_hex(s + 2, 8, out->b) && parse_hex(s + 11, 24, out->b + 4);
}

bool ht_tid_parse_otel(const char *s, size_t n, struct ht_tid *out)
{
    return s && n == 32 && parse_hex(s, 32, out->b);
}

void ht_tid_format(const struct ht_tid *t, char out[36])
{
    out[0] = '1';
    out[1] = '-';
    format_hex(t->b, 4, out + 2);
    out[10] = '-';
    format_hex(t->b + 4, 12, out + 11);
    out[35] = '\0';
}

bool ht_tid_is_zero(const struct ht_tid *t)
{
    static const uint8_t zero[16];

    return memcmp(t->b, zero, 16) == 0;
}

/* ---- time ------------------------------------------------------------------
 */

int64_t ht_secs_to_us(double secs)
{
    return (int64_t)llround(secs * 1e6);
}

static int days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int era = (y >= 0 ? y : y - 399) / 400;
    int yoe = y - era * 400;
    int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static bool digits(const char *s, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

bool ht_parse_iso8601(const char *s, int64_t *out_us)
{
    int y, mo, d, h, mi, sec;
    int64_t frac_us = 0;
    int off_min = 0;
    const char *p;

    if (!s || strlen(s) < 19)
        return false;
    if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
        s[7] != '-' || !digits(s + 8, 2, &d) ||
        (s[10] != 'T' && s[10] != ' ') || !digits(s + 11, 2, &h) ||
        s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
        !digits(s + 17, 2, &sec))
        return false;
    p = s + 19;
    if (*p == '.' || *p == ',') {
        int64_t scale = 100000;

        p++;
        while (*p >= '0' && *p <= '9') {
            frac_us += (*p - '0') * scale;
            scale /= 10;
            p++;
        }
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, oh, om = 0;

        p++;
        if (!digits(p, 2, &oh))
            return false;
        p += 2;
        if (*p == ':')
            p++;
        if (digits(p, 2, &om))
            p += 2;
        off_min = sign * (oh * 60 + om);
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return false;
    int64_t days = days_from_civil(y, mo, d);
    int64_t t = ((days * 24 + h) * 60 + mi) * 60 + sec - (int64_t)off_min * 60;
    *out_us = t * 1000000 + frac_us;
    return true;
}

uint64_t ht_hash64(const void *p, size_t n)
{
    const uint8_t *s = p;
    uint64_t h = 1469598103934665603ull;

    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ull;
    }
    return h;
}

uint64_t ht_hash_mem(const void *p, size_t n)
{
    const uint8_t *s = p;
    uint64_t h = 0x243f6a8885a308d3ull ^ n, w;

    for (; n >= 8; s += 8, n -= 8) {
        memcpy(&w, s, 8);
        h = (h ^ w) * 0x9fb21c651e98df25ull;
        h ^= h >> 29;
    }
    if (n) {
        w = 0;
        memcpy(&w, s, n);
        h = (h ^ w) * 0x9fb21c651e98df25ull;
    }
    return ht_mix64(h);
}

uint64_t ht_mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int64_t ht_now_mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

unsigned ht_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    return n < 1 ? 1 : (unsigned)n;
}

int64_t ht_now_wall_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

bool ht_parse_time(const char *s, int64_t *out_us)
{
    char *end;
    double d;

    errno = 0;
    d = strtod(s, &end);
    if (end != s && !*end && !errno && isfinite(d) && d >= 0 && d < 1e11) {
        *out_us = (int64_t)llround(d * 1e6);
        return true;
    }
    return ht_parse_iso8601(s, out_us);
}
