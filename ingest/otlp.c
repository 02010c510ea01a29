/*
 * otlp.c - OTLP/HTTP export bodies (ht_ingest_otlp): the protobuf encoding
 * (an ExportTraceServiceRequest, unpacked with protobuf-c from the code
 * generated at build time out of proto/opentelemetry/...) and the JSON
 * encoding (otlp_json.c). Both fill struct ht_otel_span and map it with
 * otel_map.c. A span whose ids have the wrong length is rejected alone
 * (OTLP: a trace id is 16 bytes, a span id 8); a body that does not
 * unpack is one reject and the caller answers 400.
 *
 * Owned by ingest/.
 */
#define _GNU_SOURCE
#include "ht_ingest.h"
#include "ingest_int.h"
#include "otel.h"

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Opentelemetry__Proto__Common__V1__KeyValue PbKv;
typedef Opentelemetry__Proto__Common__V1__AnyValue PbAny;
typedef Opentelemetry__Proto__Trace__V1__Span PbSpan;
typedef Opentelemetry__Proto__Trace__V1__ResourceSpans PbRs;
typedef Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest
    PbReq;

struct pbctx {
    struct ht_batch *b;
    const struct ht_srcpos *pos;
    struct ht_otel_kvvec kv;
    struct ht_otel_link *links;
    size_t caplinks;
    struct ht_otlp_result *res;
    int pass; /* 1: the first pass (ht_otel_doc), 2: emit */
    struct ht_otel_doc doc;
};

static void value_of(const PbAny *v, struct ht_otel_kv *kv)
{
    if (!v)
        return;
    switch (v->value_case) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
        kv->type = HT_OV_STR;
        kv->s = v->string_value;
        kv->slen = v->string_value ? strlen(v->string_value) : 0;
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
        kv->type = HT_OV_BOOL;
        kv->b = v->bool_value;
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
        kv->type = HT_OV_INT;
        kv->i = v->int_value;
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
        kv->type = HT_OV_DOUBLE;
        kv->d = v->double_value;
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE:
        kv->type = HT_OV_ARRAY;
        if (v->array_value && v->array_value->n_values &&
            v->array_value->values[0] &&
            v->array_value->values[0]->value_case ==
                OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE) {
            kv->s = v->array_value->values[0]->string_value;
            kv->slen = kv->s ? strlen(kv->s) : 0;
        }
        break;
    default:
        kv->type = HT_OV_OTHER;
        break;
    }
}

static void read_attrs(struct pbctx *c, PbKv *const *kvs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct ht_otel_kv *kv;

        if (!kvs[i] || !kvs[i]->key)
            continue;
        kv = ht__otel_kv_push(&c->kv);
        kv->key = kvs[i]->key;
        kv->keylen = strlen(kvs[i]->key);
        value_of(kvs[i]->value, kv);
    }
}

static void reject_span(struct pbctx *c, int reason, const char *why,
                        const PbSpan *s)
{
    char detail[240], sample[128];
    int n = 0;

    if (c->pass == 1)
        return;
    snprintf(detail, sizeof(detail), "OTLP span: %s", why);
    /* the sample: the span's name and ids as they came */
    n = snprintf(sample, sizeof(sample),
                 "name=%.60s trace_id=%zu bytes "
                 "span_id=%zu bytes",
                 s->name ? s->name : "", s->trace_id.len, s->span_id.len);
    ht_batch_reject(c->b, reason, c->pos, detail, sample,
                    n > 0 ? (size_t)n : 0);
    c->res->rejected++;
}

static void one_span(struct pbctx *c, const PbSpan *s, size_t nres)
{
    struct ht_otel_span sp;
    struct ht_otel_attrs ra;
    size_t nlinks = s->n_links > 1000 ? 1000 : s->n_links;
    size_t *loff, *ln;
    char why[160];
    int rc;

    if (c->pass == 2)
        c->res->spans++;
    memset(&sp, 0, sizeof(sp));
    if (s->trace_id.len != 16) {
        reject_span(c, s->trace_id.len ? HT_REJ_BAD_ID : HT_REJ_MISSING_FIELD,
                    "trace_id is not 16 bytes", s);
        return;
    }
    if (s->span_id.len != 8) {
        reject_span(c, s->span_id.len ? HT_REJ_BAD_ID : HT_REJ_MISSING_FIELD,
                    "span_id is not 8 bytes", s);
        return;
    }
    if (s->parent_span_id.len != 0 && s->parent_span_id.len != 8) {
        reject_span(c, HT_REJ_BAD_ID, "parent_span_id is not 8 bytes", s);
        return;
    }
    memcpy(sp.trace.b, s->trace_id.data, 16);
    memcpy(sp.id.b, s->span_id.data, 8);
    if (s->parent_span_id.len == 8) {
        memcpy(sp.parent.b, s->parent_span_id.data, 8);
        sp.has_parent = !ht_id8_is_zero(&sp.parent);
    }
    sp.name = s->name;
    sp.namelen = s->name ? strlen(s->name) : 0;
    sp.kind = (int)s->kind;
    sp.start_ns = s->start_time_unix_nano;
    sp.end_ns = s->end_time_unix_nano;
    sp.status = s->status ? (int)s->status->code : 0;
    sp.flags = s->flags;
    c->kv.n = nres;
    read_attrs(c, s->attributes, s->n_attributes);
    if (nlinks > c->caplinks) {
        free(c->links);
        c->links = calloc(nlinks, sizeof(*c->links) + 2 * sizeof(size_t));
        if (!c->links)
            abort();
        c->caplinks = nlinks;
    }
    loff = ln = NULL;
    if (nlinks) {
        /* the links' attribute offsets and counts follow the links */
        loff = (size_t *)(c->links + c->caplinks);
        ln = loff + c->caplinks;
    }
    for (size_t i = 0; i < nlinks; i++) {
        const Opentelemetry__Proto__Trace__V1__Span__Link *l = s->links[i];

        memset(&c->links[i], 0, sizeof(c->links[i]));
        if (!l || l->trace_id.len != 16 || l->span_id.len != 8) {
            reject_span(c, HT_REJ_BAD_ID,
                        "a link whose trace_id or span_id has the wrong length",
                        s);
            return;
        }
        memcpy(c->links[i].trace.b, l->trace_id.data, 16);
        memcpy(c->links[i].span.b, l->span_id.data, 8);
        loff[i] = c->kv.n;
        read_attrs(c, l->attributes, l->n_attributes);
        ln[i] = c->kv.n - loff[i];
    }
    ra.kv = c->kv.kv;
    ra.n = nres;
    sp.attrs.kv = c->kv.kv ? c->kv.kv + nres : NULL;
    sp.attrs.n = (nlinks ? loff[0] : c->kv.n) - nres;
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
        reject_span(c, rc, why, s);
}

/* How deep a body's messages may nest. protobuf-c unpacks nested messages
 * by recursion with no limit, and OTLP's AnyValue nests in itself (arrays
 * and key-value lists): a 35 KB body of 5,000 nested arrays overflowed the
 * stack. An export nests about 8 levels plus its attribute values. */
#define PB_MAX_DEPTH 64

static bool pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t c = *(*p)++;

        *v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80))
            return true;
    }
    return false;
}

/* Whether the body nests at most PB_MAX_DEPTH messages deep, read without
 * recursion and without the schema: every length-delimited field is tried
 * as a message, and one whose bytes do not read as fields is skipped as a
 * string (so a string that happens to read as fields counts as nesting,
 * which only makes the limit stricter). A malformed body passes: the
 * unpacking then refuses it. Each byte is read once. */
static bool pb_depth_ok(const uint8_t *p, size_t n)
{
    const uint8_t *end[PB_MAX_DEPTH + 1];
    int d = 0;

    end[0] = p + n;
    for (;;) {
        uint64_t key, len;
        bool ok = true;

        if (p == end[d]) {
            if (d == 0)
                return true;
            d--;
            continue;
        }
        if (!pb_varint(&p, end[d], &key))
            ok = false;
        else if ((key & 7) == 0)
            ok = pb_varint(&p, end[d], &len);
        else if ((key & 7) == 1 || (key & 7) == 5) {
            size_t w = (key & 7) == 1 ? 8 : 4;

            ok = (size_t)(end[d] - p) >= w;
            if (ok)
                p += w;
        } else if ((key & 7) == 2) {
            ok = pb_varint(&p, end[d], &len) && len <= (size_t)(end[d] - p);
            if (ok && len > 0) {
                if (d == PB_MAX_DEPTH)
                    return false;
                end[++d] = p + len; /* tried as a message */
            }
        } else {
            ok = false; /* groups, or no field at all */
        }
        if (!ok) {
            /* not a message here: the bytes were a string, or the body
             * is malformed (at the top) */
            if (d == 0)
                return true;
            p = end[d--];
        }
    }
}

static void decode_pb(struct ht_batch *b, const struct ht_srcpos *pos,
                      const void *body, size_t n, struct ht_otlp_result *res)
{
    PbReq *req = NULL;
    struct pbctx c = {.b = b, .pos = pos, .res = res};

    if (!pb_depth_ok(body, n)) {
        res->bad = true;
        snprintf(res->why, sizeof(res->why),
                 "protobuf messages nested more than %d deep", PB_MAX_DEPTH);
        ht_batch_reject(b, HT_REJ_BAD_ENCODING, pos,
                        "OTLP protobuf body whose messages nest too deep", body,
                        n);
        return;
    }
    req =
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(
            NULL, n, body);
    if (!req) {
        res->bad = true;
        snprintf(res->why, sizeof(res->why),
                 "not a protobuf ExportTraceServiceRequest");
        ht_batch_reject(b, HT_REJ_BAD_ENCODING, pos,
                        "OTLP protobuf body that is not an "
                        "ExportTraceServiceRequest",
                        body, n);
        return;
    }
    for (c.pass = 1; c.pass <= 2; c.pass++) {
        for (size_t i = 0; i < req->n_resource_spans; i++) {
            const PbRs *rs = req->resource_spans[i];
            size_t nres;

            if (!rs)
                continue;
            c.kv.n = 0;
            if (rs->resource)
                read_attrs(&c, rs->resource->attributes,
                           rs->resource->n_attributes);
            nres = c.kv.n;
            for (size_t j = 0; j < rs->n_scope_spans; j++) {
                const Opentelemetry__Proto__Trace__V1__ScopeSpans *ss =
                    rs->scope_spans[j];

                for (size_t k = 0; ss && k < ss->n_spans; k++)
                    if (ss->spans[k])
                        one_span(&c, ss->spans[k], nres);
            }
        }
        if (c.pass == 1)
            ht__otel_doc_link(&c.doc);
    }
    ht__otel_doc_free(&c.doc);
    free(c.kv.kv);
    free(c.links);
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(
        req, NULL);
}

static void decode_json_body(struct ht_batch *b, const struct ht_srcpos *pos,
                             const char *body, size_t n,
                             struct ht_otlp_result *res)
{
    char err[160];
    hj v;
    int rc = hj_parse(ht__parser(b, 0), body, n, false, &v, err, sizeof(err));

    if (rc != 0) {
        res->bad = true;
        snprintf(res->why, sizeof(res->why), "not JSON: %.140s", err);
        ht_batch_reject(b, rc == -2 ? HT_REJ_TOO_DEEP : HT_REJ_NOT_JSON, pos,
                        res->why, body, n);
        return;
    }
    if (!hj_is_object(v) ||
        ((hj_type(hj_get(v, "resourceSpans")) != HJ_ABSENT) &&
         !hj_is_array(hj_get(v, "resourceSpans")))) {
        res->bad = true;
        snprintf(res->why, sizeof(res->why),
                 "not an ExportTraceServiceRequest (resourceSpans is not an "
                 "array)");
        ht_batch_reject(b, HT_REJ_UNKNOWN_DOC, pos, res->why, body, n);
        return;
    }
    /* {} or only fields this version does not know (OTLP/JSON: "receivers
     * MUST ignore unknown fields"): an empty export */
    if (!(hj_type(hj_get(v, "resourceSpans")) != HJ_ABSENT))
        return;
    ht__otlp_json_doc(b, pos, v, res);
}

void ht_ingest_otlp(struct ht_batch *b, const struct ht_srcpos *pos,
                    const void *body, size_t n, int encoding,
                    struct ht_otlp_result *res)
{
    b->payload_bytes += n;
    ht__otlp_body(b, pos, body, n, encoding, res);
}

void ht__otlp_body(struct ht_batch *b, const struct ht_srcpos *pos,
                   const void *body, size_t n, int encoding,
                   struct ht_otlp_result *res)
{
    if (encoding == HT_OTLP_PROTOBUF)
        decode_pb(b, pos, body, n, res);
    else
        decode_json_body(b, pos, body, n, res);
}
