/*
 * src_file.c - the file source of the ingest engine: files and folders
 * (walked, sorted), then streams (stdin, or a FIFO named on the command
 * line).
 *
 * Files are read a few at a time, round-robin, a slice of values from each
 * in turn, so a batch mixes them: X-Ray segments cost the writer most and
 * log files the decoder most, and mixed batches keep both threads busy
 * (design.md, "How hoptrace writes"). Every commit carries the checkpoint
 * of every open file (offset, and the rejects seen so far), so a restart
 * resumes each where its batch ended and a file that had rejects is known
 * as such. A file whose gzip data ends early is not checkpointed as
 * complete.
 *
 * Streams go through the same reader as files (ingest/reader.c), in its
 * stream mode: a torn line costs that line only, and the engine commits
 * whenever the input pauses. Streams cannot be replayed, so they have no
 * checkpoint.
 *
 * The folder walk never blocks and never loops: symlinked folders already
 * on the walk (loops) or already walked, FIFOs, sockets and devices are
 * skipped with a warning.
 *
 * Owned by ingest/ (library ht_engine). It prints nothing: warnings go to
 * the log, progress to the caller's callback.
 */
#define _GNU_SOURCE
#include "ht_engine.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LANES 4
#define SLICE 256 /* values taken from one file before the next */
#define MAX_WALK_DEPTH 32

/* A file's checkpoint value. The 48-byte form without `rejects` (before
 * the reject tally) is still read. */
struct ckpt {
    uint64_t dev, ino, size;
    int64_t mtime;
    uint64_t offset;
    uint8_t done;
    uint8_t pad[7];
    uint64_t rejects; /* rejected payloads up to offset */
};
#define CKPT_V1_SIZE 48

struct lane {
    char *path; /* borrowed from files.paths */
    char ckey[PATH_MAX + 16];
    struct ckpt ck;
    struct ht_reader *r;
    struct ht_srcpos pos;
    size_t idx;       /* in files.paths */
    bool open, ended; /* ended: read to the end (or failed) */
};

struct dirid {
    uint64_t dev, ino;
};

struct files {
    struct ht_files_cfg cfg;
    struct ht_files_stats st;
    char **paths; /* regular files to read, in order (folders expanded) */
    size_t npaths, cappaths, next;
    char **streams; /* "-" or FIFOs named on the command line */
    size_t nstreams, capstreams, next_stream;
    struct dirid *dirs; /* folders walked (loops, folders reached twice) */
    size_t ndirs, capdirs;
    struct lane lanes[LANES];
    int rr; /* next lane to slice */
    /* progress over the whole run, read once when it is first shown:
     * before[i] is the size of the files before paths[i], so
     * before[npaths] is the total */
    uint64_t *before;
    /* the stream being read */
    struct ht_reader *sr;
    int sfd;
    struct ht_srcpos spos;
    bool files_done;
};

static void add_str(char ***v, size_t *n, size_t *cap, const char *s)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *v = realloc(*v, *cap * sizeof(**v));
        HT_ASSERT(*v);
    }
    (*v)[*n] = strdup(s);
    HT_ASSERT((*v)[*n]);
    (*n)++;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool dir_seen(struct files *f, const struct stat *st)
{
    for (size_t i = 0; i < f->ndirs; i++)
        if (f->dirs[i].dev == (uint64_t)st->st_dev &&
            f->dirs[i].ino == (uint64_t)st->st_ino)
            return true;
    if (f->ndirs == f->capdirs) {
        f->capdirs = f->capdirs ? f->capdirs * 2 : 16;
        f->dirs = realloc(f->dirs, f->capdirs * sizeof(*f->dirs));
        HT_ASSERT(f->dirs);
    }
    f->dirs[f->ndirs++] =
        (struct dirid){(uint64_t)st->st_dev, (uint64_t)st->st_ino};
    return false;
}

static const char *kind_name(mode_t m)
{
    if (S_ISFIFO(m))
        return "a FIFO";
    if (S_ISSOCK(m))
        return "a socket";
    if (S_ISCHR(m) || S_ISBLK(m))
        return "a device";
    return "not a regular file";
}

/* Adds path (depth 0: named on the command line) to the files to read. */
static void walk(struct files *f, const char *path, int depth)
{
    struct stat st;
    DIR *d;
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0;

    if (depth == 0 && strcmp(path, "-") == 0) {
        add_str(&f->streams, &f->nstreams, &f->capstreams, path);
        return;
    }
    if (stat(path, &st) != 0) {
        if (errno == ELOOP) {
            HT_LOG_WARN("ingest:file", "%s: a symlink loop, skipped", path);
            f->st.special++;
            if (depth == 0)
                f->st.unreadable++;
            return;
        }
        if (depth == 0) {
            HT_LOG_ERROR("ingest:file", "cannot read %s: %s (check the path)",
                         path, strerror(errno));
            f->st.unreadable++;
        } else {
            /* a dangling symlink in a folder */
            HT_LOG_WARN("ingest:file", "cannot read %s: %s, skipped", path,
                        strerror(errno));
            f->st.special++;
        }
        return;
    }
    if (S_ISREG(st.st_mode)) {
        add_str(&f->paths, &f->npaths, &f->cappaths, path);
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        if (depth == 0 && S_ISFIFO(st.st_mode)) {
            /* named on purpose (`ingest <(zcat x.gz)`): read as a stream */
            add_str(&f->streams, &f->nstreams, &f->capstreams, path);
            return;
        }
        HT_LOG_WARN("ingest:file", "%s is %s, skipped", path,
                    kind_name(st.st_mode));
        f->st.special++;
        if (depth == 0)
            f->st.unreadable++;
        return;
    }
    if (dir_seen(f, &st)) {
        HT_LOG_WARN("ingest:file",
                    "%s: a folder already walked (a symlink loop or a "
                    "second link to it), skipped",
                    path);
        f->st.special++;
        return;
    }
    if (depth > MAX_WALK_DEPTH) {
        HT_LOG_WARN("ingest:file", "%s: more than %d folders deep, skipped",
                    path, MAX_WALK_DEPTH);
        f->st.special++;
        return;
    }
    d = opendir(path);
    if (!d) {
        HT_LOG_ERROR("ingest:file", "cannot list %s: %s", path,
                     strerror(errno));
        f->st.unreadable++;
        return;
    }
    while ((e = readdir(d))) {
        char *full;

        if (e->d_name[0] == '.' || strcmp(e->d_name, "data.mdb") == 0 ||
            strcmp(e->d_name, "lock.mdb") == 0)
            continue; /* hidden files and LMDB stores (our own, say) */
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            names = realloc(names, cap * sizeof(*names));
            HT_ASSERT(names);
        }
        if (asprintf(&full, "%s/%s", path, e->d_name) < 0)
            abort();
        names[n++] = full;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof(*names), cmp_str);
    for (size_t i = 0; i < n; i++) {
        walk(f, names[i], depth + 1);
        free(names[i]);
    }
    free(names);
}

static int files_open(const void *cfgv, void **state)
{
    const struct ht_files_cfg *cfg = cfgv;
    struct files *f = calloc(1, sizeof(*f));

    *state = NULL;
    if (!f)
        return HT_ERR_NOMEM;
    f->cfg = *cfg;
    if (f->cfg.stream_wait_ms <= 0)
        f->cfg.stream_wait_ms = 200;
    f->sfd = -1;
    for (size_t i = 0; i < cfg->npaths; i++)
        walk(f, cfg->paths[i], 0);
    f->st.inputs = f->npaths + f->nstreams;
    *state = f;
    return HT_ERR_OK;
}

static void files_close(void *state)
{
    struct files *f = state;

    if (!f)
        return;
    for (int i = 0; i < LANES; i++)
        if (f->lanes[i].open)
            ht_reader_close(f->lanes[i].r);
    ht_reader_close(f->sr);
    if (f->sfd > 0)
        close(f->sfd);
    for (size_t i = 0; i < f->npaths; i++)
        free(f->paths[i]);
    for (size_t i = 0; i < f->nstreams; i++)
        free(f->streams[i]);
    free(f->paths);
    free(f->before);
    free(f->streams);
    free(f->dirs);
    free(f);
}

void ht_files_stats(const void *state, struct ht_files_stats *out)
{
    *out = ((const struct files *)state)->st;
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

/* Opens the next file into lane l; false when it was skipped or could not
 * be opened (reported). */
static bool lane_open(struct files *f, struct ht_engine *e, struct lane *l,
                      size_t idx)
{
    char *path = f->paths[idx];
    struct stat st;
    char *real;
    struct ckpt old;
    size_t vn = 0;

    memset(l, 0, sizeof(*l));
    l->path = path;
    l->idx = idx;
    l->pos.source = path;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        HT_LOG_ERROR("ingest:file", "cannot read %s: %s", path,
                     errno ? strerror(errno) : "not a regular file");
        f->st.unreadable++;
        return false;
    }
    real = realpath(path, NULL);
    make_ckey(l->ckey, sizeof(l->ckey), real ? real : path);
    free(real);
    l->ck.dev = (uint64_t)st.st_dev;
    l->ck.ino = (uint64_t)st.st_ino;
    l->ck.size = (uint64_t)st.st_size;
    l->ck.mtime = (int64_t)st.st_mtime;
    memset(&old, 0, sizeof(old));
    if (ht_engine_get_ckpt(e, l->ckey, &old, sizeof(old), &vn) == HT_ERR_OK &&
        (vn == sizeof(old) || vn == CKPT_V1_SIZE) && old.dev == l->ck.dev &&
        old.ino == l->ck.ino && old.size == l->ck.size &&
        old.mtime == l->ck.mtime) {
        l->ck.offset = old.offset;
        l->ck.done = old.done;
        l->ck.rejects = vn == sizeof(old) ? old.rejects : 0;
    }
    if (l->ck.done) {
        f->st.skipped++;
        if (l->ck.rejects) {
            HT_LOG_WARN("ingest:file",
                        "%s: already ingested, skipped; it had %llu "
                        "rejected payloads then (see hoptrace dlq)",
                        path, (unsigned long long)l->ck.rejects);
            f->st.skipped_rejected++;
            f->st.skipped_rejects += l->ck.rejects;
        } else {
            HT_LOG_INFO("ingest:file", "%s: already ingested, skipped", path);
        }
        return false;
    }
    if (ht_reader_open(path, &l->r) != HT_ERR_OK) {
        f->st.unreadable++;
        return false;
    }
    if (l->ck.offset) {
        HT_LOG_INFO("ingest:file", "%s: resuming at offset %llu", path,
                    (unsigned long long)l->ck.offset);
        if (ht_reader_skip_to(l->r, l->ck.offset) != HT_ERR_OK) {
            HT_LOG_WARN("ingest:file",
                        "%s: cannot resume at offset %llu; it will be read "
                        "again from the start (idempotent)",
                        path, (unsigned long long)l->ck.offset);
            ht_reader_close(l->r);
            l->ck.offset = 0;
            l->ck.rejects = 0;
            if (ht_reader_open(path, &l->r) != HT_ERR_OK) {
                l->r = NULL;
                f->st.unreadable++;
                return false;
            }
        }
    }
    f->st.files++;
    l->open = true;
    return true;
}

/* Reads up to SLICE values of lane l into the batch. Returns 1 while the
 * file has more, 0 at its end, or an error (the lane has then ended). */
static int lane_slice(struct files *f, struct ht_engine *e, struct lane *l)
{
    struct ht_batch *b = ht_engine_batch(e);
    int rc = 1;

    b->reject_tally = &l->ck.rejects;
    for (int k = 0; k < SLICE; k++) {
        const char *val;
        size_t n;
        bool too_large;
        int more = ht_reader_next(l->r, &val, &n, &l->pos.offset, &too_large);

        if (more <= 0 || more == HT_READ_AGAIN) {
            bool trunc = ht_reader_truncated(l->r);

            l->ended = true;
            ht_ingest_source_end(&l->pos);
            /* after an I/O error or a truncated file: not complete, the
             * next run resumes there */
            l->ck.done = more == 0 && !trunc;
            if (trunc)
                f->st.truncated++;
            rc = more < 0 ? -HT_ERR_IO : 0;
            break;
        }
        ht_ingest_read_value(b, l->r, &l->pos, val, n, too_large);
        if (ht_engine_full(e))
            break;
    }
    b->reject_tally = NULL;
    return rc;
}

/* Commits the batch with the checkpoints of every open lane; lanes that
 * ended are then closed. */
static int flush_lanes(struct files *f, struct ht_engine *e)
{
    struct ht_engine_ckpt ck[LANES];
    int nck = 0, rc;

    for (int i = 0; i < LANES; i++) {
        struct lane *l = &f->lanes[i];

        if (!l->open)
            continue;
        l->ck.offset = ht_reader_pos(l->r);
        ck[nck].key = l->ckey;
        ck[nck].klen = strlen(l->ckey);
        ck[nck].val = &l->ck;
        ck[nck].vlen = sizeof(l->ck);
        nck++;
    }
    rc = ht_engine_flush(e, ck, (size_t)nck);
    for (int i = 0; i < LANES; i++)
        if (f->lanes[i].open && f->lanes[i].ended) {
            ht_reader_close(f->lanes[i].r);
            f->lanes[i].r = NULL;
            f->lanes[i].open = false;
        }
    return rc;
}

/* The files' sizes, once, as running totals (files.before). */
static bool size_files(struct files *f)
{
    if (f->before)
        return true;
    f->before = calloc(f->npaths + 1, sizeof(*f->before));
    if (!f->before)
        return false;
    for (size_t i = 0; i < f->npaths; i++) {
        struct stat st;

        /* an unreadable file counts 0 (it is said when it is opened) */
        f->before[i + 1] =
            f->before[i] + (stat(f->paths[i], &st) == 0 && st.st_size > 0
                                ? (uint64_t)st.st_size
                                : 0);
    }
    return true;
}

/* Where the run stands: the oldest open file by name, and the bytes read
 * of all the files as they are on disk (gzip'd ones too), the files
 * before the oldest open one whole (read, skipped or unreadable). The
 * engine is told the bytes read and left. */
static void progress_lanes(struct files *f, struct ht_engine *e)
{
    struct ht_files_progress p = {0};
    size_t first = SIZE_MAX;

    if (!size_files(f))
        return;
    p.done = f->before[f->next];
    for (int i = 0; i < LANES; i++) {
        const struct lane *l = &f->lanes[i];
        uint64_t sz, at;

        if (!l->open)
            continue;
        /* an open file counts what was read of it, not its size */
        sz = f->before[l->idx + 1] - f->before[l->idx];
        at = ht_reader_input_pos(l->r);
        p.done = p.done - sz + (at < sz ? at : sz);
        p.reading++;
        if (l->idx < first) {
            first = l->idx;
            p.name = l->path;
        }
        if (l->idx + 1 > p.last)
            p.last = l->idx + 1;
    }
    p.total = f->before[f->npaths];
    ht_engine_input(e, p.done, p.total > p.done ? p.total - p.done : 0);
    if (!p.name || !f->cfg.progress)
        return;
    p.file = first + 1;
    p.files = f->npaths;
    p.documents =
        ht_engine_totals(e)->documents + ht_engine_batch(e)->documents;
    f->cfg.progress(f->cfg.progress_ctx, &p);
}

static int poll_files(struct files *f, struct ht_engine *e)
{
    bool any = false, ended = false;

    /* fill empty lanes with the next files */
    for (int i = 0; i < LANES; i++)
        while (!f->lanes[i].open && f->next < f->npaths)
            lane_open(f, e, &f->lanes[i], f->next++);
    for (int k = 0; k < LANES; k++) {
        struct lane *l = &f->lanes[f->rr];
        int src;

        f->rr = (f->rr + 1) % LANES;
        if (!l->open || l->ended)
            continue;
        any = true;
        src = lane_slice(f, e, l);
        if (src == -HT_ERR_IO)
            f->st.unreadable++; /* reported by the reader; go on */
        progress_lanes(f, e);
        if (ht_engine_full(e))
            return HT_POLL_DATA;
    }
    for (int i = 0; i < LANES; i++)
        ended |= f->lanes[i].open && f->lanes[i].ended;
    if (!any && f->next >= f->npaths && !ended) {
        f->files_done = true;
        return HT_POLL_FLUSH;
    }
    /* a lane that ended waits for a commit to record it; ask for one now
     * so it can be refilled */
    return ended || !any ? HT_POLL_FLUSH : HT_POLL_DATA;
}

static int poll_stream(struct files *f, struct ht_engine *e)
{
    struct ht_batch *b = ht_engine_batch(e);
    int got = 0;

    if (!f->sr) {
        const char *name;

        if (f->next_stream >= f->nstreams)
            return HT_POLL_END;
        name = f->streams[f->next_stream++];
        if (strcmp(name, "-") == 0) {
            f->sfd = 0;
            name = "stdin";
        } else {
            f->sfd = open(name, O_RDONLY | O_CLOEXEC);
            if (f->sfd < 0) {
                HT_LOG_ERROR("ingest:file", "cannot read %s: %s", name,
                             strerror(errno));
                f->st.unreadable++;
                f->sfd = -1;
                return HT_POLL_DATA;
            }
        }
        if (ht_reader_open_stream(f->sfd, name, f->cfg.stream_wait_ms,
                                  &f->sr) != HT_ERR_OK)
            return -HT_ERR_NOMEM;
        f->spos.source = strcmp(name, "stdin") == 0 ? "stdin" : name;
        f->st.files++;
    }
    while (got < 4096 && !ht_engine_full(e)) {
        const char *val;
        size_t n;
        bool too_large;
        int more = ht_reader_next(f->sr, &val, &n, &f->spos.offset, &too_large);

        if (more == HT_READ_AGAIN)
            return got ? HT_POLL_IDLE : HT_POLL_IDLE;
        if (more <= 0) {
            if (ht_reader_truncated(f->sr))
                f->st.truncated++;
            if (more < 0)
                f->st.unreadable++;
            ht_ingest_source_end(&f->spos);
            ht_reader_close(f->sr);
            f->sr = NULL;
            if (f->sfd > 0)
                close(f->sfd);
            f->sfd = -1;
            return HT_POLL_FLUSH;
        }
        ht_ingest_read_value(b, f->sr, &f->spos, val, n, too_large);
        got++;
    }
    if (f->cfg.progress) {
        struct ht_files_progress p = {
            .name = f->spos.source,
            .file = 1,
            .files = 1,
            .reading = 1,
            .last = 1,
            .done = ht_reader_pos(f->sr),
            .documents = ht_engine_totals(e)->documents + b->documents,
        };

        f->cfg.progress(f->cfg.progress_ctx, &p);
    }
    return HT_POLL_DATA;
}

static int files_poll(void *state, struct ht_engine *e, int timeout_ms)
{
    struct files *f = state;

    (void)timeout_ms; /* streams wait cfg.stream_wait_ms */
    if (!f->files_done)
        return poll_files(f, e);
    return poll_stream(f, e);
}

static int files_checkpoint(void *state, struct ht_engine *e)
{
    struct files *f = state;

    /* streams have no checkpoint; files carry theirs with every commit */
    return flush_lanes(f, e);
}

const struct ht_source_ops ht_source_files = {
    .name = "file",
    .opts = NULL,
    .cfg_size = sizeof(struct ht_files_cfg),
    .open = files_open,
    .poll = files_poll,
    .checkpoint = files_checkpoint,
    .close = files_close,
};
