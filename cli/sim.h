/*
 * sim.h - helpers of `hoptrace simulate` (cli/sim_util.c): a small seeded
 * PRNG, MD5 (the SQS md5OfBody), base64, gzip, buffered output files and
 * a bounded shuffle window (--shuffle).
 * Owned by cli/; used by cmd_simulate.c only. Nothing here is on the
 * ingest path and nothing here depends on the store.
 */
#ifndef HT_SIM_H
#define HT_SIM_H

#include "ht_common.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* xoshiro256** seeded through splitmix64: the same seed gives the same
 * corpus on every machine (no libc rand, no floating point in the state). */
struct sim_rng {
    uint64_t s[4];
};

void sim_rng_seed(struct sim_rng *r, uint64_t seed);
uint64_t sim_rng_next(struct sim_rng *r);
/* Uniform in [lo, hi], both included (lo <= hi). */
int64_t sim_rng_int(struct sim_rng *r, int64_t lo, int64_t hi);
/* Uniform in [0, 1). */
double sim_rng_unit(struct sim_rng *r);
/* Lowercase hex of nbits (a multiple of 4, <= 256) random bits into out
 * (nbits / 4 + 1 bytes, NUL-terminated). */
void sim_rng_hex(struct sim_rng *r, int nbits, char *out);

/* MD5 of p[0..n) as 32 lowercase hex digits + NUL into out[33]. */
void sim_md5_hex(const void *p, size_t n, char out[33]);

/* Appends base64 (standard alphabet, padded) of p[0..n) to b. */
void sim_b64(struct ht_buf *b, const void *p, size_t n);

/* gzip (level 6, mtime 0) of p[0..n) into *buf (malloc'd, grown with
 * realloc as needed, *cap its size; the caller frees it). *outlen is the
 * compressed size. 0 or -1. */
int sim_gzip(const void *p, size_t n, unsigned char **buf, size_t *cap,
             size_t *outlen);

/* A buffered output file: appends go to buf and are written out in large
 * blocks, so memory stays bounded however large the corpus. */
struct sim_out {
    FILE *f;
    struct z_stream_s *z; /* set: the file is written gzip-compressed */
    const char *path;
    struct ht_buf buf;
    uint64_t bytes; /* uncompressed */
    int err;        /* errno of the first failed write, 0 if none */
};

/* gzip: write the file gzip-compressed (streamed, level 6, mtime 0). */
int sim_out_open(struct sim_out *o, const char *path, bool gzip);
/* Writes buf out when it is larger than the block size. */
void sim_out_maybe_flush(struct sim_out *o);
/* Flushes and closes; returns the first error (errno) or 0. */
int sim_out_close(struct sim_out *o);

/* A shuffle window (simulate --shuffle): items go in in the order they
 * are made and leave in random order. The window holds at most max_items
 * items and max_bytes bytes, so memory stays bounded however large the
 * corpus: a corpus smaller than the window is shuffled whole, a larger
 * one locally. Items are owned copies; sim_shuf_take hands one over to
 * the caller, who frees its p. */
struct sim_shuf_item {
    char *p;
    size_t n;
    int64_t aux; /* the caller's (e.g. a timestamp) */
};

struct sim_shuf {
    struct sim_shuf_item *it;
    size_t n, cap, bytes, max_items, max_bytes;
};

void sim_shuf_init(struct sim_shuf *s, size_t max_items, size_t max_bytes);
/* Adds a copy of p[0..n). 0, or -1 out of memory. */
int sim_shuf_add(struct sim_shuf *s, const void *p, size_t n, int64_t aux);
/* Whether the window holds more than it may (take one out, then ask
 * again). */
bool sim_shuf_full(const struct sim_shuf *s);
/* Removes one item drawn uniformly at random into *out: true, or false
 * when the window is empty. Taking until false drains it in a random
 * order. */
bool sim_shuf_take(struct sim_shuf *s, struct sim_rng *r,
                   struct sim_shuf_item *out);
/* Frees the items left and the window. */
void sim_shuf_free(struct sim_shuf *s);

/* Number formatting that does not go through printf on the hot path. */
void sim_put_i64(struct ht_buf *b, int64_t v);
/* v in decimal, zero-padded on the left to at least width digits. */
void sim_put_u64w(struct ht_buf *b, uint64_t v, int width);
/* Epoch microseconds as X-Ray seconds, exact: 1795700000.057593 */
void sim_put_sec(struct ht_buf *b, int64_t us);
/* Milliseconds as a JSON number with 3 decimals: 812.400 */
void sim_put_ms3(struct ht_buf *b, int64_t us);

#endif
