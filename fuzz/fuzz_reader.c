/*
 * fuzz_reader.c - a file as ingest reads it (ingest/src_file.c): the
 * reader's framing (NDJSON lines, pretty-printed values, concatenated
 * values, gzip members, torn lines) and each value it gives decoded as
 * ingest decodes it. The same bytes are read twice, as a regular file and
 * as a stream (stdin's mode), and must decode to the same spans, records
 * and rejects (issue 11: a stream is stored exactly as a file ingest of
 * the same bytes); a difference aborts, so libFuzzer reports the input.
 */
#define _GNU_SOURCE
#include "fuzz.h"
#include "ht_ingest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* What a batch decoded, folded into a hash (FNV-1a): ids of spans, the
 * request ids and kinds of records, the reasons of rejects, the counts.
 * Positions are left out: they are a reading's, not the data's. */
struct digest {
    uint64_t h, spans, facts, rejects, documents;
};

static void mix(struct digest *d, const void *p, size_t n)
{
    const uint8_t *b = p;

    for (size_t i = 0; i < n; i++)
        d->h = (d->h ^ b[i]) * 1099511628211ull;
}

static void mix_str(struct digest *d, const char *s)
{
    mix(d, s ? s : "", s ? strlen(s) + 1 : 1);
}

static void fold(struct digest *d, const struct ht_batch *b)
{
    for (size_t i = 0; i < b->nspans; i++) {
        mix(d, b->spans[i].trace.b, 16);
        mix(d, b->spans[i].id.b, 8);
        mix(d, &b->spans[i].flags, sizeof(b->spans[i].flags));
    }
    for (size_t i = 0; i < b->nfacts; i++) {
        mix(d, &b->facts[i].kind, 1);
        mix_str(d, b->facts[i].request_id);
    }
    for (size_t i = 0; i < b->nrejects; i++)
        mix(d, &b->rejects[i].reason, 1);
    d->spans += b->nspans;
    d->facts += b->nfacts;
    d->rejects += b->nrejects;
    d->documents += b->documents;
}

/* src_file.c's loop over a reader */
static void read_all(struct ht_reader *r, struct ht_batch *b, struct digest *d)
{
    struct ht_srcpos pos = {"fuzz", 0};
    int guard = 0;

    for (;;) {
        const char *val;
        size_t n;
        bool too_large;
        int more = ht_reader_next(r, &val, &n, &pos.offset, &too_large);

        if (more <= 0 || more == HT_READ_AGAIN || ++guard > 100000)
            break;
        ht_ingest_read_value(b, r, &pos, val, n, too_large);
        (void)ht_reader_pos(r);
        (void)ht_reader_input_pos(r);
        if (b->nspans + b->nfacts + b->nrejects > 4096) {
            fold(d, b);
            ht_batch_reset(b);
        }
    }
    fold(d, b);
    ht_batch_reset(b);
    ht_ingest_source_end(&pos); /* as src_file.c does at a file's end */
    (void)ht_reader_truncated(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ht_batch b;
    struct ht_reader *r;
    struct digest file = {14695981039346656037ull, 0, 0, 0, 0};
    struct digest stream = file;
    char path[64];
    int fd, opened = 0;

    ht_log_level = -1;
    fd = memfd_create("fuzz", 0);
    if (fd < 0)
        return 0;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    if (ht_batch_init(&b) != HT_ERR_OK) {
        close(fd);
        return 0;
    }
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    if (ht_reader_open(path, &r) == HT_ERR_OK) {
        read_all(r, &b, &file);
        ht_reader_close(r);
        opened++;
    }
    if (lseek(fd, 0, SEEK_SET) == 0 &&
        ht_reader_open_stream(fd, "fuzz-stream", 0, &r) == HT_ERR_OK) {
        read_all(r, &b, &stream);
        ht_reader_close(r);
        opened++;
    }
    ht_batch_free(&b);
    close(fd);
    if (opened == 2 && memcmp(&file, &stream, sizeof(file)) != 0) {
        fprintf(
            stderr,
            "fuzz_reader: a file and a stream of the same %zu bytes "
            "decode differently: spans %llu/%llu, records %llu/%llu, "
            "rejects %llu/%llu, documents %llu/%llu\n",
            size, (unsigned long long)file.spans,
            (unsigned long long)stream.spans, (unsigned long long)file.facts,
            (unsigned long long)stream.facts, (unsigned long long)file.rejects,
            (unsigned long long)stream.rejects,
            (unsigned long long)file.documents,
            (unsigned long long)stream.documents);
        abort();
    }
    return 0;
}
