/*
 * ht_model.h - the project's own compact structs for what telemetry says:
 * spans (X-Ray segments and subsegments) and invocation facts (what Lambda
 * and API Gateway logs say about one invocation). Decoders in ingest/ fill
 * them, store/ packs them into LMDB values, query/ reads them back.
 *
 * Owned by common/. No JSON, no LMDB here. Strings are borrowed: whoever
 * filled a struct says how long its strings live (an arena, an LMDB txn).
 */
#ifndef HT_MODEL_H
#define HT_MODEL_H

#include "ht_common.h"

/* How a hop travels. Values are stored: append only. */
enum ht_via {
    HT_VIA_NONE = 0,
    HT_VIA_SQS = 1,
    HT_VIA_KINESIS = 2,
    HT_VIA_DYNAMODB = 3,
    HT_VIA_LAMBDA = 4,     /* async invoke */
    HT_VIA_LINK = 5,       /* an X-Ray link whose service is unknown */
    HT_VIA_SNS = 6,        /* SNS topic delivery (Publish -> subscriber) */
    HT_VIA_EVENTBRIDGE = 7 /* EventBridge bus -> rule target */
};
const char *ht_via_name(int via);

/* What a span is, decided once at decode time. Stored: append only. */
enum ht_span_kind {
    HT_SK_SEGMENT = 0,  /* any other top-level segment */
    HT_SK_APIGW = 1,    /* AWS::ApiGateway::Stage */
    HT_SK_LAMBDA = 2,   /* AWS::Lambda service segment */
    HT_SK_FUNCTION = 3, /* AWS::Lambda::Function segment */
    HT_SK_INIT = 4,     /* Initialization subsegment (cold start) */
    HT_SK_CALL = 5,     /* downstream call: namespace aws/remote, http, sql */
    HT_SK_LOCAL = 6     /* any other subsegment (Invocation, Overhead, …) */
};

enum {
    HT_SPAN_HAS_PARENT = 1u << 0,
    HT_SPAN_IN_PROGRESS = 1u << 1,
    HT_SPAN_ERROR = 1u << 2,
    HT_SPAN_FAULT = 1u << 3,
    HT_SPAN_THROTTLE = 1u << 4,
    HT_SPAN_SUBSEGMENT = 1u << 5, /* nested or independent subsegment */
    HT_SPAN_INFERRED = 1u << 6,
    HT_SPAN_WRITE = 1u << 7, /* a producer half of an async hop */
    HT_SPAN_ASYNC_INVOKE = 1u << 8
};

struct ht_link {
    struct ht_tid trace;
    struct ht_id8 id;
};

/* One X-Ray segment or subsegment. NULL strings are absent. */
struct ht_span {
    struct ht_id8 id;
    struct ht_id8 parent; /* valid when HT_SPAN_HAS_PARENT */
    struct ht_tid trace;
    int64_t start_us;
    int64_t end_us; /* == start_us while in progress */
    uint32_t flags;
    uint8_t kind; /* enum ht_span_kind */
    uint8_t via;  /* enum ht_via: the hop this span produces, if a write */
    uint16_t http_status;
    const char *name;
    const char *origin;
    const char *operation;      /* aws.operation */
    const char *resource;       /* queue, table, stream or function name */
    const char *request_id;     /* aws.request_id (Lambda) or API GW request */
    const char *ext_request_id; /* API Gateway extended request id */
    const char *message_id;     /* SQS SendMessage, SNS Publish */
    const char *sequence;       /* Kinesis sequence number when recorded */
    const char *corr;           /* correlation id annotation */
    const char *api_id;         /* API Gateway rest api id */
    const char *stage;
    const char *method;
    const char *url;
    uint32_t nlinks;
    struct ht_link *links;
};

/* What a log line says about an invocation. */
enum ht_fact_kind {
    HT_FACT_START = 1,  /* START line or platform.start */
    HT_FACT_REPORT = 2, /* REPORT line or platform.report */
    HT_FACT_END = 3,
    HT_FACT_CORR = 4,   /* an application line with a correlation id */
    HT_FACT_RECORD = 5, /* one record of a logged Lambda event */
    HT_FACT_APIGW = 6,  /* API GW access log or logged proxy event */
    HT_FACT_TRACE = 7   /* a line naming the invocation's X-Ray trace */
};

enum {
    HT_FACT_COLD = 1u << 0,        /* cold start known to be true */
    HT_FACT_WARM = 1u << 1,        /* cold start known to be false */
    HT_FACT_HAS_TRACE = 1u << 2,   /* trace valid */
    HT_FACT_HAS_SEGMENT = 1u << 3, /* segment valid */
    HT_FACT_HAS_HDR = 1u << 4,     /* hdr_root/hdr_parent valid */
    HT_FACT_FAILED = 1u << 5       /* report status not success */
};

struct ht_fact {
    uint8_t kind; /* enum ht_fact_kind */
    uint8_t via;  /* RECORD: enum ht_via */
    uint16_t flags;
    const char *request_id; /* Lambda request id; may be NULL for APIGW */
    const char *function;   /* function name when known */
    int64_t ts_us;          /* the log event's timestamp */
    /* REPORT */
    int64_t duration_us;
    int64_t init_us; /* Init Duration; 0 when warm */
    int64_t billed_ms;
    int64_t memory_mb;
    int64_t max_memory_mb;
    struct ht_tid trace;   /* REPORT XRAY TraceId, xray_trace_id, … */
    struct ht_id8 segment; /* REPORT SegmentId */
    /* CORR and RECORD */
    const char *corr;
    /* RECORD */
    const char *resource;   /* queue, stream or table name */
    const char *record_id;  /* SQS messageId or stream sequence number */
    struct ht_tid hdr_root; /* AWSTraceHeader Root */
    struct ht_id8 hdr_parent;
    int64_t sent_us; /* SentTimestamp / creation / arrival time */
    /* RECORD: the hop that carried the message before this one, when the
     * record's payload names it: an SQS body that is an SNS notification
     * envelope (SNS message id, topic) or an EventBridge event (event id;
     * the bus is not in the event). up_via is 0 when there is none. */
    uint8_t up_via;
    const char *up_id;
    const char *up_resource;
    int64_t up_sent_us; /* the envelope's Timestamp / the event's time */
    /* APIGW */
    const char *apigw_id;
    const char *ext_id;
    const char *route; /* "METHOD resource" when known */
    const char *api_id;
    const char *stage;
};

#endif
