/*
 * test_jaeger.c - unit tests of the Jaeger conversion (query/jaeger.c) and
 * of the Jaeger query API's handlers called directly, no server
 * (serve/jaeger_api.c over query/jaeger_search.c):
 *
 *   - a hand-built request (root without a trace id, an SQS hop with its
 *     wait, a pending write): traceID of 16 zeros + root id, CHILD_OF,
 *     one FOLLOWS_FROM, the wait span's start/duration/tags, the pending
 *     wait span, critical_path tags, warnings; ht_jaeger_parse_id back;
 *   - on a store of fixtures/demo (40 requests, 2 stalled) ingested by the
 *     hoptrace binary: every route's answer against what the request
 *     JSON of the same store says (services, operations by kind, search
 *     by service / operation / window / duration / tags, newest first,
 *     limit; trace by Jaeger id and by any id; dependencies across the
 *     hops), and every bad parameter a 400 with Jaeger's errors[];
 *   - the search records' upkeep (maint/agg_update.c): the demo ingested
 *     file by file, three ingests each bringing the aggregates current on
 *     partial data, ends with exactly the 'J' and 'V' records of one
 *     ingest of everything; every 'V' count is the number of 'J' records
 *     holding its triple; retention (ht_agg_prune) past the newest
 *     request leaves no 'J' and no 'V' record.
 *
 * usage: test_jaeger HOPTRACE FIXTURES_DIR
 */
#define _GNU_SOURCE
#include "ht_agg_records.h"
#include "ht_maint.h"
#include "ht_query.h"
#include "ht_serve.h"
#include "ht_test.h"

#include <jansson.h>
#include <stdlib.h>
#include <unistd.h>

/* ---- a request built by hand ------------------------------------------- */

static struct ht_id8 id8(uint64_t v)
{
    struct ht_id8 id;

    ht_be64_put(id.b, v);
    return id;
}

static json_t *tag(json_t *span, const char *key)
{
    size_t i;
    json_t *t;

    json_array_foreach(json_object_get(span, "tags"), i, t)
    {
        if (strcmp(json_string_value(json_object_get(t, "key")), key) == 0)
            return json_object_get(t, "value");
    }
    return NULL;
}

static json_t *span_by_id(json_t *trace, const char *id)
{
    size_t i;
    json_t *s;

    json_array_foreach(json_object_get(trace, "spans"), i, s)
    {
        if (strcmp(json_string_value(json_object_get(s, "spanID")), id) == 0)
            return s;
    }
    return NULL;
}

static void test_conversion(void)
{
    struct ht_qspan spans[4];
    struct ht_qhop hops[2];
    struct ht_cp_entry cp[4];
    const char *warnings[] = {"{\"type\":\"pending\"}"};
    struct ht_request r;
    struct ht_result res;
    struct ht_buf out;
    json_error_t err;
    json_t *doc, *trace, *s;
    struct ht_tid tid;
    struct ht_id8 root;
    size_t nfollows = 0, i;
    char id[33];

    memset(spans, 0, sizeof(spans));
    for (int k = 0; k < 4; k++) {
        spans[k].parent = -1;
        spans[k].wait_hop = -1;
    }
    /* 0: the root, known from logs (no trace id) */
    spans[0].s = (struct ht_span){.id = id8(0x1111),
                                  .start_us = 1000000,
                                  .end_us = 1500000,
                                  .kind = HT_SK_FUNCTION,
                                  .name = "producer-fn",
                                  .origin = "AWS::Lambda::Function"};
    spans[0].service = "producer-fn";
    spans[0].logs_only = true;
    spans[0].cold = true;
    spans[0].init_us = 200000;
    /* 1: its SendMessage */
    spans[1].s = (struct ht_span){.id = id8(0x2222),
                                  .start_us = 1100000,
                                  .end_us = 1200000,
                                  .flags = HT_SPAN_WRITE | HT_SPAN_SUBSEGMENT,
                                  .kind = HT_SK_CALL,
                                  .via = HT_VIA_SQS,
                                  .name = "SQS",
                                  .operation = "SendMessage",
                                  .resource = "orders-queue",
                                  .message_id = "m-1"};
    spans[1].parent = 0;
    spans[1].service = "producer-fn";
    /* 2: the consumer, 300 ms later, in an X-Ray trace */
    spans[2].s = (struct ht_span){.id = id8(0x3333),
                                  .start_us = 1500000,
                                  .end_us = 1700000,
                                  .kind = HT_SK_FUNCTION,
                                  .name = "consumer-fn",
                                  .http_status = 502,
                                  .flags = HT_SPAN_FAULT};
    ht_tid_parse("1-5759e988-bd862e3fe1be46a994272793", 35, &spans[2].s.trace);
    spans[2].service = "consumer-fn";
    /* 3: a second write, still pending */
    spans[3].s = (struct ht_span){.id = id8(0x4444),
                                  .start_us = 1600000,
                                  .end_us = 1650000,
                                  .flags = HT_SPAN_WRITE | HT_SPAN_SUBSEGMENT,
                                  .kind = HT_SK_CALL,
                                  .via = HT_VIA_KINESIS,
                                  .name = "Kinesis",
                                  .operation = "PutRecord",
                                  .resource = "events"};
    spans[3].parent = 2;
    spans[3].service = "consumer-fn";
    hops[0] = (struct ht_qhop){.from = 1,
                               .to = 2,
                               .via = HT_VIA_SQS,
                               .resource = "orders-queue",
                               .evidence = "message-id",
                               .wait_ms = 300.0};
    hops[1] = (struct ht_qhop){.from = 3,
                               .to = -1,
                               .via = HT_VIA_KINESIS,
                               .resource = "events",
                               .evidence = "correlation",
                               .wait_ms = 42.5,
                               .pending = true};
    cp[0] = (struct ht_cp_entry){0, HT_CP_SELF, -1, 1000000, 100000};
    cp[1] = (struct ht_cp_entry){1, HT_CP_CALL, -1, 1100000, 100000};
    cp[2] = (struct ht_cp_entry){2, HT_CP_WAIT, 0, 1200000, 300000};
    cp[3] = (struct ht_cp_entry){2, HT_CP_SELF, -1, 1500000, 200000};
    memset(&r, 0, sizeof(r));
    r.root = 0;
    r.start_us = 1000000;
    r.end_us = 1700000;
    r.spans = spans;
    r.nspans = 4;
    r.hops = hops;
    r.nhops = 2;
    r.cp = cp;
    r.ncp = 4;
    r.warnings = warnings;
    r.nwarnings = 1;
    memset(&res, 0, sizeof(res));
    res.query = "m-1";
    res.requests = &r;
    res.nrequests = 1;

    ht_jaeger_trace_id(&r, id);
    CHECK_STREQ(id, "0000000000000000"
                    "0000000000001111");
    CHECK(ht_jaeger_parse_id(id, &tid, &root) == 1);
    CHECK(ht_be64_get(root.b) == 0x1111);
    CHECK(ht_jaeger_parse_id("5759e988bd862e3fe1be46a994272793", &tid, &root) ==
          0);
    CHECK(memcmp(tid.b, spans[2].s.trace.b, 16) == 0);
    CHECK(ht_jaeger_parse_id("5759e988bd862e3fe1be46a99427279", &tid, &root) ==
          HT_ERR_INPUT);
    CHECK(ht_jaeger_parse_id("5759e988bd862e3fe1be46a99427279z", &tid, &root) ==
          HT_ERR_INPUT);
    CHECK(ht_jaeger_parse_id("1-5759e988-bd862e3fe1be46a994272793", &tid,
                             &root) == HT_ERR_INPUT);

    ht_buf_init(&out);
    ht_query_jaeger(&res, &out);
    doc = json_loads(out.data, 0, &err);
    CHECK(doc != NULL);
    if (!doc) {
        fprintf(stderr, "%s\n%s\n", err.text, out.data);
        ht_buf_free(&out);
        return;
    }
    CHECK(json_array_size(json_object_get(doc, "data")) == 1);
    trace = json_array_get(json_object_get(doc, "data"), 0);
    CHECK_STREQ(json_string_value(json_object_get(trace, "traceID")), id);
    /* 4 spans + 2 wait spans */
    CHECK(json_array_size(json_object_get(trace, "spans")) == 6);
    json_array_foreach(json_object_get(trace, "spans"), i, s)
    {
        size_t k;
        json_t *ref;

        CHECK_STREQ(json_string_value(json_object_get(s, "traceID")), id);
        json_array_foreach(json_object_get(s, "references"), k, ref)
        {
            CHECK(span_by_id(trace, json_string_value(json_object_get(
                                        ref, "spanID"))) != NULL);
            nfollows +=
                strcmp(json_string_value(json_object_get(ref, "refType")),
                       "FOLLOWS_FROM") == 0;
        }
        CHECK(json_object_get(
                  json_object_get(trace, "processes"),
                  json_string_value(json_object_get(s, "processID"))) != NULL);
    }
    CHECK(nfollows == 1);
    /* the root: logs-only, cold, init, on the critical path */
    s = span_by_id(trace, "0000000000001111");
    CHECK(s && json_array_size(json_object_get(s, "references")) == 0);
    CHECK(s && json_is_true(tag(s, "cold_start")));
    CHECK(s && json_is_true(tag(s, "logs_only")));
    CHECK(s && json_real_value(tag(s, "init_ms")) == 200.0);
    CHECK(s && json_is_true(tag(s, "critical_path")));
    CHECK(s && json_integer_value(json_object_get(s, "startTime")) == 1000000);
    CHECK(s && json_integer_value(json_object_get(s, "duration")) == 500000);
    /* the write: CHILD_OF the root, producer, operation name */
    s = span_by_id(trace, "0000000000002222");
    CHECK(s && strcmp(json_string_value(json_object_get(s, "operationName")),
                      "SQS.SendMessage") == 0);
    CHECK(s && strcmp(json_string_value(tag(s, "span.kind")), "producer") == 0);
    CHECK(s && strcmp(json_string_value(json_object_get(
                          json_array_get(json_object_get(s, "references"), 0),
                          "refType")),
                      "CHILD_OF") == 0);
    CHECK(s && strcmp(json_string_value(tag(s, "messaging.message_id")),
                      "m-1") == 0);
    /* the consumer: FOLLOWS_FROM the write, error, status, its X-Ray id */
    s = span_by_id(trace, "0000000000003333");
    CHECK(s && json_array_size(json_object_get(s, "references")) == 1);
    CHECK(s && strcmp(json_string_value(json_object_get(
                          json_array_get(json_object_get(s, "references"), 0),
                          "spanID")),
                      "0000000000002222") == 0);
    CHECK(s && json_is_true(tag(s, "error")));
    CHECK(s && json_integer_value(tag(s, "http.status_code")) == 502);
    CHECK(s && strcmp(json_string_value(tag(s, "xray.trace_id")),
                      "1-5759e988-bd862e3fe1be46a994272793") == 0);
    CHECK(s && strcmp(json_string_value(tag(s, "span.kind")), "consumer") == 0);
    CHECK(s && json_real_value(tag(s, "hop.wait_ms")) == 300.0);
    /* the wait spans */
    {
        json_t *w = NULL, *p = NULL;

        json_array_foreach(json_object_get(trace, "spans"), i, s)
        {
            const char *op =
                json_string_value(json_object_get(s, "operationName"));

            if (strcmp(op, "wait sqs orders-queue") == 0)
                w = s;
            if (strcmp(op, "pending kinesis events") == 0)
                p = s;
        }
        CHECK(w != NULL && p != NULL);
        if (w) {
            CHECK(json_integer_value(json_object_get(w, "startTime")) ==
                  1200000);
            CHECK(json_integer_value(json_object_get(w, "duration")) == 300000);
            CHECK(strcmp(json_string_value(tag(w, "hop.via")), "sqs") == 0);
            CHECK(strcmp(json_string_value(tag(w, "hop.resource")),
                         "orders-queue") == 0);
            CHECK(strcmp(json_string_value(tag(w, "hop.evidence")),
                         "message-id") == 0);
            CHECK(json_real_value(tag(w, "hop.wait_ms")) == 300.0);
            CHECK(json_is_true(tag(w, "critical_path")));
            CHECK(json_real_value(tag(w, "critical_path_ms")) == 300.0);
            CHECK(strcmp(json_string_value(tag(w, "hop.consumer")),
                         "0000000000003333") == 0);
            CHECK(
                strcmp(json_string_value(json_object_get(
                           json_array_get(json_object_get(w, "references"), 0),
                           "spanID")),
                       "0000000000002222") == 0);
        }
        if (p) {
            CHECK(json_integer_value(json_object_get(p, "startTime")) ==
                  1650000);
            CHECK(json_integer_value(json_object_get(p, "duration")) == 42500);
            CHECK(json_is_true(tag(p, "hop.pending")));
            CHECK(tag(p, "hop.consumer") == NULL);
            CHECK(tag(p, "critical_path") == NULL);
        }
    }
    CHECK(json_array_size(json_object_get(trace, "warnings")) == 1);
    CHECK(json_object_size(json_object_get(trace, "processes")) == 2);
    /* tags as search matches them: one span holds them all */
    {
        const char *k2[] = {"hop.via", "hop.wait_ms"},
                   *v2[] = {"sqs", "300.000"};
        const char *k3[] = {"hop.via", "hop.pending"}, *v3[] = {"sqs", "true"};
        const char *k1[] = {"http.status_code"}, *v1[] = {"502"};

        CHECK(ht_jaeger_match_tags(&r, k2, v2, 2));
        CHECK(!ht_jaeger_match_tags(&r, k3, v3, 2));
        CHECK(ht_jaeger_match_tags(&r, k1, v1, 1));
        CHECK(ht_jaeger_match_tags(&r, NULL, NULL, 0));
    }
    json_decref(doc);
    ht_buf_free(&out);
}

/* ---- the handlers on a fixture store ------------------------------------ */

struct fake {
    const char *keys[8], *vals[8];
    size_t n;
};

static const char *fake_arg(const struct ht_http_req *rq, const char *name)
{
    const struct fake *f = rq->impl;

    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->keys[i], name) == 0)
            return f->vals[i];
    return NULL;
}

static struct ht_store *store;

/* Calls the handler; returns the parsed body (owned) and *status. */
static json_t *call(const char *method, const char *path, int *status, ...)
{
    struct fake f = {.n = 0};
    struct ht_http_req rq = {.method = method,
                             .path = path,
                             .store = store,
                             .arg = fake_arg,
                             .impl = &f};
    struct ht_http_resp rs = {.status = 0};
    va_list ap;
    const char *k;
    json_t *doc;
    int mine;

    va_start(ap, status);
    while ((k = va_arg(ap, const char *)) && f.n < 8) {
        f.keys[f.n] = k;
        f.vals[f.n++] = va_arg(ap, const char *);
    }
    va_end(ap);
    ht_buf_init(&rs.body);
    mine = ht_serve_jaeger(&rq, &rs);
    *status = mine ? rs.status : 0;
    doc = mine && rs.body.len ? json_loads(rs.body.data, 0, NULL) : NULL;
    if (mine && !doc)
        fprintf(stderr, "%s %s: not JSON: %.200s\n", method, path,
                rs.body.data ? rs.body.data : "");
    ht_buf_free(&rs.body);
    return doc;
}

static bool has_str(json_t *arr, const char *s)
{
    size_t i;
    json_t *v;

    json_array_foreach(arr, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
            return true;
    }
    return false;
}

static void expect_400_(const char *what, json_t *doc, int status)
{
    json_t *e = json_array_get(json_object_get(doc, "errors"), 0);

    if (status != 400)
        fprintf(stderr, "%s: status %d, expected 400\n", what, status);
    CHECK(status == 400);
    CHECK(json_integer_value(json_object_get(e, "code")) == 400);
    CHECK(json_is_string(json_object_get(e, "msg")));
    CHECK(json_is_null(json_object_get(doc, "data")));
    json_decref(doc);
}

/* The call is made before its status is read. */
#define EXPECT_400(what, ...)                                                  \
    do {                                                                       \
        json_t *d_ = call(__VA_ARGS__);                                        \
        expect_400_(what, d_, st);                                             \
    } while (0)

/* The trace's duration: latest end - earliest start of its spans. */
static int64_t trace_span_us(json_t *trace, int64_t *first)
{
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    size_t i;
    json_t *s;

    json_array_foreach(json_object_get(trace, "spans"), i, s)
    {
        int64_t a = json_integer_value(json_object_get(s, "startTime"));
        int64_t d = json_integer_value(json_object_get(s, "duration"));

        if (strncmp(json_string_value(json_object_get(s, "operationName")),
                    "pending ", 8) == 0)
            continue; /* a pending wait runs past the request's end */
        if (a < lo)
            lo = a;
        if (a + d > hi)
            hi = a + d;
    }
    if (first)
        *first = lo;
    return hi - lo;
}

static bool trace_has_service(json_t *trace, const char *service)
{
    const char *k;
    json_t *p;

    json_object_foreach(json_object_get(trace, "processes"), k, p)
    {
        if (strcmp(json_string_value(json_object_get(p, "serviceName")),
                   service) == 0)
            return true;
    }
    return false;
}

static void test_handlers(const char *hop, const char *fixtures)
{
    char dir[] = "/tmp/ht-test-jaeger-XXXXXX", cmd[2048];
    json_t *doc, *data, *all;
    int st;
    size_t i, nall;
    json_t *t;

    CHECK(mkdtemp(dir) != NULL);
    snprintf(cmd, sizeof(cmd),
             "'%s' --db '%s/db' ingest '%s/demo/segments.ndjson' "
             "'%s/demo/logs-cwl.ndjson' '%s/demo/logs-kinesis.json' "
             ">/dev/null 2>&1",
             hop, dir, fixtures, fixtures, fixtures);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof(cmd), "%s/db", dir);
    CHECK(ht_store_open(cmd, true, &store) == HT_ERR_OK);
    if (!store)
        return;

    /* not ours: the JSON API and the web view */
    CHECK(call("GET", "/api/v1/trace/x", &st, NULL) == NULL && st == 0);
    CHECK(call("GET", "/trace/x", &st, NULL) == NULL && st == 0);
    CHECK(call("GET", "/api/servicesx", &st, NULL) == NULL && st == 0);

    /* services */
    doc = call("GET", "/api/services", &st, NULL);
    data = json_object_get(doc, "data");
    CHECK(st == 200 && json_array_size(data) == 5);
    CHECK(has_str(data, "shop-api/prod") && has_str(data, "create-order") &&
          has_str(data, "process-order") && has_str(data, "index-order") &&
          has_str(data, "notify-customer"));
    CHECK(json_integer_value(json_object_get(doc, "total")) == 5);
    CHECK(json_is_null(json_object_get(doc, "errors")));
    json_decref(doc);

    /* operations: legacy names (a '/' in the service), and by kind */
    doc = call("GET", "/api/services/shop-api/prod/operations", &st, NULL);
    CHECK(st == 200 && has_str(json_object_get(doc, "data"), "shop-api/prod"));
    json_decref(doc);
    doc = call("GET", "/api/services/create-order/operations", &st, NULL);
    data = json_object_get(doc, "data");
    CHECK(st == 200 && has_str(data, "SQS.SendMessage") &&
          has_str(data, "create-order") && has_str(data, "Initialization") &&
          has_str(data, "wait sqs orders-queue"));
    /* each name once */
    {
        size_t k;
        json_t *a, *b;

        json_array_foreach(data, i, a)
        {
            json_array_foreach(data, k, b)
            {
                if (k > i)
                    CHECK(strcmp(json_string_value(a), json_string_value(b)));
            }
        }
    }
    json_decref(doc);
    doc = call("GET", "/api/operations", &st, "service", "create-order",
               "spanKind", "producer", NULL);
    data = json_object_get(doc, "data");
    CHECK(st == 200 && json_array_size(data) == 1);
    CHECK(strcmp(json_string_value(
                     json_object_get(json_array_get(data, 0), "name")),
                 "SQS.SendMessage") == 0);
    CHECK(strcmp(json_string_value(
                     json_object_get(json_array_get(data, 0), "spanKind")),
                 "producer") == 0);
    json_decref(doc);
    doc = call("GET", "/api/operations", &st, "service", "nobody", NULL);
    CHECK(st == 200 && json_array_size(json_object_get(doc, "data")) == 0);
    json_decref(doc);
    EXPECT_400("operations without service", "GET", "/api/operations", &st,
               NULL);

    /* search: every request of the demo through process-order */
    all = call("GET", "/api/traces", &st, "service", "process-order", "limit",
               "1500", NULL);
    data = json_object_get(all, "data");
    nall = json_array_size(data);
    CHECK(st == 200 && nall == 40);
    CHECK(json_integer_value(json_object_get(all, "limit")) == 1500);
    {
        int64_t prev = INT64_MAX, first;
        size_t slow = 0;

        json_array_foreach(data, i, t)
        {
            CHECK(trace_has_service(t, "process-order"));
            trace_span_us(t, &first);
            CHECK(first <= prev); /* newest first */
            prev = first;
            slow += trace_span_us(t, NULL) >= 2000000;
        }
        /* minDuration: exactly the traces of 2 s or more */
        doc = call("GET", "/api/traces", &st, "service", "process-order",
                   "limit", "1500", "minDuration", "2s", NULL);
        CHECK(st == 200 &&
              json_array_size(json_object_get(doc, "data")) == slow);
        CHECK(slow > 0 && slow < nall);
        json_array_foreach(json_object_get(doc, "data"), i, t)
        {
            CHECK(trace_span_us(t, NULL) >= 2000000);
        }
        json_decref(doc);
        doc = call("GET", "/api/traces", &st, "service", "process-order",
                   "limit", "1500", "maxDuration", "1999.999ms", NULL);
        CHECK(st == 200 &&
              json_array_size(json_object_get(doc, "data")) == nall - slow);
        json_decref(doc);
    }
    /* limit, and the default of 20 */
    doc = call("GET", "/api/traces", &st, "service", "process-order", "limit",
               "3", NULL);
    CHECK(st == 200 && json_array_size(json_object_get(doc, "data")) == 3);
    CHECK(
        strcmp(json_string_value(json_object_get(
                   json_array_get(json_object_get(doc, "data"), 0), "traceID")),
               json_string_value(
                   json_object_get(json_array_get(data, 0), "traceID"))) == 0);
    json_decref(doc);
    doc = call("GET", "/api/traces", &st, "service", "shop-api/prod", NULL);
    CHECK(st == 200 && json_array_size(json_object_get(doc, "data")) == 20);
    json_decref(doc);
    /* the window: start = end = one request's start */
    {
        int64_t first;
        char at[32];

        trace_span_us(json_array_get(data, 7), &first);
        snprintf(at, sizeof(at), "%lld", (long long)first);
        doc = call("GET", "/api/traces", &st, "service", "shop-api/prod",
                   "start", at, "end", at, NULL);
        CHECK(st == 200 && json_array_size(json_object_get(doc, "data")) == 1);
        CHECK(strcmp(json_string_value(json_object_get(
                         json_array_get(json_object_get(doc, "data"), 0),
                         "traceID")),
                     json_string_value(json_object_get(json_array_get(data, 7),
                                                       "traceID"))) == 0);
        json_decref(doc);
    }
    /* operation, tags: the 2 stalled requests hold a pending write */
    doc = call("GET", "/api/traces", &st, "service", "create-order",
               "operation", "SQS.SendMessage", "limit", "100", NULL);
    CHECK(st == 200 && json_array_size(json_object_get(doc, "data")) == 40);
    json_decref(doc);
    doc = call("GET", "/api/traces", &st, "service", "create-order",
               "operation", "no-such-op", NULL);
    CHECK(st == 200 && json_array_size(json_object_get(doc, "data")) == 0);
    json_decref(doc);
    doc = call("GET", "/api/traces", &st, "service", "shop-api/prod", "limit",
               "100", "tags", "{\"hop.pending\":\"true\"}", NULL);
    CHECK(st == 200 && json_array_size(json_object_get(doc, "data")) == 2);
    json_decref(doc);
    doc = call("GET", "/api/traces", &st, "service", "shop-api/prod", "limit",
               "100", "tag", "hop.via:kinesis", NULL);
    CHECK(st == 200 && json_array_size(json_object_get(doc, "data")) == 38);
    json_decref(doc);
    /* bad parameters */
    EXPECT_400("no service", "GET", "/api/traces", &st, NULL);
    EXPECT_400("start", "GET", "/api/traces", &st, "service", "x", "start",
               "yesterday", NULL);
    EXPECT_400("end", "GET", "/api/traces", &st, "service", "x", "end", "12x",
               NULL);
    EXPECT_400("minDuration", "GET", "/api/traces", &st, "service", "x",
               "minDuration", "fast", NULL);
    EXPECT_400("maxDuration unit", "GET", "/api/traces", &st, "service", "x",
               "maxDuration", "10", NULL);
    EXPECT_400("max < min", "GET", "/api/traces", &st, "service", "x",
               "minDuration", "2s", "maxDuration", "1s", NULL);
    EXPECT_400("limit", "GET", "/api/traces", &st, "service", "x", "limit",
               "-1", NULL);
    EXPECT_400("tags json", "GET", "/api/traces", &st, "service", "x", "tags",
               "{\"a\":", NULL);
    EXPECT_400("tags values", "GET", "/api/traces", &st, "service", "x", "tags",
               "{\"a\":1}", NULL);
    EXPECT_400("tag", "GET", "/api/traces", &st, "service", "x", "tag",
               "novalue", NULL);
    EXPECT_400("endTs", "GET", "/api/dependencies", &st, "endTs", "now", NULL);

    /* one trace by its Jaeger id, by the API Gateway id, unknown */
    {
        json_t *one = json_array_get(data, 0), *s0;
        const char *jid = json_string_value(json_object_get(one, "traceID"));
        const char *xid;
        char path[128];

        snprintf(path, sizeof(path), "/api/traces/%s", jid);
        doc = call("GET", path, &st, NULL);
        CHECK(st == 200 && json_array_size(json_object_get(doc, "data")) == 1);
        CHECK(json_equal(json_array_get(json_object_get(doc, "data"), 0), one));
        json_decref(doc);
        s0 = json_array_get(json_object_get(one, "spans"), 0);
        xid = json_string_value(tag(s0, "xray.trace_id"));
        CHECK(xid != NULL);
        snprintf(path, sizeof(path), "/api/traces/%s",
                 json_string_value(tag(s0, "aws.request_id")));
        doc = call("GET", path, &st, NULL);
        CHECK(st == 200 && json_array_size(json_object_get(doc, "data")) == 1);
        CHECK(strcmp(json_string_value(json_object_get(
                         json_array_get(json_object_get(doc, "data"), 0),
                         "traceID")),
                     jid) == 0);
        json_decref(doc);
        doc = call("GET", "/api/traces", &st, "traceID", jid, NULL);
        CHECK(st == 200 && json_array_size(json_object_get(doc, "data")) == 1);
        json_decref(doc);
    }
    doc = call("GET", "/api/traces/no-such-id", &st, NULL);
    CHECK(st == 404);
    CHECK(json_integer_value(json_object_get(
              json_array_get(json_object_get(doc, "errors"), 0), "code")) ==
          404);
    json_decref(doc);
    doc =
        call("GET", "/api/traces/00000000000000000000000000000001", &st, NULL);
    CHECK(st == 404);
    json_decref(doc);
    doc = call("POST", "/api/traces", &st, NULL);
    CHECK(st == 405);
    json_decref(doc);

    /* dependencies: the pipeline's edges, hops included, in the window */
    doc =
        call("GET", "/api/dependencies", &st, "lookback", "31536000000", NULL);
    CHECK(st == 200);
    {
        const char *want[][2] = {{"shop-api/prod", "create-order"},
                                 {"create-order", "process-order"},
                                 {"process-order", "index-order"},
                                 {"index-order", "notify-customer"}};

        for (size_t w = 0; w < 4; w++) {
            int64_t calls = 0;

            json_array_foreach(json_object_get(doc, "data"), i, t)
            {
                if (strcmp(json_string_value(json_object_get(t, "parent")),
                           want[w][0]) == 0 &&
                    strcmp(json_string_value(json_object_get(t, "child")),
                           want[w][1]) == 0)
                    calls = json_integer_value(json_object_get(t, "callCount"));
            }
            if (calls <= 0)
                fprintf(stderr, "no dependency %s -> %s\n", want[w][0],
                        want[w][1]);
            CHECK(calls > 0);
        }
    }
    json_decref(doc);
    doc = call("GET", "/api/dependencies", &st, "endTs", "1000", "lookback",
               "1000", NULL);
    CHECK(st == 200 && json_array_size(json_object_get(doc, "data")) == 0);
    json_decref(doc);

    json_decref(all);
    ht_store_close(store);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

/* ---- the search records' upkeep ----------------------------------------- */

struct recs {
    struct ht_buf b; /* klen (4) key vlen (4) value ... */
    size_t n;
};

static int rec_visit(void *ctx, const void *k, size_t kn, const void *v,
                     size_t vn)
{
    struct recs *r = ctx;
    uint32_t l = (uint32_t)kn;

    ht_buf_add(&r->b, &l, 4);
    ht_buf_add(&r->b, k, kn);
    l = (uint32_t)vn;
    ht_buf_add(&r->b, &l, 4);
    ht_buf_add(&r->b, v, vn);
    r->n++;
    return 0;
}

static void read_recs(struct ht_store *s, char prefix, struct recs *out)
{
    struct ht_txn *t;

    ht_buf_init(&out->b);
    out->n = 0;
    CHECK(ht_store_begin(s, false, &t) == HT_ERR_OK);
    CHECK(ht_store_scan(t, HT_DB_AGG, &prefix, 1, rec_visit, out) == HT_ERR_OK);
    ht_store_abort(t);
}

/* Every 'V' count is the number of 'J' records that hold its triple. */
static void check_counts(struct ht_store *s)
{
    struct recs j, v;
    struct ht_arena *a = ht_arena_create();
    size_t off = 0, checked = 0;

    read_recs(s, HT_AGG_K_JAEGER, &j);
    read_recs(s, HT_AGG_K_JCATALOG, &v);
    for (size_t i = 0; i < v.n; i++) {
        uint32_t kn, vn;
        const char *k, *svc, *op, *kind;
        int64_t want = 0, got = -1;
        size_t joff = 0;

        memcpy(&kn, v.b.data + off, 4);
        k = v.b.data + off + 4;
        memcpy(&vn, k + kn, 4);
        if (vn == 8)
            memcpy(&got, k + kn + 4, 8);
        CHECK(ht_agg_jcatalog_split(k, kn, a, &svc, &op, &kind));
        for (size_t r = 0; r < j.n; r++) {
            uint32_t jk, jv;
            struct ht_jaeger_rec rec;

            memcpy(&jk, j.b.data + joff, 4);
            memcpy(&jv, j.b.data + joff + 4 + jk, 4);
            CHECK(ht_jaeger_rec_unpack(j.b.data + joff + 8 + jk, jv, a, &rec) ==
                  HT_ERR_OK);
            for (uint32_t o = 0; o < rec.nops; o++)
                if (!strcmp(rec.ops[o].service, svc) &&
                    !strcmp(rec.ops[o].operation, op) &&
                    !strcmp(rec.ops[o].kind, kind))
                    want++;
            joff += 8 + jk + jv;
        }
        if (got != want)
            fprintf(stderr, "catalogue %s / %s / %s: %lld, %lld records\n", svc,
                    op, kind, (long long)got, (long long)want);
        CHECK(got == want);
        checked++;
        off += 8 + kn + vn;
    }
    CHECK(checked > 10);
    ht_buf_free(&j.b);
    ht_buf_free(&v.b);
    ht_arena_destroy(a);
}

static void test_upkeep(const char *hop, const char *fixtures)
{
    char dir[] = "/tmp/ht-test-jaeger-up-XXXXXX", cmd[4096], db1[1100],
         db2[1100];
    const char *files[] = {"logs-kinesis.json", "segments.ndjson",
                           "logs-cwl.ndjson"};
    struct ht_store *a = NULL, *b = NULL;
    struct recs ja, jb, va, vb;
    bool more = true;
    int rounds = 0;

    CHECK(mkdtemp(dir) != NULL);
    snprintf(db1, sizeof(db1), "%s/all", dir);
    snprintf(db2, sizeof(db2), "%s/parts", dir);
    snprintf(cmd, sizeof(cmd),
             "'%s' --db '%s' ingest '%s/demo/segments.ndjson' "
             "'%s/demo/logs-cwl.ndjson' '%s/demo/logs-kinesis.json' "
             ">/dev/null 2>&1",
             hop, db1, fixtures, fixtures, fixtures);
    CHECK(system(cmd) == 0);
    for (int f = 0; f < 3; f++) {
        snprintf(cmd, sizeof(cmd),
                 "'%s' --db '%s' ingest '%s/demo/%s' >/dev/null 2>&1", hop, db2,
                 fixtures, files[f]);
        CHECK(system(cmd) == 0);
    }
    CHECK(ht_store_open(db1, true, &a) == HT_ERR_OK);
    CHECK(ht_store_open(db2, false, &b) == HT_ERR_OK);
    if (!a || !b)
        return;
    read_recs(a, HT_AGG_K_JAEGER, &ja);
    read_recs(b, HT_AGG_K_JAEGER, &jb);
    read_recs(a, HT_AGG_K_JCATALOG, &va);
    read_recs(b, HT_AGG_K_JCATALOG, &vb);
    printf("search records: %zu J, %zu V (one ingest); %zu J, %zu V (three)\n",
           ja.n, va.n, jb.n, vb.n);
    CHECK(ja.n >= 40 && va.n > 10);
    CHECK(ja.n == jb.n && ja.b.len == jb.b.len &&
          memcmp(ja.b.data, jb.b.data, ja.b.len) == 0);
    CHECK(va.n == vb.n && va.b.len == vb.b.len &&
          memcmp(va.b.data, vb.b.data, va.b.len) == 0);
    check_counts(a);
    check_counts(b);
    ht_buf_free(&ja.b);
    ht_buf_free(&jb.b);
    ht_buf_free(&va.b);
    ht_buf_free(&vb.b);
    /* retention past every request: nothing of the search is left */
    while (more && rounds++ < 1000)
        CHECK(ht_agg_prune(b, 4102444800000000LL, 7, &more) == HT_ERR_OK);
    CHECK(!more);
    read_recs(b, HT_AGG_K_JAEGER, &jb);
    read_recs(b, HT_AGG_K_JCATALOG, &vb);
    CHECK(jb.n == 0 && vb.n == 0);
    ht_buf_free(&jb.b);
    ht_buf_free(&vb.b);
    ht_store_close(a);
    ht_store_close(b);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

int main(int argc, char **argv)
{
    test_conversion();
    if (argc == 3) {
        test_handlers(argv[1], argv[2]);
        test_upkeep(argv[1], argv[2]);
    } else
        CHECK(!"usage: test_jaeger HOPTRACE FIXTURES_DIR");
    TEST_DONE();
}
