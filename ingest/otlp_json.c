/*
 * otlp_json.c - OTLP/JSON trace documents: an ExportTraceServiceRequest
 * (`{"resourceSpans":[…]}`) as the OTLP/HTTP JSON encoding sends it and as
 * the collector's file exporter writes it (one per line). Read with the
 * hot path's parser (hjson.h) straight into struct ht_otel_span, which
 * otel_map.c maps onto the graph; no tree is kept.
 *
 * OTLP/JSON as the protocol specifies it: lowerCamelCase field names,
 * trace and span ids as hex (base64, as some early exporters wrote them,
 * is accepted too: the lengths differ), enums as integers or as their
 * names, 64-bit integers as strings or numbers. A span that cannot be
 * read is rejected alone (counted by reason, kept as a dead letter with
 * the span as its sample); the rest of the document is decoded.
 *
 * Owned by ingest/.
 */
#define _GNU_SOURCE
#include "ht_ingest.h"
#include "ingest_int.h"
#include "otel.h"

#include "hjson.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t u64_of(hj v)
{
    if (hj_is_string(v))
        return strtoull(hj_str(v), NULL, 10);
    if (hj_type(v) == HJ_UINT || hj_type(v) == HJ_INT)
        return (uint64_t)hj_int(v);
    if (hj_type(v) == HJ_REAL && hj_num(v) > 0)
        return (uint64_t)hj_num(v);
    return 0;
}

/* An AnyValue object into kv (its key already set). */
static void any_value(hj v, struct ht_otel_kv *kv)
{
    struct hj_iter it;
    hj x;
    const char *k;
    size_t kl;

    hj_iter_init(&it, v);
    while (hj_iter_next(&it, &x, &k, &kl)) {
        if (kl == 11 && memcmp(k, "stringValue", 11) == 0 && hj_is_string(x)) {
            kv->type = HT_OV_STR;
            kv->s = hj_str(x);
            kv->slen = hj_strlen(x);
        } else if (kl == 9 && memcmp(k, "boolValue", 9) == 0) {
            kv->type = HT_OV_BOOL;
            kv->b = hj_is_true(x);
        } else if (kl == 8 && memcmp(k, "intValue", 8) == 0) {
            kv->type = HT_OV_INT;
            kv->i = hj_is_string(x) ? strtoll(hj_str(x), NULL, 10) : hj_int(x);
        } else if (kl == 11 && memcmp(k, "doubleValue", 11) == 0) {
            kv->type = HT_OV_DOUBLE;
            kv->d = hj_is_string(x) ? strtod(hj_str(x), NULL) : hj_num(x);
        } else if (kl == 10 && memcmp(k, "arrayValue", 10) == 0) {
            hj first = hj_at(hj_get(x, "values"), 0);
            hj s = hj_get(first, "stringValue");

            kv->type = HT_OV_ARRAY;
            if (hj_is_string(s)) {
                kv->s = hj_str(s);
                kv->slen = hj_strlen(s);
            }
        } else {
            kv->type = HT_OV_OTHER;
        }
    }
}

/* An attributes array ([{"key":…,"value":{…}}]) appended to v. */
static void read_attrs(hj arr, struct ht_otel_kvvec *v)
{
    struct hj_iter it;
    hj e;

    if (!hj_is_array(arr))
        return;
    hj_iter_init(&it, arr);
    while (hj_iter_next(&it, &e, NULL, NULL)) {
        hj key = hj_get(e, "key");
        struct ht_otel_kv *kv;

        if (!hj_is_string(key))
            continue;
        kv = ht__otel_kv_push(v);
        kv->key = hj_str(key);
        kv->keylen = hj_strlen(key);
        any_value(hj_get(e, "value"), kv);
    }
}

/* A hex (or base64) id of n bytes; an empty string or absence is "none"
 * (returns 0); 1 when read; -1 when malformed. */
static int read_id(hj v, uint8_t *out, size_t n)
{
    const char *s = hj_str(v);
    size_t len = hj_strlen(v);
    uint8_t tmp[24];
    long got;

    if (!hj_ok(v) || hj_is_null(v) || (s && len == 0))
        return 0;
    if (!s)
        return -1;
    if (ht__otel_hex(s, len, out, n))
        return 1;
    if (len == ((n + 2) / 3) * 4 &&
        (got = ht_base64_decode(s, len, tmp)) == (long)n) {
        memcpy(out, tmp, n);
        return 1;
    }
    return -1;
}

static int enum_of(hj v, const char *const *names, int count)
{
    if (hj_is_integer(v))
        return (int)hj_int(v);
    if (hj_is_string(v))
        for (int i = 0; i < count; i++)
            if (strcmp(hj_str(v), names[i]) == 0)
                return i;
    return 0;
}

static const char *const kind_names[] = {
    "SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",      "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER"};
static const char *const status_names[] = {
    "STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"};

enum {
    S_TRACE_ID,
    S_SPAN_ID,
    S_PARENT,
    S_NAME,
    S_KIND,
    S_START,
    S_END,
    S_ATTRS,
    S_LINKS,
    S_STATUS,
    S_FLAGS,
    S__COUNT
};
static const char *const span_keys[S__COUNT] = {"traceId",
                                                "spanId",
                                                "parentSpanId",
                                                "name",
                                                "kind",
                                                "startTimeUnixNano",
                                                "endTimeUnixNano",
                                                "attributes",
                                                "links",
                                                "status",
                                                "flags"};

struct jctx {
    struct ht_batch *b;
    const struct ht_srcpos *pos;
    struct ht_otel_kvvec res, kv;
    struct ht_otel_link *links;
    size_t caplinks;
    uint64_t spans, rejected;
    int pass; /* 1: the document's first pass (ht_otel_doc), 2: emit */
    struct ht_otel_doc doc;
};

static void reject_span(struct jctx *c, int reason, const char *why, hj span)
{
    char sample[HT_MAX_DLQ_SAMPLE];
    size_t n = hj_dump(span, sample, sizeof(sample));
    char detail[240];

    if (c->pass == 1)
        return;
    snprintf(detail, sizeof(detail), "OTLP span: %s", why);
    ht_batch_reject(c->b, reason, c->pos, detail, sample,
                    n < sizeof(sample) ? n : sizeof(sample));
    c->rejected++;
}

static void one_span(struct jctx *c, hj span)
{
    struct ht_otel_span sp;
    struct ht_otel_attrs ra = {c->res.kv, c->res.n};
    hj f[S__COUNT];
    size_t nlinks, *loff, *ln;
    char why[160];
    int rc;

    if (c->pass == 2)
        c->spans++;
    if (!hj_is_object(span)) {
        reject_span(c, HT_REJ_MISSING_FIELD, "a span that is not an object",
                    span);
        return;
    }
    hj_fields(span, span_keys, S__COUNT, f);
    memset(&sp, 0, sizeof(sp));
    if (read_id(f[S_TRACE_ID], sp.trace.b, 16) != 1) {
        reject_span(c,
                    hj_ok(f[S_TRACE_ID]) ? HT_REJ_BAD_ID : HT_REJ_MISSING_FIELD,
                    "traceId is not 32 hex digits", span);
        return;
    }
    if (read_id(f[S_SPAN_ID], sp.id.b, 8) != 1) {
        reject_span(c,
                    hj_ok(f[S_SPAN_ID]) ? HT_REJ_BAD_ID : HT_REJ_MISSING_FIELD,
                    "spanId is not 16 hex digits", span);
        return;
    }
    rc = read_id(f[S_PARENT], sp.parent.b, 8);
    if (rc < 0) {
        reject_span(c, HT_REJ_BAD_ID, "parentSpanId is not 16 hex digits",
                    span);
        return;
    }
    sp.has_parent = rc == 1 && !ht_id8_is_zero(&sp.parent);
    sp.name = hj_str(f[S_NAME]);
    sp.namelen = hj_strlen(f[S_NAME]);
    sp.kind = enum_of(f[S_KIND], kind_names, 6);
    sp.start_ns = u64_of(f[S_START]);
    sp.end_ns = u64_of(f[S_END]);
    sp.status = enum_of(hj_get(f[S_STATUS], "code"), status_names, 3);
    sp.flags = (uint32_t)u64_of(f[S_FLAGS]);
    c->kv.n = 0;
    read_attrs(f[S_ATTRS], &c->kv);
    sp.attrs.n = c->kv.n;
    nlinks = hj_is_array(f[S_LINKS]) ? hj_size(f[S_LINKS]) : 0;
    if (nlinks > 1000)
        nlinks = 1000;
    if (nlinks > c->caplinks) {
        free(c->links);
        c->links = calloc(nlinks, sizeof(*c->links) + 2 * sizeof(size_t));
        if (!c->links)
            abort();
        c->caplinks = nlinks;
    }
    loff = ln = NULL;
    if (nlinks) {
        struct hj_iter it;
        hj l;
        size_t i = 0;

        /* the links' attribute offsets and counts follow the links */
        loff = (size_t *)(c->links + c->caplinks);
        ln = loff + c->caplinks;
        hj_iter_init(&it, f[S_LINKS]);
        while (i < nlinks && hj_iter_next(&it, &l, NULL, NULL)) {
            struct ht_otel_link *dst = &c->links[i];

            memset(dst, 0, sizeof(*dst));
            if (read_id(hj_get(l, "traceId"), dst->trace.b, 16) != 1 ||
                read_id(hj_get(l, "spanId"), dst->span.b, 8) != 1) {
                reject_span(c, HT_REJ_BAD_ID,
                            "a link whose traceId or spanId is not hex", span);
                return;
            }
            loff[i] = c->kv.n;
            read_attrs(hj_get(l, "attributes"), &c->kv);
            ln[i] = c->kv.n - loff[i];
            i++;
        }
        nlinks = i;
    }
    /* the attribute vector has stopped growing: point into it */
    sp.attrs.kv = c->kv.kv;
    for (size_t i = 0; i < nlinks; i++) {
        c->links[i].attrs.kv = c->kv.kv ? c->kv.kv + loff[i] : NULL;
        c->links[i].attrs.n = ln[i];
    }
    sp.links = c->links;
    sp.nlinks = nlinks;
    if (c->pass == 1) {
        ht__otel_doc_add(&c->doc, &sp);
        return;
    }
    rc = ht__otel_emit(c->b, &ra, &sp, &c->doc, why, sizeof(why));
    if (rc >= 0)
        reject_span(c, rc, why, span);
}

/* The spans of one ScopeSpans (or the older InstrumentationLibrarySpans). */
static void scope_spans(struct jctx *c, hj arr)
{
    struct hj_iter it, jt;
    hj ss, span;

    hj_iter_init(&it, arr);
    while (hj_iter_next(&it, &ss, NULL, NULL)) {
        hj_iter_init(&jt, hj_get(ss, "spans"));
        while (hj_iter_next(&jt, &span, NULL, NULL))
            one_span(c, span);
    }
}

void ht__otlp_json_doc(struct ht_batch *b, const struct ht_srcpos *pos, hj doc,
                       struct ht_otlp_result *res)
{
    struct jctx c = {.b = b, .pos = pos};
    hj rs = hj_get(doc, "resourceSpans"), r;
    struct hj_iter it;

    if (!hj_is_array(rs)) {
        char sample[HT_MAX_DLQ_SAMPLE];
        size_t n = hj_dump(doc, sample, sizeof(sample));

        ht_batch_reject(b, HT_REJ_MISSING_FIELD, pos,
                        "OTLP document whose resourceSpans is not an array",
                        sample, n < sizeof(sample) ? n : sizeof(sample));
        if (res)
            res->bad = true;
        return;
    }
    for (c.pass = 1; c.pass <= 2; c.pass++) {
        hj_iter_init(&it, rs);
        while (hj_iter_next(&it, &r, NULL, NULL)) {
            hj x;

            c.res.n = 0;
            read_attrs(hj_get(hj_get(r, "resource"), "attributes"), &c.res);
            if (hj_is_array(x = hj_get(r, "scopeSpans")))
                scope_spans(&c, x);
            if (hj_is_array(x = hj_get(r, "instrumentationLibrarySpans")))
                scope_spans(&c, x);
        }
        if (c.pass == 1)
            ht__otel_doc_link(&c.doc);
    }
    ht__otel_doc_free(&c.doc);
    free(c.res.kv);
    free(c.kv.kv);
    free(c.links);
    if (res) {
        res->spans += c.spans;
        res->rejected += c.rejected;
    }
}
