/*
 * test_logs.c - unit test of ingest/logs.c (ht_ingest_log_message): feeds
 * representative log event messages (from formats.md and the payments
 * sample) and checks every field of the facts they yield; then feeds every
 * prefix and some corrupted copies of them to make sure nothing crashes.
 *
 * Standalone: exits 0 on success, 1 with messages on stderr on failure.
 * Links against the ingest and common libraries and jansson.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ht_ingest.h"
#include "ht_test.h"

/* CHECK and the failure count come from ht_test.h */
#define failures ht_test_failures

/* NULL-safe string equality; expected NULL means "absent". */
#define CHECK_STR(got, want) CHECK(str_eq((got), (want)))
#define CHECK_TID(t, want) CHECK(tid_eq(&(t), (want)))
#define CHECK_ID8(t, want) CHECK(id8_eq(&(t), (want)))

static bool str_eq(const char *got, const char *want)
{
    if (!got || !want) {
        if (got != want)
            fprintf(stderr, "  got \"%s\", want \"%s\"\n", got ? got : "(null)",
                    want ? want : "(null)");
        return got == want;
    }
    if (strcmp(got, want) != 0)
        fprintf(stderr, "  got \"%s\", want \"%s\"\n", got, want);
    return strcmp(got, want) == 0;
}

static bool tid_eq(const struct ht_tid *t, const char *want)
{
    char buf[36];

    if (!want)
        return ht_tid_is_zero(t);
    ht_tid_format(t, buf);
    return str_eq(buf, want);
}

static bool id8_eq(const struct ht_id8 *id, const char *want)
{
    char buf[17];

    if (!want)
        return ht_id8_is_zero(id);
    ht_id8_format(id, buf);
    return str_eq(buf, want);
}

/* ---- test inputs --------------------------------------------------- */

/* sample: REPORT, cold, traced */
static const char L_REPORT_COLD[] =
    "REPORT RequestId: 55d1c098-b0fd-429c-af21-6b7d6710d5be\tDuration: 44.2"
    "1 ms\tBilled Duration: 45 ms\tMemory Size: 512 MB\tMax Memory Used: 11"
    "1 MB\tInit Duration: 477.00 ms\t\nXRAY TraceId: 1-6b083520-c49c720af84"
    "bd7b4b9c2b14a\tSegmentId: 941f15bb4e7924a3\tSampled: true\t\n";

/* sample: START */
static const char L_START[] =
    "START RequestId: 55d1c098-b0fd-429c-af21-6b7d6710d5be Version: $LATEST"
    "\n";

/* sample: END */
static const char L_END[] =
    "END RequestId: 55d1c098-b0fd-429c-af21-6b7d6710d5be\n";

/* warm REPORT, extra space, timeout, untraced */
static const char L_REPORT_WARM[] =
    "REPORT RequestId: c793869b-ee49-115b-a5b6-4fd21e8dedac\tDuration: 3000"
    ".00 ms\tBilled Duration: 3000 ms \tMemory Size: 128 MB\tMax Memory Use"
    "d: 74 MB\tStatus: timeout\t\n";

/* sample: Powertools line with correlation_id */
static const char L_PT_CORR[] =
    "{\"level\":\"INFO\",\"message\":\"payment started\",\"timestamp\":\"20"
    "26-11-26T13:33:20.577Z\",\"service\":\"start-payment\",\"cold_start\":"
    "false,\"function_arn\":\"arn:aws:lambda:us-east-1:123456789012:functio"
    "n:start-payment\",\"function_memory_size\":\"512\",\"function_name\":"
    "\"start-payment\",\"function_request_id\":\"55d1c098-b0fd-429c-af21-6b"
    "7d6710d5be\",\"sampling_rate\":0,\"xray_trace_id\":\"1-6b083520-c49c72"
    "0af84bd7b4b9c2b14a\",\"correlation_id\":\"5b437c74-8c6c-4f84-af37-b643"
    "b6e3d79b\",\"orderId\":\"p-0\"}";

/* formats.md: Powertools logger example */
static const char L_PT_DOC[] =
    "{\"level\":\"INFO\",\"location\":\"collect.handler:10\",\"message\":\""
    "Collecting payment\",\"timestamp\":\"2021-05-03 11:47:12,494+0000\",\""
    "service\":\"payment\",\"cold_start\":true,\"function_name\":\"test\","
    "\"function_memory_size\":128,\"function_arn\":\"arn:aws:lambda:eu-west"
    "-1:12345678910:function:test\",\"function_request_id\":\"52fdfc07-2182"
    "-154f-163f-5f0f9a621d72\",\"correlation_id\":\"correlation_id_value\"}";

/* sample: logged SQS event, 2 records */
static const char L_SQS[] =
    "{\"level\":\"INFO\",\"message\":\"Lambda invocation event\",\"timestam"
    "p\":\"2026-11-26T13:33:21.004Z\",\"service\":\"charge-card\",\"cold_st"
    "art\":false,\"function_arn\":\"arn:aws:lambda:us-east-1:123456789012:f"
    "unction:charge-card\",\"function_memory_size\":\"512\",\"function_name"
    "\":\"charge-card\",\"function_request_id\":\"94c247ab-a49f-488c-a019-d"
    "6f2da4dc942\",\"sampling_rate\":0,\"xray_trace_id\":\"1-6b083520-84eb0"
    "4f0d14bb3b2b6748f4a\",\"event\":{\"Records\":[{\"messageId\":\"82b6671"
    "c-9350-4108-ad9d-75d8d37a180a\",\"receiptHandle\":\"AQEBd23f2180e06f18"
    "94c70a82b3386ada8ed3c29368\",\"body\":\"{\\\"orderId\\\":\\\"p-0\\\","
    "\\\"correlation_id\\\":\\\"5b437c74-8c6c-4f84-af37-b643b6e3d79b\\\"}\""
    ",\"attributes\":{\"ApproximateReceiveCount\":\"1\",\"AWSTraceHeader\":"
    "\"Root=1-6b083520-c49c720af84bd7b4b9c2b14a;Parent=24f6a303b83ea7bd;Sam"
    "pled=1;Lineage=1:e058fb12:0\",\"SentTimestamp\":\"1795700000577\",\"Se"
    "nderId\":\"AROAA2BF2E77CC715409\",\"ApproximateFirstReceiveTimestamp\""
    ":\"1795700000627\"},\"messageAttributes\":{},\"md5OfBody\":\"b621ba564"
    "52f650f2ae55d0349b6cab2\",\"eventSource\":\"aws:sqs\",\"eventSourceARN"
    "\":\"arn:aws:sqs:us-east-1:123456789012:payments-queue\",\"awsRegion\""
    ":\"us-east-1\"},{\"messageId\":\"82d4ef60-b126-4751-ac2f-bfccd615afe1"
    "\",\"receiptHandle\":\"AQEB82b2e9f9ee019cbd9795b4e1553e37794c83de22\","
    "\"body\":\"{\\\"orderId\\\":\\\"p-1\\\",\\\"correlation_id\\\":\\\"228"
    "480c1-98a4-427a-ab95-808623290d18\\\"}\",\"attributes\":{\"Approximate"
    "ReceiveCount\":\"1\",\"AWSTraceHeader\":\"Root=1-6b083520-60d0cc5caf52"
    "d23b44eea30a;Parent=a4ad1c23a48367ca;Sampled=1;Lineage=1:2797c286:0\","
    "\"SentTimestamp\":\"1795700000574\",\"SenderId\":\"AROA21FF80DB4C4908D"
    "7\",\"ApproximateFirstReceiveTimestamp\":\"1795700000627\"},\"messageA"
    "ttributes\":{},\"md5OfBody\":\"716cee2a90a476674f5df0d90fbe4874\",\"ev"
    "entSource\":\"aws:sqs\",\"eventSourceARN\":\"arn:aws:sqs:us-east-1:123"
    "456789012:payments-queue\",\"awsRegion\":\"us-east-1\"}]}}";

/* sample: logged API GW v1 proxy event under `event` */
static const char L_APIGW_V1[] =
    "{\"level\":\"INFO\",\"message\":\"Lambda invocation event\",\"timestam"
    "p\":\"2026-11-26T13:33:20.535Z\",\"service\":\"start-payment\",\"cold_"
    "start\":false,\"function_arn\":\"arn:aws:lambda:us-east-1:123456789012"
    ":function:start-payment\",\"function_memory_size\":\"512\",\"function_"
    "name\":\"start-payment\",\"function_request_id\":\"55d1c098-b0fd-429c-"
    "af21-6b7d6710d5be\",\"sampling_rate\":0,\"xray_trace_id\":\"1-6b083520"
    "-c49c720af84bd7b4b9c2b14a\",\"event\":{\"resource\":\"/orders\",\"path"
    "\":\"/orders\",\"httpMethod\":\"POST\",\"headers\":{\"X-Amzn-Trace-Id"
    "\":\"Root=1-6b083520-c49c720af84bd7b4b9c2b14a\"},\"requestContext\":{"
    "\"requestId\":\"5b437c74-8c6c-4f84-af37-b643b6e3d79b\",\"stage\":\"pro"
    "d\",\"apiId\":\"abc123\",\"requestTimeEpoch\":1795700000052},\"body\":"
    "\"{\\\"item\\\":\\\"book\\\",\\\"qty\\\":1}\"}}";

/* sample: logged DynamoDB Streams event */
static const char L_DDB[] =
    "{\"level\":\"INFO\",\"message\":\"Lambda invocation event\",\"timestam"
    "p\":\"2026-11-26T13:33:21.753Z\",\"service\":\"record-ledger\",\"cold_"
    "start\":false,\"function_arn\":\"arn:aws:lambda:us-east-1:123456789012"
    ":function:record-ledger\",\"function_memory_size\":\"512\",\"function_"
    "name\":\"record-ledger\",\"function_request_id\":\"717787c3-372a-4bf0-"
    "a8e1-256d28bdc93c\",\"sampling_rate\":0,\"xray_trace_id\":\"1-6b083521"
    "-93c614581b5937b02c758e79\",\"event\":{\"Records\":[{\"eventID\":\"224"
    "d55ab73524c421171013e3260b0df\",\"eventName\":\"INSERT\",\"eventVersio"
    "n\":\"1.1\",\"eventSource\":\"aws:dynamodb\",\"awsRegion\":\"us-east-1"
    "\",\"dynamodb\":{\"ApproximateCreationDateTime\":1795700001,\"Keys\":{"
    "\"orderId\":{\"S\":\"p-1\"}},\"NewImage\":{\"orderId\":{\"S\":\"p-1\"}"
    ",\"correlation_id\":{\"S\":\"228480c1-98a4-427a-ab95-808623290d18\"},"
    "\"status\":{\"S\":\"NEW\"}},\"SequenceNumber\":\"400000000000000000128"
    "7\",\"SizeBytes\":120,\"StreamViewType\":\"NEW_IMAGE\"},\"eventSourceA"
    "RN\":\"arn:aws:dynamodb:us-east-1:123456789012:table/payments/stream/2"
    "026-11-01T00:00:00.000\"}]}}";

/* Node runtime line whose message is a Kinesis event (plain, gzip, non-JSON
 * data) */
static const char L_KINESIS[] =
    "2026-11-26T13:33:21.000Z\t0e9b0c3a-1111-2222-3333-444455556666\tINFO\t"
    "{\"Records\":[{\"kinesis\":{\"kinesisSchemaVersion\":\"1.0\",\"partiti"
    "onKey\":\"s1\",\"sequenceNumber\":\"4956816737333333333333333333333333"
    "3333333333333333333333\",\"data\":\"eyJvcmRlcklkIjoicC0xIiwiY29ycmVsYX"
    "Rpb25faWQiOiJjb3JyLWsxIn0=\",\"approximateArrivalTimestamp\":148064152"
    "3.477},\"eventSource\":\"aws:kinesis\",\"eventID\":\"shardId-000000000"
    "000:49568167373333333333333333333333333333333333333333333333\",\"event"
    "SourceARN\":\"arn:aws:kinesis:us-east-1:123456789012:stream/simple-str"
    "eam\"},{\"kinesis\":{\"partitionKey\":\"s2\",\"sequenceNumber\":\"4956"
    "8167373333333333333333333333333333333333333333333334\",\"data\":\"H4sI"
    "AAAAAAACA6tWSkktSczMUbKqVkrOLypKzUksyczP80xRsgLzdbONlGprAQ3XqxkmAAAA\""
    ",\"approximateArrivalTimestamp\":1480641524},\"eventSource\":\"aws:kin"
    "esis\",\"eventSourceARN\":\"arn:aws:kinesis:us-east-1:123456789012:str"
    "eam/simple-stream\"},{\"kinesis\":{\"sequenceNumber\":\"3\",\"data\":"
    "\"SGVsbG8gV29ybGQ=\"},\"eventSource\":\"aws:kinesis\",\"eventSourceARN"
    "\":\"arn:aws:kinesis:us-east-1:123456789012:stream/simple-stream\"}]}"
    "\n";

/* Python runtime line with a JSON message */
static const char L_PY[] =
    "[INFO]\t2024-07-01T08:54:54.125Z\tb2de8fdb-259d-476f-9546-0b4822dce67a"
    "\t{\"msg\":\"hi\",\"correlationId\":\"c-py\"}\n";

/* formats.md: Node runtime line, plain text */
static const char L_NODE_TEXT[] =
    "2019-06-07T19:11:20.564Z\tc793869b-ee49-115b-a5b6-4fd21e8dedac\tWARN\t"
    "Event not processed.\n";

/* API Gateway REST access log (JSON format) */
static const char L_ACCESS[] =
    "{\"requestId\":\"deef4878-7910-11e6-8f14-25afc3e9ae33\",\"extendedRequ"
    "estId\":\"TWegAcC4EowCHnA=\",\"ip\":\"1.2.3.4\",\"requestTime\":\"15/M"
    "ay/2020:06:01:09 +0000\",\"requestTimeEpoch\":\"1589522469693\",\"http"
    "Method\":\"POST\",\"resourcePath\":\"/orders\",\"status\":\"200\",\"xr"
    "ayTraceId\":\"1-5e66d96f-7491f09b779d18acf3d05011\",\"integrationReque"
    "stId\":\"-\",\"awsEndpointRequestId\":\"c793869b-ee49-115b-a5b6-4fd21e"
    "8dedac\",\"integrationLatency\":\"38\",\"apiId\":\"gy415nuibc\",\"stag"
    "e\":\"prod\"}";

/* API Gateway HTTP API access log, missing values */
static const char L_ACCESS2[] =
    "{\"requestId\":\"LV7fzho-PHcEJPw=\",\"routeKey\":\"GET /items\",\"inte"
    "grationRequestId\":\"-\",\"xrayTraceId\":\"-\",\"requestTimeEpoch\":\""
    "-\",\"status\":\"200\"}";

/* formats.md: JSON log format platform.report */
static const char L_JSON_REPORT[] =
    "{\"time\":\"2024-07-01T08:54:54.127Z\",\"type\":\"platform.report\",\""
    "record\":{\"requestId\":\"b2de8fdb-259d-476f-9546-0b4822dce67a\",\"met"
    "rics\":{\"durationMs\":17.493,\"billedDurationMs\":18,\"initDurationMs"
    "\":235.086,\"maxMemoryUsedMB\":75,\"memorySizeMB\":128},\"status\":\"s"
    "uccess\"}}";

/* formats.md: JSON log format platform.start */
static const char L_JSON_START[] =
    "{\"time\":\"2022-10-12T00:00:15.064Z\",\"type\":\"platform.start\",\"r"
    "ecord\":{\"requestId\":\"6d68ca91-49c9-448d-89b8-7ca3e6dc66aa\",\"vers"
    "ion\":\"$LATEST\",\"tracing\":{\"spanId\":\"54565fb41ac79632\",\"type"
    "\":\"X-Amzn-Trace-Id\",\"value\":\"Root=1-62e900b2-710d76f009d6e778590"
    "5449a;Parent=0efbd19962d95b05;Sampled=1\"}}}";

/* formats.md: platform.runtimeDone (ignored) */
static const char L_JSON_DONE[] =
    "{\"time\":\"2024-07-01T08:54:54.125Z\",\"type\":\"platform.runtimeDone"
    "\",\"record\":{\"requestId\":\"b2de8fdb-259d-476f-9546-0b4822dce67a\","
    "\"metrics\":{\"durationMs\":17.12,\"producedBytes\":50},\"status\":\"s"
    "uccess\"}}";

/* platform.report: warm, timeout, traced */
static const char L_JSON_FAIL[] =
    "{\"time\":\"2024-07-01T08:54:54.127Z\",\"type\":\"platform.report\",\""
    "record\":{\"requestId\":\"b2de8fdb-259d-476f-9546-0b4822dce67a\",\"met"
    "rics\":{\"durationMs\":3000,\"billedDurationMs\":3000,\"maxMemoryUsedM"
    "B\":75,\"memorySizeMB\":128},\"status\":\"timeout\",\"tracing\":{\"typ"
    "e\":\"X-Amzn-Trace-Id\",\"value\":\"Root=1-62e900b2-710d76f009d6e77859"
    "05449a;Parent=0efbd19962d95b05;Sampled=1\"}}}";

/* JSON log format app line whose message is an SQS event (SNS body, root-only
 * header) */
static const char L_JSON_APP_SQS[] =
    "{\"timestamp\":\"2022-10-12T00:03:50.000Z\",\"level\":\"INFO\",\"reque"
    "stId\":\"79b4f56e-95b1-4643-9700-2807f4e68189\",\"message\":\"{\\\"Rec"
    "ords\\\": [{\\\"messageId\\\": \\\"m-1\\\", \\\"body\\\": \\\"{\\\\\\"
    "\"Type\\\\\\\": \\\\\\\"Notification\\\\\\\", \\\\\\\"Message\\\\\\\":"
    " \\\\\\\"{\\\\\\\\\\\\\\\"orderId\\\\\\\\\\\\\\\": \\\\\\\\\\\\\\\"p-9"
    "\\\\\\\\\\\\\\\", \\\\\\\\\\\\\\\"correlation_id\\\\\\\\\\\\\\\": \\\\"
    "\\\\\\\\\\\"c-sns\\\\\\\\\\\\\\\"}\\\\\\\"}\\\", \\\"attributes\\\": {"
    "\\\"AWSTraceHeader\\\": \\\"Root=1-646f68f6-29168d517efd3a056d14b505;S"
    "ampled=0\\\", \\\"SentTimestamp\\\": \\\"1545082649183\\\"}, \\\"event"
    "Source\\\": \\\"aws:sqs\\\", \\\"eventSourceARN\\\": \\\"arn:aws:sqs:u"
    "s-east-2:123456789012:my-queue\\\"}, {\\\"messageId\\\": \\\"m-2\\\", "
    "\\\"body\\\": \\\"Test message.\\\", \\\"eventSource\\\": \\\"aws:sqs"
    "\\\", \\\"eventSourceARN\\\": \\\"arn:aws:sqs:us-east-2:123456789012:m"
    "y-queue\\\"}]}\"}";

/* Powertools (lambda_ keys) with an API GW v2 event as `message` */
static const char L_APIGW_V2[] =
    "{\"level\":\"INFO\",\"lambda_request_id\":\"aa11bb22-0000-4000-8000-00"
    "0000000001\",\"lambda_function_name\":\"items\",\"lambda_cold_start\":"
    "true,\"message\":{\"version\":\"2.0\",\"routeKey\":\"GET /items\",\"ra"
    "wPath\":\"/items\",\"headers\":{\"x-amzn-trace-id\":\"Root=1-5e9f0c65-"
    "1de4d666d4dd26aced652b6c\"},\"requestContext\":{\"accountId\":\"123456"
    "789012\",\"apiId\":\"aaaaaaaaaa\",\"http\":{\"method\":\"GET\",\"path"
    "\":\"/items\"},\"requestId\":\"LV7fzho-PHcEJPw=\",\"routeKey\":\"GET /"
    "items\",\"stage\":\"$default\",\"timeEpoch\":1587481701067}}}";

/* truncated JSON */
static const char L_TRUNC[] =
    "{\"level\":\"INFO\",\"function_request_id\":\"55d1c098-b0fd-429c-af21-"
    "6b7d6710d5be\",\"correlation_id\":\"abc\",\"event\":{\"Records\":[{\"e"
    "ventSource\":\"aws:sqs\",\"mess";

/* Powertools logEvent of an SNS subscription's Lambda event (field names as
 * in the Lambda developer guide's sample; EventSource is capitalised) */
static const char L_SNS[] =
    "{\"level\":\"INFO\",\"function_request_id\":\"7a3c1f2e-0b4d-4e5f-8a9"
    "b-0c1d2e3f4a5b\",\"event\":{\"Records\":[{\"EventSource\":\"aws:sns"
    "\",\"EventVersion\":\"1.0\",\"EventSubscriptionArn\":\"arn:aws:sns"
    ":us-east-1:123456789012:order-placed:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55"
    "\",\"Sns\":{\"Type\":\"Notification\",\"MessageId\":\"95df01b4-ee98-"
    "5cb9-9903-4c221d41eb5e\",\"TopicArn\":\"arn:aws:sns:us-east-1:12345678"
    "9012:order-placed\",\"Subject\":null,\"Message\":\"{\\\"orderId\\\""
    ":\\\"o-1\\\",\\\"correlation_id\\\":\\\"c-sns-1\\\"}\",\"Timestamp\":"
    "\"2026-12-02T10:00:00.125Z\",\"SignatureVersion\":\"1\",\"MessageAttri"
    "butes\":{}}}]}}";

/* an SQS record whose body SNS wrote (raw message delivery off), and one
 * whose body is an EventBridge event (a rule with an SQS target) */
static const char L_SQS_UP[] =
    "{\"level\":\"INFO\",\"function_request_id\":\"7a3c1f2e-0b4d-4e5f-8a9"
    "b-0c1d2e3f4a5c\",\"event\":{\"Records\":[{\"messageId\":\"q-1\",\"bo"
    "dy\":\"{\\\"Type\\\":\\\"Notification\\\",\\\"MessageId\\\":\\\"63a3"
    "f6b6-d533-4a47-aef9-fcf5cf758c76\\\",\\\"TopicArn\\\":\\\"arn:aws:sns:"
    "us-west-2:123456789012:MyTopic\\\",\\\"Message\\\":\\\"Hello world!\\\""
    ",\\\"Timestamp\\\":\\\"2012-03-29T05:12:16.901Z\\\"}\",\"attribute"
    "s\":{\"SentTimestamp\":\"1332997936950\"},\"eventSource\":\"aws:sqs\""
    ",\"eventSourceARN\":\"arn:aws:sqs:us-west-2:123456789012:billing\"},{\""
    "messageId\":\"q-2\",\"body\":\"{\\\"version\\\":\\\"0\\\",\\\"id\\\":"
    "\\\"6a7e8feb-b491-4cf7-a9f1-bf3703467718\\\",\\\"detail-type\\\":\\\"Or"
    "derPlaced\\\",\\\"source\\\":\\\"com.example.orders\\\",\\\"time\\\""
    ":\\\"2017-12-22T18:43:48Z\\\",\\\"detail\\\":{}}\",\"eventSource\":"
    "\"aws:sqs\",\"eventSourceARN\":\"arn:aws:sqs:us-west-2:123456789012:sh"
    "ipping\"}]}}";

/* the event an EventBridge rule's Lambda target receives, logged */
static const char L_EVENTBRIDGE[] =
    "{\"level\":\"INFO\",\"function_request_id\":\"7a3c1f2e-0b4d-4e5f-8a9"
    "b-0c1d2e3f4a5d\",\"event\":{\"version\":\"0\",\"id\":\"6a7e8feb-b491-"
    "4cf7-a9f1-bf3703467718\",\"detail-type\":\"OrderPlaced\",\"source\":"
    "\"com.example.orders\",\"account\":\"111122223333\",\"time\":\"2017-"
    "12-22T18:43:48Z\",\"region\":\"us-west-1\",\"resources\":[],\"detail"
    "\":{\"orderId\":\"o-2\",\"correlation_id\":\"c-eb-2\"}}}";

static struct ht_batch batch;

/*
 * Run one message through the decoder from a heap copy of exactly n bytes
 * (no NUL after it, so over-reads show up under sanitizers). Returns the
 * number of facts.
 */
static size_t run_n(const char *function, int64_t ts_us, const char *msg,
                    size_t n)
{
    struct ht_logctx ctx = {.log_group = "/aws/lambda/x",
                            .log_stream = "s",
                            .function = function,
                            .ts_us = ts_us};
    char *copy = malloc(n ? n : 1);

    if (!copy) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    memcpy(copy, msg, n);
    ht_batch_reset(&batch);
    ht_ingest_log_message(&batch, &ctx, copy, n);
    free(copy);
    return batch.nfacts;
}

static size_t run(const char *function, int64_t ts_us, const char *msg)
{
    return run_n(function, ts_us, msg, strlen(msg));
}

static const struct ht_fact *fact(size_t i)
{
    static const struct ht_fact none;

    if (i >= batch.nfacts) {
        fprintf(stderr, "  no fact %zu (have %zu)\n", i, batch.nfacts);
        failures++;
        return &none;
    }
    return &batch.facts[i];
}

static void test_platform_text(void)
{
    const struct ht_fact *f;

    CHECK(run("start-payment", 1795700000580000, L_REPORT_COLD) == 1);
    f = fact(0);
    CHECK(f->kind == HT_FACT_REPORT);
    CHECK_STR(f->request_id, "55d1c098-b0fd-429c-af21-6b7d6710d5be");
    CHECK_STR(f->function, "start-payment");
    CHECK(f->ts_us == 1795700000580000);
    CHECK(f->duration_us == 44210);
    CHECK(f->billed_ms == 45);
    CHECK(f->memory_mb == 512);
    CHECK(f->max_memory_mb == 111);
    CHECK(f->init_us == 477000);
    CHECK(f->flags == (HT_FACT_COLD | HT_FACT_HAS_TRACE | HT_FACT_HAS_SEGMENT));
    CHECK_TID(f->trace, "1-6b083520-c49c720af84bd7b4b9c2b14a");
    CHECK_ID8(f->segment, "941f15bb4e7924a3");
    CHECK(f->corr == NULL && f->record_id == NULL && f->apigw_id == NULL);

    CHECK(run("start-payment", 1795700000535000, L_START) == 1);
    f = fact(0);
    CHECK(f->kind == HT_FACT_START);
    CHECK_STR(f->request_id, "55d1c098-b0fd-429c-af21-6b7d6710d5be");
    CHECK_STR(f->function, "start-payment");
    CHECK(f->ts_us == 1795700000535000);
    CHECK(f->flags == 0);
    CHECK_TID(f->trace, NULL);

    CHECK(run(NULL, 1795700000580000, L_END) == 1);
    f = fact(0);
    CHECK(f->kind == HT_FACT_END);
    CHECK_STR(f->request_id, "55d1c098-b0fd-429c-af21-6b7d6710d5be");
    CHECK_STR(f->function, NULL);
    CHECK(f->flags == 0);

    CHECK(run("fn", 42, L_REPORT_WARM) == 1);
    f = fact(0);
    CHECK(f->kind == HT_FACT_REPORT);
    CHECK_STR(f->request_id, "c793869b-ee49-115b-a5b6-4fd21e8dedac");
    CHECK(f->ts_us == 42);
    CHECK(f->duration_us == 3000000);
    CHECK(f->billed_ms == 3000);
    CHECK(f->memory_mb == 128);
    CHECK(f->max_memory_mb == 74);
    CHECK(f->init_us == 0);
    CHECK(f->flags == (HT_FACT_WARM | HT_FACT_FAILED));
    CHECK_TID(f->trace, NULL);
    CHECK_ID8(f->segment, NULL);

    /* a runtime line with a text message says nothing */
    CHECK(run("fn", 42, L_NODE_TEXT) == 0);
}

static void test_powertools(void)
{
    const struct ht_fact *f;

    /* the line's function_name beats the context's; ctx time beats the
     * line's timestamp */
    CHECK(run("from-ctx", 1795700000578000, L_PT_CORR) == 1);
    f = fact(0);
    CHECK(f->kind == HT_FACT_CORR);
    CHECK_STR(f->request_id, "55d1c098-b0fd-429c-af21-6b7d6710d5be");
    CHECK_STR(f->function, "start-payment");
    CHECK(f->ts_us == 1795700000578000);
    CHECK_STR(f->corr, "5b437c74-8c6c-4f84-af37-b643b6e3d79b");
    CHECK(f->flags == (HT_FACT_WARM | HT_FACT_HAS_TRACE));
    CHECK_TID(f->trace, "1-6b083520-c49c720af84bd7b4b9c2b14a");

    /* no event time: the line's own timestamp is used */
    CHECK(run(NULL, 0, L_PT_DOC) == 1);
    f = fact(0);
    CHECK(f->kind == HT_FACT_CORR);
    CHECK_STR(f->request_id, "52fdfc07-2182-154f-163f-5f0f9a621d72");
    CHECK_STR(f->function, "test");
    CHECK(f->ts_us == 1620042432494000);
    CHECK_STR(f->corr, "correlation_id_value");
    CHECK(f->flags == HT_FACT_COLD);
    CHECK_TID(f->trace, NULL);

    /* Python runtime prefix, JSON message, camelCase key */
    CHECK(run("py", 5, L_PY) == 1);
    f = fact(0);
    CHECK(f->kind == HT_FACT_CORR);
    CHECK_STR(f->request_id, "b2de8fdb-259d-476f-9546-0b4822dce67a");
    CHECK_STR(f->function, "py");
    CHECK(f->ts_us == 5);
    CHECK_STR(f->corr, "c-py");
    CHECK(f->flags == 0);
}

static void test_sqs(void)
{
    const struct ht_fact *f;
    const char *rid = "94c247ab-a49f-488c-a019-d6f2da4dc942";

    CHECK(run("charge-card", 1795700001004000, L_SQS) == 3);
    f = fact(0);
    CHECK(f->kind == HT_FACT_TRACE);
    CHECK_STR(f->request_id, rid);
    CHECK_STR(f->function, "charge-card");
    CHECK(f->flags == (HT_FACT_WARM | HT_FACT_HAS_TRACE));
    CHECK_TID(f->trace, "1-6b083520-84eb04f0d14bb3b2b6748f4a");
    CHECK(f->corr == NULL);

    f = fact(1);
    CHECK(f->kind == HT_FACT_RECORD);
    CHECK(f->via == HT_VIA_SQS);
    CHECK_STR(f->request_id, rid);
    CHECK_STR(f->function, "charge-card");
    CHECK(f->ts_us == 1795700001004000);
    CHECK_STR(f->resource, "payments-queue");
    CHECK_STR(f->record_id, "82b6671c-9350-4108-ad9d-75d8d37a180a");
    CHECK(f->flags == HT_FACT_HAS_HDR);
    CHECK_TID(f->hdr_root, "1-6b083520-c49c720af84bd7b4b9c2b14a");
    CHECK_ID8(f->hdr_parent, "24f6a303b83ea7bd");
    CHECK(f->sent_us == 1795700000577000);
    CHECK_STR(f->corr, "5b437c74-8c6c-4f84-af37-b643b6e3d79b");

    f = fact(2);
    CHECK(f->kind == HT_FACT_RECORD);
    CHECK(f->via == HT_VIA_SQS);
    CHECK_STR(f->request_id, rid);
    CHECK_STR(f->resource, "payments-queue");
    CHECK_STR(f->record_id, "82d4ef60-b126-4751-ac2f-bfccd615afe1");
    CHECK(f->flags == HT_FACT_HAS_HDR);
    CHECK_TID(f->hdr_root, "1-6b083520-60d0cc5caf52d23b44eea30a");
    CHECK_ID8(f->hdr_parent, "a4ad1c23a48367ca");
    CHECK(f->sent_us == 1795700000574000);
    CHECK_STR(f->corr, "228480c1-98a4-427a-ab95-808623290d18");

    /* JSON log format app line, event as a JSON string in `message`, SNS
     * envelope body, header without Parent */
    CHECK(run("c", 9, L_JSON_APP_SQS) == 2);
    f = fact(0);
    CHECK(f->kind == HT_FACT_RECORD);
    CHECK(f->via == HT_VIA_SQS);
    CHECK_STR(f->request_id, "79b4f56e-95b1-4643-9700-2807f4e68189");
    CHECK_STR(f->function, "c");
    CHECK(f->ts_us == 9);
    CHECK_STR(f->resource, "my-queue");
    CHECK_STR(f->record_id, "m-1");
    CHECK(f->flags == 0);
    CHECK_TID(f->hdr_root, NULL);
    CHECK(f->sent_us == 1545082649183000);
    CHECK_STR(f->corr, "c-sns");
    f = fact(1);
    CHECK(f->kind == HT_FACT_RECORD);
    CHECK_STR(f->record_id, "m-2");
    CHECK(f->flags == 0);
    CHECK(f->sent_us == 0);
    CHECK_STR(f->corr, NULL);
}

static void test_sns_eventbridge(void)
{
    const struct ht_fact *f;

    /* SNS subscription: the message id, the topic's name, when SNS took
     * the publish, and the correlation id of the Message */
    CHECK(run("send-confirmation", 5, L_SNS) == 1);
    f = fact(0);
    CHECK(f->kind == HT_FACT_RECORD && f->via == HT_VIA_SNS);
    CHECK_STR(f->request_id, "7a3c1f2e-0b4d-4e5f-8a9b-0c1d2e3f4a5b");
    CHECK_STR(f->record_id, "95df01b4-ee98-5cb9-9903-4c221d41eb5e");
    CHECK_STR(f->resource, "order-placed");
    CHECK(f->sent_us == 1796205600125000);
    CHECK_STR(f->corr, "c-sns-1");
    CHECK(f->up_via == 0 && f->up_id == NULL);

    /* SQS records delivered by SNS and by EventBridge name that delivery */
    CHECK(run("bill", 6, L_SQS_UP) == 2);
    f = fact(0);
    CHECK(f->via == HT_VIA_SQS);
    CHECK_STR(f->record_id, "q-1");
    CHECK_STR(f->resource, "billing");
    CHECK(f->sent_us == 1332997936950000);
    CHECK(f->up_via == HT_VIA_SNS);
    CHECK_STR(f->up_id, "63a3f6b6-d533-4a47-aef9-fcf5cf758c76");
    CHECK_STR(f->up_resource, "MyTopic");
    CHECK(f->up_sent_us == 1332997936901000);
    f = fact(1);
    CHECK(f->via == HT_VIA_SQS);
    CHECK_STR(f->record_id, "q-2");
    CHECK(f->up_via == HT_VIA_EVENTBRIDGE);
    CHECK_STR(f->up_id, "6a7e8feb-b491-4cf7-a9f1-bf3703467718");
    CHECK(f->up_resource == NULL);
    CHECK(f->up_sent_us == 1513968228000000);

    /* a rule's Lambda target: the event id, its time, the detail's
     * correlation id; the bus is not in the event */
    CHECK(run("ship-order", 7, L_EVENTBRIDGE) == 1);
    f = fact(0);
    CHECK(f->kind == HT_FACT_RECORD && f->via == HT_VIA_EVENTBRIDGE);
    CHECK_STR(f->record_id, "6a7e8feb-b491-4cf7-a9f1-bf3703467718");
    CHECK(f->resource == NULL);
    CHECK(f->sent_us == 1513968228000000);
    CHECK_STR(f->corr, "c-eb-2");
}

static void test_streams(void)
{
    const struct ht_fact *f;
    const char *rid = "0e9b0c3a-1111-2222-3333-444455556666";

    /* no event time: the runtime line's ISO time is used */
    CHECK(run("consumer", 0, L_KINESIS) == 3);
    for (size_t i = 0; i < 3; i++) {
        f = fact(i);
        CHECK(f->kind == HT_FACT_RECORD);
        CHECK(f->via == HT_VIA_KINESIS);
        CHECK_STR(f->request_id, rid);
        CHECK_STR(f->function, "consumer");
        CHECK(f->ts_us == 1795700001000000);
        CHECK_STR(f->resource, "simple-stream");
        CHECK(f->flags == 0);
    }
    f = fact(0);
    CHECK_STR(f->record_id,
              "49568167373333333333333333333333333333333333333333333333");
    CHECK(f->sent_us == 1480641523477000);
    CHECK_STR(f->corr, "corr-k1");
    f = fact(1);
    CHECK_STR(f->record_id,
              "49568167373333333333333333333333333333333333333333333334");
    CHECK(f->sent_us == 1480641524000000);
    CHECK_STR(f->corr, "corr-k2"); /* gzip, one level deep */
    f = fact(2);
    CHECK_STR(f->record_id, "3");
    CHECK(f->sent_us == 0);
    CHECK_STR(f->corr, NULL); /* "Hello World" */

    CHECK(run("record-ledger", 1795700001753000, L_DDB) == 2);
    f = fact(0);
    CHECK(f->kind == HT_FACT_TRACE);
    CHECK_STR(f->request_id, "717787c3-372a-4bf0-a8e1-256d28bdc93c");
    CHECK(f->flags == (HT_FACT_WARM | HT_FACT_HAS_TRACE));
    CHECK_TID(f->trace, "1-6b083521-93c614581b5937b02c758e79");
    f = fact(1);
    CHECK(f->kind == HT_FACT_RECORD);
    CHECK(f->via == HT_VIA_DYNAMODB);
    CHECK_STR(f->request_id, "717787c3-372a-4bf0-a8e1-256d28bdc93c");
    CHECK_STR(f->function, "record-ledger");
    CHECK(f->ts_us == 1795700001753000);
    CHECK_STR(f->resource, "payments");
    CHECK_STR(f->record_id, "4000000000000000001287");
    CHECK(f->sent_us == 1795700001000000);
    CHECK_STR(f->corr, "228480c1-98a4-427a-ab95-808623290d18");
    CHECK(f->flags == 0);
}

static void test_apigw(void)
{
    const struct ht_fact *f;

    CHECK(run("start-payment", 1795700000535000, L_APIGW_V1) == 2);
    f = fact(0);
    CHECK(f->kind == HT_FACT_TRACE);
    CHECK_STR(f->request_id, "55d1c098-b0fd-429c-af21-6b7d6710d5be");
    f = fact(1);
    CHECK(f->kind == HT_FACT_APIGW);
    CHECK_STR(f->request_id, "55d1c098-b0fd-429c-af21-6b7d6710d5be");
    CHECK_STR(f->function, "start-payment");
    CHECK(f->ts_us == 1795700000535000);
    CHECK_STR(f->apigw_id, "5b437c74-8c6c-4f84-af37-b643b6e3d79b");
    CHECK_STR(f->ext_id, NULL);
    CHECK_STR(f->api_id, "abc123");
    CHECK_STR(f->stage, "prod");
    CHECK_STR(f->route, "POST /orders");
    CHECK(f->flags == HT_FACT_HAS_TRACE);
    CHECK_TID(f->trace, "1-6b083520-c49c720af84bd7b4b9c2b14a");
    CHECK(f->sent_us == 1795700000052000);

    CHECK(run("ctx", 11, L_APIGW_V2) == 1);
    f = fact(0);
    CHECK(f->kind == HT_FACT_APIGW);
    CHECK_STR(f->request_id, "aa11bb22-0000-4000-8000-000000000001");
    CHECK_STR(f->function, "items");
    CHECK(f->ts_us == 11);
    CHECK_STR(f->apigw_id, "LV7fzho-PHcEJPw=");
    CHECK_STR(f->ext_id, NULL);
    CHECK_STR(f->api_id, "aaaaaaaaaa");
    CHECK_STR(f->stage, "$default");
    CHECK_STR(f->route, "GET /items");
    CHECK(f->flags == HT_FACT_HAS_TRACE);
    CHECK_TID(f->trace, "1-5e9f0c65-1de4d666d4dd26aced652b6c");
    CHECK(f->sent_us == 1587481701067000);

    CHECK(run(NULL, 100, L_ACCESS) == 1);
    f = fact(0);
    CHECK(f->kind == HT_FACT_APIGW);
    CHECK_STR(f->request_id, "c793869b-ee49-115b-a5b6-4fd21e8dedac");
    CHECK_STR(f->function, NULL);
    CHECK(f->ts_us == 100);
    CHECK_STR(f->apigw_id, "deef4878-7910-11e6-8f14-25afc3e9ae33");
    CHECK_STR(f->ext_id, "TWegAcC4EowCHnA=");
    CHECK_STR(f->api_id, "gy415nuibc");
    CHECK_STR(f->stage, "prod");
    CHECK_STR(f->route, "POST /orders");
    CHECK(f->flags == HT_FACT_HAS_TRACE);
    CHECK_TID(f->trace, "1-5e66d96f-7491f09b779d18acf3d05011");
    CHECK(f->sent_us == 1589522469693000);

    CHECK(run(NULL, 100, L_ACCESS2) == 1);
    f = fact(0);
    CHECK(f->kind == HT_FACT_APIGW);
    CHECK_STR(f->request_id, NULL);
    CHECK_STR(f->apigw_id, "LV7fzho-PHcEJPw=");
    CHECK_STR(f->ext_id, NULL);
    CHECK_STR(f->route, "GET /items");
    CHECK(f->flags == 0);
    CHECK(f->sent_us == 0);
}

static void test_json_format(void)
{
    const struct ht_fact *f;

    CHECK(run("f", 7, L_JSON_REPORT) == 1);
    f = fact(0);
    CHECK(f->kind == HT_FACT_REPORT);
    CHECK_STR(f->request_id, "b2de8fdb-259d-476f-9546-0b4822dce67a");
    CHECK_STR(f->function, "f");
    CHECK(f->ts_us == 1719824094127000);
    CHECK(f->duration_us == 17493);
    CHECK(f->billed_ms == 18);
    CHECK(f->init_us == 235086);
    CHECK(f->max_memory_mb == 75);
    CHECK(f->memory_mb == 128);
    CHECK(f->flags == HT_FACT_COLD);

    CHECK(run("f", 7, L_JSON_FAIL) == 1);
    f = fact(0);
    CHECK(f->kind == HT_FACT_REPORT);
    CHECK(f->duration_us == 3000000);
    CHECK(f->billed_ms == 3000);
    CHECK(f->init_us == 0);
    CHECK(f->flags == (HT_FACT_WARM | HT_FACT_FAILED | HT_FACT_HAS_TRACE));
    CHECK_TID(f->trace, "1-62e900b2-710d76f009d6e7785905449a");

    CHECK(run("f", 7, L_JSON_START) == 1);
    f = fact(0);
    CHECK(f->kind == HT_FACT_START);
    CHECK_STR(f->request_id, "6d68ca91-49c9-448d-89b8-7ca3e6dc66aa");
    CHECK(f->ts_us == 1665532815064000);
    CHECK(f->flags == HT_FACT_HAS_TRACE);
    CHECK_TID(f->trace, "1-62e900b2-710d76f009d6e7785905449a");

    CHECK(run("f", 7, L_JSON_DONE) == 0);
}

static void test_junk(void)
{
    static const char garbage[] = "Error: \x01\x02 {not json}}\t\t\n";

    CHECK(run("f", 1, garbage) == 0);
    CHECK(run("f", 1, "") == 0);
    CHECK(run("f", 1, "   \t\n") == 0);
    CHECK(run("f", 1, L_TRUNC) == 0);
    CHECK(run("f", 1, "{}") == 0);
    CHECK(run("f", 1, "[1,2]") == 0);
    CHECK(run("f", 1, "REPORT ") == 0);
    CHECK(run("f", 1, "START RequestId:") == 0);
    CHECK(run("f", 1,
              "REPORT RequestId: x\tDuration: 99999999999999999999 ms") == 1);
    CHECK(fact(0)->duration_us == 0);
    /* NULL context and NULL message are tolerated */
    ht_batch_reset(&batch);
    ht_ingest_log_message(&batch, NULL, L_START, strlen(L_START));
    CHECK(batch.nfacts == 1);
    ht_ingest_log_message(&batch, NULL, NULL, 5);
    CHECK(batch.nfacts == 1);
}

/* Every prefix and some corrupted copies of every line: nothing crashes. */
static void test_robustness(void)
{
    static const char *const lines[] = {
        L_REPORT_COLD, L_START,     L_END,       L_REPORT_WARM,  L_PT_CORR,
        L_PT_DOC,      L_SQS,       L_APIGW_V1,  L_DDB,          L_KINESIS,
        L_PY,          L_NODE_TEXT, L_ACCESS,    L_ACCESS2,      L_JSON_REPORT,
        L_JSON_START,  L_JSON_DONE, L_JSON_FAIL, L_JSON_APP_SQS, L_APIGW_V2,
        L_TRUNC};
    unsigned seed = 12345;

    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        size_t n = strlen(lines[i]);
        char *copy = malloc(n + 1);

        if (!copy) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        for (size_t k = 0; k <= n; k++)
            run_n("f", 1, lines[i], k);
        for (int round = 0; round < 200; round++) {
            memcpy(copy, lines[i], n);
            for (int flips = 0; flips < 3; flips++) {
                seed = seed * 1103515245u + 12345u;
                copy[(seed >> 8) % n] = (char)(seed >> 20);
            }
            run_n("f", 1, copy, n);
        }
        free(copy);
    }
}

int main(void)
{
    if (ht_batch_init(&batch) != 0) {
        fprintf(stderr, "ht_batch_init failed\n");
        return 1;
    }
    test_platform_text();
    test_powertools();
    test_sqs();
    test_sns_eventbridge();
    test_streams();
    test_apigw();
    test_json_format();
    test_junk();
    test_robustness();
    ht_batch_free(&batch);
    if (failures) {
        fprintf(stderr, "test_logs: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_logs: ok\n");
    return 0;
}
