/*
 * lmdb_anchor.c - LMDB's own write floor for ht-bench (anchors.h): every
 * pair of the store ingest wrote, read back as LMDB holds it (each named
 * database in key order, with its flags, as mdb_dump would: nothing here
 * interprets hoptrace's records), then loaded into a fresh environment
 * the fastest way LMDB writes: sorted, appended (MDB_APPEND /
 * MDB_APPENDDUP), one transaction per database, the file mapped writable
 * and not synced, as hoptrace opens its store. Owned by bench/.
 */
#define _GNU_SOURCE
#include "anchors.h"

#include <errno.h>
#include <lmdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct table {
    char *name;
    unsigned flags; /* MDB_DUPSORT, MDB_INTEGERKEY ... as found */
    char *buf;      /* u32 kn, key, u32 vn, value ... */
    size_t len, cap, n;
};

struct ht_lmdb_pairs {
    struct table *t;
    size_t n;
    uint64_t pairs, bytes;
};

static bool add(struct table *t, const MDB_val *k, const MDB_val *v)
{
    size_t need = 8 + k->mv_size + v->mv_size;
    uint32_t kn = (uint32_t)k->mv_size, vn = (uint32_t)v->mv_size;

    if (t->len + need > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 1 << 20;
        char *b;

        while (cap < t->len + need)
            cap *= 2;
        b = realloc(t->buf, cap);
        if (!b)
            return false;
        t->buf = b;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, &kn, 4);
    memcpy(t->buf + t->len + 4, k->mv_data, kn);
    memcpy(t->buf + t->len + 4 + kn, &vn, 4);
    memcpy(t->buf + t->len + 8 + kn, v->mv_data, vn);
    t->len += need;
    t->n++;
    return true;
}

/* Reads one named database into t; an LMDB error code, ENOMEM, or 0. */
static int read_table(MDB_txn *txn, struct table *t)
{
    MDB_dbi dbi;
    MDB_cursor *c;
    MDB_val k, v;
    int rc = mdb_dbi_open(txn, t->name, 0, &dbi);

    if (rc)
        return rc;
    rc = mdb_dbi_flags(txn, dbi, &t->flags);
    if (!rc)
        rc = mdb_cursor_open(txn, dbi, &c);
    if (rc)
        return rc;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
        if (!add(t, &k, &v)) {
            mdb_cursor_close(c);
            return ENOMEM;
        }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

struct ht_lmdb_pairs *ht_lmdb_pairs_read(const char *dir, char *err,
                                         size_t errn)
{
    struct ht_lmdb_pairs *p = calloc(1, sizeof(*p));
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi main;
    MDB_cursor *c = NULL;
    MDB_val k, v;
    int rc;

    if (!p) {
        snprintf(err, errn, "out of memory");
        return NULL;
    }
    rc = mdb_env_create(&env);
    if (!rc)
        rc = mdb_env_set_maxdbs(env, 64);
    if (!rc)
        rc = mdb_env_open(env, dir, MDB_RDONLY | MDB_NOLOCK, 0644);
    if (!rc)
        rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    if (!rc)
        rc = mdb_dbi_open(txn, NULL, 0, &main);
    if (!rc)
        rc = mdb_cursor_open(txn, main, &c);
    /* the main database's keys name the others */
    for (rc = rc ? rc : mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        struct table *t = realloc(p->t, (p->n + 1) * sizeof(*t));

        if (!t) {
            rc = ENOMEM;
            break;
        }
        p->t = t;
        memset(&t[p->n], 0, sizeof(*t));
        t[p->n].name = strndup(k.mv_data, k.mv_size);
        if (!t[p->n].name) {
            rc = ENOMEM;
            break;
        }
        p->n++;
    }
    if (c)
        mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND)
        rc = 0;
    for (size_t i = 0; i < p->n && !rc; i++) {
        rc = read_table(txn, &p->t[i]);
        p->pairs += p->t[i].n;
        p->bytes += p->t[i].len - 8 * p->t[i].n;
    }
    if (txn)
        mdb_txn_abort(txn);
    mdb_env_close(env);
    if (rc) {
        snprintf(err, errn, "reading %s: %s", dir, mdb_strerror(rc));
        ht_lmdb_pairs_free(p);
        return NULL;
    }
    return p;
}

int ht_lmdb_pairs_append(const struct ht_lmdb_pairs *p, const char *dir,
                         char *err, size_t errn)
{
    MDB_env *env = NULL;
    size_t map = 1 << 20;
    int rc;

    for (size_t i = 0; i < p->n; i++)
        map += p->t[i].len * 3; /* pages half full at worst, plus branches */
    mkdir(dir, 0755);
    rc = mdb_env_create(&env);
    if (!rc)
        rc = mdb_env_set_mapsize(env, map);
    if (!rc)
        rc = mdb_env_set_maxdbs(env, 64);
    if (!rc)
        rc = mdb_env_open(env, dir, MDB_WRITEMAP | MDB_NOSYNC | MDB_NORDAHEAD,
                          0644);
    for (size_t i = 0; i < p->n && !rc; i++) {
        const struct table *t = &p->t[i];
        bool dup = t->flags & MDB_DUPSORT;
        MDB_txn *txn;
        MDB_dbi dbi;
        MDB_cursor *c;

        rc = mdb_txn_begin(env, NULL, 0, &txn);
        if (rc)
            break;
        rc = mdb_dbi_open(txn, t->name, MDB_CREATE | t->flags, &dbi);
        if (!rc)
            rc = mdb_cursor_open(txn, dbi, &c);
        for (size_t off = 0; !rc && off < t->len;) {
            uint32_t kn, vn;
            MDB_val k, v;

            memcpy(&kn, t->buf + off, 4);
            k = (MDB_val){kn, t->buf + off + 4};
            memcpy(&vn, t->buf + off + 4 + kn, 4);
            v = (MDB_val){vn, t->buf + off + 8 + kn};
            off += 8 + (size_t)kn + vn;
            rc = mdb_cursor_put(c, &k, &v, dup ? MDB_APPENDDUP : MDB_APPEND);
        }
        if (!rc)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    mdb_env_close(env);
    if (rc) {
        snprintf(err, errn, "loading %s: %s", dir, mdb_strerror(rc));
        return -1;
    }
    return 0;
}

void ht_lmdb_pairs_size(const struct ht_lmdb_pairs *p, uint64_t *pairs,
                        uint64_t *bytes)
{
    *pairs = p->pairs;
    *bytes = p->bytes;
}

void ht_lmdb_pairs_free(struct ht_lmdb_pairs *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++) {
        free(p->t[i].name);
        free(p->t[i].buf);
    }
    free(p->t);
    free(p);
}
