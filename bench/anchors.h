/*
 * anchors.h - the two floors ht-bench holds ingest against besides
 * jansson (bench/README.md, "Anchors"): simdjson's DOM parse of the same
 * documents (the parser ingest itself uses), and LMDB loading the pairs
 * of the store ingest wrote, sorted and appended (MDB_APPEND), the fastest
 * way LMDB can write them. Owned by bench/.
 */
#ifndef HT_BENCH_ANCHORS_H
#define HT_BENCH_ANCHORS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One document of the corpus, held in memory (ht_bench.c's own type). */
struct doc {
    const char *p;
    size_t n;
};

/* The caller times the calls below, as it times the jansson floor. */

/* The documents, copied once into one buffer with simdjson's padding after
 * each, so that a timed parse copies nothing. NULL when out of memory. */
struct ht_simd_docs;
struct ht_simd_docs *ht_simd_docs_load(const struct doc *d, size_t count);
/* One pass of simdjson's DOM parse over every document with one reused
 * parser: how many documents it rejected. */
uint64_t ht_simd_parse_once(const struct ht_simd_docs *d);
void ht_simd_docs_free(struct ht_simd_docs *d);

/* Every pair of every named database of the LMDB environment in `dir`,
 * read once (in key order, as LMDB holds them) with each database's
 * flags. NULL when the store cannot be read (*err says why). */
struct ht_lmdb_pairs;
struct ht_lmdb_pairs *ht_lmdb_pairs_read(const char *dir, char *err,
                                         size_t errn);
/* Loads them into a fresh environment in `dir` (created; removed by the
 * caller) as hoptrace opens its store (MDB_WRITEMAP | MDB_NOSYNC), each
 * database in one transaction with MDB_APPEND (MDB_APPENDDUP in a dupsort
 * database), the environment's creation and close included: 0, or -1 on
 * an LMDB error (err says which). */
int ht_lmdb_pairs_append(const struct ht_lmdb_pairs *p, const char *dir,
                         char *err, size_t errn);
/* How many pairs, and their key + value bytes. */
void ht_lmdb_pairs_size(const struct ht_lmdb_pairs *p, uint64_t *pairs,
                        uint64_t *bytes);
void ht_lmdb_pairs_free(struct ht_lmdb_pairs *p);

#ifdef __cplusplus
}
#endif

#endif
