/*
 * reader.c - splitting byte streams into top-level JSON values.
 *
 * Files and streams (stdin) are read with read(2), inflated with zlib when
 * they start as gzip (several members in a row are one stream), so a file
 * is never loaded whole: memory is bounded by the largest single value. A
 * stream waits at most a given time for input and then says so
 * (HT_READ_AGAIN), so its reader can commit while the input pauses. A gzip
 * stream that ends inside a member is truncated: its unfinished tail is
 * one `truncated` reject. The same scanner splits in-memory payloads
 * (Kafka messages, datagrams, decoded records) in decode.c.
 *
 * A value is found by a scanner that follows JSON's structure. When a
 * value cannot be closed (a torn NDJSON line, a stray bracket), it is given
 * up up to the next line that opens a value in column 0, so one bad line
 * never swallows the good ones after it, and a pretty-printed document
 * that lacks its closing bracket is one bad value, not one per line.
 *
 * Owned by ingest/. It must not interpret documents.
 */
#define _GNU_SOURCE
#include "ht_ingest.h"
#include "hjson.h"
#include "ingest_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * A scanner that follows JSON's structure (not its scalars): which token
 * may come next in an object or array. That is what finds a torn line: a
 * document cut off and followed by the next one is a syntax error at the
 * start of the next line (a value where a comma belongs), and a cut inside
 * a string is a raw newline in a string, which JSON forbids. Only the
 * structure is checked; the parser checks the rest.
 */
enum {
    ST_OBJ_FIRST, /* after '{': a key or '}' */
    ST_OBJ_KEY,   /* after ',': a key */
    ST_OBJ_COLON, /* after a key */
    ST_OBJ_VALUE, /* after ':' */
    ST_OBJ_NEXT,  /* after a member: ',' or '}' */
    ST_ARR_FIRST, /* after '[': a value or ']' */
    ST_ARR_VALUE, /* after ',' */
    ST_ARR_NEXT   /* after an element: ',' or ']' */
};

static bool is_struct(char c)
{
    return c == '{' || c == '}' || c == '[' || c == ']' || c == ':' ||
           c == ',' || c == '"' || c == ' ' || c == '\t' || c == '\n' ||
           c == '\r';
}

/* How much of a bracketed value that went wrong at `e` (a syntax error,
 * or n when it is unterminated at the end) is given up as one bad value:
 * its first line alone when the error is on it; otherwise everything up
 * to the first later line that opens a new value in column 0 (the next
 * NDJSON document after a torn one), or when there is none, up to the end
 * of the line holding the error (a pretty-printed document that breaks,
 * or ends without its closing bracket, is one bad value, not one per
 * line). *need_more: the end of that line is not in p[0..n) yet. */
static size_t bad_cut(const char *p, size_t n, size_t e, bool *need_more)
{
    size_t lim = e < n ? e : n, k;
    const char *nl = memchr(p, '\n', lim);

    *need_more = false;
    if (nl) {
        for (k = (size_t)(nl - p);;) {
            if (k + 1 < n && k + 1 <= e && (p[k + 1] == '{' || p[k + 1] == '['))
                return k;
            nl = k + 1 < lim ? memchr(p + k + 1, '\n', lim - (k + 1)) : NULL;
            if (!nl)
                break;
            k = (size_t)(nl - p);
        }
    }
    if (e >= n)
        return n;
    nl = memchr(p + e, '\n', n - e);
    if (!nl)
        *need_more = true;
    return nl ? (size_t)(nl - p) : n;
}

enum ht__scan_rc ht__scan_value(const char *p, size_t n, bool eof, size_t *len,
                                int *maxdepth)
{
    uint8_t st[HT_MAX_DEPTH];
    int depth = 0, deepest = 0;
    size_t i;
    bool need_more;

    *maxdepth = 0;
    if (n == 0)
        return eof ? HT__SCAN_BAD_LINE : HT__SCAN_NEED_MORE;
    if (p[0] != '{' && p[0] != '[') {
        const char *nl = memchr(p, '\n', n);

        if (!nl && !eof)
            return HT__SCAN_NEED_MORE;
        *len = nl ? (size_t)(nl - p) : n;
        return HT__SCAN_VALUE;
    }
    for (i = 0; i < n; i++) {
        char c = p[i];
        uint8_t *s = depth > 0 && depth <= HT_MAX_DEPTH ? &st[depth - 1] : NULL;

        switch (c) {
        case ' ':
        case '\t':
        case '\r':
        case '\n':
            break;
        case '"': {
            /* most bytes are inside strings: jump to the next quote (memchr
             * is vectorised) and look back for the backslashes escaping it;
             * a raw newline before it means the string was cut off */
            size_t j = i + 1;
            const char *q;

            for (;;) {
                size_t bs = 0;

                q = memchr(p + j, '"', n - j);
                if (!q)
                    break;
                while ((size_t)(q - p) - bs > i + 1 && q[-1 - (long)bs] == '\\')
                    bs++;
                if (bs % 2 == 0)
                    break;
                j = (size_t)(q - p) + 1;
            }
            {
                const char *nl = memchr(p + i + 1, '\n',
                                        (q ? (size_t)(q - p) : n) - (i + 1));

                if (nl) {
                    i = (size_t)(nl - p);
                    goto bad;
                }
            }
            if (!q)
                goto more;
            if (s) {
                if (*s == ST_OBJ_FIRST || *s == ST_OBJ_KEY)
                    *s = ST_OBJ_COLON;
                else if (*s == ST_OBJ_VALUE)
                    *s = ST_OBJ_NEXT;
                else if (*s == ST_ARR_FIRST || *s == ST_ARR_VALUE)
                    *s = ST_ARR_NEXT;
                else
                    goto bad;
            }
            i = (size_t)(q - p);
            break;
        }
        case '{':
        case '[':
            if (s) {
                if (*s == ST_OBJ_VALUE)
                    *s = ST_OBJ_NEXT;
                else if (*s == ST_ARR_FIRST || *s == ST_ARR_VALUE)
                    *s = ST_ARR_NEXT;
                else
                    goto bad;
            }
            if (depth < HT_MAX_DEPTH)
                st[depth] = c == '{' ? ST_OBJ_FIRST : ST_ARR_FIRST;
            depth++;
            if (depth > deepest)
                deepest = depth;
            break;
        case '}':
        case ']':
            if (s && !(c == '}' ? *s == ST_OBJ_FIRST || *s == ST_OBJ_NEXT
                                : *s == ST_ARR_FIRST || *s == ST_ARR_NEXT))
                goto bad;
            depth--;
            if (depth == 0) {
                *len = i + 1;
                *maxdepth = deepest;
                return HT__SCAN_VALUE;
            }
            break;
        case ':':
            if (s) {
                if (*s != ST_OBJ_COLON)
                    goto bad;
                *s = ST_OBJ_VALUE;
            }
            break;
        case ',':
            if (s) {
                if (*s == ST_OBJ_NEXT)
                    *s = ST_OBJ_KEY;
                else if (*s == ST_ARR_NEXT)
                    *s = ST_ARR_VALUE;
                else
                    goto bad;
            }
            break;
        default:
            /* a scalar: numbers, true, false, null (checked by the parser) */
            if (s) {
                if (*s == ST_OBJ_VALUE)
                    *s = ST_OBJ_NEXT;
                else if (*s == ST_ARR_FIRST || *s == ST_ARR_VALUE)
                    *s = ST_ARR_NEXT;
                else
                    goto bad;
            }
            while (i + 1 < n && !is_struct(p[i + 1]))
                i++;
            break;
        }
    }
more:
    if (!eof)
        return HT__SCAN_NEED_MORE;
    *len = bad_cut(p, n, n, &need_more);
    return HT__SCAN_BAD_LINE;
bad:
    *len = bad_cut(p, n, i, &need_more);
    if (need_more && !eof)
        return HT__SCAN_NEED_MORE;
    return HT__SCAN_BAD_LINE;
}

size_t ht__skip_ws(const char *p, size_t n)
{
    size_t i = 0;

    while (i < n && is_ws(p[i]))
        i++;
    return i;
}

/* ---- streaming reader ------------------------------------------------- */

struct ht_reader {
    int fd;
    bool own_fd;
    int wait_ms; /* stream mode: wait at most this long for input (-1:
                    block, a file) */
    /* input side: raw bytes, inflated when the stream starts as gzip */
    unsigned char *raw;
    size_t raw_pos, raw_len;
    uint64_t raw_read; /* bytes read from the input so far */
    bool raw_eof, sniffed, gz, in_member, truncated;
    z_stream z;
    bool zinit;
    /* output side: decompressed bytes being cut into values */
    char *buf;
    size_t start, end, cap;
    uint64_t base; /* stream offset of buf[0] */
    bool eof;
    bool err;
    char *name;
    int depth;         /* of the last value, -1 when not a bracketed value */
    int bad;           /* reject reason of the last value, -1: none */
    bool trunc_told;   /* the truncation was returned as a value */
    size_t last_start; /* where the last value began (ht_reader_rescan) */
    bool no_fast;      /* scan the next value bracket by bracket */
    /* skipping the rest of a value too large to keep (returned once, as
     * too_large): bracket depth and string state carried across reads */
    bool skipping, sk_str;
    long sk_depth;
};

#define READ_CHUNK (1 << 20)
#define RAW_CHUNK (256 << 10)
#define READ_MAX ((size_t)HT_MAX_CONTAINER_BYTES + (64 << 10))

static int reader_new(int fd, bool own, const char *name, int wait_ms,
                      struct ht_reader **out)
{
    struct ht_reader *r = calloc(1, sizeof(*r));

    *out = NULL;
    if (!r) {
        if (own)
            close(fd);
        return HT_ERR_NOMEM;
    }
    r->fd = fd;
    r->own_fd = own;
    r->wait_ms = wait_ms;
    r->depth = -1;
    r->bad = -1;
    r->name = strdup(name);
    /* every value returned lies in buf[0, end), end <= cap: HJ_PADDING
     * bytes more (and one for a NUL) let it be parsed where it is (fill
     * zeroes those past the data) */
    r->cap = READ_CHUNK;
    r->buf = malloc(r->cap + 1 + HJ_PADDING);
    r->raw = malloc(RAW_CHUNK);
    if (!r->buf || !r->name || !r->raw) {
        ht_reader_close(r);
        return HT_ERR_NOMEM;
    }
    *out = r;
    return HT_ERR_OK;
}

int ht_reader_open(const char *path, struct ht_reader **out)
{
    int fd;

    *out = NULL;
    if (strcmp(path, "-") == 0)
        return reader_new(0, false, "stdin", -1, out);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        HT_LOG_ERROR("ingest:file", "cannot open %s: %s", path,
                     strerror(errno));
        return HT_ERR_IO;
    }
    {
        /* O_NONBLOCK only so that opening a FIFO never blocks; reading a
         * regular file ignores it, and anything else is refused */
        struct stat st;

        if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            HT_LOG_ERROR("ingest:file", "%s is not a regular file", path);
            close(fd);
            return HT_ERR_IO;
        }
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    }
    return reader_new(fd, true, path, -1, out);
}

int ht_reader_open_stream(int fd, const char *name, int wait_ms,
                          struct ht_reader **out)
{
    return reader_new(fd, false, name, wait_ms < 0 ? 0 : wait_ms, out);
}

void ht_reader_close(struct ht_reader *r)
{
    if (!r)
        return;
    if (r->zinit)
        inflateEnd(&r->z);
    if (r->own_fd && r->fd >= 0)
        close(r->fd);
    free(r->raw);
    free(r->buf);
    free(r->name);
    free(r);
}

enum { FILL_OK, FILL_EOF, FILL_FULL, FILL_AGAIN };

/* Reads raw input into r->raw when it is used up. FILL_OK, FILL_EOF (also
 * after an error, with r->err set) or FILL_AGAIN (stream mode: nothing
 * within wait_ms). */
static int read_raw(struct ht_reader *r, void *dst, size_t cap, size_t *got)
{
    ssize_t n;

    *got = 0;
    if (r->raw_eof)
        return FILL_EOF;
    if (r->wait_ms >= 0) {
        struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
        int pr = poll(&pfd, 1, r->wait_ms);

        if (pr == 0 || (pr < 0 && errno == EINTR))
            return FILL_AGAIN;
        if (pr < 0) {
            HT_LOG_ERROR("ingest:file", "reading %s: %s", r->name,
                         strerror(errno));
            r->raw_eof = r->err = true;
            return FILL_EOF;
        }
    }
    do
        n = read(r->fd, dst, cap);
    while (n < 0 && errno == EINTR && r->wait_ms < 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return FILL_AGAIN;
    if (n < 0) {
        HT_LOG_ERROR("ingest:file",
                     "reading %s: %s (the data before this point was kept)",
                     r->name, strerror(errno));
        r->raw_eof = r->err = true;
        return FILL_EOF;
    }
    if (n == 0) {
        r->raw_eof = true;
        return FILL_EOF;
    }
    *got = (size_t)n;
    r->raw_read += (uint64_t)n;
    return FILL_OK;
}

/* Inflates into buf[end..cap). */
static int fill_gz(struct ht_reader *r)
{
    size_t before = r->end;

    while (r->end == before) {
        int zr;

        if (r->z.avail_in == 0) {
            size_t got;
            int fr = read_raw(r, r->raw, RAW_CHUNK, &got);

            if (fr == FILL_AGAIN)
                return FILL_AGAIN;
            if (fr == FILL_EOF) {
                if (r->in_member && !r->err) {
                    HT_LOG_WARN("ingest:file",
                                "%s: the gzip data ends early (a truncated "
                                "file); what came before is kept",
                                r->name);
                    r->truncated = true;
                }
                return FILL_EOF;
            }
            r->z.next_in = r->raw;
            r->z.avail_in = (uInt)got;
        }
        if (!r->in_member) {
            /* a new member, or trailing bytes that are not gzip (ignored,
             * as gzip(1) does) */
            if (r->z.next_in[0] != 0x1f) {
                r->raw_eof = true;
                r->z.avail_in = 0;
                return FILL_EOF;
            }
            r->in_member = true;
        }
        r->z.next_out = (Bytef *)r->buf + r->end;
        r->z.avail_out = (uInt)(r->cap - r->end);
        zr = inflate(&r->z, Z_NO_FLUSH);
        r->end = r->cap - r->z.avail_out;
        if (zr == Z_STREAM_END) {
            r->in_member = false;
            inflateReset(&r->z);
        } else if (zr != Z_OK && zr != Z_BUF_ERROR) {
            HT_LOG_ERROR("ingest:file",
                         "reading %s: bad gzip data (%s); the data before "
                         "this point was kept",
                         r->name, r->z.msg ? r->z.msg : "inflate error");
            r->err = r->raw_eof = true;
            return FILL_EOF;
        }
    }
    return FILL_OK;
}

/* Reads more bytes into buf. */
static int fill(struct ht_reader *r)
{
    size_t got;
    int fr;

    if (r->eof)
        return FILL_EOF;
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->base += r->start;
        r->end -= r->start;
        r->last_start -= r->last_start >= r->start ? r->start : r->last_start;
        r->start = 0;
    }
    if (r->end == r->cap) {
        size_t ncap = r->cap * 2;
        char *q;

        if (r->cap >= READ_MAX)
            return FILL_FULL;
        if (ncap > READ_MAX)
            ncap = READ_MAX;
        q = realloc(r->buf, ncap + 1 + HJ_PADDING);
        if (!q)
            return FILL_FULL;
        r->buf = q;
        r->cap = ncap;
    }
    if (!r->sniffed) {
        fr = read_raw(r, r->raw, RAW_CHUNK, &got);
        if (fr == FILL_AGAIN)
            return FILL_AGAIN;
        if (fr == FILL_EOF) {
            r->eof = true;
            return FILL_EOF;
        }
        r->raw_pos = 0;
        r->raw_len = got;
        /* one byte may not tell gzip from text yet: wait for a second
         * unless the input ends here */
        if (got == 1 && r->raw[0] == 0x1f) {
            size_t more = 0;

            fr = read_raw(r, r->raw + 1, RAW_CHUNK - 1, &more);
            r->raw_len += more;
        }
        r->sniffed = true;
        r->gz = r->raw_len >= 2 && r->raw[0] == 0x1f && r->raw[1] == 0x8b;
        if (r->gz) {
            if (inflateInit2(&r->z, 15 + 16) != Z_OK) {
                r->err = r->eof = true;
                return FILL_EOF;
            }
            r->zinit = true;
            r->z.next_in = r->raw;
            r->z.avail_in = (uInt)r->raw_len;
        }
    }
    if (r->gz) {
        fr = fill_gz(r);
    } else if (r->raw_pos < r->raw_len) {
        /* the sniffed first bytes */
        size_t n = r->raw_len - r->raw_pos;

        if (n > r->cap - r->end)
            n = r->cap - r->end;
        memcpy(r->buf + r->end, r->raw + r->raw_pos, n);
        r->raw_pos += n;
        r->end += n;
        fr = FILL_OK;
    } else {
        fr = read_raw(r, r->buf + r->end, r->cap - r->end, &got);
        r->end += got;
    }
    /* what a parse may read past the last value: zeroed, so that no tool
     * sees uninitialised bytes read (what it holds does not matter) */
    memset(r->buf + r->end, 0, HJ_PADDING);
    if (fr == FILL_EOF)
        r->eof = true;
    return fr;
}

/* Follows brackets and strings through p[0..n) from the skip state; at
 * the end of the value returns how far it reached and clears r->skipping.
 * A raw newline inside a string (a value cut off) also ends the skip, at
 * that newline. */
static size_t skip_scan(struct ht_reader *r, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = p[i];

        if (r->sk_str) {
            const char *q = memchr(p + i, '"', n - i);
            const char *nl = memchr(p + i, '\n', (q ? (size_t)(q - p) : n) - i);
            size_t bs = 0;

            if (nl) {
                r->skipping = false;
                return (size_t)(nl - p);
            }
            if (!q)
                return n;
            i = (size_t)(q - p);
            /* backslashes before the quote, within this buffer: a quote
             * escaped across a read boundary is rare enough to accept */
            while (i - bs > 0 && p[i - bs - 1] == '\\')
                bs++;
            if (bs % 2 == 0)
                r->sk_str = false;
            continue;
        }
        if (c == '"') {
            r->sk_str = true;
        } else if (c == '{' || c == '[') {
            r->sk_depth++;
        } else if (c == '}' || c == ']') {
            if (--r->sk_depth <= 0) {
                r->skipping = false;
                return i + 1;
            }
        }
    }
    return n;
}

int ht_reader_next(struct ht_reader *r, const char **val, size_t *n,
                   uint64_t *offset, bool *too_large)
{
    *too_large = false;
    r->depth = -1;
    r->bad = -1;
    while (r->skipping) {
        /* the rest of a value too large to keep */
        size_t k = skip_scan(r, r->buf + r->start, r->end - r->start);
        int fr;

        r->start += k;
        if (!r->skipping)
            break;
        fr = fill(r);
        if (fr == FILL_AGAIN)
            return HT_READ_AGAIN;
        if (fr != FILL_OK) {
            r->skipping = false; /* it ends with the input */
            break;
        }
    }
    for (;;) {
        size_t avail, len = 0;
        int depth, fr;
        enum ht__scan_rc rc;

        r->start += ht__skip_ws(r->buf + r->start, r->end - r->start);
        avail = r->end - r->start;
        if (avail == 0) {
            fr = fill(r);
            if (fr == FILL_AGAIN)
                return HT_READ_AGAIN;
            if (fr == FILL_OK)
                continue;
            if (r->truncated && !r->trunc_told) {
                /* the stream ended at a value's boundary, inside a gzip
                 * member: say so once, as an empty value */
                r->trunc_told = true;
                r->bad = HT_REJ_TRUNCATED;
                r->last_start = r->start;
                *val = r->buf + r->start;
                *n = 0;
                *offset = r->base + r->start;
                return 1;
            }
            return r->err ? -1 : 0;
        }
        /* Fast path for NDJSON: a line that opens and closes like one
         * value is handed over whole, unscanned (HT_DEPTH_LINE); the
         * parser checks it anyway. If it is not one value after all the
         * caller asks for ht_reader_rescan and it is scanned below. */
        if (!r->no_fast &&
            (r->buf[r->start] == '{' || r->buf[r->start] == '[')) {
            const char *p = r->buf + r->start;
            const char *q = memchr(p, '\n', avail);

            if (q) {
                while (q > p && is_ws(q[-1]))
                    q--;
                if (q - p >= 2 && q[-1] == (p[0] == '{' ? '}' : ']')) {
                    len = (size_t)(q - p);
                    r->depth = HT_DEPTH_LINE;
                    goto emit;
                }
            }
        }
        rc = ht__scan_value(r->buf + r->start, avail, r->eof, &len, &depth);
        if (rc == HT__SCAN_NEED_MORE) {
            fr = fill(r);
            if (fr == FILL_OK || fr == FILL_EOF)
                continue; /* at eof the scan decides */
            if (fr == FILL_AGAIN)
                return HT_READ_AGAIN;
            /* buffer at its cap: the value is too large to keep. It is
             * returned once (its first bytes) and the rest of it skipped,
             * so it is one reject, not one per line of its inside. */
            *too_large = true;
            if (r->buf[r->start] != '{' && r->buf[r->start] != '[') {
                /* a line that is not a value: up to its end */
                const char *nl = memchr(r->buf + r->start, '\n', avail);

                len = nl ? (size_t)(nl - (r->buf + r->start)) + 1 : avail;
                goto emit;
            }
            r->skipping = true;
            r->sk_str = false;
            r->sk_depth = 0;
            len = skip_scan(r, r->buf + r->start, avail);
            if (r->skipping)
                len = avail; /* all of it, and more to skip */
            goto emit;
        }
        r->no_fast = false;
        if (rc == HT__SCAN_VALUE && depth > 0)
            r->depth = depth;
        if (rc == HT__SCAN_BAD_LINE)
            r->bad = r->eof && r->truncated && len == avail ? HT_REJ_TRUNCATED
                                                            : HT_REJ_NOT_JSON;
        if (r->bad == HT_REJ_TRUNCATED)
            r->trunc_told = true;
    emit:
        r->last_start = r->start;
        *val = r->buf + r->start;
        *n = len;
        *offset = r->base + r->start;
        r->start += len;
        return 1;
    }
}

void ht_reader_rescan(struct ht_reader *r)
{
    r->start = r->last_start;
    r->no_fast = true;
    r->depth = -1;
    r->bad = -1;
}

int ht_reader_depth(const struct ht_reader *r)
{
    return r->depth;
}

int ht_reader_bad(const struct ht_reader *r)
{
    return r->bad;
}

bool ht_reader_truncated(const struct ht_reader *r)
{
    return r->truncated;
}

uint64_t ht_reader_pos(const struct ht_reader *r)
{
    return r->base + r->start;
}

uint64_t ht_reader_input_pos(const struct ht_reader *r)
{
    return r->raw_read;
}

int ht_reader_skip_to(struct ht_reader *r, uint64_t offset)
{
    while (r->base + r->end < offset) {
        int fr;

        r->start = r->end;
        fr = fill(r);
        if (fr == FILL_AGAIN)
            continue;
        if (fr != FILL_OK)
            return HT_ERR_IO;
    }
    if (offset > r->base + r->start)
        r->start = (size_t)(offset - r->base);
    return HT_ERR_OK;
}
