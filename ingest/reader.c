/*
 * reader.c - splitting byte streams into top-level JSON values.
 *
 * Files and stdin are streamed through zlib's gzread (which passes plain
 * files through unchanged), so a file is never loaded whole: memory is
 * bounded by the largest single value. The same scanner splits in-memory
 * payloads (Kafka messages, datagrams, decoded records) in decode.c.
 *
 * A value is found by bracket matching that understands strings. When a
 * value cannot be closed (a truncated NDJSON line, a stray bracket), only
 * its first line is given up and scanning resumes on the next line, so one
 * bad line never swallows the good ones after it.
 *
 * Owned by ingest/. It must not interpret documents.
 */
#define _GNU_SOURCE
#include "ht_ingest.h"
#include "ingest_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

enum ht__scan_rc ht__scan_value(const char *p, size_t n, bool eof, size_t *len,
                                int *maxdepth)
{
    char stack[HT_MAX_DEPTH];
    int depth = 0, deepest = 0;
    bool in_str = false;
    size_t i;

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

        if (in_str) {
            /* most bytes are inside strings: jump to the next quote (memchr
             * is vectorised) and look back for the backslashes escaping it */
            const char *q = memchr(p + i, '"', n - i);
            size_t bs = 0;

            if (!q)
                break;
            i = (size_t)(q - p);
            while (i - bs > 0 && p[i - bs - 1] == '\\')
                bs++;
            if (bs % 2 == 0)
                in_str = false;
            continue;
        }
        switch (c) {
        case '"':
            in_str = true;
            break;
        case '{':
        case '[':
            if (depth < HT_MAX_DEPTH)
                stack[depth] = c == '{' ? '}' : ']';
            depth++;
            if (depth > deepest)
                deepest = depth;
            break;
        case '}':
        case ']':
            if (depth == 0)
                return HT__SCAN_BAD_LINE;
            depth--;
            if (depth < HT_MAX_DEPTH && stack[depth] != c)
                return HT__SCAN_BAD_LINE;
            if (depth == 0) {
                *len = i + 1;
                *maxdepth = deepest;
                return HT__SCAN_VALUE;
            }
            break;
        default:
            break;
        }
    }
    return eof ? HT__SCAN_BAD_LINE : HT__SCAN_NEED_MORE;
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
    gzFile gz;
    char *buf;
    size_t start, end, cap;
    uint64_t base; /* stream offset of buf[0] */
    bool eof;
    bool err;
    char *name;
    int depth;         /* of the last value, -1 when not a bracketed value */
    size_t last_start; /* where the last value began (ht_reader_rescan) */
    bool no_fast;      /* scan the next value bracket by bracket */
};

#define READ_CHUNK (1 << 20)
#define READ_MAX ((size_t)HT_MAX_CONTAINER_BYTES + (64 << 10))

int ht_reader_open(const char *path, struct ht_reader **out)
{
    struct ht_reader *r = calloc(1, sizeof(*r));

    *out = NULL;
    if (!r)
        return HT_ERR_NOMEM;
    if (strcmp(path, "-") == 0)
        r->gz = gzdopen(0, "rb");
    else
        r->gz = gzopen(path, "rb");
    if (!r->gz) {
        HT_LOG_ERROR("ingest:file", "cannot open %s: %s", path,
                     errno ? strerror(errno) : "out of memory");
        free(r);
        return HT_ERR_IO;
    }
    gzbuffer(r->gz, 256 * 1024);
    r->name = strdup(path);
    r->cap = READ_CHUNK;
    r->buf = malloc(r->cap + 1);
    if (!r->buf || !r->name) {
        ht_reader_close(r);
        return HT_ERR_NOMEM;
    }
    *out = r;
    return HT_ERR_OK;
}

void ht_reader_close(struct ht_reader *r)
{
    if (!r)
        return;
    if (r->gz)
        gzclose(r->gz);
    free(r->buf);
    free(r->name);
    free(r);
}

/* Read more bytes; false when nothing more can come. */
static bool fill(struct ht_reader *r)
{
    int got;

    if (r->eof)
        return false;
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->base += r->start;
        r->end -= r->start;
        r->start = 0;
    }
    if (r->end == r->cap) {
        size_t ncap = r->cap * 2;
        char *q;

        if (r->cap >= READ_MAX)
            return false;
        if (ncap > READ_MAX)
            ncap = READ_MAX;
        q = realloc(r->buf, ncap + 1);
        if (!q)
            return false;
        r->buf = q;
        r->cap = ncap;
    }
    got = gzread(r->gz, r->buf + r->end, (unsigned)(r->cap - r->end));
    if (got < 0) {
        int zerr;
        const char *msg = gzerror(r->gz, &zerr);

        HT_LOG_ERROR("ingest:file",
                     "reading %s: %s (the data before this "
                     "point was kept)",
                     r->name, msg);
        r->eof = true;
        r->err = true;
        return false;
    }
    if (got == 0) {
        r->eof = true;
        return false;
    }
    r->end += (size_t)got;
    return true;
}

int ht_reader_next(struct ht_reader *r, const char **val, size_t *n,
                   uint64_t *offset, bool *too_large)
{
    *too_large = false;
    r->depth = -1;
    for (;;) {
        size_t avail, len = 0;
        int depth;
        enum ht__scan_rc rc;

        r->start += ht__skip_ws(r->buf + r->start, r->end - r->start);
        avail = r->end - r->start;
        if (avail == 0) {
            if (!fill(r))
                return r->err ? -1 : 0;
            continue;
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
        r->no_fast = false;
        rc = ht__scan_value(r->buf + r->start, avail, r->eof, &len, &depth);
        if (rc == HT__SCAN_VALUE && depth > 0)
            r->depth = depth;
        if (rc == HT__SCAN_NEED_MORE) {
            if (fill(r))
                continue;
            if (!r->eof) {
                /* buffer at its cap: the value is too large to keep */
                const char *nl = memchr(r->buf + r->start, '\n', avail);

                len = nl ? (size_t)(nl - (r->buf + r->start)) + 1 : avail;
                *too_large = true;
                goto emit;
            }
            continue; /* eof now set: rescan decides */
        }
        if (rc == HT__SCAN_BAD_LINE) {
            const char *nl = memchr(r->buf + r->start, '\n', avail);

            if (!nl && !r->eof && fill(r))
                continue;
            avail = r->end - r->start;
            nl = memchr(r->buf + r->start, '\n', avail);
            len = nl ? (size_t)(nl - (r->buf + r->start)) : avail;
        }
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
}

int ht_reader_depth(const struct ht_reader *r)
{
    return r->depth;
}

uint64_t ht_reader_pos(const struct ht_reader *r)
{
    return r->base + r->start;
}

int ht_reader_skip_to(struct ht_reader *r, uint64_t offset)
{
    while (r->base + r->end < offset) {
        r->start = r->end;
        if (!fill(r))
            return HT_ERR_IO;
    }
    if (offset > r->base + r->start)
        r->start = (size_t)(offset - r->base);
    return HT_ERR_OK;
}
