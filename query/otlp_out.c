/*
 * otlp_out.c - `hoptrace trace ID --format otlp`: a stitched request as
 * OTLP/JSON (an ExportTraceServiceRequest, one line per request), which
 * any OpenTelemetry backend imports and which `hoptrace ingest` reads back
 * to the same answer.
 *
 * - one trace id for the whole request (its root's): the request becomes
 *   one trace in any OTel viewer; each span keeps its own trace id (X-Ray
 *   form) as the attribute hoptrace.trace_id, and ingest restores it.
 * - spans are grouped by service (resource service.name).
 * - each hop is a link on its consumer span, to the producer span, with
 *   hoptrace.via, hoptrace.resource, hoptrace.wait_ms, hoptrace.evidence,
 *   and the record id the hop was matched by (messaging.message.id for
 *   SQS, hoptrace.sequence for Kinesis).
 * - what the graph knows of a node beyond OTel's conventions (its kind,
 *   flags, origin, name, ids) is written as hoptrace.* attributes, which
 *   ingest's OTel mapping (ingest/otel_map.c) reads back as they are.
 *
 * Owned by query/. Rendering only: no store access.
 */
#define _GNU_SOURCE
#include "ht_query.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* OTLP's fixed64 nanoseconds of a time in µs: never negative, never past
 * what 64 bits hold (a store may hold any X-Ray time). */
static unsigned long long unix_nano(int64_t us)
{
    if (us <= 0)
        return 0;
    if ((uint64_t)us > UINT64_MAX / 1000)
        return UINT64_MAX / 1000 * 1000;
    return (unsigned long long)us * 1000ULL;
}
static const char *const kind_names[] = {
    "segment", "apigw", "lambda", "function", "init", "call", "local"};

static void hex(const uint8_t *p, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[2 * n] = 0;
}

struct attrs {
    struct ht_buf *b;
    int n;
};

static void akey(struct attrs *a, const char *k)
{
    if (a->n++)
        ht_buf_addc(a->b, ',');
    ht_buf_adds(a->b, "{\"key\":");
    ht_buf_json_str(a->b, k);
    ht_buf_adds(a->b, ",\"value\":{");
}

static void astr(struct attrs *a, const char *k, const char *v)
{
    if (!v)
        return;
    akey(a, k);
    ht_buf_adds(a->b, "\"stringValue\":");
    ht_buf_json_str(a->b, v);
    ht_buf_adds(a->b, "}}");
}

static void aint(struct attrs *a, const char *k, long long v)
{
    akey(a, k);
    ht_buf_printf(a->b, "\"intValue\":\"%lld\"}}", v);
}

static void abool(struct attrs *a, const char *k, bool v)
{
    akey(a, k);
    ht_buf_printf(a->b, "\"boolValue\":%s}}", v ? "true" : "false");
}

static void adbl(struct attrs *a, const char *k, double v)
{
    akey(a, k);
    /* JSON has no inf or nan */
    ht_buf_printf(a->b, "\"doubleValue\":%.3f}}", isfinite(v) ? v : 0.0);
}

static void flags_text(uint32_t f, char *out, size_t n)
{
    static const struct {
        uint32_t f;
        const char *s;
    } t[] = {{HT_SPAN_ERROR, "error"},
             {HT_SPAN_FAULT, "fault"},
             {HT_SPAN_THROTTLE, "throttle"},
             {HT_SPAN_IN_PROGRESS, "in_progress"},
             {HT_SPAN_INFERRED, "inferred"},
             {HT_SPAN_WRITE, "write"},
             {HT_SPAN_ASYNC_INVOKE, "async_invoke"},
             {HT_SPAN_SUBSEGMENT, "subsegment"}};
    size_t len = 0;

    out[0] = 0;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if ((f & t[i].f) && len + strlen(t[i].s) + 2 < n)
            len += (size_t)snprintf(out + len, n - len, "%s%s", len ? "," : "",
                                    t[i].s);
}

/* The OTel span kind a node is told as. */
static int otel_kind(const struct ht_request *r, size_t i)
{
    const struct ht_span *s = &r->spans[i].s;

    for (size_t h = 0; h < r->nhops; h++)
        if (r->hops[h].to == (int)i && r->hops[h].via != HT_VIA_LAMBDA)
            return 5; /* CONSUMER */
    switch (s->kind) {
    case HT_SK_CALL:
        return (s->flags & HT_SPAN_WRITE) ? 4 : 3; /* PRODUCER, CLIENT */
    case HT_SK_INIT:
    case HT_SK_LOCAL:
        return 1; /* INTERNAL */
    default:
        return 2; /* SERVER */
    }
}

/* The correlation id a write was attributed to: its own, else, for the
 * producer of a hop matched by correlation, the request's one id. */
static const char *hop_corr(const struct ht_request *r, int i)
{
    const struct ht_span *s = &r->spans[i].s;

    if (s->corr)
        return s->corr;
    /* a write of this request (not a batch's shared work): its request's
     * id, so a batch consumer's writes are attributed again on ingest */
    if ((s->flags & HT_SPAN_WRITE) && !r->spans[i].shared && r->ncorr_ids == 1)
        return r->corr_ids[0];
    for (size_t h = 0; h < r->nhops; h++)
        if (r->hops[h].from == i && r->hops[h].evidence &&
            strcmp(r->hops[h].evidence, "correlation") == 0 &&
            r->ncorr_ids == 1)
            return r->corr_ids[0];
    return NULL;
}

static void span_attrs(struct ht_buf *b, const struct ht_request *r, size_t i)
{
    const struct ht_qspan *q = &r->spans[i];
    const struct ht_span *s = &q->s;
    struct attrs a = {b, 0};
    char tid[36], fl[160];

    ht_buf_adds(b, "\"attributes\":[");
    if (!ht_tid_is_zero(&s->trace)) {
        ht_tid_format(&s->trace, tid);
        astr(&a, "hoptrace.trace_id", tid);
    }
    astr(&a, "hoptrace.kind",
         s->kind < sizeof(kind_names) / sizeof(kind_names[0])
             ? kind_names[s->kind]
             : "segment");
    astr(&a, "hoptrace.name", s->name);
    flags_text(s->flags, fl, sizeof(fl));
    astr(&a, "hoptrace.flags", fl);
    astr(&a, "hoptrace.origin", s->origin);
    astr(&a, "hoptrace.resource", s->resource);
    astr(&a, "hoptrace.request_id", s->request_id);
    astr(&a, "hoptrace.ext_request_id", s->ext_request_id);
    astr(&a, "hoptrace.sequence", s->sequence);
    astr(&a, "hoptrace.message_id", s->message_id);
    astr(&a, "hoptrace.operation", s->operation);
    astr(&a, "hoptrace.api_id", s->api_id);
    astr(&a, "hoptrace.stage", s->stage);
    if (s->via)
        astr(&a, "hoptrace.via", ht_via_name(s->via));
    if (q->logs_only) {
        abool(&a, "hoptrace.logs_only", true);
        aint(&a, "hoptrace.init_us", (long long)q->init_us);
    }
    if (q->shared)
        abool(&a, "hoptrace.shared", true);
    /* the OpenTelemetry conventions a viewer shows */
    if (s->kind == HT_SK_LAMBDA ||
        (q->logs_only && q->request_id && s->kind == HT_SK_FUNCTION)) {
        astr(&a, "faas.invocation_id",
             s->request_id ? s->request_id : q->request_id);
        abool(&a, "faas.coldstart", q->cold);
        if (s->resource)
            astr(&a, "faas.name", s->resource);
    }
    if (s->operation)
        astr(&a, "rpc.method", s->operation);
    if (s->via == HT_VIA_SQS) {
        astr(&a, "messaging.system", "aws_sqs");
        astr(&a, "messaging.destination.name", s->resource);
        astr(&a, "messaging.message.id", s->message_id);
    }
    astr(&a, "correlation_id", hop_corr(r, (int)i));
    astr(&a, "http.request.method", s->method);
    astr(&a, "url.full", s->url);
    if (s->http_status)
        aint(&a, "http.response.status_code", s->http_status);
    ht_buf_addc(b, ']');
}

/*
 * SNS and EventBridge hops (design.md "SNS and EventBridge"). A consumer
 * whose stored parent is the Publish / PutEvents (the trace header SNS and
 * EventBridge pass on) gets no link: parentSpanId says it, and ingest
 * makes the hop again. A message SNS or EventBridge put in a queue is one
 * link, on the record the consumer received: the SQS message (its id,
 * queue, header), the delivery before it (hoptrace.up_*) and when the
 * queue took it (hoptrace.sent_us); ingest builds both legs from it.
 */
static bool queue_delivery(const struct ht_request *r, const struct ht_qhop *hp)
{
    uint8_t pv = r->spans[hp->from].s.via;

    return hp->record_via == HT_VIA_SQS && hp->record_id &&
           (pv == HT_VIA_SNS || pv == HT_VIA_EVENTBRIDGE);
}

static bool notify_link_skipped(const struct ht_request *r, size_t i,
                                const struct ht_qhop *hp)
{
    const struct ht_span *c = &r->spans[i].s, *p = &r->spans[hp->from].s;

    if (hp->inner)
        return true; /* the leg after it is the link */
    /* (a subscriber that logged the message id keeps its link: the id) */
    return (p->via == HT_VIA_SNS || p->via == HT_VIA_EVENTBRIDGE) &&
           !(hp->record_id && hp->record_via == p->via) &&
           (c->flags & HT_SPAN_HAS_PARENT) &&
           memcmp(c->parent.b, p->id.b, 8) == 0;
}

static void notify_link_attrs(struct attrs *a, const struct ht_request *r,
                              const struct ht_qhop *hp)
{
    const struct ht_qhop *up = hp->leg_of > 0 ? &r->hops[hp->leg_of - 1] : hp;

    astr(a, "hoptrace.via", "sqs");
    astr(a, "hoptrace.resource", hp->record_resource);
    adbl(a, "hoptrace.wait_ms", hp->wait_ms);
    astr(a, "hoptrace.evidence", hp->evidence);
    astr(a, "messaging.message.id", hp->record_id);
    astr(a, "hoptrace.up_via", ht_via_name(r->spans[hp->from].s.via));
    astr(a, "hoptrace.up_id", hp->up_id);
    astr(a, "hoptrace.up_resource", up->resource);
    if (hp->leg_of > 0)
        aint(a, "hoptrace.sent_us", (long long)hp->at_us);
}

static void span_links(struct ht_buf *b, const struct ht_request *r, size_t i,
                       const char *trace_hex)
{
    int n = 0;
    char sid[17];

    ht_buf_adds(b, ",\"links\":[");
    for (size_t h = 0; h < r->nhops; h++) {
        const struct ht_qhop *hp = &r->hops[h];
        const struct ht_span *p;
        struct attrs a = {b, 0};

        if (hp->to != (int)i || hp->from < 0)
            continue;
        p = &r->spans[hp->from].s;
        /* an async invoke's consumer is its producer's child already */
        if (r->spans[i].parent == hp->from)
            continue;
        if (notify_link_skipped(r, i, hp))
            continue;
        if (n++)
            ht_buf_addc(b, ',');
        hex(p->id.b, 8, sid);
        ht_buf_printf(b, "{\"traceId\":\"%s\",\"spanId\":\"%s\",", trace_hex,
                      sid);
        ht_buf_adds(b, "\"attributes\":[");
        if (queue_delivery(r, hp)) {
            notify_link_attrs(&a, r, hp);
        } else {
            astr(&a, "hoptrace.via", ht_via_name(hp->via));
            astr(&a, "hoptrace.resource", hp->resource);
            adbl(&a, "hoptrace.wait_ms", hp->wait_ms);
            astr(&a, "hoptrace.evidence", hp->evidence);
        }
        if (hp->via == HT_VIA_SQS && hp->evidence &&
            strcmp(hp->evidence, "message-id") == 0 && !queue_delivery(r, hp))
            astr(&a, "messaging.message.id", p->message_id);
        if ((hp->record_via == HT_VIA_SNS ||
             hp->record_via == HT_VIA_EVENTBRIDGE) &&
            hp->record_via == hp->via)
            astr(&a, "messaging.message.id", hp->record_id);
        if (hp->via == HT_VIA_SQS && r->ncorr_ids == 1)
            astr(&a, "correlation_id", r->corr_ids[0]);
        if (hp->via == HT_VIA_KINESIS && hp->evidence &&
            strcmp(hp->evidence, "sequence-number") == 0)
            astr(&a, "hoptrace.sequence", p->sequence);
        if ((hp->via == HT_VIA_KINESIS || hp->via == HT_VIA_DYNAMODB) &&
            hp->evidence && strcmp(hp->evidence, "correlation") == 0)
            astr(&a, "correlation_id", hop_corr(r, hp->from));
        ht_buf_adds(b, "]}");
    }
    /* the node's own links that are no hop of this request (a batch
     * consumer's links to the other requests' producers): the node is the
     * same in every request it is written with */
    for (uint32_t k = 0; k < r->spans[i].s.nlinks; k++) {
        const struct ht_link *l = &r->spans[i].s.links[k];
        bool hop = false;
        char tid[33];

        for (size_t h = 0; h < r->nhops && !hop; h++)
            hop = r->hops[h].to == (int)i && r->hops[h].from >= 0 &&
                  memcmp(r->spans[r->hops[h].from].s.id.b, l->id.b, 8) == 0;
        if (hop)
            continue;
        if (n++)
            ht_buf_addc(b, ',');
        if (ht_tid_is_zero(&l->trace))
            memcpy(tid, trace_hex, 33);
        else
            hex(l->trace.b, 16, tid);
        hex(l->id.b, 8, sid);
        ht_buf_printf(b, "{\"traceId\":\"%s\",\"spanId\":\"%s\"}", tid, sid);
    }
    ht_buf_addc(b, ']');
}

static void one_span(struct ht_buf *b, const struct ht_request *r, size_t i,
                     const char *trace_hex)
{
    const struct ht_span *s = &r->spans[i].s;
    char sid[17];

    hex(s->id.b, 8, sid);
    ht_buf_printf(b, "{\"traceId\":\"%s\",\"spanId\":\"%s\",", trace_hex, sid);
    if (s->flags & HT_SPAN_HAS_PARENT) {
        hex(s->parent.b, 8, sid);
        ht_buf_printf(b, "\"parentSpanId\":\"%s\",", sid);
    }
    ht_buf_json_key(b, "name");
    ht_buf_json_str(b, s->name ? s->name : "span");
    ht_buf_printf(b,
                  ",\"kind\":%d,\"startTimeUnixNano\":\"%llu\","
                  "\"endTimeUnixNano\":\"%llu\",",
                  otel_kind(r, i), unix_nano(s->start_us),
                  unix_nano(s->end_us));
    span_attrs(b, r, i);
    span_links(b, r, i, trace_hex);
    if (s->flags & (HT_SPAN_ERROR | HT_SPAN_FAULT | HT_SPAN_THROTTLE))
        ht_buf_adds(b, ",\"status\":{\"code\":2}");
    else
        ht_buf_adds(b, ",\"status\":{}");
    ht_buf_addc(b, '}');
}

static void one_request(struct ht_buf *b, const struct ht_request *r)
{
    char trace_hex[33];
    const char **svc;
    size_t nsvc = 0;

    /* the request's trace id: its root's (else the first one known) */
    memset(trace_hex, '0', 32);
    trace_hex[32] = 0;
    if (r->nspans && !ht_tid_is_zero(&r->spans[r->root].s.trace)) {
        hex(r->spans[r->root].s.trace.b, 16, trace_hex);
    } else {
        for (size_t i = 0; i < r->nspans; i++)
            if (!ht_tid_is_zero(&r->spans[i].s.trace)) {
                hex(r->spans[i].s.trace.b, 16, trace_hex);
                break;
            }
    }
    /* known from logs alone: no trace id, and OTLP holds an all-zero one
     * invalid (ingest refuses it). 16 zeros and the root's span id, as the
     * Jaeger export names such a request: stable, and never zero */
    if (r->nspans && strspn(trace_hex, "0") == 32)
        hex(r->spans[r->root].s.id.b, 8, trace_hex + 16);
    svc = calloc(r->nspans + 1, sizeof(*svc));
    if (!svc)
        abort();
    for (size_t i = 0; i < r->nspans; i++) {
        const char *sv = r->spans[i].service ? r->spans[i].service : "unknown";
        size_t k = 0;

        while (k < nsvc && strcmp(svc[k], sv) != 0)
            k++;
        if (k == nsvc)
            svc[nsvc++] = sv;
    }
    ht_buf_adds(b, "{\"resourceSpans\":[");
    for (size_t k = 0; k < nsvc; k++) {
        int n = 0;

        if (k)
            ht_buf_addc(b, ',');
        ht_buf_adds(b, "{\"resource\":{\"attributes\":[{\"key\":\"service."
                       "name\",\"value\":{\"stringValue\":");
        ht_buf_json_str(b, svc[k]);
        ht_buf_adds(b, "}}]},\"scopeSpans\":[{\"scope\":{\"name\":"
                       "\"hoptrace\",\"version\":\"" HT_VERSION "\"},"
                       "\"spans\":[");
        for (size_t i = 0; i < r->nspans; i++) {
            const char *sv =
                r->spans[i].service ? r->spans[i].service : "unknown";

            if (strcmp(sv, svc[k]) != 0)
                continue;
            if (n++)
                ht_buf_addc(b, ',');
            one_span(b, r, i, trace_hex);
        }
        ht_buf_adds(b, "]}]}");
    }
    ht_buf_adds(b, "]}\n");
    free(svc);
}

void ht_query_otlp(const struct ht_result *r, struct ht_buf *out)
{
    for (size_t i = 0; i < r->nrequests; i++)
        one_request(out, &r->requests[i]);
}
