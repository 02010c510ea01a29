/*
 * cmd_ingest.c - `hoptrace ingest`: files, folders (recursed) and stdin
 * into the store. Values are decoded into a batch; every few thousand
 * documents the batch is written in ONE LMDB transaction together with the
 * file's checkpoint, so a crash loses nothing that was committed and a
 * restart resumes after it (re-reading is idempotent anyway).
 */
#define _GNU_SOURCE
#include "cli.h"
#include "ht_assembler.h"
#include "ht_ingest.h"
#include "ht_store.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
    "usage: hoptrace [--db DIR] ingest [--strict] [--batch N] [--quiet] "
    "PATH|- ...\n"
    "\n"
    "Reads X-Ray segment documents and Lambda / API Gateway logs from\n"
    "files (.json, .ndjson, .jsonl, any of them gzip'd), folders (recursed)\n"
    "or stdin (-). Document kinds are sniffed: X-Ray segments and daemon\n"
    "datagrams, PutTraceSegments bodies, BatchGetTraces responses,\n"
    "CloudWatch Logs subscription messages, awslogs events,\n"
    "filter-log-events output, Kinesis GetRecords responses and Lambda\n"
    "Kinesis events. Ingesting the same input twice changes nothing.\n"
    "\n"
    "  --strict     exit 3 when anything was rejected (the good part is\n"
    "               still committed)\n"
    "  --batch N    documents per write transaction (default 4096)\n"
    "  --quiet      no summary line\n"
    "  --db DIR     the store (also a global option)\n"
    "\n"
    "Rejected payloads are counted by reason and kept in the dead-letter\n"
    "table: see `hoptrace stats` and `hoptrace dlq`.\n";

struct totals {
    uint64_t files, skipped_files;
    uint64_t documents, spans, log_events, dropped, bytes;
    uint64_t rejected[HT_REJ__COUNT];
    struct ht_asm_stats as;
};

struct ing {
    struct ht_store *store;
    struct ht_batch batch;
    struct totals tot;
    size_t batch_docs;
    bool progress;
    int64_t last_progress;
    int io_failures; /* paths that could not be read (reported) */
};

struct ckpt {
    uint64_t dev, ino, size;
    int64_t mtime;
    uint64_t offset;
    uint8_t done;
};

static int flush(struct ing *g, const char *ckey, const struct ckpt *ck)
{
    struct ht_batch *b = &g->batch;
    int rc;

    for (int attempt = 0; attempt < 20; attempt++) {
        struct ht_txn *t;
        struct ht_asm_stats st = {0};

        rc = ht_store_begin(g->store, true, &t);
        if (rc)
            return rc;
        rc = ht_assembler_apply(t, b, &st);
        if (!rc && ckey)
            rc = ht_store_put(t, HT_DB_CHECKPOINTS, ckey, strlen(ckey), ck,
                              sizeof(*ck));
        if (rc) {
            ht_store_abort(t);
        } else {
            rc = ht_store_commit(t);
            if (!rc) {
                g->tot.as.spans_written += st.spans_written;
                g->tot.as.facts_written += st.facts_written;
                g->tot.as.hops_matched += st.hops_matched;
            }
        }
        if (rc != HT_ERR_MAPFULL)
            break;
        rc = ht_store_grow(g->store);
        if (rc)
            return rc;
    }
    if (rc)
        return rc;
    g->tot.documents += b->documents;
    g->tot.spans += b->nspans;
    g->tot.log_events += b->log_events;
    g->tot.dropped += b->dropped;
    g->tot.bytes += b->payload_bytes;
    for (int i = 0; i < HT_REJ__COUNT; i++)
        g->tot.rejected[i] += b->rejected[i];
    ht_batch_reset(b);
    return HT_ERR_OK;
}

static bool batch_full(struct ing *g)
{
    struct ht_batch *b = &g->batch;

    return b->nspans + b->nfacts + b->nrejects >= g->batch_docs ||
           ht_arena_used(b->arena) > (48u << 20);
}

static void progress(struct ing *g, const char *path, uint64_t pos,
                     uint64_t size)
{
    int64_t now;

    if (!g->progress)
        return;
    now = ht_now_mono_us();
    if (now - g->last_progress < 250000)
        return;
    g->last_progress = now;
    if (size && pos <= size)
        fprintf(stderr,
                "\r\033[Kingesting %s: %.1f of %.1f MB (%d%%), "
                "%llu documents",
                path, (double)pos / 1e6, (double)size / 1e6,
                (int)(pos * 100 / size),
                (unsigned long long)(g->tot.documents + g->batch.documents));
    else
        fprintf(stderr, "\r\033[Kingesting %s: %.1f MB, %llu documents", path,
                (double)pos / 1e6,
                (unsigned long long)(g->tot.documents + g->batch.documents));
    fflush(stderr);
}

/* The checkpoint key of a file: its absolute path, shortened with a hash
 * when it would not fit an LMDB key. */
static void make_ckey(char *out, size_t n, const char *path)
{
    size_t len = strlen(path);

    if (len <= 400)
        snprintf(out, n, "file:%s", path);
    else
        snprintf(out, n, "file:#%016llx:%s",
                 (unsigned long long)ht_hash64(path, len), path + len - 200);
}

static int ingest_file(struct ing *g, const char *path)
{
    struct ht_reader *r;
    struct ckpt ck = {0};
    char ckey[PATH_MAX + 16];
    char *real = NULL;
    bool is_stdin = strcmp(path, "-") == 0;
    struct ht_srcpos pos = {.source = is_stdin ? "stdin" : path};
    int64_t last_flush = ht_now_mono_us();
    int rc;

    if (!is_stdin) {
        struct stat st;
        struct ht_txn *t;
        const void *v;
        size_t vn;

        if (stat(path, &st) != 0) {
            ht_cli_err("cannot read %s: %s", path, strerror(errno));
            return HT_ERR_IO;
        }
        real = realpath(path, NULL);
        make_ckey(ckey, sizeof(ckey), real ? real : path);
        ck.dev = (uint64_t)st.st_dev;
        ck.ino = (uint64_t)st.st_ino;
        ck.size = (uint64_t)st.st_size;
        ck.mtime = (int64_t)st.st_mtime;
        if (ht_store_begin(g->store, false, &t) == HT_ERR_OK) {
            if (ht_store_get(t, HT_DB_CHECKPOINTS, ckey, strlen(ckey), &v,
                             &vn) == HT_ERR_OK &&
                vn == sizeof(ck)) {
                struct ckpt old;

                memcpy(&old, v, sizeof(old));
                if (old.dev == ck.dev && old.ino == ck.ino &&
                    old.size == ck.size && old.mtime == ck.mtime) {
                    ck.offset = old.offset;
                    ck.done = old.done;
                }
            }
            ht_store_abort(t);
        }
        if (ck.done) {
            HT_LOG_INFO("ingest:file", "%s: already ingested, skipped", path);
            g->tot.skipped_files++;
            free(real);
            return HT_ERR_OK;
        }
    }
    rc = ht_reader_open(path, &r);
    if (rc) {
        free(real);
        return rc;
    }
    if (ck.offset) {
        HT_LOG_INFO("ingest:file", "%s: resuming at offset %llu", path,
                    (unsigned long long)ck.offset);
        if (ht_reader_skip_to(r, ck.offset) != HT_ERR_OK) {
            ht_cli_err("%s: cannot resume at offset %llu; it will be read "
                       "again from the start (idempotent)",
                       path, (unsigned long long)ck.offset);
            ht_reader_close(r);
            rc = ht_reader_open(path, &r);
            if (rc) {
                free(real);
                return rc;
            }
        }
    }
    g->tot.files++;
    /* a percentage only where the stream offset is a file offset */
    uint64_t plain_size = 0;
    if (!is_stdin) {
        FILE *f = fopen(path, "rb");
        unsigned char magic[2] = {0, 0};

        if (f && fread(magic, 1, 2, f) == 2 &&
            !(magic[0] == 0x1f && magic[1] == 0x8b))
            plain_size = ck.size;
        if (f)
            fclose(f);
    }
    for (;;) {
        const char *val;
        size_t n;
        bool too_large;
        int more = ht_reader_next(r, &val, &n, &pos.offset, &too_large);

        if (more <= 0) {
            if (more < 0)
                rc = HT_ERR_IO;
            break;
        }
        if (too_large)
            ht_batch_reject(&g->batch, HT_REJ_TOO_LARGE, &pos,
                            "value larger than 16 MiB", val, n);
        else
            ht_ingest_value(&g->batch, &pos, val, n, ht_reader_depth(r));
        if (batch_full(g) ||
            (is_stdin && ht_now_mono_us() - last_flush > 1000000)) {
            ck.offset = ht_reader_pos(r);
            rc = flush(g, is_stdin ? NULL : ckey, &ck);
            if (rc)
                break;
            last_flush = ht_now_mono_us();
        }
        progress(g, path, ht_reader_pos(r), plain_size);
    }
    if (rc == HT_ERR_OK || rc == HT_ERR_IO) {
        int frc;

        ck.offset = ht_reader_pos(r);
        ck.done = rc == HT_ERR_OK;
        frc = flush(g, is_stdin ? NULL : ckey, &ck);
        if (frc)
            rc = frc;
    }
    ht_reader_close(r);
    free(real);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int ingest_path(struct ing *g, const char *path, int depth)
{
    struct stat st;
    DIR *d;
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = HT_ERR_OK;

    if (strcmp(path, "-") == 0)
        return ingest_file(g, path);
    if (stat(path, &st) != 0) {
        ht_cli_err("cannot read %s: %s (check the path)", path,
                   strerror(errno));
        return HT_ERR_IO;
    }
    if (!S_ISDIR(st.st_mode))
        return ingest_file(g, path);
    if (depth > 32)
        return HT_ERR_OK;
    d = opendir(path);
    if (!d) {
        ht_cli_err("cannot list %s: %s", path, strerror(errno));
        return HT_ERR_IO;
    }
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "data.mdb") == 0 ||
            strcmp(e->d_name, "lock.mdb") == 0)
            continue; /* hidden files and LMDB stores (our own, say) */
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            names = realloc(names, cap * sizeof(*names));
            HT_ASSERT(names);
        }
        if (asprintf(&names[n], "%s/%s", path, e->d_name) < 0)
            abort();
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (!rc)
            rc = ingest_path(g, names[i], depth + 1);
        if (rc == HT_ERR_IO) {
            g->io_failures++; /* reported; go on with the rest */
            rc = HT_ERR_OK;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int ht_cmd_ingest(struct ht_cli *cli, int argc, char **argv)
{
    struct ing g;
    bool strict = false, quiet = false;
    int rc = HT_ERR_OK, i, npaths = 0;
    uint64_t rejected = 0;
    struct ht_txn *t;
    int64_t pending = 0;

    memset(&g, 0, sizeof(g));
    g.batch_docs = 4096;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return HT_EXIT_OK;
        } else if (strcmp(a, "--strict") == 0) {
            strict = true;
        } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            quiet = true;
        } else if (strcmp(a, "--db") == 0 && i + 1 < argc) {
            cli->db = argv[++i];
        } else if (strcmp(a, "--batch") == 0 && i + 1 < argc) {
            long v = strtol(argv[++i], NULL, 10);

            if (v < 1 || v > 1000000) {
                ht_cli_err("--batch takes 1 to 1000000");
                return HT_EXIT_USAGE;
            }
            g.batch_docs = (size_t)v;
        } else if (strcmp(a, "--kafka") == 0 || strcmp(a, "--kinesis") == 0 ||
                   strcmp(a, "--udp") == 0) {
            ht_cli_err("ingest %s is not available in this version yet; "
                       "ingest files or stdin (see README, Roadmap)",
                       a);
            return HT_EXIT_USAGE;
        } else if (strcmp(a, "-") == 0 || a[0] != '-') {
            npaths++;
        } else {
            ht_cli_err("ingest: unknown option %s (see hoptrace ingest "
                       "--help)",
                       a);
            return HT_EXIT_USAGE;
        }
    }
    if (!npaths) {
        ht_cli_err("ingest: give at least one file, folder or - for stdin "
                   "(see hoptrace ingest --help)");
        return HT_EXIT_USAGE;
    }
    rc = ht_store_open(cli->db, false, &g.store);
    if (rc) {
        ht_cli_err("cannot open the store at %s: %s", cli->db, ht_strerror(rc));
        return HT_EXIT_ERROR;
    }
    if (ht_batch_init(&g.batch)) {
        ht_store_close(g.store);
        return HT_EXIT_ERROR;
    }
    g.progress = isatty(2) && !quiet;
    for (i = 1; i < argc && rc == HT_ERR_OK; i++) {
        const char *a = argv[i];

        if (strcmp(a, "--db") == 0 || strcmp(a, "--batch") == 0) {
            i++;
            continue;
        }
        if (a[0] == '-' && a[1])
            continue;
        rc = ingest_path(&g, a, 0);
        if (rc == HT_ERR_IO) {
            g.io_failures++;
            rc = HT_ERR_OK; /* reported; go on with the other paths */
        }
    }
    if (g.progress)
        fputs("\r\033[K", stderr);
    if (ht_store_begin(g.store, false, &t) == HT_ERR_OK) {
        pending = ht_assembler_pending(t);
        ht_store_abort(t);
    }
    for (int r = 0; r < HT_REJ__COUNT; r++)
        rejected += g.tot.rejected[r];
    if (!quiet) {
        fprintf(stderr,
                "hoptrace: ingested %llu documents (%llu spans, %llu log "
                "events) from %llu files",
                (unsigned long long)g.tot.documents,
                (unsigned long long)g.tot.spans,
                (unsigned long long)g.tot.log_events,
                (unsigned long long)g.tot.files);
        if (g.tot.skipped_files)
            fprintf(stderr, " (%llu already ingested, skipped)",
                    (unsigned long long)g.tot.skipped_files);
        fprintf(stderr, "; rejected %llu", (unsigned long long)rejected);
        if (rejected) {
            const char *sep = " (";

            for (int r = 0; r < HT_REJ__COUNT; r++)
                if (g.tot.rejected[r]) {
                    fprintf(stderr, "%s%s %llu", sep, ht_reject_name(r),
                            (unsigned long long)g.tot.rejected[r]);
                    sep = ", ";
                }
            fputc(')', stderr);
        }
        fprintf(stderr, "; hops matched %llu, pending %lld",
                (unsigned long long)g.tot.as.hops_matched, (long long)pending);
        if (g.tot.dropped)
            fprintf(stderr, "; dropped %llu control messages",
                    (unsigned long long)g.tot.dropped);
        fputc('\n', stderr);
    }
    ht_batch_free(&g.batch);
    ht_store_close(g.store);
    if (rc) {
        ht_cli_err("ingest stopped: %s (what was committed before stays; "
                   "run the same command again to resume)",
                   ht_strerror(rc));
        return HT_EXIT_ERROR;
    }
    if (g.io_failures) {
        ht_cli_err("%d path(s) could not be read (see above); everything "
                   "else was ingested",
                   g.io_failures);
        return HT_EXIT_ERROR;
    }
    if (strict && rejected)
        return HT_EXIT_REJECTED;
    return HT_EXIT_OK;
}
