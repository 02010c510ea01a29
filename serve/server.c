/*
 * server.c - the HTTP server of `hoptrace serve` (libmicrohttpd): a pool of
 * threads each with its own epoll loop, routing to the handler families of
 * ht_serve.h (API, then Jaeger, then the web view, then 404), the headers
 * every answer carries, the bearer token, and the read-only store.
 *
 * Owned by serve/. Handlers see a decoded request (struct ht_http_req),
 * never the HTTP library. The store is one ht_store shared by every thread
 * (LMDB read transactions with MDB_NOTLS, one per handler call); when none
 * exists yet the server opens it as soon as it appears and answers 503
 * until then.
 */
#define _GNU_SOURCE
#include "ht_serve.h"
#include "ht_store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Every family of routes, tried in this order; the first that owns the
 * path answers. The Jaeger API and the web view are built in when their
 * sources are (CMake defines HT_SERVE_HAS_JAEGER / HT_SERVE_HAS_WEB). */
static const ht_http_handler routes[] = {
    ht_serve_api,
#ifdef HT_SERVE_HAS_JAEGER
    ht_serve_jaeger,
#endif
#ifdef HT_SERVE_HAS_WEB
    ht_serve_web,
#endif
};

#define NROUTES (sizeof(routes) / sizeof(routes[0]))

static const char csp[] =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' "
    "data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/* How often a server with no store yet looks for one. */
#define STORE_RETRY_US 250000
#define STORE_ERROR_RETRY_US 5000000

struct ht_server {
    struct MHD_Daemon *d;
    char where[80];
    bool exposed;
    char *db;
    char *token;
    size_t token_len;
    bool own_store; /* opened here (closed at stop) */
    _Atomic(struct ht_store *) store;
    pthread_mutex_t store_mu; /* one opener at a time */
    int64_t next_try_us;      /* under store_mu */
    bool said_store_error;    /* under store_mu */
    atomic_int store_err;     /* why the last open failed (not NOTFOUND) */
    atomic_int inflight;      /* requests received, not yet answered */
    const struct ht_stall_cfg *stall_cfg; /* serve --config, or NULL */
    atomic_bool stopping;
};

/* A request's state between libmicrohttpd's calls (con_cls). */
struct conn_req {
    struct MHD_Connection *c;
    int64_t t0_us; /* when its headers were in (for the -vv access log) */
};

void ht_http_error(struct ht_http_resp *rs, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* a message quotes what the client sent: ht_buf_json_str writes bytes
     * that are not UTF-8 as '?', so the error stays JSON */
    rs->status = status;
    rs->ctype = "application/json";
    ht_buf_reset(&rs->body);
    ht_buf_adds(&rs->body, "{\"error\":");
    ht_buf_json_str(&rs->body, msg);
    ht_buf_adds(&rs->body, "}\n");
}

static const char *req_arg(const struct ht_http_req *rq, const char *name)
{
    struct conn_req *cr = rq->impl;

    return MHD_lookup_connection_value(cr->c, MHD_GET_ARGUMENT_KIND, name);
}

struct arg_values {
    const char *name;
    const char **out;
    size_t max, n;
};

static enum MHD_Result arg_value(void *cls, enum MHD_ValueKind kind,
                                 const char *key, const char *value)
{
    struct arg_values *a = cls;

    (void)kind;
    if (key && strcmp(key, a->name) == 0) {
        if (a->n < a->max)
            a->out[a->n] = value ? value : "";
        a->n++;
    }
    return MHD_YES;
}

static size_t req_arg_all(const struct ht_http_req *rq, const char *name,
                          const char **out, size_t max)
{
    struct conn_req *cr = rq->impl;
    struct arg_values a = {name, out, max, 0};

    MHD_get_connection_values(cr->c, MHD_GET_ARGUMENT_KIND, arg_value, &a);
    return a.n;
}

/* ---- the store --------------------------------------------------------- */

/* Whether the store in dir has not been born yet: no data file, or one
 * whose first commit has not landed (the rule of `hoptrace trace`). */
static bool store_unborn(const char *dir)
{
    char path[4096];
    struct stat st;

    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    return stat(path, &st) != 0 || st.st_size < 8192;
}

/* The store, opened read-only the first time it is there to open; NULL
 * while there is none (looked for again every STORE_RETRY_US). */
static struct ht_store *server_store(struct ht_server *srv)
{
    struct ht_store *s = atomic_load(&srv->store);
    int64_t now;

    if (s || !srv->db)
        return s;
    pthread_mutex_lock(&srv->store_mu);
    s = atomic_load(&srv->store);
    now = ht_now_mono_us();
    if (!s && now >= srv->next_try_us) {
        srv->next_try_us = now + STORE_RETRY_US;
        if (!store_unborn(srv->db)) {
            int rc = ht_store_open(srv->db, true, &s);

            if (rc == HT_ERR_OK) {
                srv->own_store = true;
                atomic_store(&srv->store, s);
                HT_LOG_INFO("serve", "store %s opened (read-only)", srv->db);
            } else {
                s = NULL;
                atomic_store(&srv->store_err,
                             rc == HT_ERR_NOTFOUND ? HT_ERR_OK : rc);
                /* a store that is there but cannot be opened is looked
                 * at again every 5 s (each attempt logs LMDB's words) */
                if (rc != HT_ERR_NOTFOUND)
                    srv->next_try_us = now + STORE_ERROR_RETRY_US;
                if (rc != HT_ERR_NOTFOUND && !srv->said_store_error) {
                    srv->said_store_error = true;
                    HT_LOG_ERROR("serve",
                                 "cannot open the store at %s: %s (the API "
                                 "answers 503 until it can)",
                                 srv->db, ht_strerror(rc));
                }
            }
        }
    }
    pthread_mutex_unlock(&srv->store_mu);
    return s;
}

/* ---- answering --------------------------------------------------------- */

/* Constant-time comparison of the request's Authorization header with
 * "Bearer <token>": the time taken does not depend on where they differ. */
static bool authorized(const struct ht_server *srv, struct MHD_Connection *c)
{
    const char *h =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    size_t n, diff;

    if (!srv->token)
        return true;
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    h += 7;
    n = strlen(h);
    diff = n ^ srv->token_len;
    for (size_t i = 0; i < srv->token_len; i++)
        diff |= (unsigned char)(h[i < n ? i : 0] ^ srv->token[i]);
    return diff == 0;
}

/* Whether a Host header names this machine's loopback: 127.0.0.0/8,
 * [::1] or localhost, with or without a port. */
static bool loopback_host(const char *h)
{
    char name[256];
    size_t n;

    if (h[0] == '[') {
        const char *close = strchr(h, ']');

        return close && (size_t)(close - h) == 4 &&
               strncmp(h, "[::1]", 5) == 0 &&
               (close[1] == 0 || close[1] == ':');
    }
    n = strcspn(h, ":");
    if (n == 0 || n >= sizeof(name))
        return false;
    memcpy(name, h, n);
    name[n] = 0;
    if (strcasecmp(name, "localhost") == 0)
        return true;
    {
        struct in_addr a;

        return inet_pton(AF_INET, name, &a) == 1 &&
               (ntohl(a.s_addr) >> 24) == 127;
    }
}

/* DNS rebinding: a web page whose name its owner points at 127.0.0.1 would
 * reach a loopback server from the user's browser, and its requests carry
 * that name as Host. A loopback server without a token answers only
 * requests whose Host is a loopback name (or that carry none, HTTP/1.0). A
 * server bound elsewhere cannot know the names it is reached by: there,
 * --token is the protection (serve warns). */
static bool host_allowed(const struct ht_server *srv, struct MHD_Connection *c)
{
    const char *h;

    if (srv->token || srv->exposed)
        return true;
    h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    return !h || loopback_host(h);
}

/* libmicrohttpd's percent-decoding of the path and the arguments, which
 * would cut a value short at an encoded NUL (/api/v1/trace/a%00b would
 * look up "a"): such a request is marked, and refused with a 400. */
#define NUL_MARK "X-Hoptrace-Encoded-Nul"

static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    if (strstr(s, "%00"))
        MHD_set_connection_value(c, MHD_HEADER_KIND, NUL_MARK, "1");
    return MHD_http_unescape(s);
}

static enum MHD_Result respond(struct MHD_Connection *c, struct ht_server *srv,
                               const char *path, struct ht_http_resp *rs,
                               const char *allow, bool challenge)
{
    struct MHD_Response *r;
    enum MHD_Result ok;

    if (rs->body.len)
        r = MHD_create_response_from_buffer(rs->body.len, rs->body.data,
                                            MHD_RESPMEM_MUST_FREE);
    else
        r = MHD_create_response_from_buffer(0, (void *)"",
                                            MHD_RESPMEM_PERSISTENT);
    if (!r) {
        ht_buf_free(&rs->body);
        return MHD_NO;
    }
    if (rs->body.len)
        ht_buf_init(&rs->body); /* the response owns the bytes now */
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            rs->ctype ? rs->ctype : "application/json");
    MHD_add_response_header(r, "Content-Security-Policy", csp);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL,
                            strncmp(path, "/static/", 8) == 0 ? "no-cache"
                                                              : "no-store");
    if (allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    if (challenge)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Bearer realm=\"hoptrace\"");
    if (atomic_load(&srv->stopping))
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    ok = MHD_queue_response(c, (unsigned)rs->status, r);
    MHD_destroy_response(r);
    return ok;
}

/* Whether the request announces a body (no route takes one). */
static bool has_body(struct MHD_Connection *c)
{
    const char *cl = MHD_lookup_connection_value(
        c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);

    if (MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                    MHD_HTTP_HEADER_TRANSFER_ENCODING))
        return true;
    return cl && strspn(cl, "0 \t") != strlen(cl);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    struct ht_server *srv = cls;
    struct ht_http_resp rs = {.status = 0};
    struct conn_req *cr = *con_cls;
    enum MHD_Result ok;

    (void)version;
    (void)upload;
    if (!cr) {
        /* the headers are in. A request that will be refused is answered
         * now, before any body it has is read (the connection then
         * closes); the others on the next call */
        ht_buf_init(&rs.body);
        if (!host_allowed(srv, c)) {
            ht_http_error(&rs, 421,
                          "this server answers only requests to a loopback "
                          "name (127.0.0.1, [::1], localhost): the Host "
                          "header names another (a DNS rebinding page?); "
                          "use serve --token to be reached by other names");
            return respond(c, srv, url, &rs, NULL, false);
        }
        if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, NUL_MARK)) {
            ht_http_error(&rs, MHD_HTTP_BAD_REQUEST,
                          "an encoded NUL byte (%%00) in the URL: no id or "
                          "parameter holds one");
            return respond(c, srv, url, &rs, NULL, false);
        }
        if (!authorized(srv, c)) {
            ht_http_error(&rs, MHD_HTTP_UNAUTHORIZED,
                          "this server needs Authorization: Bearer <token> "
                          "(the token of serve --token)");
            return respond(c, srv, url, &rs, NULL, true);
        }
        if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
            ht_http_error(&rs, MHD_HTTP_METHOD_NOT_ALLOWED,
                          "method %s is not allowed: hoptrace serve answers "
                          "GET and HEAD",
                          method);
            return respond(c, srv, url, &rs, "GET, HEAD", false);
        }
        if (has_body(c)) {
            ht_http_error(&rs, MHD_HTTP_CONTENT_TOO_LARGE,
                          "a %s request to hoptrace serve carries no body",
                          method);
            return respond(c, srv, url, &rs, NULL, false);
        }
        cr = calloc(1, sizeof(*cr));
        if (!cr)
            return MHD_NO;
        cr->c = c;
        cr->t0_us = ht_now_mono_us();
        *con_cls = cr;
        atomic_fetch_add(&srv->inflight, 1);
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0; /* a body of a GET is skipped */
        return MHD_YES;
    }
    ht_buf_init(&rs.body);
    {
        struct ht_http_req rq = {.method = method,
                                 .path = url,
                                 .store = server_store(srv),
                                 .arg = req_arg,
                                 .arg_all = req_arg_all,
                                 .impl = cr,
                                 .stall_cfg = srv->stall_cfg};
        size_t i;

        if (!rq.store && strcmp(url, "/healthz") != 0) {
            int err = atomic_load(&srv->store_err);

#ifdef HT_SERVE_HAS_WEB
            /* the pages need no store: they load, and say the API's 503 */
            if (ht_serve_web(&rq, &rs))
                return respond(c, srv, url, &rs, NULL, false);
#endif
            if (err)
                ht_http_error(&rs, MHD_HTTP_SERVICE_UNAVAILABLE,
                              "the store at %s cannot be opened: %s (serve's "
                              "stderr says why)",
                              srv->db ? srv->db : "?", ht_strerror(err));
            else
                ht_http_error(&rs, MHD_HTTP_SERVICE_UNAVAILABLE,
                              "no store yet at %s: ingest telemetry first "
                              "(it is opened as soon as it appears)",
                              srv->db ? srv->db : "?");
            return respond(c, srv, url, &rs, NULL, false);
        }
        for (i = 0; i < NROUTES; i++)
            if (routes[i](&rq, &rs))
                break;
        if (i == NROUTES)
            ht_http_error(&rs, MHD_HTTP_NOT_FOUND, "no such page: %s", url);
        if (!rs.status) /* a handler that forgot its status: a bug */
            ht_http_error(&rs, MHD_HTTP_INTERNAL_SERVER_ERROR,
                          "internal error: no answer for %s", url);
    }
    if (HT_LOG_LVL_DEBUG <= ht_log_level) {
        /* -vv: an access log line; the path as data, never as control */
        struct ht_buf line;

        ht_buf_init(&line);
        ht_buf_add_printable(&line, url, strlen(url));
        HT_LOG_DEBUG("serve", "%s %s %d %zu bytes %.3f ms", method,
                     line.data ? line.data : "", rs.status, rs.body.len,
                     (double)(ht_now_mono_us() - cr->t0_us) / 1000.0);
        ht_buf_free(&line);
    }
    ok = respond(c, srv, url, &rs, NULL, false);
    ht_buf_free(&rs.body);
    return ok;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct ht_server *srv = cls;

    (void)c;
    (void)toe;
    if (*con_cls) {
        free(*con_cls);
        *con_cls = NULL;
        atomic_fetch_sub(&srv->inflight, 1);
    }
}

/* ---- starting and stopping --------------------------------------------- */

/* "ADDR:PORT", "[V6]:PORT", ":PORT" or "PORT" into a socket address. */
static int parse_listen(const char *spec, struct sockaddr_storage *ss,
                        socklen_t *sl)
{
    char host[256];
    const char *port, *colon;
    struct addrinfo hints, *ai = NULL;
    char *end;
    long p;
    int rc;

    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');

        if (!close || close[1] != ':' || (size_t)(close - spec - 1) >= 256)
            return -1;
        memcpy(host, spec + 1, (size_t)(close - spec - 1));
        host[close - spec - 1] = 0;
        port = close + 2;
    } else if ((colon = strrchr(spec, ':'))) {
        if ((size_t)(colon - spec) >= sizeof(host) ||
            strchr(spec, ':') != colon)
            return -1;
        memcpy(host, spec, (size_t)(colon - spec));
        host[colon - spec] = 0;
        port = colon + 1;
    } else {
        snprintf(host, sizeof(host), "127.0.0.1");
        port = spec;
    }
    if (!host[0])
        snprintf(host, sizeof(host), "127.0.0.1");
    errno = 0;
    p = strtol(port, &end, 10);
    if (!*port || *end || errno || p < 0 || p > 65535)
        return -1;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    rc = getaddrinfo(host, NULL, &hints, &ai);
    if (rc || !ai)
        return -1;
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *sl = ai->ai_addrlen;
    freeaddrinfo(ai);
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)p);
    else if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)p);
    else
        return -1;
    return 0;
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;

        return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;

        if (IN6_IS_ADDR_LOOPBACK(&a->sin6_addr))
            return true;
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr))
            return a->sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

static void describe(const struct sockaddr_storage *ss, uint16_t port,
                     char *out, size_t n)
{
    char ip[INET6_ADDRSTRLEN] = "?";

    if (ss->ss_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, ip,
                  sizeof(ip));
        snprintf(out, n, "%s:%u", ip, (unsigned)port);
    } else {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, ip,
                  sizeof(ip));
        snprintf(out, n, "[%s]:%u", ip, (unsigned)port);
    }
}

static void free_server(struct ht_server *srv)
{
    struct ht_store *s = atomic_load(&srv->store);

    if (srv->own_store)
        ht_store_close(s);
    pthread_mutex_destroy(&srv->store_mu);
    if (srv->token) {
        explicit_bzero(srv->token, srv->token_len);
        free(srv->token);
    }
    free(srv->db);
    free(srv);
}

int ht_server_start(const struct ht_server_cfg *cfg, struct ht_server **out)
{
    struct ht_server *srv;
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    const union MHD_DaemonInfo *info;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                     MHD_USE_ITC | MHD_USE_TURBO;

    *out = NULL;
    memset(&ss, 0, sizeof(ss));
    if (!cfg->listen || parse_listen(cfg->listen, &ss, &sl) != 0) {
        HT_LOG_ERROR("serve",
                     "--listen takes ADDR:PORT, [IPV6]:PORT or PORT "
                     "(e.g. 127.0.0.1:8418), not '%s'",
                     cfg->listen ? cfg->listen : "");
        return HT_ERR_USAGE;
    }
    srv = calloc(1, sizeof(*srv));
    if (!srv)
        return HT_ERR_NOMEM;
    pthread_mutex_init(&srv->store_mu, NULL);
    atomic_init(&srv->store, cfg->store);
    atomic_init(&srv->inflight, 0);
    atomic_init(&srv->store_err, HT_ERR_OK);
    atomic_init(&srv->stopping, false);
    srv->db = cfg->db ? strdup(cfg->db) : NULL;
    srv->stall_cfg = cfg->stall_cfg;
    if (cfg->token) {
        srv->token = strdup(cfg->token);
        srv->token_len = srv->token ? strlen(srv->token) : 0;
    }
    if ((cfg->db && !srv->db) || (cfg->token && !srv->token)) {
        free_server(srv);
        return HT_ERR_NOMEM;
    }
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    srv->exposed = !is_loopback(&ss);
    srv->d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_SOCK_ADDR,
        (const struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)(cfg->threads ? cfg->threads : 1),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
        /* a request's line and headers: the library's 32 KiB default cut
         * a URL of a few hundred parameters off with no answer at all */
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024),
        MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_END);
    if (!srv->d) {
        HT_LOG_ERROR("serve",
                     "cannot listen on %s (is the port in use, or the "
                     "address not this host's?); pick another with --listen",
                     cfg->listen);
        free_server(srv);
        return HT_ERR_IO;
    }
    info = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);
    describe(&ss, info ? info->port : 0, srv->where, sizeof(srv->where));
    (void)sl;
    *out = srv;
    return HT_ERR_OK;
}

const char *ht_server_where(const struct ht_server *srv)
{
    return srv->where;
}

bool ht_server_exposed(const struct ht_server *srv)
{
    return srv->exposed;
}

/*
 * Not MHD_quiesce_daemon: on an epoll daemon with its own threads it races
 * the worker threads, which remove the listening socket from their epoll
 * sets themselves once they see the daemon quiesced, and the loser of the
 * race aborts the process (MHD_PANIC "Failed to remove listen FD from
 * epoll set": MHD_quiesce_daemon's EPOLL_CTL_DEL on a worker's set does
 * not allow for ENOENT, in libmicrohttpd 0.9.75 as in Debian 12 and still
 * in 1.0.1; seen once in CI as a crash of serve on SIGTERM, not
 * reproduced in 200 SIGTERMs under load). So the listening socket stays
 * open until MHD_stop_daemon closes it; in the meantime every answer, to a
 * request in flight or one that still arrives, says Connection: close.
 */
void ht_server_stop(struct ht_server *srv, int drain_ms)
{
    int64_t until;

    if (!srv)
        return;
    atomic_store(&srv->stopping, true);
    until = ht_now_mono_us() + (int64_t)drain_ms * 1000;
    while (atomic_load(&srv->inflight) > 0 && ht_now_mono_us() < until) {
        struct timespec ts = {0, 10 * 1000 * 1000};

        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(srv->d);
    free_server(srv);
}
