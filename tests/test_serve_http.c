/*
 * test_serve_http.c - `hoptrace serve` over real HTTP (libcurl), against
 * servers this program starts on free loopback ports and stops, also when
 * a check fails.
 *
 *   test_serve_http HOPTRACE WORKDIR           the API, errors, token,
 *                                              concurrency, SIGTERM, the
 *                                              store appearing, --udp
 *   test_serve_http HOPTRACE WORKDIR promtool  /metrics through promtool
 *                                              check metrics (77: no
 *                                              promtool)
 *
 * The store is built from a corpus `hoptrace simulate` writes with a seed
 * no other test uses; every id of every request in its truth.json is asked
 * of /api/v1/trace/{id} and compared byte for byte with `hoptrace trace ID
 * --format json`.
 */
#define _GNU_SOURCE
#include "ht_test.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <arpa/inet.h>

extern char **environ;

static const char *hoptrace, *work;

/* ---- buffers and processes ------------------------------------------- */

struct buf {
    char *p;
    size_t n, cap;
};

static void buf_add(struct buf *b, const void *p, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void buf_free(struct buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Runs argv to its end; its stdout into out (NULL: discarded), stderr
 * passed through. The exit status, or -1. */
static int run(char *const argv[], struct buf *out)
{
    posix_spawn_file_actions_t fa;
    int fds[2], st;
    pid_t pid;

    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    if (posix_spawn(&pid, argv[0], &fa, NULL, argv, environ) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    for (;;) {
        char tmp[65536];
        ssize_t n = read(fds[0], tmp, sizeof(tmp));

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (out)
            buf_add(out, tmp, (size_t)n);
    }
    close(fds[0]);
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A running `hoptrace serve`: its stderr is collected by a thread. */
struct server {
    pid_t pid;
    int err_fd;
    pthread_t reader;
    pthread_mutex_t mu;
    struct buf err;
    char base[300]; /* http://127.0.0.1:PORT */
    bool running;
};

static void *read_stderr(void *arg)
{
    struct server *s = arg;
    char tmp[4096];
    ssize_t n;

    while ((n = read(s->err_fd, tmp, sizeof(tmp))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        pthread_mutex_lock(&s->mu);
        buf_add(&s->err, tmp, (size_t)n);
        pthread_mutex_unlock(&s->mu);
        fwrite(tmp, 1, (size_t)n, stderr);
    }
    return NULL;
}

/* Whether stderr so far holds `what`; *line gets the rest of its line. */
static bool err_has(struct server *s, const char *what, char *rest,
                    size_t restn)
{
    bool found = false;

    pthread_mutex_lock(&s->mu);
    if (s->err.p) {
        const char *p = strstr(s->err.p, what);

        if (p && rest) {
            const char *e = strchr(p, '\n');

            p += strlen(what);
            if (e) {
                snprintf(rest, restn, "%.*s", (int)(e - p), p);
                found = true;
            }
        } else if (p) {
            found = true;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return found;
}

static struct server *all_servers[16];

/* Starts `hoptrace --db DB serve ARGS...` and waits for its "serving"
 * line. NULL when it did not start (exit code in *code, if it exited). */
static struct server *serve_start(const char *db, const char *const *args,
                                  int *code)
{
    struct server *s = calloc(1, sizeof(*s));
    const char *argv[40];
    posix_spawn_file_actions_t fa;
    char rest[256];
    int n = 0, fds[2];
    double until = now_s() + 30;

    argv[n++] = hoptrace;
    argv[n++] = "--db";
    argv[n++] = db;
    argv[n++] = "serve";
    for (int i = 0; args[i] && n < 38; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    if (code)
        *code = -1;
    pthread_mutex_init(&s->mu, NULL);
    if (pipe2(fds, O_CLOEXEC) != 0)
        abort();
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    if (posix_spawn(&s->pid, hoptrace, &fa, NULL, (char *const *)argv,
                    environ) != 0)
        abort();
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    s->err_fd = fds[0];
    s->running = true;
    pthread_create(&s->reader, NULL, read_stderr, s);
    for (int i = 0; i < 16; i++)
        if (!all_servers[i]) {
            all_servers[i] = s;
            break;
        }
    while (now_s() < until) {
        int st;

        if (err_has(s, "serving http://", rest, sizeof(rest))) {
            char *slash = strchr(rest, '/');

            if (slash)
                *slash = 0;
            snprintf(s->base, sizeof(s->base), "http://%s", rest);
            return s;
        }
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->running = false;
            if (code)
                *code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
            pthread_join(s->reader, NULL);
            close(s->err_fd);
            return NULL;
        }
        nap_ms(20);
    }
    fprintf(stderr, "serve did not start within 30 s\n");
    return NULL;
}

/* Sends sig and waits for the exit. The exit status (128+N: killed). */
static int serve_stop(struct server *s, int sig)
{
    int st = 0;
    double until = now_s() + 30;

    if (!s || !s->running)
        return -1;
    kill(s->pid, sig);
    while (waitpid(s->pid, &st, WNOHANG) != s->pid) {
        if (now_s() > until) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &st, 0);
            break;
        }
        nap_ms(10);
    }
    s->running = false;
    pthread_join(s->reader, NULL);
    close(s->err_fd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* A failing test still stops every server it started. */
static void stop_all(void)
{
    for (int i = 0; i < 16; i++)
        if (all_servers[i] && all_servers[i]->running) {
            kill(all_servers[i]->pid, SIGKILL);
            waitpid(all_servers[i]->pid, NULL, 0);
            all_servers[i]->running = false;
        }
}

/* ---- HTTP ------------------------------------------------------------- */

struct resp {
    long status;
    struct buf body, headers;
    CURLcode rc;
};

static size_t on_body(char *p, size_t sz, size_t n, void *ctx)
{
    buf_add(ctx, p, sz * n);
    return sz * n;
}

static void resp_free(struct resp *r)
{
    buf_free(&r->body);
    buf_free(&r->headers);
}

/* One request; curl may be reused (keep-alive) or NULL. */
static void http(CURL *c, const char *method, const char *url, const char *auth,
                 struct resp *r)
{
    bool own = !c;
    struct curl_slist *h = NULL;

    memset(r, 0, sizeof(*r));
    if (own)
        c = curl_easy_init();
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->headers);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "GET") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "POST") == 0)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "x=1");
    if (strcmp(method, "GET+BODY") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "x=1");
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "GET");
    }
    if (auth) {
        h = curl_slist_append(h, auth);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    }
    r->rc = curl_easy_perform(c);
    if (r->rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    if (own)
        curl_easy_cleanup(c);
    if (!r->body.p)
        buf_add(&r->body, "", 0);
    if (!r->headers.p)
        buf_add(&r->headers, "", 0);
}

static bool has_header(const struct resp *r, const char *line)
{
    return strcasestr(r->headers.p, line) != NULL;
}

/* GET base+path; checks the status and that an error is a JSON object
 * with an "error" string. */
static void expect(const struct server *s, const char *path, long status,
                   const char *what)
{
    char url[2048];
    struct resp r;

    snprintf(url, sizeof(url), "%s%s", s->base, path);
    http(NULL, "GET", url, NULL, &r);
    if (r.rc != CURLE_OK || r.status != status) {
        fprintf(stderr, "%s: GET %s: status %ld (curl: %s), want %ld: %s\n",
                what, path, r.status, curl_easy_strerror(r.rc), status,
                r.body.p);
        ht_test_failures++;
    } else if (status >= 400) {
        json_t *j = json_loads(r.body.p, 0, NULL);

        if (!j || !json_is_string(json_object_get(j, "error")) ||
            !has_header(&r, "Content-Type: application/json")) {
            fprintf(stderr, "%s: GET %s: the %ld is not a JSON error: %s\n",
                    what, path, status, r.body.p);
            ht_test_failures++;
        }
        json_decref(j);
    }
    resp_free(&r);
}

/* URL-escapes s into out. */
static void escape(const char *s, char *out, size_t n)
{
    size_t o = 0;

    for (; *s && o + 4 < n; s++) {
        unsigned char ch = (unsigned char)*s;

        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
            (ch >= '0' && ch <= '9') || strchr("-_.~", ch))
            out[o++] = (char)ch;
        else
            o += (size_t)snprintf(out + o, n - o, "%%%02X", ch);
    }
    out[o] = 0;
}

/* ---- the corpus ------------------------------------------------------- */

struct idset {
    char **v;
    struct buf *want; /* trace ID --format json */
    size_t n, cap;
};

static void ids_add(struct idset *s, const char *id)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], id) == 0)
            return;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->v = realloc(s->v, s->cap * sizeof(*s->v));
    }
    s->v[s->n++] = strdup(id);
}

/* Every id of every request in truth.json: its string members and its
 * trace ids. */
static int load_ids(const char *truth, struct idset *s)
{
    json_error_t je;
    json_t *root = json_load_file(truth, 0, &je), *reqs, *r;
    size_t i;

    if (!root) {
        fprintf(stderr, "%s: %s\n", truth, je.text);
        return -1;
    }
    reqs = json_object_get(root, "requests");
    json_array_foreach(reqs, i, r)
    {
        const char *k;
        json_t *v, *t;
        size_t j;

        json_object_foreach(r, k, v)
        {
            if (json_is_string(v))
                ids_add(s, json_string_value(v));
        }
        json_array_foreach(json_object_get(r, "trace_ids"), j, t)
            ids_add(s, json_string_value(t));
    }
    json_decref(root);
    return 0;
}

/* ---- the checks ------------------------------------------------------- */

/* GET path == `hoptrace --db DB ARGS...` stdout, byte for byte. */
static void same_as_cli(const struct server *s, const char *db,
                        const char *path, const char *const *args,
                        const char *ctype)
{
    const char *argv[24];
    struct buf out = {0};
    struct resp r;
    char url[2048];
    int n = 0, code;

    argv[n++] = hoptrace;
    argv[n++] = "--db";
    argv[n++] = db;
    for (int i = 0; args[i]; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    code = run((char *const *)argv, &out);
    snprintf(url, sizeof(url), "%s%s", s->base, path);
    http(NULL, "GET", url, NULL, &r);
    if (code < 0 || code == 2 || code == 5 || !out.p || r.status != 200 ||
        r.body.n != out.n || memcmp(r.body.p, out.p, out.n) != 0) {
        fprintf(stderr,
                "GET %s (%ld, %zu bytes) differs from hoptrace %s (exit %d, "
                "%zu bytes)\n",
                path, r.status, r.body.n, args[0], code, out.n);
        ht_test_failures++;
    }
    if (ctype && !has_header(&r, ctype)) {
        fprintf(stderr, "GET %s: no %s\n", path, ctype);
        ht_test_failures++;
    }
    buf_free(&out);
    resp_free(&r);
}

static void check_headers(const struct server *s)
{
    char url[512];
    struct resp r;

    snprintf(url, sizeof(url), "%s/api/v1/stats", s->base);
    http(NULL, "GET", url, NULL, &r);
    CHECK(r.status == 200);
    CHECK(has_header(&r, "Content-Type: application/json"));
    CHECK(has_header(&r, "Content-Security-Policy: default-src 'self'; "
                         "script-src 'self'; style-src 'self'; img-src "
                         "'self' data:; object-src 'none'; base-uri 'none'; "
                         "frame-ancestors 'none'"));
    CHECK(has_header(&r, "X-Content-Type-Options: nosniff"));
    CHECK(has_header(&r, "Cache-Control: no-store"));
    resp_free(&r);
    /* errors carry them too */
    snprintf(url, sizeof(url), "%s/no/such/page", s->base);
    http(NULL, "GET", url, NULL, &r);
    CHECK(r.status == 404);
    CHECK(has_header(&r, "Content-Security-Policy: default-src 'self'"));
    CHECK(has_header(&r, "X-Content-Type-Options: nosniff"));
    resp_free(&r);
    /* HEAD: the headers of GET, no body */
    snprintf(url, sizeof(url), "%s/api/v1/stats", s->base);
    http(NULL, "HEAD", url, NULL, &r);
    CHECK(r.status == 200 && r.body.n == 0);
    resp_free(&r);
    /* 405 for anything but GET and HEAD, with Allow */
    http(NULL, "POST", url, NULL, &r);
    CHECK(r.status == 405 && has_header(&r, "Allow: GET, HEAD"));
    CHECK(strstr(r.body.p, "\"error\"") != NULL);
    resp_free(&r);
    http(NULL, "DELETE", url, NULL, &r);
    CHECK(r.status == 405);
    resp_free(&r);
    /* no route takes a body: refused before it is read */
    http(NULL, "GET+BODY", url, NULL, &r);
    CHECK(r.status == 413 && strstr(r.body.p, "\"error\"") != NULL);
    resp_free(&r);
    snprintf(url, sizeof(url), "%s/healthz", s->base);
    http(NULL, "GET", url, NULL, &r);
    CHECK(r.status == 200);
    CHECK_STREQ(r.body.p, "{\"status\":\"ok\",\"store\":true}\n");
    resp_free(&r);
}

/* What a review of serve found, each now answered: a Host that is not a
 * loopback name (DNS rebinding) on a loopback server without a token; a
 * Jaeger service name longer than any key (it crashed serve); Jaeger
 * errors quoting bytes that are not UTF-8 (they were not JSON); times
 * that overflowed; a URL of many parameters (no answer at all). */
static void check_review_fixes(const struct server *s)
{
    char url[8192], host[128], *p;
    struct resp r;
    json_t *j;
    size_t o;

    snprintf(url, sizeof(url), "%s/api/v1/stats", s->base);
    http(NULL, "GET", url, "Host: attacker.example", &r);
    CHECK(r.status == 421 && strstr(r.body.p, "\"error\"") != NULL);
    resp_free(&r);
    http(NULL, "GET", url, "Host: 127.0.0.1.attacker.example", &r);
    CHECK(r.status == 421);
    resp_free(&r);
    p = strstr(s->base, "://");
    snprintf(host, sizeof(host), "Host: localhost%s",
             p && strrchr(p, ':') ? strrchr(p, ':') : "");
    http(NULL, "GET", url, host, &r);
    CHECK(r.status == 200);
    resp_free(&r);

    o = (size_t)snprintf(url, sizeof(url),
                         "%s/api/operations?service=", s->base);
    memset(url + o, 'a', 600);
    url[o + 600] = 0;
    http(NULL, "GET", url, NULL, &r);
    j = json_loads(r.body.p, 0, NULL);
    CHECK(r.status == 200 && j && json_is_array(json_object_get(j, "data")) &&
          json_array_size(json_object_get(j, "data")) == 0);
    json_decref(j);
    resp_free(&r);

    snprintf(url, sizeof(url), "%s/api/traces?service=x&minDuration=%%ff",
             s->base);
    http(NULL, "GET", url, NULL, &r);
    j = json_loads(r.body.p, 0, NULL);
    CHECK(r.status == 400 && j != NULL); /* jansson refuses bad UTF-8 */
    json_decref(j);
    resp_free(&r);
    snprintf(url, sizeof(url), "%s/api/traces?traceID=%%ff", s->base);
    http(NULL, "GET", url, NULL, &r);
    j = json_loads(r.body.p, 0, NULL);
    CHECK(j != NULL);
    json_decref(j);
    resp_free(&r);

    snprintf(url, sizeof(url), "%s/api/dependencies?endTs=9223372036854775",
             s->base);
    http(NULL, "GET", url, NULL, &r);
    CHECK(r.status == 400);
    resp_free(&r);

    o = (size_t)snprintf(url, sizeof(url), "%s/api/v1/stats?", s->base);
    for (int i = 0; i < 500 && o + 16 < sizeof(url); i++)
        o += (size_t)snprintf(url + o, sizeof(url) - o, "p%d=%d&", i, i);
    http(NULL, "GET", url, NULL, &r);
    CHECK(r.rc == CURLE_OK && r.status == 200);
    resp_free(&r);
}

static void check_errors(const struct server *s)
{
    expect(s, "/api/v1/trace/no-such-request-id", 404, "unknown id");
    expect(s, "/api/v1/trace/1-00000000-000000000000000000000000", 404,
           "unknown trace id");
    expect(s, "/api/v1/trace/", 400, "empty id");
    /* the error quotes the id: still JSON (jansson checks UTF-8) */
    expect(s, "/api/v1/trace/%FF%FE%C3", 404, "an id that is not UTF-8");
    expect(s, "/api/v1/trace/%00abc", 400, "an id cut by a NUL");
    expect(s, "/api/v1/nothing", 404, "unknown API route");
    expect(s, "/nothing-here", 404, "unknown page");
    expect(s, "/api/v1/trace/x?format=svg", 400, "bad trace format");
    expect(s, "/api/v1/trace/a%00b", 400, "an encoded NUL inside an id");
    expect(s, "/api/v1/stats?who=%00", 400, "an encoded NUL in a parameter");
    check_review_fixes(s);
    expect(s, "/api/v1/endpoints?since=yesterday", 400, "bad since");
    expect(s, "/api/v1/endpoints?since=2000&until=1000", 400,
           "since after until");
    expect(s, "/api/v1/endpoints?exact=maybe", 400, "bad flag");
    expect(s, "/api/v1/endpoints?format=folded", 400, "bad format");
    expect(s, "/api/v1/hotspots", 400, "hotspots without a route");
    expect(s, "/api/v1/hotspots?route=POST%20/orders&percentile=101", 400,
           "bad percentile");
    expect(s, "/api/v1/hotspots?route=GET%20/no-such-route", 404,
           "unknown route");
    expect(s, "/api/v1/functions?price-gb-s=-1", 400, "bad price");
    expect(s, "/api/v1/stalls?threshold=soon", 400, "bad threshold");
    expect(s, "/api/v1/stalls?max-stuck=1.5", 400, "bad max-stuck");
    expect(s, "/api/v1/stalls?now=tomorrow", 400, "bad now");
    expect(s, "/api/v1/stats?format=xml", 400, "bad stats format");
    expect(s, "/metrics?threshold=-5s", 400, "bad metrics threshold");
}

/* The aggregate documents equal their commands' --format json. */
static void check_documents(const struct server *s, const char *db)
{
    const char *ep[] = {"endpoints", "--format", "json", NULL};
    const char *ep_exact[] = {"endpoints", "--format", "json", "--exact", NULL};
    const char *ep_text[] = {"endpoints", NULL};
    const char *hs[] = {"hotspots", "POST /orders", "--format", "json", NULL};
    const char *hs_p[] = {"hotspots", "POST /orders", "--percentile",
                          "50",       "--format",     "folded",
                          NULL};
    const char *fn[] = {"functions", "--format", "json", NULL};
    const char *fn_p[] = {"functions",    "--format", "json",
                          "--price-gb-s", "0.00002",  NULL};
    const char *st[] = {"stats", "--format", "json", NULL};
    const char *st_text[] = {"stats", NULL};
    const char *sl[] = {"stalls", "--format",   "json",
                        "--now",  "1795800000", NULL};
    const char *sl_t[] = {"stalls",     "--format",    "json", "--now",
                          "1795800000", "--threshold", "60s",  "--max-stuck",
                          "3",          NULL};
    const char *mt[] = {"metrics", "--now", "1795800000", NULL};

    same_as_cli(s, db, "/api/v1/endpoints", ep, "application/json");
    same_as_cli(s, db, "/api/v1/endpoints?exact=true", ep_exact, NULL);
    same_as_cli(s, db, "/api/v1/endpoints?format=text", ep_text, "text/plain");
    same_as_cli(s, db, "/api/v1/hotspots?route=POST%20/orders", hs,
                "application/json");
    same_as_cli(s, db,
                "/api/v1/hotspots?route=POST+%2Forders&percentile=50&format="
                "folded",
                hs_p, NULL);
    same_as_cli(s, db, "/api/v1/functions", fn, NULL);
    same_as_cli(s, db, "/api/v1/functions?price-gb-s=0.00002", fn_p, NULL);
    same_as_cli(s, db, "/api/v1/stats", st, NULL);
    same_as_cli(s, db, "/api/v1/stats?format=text", st_text, NULL);
    same_as_cli(s, db, "/api/v1/stalls?now=1795800000", sl, NULL);
    same_as_cli(s, db,
                "/api/v1/stalls?now=1795800000&threshold=60s&max-stuck=3", sl_t,
                NULL);
    same_as_cli(s, db, "/metrics?now=1795800000", mt,
                "Content-Type: text/plain; version=0.0.4");
}

/* /api/v1/trace/{id} == trace ID --format json for every id; dot and text
 * for a sample. Records the expected bytes for the concurrent check. */
static void check_traces(const struct server *s, const char *db,
                         struct idset *ids)
{
    CURL *c = curl_easy_init();
    size_t bad = 0;

    ids->want = calloc(ids->n, sizeof(*ids->want));
    for (size_t i = 0; i < ids->n; i++) {
        const char *argv[] = {hoptrace,  "--db",     db,     "trace",
                              ids->v[i], "--format", "json", NULL};
        char url[1024], esc[600];
        struct resp r;
        int code = run((char *const *)argv, &ids->want[i]);

        escape(ids->v[i], esc, sizeof(esc));
        snprintf(url, sizeof(url), "%s/api/v1/trace/%s", s->base, esc);
        http(c, "GET", url, NULL, &r);
        if (code != 0 || r.status != 200 || !ids->want[i].p ||
            r.body.n != ids->want[i].n ||
            memcmp(r.body.p, ids->want[i].p, r.body.n) != 0) {
            if (bad++ < 5)
                fprintf(stderr,
                        "trace %s: API %ld (%zu bytes) vs CLI exit %d (%zu "
                        "bytes)\n",
                        ids->v[i], r.status, r.body.n, code, ids->want[i].n);
        }
        resp_free(&r);
    }
    for (size_t i = 0; i < ids->n; i += ids->n / 10 + 1) {
        const char *dot[] = {"trace", ids->v[i], "--format", "dot", NULL};
        const char *text[] = {"trace", ids->v[i], "--format", "text", NULL};
        char path[1024], esc[600];

        escape(ids->v[i], esc, sizeof(esc));
        snprintf(path, sizeof(path), "/api/v1/trace/%s?format=dot", esc);
        same_as_cli(s, db, path, dot, "Content-Type: text/vnd.graphviz");
        snprintf(path, sizeof(path), "/api/v1/trace/%s?format=text", esc);
        same_as_cli(s, db, path, text, "Content-Type: text/plain");
    }
    /* the export formats of trace, for every tenth id */
    for (size_t i = 0; i < ids->n; i += 10) {
        const char *jg[] = {"trace", ids->v[i], "--format", "jaeger", NULL};
        const char *ot[] = {"trace", ids->v[i], "--format", "otlp", NULL};
        char path[1024], esc[600];

        escape(ids->v[i], esc, sizeof(esc));
        snprintf(path, sizeof(path), "/api/v1/trace/%s?format=jaeger", esc);
        same_as_cli(s, db, path, jg, "Content-Type: application/json");
        snprintf(path, sizeof(path), "/api/v1/trace/%s?format=otlp", esc);
        same_as_cli(s, db, path, ot, "Content-Type: application/x-ndjson");
    }
    curl_easy_cleanup(c);
    printf("trace: %zu ids compared with the CLI, %zu differ\n", ids->n, bad);
    CHECK(bad == 0);
    CHECK(ids->n >= 100);
}

/* ---- concurrent clients ----------------------------------------------- */

struct hammer {
    const struct server *s;
    const struct idset *ids;
    unsigned seed;
    int requests;
    atomic_bool *stop; /* NULL: run `requests` requests */
    int ok, wrong, failed;
};

static void *hammer_run(void *arg)
{
    struct hammer *h = arg;
    CURL *c = curl_easy_init();

    for (int k = 0; h->stop ? !atomic_load(h->stop) : k < h->requests; k++) {
        size_t i = (size_t)rand_r(&h->seed) % h->ids->n;
        char url[1024], esc[600];
        struct resp r;

        escape(h->ids->v[i], esc, sizeof(esc));
        snprintf(url, sizeof(url), "%s/api/v1/trace/%s", h->s->base, esc);
        http(c, "GET", url, NULL, &r);
        if (r.rc != CURLE_OK)
            h->failed++;
        else if (r.status == 200 && r.body.n == h->ids->want[i].n &&
                 memcmp(r.body.p, h->ids->want[i].p, r.body.n) == 0)
            h->ok++;
        else
            h->wrong++;
        resp_free(&r);
        if (h->stop && r.rc != CURLE_OK)
            break; /* the server is gone */
    }
    curl_easy_cleanup(c);
    return NULL;
}

static void check_concurrent(const struct server *s, const struct idset *ids)
{
    enum { NT = 16, PER = 60 };
    struct hammer h[NT];
    pthread_t th[NT];
    int ok = 0, wrong = 0, failed = 0;
    double t0 = now_s();

    for (int i = 0; i < NT; i++) {
        h[i] = (struct hammer){
            .s = s, .ids = ids, .seed = 7u + (unsigned)i, .requests = PER};
        pthread_create(&th[i], NULL, hammer_run, &h[i]);
    }
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        ok += h[i].ok;
        wrong += h[i].wrong;
        failed += h[i].failed;
    }
    printf("concurrent: %d clients x %d requests: %d right, %d wrong, %d "
           "failed in %.2f s\n",
           NT, PER, ok, wrong, failed, now_s() - t0);
    CHECK(ok == NT * PER);
}

/* SIGTERM while 8 clients are asking: exit 0; every answer that arrived is
 * whole and right. */
static void check_sigterm(const char *db, const struct idset *ids)
{
    enum { NT = 8 };
    const char *args[] = {"--listen", "127.0.0.1:0", NULL};
    struct server *s = serve_start(db, args, NULL);
    struct hammer h[NT];
    pthread_t th[NT];
    atomic_bool stop;
    int ok = 0, wrong = 0, code;

    CHECK(s != NULL);
    if (!s)
        return;
    atomic_init(&stop, false);
    for (int i = 0; i < NT; i++) {
        h[i] = (struct hammer){
            .s = s, .ids = ids, .seed = 99u + (unsigned)i, .stop = &stop};
        pthread_create(&th[i], NULL, hammer_run, &h[i]);
    }
    nap_ms(700);
    code = serve_stop(s, SIGTERM);
    atomic_store(&stop, true);
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        ok += h[i].ok;
        wrong += h[i].wrong;
    }
    printf("sigterm: exit %d; %d answers before it, %d wrong\n", code, ok,
           wrong);
    CHECK(code == 0);
    CHECK(ok > 0);
    CHECK(wrong == 0);
}

static void check_token(const char *db)
{
    char tf[1024], url[512];
    const char *args[] = {"--listen", "127.0.0.1:0", "--token", tf, NULL};
    struct server *s;
    struct resp r;
    FILE *f;

    snprintf(tf, sizeof(tf), "%s/token", work);
    f = fopen(tf, "w");
    fputs("s3cret-Token_42\n", f);
    fclose(f);
    s = serve_start(db, args, NULL);
    CHECK(s != NULL);
    if (!s)
        return;
    snprintf(url, sizeof(url), "%s/api/v1/stats", s->base);
    http(NULL, "GET", url, NULL, &r);
    CHECK(r.status == 401);
    CHECK(has_header(&r, "WWW-Authenticate: Bearer"));
    CHECK(strstr(r.body.p, "\"error\"") != NULL);
    resp_free(&r);
    http(NULL, "GET", url, "Authorization: Bearer s3cret-Token_41", &r);
    CHECK(r.status == 401);
    resp_free(&r);
    http(NULL, "GET", url, "Authorization: Bearer s3cret-Token_42x", &r);
    CHECK(r.status == 401);
    resp_free(&r);
    http(NULL, "GET", url, "Authorization: Bearer s3cret", &r);
    CHECK(r.status == 401);
    resp_free(&r);
    http(NULL, "GET", url, "Authorization: Basic s3cret-Token_42", &r);
    CHECK(r.status == 401);
    resp_free(&r);
    http(NULL, "GET", url, "Authorization: Bearer s3cret-Token_42", &r);
    CHECK(r.status == 200);
    resp_free(&r);
    snprintf(url, sizeof(url), "%s/healthz", s->base);
    http(NULL, "GET", url, NULL, &r);
    CHECK(r.status == 401); /* every request */
    resp_free(&r);
    CHECK(!err_has(s, "warning", NULL, 0));
    CHECK(serve_stop(s, SIGINT) == 0);
}

/* Whether any server started so far said `what` on stderr. */
static bool all_servers_err_has(const char *what)
{
    for (int i = 0; i < 16; i++)
        if (all_servers[i] && err_has(all_servers[i], what, NULL, 0))
            return true;
    return false;
}

/* serve --config FILE: the stage thresholds of stalls and metrics, as
 * the commands' --config applies them; a bad file is a usage error. */
static void check_config(const char *db)
{
    char cf[1024], bad[1100];
    const char *args[] = {"--listen", "127.0.0.1:0", "--config", cf, NULL};
    const char *bargs[] = {"--listen", "127.0.0.1:0", "--config", bad, NULL};
    const char *sl[] = {"stalls",     "--format", "json", "--now",
                        "1795800000", "--config", cf,     NULL};
    const char *sl_t[] = {"stalls",     "--format", "json", "--now",
                          "1795800000", "--config", cf,     "--threshold",
                          "2s",         NULL};
    const char *mt[] = {"metrics", "--now", "1795800000", "--config", cf, NULL};
    struct server *s;
    int code;
    FILE *f;

    snprintf(cf, sizeof(cf), "%s/stages.json", work);
    f = fopen(cf, "w");
    fputs("{\"threshold\": \"90s\", \"stages\": {\"payments-queue\": "
          "\"1s\"}}\n",
          f);
    fclose(f);
    s = serve_start(db, args, NULL);
    CHECK(s != NULL);
    if (s) {
        same_as_cli(s, db, "/api/v1/stalls?now=1795800000", sl, NULL);
        same_as_cli(s, db, "/api/v1/stalls?now=1795800000&threshold=2s", sl_t,
                    NULL);
        same_as_cli(s, db, "/metrics?now=1795800000", mt, NULL);
        CHECK(serve_stop(s, SIGTERM) == 0);
    }
    snprintf(bad, sizeof(bad), "%s/bad.json", work);
    f = fopen(bad, "w");
    fputs("{\"threshold\": 5}\n", f);
    fclose(f);
    s = serve_start(db, bargs, &code);
    CHECK(s == NULL && code == 2);
}

/* Binding beyond loopback warns; a bad address or a busy port is refused. */
static void check_listen(const char *db)
{
    const char *any[] = {"--listen", "0.0.0.0:0", NULL};
    const char *bad[] = {"--listen", "127.0.0.1:99999", NULL};
    const char *bad2[] = {"--listen", "no-such-host.invalid:80", NULL};
    struct server *s = serve_start(db, any, NULL), *s2;
    char busy[64];
    const char *dup[] = {"--listen", busy, NULL};
    int code;

    CHECK(s != NULL);
    if (s) {
        CHECK(err_has(s, "hoptrace: warning: listening on 0.0.0.0:", NULL, 0));
        CHECK(err_has(s, "reads every trace", NULL, 0));
        snprintf(busy, sizeof(busy), "127.0.0.1:%s", strrchr(s->base, ':') + 1);
        s2 = serve_start(db, dup, &code);
        CHECK(s2 == NULL && code == 5);
        CHECK(serve_stop(s, SIGTERM) == 0);
    }
    s = serve_start(db, bad, &code);
    CHECK(s == NULL && code == 2);
    s = serve_start(db, bad2, &code);
    CHECK(s == NULL && code == 2);
    /* without --listen: 127.0.0.1:8418 (started, or refused because
     * another server has the port: either way stderr names it) */
    {
        const char *none[] = {NULL};

        s = serve_start(db, none, &code);
        if (s) {
            CHECK_STREQ(s->base, "http://127.0.0.1:8418");
            CHECK(serve_stop(s, SIGTERM) == 0);
        } else {
            CHECK(code == 5);
            CHECK(all_servers_err_has("cannot listen on 127.0.0.1:8418"));
        }
    }
    /* the default is loopback: no warning */
    {
        const char *lo[] = {"--listen", "127.0.0.1:0", NULL};

        s = serve_start(db, lo, NULL);
        CHECK(s != NULL);
        if (s) {
            CHECK(strncmp(s->base, "http://127.0.0.1:", 17) == 0);
            CHECK(!err_has(s, "warning", NULL, 0));
            CHECK(serve_stop(s, SIGTERM) == 0);
        }
    }
}

/* No store yet: 503 (healthz 200); the store appears: answered. */
static void check_no_store(const char *corpus)
{
    char db[1024], seg[1100], url[512];
    const char *args[] = {"--listen", "127.0.0.1:0", NULL};
    struct server *s;
    struct resp r;
    double until;

    snprintf(db, sizeof(db), "%s/late.db", work);
    s = serve_start(db, args, NULL);
    CHECK(s != NULL);
    if (!s)
        return;
    expect(s, "/api/v1/stats", 503, "no store yet");
    expect(s, "/api/v1/trace/x", 503, "no store yet");
    snprintf(url, sizeof(url), "%s/healthz", s->base);
    http(NULL, "GET", url, NULL, &r);
    CHECK(r.status == 200 && strstr(r.body.p, "\"store\":false"));
    resp_free(&r);
    snprintf(seg, sizeof(seg), "%s/segments.ndjson", corpus);
    {
        const char *argv[] = {hoptrace, "--db", db, "ingest", "-q", seg, NULL};

        CHECK(run((char *const *)argv, NULL) == 0);
    }
    until = now_s() + 10;
    snprintf(url, sizeof(url), "%s/api/v1/stats", s->base);
    do {
        http(NULL, "GET", url, NULL, &r);
        if (r.status == 200)
            break;
        resp_free(&r);
        nap_ms(50);
    } while (now_s() < until);
    CHECK(r.status == 200 && strstr(r.body.p, "\"spans\":"));
    resp_free(&r);
    CHECK(serve_stop(s, SIGTERM) == 0);
}

/* A store that is there but cannot be opened (not an LMDB file): 503
 * saying so, not "no store yet". */
static void check_bad_store(void)
{
    char db[1024], data[1100], junk[16384];
    const char *args[] = {"--listen", "127.0.0.1:0", NULL};
    struct server *s;
    char url[512];
    struct resp r;
    FILE *f;

    snprintf(db, sizeof(db), "%s/junk.db", work);
    mkdir(db, 0755);
    snprintf(data, sizeof(data), "%s/data.mdb", db);
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (char)(i * 131 + 7);
    f = fopen(data, "w");
    fwrite(junk, 1, sizeof(junk), f);
    fclose(f);
    s = serve_start(db, args, NULL);
    CHECK(s != NULL);
    if (!s)
        return;
    expect(s, "/api/v1/stats", 503, "a store that cannot be opened");
    snprintf(url, sizeof(url), "%s/api/v1/trace/x", s->base);
    http(NULL, "GET", url, NULL, &r);
    CHECK(r.status == 503 && strstr(r.body.p, "cannot be opened"));
    resp_free(&r);
    CHECK(serve_stop(s, SIGTERM) == 0);
}

/* serve --udp: a datagram sent to it is found by the API; SIGTERM commits
 * and exits 0. */
static void check_udp(void)
{
    char db[1024], where[128], url[512];
    const char *args[] = {"--listen", "127.0.0.1:0", "--udp", "127.0.0.1:0",
                          NULL};
    const char *doc =
        "{\"format\":\"json\",\"version\":1}\n"
        "{\"trace_id\":\"1-6b000000-0123456789abcdef01234567\",\"id\":"
        "\"1234567890abcdef\",\"name\":\"udp-hosted\",\"start_time\":"
        "1795700000.5,\"end_time\":1795700000.75,\"origin\":"
        "\"AWS::Lambda::Function\"}";
    struct server *s;
    struct resp r;
    struct sockaddr_in sa;
    double until;
    int fd;

    snprintf(db, sizeof(db), "%s/udp.db", work);
    s = serve_start(db, args, NULL);
    CHECK(s != NULL);
    if (!s)
        return;
    CHECK(err_has(s, "listening on udp ", where, sizeof(where)));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)atoi(strrchr(where, ':') + 1));
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    fd = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(sendto(fd, doc, strlen(doc), 0, (struct sockaddr *)&sa, sizeof(sa)) ==
          (ssize_t)strlen(doc));
    close(fd);
    snprintf(url, sizeof(url),
             "%s/api/v1/trace/1-6b000000-0123456789abcdef01234567", s->base);
    until = now_s() + 10;
    do {
        http(NULL, "GET", url, NULL, &r);
        if (r.status == 200)
            break;
        resp_free(&r);
        nap_ms(50);
    } while (now_s() < until);
    CHECK(r.status == 200 && strstr(r.body.p, "udp-hosted"));
    resp_free(&r);
    CHECK(serve_stop(s, SIGTERM) == 0);
    /* committed: the CLI finds it too */
    {
        const char *argv[] = {hoptrace,           "--db",     db,     "trace",
                              "1234567890abcdef", "--format", "json", NULL};
        struct buf out = {0};

        CHECK(run((char *const *)argv, &out) == 0);
        CHECK(out.p && strstr(out.p, "udp-hosted"));
        buf_free(&out);
    }
}

/* Readers that hammer a server while its store grows: every answer is
 * 200, 404 or 503 (no store yet), never a 500 or a dropped connection. */
struct reader {
    const struct server *s;
    const struct idset *ids;
    atomic_bool *stop;
    unsigned seed;
    int answers, bad;
};

static void *reader_run(void *arg)
{
    struct reader *r = arg;
    CURL *c = curl_easy_init();

    while (!atomic_load(r->stop)) {
        size_t i = (size_t)rand_r(&r->seed) % r->ids->n;
        char url[1024], esc[600];
        struct resp x;

        escape(r->ids->v[i], esc, sizeof(esc));
        if (rand_r(&r->seed) % 4 == 0)
            snprintf(url, sizeof(url), "%s/api/v1/stats", r->s->base);
        else
            snprintf(url, sizeof(url), "%s/api/v1/trace/%s", r->s->base, esc);
        http(c, "GET", url, NULL, &x);
        r->answers++;
        if (x.rc != CURLE_OK ||
            (x.status != 200 && x.status != 404 && x.status != 503)) {
            if (r->bad++ < 3)
                fprintf(stderr, "while growing: %s: %ld %s (%s)\n", url,
                        x.status, x.body.p, curl_easy_strerror(x.rc));
        }
        resp_free(&x);
    }
    curl_easy_cleanup(c);
    return NULL;
}

static void readers_start(struct reader *rd, pthread_t *th, int n,
                          const struct server *s, const struct idset *ids,
                          atomic_bool *stop)
{
    atomic_init(stop, false);
    for (int i = 0; i < n; i++) {
        rd[i] = (struct reader){
            .s = s, .ids = ids, .stop = stop, .seed = 31u + (unsigned)i};
        pthread_create(&th[i], NULL, reader_run, &rd[i]);
    }
}

static int readers_stop(struct reader *rd, pthread_t *th, int n,
                        atomic_bool *stop, int *answers)
{
    int bad = 0;

    atomic_store(stop, true);
    *answers = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        bad += rd[i].bad;
        *answers += rd[i].answers;
    }
    return bad;
}

static long file_size(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Another process (ingest) creates the store and grows its map from 1 MiB
 * while serve's threads read it. */
static void check_growth_external(const char *corpus, const struct idset *ids)
{
    enum { NR = 4 };
    char db[1024], data[1100];
    const char *args[] = {"--listen", "127.0.0.1:0", NULL};
    struct reader rd[NR];
    pthread_t th[NR];
    atomic_bool stop;
    struct server *s;
    int bad, answers, code;

    snprintf(db, sizeof(db), "%s/grow-ext.db", work);
    s = serve_start(db, args, NULL);
    CHECK(s != NULL);
    if (!s)
        return;
    readers_start(rd, th, NR, s, ids, &stop);
    setenv("HOPTRACE_MAP_MB", "1", 1);
    {
        const char *argv[] = {hoptrace,  "--db", db,     "ingest", "-q",
                              "--batch", "64",   corpus, NULL};

        CHECK(run((char *const *)argv, NULL) == 0);
    }
    unsetenv("HOPTRACE_MAP_MB");
    nap_ms(300);
    bad = readers_stop(rd, th, NR, &stop, &answers);
    snprintf(data, sizeof(data), "%s/data.mdb", db);
    printf("growth (another process): %d answers, %d bad; data.mdb %ld "
           "bytes\n",
           answers, bad, file_size(data));
    CHECK(bad == 0);
    CHECK(file_size(data) > (1L << 20));
    expect(s, "/api/v1/stats", 200, "after the growth");
    code = serve_stop(s, SIGTERM);
    CHECK(code == 0);
}

/* serve --udp with a 1 MiB map: the hosted engine grows the map (waiting
 * for the HTTP threads' read transactions) while they read. */
static void check_growth_hosted(const char *corpus, const struct idset *ids)
{
    enum { NR = 4 };
    char db[1024], data[1100], seg[1200], where[128], big[1100];
    const char *args[] = {"--listen", "127.0.0.1:0", "--udp", "127.0.0.1:0",
                          "--batch",  "32",          NULL};
    struct reader rd[NR];
    pthread_t th[NR];
    atomic_bool stop;
    struct server *s;
    struct sockaddr_in sa;
    int bad, answers, fd, sent = 0;
    FILE *f;
    char *hdr = NULL, *doc = NULL;
    size_t hn = 0, dn = 0;

    /* a corpus of its own, big enough to outgrow 1 MiB from segments */
    snprintf(big, sizeof(big), "%s/corpus-big", work);
    {
        const char *sim[] = {hoptrace, "simulate",   "--seed",
                             "1314",   "--requests", "250",
                             "--out",  big,          NULL};

        CHECK(run((char *const *)sim, NULL) == 0);
    }
    corpus = big;
    snprintf(db, sizeof(db), "%s/grow-udp.db", work);
    setenv("HOPTRACE_MAP_MB", "1", 1);
    s = serve_start(db, args, NULL);
    unsetenv("HOPTRACE_MAP_MB");
    CHECK(s != NULL);
    if (!s)
        return;
    CHECK(err_has(s, "listening on udp ", where, sizeof(where)));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)atoi(strrchr(where, ':') + 1));
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    fd = socket(AF_INET, SOCK_DGRAM, 0);
    readers_start(rd, th, NR, s, ids, &stop);
    snprintf(seg, sizeof(seg), "%s/segments.ndjson", corpus);
    f = fopen(seg, "r");
    while (f && getline(&hdr, &hn, f) > 0 && getline(&doc, &dn, f) > 0) {
        struct buf d = {0};

        buf_add(&d, hdr, strlen(hdr));
        buf_add(&d, doc, strlen(doc));
        if (sendto(fd, d.p, d.n, 0, (struct sockaddr *)&sa, sizeof(sa)) > 0)
            sent++;
        buf_free(&d);
        if (sent % 25 == 0)
            nap_ms(2); /* within what the socket buffers */
    }
    if (f)
        fclose(f);
    free(hdr);
    free(doc);
    close(fd);
    nap_ms(500);
    bad = readers_stop(rd, th, NR, &stop, &answers);
    CHECK(serve_stop(s, SIGTERM) == 0);
    snprintf(data, sizeof(data), "%s/data.mdb", db);
    printf("growth (hosted udp): %d datagrams, %d answers, %d bad; data.mdb "
           "%ld bytes\n",
           sent, answers, bad, file_size(data));
    CHECK(sent > 2000);
    CHECK(bad == 0);
    CHECK(file_size(data) > (1L << 20));
}

static int promtool_check(const char *db)
{
    const char *args[] = {"--listen", "127.0.0.1:0", NULL};
    char url[512], path[1024], cmd[2200];
    struct server *s;
    struct resp r;
    FILE *f;
    int rc;

    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        printf("SKIP: promtool is not installed (Debian package prometheus; "
               "scripts/setup.sh installs it)\n");
        return 77;
    }
    s = serve_start(db, args, NULL);
    CHECK(s != NULL);
    if (!s)
        return 1;
    snprintf(url, sizeof(url), "%s/metrics", s->base);
    http(NULL, "GET", url, NULL, &r);
    CHECK(r.status == 200);
    CHECK(has_header(&r, "Content-Type: text/plain; version=0.0.4"));
    CHECK(strstr(r.body.p, "hoptrace_spans ") != NULL);
    snprintf(path, sizeof(path), "%s/metrics.prom", work);
    f = fopen(path, "w");
    fwrite(r.body.p, 1, r.body.n, f);
    fclose(f);
    resp_free(&r);
    snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s'", path);
    rc = system(cmd);
    printf("promtool check metrics: %s\n", rc == 0 ? "ok" : "FAILED");
    CHECK(rc == 0);
    CHECK(serve_stop(s, SIGTERM) == 0);
    return 0;
}

int main(int argc, char **argv)
{
    char corpus[1024], db[1024], truth[1100];
    struct idset ids = {0};

    if (argc < 3) {
        fprintf(stderr, "usage: test_serve_http HOPTRACE WORKDIR [promtool]\n");
        return 2;
    }
    hoptrace = argv[1];
    work = argv[2];
    signal(SIGPIPE, SIG_IGN);
    atexit(stop_all);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    {
        char cmd[2200];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s'", work, work);
        if (system(cmd) != 0)
            return 1;
    }
    snprintf(corpus, sizeof(corpus), "%s/corpus", work);
    snprintf(db, sizeof(db), "%s/serve.db", work);
    {
        const char *sim[] = {hoptrace, "simulate",   "--seed",
                             "1313",   "--requests", "60",
                             "--out",  corpus,       NULL};
        const char *ing[] = {hoptrace, "--db", db,  "ingest",
                             "-q",     corpus, NULL};

        if (run((char *const *)sim, NULL) != 0 ||
            run((char *const *)ing, NULL) != 0) {
            fprintf(stderr, "could not build the store\n");
            return 1;
        }
    }
    if (argc > 3 && strcmp(argv[3], "promtool") == 0) {
        int rc = promtool_check(db);

        stop_all();
        for (int i = 0; i < 16; i++)
            if (all_servers[i]) {
                buf_free(&all_servers[i]->err);
                free(all_servers[i]);
                all_servers[i] = NULL;
            }
        if (rc == 77)
            return 77;
        TEST_DONE();
    }
    snprintf(truth, sizeof(truth), "%s/truth.json", corpus);
    if (load_ids(truth, &ids) != 0)
        return 1;
    {
        const char *args[] = {"--listen", "127.0.0.1:0", "--threads", "4",
                              NULL};
        struct server *s = serve_start(db, args, NULL);

        if (!s) {
            fprintf(stderr, "serve did not start\n");
            return 1;
        }
        check_headers(s);
        check_errors(s);
        check_documents(s, db);
        check_traces(s, db, &ids);
        check_concurrent(s, &ids);
        CHECK(serve_stop(s, SIGTERM) == 0);
    }
    check_sigterm(db, &ids);
    check_token(db);
    check_config(db);
    check_listen(db);
    check_no_store(corpus);
    check_bad_store();
    check_udp();
    check_growth_external(corpus, &ids);
    check_growth_hosted(corpus, &ids);
    curl_global_cleanup();
    for (size_t i = 0; i < ids.n; i++) {
        free(ids.v[i]);
        if (ids.want)
            buf_free(&ids.want[i]);
    }
    free(ids.v);
    free(ids.want);
    stop_all();
    for (int i = 0; i < 16; i++)
        if (all_servers[i]) {
            buf_free(&all_servers[i]->err);
            free(all_servers[i]);
            all_servers[i] = NULL;
        }
    TEST_DONE();
}
