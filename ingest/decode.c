/*
 * decode.c - payload sniffing and the document decoders: X-Ray segment
 * documents (and every envelope that carries them), CloudWatch Logs
 * subscription messages, filter-log-events output, Kinesis GetRecords
 * responses and Lambda Kinesis/Firehose events whose records carry any of
 * these. Log event messages go on to logs.c.
 *
 * A JSON tree lives only inside one call here and is released before
 * returning; what leaves is ht_span / ht_fact structs in the batch arena.
 * Owned by ingest/. It must not persist anything.
 */
#define _GNU_SOURCE
#include "ht_ingest.h"
#include "ingest_int.h"
#include "otel.h"

#include "hjson.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RECURSION 4 /* envelope inside envelope inside … */

/* Between two complete records of a large envelope (see ht_batch.yield). */
static void yield(struct ht_batch *b)
{
    if (b->yield)
        b->yield(b->yield_ctx, b);
}

static void decode_bytes(struct ht_batch *b, const struct ht_srcpos *pos,
                         const void *data, size_t n, int level);
static void decode_value(struct ht_batch *b, const struct ht_srcpos *pos, hj v,
                         const char *raw, size_t rawlen, int level);

/* ---- small accessors -------------------------------------------------- */

static const char *jstr(hj o, const char *key)
{
    return hj_str(hj_get(o, key));
}

/* An arena copy of a non-empty string value, else NULL. */
static char *dup_val(struct ht_batch *b, hj v)
{
    size_t n = hj_strlen(v);

    return n ? ht_arena_strndup(b->arena, hj_str(v), n) : NULL;
}

static char *dup_str(struct ht_batch *b, hj o, const char *key)
{
    return dup_val(b, hj_get(o, key));
}

/* Last component after any of the separators in `seps`, copied into the
 * batch's arena (ingest_int.h). */
char *ht__tail_name(struct ht_batch *b, const char *s, const char *seps)
{
    const char *t = s;

    if (!s || !*s)
        return NULL;
    for (const char *p = s; *p; p++)
        if (strchr(seps, *p) && p[1])
            t = p + 1;
    return ht_arena_strdup(b->arena, t);
}

static bool jnum(hj v, double *out)
{
    if (hj_is_number(v)) {
        *out = hj_num(v);
        return true;
    }
    return false;
}

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- X-Ray documents --------------------------------------------------- */

struct xray_ctx {
    struct ht_batch *b;
    const struct ht_srcpos *pos;
    int reason; /* first failure: enum ht_reject, -1 when fine */
    char detail[160];
};

static void xfail(struct xray_ctx *x, int reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void xfail(struct xray_ctx *x, int reason, const char *fmt, ...)
{
    va_list ap;

    if (x->reason >= 0)
        return;
    x->reason = reason;
    va_start(ap, fmt);
    vsnprintf(x->detail, sizeof(x->detail), fmt, ap);
    va_end(ap);
}

static bool is_write_ddb(const char *op)
{
    static const char *const ops[] = {"PutItem", "UpdateItem", "DeleteItem",
                                      "BatchWriteItem", "TransactWriteItems"};
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (strcmp(op, ops[i]) == 0)
            return true;
    return false;
}

static const char *const corr_keys[] = {"correlation_id", "correlationId",
                                        "x-correlation-id"};

static char *annotation_corr(struct ht_batch *b, hj ann)
{
    hj v[NELEM(corr_keys)];

    hj_fields(ann, corr_keys, NELEM(corr_keys), v);
    for (size_t i = 0; i < NELEM(corr_keys); i++) {
        if (hj_strlen(v[i]) > 0)
            return dup_val(b, v[i]);
        if (hj_is_integer(v[i]))
            return ht_arena_printf(b->arena, "%lld", (long long)hj_int(v[i]));
    }
    return NULL;
}

/* The first element of an array of strings, copied; NULL otherwise. */
static char *first_str(struct ht_batch *b, hj arr)
{
    return hj_is_array(arr) ? dup_val(b, hj_at(arr, 0)) : NULL;
}

enum {
    A_OPERATION,
    A_API_GATEWAY,
    A_REQUEST_ID,
    A_QUEUE_URL,
    A_TABLE_NAME,
    A_STREAM_NAME,
    A_FUNCTION_NAME,
    A_TABLE_NAMES,
    A_RESOURCE_NAMES,
    A_MESSAGE_ID,
    A_SEQUENCE_NUMBER,
    A_INVOCATION_TYPE,
    A_TOPIC_ARN,
    A_EVENT_BUS_NAME,
    A__COUNT
};
static const char *const aws_keys[A__COUNT] = {
    "operation",      "api_gateway",   "request_id",      "queue_url",
    "table_name",     "stream_name",   "function_name",   "table_names",
    "resource_names", "message_id",    "sequence_number", "invocation_type",
    "topic_arn",      "event_bus_name"};

/*
 * The notification hops' producer calls (design.md "SNS and EventBridge"):
 * an SNS Publish (or PublishBatch, whose entries' ids no whitelist can
 * record) to a topic (aws.topic_arn, the X-Ray SDKs' parameter
 * whitelist; aws.message_id when a custom whitelist records the response's
 * MessageId) and an EventBridge PutEvents to a bus (aws.event_bus_name when
 * recorded, else the first of aws.resource_names, else the account's
 * "default" bus, which is where PutEvents puts an entry that names none).
 * True when op is one of them.
 */
static bool notify_op(struct ht_batch *b, const char *op, const hj *f,
                      struct ht_span *s)
{
    const char *bus;

    if (strcmp(op, "Publish") == 0 || strcmp(op, "PublishBatch") == 0) {
        s->via = HT_VIA_SNS;
        s->flags |= HT_SPAN_WRITE;
        return true;
    }
    if (strcmp(op, "PutEvents") != 0)
        return false;
    s->via = HT_VIA_EVENTBRIDGE;
    s->flags |= HT_SPAN_WRITE;
    if ((bus = hj_str(f[A_EVENT_BUS_NAME])) != NULL && *bus)
        s->resource = ht__tail_name(b, bus, "/");
    else if (!s->resource)
        s->resource = "default";
    return true;
}

static void fill_aws(struct xray_ctx *x, hj aws, struct ht_span *s)
{
    struct ht_batch *b = x->b;
    hj f[A__COUNT];
    const char *op, *str;

    if (!hj_is_object(aws))
        return;
    hj_fields(aws, aws_keys, A__COUNT, f);
    s->operation = dup_val(b, f[A_OPERATION]);
    if (hj_is_object(f[A_API_GATEWAY])) {
        hj agw = f[A_API_GATEWAY];

        s->request_id = dup_str(b, agw, "request_id");
        s->api_id = dup_str(b, agw, "rest_api_id");
        s->stage = dup_str(b, agw, "stage");
    } else {
        s->request_id = dup_val(b, f[A_REQUEST_ID]);
    }
    if ((str = hj_str(f[A_QUEUE_URL])))
        s->resource = ht__tail_name(b, str, "/");
    else if ((str = hj_str(f[A_TABLE_NAME])))
        s->resource = ht_arena_strdup(b->arena, str);
    else if ((str = hj_str(f[A_STREAM_NAME])))
        s->resource = ht_arena_strdup(b->arena, str);
    else if ((str = hj_str(f[A_FUNCTION_NAME])))
        s->resource = ht__tail_name(b, str, ":");
    else if ((str = hj_str(f[A_TOPIC_ARN]))) /* SNS: the topic's name */
        s->resource = ht__tail_name(b, str, ":");
    else if (hj_is_string(hj_at(f[A_TABLE_NAMES], 0)))
        s->resource = first_str(b, f[A_TABLE_NAMES]);
    else if (hj_is_string(hj_at(f[A_RESOURCE_NAMES], 0)))
        s->resource = first_str(b, f[A_RESOURCE_NAMES]);
    s->message_id = dup_val(b, f[A_MESSAGE_ID]);
    s->sequence = dup_val(b, f[A_SEQUENCE_NUMBER]);
    op = s->operation;
    if (!op)
        return;
    if (strcmp(op, "SendMessage") == 0 || strcmp(op, "SendMessageBatch") == 0) {
        s->via = HT_VIA_SQS;
        s->flags |= HT_SPAN_WRITE;
    } else if (strcmp(op, "PutRecord") == 0 || strcmp(op, "PutRecords") == 0) {
        s->via = HT_VIA_KINESIS;
        s->flags |= HT_SPAN_WRITE;
    } else if (is_write_ddb(op)) {
        s->via = HT_VIA_DYNAMODB;
        s->flags |= HT_SPAN_WRITE;
    } else if (notify_op(b, op, f, s)) {
        /* SNS Publish, EventBridge PutEvents (notify_op) */
    } else if (strcmp(op, "InvokeAsync") == 0 ||
               (strcmp(op, "Invoke") == 0 &&
                (str = hj_str(f[A_INVOCATION_TYPE])) &&
                strcmp(str, "Event") == 0)) {
        s->via = HT_VIA_LAMBDA;
        s->flags |= HT_SPAN_WRITE | HT_SPAN_ASYNC_INVOKE;
    }
}

static bool get_time(hj v, int64_t *out)
{
    double d;

    if (!jnum(v, &d) || d < 0 || d > 1e11)
        return false;
    *out = ht_secs_to_us(d);
    return true;
}

enum {
    F_ID,
    F_TRACE_ID,
    F_PARENT_ID,
    F_TYPE,
    F_START_TIME,
    F_END_TIME,
    F_IN_PROGRESS,
    F_NAME,
    F_ORIGIN,
    F_ERROR,
    F_FAULT,
    F_THROTTLE,
    F_INFERRED,
    F_HTTP,
    F_AWS,
    F_ANNOTATIONS,
    F_METADATA,
    F_NAMESPACE,
    F_SQL,
    F_LINKS,
    F_SUBSEGMENTS,
    F_CAUSE,
    F__COUNT
};
static const char *const span_keys[F__COUNT] = {
    "id",          "trace_id",    "parent_id", "type",   "start_time",
    "end_time",    "in_progress", "name",      "origin", "error",
    "fault",       "throttle",    "inferred",  "http",   "aws",
    "annotations", "metadata",    "namespace", "sql",    "links",
    "subsegments", "cause"};

static void decode_links(struct ht_batch *b, hj v, struct ht_span *s)
{
    size_t nl = hj_size(v);
    struct hj_iter it;
    hj l;

    if (!hj_is_array(v) || nl == 0)
        return;
    if (nl > 100)
        nl = 100;
    s->links = ht_arena_alloc(b->arena, nl * sizeof(*s->links));
    hj_iter_init(&it, v);
    for (size_t i = 0; i < nl && hj_iter_next(&it, &l, NULL, NULL); i++) {
        hj lt = hj_get(l, "trace_id");
        hj li = hj_get(l, "id");
        struct ht_link *dst = &s->links[s->nlinks];

        if (!hj_is_string(li) ||
            !ht_id8_parse(hj_str(li), hj_strlen(li), &dst->id))
            continue;
        memset(&dst->trace, 0, sizeof(dst->trace));
        if (hj_is_string(lt))
            ht_tid_parse(hj_str(lt), hj_strlen(lt), &dst->trace);
        s->nlinks++;
    }
}

/*
 * Decode one (sub)segment and its nested subsegments. `parent` is the
 * enclosing span's id for nested subsegments, NULL for a document. The
 * document's members are read in one pass (hj_fields).
 */
static void decode_span(struct xray_ctx *x, hj doc, const struct ht_tid *trace,
                        const struct ht_id8 *parent, int depth)
{
    struct ht_batch *b = x->b;
    struct ht_span s;
    hj f[F__COUNT], v;
    const char *str;

    if (x->reason >= 0)
        return;
    if (!hj_is_object(doc)) {
        xfail(x, HT_REJ_MISSING_FIELD, "%s", "subsegment is not an object");
        return;
    }
    hj_fields(doc, span_keys, F__COUNT, f);
    memset(&s, 0, sizeof(s));
    v = f[F_ID];
    if (!hj_is_string(v)) {
        xfail(x, HT_REJ_MISSING_FIELD, "%s", "no \"id\"");
        return;
    }
    if (!ht_id8_parse(hj_str(v), hj_strlen(v), &s.id)) {
        xfail(x, HT_REJ_BAD_ID, "id \"%.40s\" is not 16 hex digits", hj_str(v));
        return;
    }
    if (trace) {
        s.trace = *trace;
    } else {
        v = f[F_TRACE_ID];
        if (!hj_is_string(v)) {
            xfail(x, HT_REJ_MISSING_FIELD, "%s", "no \"trace_id\"");
            return;
        }
        if (!ht_tid_parse(hj_str(v), hj_strlen(v), &s.trace)) {
            xfail(x, HT_REJ_BAD_ID, "trace_id \"%.40s\" is not 1-8hex-24hex",
                  hj_str(v));
            return;
        }
    }
    v = f[F_PARENT_ID];
    if (parent) {
        s.parent = *parent;
        s.flags |= HT_SPAN_HAS_PARENT | HT_SPAN_SUBSEGMENT;
    } else if (hj_ok(v) && !hj_is_null(v)) {
        if (!hj_is_string(v) ||
            !ht_id8_parse(hj_str(v), hj_strlen(v), &s.parent)) {
            xfail(x, HT_REJ_BAD_ID, "parent_id \"%.40s\" is not 16 hex digits",
                  hj_is_string(v) ? hj_str(v) : "?");
            return;
        }
        if (memcmp(s.parent.b, s.id.b, 8) == 0) {
            xfail(x, HT_REJ_BAD_ID, "parent_id equals id (%.40s)", hj_str(v));
            return;
        }
        s.flags |= HT_SPAN_HAS_PARENT;
    }
    if ((str = hj_str(f[F_TYPE])) && strcmp(str, "subsegment") == 0)
        s.flags |= HT_SPAN_SUBSEGMENT;
    if (!get_time(f[F_START_TIME], &s.start_us)) {
        xfail(x, HT_REJ_MISSING_FIELD, "%s", "no numeric \"start_time\"");
        return;
    }
    if (get_time(f[F_END_TIME], &s.end_us)) {
        if (s.end_us < s.start_us)
            s.end_us = s.start_us; /* negative durations are not a thing */
    } else if (hj_is_true(f[F_IN_PROGRESS])) {
        s.flags |= HT_SPAN_IN_PROGRESS;
        s.end_us = s.start_us;
    } else {
        xfail(x, HT_REJ_MISSING_FIELD, "%s",
              "neither \"end_time\" nor \"in_progress\": true");
        return;
    }
    s.name = dup_val(b, f[F_NAME]);
    if (!s.name) {
        xfail(x, HT_REJ_MISSING_FIELD, "%s", "no \"name\"");
        return;
    }
    s.origin = dup_val(b, f[F_ORIGIN]);
    /* what the X-Ray schema (and the OpenTelemetry collector's decoder)
     * refuses: the document is rejected as a whole, like any bad field */
    v = f[F_CAUSE];
    if (hj_ok(v) && !hj_is_null(v) && !hj_is_string(v) && !hj_is_object(v)) {
        xfail(x, HT_REJ_BAD_FIELD, "%s",
              "\"cause\" is neither an exception id string nor an object");
        return;
    }
    v = f[F_NAMESPACE];
    if (hj_ok(v) && !hj_is_null(v) &&
        (!(str = hj_str(v)) ||
         (strcmp(str, "aws") != 0 && strcmp(str, "remote") != 0 &&
          strcmp(str, "local") != 0))) {
        xfail(x, HT_REJ_BAD_FIELD,
              "\"namespace\" %s%.40s%s is none of aws, remote, local",
              str ? "\"" : "", str ? str : "(not a string)", str ? "\"" : "");
        return;
    }
    if (hj_is_true(f[F_ERROR]))
        s.flags |= HT_SPAN_ERROR;
    if (hj_is_true(f[F_FAULT]))
        s.flags |= HT_SPAN_FAULT;
    if (hj_is_true(f[F_THROTTLE]))
        s.flags |= HT_SPAN_THROTTLE;
    if (hj_is_true(f[F_INFERRED]))
        s.flags |= HT_SPAN_INFERRED;
    if (hj_is_object(f[F_HTTP])) {
        hj req = hj_get(f[F_HTTP], "request");
        hj resp = hj_get(f[F_HTTP], "response");

        if (hj_is_object(req)) {
            s.method = dup_str(b, req, "method");
            s.url = dup_str(b, req, "url");
        }
        if (hj_is_integer(v = hj_get(resp, "status")))
            s.http_status = (uint16_t)hj_int(v);
    }
    fill_aws(x, f[F_AWS], &s);
    /* a write whose call raised (a cause with exceptions, e.g. DynamoDB's
     * ProvisionedThroughputExceededException) failed even when the SDK set
     * no flag: it wrote nothing */
    if ((s.flags & HT_SPAN_WRITE) &&
        !(s.flags & (HT_SPAN_ERROR | HT_SPAN_FAULT | HT_SPAN_THROTTLE)) &&
        hj_is_object(f[F_CAUSE]) &&
        hj_size(hj_get(f[F_CAUSE], "exceptions")) > 0)
        s.flags |= HT_SPAN_ERROR;
    s.corr = annotation_corr(b, f[F_ANNOTATIONS]);
    v = hj_get(f[F_METADATA], "default");
    if (hj_is_object(v))
        s.ext_request_id = dup_str(b, v, "extended_request_id");

    /* what the span is */
    str = s.origin;
    if (str && strcmp(str, "AWS::ApiGateway::Stage") == 0)
        s.kind = HT_SK_APIGW;
    else if (str && strcmp(str, "AWS::Lambda") == 0)
        s.kind = HT_SK_LAMBDA;
    else if (str && strcmp(str, "AWS::Lambda::Function") == 0)
        s.kind = HT_SK_FUNCTION;
    else if (!(s.flags & HT_SPAN_SUBSEGMENT))
        s.kind = HT_SK_SEGMENT;
    else if (strcmp(s.name, "Initialization") == 0 && !hj_ok(f[F_NAMESPACE]))
        s.kind = HT_SK_INIT;
    else if ((str = hj_str(f[F_NAMESPACE])) &&
             (strcmp(str, "aws") == 0 || strcmp(str, "remote") == 0))
        s.kind = HT_SK_CALL;
    else if (hj_ok(f[F_SQL]) || (s.method && s.url))
        s.kind = HT_SK_CALL;
    else
        s.kind = HT_SK_LOCAL;
    if (s.kind == HT_SK_LAMBDA && !s.resource)
        s.resource = s.name;
    decode_links(b, f[F_LINKS], &s);
    ht_batch_add_span(b, &s);

    if (hj_is_array(f[F_SUBSEGMENTS])) {
        struct ht_id8 me = s.id;
        struct ht_tid tr = s.trace;
        struct hj_iter it;
        hj sub;

        if (depth > HT_MAX_DEPTH) {
            xfail(x, HT_REJ_TOO_DEEP, "%s", "subsegments nested too deep");
            return;
        }
        hj_iter_init(&it, f[F_SUBSEGMENTS]);
        while (hj_iter_next(&it, &sub, NULL, NULL))
            decode_span(x, sub, &tr, &me, depth + 1);
    }
}

static void decode_xray(struct ht_batch *b, const struct ht_srcpos *pos, hj doc,
                        const char *raw, size_t rawlen)
{
    struct xray_ctx x = {.b = b, .pos = pos, .reason = -1};
    size_t mark = b->nspans;
    char sample[HT_MAX_DLQ_SAMPLE];

    if (!raw) {
        /* an element of an array: measure it, and keep its first bytes as
         * the sample (json_dumpb returns the full size, writes at most
         * sizeof(sample)) */
        rawlen = hj_dump(doc, sample, sizeof(sample));
        raw = sample;
    }
    if (rawlen > HT_MAX_SEGMENT_BYTES) {
        ht_batch_reject(b, HT_REJ_TOO_LARGE, pos,
                        "X-Ray document larger than 64 KiB", raw, rawlen);
        return;
    }
    decode_span(&x, doc, NULL, NULL, 0);
    if (x.reason >= 0) {
        b->nspans = mark; /* all or nothing per document */
        ht_batch_reject(b, x.reason, pos, x.detail, raw, rawlen);
        return;
    }
    b->documents++;
}

/* A JSON string that holds a document (Document, TraceSegmentDocuments). */
static void decode_embedded(struct ht_batch *b, const struct ht_srcpos *pos,
                            hj str, int level)
{
    if (!hj_is_string(str)) {
        ht_batch_reject(b, HT_REJ_MISSING_FIELD, pos,
                        "embedded document is not a JSON string", NULL, 0);
        return;
    }
    decode_bytes(b, pos, hj_str(str), hj_strlen(str), level + 1);
}

/* ---- log envelopes ------------------------------------------------------ */

/* Epoch milliseconds (number or string) to microseconds; 0 when absent or
 * out of any plausible range. */
static int64_t ms_value(hj v)
{
    double ms = 0;

    if (hj_is_number(v))
        ms = hj_num(v);
    else if (hj_is_string(v))
        ms = strtod(hj_str(v), NULL);
    if (!(ms > 0 && ms < 1e14))
        return 0;
    return (int64_t)(ms * 1000.0);
}

/* The function a Lambda log group names (/aws/lambda/NAME), or NULL. */
static const char *group_function(struct ht_batch *b, const char *group)
{
    if (group && strncmp(group, "/aws/lambda/", 12) == 0 && group[12])
        return ht_arena_strdup(b->arena, group + 12);
    return NULL;
}

/*
 * The log group of an event: its envelope's (a subscription message's
 * logGroup, filter-log-events output's top-level logGroupName when it has
 * one), else the event's own logGroupName (filter-log-events across
 * groups), else the one the source was given (ingest --log-group: plain
 * `aws logs filter-log-events` output names none).
 */
static void decode_log_events(struct ht_batch *b, const struct ht_srcpos *pos,
                              hj events, const char *group)
{
    struct ht_logctx ctx = {.pos = pos};
    const char *envelope_fn = group_function(b, group);
    const char *default_fn = NULL;
    struct hj_iter it;
    hj e;

    if (!group && b->default_log_group && *b->default_log_group)
        default_fn = group_function(b, b->default_log_group);
    hj_iter_init(&it, events);
    while (hj_iter_next(&it, &e, NULL, NULL)) {
        hj msg = hj_get(e, "message");
        const char *eg = group ? NULL : jstr(e, "logGroupName");

        b->log_events++;
        if (!hj_is_string(msg)) {
            ht_batch_reject(b, HT_REJ_MISSING_FIELD, pos,
                            "log event without a \"message\" string", NULL, 0);
            continue;
        }
        if (hj_strlen(msg) > HT_MAX_LOG_EVENT_BYTES) {
            ht_batch_reject(b, HT_REJ_TOO_LARGE, pos,
                            "log event larger than 256 KiB", hj_str(msg),
                            hj_strlen(msg));
            continue;
        }
        ctx.ts_us = ms_value(hj_get(e, "timestamp"));
        ctx.log_stream = jstr(e, "logStreamName");
        if (group) {
            ctx.log_group = group;
            ctx.function = envelope_fn;
        } else if (eg && *eg) {
            ctx.log_group = eg;
            ctx.function = group_function(b, eg);
        } else {
            ctx.log_group = b->default_log_group;
            ctx.function = default_fn;
        }
        ht_ingest_log_message(b, &ctx, hj_str(msg), hj_strlen(msg));
        b->documents++;
        yield(b);
    }
}

/* A base64 blob (Kinesis Data, awslogs.data, Firehose data): decode and
 * sniff what it holds. */
static void decode_blob(struct ht_batch *b, const struct ht_srcpos *pos,
                        hj data, int level, const char *what, bool must_gzip)
{
    uint8_t *raw;
    long n;
    char detail[96];

    if (!hj_is_string(data)) {
        snprintf(detail, sizeof(detail), "%s is missing or not a string", what);
        ht_batch_reject(b, HT_REJ_MISSING_FIELD, pos, detail, NULL, 0);
        return;
    }
    raw = malloc(hj_strlen(data) / 4 * 3 + 4);
    if (!raw)
        abort();
    n = ht_base64_decode(hj_str(data), hj_strlen(data), raw);
    if (n < 0) {
        snprintf(detail, sizeof(detail), "%s is not valid base64", what);
        ht_batch_reject(b, HT_REJ_BAD_ENCODING, pos, detail, hj_str(data),
                        hj_strlen(data));
    } else if (must_gzip && !(n >= 2 && raw[0] == 0x1f && raw[1] == 0x8b)) {
        snprintf(detail, sizeof(detail), "%s is not gzip data", what);
        ht_batch_reject(b, HT_REJ_BAD_ENCODING, pos, detail, NULL, 0);
    } else {
        decode_bytes(b, pos, raw, (size_t)n, level + 1);
    }
    free(raw);
}

static void decode_records(struct ht_batch *b, const struct ht_srcpos *pos,
                           hj recs, int level, const char *raw, size_t rawlen)
{
    struct hj_iter it;
    hj r;

    hj_iter_init(&it, recs);
    while (hj_iter_next(&it, &r, NULL, NULL)) {
        hj k = hj_get(r, "kinesis");

        if (hj_is_object(k))
            decode_blob(b, pos, hj_get(k, "data"), level,
                        "Records[].kinesis.data", false);
        else if (hj_ok(hj_get(r, "Data")))
            decode_blob(b, pos, hj_get(r, "Data"), level, "Records[].Data",
                        false);
        else if (hj_ok(hj_get(r, "data")))
            decode_blob(b, pos, hj_get(r, "data"), level, "records[].data",
                        false);
        else
            ht_batch_reject(b, HT_REJ_UNKNOWN_DOC, pos,
                            "record without Kinesis data", raw, rawlen);
        yield(b);
    }
}

/* Reject a value; an array element has no bytes of its own, so its sample
 * is rendered from the tree (first bytes only). */
static void reject_value(struct ht_batch *b, int reason,
                         const struct ht_srcpos *pos, const char *detail, hj v,
                         const char *raw, size_t rawlen)
{
    char sample[HT_MAX_DLQ_SAMPLE];

    if (!raw) {
        size_t n = hj_dump(v, sample, sizeof(sample));

        raw = sample;
        rawlen = n < sizeof(sample) ? n : sizeof(sample);
    }
    ht_batch_reject(b, reason, pos, detail, raw, rawlen);
}

/* ---- daemon headers ------------------------------------------------------ */

/*
 * A document may be preceded by the X-Ray daemon's header line (a datagram
 * saved to a file, or sent through stdin or Kafka). The daemon accepts a
 * header whose "format" is "json" in any case and whose "version" is the
 * integer 1, and drops the datagram otherwise; so does hoptrace: a bad
 * header is rejected once, and the value that follows it from the same
 * source (its document) is dropped with it.
 *
 * Values of one source reach the decoder one call at a time (the file
 * reader, stdin's framer), in the decoding thread of that source; so the
 * sources whose last value was a rejected header are remembered per
 * thread, by name. A handful suffice: files read side by side each have
 * at most one.
 */
#define HDR_WAITS 8
#define HDR_SRCMAX 256

struct hdr_wait {
    bool used;
    uint64_t offset; /* the header's: its document is not before it */
    char src[HDR_SRCMAX];
};
static _Thread_local struct hdr_wait hdr_waits[HDR_WAITS];
static _Thread_local unsigned hdr_nwait, hdr_next;

static bool src_same(const struct hdr_wait *w, const char *src)
{
    return strncmp(w->src, src, HDR_SRCMAX - 1) == 0;
}

static void hdr_wait_add(const struct ht_srcpos *pos)
{
    const char *src = pos->source;
    struct hdr_wait *w = NULL;

    for (unsigned i = 0; i < HDR_WAITS && !w; i++)
        if (hdr_waits[i].used && src_same(&hdr_waits[i], src))
            w = &hdr_waits[i];
    for (unsigned i = 0; i < HDR_WAITS && !w; i++)
        if (!hdr_waits[i].used)
            w = &hdr_waits[i];
    if (!w) /* more sources waiting than slots: one of them is forgotten */
        w = &hdr_waits[hdr_next++ % HDR_WAITS];
    if (!w->used)
        hdr_nwait++;
    w->used = true;
    w->offset = pos->offset;
    snprintf(w->src, sizeof(w->src), "%s", src);
}

/* True when the source's previous value was a rejected header (forgotten
 * now). A value before the header (the source read again from its start)
 * is not its document. Values of one payload share its offset. */
static bool hdr_wait_take(const struct ht_srcpos *pos)
{
    if (!hdr_nwait)
        return false;
    for (unsigned i = 0; i < HDR_WAITS; i++)
        if (hdr_waits[i].used && src_same(&hdr_waits[i], pos->source)) {
            hdr_waits[i].used = false;
            hdr_nwait--;
            return pos->offset >= hdr_waits[i].offset;
        }
    return false;
}

/* Forgets the wait source pos left: at any offset (its end), or at pos's
 * only (a payload's end: a Kafka message, a Kinesis record, a datagram).
 * A header rejected as a payload's last value has its document in no
 * later payload, and values of one payload share its offset. */
static void hdr_wait_forget(const struct ht_srcpos *pos, bool any_offset)
{
    if (!hdr_nwait)
        return;
    for (unsigned i = 0; i < HDR_WAITS; i++)
        if (hdr_waits[i].used && src_same(&hdr_waits[i], pos->source) &&
            (any_offset || hdr_waits[i].offset == pos->offset)) {
            hdr_waits[i].used = false;
            hdr_nwait--;
        }
}

void ht_ingest_source_end(const struct ht_srcpos *pos)
{
    hdr_wait_forget(pos, true);
}

/* A header line: an object naming a format or a version and nothing that
 * makes it a document. */
static bool header_like(hj v, hj format, hj version, hj trace_id, hj id)
{
    return (hj_ok(format) || hj_ok(version)) && !hj_ok(trace_id) &&
           !hj_ok(id) && hj_size(v) <= 3;
}

/* Whether the daemon accepts the header; why not in `why`. */
static bool header_valid(hj format, hj version, char *why, size_t whyn)
{
    const char *f = hj_str(format);

    if (!f || strcasecmp(f, "json") != 0) {
        if (why)
            snprintf(why, whyn, "format %s%.40s%s is not json", f ? "\"" : "",
                     f ? f : "missing or not a string", f ? "\"" : "");
        return false;
    }
    if (!hj_is_integer(version) || hj_int(version) != 1) {
        if (why) {
            if (hj_is_integer(version))
                snprintf(why, whyn, "version %lld is not 1",
                         (long long)hj_int(version));
            else
                snprintf(why, whyn, "version is %s, not the integer 1",
                         hj_ok(version) ? "not an integer" : "missing");
        }
        return false;
    }
    return true;
}

bool ht_ingest_daemon_header(struct ht_batch *b, const char *p, size_t n,
                             char *why, size_t whyn)
{
    char err[160];
    hj v;

    if (n > 1024) {
        if (why)
            snprintf(why, whyn, "header line longer than 1 KiB");
        return false;
    }
    if (hj_parse(ht__parser(b, 0), p, n, false, &v, err, sizeof(err)) != 0) {
        if (why)
            snprintf(why, whyn, "header is not JSON: %s", err);
        return false;
    }
    if (!hj_is_object(v)) {
        if (why)
            snprintf(why, whyn, "header is not a JSON object");
        return false;
    }
    return header_valid(hj_get(v, "format"), hj_get(v, "version"), why, whyn);
}

/* The value after a rejected header, from the same source: its document,
 * dropped (counted with the header). */
static bool after_bad_header(struct ht_batch *b, const struct ht_srcpos *pos,
                             hj v)
{
    if (!hdr_nwait)
        return false;
    if (hj_is_object(v) &&
        header_like(v, hj_get(v, "format"), hj_get(v, "version"),
                    hj_get(v, "trace_id"), hj_get(v, "id")))
        return false;
    if (!hdr_wait_take(pos))
        return false;
    b->dropped++;
    return true;
}

/* The same for a value that does not even parse. */
static bool bad_after_bad_header(struct ht_batch *b,
                                 const struct ht_srcpos *pos)
{
    if (!hdr_nwait || !hdr_wait_take(pos))
        return false;
    b->dropped++;
    return true;
}

/* The members decode_value sniffs a document's kind by. */
enum {
    K_TRACE_ID,
    K_ID,
    K_START_TIME,
    K_FORMAT,
    K_VERSION,
    K_TSD,
    K_TRACES,
    K_MESSAGE_TYPE,
    K_LOG_EVENTS,
    K_LOG_GROUP,
    K_AWSLOGS,
    K_EVENTS,
    K_LOG_GROUP_NAME,
    K_RECORDS,
    K_RECORDS_LC,
    K_RESOURCE_SPANS,
    K__COUNT
};
static const char *const kind_keys[K__COUNT] = {
    "trace_id",     "id",          "start_time",
    "format",       "version",     "TraceSegmentDocuments",
    "Traces",       "messageType", "logEvents",
    "logGroup",     "awslogs",     "events",
    "logGroupName", "Records",     "records",
    "resourceSpans"};

static void decode_value(struct ht_batch *b, const struct ht_srcpos *pos, hj v,
                         const char *raw, size_t rawlen, int level)
{
    hj k[K__COUNT], x;
    const char *mt;

    if (after_bad_header(b, pos, v))
        return;
    if (hj_is_array(v)) {
        /* an array of documents; an element's bytes are rendered only when
         * it must be measured or kept as a dead letter */
        if (level > 0 && raw == NULL) {
            ht_batch_reject(b, HT_REJ_UNKNOWN_DOC, pos,
                            "an array inside an array of documents", NULL, 0);
            return;
        }
        struct hj_iter it;
        hj e;

        hj_iter_init(&it, v);
        while (hj_iter_next(&it, &e, NULL, NULL)) {
            decode_value(b, pos, e, NULL, 0, level + 1);
            yield(b);
        }
        return;
    }
    if (!hj_is_object(v)) {
        reject_value(b, HT_REJ_UNKNOWN_DOC, pos,
                     "a JSON value that is not a document", v, raw, rawlen);
        return;
    }
    /* every member that tells a document's kind, in one pass */
    hj_fields(v, kind_keys, K__COUNT, k);
    if (header_like(v, k[K_FORMAT], k[K_VERSION], k[K_TRACE_ID], k[K_ID])) {
        char why[120], detail[240];

        hdr_wait_take(pos); /* a header after a header: judged anew */
        if (header_valid(k[K_FORMAT], k[K_VERSION], why, sizeof(why)))
            return; /* the daemon header line; the document follows */
        snprintf(detail, sizeof(detail),
                 "X-Ray daemon header rejected as the daemon does (%s): the "
                 "document after it is dropped with it",
                 why);
        reject_value(b, HT_REJ_BAD_FIELD, pos, detail, v, raw, rawlen);
        hdr_wait_add(pos);
        return;
    }
    if (hj_ok(k[K_RESOURCE_SPANS])) {
        /* OTLP/JSON: an ExportTraceServiceRequest (file exporter line) */
        ht__otlp_json_doc(b, pos, v, NULL);
        return;
    }
    if (hj_ok(k[K_TRACE_ID]) || (hj_ok(k[K_ID]) && hj_ok(k[K_START_TIME]))) {
        decode_xray(b, pos, v, raw, rawlen);
        return;
    }
    if (level > MAX_RECURSION) {
        reject_value(b, HT_REJ_TOO_DEEP, pos, "envelopes nested too deep", v,
                     raw, rawlen);
        return;
    }
    if (hj_is_array(x = k[K_TSD])) {
        struct hj_iter it;
        hj e;

        hj_iter_init(&it, x);
        while (hj_iter_next(&it, &e, NULL, NULL)) {
            decode_embedded(b, pos, e, level);
            yield(b);
        }
        return;
    }
    if (hj_is_array(x = k[K_TRACES])) {
        struct hj_iter it, jt;
        hj t, seg;

        hj_iter_init(&it, x);
        while (hj_iter_next(&it, &t, NULL, NULL)) {
            hj_iter_init(&jt, hj_get(t, "Segments"));
            while (hj_iter_next(&jt, &seg, NULL, NULL))
                decode_embedded(b, pos, hj_get(seg, "Document"), level);
        }
        return;
    }
    if ((mt = hj_str(k[K_MESSAGE_TYPE]))) {
        if (strcmp(mt, "CONTROL_MESSAGE") == 0) {
            b->dropped++;
            return;
        }
        if (strcmp(mt, "DATA_MESSAGE") != 0 ||
            !hj_is_array(x = k[K_LOG_EVENTS])) {
            reject_value(b, HT_REJ_MISSING_FIELD, pos,
                         "CloudWatch Logs message without logEvents", v, raw,
                         rawlen);
            return;
        }
        decode_log_events(b, pos, x, hj_str(k[K_LOG_GROUP]));
        return;
    }
    if (hj_is_object(x = k[K_AWSLOGS])) {
        decode_blob(b, pos, hj_get(x, "data"), level, "awslogs.data", true);
        return;
    }
    if (hj_is_array(x = k[K_EVENTS]) &&
        (hj_size(x) == 0 || hj_ok(hj_get(hj_at(x, 0), "message")))) {
        decode_log_events(b, pos, x, hj_str(k[K_LOG_GROUP_NAME]));
        return;
    }
    if ((hj_is_array(x = k[K_RECORDS]) || hj_is_array(x = k[K_RECORDS_LC])) &&
        hj_size(x) > 0) {
        hj r0 = hj_at(x, 0);

        if (hj_ok(hj_get(r0, "kinesis")) || hj_ok(hj_get(r0, "Data")) ||
            hj_ok(hj_get(r0, "data"))) {
            decode_records(b, pos, x, level, raw, rawlen);
            return;
        }
    }
    if (hj_is_array(k[K_RECORDS]) && hj_size(k[K_RECORDS]) == 0) {
        return; /* an empty GetRecords response */
    }
    reject_value(b, HT_REJ_UNKNOWN_DOC, pos, "JSON document of no known kind",
                 v, raw, rawlen);
}

/* One JSON value's bytes: parse (where they are when padded: HJ_PADDING
 * readable bytes follow them), decode, release the tree. */
static void decode_json(struct ht_batch *b, const struct ht_srcpos *pos,
                        const char *p, size_t n, int depth, int level,
                        bool padded)
{
    char err[160];
    hj v;

    if (depth > HT_MAX_DEPTH) {
        ht_batch_reject(b, HT_REJ_TOO_DEEP, pos,
                        "JSON nested deeper than 64 levels", p, n);
        return;
    }
    if (n > HT_MAX_CONTAINER_BYTES) {
        ht_batch_reject(b, HT_REJ_TOO_LARGE, pos,
                        "JSON value larger than 16 MiB", p, n);
        return;
    }
    if (level >= HT__JSLOT_LOG) {
        ht_batch_reject(b, HT_REJ_TOO_DEEP, pos, "envelopes nested too deep", p,
                        n);
        return;
    }
    if ((padded ? hj_parse_padded : hj_parse)(ht__parser(b, level), p, n, true,
                                              &v, err, sizeof(err))) {
        char detail[200];

        if (bad_after_bad_header(b, pos))
            return;

        snprintf(detail, sizeof(detail), "not JSON: %s", err);
        ht_batch_reject(b, HT_REJ_NOT_JSON, pos, detail, p, n);
        return;
    }
    decode_value(b, pos, v, p, n, level);
}

/* A protobuf ExportTraceServiceRequest: field 1 (resource_spans, length
 * delimited) first, and bytes that JSON text never has (control
 * characters other than whitespace) among its first 64: trace and span
 * ids are raw bytes. A JSON payload that starts with a newline has
 * printable text after it, so it is not taken for one. */
static bool otlp_protobuf_like(const uint8_t *u, size_t n)
{
    if (n < 8 || u[0] != 0x0a)
        return false;
    for (size_t i = 1; i < n && i < 64; i++)
        if (u[i] < 0x20 && u[i] != '\t' && u[i] != '\n' && u[i] != '\r')
            return true;
    return false;
}

static void decode_bytes(struct ht_batch *b, const struct ht_srcpos *pos,
                         const void *data, size_t n, int level)
{
    const uint8_t *u = data;
    const char *p = data;
    size_t i = 0;

    if (n >= 2 && u[0] == 0x1f && u[1] == 0x8b) {
        uint8_t *out;
        size_t outn;

        if (level > MAX_RECURSION ||
            ht_gunzip(data, n, 64u << 20, &out, &outn) != 0) {
            ht_batch_reject(b, HT_REJ_BAD_ENCODING, pos,
                            "bad or oversized gzip data", NULL, 0);
            return;
        }
        decode_bytes(b, pos, out, outn, level + 1);
        free(out);
        return;
    }
    if (n >= 4 && u[0] == 0xf3 && u[1] == 0x89 && u[2] == 0x9a &&
        u[3] == 0xc2) {
        ht_batch_reject(b, HT_REJ_BAD_ENCODING, pos,
                        "KPL-aggregated record: de-aggregation is not "
                        "supported by this build",
                        NULL, 0);
        return;
    }
    if (otlp_protobuf_like(u, n)) {
        /* an ExportTraceServiceRequest in protobuf: what the OpenTelemetry
         * collector's Kafka exporter writes by default (otlp_proto) */
        struct ht_otlp_result res;

        memset(&res, 0, sizeof(res));
        ht__otlp_body(b, pos, data, n, HT_OTLP_PROTOBUF, &res);
        return;
    }
    size_t rescan_at = SIZE_MAX; /* where the fast path was refused */

    while (i < n) {
        size_t len = 0;
        int depth;
        enum ht__scan_rc rc;

        i += ht__skip_ws(p + i, n - i);
        if (i >= n)
            break;
        /* a line that opens and closes like one value is parsed without
         * scanning it first (as the file reader does); when it is not one
         * value, it is scanned below */
        if (i != rescan_at && level < HT__JSLOT_LOG &&
            (p[i] == '{' || p[i] == '[')) {
            const char *nl = memchr(p + i, '\n', n - i);
            const char *q = nl ? nl : p + n;
            char err[160];
            hj v;

            while (q > p + i &&
                   (q[-1] == ' ' || q[-1] == '\t' || q[-1] == '\r'))
                q--;
            len = (size_t)(q - (p + i));
            if (len >= 2 && q[-1] == (p[i] == '{' ? '}' : ']') &&
                len <= HT_MAX_CONTAINER_BYTES) {
                int prc = hj_parse(ht__parser(b, level), p + i, len, true, &v,
                                   err, sizeof(err));

                if (prc == 0)
                    decode_value(b, pos, v, p + i, len, level);
                else if (prc == -2)
                    ht_batch_reject(b, HT_REJ_TOO_DEEP, pos,
                                    "JSON nested deeper than 64 levels", p + i,
                                    len);
                if (prc != -1) {
                    i += len;
                    continue;
                }
            }
            rescan_at = i;
            continue;
        }
        rc = ht__scan_value(p + i, n - i, true, &len, &depth);
        if (rc != HT__SCAN_VALUE) {
            const char *nl = memchr(p + i, '\n', n - i);

            len = nl ? (size_t)(nl - (p + i)) : n - i;
            if (!bad_after_bad_header(b, pos))
                ht_batch_reject(b, HT_REJ_NOT_JSON, pos,
                                "not JSON: unbalanced or truncated value",
                                p + i, len);
        } else {
            decode_json(b, pos, p + i, len, depth, level, false);
        }
        i += len;
    }
}

void ht_ingest_payload(struct ht_batch *b, const struct ht_srcpos *pos,
                       const void *data, size_t n)
{
    b->payload_bytes += n;
    decode_bytes(b, pos, data, n, 0);
    hdr_wait_forget(pos, false);
}

/* ht_ingest_value; padded: HJ_PADDING readable bytes follow the value (the
 * file reader's buffer), which is then parsed where it is. */
static bool ingest_value(struct ht_batch *b, const struct ht_srcpos *pos,
                         const char *val, size_t n, int depth, bool padded)
{
    char err[160];
    hj v;
    int rc;

    if (depth == -1) {
        ht_ingest_payload(b, pos, val, n);
        return true;
    }
    if (depth != HT_DEPTH_LINE) {
        b->payload_bytes += n;
        decode_json(b, pos, val, n, depth, 0, padded);
        return true;
    }
    if (n > HT_MAX_CONTAINER_BYTES)
        return false; /* the scanner's path measures and rejects it */
    rc = (padded ? hj_parse_padded : hj_parse)(ht__parser(b, 0), val, n, true,
                                               &v, err, sizeof(err));
    if (rc == -1)
        return false; /* not one value: several, or not JSON at all */
    b->payload_bytes += n;
    if (rc == -2) {
        ht_batch_reject(b, HT_REJ_TOO_DEEP, pos,
                        "JSON nested deeper than 64 levels", val, n);
        return true;
    }
    decode_value(b, pos, v, val, n, 0);
    return true;
}

bool ht_ingest_value(struct ht_batch *b, const struct ht_srcpos *pos,
                     const char *val, size_t n, int depth)
{
    return ingest_value(b, pos, val, n, depth, false);
}

void ht_ingest_read_value(struct ht_batch *b, struct ht_reader *r,
                          const struct ht_srcpos *pos, const char *val,
                          size_t n, bool too_large)
{
    int bad = ht_reader_bad(r);

    if (too_large)
        ht_batch_reject(b, HT_REJ_TOO_LARGE, pos, "value larger than 16 MiB",
                        val, n);
    else if (bad == HT_REJ_TRUNCATED)
        ht_batch_reject(b, bad, pos,
                        "gzip data ends early (a truncated file): the "
                        "value here and anything after it are missing",
                        val, n);
    else if (bad >= 0)
        ht_batch_reject(b, bad, pos, "not JSON: unbalanced or truncated value",
                        val, n);
    else if (!ingest_value(b, pos, val, n, ht_reader_depth(r), true))
        ht_reader_rescan(r); /* not one NDJSON value: scan it */
}
