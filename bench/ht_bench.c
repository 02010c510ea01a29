/*
 * ht_bench.c - the ingest / query benchmark (bench/README.md), in one run.
 *
 * Default mode, on one corpus (`hoptrace simulate`, default 5,000 requests,
 * or --corpus DIR):
 *   1. the jansson parse floor (json_loadb + json_decref over every JSON
 *      document of the corpus, held in memory) and end-to-end `hoptrace
 *      ingest` into a fresh store alternate, round after round (floor,
 *      ingest, floor, ingest, ...), best of --runs each, so that the load
 *      of the machine moves both alike; wall and CPU ratios;
 *   2. the ingest process's own peak memory: its RssAnon sampled from
 *      /proc/PID/status every 10 ms while it runs, and its VmHWM (Linux
 *      carries ru_maxrss across exec, so wait4's figure would be ours);
 *   3. query latency: `hoptrace trace` started with posix_spawn (its cost
 *      does not depend on this process's size, which is small by then) and
 *      reported apart from the in-process query (query/ht_query.h).
 * --soak CHUNKS: consecutive one-day windows (simulate --start) ingested
 * one after another into one store with `ingest --retain`, per chunk the
 * ingest's wall and CPU time, docs/s, peak RssAnon and data.mdb's size,
 * then issue 11's acceptance checks, each printed PASS or FAIL.
 *
 * Beside the jansson floor, two anchors (anchors.h): simdjson's DOM parse
 * of the same documents, alternated with the floor in every round, and
 * LMDB loading the pairs of the store ingest wrote, sorted and appended.
 *
 * Prints a table, or with --json one JSON object. Owned by bench/; it runs
 * the hoptrace CLI as a user would and reads the store only through the
 * query library's public header (in-process latency), data.mdb's size and,
 * for the LMDB anchor, its pairs as LMDB holds them (as mdb_dump would),
 * never interpreting its layout.
 */
#define _GNU_SOURCE
#include "anchors.h"
#include "ht_query.h"
#include "ht_store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <poll.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#ifndef HT_BENCH_HOPTRACE
#define HT_BENCH_HOPTRACE "hoptrace"
#endif

extern char **environ;

/* Issue 11's acceptance targets. */
#define TARGET_RATIO 3.0
#define TARGET_RSS_MIB 256.0
#define TARGET_CPU_GROWTH 1.5
#define TARGET_SIZE_GROWTH 1.25
#define TARGET_ENDPOINTS_S 1.0
#define SAMPLE_MS 10
#define DAY_S 86400
/* 2026-12-01T00:00:00Z: the first soak chunk's default start */
#define SOAK_START_DEFAULT 1796083200LL

static const char usage[] =
    "usage: ht-bench [--requests N] [--seed S] [--corpus DIR] [--runs R]\n"
    "                [--trace-ids M] [--hoptrace PATH] [--work DIR] [--keep]\n"
    "                [--json]\n"
    "       ht-bench --soak CHUNKS [--chunk-requests N] [--retain DURATION]\n"
    "                [--start TIME] [--seed S] [--check-ids M] [--hoptrace\n"
    "                PATH] [--work DIR] [--keep] [--json]\n"
    "\n"
    "Generates a payments corpus with `hoptrace simulate` (or reads\n"
    "--corpus DIR: segments.ndjson, logs-cwl.ndjson, logs-kinesis.json,\n"
    "truth.json), then alternates the jansson parse floor of its JSON\n"
    "documents with the end-to-end `hoptrace ingest` of the same files\n"
    "(floor, ingest, floor, ingest, ...) and prints ratio = floor time /\n"
    "ingest time (wall and CPU, best of R each), documents/s, MB/s, the\n"
    "ingest process's peak RssAnon, store bytes and query latency p50/p99.\n"
    "With --soak: CHUNKS consecutive one-day windows ingested one after the\n"
    "other into one store, per chunk ingest time, CPU, docs/s, peak RssAnon\n"
    "and data.mdb size, then PASS/FAIL per acceptance criterion of issue 11.\n"
    "See bench/README.md.\n"
    "\n"
    "  --requests N     corpus size (default 5000)\n"
    "  --seed S         corpus seed (default 42; soak chunk i: S + i)\n"
    "  --corpus DIR     use this corpus instead of generating one\n"
    "  --runs R         rounds of floor + ingest; best of R each (default 3)\n"
    "  --trace-ids M    `hoptrace trace` processes to time (default 200)\n"
    "  --soak CHUNKS    the soak (1 to 1000 chunks; the issue: 6)\n"
    "  --chunk-requests N  requests per soak chunk (default 8000)\n"
    "  --retain DURATION   passed to `ingest --retain` (default 2d); when\n"
    "                   this hoptrace's ingest has no --retain the soak runs\n"
    "                   without it and says so\n"
    "  --start TIME     the first chunk's start, epoch seconds or RFC 3339\n"
    "                   (default 2026-12-01T00:00:00Z); chunk i starts i\n"
    "                   days later\n"
    "  --check-ids M    soak: requests of the first and last chunk whose\n"
    "                   ids are checked (default 20)\n"
    "  --hoptrace PATH  the hoptrace binary (default: the one built with "
    "this)\n"
    "  --work DIR       scratch folder (default: a new one under $TMPDIR)\n"
    "  --keep           keep the scratch folder (corpus and store)\n"
    "  --json           one JSON object on stdout instead of the table\n"
    "\n"
    "exit status: 0 measured (a FAILed criterion is a result, not an\n"
    "error), 2 usage error, 5 a step failed (simulate, ingest, a lookup of\n"
    "the default mode)\n";

struct opts {
    long requests, seed, runs, trace_ids, soak, chunk_requests, check_ids;
    long long start_s;
    const char *corpus, *hoptrace, *work, *retain;
    bool keep, json;
};

struct docs {
    struct doc *d;
    size_t n, cap;
    uint64_t bytes;
};

/* Owned copies of decoded bytes (gunzipped Kinesis data) live here. */
struct chunks {
    char **c;
    size_t n, cap;
};

static void die_oom(void)
{
    fputs("ht-bench: out of memory\n", stderr);
    exit(5);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);

    if (!q)
        die_oom();
    return q;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);

    if (!p)
        die_oom();
    return p;
}

static void docs_add(struct docs *ds, const char *p, size_t n)
{
    if (ds->n == ds->cap) {
        ds->cap = ds->cap ? ds->cap * 2 : 1024;
        ds->d = xrealloc(ds->d, ds->cap * sizeof *ds->d);
    }
    ds->d[ds->n++] = (struct doc){p, n};
    ds->bytes += n;
}

static char *chunks_keep(struct chunks *c, char *p)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 256;
        c->c = xrealloc(c->c, c->cap * sizeof *c->c);
    }
    c->c[c->n++] = p;
    return p;
}

static double now_s(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct timespec t;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    char *p;
    long len;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET)) {
        fclose(f);
        return NULL;
    }
    p = malloc((size_t)len + 1);
    if (!p)
        die_oom();
    if (fread(p, 1, (size_t)len, f) != (size_t)len) {
        fclose(f);
        free(p);
        return NULL;
    }
    fclose(f);
    p[len] = 0;
    *n = (size_t)len;
    return p;
}

/* dir/name into out[n]; a path that does not fit ends the run. */
static void join(char *out, size_t n, const char *dir, const char *name)
{
    if ((size_t)snprintf(out, n, "%s/%s", dir, name) >= n) {
        fprintf(stderr, "ht-bench: path too long: %s/%s\n", dir, name);
        exit(2);
    }
}

/* ---- the documents ---------------------------------------------------- */

static int b64_val(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

static unsigned char *b64_decode(const char *s, size_t n, size_t *out)
{
    unsigned char *p = malloc(n / 4 * 3 + 4);
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;

    if (!p)
        die_oom();
    for (size_t i = 0; i < n; i++) {
        int v = b64_val((unsigned char)s[i]);

        if (v < 0)
            continue;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            p[o++] = (unsigned char)(acc >> bits);
        }
    }
    *out = o;
    return p;
}

static char *gunzip(const unsigned char *p, size_t n, size_t *out)
{
    z_stream z;
    size_t cap = n * 8 + 1024;
    char *o = malloc(cap);
    int rc;

    if (!o)
        die_oom();
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 32) != Z_OK) {
        free(o);
        return NULL;
    }
    z.next_in = (Bytef *)(uintptr_t)p;
    z.avail_in = (uInt)n;
    for (;;) {
        z.next_out = (Bytef *)o + z.total_out;
        z.avail_out = (uInt)(cap - z.total_out - 1);
        rc = inflate(&z, Z_NO_FLUSH);
        if (rc == Z_STREAM_END)
            break;
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            inflateEnd(&z);
            free(o);
            return NULL;
        }
        if (z.avail_out == 0) {
            cap *= 2;
            o = xrealloc(o, cap);
        } else if (rc == Z_BUF_ERROR) {
            inflateEnd(&z);
            free(o);
            return NULL;
        }
    }
    *out = z.total_out;
    o[*out] = 0;
    inflateEnd(&z);
    return o;
}

/* A subscription message is a document; so is every log event message
 * that is itself a JSON object (Powertools lines). Pointers go into the
 * message's own bytes are not possible (messages are escaped), so the
 * event messages are copied out once, before any timing. */
static void add_cwl_message(struct docs *ds, struct chunks *keep, const char *p,
                            size_t n)
{
    json_t *m, *evs, *e;
    size_t i;

    docs_add(ds, p, n);
    m = json_loadb(p, n, 0, NULL);
    if (!m)
        return;
    evs = json_object_get(m, "logEvents");
    json_array_foreach(evs, i, e)
    {
        const char *msg = json_string_value(json_object_get(e, "message"));
        size_t len = json_string_length(json_object_get(e, "message"));
        size_t k = 0;
        json_t *probe;

        if (!msg)
            continue;
        while (k < len && (msg[k] == ' ' || msg[k] == '\t'))
            k++;
        if (k >= len || msg[k] != '{')
            continue;
        probe = json_loadb(msg, len, 0, NULL);
        if (!probe)
            continue;
        json_decref(probe);
        char *copy = malloc(len + 1);

        if (!copy)
            die_oom();
        memcpy(copy, msg, len + 1);
        docs_add(ds, chunks_keep(keep, copy), len);
    }
    json_decref(m);
}

static int is_daemon_header(const char *p, size_t n)
{
    json_t *h;
    int yes;

    if (n > 64 || n < 2 || p[0] != '{')
        return 0;
    h = json_loadb(p, n, 0, NULL);
    yes = h && json_object_get(h, "format") && json_object_get(h, "version") &&
          json_object_size(h) == 2;
    json_decref(h);
    return yes;
}

struct corpus {
    char *seg, *cwl, *kin;
    size_t nseg, ncwl, nkin;
    struct docs docs; /* the documents (the floor's definition) */
    struct docs top;  /* the files' top-level values */
    struct chunks keep;
    uint64_t file_bytes;
    uint64_t n_xray, n_msgs, n_event_json, n_pages;
};

/* The next non-empty line of buf[*pos..len): its start and length. */
static bool next_line(const char *buf, size_t len, size_t *pos,
                      const char **line, size_t *n)
{
    while (*pos < len) {
        const char *p = buf + *pos, *nl = memchr(p, '\n', len - *pos);
        size_t ln = nl ? (size_t)(nl - p) : len - *pos;

        *pos += ln + 1;
        if (ln && !(ln == 1 && p[0] == '\r')) {
            *line = p;
            *n = ln;
            return true;
        }
    }
    return false;
}

/* The records of one GetRecords response: each Data is a document. */
static void add_getrecords(struct corpus *c, json_t *root)
{
    json_t *recs = json_object_get(root, "Records"), *r;
    size_t i;

    json_array_foreach(recs, i, r)
    {
        const char *data = json_string_value(json_object_get(r, "Data"));
        size_t zn, mn;
        unsigned char *z;
        char *m;

        if (!data)
            continue;
        z = b64_decode(data, strlen(data), &zn);
        m = gunzip(z, zn, &mn);
        if (!m) { /* not gzip: the decoded bytes are the message */
            m = xrealloc(NULL, zn + 1);
            memcpy(m, z, zn);
            m[zn] = 0;
            mn = zn;
        }
        free(z);
        add_cwl_message(&c->docs, &c->keep, chunks_keep(&c->keep, m), mn);
        c->n_msgs++;
    }
}

static int load_corpus(const char *dir, struct corpus *c)
{
    char path[PATH_MAX];
    const char *p;
    size_t n, pos = 0;

    memset(c, 0, sizeof *c);
    join(path, sizeof path, dir, "segments.ndjson");
    c->seg = read_file(path, &c->nseg);
    join(path, sizeof path, dir, "logs-cwl.ndjson");
    c->cwl = read_file(path, &c->ncwl);
    join(path, sizeof path, dir, "logs-kinesis.json");
    c->kin = read_file(path, &c->nkin);
    if (!c->seg || !c->cwl || !c->kin) {
        fprintf(stderr,
                "ht-bench: %s lacks segments.ndjson, logs-cwl.ndjson or "
                "logs-kinesis.json (make one with hoptrace simulate)\n",
                dir);
        return -1;
    }
    c->file_bytes = c->nseg + c->ncwl + c->nkin;
    while (next_line(c->seg, c->nseg, &pos, &p, &n)) {
        docs_add(&c->top, p, n);
        if (is_daemon_header(p, n))
            continue;
        docs_add(&c->docs, p, n);
        c->n_xray++;
    }
    pos = 0;
    while (next_line(c->cwl, c->ncwl, &pos, &p, &n)) {
        docs_add(&c->top, p, n);
        add_cwl_message(&c->docs, &c->keep, p, n);
        c->n_msgs++;
    }
    /* GetRecords pages, one after the other (simulate pages them like the
     * API); each page is one of the file's top-level values. */
    for (pos = 0;;) {
        json_error_t je;
        json_t *root;

        while (pos < c->nkin && strchr(" \t\r\n", c->kin[pos]))
            pos++;
        if (pos >= c->nkin)
            break;
        root = json_loadb(c->kin + pos, c->nkin - pos, JSON_DISABLE_EOF_CHECK,
                          &je);
        if (!root) {
            fprintf(stderr, "ht-bench: %s: not JSON at byte %zu: %s\n", path,
                    pos, je.text);
            return -1;
        }
        docs_add(&c->top, c->kin + pos, (size_t)je.position);
        pos += (size_t)je.position;
        add_getrecords(c, root);
        json_decref(root);
        c->n_pages++;
    }
    c->n_event_json = c->docs.n - c->n_xray - c->n_msgs;
    return 0;
}

static void corpus_free(struct corpus *c)
{
    for (size_t i = 0; i < c->keep.n; i++)
        free(c->keep.c[i]);
    free(c->keep.c);
    free(c->docs.d);
    free(c->top.d);
    free(c->seg);
    free(c->cwl);
    free(c->kin);
    memset(c, 0, sizeof *c);
}

/* One pass of json_loadb + json_decref over every document: wall seconds,
 * *cpu the CPU seconds of this (single-threaded) process meanwhile. */
static double parse_once(const struct docs *ds, uint64_t *fails, double *cpu)
{
    double t0 = now_s(), c0 = cpu_s();
    uint64_t bad = 0;

    for (size_t i = 0; i < ds->n; i++) {
        json_t *j = json_loadb(ds->d[i].p, ds->d[i].n, 0, NULL);

        if (!j)
            bad++;
        json_decref(j);
    }
    *cpu = cpu_s() - c0;
    *fails = bad;
    return now_s() - t0;
}

/* One pass of the simdjson anchor (anchors.h), timed as parse_once. */
static double simd_once(const struct ht_simd_docs *sd, uint64_t *fails,
                        double *cpu)
{
    double t0 = now_s(), c0 = cpu_s();

    *fails = ht_simd_parse_once(sd);
    *cpu = cpu_s() - c0;
    return now_s() - t0;
}

/* ---- child processes -------------------------------------------------- */

struct proc {
    int status;
    double secs;       /* posix_spawn .. wait4 */
    double cpu_secs;   /* user + system of the child, all its threads */
    long rss_anon_kib; /* peak RssAnon over the samples (0: not sampled) */
    long hwm_kib;      /* VmHWM at the last sample: its own peak RSS, the
                        * store's mapped file pages included */
    long samples;
};

/* RssAnon and VmHWM of a running process (kB), into the peaks of pr. */
static void sample_status(pid_t pid, struct proc *pr)
{
    char path[64], buf[8192];
    const char *p;
    ssize_t n;
    long v;
    int fd;

    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = 0;
    p = strstr(buf, "\nRssAnon:");
    if (p && sscanf(p + 9, "%ld", &v) == 1 && v > pr->rss_anon_kib)
        pr->rss_anon_kib = v;
    p = strstr(buf, "\nVmHWM:");
    if (p && sscanf(p + 7, "%ld", &v) == 1 && v > pr->hwm_kib)
        pr->hwm_kib = v;
    pr->samples++;
}

/* Runs argv with stdout to out_path and stderr to err_path (NULL:
 * /dev/null), started with posix_spawn: glibc's vfork-style spawn costs
 * the same whatever this process's size. Wall time from the spawn to
 * wait4, CPU time from wait4. With sample, the child's /proc status is
 * read every SAMPLE_MS while it runs (woken at its exit through a pidfd,
 * so the wall time carries no polling delay). -1 if it could not start. */
static int run(char *const argv[], const char *out_path, const char *err_path,
               bool sample, struct proc *pr)
{
    posix_spawn_file_actions_t fa;
    struct rusage ru;
    double t0;
    pid_t pid;
    int e;

    memset(pr, 0, sizeof *pr);
    pr->status = -1;
    if (posix_spawn_file_actions_init(&fa))
        return -1;
    if (posix_spawn_file_actions_addopen(&fa, 1,
                                         out_path ? out_path : "/dev/null",
                                         O_WRONLY | O_CREAT | O_TRUNC, 0644) ||
        posix_spawn_file_actions_addopen(&fa, 2,
                                         err_path ? err_path : "/dev/null",
                                         O_WRONLY | O_CREAT | O_TRUNC, 0644)) {
        posix_spawn_file_actions_destroy(&fa);
        return -1;
    }
    t0 = now_s();
    e = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (e) {
        errno = e;
        return -1;
    }
    if (sample) {
        int pfd = (int)syscall(SYS_pidfd_open, pid, 0);

        for (;;) {
            sample_status(pid, pr);
            if (pfd >= 0) {
                struct pollfd pf = {.fd = pfd, .events = POLLIN};

                if (poll(&pf, 1, SAMPLE_MS) != 0)
                    break; /* exited (or poll failed: wait4 below) */
            } else {
                /* no pidfd (kernel < 5.3): poll the exit every ms */
                bool gone = false;

                for (int i = 0; i < SAMPLE_MS && !gone; i++) {
                    siginfo_t si;

                    si.si_pid = 0;
                    if (waitid(P_PID, (id_t)pid, &si,
                               WEXITED | WNOHANG | WNOWAIT) == 0 &&
                        si.si_pid == pid)
                        gone = true;
                    else
                        usleep(1000);
                }
                if (gone)
                    break;
            }
        }
        if (pfd >= 0)
            close(pfd);
    }
    while (wait4(pid, &pr->status, 0, &ru) < 0)
        if (errno != EINTR)
            return -1;
    pr->secs = now_s() - t0;
    pr->cpu_secs =
        (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
        (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    return 0;
}

static int ok(const struct proc *pr)
{
    return WIFEXITED(pr->status) && WEXITSTATUS(pr->status) == 0;
}

static int exit_code(const struct proc *pr)
{
    return WIFEXITED(pr->status) ? WEXITSTATUS(pr->status) : -1;
}

static int rm_rf(const char *path)
{
    char *argv[] = {"/bin/rm", "-rf", (char *)path, NULL};
    struct proc pr;

    return run(argv, NULL, NULL, false, &pr) == 0 && ok(&pr) ? 0 : -1;
}

/* The last non-empty line of file path that starts with prefix ("": any
 * line) into out; false (out empty) when there is none. */
static bool last_line_of(const char *path, const char *prefix, char *out,
                         size_t n)
{
    size_t len, pn = strlen(prefix);
    char *p = read_file(path, &len), *found = NULL;

    out[0] = 0;
    for (char *l = p; l && *l;) {
        size_t ln = strcspn(l, "\r\n");

        if (ln && strncmp(l, prefix, pn) == 0)
            found = l;
        l += ln;
        l += strspn(l, "\r\n");
    }
    if (found)
        snprintf(out, n, "%.*s", (int)strcspn(found, "\r\n"), found);
    free(p);
    return found != NULL;
}

static void last_line(const char *path, char *out, size_t n)
{
    last_line_of(path, "", out, n);
}

/* ingest's summary line ("hoptrace: ingested ..."): the last line of
 * stderr that starts so, not merely the last line, which may be another
 * message. Says so on stderr when there is none: the figures read from
 * it (documents, spans, the summaries' and retention's times) are then
 * unknown, not zero. */
#define SUMMARY_PREFIX "hoptrace: ingested "

static void summary_line(const char *path, char *out, size_t n)
{
    if (!last_line_of(path, SUMMARY_PREFIX, out, n))
        fprintf(stderr,
                "ht-bench: ingest printed no summary line (\"%s...\") in %s "
                "(--keep keeps it): its documents, spans and slice times are "
                "unknown below\n",
                SUMMARY_PREFIX, path);
}

/* The time of a clause of an ingest summary line that ends "in N slices
 * (X s)" (or "1 slice"): `marker` starts it ("; retention removed ", "
 * request summaries written in "). False when the line has no such clause
 * (nothing removed, no summaries written, or a hoptrace that does not
 * say). Only the clause itself is read: it ends at the next ';'. */
static bool parse_slices_secs(const char *line, const char *marker,
                              double *secs)
{
    const char *p = strstr(line, marker), *end;

    *secs = 0;
    if (!p)
        return false;
    end = strchr(p + 1, ';');
    p = strstr(p, " slice");
    if (!p || (end && p > end))
        return false;
    p += 6;
    if (*p == 's')
        p++;
    return sscanf(p, " (%lf s)", secs) == 1;
}

#define RETENTION_CLAUSE "; retention removed "
#define SUMMARIES_CLAUSE " request summaries written in "

/* ingest's summary line: "ingested D documents (S spans, E log events)" */
static void parse_summary(const char *line, uint64_t *docs, uint64_t *spans,
                          uint64_t *events)
{
    const char *p = strstr(line, "ingested ");

    *docs = *spans = *events = 0;
    if (p)
        sscanf(p, "ingested %" SCNu64 " documents (%" SCNu64 " spans, %" SCNu64,
               docs, spans, events);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[0..n). */
static double pct(const double *v, size_t n, double p)
{
    size_t k;

    if (!n)
        return 0;
    k = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return v[k - 1];
}

static double min_of(const double *v, size_t n)
{
    double m = INFINITY;

    for (size_t i = 0; i < n; i++)
        if (v[i] < m)
            m = v[i];
    return m;
}

static long parse_long(const char *opt, const char *s, long lo, long hi)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr,
                "ht-bench: %s wants a number from %ld to %ld, not "
                "'%s'\n",
                opt, lo, hi, s);
        exit(2);
    }
    return v;
}

static void machine(char *out, size_t n)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512], model[256] = "unknown CPU";
    struct utsname u;

    if (f) {
        while (fgets(line, sizeof line, f)) {
            char *c = strchr(line, ':');

            if (!strncmp(line, "model name", 10) && c) {
                snprintf(model, sizeof model, "%s", c + 2);
                model[strcspn(model, "\n")] = 0;
                break;
            }
        }
        fclose(f);
    }
    uname(&u);
    snprintf(out, n, "%s, %ld cores, %s %s", model,
             sysconf(_SC_NPROCESSORS_ONLN), u.sysname, u.release);
}

/* data.mdb of a store: allocated bytes (what the disk holds; the file's
 * apparent size is LMDB's map and says little), apparent size, mtime. */
struct mdb_stat {
    bool exists;
    uint64_t alloc, size;
    struct timespec mtime;
};

static struct mdb_stat mdb_stat(const char *store)
{
    char path[PATH_MAX];
    struct mdb_stat m = {0};
    struct stat st;

    join(path, sizeof path, store, "data.mdb");
    if (stat(path, &st) == 0) {
        m.exists = true;
        m.alloc = (uint64_t)st.st_blocks * 512;
        m.size = (uint64_t)st.st_size;
        m.mtime = st.st_mtim;
    }
    return m;
}

static bool mdb_same(const struct mdb_stat *a, const struct mdb_stat *b)
{
    return a->exists == b->exists && a->alloc == b->alloc &&
           a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
           a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static void rfc3339(long long s, char out[32])
{
    time_t t = (time_t)s;
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- answers against truth -------------------------------------------- */

/* `hoptrace --db STORE trace ID --format json`: its exit code, and its
 * requests array (owned, NULL unless exit 0 and readable JSON). */
static int lookup(const char *hop, const char *store, const char *id,
                  const char *outf, json_t **reqs)
{
    char *argv[] = {(char *)hop, "--db",     (char *)store, "trace",
                    (char *)id,  "--format", "json",        NULL};
    struct proc pr;
    json_t *j;

    *reqs = NULL;
    if (run(argv, outf, NULL, false, &pr))
        return -1;
    if (!ok(&pr))
        return exit_code(&pr);
    j = json_load_file(outf, 0, NULL);
    if (json_is_array(json_object_get(j, "requests")))
        *reqs = json_incref(json_object_get(j, "requests"));
    json_decref(j);
    return 0;
}

static double num(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);

    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* tests/corpus/check_traces.py's check of one request found by its API
 * Gateway id: duration and every hop's wait within 1 ms, the critical
 * path's services (collapsed, restricted to truth's) equal truth's path,
 * and unless a skew warning says otherwise, the critical path sums to the
 * duration (0.05 ms) and is contiguous (50 us). why: the first problem. */
static bool request_exact(json_t *got, json_t *want, char *why, size_t n)
{
    json_t *hops = json_object_get(got, "hops"), *cp, *h, *path, *warn;
    double dur = num(got, "duration_ms"), total = 0;
    const char *names[64];
    size_t i, nn = 0;
    char *w;
    bool skew;

    if (!(fabs(dur - num(want, "duration_ms")) <= 1.0)) {
        snprintf(why, n, "duration %.3f, truth %.3f", dur,
                 num(want, "duration_ms"));
        return false;
    }
    json_array_foreach(json_object_get(want, "hops"), i, h)
    {
        const char *via = json_string_value(json_object_get(h, "via"));
        const char *res = json_string_value(json_object_get(h, "resource"));
        json_t *g, *found = NULL;
        size_t k;

        json_array_foreach(hops, k, g)
        {
            const char *gv = json_string_value(json_object_get(g, "via"));
            const char *gr = json_string_value(json_object_get(g, "resource"));

            if (via && res && gv && gr && !strcmp(via, gv) && !strcmp(res, gr))
                found = g;
        }
        if (!found ||
            !(fabs(num(found, "wait_ms") - num(h, "wait_ms")) <= 1.0)) {
            snprintf(why, n, "hop %s:%s %s", via ? via : "?", res ? res : "?",
                     found ? "waits otherwise" : "missing");
            return false;
        }
    }
    path = json_object_get(want, "path");
    cp = json_object_get(got, "critical_path");
    json_array_foreach(cp, i, h)
    {
        const char *name = json_string_value(json_object_get(h, "name"));
        bool wanted = false;
        json_t *p;
        size_t k;

        json_array_foreach(path, k, p)
        {
            if (name && json_string_value(p) &&
                !strcmp(name, json_string_value(p)))
                wanted = true;
        }
        if (wanted && (!nn || strcmp(names[nn - 1], name)) && nn < 64)
            names[nn++] = name;
        total += json_is_number(json_object_get(h, "duration_ms"))
                     ? num(h, "duration_ms")
                     : 0;
    }
    if (nn != json_array_size(path)) {
        snprintf(why, n, "critical path has %zu of truth's %zu services", nn,
                 json_array_size(path));
        return false;
    }
    for (i = 0; i < nn; i++)
        if (strcmp(names[i], json_string_value(json_array_get(path, i)))) {
            snprintf(why, n, "critical path service %zu is %s", i, names[i]);
            return false;
        }
    warn = json_object_get(got, "warnings");
    w = json_dumps(warn ? warn : json_null(), JSON_ENCODE_ANY);
    skew = w && strstr(w, "skew");
    free(w);
    if (!skew) {
        if (!(fabs(total - dur) <= 0.05)) {
            snprintf(why, n, "critical path sums to %.3f, not %.3f", total,
                     dur);
            return false;
        }
        for (i = 0; i + 1 < json_array_size(cp); i++) {
            json_t *a = json_array_get(cp, i), *b = json_array_get(cp, i + 1);

            if (!(fabs(num(a, "start_us") + num(a, "duration_ms") * 1000 -
                       num(b, "start_us")) <= 50)) {
                snprintf(why, n, "critical path not contiguous");
                return false;
            }
        }
    }
    return true;
}

struct idcheck {
    const char *kind, *id;
    long want; /* -1: containment only */
};

/* Every other id of a truth request resolves to a result holding the same
 * request (same root); those that name one request (or one SQS batch) to
 * exactly that many. As check_traces.py --ids all. */
static bool ids_exact(const char *hop, const char *store, const char *outf,
                      json_t *t, json_t *root, char *why, size_t n)
{
    static const char *const singles[][2] = {
        {"lambda", "create_request_id"}, {"sqs", "message_id"},
        {"lambda", "notify_request_id"}, {"kinesis", "kinesis_sequence"},
        {"lambda", "index_request_id"},  {"ddb", "ddb_sequence"}};
    json_t *tids = json_object_get(t, "trace_ids"), *x;
    const char *proc_id =
        json_string_value(json_object_get(t, "process_request_id"));
    const char *sqs_trace = json_string_value(json_array_get(tids, 1));
    long batch = (long)json_integer_value(json_object_get(t, "batch_size"));
    struct idcheck ids[16];
    size_t nid = 0, i;

    for (i = 0; i < sizeof singles / sizeof singles[0]; i++) {
        const char *id = json_string_value(json_object_get(t, singles[i][1]));

        if (id)
            ids[nid++] = (struct idcheck){singles[i][0], id, 1};
    }
    ids[nid++] = (struct idcheck){
        "corr", json_string_value(json_object_get(t, "correlation_id")), -1};
    if (proc_id)
        ids[nid++] = (struct idcheck){"batch", proc_id, batch};
    json_array_foreach(tids, i, x)
    {
        const char *id = json_string_value(x);

        if (id && nid < 16)
            ids[nid++] = (struct idcheck){
                "xray", id, sqs_trace && !strcmp(id, sqs_trace) ? batch : 1};
    }
    for (i = 0; i < nid; i++) {
        json_t *rs = NULL, *r;
        bool held = false;
        size_t k;
        int ec;

        if (!ids[i].id)
            continue;
        ec = lookup(hop, store, ids[i].id, outf, &rs);
        if (ec || !rs) {
            snprintf(why, n, "%s id %s: trace exit %d", ids[i].kind, ids[i].id,
                     ec);
            json_decref(rs);
            return false;
        }
        json_array_foreach(rs, k, r)
        {
            json_t *rr = json_object_get(r, "root");

            if ((!rr && !root) || json_equal(rr, root))
                held = true;
        }
        if (!held ||
            (ids[i].want >= 0 && (long)json_array_size(rs) != ids[i].want)) {
            snprintf(why, n, "%s id %s: %zu requests%s", ids[i].kind, ids[i].id,
                     json_array_size(rs), held ? "" : ", not its own");
            json_decref(rs);
            return false;
        }
        json_decref(rs);
    }
    return true;
}

/* Up to m requests spread evenly over truth (a requests array). */
static size_t sample_index(size_t k, size_t m, size_t n)
{
    return m >= n ? k : k * n / m;
}

/* ---- criteria --------------------------------------------------------- */

/* One acceptance criterion: pass is 1, 0, or -1 when not measured. */
struct crit {
    const char *name;
    int pass;
    char value[160];
};

struct crits {
    struct crit c[16];
    int n;
};

static void crit_add(struct crits *cs, const char *name, int pass,
                     const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void crit_add(struct crits *cs, const char *name, int pass,
                     const char *fmt, ...)
{
    struct crit *c;
    va_list ap;

    if (cs->n >= 16)
        return;
    c = &cs->c[cs->n++];
    c->name = name;
    c->pass = pass;
    va_start(ap, fmt);
    vsnprintf(c->value, sizeof c->value, fmt, ap);
    va_end(ap);
}

static const char *crit_word(int pass)
{
    return pass > 0 ? "PASS" : pass == 0 ? "FAIL" : "N/A ";
}

static void crits_print(const struct crits *cs)
{
    printf("\nacceptance (issue 11)\n");
    for (int i = 0; i < cs->n; i++)
        printf("  %s  %s: %s\n", crit_word(cs->c[i].pass), cs->c[i].name,
               cs->c[i].value);
}

static json_t *crits_json(const struct crits *cs)
{
    json_t *a = json_array();

    for (int i = 0; i < cs->n; i++) {
        json_t *o = json_object();

        json_object_set_new(o, "criterion", json_string(cs->c[i].name));
        json_object_set_new(o, "pass",
                            cs->c[i].pass < 0 ? json_null()
                                              : json_boolean(cs->c[i].pass));
        json_object_set_new(o, "value", json_string(cs->c[i].value));
        json_array_append_new(a, o);
    }
    return a;
}

static void print_json(json_t *j, int *rc)
{
    char *txt = j ? json_dumps(j, JSON_INDENT(1) | JSON_PRESERVE_ORDER) : NULL;

    if (!txt) {
        fputs("ht-bench: cannot render JSON\n", stderr);
        *rc = 5;
    } else {
        puts(txt);
    }
    free(txt);
}

#define SETI(obj, k, v)                                                        \
    json_object_set_new(obj, k, json_integer((json_int_t)(v)))
#define SETF(obj, k, v)                                                        \
    json_object_set_new(obj, k, isfinite(v) ? json_real(v) : json_null())
#define SETS(obj, k, v) json_object_set_new(obj, k, json_string(v))
#define SETB(obj, k, v) json_object_set_new(obj, k, json_boolean(v))

/* `hoptrace endpoints --format json` on a store: its wall time, exit code,
 * and whether data.mdb is untouched (a read-only open leaves it so). */
struct endpoints_run {
    double secs;
    long rss_anon_kib; /* its peak RssAnon */
    int exit;
    bool json_ok, untouched;
};

static struct endpoints_run time_endpoints(const char *hop, const char *store,
                                           const char *outf)
{
    char *argv[] = {(char *)hop, "--db", (char *)store, "endpoints",
                    "--format",  "json", NULL};
    struct endpoints_run e = {0};
    struct mdb_stat before = mdb_stat(store), after;
    struct proc pr;
    json_t *j;

    e.exit = -1;
    /* mtime moves in coarse clock ticks: a write by endpoints must not
     * fall in the tick of ingest's last one */
    usleep(20000);
    if (run(argv, outf, NULL, true, &pr) == 0) {
        e.secs = pr.secs;
        e.rss_anon_kib = pr.rss_anon_kib;
        e.exit = exit_code(&pr);
    }
    after = mdb_stat(store);
    e.untouched = mdb_same(&before, &after);
    j = json_load_file(outf, 0, NULL);
    e.json_ok = j != NULL;
    json_decref(j);
    return e;
}

/* ---- the default mode: floor vs ingest, memory, query latency --------- */

static int bench_default(const struct opts *o, const char *work,
                         const char *mach)
{
    char corpus_dir[PATH_MAX], store[PATH_MAX], errf[PATH_MAX], outf[PATH_MAX],
        tmp[PATH_MAX], sumline[1024];
    char seg[PATH_MAX], cwl[PATH_MAX], kin[PATH_MAX], nbuf[32], sbuf[32];
    size_t runs = (size_t)o->runs, nreq = 0, nproc, pfail = 0, ifail = 0,
           ni = 0;
    double *fw, *fc, *tw, *tc, *iw, *ic, *sw, *sc, gen_s = 0, *pl = NULL,
                                                   *pc = NULL, *il = NULL;
    double app_s = -1, app_cpu = -1, *isumm;
    uint64_t app_pairs = 0, app_bytes = 0, simd_fails = 0;
    struct ht_simd_docs *sd = NULL;
    long *ianon, *ihwm, peak_anon = 0, peak_hwm = 0;
    uint64_t fails = 0, top_fails = 0, spans = 0, events = 0, ndocs_ing = 0;
    char **ids = NULL;
    struct corpus c;
    struct proc pr;
    struct mdb_stat ms;
    struct endpoints_run ep;
    struct crits cs = {0};
    json_t *truth, *reqs;
    int rc = 0;

    memset(&c, 0, sizeof c);
    join(store, sizeof store, work, "store");
    join(errf, sizeof errf, work, "stderr.txt");
    join(outf, sizeof outf, work, "stdout.txt");

    /* 1. the corpus */
    if (o->corpus) {
        snprintf(corpus_dir, sizeof corpus_dir, "%s", o->corpus);
    } else {
        join(corpus_dir, sizeof corpus_dir, work, "corpus");
        snprintf(nbuf, sizeof nbuf, "%ld", o->requests);
        snprintf(sbuf, sizeof sbuf, "%ld", o->seed);
        char *gargv[] = {(char *)o->hoptrace,
                         "simulate",
                         "--requests",
                         nbuf,
                         "--seed",
                         sbuf,
                         "--out",
                         corpus_dir,
                         NULL};

        if (!o->json)
            fprintf(stderr, "ht-bench: generating %ld requests (seed %ld)\n",
                    o->requests, o->seed);
        if (run(gargv, NULL, errf, false, &pr) || !ok(&pr)) {
            last_line(errf, sumline, sizeof sumline);
            fprintf(stderr, "ht-bench: hoptrace simulate failed: %s\n",
                    sumline);
            return 5;
        }
        gen_s = pr.secs;
    }
    join(seg, sizeof seg, corpus_dir, "segments.ndjson");
    join(cwl, sizeof cwl, corpus_dir, "logs-cwl.ndjson");
    join(kin, sizeof kin, corpus_dir, "logs-kinesis.json");
    join(tmp, sizeof tmp, corpus_dir, "truth.json");
    truth = json_load_file(tmp, 0, NULL);
    reqs = json_object_get(truth, "requests");
    nreq = json_array_size(reqs);
    if (!nreq) {
        fprintf(stderr,
                "ht-bench: %s has no requests (a truth.json is "
                "needed for the query ids)\n",
                tmp);
        json_decref(truth);
        return 5;
    }
    /* Only the API Gateway ids are kept: the rest of truth goes before
     * any timing, and the corpus before the queries, so that this process
     * is small when it starts `trace` processes. */
    ids = calloc(nreq, sizeof *ids);
    if (!ids)
        die_oom();
    for (size_t k = 0; k < nreq; k++) {
        const char *id = json_string_value(
            json_object_get(json_array_get(reqs, k), "apigw_request_id"));

        ids[k] = xstrdup(id ? id : "?");
    }
    json_decref(truth);
    if (load_corpus(corpus_dir, &c)) {
        rc = 5;
        goto out;
    }
    sd = ht_simd_docs_load(c.docs.d, c.docs.n);
    if (!sd)
        die_oom();

    /* 2. rounds of floor, floor over the top-level values, ingest */
    fw = calloc(runs, sizeof *fw);
    fc = calloc(runs, sizeof *fc);
    tw = calloc(runs, sizeof *tw);
    tc = calloc(runs, sizeof *tc);
    iw = calloc(runs, sizeof *iw);
    ic = calloc(runs, sizeof *ic);
    sw = calloc(runs, sizeof *sw);
    sc = calloc(runs, sizeof *sc);
    ianon = calloc(runs, sizeof *ianon);
    ihwm = calloc(runs, sizeof *ihwm);
    isumm = calloc(runs, sizeof *isumm);
    if (!fw || !fc || !tw || !tc || !iw || !ic || !sw || !sc || !ianon ||
        !ihwm || !isumm)
        die_oom();
    for (size_t r = 0; r < runs; r++) {
        char *iargv[] = {
            (char *)o->hoptrace, "--db", store, "ingest", seg, cwl, kin, NULL};

        if (!o->json)
            fprintf(stderr, "ht-bench: round %zu/%zu: floor, ingest\n", r + 1,
                    runs);
        fw[r] = parse_once(&c.docs, &fails, &fc[r]);
        sw[r] = simd_once(sd, &simd_fails, &sc[r]);
        tw[r] = parse_once(&c.top, &top_fails, &tc[r]);
        if (rm_rf(store) || run(iargv, NULL, errf, true, &pr) || !ok(&pr)) {
            last_line(errf, sumline, sizeof sumline);
            fprintf(stderr, "ht-bench: hoptrace ingest failed: %s\n", sumline);
            rc = 5;
            goto rounds_out;
        }
        iw[r] = pr.secs;
        ic[r] = pr.cpu_secs;
        summary_line(errf, sumline, sizeof sumline);
        parse_slices_secs(sumline, SUMMARIES_CLAUSE, &isumm[r]);
        ianon[r] = pr.rss_anon_kib;
        ihwm[r] = pr.hwm_kib;
        if (pr.rss_anon_kib > peak_anon)
            peak_anon = pr.rss_anon_kib;
        if (pr.hwm_kib > peak_hwm)
            peak_hwm = pr.hwm_kib;
    }
    parse_summary(sumline, &ndocs_ing, &spans, &events);
    ms = mdb_stat(store);
    if (!ms.exists)
        fprintf(stderr, "ht-bench: no data.mdb in %s after ingest\n", store);
    ht_simd_docs_free(sd);
    sd = NULL;

    /* the LMDB anchor: the store's pairs, appended sorted, best of R */
    {
        char adir[PATH_MAX], aerr[256];
        struct ht_lmdb_pairs *lp = ht_lmdb_pairs_read(store, aerr, sizeof aerr);

        join(adir, sizeof adir, work, "anchor");
        if (!lp)
            fprintf(stderr, "ht-bench: LMDB anchor: %s\n", aerr);
        else
            ht_lmdb_pairs_size(lp, &app_pairs, &app_bytes);
        for (size_t r = 0; lp && r < runs; r++) {
            double cw, cpu;

            rm_rf(adir);
            cw = now_s();
            cpu = cpu_s();
            if (ht_lmdb_pairs_append(lp, adir, aerr, sizeof aerr)) {
                fprintf(stderr, "ht-bench: LMDB anchor: %s\n", aerr);
                app_s = -1;
                break;
            }
            cw = now_s() - cw;
            cpu = cpu_s() - cpu;
            if (app_s < 0 || cw < app_s)
                app_s = cw;
            if (app_cpu < 0 || cpu < app_cpu)
                app_cpu = cpu;
        }
        rm_rf(adir);
        ht_lmdb_pairs_free(lp);
    }

    /* 3. the parent sheds the corpus; then queries */
    struct corpus_counts {
        size_t docs, top;
        uint64_t bytes, xray, msgs, event_json, pages, file_bytes;
    } cc = {c.docs.n, c.top.n,        c.docs.bytes, c.n_xray,
            c.n_msgs, c.n_event_json, c.n_pages,    c.file_bytes};

    corpus_free(&c);
    malloc_trim(0); /* the freed corpus goes back to the system */
    struct proc self = {0};

    sample_status(getpid(), &self); /* this process, as trace starts */
    ep = time_endpoints(o->hoptrace, store, outf);
    nproc = (size_t)o->trace_ids < nreq ? (size_t)o->trace_ids : nreq;
    pl = calloc(nproc + 1, sizeof *pl);
    pc = calloc(nproc + 1, sizeof *pc);
    il = calloc(nreq, sizeof *il);
    if (!pl || !il || !pc)
        die_oom();
    if (!o->json)
        fprintf(stderr,
                "ht-bench: %zu trace processes, %zu in-process "
                "queries\n",
                nproc, nreq);
    for (size_t k = 0; k < nproc; k++) {
        char *targv[] = {(char *)o->hoptrace,   "--db",     store,  "trace",
                         ids[k * nreq / nproc], "--format", "json", NULL};

        if (run(targv, NULL, NULL, false, &pr) || !ok(&pr))
            pfail++;
        pl[k] = pr.secs * 1e3;
        pc[k] = pr.cpu_secs * 1e3;
    }
    qsort(pl, nproc, sizeof *pl, cmp_double);
    qsort(pc, nproc, sizeof *pc, cmp_double);
    {
        struct ht_store *s = NULL;

        if (ht_store_open(store, true, &s) == 0) {
            for (size_t k = 0; k < nreq; k++) {
                struct ht_result *res = NULL;
                double t0 = now_s();
                int qrc = ht_query_trace(s, ids[k], &res);
                double t = now_s() - t0;

                if (qrc || !res || res->nrequests != 1)
                    ifail++;
                il[ni++] = t * 1e3;
                ht_result_free(res);
            }
            ht_store_close(s);
        } else {
            ifail = nreq;
        }
    }
    qsort(il, ni, sizeof *il, cmp_double);

    /* 4. figures */
    double floor_s = min_of(fw, runs), floor_cpu = min_of(fc, runs);
    double top_s = min_of(tw, runs), top_cpu = min_of(tc, runs);
    double simd_s = min_of(sw, runs), simd_cpu = min_of(sc, runs);
    double best_ing = min_of(iw, runs), ing_cpu = min_of(ic, runs), med_ing;
    double summ_best = 0; /* the request summaries' time in the best run */

    for (size_t r = 0; r < runs; r++)
        if (iw[r] == best_ing)
            summ_best = isumm[r];
    double ratio = floor_s / best_ing, ratio_cpu = floor_cpu / ing_cpu;
    double *sorted = calloc(runs, sizeof *sorted);

    if (!sorted)
        die_oom();
    memcpy(sorted, iw, runs * sizeof *sorted);
    qsort(sorted, runs, sizeof *sorted, cmp_double);
    med_ing = sorted[runs / 2];
    free(sorted);
    crit_add(&cs,
             "ingest >= 3x as fast as the jansson floor (wall, best of R each)",
             ratio >= TARGET_RATIO, "%.2fx (floor %.3f s / ingest %.3f s)",
             ratio, floor_s, best_ing);
    crit_add(&cs, "ingest >= 3x as fast as the jansson floor (CPU time)",
             ratio_cpu >= TARGET_RATIO,
             "%.2fx (floor %.3f s / ingest %.3f s user + system)", ratio_cpu,
             floor_cpu, ing_cpu);
    crit_add(&cs, "ingest peak RssAnon <= 256 MiB",
             (double)peak_anon / 1024.0 <= TARGET_RSS_MIB && peak_anon > 0,
             "%.1f MiB", (double)peak_anon / 1024.0);
    crit_add(&cs, "endpoints --format json < 1 s after ingest",
             ep.exit == 0 && ep.secs < TARGET_ENDPOINTS_S, "%.3f s, exit %d",
             ep.secs, ep.exit);
    crit_add(&cs, "endpoints opens the store read-only", ep.untouched,
             "data.mdb %s", ep.untouched ? "untouched" : "written");

    if (o->json) {
        json_t *j = json_object(), *x, *a;

        SETS(j, "machine", mach);
        x = json_object();
        SETS(x, "dir", corpus_dir);
        SETI(x, "requests", nreq);
        SETI(x, "seed", o->seed);
        SETB(x, "generated", o->corpus == NULL);
        SETF(x, "generate_s", gen_s);
        SETI(x, "file_bytes", cc.file_bytes);
        SETI(x, "getrecords_pages", cc.pages);
        json_object_set_new(j, "corpus", x);
        x = json_object();
        SETI(x, "total", cc.docs);
        SETI(x, "xray", cc.xray);
        SETI(x, "log_messages", cc.msgs);
        SETI(x, "log_event_json", cc.event_json);
        SETI(x, "bytes", cc.bytes);
        SETI(x, "top_level_values", cc.top);
        SETI(x, "parse_failures", fails + top_fails);
        json_object_set_new(j, "documents", x);
        x = json_object();
        SETI(x, "runs", runs);
        SETF(x, "seconds", floor_s);
        SETF(x, "docs_per_s", (double)cc.docs / floor_s);
        SETF(x, "mb_per_s", (double)cc.bytes / 1e6 / floor_s);
        SETF(x, "top_level_seconds", top_s);
        SETF(x, "cpu_seconds", floor_cpu);
        SETF(x, "top_level_cpu_seconds", top_cpu);
        SETF(x, "top_level_mb_per_s", (double)cc.file_bytes / 1e6 / top_s);
        json_object_set_new(j, "floor", x);
        x = json_object();
        SETF(x, "simdjson_seconds", simd_s);
        SETF(x, "simdjson_cpu_seconds", simd_cpu);
        SETI(x, "simdjson_failures", simd_fails);
        SETF(x, "jansson_over_simdjson", floor_s / simd_s);
        SETF(x, "ingest_over_simdjson", best_ing / simd_s);
        SETI(x, "lmdb_pairs", app_pairs);
        SETI(x, "lmdb_pair_bytes", app_bytes);
        if (app_s > 0) {
            SETF(x, "lmdb_append_seconds", app_s);
            SETF(x, "lmdb_append_cpu_seconds", app_cpu);
            SETF(x, "ingest_over_lmdb_append", best_ing / app_s);
        }
        json_object_set_new(j, "anchors", x);
        x = json_object();
        SETI(x, "runs", runs);
        SETF(x, "seconds_best", best_ing);
        SETF(x, "seconds_median", med_ing);
        SETF(x, "cpu_seconds_best", ing_cpu);
        SETF(x, "docs_per_s", (double)cc.docs / best_ing);
        SETF(x, "mb_per_s", (double)cc.file_bytes / 1e6 / best_ing);
        SETF(x, "requests_per_s", (double)nreq / best_ing);
        SETF(x, "spans_per_s", (double)spans / best_ing);
        SETI(x, "peak_rss_kib", peak_hwm);
        SETI(x, "peak_rss_anon_kib", peak_anon);
        SETI(x, "spans", spans);
        SETI(x, "log_events", events);
        SETI(x, "documents_reported", ndocs_ing);
        SETF(x, "summaries_s_best_run", summ_best);
        json_object_set_new(j, "ingest", x);
        a = json_array();
        for (size_t r = 0; r < runs; r++) {
            x = json_object();
            SETF(x, "floor_s", fw[r]);
            SETF(x, "floor_cpu_s", fc[r]);
            SETF(x, "simdjson_s", sw[r]);
            SETF(x, "ingest_s", iw[r]);
            SETF(x, "ingest_cpu_s", ic[r]);
            SETF(x, "ratio", fw[r] / iw[r]);
            SETF(x, "ratio_cpu", fc[r] / ic[r]);
            SETF(x, "floor_wall_over_cpu", fw[r] / fc[r]);
            SETI(x, "peak_rss_anon_kib", ianon[r]);
            SETI(x, "peak_rss_kib", ihwm[r]);
            json_array_append_new(a, x);
        }
        json_object_set_new(j, "rounds", a);
        SETF(j, "ratio", ratio);
        SETF(j, "ratio_cpu", ratio_cpu);
        x = json_object();
        SETI(x, "file_bytes", ms.size);
        SETI(x, "allocated_bytes", ms.alloc);
        SETF(x, "bytes_per_request", (double)ms.alloc / (double)nreq);
        SETF(x, "bytes_per_span",
             spans ? (double)ms.alloc / (double)spans : 0.0);
        json_object_set_new(j, "store", x);
        x = json_object();
        SETI(x, "process_runs", nproc);
        SETF(x, "process_p50_ms", pct(pl, nproc, 50));
        SETF(x, "process_p99_ms", pct(pl, nproc, 99));
        SETF(x, "process_cpu_p50_ms", pct(pc, nproc, 50));
        SETF(x, "process_cpu_p99_ms", pct(pc, nproc, 99));
        SETI(x, "process_failures", pfail);
        SETI(x, "inproc_runs", ni);
        SETF(x, "inproc_p50_ms", pct(il, ni, 50));
        SETF(x, "inproc_p99_ms", pct(il, ni, 99));
        SETI(x, "inproc_failures", ifail);
        SETI(x, "parent_rss_anon_kib", self.rss_anon_kib);
        SETF(x, "endpoints_s", ep.secs);
        SETI(x, "endpoints_exit", ep.exit);
        SETB(x, "endpoints_store_untouched", ep.untouched);
        SETI(x, "endpoints_peak_rss_anon_kib", ep.rss_anon_kib);
        json_object_set_new(j, "query", x);
        json_object_set_new(j, "criteria", crits_json(&cs));
        print_json(j, &rc);
        json_decref(j);
    } else {
        printf("hoptrace benchmark  (%s)\n", mach);
        printf("corpus     %s: %zu requests, %.1f MB in 3 files (%" PRIu64
               " GetRecords pages)%s\n",
               corpus_dir, nreq, (double)cc.file_bytes / 1e6, cc.pages,
               o->corpus ? "" : " (hoptrace simulate)");
        printf("documents  %zu = %" PRIu64 " X-Ray documents + %" PRIu64
               " CWL subscription messages + %" PRIu64
               " JSON log event messages, %.1f MB\n",
               cc.docs, cc.xray, cc.msgs, cc.event_json,
               (double)cc.bytes / 1e6);
        printf("\n%zu rounds, each: jansson floor, then ingest into a fresh "
               "store\n",
               runs);
        printf("%-6s %9s %9s %9s %9s %9s %7s %7s %10s %6s\n", "round",
               "floor s", "CPU s", "simd s", "ingest s", "CPU s", "ratio",
               "CPU", "RssAnon", "load");
        for (size_t r = 0; r < runs; r++)
            printf("%-6zu %9.3f %9.3f %9.3f %9.3f %9.3f %7.2f %7.2f %6.1f MiB "
                   "%6.2f\n",
                   r + 1, fw[r], fc[r], sw[r], iw[r], ic[r], fw[r] / iw[r],
                   fc[r] / ic[r], (double)ianon[r] / 1024.0, fw[r] / fc[r]);
        printf("(load: the floor's wall / CPU time; it runs on one thread, "
               "so above 1 the machine was busy during that round)\n");
        printf("\n%-34s %10s %10s %10s\n", "", "seconds", "docs/s", "MB/s");
        printf("%-34s %10.3f %10.0f %10.1f\n",
               "jansson floor (documents, best)", floor_s,
               (double)cc.docs / floor_s, (double)cc.bytes / 1e6 / floor_s);
        printf("%-34s %10.3f %10.0f %10.1f\n", "simdjson DOM parse (best)",
               simd_s, (double)cc.docs / simd_s,
               (double)cc.bytes / 1e6 / simd_s);
        printf("%-34s %10.3f %10.0f %10.1f\n", "hoptrace ingest (best)",
               best_ing, (double)cc.docs / best_ing,
               (double)cc.bytes / 1e6 / best_ing);
        printf("%-34s %10.3f\n", "hoptrace ingest (median)", med_ing);
        printf("(MB/s over the documents' bytes; ingest reads %.1f MB of "
               "files: %.1f MB/s; jansson over the files' %zu top-level "
               "values: %.3f s)\n",
               (double)cc.file_bytes / 1e6,
               (double)cc.file_bytes / 1e6 / best_ing, cc.top, top_s);
        printf("\nratio      floor / ingest = %.2f  (target >= 3; best of %zu "
               "each, alternated)\n",
               ratio, runs);
        printf("           in CPU time: %.3f s / %.3f s = %.2f  (ingest: user "
               "+ system, all threads)\n",
               floor_cpu, ing_cpu, ratio_cpu);
        printf("anchors    simdjson parses the documents %.1fx as fast as "
               "jansson; ingest takes %.1fx simdjson's parse\n",
               floor_s / simd_s, best_ing / simd_s);
        if (app_s > 0)
            printf("           LMDB appends the store's %" PRIu64
                   " pairs (%.1f MB of keys and values) sorted in %.3f s "
                   "(CPU %.3f s); ingest takes %.1fx that\n",
                   app_pairs, (double)app_bytes / 1e6, app_s, app_cpu,
                   best_ing / app_s);
        printf("memory     ingest's own peak RssAnon %.1f MiB (sampled every "
               "%d ms; target <= 256), peak RSS with the store's mapped file "
               "pages (VmHWM) %.1f MiB\n",
               (double)peak_anon / 1024.0, SAMPLE_MS,
               (double)peak_hwm / 1024.0);
        printf("ingest     %" PRIu64 " spans, %" PRIu64
               " log events; %.0f requests/s, %.0f spans/s; the request "
               "summaries took %.3f s of the best run (wall, from its summary "
               "line)\n",
               spans, events, (double)nreq / best_ing, (double)spans / best_ing,
               summ_best);
        printf("store      data.mdb %.1f MB allocated (file %.1f MB): %.0f "
               "bytes/request, %.0f bytes/span\n",
               (double)ms.alloc / 1e6, (double)ms.size / 1e6,
               (double)ms.alloc / (double)nreq,
               spans ? (double)ms.alloc / (double)spans : 0.0);
        printf("trace      process (posix_spawn): p50 %.2f ms  p99 %.2f ms  "
               "over %zu ids%s  (spawned by ht-bench at %.1f MiB RssAnon)\n",
               pct(pl, nproc, 50), pct(pl, nproc, 99), nproc,
               pfail ? "  FAILURES" : "", (double)self.rss_anon_kib / 1024.0);
        printf("           process CPU (user + system): p50 %.2f ms  p99 %.2f "
               "ms\n",
               pct(pc, nproc, 50), pct(pc, nproc, 99));
        printf("           in process: p50 %.3f ms  p99 %.3f ms  over %zu "
               "ids%s\n",
               pct(il, ni, 50), pct(il, ni, 99), ni, ifail ? "  FAILURES" : "");
        printf("endpoints  --format json after the last ingest: %.3f s, exit "
               "%d, data.mdb %s, peak RssAnon %.1f MiB\n",
               ep.secs, ep.exit, ep.untouched ? "untouched" : "written",
               (double)ep.rss_anon_kib / 1024.0);
        if (pfail || ifail || fails)
            printf("failures   %zu trace processes, %zu in-process lookups, "
                   "%" PRIu64 " documents jansson rejected\n",
                   pfail, ifail, fails);
        crits_print(&cs);
    }
    if (pfail || ifail)
        rc = 5;
rounds_out:
    free(fw);
    free(fc);
    free(tw);
    free(tc);
    free(iw);
    free(ic);
    free(sw);
    free(sc);
    free(ianon);
    free(ihwm);
    free(isumm);
out:
    ht_simd_docs_free(sd);
    free(pl);
    free(pc);
    free(il);
    corpus_free(&c);
    for (size_t k = 0; k < nreq && ids; k++)
        free(ids[k]);
    free(ids);
    if (!o->keep)
        unlink(outf);
    return rc;
}

/* ---- --soak: a store that lives for days ------------------------------ */

struct chunk {
    long long start_s;
    long seed;
    double gen_s, secs, cpu;
    double retain_s; /* retention's slices, from the summary line */
    bool retained;   /* the summary line says retention removed anything */
    double summ_s;   /* the request summaries' slices, from it too */
    bool summarized; /* the summary line says summaries were written */
    uint64_t docs, spans, events;
    long anon_kib, hwm_kib;
    struct mdb_stat ms;
};

/* Whether this hoptrace's `ingest --help` offers --retain (its help may go
 * to stdout or stderr). */
static bool ingest_has_retain(const char *hop, const char *work)
{
    char *argv[] = {(char *)hop, "ingest", "--help", NULL};
    char out[PATH_MAX], err[PATH_MAX];
    struct proc pr;
    bool yes = false;

    join(out, sizeof out, work, "ingest-help.out");
    join(err, sizeof err, work, "ingest-help.err");
    if (run(argv, out, err, false, &pr) == 0) {
        const char *paths[2] = {out, err};

        for (int i = 0; i < 2; i++) {
            size_t n;
            char *txt = read_file(paths[i], &n);

            if (txt && strstr(txt, "--retain"))
                yes = true;
            free(txt);
        }
    }
    unlink(out);
    unlink(err);
    return yes;
}

/* The first chunk's ids must be gone (`trace` exit 1): how many of up to
 * m sampled API Gateway ids are. */
static size_t check_gone(const struct opts *o, const char *store, json_t *reqs,
                         const char *outf, size_t *checked, char *why,
                         size_t whyn)
{
    size_t n = json_array_size(reqs), m = (size_t)o->check_ids, gone = 0;

    *checked = m < n ? m : n;
    for (size_t k = 0; k < *checked; k++) {
        json_t *t = json_array_get(reqs, sample_index(k, m, n)), *rs = NULL;
        const char *id =
            json_string_value(json_object_get(t, "apigw_request_id"));
        int ec = lookup(o->hoptrace, store, id ? id : "?", outf, &rs);

        if (ec == 1)
            gone++;
        else if (!why[0])
            snprintf(why, whyn, "%s: trace exit %d", id ? id : "?", ec);
        json_decref(rs);
    }
    return gone;
}

/* The last chunk's requests must be exact: up to m sampled requests, by
 * their API Gateway id (one request, exact) and by every other id. */
static size_t check_exact(const struct opts *o, const char *store, json_t *reqs,
                          const char *outf, size_t *checked, char *why,
                          size_t whyn)
{
    size_t n = json_array_size(reqs), m = (size_t)o->check_ids, exact = 0;

    *checked = m < n ? m : n;
    for (size_t k = 0; k < *checked; k++) {
        json_t *t = json_array_get(reqs, sample_index(k, m, n)), *rs = NULL;
        const char *id =
            json_string_value(json_object_get(t, "apigw_request_id"));
        char w[256] = "";
        int ec = lookup(o->hoptrace, store, id ? id : "?", outf, &rs);

        if (ec || !rs)
            snprintf(w, sizeof w, "trace exit %d", ec);
        else if (json_array_size(rs) != 1)
            snprintf(w, sizeof w, "%zu requests", json_array_size(rs));
        else if (request_exact(json_array_get(rs, 0), t, w, sizeof w) &&
                 ids_exact(o->hoptrace, store, outf, t,
                           json_object_get(json_array_get(rs, 0), "root"), w,
                           sizeof w))
            exact++;
        if (w[0] && !why[0])
            snprintf(why, whyn, "request %" JSON_INTEGER_FORMAT " (%s): %s",
                     json_integer_value(json_object_get(t, "i")), id ? id : "?",
                     w);
        json_decref(rs);
    }
    return exact;
}

static json_t *load_truth(const char *dir)
{
    char path[PATH_MAX];
    json_t *t, *r;

    join(path, sizeof path, dir, "truth.json");
    t = json_load_file(path, 0, NULL);
    r = json_incref(json_object_get(t, "requests"));
    json_decref(t);
    return r;
}

static int bench_soak(const struct opts *o, const char *work, const char *mach)
{
    char store[PATH_MAX], errf[PATH_MAX], outf[PATH_MAX], dir[PATH_MAX],
        sumline[1024], nbuf[32], sbuf[32], tbuf[32], when[32];
    char seg[PATH_MAX], cwl[PATH_MAX], kin[PATH_MAX];
    char gone_why[512] = "", exact_why[512] = "";
    size_t nch = (size_t)o->soak, done = 0, gone = 0, gone_n = 0, exact = 0,
           exact_n = 0;
    bool retain = ingest_has_retain(o->hoptrace, work);
    struct chunk *ch = calloc(nch, sizeof *ch);
    struct endpoints_run ep = {0};
    struct crits cs = {0};
    long peak_anon = 0, peak_hwm = 0;
    json_t *first = NULL, *last = NULL;
    double t_all = now_s();
    int rc = 0;

    if (!ch)
        die_oom();
    join(store, sizeof store, work, "soak-store");
    join(errf, sizeof errf, work, "stderr.txt");
    join(outf, sizeof outf, work, "stdout.txt");
    rm_rf(store);
    if (!retain)
        fprintf(stderr,
                "ht-bench: this hoptrace's ingest has no --retain: the chunks "
                "are ingested without retention (the retention and size "
                "criteria will say so)\n");
    if (!o->json) {
        printf("hoptrace soak  (%s)\n", mach);
        printf("%zu chunks of %ld requests, one day apart, into one store; "
               "ingest %s%s\n\n",
               nch, o->chunk_requests, retain ? "--retain " : "",
               retain ? o->retain : "WITHOUT --retain (not in this build)");
        printf("%-5s %-20s %6s %8s %8s %8s %8s %9s %11s %9s %11s\n", "chunk",
               "start", "seed", "ingest s", "CPU s", "retain s", "summ s",
               "docs/s", "RssAnon MiB", "HWM MiB", "data.mdb MB");
        fflush(stdout);
    }
    for (size_t i = 0; i < nch; i++) {
        struct chunk *c = &ch[i];
        struct proc pr;

        c->start_s = o->start_s + (long long)i * DAY_S;
        c->seed = o->seed + (long)i;
        snprintf(dir, sizeof dir, "%s/chunk-%zu", work, i + 1);
        snprintf(nbuf, sizeof nbuf, "%ld", o->chunk_requests);
        snprintf(sbuf, sizeof sbuf, "%ld", c->seed);
        snprintf(tbuf, sizeof tbuf, "%lld", c->start_s);
        char *gargv[] = {
            (char *)o->hoptrace, "simulate", "--requests", nbuf, "--seed", sbuf,
            "--start",           tbuf,       "--out",      dir,  NULL};

        if (run(gargv, NULL, errf, false, &pr) || !ok(&pr)) {
            last_line(errf, sumline, sizeof sumline);
            fprintf(stderr, "ht-bench: hoptrace simulate failed: %s\n",
                    sumline);
            rc = 5;
            break;
        }
        c->gen_s = pr.secs;
        join(seg, sizeof seg, dir, "segments.ndjson");
        join(cwl, sizeof cwl, dir, "logs-cwl.ndjson");
        join(kin, sizeof kin, dir, "logs-kinesis.json");
        char *with[] = {
            (char *)o->hoptrace, "--db", store, "ingest", "--retain",
            (char *)o->retain,   seg,    cwl,   kin,      NULL};
        char *without[] = {
            (char *)o->hoptrace, "--db", store, "ingest", seg, cwl, kin, NULL};

        if (run(retain ? with : without, NULL, errf, true, &pr) || !ok(&pr)) {
            last_line(errf, sumline, sizeof sumline);
            fprintf(stderr,
                    "ht-bench: chunk %zu: hoptrace ingest failed "
                    "(exit %d): %s\n",
                    i + 1, exit_code(&pr), sumline);
            rc = 5;
            break;
        }
        c->secs = pr.secs;
        c->cpu = pr.cpu_secs;
        c->anon_kib = pr.rss_anon_kib;
        c->hwm_kib = pr.hwm_kib;
        if (c->anon_kib > peak_anon)
            peak_anon = c->anon_kib;
        if (c->hwm_kib > peak_hwm)
            peak_hwm = c->hwm_kib;
        summary_line(errf, sumline, sizeof sumline);
        parse_summary(sumline, &c->docs, &c->spans, &c->events);
        c->retained =
            parse_slices_secs(sumline, RETENTION_CLAUSE, &c->retain_s);
        c->summarized =
            parse_slices_secs(sumline, SUMMARIES_CLAUSE, &c->summ_s);
        c->ms = mdb_stat(store);
        done++;
        if (!o->json) {
            rfc3339(c->start_s, when);
            printf("%-5zu %-20s %6ld %8.2f %8.2f %8.2f %8.2f %9.0f %11.1f "
                   "%9.1f %11.1f\n",
                   i + 1, when, c->seed, c->secs, c->cpu, c->retain_s,
                   c->summ_s, (double)c->docs / c->secs,
                   (double)c->anon_kib / 1024.0, (double)c->hwm_kib / 1024.0,
                   (double)c->ms.alloc / 1e6);
            fflush(stdout);
        }
        if (!o->keep) { /* the inputs are large; truth.json is kept */
            unlink(seg);
            unlink(cwl);
            unlink(kin);
        }
    }
    if (rc)
        goto out;

    /* right after the last chunk: endpoints, then the ids */
    ep = time_endpoints(o->hoptrace, store, outf);
    snprintf(dir, sizeof dir, "%s/chunk-%zu", work, nch);
    last = load_truth(dir);
    exact = check_exact(o, store, last, outf, &exact_n, exact_why,
                        sizeof exact_why);
    if (nch > 1) {
        join(dir, sizeof dir, work, "chunk-1");
        first = load_truth(dir);
        gone = check_gone(o, store, first, outf, &gone_n, gone_why,
                          sizeof gone_why);
    }

    double cpu_growth = ch[nch - 1].cpu / ch[0].cpu;
    /* the last chunk's CPU less its retention, against the first's: what
     * the store's size alone costs (a breakdown, not a criterion) */
    double cpu_growth_kept =
        (ch[nch - 1].cpu - ch[nch - 1].retain_s) / ch[0].cpu;
    double size_growth =
        nch >= 3 ? (double)ch[nch - 1].ms.alloc / (double)ch[2].ms.alloc : NAN;

    crit_add(&cs, "CPU of the last chunk <= 1.5x the first's",
             cpu_growth <= TARGET_CPU_GROWTH, "%.2fx (%.2f s / %.2f s)",
             cpu_growth, ch[nch - 1].cpu, ch[0].cpu);
    crit_add(&cs, "peak RssAnon over all chunks <= 256 MiB",
             peak_anon > 0 && (double)peak_anon / 1024.0 <= TARGET_RSS_MIB,
             "%.1f MiB", (double)peak_anon / 1024.0);
    if (nch > 1)
        crit_add(&cs, "the first chunk's requests are gone (trace exits 1)",
                 gone_n > 0 && gone == gone_n, "%zu/%zu gone%s%s%s", gone,
                 gone_n, gone_why[0] ? "; " : "", gone_why,
                 retain ? "" : " (ingested without --retain)");
    else
        crit_add(&cs, "the first chunk's requests are gone (trace exits 1)", -1,
                 "one chunk: not measured");
    crit_add(&cs, "the last chunk's requests are exact against its truth",
             exact_n > 0 && exact == exact_n, "%zu/%zu exact%s%s", exact,
             exact_n, exact_why[0] ? "; " : "", exact_why);
    if (nch >= 3)
        crit_add(&cs, "data.mdb after the last chunk <= 1.25x after the third",
                 size_growth <= TARGET_SIZE_GROWTH,
                 "%.2fx (%.1f MB / %.1f MB allocated)%s", size_growth,
                 (double)ch[nch - 1].ms.alloc / 1e6,
                 (double)ch[2].ms.alloc / 1e6,
                 retain ? "" : " (ingested without --retain)");
    else
        crit_add(&cs, "data.mdb after the last chunk <= 1.25x after the third",
                 -1, "fewer than 3 chunks: not measured");
    crit_add(&cs, "endpoints --format json < 1 s after the last chunk",
             ep.exit == 0 && ep.json_ok && ep.secs < TARGET_ENDPOINTS_S,
             "%.3f s, exit %d", ep.secs, ep.exit);
    crit_add(&cs, "endpoints opens the store read-only", ep.untouched,
             "data.mdb %s", ep.untouched ? "untouched" : "written");

    if (o->json) {
        json_t *j = json_object(), *x, *a = json_array();

        SETS(j, "machine", mach);
        x = json_object();
        SETI(x, "chunks", nch);
        SETI(x, "chunk_requests", o->chunk_requests);
        SETS(x, "retain", o->retain);
        SETB(x, "retain_supported", retain);
        rfc3339(o->start_s, when);
        SETS(x, "start", when);
        SETI(x, "seed", o->seed);
        SETF(x, "seconds", now_s() - t_all);
        json_object_set_new(j, "soak", x);
        for (size_t i = 0; i < nch; i++) {
            struct chunk *c = &ch[i];

            x = json_object();
            SETI(x, "chunk", i + 1);
            rfc3339(c->start_s, when);
            SETS(x, "start", when);
            SETI(x, "seed", c->seed);
            SETF(x, "generate_s", c->gen_s);
            SETF(x, "ingest_s", c->secs);
            SETF(x, "cpu_s", c->cpu);
            SETF(x, "retention_s", c->retain_s);
            SETB(x, "retention_reported", c->retained);
            SETF(x, "summaries_s", c->summ_s);
            SETB(x, "summaries_reported", c->summarized);
            SETI(x, "documents", c->docs);
            SETI(x, "spans", c->spans);
            SETI(x, "log_events", c->events);
            SETF(x, "docs_per_s", (double)c->docs / c->secs);
            SETI(x, "peak_rss_anon_kib", c->anon_kib);
            SETI(x, "peak_rss_kib", c->hwm_kib);
            SETI(x, "store_allocated_bytes", c->ms.alloc);
            SETI(x, "store_file_bytes", c->ms.size);
            json_array_append_new(a, x);
        }
        json_object_set_new(j, "chunks", a);
        x = json_object();
        SETF(x, "cpu_last_over_first", cpu_growth);
        SETF(x, "cpu_last_less_retention_over_first", cpu_growth_kept);
        SETF(x, "size_last_over_third", size_growth);
        SETI(x, "peak_rss_anon_kib", peak_anon);
        SETI(x, "peak_rss_kib", peak_hwm);
        json_object_set_new(j, "ratios", x);
        x = json_object();
        SETF(x, "seconds", ep.secs);
        SETI(x, "exit", ep.exit);
        SETB(x, "json", ep.json_ok);
        SETI(x, "peak_rss_anon_kib", ep.rss_anon_kib);
        SETB(x, "store_untouched", ep.untouched);
        json_object_set_new(j, "endpoints", x);
        x = json_object();
        SETI(x, "checked", gone_n);
        SETI(x, "gone", gone);
        json_object_set_new(j, "first_chunk", x);
        x = json_object();
        SETI(x, "checked", exact_n);
        SETI(x, "exact", exact);
        if (exact_why[0])
            SETS(x, "first_failure", exact_why);
        json_object_set_new(j, "last_chunk", x);
        json_object_set_new(j, "criteria", crits_json(&cs));
        print_json(j, &rc);
        json_decref(j);
    } else {
        char sz[64] = "n/a (fewer than 3 chunks)";

        if (isfinite(size_growth))
            snprintf(sz, sizeof sz, "%.2f", size_growth);
        printf("(retain s: the time retention's slices took on the writer "
               "thread; summ s: the time the request summaries' slices took, "
               "on the writer thread and the readers it starts; both wall "
               "time from ingest's summary line, and part of ingest s)\n");
        printf("\nCPU last / first %.2f; data.mdb last / third %s; peak "
               "RssAnon %.1f MiB, peak RSS with mapped store pages %.1f MiB\n",
               cpu_growth, sz, (double)peak_anon / 1024.0,
               (double)peak_hwm / 1024.0);
        printf("CPU last less its retention (%.2f s) / first %.2f: what the "
               "larger store costs by itself\n",
               ch[nch - 1].retain_s, cpu_growth_kept);
        if (ch[0].summarized && ch[nch - 1].summarized)
            printf(
                "request summaries last / first %.2f (%.2f s / %.2f s "
                "wall); ingest less retention and summaries, last / first "
                "%.2f (wall)\n",
                ch[nch - 1].summ_s / ch[0].summ_s, ch[nch - 1].summ_s,
                ch[0].summ_s,
                (ch[nch - 1].secs - ch[nch - 1].retain_s - ch[nch - 1].summ_s) /
                    (ch[0].secs - ch[0].retain_s - ch[0].summ_s));
        printf("endpoints --format json: %.3f s, exit %d, data.mdb %s, peak "
               "RssAnon %.1f MiB\n",
               ep.secs, ep.exit, ep.untouched ? "untouched" : "written",
               (double)ep.rss_anon_kib / 1024.0);
        crits_print(&cs);
        printf("(%.0f s in all)\n", now_s() - t_all);
    }
out:
    json_decref(first);
    json_decref(last);
    free(ch);
    if (!o->keep)
        unlink(outf);
    (void)done;
    return rc;
}

/* ---- main ------------------------------------------------------------- */

/* --start: epoch seconds or RFC 3339, whole seconds. */
static bool parse_start(const char *s, long long *out)
{
    char *end;
    long long v;
    int64_t us;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (!errno && end != s && !*end && v >= 0 && v < 10000000000LL) {
        *out = v;
        return true;
    }
    if (!ht_parse_iso8601(s, &us) || us < 0)
        return false;
    *out = us / 1000000;
    return true;
}

int main(int argc, char **argv)
{
    struct opts o = {.requests = 5000,
                     .seed = 42,
                     .runs = 3,
                     .trace_ids = 200,
                     .chunk_requests = 8000,
                     .check_ids = 20,
                     .start_s = SOAK_START_DEFAULT,
                     .retain = "2d",
                     .hoptrace = HT_BENCH_HOPTRACE};
    char work[1024], mach[512];
    int rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(a, "--json")) {
            o.json = true;
            continue;
        } else if (!strcmp(a, "--keep")) {
            o.keep = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "ht-bench: %s needs a value (see --help)\n", a);
            return 2;
        }
        if (!strcmp(a, "--requests"))
            o.requests = parse_long(a, v, 1, 100000000);
        else if (!strcmp(a, "--seed"))
            o.seed = parse_long(a, v, 0, LONG_MAX / 2);
        else if (!strcmp(a, "--runs"))
            o.runs = parse_long(a, v, 1, 100);
        else if (!strcmp(a, "--trace-ids"))
            o.trace_ids = parse_long(a, v, 0, 1000000);
        else if (!strcmp(a, "--soak"))
            o.soak = parse_long(a, v, 1, 1000);
        else if (!strcmp(a, "--chunk-requests"))
            o.chunk_requests = parse_long(a, v, 1, 100000000);
        else if (!strcmp(a, "--check-ids"))
            o.check_ids = parse_long(a, v, 1, 1000000);
        else if (!strcmp(a, "--retain"))
            o.retain = v;
        else if (!strcmp(a, "--start")) {
            if (!parse_start(v, &o.start_s)) {
                fprintf(stderr,
                        "ht-bench: --start takes epoch seconds or RFC 3339, "
                        "not '%s'\n",
                        v);
                return 2;
            }
        } else if (!strcmp(a, "--corpus"))
            o.corpus = v;
        else if (!strcmp(a, "--hoptrace"))
            o.hoptrace = v;
        else if (!strcmp(a, "--work"))
            o.work = v;
        else {
            fprintf(stderr, "ht-bench: unknown option %s (see --help)\n", a);
            return 2;
        }
        i++;
    }
    if ((o.work && strlen(o.work) > 1000) ||
        (o.corpus && strlen(o.corpus) > 2000)) {
        fputs("ht-bench: --work / --corpus path too long\n", stderr);
        return 2;
    }
    if (o.soak && o.corpus) {
        fputs("ht-bench: --soak generates its chunks; it takes no --corpus\n",
              stderr);
        return 2;
    }
    if (access(o.hoptrace, X_OK)) {
        fprintf(stderr,
                "ht-bench: no hoptrace binary at %s (build it, or pass "
                "--hoptrace PATH)\n",
                o.hoptrace);
        return 5;
    }
    if (o.work) {
        snprintf(work, sizeof work, "%s", o.work);
        if (mkdir(work, 0777) && errno != EEXIST) {
            fprintf(stderr, "ht-bench: cannot create %s: %s\n", work,
                    strerror(errno));
            return 5;
        }
    } else {
        const char *t = getenv("TMPDIR");

        snprintf(work, sizeof work, "%s/ht-bench-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(work)) {
            fprintf(stderr, "ht-bench: cannot create a scratch folder: %s\n",
                    strerror(errno));
            return 5;
        }
    }
    machine(mach, sizeof mach);
    rc = o.soak ? bench_soak(&o, work, mach) : bench_default(&o, work, mach);

    if (o.keep) {
        fprintf(stderr, "ht-bench: kept %s\n", work);
    } else if (!o.work) {
        rm_rf(work);
    } else {
        /* a given --work keeps the folder, not what was made in it */
        char p[PATH_MAX];

        join(p, sizeof p, work, "store");
        rm_rf(p);
        join(p, sizeof p, work, "soak-store");
        rm_rf(p);
        join(p, sizeof p, work, "stderr.txt");
        unlink(p);
        if (!o.corpus) {
            join(p, sizeof p, work, "corpus");
            rm_rf(p);
        }
        for (long i = 1; i <= o.soak; i++) {
            snprintf(p, sizeof p, "%s/chunk-%ld", work, i);
            rm_rf(p);
        }
    }
    return rc;
}
