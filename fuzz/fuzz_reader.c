/*
 * fuzz_reader.c - a file as ingest reads it (ingest/src_file.c): the
 * reader's framing (NDJSON lines, pretty-printed values, concatenated
 * values, gzip members, torn lines) and each value it gives decoded as
 * ingest decodes it. The same bytes are read twice: as a regular file and
 * as a stream (stdin's mode).
 */
#define _GNU_SOURCE
#include "fuzz.h"
#include "ht_ingest.h"

#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

/* src_file.c's take_value, and its loop over a reader */
static void read_all(struct ht_reader *r, struct ht_batch *b)
{
    struct ht_srcpos pos = {"fuzz", 0};
    int guard = 0;

    for (;;) {
        const char *val;
        size_t n;
        bool too_large;
        int more = ht_reader_next(r, &val, &n, &pos.offset, &too_large);
        int bad;

        if (more <= 0 || more == HT_READ_AGAIN || ++guard > 100000)
            break;
        bad = ht_reader_bad(r);
        if (too_large)
            ht_batch_reject(b, HT_REJ_TOO_LARGE, &pos, "too large", val, n);
        else if (bad >= 0)
            ht_batch_reject(b, bad, &pos, "bad", val, n);
        else if (!ht_ingest_value(b, &pos, val, n, ht_reader_depth(r)))
            ht_reader_rescan(r);
        (void)ht_reader_pos(r);
        (void)ht_reader_input_pos(r);
        if (b->nspans + b->nfacts + b->nrejects > 4096)
            ht_batch_reset(b);
    }
    (void)ht_reader_truncated(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ht_batch b;
    struct ht_reader *r;
    char path[64];
    int fd;

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
        read_all(r, &b);
        ht_reader_close(r);
    }
    ht_batch_reset(&b);
    if (lseek(fd, 0, SEEK_SET) == 0 &&
        ht_reader_open_stream(fd, "fuzz-stream", 0, &r) == HT_ERR_OK) {
        read_all(r, &b);
        ht_reader_close(r);
    }
    ht_batch_free(&b);
    close(fd);
    return 0;
}
