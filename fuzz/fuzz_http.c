/*
 * fuzz_http.c - `serve`'s routes as a request reaches them once the HTTP
 * server has parsed it (ht_serve_api, ht_serve_jaeger, ht_serve_web):
 * the input's first line is the path, every further line one
 * `name=value` query parameter, a name possibly repeated (all of it
 * already percent-decoded, as the server hands it over). The store they
 * read is built once, from the fixture folders named by
 * HT_FUZZ_HTTP_FIXTURES (compiled in, ':' between), with its request
 * summaries brought up to date, and only read after that.
 */
#define _GNU_SOURCE
#include "fuzz.h"
#include "ht_assembler.h"
#include "ht_ingest.h"
#include "ht_maint.h"
#include "ht_serve.h"
#include "ht_store.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_ARGS 16

static struct ht_store *store;

struct req {
    struct ht_http_req rq;
    const char *names[MAX_ARGS], *values[MAX_ARGS];
    size_t n;
};

static size_t arg_all(const struct ht_http_req *rq, const char *name,
                      const char **out, size_t max)
{
    const struct req *r = (const struct req *)rq;
    size_t n = 0;

    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->names[i], name) == 0) {
            if (n < max)
                out[n] = r->values[i];
            n++;
        }
    return n;
}

static const char *arg(const struct ht_http_req *rq, const char *name)
{
    const char *v;

    return arg_all(rq, name, &v, 1) ? v : NULL;
}

/* Every file of folder dir, decoded and written in one transaction. */
static void load_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    struct ht_batch b;
    struct ht_txn *t;
    struct ht_asm_stats st = {0};

    if (!d || ht_batch_init(&b) != HT_ERR_OK) {
        if (d)
            closedir(d);
        return;
    }
    while ((e = readdir(d))) {
        char *path;
        uint8_t *buf = NULL;
        size_t len = 0, cap = 0;

        if (e->d_name[0] == '.' || strcmp(e->d_name, "expected.json") == 0 ||
            asprintf(&path, "%s/%s", dir, e->d_name) < 0)
            continue;
        if (fuzz_read_file(path, &buf, &len, &cap) == 0)
            ht_ingest_payload(&b, &(struct ht_srcpos){"fixture", 0}, buf, len);
        free(buf);
        free(path);
    }
    closedir(d);
    if (ht_store_begin(store, true, &t) == HT_ERR_OK) {
        if (ht_assembler_apply(t, &b, &st) == HT_ERR_OK)
            ht_store_commit(t);
        else
            ht_store_abort(t);
    }
    ht_batch_free(&b);
}

/* The store the routes read: made once, from the fixtures. */
static bool open_store(void)
{
    static const char fixtures[] = HT_FUZZ_HTTP_FIXTURES;
    struct ht_agg_stats st = {0};
    char *list, *save = NULL;
    bool created;

    store = fuzz_scratch_store(&created);
    if (!store || !created)
        return store != NULL;
    list = strdup(fixtures);
    for (char *dir = list ? strtok_r(list, ":", &save) : NULL; dir;
         dir = strtok_r(NULL, ":", &save))
        load_dir(dir);
    free(list);
    ht_agg_catch_up(store, &st);
    return true;
}

/* One handler, the way the server calls it: a fresh answer each time.
 * HT_FUZZ_SHOW=1 in the environment prints what the routes answered (to
 * see what a seed reaches). */
static void call(int (*h)(const struct ht_http_req *, struct ht_http_resp *),
                 const struct req *r)
{
    struct ht_http_resp rs = {.status = 200};
    int taken;

    ht_buf_init(&rs.body);
    taken = h(&r->rq, &rs);
    if (taken && getenv("HT_FUZZ_SHOW"))
        fprintf(stderr, "%s -> %d %.*s\n", r->rq.path, rs.status,
                (int)(rs.body.len < 160 ? rs.body.len : 160),
                rs.body.data ? rs.body.data : "");
    ht_buf_free(&rs.body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct req r = {0};
    char *text, *line, *save = NULL;

    ht_log_level = -1;
    if (size > 8192 || !open_store())
        return 0;
    text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    line = strtok_r(text, "\n", &save);
    r.rq.method = "GET";
    r.rq.path = line ? line : "/";
    r.rq.store = store;
    r.rq.arg = arg;
    r.rq.arg_all = arg_all;
    while ((line = strtok_r(NULL, "\n", &save)) && r.n < MAX_ARGS) {
        char *eq = strchr(line, '=');

        if (!eq)
            continue;
        *eq = 0;
        r.names[r.n] = line;
        r.values[r.n++] = eq + 1;
    }
    call(ht_serve_api, &r);
    call(ht_serve_jaeger, &r);
    call(ht_serve_web, &r);
    free(text);
    return 0;
}
