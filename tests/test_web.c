/*
 * test_web.c - unit tests of the web view's routing (serve/web.c) over
 * the assets compiled in at build time: each path gets its file, byte for
 * byte the one in serve/web/, with its Content-Type; /trace/{id} is
 * trace.html for any id; unknown /static files and /trace/ without an id
 * are 404 with a JSON error; other methods 405; paths of the other route
 * families are left alone (0).
 */
#define _GNU_SOURCE
#include "ht_serve.h"
#include "ht_test.h"

#include <stdlib.h>

static const char *no_arg(const struct ht_http_req *rq, const char *name)
{
    (void)rq;
    (void)name;
    return NULL;
}

struct answer {
    int owned;
    struct ht_http_resp rs;
};

static struct answer get(const char *method, const char *path)
{
    struct ht_http_req rq = {
        .method = method, .path = path, .store = NULL, .arg = no_arg};
    struct answer a;

    memset(&a, 0, sizeof(a));
    a.rs.status = 0;
    ht_buf_init(&a.rs.body);
    a.owned = ht_serve_web(&rq, &a.rs);
    return a;
}

/* The file as it is in the source tree. */
static char *slurp(const char *name, size_t *len)
{
    char path[4096];
    FILE *f;
    char *buf;
    long n;

    snprintf(path, sizeof(path), "%s/serve/web/%s", HT_SRC_DIR, name);
    f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void expect_file(const char *method, const char *path, const char *file,
                        const char *ctype)
{
    struct answer a = get(method, path);
    size_t len = 0;
    char *want = slurp(file, &len);

    CHECK(a.owned == 1);
    CHECK(a.rs.status == 200);
    CHECK_STREQ(a.rs.ctype, ctype);
    CHECK(want != NULL);
    if (want && (a.rs.body.len != len || memcmp(a.rs.body.data, want, len))) {
        fprintf(stderr, "%s: not the bytes of serve/web/%s (%zu vs %zu)\n",
                path, file, a.rs.body.len, len);
        ht_test_failures++;
    }
    free(want);
    ht_buf_free(&a.rs.body);
}

static void expect_error(const char *method, const char *path, int status)
{
    struct answer a = get(method, path);

    CHECK(a.owned == 1);
    if (a.rs.status != status) {
        fprintf(stderr, "%s %s: status %d, want %d\n", method, path,
                a.rs.status, status);
        ht_test_failures++;
    }
    CHECK_STREQ(a.rs.ctype, "application/json");
    CHECK(a.rs.body.len > 0 && strncmp(a.rs.body.data, "{\"error\":", 9) == 0);
    ht_buf_free(&a.rs.body);
}

static void expect_not_mine(const char *path)
{
    struct answer a = get("GET", path);

    if (a.owned != 0) {
        fprintf(stderr, "%s: taken by the web view\n", path);
        ht_test_failures++;
    }
    CHECK(a.rs.body.len == 0);
    ht_buf_free(&a.rs.body);
}

int main(void)
{
    const char *html = "text/html; charset=utf-8";

    expect_file("GET", "/", "index.html", html);
    expect_file("HEAD", "/", "index.html", html);
    expect_file("GET", "/index.html", "index.html", html);
    expect_file("GET", "/trace/5b437c74-8c6c-4f84-af37-b643b6e3d79b",
                "trace.html", html);
    expect_file("GET", "/trace/1-6b083520-c49c720af84bd7b4b9c2b14a",
                "trace.html", html);
    /* Any id, even one that looks like markup (the page shows it as text). */
    expect_file("GET", "/trace/<img src=x onerror=alert(1)>", "trace.html",
                html);
    expect_file("GET", "/static/app.js", "app.js",
                "text/javascript; charset=utf-8");
    expect_file("GET", "/static/app.css", "app.css", "text/css; charset=utf-8");

    expect_error("GET", "/trace/", 404);
    expect_error("GET", "/static/", 404);
    expect_error("GET", "/static/nope.js", 404);
    expect_error("GET", "/static/app.js.map", 404);
    expect_error("GET", "/static/../CMakeLists.txt", 404);
    expect_error("GET", "/static/trace.html", 404);
    expect_error("POST", "/", 405);
    expect_error("DELETE", "/static/app.js", 405);

    expect_not_mine("/api/v1/trace/x");
    expect_not_mine("/api/services");
    expect_not_mine("/metrics");
    expect_not_mine("/healthz");
    expect_not_mine("/tracex");
    expect_not_mine("/trace");
    expect_not_mine("/favicon.ico");

    TEST_DONE();
}
