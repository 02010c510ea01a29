/*
 * ht_bench.c - the ingest / query benchmark of issue 6, in one run:
 *
 *   1. a corpus: `hoptrace simulate` (default 5,000 requests, fixed seed)
 *      or --corpus DIR (the sample's layout);
 *   2. the jansson parse floor: json_loadb + json_decref over every JSON
 *      document of the corpus, held in memory (best of --runs); also the
 *      floor over the files' top-level values, for transparency;
 *   3. end-to-end ingest: `hoptrace ingest` of the corpus files into a
 *      fresh store, as a child process (wall time, peak RSS from wait4);
 *   4. the ratio floor time / ingest time, documents/s, MB/s, store bytes
 *      per request and per span;
 *   5. query latency: `hoptrace trace ID --format json` as a process for
 *      --trace-ids request ids (process start included), and in process
 *      through query/ht_query.h (lookup + critical path) for every request.
 *
 * Prints a table, or with --json one JSON object. Owned by bench/; it uses
 * the store and query libraries' public headers only and never writes a
 * store itself (ingest does, as the user would run it).
 */
#define _GNU_SOURCE
#include "ht_query.h"
#include "ht_store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#ifndef HT_BENCH_HOPTRACE
#define HT_BENCH_HOPTRACE "hoptrace"
#endif

static const char usage[] =
    "usage: ht-bench [--requests N] [--seed S] [--corpus DIR] [--runs R]\n"
    "                [--trace-ids M] [--hoptrace PATH] [--work DIR] [--keep]\n"
    "                [--json]\n"
    "\n"
    "Generates a payments corpus with `hoptrace simulate` (or reads\n"
    "--corpus DIR: segments.ndjson, logs-cwl.ndjson, logs-kinesis.json,\n"
    "truth.json), measures the jansson parse floor of its JSON documents\n"
    "and the end-to-end `hoptrace ingest` of the same files, and prints\n"
    "ratio = floor time / ingest time, documents/s, MB/s, peak RSS, store\n"
    "bytes and query latency p50/p99. See bench/README.md.\n"
    "\n"
    "  --requests N     corpus size (default 5000)\n"
    "  --seed S         corpus seed (default 42)\n"
    "  --corpus DIR     use this corpus instead of generating one\n"
    "  --runs R         floor: best of R; ingest: best and median of R\n"
    "                   (default 3)\n"
    "  --trace-ids M    `hoptrace trace` processes to time (default 200)\n"
    "  --hoptrace PATH  the hoptrace binary (default: the one built with "
    "this)\n"
    "  --work DIR       scratch folder (default: a new one under $TMPDIR)\n"
    "  --keep           keep the scratch folder (corpus and store)\n"
    "  --json           one JSON object on stdout instead of the table\n"
    "\n"
    "exit status: 0 measured, 2 usage error, 5 a step failed\n";

struct doc {
    const char *p;
    size_t n;
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

struct opts {
    long requests, seed, runs, trace_ids;
    const char *corpus, *hoptrace, *work;
    bool keep, json;
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
    uint64_t n_xray, n_msgs, n_event_json;
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

static int load_corpus(const char *dir, struct corpus *c)
{
    char path[PATH_MAX];
    json_t *root, *recs, *r;
    size_t i;

    memset(c, 0, sizeof *c);
    snprintf(path, sizeof path, "%s/segments.ndjson", dir);
    c->seg = read_file(path, &c->nseg);
    snprintf(path, sizeof path, "%s/logs-cwl.ndjson", dir);
    c->cwl = read_file(path, &c->ncwl);
    snprintf(path, sizeof path, "%s/logs-kinesis.json", dir);
    c->kin = read_file(path, &c->nkin);
    if (!c->seg || !c->cwl || !c->kin) {
        fprintf(stderr,
                "ht-bench: %s lacks segments.ndjson, logs-cwl.ndjson or "
                "logs-kinesis.json (make one with hoptrace simulate)\n",
                dir);
        return -1;
    }
    c->file_bytes = c->nseg + c->ncwl + c->nkin;
    const char *p;
    size_t n, pos = 0;

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
    docs_add(&c->top, c->kin, c->nkin);
    root = json_loadb(c->kin, c->nkin, 0, NULL);
    recs = json_object_get(root, "Records");
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
    json_decref(root);
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
}

/* Best of runs: json_loadb + json_decref over every document. */
static double cpu_s(void)
{
    struct timespec t;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Best of runs: json_loadb + json_decref over every document. Wall time;
 * *cpu gets the CPU time of the best run. */
static double parse_floor(const struct docs *ds, long runs, uint64_t *fails,
                          double *cpu)
{
    double best = 1e300;

    for (long r = 0; r < runs; r++) {
        double t0 = now_s(), c0 = cpu_s();
        uint64_t bad = 0;

        for (size_t i = 0; i < ds->n; i++) {
            json_t *j = json_loadb(ds->d[i].p, ds->d[i].n, 0, NULL);

            if (!j)
                bad++;
            json_decref(j);
        }
        double t = now_s() - t0, c = cpu_s() - c0;

        if (t < best) {
            best = t;
            *cpu = c;
        }
        *fails = bad;
    }
    return best;
}

/* ---- child processes -------------------------------------------------- */

struct proc {
    int status;
    double secs;
    double cpu_secs; /* user + system of the child */
    long maxrss_kb;
};

/* Runs argv with stdout to out_path (or /dev/null) and stderr to err_path
 * (or /dev/null); wall time around fork..wait4, peak RSS from wait4. */
static int run(char *const argv[], const char *out_path, const char *err_path,
               struct proc *pr)
{
    struct rusage ru;
    double t0 = now_s();
    pid_t pid;

    pr->status = -1;
    pr->secs = 0;
    pr->cpu_secs = 0;
    pr->maxrss_kb = 0;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int o = open(out_path ? out_path : "/dev/null",
                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err_path ? err_path : "/dev/null",
                     O_WRONLY | O_CREAT | O_TRUNC, 0644);

        if (o < 0 || e < 0)
            _exit(126);
        dup2(o, 1);
        dup2(e, 2);
        close(o);
        close(e);
        execv(argv[0], argv);
        _exit(127);
    }
    while (wait4(pid, &pr->status, 0, &ru) < 0)
        if (errno != EINTR)
            return -1;
    pr->secs = now_s() - t0;
    pr->cpu_secs =
        (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
        (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    pr->maxrss_kb = ru.ru_maxrss;
    return 0;
}

static int ok(const struct proc *pr)
{
    return WIFEXITED(pr->status) && WEXITSTATUS(pr->status) == 0;
}

static int rm_rf(const char *path)
{
    char *argv[] = {"/bin/rm", "-rf", (char *)path, NULL};
    struct proc pr;

    return run(argv, NULL, NULL, &pr) == 0 && ok(&pr) ? 0 : -1;
}

static void last_line(const char *path, char *out, size_t n)
{
    size_t len;
    char *p = read_file(path, &len), *s;

    out[0] = 0;
    if (!p)
        return;
    while (len && (p[len - 1] == '\n' || p[len - 1] == '\r'))
        p[--len] = 0;
    s = strrchr(p, '\n');
    snprintf(out, n, "%s", s ? s + 1 : p);
    free(p);
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

int main(int argc, char **argv)
{
    struct opts o = {.requests = 5000,
                     .seed = 42,
                     .runs = 3,
                     .trace_ids = 200,
                     .hoptrace = HT_BENCH_HOPTRACE};
    char work[1024], corpus_dir[2048], store[1100];
    char errf[PATH_MAX], tmp[PATH_MAX], sumline[1024], mach[512];
    char seg[PATH_MAX], cwl[PATH_MAX], kin[PATH_MAX], nbuf[32], sbuf[32];
    struct corpus c;
    struct proc pr;
    json_t *truth, *reqs;
    size_t nreq;
    double floor_s, top_s, *ing, best_ing, med_ing, gen_s = 0;
    double floor_cpu = 0, top_cpu = 0, ing_cpu = 1e300;
    long peak_kb = 0;
    uint64_t fails = 0, top_fails = 0, spans = 0, events = 0, ndocs_ing = 0;
    struct stat st;
    int rc = 0;

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
            o.seed = parse_long(a, v, 0, LONG_MAX);
        else if (!strcmp(a, "--runs"))
            o.runs = parse_long(a, v, 1, 100);
        else if (!strcmp(a, "--trace-ids"))
            o.trace_ids = parse_long(a, v, 0, 1000000);
        else if (!strcmp(a, "--corpus"))
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
    snprintf(store, sizeof store, "%s/store", work);
    snprintf(errf, sizeof errf, "%s/stderr.txt", work);
    machine(mach, sizeof mach);

    /* 1. the corpus */
    if (o.corpus) {
        snprintf(corpus_dir, sizeof corpus_dir, "%s", o.corpus);
    } else {
        snprintf(corpus_dir, sizeof corpus_dir, "%s/corpus", work);
        snprintf(nbuf, sizeof nbuf, "%ld", o.requests);
        snprintf(sbuf, sizeof sbuf, "%ld", o.seed);
        char *gargv[] = {(char *)o.hoptrace,
                         "simulate",
                         "--requests",
                         nbuf,
                         "--seed",
                         sbuf,
                         "--out",
                         corpus_dir,
                         NULL};

        if (!o.json)
            fprintf(stderr, "ht-bench: generating %ld requests (seed %ld)\n",
                    o.requests, o.seed);
        if (run(gargv, NULL, errf, &pr) || !ok(&pr)) {
            last_line(errf, sumline, sizeof sumline);
            fprintf(stderr, "ht-bench: hoptrace simulate failed: %s\n",
                    sumline);
            rc = 5;
            goto out;
        }
        gen_s = pr.secs;
    }
    snprintf(seg, sizeof seg, "%s/segments.ndjson", corpus_dir);
    snprintf(cwl, sizeof cwl, "%s/logs-cwl.ndjson", corpus_dir);
    snprintf(kin, sizeof kin, "%s/logs-kinesis.json", corpus_dir);
    snprintf(tmp, sizeof tmp, "%s/truth.json", corpus_dir);
    truth = json_load_file(tmp, 0, NULL);
    reqs = json_object_get(truth, "requests");
    nreq = json_array_size(reqs);
    if (!nreq) {
        fprintf(stderr,
                "ht-bench: %s has no requests (a truth.json is "
                "needed for the query ids)\n",
                tmp);
        json_decref(truth);
        rc = 5;
        goto out;
    }
    if (load_corpus(corpus_dir, &c)) {
        json_decref(truth);
        rc = 5;
        goto out;
    }

    /* 2. the jansson floor */
    if (!o.json)
        fprintf(stderr, "ht-bench: jansson floor over %zu documents\n",
                c.docs.n);
    floor_s = parse_floor(&c.docs, o.runs, &fails, &floor_cpu);
    top_s = parse_floor(&c.top, o.runs, &top_fails, &top_cpu);

    /* 3. ingest, R times into a fresh store */
    ing = calloc((size_t)o.runs, sizeof *ing);
    if (!ing)
        die_oom();
    for (long r = 0; r < o.runs; r++) {
        char *iargv[] = {
            (char *)o.hoptrace, "--db", store, "ingest", seg, cwl, kin, NULL};

        if (!o.json)
            fprintf(stderr, "ht-bench: ingest run %ld/%ld\n", r + 1, o.runs);
        if (rm_rf(store) || run(iargv, NULL, errf, &pr) || !ok(&pr)) {
            last_line(errf, sumline, sizeof sumline);
            fprintf(stderr, "ht-bench: hoptrace ingest failed: %s\n", sumline);
            rc = 5;
            break;
        }
        ing[r] = pr.secs;
        if (pr.cpu_secs < ing_cpu)
            ing_cpu = pr.cpu_secs;
        if (pr.maxrss_kb > peak_kb)
            peak_kb = pr.maxrss_kb;
    }
    if (rc) {
        free(ing);
        json_decref(truth);
        corpus_free(&c);
        goto out;
    }
    last_line(errf, sumline, sizeof sumline);
    {
        const char *p = strstr(sumline, "ingested ");

        if (p)
            sscanf(p,
                   "ingested %" SCNu64 " documents (%" SCNu64
                   " spans, %" SCNu64,
                   &ndocs_ing, &spans, &events);
    }
    qsort(ing, (size_t)o.runs, sizeof *ing, cmp_double);
    best_ing = ing[0];
    med_ing = ing[o.runs / 2];
    snprintf(tmp, sizeof tmp, "%s/data.mdb", store);
    if (stat(tmp, &st)) {
        fprintf(stderr, "ht-bench: no %s after ingest\n", tmp);
        memset(&st, 0, sizeof st);
    }

    /* 4. queries: processes, then in process */
    size_t nproc = (size_t)o.trace_ids < nreq ? (size_t)o.trace_ids : nreq;
    double *pl = calloc(nproc + 1, sizeof *pl), *il = calloc(nreq, sizeof *il);
    double *pc = calloc(nproc + 1, sizeof *pc);
    size_t pfail = 0, ifail = 0, ni = 0;
    struct ht_store *s = NULL;

    if (!pl || !il || !pc)
        die_oom();
    if (!o.json)
        fprintf(stderr,
                "ht-bench: %zu trace processes, %zu in-process "
                "queries\n",
                nproc, nreq);
    for (size_t k = 0; k < nproc; k++) {
        size_t idx = k * nreq / nproc;
        const char *id = json_string_value(
            json_object_get(json_array_get(reqs, idx), "apigw_request_id"));
        char *targv[] = {(char *)o.hoptrace,      "--db",     store,  "trace",
                         (char *)(id ? id : "?"), "--format", "json", NULL};

        if (run(targv, NULL, NULL, &pr) || !ok(&pr))
            pfail++;
        pl[k] = pr.secs * 1e3;
        pc[k] = pr.cpu_secs * 1e3;
    }
    qsort(pl, nproc, sizeof *pl, cmp_double);
    qsort(pc, nproc, sizeof *pc, cmp_double);
    if (ht_store_open(store, true, &s) == 0) {
        for (size_t k = 0; k < nreq; k++) {
            const char *id = json_string_value(
                json_object_get(json_array_get(reqs, k), "apigw_request_id"));
            struct ht_result *res = NULL;
            double t0 = now_s();
            int qrc = id ? ht_query_trace(s, id, &res) : HT_ERR_NOTFOUND;
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
    qsort(il, ni, sizeof *il, cmp_double);

    /* 5. report */
    double ratio = floor_s / best_ing;
    double docs_s = (double)c.docs.n / best_ing;
    double mb_s = (double)c.file_bytes / 1e6 / best_ing;
    double floor_docs_s = (double)c.docs.n / floor_s;
    double floor_mb_s = (double)c.docs.bytes / 1e6 / floor_s;
    uint64_t alloc = (uint64_t)st.st_blocks * 512;

    if (o.json) {
        json_t *j = json_object(), *x;

#define SETI(obj, k, v)                                                        \
    json_object_set_new(obj, k, json_integer((json_int_t)(v)))
#define SETF(obj, k, v) json_object_set_new(obj, k, json_real(v))
        json_object_set_new(j, "machine", json_string(mach));
        x = json_object();
        json_object_set_new(x, "dir", json_string(corpus_dir));
        SETI(x, "requests", nreq);
        SETI(x, "seed", o.seed);
        json_object_set_new(x, "generated", json_boolean(o.corpus == NULL));
        SETF(x, "generate_s", gen_s);
        SETI(x, "file_bytes", c.file_bytes);
        json_object_set_new(j, "corpus", x);
        x = json_object();
        SETI(x, "total", c.docs.n);
        SETI(x, "xray", c.n_xray);
        SETI(x, "log_messages", c.n_msgs);
        SETI(x, "log_event_json", c.n_event_json);
        SETI(x, "bytes", c.docs.bytes);
        SETI(x, "top_level_values", c.top.n);
        SETI(x, "parse_failures", fails);
        json_object_set_new(j, "documents", x);
        x = json_object();
        SETI(x, "runs", o.runs);
        SETF(x, "seconds", floor_s);
        SETF(x, "docs_per_s", floor_docs_s);
        SETF(x, "mb_per_s", floor_mb_s);
        SETF(x, "top_level_seconds", top_s);
        SETF(x, "cpu_seconds", floor_cpu);
        SETF(x, "top_level_cpu_seconds", top_cpu);
        SETF(x, "top_level_mb_per_s", (double)c.file_bytes / 1e6 / top_s);
        json_object_set_new(j, "floor", x);
        x = json_object();
        SETI(x, "runs", o.runs);
        SETF(x, "seconds_best", best_ing);
        SETF(x, "seconds_median", med_ing);
        SETF(x, "docs_per_s", docs_s);
        SETF(x, "mb_per_s", mb_s);
        SETF(x, "requests_per_s", (double)nreq / best_ing);
        SETF(x, "spans_per_s", (double)spans / best_ing);
        SETI(x, "peak_rss_kib", peak_kb);
        SETI(x, "spans", spans);
        SETI(x, "log_events", events);
        SETI(x, "documents_reported", ndocs_ing);
        json_object_set_new(j, "ingest", x);
        SETF(j, "ratio", ratio);
        SETF(x, "cpu_seconds_best", ing_cpu);
        SETF(j, "ratio_cpu", floor_cpu / ing_cpu);
        x = json_object();
        SETI(x, "file_bytes", st.st_size);
        SETI(x, "allocated_bytes", alloc);
        SETF(x, "bytes_per_request", (double)alloc / (double)nreq);
        SETF(x, "bytes_per_span", spans ? (double)alloc / (double)spans : 0.0);
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
        json_object_set_new(j, "query", x);
#undef SETI
#undef SETF
        char *txt =
            j ? json_dumps(j, JSON_INDENT(1) | JSON_PRESERVE_ORDER) : NULL;

        if (!txt) {
            fputs("ht-bench: cannot render JSON\n", stderr);
            rc = 5;
        } else {
            puts(txt);
        }
        free(txt);
        json_decref(j);
    } else {
        printf("hoptrace benchmark  (%s)\n", mach);
        printf("corpus     %s: %zu requests, %.1f MB in 3 files%s\n",
               corpus_dir, nreq, (double)c.file_bytes / 1e6,
               o.corpus ? "" : " (hoptrace simulate)");
        printf("documents  %zu = %" PRIu64 " X-Ray documents + %" PRIu64
               " CWL subscription messages + %" PRIu64
               " JSON log event messages, %.1f MB\n",
               c.docs.n, c.n_xray, c.n_msgs, c.n_event_json,
               (double)c.docs.bytes / 1e6);
        printf("\n%-34s %10s %10s %10s\n", "", "seconds", "docs/s", "MB/s");
        printf("%-34s %10.3f %10.0f %10.1f\n",
               "jansson floor (documents, best)", floor_s, floor_docs_s,
               floor_mb_s);
        printf("%-34s %10.3f %10.0f %10.1f\n", "hoptrace ingest (best)",
               best_ing, docs_s, (double)c.docs.bytes / 1e6 / best_ing);
        printf("%-34s %12.3f\n", "hoptrace ingest (median)", med_ing);
        printf("(MB/s over the documents' bytes; ingest reads %.1f MB of "
               "files: %.1f MB/s; jansson over the files' %zu top-level "
               "values: %.3f s)\n",
               (double)c.file_bytes / 1e6, mb_s, c.top.n, top_s);
        printf("\nratio      floor / ingest = %.2f  (target >= 3)\n", ratio);
        printf(
            "           in CPU time: %.3f s / %.3f s = %.2f  (ingest: user + "
            "system, all threads; steadier on a busy machine)\n",
            floor_cpu, ing_cpu, floor_cpu / ing_cpu);
        printf("peak RSS   %.1f MiB during ingest  (target <= 256)\n",
               (double)peak_kb / 1024.0);
        printf("ingest     %" PRIu64 " spans, %" PRIu64
               " log events; %.0f requests/s, %.0f spans/s\n",
               spans, events, (double)nreq / best_ing,
               (double)spans / best_ing);
        printf("store      data.mdb %.1f MB allocated (file %.1f MB): %.0f "
               "bytes/request, %.0f bytes/span\n",
               (double)alloc / 1e6, (double)st.st_size / 1e6,
               (double)alloc / (double)nreq,
               spans ? (double)alloc / (double)spans : 0.0);
        printf("trace      process:    p50 %.2f ms  p99 %.2f ms  over %zu "
               "ids (target p99 <= 20)%s\n",
               pct(pl, nproc, 50), pct(pl, nproc, 99), nproc,
               pfail ? "  FAILURES" : "");
        printf("           process CPU (user + system): p50 %.2f ms  p99 %.2f "
               "ms\n",
               pct(pc, nproc, 50), pct(pc, nproc, 99));
        printf("           in process: p50 %.3f ms  p99 %.3f ms  over %zu "
               "ids (target p99 <= 1)%s\n",
               pct(il, ni, 50), pct(il, ni, 99), ni, ifail ? "  FAILURES" : "");
        if (pfail || ifail || fails)
            printf("failures   %zu trace processes, %zu in-process lookups, "
                   "%" PRIu64 " documents jansson rejected\n",
                   pfail, ifail, fails);
    }
    if (pfail || ifail)
        rc = 5;
    free(pl);
    free(pc);
    free(il);
    free(ing);
    json_decref(truth);
    corpus_free(&c);
out:
    if (o.keep)
        fprintf(stderr, "ht-bench: kept %s\n", work);
    else if (!o.work)
        rm_rf(work);
    else {
        rm_rf(store);
        if (!o.corpus)
            rm_rf(corpus_dir);
        unlink(errf);
    }
    return rc;
}
