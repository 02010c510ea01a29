/*
 * lmdb_floor.c - ht-lmdb-floor: what LMDB itself charges to expire one
 * day of a random-keyed index, the floor under retention's deletes
 * (bench/README.md, "The delete floor").
 *
 * A table holds DAYS days of N entries each (21-byte keys: a prefix byte
 * and random bytes, like `keys`; 9-byte values), loaded in sorted batches
 * of 5,000 as ingest loads it. Then the first day's N entries go, timed
 * (process CPU), in one of three layouts:
 *   random  the keys carry no day: the day's entries are spread over the
 *           whole table and deleted in sorted slices of S per transaction
 *           (what hoptrace's retention does in `keys`, `facts`, `inv`,
 *           `pending` and the stall state);
 *   range   the key begins with its day: the day is one contiguous range,
 *           deleted from its first key on in slices of S;
 *   drop    each day is its own named database: mdb_drop.
 * The environment is opened as hoptrace opens its store (MDB_WRITEMAP |
 * MDB_NOSYNC | MDB_NORDAHEAD), in a new folder under $TMPDIR, removed at
 * exit.
 *
 * With --lookups L, the other side of the trade, before the deletes: L
 * lookups by id (half of ids present, from any day; half absent), timed
 * in one read transaction. In the random layout one search each; in the
 * drop layout a lookup must probe every day (an id's entries may be in
 * any of them), and then again with a Bloom filter per day (10 bits per
 * entry, 7 probes, in memory) that lets it skip the days that cannot hold
 * the id.
 *
 * With --creep DAYS, the other cost of a store under retention: its file.
 * A named database per day (the drop layout, as the store keeps an epoch's
 * tables), day after day for DAYS days: the day's N entries loaded in
 * sorted batches of --batch B, then the table --days D days old dropped.
 * After each day, the file's pages (LMDB's last page + 1), the kept
 * tables' pages, the free list's pages and records, and the rest (the two
 * meta pages, the main and free-list trees), which add up to the file.
 * Nothing of hoptrace is in it: what the file gains from one day to the
 * next once the days are full is LMDB's own (docs/performance.md).
 *
 * Owned by bench/. A measurement: e2e_lmdb_floor_smoke runs it small and
 * checks only what it finds, never its times.
 */
#define _GNU_SOURCE
#include "ht_common.h"

#include <errno.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KEY 21
#define LOAD_BATCH 5000

static const char usage[] =
    "usage: ht-lmdb-floor [--entries N] [--days D] [--slice S]\n"
    "                     [--layout random|range|drop|all] [--lookups L]\n"
    "  --entries N  entries per day (default 184000: one soak chunk's\n"
    "               `keys` entries)\n"
    "  --days D     days in the table (default 3, as under --retain 2d)\n"
    "  --slice S    deletes per write transaction (default 25000)\n"
    "  --layout L   which layout to time (default all)\n"
    "  --lookups L  also time L lookups by id (random and drop layouts)\n"
    "Prints per layout the CPU seconds and microseconds per deleted "
    "entry.\n"
    "\n"
    "       ht-lmdb-floor --creep DAYS [--entries N] [--days D] [--batch B]\n"
    "  --creep DAYS a table per day for DAYS days, loaded in sorted batches\n"
    "               of B (default 5000), the table D days old dropped after\n"
    "               each; prints per day the file's pages, the kept tables',\n"
    "               the free list's, and the file's growth a day over the\n"
    "               second half\n";

struct key {
    uint8_t b[KEY];
};

static uint64_t rng = 88172645463325252ull;

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double cpu_s(void)
{
    struct timespec t;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp_key(const void *a, const void *b)
{
    return memcmp(a, b, KEY);
}

static void check(int rc, const char *what)
{
    if (rc) {
        fprintf(stderr, "ht-lmdb-floor: %s: %s\n", what, mdb_strerror(rc));
        exit(5);
    }
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (!p) {
        fputs("ht-lmdb-floor: out of memory\n", stderr);
        exit(5);
    }
    return p;
}

enum layout { RANDOM, RANGE, DROP };
static const char *const layout_name[] = {"random", "range", "drop"};

/* Key i of day d: 'K', then the day (range) or random bytes. */
static void make_key(struct key *k, enum layout l, unsigned d)
{
    k->b[0] = 'K';
    k->b[1] = l == RANGE ? (uint8_t)(d >> 8) : (uint8_t)next_rand();
    k->b[2] = l == RANGE ? (uint8_t)d : (uint8_t)next_rand();
    for (int j = 3; j < KEY; j++)
        k->b[j] = (uint8_t)next_rand();
}

/* ---- lookups ------------------------------------------------------------ */

#define BLOOM_BITS_PER_KEY 10
#define BLOOM_PROBES 7

struct bloom {
    uint64_t *w;
    uint64_t nbits;
};

/* The two hashes of double hashing, from the store's own hash of an id
 * (ht_hash64): its halves. */
static void key_hash(const uint8_t *k, uint64_t *h1, uint64_t *h2)
{
    uint64_t h = ht_hash64(k, KEY);

    *h1 = h & 0xffffffffu;
    *h2 = (h >> 32) | 1;
}

static void bloom_add(struct bloom *f, const uint8_t *k)
{
    uint64_t h1, h2;

    key_hash(k, &h1, &h2);
    for (int i = 0; i < BLOOM_PROBES; i++) {
        uint64_t bit = (h1 + (uint64_t)i * h2) % f->nbits;

        f->w[bit >> 6] |= 1ull << (bit & 63);
    }
}

static int bloom_may(const struct bloom *f, const uint8_t *k)
{
    uint64_t h1, h2;

    key_hash(k, &h1, &h2);
    for (int i = 0; i < BLOOM_PROBES; i++) {
        uint64_t bit = (h1 + (uint64_t)i * h2) % f->nbits;

        if (!(f->w[bit >> 6] >> (bit & 63) & 1))
            return 0;
    }
    return 1;
}

/* L lookups, half present (any day), half absent, in one read
 * transaction: one table (one), or every day's (day[], probing all, or
 * only where f[] says maybe when f is not NULL). Microseconds per lookup
 * (process CPU); *found how many were there. */
static double lookups(MDB_env *env, MDB_dbi one, const MDB_dbi *day,
                      unsigned days, const struct bloom *f,
                      const struct key *ks, size_t total, size_t L,
                      size_t *found)
{
    MDB_txn *t;
    struct key *q = xmalloc(L * sizeof(*q));
    uint64_t save = rng;
    double c0, c1;

    rng = 0x2545f4914f6cdd1dull; /* the same ids for every layout */
    for (size_t i = 0; i < L; i++) {
        if (i % 2 == 0) {
            q[i] = ks[next_rand() % total];
        } else {
            make_key(&q[i], RANDOM, 0);
        }
    }
    rng = save;
    *found = 0;
    check(mdb_txn_begin(env, NULL, MDB_RDONLY, &t), "mdb_txn_begin");
    c0 = cpu_s();
    for (size_t i = 0; i < L; i++) {
        MDB_val k = {KEY, q[i].b}, v;

        if (!day) {
            *found += mdb_get(t, one, &k, &v) == 0;
            continue;
        }
        for (unsigned d = 0; d < days; d++)
            if ((!f || bloom_may(&f[d], q[i].b)) &&
                mdb_get(t, day[d], &k, &v) == 0)
                ++*found; /* all days: an id may be in several */
    }
    c1 = cpu_s();
    mdb_txn_abort(t);
    free(q);
    return (c1 - c0) / (double)L * 1e6;
}

/* Loads the table(s), deletes day 0; CPU seconds of the deletes. */
static double run(enum layout l, size_t n, unsigned days, size_t slice,
                  size_t nlook, const char *dir)
{
    MDB_env *env;
    MDB_txn *t;
    MDB_dbi one = 0, *day = xmalloc(days * sizeof(*day));
    struct key *ks = xmalloc((size_t)days * n * sizeof(*ks));
    struct key *b = xmalloc((n > LOAD_BATCH ? n : LOAD_BATCH) * sizeof(*b));
    double c0, c1;

    check(mdb_env_create(&env), "mdb_env_create");
    check(mdb_env_set_mapsize(env, (size_t)days * n * 200 + (64u << 20)),
          "mdb_env_set_mapsize");
    check(mdb_env_set_maxdbs(env, days + 2), "mdb_env_set_maxdbs");
    check(
        mdb_env_open(env, dir, MDB_WRITEMAP | MDB_NOSYNC | MDB_NORDAHEAD, 0644),
        "mdb_env_open");
    for (size_t i = 0; i < (size_t)days * n; i++)
        make_key(&ks[i], l, (unsigned)(i / n));
    check(mdb_txn_begin(env, NULL, 0, &t), "mdb_txn_begin");
    if (l == DROP) {
        for (unsigned d = 0; d < days; d++) {
            char name[16];

            snprintf(name, sizeof(name), "day%u", d);
            check(mdb_dbi_open(t, name, MDB_CREATE, &day[d]), "mdb_dbi_open");
        }
    } else {
        check(mdb_dbi_open(t, "keys", MDB_CREATE, &one), "mdb_dbi_open");
    }
    check(mdb_txn_commit(t), "mdb_txn_commit");
    /* day after day, in sorted batches, as ingest writes */
    for (size_t i = 0, m; i < (size_t)days * n; i += m) {
        size_t left = n - i % n; /* a batch never spans two days */
        MDB_cursor *c;

        m = left < LOAD_BATCH ? left : LOAD_BATCH;
        memcpy(b, ks + i, m * sizeof(*b));
        qsort(b, m, KEY, cmp_key);
        check(mdb_txn_begin(env, NULL, 0, &t), "mdb_txn_begin");
        check(mdb_cursor_open(t, l == DROP ? day[i / n] : one, &c),
              "mdb_cursor_open");
        for (size_t j = 0; j < m; j++) {
            MDB_val k = {KEY, b[j].b}, v = {9, "012345678"};

            check(mdb_cursor_put(c, &k, &v, 0), "mdb_cursor_put");
        }
        mdb_cursor_close(c);
        check(mdb_txn_commit(t), "mdb_txn_commit");
    }
    if (nlook && l != RANGE) {
        size_t found;
        double us;

        if (l == RANDOM) {
            us = lookups(env, one, NULL, days, NULL, ks, (size_t)days * n,
                         nlook, &found);
            printf("lookup  one table:                  %7.3f us per id "
                   "(%zu of %zu found)\n",
                   us, found, nlook);
        } else {
            struct bloom *f = xmalloc(days * sizeof(*f));

            for (unsigned d = 0; d < days; d++) {
                f[d].nbits = (uint64_t)n * BLOOM_BITS_PER_KEY;
                f[d].w = calloc(f[d].nbits / 64 + 1, 8);
                if (!f[d].w)
                    check(ENOMEM, "bloom");
                for (size_t i = 0; i < n; i++)
                    bloom_add(&f[d], ks[(size_t)d * n + i].b);
            }
            us = lookups(env, 0, day, days, NULL, ks, (size_t)days * n, nlook,
                         &found);
            printf("lookup  a table per day, every day: %7.3f us per id "
                   "(%zu of %zu found)\n",
                   us, found, nlook);
            us = lookups(env, 0, day, days, f, ks, (size_t)days * n, nlook,
                         &found);
            printf("lookup  per day, Bloom-filtered:    %7.3f us per id "
                   "(%zu of %zu found; filters %.0f KiB)\n",
                   us, found, nlook,
                   (double)days * (double)n * BLOOM_BITS_PER_KEY / 8192.0);
            for (unsigned d = 0; d < days; d++)
                free(f[d].w);
            free(f);
        }
    }
    c0 = cpu_s();
    if (l == DROP) {
        check(mdb_txn_begin(env, NULL, 0, &t), "mdb_txn_begin");
        check(mdb_drop(t, day[0], 1), "mdb_drop");
        check(mdb_txn_commit(t), "mdb_txn_commit");
    }
    for (size_t i = 0; l != DROP && i < n; i += slice) {
        size_t m = n - i < slice ? n - i : slice;
        MDB_cursor *c;
        MDB_val k, v;

        check(mdb_txn_begin(env, NULL, 0, &t), "mdb_txn_begin");
        check(mdb_cursor_open(t, one, &c), "mdb_cursor_open");
        if (l == RANGE) { /* day 0 is the table's head */
            int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);

            for (size_t j = 0; j < m && rc == 0; j++) {
                check(mdb_cursor_del(c, 0), "mdb_cursor_del");
                rc = mdb_cursor_get(c, &k, &v, MDB_GET_CURRENT);
            }
        } else { /* day 0's keys, wherever they are, sorted per slice */
            memcpy(b, ks + i, m * sizeof(*b));
            qsort(b, m, KEY, cmp_key);
            for (size_t j = 0; j < m; j++) {
                k = (MDB_val){KEY, b[j].b};
                check(mdb_cursor_get(c, &k, &v, MDB_SET), "mdb_cursor_get");
                check(mdb_cursor_del(c, 0), "mdb_cursor_del");
            }
        }
        mdb_cursor_close(c);
        check(mdb_txn_commit(t), "mdb_txn_commit");
    }
    c1 = cpu_s();
    mdb_env_close(env);
    free(ks);
    free(b);
    free(day);
    return c1 - c0;
}

/* ---- the file under retention (--creep) --------------------------------- */

struct census {
    size_t file;    /* LMDB's last page + 1 */
    size_t live;    /* the kept days' tables */
    size_t free;    /* pages in the free list's records */
    size_t records; /* the free list's records */
    size_t other;   /* the two meta pages, the main and free-list trees */
};

static size_t tree_pages(const MDB_stat *st)
{
    return st->ms_branch_pages + st->ms_leaf_pages + st->ms_overflow_pages;
}

/* Where the file's pages are, in one read transaction. */
static void census(MDB_env *env, const MDB_dbi *day, unsigned from, unsigned to,
                   struct census *c)
{
    MDB_txn *t;
    MDB_cursor *cur;
    MDB_val k, v;
    MDB_envinfo info;
    MDB_stat st;

    memset(c, 0, sizeof(*c));
    check(mdb_txn_begin(env, NULL, MDB_RDONLY, &t), "mdb_txn_begin");
    check(mdb_env_info(env, &info), "mdb_env_info");
    c->file = info.me_last_pgno + 1;
    for (unsigned d = from; d <= to; d++) {
        check(mdb_stat(t, day[d], &st), "mdb_stat");
        c->live += tree_pages(&st);
    }
    /* the free list is database 0 (lmdb.c's FREE_DBI): per record, an ID
     * list whose first word is its length */
    check(mdb_cursor_open(t, 0, &cur), "mdb_cursor_open");
    while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0) {
        size_t n;

        memcpy(&n, v.mv_data, sizeof(n));
        c->free += n;
        c->records++;
    }
    mdb_cursor_close(cur);
    c->other = 2;
    check(mdb_stat(t, 0, &st), "mdb_stat");
    c->other += tree_pages(&st);
    check(mdb_stat(t, 1, &st), "mdb_stat"); /* the main database */
    c->other += tree_pages(&st);
    mdb_txn_abort(t);
}

static void creep(unsigned ndays, size_t n, unsigned keep, size_t batch,
                  const char *dir)
{
    MDB_env *env;
    MDB_dbi *day = xmalloc(ndays * sizeof(*day));
    struct key *b = xmalloc((batch < n ? batch : n) * sizeof(*b));
    size_t *file = xmalloc(ndays * sizeof(*file));

    check(mdb_env_create(&env), "mdb_env_create");
    check(mdb_env_set_mapsize(env, (size_t)(keep + 2) * n * 400 + (256u << 20)),
          "mdb_env_set_mapsize");
    check(mdb_env_set_maxdbs(env, keep + 4), "mdb_env_set_maxdbs");
    check(
        mdb_env_open(env, dir, MDB_WRITEMAP | MDB_NOSYNC | MDB_NORDAHEAD, 0644),
        "mdb_env_open");
    printf("LMDB under retention: a table per day, %zu entries a day "
           "(%d-byte keys) in sorted batches of %zu, %u days kept, %u days\n",
           n, KEY, batch, keep, ndays);
    printf("%5s %11s %11s %11s %8s %6s\n", "day", "file pages", "live pages",
           "free pages", "records", "other");
    for (unsigned d = 0; d < ndays; d++) {
        char name[16];
        MDB_txn *t;
        struct census c;
        unsigned from = d >= keep ? d - keep + 1 : 0;

        snprintf(name, sizeof(name), "day%u", d);
        for (size_t i = 0; i < n; i += batch) {
            size_t m = n - i < batch ? n - i : batch;

            for (size_t j = 0; j < m; j++)
                make_key(&b[j], DROP, d);
            qsort(b, m, KEY, cmp_key);
            check(mdb_txn_begin(env, NULL, 0, &t), "mdb_txn_begin");
            check(mdb_dbi_open(t, name, MDB_CREATE, &day[d]), "mdb_dbi_open");
            for (size_t j = 0; j < m; j++) {
                MDB_val k = {KEY, b[j].b}, v = {9, "012345678"};

                check(mdb_put(t, day[d], &k, &v, 0), "mdb_put");
            }
            check(mdb_txn_commit(t), "mdb_txn_commit");
        }
        if (d >= keep) { /* the day that expired goes in one transaction */
            check(mdb_txn_begin(env, NULL, 0, &t), "mdb_txn_begin");
            check(mdb_drop(t, day[d - keep], 1), "mdb_drop");
            check(mdb_txn_commit(t), "mdb_txn_commit");
        }
        census(env, day, from, d, &c);
        file[d] = c.file;
        printf("%5u %11zu %11zu %11zu %8zu %6zu\n", d, c.file, c.live, c.free,
               c.records, c.other);
    }
    if (ndays >= keep + 4) {
        /* from the middle of the days after the first drop to the end */
        unsigned a = keep + (ndays - keep) / 2, z = ndays - 1;
        double per = ((double)file[z] - (double)file[a]) / (double)(z - a);

        printf("the file over days %u-%u: %+.1f pages a day (%.3f %% of it "
               "a day)\n",
               a, z, per, per / (double)file[z] * 100.0);
    }
    mdb_env_close(env);
    free(day);
    free(b);
    free(file);
}

static long arg_long(const char *opt, const char *v, long lo, long hi)
{
    char *end;
    long x = v ? strtol(v, &end, 10) : 0;

    if (!v || *end || x < lo || x > hi) {
        fprintf(stderr, "ht-lmdb-floor: %s takes %ld..%ld\n%s", opt, lo, hi,
                usage);
        exit(2);
    }
    return x;
}

/* A new folder for an environment under $TMPDIR, into dir. */
static void make_dir(char *dir, size_t cap)
{
    const char *tmp = getenv("TMPDIR");

    snprintf(dir, cap, "%s/ht-lmdb-floor-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("ht-lmdb-floor: mkdtemp");
        exit(5);
    }
}

static void remove_dir(const char *dir)
{
    char path[4200];

    /* an environment is these two files */
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lock.mdb", dir);
    unlink(path);
    if (rmdir(dir) != 0)
        fprintf(stderr, "ht-lmdb-floor: could not remove %s\n", dir);
}

int main(int argc, char **argv)
{
    size_t n = 184000, slice = 25000, nlook = 0, batch = LOAD_BATCH;
    unsigned days = 3, creep_days = 0;
    int only = -1;
    char dir[4096];

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(a, "--entries")) {
            n = (size_t)arg_long(a, v, 1000, 100000000);
            i++;
        } else if (!strcmp(a, "--days")) {
            days = (unsigned)arg_long(a, v, 1, 1000);
            i++;
        } else if (!strcmp(a, "--slice")) {
            slice = (size_t)arg_long(a, v, 1, 100000000);
            i++;
        } else if (!strcmp(a, "--lookups")) {
            nlook = (size_t)arg_long(a, v, 1, 100000000);
            i++;
        } else if (!strcmp(a, "--creep")) {
            creep_days = (unsigned)arg_long(a, v, 1, 1000);
            i++;
        } else if (!strcmp(a, "--batch")) {
            batch = (size_t)arg_long(a, v, 1, 100000000);
            i++;
        } else if (!strcmp(a, "--layout") && v) {
            only = !strcmp(v, "random")  ? RANDOM
                   : !strcmp(v, "range") ? RANGE
                   : !strcmp(v, "drop")  ? DROP
                   : !strcmp(v, "all")   ? -1
                                         : -2;
            if (only == -2) {
                fprintf(stderr, "ht-lmdb-floor: --layout is random, range, "
                                "drop or all\n");
                return 2;
            }
            i++;
        } else {
            fprintf(stderr, "ht-lmdb-floor: unknown argument %s\n%s", a, usage);
            return 2;
        }
    }
    if (creep_days) {
        make_dir(dir, sizeof(dir));
        creep(creep_days, n, days, batch, dir);
        remove_dir(dir);
        return 0;
    }
    printf("LMDB delete floor: %u days x %zu entries (%d-byte keys), "
           "day 0 deleted, %zu per transaction\n",
           days, n, KEY, slice);
    for (int l = RANDOM; l <= DROP; l++) {
        double s;

        if (only >= 0 && l != only)
            continue;
        make_dir(dir, sizeof(dir));
        s = run((enum layout)l, n, days, slice, nlook, dir);
        printf("%-7s %8.3f s CPU  %7.3f us per entry\n", layout_name[l], s,
               s / (double)n * 1e6);
        remove_dir(dir);
    }
    return 0;
}
