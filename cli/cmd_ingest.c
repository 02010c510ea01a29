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
#include "sink.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

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
    "  --batch N    documents per write transaction (default 2048)\n"
    "  --quiet      no summary line\n"
    "  --durable    flush every commit to disk (default: commits are\n"
    "               flushed at most a second apart and at exit; a killed\n"
    "               process loses nothing either way, an OS crash can)\n"
    "  --db DIR     the store (also a global option)\n"
    "\n"
    "Rejected payloads are counted by reason and kept in the dead-letter\n"
    "table: see `hoptrace stats` and `hoptrace dlq`.\n"
    "\n"
    "  --kinesis STREAM [--endpoint URL] [--region R] [--until-idle S]\n"
    "               read a Kinesis Data Stream instead of files (all its\n"
    "               options: hoptrace ingest --kinesis X --help)\n"
    "  --kafka BROKERS --topic T[,T...] [--group G] [--until-idle S]\n"
    "        [-X key=value ...] [--dlq-topic T]\n"
    "               consume Kafka topics in a consumer group, offsets\n"
    "               stored with the data (hoptrace ingest --kafka --help)\n"
    "  --udp [HOST:PORT] [--forward HOST:PORT] [--until-idle S]\n"
    "               listen for X-Ray daemon datagrams, default\n"
    "               127.0.0.1:2000 (hoptrace ingest --udp --help)\n"
    "\n"
    "stdin (-) is streamed: it is committed whenever the input pauses, so\n"
    "`tail -f FILE | hoptrace ingest -` works.\n";

struct ing {
    struct ht_sink sink;
    uint64_t files, skipped_files;
    bool progress;
    int64_t last_progress;
    int io_failures; /* paths that could not be read (reported) */
    char **paths;    /* the files to read, in order (folders expanded) */
    size_t npaths, cappaths;
    bool want_stdin;
};

struct ckpt {
    uint64_t dev, ino, size;
    int64_t mtime;
    uint64_t offset;
    uint8_t done;
};

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
                (unsigned long long)(g->sink.tot.documents +
                                     g->sink.batch->documents));
    else
        fprintf(stderr, "\r\033[Kingesting %s: %.1f MB, %llu documents", path,
                (double)pos / 1e6,
                (unsigned long long)(g->sink.tot.documents +
                                     g->sink.batch->documents));
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

/* ---- files: several read side by side --------------------------------
 * Files are read a few at a time, round-robin, a slice of values from each
 * in turn, so a batch mixes them: X-Ray segments cost the writer most and
 * log files the decoder most, and mixed batches keep both threads busy
 * (design.md, "How hoptrace writes"). Every flush carries the checkpoint
 * of every open file, so a restart resumes each where its batch ended.
 */
#define LANES 4
#define SLICE 256 /* values taken from one file before the next */

struct lane {
    char *path; /* borrowed from ing.paths */
    char ckey[PATH_MAX + 16];
    struct ckpt ck;
    struct ht_reader *r;
    struct ht_srcpos pos;
    uint64_t plain_size; /* for progress: the size when not gzip'd */
    bool open, ended;    /* ended: read to the end (or failed) */
};

/* Opens the next file into lane l; false when it was skipped or could not
 * be opened (reported). */
static bool lane_open(struct ing *g, struct lane *l, char *path)
{
    struct stat st;
    char *real;
    struct ckpt old;
    size_t vn = 0;

    memset(l, 0, sizeof(*l));
    l->path = path;
    l->pos.source = path;
    if (stat(path, &st) != 0) {
        ht_cli_err("cannot read %s: %s", path, strerror(errno));
        g->io_failures++;
        return false;
    }
    real = realpath(path, NULL);
    make_ckey(l->ckey, sizeof(l->ckey), real ? real : path);
    free(real);
    l->ck.dev = (uint64_t)st.st_dev;
    l->ck.ino = (uint64_t)st.st_ino;
    l->ck.size = (uint64_t)st.st_size;
    l->ck.mtime = (int64_t)st.st_mtime;
    if (ht_sink_get_ckpt(&g->sink, l->ckey, &old, sizeof(old), &vn) ==
            HT_ERR_OK &&
        vn == sizeof(old) && old.dev == l->ck.dev && old.ino == l->ck.ino &&
        old.size == l->ck.size && old.mtime == l->ck.mtime) {
        l->ck.offset = old.offset;
        l->ck.done = old.done;
    }
    if (l->ck.done) {
        HT_LOG_INFO("ingest:file", "%s: already ingested, skipped", path);
        g->skipped_files++;
        return false;
    }
    if (ht_reader_open(path, &l->r) != HT_ERR_OK) {
        g->io_failures++;
        return false;
    }
    if (l->ck.offset) {
        HT_LOG_INFO("ingest:file", "%s: resuming at offset %llu", path,
                    (unsigned long long)l->ck.offset);
        if (ht_reader_skip_to(l->r, l->ck.offset) != HT_ERR_OK) {
            ht_cli_err("%s: cannot resume at offset %llu; it will be read "
                       "again from the start (idempotent)",
                       path, (unsigned long long)l->ck.offset);
            ht_reader_close(l->r);
            if (ht_reader_open(path, &l->r) != HT_ERR_OK) {
                l->r = NULL;
                g->io_failures++;
                return false;
            }
        }
    }
    g->files++;
    {
        /* a percentage only where the stream offset is a file offset */
        FILE *f = fopen(path, "rb");
        unsigned char magic[2] = {0, 0};

        if (f && fread(magic, 1, 2, f) == 2 &&
            !(magic[0] == 0x1f && magic[1] == 0x8b))
            l->plain_size = l->ck.size;
        if (f)
            fclose(f);
    }
    l->open = true;
    return true;
}

/* Flushes the batch with the checkpoints of every open lane; lanes that
 * ended are then closed. */
static int flush_lanes(struct ing *g, struct lane *lanes, int n)
{
    struct ht_sink_ckpt e[LANES];
    int ne = 0, rc;

    for (int i = 0; i < n; i++) {
        struct lane *l = &lanes[i];

        if (!l->open)
            continue;
        l->ck.offset = ht_reader_pos(l->r);
        e[ne].key = l->ckey;
        e[ne].klen = strlen(l->ckey);
        e[ne].val = &l->ck;
        e[ne].vlen = sizeof(l->ck);
        ne++;
    }
    rc = ht_sink_flush(&g->sink, e, (size_t)ne);
    for (int i = 0; i < n; i++)
        if (lanes[i].open && lanes[i].ended) {
            ht_reader_close(lanes[i].r);
            lanes[i].open = false;
        }
    return rc;
}

static void progress_lanes(struct ing *g, struct lane *lanes, int n)
{
    uint64_t pos = 0, size = 0;
    const char *name = NULL;
    int64_t now;

    if (!g->progress)
        return;
    now = ht_now_mono_us();
    if (now - g->last_progress < 250000)
        return;
    g->last_progress = now;
    for (int i = 0; i < n; i++)
        if (lanes[i].open) {
            uint64_t p = ht_reader_pos(lanes[i].r);

            name = name ? name : lanes[i].path;
            pos += p;
            size += lanes[i].plain_size ? lanes[i].plain_size : p;
        }
    if (name)
        progress(g, name, pos, size);
}

/* Reads up to SLICE values of lane l into the batch. Returns 1 while the
 * file has more, 0 at its end, or an error (the lane has then ended). */
static int lane_slice(struct ing *g, struct lane *l)
{
    for (int k = 0; k < SLICE; k++) {
        const char *val;
        size_t n;
        bool too_large;
        int more = ht_reader_next(l->r, &val, &n, &l->pos.offset, &too_large);

        if (more <= 0) {
            l->ended = true;
            l->ck.done = more == 0; /* after an I/O error: resume there */
            return more < 0 ? HT_ERR_IO : 0;
        }
        if (too_large)
            ht_batch_reject(g->sink.batch, HT_REJ_TOO_LARGE, &l->pos,
                            "value larger than 16 MiB", val, n);
        else if (!ht_ingest_value(g->sink.batch, &l->pos, val, n,
                                  ht_reader_depth(l->r)))
            ht_reader_rescan(l->r); /* not one NDJSON value: scan it */
        if (ht_sink_full(&g->sink))
            return 1;
    }
    return 1;
}

static int ingest_files(struct ing *g)
{
    struct lane lanes[LANES];
    size_t next = 0;
    int rc = HT_ERR_OK;

    memset(lanes, 0, sizeof(lanes));
    for (;;) {
        bool any = false, flushed = false;

        /* fill empty lanes with the next files */
        for (int i = 0; i < LANES; i++)
            while (!lanes[i].open && next < g->npaths)
                lane_open(g, &lanes[i], g->paths[next++]);
        for (int i = 0; i < LANES && !rc; i++) {
            struct lane *l = &lanes[i];
            int src;

            if (!l->open || l->ended)
                continue;
            any = true;
            src = lane_slice(g, l);
            if (src == HT_ERR_IO) {
                g->io_failures++; /* reported by the reader; go on */
                src = 0;
            }
            if (src < 0)
                rc = src;
            if (ht_sink_full(&g->sink)) {
                rc = flush_lanes(g, lanes, LANES);
                flushed = true;
            }
            progress_lanes(g, lanes, LANES);
        }
        if (rc)
            break;
        /* a lane that ended waits for the next flush to record it; flush
         * now when nothing else is left to read, so it can be refilled */
        if (!flushed) {
            bool ended = false;

            for (int i = 0; i < LANES; i++)
                ended |= lanes[i].open && lanes[i].ended;
            if (ended || !any) {
                rc = flush_lanes(g, lanes, LANES);
                if (rc)
                    break;
            }
        }
        if (!any && next >= g->npaths)
            break;
    }
    for (int i = 0; i < LANES; i++)
        if (lanes[i].open)
            ht_reader_close(lanes[i].r);
    return rc;
}

/* ---- stdin: streaming ------------------------------------------------
 * `tail -f app.log | hoptrace ingest -` must commit as it goes, but the
 * file reader blocks until its buffer is full. So stdin is read with
 * poll() + read(), inflated when it starts as gzip, cut into top-level
 * JSON values (or lines that are not JSON) here, and the batch is flushed
 * whenever input pauses or 200 ms have passed. Nothing is checkpointed:
 * stdin cannot be replayed. SIGINT/SIGTERM commit what was read. */

static volatile sig_atomic_t stdin_stop;

static void stdin_on_signal(int sig)
{
    (void)sig;
    stdin_stop = 1;
}

struct framer {
    struct ht_buf buf; /* decompressed bytes not yet decoded */
    size_t scan;       /* how far the current value was scanned */
    int depth;         /* bracket depth of the current value at scan */
    bool in_value, bracketed, in_str, esc;
    bool skipping; /* the current value was rejected as too large */
    uint64_t base; /* stream offset of buf.data[0] */
};

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Decodes every complete value in f->buf (at_eof: the rest too), the way
 * the file reader cuts them: a bracketed value ends where its depth
 * returns to 0, anything else is one line (a bad line is rejected whole). */
static void frame(struct ing *g, struct framer *f, bool at_eof)
{
    const char *d = f->buf.data;
    size_t n = f->buf.len, start = 0;
    struct ht_srcpos pos = {.source = "stdin"};

    for (;;) {
        size_t i;
        bool done = false;

        if (!f->in_value) {
            while (start < n && is_space(d[start]))
                start++;
            if (start >= n)
                break;
            f->in_value = true;
            f->bracketed = d[start] == '{' || d[start] == '[';
            f->scan = start;
        }
        i = f->scan;
        if (f->bracketed) {
            for (; i < n && !done; i++) {
                char c = d[i];

                if (f->in_str) {
                    if (f->esc)
                        f->esc = false;
                    else if (c == '\\')
                        f->esc = true;
                    else if (c == '"')
                        f->in_str = false;
                } else if (c == '"') {
                    f->in_str = true;
                } else if (c == '{' || c == '[') {
                    f->depth++;
                } else if ((c == '}' || c == ']') && --f->depth == 0) {
                    done = true;
                }
            }
        } else {
            const char *nl = memchr(d + i, '\n', n - i);

            done = nl != NULL;
            i = nl ? (size_t)(nl - d) : n;
        }
        if (!done && !at_eof) {
            f->scan = i;
            break;
        }
        pos.offset = f->base + start;
        if (!f->skipping)
            ht_ingest_payload(g->sink.batch, &pos, d + start, i - start);
        f->in_value = f->skipping = f->in_str = f->esc = false;
        f->depth = 0;
        start = i;
    }
    if (f->in_value && n - start > HT_MAX_CONTAINER_BYTES) {
        /* an endless value: reject it once, then only look for its end */
        if (!f->skipping) {
            pos.offset = f->base + start;
            ht_batch_reject(g->sink.batch, HT_REJ_TOO_LARGE, &pos,
                            "value larger than 16 MiB", d + start,
                            HT_MAX_DLQ_SAMPLE);
        }
        f->skipping = true;
        f->base += n;
        f->scan = 0;
        f->buf.len = 0;
        return;
    }
    if (start) {
        memmove(f->buf.data, d + start, n - start);
        f->buf.len = n - start;
        if (f->in_value)
            f->scan -= start;
        f->base += start;
    }
}

static int ingest_stdin(struct ing *g)
{
    struct framer f;
    z_stream z;
    bool gz = false, sniffed = false, eof = false;
    unsigned char raw[64 * 1024];
    int64_t last_flush = ht_now_mono_us();
    struct sigaction sa, old_int, old_term;
    int rc = HT_ERR_OK;

    memset(&f, 0, sizeof(f));
    memset(&z, 0, sizeof(z));
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = stdin_on_signal;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    g->files++;
    while (!eof && !stdin_stop && rc == HT_ERR_OK) {
        struct pollfd pfd = {.fd = 0, .events = POLLIN};
        int pr = poll(&pfd, 1, 200);
        ssize_t got = 0;

        if (pr < 0 && errno != EINTR) {
            ht_cli_err("stdin: %s", strerror(errno));
            rc = HT_ERR_IO;
            break;
        }
        if (pr > 0) {
            got = read(0, raw, sizeof(raw));
            if (got < 0 && errno != EINTR && errno != EAGAIN) {
                ht_cli_err("reading stdin: %s", strerror(errno));
                rc = HT_ERR_IO;
                break;
            }
            if (got == 0)
                eof = true;
        }
        if (got > 0 && !sniffed) {
            sniffed = true;
            gz = got >= 2 && raw[0] == 0x1f && raw[1] == 0x8b;
            if (gz && inflateInit2(&z, 15 + 32) != Z_OK) {
                rc = HT_ERR_NOMEM;
                break;
            }
        }
        if (got > 0 && !gz) {
            ht_buf_add(&f.buf, raw, (size_t)got);
        } else if (got > 0) {
            z.next_in = raw;
            z.avail_in = (uInt)got;
            while (z.avail_in) {
                unsigned char out[64 * 1024];
                int zr;

                z.next_out = out;
                z.avail_out = sizeof(out);
                zr = inflate(&z, Z_NO_FLUSH);
                ht_buf_add(&f.buf, out, sizeof(out) - z.avail_out);
                if (zr == Z_STREAM_END) {
                    inflateReset(&z); /* concatenated gzip members */
                } else if (zr != Z_OK && zr != Z_BUF_ERROR) {
                    ht_cli_err("stdin: bad gzip data (%s); what came "
                               "before it is ingested",
                               z.msg ? z.msg : "inflate error");
                    rc = HT_ERR_IO;
                    break;
                } else if (zr == Z_BUF_ERROR && z.avail_out) {
                    break;
                }
            }
        }
        if (got > 0)
            frame(g, &f, false);
        progress(g, "stdin", f.base + f.buf.len, 0);
        /* commit when the input pauses, and at least every 200 ms */
        if (ht_sink_full(&g->sink) ||
            ((pr == 0 || ht_now_mono_us() - last_flush > 200000) &&
             (g->sink.batch->documents || g->sink.batch->nrejects ||
              g->sink.batch->nspans || g->sink.batch->nfacts))) {
            int frc = ht_sink_flush(&g->sink, NULL, 0);

            if (frc)
                rc = frc;
            last_flush = ht_now_mono_us();
        }
    }
    frame(g, &f, true);
    {
        int frc = ht_sink_flush(&g->sink, NULL, 0);

        if (!rc)
            rc = frc;
    }
    if (gz)
        inflateEnd(&z);
    ht_buf_free(&f.buf);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
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

    if (strcmp(path, "-") == 0) {
        g->want_stdin = true;
        return HT_ERR_OK;
    }
    if (stat(path, &st) != 0) {
        ht_cli_err("cannot read %s: %s (check the path)", path,
                   strerror(errno));
        return HT_ERR_IO;
    }
    if (!S_ISDIR(st.st_mode)) {
        if (g->npaths == g->cappaths) {
            g->cappaths = g->cappaths ? g->cappaths * 2 : 16;
            g->paths = realloc(g->paths, g->cappaths * sizeof(*g->paths));
            HT_ASSERT(g->paths);
        }
        g->paths[g->npaths] = strdup(path);
        HT_ASSERT(g->paths[g->npaths]);
        g->npaths++;
        return HT_ERR_OK;
    }
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
    struct ht_ingest_opts o = HT_INGEST_OPTS_INIT;
    int rc = HT_ERR_OK, i, npaths = 0;
    uint64_t rejected = 0;

    memset(&g, 0, sizeof(g));
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--kafka") == 0)
            return ht_cmd_ingest_kafka(cli, argc, argv);
        if (strcmp(argv[i], "--kinesis") == 0)
            return ht_cmd_ingest_kinesis(cli, argc, argv);
        if (strcmp(argv[i], "--udp") == 0)
            return ht_cmd_ingest_udp(cli, argc, argv);
    }
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];

        int taken = ht_ingest_opt(cli, argc, argv, &i, &o);

        if (taken < 0)
            return HT_EXIT_USAGE;
        if (taken > 0)
            continue;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return HT_EXIT_OK;
        } else if (strcmp(a, "-") == 0 || a[0] != '-') {
            npaths++;
        } else {
            ht_cli_err("ingest: unknown option %s (see hoptrace ingest "
                       "--help)",
                       a);
            return HT_EXIT_USAGE;
        }
    }
    if (o.until_idle > 0) {
        ht_cli_err("ingest: --until-idle is for --kafka, --kinesis and --udp; "
                   "files and stdin end by themselves");
        return HT_EXIT_USAGE;
    }
    if (!npaths) {
        ht_cli_err("ingest: give at least one file, folder or - for stdin "
                   "(see hoptrace ingest --help)");
        return HT_EXIT_USAGE;
    }
    rc = ht_sink_open(&g.sink, cli->db);
    if (rc) {
        ht_cli_err("cannot open the store at %s: %s", cli->db, ht_strerror(rc));
        return HT_EXIT_ERROR;
    }
    if (ht_ingest_opts_apply(&g.sink, &o) != HT_ERR_OK) {
        ht_sink_close(&g.sink);
        return HT_EXIT_ERROR;
    }
    g.progress = isatty(2) && !o.quiet;
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
    if (rc == HT_ERR_OK)
        rc = ingest_files(&g);
    if (rc == HT_ERR_OK && g.want_stdin)
        rc = ingest_stdin(&g);
    for (size_t k = 0; k < g.npaths; k++)
        free(g.paths[k]);
    free(g.paths);
    if (g.progress)
        fputs("\r\033[K", stderr);
    {
        int src = ht_sink_sync(&g.sink);

        if (!rc)
            rc = src;
    }
    rejected = ht_sink_rejected(&g.sink);
    if (!o.quiet) {
        char from[96];

        snprintf(from, sizeof(from), "%llu files", (unsigned long long)g.files);
        if (g.skipped_files)
            snprintf(from + strlen(from), sizeof(from) - strlen(from),
                     " (%llu already ingested, skipped)",
                     (unsigned long long)g.skipped_files);
        ht_sink_summary(&g.sink, stderr, from);
        fputc('\n', stderr);
    }
    {
        int crc = ht_sink_close(&g.sink);

        if (!rc)
            rc = crc;
    }
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
    if (o.strict && rejected)
        return HT_EXIT_REJECTED;
    return HT_EXIT_OK;
}
