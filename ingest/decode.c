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

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RECURSION 4 /* envelope inside envelope inside … */

static void decode_bytes(struct ht_batch *b, const struct ht_srcpos *pos,
                         const void *data, size_t n, int level);
static void decode_value(struct ht_batch *b, const struct ht_srcpos *pos,
                         json_t *v, const char *raw, size_t rawlen, int level);

/* ---- small jansson accessors ------------------------------------------- */

static const char *jstr(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

static char *dup_str(struct ht_batch *b, json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    if (!json_is_string(v) || json_string_length(v) == 0)
        return NULL;
    return ht_arena_strndup(b->arena, json_string_value(v),
                            json_string_length(v));
}

/* Last component after any of the separators in `seps`. */
static char *tail_name(struct ht_batch *b, const char *s, const char *seps)
{
    const char *t = s;

    if (!s || !*s)
        return NULL;
    for (const char *p = s; *p; p++)
        if (strchr(seps, *p) && p[1])
            t = p + 1;
    return ht_arena_strdup(b->arena, t);
}

static bool jnum(json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return true;
    }
    return false;
}

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

static char *annotation_corr(struct ht_batch *b, json_t *ann)
{
    for (size_t i = 0; i < 3; i++) {
        json_t *v = json_object_get(ann, corr_keys[i]);

        if (json_is_string(v) && json_string_length(v) > 0)
            return ht_arena_strdup(b->arena, json_string_value(v));
        if (json_is_integer(v))
            return ht_arena_printf(b->arena, "%lld",
                                   (long long)json_integer_value(v));
    }
    return NULL;
}

static void fill_aws(struct xray_ctx *x, json_t *doc, struct ht_span *s)
{
    struct ht_batch *b = x->b;
    json_t *aws = json_object_get(doc, "aws");
    json_t *agw, *v;
    const char *op, *str;

    if (!json_is_object(aws))
        return;
    s->operation = dup_str(b, aws, "operation");
    agw = json_object_get(aws, "api_gateway");
    if (json_is_object(agw)) {
        s->request_id = dup_str(b, agw, "request_id");
        s->api_id = dup_str(b, agw, "rest_api_id");
        s->stage = dup_str(b, agw, "stage");
    } else {
        s->request_id = dup_str(b, aws, "request_id");
    }
    if ((str = jstr(aws, "queue_url")))
        s->resource = tail_name(b, str, "/");
    else if ((str = jstr(aws, "table_name")))
        s->resource = ht_arena_strdup(b->arena, str);
    else if ((str = jstr(aws, "stream_name")))
        s->resource = ht_arena_strdup(b->arena, str);
    else if ((str = jstr(aws, "function_name")))
        s->resource = tail_name(b, str, ":");
    else if (json_is_array(v = json_object_get(aws, "table_names")) &&
             json_is_string(json_array_get(v, 0)))
        s->resource =
            ht_arena_strdup(b->arena, json_string_value(json_array_get(v, 0)));
    else if (json_is_array(v = json_object_get(aws, "resource_names")) &&
             json_is_string(json_array_get(v, 0)))
        s->resource =
            ht_arena_strdup(b->arena, json_string_value(json_array_get(v, 0)));
    s->message_id = dup_str(b, aws, "message_id");
    s->sequence = dup_str(b, aws, "sequence_number");
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
    } else if (strcmp(op, "InvokeAsync") == 0 ||
               (strcmp(op, "Invoke") == 0 &&
                (str = jstr(aws, "invocation_type")) &&
                strcmp(str, "Event") == 0)) {
        s->via = HT_VIA_LAMBDA;
        s->flags |= HT_SPAN_WRITE | HT_SPAN_ASYNC_INVOKE;
    }
}

static bool get_time(json_t *doc, const char *key, int64_t *out)
{
    double d;

    if (!jnum(json_object_get(doc, key), &d) || d < 0 || d > 1e11)
        return false;
    *out = ht_secs_to_us(d);
    return true;
}

/*
 * Decode one (sub)segment and its nested subsegments. `parent` is the
 * enclosing span's id for nested subsegments, NULL for a document.
 */
static void decode_span(struct xray_ctx *x, json_t *doc,
                        const struct ht_tid *trace, const struct ht_id8 *parent,
                        int depth)
{
    struct ht_batch *b = x->b;
    struct ht_span s;
    json_t *v, *subs, *http;
    const char *str;
    size_t i;

    if (x->reason >= 0)
        return;
    if (!json_is_object(doc)) {
        xfail(x, HT_REJ_MISSING_FIELD, "%s", "subsegment is not an object");
        return;
    }
    memset(&s, 0, sizeof(s));
    v = json_object_get(doc, "id");
    if (!json_is_string(v)) {
        xfail(x, HT_REJ_MISSING_FIELD, "%s", "no \"id\"");
        return;
    }
    if (!ht_id8_parse(json_string_value(v), json_string_length(v), &s.id)) {
        xfail(x, HT_REJ_BAD_ID, "id \"%.40s\" is not 16 hex digits",
              json_string_value(v));
        return;
    }
    if (trace) {
        s.trace = *trace;
    } else {
        v = json_object_get(doc, "trace_id");
        if (!json_is_string(v)) {
            xfail(x, HT_REJ_MISSING_FIELD, "%s", "no \"trace_id\"");
            return;
        }
        if (!ht_tid_parse(json_string_value(v), json_string_length(v),
                          &s.trace)) {
            xfail(x, HT_REJ_BAD_ID, "trace_id \"%.40s\" is not 1-8hex-24hex",
                  json_string_value(v));
            return;
        }
    }
    if (parent) {
        s.parent = *parent;
        s.flags |= HT_SPAN_HAS_PARENT | HT_SPAN_SUBSEGMENT;
    } else if ((v = json_object_get(doc, "parent_id")) && !json_is_null(v)) {
        if (!json_is_string(v) ||
            !ht_id8_parse(json_string_value(v), json_string_length(v),
                          &s.parent)) {
            xfail(x, HT_REJ_BAD_ID, "parent_id \"%.40s\" is not 16 hex digits",
                  json_is_string(v) ? json_string_value(v) : "?");
            return;
        }
        if (memcmp(s.parent.b, s.id.b, 8) == 0) {
            xfail(x, HT_REJ_BAD_ID, "parent_id equals id (%.40s)",
                  json_string_value(v));
            return;
        }
        s.flags |= HT_SPAN_HAS_PARENT;
    }
    if ((str = jstr(doc, "type")) && strcmp(str, "subsegment") == 0)
        s.flags |= HT_SPAN_SUBSEGMENT;
    if (!get_time(doc, "start_time", &s.start_us)) {
        xfail(x, HT_REJ_MISSING_FIELD, "%s", "no numeric \"start_time\"");
        return;
    }
    if (get_time(doc, "end_time", &s.end_us)) {
        if (s.end_us < s.start_us)
            s.end_us = s.start_us; /* negative durations are not a thing */
    } else if (json_is_true(json_object_get(doc, "in_progress"))) {
        s.flags |= HT_SPAN_IN_PROGRESS;
        s.end_us = s.start_us;
    } else {
        xfail(x, HT_REJ_MISSING_FIELD, "%s",
              "neither \"end_time\" nor \"in_progress\": true");
        return;
    }
    s.name = dup_str(b, doc, "name");
    if (!s.name) {
        xfail(x, HT_REJ_MISSING_FIELD, "%s", "no \"name\"");
        return;
    }
    s.origin = dup_str(b, doc, "origin");
    if (json_is_true(json_object_get(doc, "error")))
        s.flags |= HT_SPAN_ERROR;
    if (json_is_true(json_object_get(doc, "fault")))
        s.flags |= HT_SPAN_FAULT;
    if (json_is_true(json_object_get(doc, "throttle")))
        s.flags |= HT_SPAN_THROTTLE;
    if (json_is_true(json_object_get(doc, "inferred")))
        s.flags |= HT_SPAN_INFERRED;
    http = json_object_get(doc, "http");
    if (json_is_object(http)) {
        json_t *req = json_object_get(http, "request");
        json_t *resp = json_object_get(http, "response");

        if (json_is_object(req)) {
            s.method = dup_str(b, req, "method");
            s.url = dup_str(b, req, "url");
        }
        if (json_is_object(resp) &&
            json_is_integer(v = json_object_get(resp, "status")))
            s.http_status = (uint16_t)json_integer_value(v);
    }
    fill_aws(x, doc, &s);
    s.corr = annotation_corr(b, json_object_get(doc, "annotations"));
    v = json_object_get(doc, "metadata");
    if (json_is_object(v) && json_is_object(v = json_object_get(v, "default")))
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
    else if (strcmp(s.name, "Initialization") == 0 &&
             !json_object_get(doc, "namespace"))
        s.kind = HT_SK_INIT;
    else if ((str = jstr(doc, "namespace")) &&
             (strcmp(str, "aws") == 0 || strcmp(str, "remote") == 0))
        s.kind = HT_SK_CALL;
    else if (json_object_get(doc, "sql") || (s.method && s.url))
        s.kind = HT_SK_CALL;
    else
        s.kind = HT_SK_LOCAL;
    if (s.kind == HT_SK_LAMBDA && !s.resource)
        s.resource = s.name;

    v = json_object_get(doc, "links");
    if (json_is_array(v) && json_array_size(v) > 0) {
        size_t nl = json_array_size(v);

        if (nl > 100)
            nl = 100;
        s.links = ht_arena_alloc(b->arena, nl * sizeof(*s.links));
        for (i = 0; i < nl; i++) {
            json_t *l = json_array_get(v, i);
            json_t *lt = json_object_get(l, "trace_id");
            json_t *li = json_object_get(l, "id");
            struct ht_link *dst = &s.links[s.nlinks];

            if (!json_is_string(li) ||
                !ht_id8_parse(json_string_value(li), json_string_length(li),
                              &dst->id))
                continue;
            memset(&dst->trace, 0, sizeof(dst->trace));
            if (json_is_string(lt))
                ht_tid_parse(json_string_value(lt), json_string_length(lt),
                             &dst->trace);
            s.nlinks++;
        }
    }
    ht_batch_add_span(b, &s);

    subs = json_object_get(doc, "subsegments");
    if (json_is_array(subs)) {
        struct ht_id8 me = s.id;
        struct ht_tid tr = s.trace;

        if (depth > HT_MAX_DEPTH) {
            xfail(x, HT_REJ_TOO_DEEP, "%s", "subsegments nested too deep");
            return;
        }
        for (i = 0; i < json_array_size(subs); i++)
            decode_span(x, json_array_get(subs, i), &tr, &me, depth + 1);
    }
}

static void decode_xray(struct ht_batch *b, const struct ht_srcpos *pos,
                        json_t *doc, const char *raw, size_t rawlen)
{
    struct xray_ctx x = {.b = b, .pos = pos, .reason = -1};
    size_t mark = b->nspans;
    char sample[HT_MAX_DLQ_SAMPLE];

    if (!raw) {
        /* an element of an array: measure it, and keep its first bytes as
         * the sample (json_dumpb returns the full size, writes at most
         * sizeof(sample)) */
        rawlen = json_dumpb(doc, sample, sizeof(sample), JSON_COMPACT);
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
                            json_t *str, int level)
{
    if (!json_is_string(str)) {
        ht_batch_reject(b, HT_REJ_MISSING_FIELD, pos,
                        "embedded document is not a JSON string", NULL, 0);
        return;
    }
    decode_bytes(b, pos, json_string_value(str), json_string_length(str),
                 level + 1);
}

/* ---- log envelopes ------------------------------------------------------ */

/* Epoch milliseconds (number or string) to microseconds; 0 when absent or
 * out of any plausible range. */
static int64_t ms_value(json_t *v)
{
    double ms = 0;

    if (json_is_number(v))
        ms = json_number_value(v);
    else if (json_is_string(v))
        ms = strtod(json_string_value(v), NULL);
    if (!(ms > 0 && ms < 1e14))
        return 0;
    return (int64_t)(ms * 1000.0);
}

static void decode_log_events(struct ht_batch *b, const struct ht_srcpos *pos,
                              json_t *events, const char *group)
{
    struct ht_logctx ctx = {.log_group = group, .pos = pos};
    size_t i;

    if (group && strncmp(group, "/aws/lambda/", 12) == 0 && group[12])
        ctx.function = ht_arena_strdup(b->arena, group + 12);
    for (i = 0; i < json_array_size(events); i++) {
        json_t *e = json_array_get(events, i);
        json_t *msg = json_object_get(e, "message");

        b->log_events++;
        if (!json_is_string(msg)) {
            ht_batch_reject(b, HT_REJ_MISSING_FIELD, pos,
                            "log event without a \"message\" string", NULL, 0);
            continue;
        }
        if (json_string_length(msg) > HT_MAX_LOG_EVENT_BYTES) {
            ht_batch_reject(b, HT_REJ_TOO_LARGE, pos,
                            "log event larger than 256 KiB",
                            json_string_value(msg), json_string_length(msg));
            continue;
        }
        ctx.ts_us = ms_value(json_object_get(e, "timestamp"));
        ctx.log_stream = jstr(e, "logStreamName");
        if (!ctx.function && jstr(e, "logGroupName")) {
            const char *g = jstr(e, "logGroupName");

            if (strncmp(g, "/aws/lambda/", 12) == 0 && g[12])
                ctx.function = ht_arena_strdup(b->arena, g + 12);
        }
        ht_ingest_log_message(b, &ctx, json_string_value(msg),
                              json_string_length(msg));
        b->documents++;
    }
}

/* A base64 blob (Kinesis Data, awslogs.data, Firehose data): decode and
 * sniff what it holds. */
static void decode_blob(struct ht_batch *b, const struct ht_srcpos *pos,
                        json_t *data, int level, const char *what,
                        bool must_gzip)
{
    uint8_t *raw;
    long n;
    char detail[96];

    if (!json_is_string(data)) {
        snprintf(detail, sizeof(detail), "%s is missing or not a string", what);
        ht_batch_reject(b, HT_REJ_MISSING_FIELD, pos, detail, NULL, 0);
        return;
    }
    raw = malloc(json_string_length(data) / 4 * 3 + 4);
    if (!raw)
        abort();
    n = ht_base64_decode(json_string_value(data), json_string_length(data),
                         raw);
    if (n < 0) {
        snprintf(detail, sizeof(detail), "%s is not valid base64", what);
        ht_batch_reject(b, HT_REJ_BAD_ENCODING, pos, detail,
                        json_string_value(data), json_string_length(data));
    } else if (must_gzip && !(n >= 2 && raw[0] == 0x1f && raw[1] == 0x8b)) {
        snprintf(detail, sizeof(detail), "%s is not gzip data", what);
        ht_batch_reject(b, HT_REJ_BAD_ENCODING, pos, detail, NULL, 0);
    } else {
        decode_bytes(b, pos, raw, (size_t)n, level + 1);
    }
    free(raw);
}

static void decode_records(struct ht_batch *b, const struct ht_srcpos *pos,
                           json_t *recs, int level, const char *raw,
                           size_t rawlen)
{
    size_t i;

    for (i = 0; i < json_array_size(recs); i++) {
        json_t *r = json_array_get(recs, i);
        json_t *k = json_object_get(r, "kinesis");

        if (json_is_object(k))
            decode_blob(b, pos, json_object_get(k, "data"), level,
                        "Records[].kinesis.data", false);
        else if (json_object_get(r, "Data"))
            decode_blob(b, pos, json_object_get(r, "Data"), level,
                        "Records[].Data", false);
        else if (json_object_get(r, "data"))
            decode_blob(b, pos, json_object_get(r, "data"), level,
                        "records[].data", false);
        else
            ht_batch_reject(b, HT_REJ_UNKNOWN_DOC, pos,
                            "record without Kinesis data", raw, rawlen);
    }
}

/* Reject a value; an array element has no bytes of its own, so its sample
 * is rendered from the tree (first bytes only). */
static void reject_value(struct ht_batch *b, int reason,
                         const struct ht_srcpos *pos, const char *detail,
                         json_t *v, const char *raw, size_t rawlen)
{
    char sample[HT_MAX_DLQ_SAMPLE];

    if (!raw) {
        size_t n = json_dumpb(v, sample, sizeof(sample),
                              JSON_COMPACT | JSON_ENCODE_ANY);

        raw = sample;
        rawlen = n < sizeof(sample) ? n : sizeof(sample);
    }
    ht_batch_reject(b, reason, pos, detail, raw, rawlen);
}

static bool is_daemon_header(json_t *v)
{
    const char *fmt = jstr(v, "format");

    return fmt && json_object_size(v) <= 3 && json_object_get(v, "version") &&
           strcasecmp(fmt, "json") == 0;
}

static void decode_value(struct ht_batch *b, const struct ht_srcpos *pos,
                         json_t *v, const char *raw, size_t rawlen, int level)
{
    json_t *x;
    const char *mt;

    if (json_is_array(v)) {
        /* an array of documents; an element's bytes are rendered only when
         * it must be measured or kept as a dead letter */
        if (level > 0 && raw == NULL) {
            ht_batch_reject(b, HT_REJ_UNKNOWN_DOC, pos,
                            "an array inside an array of documents", NULL, 0);
            return;
        }
        for (size_t i = 0; i < json_array_size(v); i++)
            decode_value(b, pos, json_array_get(v, i), NULL, 0, level + 1);
        return;
    }
    if (!json_is_object(v)) {
        reject_value(b, HT_REJ_UNKNOWN_DOC, pos,
                     "a JSON value that is not a document", v, raw, rawlen);
        return;
    }
    if (json_object_get(v, "trace_id") ||
        (json_object_get(v, "id") && json_object_get(v, "start_time"))) {
        decode_xray(b, pos, v, raw, rawlen);
        return;
    }
    if (is_daemon_header(v))
        return; /* the daemon header line; the document follows */
    if (level > MAX_RECURSION) {
        reject_value(b, HT_REJ_TOO_DEEP, pos, "envelopes nested too deep", v,
                     raw, rawlen);
        return;
    }
    if (json_is_array(x = json_object_get(v, "TraceSegmentDocuments"))) {
        for (size_t i = 0; i < json_array_size(x); i++)
            decode_embedded(b, pos, json_array_get(x, i), level);
        return;
    }
    if (json_is_array(x = json_object_get(v, "Traces"))) {
        for (size_t i = 0; i < json_array_size(x); i++) {
            json_t *segs = json_object_get(json_array_get(x, i), "Segments");

            for (size_t j = 0; j < json_array_size(segs); j++)
                decode_embedded(
                    b, pos,
                    json_object_get(json_array_get(segs, j), "Document"),
                    level);
        }
        return;
    }
    if ((mt = jstr(v, "messageType"))) {
        if (strcmp(mt, "CONTROL_MESSAGE") == 0) {
            b->dropped++;
            return;
        }
        if (strcmp(mt, "DATA_MESSAGE") != 0 ||
            !json_is_array(x = json_object_get(v, "logEvents"))) {
            reject_value(b, HT_REJ_MISSING_FIELD, pos,
                         "CloudWatch Logs message without logEvents", v, raw,
                         rawlen);
            return;
        }
        decode_log_events(b, pos, x, jstr(v, "logGroup"));
        return;
    }
    if (json_is_object(x = json_object_get(v, "awslogs"))) {
        decode_blob(b, pos, json_object_get(x, "data"), level, "awslogs.data",
                    true);
        return;
    }
    if (json_is_array(x = json_object_get(v, "events")) &&
        (json_array_size(x) == 0 ||
         json_object_get(json_array_get(x, 0), "message"))) {
        decode_log_events(b, pos, x, jstr(v, "logGroupName"));
        return;
    }
    if ((json_is_array(x = json_object_get(v, "Records")) ||
         json_is_array(x = json_object_get(v, "records"))) &&
        json_array_size(x) > 0) {
        json_t *r0 = json_array_get(x, 0);

        if (json_object_get(r0, "kinesis") || json_object_get(r0, "Data") ||
            json_object_get(r0, "data")) {
            decode_records(b, pos, x, level, raw, rawlen);
            return;
        }
    }
    if (json_is_array(json_object_get(v, "Records")) &&
        json_array_size(json_object_get(v, "Records")) == 0) {
        return; /* an empty GetRecords response */
    }
    reject_value(b, HT_REJ_UNKNOWN_DOC, pos, "JSON document of no known kind",
                 v, raw, rawlen);
}

/* One JSON value's bytes: parse, decode, release the tree. */
static void decode_json(struct ht_batch *b, const struct ht_srcpos *pos,
                        const char *p, size_t n, int depth, int level)
{
    json_error_t err;
    json_t *v;

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
    v = json_loadb(p, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!v) {
        char detail[200];

        snprintf(detail, sizeof(detail), "not JSON: %s", err.text);
        ht_batch_reject(b, HT_REJ_NOT_JSON, pos, detail, p, n);
        return;
    }
    decode_value(b, pos, v, p, n, level);
    json_decref(v);
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
    while (i < n) {
        size_t len = 0;
        int depth;
        enum ht__scan_rc rc;

        i += ht__skip_ws(p + i, n - i);
        if (i >= n)
            break;
        rc = ht__scan_value(p + i, n - i, true, &len, &depth);
        if (rc != HT__SCAN_VALUE) {
            const char *nl = memchr(p + i, '\n', n - i);

            len = nl ? (size_t)(nl - (p + i)) : n - i;
            ht_batch_reject(b, HT_REJ_NOT_JSON, pos,
                            "not JSON: unbalanced or truncated value", p + i,
                            len);
        } else {
            decode_json(b, pos, p + i, len, depth, level);
        }
        i += len;
    }
}

void ht_ingest_payload(struct ht_batch *b, const struct ht_srcpos *pos,
                       const void *data, size_t n)
{
    b->payload_bytes += n;
    decode_bytes(b, pos, data, n, 0);
}

void ht_ingest_value(struct ht_batch *b, const struct ht_srcpos *pos,
                     const char *val, size_t n, int depth)
{
    if (depth < 0) {
        ht_ingest_payload(b, pos, val, n);
        return;
    }
    b->payload_bytes += n;
    decode_json(b, pos, val, n, depth, 0);
}
