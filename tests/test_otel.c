/*
 * test_otel.c - OpenTelemetry spans onto hoptrace's nodes and facts
 * (ingest/otel_map.c) through both OTLP encodings: the JSON decoder
 * (ht_ingest_payload and ht_ingest_otlp) and the protobuf one (a request
 * packed here with the generated code), which must give the same spans.
 */
#include "ht_ingest.h"
#include "ht_test.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

#include <stdlib.h>
#include <string.h>

static struct ht_batch b;
static const struct ht_srcpos pos = {"test", 0};

static const struct ht_span *find(const char *hex)
{
    struct ht_id8 id;

    if (!ht_id8_parse(hex, strlen(hex), &id))
        return NULL;
    for (size_t i = 0; i < b.nspans; i++)
        if (memcmp(b.spans[i].id.b, id.b, 8) == 0)
            return &b.spans[i];
    return NULL;
}

static const struct ht_fact *fact(int kind, const char *record)
{
    for (size_t i = 0; i < b.nfacts; i++)
        if (b.facts[i].kind == kind &&
            (!record ||
             (b.facts[i].record_id && !strcmp(b.facts[i].record_id, record))))
            return &b.facts[i];
    return NULL;
}

static uint64_t rejects(void)
{
    uint64_t n = 0;

    for (int r = 0; r < HT_REJ__COUNT; r++)
        n += b.rejected[r];
    return n;
}

/* A producer request, a Lambda batch consumer whose process span links
 * its producer, and a consumer parented on the producer's context. */
static const char doc[] =
    "{\"resourceSpans\":["
    "{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{"
    "\"stringValue\":\"order-api\"}}]},\"scopeSpans\":[{\"spans\":["
    "{\"traceId\":\"5759e988bd862e3fe1be46a994272793\",\"spanId\":"
    "\"1111111111111111\",\"name\":\"POST /orders\",\"kind\":2,"
    "\"startTimeUnixNano\":\"1700000000000000000\",\"endTimeUnixNano\":"
    "1700000000100000000,\"status\":{\"code\":\"STATUS_CODE_ERROR\"},"
    "\"attributes\":[{\"key\":\"http.response.status_code\",\"value\":{"
    "\"intValue\":\"404\"}}]},"
    "{\"traceId\":\"5759e988bd862e3fe1be46a994272793\",\"spanId\":"
    "\"2222222222222222\",\"parentSpanId\":\"1111111111111111\",\"name\":"
    "\"orders send\",\"kind\":\"SPAN_KIND_PRODUCER\",\"startTimeUnixNano\":"
    "\"1700000000010000400\",\"endTimeUnixNano\":\"1700000000030000600\","
    "\"attributes\":[{\"key\":\"messaging.system\",\"value\":{\"stringValue\":"
    "\"aws.sqs\"}},{\"key\":\"messaging.url\",\"value\":{\"stringValue\":"
    "\"http://q/000/orders\"}},{\"key\":\"messaging.message_id\",\"value\":{"
    "\"stringValue\":\"m-1\"}}]}]}]},"
    "{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{"
    "\"stringValue\":\"worker\"}},{\"key\":\"cloud.resource_id\",\"value\":{"
    "\"stringValue\":\"arn:aws:lambda:us-east-1:1:function:work:live\"}}]},"
    "\"scopeSpans\":[{\"spans\":["
    "{\"traceId\":\"6759e988bd862e3fe1be46a994272793\",\"spanId\":"
    "\"4444444444444444\",\"parentSpanId\":\"3333333333333333\",\"name\":"
    "\"orders process\",\"kind\":5,\"startTimeUnixNano\":"
    "\"1700000000210000000\",\"endTimeUnixNano\":\"1700000000220000000\","
    "\"attributes\":[{\"key\":\"messaging.system\",\"value\":{\"stringValue\":"
    "\"aws_sqs\"}},{\"key\":\"messaging.message.id\",\"value\":{"
    "\"stringValue\":\"m-1\"}}],\"links\":[{\"traceId\":"
    "\"5759e988bd862e3fe1be46a994272793\",\"spanId\":\"2222222222222222\"}]},"
    "{\"traceId\":\"6759e988bd862e3fe1be46a994272793\",\"spanId\":"
    "\"3333333333333333\",\"name\":\"work\",\"kind\":2,\"startTimeUnixNano\":"
    "\"1700000000200000000\",\"endTimeUnixNano\":\"1700000000300000000\","
    "\"attributes\":[{\"key\":\"faas.invocation_id\",\"value\":{"
    "\"stringValue\":\"req-1\"}},{\"key\":\"faas.coldstart\",\"value\":{"
    "\"boolValue\":true}}]},"
    "{\"traceId\":\"5759e988bd862e3fe1be46a994272793\",\"spanId\":"
    "\"5555555555555555\",\"parentSpanId\":\"2222222222222222\",\"name\":"
    "\"orders process\",\"kind\":5,\"startTimeUnixNano\":"
    "\"1700000000400000000\",\"endTimeUnixNano\":\"1700000000500000000\","
    "\"attributes\":[{\"key\":\"messaging.system\",\"value\":{\"stringValue\":"
    "\"AmazonSQS\"}},{\"key\":\"messaging.destination\",\"value\":{"
    "\"stringValue\":\"orders\"}},{\"key\":\"messaging.message_id\","
    "\"value\":{\"stringValue\":\"m-1\"}}]}"
    "]}]}]}";

static void check_mapping(void)
{
    const struct ht_span *s;
    const struct ht_fact *f;
    char tid[36];

    CHECK(b.nspans == 5);
    CHECK(rejects() == 0);
    /* the producer's root: a segment named after the service, 404 error */
    s = find("1111111111111111");
    CHECK(s && s->kind == HT_SK_SEGMENT && !(s->flags & HT_SPAN_HAS_PARENT));
    CHECK(s && s->name && !strcmp(s->name, "order-api"));
    CHECK(s && (s->flags & HT_SPAN_ERROR) && !(s->flags & HT_SPAN_FAULT));
    CHECK(s && s->http_status == 404);
    if (s) {
        ht_tid_format(&s->trace, tid);
        CHECK_STREQ(tid, "1-5759e988-bd862e3fe1be46a994272793");
        CHECK(s->start_us == 1700000000000000 && s->end_us == 1700000000100000);
    }
    /* the send: an SQS write with its message id, times rounded to µs */
    s = find("2222222222222222");
    CHECK(s && s->kind == HT_SK_CALL && (s->flags & HT_SPAN_WRITE) &&
          s->via == HT_VIA_SQS && (s->flags & HT_SPAN_SUBSEGMENT));
    CHECK(s && s->message_id && !strcmp(s->message_id, "m-1"));
    CHECK(s && s->resource && !strcmp(s->resource, "orders"));
    CHECK(s && s->name && !strcmp(s->name, "orders send"));
    CHECK(s && s->start_us == 1700000000010000 &&
          s->end_us == 1700000000030001);
    /* the Lambda invocation: the local root its process span reports to */
    s = find("3333333333333333");
    CHECK(s && s->kind == HT_SK_LAMBDA && s->request_id &&
          !strcmp(s->request_id, "req-1"));
    CHECK(s && s->resource && !strcmp(s->resource, "work"));
    f = fact(HT_FACT_TRACE, NULL);
    CHECK(f && f->request_id && !strcmp(f->request_id, "req-1") &&
          (f->flags & HT_FACT_COLD) && f->function &&
          !strcmp(f->function, "work"));
    /* the process span stays under its invocation; its message is the
     * invocation's record, with the link as its trace header */
    s = find("4444444444444444");
    CHECK(s && (s->flags & HT_SPAN_HAS_PARENT) && s->kind != HT_SK_LAMBDA);
    f = NULL;
    for (size_t i = 0; i < b.nfacts; i++)
        if (b.facts[i].kind == HT_FACT_RECORD && b.facts[i].request_id &&
            !strcmp(b.facts[i].request_id, "req-1"))
            f = &b.facts[i];
    CHECK(f && f->via == HT_VIA_SQS && f->record_id &&
          !strcmp(f->record_id, "m-1") && (f->flags & HT_FACT_HAS_HDR));
    /* a consumer parented on the producer's context: cut from it, an
     * invocation of its own whose parent is a link */
    s = find("5555555555555555");
    CHECK(s && !(s->flags & HT_SPAN_HAS_PARENT) && s->kind == HT_SK_LAMBDA);
    CHECK(s && s->nlinks == 1);
    CHECK(s && s->request_id && !strcmp(s->request_id, "5555555555555555"));
    CHECK(s && s->name && !strcmp(s->name, "worker"));
}

static void test_json(void)
{
    ht_batch_reset(&b);
    ht_ingest_payload(&b, &pos, doc, sizeof(doc) - 1);
    check_mapping();
}

static void test_json_body(void)
{
    struct ht_otlp_result res;

    memset(&res, 0, sizeof(res));
    ht_batch_reset(&b);
    ht_ingest_otlp(&b, &pos, doc, sizeof(doc) - 1, HT_OTLP_JSON, &res);
    CHECK(!res.bad && res.spans == 5 && res.rejected == 0);
    check_mapping();
    /* not an export: bad, and one reject */
    memset(&res, 0, sizeof(res));
    ht_batch_reset(&b);
    ht_ingest_otlp(&b, &pos, "[1]", 3, HT_OTLP_JSON, &res);
    CHECK(res.bad && res.why[0] && rejects() == 1);
}

/* ---- the same request in protobuf ---------------------------------------- */

typedef Opentelemetry__Proto__Common__V1__KeyValue Kv;
typedef Opentelemetry__Proto__Common__V1__AnyValue Any;
typedef Opentelemetry__Proto__Trace__V1__Span Span;

static Kv *kv_s(const char *k, const char *v)
{
    Kv *p = calloc(1, sizeof(*p));
    Any *a = calloc(1, sizeof(*a));

    opentelemetry__proto__common__v1__key_value__init(p);
    opentelemetry__proto__common__v1__any_value__init(a);
    a->value_case =
        OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    a->string_value = (char *)v;
    p->key = (char *)k;
    p->value = a;
    return p;
}

static uint8_t *unhex(const char *s, size_t n)
{
    uint8_t *o = malloc(n);

    for (size_t i = 0; i < n; i++) {
        unsigned v;

        sscanf(s + 2 * i, "%2x", &v);
        o[i] = (uint8_t)v;
    }
    return o;
}

static void test_protobuf(void)
{
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest req;
    Opentelemetry__Proto__Trace__V1__ResourceSpans rs, *rsp = &rs;
    Opentelemetry__Proto__Trace__V1__ScopeSpans ss, *ssp = &ss;
    Opentelemetry__Proto__Resource__V1__Resource res;
    Span sp[3], *spp[3];
    Kv *rattr[1], *a1[3], *a2[1];
    Opentelemetry__Proto__Trace__V1__Span__Link lk, *lkp = &lk;
    struct ht_otlp_result out;
    uint8_t *buf;
    size_t n;

    opentelemetry__proto__collector__trace__v1__export_trace_service_request__init(
        &req);
    opentelemetry__proto__trace__v1__resource_spans__init(&rs);
    opentelemetry__proto__trace__v1__scope_spans__init(&ss);
    opentelemetry__proto__resource__v1__resource__init(&res);
    rattr[0] = kv_s("service.name", "worker");
    res.attributes = rattr;
    res.n_attributes = 1;
    for (int i = 0; i < 3; i++) {
        opentelemetry__proto__trace__v1__span__init(&sp[i]);
        sp[i].trace_id.data = unhex("6759e988bd862e3fe1be46a994272793", 16);
        sp[i].trace_id.len = 16;
        sp[i].start_time_unix_nano = 1700000000200000000ull + (uint64_t)i;
        sp[i].end_time_unix_nano = 1700000000300000000ull;
        spp[i] = &sp[i];
    }
    /* root poll, its process span linked to a producer, and a span whose
     * trace id is 3 bytes (rejected alone) */
    sp[0].span_id.data = unhex("3333333333333333", 8);
    sp[0].span_id.len = 8;
    sp[0].name = "poll";
    sp[0].kind = 2;
    sp[1].span_id.data = unhex("4444444444444444", 8);
    sp[1].span_id.len = 8;
    sp[1].parent_span_id.data = unhex("3333333333333333", 8);
    sp[1].parent_span_id.len = 8;
    sp[1].name = "orders process";
    sp[1].kind = 5;
    a1[0] = kv_s("messaging.system", "aws.sqs");
    a1[1] = kv_s("messaging.destination.name", "orders");
    a1[2] = kv_s("messaging.message.id", "m-9");
    sp[1].attributes = a1;
    sp[1].n_attributes = 3;
    opentelemetry__proto__trace__v1__span__link__init(&lk);
    lk.trace_id.data = unhex("5759e988bd862e3fe1be46a994272793", 16);
    lk.trace_id.len = 16;
    lk.span_id.data = unhex("2222222222222222", 8);
    lk.span_id.len = 8;
    sp[1].links = &lkp;
    sp[1].n_links = 1;
    sp[2].span_id.data = unhex("6666666666666666", 8);
    sp[2].span_id.len = 8;
    sp[2].trace_id.len = 3;
    a2[0] = kv_s("x", "y");
    sp[2].attributes = a2;
    sp[2].n_attributes = 1;
    ss.spans = spp;
    ss.n_spans = 3;
    rs.resource = &res;
    rs.scope_spans = &ssp;
    rs.n_scope_spans = 1;
    req.resource_spans = &rsp;
    req.n_resource_spans = 1;
    n = opentelemetry__proto__collector__trace__v1__export_trace_service_request__get_packed_size(
        &req);
    buf = malloc(n);
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__pack(
        &req, buf);

    memset(&out, 0, sizeof(out));
    ht_batch_reset(&b);
    ht_ingest_otlp(&b, &pos, buf, n, HT_OTLP_PROTOBUF, &out);
    CHECK(!out.bad && out.spans == 3 && out.rejected == 1);
    CHECK(b.rejected[HT_REJ_BAD_ID] == 1);
    CHECK(b.nspans == 2);
    {
        const struct ht_span *s = find("3333333333333333");
        const struct ht_fact *f = fact(HT_FACT_RECORD, "m-9");

        CHECK(s && s->kind == HT_SK_LAMBDA && s->request_id &&
              !strcmp(s->request_id, "3333333333333333"));
        CHECK(s && s->name && !strcmp(s->name, "worker"));
        CHECK(s && s->start_us == 1700000000200000);
        CHECK(f && f->request_id && !strcmp(f->request_id, "3333333333333333"));
        CHECK(f && f->resource && !strcmp(f->resource, "orders"));
    }
    /* the same bytes as a Kafka message or Kinesis record: sniffed as a
     * protobuf export */
    ht_batch_reset(&b);
    ht_ingest_payload(&b, &pos, buf, n);
    CHECK(b.nspans == 2 && b.rejected[HT_REJ_BAD_ID] == 1);
    CHECK(b.payload_bytes == n);
    /* JSON that starts with a newline is still JSON */
    ht_batch_reset(&b);
    ht_ingest_payload(&b, &pos, "\n\n{\"resourceSpans\":[]}\n", 22);
    CHECK(rejects() == 0);
    /* a body that is no protobuf message: bad, one reject */
    memset(&out, 0, sizeof(out));
    ht_batch_reset(&b);
    ht_ingest_otlp(&b, &pos, "\xff\xff\xff\xff\x0f", 5, HT_OTLP_PROTOBUF, &out);
    CHECK(out.bad && b.rejected[HT_REJ_BAD_ENCODING] == 1);

    free(buf);
    for (int i = 0; i < 3; i++) {
        free(sp[i].trace_id.data);
        free(sp[i].span_id.data);
        free(sp[i].parent_span_id.data);
    }
    free(lk.trace_id.data);
    free(lk.span_id.data);
    Kv *all[] = {rattr[0], a1[0], a1[1], a1[2], a2[0]};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        free(all[i]->value);
        free(all[i]);
    }
}

static void test_otel_trace_id(void)
{
    struct ht_tid t, x;

    CHECK(ht_tid_parse_otel("5759e988bd862e3fe1be46a994272793", 32, &t));
    CHECK(ht_tid_parse("1-5759e988-bd862e3fe1be46a994272793", 35, &x));
    CHECK(memcmp(t.b, x.b, 16) == 0);
    CHECK(!ht_tid_parse_otel("5759e988bd862e3fe1be46a99427279", 31, &t));
    CHECK(!ht_tid_parse_otel("5759e988bd862e3fe1be46a99427279z", 32, &t));
}

int main(void)
{
    ht_log_level = -1;
    CHECK(ht_batch_init(&b) == HT_ERR_OK);
    test_json();
    test_json_body();
    test_protobuf();
    test_otel_trace_id();
    ht_batch_free(&b);
    TEST_DONE();
}
