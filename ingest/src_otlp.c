/*
 * src_otlp.c - the OTLP/HTTP source of the ingest engine: OpenTelemetry
 * SDKs and collectors export traces straight to hoptrace
 * (OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318).
 *
 * `POST /v1/traces`, Content-Type application/json or
 * application/x-protobuf, optionally `Content-Encoding: gzip`; answered as
 * the OTLP/HTTP specification says: 200 with an ExportTraceServiceResponse
 * in the request's encoding (with partial_success when spans were
 * rejected), 400 with a google.rpc.Status for a body that cannot be
 * decoded, 413 over the size limit, 415 for another content type or
 * encoding, 405 for another method, 404 for another path, 503 when the
 * store could not commit (the client retries).
 *
 * libmicrohttpd serves connections on threads of its own; a request's
 * body is handed to the engine's thread (poll), decoded into the engine's
 * batch, and the handler answers only once the batch that holds it is
 * committed (checkpoint: flush, then sync): a 200 means stored. Spans are
 * keyed by their ids, so an export sent again stores nothing twice. A push
 * source has no position to resume from: what was answered 200 is in the
 * store, what was not is the client's to send again.
 *
 * Owned by ingest/ (library ht_engine). It prints nothing: errors go to
 * the log, counters to ht_otlp_stats.
 */
#define _GNU_SOURCE
#include "ht_engine.h"

#include "google/rpc/status.pb-c.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#define OTLP_DEFAULT_LISTEN "127.0.0.1:4318"

const struct ht_opt ht_otlp_opt_table[] = {
    {HT_OPT_COUNT, "--max-body", NULL, "BYTES", "16777216",
     offsetof(struct ht_otlp_cfg, max_body), 1024, 268435456,
     "largest export body accepted, before and after gunzip (413 above)"},
    HT_OPT_END};

enum { JOB_QUEUED, JOB_DECODED, JOB_DONE, JOB_FAILED };

struct job {
    uint8_t *body;
    size_t n;
    int enc; /* HT_OTLP_JSON, HT_OTLP_PROTOBUF */
    char src[96];
    struct ht_otlp_result res;
    int state;
    struct job *next;
};

/* One connection's request, while its body arrives. */
struct conn {
    int enc;
    bool gzip;
    bool too_large;
    struct ht_buf body;
};

struct otlp {
    struct ht_otlp_cfg cfg;
    struct MHD_Daemon *d;
    int lfd;
    int wake[2]; /* handler -> engine thread */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *queued, **qtail; /* waiting for the engine thread */
    struct job *decoded;         /* in the batch, waiting for its commit */
    bool closing;
    struct ht_otlp_stats st;
};

/* ---- addresses ----------------------------------------------------------- */

/* ---- answers ------------------------------------------------------------- */

static const char *ctype_of(int enc)
{
    return enc == HT_OTLP_PROTOBUF ? "application/x-protobuf"
                                   : "application/json";
}

static enum MHD_Result send_bytes(struct MHD_Connection *c, unsigned status,
                                  const char *ctype, const void *p, size_t n,
                                  const char *allow)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        n, (void *)(uintptr_t)p, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result rc;

    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

/* A google.rpc.Status in the request's encoding (gRPC code 3
 * INVALID_ARGUMENT for a bad body, 8 RESOURCE_EXHAUSTED for a large one,
 * 14 UNAVAILABLE when the store failed, 12 UNIMPLEMENTED otherwise). */
static enum MHD_Result send_status(struct MHD_Connection *c, unsigned http,
                                   int enc, int code, const char *msg,
                                   const char *allow)
{
    if (enc == HT_OTLP_PROTOBUF) {
        Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
        uint8_t buf[600];
        size_t n;

        st.code = code;
        st.message = (char *)(uintptr_t)msg;
        if (google__rpc__status__get_packed_size(&st) <= sizeof(buf)) {
            n = google__rpc__status__pack(&st, buf);
            return send_bytes(c, http, ctype_of(enc), buf, n, allow);
        }
    }
    {
        struct ht_buf b;
        enum MHD_Result rc;

        ht_buf_init(&b);
        ht_buf_printf(&b, "{\"code\":%d,\"message\":", code);
        ht_buf_json_str(&b, msg);
        ht_buf_addc(&b, '}');
        rc = send_bytes(c, http, "application/json", b.data, b.len, allow);
        ht_buf_free(&b);
        return rc;
    }
}

static enum MHD_Result send_export_ok(struct MHD_Connection *c,
                                      const struct job *j)
{
    char msg[200];

    if (j->res.rejected)
        snprintf(msg, sizeof(msg),
                 "%llu of %llu spans rejected (kept as dead letters: "
                 "hoptrace dlq)",
                 (unsigned long long)j->res.rejected,
                 (unsigned long long)j->res.spans);
    if (j->enc == HT_OTLP_PROTOBUF) {
        Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse resp =
            OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_RESPONSE__INIT;
        Opentelemetry__Proto__Collector__Trace__V1__ExportTracePartialSuccess ps =
            OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_PARTIAL_SUCCESS__INIT;
        uint8_t buf[400];
        size_t n;

        if (j->res.rejected) {
            ps.rejected_spans = (int64_t)j->res.rejected;
            ps.error_message = msg;
            resp.partial_success = &ps;
        }
        n = opentelemetry__proto__collector__trace__v1__export_trace_service_response__pack(
            &resp, buf);
        return send_bytes(c, MHD_HTTP_OK, ctype_of(j->enc), buf, n, NULL);
    }
    {
        struct ht_buf b;
        enum MHD_Result rc;

        ht_buf_init(&b);
        if (j->res.rejected) {
            ht_buf_printf(&b,
                          "{\"partialSuccess\":{\"rejectedSpans\":\"%llu\","
                          "\"errorMessage\":",
                          (unsigned long long)j->res.rejected);
            ht_buf_json_str(&b, msg);
            ht_buf_adds(&b, "}}");
        } else {
            ht_buf_adds(&b, "{}");
        }
        rc = send_bytes(c, MHD_HTTP_OK, ctype_of(j->enc), b.data, b.len, NULL);
        ht_buf_free(&b);
        return rc;
    }
}

/* ---- the handler (libmicrohttpd's threads) --------------------------------
 */

static void count(struct otlp *o, uint64_t *field)
{
    pthread_mutex_lock(&o->mu);
    (*field)++;
    pthread_mutex_unlock(&o->mu);
}

/* The media type before any parameters, compared without case. */
static bool media_is(const char *ct, const char *want)
{
    size_t n = strlen(want);

    while (ct && (*ct == ' ' || *ct == '\t'))
        ct++;
    return ct && strncasecmp(ct, want, n) == 0 &&
           (ct[n] == 0 || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t');
}

/* Hands the body to the engine thread and waits for its commit. */
static int submit(struct otlp *o, struct job *j)
{
    char one = 1;
    int state;

    pthread_mutex_lock(&o->mu);
    if (o->closing) {
        pthread_mutex_unlock(&o->mu);
        return JOB_FAILED;
    }
    j->state = JOB_QUEUED;
    j->next = NULL;
    *o->qtail = j;
    o->qtail = &j->next;
    pthread_mutex_unlock(&o->mu);
    if (write(o->wake[1], &one, 1) < 0 && errno != EAGAIN)
        HT_LOG_WARN("ingest:otlp", "wake-up write: %s", strerror(errno));
    pthread_mutex_lock(&o->mu);
    while (j->state == JOB_QUEUED || j->state == JOB_DECODED)
        pthread_cond_wait(&o->cv, &o->mu);
    state = j->state;
    pthread_mutex_unlock(&o->mu);
    return state;
}

/* Whether gzip data is valid at least until it inflates past `limit`
 * bytes (a body too large once inflated, not a bad one). The output is
 * thrown away as it comes: no memory for a gzip bomb. */
static bool inflates_past(const void *p, size_t n, size_t limit)
{
    z_stream z;
    uint8_t out[16384];
    size_t total = 0;
    int zr = Z_OK;

    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
        return false;
    z.next_in = (Bytef *)(uintptr_t)p;
    z.avail_in = (uInt)n;
    while (zr == Z_OK && total <= limit) {
        z.next_out = out;
        z.avail_out = sizeof(out);
        zr = inflate(&z, Z_NO_FLUSH);
        total += sizeof(out) - z.avail_out;
        if (zr == Z_STREAM_END && z.avail_in > 0) {
            /* the next member: ht_gunzip reads them all, so the limit
             * counts them all */
            zr = inflateReset(&z);
            continue;
        }
        if (zr == Z_BUF_ERROR ||
            (zr == Z_OK && z.avail_in == 0 && z.avail_out == sizeof(out)))
            break;
    }
    inflateEnd(&z);
    return total > limit;
}

static enum MHD_Result finish(struct otlp *o, struct MHD_Connection *c,
                              struct conn *k)
{
    struct job j;
    uint8_t *raw = NULL;
    size_t rawn = 0;
    const union MHD_ConnectionInfo *ci;
    enum MHD_Result rc;
    int state;

    if (k->too_large) {
        count(o, &o->st.too_large);
        return send_status(c, MHD_HTTP_CONTENT_TOO_LARGE, k->enc, 8,
                           "export body larger than --max-body", NULL);
    }
    memset(&j, 0, sizeof(j));
    if (k->gzip) {
        int g =
            ht_gunzip(k->body.data, k->body.len, o->cfg.max_body, &raw, &rawn);

        if (g != 0) {
            /* over the limit once inflated, or not gzip at all */
            bool big = g == -1 && k->body.len > 2 &&
                       (uint8_t)k->body.data[0] == 0x1f &&
                       (uint8_t)k->body.data[1] == 0x8b;

            free(raw);
            if (big)
                big = inflates_past(k->body.data, k->body.len, o->cfg.max_body);
            if (big) {
                count(o, &o->st.too_large);
                return send_status(c, MHD_HTTP_CONTENT_TOO_LARGE, k->enc, 8,
                                   "export body larger than --max-body once "
                                   "inflated",
                                   NULL);
            }
            count(o, &o->st.bad);
            return send_status(c, MHD_HTTP_BAD_REQUEST, k->enc, 3,
                               "Content-Encoding gzip, but the body is not "
                               "valid gzip data",
                               NULL);
        }
        j.body = raw;
        j.n = rawn;
    } else {
        j.body = (uint8_t *)k->body.data;
        j.n = k->body.len;
    }
    j.enc = k->enc;
    ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    memcpy(j.src, "otlp:", 5);
    ht_addr_format(ci ? ci->client_addr : NULL, j.src + 5, sizeof(j.src) - 5);
    state = submit(o, &j);
    free(raw);
    if (state != JOB_DONE) {
        count(o, &o->st.unavailable);
        return send_status(c, MHD_HTTP_SERVICE_UNAVAILABLE, k->enc, 14,
                           "the store could not commit (retry later)", NULL);
    }
    if (j.res.bad) {
        count(o, &o->st.bad);
        return send_status(c, MHD_HTTP_BAD_REQUEST, k->enc, 3, j.res.why, NULL);
    }
    pthread_mutex_lock(&o->mu);
    o->st.accepted++;
    o->st.spans += j.res.spans;
    o->st.rejected_spans += j.res.rejected;
    if (j.res.rejected)
        o->st.partial++;
    pthread_mutex_unlock(&o->mu);
    rc = send_export_ok(c, &j);
    return rc;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c,
                               const char *url, const char *method,
                               const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
    struct otlp *o = cls;
    struct conn *k = *con_cls;

    (void)version;
    if (!k) {
        const char *ct, *ce, *cl;

        count(o, &o->st.requests);
        if (strcmp(url, "/v1/traces") != 0) {
            count(o, &o->st.other);
            return send_status(c, MHD_HTTP_NOT_FOUND, HT_OTLP_JSON, 5,
                               "not found: OTLP traces are POSTed to "
                               "/v1/traces",
                               NULL);
        }
        if (strcmp(method, "POST") != 0) {
            count(o, &o->st.other);
            return send_status(c, MHD_HTTP_METHOD_NOT_ALLOWED, HT_OTLP_JSON, 12,
                               "only POST is accepted on /v1/traces", "POST");
        }
        ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                         MHD_HTTP_HEADER_CONTENT_TYPE);
        ce = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                         MHD_HTTP_HEADER_CONTENT_ENCODING);
        cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                         MHD_HTTP_HEADER_CONTENT_LENGTH);
        k = calloc(1, sizeof(*k));
        if (!k)
            return MHD_NO;
        ht_buf_init(&k->body);
        *con_cls = k;
        if (media_is(ct, "application/x-protobuf")) {
            k->enc = HT_OTLP_PROTOBUF;
        } else if (media_is(ct, "application/json")) {
            k->enc = HT_OTLP_JSON;
        } else {
            count(o, &o->st.unsupported);
            return send_status(c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, HT_OTLP_JSON,
                               3,
                               "Content-Type must be application/json or "
                               "application/x-protobuf",
                               NULL);
        }
        if (ce && *ce && strcasecmp(ce, "gzip") == 0) {
            k->gzip = true;
        } else if (ce && *ce && strcasecmp(ce, "identity") != 0) {
            count(o, &o->st.unsupported);
            return send_status(c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, k->enc, 3,
                               "Content-Encoding must be gzip or none", NULL);
        }
        if (cl && strtoull(cl, NULL, 10) > o->cfg.max_body) {
            k->too_large = true;
            count(o, &o->st.too_large);
            return send_status(c, MHD_HTTP_CONTENT_TOO_LARGE, k->enc, 8,
                               "export body larger than --max-body", NULL);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!k->too_large && k->body.len + *upload_size > o->cfg.max_body) {
            k->too_large = true;
            ht_buf_free(&k->body);
            ht_buf_init(&k->body);
        }
        if (!k->too_large)
            ht_buf_add(&k->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    return finish(o, c, k);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    struct conn *k = *con_cls;

    (void)cls;
    (void)c;
    (void)toe;
    if (k) {
        ht_buf_free(&k->body);
        free(k);
        *con_cls = NULL;
    }
}

/* ---- the source ---------------------------------------------------------- */

static void fail_all(struct otlp *o)
{
    for (struct job *j = o->queued; j; j = j->next)
        j->state = JOB_FAILED;
    for (struct job *j = o->decoded; j; j = j->next)
        j->state = JOB_FAILED;
    o->queued = o->decoded = NULL;
    o->qtail = &o->queued;
    pthread_cond_broadcast(&o->cv);
}

static void otlp_close(void *state)
{
    struct otlp *o = state;

    if (!o)
        return;
    pthread_mutex_lock(&o->mu);
    o->closing = true;
    fail_all(o);
    pthread_mutex_unlock(&o->mu);
    if (o->d)
        MHD_stop_daemon(o->d);
    if (o->lfd >= 0)
        close(o->lfd);
    for (int i = 0; i < 2; i++)
        if (o->wake[i] >= 0)
            close(o->wake[i]);
    pthread_cond_destroy(&o->cv);
    pthread_mutex_destroy(&o->mu);
    free(o);
}

static int otlp_open(const void *cfgv, void **state)
{
    const struct ht_otlp_cfg *cfg = cfgv;
    struct otlp *o = calloc(1, sizeof(*o));
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    const char *spec;
    int one = 1;
    unsigned flags =
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD;

    *state = NULL;
    if (!o)
        return HT_ERR_NOMEM;
    o->cfg = *cfg;
    if (!o->cfg.max_body)
        o->cfg.max_body = 16u << 20;
    o->lfd = o->wake[0] = o->wake[1] = -1;
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
    o->qtail = &o->queued;
    spec = cfg->listen ? cfg->listen : OTLP_DEFAULT_LISTEN;
    if (ht_addr_resolve(spec, SOCK_STREAM, true, &ss, &sl) != 0) {
        HT_LOG_ERROR("ingest:otlp", "--otlp takes HOST:PORT (e.g. %s), not %s",
                     OTLP_DEFAULT_LISTEN, spec);
        otlp_close(o);
        return HT_ERR_USAGE;
    }
    if (pipe2(o->wake, O_CLOEXEC | O_NONBLOCK) != 0 ||
        (o->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
        HT_LOG_ERROR("ingest:otlp", "cannot create a socket: %s",
                     strerror(errno));
        otlp_close(o);
        return HT_ERR_IO;
    }
    setsockopt(o->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(o->lfd, (struct sockaddr *)&ss, sl) != 0 ||
        listen(o->lfd, 128) != 0) {
        HT_LOG_ERROR("ingest:otlp",
                     "cannot listen on http %s: %s (is a collector already "
                     "there? pick another with --otlp HOST:PORT)",
                     spec, strerror(errno));
        otlp_close(o);
        return HT_ERR_IO;
    }
    sl = sizeof(ss);
    getsockname(o->lfd, (struct sockaddr *)&ss, &sl);
    ht_addr_format((struct sockaddr *)&ss, o->st.where, sizeof(o->st.where));
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    o->d = MHD_start_daemon(flags, 0, NULL, NULL, handler, o,
                            MHD_OPTION_LISTEN_SOCKET, o->lfd,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, o,
                            MHD_OPTION_CONNECTION_TIMEOUT, 60u,
                            /* a thread and a body of up to --max-body each */
                            MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_END);
    if (!o->d) {
        HT_LOG_ERROR("ingest:otlp", "cannot start the HTTP server on %s",
                     o->st.where);
        otlp_close(o);
        return HT_ERR_IO;
    }
    o->lfd = -1; /* the daemon's now: it closes it */
    *state = o;
    return HT_ERR_OK;
}

static int otlp_poll(void *state, struct ht_engine *e, int timeout_ms)
{
    struct otlp *o = state;
    struct pollfd pfd = {.fd = o->wake[0], .events = POLLIN};
    struct job *list, *j;
    char drain[256];
    int got = 0;

    pthread_mutex_lock(&o->mu);
    list = o->queued;
    pthread_mutex_unlock(&o->mu);
    if (!list && poll(&pfd, 1, timeout_ms) < 0 && errno != EINTR) {
        HT_LOG_ERROR("ingest:otlp", "poll: %s", strerror(errno));
        return -HT_ERR_IO;
    }
    while (read(o->wake[0], drain, sizeof(drain)) > 0)
        ;
    /* take exports until the batch is full (the rest wait for the next
     * poll, after this batch's commit); decode outside the lock */
    for (;;) {
        struct ht_srcpos pos;

        pthread_mutex_lock(&o->mu);
        j = got && ht_engine_full(e) ? NULL : o->queued;
        if (j) {
            o->queued = j->next;
            if (!o->queued)
                o->qtail = &o->queued;
        }
        pthread_mutex_unlock(&o->mu);
        if (!j)
            break;
        /* dead letters keyed by the export's content, not by who sent it
         * or when: an export sent again (an exporter's retry) leaves the
         * same dead letters, not a second set */
        pos.source = "otlp";
        pos.offset = ht_hash64(j->body, j->n) >> 1;
        ht_ingest_otlp(ht_engine_batch(e), &pos, j->body, j->n, j->enc,
                       &j->res);
        got++;
        pthread_mutex_lock(&o->mu);
        j->state = JOB_DECODED;
        j->next = o->decoded;
        o->decoded = j;
        pthread_mutex_unlock(&o->mu);
    }
    if (!got)
        return HT_POLL_IDLE;
    return HT_POLL_FLUSH; /* each export is answered once committed */
}

static int otlp_checkpoint(void *state, struct ht_engine *e)
{
    struct otlp *o = state;
    struct job *list;
    int rc = ht_engine_flush(e, NULL, 0);

    if (!rc)
        rc = ht_engine_sync(e);
    pthread_mutex_lock(&o->mu);
    list = o->decoded;
    o->decoded = NULL;
    for (struct job *j = list; j;) {
        struct job *next = j->next;

        j->state = rc ? JOB_FAILED : JOB_DONE;
        j = next;
    }
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->mu);
    return rc;
}

void ht_otlp_stats(const void *state, struct ht_otlp_stats *out)
{
    struct otlp *o = (struct otlp *)(uintptr_t)state;

    pthread_mutex_lock(&o->mu);
    *out = o->st;
    pthread_mutex_unlock(&o->mu);
}

const struct ht_source_ops ht_source_otlp = {
    .name = "otlp",
    .opts = ht_otlp_opt_table,
    .cfg_size = sizeof(struct ht_otlp_cfg),
    .drain_on_stop = true,
    .open = otlp_open,
    .poll = otlp_poll,
    .checkpoint = otlp_checkpoint,
    .close = otlp_close,
};
