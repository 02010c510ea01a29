/*
 * store.c - the LMDB environment behind hoptrace: opening with a schema
 * check, write transactions that report a full map so the caller can grow
 * it and redo the batch, and the small get/put/scan primitives the
 * assembler and the query side build on.
 *
 * Owned by store/. LMDB error codes are translated here and LMDB's own
 * message is logged here, once.
 */
#define _GNU_SOURCE
#include "ht_store.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * Epochs (design.md "Store", "Epochs"): the tables that hold per-request
 * state (epoch_db) are kept once per epoch, a window of event time: epoch
 * 0 under the tables' plain names, epoch n as "<name>~n". Every write goes
 * to the current (newest) epoch; a read looks in every live epoch, newest
 * first (a get takes the first hit, a scan merges them, the newest copy of
 * a key winning); a delete deletes in all of them. Retention drops a whole
 * epoch once everything written into it is older than the cut-off:
 * mdb_drop, without reading what is in it. The live epochs are listed in
 * meta "epochs" (ascending id; id, start, newest event noted in it), which
 * each transaction reads at its start; a store without the record has
 * epoch 0 alone.
 */
#define MAX_EPOCHS 48 /* live at once; rotation waits beyond this */
#define EC_CAP 160    /* epochs whose handles a process keeps open */
#define EREC 20       /* a registry record: id (4), start (8), max (8) */

/*
 * A sealed epoch (any but the current one) takes no more puts, so a Bloom
 * filter of what it holds, built once when it is sealed and kept in meta
 * ("bf:" + id), answers most lookups of what it does not hold without a
 * B-tree search: a lookup by id probes the current epoch and, of the older
 * ones, only those whose filter says maybe. Each table puts one token per
 * entry in the epoch's one filter (bf_token): the whole key, or the part
 * lookups name (a node's trace id, a span id, a fact's request id).
 */
struct bloom {
    uint64_t mask; /* bits - 1 (a power of two) */
    uint32_t k;    /* probes per token */
    uint64_t *bits;
};

struct epoch {
    uint32_t id;
    int64_t start, max;
    MDB_dbi dbi[HT_DB__COUNT]; /* the epoch databases' handles */
    const struct bloom *bf;    /* sealed and filtered; NULL: probe */
    /* the days its `spans` holds, newest first, as far as read (day_at) */
    uint16_t *days;
    size_t ndays, capdays;
    bool days_all; /* the oldest is among them */
};

struct ecache {
    uint32_t id;
    MDB_dbi dbi[HT_DB__COUNT];
    struct bloom *bf; /* loaded from meta; NULL until there is one */
};

struct ht_store {
    MDB_env *env;
    MDB_dbi dbi[HT_DB__COUNT]; /* the others' handles (and epoch 0's) */
    bool readonly;
    size_t mapsize;
    char *dir;
    int lockfd; /* map.lock (writers): serialises remaps, see remap */
    /* The gate between this process's transactions and its remaps: LMDB
     * may only change the map size while no transaction of the process is
     * open, and one store is shared by threads (serve's HTTP threads read
     * while the engine's writer may grow the map). Every transaction holds
     * a place (active) from begin to commit/abort; a remap waits for
     * active to drop to 0 and holds new transactions back meanwhile. */
    pthread_mutex_t gate_mu;
    pthread_cond_t gate_cv;
    unsigned active;
    bool remapping;
    /* Handles of the epochs' databases, opened once per process. LMDB
     * allows one transaction at a time to open handles, and only after it
     * commits are they usable by others: ec_mu is held from the first
     * mdb_dbi_open until that transaction ends. */
    pthread_mutex_t ec_mu;
    struct ecache ec[EC_CAP];
    size_t nec;
    int64_t epoch_len;           /* µs; 0: the writer starts no new epoch */
    unsigned test_every, test_n; /* HOPTRACE_EPOCH_EVERY (tests) */
    /* new pages mapped ahead of the writer (ht_store_map_ahead) */
    pthread_mutex_t ahead_mu;
    char *ahead_base;   /* where this process maps data.mdb, or NULL */
    unsigned map_gen;   /* remaps so far (under the closed gate) */
    unsigned ahead_gen; /* ahead_base found at this remap (+1; 0: never) */
    size_t ahead_to;    /* bytes of the file mapped ahead so far */
    size_t ahead_from;  /* bytes in use when this process first looked */
    size_t psize;       /* LMDB's page size */
    bool ahead_off;     /* the kernel cannot (before Linux 5.14) */
};

/*
 * Deferred puts. A batch's index entries (keys, facts, nodes, by_time,
 * dirty) land all over their B-trees; written one by one in arrival order,
 * every put walks a different path and touches a different page. Instead
 * the put is recorded and the recorded puts of a database are applied in
 * key order — when the transaction commits, or just before anything reads,
 * scans or deletes in that database, so a transaction always sees its own
 * writes. Sorted, consecutive puts share their path and leaf pages (cache
 * hits, one page copy each), and identical pairs are written once.
 */
struct dput {
    uint64_t pfx;    /* the key's first 8 bytes, big endian, zero padded */
    uint32_t seq;    /* order of the puts: the last put of a key wins */
    uint32_t kn, vn; /* sizes */
    uint32_t del;    /* a deferred delete (ht_store_del_later): of the pair
                        in keys; elsewhere of the key, when it holds the
                        value given (any value when vn == 0) */
    size_t off;      /* key, then value, in the put set's dbuf */
};

struct dlist {
    struct dput *v;
    size_t n, cap;
};

/* A set of puts not yet written: a transaction's deferred puts, or a bulk
 * set prepared outside any transaction (ht_bulk_*). */
struct ht_bulk {
    struct ht_buf dbuf; /* bytes of the puts */
    struct dlist defer[HT_DB__COUNT];
    uint32_t seq;
};

struct ht_txn {
    struct ht_store *s;
    MDB_txn *txn;
    bool write;
    bool failed;       /* LMDB failed a write (MDB_MAP_FULL): see txn_err */
    struct ht_bulk ps; /* deferred puts */
    uint64_t deleted[HT_DB__COUNT]; /* what the deferred deletes removed */
    struct epoch ep[MAX_EPOCHS];    /* the live epochs, newest first */
    unsigned nep;
};

static bool deferrable(int db)
{
    return db == HT_DB_KEYS || db == HT_DB_FACTS || db == HT_DB_NODES ||
           db == HT_DB_BYTIME || db == HT_DB_DIRTY || db == HT_DB_SPANS;
}

/* The tables kept per epoch: everything that belongs to one request. */
static bool epoch_db(int db)
{
    return db == HT_DB_NODES || db == HT_DB_INV || db == HT_DB_FACTS ||
           db == HT_DB_KEYS || db == HT_DB_PENDING || db == HT_DB_BYTIME ||
           db == HT_DB_SPANS || db == HT_DB_HOPS;
}

/* How many epochs database db has in t, and its handle in the e-th
 * (0: the current one). */
static unsigned nep_of(const struct ht_txn *t, int db)
{
    return epoch_db(db) ? t->nep : 1;
}

static MDB_dbi dbi_at(const struct ht_txn *t, int db, unsigned e)
{
    return epoch_db(db) ? t->ep[e].dbi[db] : t->s->dbi[db];
}

/* ---- Bloom filters of sealed epochs ------------------------------------ */

#define BF_MAGIC 0x33667462u /* "btf3" */
#define BF_BITS_PER 10       /* bits per token: about 1 % false positives */
#define BF_K 7               /* probes, 9 bits of one hash each */
#define BF_HDR 16            /* magic (4), k (4), bits (8) */
/* A filter is kept in meta as its header, then its bits in parts small
 * enough to sit in a leaf page: a value that needs overflow pages needs
 * them in a row, and a store that drops and builds one every epoch would
 * find no such run and grow the file for it (docs/performance.md). */
#define BF_PART 1536
#define BF_KEY 9 /* "bf:" + epoch id (4) + part (2, big-endian; 0: header) */

/* The tables an epoch's filter holds tokens of (every case of bf_token). */
static const int bf_dbs[] = {HT_DB_NODES, HT_DB_SPANS,   HT_DB_FACTS,
                             HT_DB_KEYS,  HT_DB_PENDING, HT_DB_INV,
                             HT_DB_HOPS};
#define BF_NDBS (sizeof(bf_dbs) / sizeof(bf_dbs[0]))

/* The part of key k of database db its epoch's filter knows it by: *tn
 * bytes at the returned pointer; NULL when db has no token (then it is
 * not in bf_dbs). */
static const uint8_t *bf_token(int db, const void *k, size_t kn, size_t *tn)
{
    const uint8_t *p = k;

    switch (db) {
    case HT_DB_NODES: /* by trace (a trace's range; span ids: spans) */
        *tn = 16;
        return kn >= 16 ? p : NULL;
    case HT_DB_SPANS: /* by span id, whatever its day */
        *tn = 8;
        return kn == 10 ? p + 2 : NULL;
    case HT_DB_FACTS: /* by request id + NUL (an invocation's range) */
        *tn = kn - 8;
        return kn > 8 ? p : NULL;
    case HT_DB_KEYS:
    case HT_DB_INV:
    case HT_DB_PENDING:
    case HT_DB_HOPS:
        *tn = kn;
        return kn ? p : NULL;
    default:
        return NULL;
    }
}

static uint64_t bf_hash(int db, const uint8_t *tok, size_t tn)
{
    return ht_mix64(ht_hash64(tok, tn) + (uint64_t)db * 0x9e3779b97f4a7c15ull);
}

/*
 * A blocked filter: a token's probes all fall in one 512-bit block (a
 * cache line), chosen by the hash's high bits, so a test costs one cache
 * miss, not seven (lookups test every sealed epoch's filter). The block
 * costs a little accuracy at 10 bits per token: about 1.5 % false
 * positives instead of 0.8 %.
 */
static const uint64_t *bf_block(const struct bloom *b, uint64_t h)
{
    return b->bits + (((h >> 32) << 3) & (b->mask >> 6));
}

static void bf_set(struct bloom *b, uint64_t h)
{
    uint64_t *blk = (uint64_t *)(uintptr_t)bf_block(b, h);
    uint64_t h2 = ht_mix64(h);

    for (uint32_t i = 0; i < b->k; i++, h2 >>= 9)
        blk[(h2 & 511) >> 6] |= 1ull << (h2 & 63);
}

static bool bf_test(const struct bloom *b, uint64_t h)
{
    const uint64_t *blk = bf_block(b, h);
    uint64_t h2 = ht_mix64(h);

    for (uint32_t i = 0; i < b->k; i++, h2 >>= 9)
        if (!(blk[(h2 & 511) >> 6] & (1ull << (h2 & 63))))
            return false;
    return true;
}

/*
 * One lookup's filter query: the token's hash, computed once for all the
 * sealed epochs, whose blocks are prefetched at once so that their cache
 * misses overlap (and the current epoch's search, which comes first).
 */
struct bfq {
    bool any; /* a token, and sealed epochs to test it in */
    uint64_t h;
};

static void bf_prep_token(const struct ht_txn *t, int db, const uint8_t *tok,
                          size_t tn, struct bfq *q)
{
    q->any = tok && epoch_db(db) && t->nep > 1;
    if (!q->any)
        return;
    q->h = bf_hash(db, tok, tn);
    for (unsigned e = 1; e < t->nep; e++)
        if (t->ep[e].bf)
            __builtin_prefetch(bf_block(t->ep[e].bf, q->h));
}

/* The query of key k of db. */
static void bf_prep(const struct ht_txn *t, int db, const void *k, size_t kn,
                    struct bfq *q)
{
    size_t tn = 0;
    const uint8_t *tok = bf_token(db, k, kn, &tn);

    bf_prep_token(t, db, tok, tn, q);
}

/* The query of a scan of the keys starting with prefix p (pn bytes): a
 * range the filters index (a trace's nodes, an invocation's facts) is
 * known by its prefix, the token of each of its keys; any other range
 * passes every filter. */
static void bf_prep_prefix(const struct ht_txn *t, int db, const void *p,
                           size_t pn, struct bfq *q)
{
    bool ranged =
        (db == HT_DB_NODES && pn == 16) ||
        (db == HT_DB_FACTS && pn > 0 && ((const uint8_t *)p)[pn - 1] == 0);

    bf_prep_token(t, db, ranged ? p : NULL, pn, q);
}

/* Whether epoch e may hold the key of q (always for the current one and
 * for any without a filter). */
static bool bf_hit(const struct epoch *e, const struct bfq *q)
{
    return !q->any || !e->bf || bf_test(e->bf, q->h);
}

/* The same for key k of db, on its own. */
static bool bf_may(const struct ht_txn *t, unsigned ep, int db, const void *k,
                   size_t kn)
{
    struct bfq q;

    if (!t->ep[ep].bf)
        return true;
    bf_prep(t, db, k, kn, &q);
    return bf_hit(&t->ep[ep], &q);
}

static void bf_free(struct bloom *b)
{
    if (b) {
        free(b->bits);
        free(b);
    }
}

static const char *const db_names[HT_DB__COUNT] = {
    "meta",        "nodes", "inv",    "facts", "keys", "pending", "by_time",
    "checkpoints", "dlq",   "stages", "dirty", "agg",  "spans",   "hops"};

#define INITIAL_MAP ((size_t)1 << 30)

static int lmdb_err(int rc, const char *what)
{
    if (rc == 0)
        return HT_ERR_OK;
    if (rc == MDB_NOTFOUND)
        return HT_ERR_NOTFOUND;
    if (rc == MDB_MAP_FULL)
        return HT_ERR_MAPFULL;
    HT_LOG_ERROR("store", "%s: %s", what, mdb_strerror(rc));
    return HT_ERR_STORE;
}

/*
 * An LMDB write transaction that failed a write (MDB_MAP_FULL, the usual
 * case) refuses everything after it with MDB_BAD_TXN. The first failure is
 * remembered and every later call on the transaction returns it, untouched
 * by LMDB, so the caller sees HT_ERR_MAPFULL (abort, grow, redo) whatever
 * it does next, never a spurious BAD_TXN error.
 */
static int txn_err(struct ht_txn *t, int rc, const char *what)
{
    int e;

    if (rc == 0 || rc == MDB_NOTFOUND || rc == MDB_KEYEXIST)
        return lmdb_err(rc, what);
    if (t->failed)
        return HT_ERR_MAPFULL;
    e = lmdb_err(rc, what);
    if (t->write)
        t->failed = e == HT_ERR_MAPFULL;
    return e;
}

#define TXN_USABLE(t)                                                          \
    do {                                                                       \
        if ((t)->failed)                                                       \
            return HT_ERR_MAPFULL;                                             \
    } while (0)

/*
 * Map size rules. With MDB_WRITEMAP, LMDB ftruncates data.mdb to the map
 * size whenever it maps the file (mdb_env_open, mdb_env_set_mapsize): a
 * writer configured smaller than the file would shrink it under every
 * other process that has it mapped, which then dies with SIGBUS. So a
 * writer never maps less than the file holds, and every remap (open, grow,
 * adopting another process's growth) happens under an exclusive flock on
 * "map.lock" in the store's folder, so that no other writer grows the file
 * between our look at its size and our ftruncate. Readers map read-only and
 * never truncate.
 */
static int map_lock(struct ht_store *s)
{
    if (s->lockfd < 0)
        return HT_ERR_OK;
    while (flock(s->lockfd, LOCK_EX) != 0)
        if (errno != EINTR) {
            HT_LOG_ERROR("store", "locking %s/map.lock: %s", s->dir,
                         strerror(errno));
            return HT_ERR_STORE;
        }
    return HT_ERR_OK;
}

static void map_unlock(struct ht_store *s)
{
    if (s->lockfd >= 0)
        flock(s->lockfd, LOCK_UN);
}

/* The size of data.mdb now (0 when absent). */
static size_t data_file_size(const struct ht_store *s)
{
    char path[4096];
    struct stat st;

    snprintf(path, sizeof(path), "%s/data.mdb", s->dir);
    if (stat(path, &st) != 0 || st.st_size < 0)
        return 0;
    return (size_t)st.st_size;
}

/* A transaction takes its place in the gate (waiting out a remap). */
static void gate_enter(struct ht_store *s)
{
    pthread_mutex_lock(&s->gate_mu);
    while (s->remapping)
        pthread_cond_wait(&s->gate_cv, &s->gate_mu);
    s->active++;
    pthread_mutex_unlock(&s->gate_mu);
}

static void gate_leave(struct ht_store *s)
{
    pthread_mutex_lock(&s->gate_mu);
    if (--s->active == 0 && s->remapping)
        pthread_cond_broadcast(&s->gate_cv);
    pthread_mutex_unlock(&s->gate_mu);
}

/* Waits until no transaction of this process is open and keeps new ones
 * out until gate_open: the only state in which the map may change. The
 * caller holds no transaction itself. */
static void gate_close(struct ht_store *s)
{
    pthread_mutex_lock(&s->gate_mu);
    while (s->remapping)
        pthread_cond_wait(&s->gate_cv, &s->gate_mu);
    s->remapping = true;
    while (s->active)
        pthread_cond_wait(&s->gate_cv, &s->gate_mu);
    pthread_mutex_unlock(&s->gate_mu);
}

static void gate_open(struct ht_store *s)
{
    pthread_mutex_lock(&s->gate_mu);
    s->remapping = false;
    pthread_cond_broadcast(&s->gate_cv);
    pthread_mutex_unlock(&s->gate_mu);
}

/* Remaps at `want` bytes, never less than the file (under map_lock), with
 * every other transaction of the process held back (gate_close). */
static int remap(struct ht_store *s, size_t want)
{
    size_t file;
    MDB_envinfo info;
    int rc;

    gate_close(s);
    rc = map_lock(s);
    if (rc) {
        gate_open(s);
        return rc;
    }
    file = data_file_size(s);
    if (want < file)
        want = file;
    rc = mdb_env_set_mapsize(s->env, want);
    s->map_gen++; /* mapped again, maybe elsewhere */
    map_unlock(s);
    if (!rc) {
        mdb_env_info(s->env, &info);
        s->mapsize = info.me_mapsize;
    }
    gate_open(s);
    if (rc)
        return lmdb_err(rc, "resizing the map");
    return HT_ERR_OK;
}

/* ---- the epoch registry and the handles -------------------------------- */

struct ereg {
    uint32_t id;
    int64_t start; /* event time (µs) the epoch begins at */
    int64_t max;   /* the newest event noted while it was current */
};

/* The registry into r (MAX_EPOCHS records, ascending ids); *n = 0 when the
 * store has none (epoch 0 alone). */
static int reg_read(MDB_txn *txn, const struct ht_store *s, struct ereg *r,
                    unsigned *n)
{
    MDB_val k = {6, "epochs"}, v;
    int rc = mdb_get(txn, s->dbi[HT_DB_META], &k, &v);

    *n = 0;
    if (rc == MDB_NOTFOUND)
        return HT_ERR_OK;
    if (rc)
        return lmdb_err(rc, "reading the epoch list");
    if (v.mv_size == 0 || v.mv_size % EREC || v.mv_size / EREC > MAX_EPOCHS) {
        HT_LOG_ERROR("store",
                     "%s: the epoch list is damaged (%zu bytes): re-ingest "
                     "into a new --db folder",
                     s->dir, v.mv_size);
        return HT_ERR_CORRUPT;
    }
    *n = (unsigned)(v.mv_size / EREC);
    for (unsigned i = 0; i < *n; i++) {
        const uint8_t *p = (const uint8_t *)v.mv_data + (size_t)i * EREC;

        memcpy(&r[i].id, p, 4);
        memcpy(&r[i].start, p + 4, 8);
        memcpy(&r[i].max, p + 12, 8);
    }
    return HT_ERR_OK;
}

static int reg_write(MDB_txn *txn, const struct ht_store *s,
                     const struct ereg *r, unsigned n)
{
    uint8_t b[MAX_EPOCHS * EREC];
    MDB_val k = {6, "epochs"}, v = {(size_t)n * EREC, b};

    for (unsigned i = 0; i < n; i++) {
        memcpy(b + (size_t)i * EREC, &r[i].id, 4);
        memcpy(b + (size_t)i * EREC + 4, &r[i].start, 8);
        memcpy(b + (size_t)i * EREC + 12, &r[i].max, 8);
    }
    return mdb_put(txn, s->dbi[HT_DB_META], &k, &v, 0);
}

/* The registry, or epoch 0 alone when there is none. */
static int reg_live(MDB_txn *txn, const struct ht_store *s, struct ereg *r,
                    unsigned *n)
{
    int rc = reg_read(txn, s, r, n);

    if (!rc && *n == 0) {
        r[0].id = 0;
        r[0].start = INT64_MIN;
        r[0].max = INT64_MIN;
        *n = 1;
    }
    return rc;
}

/* A handle set of the cache (the caller holds ec_mu), NULL when absent. */
static struct ecache *ec_find(struct ht_store *s, uint32_t id)
{
    for (size_t i = 0; i < s->nec; i++)
        if (s->ec[i].id == id)
            return &s->ec[i];
    return NULL;
}

/* meta's key of part `part` of epoch id's filter (the first 7 bytes are
 * every part's prefix, and the whole key of a filter of schema 4) */
static void bf_key(uint8_t k[BF_KEY], uint32_t id, unsigned part)
{
    memcpy(k, "bf:", 3);
    memcpy(k + 3, &id, 4);
    k[7] = (uint8_t)(part >> 8);
    k[8] = (uint8_t)part;
}

/* Epoch id's filter from meta (a copy), NULL when it has none (yet) or
 * it is not whole. */
static struct bloom *bf_load(MDB_txn *txn, const struct ht_store *s,
                             uint32_t id)
{
    uint8_t kb[BF_KEY];
    MDB_val k = {BF_KEY, kb}, v;
    MDB_cursor *c;
    uint32_t magic, kk;
    uint64_t bits, have = 0;
    unsigned part = 1;
    struct bloom *b;
    int rc;

    bf_key(kb, id, 0);
    if (mdb_get(txn, s->dbi[HT_DB_META], &k, &v) || v.mv_size != BF_HDR)
        return NULL;
    memcpy(&magic, v.mv_data, 4);
    memcpy(&kk, (const uint8_t *)v.mv_data + 4, 4);
    memcpy(&bits, (const uint8_t *)v.mv_data + 8, 8);
    if (magic != BF_MAGIC || kk == 0 || kk > 7 || bits < 512 ||
        (bits & (bits - 1)) || bits / 8 > (uint64_t)BF_PART * 65535)
        return NULL;
    b = malloc(sizeof(*b));
    if (!b)
        return NULL;
    b->bits = aligned_alloc(64, bits / 8); /* blocks on cache lines */
    if (!b->bits || mdb_cursor_open(txn, s->dbi[HT_DB_META], &c)) {
        free(b->bits);
        free(b);
        return NULL;
    }
    /* the parts follow the header in key order, each the next, until
     * the bits are whole */
    rc = mdb_cursor_get(c, &k, &v, MDB_SET);
    while (!rc && have < bits / 8) {
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
        bf_key(kb, id, part++);
        if (rc || k.mv_size != BF_KEY || memcmp(k.mv_data, kb, BF_KEY) != 0 ||
            v.mv_size > bits / 8 - have)
            break;
        memcpy((uint8_t *)b->bits + have, v.mv_data, v.mv_size);
        have += v.mv_size;
    }
    mdb_cursor_close(c);
    if (have != bits / 8) {
        free(b->bits);
        free(b);
        return NULL;
    }
    b->mask = bits - 1;
    b->k = kk;
    return b;
}

/* Deletes every part of epoch id's filter (and one of schema 4's). */
static int bf_delete(MDB_txn *txn, const struct ht_store *s, uint32_t id)
{
    uint8_t kb[BF_KEY];
    MDB_val k, v;
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->dbi[HT_DB_META], &c);

    bf_key(kb, id, 0);
    while (!rc) {
        k = (MDB_val){7, kb}; /* the first key left with the prefix */
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        if (rc || k.mv_size < 7 || memcmp(k.mv_data, kb, 7) != 0)
            break;
        rc = mdb_cursor_del(c, 0);
    }
    if (!rc || rc == MDB_NOTFOUND)
        rc = 0;
    mdb_cursor_close(c);
    return rc;
}

/* Builds the filter of the e-th epoch of t (sealed: no more puts) from
 * what its tables hold, and keeps it in meta. An LMDB code. */
static int bf_build(struct ht_txn *t, unsigned e)
{
    struct bloom b;
    uint64_t n = 0, bits = 4096;
    uint8_t kb[BF_KEY];
    MDB_val key = {BF_KEY, kb}, val;
    uint8_t *buf;
    int rc = 0;

    for (size_t i = 0; i < BF_NDBS && !rc; i++) {
        MDB_stat st;

        rc = mdb_stat(t->txn, t->ep[e].dbi[bf_dbs[i]], &st);
        n += st.ms_entries;
    }
    if (rc)
        return rc;
    while (bits < n * BF_BITS_PER && bits / 8 < (uint64_t)BF_PART * 32768)
        bits <<= 1;
    buf = calloc(1, BF_HDR + bits / 8);
    if (!buf)
        return ENOMEM;
    b.bits = (uint64_t *)(void *)(buf + BF_HDR);
    b.mask = bits - 1;
    b.k = BF_K;
    for (size_t i = 0; i < BF_NDBS && !rc; i++) {
        int db = bf_dbs[i];
        MDB_cursor *c;
        MDB_val k, v;

        rc = mdb_cursor_open(t->txn, t->ep[e].dbi[db], &c);
        if (rc)
            break;
        rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
        while (rc == 0) {
            size_t tn;
            const uint8_t *tok = bf_token(db, k.mv_data, k.mv_size, &tn);

            if (tok)
                bf_set(&b, bf_hash(db, tok, tn));
            rc = mdb_cursor_get(c, &k, &v,
                                db == HT_DB_KEYS ? MDB_NEXT_NODUP : MDB_NEXT);
        }
        mdb_cursor_close(c);
        if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    if (!rc) {
        uint32_t magic = BF_MAGIC, kk = BF_K;

        memcpy(buf, &magic, 4);
        memcpy(buf + 4, &kk, 4);
        memcpy(buf + 8, &bits, 8);
        bf_key(kb, t->ep[e].id, 0);
        val.mv_size = BF_HDR;
        val.mv_data = buf;
        rc = mdb_put(t->txn, t->s->dbi[HT_DB_META], &key, &val, 0);
        for (uint64_t off = 0, part = 1; !rc && off < bits / 8;
             off += BF_PART, part++) {
            bf_key(kb, t->ep[e].id, (unsigned)part);
            val.mv_size = bits / 8 - off < BF_PART ? bits / 8 - off : BF_PART;
            val.mv_data = buf + BF_HDR + off;
            rc = mdb_put(t->txn, t->s->dbi[HT_DB_META], &key, &val, 0);
        }
    }
    free(buf);
    return rc;
}

/* The name of epoch id's table db (the first epoch's carry the plain
 * names). */
static void epoch_table_name(char *name, size_t cap, uint32_t id, int db)
{
    if (id == 0)
        snprintf(name, cap, "%s", db_names[db]);
    else
        snprintf(name, cap, "%s~%u", db_names[db], id);
}

/*
 * a <=> b as LMDB orders keys by default (the bytes, then the length),
 * 8 bytes at a time: the keys are ids and times of 9 to 40 bytes, and
 * this spares every step of a B-tree search a call to memcmp. Only the
 * sign counts, so any program reading the store with LMDB's own order
 * (mdb_dump, mdb_load) agrees with it. The store's own sorting and
 * merging compare with it too.
 */
static int cmp_bytes(const MDB_val *a, const MDB_val *b)
{
    const uint8_t *x = a->mv_data, *y = b->mv_data;
    size_t n = a->mv_size < b->mv_size ? a->mv_size : b->mv_size, i = 0;

    for (; i + 8 <= n; i += 8) {
        uint64_t p, q;

        memcpy(&p, x + i, 8);
        memcpy(&q, y + i, 8);
        if (p != q) {
            p = __builtin_bswap64(p);
            q = __builtin_bswap64(q);
            return p < q ? -1 : 1;
        }
    }
    for (; i < n; i++)
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    return a->mv_size < b->mv_size ? -1 : a->mv_size > b->mv_size;
}

/* mdb_dbi_open with the store's comparison (keys, and a dupsort table's
 * values): set in every process before the handle is used. */
static int dbi_open(MDB_txn *txn, const char *name, unsigned flags,
                    MDB_dbi *dbi)
{
    int rc = mdb_dbi_open(txn, name, flags, dbi);

    if (rc == 0)
        rc = mdb_set_compare(txn, *dbi, cmp_bytes);
    if (rc == 0 && (flags & MDB_DUPSORT))
        rc = mdb_set_dupsort(txn, *dbi, cmp_bytes);
    return rc;
}

/* Opens (creates) epoch id's table db in txn; an LMDB code. The caller
 * holds ec_mu until txn ends. */
static int epoch_table_open(MDB_txn *txn, uint32_t id, int db, bool create,
                            MDB_dbi *dbi)
{
    char name[64];

    epoch_table_name(name, sizeof(name), id, db);
    return dbi_open(
        txn, name,
        (create ? MDB_CREATE : 0) | (db == HT_DB_KEYS ? MDB_DUPSORT : 0), dbi);
}

/* Opens (creates) epoch id's databases in txn into c; an LMDB code. The
 * caller holds ec_mu until txn ends. */
static int ec_open(struct ht_store *s, MDB_txn *txn, uint32_t id, bool create,
                   struct ecache *c)
{
    c->id = id;
    c->bf = NULL;
    for (int db = 0; db < HT_DB__COUNT; db++) {
        int rc;

        c->dbi[db] = 0;
        if (!epoch_db(db))
            continue;
        rc = epoch_table_open(txn, id, db, create, &c->dbi[db]);
        if (rc)
            return rc;
    }
    (void)s;
    return 0;
}

/* Closes the handles of epochs no longer live, so that a process running
 * for months does not run out of them. No transaction of this process may
 * be open (the gate is closed meanwhile); the caller holds none. */
static void ec_recycle(struct ht_store *s)
{
    struct ereg r[MAX_EPOCHS];
    unsigned n = 0;
    MDB_txn *txn;
    size_t kept = 0;

    gate_close(s);
    pthread_mutex_lock(&s->ec_mu);
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) == 0) {
        if (reg_live(txn, s, r, &n))
            n = 0;
        mdb_txn_abort(txn);
    }
    for (size_t i = 0; n && i < s->nec; i++) {
        bool live = false;

        for (unsigned j = 0; j < n && !live; j++)
            live = r[j].id == s->ec[i].id;
        if (live) {
            s->ec[kept++] = s->ec[i];
            continue;
        }
        for (int db = 0; db < HT_DB__COUNT; db++)
            if (epoch_db(db))
                mdb_dbi_close(s->env, s->ec[i].dbi[db]);
        bf_free(s->ec[i].bf);
    }
    if (n)
        s->nec = kept;
    pthread_mutex_unlock(&s->ec_mu);
    gate_open(s);
}

/* Opens the handles of every live epoch this process lacks, in a read
 * transaction of their own, committed so that they outlive it. The caller
 * holds no transaction. */
static int ec_open_missing(struct ht_store *s)
{
    struct ereg r[MAX_EPOCHS];
    struct ecache got[MAX_EPOCHS];
    unsigned n = 0, ng = 0;
    MDB_txn *txn;
    int rc;

    if (s->nec + MAX_EPOCHS > EC_CAP)
        ec_recycle(s);
    gate_enter(s);
    pthread_mutex_lock(&s->ec_mu);
    rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc) {
        pthread_mutex_unlock(&s->ec_mu);
        gate_leave(s);
        return lmdb_err(rc, "opening the epochs");
    }
    rc = reg_live(txn, s, r, &n);
    for (unsigned i = 0; !rc && i < n; i++) {
        int e;

        if (ec_find(s, r[i].id))
            continue;
        e = ec_open(s, txn, r[i].id, false, &got[ng]);
        if (e)
            rc = lmdb_err(e, "opening an epoch's tables");
        else
            ng++;
    }
    if (!rc && s->nec + ng > EC_CAP) {
        HT_LOG_ERROR("store", "%s: too many epochs open in this process",
                     s->dir);
        rc = HT_ERR_STORE;
    }
    if (rc) {
        mdb_txn_abort(txn);
    } else {
        int e = mdb_txn_commit(txn);

        if (e)
            rc = lmdb_err(e, "opening the epochs");
        for (unsigned i = 0; !rc && i < ng; i++)
            s->ec[s->nec++] = got[i];
    }
    pthread_mutex_unlock(&s->ec_mu);
    gate_leave(s);
    return rc;
}

/* Reads the live epochs, newest first, with their handles into t; *missing
 * when this process has not opened some of them yet. */
static int load_view(struct ht_txn *t, bool *missing)
{
    struct ereg r[MAX_EPOCHS];
    unsigned n;
    int rc = reg_live(t->txn, t->s, r, &n);

    *missing = false;
    if (rc)
        return rc;
    pthread_mutex_lock(&t->s->ec_mu);
    for (unsigned i = 0; i < n && !*missing; i++) {
        const struct ereg *e = &r[n - 1 - i];
        struct ecache *c = ec_find(t->s, e->id);

        if (!c) {
            *missing = true;
            break;
        }
        /* a sealed epoch's filter, once there is one */
        if (i > 0 && !c->bf)
            c->bf = bf_load(t->txn, t->s, e->id);
        t->ep[i].id = e->id;
        t->ep[i].start = e->start;
        t->ep[i].max = e->max;
        t->ep[i].bf = i > 0 ? c->bf : NULL;
        memcpy(t->ep[i].dbi, c->dbi, sizeof(c->dbi));
    }
    pthread_mutex_unlock(&t->s->ec_mu);
    t->nep = n;
    return HT_ERR_OK;
}

/* Opens the tables of every live epoch into the handle cache (a new
 * writer's store: creates epoch 0's, which carry the plain names); an
 * LMDB code, and in `name` the table that failed. */
static int open_epochs(struct ht_store *s, MDB_txn *txn, char *name, size_t cap)
{
    struct ereg r[MAX_EPOCHS];
    struct ecache ec;
    unsigned n;
    int rc;

    snprintf(name, cap, "epochs");
    if (reg_live(txn, s, r, &n))
        return MDB_CORRUPTED;
    for (unsigned j = 0; j < n; j++) {
        rc = ec_open(s, txn, r[j].id, !s->readonly && r[j].id == 0 && n == 1,
                     &ec);
        if (rc) {
            epoch_table_name(name, cap, r[j].id, HT_DB_NODES);
            return rc;
        }
        s->ec[s->nec++] = ec;
    }
    return 0;
}

/* Checks the schema version in meta (creating it in a new writer's store). */
static int check_schema(struct ht_store *s, MDB_txn *txn, const char *dir)
{
    MDB_val k = {14, "schema_version"}, v;
    uint32_t ver = HT_SCHEMA_VERSION, have = 0;
    int rc = mdb_get(txn, s->dbi[HT_DB_META], &k, &v);

    if (rc == MDB_NOTFOUND && !s->readonly) {
        MDB_stat st;

        /* a meta table without a version is not a new store */
        if (mdb_stat(txn, s->dbi[HT_DB_META], &st) == 0 && st.ms_entries) {
            HT_LOG_ERROR("store",
                         "%s holds a store without a schema version: "
                         "re-ingest into a new --db folder",
                         dir);
            return HT_ERR_SCHEMA;
        }
        v.mv_size = sizeof(ver);
        v.mv_data = &ver;
        rc = mdb_put(txn, s->dbi[HT_DB_META], &k, &v, 0);
        return rc ? lmdb_err(rc, "writing the schema version") : HT_ERR_OK;
    }
    if (rc == MDB_NOTFOUND)
        return HT_ERR_OK; /* read-only: checked by the databases' presence */
    if (rc)
        return lmdb_err(rc, "reading the schema version");
    memcpy(&have, v.mv_data, v.mv_size < 4 ? v.mv_size : 4);
    if (v.mv_size != 4 || have != HT_SCHEMA_VERSION) {
        HT_LOG_ERROR("store",
                     "%s has schema version %u but this hoptrace reads "
                     "version %u (a new store layout): re-ingest into a new "
                     "--db folder",
                     dir, have, HT_SCHEMA_VERSION);
        return HT_ERR_SCHEMA;
    }
    return HT_ERR_OK;
}

int ht_store_open(const char *dir, bool readonly, struct ht_store **out)
{
    struct ht_store *s;
    MDB_txn *txn = NULL;
    MDB_envinfo info;
    struct stat st;
    int rc;

    *out = NULL;
    if (stat(dir, &st) != 0) {
        if (readonly)
            return HT_ERR_NOTFOUND;
        if (mkdir(dir, 0755) != 0) {
            HT_LOG_ERROR("store", "cannot create %s: %s", dir, strerror(errno));
            return HT_ERR_STORE;
        }
    } else if (!S_ISDIR(st.st_mode)) {
        HT_LOG_ERROR("store", "%s is not a directory (give --db a folder)",
                     dir);
        return HT_ERR_STORE;
    }
    if (readonly) {
        char path[4096];

        snprintf(path, sizeof(path), "%s/data.mdb", dir);
        if (stat(path, &st) != 0)
            return HT_ERR_NOTFOUND;
    }
    s = calloc(1, sizeof(*s));
    if (!s)
        return HT_ERR_NOMEM;
    s->readonly = readonly;
    s->lockfd = -1;
    pthread_mutex_init(&s->gate_mu, NULL);
    pthread_cond_init(&s->gate_cv, NULL);
    pthread_mutex_init(&s->ec_mu, NULL);
    pthread_mutex_init(&s->ahead_mu, NULL);
    s->dir = strdup(dir);
    if (!s->dir) {
        ht_store_close(s);
        return HT_ERR_NOMEM;
    }
    if (!readonly) {
        char path[4096];

        snprintf(path, sizeof(path), "%s/map.lock", dir);
        s->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (s->lockfd < 0) {
            HT_LOG_ERROR("store", "cannot open %s: %s", path, strerror(errno));
            ht_store_close(s);
            return HT_ERR_STORE;
        }
    }
    rc = mdb_env_create(&s->env);
    if (rc)
        goto fail;
    mdb_env_set_maxdbs(s->env, HT_DB__COUNT + 8 * EC_CAP);
    mdb_env_set_maxreaders(s->env, 126);
    if (!readonly) {
        /* HOPTRACE_MAP_MB sets the first map size (tests use a tiny one to
         * exercise growth); the map doubles whenever it is full, and is
         * never smaller than the file (see remap) */
        const char *mb = getenv("HOPTRACE_MAP_MB");
        size_t size = INITIAL_MAP, file;

        if (mb && atol(mb) > 0)
            size = (size_t)atol(mb) << 20;
        if (map_lock(s) != HT_ERR_OK) {
            ht_store_close(s);
            return HT_ERR_STORE;
        }
        file = data_file_size(s);
        mdb_env_set_mapsize(s->env, size > file ? size : file);
    }
    /* A writer maps the file writable (MDB_WRITEMAP): commits write
     * pages in place instead of copying them through malloc'd buffers and
     * write(2), which measured ~25 % faster on the ingest benchmark (see
     * docs/performance.md). Readers map it read-only. */
    rc = mdb_env_open(s->env, dir,
                      (readonly ? MDB_RDONLY : MDB_WRITEMAP) | MDB_NOTLS |
                          MDB_NORDAHEAD,
                      0644);
    map_unlock(s);
    if (rc)
        goto fail;
    mdb_env_info(s->env, &info);
    s->mapsize = info.me_mapsize;
    {
        MDB_stat est;

        s->psize = mdb_env_stat(s->env, &est) == 0 ? est.ms_psize : 4096;
    }
    rc = mdb_txn_begin(s->env, NULL, readonly ? MDB_RDONLY : 0, &txn);
    if (rc)
        goto fail;
    for (int i = 0; i <= HT_DB__COUNT; i++) {
        unsigned flags = readonly ? 0 : MDB_CREATE;
        char name[64];

        if (i == HT_DB_KEYS)
            flags |= MDB_DUPSORT;
        if (i < HT_DB__COUNT && epoch_db(i))
            continue;          /* per epoch: last */
        if (i == HT_DB__COUNT) /* the live epochs' tables */
            rc = open_epochs(s, txn, name, sizeof(name));
        else
            rc = dbi_open(txn, db_names[i], flags, &s->dbi[i]);
        if (rc == MDB_NOTFOUND && readonly && i == HT_DB_META) {
            /* an environment whose first commit has not landed yet (an
             * ingest creating the store right now): nothing to read yet.
             * The writer creates every database in that one commit. */
            mdb_txn_abort(txn);
            ht_store_close(s);
            return HT_ERR_NOTFOUND;
        }
        if (rc == MDB_NOTFOUND && readonly) {
            MDB_val k = {14, "schema_version"}, v;
            uint32_t have = 0;

            /* a database this version has and the store lacks: an older
             * layout (its meta says which) or not a hoptrace store */
            if (mdb_get(txn, s->dbi[HT_DB_META], &k, &v) == 0 &&
                v.mv_size == 4) {
                memcpy(&have, v.mv_data, 4);
                HT_LOG_ERROR("store",
                             "%s has schema version %u but this hoptrace "
                             "reads version %u (a new store layout): "
                             "re-ingest into a new --db folder",
                             dir, have, HT_SCHEMA_VERSION);
            } else {
                HT_LOG_ERROR("store",
                             "%s holds no hoptrace store (database "
                             "\"%s\" missing); ingest into it first",
                             dir, i < HT_DB__COUNT ? db_names[i] : name);
            }
            mdb_txn_abort(txn);
            ht_store_close(s);
            return HT_ERR_SCHEMA;
        }
        if (rc)
            goto fail;
        /* the version first: an older store is refused as such, not as
         * one missing a table this version added */
        if (i == HT_DB_META) {
            int e = check_schema(s, txn, dir);

            if (e) {
                mdb_txn_abort(txn);
                ht_store_close(s);
                return e == HT_ERR_SCHEMA ? e : HT_ERR_STORE;
            }
        }
    }
    {
        MDB_val k = {9, "epoch_len"}, v;

        if (mdb_get(txn, s->dbi[HT_DB_META], &k, &v) == 0 && v.mv_size == 8)
            memcpy(&s->epoch_len, v.mv_data, 8);
    }
    if (!readonly) {
        /* tests: a new epoch every N batches, whatever their times */
        const char *every = getenv("HOPTRACE_EPOCH_EVERY");

        if (every && atoi(every) > 0)
            s->test_every = (unsigned)atoi(every);
    }
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc)
        goto fail;
    *out = s;
    return HT_ERR_OK;
fail:
    if (txn)
        mdb_txn_abort(txn);
    HT_LOG_ERROR("store", "opening %s: %s", dir, mdb_strerror(rc));
    ht_store_close(s);
    return HT_ERR_STORE;
}

/*
 * Mapping ahead. With MDB_WRITEMAP, the first touch of each new page of
 * data.mdb is a page fault into a hole of the file: a page cache page,
 * zeroed, blocks reserved; under the map's random advice (MDB_NORDAHEAD)
 * one page per fault, 2.4 µs each on the test machine, a fifth of the
 * writer's samples while it fills a fresh store. MADV_POPULATE_WRITE does
 * the same work (1.9 µs a page, still one 4 KiB folio each) without
 * touching a byte of the file, so any thread may run it while the writer
 * writes: the engine does it in the time its threads would otherwise
 * wait (docs/performance.md).
 */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif
#define AHEAD_BYTES ((size_t)16 << 20) /* past the last page in use */

/* Where this process maps data.mdb (LMDB tells the address of a fixed map
 * only): the mapping of the file's inode that is `size` long, from
 * /proc/self/maps. NULL when there is none. */
static char *find_map(const struct ht_store *s, size_t size)
{
    char line[4352];
    struct stat st;
    char *base = NULL;
    FILE *f;
    int fd;

    if (mdb_env_get_fd(s->env, &fd) || fstat(fd, &st) != 0 ||
        !(f = fopen("/proc/self/maps", "r")))
        return NULL;
    while (!base && fgets(line, sizeof(line), f)) {
        unsigned long lo, hi, off, ino;
        unsigned dmaj, dmin;

        if (sscanf(line, "%lx-%lx %*s %lx %x:%x %lu", &lo, &hi, &off, &dmaj,
                   &dmin, &ino) == 6 &&
            ino == (unsigned long)st.st_ino && off == 0 && hi - lo == size)
            base = (char *)(uintptr_t)lo;
    }
    fclose(f);
    return base;
}

/* Bytes of data.mdb in use: up to its last page (the newest commit's). */
static size_t used_bytes(const struct ht_store *s)
{
    MDB_envinfo info;

    if (mdb_env_info(s->env, &info))
        return 0;
    return (info.me_last_pgno + 1) * s->psize;
}

size_t ht_store_grown(struct ht_store *s)
{
    size_t used, from;

    if (s->readonly)
        return 0;
    pthread_mutex_lock(&s->ahead_mu);
    gate_enter(s); /* no remap meanwhile */
    from = s->ahead_from;
    used = from ? used_bytes(s) : 0;
    gate_leave(s);
    pthread_mutex_unlock(&s->ahead_mu);
    return used > from ? used - from : 0;
}

bool ht_store_map_ahead(struct ht_store *s, size_t step, size_t most)
{
    size_t used, from, to, ahead;
    bool did = false;

    if (s->readonly)
        return false;
    pthread_mutex_lock(&s->ahead_mu);
    gate_enter(s); /* no remap meanwhile */
    used = s->ahead_off ? 0 : used_bytes(s);
    if (!used)
        goto out;
    if (s->ahead_gen != s->map_gen + 1) {
        /* LMDB maps the file again at every remap, maybe elsewhere */
        s->ahead_base = find_map(s, s->mapsize);
        s->ahead_gen = s->map_gen + 1;
        s->ahead_to = 0;
    }
    /* as far ahead as the store has grown since this process first
     * looked, up to AHEAD_BYTES: a store that does not grow gets none */
    if (!s->ahead_from)
        s->ahead_from = used;
    ahead = used > s->ahead_from ? used - s->ahead_from : 0;
    if (ahead > AHEAD_BYTES)
        ahead = AHEAD_BYTES;
    if (ahead > most)
        ahead = most;
    if (!s->ahead_base || s->ahead_to >= used + ahead)
        goto out;
    from = s->ahead_to > used ? s->ahead_to : used;
    to = used + ahead;
    if (to > from + step)
        to = from + step;
    /* a writer's file is at least its map (LMDB sizes it so; none shrinks) */
    if (to > s->mapsize)
        to = s->mapsize;
    if (to <= from)
        goto out;
    if (madvise(s->ahead_base + from, to - from, MADV_POPULATE_WRITE) == 0) {
        s->ahead_to = to;
        did = true;
    } else if (errno != EINTR && errno != EAGAIN) {
        s->ahead_off = true; /* an older kernel: faults as before */
    }
out:
    gate_leave(s);
    pthread_mutex_unlock(&s->ahead_mu);
    return did;
}

/* At close, what was mapped ahead and not taken goes back to the file
 * system (a hole again), so that no store keeps blocks it never used. In
 * a write transaction, aborted: LMDB's writer lock keeps every process's
 * writer from taking pages past the last one meanwhile. */
static void ahead_release(struct ht_store *s)
{
    MDB_txn *txn;
    size_t used;
    int fd;

    if (s->readonly || !s->ahead_to || !s->env ||
        mdb_txn_begin(s->env, NULL, 0, &txn))
        return;
    used = used_bytes(s);
    if (used && s->ahead_to > used && mdb_env_get_fd(s->env, &fd) == 0 &&
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)used,
                  (off_t)(s->ahead_to - used)) != 0)
        HT_LOG_DEBUG("store", "giving back the map's pages ahead: %s",
                     strerror(errno));
    mdb_txn_abort(txn);
}

void ht_store_close(struct ht_store *s)
{
    if (!s)
        return;
    ahead_release(s);
    if (s->env)
        mdb_env_close(s->env);
    for (size_t i = 0; i < s->nec; i++)
        bf_free(s->ec[i].bf);
    if (s->lockfd >= 0)
        close(s->lockfd);
    pthread_mutex_destroy(&s->gate_mu);
    pthread_cond_destroy(&s->gate_cv);
    pthread_mutex_destroy(&s->ec_mu);
    pthread_mutex_destroy(&s->ahead_mu);
    free(s->dir);
    free(s);
}

const char *ht_store_dir(const struct ht_store *s)
{
    return s->dir;
}

int ht_store_set_nosync(struct ht_store *s, bool on)
{
    int rc = mdb_env_set_flags(s->env, MDB_NOSYNC | MDB_MAPASYNC, on ? 1 : 0);

    return lmdb_err(rc, "setting the sync mode");
}

int ht_store_sync(struct ht_store *s)
{
    return lmdb_err(mdb_env_sync(s->env, 1), "flushing to disk");
}

int ht_store_grow(struct ht_store *s)
{
    size_t before = s->mapsize;
    int rc = remap(s, s->mapsize * 2);

    if (rc)
        return rc;
    HT_LOG_DEBUG("store", "map grown from %zu to %zu MiB", before >> 20,
                 s->mapsize >> 20);
    return HT_ERR_OK;
}

int ht_store_write_growing(struct ht_store *s, ht_store_write_fn fn, void *ctx)
{
    int rc = HT_ERR_OK;

    for (int grows = 0; grows <= HT_STORE_GROW_RETRIES; grows++) {
        rc = fn(s, ctx);
        if (rc != HT_ERR_MAPFULL)
            return rc;
        rc = ht_store_grow(s);
        if (rc)
            return rc;
    }
    return HT_ERR_MAPFULL;
}

int ht_store_begin(struct ht_store *s, bool write, struct ht_txn **out)
{
    struct ht_txn *t;
    bool missing;
    int rc, tries = 0;

again:
    t = calloc(1, sizeof(*t));
    *out = NULL;
    if (!t)
        return HT_ERR_NOMEM;
    t->s = s;
    t->write = write;
    gate_enter(s);
    rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
    if (rc == MDB_MAP_RESIZED) {
        /* another process grew the map: adopt its size (a writer: at least
         * the file's, never less, see remap), with no transaction of this
         * process open meanwhile */
        gate_leave(s);
        if (s->readonly) {
            gate_close(s);
            rc = mdb_env_set_mapsize(s->env, 0);
            gate_open(s);
        } else {
            rc = remap(s, s->mapsize) == HT_ERR_OK ? 0 : MDB_MAP_RESIZED;
        }
        gate_enter(s);
        if (!rc)
            rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
    }
    if (rc) {
        gate_leave(s);
        free(t);
        return lmdb_err(rc, "beginning a transaction");
    }
    rc = load_view(t, &missing);
    if (!rc && missing && tries < 8) {
        /* an epoch another process (or thread) began: open its tables,
         * then begin again */
        mdb_txn_abort(t->txn);
        gate_leave(s);
        free(t);
        rc = ec_open_missing(s);
        if (rc)
            return rc;
        tries++;
        goto again;
    }
    if (!rc && missing)
        rc = HT_ERR_STORE;
    if (rc) {
        mdb_txn_abort(t->txn);
        gate_leave(s);
        free(t);
        return rc;
    }
    *out = t;
    return HT_ERR_OK;
}

static void bulk_release(struct ht_bulk *b)
{
    for (int i = 0; i < HT_DB__COUNT; i++)
        free(b->defer[i].v);
    ht_buf_free(&b->dbuf);
}

/* What the transaction's view of its epochs holds beyond the registry. */
static void view_release(struct ht_txn *t)
{
    for (unsigned e = 0; e < MAX_EPOCHS; e++)
        free(t->ep[e].days);
}

/* After the LMDB transaction ended: what the txn holds goes. */
static void txn_release(struct ht_txn *t)
{
    bulk_release(&t->ps);
    view_release(t);
    free(t);
}

/* The same for a txn begun in the gate (ht_store_begin): its place there
 * goes too. */
static void txn_free(struct ht_txn *t)
{
    gate_leave(t->s);
    txn_release(t);
}

/* Two pairs in LMDB's order: the keys, then in keys (dupsort) the
 * values. */
static int cmp_pair(const MDB_val *ka, const MDB_val *va, const MDB_val *kb,
                    const MDB_val *vb, bool dups)
{
    int c = cmp_bytes(ka, kb);

    return c || !dups ? c : cmp_bytes(va, vb);
}

/* What sorting a put set's deferred puts compares them by: their bytes
 * (base: the set's dbuf) and, for dupsort databases, their values. */
struct dput_order {
    const char *base;
    bool dups;
};

/* Comparison for sorting deferred puts: key (memcmp, then length, as
 * LMDB orders them), then value for dupsort databases, then put order. */
static inline int dput_cmp(const struct dput_order *o, const struct dput *a,
                           const struct dput *b)
{
    char *ka = (char *)(uintptr_t)o->base + a->off;
    char *kb = (char *)(uintptr_t)o->base + b->off;
    MDB_val xk = {a->kn, ka}, xv = {a->vn, ka + a->kn};
    MDB_val yk = {b->kn, kb}, yv = {b->vn, kb + b->kn};
    int c = cmp_pair(&xk, &xv, &yk, &yv, o->dups);

    if (c)
        return c;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static int cmp_dput(const void *pa, const void *pb, void *order)
{
    return dput_cmp(order, pa, pb);
}

/* A short run of equal prefixes (most are two to four puts), in place. */
static void insertion_sort(const struct dput_order *o, struct dput *v, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        struct dput x = v[i];
        size_t j = i;

        for (; j > 0 && dput_cmp(o, &v[j - 1], &x) > 0; j--)
            v[j] = v[j - 1];
        v[j] = x;
    }
}

/*
 * Sorts deferred puts: a stable radix sort on the 8-byte key prefix (keys
 * are mostly ids and times, so prefixes rarely tie), then the full
 * comparison inside each run of equal prefixes. Much cheaper than a
 * comparison sort of a few hundred thousand keys.
 */
static int sort_dputs(struct ht_bulk *b, struct dlist *l, bool dups)
{
    struct dput *tmp = malloc(l->n * sizeof(*tmp)), *src = l->v, *dst = tmp;
    size_t cnt[256];

    if (!tmp)
        return HT_ERR_NOMEM;
    for (int shift = 0; shift < 64; shift += 8) {
        uint8_t first = (uint8_t)(src[0].pfx >> shift);
        bool same = true;

        memset(cnt, 0, sizeof(cnt));
        for (size_t i = 0; i < l->n; i++) {
            uint8_t d = (uint8_t)(src[i].pfx >> shift);

            cnt[d]++;
            same &= d == first;
        }
        if (same)
            continue; /* every key has this byte: nothing to reorder */
        for (size_t i = 0, sum = 0; i < 256; i++) {
            size_t c = cnt[i];

            cnt[i] = sum;
            sum += c;
        }
        for (size_t i = 0; i < l->n; i++)
            dst[cnt[(uint8_t)(src[i].pfx >> shift)]++] = src[i];
        struct dput *x = src;

        src = dst;
        dst = x;
    }
    if (src != l->v)
        memcpy(l->v, src, l->n * sizeof(*src));
    free(tmp);
    /* runs of equal prefixes: about 80,000 per ingest of the 5,000-request
     * corpus, 3.6 puts long on average, sorted in place (qsort_r's cost
     * per call was most of their sorting); the rare long one by qsort_r */
    struct dput_order o = {(const char *)b->dbuf.data, dups};

    for (size_t i = 0, j; i < l->n; i = j) {
        for (j = i + 1; j < l->n && l->v[j].pfx == l->v[i].pfx; j++)
            ;
        if (j - i <= 16)
            insertion_sort(&o, l->v + i, j - i);
        else
            qsort_r(l->v + i, j - i, sizeof(*l->v), cmp_dput, &o);
    }
    return HT_ERR_OK;
}

/* A key's first 8 bytes, big endian, zero padded: what struct dput keeps
 * in pfx, so that two keys' prefixes order as the keys do, unless they
 * tie. */
static uint64_t key_pfx(const void *k, size_t kn)
{
    uint64_t pfx = 0;

    for (size_t i = 0; i < 8; i++)
        pfx = pfx << 8 | (i < kn ? ((const uint8_t *)k)[i] : 0);
    return pfx;
}

#define APPLY_AHEAD 8 /* puts whose bytes are fetched ahead */

/* Writes the sorted puts l of put set b into database db of the current
 * epoch (ep 0); in an older epoch (ep > 0) only the deletes apply. A
 * delete that depends on the value held looks at the value that epoch
 * holds (only spans' entries are deleted so, and a span id has one). */
static int apply_list(struct ht_txn *t, int db, unsigned ep,
                      const struct ht_bulk *b, const struct dlist *l)
{
    bool dups = db == HT_DB_KEYS;
    MDB_cursor *c;
    MDB_val last, lv;
    uint8_t first_last[512];
    uint64_t last_pfx;
    bool have_last;
    int rc;

    if (l->n == 0)
        return HT_ERR_OK;
    TXN_USABLE(t);
    if (db == HT_DB_SPANS) { /* a put may bring a day (day_at) */
        t->ep[ep].ndays = 0;
        t->ep[ep].days_all = false;
    }
    rc = mdb_cursor_open(t->txn, dbi_at(t, db, ep), &c);
    if (rc)
        return txn_err(t, rc, "opening a cursor");
    /*
     * Puts beyond the table's last key are appended (MDB_APPEND): no
     * search, and a full page is split by starting a new one instead of
     * halving it. Keys that arrive nearly in order (nodes by trace id,
     * by_time) would otherwise leave every page of the table half empty.
     */
    rc = ep ? MDB_NOTFOUND : mdb_cursor_get(c, &last, &lv, MDB_LAST);
    have_last = rc == 0;
    if (rc == 0 && last.mv_size <= sizeof(first_last)) {
        memcpy(first_last, last.mv_data, last.mv_size);
        last.mv_data = first_last;
    } else if (rc == 0) {
        /* cannot be (keys stop at 511 bytes): then nothing is appended */
        last.mv_data = first_last;
        last.mv_size = sizeof(first_last);
        memset(first_last, 0xff, sizeof(first_last));
    }
    rc = rc == MDB_NOTFOUND || rc == 0 ? 0 : rc;
    last_pfx = have_last ? key_pfx(last.mv_data, last.mv_size) : 0;
    for (size_t i = 0; i < l->n && !rc; i++) {
        const struct dput *e = &l->v[i];
        const char *p = b->dbuf.data + e->off;
        MDB_val key = {e->kn, (void *)(uintptr_t)p};
        MDB_val val = {e->vn, (void *)(uintptr_t)(p + e->kn)};

        /* the puts are in key order, their bytes in put order: a few
         * puts ahead, their bytes are fetched while this one is written */
        if (i + APPLY_AHEAD < l->n) {
            const char *f = b->dbuf.data + l->v[i + APPLY_AHEAD].off;

            __builtin_prefetch(f);
            __builtin_prefetch(f + 64);
        }
        if (i + 1 < l->n) {
            const struct dput *n = &l->v[i + 1];
            const char *q = b->dbuf.data + n->off;
            bool same_key =
                n->pfx == e->pfx && n->kn == e->kn && memcmp(p, q, e->kn) == 0;

            /* the same key again: only its last value counts (or, in a
             * dupsort database, an identical pair is written once); a
             * delete that depends on the value held is never skipped,
             * nor what comes before it */
            bool cond = !dups && ((e->del && e->vn) || (n->del && n->vn));

            if (same_key && !cond &&
                (!dups ||
                 (n->vn == e->vn && memcmp(p + e->kn, q + n->kn, e->vn) == 0)))
                continue;
        }
        if (ep && (!e->del || !bf_may(t, ep, db, p, e->kn)))
            continue; /* puts go to the current epoch; the filter knows
                         what a sealed one lacks */
        if (e->del) {
            /* sorted deletes with one cursor: LMDB looks for the next key
             * in the cursor's current leaf page before descending from
             * the root, so neighbours cost one page, not one path */
            MDB_val held = val;

            rc = mdb_cursor_get(c, &key, &held, dups ? MDB_GET_BOTH : MDB_SET);
            if (rc == 0 && !dups && e->vn &&
                (held.mv_size != val.mv_size ||
                 memcmp(held.mv_data, val.mv_data, val.mv_size) != 0))
                continue; /* holds another value: kept */
            if (rc == 0) {
                rc = mdb_cursor_del(c, 0);
                if (rc == 0)
                    t->deleted[db]++;
            } else if (rc == MDB_NOTFOUND) {
                rc = 0;
            }
            continue;
        }
        /* the prefixes decide unless they tie */
        bool append = !have_last || e->pfx > last_pfx ||
                      (e->pfx == last_pfx && cmp_bytes(&key, &last) > 0);

        rc = mdb_cursor_put(c, &key, &val,
                            (dups ? MDB_NODUPDATA : 0) |
                                (append ? MDB_APPEND : 0));
        if (rc == 0 && append) {
            last = key; /* the put set's bytes outlive the loop */
            last_pfx = e->pfx;
            have_last = true;
        }
        if (rc == MDB_KEYEXIST)
            rc = 0;
    }
    mdb_cursor_close(c);
    return txn_err(t, rc, "writing");
}

/* Applies the deferred puts of one database in key order. */
static int flush_db(struct ht_txn *t, int db)
{
    struct dlist *l = &t->ps.defer[db];
    int rc;

    if (l->n == 0)
        return HT_ERR_OK;
    rc = sort_dputs(&t->ps, l, db == HT_DB_KEYS);
    if (!rc)
        rc = apply_list(t, db, 0, &t->ps, l);
    if (!rc && nep_of(t, db) > 1) {
        bool dels = false;

        for (size_t i = 0; i < l->n && !dels; i++)
            dels = l->v[i].del;
        /* a delete deletes in every epoch */
        for (unsigned e = 1; dels && !rc && e < nep_of(t, db); e++)
            rc = apply_list(t, db, e, &t->ps, l);
    }
    l->n = 0;
    return rc;
}

static int flush_all(struct ht_txn *t)
{
    int rc = HT_ERR_OK;

    for (int db = 0; db < HT_DB__COUNT && !rc; db++)
        rc = flush_db(t, db);
    ht_buf_reset(&t->ps.dbuf);
    return rc;
}

int ht_store_commit(struct ht_txn *t)
{
    int rc = t->write ? flush_all(t) : HT_ERR_OK;

    if (rc) {
        mdb_txn_abort(t->txn);
        txn_free(t);
        return rc;
    }
    if (t->failed) {
        mdb_txn_abort(t->txn);
        txn_free(t);
        return HT_ERR_MAPFULL;
    }
    rc = mdb_txn_commit(t->txn);
    txn_free(t);
    return lmdb_err(rc, "committing");
}

void ht_store_abort(struct ht_txn *t)
{
    if (!t)
        return;
    mdb_txn_abort(t->txn);
    txn_free(t);
}

/* Before reading a database, write what was deferred for it. */
#define SEE_OWN_WRITES(t, db)                                                  \
    do {                                                                       \
        if ((t)->write && (t)->ps.defer[db].n) {                               \
            int src_ = flush_db((t), (db));                                    \
            if (src_)                                                          \
                return src_;                                                   \
        }                                                                      \
    } while (0)

static int bulk_add(struct ht_bulk *b, int db, const void *k, size_t kn,
                    const void *v, size_t vn)
{
    struct dlist *l = &b->defer[db];

    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        struct dput *nv = realloc(l->v, cap * sizeof(*nv));

        if (!nv)
            return HT_ERR_NOMEM;
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n].pfx = key_pfx(k, kn);
    l->v[l->n].seq = b->seq++;
    l->v[l->n].kn = (uint32_t)kn;
    l->v[l->n].vn = (uint32_t)vn;
    l->v[l->n].del = 0;
    l->v[l->n].off = b->dbuf.len;
    l->n++;
    ht_buf_add(&b->dbuf, k, kn);
    ht_buf_add(&b->dbuf, v, vn);
    return HT_ERR_OK;
}

struct ht_bulk *ht_bulk_new(void)
{
    return calloc(1, sizeof(struct ht_bulk));
}

void ht_bulk_free(struct ht_bulk *b)
{
    if (!b)
        return;
    bulk_release(b);
    free(b);
}

/*
 * `nodes` is written and read by span id (8 bytes) but stored under trace
 * id + span id (24): a trace's spans are one range of the table (its
 * children are found there, no index entries needed), and since X-Ray
 * trace ids begin with their epoch seconds the keys arrive nearly in
 * order. `spans` maps a span id to its trace id for lookups by span id.
 * The trace is read from the packed span record itself.
 */

/*
 * `spans` keys begin with the day the span started (2 bytes): span ids are
 * random, and without the day every batch would touch pages all over the
 * index, as many as the store holds; with it a batch's inserts land in the
 * newest days' part of the tree, a working set bounded by a day's spans.
 * A lookup by span id probes the days present, newest first (two B-tree
 * searches per day: the days are found in the tree itself, no list).
 */
#define SPAN_KEY 10

static size_t span_key(uint8_t *out, int64_t start_us, const void *id)
{
    int64_t d = start_us / 86400000000LL;

    if (d < 0)
        d = 0;
    if (d > 0xffff)
        d = 0xffff;
    out[0] = (uint8_t)(d >> 8);
    out[1] = (uint8_t)d;
    memcpy(out + 2, id, 8);
    return SPAN_KEY;
}
static int node_put(struct ht_bulk *b, const void *k, const void *v, size_t vn)
{
    uint8_t key[24], skey[SPAN_KEY];
    struct ht_tid tr;
    int64_t start;
    int rc;

    if (ht_span_peek_trace(v, vn, &tr) != HT_ERR_OK ||
        ht_span_peek_start(v, vn, &start) != HT_ERR_OK)
        return HT_ERR_USAGE;
    memcpy(key, tr.b, 16);
    memcpy(key + 16, k, 8);
    rc = bulk_add(b, HT_DB_NODES, key, 24, v, vn);
    if (!rc)
        rc = bulk_add(b, HT_DB_SPANS, skey, span_key(skey, start, k), tr.b, 16);
    return rc;
}

int ht_bulk_put(struct ht_bulk *b, int db, const void *k, size_t kn,
                const void *v, size_t vn)
{
    if (!deferrable(db) || kn == 0 || kn > 511 || db == HT_DB_SPANS)
        return HT_ERR_USAGE;
    if (db == HT_DB_NODES)
        return kn == 8 ? node_put(b, k, v, vn) : HT_ERR_USAGE;
    return bulk_add(b, db, k, kn, v, vn);
}

int ht_bulk_sort(struct ht_bulk *b)
{
    int rc = HT_ERR_OK;

    for (int db = 0; db < HT_DB__COUNT && !rc; db++)
        if (b->defer[db].n)
            rc = sort_dputs(b, &b->defer[db], db == HT_DB_KEYS);
    return rc;
}

bool ht_bulk_deferrable(int db)
{
    return deferrable(db) && db != HT_DB_SPANS;
}

int ht_store_bulk_apply(struct ht_txn *t, const struct ht_bulk *b)
{
    int rc = HT_ERR_OK;

    TXN_USABLE(t);
    for (int db = 0; db < HT_DB__COUNT && !rc; db++) {
        if (!b->defer[db].n)
            continue;
        /* the transaction's own earlier puts go first */
        rc = flush_db(t, db);
        if (!rc)
            rc = apply_list(t, db, 0, b, &b->defer[db]);
    }
    return rc;
}

int ht_store_put(struct ht_txn *t, int db, const void *k, size_t kn,
                 const void *v, size_t vn)
{
    MDB_val key = {kn, (void *)(uintptr_t)k};
    MDB_val val = {vn, (void *)(uintptr_t)v};
    unsigned flags = db == HT_DB_KEYS ? MDB_NODUPDATA : 0;
    int rc;

    TXN_USABLE(t);
    if (db == HT_DB_SPANS)
        return HT_ERR_USAGE; /* written with its node */
    if (db == HT_DB_NODES)
        return kn == 8 ? node_put(&t->ps, k, v, vn) : HT_ERR_USAGE;
    if (deferrable(db) && kn > 0 && kn <= 511)
        return bulk_add(&t->ps, db, k, kn, v, vn);
    SEE_OWN_WRITES(t, db); /* deferred deletes (inv, pending) go first */
    rc = mdb_put(t->txn, dbi_at(t, db, 0), &key, &val, flags);

    if (rc == MDB_KEYEXIST)
        return HT_ERR_OK;
    return txn_err(t, rc, "writing");
}

/* The query of node id's `spans` probe (its token is the span id, any
 * day). */
static void bf_prep_node(const struct ht_txn *t, const void *id, struct bfq *q)
{
    uint8_t probe[SPAN_KEY] = {0};

    memcpy(probe + 2, id, 8);
    bf_prep(t, HT_DB_SPANS, probe, SPAN_KEY, q);
}

/*
 * The i-th newest day epoch ep's `spans` holds, into *day: 0, MDB_NOTFOUND
 * past the oldest, or LMDB's error. The days are read with cursor c as far
 * as asked (the newest day is the last key's; the one before a day is the
 * last key's before that day's first) and kept in the transaction's view of
 * the epoch until a put to its `spans` (apply_list). A delete may leave a
 * day listed that holds nothing now: that costs a lookup, not an answer.
 */
static int day_at(struct ht_txn *t, unsigned ep, MDB_cursor *c, size_t i,
                  unsigned *day)
{
    struct epoch *e = &t->ep[ep];

    while (i >= e->ndays && !e->days_all) {
        MDB_val k, v;
        int rc;

        if (!e->ndays) {
            rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
        } else {
            unsigned prev = e->days[e->ndays - 1];
            uint8_t probe[SPAN_KEY] = {(uint8_t)(prev >> 8), (uint8_t)prev};
            MDB_val pk = {SPAN_KEY, probe};

            if (!prev) {
                e->days_all = true;
                break;
            }
            /* the key before the day's first (the last of all when a
             * delete emptied the day and nothing follows) */
            rc = mdb_cursor_get(c, &pk, &v, MDB_SET_RANGE);
            if (rc == 0)
                rc = mdb_cursor_get(c, &k, &v, MDB_PREV);
            else if (rc == MDB_NOTFOUND)
                rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
        }
        if (rc == 0 && k.mv_size == SPAN_KEY) {
            const uint8_t *b = k.mv_data;
            unsigned d = (unsigned)b[0] << 8 | b[1];

            if (e->ndays && d >= e->days[e->ndays - 1]) {
                e->days_all = true; /* not older: cannot be */
                break;
            }
            if (e->ndays == e->capdays) {
                size_t cap = e->capdays ? e->capdays * 2 : 8;
                uint16_t *n = realloc(e->days, cap * sizeof(*n));

                if (!n)
                    return ENOMEM;
                e->days = n;
                e->capdays = cap;
            }
            e->days[e->ndays++] = (uint16_t)d;
        } else if (rc == 0 || rc == MDB_NOTFOUND) {
            e->days_all = true;
        } else {
            return rc;
        }
    }
    if (i >= e->ndays)
        return MDB_NOTFOUND;
    *day = e->days[i];
    return 0;
}

/* Span id under `day` in the `spans` index c reads: LMDB's result; on a
 * hit *found is 0 with key and skey (when not NULL) filled, or -1 for an
 * entry that is not a trace id. */
static int day_probe(MDB_cursor *c, unsigned day, const void *id,
                     uint8_t key[24], uint8_t *skey, int *found)
{
    uint8_t probe[SPAN_KEY];
    MDB_val pk = {SPAN_KEY, probe}, v;
    int rc;

    probe[0] = (uint8_t)(day >> 8);
    probe[1] = (uint8_t)day;
    memcpy(probe + 2, id, 8);
    rc = mdb_cursor_get(c, &pk, &v, MDB_SET_KEY);
    if (rc == 0) {
        *found = v.mv_size == 16 ? 0 : -1;
        if (!*found) {
            memcpy(key, v.mv_data, 16);
            memcpy(key + 16, id, 8);
            if (skey)
                memcpy(skey, probe, SPAN_KEY);
        }
    }
    return rc;
}

/* The stored key (trace id + span id) of node `id` in epoch ep, and its
 * `spans` key (skey, when not NULL): HT_ERR_NOTFOUND when the span is
 * unknown there. sq: the lookup's filter query (bf_prep_node), made once
 * for every epoch. */
static int node_key(struct ht_txn *t, unsigned ep, const void *id,
                    uint8_t key[24], uint8_t *skey, const struct bfq *sq)
{
    MDB_cursor *c;
    int rc, found = MDB_NOTFOUND;

    SEE_OWN_WRITES(t, HT_DB_SPANS);
    if (ep && !bf_hit(&t->ep[ep], sq))
        return HT_ERR_NOTFOUND;
    rc = mdb_cursor_open(t->txn, dbi_at(t, HT_DB_SPANS, ep), &c);
    if (rc)
        return txn_err(t, rc, "opening a cursor");
    /* day by day, newest first */
    for (size_t i = 0; found == MDB_NOTFOUND; i++) {
        unsigned day;

        rc = day_at(t, ep, c, i, &day);
        if (rc)
            break; /* past the oldest day, or an error */
        rc = day_probe(c, day, id, key, skey, &found);
        if (rc && rc != MDB_NOTFOUND)
            break;
    }
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND)
        return txn_err(t, rc, "reading");
    if (found == -1)
        return HT_ERR_CORRUPT;
    return found ? HT_ERR_NOTFOUND : HT_ERR_OK;
}

int ht_store_get(struct ht_txn *t, int db, const void *k, size_t kn,
                 const void **v, size_t *vn)
{
    MDB_val key = {kn, (void *)(uintptr_t)k}, val;
    uint8_t nk[24];
    struct bfq q;
    int rc;

    TXN_USABLE(t);
    SEE_OWN_WRITES(t, db);
    if (db == HT_DB_NODES && kn == 8)
        bf_prep_node(t, k, &q);
    else
        bf_prep(t, db, k, kn, &q);
    /* the newest epoch that holds it */
    rc = MDB_NOTFOUND;
    for (unsigned e = 0; e < nep_of(t, db) && rc == MDB_NOTFOUND; e++) {
        if (db == HT_DB_NODES && kn == 8) {
            int r = node_key(t, e, k, nk, NULL, &q);

            if (r == HT_ERR_NOTFOUND)
                continue;
            if (r)
                return r;
            key.mv_data = nk;
            key.mv_size = 24;
        } else if (e && !bf_hit(&t->ep[e], &q)) {
            continue;
        }
        rc = mdb_get(t->txn, dbi_at(t, db, e), &key, &val);
    }
    if (rc)
        return txn_err(t, rc, "reading");
    *v = val.mv_data;
    *vn = val.mv_size;
    return HT_ERR_OK;
}

struct ht_seq {
    struct ht_txn *t;
    int db;
    MDB_cursor *c;
};

int ht_store_seq_open(struct ht_txn *t, int db, struct ht_seq **out)
{
    struct ht_seq *q;
    int rc;

    *out = NULL;
    TXN_USABLE(t);
    if (epoch_db(db) || db < 0 || db >= HT_DB__COUNT)
        return HT_ERR_USAGE;
    q = calloc(1, sizeof(*q));
    if (!q)
        return HT_ERR_NOMEM;
    rc = mdb_cursor_open(t->txn, dbi_at(t, db, 0), &q->c);
    if (rc) {
        free(q);
        return txn_err(t, rc, "opening a cursor");
    }
    q->t = t;
    q->db = db;
    *out = q;
    return HT_ERR_OK;
}

int ht_store_seq_get(struct ht_seq *q, const void *k, size_t kn, const void **v,
                     size_t *vn)
{
    MDB_val key = {kn, (void *)(uintptr_t)k}, val;
    int rc;

    TXN_USABLE(q->t);
    SEE_OWN_WRITES(q->t, q->db);
    rc = mdb_cursor_get(q->c, &key, &val, MDB_SET);
    if (rc)
        return txn_err(q->t, rc, "reading");
    *v = val.mv_data;
    *vn = val.mv_size;
    return HT_ERR_OK;
}

int ht_store_seq_put(struct ht_seq *q, const void *k, size_t kn, const void *v,
                     size_t vn)
{
    MDB_val key = {kn, (void *)(uintptr_t)k};
    MDB_val val = {vn, (void *)(uintptr_t)v};
    int rc;

    TXN_USABLE(q->t);
    if (!q->t->write || deferrable(q->db))
        return HT_ERR_USAGE; /* `keys` is deferred (and kept per epoch) */
    SEE_OWN_WRITES(q->t, q->db);
    rc = mdb_cursor_put(q->c, &key, &val, 0);
    return txn_err(q->t, rc, "writing");
}

void ht_store_seq_close(struct ht_seq *q)
{
    if (!q)
        return;
    mdb_cursor_close(q->c);
    free(q);
}

/* ht_store_del in epoch ep; q its filter query, of the span id for a
 * node (bf_prep_node). */
static int del_in(struct ht_txn *t, unsigned ep, int db, const void *k,
                  size_t kn, const struct bfq *q)
{
    MDB_val key = {kn, (void *)(uintptr_t)k};
    uint8_t nk[24], sk[SPAN_KEY];
    int rc;

    if (ep && db != HT_DB_NODES && !bf_hit(&t->ep[ep], q))
        return HT_ERR_OK;
    if (db == HT_DB_NODES && (kn == 8 || kn == 24)) {
        const uint8_t *id = kn == 8 ? k : (const uint8_t *)k + 16;

        rc = node_key(t, ep, id, nk, sk, q);
        if (rc && rc != HT_ERR_NOTFOUND)
            return rc;
        if (kn == 8 && rc == HT_ERR_NOTFOUND)
            return HT_ERR_OK;
        /* the span id's entry goes when it names this node */
        if (rc == HT_ERR_OK && (kn == 8 || memcmp(nk, k, 16) == 0)) {
            MDB_val skv = {SPAN_KEY, sk};

            rc = mdb_del(t->txn, dbi_at(t, HT_DB_SPANS, ep), &skv, NULL);
            if (rc && rc != MDB_NOTFOUND)
                return txn_err(t, rc, "deleting");
        }
        if (kn == 8) {
            key.mv_data = nk;
            key.mv_size = 24;
        }
    }
    rc = mdb_del(t->txn, dbi_at(t, db, ep), &key, NULL);
    if (rc == MDB_NOTFOUND)
        return HT_ERR_OK;
    return txn_err(t, rc, "deleting");
}

int ht_store_del(struct ht_txn *t, int db, const void *k, size_t kn)
{
    struct bfq q;
    int rc = HT_ERR_OK;

    TXN_USABLE(t);
    SEE_OWN_WRITES(t, db);
    if (db == HT_DB_NODES)
        SEE_OWN_WRITES(t, HT_DB_SPANS);
    if (db == HT_DB_NODES && (kn == 8 || kn == 24))
        bf_prep_node(t, kn == 8 ? k : (const uint8_t *)k + 16, &q);
    else
        bf_prep(t, db, k, kn, &q);
    for (unsigned e = 0; e < nep_of(t, db) && !rc; e++)
        rc = del_in(t, e, db, k, kn, &q);
    return rc;
}

int ht_store_del_pair(struct ht_txn *t, int db, const void *k, size_t kn,
                      const void *v, size_t vn)
{
    MDB_val key = {kn, (void *)(uintptr_t)k};
    MDB_val val = {vn, (void *)(uintptr_t)v};
    struct bfq q;
    int rc;

    TXN_USABLE(t);
    if (db != HT_DB_KEYS)
        return HT_ERR_USAGE;
    SEE_OWN_WRITES(t, db);
    rc = MDB_NOTFOUND;
    bf_prep(t, db, k, kn, &q);
    for (unsigned e = 0; e < nep_of(t, db); e++) {
        int r;

        if (e && !bf_hit(&t->ep[e], &q))
            continue;
        r = mdb_del(t->txn, dbi_at(t, db, e), &key, &val);

        if (r && r != MDB_NOTFOUND)
            return txn_err(t, r, "deleting");
        if (!r)
            rc = 0;
    }
    return txn_err(t, rc, "deleting");
}

int ht_store_del_later(struct ht_txn *t, int db, const void *k, size_t kn,
                       const void *v, size_t vn)
{
    struct dlist *l;
    int rc;

    TXN_USABLE(t);
    /* nodes (and spans with them) go by ht_store_node_del_later */
    if (!t->write || db < 0 || db >= HT_DB__COUNT || db == HT_DB_NODES ||
        db == HT_DB_SPANS || kn == 0 || kn > 511)
        return HT_ERR_USAGE;
    rc = bulk_add(&t->ps, db, k, kn, v, vn);
    if (rc)
        return rc;
    l = &t->ps.defer[db];
    l->v[l->n - 1].del = 1;
    return HT_ERR_OK;
}

int ht_store_flush(struct ht_txn *t, uint64_t *deleted)
{
    int rc;

    TXN_USABLE(t);
    rc = t->write ? flush_all(t) : HT_ERR_OK;
    if (deleted) {
        *deleted = 0;
        for (int db = 0; db < HT_DB__COUNT; db++)
            *deleted += t->deleted[db];
    }
    return rc;
}

uint64_t ht_store_txn_id(const struct ht_txn *t)
{
    return (uint64_t)mdb_txn_id(t->txn);
}

uint64_t ht_store_deleted(struct ht_txn *t, int db)
{
    return db >= 0 && db < HT_DB__COUNT ? t->deleted[db] : 0;
}

int ht_store_node_del_later(struct ht_txn *t, const struct ht_tid *trace,
                            const struct ht_id8 *id, int64_t start_us)
{
    uint8_t key[24], skey[SPAN_KEY];
    struct dlist *l;
    int rc;

    TXN_USABLE(t);
    if (!t->write)
        return HT_ERR_USAGE;
    memcpy(key, trace->b, 16);
    memcpy(key + 16, id->b, 8);
    rc = bulk_add(&t->ps, HT_DB_NODES, key, 24, NULL, 0);
    if (rc)
        return rc;
    l = &t->ps.defer[HT_DB_NODES];
    l->v[l->n - 1].del = 1;
    /* the span id's entry goes when it names this trace */
    rc = bulk_add(&t->ps, HT_DB_SPANS, skey, span_key(skey, start_us, id->b),
                  trace->b, 16);
    if (rc)
        return rc;
    l = &t->ps.defer[HT_DB_SPANS];
    l->v[l->n - 1].del = 1;
    return HT_ERR_OK;
}

static int cmp_bytes_q(const void *a, const void *b)
{
    return cmp_bytes(a, b);
}

/* Visits the pairs of one database from where `first` puts a cursor (at
 * *key for MDB_SET_KEY) on, moving it by `next`, until the visitor stops
 * or the run ends. */
static int visit_run(struct ht_txn *t, MDB_dbi dbi, const MDB_val *key,
                     MDB_cursor_op first, MDB_cursor_op next,
                     ht_store_visit_fn fn, void *ctx, const char *what)
{
    MDB_cursor *c;
    MDB_val k = {0, NULL}, v;
    int rc = mdb_cursor_open(t->txn, dbi, &c);

    if (rc)
        return txn_err(t, rc, "opening a cursor");
    if (key)
        k = *key;
    rc = mdb_cursor_get(c, &k, &v, first);
    while (rc == 0) {
        if (fn(ctx, k.mv_data, k.mv_size, v.mv_data, v.mv_size))
            break;
        rc = mdb_cursor_get(c, &k, &v, next);
    }
    mdb_cursor_close(c);
    return rc && rc != MDB_NOTFOUND ? txn_err(t, rc, what) : HT_ERR_OK;
}

int ht_store_dups(struct ht_txn *t, int db, const void *k, size_t kn,
                  ht_store_visit_fn fn, void *ctx)
{
    MDB_val key = {kn, (void *)(uintptr_t)k}, val;
    MDB_val *vals = NULL;
    size_t n = 0, cap = 0;
    struct bfq q;
    int rc = 0;

    TXN_USABLE(t);
    SEE_OWN_WRITES(t, db);
    if (nep_of(t, db) == 1) /* one epoch: straight from the cursor */
        return visit_run(t, dbi_at(t, db, 0), &key, MDB_SET_KEY, MDB_NEXT_DUP,
                         fn, ctx, "reading duplicates");
    /* every epoch's values, in order, each once */
    bf_prep(t, db, k, kn, &q);
    for (unsigned e = 0; e < nep_of(t, db) && !rc; e++) {
        MDB_cursor *c;

        if (e && !bf_hit(&t->ep[e], &q))
            continue;
        rc = mdb_cursor_open(t->txn, dbi_at(t, db, e), &c);
        if (rc)
            break;
        key.mv_size = kn;
        key.mv_data = (void *)(uintptr_t)k;
        rc = mdb_cursor_get(c, &key, &val, MDB_SET_KEY);
        while (rc == 0) {
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 16;
                MDB_val *nv = realloc(vals, nc * sizeof(*nv));

                if (!nv) {
                    mdb_cursor_close(c);
                    free(vals);
                    return HT_ERR_NOMEM;
                }
                vals = nv;
                cap = nc;
            }
            vals[n++] = val;
            rc = mdb_cursor_get(c, &key, &val, MDB_NEXT_DUP);
        }
        mdb_cursor_close(c);
        if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    if (rc) {
        free(vals);
        return txn_err(t, rc, "reading duplicates");
    }
    if (n > 1)
        qsort(vals, n, sizeof(*vals), cmp_bytes_q);
    for (size_t i = 0; i < n; i++) {
        if (i && cmp_bytes(&vals[i - 1], &vals[i]) == 0)
            continue;
        if (fn(ctx, k, kn, vals[i].mv_data, vals[i].mv_size))
            break;
    }
    free(vals);
    return HT_ERR_OK;
}

/* One epoch's cursor of a merged scan. */
struct mcur {
    MDB_cursor *c;
    MDB_val k, v;
    bool on;
};

/*
 * Visits pairs in key order (back: reverse) over every epoch of db at
 * once, the newest epoch's copy of a key winning (in keys: each pair
 * once). Forward: from the first key >= start (the first of all when sn
 * is 0) while the key begins with start's first `bound` bytes (no bound
 * when 0). Back: from the last key <= start, while the key begins with
 * prefix (pn bytes; no bound when 0). Until the visitor returns non-zero.
 */
static int scan_merged(struct ht_txn *t, int db, const void *start, size_t sn,
                       size_t bound, bool back, const void *prefix, size_t pn,
                       ht_store_visit_fn fn, void *ctx)
{
    struct mcur m[MAX_EPOCHS];
    unsigned n = nep_of(t, db);
    bool dups = db == HT_DB_KEYS;
    MDB_cursor_op step = back ? MDB_PREV : MDB_NEXT;
    struct bfq q = {.any = false};
    int rc = 0;

    TXN_USABLE(t);
    SEE_OWN_WRITES(t, db);
    memset(m, 0, sizeof(m));
    if (!back && bound == sn)
        bf_prep_prefix(t, db, start, sn, &q);
    for (unsigned e = 0; e < n && !rc; e++) {
        MDB_val key = {sn, (void *)(uintptr_t)start};

        /* a range a sealed epoch's filter says it lacks */
        if (e && !bf_hit(&t->ep[e], &q))
            continue;
        rc = mdb_cursor_open(t->txn, dbi_at(t, db, e), &m[e].c);
        if (rc)
            break;
        if (!back) {
            rc = mdb_cursor_get(m[e].c, &key, &m[e].v,
                                sn ? MDB_SET_RANGE : MDB_FIRST);
        } else {
            /* the last key at or before `start` */
            rc = mdb_cursor_get(m[e].c, &key, &m[e].v, MDB_SET_RANGE);
            if (rc == MDB_NOTFOUND) {
                rc = mdb_cursor_get(m[e].c, &key, &m[e].v, MDB_LAST);
            } else if (rc == 0) {
                MDB_val from = {sn, (void *)(uintptr_t)start};

                if (cmp_bytes(&key, &from) > 0)
                    rc = mdb_cursor_get(m[e].c, &key, &m[e].v, MDB_PREV);
            }
            if (rc == 0 && dups) /* the last value of that key */
                rc = mdb_cursor_get(m[e].c, &key, &m[e].v, MDB_LAST_DUP);
        }
        m[e].k = key;
        m[e].on = rc == 0;
        if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    while (!rc) {
        int best = -1;

        for (unsigned e = 0; e < n; e++) {
            int c;

            if (!m[e].on)
                continue;
            if (best < 0) {
                best = (int)e;
                continue;
            }
            c = cmp_pair(&m[e].k, &m[e].v, &m[best].k, &m[best].v, dups);
            if (back ? c > 0 : c < 0)
                best = (int)e; /* ties: the newer (lower) epoch stays */
        }
        if (best < 0)
            break;
        MDB_val bk = m[best].k, bv = m[best].v;

        if (!back && bound &&
            (bk.mv_size < bound || memcmp(bk.mv_data, start, bound) != 0))
            break;
        if (back && pn &&
            (bk.mv_size < pn || memcmp(bk.mv_data, prefix, pn) != 0))
            break;
        if (fn(ctx, bk.mv_data, bk.mv_size, bv.mv_data, bv.mv_size))
            break;
        /* past this key (pair) in every epoch holding it: older copies */
        for (unsigned e = 0; e < n && !rc; e++) {
            if (!m[e].on || (int)e == best ||
                cmp_pair(&m[e].k, &m[e].v, &bk, &bv, dups) != 0)
                continue;
            rc = mdb_cursor_get(m[e].c, &m[e].k, &m[e].v, step);
            m[e].on = rc == 0;
            if (rc == MDB_NOTFOUND)
                rc = 0;
        }
        if (!rc) {
            rc = mdb_cursor_get(m[best].c, &m[best].k, &m[best].v, step);
            m[best].on = rc == 0;
            if (rc == MDB_NOTFOUND)
                rc = 0;
        }
    }
    for (unsigned e = 0; e < n; e++)
        if (m[e].c)
            mdb_cursor_close(m[e].c);
    return rc ? txn_err(t, rc, "scanning") : HT_ERR_OK;
}

int ht_store_scan(struct ht_txn *t, int db, const void *prefix, size_t pn,
                  ht_store_visit_fn fn, void *ctx)
{
    return scan_merged(t, db, prefix, pn, pn, false, NULL, 0, fn, ctx);
}

int ht_store_scan_from(struct ht_txn *t, int db, const void *from, size_t fn,
                       ht_store_visit_fn visit, void *ctx)
{
    return scan_merged(t, db, from, fn, 0, false, NULL, 0, visit, ctx);
}

int ht_store_scan_back(struct ht_txn *t, int db, const void *from, size_t fn,
                       const void *prefix, size_t pn, ht_store_visit_fn visit,
                       void *ctx)
{
    return scan_merged(t, db, from, fn, 0, true, prefix, pn, visit, ctx);
}

static int count_visit(void *ctx, const void *k, size_t kn, const void *v,
                       size_t vn)
{
    (void)k;
    (void)kn;
    (void)v;
    (void)vn;
    (*(uint64_t *)ctx)++;
    return 0;
}

int ht_store_count(struct ht_txn *t, int db, uint64_t *n)
{
    MDB_stat st;
    int rc;

    TXN_USABLE(t);
    SEE_OWN_WRITES(t, db);
    *n = 0;
    if (nep_of(t, db) > 1) /* each key once, whichever epochs hold it */
        return scan_merged(t, db, NULL, 0, 0, false, NULL, 0, count_visit, n);
    rc = mdb_stat(t->txn, dbi_at(t, db, 0), &st);
    if (rc)
        return txn_err(t, rc, "stat");
    *n = st.ms_entries;
    return HT_ERR_OK;
}

int64_t ht_store_newest_event(struct ht_txn *t)
{
    const void *v = NULL;
    size_t vn = 0;
    int64_t val = INT64_MIN;

    if (ht_store_get(t, HT_DB_META, "newest_event", 12, &v, &vn) == HT_ERR_OK &&
        vn == sizeof(val))
        memcpy(&val, v, sizeof(val));
    return val;
}

int ht_store_note_event(struct ht_txn *t, int64_t ts_us)
{
    struct ereg r[MAX_EPOCHS];
    unsigned n;
    int rc;

    TXN_USABLE(t);
    /* the current epoch's newest event: what decides when it may go */
    rc = reg_read(t->txn, t->s, r, &n);
    if (rc)
        return rc;
    if (n && ts_us > r[n - 1].max) {
        r[n - 1].max = ts_us;
        rc = txn_err(t, reg_write(t->txn, t->s, r, n), "writing the epochs");
        if (rc)
            return rc;
    }
    if (ts_us <= ht_store_newest_event(t))
        return HT_ERR_OK;
    return ht_store_put(t, HT_DB_META, "newest_event", 12, &ts_us,
                        sizeof(ts_us));
}

/* ---- epochs: starting and dropping them ---------------------------------- */

int64_t ht_store_epoch_len(const struct ht_store *s)
{
    return s->epoch_len;
}

static int epoch_len_run(struct ht_store *s, void *ctx)
{
    struct ht_txn *t;
    int rc = ht_store_begin(s, true, &t);

    if (rc)
        return rc;
    rc = ht_store_put(t, HT_DB_META, "epoch_len", 9, ctx, 8);
    if (rc) {
        ht_store_abort(t);
        return rc;
    }
    return ht_store_commit(t);
}

int ht_store_set_epoch_len(struct ht_store *s, int64_t len_us)
{
    int rc;

    if (s->readonly || len_us < 0)
        return HT_ERR_USAGE;
    if (len_us == s->epoch_len)
        return HT_ERR_OK;
    rc = ht_store_write_growing(s, epoch_len_run, &len_us);
    if (!rc)
        s->epoch_len = len_us;
    return rc;
}

/* floor(v / len) * len, for negative v too (INT64_MIN below the first
 * multiple) */
static int64_t align_down(int64_t v, int64_t len)
{
    int64_t r = v % len;

    if (v < INT64_MIN + len)
        return INT64_MIN;
    return r < 0 ? v - r - len : v - r;
}

struct rotate_args {
    int64_t newest_us;
    bool forced;
    bool *rotated;
};

/* One attempt of ht_store_rotate (ht_store_write_growing redoes it). */
static int rotate_run(struct ht_store *s, void *ctx)
{
    const struct rotate_args *a = ctx;
    int64_t newest_us = a->newest_us;
    bool forced = a->forced, *rotated = a->rotated;
    struct ereg r[MAX_EPOCHS];
    struct ecache ec;
    struct ht_txn *t;
    unsigned n;
    bool write = false, locked = false;
    int rc = ht_store_begin(s, true, &t);

    if (rc)
        return rc;
    rc = reg_read(t->txn, s, r, &n);
    if (!rc && n == 0) {
        /* the first epoch gets its start (and the newest event so far) */
        r[0].id = 0;
        r[0].start = forced || s->epoch_len <= 0
                         ? newest_us
                         : align_down(newest_us, s->epoch_len);
        r[0].max = ht_store_newest_event(t);
        n = 1;
        write = true;
        if (!forced) {
            rc = txn_err(t, reg_write(t->txn, s, r, n), "writing the epochs");
            goto done;
        }
    }
    if (rc)
        goto done;
    /* a sealed epoch without its filter (sealed just now, or a crash came
     * before the filter): one a call */
    for (unsigned e = 1; e < t->nep; e++) {
        uint8_t kb[BF_KEY];
        MDB_val bk = {BF_KEY, kb}, bv;

        if (t->ep[e].bf)
            continue;
        bf_key(kb, t->ep[e].id, 0);
        if (mdb_get(t->txn, s->dbi[HT_DB_META], &bk, &bv) == 0)
            continue;
        rc = txn_err(t, bf_build(t, e), "filtering an epoch");
        write = true;
        break;
    }
    if (rc)
        goto done;
    /* (the difference taken unsigned: a start may be far below) */
    if (!forced && (s->epoch_len <= 0 || newest_us < r[n - 1].start ||
                    (uint64_t)newest_us - (uint64_t)r[n - 1].start <
                        (uint64_t)s->epoch_len))
        goto done;
    if (n >= MAX_EPOCHS) {
        /* retention is behind: the current epoch goes on */
        HT_LOG_DEBUG("store", "%u epochs live: not starting another", n);
        goto done;
    }
    pthread_mutex_lock(&s->ec_mu);
    locked = true;
    if (s->nec >= EC_CAP) {
        rc = HT_ERR_OK; /* no handles left: the next round recycles */
        goto done;
    }
    rc = ec_open(s, t->txn, r[n - 1].id + 1, true, &ec);
    if (rc) {
        rc = txn_err(t, rc, "creating an epoch's tables");
        goto done;
    }
    r[n].id = r[n - 1].id + 1;
    r[n].start = forced ? newest_us : align_down(newest_us, s->epoch_len);
    r[n].max = INT64_MIN;
    n++;
    write = true;
    rc = txn_err(t, reg_write(t->txn, s, r, n), "writing the epochs");
    if (!rc) {
        rc = ht_store_commit(t);
        t = NULL;
        if (!rc) {
            s->ec[s->nec++] = ec;
            *rotated = true;
        }
    }
done:
    if (t && write && !rc) {
        rc = ht_store_commit(t);
        t = NULL;
    }
    if (t)
        ht_store_abort(t);
    if (locked)
        pthread_mutex_unlock(&s->ec_mu);
    return rc;
}

int ht_store_rotate(struct ht_store *s, int64_t newest_us, bool timed,
                    bool *rotated)
{
    struct rotate_args a = {newest_us, false, rotated};

    *rotated = false;
    if (s->readonly)
        return HT_ERR_USAGE;
    a.forced = s->test_every && ++s->test_n % s->test_every == 0;
    if (!a.forced && (!timed || s->epoch_len <= 0 || newest_us == INT64_MIN))
        return HT_ERR_OK;
    if (s->nec + 2 > EC_CAP)
        ec_recycle(s);
    return ht_store_write_growing(s, rotate_run, &a);
}

unsigned ht_store_epochs(struct ht_txn *t, struct ht_epoch *out, unsigned cap)
{
    unsigned n = t->nep < cap ? t->nep : cap;

    for (unsigned i = 0; i < n; i++) {
        out[i].id = t->ep[i].id;
        out[i].start_us = t->ep[i].start;
        out[i].newest_us = t->ep[i].max;
    }
    return t->nep;
}

struct prefixed {
    const void *p;
    size_t pn;
    ht_store_visit_fn fn;
    void *ctx;
};

static int visit_prefixed(void *ctx, const void *k, size_t kn, const void *v,
                          size_t vn)
{
    struct prefixed *x = ctx;

    if (kn < x->pn || memcmp(k, x->p, x->pn) != 0)
        return 1; /* past the prefix */
    return x->fn(x->ctx, k, kn, v, vn);
}

int ht_store_scan_epoch(struct ht_txn *t, int db, unsigned ep,
                        const void *prefix, size_t pn, ht_store_visit_fn fn,
                        void *ctx)
{
    struct prefixed x = {prefix, pn, fn, ctx};
    MDB_val key = {pn, (void *)(uintptr_t)prefix};

    TXN_USABLE(t);
    if (!epoch_db(db) || ep >= t->nep)
        return HT_ERR_USAGE;
    SEE_OWN_WRITES(t, db);
    if (!pn)
        return visit_run(t, dbi_at(t, db, ep), NULL, MDB_FIRST, MDB_NEXT, fn,
                         ctx, "scanning");
    return visit_run(t, dbi_at(t, db, ep), &key, MDB_SET_RANGE, MDB_NEXT,
                     visit_prefixed, &x, "scanning");
}

int ht_store_count_epoch(struct ht_txn *t, int db, unsigned ep,
                         const void *prefix, size_t pn, uint64_t *n)
{
    MDB_stat st;
    int rc;

    TXN_USABLE(t);
    *n = 0;
    if (!epoch_db(db) || ep >= t->nep)
        return HT_ERR_USAGE;
    if (pn) /* the range's entries, one by one */
        return ht_store_scan_epoch(t, db, ep, prefix, pn, count_visit, n);
    SEE_OWN_WRITES(t, db);
    rc = mdb_stat(t->txn, dbi_at(t, db, ep), &st);
    if (rc)
        return txn_err(t, rc, "stat");
    *n = st.ms_entries;
    return HT_ERR_OK;
}

bool ht_store_in_newer(struct ht_txn *t, int db, unsigned ep, const void *k,
                       size_t kn)
{
    MDB_val key = {kn, (void *)(uintptr_t)k}, v;
    struct bfq q;

    bf_prep(t, db, k, kn, &q);
    for (unsigned e = 0; e < ep && e < nep_of(t, db); e++)
        if ((!e || bf_hit(&t->ep[e], &q)) &&
            mdb_get(t->txn, dbi_at(t, db, e), &key, &v) == 0)
            return true;
    return false;
}

unsigned ht_store_test_drop_mapfull, ht_store_test_drop_unfinished;

/*
 * Dropping an epoch is two steps. The first transaction (drop_once) takes
 * it out of the registry, with whatever the caller's hook does to what
 * indexes it, and lists it in meta as doomed; its tables are then dropped
 * one per transaction (finish_doomed). In one transaction LMDB records
 * every page the epoch held as one free-list value, which needs as many
 * pages in a row as it is long; when the free space has no such run, LMDB
 * puts it at the end of the file (docs/performance.md, seventh sitting).
 * A crash between the steps leaves the epoch doomed: the next drop
 * finishes it first.
 */
#define DOOMED_KEY 11

/* meta's key of an epoch whose tables are to be dropped: "doomed:" + id */
static void doomed_key(uint8_t k[DOOMED_KEY], uint32_t id)
{
    memcpy(k, "doomed:", 7);
    memcpy(k + 7, &id, 4);
}

/* The doomed epochs' ids as txn sees them, into ids (at most cap); *n
 * how many. */
static int doomed_list(MDB_txn *txn, const struct ht_store *s, uint32_t *ids,
                       unsigned cap, unsigned *n)
{
    MDB_cursor *c;
    MDB_val k = {7, "doomed:"}, v;
    int rc = mdb_cursor_open(txn, s->dbi[HT_DB_META], &c);

    *n = 0;
    if (!rc) {
        for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
             !rc && *n < cap && k.mv_size == DOOMED_KEY &&
             memcmp(k.mv_data, "doomed:", 7) == 0;
             rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
            memcpy(&ids[(*n)++], (const uint8_t *)k.mv_data + 7, 4);
        mdb_cursor_close(c);
    }
    return rc && rc != MDB_NOTFOUND ? lmdb_err(rc, "reading the epochs to drop")
                                    : HT_ERR_OK;
}

/* One write transaction of finish_doomed for doomed epoch id: drop its
 * table db, or with db < 0 unlist it (its tables are gone by then). The
 * handle cache forgets the epoch's handles first: mdb_drop closes them
 * whatever comes of the transaction, and the epoch is in no view any
 * more. The caller has closed the gate. The write transaction begins
 * before ec_mu is taken, as in load_view. */
static int doomed_txn(struct ht_store *s, uint32_t id, int db)
{
    MDB_txn *txn;
    struct ecache *c;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);

    if (rc)
        return lmdb_err(rc, "beginning a transaction");
    pthread_mutex_lock(&s->ec_mu);
    if ((c = ec_find(s, id))) {
        bf_free(c->bf);
        *c = s->ec[--s->nec];
    }
    if (db >= 0) {
        MDB_dbi dbi;

        rc = epoch_table_open(txn, id, db, false, &dbi);
        if (!rc)
            rc = mdb_drop(txn, dbi, 1);
    } else {
        uint8_t dk[DOOMED_KEY];
        MDB_val k = {DOOMED_KEY, dk};

        doomed_key(dk, id);
        rc = mdb_del(txn, s->dbi[HT_DB_META], &k, NULL);
    }
    if (rc == MDB_NOTFOUND) /* done before */
        rc = 0;
    if (rc)
        mdb_txn_abort(txn);
    else
        rc = mdb_txn_commit(txn);
    pthread_mutex_unlock(&s->ec_mu);
    if (rc == MDB_MAP_FULL)
        return HT_ERR_MAPFULL;
    return lmdb_err(rc, "dropping an epoch's tables");
}

/* Drops the doomed epochs' tables one per transaction, then unlists each
 * (ht_store_write_growing redoes it: every step can be done twice). The
 * gate holds this process's other transactions back while a handle
 * closes. */
static int finish_doomed(struct ht_store *s, void *ctx)
{
    uint32_t ids[2 * MAX_EPOCHS];
    unsigned n;
    struct ht_txn *t;
    int rc = ht_store_begin(s, false, &t);

    (void)ctx;
    if (rc)
        return rc;
    rc = doomed_list(t->txn, s, ids, 2 * MAX_EPOCHS, &n);
    ht_store_abort(t);
    for (unsigned i = 0; !rc && i < n; i++)
        for (int db = 0; !rc && db <= HT_DB__COUNT; db++) {
            if (db < HT_DB__COUNT && !epoch_db(db))
                continue;
            gate_close(s);
            rc = doomed_txn(s, ids[i], db < HT_DB__COUNT ? db : -1);
            gate_open(s);
        }
    return rc;
}

/* One transaction of ht_store_drop_epochs, with the gate closed. */
static int drop_once(struct ht_store *s, int64_t before_us,
                     ht_store_drop_fn pre, void *ctx, unsigned *dropped)
{
    struct ereg r[MAX_EPOCHS];
    unsigned n, k = 0;
    struct ht_txn *t = calloc(1, sizeof(*t));
    bool missing;
    int rc;

    if (!t)
        return HT_ERR_NOMEM;
    t->s = s;
    t->write = true;
    rc = mdb_txn_begin(s->env, NULL, 0, &t->txn);
    if (rc) {
        free(t);
        return lmdb_err(rc, "beginning a transaction");
    }
    rc = load_view(t, &missing);
    if (!rc && missing)
        rc = HT_ERR_NOTFOUND; /* the caller opens them and comes back */
    if (!rc)
        rc = reg_read(t->txn, s, r, &n);
    /* the oldest epochs whose newest event is before the cut, never the
     * current one; registry order is oldest first, the view's newest */
    while (!rc && k + 1 < n && r[k].max < before_us)
        k++;
    for (unsigned i = 0; !rc && i < k; i++) {
        unsigned ep = t->nep - 1 - i; /* r[i] in the view */

        if (pre)
            rc = pre(ctx, t, ep, i == 0);
        if (!rc)
            rc = flush_all(t);
        if (!rc) { /* its tables go after this (finish_doomed) */
            uint8_t dk[DOOMED_KEY];
            MDB_val dkv = {DOOMED_KEY, dk}, v = {1, "1"};

            doomed_key(dk, r[i].id);
            rc = txn_err(t, mdb_put(t->txn, s->dbi[HT_DB_META], &dkv, &v, 0),
                         "listing an epoch's tables to drop");
        }
        if (!rc)
            rc = txn_err(t, bf_delete(t->txn, s, r[i].id), "dropping a filter");
    }
    if (!rc && k && ht_store_test_drop_mapfull) {
        ht_store_test_drop_mapfull--;
        rc = HT_ERR_MAPFULL;
    }
    if (!rc && k) {
        t->nep -= k; /* what follows must not touch the dropped handles */
        memmove(r, r + k, (n - k) * sizeof(*r));
        rc = txn_err(t, reg_write(t->txn, s, r, n - k), "writing the epochs");
    }
    if (!rc)
        rc = flush_all(t);
    if (!rc && t->failed)
        rc = HT_ERR_MAPFULL;
    if (!rc && k)
        rc = lmdb_err(mdb_txn_commit(t->txn), "committing");
    else
        mdb_txn_abort(t->txn);
    txn_release(t); /* begun with the gate closed (drop_run) */
    if (!rc)
        *dropped += k;
    return rc;
}

struct drop_args {
    int64_t before_us;
    ht_store_drop_fn pre;
    void *ctx;
    unsigned *dropped;
};

/* One attempt of ht_store_drop_epochs (ht_store_write_growing redoes it),
 * with the gate closed as the registry changes under this process's
 * transactions; an epoch whose handles this process lacks is opened
 * first. */
static int drop_run(struct ht_store *s, void *ctx)
{
    const struct drop_args *a = ctx;
    int rc;

    for (int tries = 0;; tries++) {
        gate_close(s);
        rc = drop_once(s, a->before_us, a->pre, a->ctx, a->dropped);
        gate_open(s);
        if (rc != HT_ERR_NOTFOUND || tries >= 4)
            return rc;
        rc = ec_open_missing(s);
        if (rc)
            return rc;
    }
}

int ht_store_drop_epochs(struct ht_store *s, int64_t before_us,
                         ht_store_drop_fn pre, void *ctx, unsigned *dropped)
{
    struct drop_args a = {before_us, pre, ctx, dropped};
    struct ht_txn *t;
    int64_t oldest;
    uint32_t any;
    unsigned doomed;
    int rc;

    *dropped = 0;
    if (s->readonly)
        return HT_ERR_USAGE;
    /* anything to do? (a read, without holding anyone back) */
    rc = ht_store_begin(s, false, &t);
    if (rc)
        return rc;
    oldest = t->nep > 1 ? t->ep[t->nep - 1].max : INT64_MAX;
    rc = doomed_list(t->txn, s, &any, 1, &doomed);
    ht_store_abort(t);
    if (!rc && oldest < before_us) {
        rc = ht_store_write_growing(s, drop_run, &a);
        if (!rc && ht_store_test_drop_unfinished) {
            ht_store_test_drop_unfinished--;
            return rc;
        }
    }
    /* the tables of what this call doomed, and of what an interrupted
     * drop left, in one pass */
    if (!rc && (doomed || *dropped))
        rc = ht_store_write_growing(s, finish_doomed, NULL);
    return rc;
}

int64_t ht_store_counter(struct ht_txn *t, const char *name)
{
    char key[128];
    const void *v = NULL;
    size_t vn = 0;
    int64_t val = 0;
    int n = snprintf(key, sizeof(key), "c:%s", name);

    if (ht_store_get(t, HT_DB_META, key, (size_t)n, &v, &vn) == HT_ERR_OK &&
        vn == sizeof(val))
        memcpy(&val, v, sizeof(val));
    return val;
}

int ht_store_counter_add(struct ht_txn *t, const char *name, int64_t delta)
{
    char key[128];
    int64_t val = ht_store_counter(t, name) + delta;
    int n = snprintf(key, sizeof(key), "c:%s", name);

    return ht_store_put(t, HT_DB_META, key, (size_t)n, &val, sizeof(val));
}
