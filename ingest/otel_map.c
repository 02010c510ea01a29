/*
 * otel_map.c - what an OpenTelemetry span is in hoptrace's causal graph
 * (design.md "OpenTelemetry spans"): the same nodes, keys and facts as
 * the X-Ray segments of the same work, so that a request may mix both.
 *
 * - ids: a 16-byte OTel trace id is an X-Ray trace id's 128 bits
 *   (5759e988bd862e3fe1be46a994272793 = 1-5759e988-bd862e3fe1be46a994272793),
 *   span ids are 8 bytes on both sides.
 * - an entry span (SERVER, CONSUMER, or no parent) is a segment named after
 *   its resource's service.name; other spans are subsegments named after
 *   the span (CLIENT and PRODUCER: calls, INTERNAL: local work).
 * - a span with faas.invocation_id (or faas.execution) is a Lambda
 *   invocation (the AWS::Lambda segment's node): request id, function from
 *   faas.name or cloud.resource_id, cold start from faas.coldstart.
 * - a CONSUMER span whose parent is remote (the span context that arrived
 *   in the message) is a consumer invocation of its own: the parent becomes
 *   a link (a hop, not a synchronous call), and every message it names
 *   (messaging.message.id, on the span or on its links) is a received
 *   record, like a logged SQS event's.
 * - PRODUCER / send spans to SQS, Kinesis and DynamoDB writes are the
 *   producer halves of hops (messaging.system, rpc.service, db.system).
 * - status ERROR: fault (error for a 4xx HTTP status, throttle for 429).
 *
 * Owned by ingest/. It only fills batch structs.
 */
#define _GNU_SOURCE
#include "ingest_int.h"
#include "otel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool ht__otel_hex(const char *s, size_t len, uint8_t *out, size_t n)
{
    if (!s || len != 2 * n)
        return false;
    for (size_t i = 0; i < n; i++) {
        int h = hexval(s[2 * i]), l = hexval(s[2 * i + 1]);

        if (h < 0 || l < 0)
            return false;
        out[i] = (uint8_t)(h << 4 | l);
    }
    return true;
}

/* ---- the attributes read, found in one pass ---------------------------- */

/* Sorted (strcmp order): looked up with bsearch. */
enum {
    K_AWS_DYNAMODB_TABLE_NAMES,
    K_AWS_KINESIS_SEQUENCE_NUMBER,
    K_AWS_KINESIS_STREAM_NAME,
    K_AWS_KINESIS_STREAM_NAME2,
    K_AWS_SQS_QUEUE_URL,
    K_CLOUD_PLATFORM,
    K_CLOUD_RESOURCE_ID,
    K_CORRELATIONID,
    K_CORRELATION_ID,
    K_DB_OPERATION,
    K_DB_OPERATION_NAME,
    K_DB_SYSTEM,
    K_DB_SYSTEM_NAME,
    K_FAAS_COLDSTART,
    K_FAAS_EXECUTION,
    K_FAAS_INVOCATION_ID,
    K_FAAS_NAME,
    K_HOPTRACE_API_ID,
    K_HOPTRACE_EVIDENCE,
    K_HOPTRACE_EXT_REQUEST_ID,
    K_HOPTRACE_FLAGS,
    K_HOPTRACE_INIT_US,
    K_HOPTRACE_KIND,
    K_HOPTRACE_LOGS_ONLY,
    K_HOPTRACE_MESSAGE_ID,
    K_HOPTRACE_NAME,
    K_HOPTRACE_OPERATION,
    K_HOPTRACE_ORIGIN,
    K_HOPTRACE_REQUEST_ID,
    K_HOPTRACE_RESOURCE,
    K_HOPTRACE_SENT_US,
    K_HOPTRACE_SEQUENCE,
    K_HOPTRACE_STAGE,
    K_HOPTRACE_TRACE_ID,
    K_HOPTRACE_UP_ID,
    K_HOPTRACE_UP_RESOURCE,
    K_HOPTRACE_UP_VIA,
    K_HOPTRACE_VIA,
    K_HTTP_METHOD,
    K_HTTP_REQUEST_METHOD,
    K_HTTP_RESPONSE_STATUS_CODE,
    K_HTTP_STATUS_CODE,
    K_HTTP_URL,
    K_MESSAGING_DESTINATION,
    K_MESSAGING_DESTINATION_NAME,
    K_MESSAGING_MESSAGE_ID,
    K_MESSAGING_MESSAGE_ID_OLD,
    K_MESSAGING_OPERATION,
    K_MESSAGING_OPERATION_TYPE,
    K_MESSAGING_SYSTEM,
    K_MESSAGING_URL,
    K_RPC_METHOD,
    K_RPC_SERVICE,
    K_SERVICE_NAME,
    K_URL_FULL,
    K_X_CORRELATION_ID,
    K__COUNT
};
static const char *const known[K__COUNT] = {
    "aws.dynamodb.table_names",
    "aws.kinesis.sequence_number",
    "aws.kinesis.stream.name",
    "aws.kinesis.stream_name",
    "aws.sqs.queue_url",
    "cloud.platform",
    "cloud.resource_id",
    "correlationId",
    "correlation_id",
    "db.operation",
    "db.operation.name",
    "db.system",
    "db.system.name",
    "faas.coldstart",
    "faas.execution",
    "faas.invocation_id",
    "faas.name",
    "hoptrace.api_id",
    "hoptrace.evidence",
    "hoptrace.ext_request_id",
    "hoptrace.flags",
    "hoptrace.init_us",
    "hoptrace.kind",
    "hoptrace.logs_only",
    "hoptrace.message_id",
    "hoptrace.name",
    "hoptrace.operation",
    "hoptrace.origin",
    "hoptrace.request_id",
    "hoptrace.resource",
    "hoptrace.sent_us",
    "hoptrace.sequence",
    "hoptrace.stage",
    "hoptrace.trace_id",
    "hoptrace.up_id",
    "hoptrace.up_resource",
    "hoptrace.up_via",
    "hoptrace.via",
    "http.method",
    "http.request.method",
    "http.response.status_code",
    "http.status_code",
    "http.url",
    "messaging.destination",
    "messaging.destination.name",
    "messaging.message.id",
    "messaging.message_id",
    "messaging.operation",
    "messaging.operation.type",
    "messaging.system",
    "messaging.url",
    "rpc.method",
    "rpc.service",
    "service.name",
    "url.full",
    "x-correlation-id",
};

struct keyref {
    const char *k;
    size_t n;
};

static int cmp_known(const void *a, const void *b)
{
    const struct keyref *r = a;
    const char *k = *(const char *const *)b;
    size_t kl = strlen(k);
    int c = strncmp(r->k, k, r->n < kl ? r->n : kl);

    if (c)
        return c;
    return r->n < kl ? -1 : r->n > kl;
}

/* Fills f[K_...] from attrs; a later duplicate wins, as in JSON. */
static void index_attrs(const struct ht_otel_attrs *a,
                        const struct ht_otel_kv **f)
{
    for (size_t i = 0; a && i < a->n; i++) {
        struct keyref r = {a->kv[i].key, a->kv[i].keylen};
        const char *const *hit;

        if (!r.k || r.n < 6)
            continue;
        hit = bsearch(&r, known, K__COUNT, sizeof(known[0]), cmp_known);
        if (hit)
            f[hit - known] = &a->kv[i];
    }
}

struct ht_otel_kv *ht__otel_kv_push(struct ht_otel_kvvec *v)
{
    if (v->n == v->cap) {
        size_t nc = v->cap ? v->cap * 2 : 64;
        struct ht_otel_kv *p = realloc(v->kv, nc * sizeof(*p));

        if (!p)
            abort();
        v->kv = p;
        v->cap = nc;
    }
    memset(&v->kv[v->n], 0, sizeof(v->kv[0]));
    return &v->kv[v->n++];
}

/* ---- values -------------------------------------------------------------- */

static bool has_str(const struct ht_otel_kv *v)
{
    return v && (v->type == HT_OV_STR || v->type == HT_OV_ARRAY) && v->s &&
           v->slen;
}

/* An attribute's text (strings; integers spelled out), in the arena. */
static char *text(struct ht_batch *b, const struct ht_otel_kv *v)
{
    if (!v)
        return NULL;
    if (has_str(v))
        return ht_arena_strndup(b->arena, v->s, v->slen);
    if (v->type == HT_OV_INT)
        return ht_arena_printf(b->arena, "%lld", (long long)v->i);
    return NULL;
}

static bool eq(const struct ht_otel_kv *v, const char *s)
{
    size_t n = strlen(s);

    return has_str(v) && v->slen == n && memcmp(v->s, s, n) == 0;
}

static bool eq_any(const struct ht_otel_kv *v, const char *const *set)
{
    for (; *set; set++)
        if (eq(v, *set))
            return true;
    return false;
}

static int64_t int_of(const struct ht_otel_kv *v)
{
    if (!v)
        return 0;
    if (v->type == HT_OV_INT)
        return v->i;
    if (v->type == HT_OV_DOUBLE)
        return (int64_t)v->d;
    if (v->type == HT_OV_STR && v->s && v->slen && v->slen < 20) {
        char buf[24];

        memcpy(buf, v->s, v->slen);
        buf[v->slen] = 0;
        return strtoll(buf, NULL, 10);
    }
    return 0;
}

/* The function name of a Lambda ARN
 * (arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]), else s. */
static char *arn_function(struct ht_batch *b, const char *s)
{
    const char *f;

    if (!s)
        return NULL;
    f = strstr(s, ":function:");
    if (!f)
        return ht_arena_strdup(b->arena, s);
    f += 10;
    return ht_arena_strndup(b->arena, f, strcspn(f, ":"));
}

static const char *const sys_sqs[] = {"aws_sqs", "aws.sqs", "AmazonSQS", "sqs",
                                      NULL};
static const char *const sys_kinesis[] = {"aws_kinesis", "aws.kinesis",
                                          "AmazonKinesis", "kinesis", NULL};
static const char *const sys_ddb[] = {"dynamodb", "aws.dynamodb",
                                      "AmazonDynamoDB", NULL};
static const char *const sys_sns[] = {"aws.sns", "aws_sns", "AmazonSNS", "sns",
                                      NULL};
static const char *const sys_events[] = {"aws.eventbridge", "aws_eventbridge",
                                         "AmazonEventBridge", "eventbridge",
                                         NULL};
static const char *const sqs_sends[] = {"SendMessage", "SendMessageBatch",
                                        NULL};
static const char *const kin_puts[] = {"PutRecord", "PutRecords", NULL};
static const char *const ddb_writes[] = {
    "PutItem",        "UpdateItem",         "DeleteItem",
    "BatchWriteItem", "TransactWriteItems", NULL};
static const char *const kinds[] = {"segment", "apigw", "lambda", "function",
                                    "init",    "call",  "local",  NULL};

static int via_of(const char *name)
{
    static const char *const names[] = {"none",     "sqs",        "kinesis",
                                        "dynamodb", "lambda",     "link",
                                        "sns",      "eventbridge"};

    for (int i = 0; name && i < 8; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return HT_VIA_NONE;
}

/* hoptrace.flags, as `trace --format otlp` writes it: a comma list */
static uint32_t flags_of(const char *s)
{
    static const struct {
        const char *n;
        uint32_t f;
    } t[] = {{"error", HT_SPAN_ERROR},
             {"fault", HT_SPAN_FAULT},
             {"throttle", HT_SPAN_THROTTLE},
             {"in_progress", HT_SPAN_IN_PROGRESS},
             {"inferred", HT_SPAN_INFERRED},
             {"write", HT_SPAN_WRITE},
             {"async_invoke", HT_SPAN_ASYNC_INVOKE},
             {"subsegment", HT_SPAN_SUBSEGMENT}};
    uint32_t f = 0;

    while (s && *s) {
        size_t n = strcspn(s, ",");

        for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
            if (strlen(t[i].n) == n && strncmp(s, t[i].n, n) == 0)
                f |= t[i].f;
        s += n;
        if (*s == ',')
            s++;
    }
    return f;
}

/*
 * SNS and EventBridge (design.md "SNS and EventBridge"): the AWS SDK
 * instrumentations' Publish span (PRODUCER, messaging.system "aws.sns",
 * messaging.destination(.name) the topic) and PutEvents span
 * (messaging.system "aws.eventbridge", or rpc.service EventBridge) are
 * producer calls; messaging.message.id, when set, is the message id the
 * subscribers receive. The bus is messaging.destination.name when it is
 * set, else the default bus.
 */
static int notify_via(const struct ht_otel_kv *const *a)
{
    if (eq_any(a[K_MESSAGING_SYSTEM], sys_sns) || eq(a[K_RPC_SERVICE], "SNS"))
        return HT_VIA_SNS;
    if (eq_any(a[K_MESSAGING_SYSTEM], sys_events) ||
        eq(a[K_RPC_SERVICE], "EventBridge"))
        return HT_VIA_EVENTBRIDGE;
    return HT_VIA_NONE;
}

static void notify_producer(struct ht_batch *b,
                            const struct ht_otel_kv *const *a, int kind,
                            int via, struct ht_span *s)
{
    const char *op = via == HT_VIA_SNS ? "Publish" : "PutEvents";
    const char *str;

    str = text(b, a[K_MESSAGING_DESTINATION_NAME]);
    if (!str)
        str = text(b, a[K_MESSAGING_DESTINATION]);
    s->resource =
        str ? ht__tail_name(b, str, via == HT_VIA_SNS ? ":" : "/") : NULL;
    if (!s->resource && via == HT_VIA_EVENTBRIDGE)
        s->resource = "default";
    if (kind != HT_OTEL_KIND_PRODUCER && !eq(a[K_RPC_METHOD], op))
        return;
    s->flags |= HT_SPAN_WRITE;
    s->via = (uint8_t)via;
    if (!s->operation)
        s->operation = op;
    s->message_id = text(b, a[K_MESSAGING_MESSAGE_ID]);
    if (!s->message_id)
        s->message_id = text(b, a[K_MESSAGING_MESSAGE_ID_OLD]);
}

/* ---- the mapping ----------------------------------------------------------
 */

/* 2200-01-01T00:00:00Z in ns: later times are refused. */
#define MAX_NS 7258118400000000000ULL

static int64_t ns_to_us(uint64_t ns)
{
    return (int64_t)((ns + 500) / 1000);
}

/* A received record: the consumer invocation `rid` got message `id`
 * (from the span context `ctx` when known). */
static void add_record(struct ht_batch *b, const struct ht_span *s,
                       const char *rid, const char *function, int via,
                       const char *resource, const char *id,
                       const struct ht_tid *hroot, const struct ht_id8 *hpar,
                       const char *corr)
{
    struct ht_fact f;

    memset(&f, 0, sizeof(f));
    f.kind = HT_FACT_RECORD;
    f.via = (uint8_t)via;
    f.request_id = rid;
    f.function = function;
    f.ts_us = s->start_us;
    f.resource = resource;
    f.record_id = id;
    f.corr = corr ? corr : s->corr;
    if (hroot && hpar) {
        f.hdr_root = *hroot;
        f.hdr_parent = *hpar;
        f.flags |= HT_FACT_HAS_HDR;
    }
    ht_batch_add_fact(b, &f);
}

/*
 * An SQS record as `trace --format otlp` writes it when SNS or EventBridge
 * put the message in the queue (query/otlp_out.c): the delivery before it
 * (hoptrace.up_via, hoptrace.up_id, hoptrace.up_resource) and when the
 * queue took it (hoptrace.sent_us), onto the record just added.
 */
static void link_upstream(struct ht_batch *b, const struct ht_otel_kv *const *l)
{
    struct ht_fact *f = b->nfacts ? &b->facts[b->nfacts - 1] : NULL;
    int uv = via_of(text(b, l[K_HOPTRACE_UP_VIA]));
    int64_t sent = int_of(l[K_HOPTRACE_SENT_US]);

    if (!f || f->kind != HT_FACT_RECORD || f->via != HT_VIA_SQS)
        return;
    if (sent > 0)
        f->sent_us = sent;
    if (uv != HT_VIA_SNS && uv != HT_VIA_EVENTBRIDGE)
        return;
    f->up_via = (uint8_t)uv;
    f->up_id = text(b, l[K_HOPTRACE_UP_ID]);
    f->up_resource = text(b, l[K_HOPTRACE_UP_RESOURCE]);
}

/* ---- the roles spans play, and the document's first pass ----------------
 *
 * remote parent: a CONSUMER span whose parent is the span context that
 * arrived in the message (the producer's): explicit in Span.flags when the
 * SDK sets bits 8-9; otherwise a consumer that has no links, names a
 * message id and is not a receive operation (receive spans run in the
 * consumer's own context).
 *
 * consuming span: a CONSUMER span under a local parent that names what it
 * received (links to its producers, a message id): a batch consumer's
 * process span. What it received belongs to its invocation: the local
 * root it runs under (found in the same export, ht__otel_doc_*).
 */
struct role {
    bool remote_parent;
    bool consumes;
    bool lambda_attr; /* faas.invocation_id / faas.execution */
};

static void classify(const struct ht_otel_span *sp,
                     const struct ht_otel_kv *const *a, struct role *r)
{
    bool mid = has_str(a[K_MESSAGING_MESSAGE_ID]) ||
               has_str(a[K_MESSAGING_MESSAGE_ID_OLD]);

    memset(r, 0, sizeof(*r));
    r->lambda_attr =
        has_str(a[K_FAAS_INVOCATION_ID]) || has_str(a[K_FAAS_EXECUTION]);
    if (!sp->has_parent || sp->kind != HT_OTEL_KIND_CONSUMER)
        return;
    if (sp->flags & HT_OTEL_FLAG_HAS_IS_REMOTE)
        r->remote_parent = (sp->flags & HT_OTEL_FLAG_IS_REMOTE) != 0;
    else
        r->remote_parent = sp->nlinks == 0 && mid &&
                           !eq(a[K_MESSAGING_OPERATION], "receive") &&
                           !eq(a[K_MESSAGING_OPERATION_TYPE], "receive");
    r->consumes = !r->remote_parent && (sp->nlinks > 0 || mid);
}

static int cmp_node(const void *x, const void *y)
{
    return memcmp(((const struct ht_otel_node *)x)->id.b,
                  ((const struct ht_otel_node *)y)->id.b, 8);
}

static struct ht_otel_node *find_node(const struct ht_otel_doc *d,
                                      const struct ht_id8 *id)
{
    struct ht_otel_node key;

    if (!d || !d->count)
        return NULL;
    key.id = *id;
    return bsearch(&key, d->n, d->count, sizeof(key), cmp_node);
}

void ht__otel_doc_add(struct ht_otel_doc *d, const struct ht_otel_span *sp)
{
    const struct ht_otel_kv *a[K__COUNT] = {0};
    struct ht_otel_node *n;
    struct role r;
    const struct ht_otel_kv *fid;

    if (d->count == d->cap) {
        size_t nc = d->cap ? d->cap * 2 : 64;
        struct ht_otel_node *p = realloc(d->n, nc * sizeof(*p));

        if (!p)
            abort();
        d->n = p;
        d->cap = nc;
    }
    index_attrs(&sp->attrs, a);
    classify(sp, a, &r);
    n = &d->n[d->count++];
    memset(n, 0, sizeof(*n));
    n->id = sp->id;
    n->parent = sp->parent;
    n->has_parent = sp->has_parent && !r.remote_parent;
    n->consumes = r.consumes;
    n->top = !n->has_parent || r.lambda_attr;
    fid = has_str(a[K_FAAS_INVOCATION_ID]) ? a[K_FAAS_INVOCATION_ID]
                                           : a[K_FAAS_EXECUTION];
    if (r.lambda_attr && fid->slen < sizeof(n->rid))
        memcpy(n->rid, fid->s, fid->slen);
    else
        ht_id8_format(&sp->id, n->rid);
    n->owner = -1;
}

void ht__otel_doc_link(struct ht_otel_doc *d)
{
    if (d->count > 1)
        qsort(d->n, d->count, sizeof(d->n[0]), cmp_node);
    for (size_t i = 0; i < d->count; i++) {
        struct ht_otel_node *x = &d->n[i], *up;
        int guard = 0;

        if (!d->n[i].consumes || d->n[i].top)
            continue;
        /* up through local parents to the invocation: a Lambda span, a
         * local root, or the highest ancestor this export holds */
        while (!x->top && x->has_parent && guard++ < 256 &&
               (up = find_node(d, &x->parent)) != NULL)
            x = up;
        if (x == &d->n[i])
            continue;
        d->n[i].owner = (int)(x - d->n);
        x->has_consumers = true;
    }
}

void ht__otel_doc_free(struct ht_otel_doc *d)
{
    free(d->n);
    memset(d, 0, sizeof(*d));
}

int ht__otel_emit(struct ht_batch *b, const struct ht_otel_attrs *resource,
                  const struct ht_otel_span *sp, const struct ht_otel_doc *doc,
                  char *why, size_t whyn)
{
    const struct ht_otel_node *node, *owner = NULL;
    struct role role;
    const char *owner_rid = NULL;
    bool top_for_others = false;
    const struct ht_otel_kv *r[K__COUNT] = {0}, *a[K__COUNT] = {0};
    struct ht_span s;
    const char *service, *function, *str, *inv_id;
    bool entry, remote_parent, lambda;
    int via = HT_VIA_NONE, http;
    const struct ht_otel_kv *msys;
    struct ht_link *links;
    size_t nl = 0;

    if (ht_tid_is_zero(&sp->trace)) {
        snprintf(why, whyn, "traceId is all zero");
        return HT_REJ_BAD_ID;
    }
    if (ht_id8_is_zero(&sp->id)) {
        snprintf(why, whyn, "spanId is all zero");
        return HT_REJ_BAD_ID;
    }
    if (sp->has_parent && memcmp(sp->parent.b, sp->id.b, 8) == 0) {
        snprintf(why, whyn, "parentSpanId equals spanId");
        return HT_REJ_BAD_ID;
    }
    if (!sp->start_ns) {
        snprintf(why, whyn, "no startTimeUnixNano");
        return HT_REJ_MISSING_FIELD;
    }
    /* nanoseconds since the epoch: beyond the year 2200 (or negative, read
     * as unsigned) is no time a span ran at, and would not fit the µs
     * arithmetic downstream */
    if (sp->start_ns > MAX_NS || sp->end_ns > MAX_NS) {
        snprintf(why, whyn, "%s out of range",
                 sp->start_ns > MAX_NS ? "startTimeUnixNano"
                                       : "endTimeUnixNano");
        return HT_REJ_BAD_FIELD;
    }
    index_attrs(resource, r);
    index_attrs(&sp->attrs, a);

    memset(&s, 0, sizeof(s));
    s.id = sp->id;
    s.trace = sp->trace;
    /* a request written by `trace --format otlp` keeps each span's own
     * trace id beside the one it was exported under */
    if ((str = text(b, a[K_HOPTRACE_TRACE_ID])))
        ht_tid_parse(str, strlen(str), &s.trace);
    s.start_us = ns_to_us(sp->start_ns);
    if (sp->end_ns) {
        s.end_us = ns_to_us(sp->end_ns);
        if (s.end_us < s.start_us)
            s.end_us = s.start_us;
    } else {
        s.end_us = s.start_us;
        s.flags |= HT_SPAN_IN_PROGRESS;
    }
    service = text(b, r[K_SERVICE_NAME]);
    if (!service)
        service = "unknown_service";
    function = text(b, r[K_FAAS_NAME]);
    if (!function && (str = text(b, r[K_CLOUD_RESOURCE_ID])))
        function = arn_function(b, str);
    if (!function && (str = text(b, a[K_CLOUD_RESOURCE_ID])))
        function = arn_function(b, str);

    classify(sp, a, &role);
    remote_parent = role.remote_parent;
    node = find_node(doc, &sp->id);
    if (node && node->owner >= 0) {
        owner = &doc->n[node->owner];
        owner_rid = ht_arena_strdup(b->arena, owner->rid);
    }
    top_for_others = node && node->has_consumers;
    if (sp->has_parent && !remote_parent) {
        s.parent = sp->parent;
        s.flags |= HT_SPAN_HAS_PARENT;
    }
    /* a consuming span whose invocation is not in this export stands for
     * its invocation itself */
    if (role.consumes && !owner)
        top_for_others = true;
    entry = !(s.flags & HT_SPAN_HAS_PARENT) ||
            sp->kind == HT_OTEL_KIND_SERVER || top_for_others;
    inv_id = text(b, a[K_FAAS_INVOCATION_ID]);
    if (!inv_id)
        inv_id = text(b, a[K_FAAS_EXECUTION]);
    lambda = inv_id && entry;

    /* names and kinds */
    if (entry) {
        s.name = ht_arena_strdup(b->arena, service);
        s.kind = HT_SK_SEGMENT;
    } else {
        s.name = sp->namelen ? ht_arena_strndup(b->arena, sp->name, sp->namelen)
                             : "span";
        s.flags |= HT_SPAN_SUBSEGMENT;
        s.kind = sp->kind == HT_OTEL_KIND_CLIENT ||
                         sp->kind == HT_OTEL_KIND_PRODUCER ||
                         (sp->kind == HT_OTEL_KIND_CONSUMER && a[K_RPC_METHOD])
                     ? HT_SK_CALL
                     : HT_SK_LOCAL;
    }
    if (lambda) {
        s.kind = HT_SK_LAMBDA;
        s.origin = "AWS::Lambda";
        s.request_id = inv_id;
        s.resource = function;
    } else if (top_for_others || (entry && sp->kind == HT_OTEL_KIND_CONSUMER &&
                                  (!sp->has_parent || remote_parent))) {
        /* a consumer outside Lambda (or the local root a batch consumer's
         * process spans run under): an invocation of its own, named by
         * its span id */
        char hex[17];

        ht_id8_format(&s.id, hex);
        s.kind = HT_SK_LAMBDA;
        s.request_id = ht_arena_strdup(b->arena, hex);
        inv_id = s.request_id;
    }

    /* http */
    s.method = text(b, a[K_HTTP_REQUEST_METHOD]);
    if (!s.method)
        s.method = text(b, a[K_HTTP_METHOD]);
    s.url = text(b, a[K_URL_FULL]);
    if (!s.url)
        s.url = text(b, a[K_HTTP_URL]);
    http = (int)int_of(a[K_HTTP_RESPONSE_STATUS_CODE]);
    if (!http)
        http = (int)int_of(a[K_HTTP_STATUS_CODE]);
    if (http > 0 && http < 1000)
        s.http_status = (uint16_t)http;
    if (s.kind == HT_SK_LOCAL && s.method && s.url)
        s.kind = HT_SK_CALL;
    if (sp->status == 2) {
        if (http == 429)
            s.flags |= HT_SPAN_THROTTLE | HT_SPAN_ERROR;
        else if (http >= 400 && http < 500)
            s.flags |= HT_SPAN_ERROR;
        else
            s.flags |= HT_SPAN_FAULT;
    }

    /* correlation id, as the log decoders read it */
    s.corr = text(b, a[K_CORRELATION_ID]);
    if (!s.corr)
        s.corr = text(b, a[K_CORRELATIONID]);
    if (!s.corr)
        s.corr = text(b, a[K_X_CORRELATION_ID]);

    /* AWS calls and messaging: operation, resource, the hop it produces.
     * A new kind of hop (SNS, EventBridge) adds its system here (its via,
     * its resource below, its write operations in the block after), and
     * its consumer side where the received records are made (the end of
     * this function); keys it reads go in the sorted table at the top. */
    s.operation = text(b, a[K_RPC_METHOD]);
    msys = a[K_MESSAGING_SYSTEM];
    if (eq_any(msys, sys_sqs) || eq(a[K_RPC_SERVICE], "SQS"))
        via = HT_VIA_SQS;
    else if (eq_any(msys, sys_kinesis) || eq(a[K_RPC_SERVICE], "Kinesis"))
        via = HT_VIA_KINESIS;
    else if (eq_any(a[K_DB_SYSTEM], sys_ddb) ||
             eq_any(a[K_DB_SYSTEM_NAME], sys_ddb) ||
             eq(a[K_RPC_SERVICE], "DynamoDB"))
        via = HT_VIA_DYNAMODB;
    if (!s.operation && via == HT_VIA_DYNAMODB) {
        s.operation = text(b, a[K_DB_OPERATION_NAME]);
        if (!s.operation)
            s.operation = text(b, a[K_DB_OPERATION]);
    }
    if (via == HT_VIA_SQS) {
        s.resource = text(b, a[K_MESSAGING_DESTINATION_NAME]);
        if (!s.resource)
            s.resource = text(b, a[K_MESSAGING_DESTINATION]);
        if (!s.resource && (str = text(b, a[K_AWS_SQS_QUEUE_URL])))
            s.resource = ht__tail_name(b, str, "/");
        if (!s.resource && (str = text(b, a[K_MESSAGING_URL])))
            s.resource = ht__tail_name(b, str, "/");
    } else if (via == HT_VIA_KINESIS) {
        s.resource = text(b, a[K_AWS_KINESIS_STREAM_NAME]);
        if (!s.resource)
            s.resource = text(b, a[K_AWS_KINESIS_STREAM_NAME2]);
        if (!s.resource)
            s.resource = text(b, a[K_MESSAGING_DESTINATION_NAME]);
    } else if (via == HT_VIA_DYNAMODB) {
        s.resource = text(b, a[K_AWS_DYNAMODB_TABLE_NAMES]);
    }
    if (via == HT_VIA_NONE)
        via = notify_via(a);
    if (via == HT_VIA_SNS || via == HT_VIA_EVENTBRIDGE) {
        if (s.kind != HT_SK_LAMBDA && !lambda)
            notify_producer(b, a, sp->kind, via, &s);
        else if ((str = text(b, a[K_MESSAGING_DESTINATION_NAME])) ||
                 (str = text(b, a[K_MESSAGING_DESTINATION])))
            s.resource = ht__tail_name(b, str, via == HT_VIA_SNS ? ":" : "/");
    }
    if (s.kind != HT_SK_LAMBDA && !lambda) {
        bool send = sp->kind == HT_OTEL_KIND_PRODUCER;

        if (via == HT_VIA_SQS && (send || eq_any(a[K_RPC_METHOD], sqs_sends))) {
            s.flags |= HT_SPAN_WRITE;
            s.message_id = text(b, a[K_MESSAGING_MESSAGE_ID]);
            if (!s.message_id)
                s.message_id = text(b, a[K_MESSAGING_MESSAGE_ID_OLD]);
            if (!s.operation)
                s.operation = "SendMessage";
        } else if (via == HT_VIA_KINESIS &&
                   (send || eq_any(a[K_RPC_METHOD], kin_puts))) {
            s.flags |= HT_SPAN_WRITE;
            s.sequence = text(b, a[K_AWS_KINESIS_SEQUENCE_NUMBER]);
            if (!s.operation)
                s.operation = "PutRecord";
        } else if (via == HT_VIA_DYNAMODB && s.operation &&
                   eq_any(a[K_RPC_METHOD], ddb_writes)) {
            s.flags |= HT_SPAN_WRITE;
        } else if (via == HT_VIA_DYNAMODB && s.operation) {
            for (const char *const *w = ddb_writes; *w; w++)
                if (strcmp(s.operation, *w) == 0)
                    s.flags |= HT_SPAN_WRITE;
        }
        if (s.flags & HT_SPAN_WRITE)
            s.via = (uint8_t)via;
    }

    /* what `trace --format otlp` wrote about the node, read back as is */
    if ((str = text(b, a[K_HOPTRACE_KIND]))) {
        for (int i = 0; kinds[i]; i++)
            if (strcmp(str, kinds[i]) == 0)
                s.kind = (uint8_t)i;
    }
    if (a[K_HOPTRACE_FLAGS]) {
        s.flags = (s.flags & HT_SPAN_HAS_PARENT) |
                  flags_of(text(b, a[K_HOPTRACE_FLAGS]));
    }
    if (a[K_HOPTRACE_KIND]) {
        /* a node as hoptrace wrote it: what it says replaces what the
         * conventions gave, absent fields included */
        if ((str = text(b, a[K_HOPTRACE_NAME])))
            s.name = str;
        s.origin = text(b, a[K_HOPTRACE_ORIGIN]);
        s.resource = text(b, a[K_HOPTRACE_RESOURCE]);
        s.request_id = text(b, a[K_HOPTRACE_REQUEST_ID]);
        s.ext_request_id = text(b, a[K_HOPTRACE_EXT_REQUEST_ID]);
        s.sequence = text(b, a[K_HOPTRACE_SEQUENCE]);
        s.message_id = text(b, a[K_HOPTRACE_MESSAGE_ID]);
        s.operation = text(b, a[K_HOPTRACE_OPERATION]);
        s.api_id = text(b, a[K_HOPTRACE_API_ID]);
        s.stage = text(b, a[K_HOPTRACE_STAGE]);
        s.via = (uint8_t)via_of(text(b, a[K_HOPTRACE_VIA]));
    }
    if (s.kind == HT_SK_LAMBDA && s.request_id)
        inv_id = s.request_id;

    /* links: a batch consumer's, one per record; and the remote parent of
     * a consumer, which is a hop, not a call */
    links = ht_arena_alloc(b->arena, (sp->nlinks + 1) * sizeof(struct ht_link));
    for (size_t i = 0; i < sp->nlinks && nl < 100; i++) {
        const struct ht_otel_kv *l[K__COUNT] = {0};
        int lv;

        if (ht_id8_is_zero(&sp->links[i].span))
            continue;
        /* a stream hop written by `trace --format otlp` is read back as
         * the record it was matched by (below), not as a plain link */
        index_attrs(&sp->links[i].attrs, l);
        lv = via_of(text(b, l[K_HOPTRACE_VIA]));
        if ((lv == HT_VIA_KINESIS || lv == HT_VIA_DYNAMODB) &&
            (l[K_HOPTRACE_SEQUENCE] || l[K_CORRELATION_ID]))
            continue;
        links[nl].trace = sp->links[i].trace;
        links[nl].id = sp->links[i].span;
        nl++;
    }
    if (remote_parent) {
        links[nl].trace = sp->trace;
        links[nl].id = sp->parent;
        nl++;
    }
    s.links = nl ? links : NULL;
    s.nlinks = (uint32_t)nl;
    if (a[K_HOPTRACE_LOGS_ONLY] &&
        a[K_HOPTRACE_LOGS_ONLY]->type == HT_OV_BOOL &&
        a[K_HOPTRACE_LOGS_ONLY]->b && inv_id) {
        /* an invocation `trace --format otlp` knew from logs alone: read
         * back as the START and REPORT lines it was known by, so it is
         * again a logs-only invocation (its Init Duration included) */
        struct ht_fact f;
        const struct ht_otel_kv *cold = a[K_FAAS_COLDSTART];
        int64_t init = int_of(a[K_HOPTRACE_INIT_US]);

        if (init < 0 || init > s.end_us - s.start_us)
            init = 0;
        memset(&f, 0, sizeof(f));
        f.kind = HT_FACT_START;
        f.request_id = inv_id;
        f.function = s.name;
        f.ts_us = s.start_us + init;
        if (a[K_HOPTRACE_TRACE_ID]) {
            f.trace = s.trace;
            f.flags |= HT_FACT_HAS_TRACE;
        }
        if (cold && cold->type == HT_OV_BOOL)
            f.flags |= cold->b ? HT_FACT_COLD : HT_FACT_WARM;
        ht_batch_add_fact(b, &f);
        f.kind = HT_FACT_REPORT;
        f.ts_us = s.end_us;
        f.duration_us = s.end_us - (s.start_us + init);
        f.init_us = init;
        if (s.flags & HT_SPAN_FAULT)
            f.flags |= HT_FACT_FAILED;
        ht_batch_add_fact(b, &f);
        lambda = false;
    } else {
        ht_batch_add_span(b, &s);
    }

    /* the invocation: its trace, its node, its cold start */
    if (lambda) {
        struct ht_fact f;
        const struct ht_otel_kv *cold = a[K_FAAS_COLDSTART];

        memset(&f, 0, sizeof(f));
        f.kind = HT_FACT_TRACE;
        f.request_id = inv_id;
        f.function = function;
        f.ts_us = s.start_us;
        f.trace = s.trace;
        f.segment = s.id;
        f.flags = HT_FACT_HAS_TRACE | HT_FACT_HAS_SEGMENT;
        if (cold && cold->type == HT_OV_BOOL)
            f.flags |= cold->b ? HT_FACT_COLD : HT_FACT_WARM;
        ht_batch_add_fact(b, &f);
    }
    /* messages a consumer invocation received: its own message id, and
     * those its links carry (a batch consumer's, one link per message);
     * a consuming span reports them for the invocation it runs under */
    {
        const char *rid = NULL;
        const char *mid = text(b, a[K_MESSAGING_MESSAGE_ID]);
        int rvia = via != HT_VIA_NONE ? via : HT_VIA_SQS;
        bool mid_linked = false;

        if (owner_rid)
            rid = owner_rid;
        else if (inv_id && (s.kind == HT_SK_LAMBDA || s.kind == HT_SK_FUNCTION))
            rid = inv_id;
        if (!mid)
            mid = text(b, a[K_MESSAGING_MESSAGE_ID_OLD]);
        /* a process span: one message, one link to its producer */
        if (rid && mid && role.consumes && sp->nlinks == 1 &&
            (rvia == HT_VIA_SQS || rvia == HT_VIA_KINESIS)) {
            add_record(b, &s, rid, function, rvia, s.resource, mid,
                       rvia == HT_VIA_SQS ? &sp->links[0].trace : NULL,
                       rvia == HT_VIA_SQS ? &sp->links[0].span : NULL, NULL);
            mid_linked = true;
        } else if (rid && mid &&
                   (via == HT_VIA_SQS || via == HT_VIA_KINESIS ||
                    via == HT_VIA_SNS || via == HT_VIA_EVENTBRIDGE)) {
            add_record(b, &s, rid, function, via, s.resource, mid,
                       remote_parent ? &sp->trace : NULL,
                       remote_parent ? &sp->parent : NULL, NULL);
        }
        for (size_t i = 0; rid && !mid_linked && i < sp->nlinks; i++) {
            const struct ht_otel_kv *l[K__COUNT] = {0};
            const char *lid, *lres;
            int lvia = rvia;

            index_attrs(&sp->links[i].attrs, l);
            lid = text(b, l[K_MESSAGING_MESSAGE_ID]);
            if (!lid)
                lid = text(b, l[K_MESSAGING_MESSAGE_ID_OLD]);
            if ((str = text(b, l[K_HOPTRACE_SEQUENCE]))) {
                lid = str;
                lvia = HT_VIA_KINESIS;
            }
            if ((str = text(b, l[K_HOPTRACE_VIA])))
                lvia = via_of(str);
            if ((lvia == HT_VIA_KINESIS || lvia == HT_VIA_DYNAMODB) && !lid &&
                (str = text(b, l[K_CORRELATION_ID]))) {
                /* a stream record known by its correlation id (what
                 * `trace --format otlp` writes for such a hop) */
                struct ht_fact f;

                memset(&f, 0, sizeof(f));
                f.kind = HT_FACT_RECORD;
                f.via = (uint8_t)lvia;
                f.request_id = rid;
                f.function = function;
                f.ts_us = s.start_us;
                f.corr = str;
                f.resource = text(b, l[K_HOPTRACE_RESOURCE]);
                /* the stream record's own id is not known: the linked
                 * write's span id stands for it (so the consumer half is
                 * kept, and the stream is known to have a reader) */
                {
                    char hex[17];

                    ht_id8_format(&sp->links[i].span, hex);
                    f.record_id = ht_arena_printf(b->arena, "link:%s", hex);
                }
                ht_batch_add_fact(b, &f);
                continue;
            }
            if (!lid && lvia == HT_VIA_SQS &&
                (owner_rid || eq(l[K_HOPTRACE_EVIDENCE], "trace-header"))) {
                /* a link of a span below the invocation (or a hop that
                 * `trace --format otlp` wrote as matched by the trace
                 * header): the invocation received the linked producer's
                 * message, whose id is not known; the linked span id
                 * stands for it, the link is its trace header */
                char hex[17];

                ht_id8_format(&sp->links[i].span, hex);
                lid = ht_arena_printf(b->arena, "link:%s", hex);
            }
            if (!lid || (lvia != HT_VIA_SQS && lvia != HT_VIA_KINESIS &&
                         lvia != HT_VIA_SNS && lvia != HT_VIA_EVENTBRIDGE))
                continue;
            lres = text(b, l[K_HOPTRACE_RESOURCE]);
            if (!lres)
                lres = text(b, l[K_MESSAGING_DESTINATION_NAME]);
            if (!lres)
                lres = s.resource;
            /* the span context of a link is a trace header only for SQS
             * (a stream record's link names its writer, nothing more) */
            add_record(b, &s, rid, function, lvia, lres, lid,
                       lvia == HT_VIA_SQS ? &sp->links[i].trace : NULL,
                       lvia == HT_VIA_SQS ? &sp->links[i].span : NULL,
                       text(b, l[K_CORRELATION_ID]));
            if (lvia == HT_VIA_SQS)
                link_upstream(b, l);
        }
    }
    b->documents++;
    return -1;
}
