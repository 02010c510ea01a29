/*
 * sim.h - helpers of `hoptrace simulate` (cli/sim_util.c): a small seeded
 * PRNG, MD5 (the SQS md5OfBody), base64, gzip and buffered output files.
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

/* Number formatting that does not go through printf on the hot path. */
void sim_put_i64(struct ht_buf *b, int64_t v);
/* v in decimal, zero-padded on the left to at least width digits. */
void sim_put_u64w(struct ht_buf *b, uint64_t v, int width);
/* Epoch microseconds as X-Ray seconds, exact: 1795700000.057593 */
void sim_put_sec(struct ht_buf *b, int64_t us);
/* Milliseconds as a JSON number with 3 decimals: 812.400 */
void sim_put_ms3(struct ht_buf *b, int64_t us);

#endif
