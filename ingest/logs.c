/*
 * logs.c - decodes one CloudWatch Logs event message into invocation facts
 * (struct ht_fact): Lambda platform text lines (START/END/REPORT), the
 * Lambda JSON log format (platform.start, platform.report), runtime text
 * lines whose message is JSON, Powertools-style structured JSON, API
 * Gateway access logs, and logged Lambda events (SQS, Kinesis and DynamoDB
 * Streams records, API Gateway proxy requests).
 *
 * Owned by ingest/. It must not reject or count anything: a line it does
 * not recognise is a legitimate log and is ignored. The message is not
 * NUL-terminated and may be anything; no jansson value outlives a call and
 * every string put in a fact is copied into the batch arena.
 */
#include "hjson.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ht_ingest.h"
#include "ingest_int.h"

#define TAG "logs"
#define MAX_TEXT_FIELDS 64          /* REPORT `Key: value` fields looked at */
#define MAX_RID_LEN 128             /* longer "request ids" are not ids */
#define MAX_KINESIS_DATA (1u << 20) /* a Kinesis record is at most 1 MiB */

/* What one line says about its invocation, shared by the facts it yields. */
struct line {
    struct ht_batch *b;
    const char *fn_src; /* function name, not yet copied */
    const char *fn;     /* function name in the arena */
    const char *rid;    /* request id in the arena */
    int64_t ts_us;
    uint16_t cold; /* HT_FACT_COLD, HT_FACT_WARM or 0 */
    bool has_trace;
    struct ht_tid trace;
};

static const struct ht_logctx no_ctx;

static const char *const corr_keys[] = {"correlation_id", "correlationId",
                                        "x-correlation-id"};
#define NCORR_KEYS (sizeof corr_keys / sizeof corr_keys[0])

/* ---- small text helpers ------------------------------------------------ */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' ||
           c == '\v';
}

static const char *skip_space(const char *p, const char *end)
{
    while (p < end && is_space(*p))
        p++;
    return p;
}

static void trim(const char **p, const char **end)
{
    *p = skip_space(*p, *end);
    while (*end > *p && is_space((*end)[-1]))
        (*end)--;
}

/* The length of the token at p: up to the first blank. */
static size_t token_len(const char *p, const char *end)
{
    const char *q = p;

    while (q < end && !is_space(*q))
        q++;
    return (size_t)(q - p);
}

static bool span_is(const char *p, size_t n, const char *lit)
{
    size_t l = strlen(lit);

    return n == l && memcmp(p, lit, l) == 0;
}

/* p[0..) starts with the word `w` followed by a blank. */
static bool starts_word(const char *p, const char *end, const char *w)
{
    size_t l = strlen(w);

    return (size_t)(end - p) > l && memcmp(p, w, l) == 0 && is_space(p[l]);
}

/*
 * Parse the decimal number at the start of s[0..n) (after blanks) and
 * return it times 10^scale, rounded half away from zero. Parsing stops at
 * the first byte that cannot continue the number ("44.21 ms" is fine). No
 * exponents; locale independent.
 */
static bool parse_scaled(const char *s, size_t n, int scale, int64_t *out)
{
    size_t i = 0;
    int64_t v = 0;
    int ndig = 0, frac = 0;
    bool neg = false, round_up = false, seen_extra = false;

    while (i < n && is_space(s[i]))
        i++;
    if (i < n && (s[i] == '-' || s[i] == '+'))
        neg = s[i++] == '-';
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, ndig++) {
        if (v > (INT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (i < n && s[i] == '.') {
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, ndig++) {
            if (frac < scale) {
                if (v > (INT64_MAX - 9) / 10)
                    return false;
                v = v * 10 + (s[i] - '0');
                frac++;
            } else if (!seen_extra) {
                round_up = s[i] >= '5';
                seen_extra = true;
            }
        }
    }
    if (ndig == 0)
        return false;
    for (; frac < scale; frac++) {
        if (v > INT64_MAX / 10)
            return false;
        v *= 10;
    }
    if (round_up) {
        if (v == INT64_MAX)
            return false;
        v++;
    }
    *out = neg ? -v : v;
    return true;
}

/* ---- JSON accessors (all safe on absent values) ------------------------ */

/* A non-empty string member, or NULL. */
static const char *jstr(hj o, const char *key)
{
    const char *s = hj_str(hj_get(o, key));

    return s && *s ? s : NULL;
}

/* Like jstr, but "-" (API Gateway's missing value) is NULL too. */
static const char *jstr_acc(hj o, const char *key)
{
    const char *s = jstr(o, key);

    return s && strcmp(s, "-") == 0 ? NULL : s;
}

static hj jobj(hj o, const char *key)
{
    hj v = hj_get(o, key);

    return hj_is_object(v) ? v : HJ_NONE;
}

/* A number (integer, real or numeric string) times 10^scale, rounded. */
static bool jnum_scaled(hj v, int scale, int64_t *out)
{
    static const double p10[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6};

    if (!hj_ok(v) || scale < 0 || scale > 6)
        return false;
    if (hj_is_integer(v)) {
        int64_t x = hj_int(v);

        if (hj_type(v) == HJ_UINT)
            return false;
        for (int i = 0; i < scale; i++) {
            if (x > INT64_MAX / 10 || x < INT64_MIN / 10)
                return false;
            x *= 10;
        }
        *out = (int64_t)x;
        return true;
    }
    if (hj_type(v) == HJ_REAL) {
        double x = hj_num(v) * p10[scale];

        if (!isfinite(x) || x > 9.2e18 || x < -9.2e18)
            return false;
        *out = (int64_t)(x < 0 ? x - 0.5 : x + 0.5);
        return true;
    }
    if (hj_is_string(v))
        return parse_scaled(hj_str(v), hj_strlen(v), scale, out);
    return false;
}

static bool jmember_scaled(hj o, const char *key, int scale, int64_t *out)
{
    return hj_is_object(o) && jnum_scaled(hj_get(o, key), scale, out);
}

/* Parse s[0..n) as one JSON object with the parser of `slot` (ingest_int.h);
 * valid until that slot parses again. Absent when it is not one. */
static hj parse_object(struct ht_batch *b, int slot, const char *s, size_t n)
{
    const char *end = s + n, *p = skip_space(s, end);
    char err[160];
    hj j;

    /* the parser refuses more than HT_MAX_DEPTH (+2) levels itself */
    if (p == end || *p != '{')
        return HJ_NONE;
    if (hj_parse(ht__parser(b, slot), p, (size_t)(end - p), false, &j, err,
                 sizeof(err)) != 0 ||
        !hj_is_object(j))
        return HJ_NONE;
    return j;
}

/* ---- facts ----------------------------------------------------------- */

static const char *dup(struct ht_batch *b, const char *s)
{
    return s ? ht_arena_strdup(b->arena, s) : NULL;
}

static const char *line_fn(struct line *L)
{
    if (!L->fn && L->fn_src)
        L->fn = dup(L->b, L->fn_src);
    return L->fn;
}

static void fact_init(struct ht_fact *f, struct line *L, int kind)
{
    memset(f, 0, sizeof *f);
    f->kind = (uint8_t)kind;
    f->request_id = L->rid;
    f->function = line_fn(L);
    f->ts_us = L->ts_us;
}

static bool trace_from_str(const char *s, struct ht_tid *out)
{
    struct ht_id8 parent;
    bool has_parent;

    if (!s)
        return false;
    if (ht_tid_parse(s, strlen(s), out))
        return true;
    return strstr(s, "Root=") &&
           ht_parse_trace_header(s, out, &parent, &has_parent);
}

/* The correlation id at the top level of o (borrowed from o), or NULL. */
static const char *corr_top(hj o)
{
    for (size_t i = 0; i < NCORR_KEYS; i++) {
        const char *s = jstr(o, corr_keys[i]);

        if (s)
            return s;
    }
    return NULL;
}

/* Top level, then one level deep ({"detail":{"correlation_id":…}}). */
static const char *corr_deep(hj o)
{
    const char *s = corr_top(o);
    struct hj_iter it;
    hj v;

    if (s || !hj_is_object(o))
        return s;
    hj_iter_init(&it, o);
    while (hj_iter_next(&it, &v, NULL, NULL))
        if (hj_is_object(v) && (s = corr_top(v)) != NULL)
            return s;
    return NULL;
}

/*
 * The correlation id in a record payload s[0..n) that may be a JSON object
 * (or an SNS envelope whose Message is one). Arena copy or NULL.
 */
static const char *payload_corr(struct ht_batch *b, const char *s, size_t n,
                                bool sns)
{
    /* an SNS envelope's Message is parsed while the envelope is read */
    hj j = parse_object(b, sns ? HT__JSLOT_RECORD : HT__JSLOT_SNS, s, n), msg;
    const char *c, *out = NULL;

    if (!hj_ok(j))
        return NULL;
    c = corr_top(j);
    if (c) {
        out = dup(b, c);
    } else if (sns && hj_is_string(msg = hj_get(j, "Message"))) {
        out = payload_corr(b, hj_str(msg), hj_strlen(msg), false);
    }
    if (!out && (c = corr_deep(j)) != NULL)
        out = dup(b, c);
    return out;
}

/* ---- platform text lines ---------------------------------------------- */

/*
 * START/END/REPORT: `Key: value` fields separated by tabs and newlines, in
 * any order. p points just past the keyword.
 */
static void platform_text(struct line *L, int kind, const char *p,
                          const char *end)
{
    struct ht_fact f;
    const char *rid = NULL;
    size_t ridn = 0;
    int64_t v;
    bool init = false, failed = false;
    uint16_t flags = 0;
    struct ht_tid trace;
    struct ht_id8 seg;

    fact_init(&f, L, kind);
    for (int nf = 0; p < end && nf < MAX_TEXT_FIELDS; nf++) {
        const char *fe = p, *colon, *k, *ke, *val, *ve;

        while (fe < end && *fe != '\t' && *fe != '\n' && *fe != '\r')
            fe++;
        colon = memchr(p, ':', (size_t)(fe - p));
        if (colon) {
            k = p, ke = colon, val = colon + 1, ve = fe;
            trim(&k, &ke);
            trim(&val, &ve);
            size_t kn = (size_t)(ke - k), vn = (size_t)(ve - val);
            size_t tn = token_len(val, ve);

            if (span_is(k, kn, "RequestId")) {
                rid = val, ridn = tn;
            } else if (kind != HT_FACT_REPORT) {
                /* START/END carry nothing else we use */
            } else if (span_is(k, kn, "Duration")) {
                if (parse_scaled(val, vn, 3, &v))
                    f.duration_us = v;
            } else if (span_is(k, kn, "Billed Duration")) {
                if (parse_scaled(val, vn, 0, &v))
                    f.billed_ms = v;
            } else if (span_is(k, kn, "Memory Size")) {
                if (parse_scaled(val, vn, 0, &v))
                    f.memory_mb = v;
            } else if (span_is(k, kn, "Max Memory Used")) {
                if (parse_scaled(val, vn, 0, &v))
                    f.max_memory_mb = v;
            } else if (span_is(k, kn, "Init Duration")) {
                if (parse_scaled(val, vn, 3, &v)) {
                    f.init_us = v;
                    init = true;
                }
            } else if (span_is(k, kn, "XRAY TraceId")) {
                if (ht_tid_parse(val, tn, &trace)) {
                    f.trace = trace;
                    flags |= HT_FACT_HAS_TRACE;
                }
            } else if (span_is(k, kn, "SegmentId")) {
                if (ht_id8_parse(val, tn, &seg)) {
                    f.segment = seg;
                    flags |= HT_FACT_HAS_SEGMENT;
                }
            } else if (span_is(k, kn, "Status")) {
                failed = !span_is(val, tn, "success");
            }
        }
        p = fe < end ? fe + 1 : end;
    }
    if (!rid || ridn == 0 || ridn > MAX_RID_LEN)
        return;
    f.request_id = ht_arena_strndup(L->b->arena, rid, ridn);
    if (kind == HT_FACT_REPORT) {
        flags |= init ? HT_FACT_COLD : HT_FACT_WARM;
        if (failed)
            flags |= HT_FACT_FAILED;
    }
    f.flags = flags;
    ht_batch_add_fact(L->b, &f);
}

/* ---- JSON log format: platform.* events ------------------------------- */

static void platform_json(struct line *L, hj o, const char *type)
{
    hj rec = jobj(o, "record"), tr, m;
    const char *rid = jstr(rec, "requestId"), *time = jstr(o, "time");
    const char *status, *hdr;
    struct ht_fact f;
    struct ht_id8 parent;
    bool has_parent;
    int kind;
    int64_t v;

    if (strcmp(type, "platform.start") == 0)
        kind = HT_FACT_START;
    else if (strcmp(type, "platform.report") == 0)
        kind = HT_FACT_REPORT;
    else
        return;
    if (!rid || strlen(rid) > MAX_RID_LEN)
        return;
    L->rid = dup(L->b, rid);
    fact_init(&f, L, kind);
    if (time && ht_parse_iso8601(time, &v))
        f.ts_us = v;
    tr = jobj(rec, "tracing");
    hdr = jstr(tr, "value");
    if (hdr && ht_parse_trace_header(hdr, &f.trace, &parent, &has_parent))
        f.flags |= HT_FACT_HAS_TRACE;
    else
        memset(&f.trace, 0, sizeof f.trace);
    if (kind == HT_FACT_REPORT) {
        m = jobj(rec, "metrics");
        if (jmember_scaled(m, "durationMs", 3, &v))
            f.duration_us = v;
        if (jmember_scaled(m, "billedDurationMs", 0, &v))
            f.billed_ms = v;
        if (jmember_scaled(m, "memorySizeMB", 0, &v))
            f.memory_mb = v;
        if (jmember_scaled(m, "maxMemoryUsedMB", 0, &v))
            f.max_memory_mb = v;
        if (jmember_scaled(m, "initDurationMs", 3, &v)) {
            f.init_us = v;
            f.flags |= HT_FACT_COLD;
        } else {
            f.flags |= HT_FACT_WARM;
        }
        status = jstr(rec, "status");
        if (status && strcmp(status, "success") != 0)
            f.flags |= HT_FACT_FAILED;
    }
    ht_batch_add_fact(L->b, &f);
}

/* ---- API Gateway access logs ------------------------------------------ */

static const char *const access_keys[] = {
    "extendedRequestId",     "xrayTraceId",          "integrationLatency",
    "integration.requestId", "integrationRequestId", "awsEndpointRequestId",
    "requestTimeEpoch"};

static bool is_access_log(hj o)
{
    if (!jstr(o, "requestId") || hj_ok(hj_get(o, "function_request_id")) ||
        hj_ok(hj_get(o, "lambda_request_id")) ||
        (hj_ok(hj_get(o, "level")) && hj_ok(hj_get(o, "message"))))
        return false;
    for (size_t i = 0; i < sizeof access_keys / sizeof access_keys[0]; i++)
        if (hj_ok(hj_get(o, access_keys[i])))
            return true;
    return false;
}

static void access_log(struct line *L, hj o)
{
    struct ht_batch *b = L->b;
    const char *id = jstr_acc(o, "requestId"), *rid, *method, *path;
    struct ht_fact f;
    int64_t v;

    if (!id)
        return;
    rid = jstr_acc(o, "integrationRequestId");
    if (!rid)
        rid = jstr_acc(o, "integration.requestId");
    if (!rid)
        rid = jstr_acc(o, "awsEndpointRequestId");
    L->rid = rid && strlen(rid) <= MAX_RID_LEN ? dup(b, rid) : NULL;
    fact_init(&f, L, HT_FACT_APIGW);
    f.apigw_id = dup(b, id);
    f.ext_id = dup(b, jstr_acc(o, "extendedRequestId"));
    f.api_id = dup(b, jstr_acc(o, "apiId"));
    f.stage = dup(b, jstr_acc(o, "stage"));
    if (trace_from_str(jstr_acc(o, "xrayTraceId"), &f.trace))
        f.flags |= HT_FACT_HAS_TRACE;
    else
        memset(&f.trace, 0, sizeof f.trace);
    if (jmember_scaled(o, "requestTimeEpoch", 3, &v))
        f.sent_us = v;
    if (f.ts_us == 0)
        f.ts_us = f.sent_us;
    method = jstr_acc(o, "httpMethod");
    path = jstr_acc(o, "resourcePath");
    if (!path) {
        path = jstr_acc(o, "routeKey");
        /* an HTTP API route key is already "METHOD /path" */
        if (path && strchr(path, ' '))
            method = NULL;
    }
    if (method && path)
        f.route = ht_arena_printf(b->arena, "%s %s", method, path);
    else if (path && strchr(path, ' '))
        f.route = dup(b, path);
    ht_batch_add_fact(b, &f);
}

/* ---- logged Lambda events --------------------------------------------- */

static void body_upstream(struct ht_batch *b, const char *s, size_t n,
                          struct ht_fact *f);

static void sqs_record(struct line *L, hj r)
{
    struct ht_batch *b = L->b;
    const char *arn = jstr(r, "eventSourceARN"), *hdr, *colon;
    hj attrs = jobj(r, "attributes"), body;
    struct ht_fact f;
    bool has_parent = false;
    int64_t v;

    fact_init(&f, L, HT_FACT_RECORD);
    f.via = HT_VIA_SQS;
    if (arn && (colon = strrchr(arn, ':')) != NULL && colon[1])
        f.resource = dup(b, colon + 1);
    f.record_id = dup(b, jstr(r, "messageId"));
    hdr = jstr(attrs, "AWSTraceHeader");
    if (hdr &&
        ht_parse_trace_header(hdr, &f.hdr_root, &f.hdr_parent, &has_parent) &&
        has_parent) {
        f.flags |= HT_FACT_HAS_HDR;
    } else {
        memset(&f.hdr_root, 0, sizeof f.hdr_root);
        memset(&f.hdr_parent, 0, sizeof f.hdr_parent);
    }
    if (jmember_scaled(attrs, "SentTimestamp", 3, &v))
        f.sent_us = v;
    body = hj_get(r, "body");
    if (hj_is_string(body)) {
        body_upstream(b, hj_str(body), hj_strlen(body), &f);
        f.corr = payload_corr(b, hj_str(body), hj_strlen(body), true);
    }
    ht_batch_add_fact(b, &f);
}

/* ---- SNS and EventBridge deliveries ------------------------------------ */

/* The topic's name from its ARN (arn:aws:sns:REGION:ACCOUNT:NAME). */
static const char *topic_name(struct ht_batch *b, const char *arn)
{
    const char *colon = arn ? strrchr(arn, ':') : NULL;

    return colon && colon[1] ? dup(b, colon + 1) : dup(b, arn);
}

/* An ISO 8601 member (SNS Timestamp, EventBridge time), or 0. */
static int64_t jtime(hj o, const char *key)
{
    const char *s = jstr(o, key);
    int64_t t;

    return s && ht_parse_iso8601(s, &t) ? t : 0;
}

/* An EventBridge event: what a rule's target receives (its `id` is the
 * EventId the PutEvents response returned). */
static bool is_eventbridge_event(hj o)
{
    return hj_is_object(o) && jstr(o, "id") && jstr(o, "detail-type") &&
           jstr(o, "source") && hj_ok(hj_get(o, "detail"));
}

/*
 * An SQS body that SNS or EventBridge put there: an SNS notification
 * envelope (raw message delivery off: "Type": "Notification", "MessageId",
 * "TopicArn", "Timestamp") or an EventBridge event (a rule with an SQS
 * target). Fills f's up_* fields; the body is parsed in the record slot,
 * which payload_corr parses again afterwards.
 */
static void body_upstream(struct ht_batch *b, const char *s, size_t n,
                          struct ht_fact *f)
{
    hj j = parse_object(b, HT__JSLOT_RECORD, s, n);
    const char *type = jstr(j, "Type");

    if (!hj_ok(j))
        return;
    if (type && strcmp(type, "Notification") == 0 && jstr(j, "MessageId") &&
        jstr(j, "TopicArn")) {
        f->up_via = HT_VIA_SNS;
        f->up_id = dup(b, jstr(j, "MessageId"));
        f->up_resource = topic_name(b, jstr(j, "TopicArn"));
        f->up_sent_us = jtime(j, "Timestamp");
    } else if (is_eventbridge_event(j)) {
        f->up_via = HT_VIA_EVENTBRIDGE;
        f->up_id = dup(b, jstr(j, "id"));
        f->up_sent_us = jtime(j, "time");
    }
}

/* One record of an SNS subscription's Lambda event
 * (Records[].EventSource "aws:sns", the notification under "Sns"). */
static void sns_record(struct line *L, hj r)
{
    struct ht_batch *b = L->b;
    hj sns = jobj(r, "Sns"), msg;
    struct ht_fact f;

    if (!jstr(sns, "MessageId"))
        return;
    fact_init(&f, L, HT_FACT_RECORD);
    f.via = HT_VIA_SNS;
    f.record_id = dup(b, jstr(sns, "MessageId"));
    f.resource = topic_name(b, jstr(sns, "TopicArn"));
    f.sent_us = jtime(sns, "Timestamp");
    msg = hj_get(sns, "Message");
    if (hj_is_string(msg))
        f.corr = payload_corr(b, hj_str(msg), hj_strlen(msg), false);
    ht_batch_add_fact(b, &f);
}

/* The event a rule's target (a Lambda function) received: its id is the
 * record id; the bus is not in the event (the producer's PutEvents names
 * it). The correlation id may be in `detail`. */
static void eventbridge_event(struct line *L, hj ev)
{
    struct ht_batch *b = L->b;
    struct ht_fact f;
    const char *c;

    fact_init(&f, L, HT_FACT_RECORD);
    f.via = HT_VIA_EVENTBRIDGE;
    f.record_id = dup(b, jstr(ev, "id"));
    f.sent_us = jtime(ev, "time");
    c = corr_top(jobj(ev, "detail"));
    if (!c)
        c = corr_deep(jobj(ev, "detail"));
    f.corr = dup(b, c);
    ht_batch_add_fact(b, &f);
}

/* Correlation id in a base64 (maybe gzip) Kinesis data blob. */
static const char *kinesis_corr(struct ht_batch *b, const char *data)
{
    size_t n = strlen(data);
    uint8_t *raw, *unz = NULL;
    size_t unz_len = 0;
    long len;
    const char *out = NULL;

    if (n == 0 || n > MAX_KINESIS_DATA / 3 * 4 + 4)
        return NULL;
    raw = malloc((n / 4 + 1) * 3);
    if (!raw)
        return NULL;
    len = ht_base64_decode(data, n, raw);
    if (len >= 2 && raw[0] == 0x1f && raw[1] == 0x8b) {
        if (ht_gunzip(raw, (size_t)len, MAX_KINESIS_DATA, &unz, &unz_len) == 0)
            out = payload_corr(b, (const char *)unz, unz_len, false);
        free(unz);
    } else if (len > 0) {
        out = payload_corr(b, (const char *)raw, (size_t)len, false);
    }
    free(raw);
    return out;
}

static void kinesis_record(struct line *L, hj r)
{
    struct ht_batch *b = L->b;
    const char *arn = jstr(r, "eventSourceARN"), *s, *data;
    hj k = jobj(r, "kinesis");
    struct ht_fact f;
    int64_t v;

    fact_init(&f, L, HT_FACT_RECORD);
    f.via = HT_VIA_KINESIS;
    if (arn && (s = strstr(arn, ":stream/")) != NULL && s[8])
        f.resource = dup(b, s + 8);
    f.record_id = dup(b, jstr(k, "sequenceNumber"));
    if (jmember_scaled(k, "approximateArrivalTimestamp", 6, &v))
        f.sent_us = v;
    data = jstr(k, "data");
    if (data)
        f.corr = kinesis_corr(b, data);
    ht_batch_add_fact(b, &f);
}

/* A correlation attribute of a DynamoDB image: {"correlation_id":{"S":…}}. */
static const char *ddb_corr(hj img)
{
    for (size_t i = 0; i < NCORR_KEYS; i++) {
        const char *s = jstr(jobj(img, corr_keys[i]), "S");

        if (s)
            return s;
    }
    return NULL;
}

static void dynamodb_record(struct line *L, hj r)
{
    struct ht_batch *b = L->b;
    const char *arn = jstr(r, "eventSourceARN"), *t, *e, *c;
    hj d = jobj(r, "dynamodb");
    struct ht_fact f;
    int64_t v;

    fact_init(&f, L, HT_FACT_RECORD);
    f.via = HT_VIA_DYNAMODB;
    if (arn && (t = strstr(arn, ":table/")) != NULL) {
        t += 7;
        e = strstr(t, "/stream");
        if (!e)
            e = t + strlen(t);
        if (e > t)
            f.resource = ht_arena_strndup(b->arena, t, (size_t)(e - t));
    }
    f.record_id = dup(b, jstr(d, "SequenceNumber"));
    if (jmember_scaled(d, "ApproximateCreationDateTime", 6, &v))
        f.sent_us = v;
    c = ddb_corr(jobj(d, "NewImage"));
    if (!c)
        c = ddb_corr(jobj(d, "OldImage"));
    if (!c)
        c = ddb_corr(jobj(d, "Keys"));
    f.corr = dup(b, c);
    ht_batch_add_fact(b, &f);
}

static void apigw_event(struct line *L, hj ev, hj rc)
{
    struct ht_batch *b = L->b;
    const char *rk = jstr(ev, "routeKey"), *method, *res, *key;
    hj hdrs = jobj(ev, "headers"), v;
    struct hj_iter it;
    struct ht_fact f;
    struct ht_id8 parent;
    bool has_parent;
    int64_t t;

    fact_init(&f, L, HT_FACT_APIGW);
    f.apigw_id = dup(b, jstr(rc, "requestId"));
    f.ext_id = dup(b, jstr(rc, "extendedRequestId"));
    f.api_id = dup(b, jstr(rc, "apiId"));
    f.stage = dup(b, jstr(rc, "stage"));
    if (rk) {
        f.route = dup(b, rk);
    } else {
        method = jstr(ev, "httpMethod");
        if (!method)
            method = jstr(rc, "httpMethod");
        res = jstr(ev, "resource");
        if (!res)
            res = jstr(rc, "resourcePath");
        if (method && res)
            f.route = ht_arena_printf(b->arena, "%s %s", method, res);
    }
    hj_iter_init(&it, hdrs);
    while (hj_iter_next(&it, &v, &key, NULL)) {
        if (strcasecmp(key, "x-amzn-trace-id") == 0 && hj_is_string(v)) {
            if (ht_parse_trace_header(hj_str(v), &f.trace, &parent,
                                      &has_parent))
                f.flags |= HT_FACT_HAS_TRACE;
            else
                memset(&f.trace, 0, sizeof f.trace);
            break;
        }
    }
    if (jmember_scaled(rc, "requestTimeEpoch", 3, &t) ||
        jmember_scaled(rc, "timeEpoch", 3, &t))
        f.sent_us = t;
    ht_batch_add_fact(b, &f);
}

/* If ev is a Lambda event we know, emit its facts and return true. */
static bool lambda_event(struct line *L, hj ev)
{
    hj recs, r, rc;
    size_t hits = 0;
    struct hj_iter it;

    if (!hj_is_object(ev))
        return false;
    recs = hj_get(ev, "Records");
    if (hj_is_array(recs)) {
        hj_iter_init(&it, recs);
        while (hj_iter_next(&it, &r, NULL, NULL)) {
            const char *src = jstr(r, "eventSource");

            if (!src && (src = jstr(r, "EventSource")) != NULL &&
                strcmp(src, "aws:sns") == 0) {
                sns_record(L, r); /* SNS spells it EventSource */
                hits++;
                continue;
            }
            if (!src)
                continue;
            if (strcmp(src, "aws:sqs") == 0)
                sqs_record(L, r);
            else if (strcmp(src, "aws:kinesis") == 0)
                kinesis_record(L, r);
            else if (strcmp(src, "aws:dynamodb") == 0)
                dynamodb_record(L, r);
            else
                continue;
            hits++;
        }
        return hits > 0;
    }
    if (is_eventbridge_event(ev)) {
        eventbridge_event(L, ev);
        return true;
    }
    rc = jobj(ev, "requestContext");
    if (hj_ok(rc) && jstr(rc, "requestId") &&
        (jstr(ev, "httpMethod") || jstr(ev, "resource") ||
         jstr(ev, "routeKey"))) {
        apigw_event(L, ev, rc);
        return true;
    }
    return false;
}

/* The event at the top level, under `event`, or as `message`. */
static void find_event(struct line *L, hj o)
{
    hj m, inner;

    if (lambda_event(L, o) || lambda_event(L, jobj(o, "event")))
        return;
    m = hj_get(o, "message");
    if (hj_is_object(m)) {
        lambda_event(L, m);
    } else if (hj_is_string(m)) {
        inner = parse_object(L->b, HT__JSLOT_INNER, hj_str(m), hj_strlen(m));
        if (hj_ok(inner))
            lambda_event(L, inner);
    }
}

/* ---- structured application logs -------------------------------------- */

static const char *const rid_keys[] = {
    "function_request_id", "lambda_request_id", "requestId",
    "request_id",          "AWSRequestId",      "awsRequestId"};

static void app_json(struct line *L, hj o)
{
    struct ht_batch *b = L->b;
    const char *s, *corr;
    hj cold;
    struct ht_fact f;
    int64_t t;

    for (size_t i = 0; i < sizeof rid_keys / sizeof rid_keys[0]; i++) {
        s = jstr(o, rid_keys[i]);
        if (s && strlen(s) <= MAX_RID_LEN) {
            L->rid = dup(b, s);
            break;
        }
    }
    s = jstr(o, "function_name");
    if (!s)
        s = jstr(o, "lambda_function_name");
    if (s) {
        L->fn_src = s;
        L->fn = NULL;
    }
    if (trace_from_str(jstr(o, "xray_trace_id"), &L->trace) ||
        trace_from_str(jstr(o, "lambda_xray_trace_id"), &L->trace) ||
        ((s = jstr(o, "traceId")) != NULL &&
         ht_tid_parse(s, strlen(s), &L->trace)))
        L->has_trace = true;
    else
        memset(&L->trace, 0, sizeof L->trace);
    cold = hj_get(o, "cold_start");
    if (!hj_ok(cold))
        cold = hj_get(o, "lambda_cold_start");
    if (hj_is_true(cold) ||
        (hj_is_string(cold) && strcmp(hj_str(cold), "true") == 0))
        L->cold = HT_FACT_COLD;
    else if (hj_is_false(cold) ||
             (hj_is_string(cold) && strcmp(hj_str(cold), "false") == 0))
        L->cold = HT_FACT_WARM;
    if (L->ts_us == 0) {
        s = jstr(o, "timestamp");
        if (!s)
            s = jstr(o, "time");
        if (s && ht_parse_iso8601(s, &t))
            L->ts_us = t;
    }

    corr = corr_top(o);
    if (L->rid && (corr || L->has_trace)) {
        fact_init(&f, L, corr ? HT_FACT_CORR : HT_FACT_TRACE);
        f.corr = dup(b, corr);
        f.flags = L->cold;
        if (L->has_trace) {
            f.trace = L->trace;
            f.flags |= HT_FACT_HAS_TRACE;
        }
        ht_batch_add_fact(b, &f);
    }
    find_event(L, o);
}

static void json_line(struct line *L, const char *p, size_t n)
{
    hj o = parse_object(L->b, HT__JSLOT_LOG, p, n);
    const char *type;

    if (!hj_ok(o))
        return;
    type = jstr(o, "type");
    if (type && strncmp(type, "platform.", 9) == 0 && hj_ok(jobj(o, "record")))
        platform_json(L, o, type);
    else if (is_access_log(o))
        access_log(L, o);
    else
        app_json(L, o);
}

/* ---- runtime text lines ----------------------------------------------- */

/* Copy s[0..n) NUL-terminated into buf and parse it as ISO 8601. */
static bool iso_span(const char *s, size_t n, int64_t *out)
{
    char buf[64];

    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return ht_parse_iso8601(buf, out);
}

/*
 * `ISO8601\tRequestId\tLEVEL\tmessage` (Node) or
 * `[LEVEL]\tISO8601\tRequestId\tmessage` (Python). Only a JSON message
 * says anything to us.
 */
static void runtime_text(struct line *L, const char *p, const char *end)
{
    const char *f[4], *fe[4], *rid, *ts;
    size_t ridn, tsn;
    int nf = 0;
    int64_t t;

    while (nf < 3) {
        const char *tab = memchr(p, '\t', (size_t)(end - p));

        if (!tab)
            return;
        f[nf] = p;
        fe[nf] = tab;
        nf++;
        p = tab + 1;
    }
    f[3] = p;
    fe[3] = end;
    if (fe[0] - f[0] >= 3 && f[0][0] == '[' && fe[0][-1] == ']') {
        ts = f[1], tsn = (size_t)(fe[1] - f[1]);
        rid = f[2], ridn = (size_t)(fe[2] - f[2]);
    } else {
        ts = f[0], tsn = (size_t)(fe[0] - f[0]);
        rid = f[1], ridn = (size_t)(fe[1] - f[1]);
    }
    if (!iso_span(ts, tsn, &t) || ridn == 0 || ridn > MAX_RID_LEN ||
        token_len(rid, rid + ridn) != ridn)
        return;
    p = skip_space(f[3], end);
    if (p == end || *p != '{')
        return;
    L->rid = ht_arena_strndup(L->b->arena, rid, ridn);
    if (L->ts_us == 0)
        L->ts_us = t;
    json_line(L, p, (size_t)(end - p));
}

/* ---- entry point ------------------------------------------------------ */

void ht_ingest_log_message(struct ht_batch *b, const struct ht_logctx *ctx,
                           const char *msg, size_t n)
{
    struct line L;
    const char *p, *end;

    if (!b || !msg || n == 0)
        return;
    if (!ctx)
        ctx = &no_ctx;
    if (n > HT_MAX_LOG_EVENT_BYTES) {
        HT_LOG_DEBUG(TAG, "log event of %zu bytes ignored", n);
        return;
    }
    memset(&L, 0, sizeof L);
    L.b = b;
    L.fn_src = ctx->function;
    L.ts_us = ctx->ts_us;
    end = msg + n;
    p = skip_space(msg, end);
    if (p == end)
        return;
    if (*p == '{')
        json_line(&L, p, (size_t)(end - p));
    else if (starts_word(p, end, "START"))
        platform_text(&L, HT_FACT_START, p + 5, end);
    else if (starts_word(p, end, "END"))
        platform_text(&L, HT_FACT_END, p + 3, end);
    else if (starts_word(p, end, "REPORT"))
        platform_text(&L, HT_FACT_REPORT, p + 6, end);
    else
        runtime_text(&L, p, end);
}
