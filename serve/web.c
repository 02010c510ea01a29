/*
 * web.c - the web view of `hoptrace serve`: `/` (search, routes, stages,
 * functions), `/trace/{id}` (one request: waterfall, critical path,
 * service graph) and `/static/NAME` (the script and style sheet). The
 * pages are static files compiled into the binary (web_assets.h); they
 * read everything from the JSON API in the browser, so this file only
 * maps paths to assets and names their type.
 */
#include "ht_serve.h"
#include "web_assets.h"

#include <string.h>

static const struct ht_web_asset *asset_find(const char *name)
{
    for (const struct ht_web_asset *a = ht_web_assets; a->name; a++)
        if (strcmp(a->name, name) == 0)
            return a;
    return NULL;
}

static const char *asset_ctype(const char *name)
{
    const char *dot = strrchr(name, '.');

    if (dot && strcmp(dot, ".html") == 0)
        return "text/html; charset=utf-8";
    if (dot && strcmp(dot, ".js") == 0)
        return "text/javascript; charset=utf-8";
    if (dot && strcmp(dot, ".css") == 0)
        return "text/css; charset=utf-8";
    if (dot && strcmp(dot, ".svg") == 0)
        return "image/svg+xml";
    return "application/octet-stream";
}

int ht_serve_web(const struct ht_http_req *rq, struct ht_http_resp *rs)
{
    const char *path = rq->path;
    const char *name;
    const struct ht_web_asset *a;

    if (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0) {
        name = "index.html";
    } else if (strncmp(path, "/trace/", 7) == 0) {
        /* Any id: the page reads it from its own location. */
        if (path[7] == '\0') {
            ht_http_error(rs, 404, "no id: use /trace/{id}");
            return 1;
        }
        name = "trace.html";
    } else if (strncmp(path, "/static/", 8) == 0) {
        name = path + 8;
        /* The pages themselves are reached by their routes only. */
        if (strchr(name, '/') || strstr(name, ".html")) {
            ht_http_error(rs, 404, "no such file: %s", path);
            return 1;
        }
    } else {
        return 0;
    }
    if (strcmp(rq->method, "GET") != 0 && strcmp(rq->method, "HEAD") != 0) {
        ht_http_error(rs, 405, "%s: only GET and HEAD", rq->method);
        return 1;
    }
    a = asset_find(name);
    if (!a) {
        ht_http_error(rs, 404, "no such file: %s", path);
        return 1;
    }
    rs->status = 200;
    rs->ctype = asset_ctype(a->name);
    ht_buf_add(&rs->body, a->data, a->len);
    return 1;
}
