/*
 * otel.h - OpenTelemetry spans as both OTLP encodings deliver them, and
 * their mapping onto hoptrace's nodes (ht_span) and invocation facts
 * (ht_fact): the one place that says what an OTel span is in the causal
 * graph (design.md "OpenTelemetry spans").
 *
 * The OTLP/JSON decoder (otlp_json.c) and the protobuf decoder
 * (otlp_pb.c) fill a struct ht_otel_span each, with ids already binary and
 * attributes as a flat list, and call ht__otel_emit. New attribute
 * mappings (a messaging system, a hop kind) go into otel_map.c only: both
 * encodings get them.
 *
 * Owned by ingest/; internal to it.
 */
#ifndef HT_OTEL_H
#define HT_OTEL_H

#include "hjson.h"
#include "ht_ingest.h"

enum ht_otel_vtype {
    HT_OV_NONE = 0,
    HT_OV_STR,
    HT_OV_BOOL,
    HT_OV_INT,
    HT_OV_DOUBLE,
    HT_OV_ARRAY, /* s: its first string element, if any */
    HT_OV_OTHER  /* a key/value list or bytes: not read */
};

/* One attribute. Strings are borrowed from the decoder (not
 * NUL-terminated necessarily: use slen). */
struct ht_otel_kv {
    const char *key;
    size_t keylen;
    uint8_t type; /* enum ht_otel_vtype */
    const char *s;
    size_t slen;
    int64_t i;
    double d;
    bool b;
};

struct ht_otel_attrs {
    const struct ht_otel_kv *kv;
    size_t n;
};

/* A growing array of attributes, as both decoders read them. */
struct ht_otel_kvvec {
    struct ht_otel_kv *kv;
    size_t n, cap;
};

/* A new zeroed attribute at the end of v (aborts when out of memory). */
struct ht_otel_kv *ht__otel_kv_push(struct ht_otel_kvvec *v);

struct ht_otel_link {
    struct ht_tid trace;
    struct ht_id8 span;
    struct ht_otel_attrs attrs;
};

/* OTLP's SpanKind values */
enum {
    HT_OTEL_KIND_UNSPECIFIED = 0,
    HT_OTEL_KIND_INTERNAL = 1,
    HT_OTEL_KIND_SERVER = 2,
    HT_OTEL_KIND_CLIENT = 3,
    HT_OTEL_KIND_PRODUCER = 4,
    HT_OTEL_KIND_CONSUMER = 5
};
/* Span.flags bits 8 and 9 (SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK,
 * SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK): whether the parent is remote. */
#define HT_OTEL_FLAG_HAS_IS_REMOTE 0x100u
#define HT_OTEL_FLAG_IS_REMOTE 0x200u

struct ht_otel_span {
    struct ht_tid trace;
    struct ht_id8 id;
    struct ht_id8 parent;
    bool has_parent;
    const char *name;
    size_t namelen;
    int kind;
    uint64_t start_ns, end_ns;
    int status; /* 0 unset, 1 ok, 2 error */
    uint32_t flags;
    struct ht_otel_attrs attrs;
    const struct ht_otel_link *links;
    size_t nlinks;
};

/* A first pass over one export's spans: which local root each batch
 * consumer's process span runs under (its invocation). */
struct ht_otel_node {
    struct ht_id8 id, parent;
    bool has_parent;    /* a local parent (not one from a message) */
    bool top;           /* an invocation: a local root or a Lambda span */
    bool consumes;      /* names messages it received (links, message id) */
    bool has_consumers; /* a top some consuming span reports to */
    int owner;          /* consuming span: index of its top, or -1 */
    char rid[64];       /* as a top: its invocation id */
};
struct ht_otel_doc {
    struct ht_otel_node *n;
    size_t count, cap;
};
void ht__otel_doc_add(struct ht_otel_doc *d, const struct ht_otel_span *sp);
/* After every span was added: sorts, and finds each consuming span's top. */
void ht__otel_doc_link(struct ht_otel_doc *d);
void ht__otel_doc_free(struct ht_otel_doc *d);

/*
 * Maps one span of a resource onto the batch: its node, and the facts its
 * invocation and received messages give. Returns -1 when it was added, or
 * the enum ht_reject reason it is refused for, with why (one line) in
 * `why`: nothing of it is added then (the caller rejects it).
 */
int ht__otel_emit(struct ht_batch *b, const struct ht_otel_attrs *resource,
                  const struct ht_otel_span *sp, const struct ht_otel_doc *doc,
                  char *why, size_t whyn);

/* The spans of an OTLP/JSON ExportTraceServiceRequest (otlp_json.c):
 * counts into res (may be NULL). */
void ht__otlp_json_doc(struct ht_batch *b, const struct ht_srcpos *pos, hj doc,
                       struct ht_otlp_result *res);

/* ht_ingest_otlp without counting the body's bytes (a payload the caller
 * counted already: decode.c sniffs protobuf exports in Kafka messages and
 * Kinesis records). */
void ht__otlp_body(struct ht_batch *b, const struct ht_srcpos *pos,
                   const void *body, size_t n, int encoding,
                   struct ht_otlp_result *res);

/* Hex id of exactly 2*n digits into n bytes; false on anything else. */
bool ht__otel_hex(const char *s, size_t len, uint8_t *out, size_t n);

#endif
