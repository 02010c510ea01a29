/*
 * test_decode.c - unit tests of ingest/: payload sniffing and the X-Ray and
 * envelope decoders (every document kind of design.md's table), the
 * reject reasons, and the streaming reader (NDJSON with a bad line,
 * concatenated and pretty-printed JSON, gzip, resuming at an offset).
 */
#define _GNU_SOURCE
#include "hjson.h"
#include "ht_ingest.h"
#include "ht_test.h"

#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>
#include <sys/stat.h>

#define SEG                                                                    \
    "{\"trace_id\":\"1-6b083520-c49c720af84bd7b4b9c2b14a\",\"id\":"            \
    "\"86ff721126a64905\",\"start_time\":1795700000.0520933,\"name\":"         \
    "\"checkout-api/live\",\"origin\":\"AWS::ApiGateway::Stage\",\"aws\":{"    \
    "\"api_gateway\":{\"rest_api_id\":\"abc123\",\"stage\":\"prod\","          \
    "\"request_id\":\"5b437c74\"}},\"subsegments\":[{\"id\":"                  \
    "\"6fe31d2b485d77f5\",\"name\":\"Lambda\",\"start_time\":1.7957000000"     \
    "550933E9,\"namespace\":\"aws\",\"aws\":{\"function_name\":"               \
    "\"start-payment\",\"operation\":\"Invoke\"},\"end_time\":1795700000.58"   \
    "00066}],\"end_time\":1795700000.5820067}"

#define SQS_SUB                                                                \
    "{\"type\":\"subsegment\",\"trace_id\":\"1-6b083520-c49c720af84bd7b4b9c"   \
    "2b14a\",\"parent_id\":\"75a5c05990eab629\",\"id\":\"24f6a303b83ea7bd\","  \
    "\"name\":\"SQS\",\"start_time\":1795700000.5561056,\"end_time\":"         \
    "1795700000.5768065,\"namespace\":\"aws\",\"aws\":{\"operation\":"         \
    "\"SendMessage\",\"queue_url\":\"https://sqs.us-east-1.amazonaws.com/1"    \
    "23456789012/payments-queue\",\"message_id\":\"82b6671c\"},"               \
    "\"annotations\":{\"correlation_id\":\"order-1\"}}"

static struct ht_batch b;
static const struct ht_srcpos pos = {"test", 0};

static void feed(const char *s)
{
    ht_batch_reset(&b);
    ht_ingest_payload(&b, &pos, s, strlen(s));
}

static int total_rejects(void)
{
    int n = 0;

    for (int i = 0; i < HT_REJ__COUNT; i++)
        n += (int)b.rejected[i];
    return n;
}

static char *escape_json(const char *s)
{
    struct ht_buf x;

    ht_buf_init(&x);
    ht_buf_json_str(&x, s);
    return x.data; /* caller frees */
}

static void test_xray(void)
{
    char buf[8192];
    char *esc;

    feed(SEG);
    CHECK(b.nspans == 2 && total_rejects() == 0);
    CHECK(b.spans[0].kind == HT_SK_APIGW);
    CHECK_STREQ(b.spans[0].request_id, "5b437c74");
    CHECK_STREQ(b.spans[0].api_id, "abc123");
    CHECK(b.spans[0].start_us == 1795700000052093LL);
    CHECK(b.spans[1].kind == HT_SK_CALL);
    CHECK(b.spans[1].start_us == 1795700000055093LL);
    CHECK(b.spans[1].flags & HT_SPAN_HAS_PARENT);
    CHECK_STREQ(b.spans[1].resource, "start-payment");

    feed(SQS_SUB);
    CHECK(b.nspans == 1);
    CHECK(b.spans[0].via == HT_VIA_SQS && (b.spans[0].flags & HT_SPAN_WRITE));
    CHECK_STREQ(b.spans[0].resource, "payments-queue");
    CHECK_STREQ(b.spans[0].message_id, "82b6671c");
    CHECK_STREQ(b.spans[0].corr, "order-1");

    /* daemon datagram: header line + document */
    feed("{\"format\": \"json\", \"version\": 1}\n" SQS_SUB);
    CHECK(b.nspans == 1 && total_rejects() == 0);

    /* PutTraceSegments body and BatchGetTraces response */
    esc = escape_json(SQS_SUB);
    snprintf(buf, sizeof(buf), "{\"TraceSegmentDocuments\":[%s,%s]}", esc, esc);
    feed(buf);
    CHECK(b.nspans == 2 && total_rejects() == 0);
    snprintf(buf, sizeof(buf),
             "{\"Traces\":[{\"Id\":\"x\",\"Segments\":[{\"Id\":\"a\","
             "\"Document\":%s}]}]}",
             esc);
    feed(buf);
    CHECK(b.nspans == 1 && total_rejects() == 0);
    free(esc);

    /* an array of documents, pretty printed over several lines */
    feed("[\n  " SEG ",\n  " SQS_SUB "\n]\n");
    CHECK(b.nspans == 3 && total_rejects() == 0);

    /* SNS Publish: the resource is the topic's name from its ARN */
    feed("{\"trace_id\":\"1-6b083520-c49c720af84bd7b4b9c2b14a\",\"id\":"
         "\"86ff721126a64906\",\"start_time\":1795700000,\"end_time\":"
         "1795700000.02,\"name\":\"SNS\",\"namespace\":\"aws\",\"aws\":{"
         "\"operation\":\"Publish\",\"topic_arn\":"
         "\"arn:aws:sns:us-east-1:123456789012:order-events\"}}");
    CHECK(b.nspans == 1 && total_rejects() == 0);
    CHECK_STREQ(b.spans[0].resource, "order-events");
    /* ... a producer of an SNS hop; the MessageId a custom whitelist
     * records is its message id */
    CHECK(b.spans[0].via == HT_VIA_SNS && (b.spans[0].flags & HT_SPAN_WRITE));
    CHECK(b.spans[0].message_id == NULL);
    feed("{\"trace_id\":\"1-6b083520-c49c720af84bd7b4b9c2b14a\",\"id\":"
         "\"86ff721126a64907\",\"start_time\":1795700000,\"end_time\":"
         "1795700000.02,\"name\":\"SNS\",\"namespace\":\"aws\",\"aws\":{"
         "\"operation\":\"Publish\",\"topic_arn\":"
         "\"arn:aws:sns:us-east-1:123456789012:order-events\",\"message_id\":"
         "\"95df01b4-ee98-5cb9-9903-4c221d41eb5e\"}}");
    CHECK(b.nspans == 1 && b.spans[0].via == HT_VIA_SNS);
    CHECK_STREQ(b.spans[0].message_id, "95df01b4-ee98-5cb9-9903-4c221d41eb5e");
    /* PublishBatch: a producer too (its entries' ids are not recorded) */
    feed("{\"trace_id\":\"1-6b083520-c49c720af84bd7b4b9c2b14a\",\"id\":"
         "\"86ff721126a6490a\",\"start_time\":1795700000,\"end_time\":"
         "1795700000.02,\"name\":\"SNS\",\"namespace\":\"aws\",\"aws\":{"
         "\"operation\":\"PublishBatch\",\"topic_arn\":"
         "\"arn:aws:sns:us-east-1:123456789012:order-events\"}}");
    CHECK(b.nspans == 1 && b.spans[0].via == HT_VIA_SNS &&
          (b.spans[0].flags & HT_SPAN_WRITE));
    /* any other SNS call is no producer */
    feed("{\"trace_id\":\"1-6b083520-c49c720af84bd7b4b9c2b14a\",\"id\":"
         "\"86ff721126a6490b\",\"start_time\":1795700000,\"end_time\":"
         "1795700000.02,\"name\":\"SNS\",\"namespace\":\"aws\",\"aws\":{"
         "\"operation\":\"ListTopics\"}}");
    CHECK(b.nspans == 1 && b.spans[0].via == HT_VIA_NONE &&
          !(b.spans[0].flags & HT_SPAN_WRITE));

    /* EventBridge PutEvents: the bus when recorded (an ARN's last part),
     * else the default bus */
    feed("{\"trace_id\":\"1-6b083520-c49c720af84bd7b4b9c2b14a\",\"id\":"
         "\"86ff721126a64908\",\"start_time\":1795700000,\"end_time\":"
         "1795700000.02,\"name\":\"EventBridge\",\"namespace\":\"aws\","
         "\"aws\":{\"operation\":\"PutEvents\",\"region\":\"us-east-1\"}}");
    CHECK(b.nspans == 1 && total_rejects() == 0);
    CHECK(b.spans[0].via == HT_VIA_EVENTBRIDGE &&
          (b.spans[0].flags & HT_SPAN_WRITE));
    CHECK_STREQ(b.spans[0].resource, "default");
    feed("{\"trace_id\":\"1-6b083520-c49c720af84bd7b4b9c2b14a\",\"id\":"
         "\"86ff721126a64909\",\"start_time\":1795700000,\"end_time\":"
         "1795700000.02,\"name\":\"EventBridge\",\"namespace\":\"aws\","
         "\"aws\":{\"operation\":\"PutEvents\",\"event_bus_name\":"
         "\"arn:aws:events:us-east-1:123456789012:event-bus/orders-bus\"}}");
    CHECK(b.nspans == 1 && b.spans[0].via == HT_VIA_EVENTBRIDGE);
    CHECK_STREQ(b.spans[0].resource, "orders-bus");

    /* in progress */
    feed("{\"trace_id\":\"1-6b083520-c49c720af84bd7b4b9c2b14a\",\"id\":"
         "\"86ff721126a64905\",\"start_time\":1795700000,\"name\":\"x\","
         "\"in_progress\":true}");
    CHECK(b.nspans == 1 && (b.spans[0].flags & HT_SPAN_IN_PROGRESS));
}

static void test_rejects(void)
{
    static char big[70000 + 300];

    feed("{\"trace_id\":\"1-6b083520-c49c720af84bd7b4b9c2b14a\",\"id\":"
         "\"86ff721126a6490\",\"start_time\":1,\"end_time\":2,\"name\":\"x\"}");
    CHECK(b.rejected[HT_REJ_BAD_ID] == 1 && b.nspans == 0);
    feed(
        "{\"trace_id\":\"1-6b0835-c49c720af84bd7b4b9c2b14a\",\"id\":"
        "\"86ff721126a64905\",\"start_time\":1,\"end_time\":2,\"name\":\"x\"}");
    CHECK(b.rejected[HT_REJ_BAD_ID] == 1);
    feed("{\"trace_id\":\"1-6b083520-c49c720af84bd7b4b9c2b14a\",\"id\":"
         "\"86ff721126a64905\",\"start_time\":1,\"name\":\"x\"}");
    CHECK(b.rejected[HT_REJ_MISSING_FIELD] == 1);
    /* a bad nested subsegment rejects the whole document */
    feed("{\"trace_id\":\"1-6b083520-c49c720af84bd7b4b9c2b14a\",\"id\":"
         "\"86ff721126a64905\",\"start_time\":1,\"end_time\":2,\"name\":\"x\","
         "\"subsegments\":[{\"id\":\"zz\",\"start_time\":1,\"end_time\":2,"
         "\"name\":\"y\"}]}");
    CHECK(b.rejected[HT_REJ_BAD_ID] == 1 && b.nspans == 0);
    feed("hello world\n");
    CHECK(b.rejected[HT_REJ_NOT_JSON] == 1);
    feed("{\"some\":\"thing\"}");
    CHECK(b.rejected[HT_REJ_UNKNOWN_DOC] == 1);
    feed("{\"awslogs\":{\"data\":\"%%%\"}}");
    CHECK(b.rejected[HT_REJ_BAD_ENCODING] == 1);
    {
        char deep[400] = "";

        for (int i = 0; i < 70; i++)
            strcat(deep, "[");
        for (int i = 0; i < 70; i++)
            strcat(deep, "]");
        feed(deep);
        CHECK(b.rejected[HT_REJ_TOO_DEEP] == 1);
    }
    snprintf(big, sizeof(big),
             "{\"trace_id\":\"1-6b083520-c49c720af84bd7b4b9c2b14a\",\"id\":"
             "\"86ff721126a64905\",\"start_time\":1,\"end_time\":2,\"name\":"
             "\"x\",\"metadata\":{\"x\":\"%070000d\"}}",
             0);
    feed(big);
    CHECK(b.rejected[HT_REJ_TOO_LARGE] == 1 && b.nspans == 0);
    /* a delimited value decodes like a payload */
    ht_batch_reset(&b);
    ht_ingest_value(&b, &pos, SQS_SUB, strlen(SQS_SUB), 2);
    CHECK(b.nspans == 1 && total_rejects() == 0);
    ht_batch_reset(&b);
    ht_ingest_value(&b, &pos, "[[]]", 4, 70);
    CHECK(b.rejected[HT_REJ_TOO_DEEP] == 1);
    ht_batch_reset(&b);
    ht_ingest_value(&b, &pos, "garbage", 7, -1);
    CHECK(b.rejected[HT_REJ_NOT_JSON] == 1);
    /* one bad NDJSON line loses nothing else */
    feed(SQS_SUB "\n{\"trace_id\":\"1-6b0835\n" SEG "\n");
    CHECK(b.nspans == 3 && b.rejected[HT_REJ_NOT_JSON] == 1);
    CHECK(b.nrejects == 1 && b.rejects[0].sample_len > 0);
}

static void test_logs_envelopes(void)
{
    const char *cwl =
        "{\"messageType\":\"DATA_MESSAGE\",\"owner\":\"1\",\"logGroup\":"
        "\"/aws/lambda/charge-card\",\"logStream\":\"s\",\"subscription"
        "Filters\":[],\"logEvents\":[{\"id\":\"1\",\"timestamp\":1795700001004,"
        "\"message\":\"START RequestId: 94c247ab Version: $LATEST\\n\"}]}";

    feed(cwl);
    CHECK(b.nfacts == 1 && b.facts[0].kind == HT_FACT_START);
    CHECK_STREQ(b.facts[0].function, "charge-card");
    CHECK(b.facts[0].ts_us == 1795700001004000LL);
    feed("{\"messageType\":\"CONTROL_MESSAGE\",\"logEvents\":[]}");
    CHECK(b.dropped == 1 && total_rejects() == 0 && b.nfacts == 0);
    feed("{\"events\":[{\"logStreamName\":\"s\",\"timestamp\":1,\"message\":"
         "\"END RequestId: 94c247ab\\n\",\"eventId\":\"1\"}]}");
    CHECK(b.nfacts == 1 && b.facts[0].kind == HT_FACT_END);

    /* awslogs.data and a Kinesis GetRecords record carry gzip'd messages */
    {
        uint8_t gz[1024];
        z_stream zs;
        char b64[2048], doc[8192];
        static const char al[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        size_t gzn, o = 0;

        memset(&zs, 0, sizeof(zs));
        deflateInit2(&zs, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
        zs.next_in = (Bytef *)cwl;
        zs.avail_in = (uInt)strlen(cwl);
        zs.next_out = gz;
        zs.avail_out = sizeof(gz);
        deflate(&zs, Z_FINISH);
        gzn = sizeof(gz) - zs.avail_out;
        deflateEnd(&zs);
        for (size_t i = 0; i < gzn; i += 3) {
            uint32_t v = (uint32_t)gz[i] << 16;
            if (i + 1 < gzn)
                v |= (uint32_t)gz[i + 1] << 8;
            if (i + 2 < gzn)
                v |= gz[i + 2];
            b64[o++] = al[v >> 18 & 63];
            b64[o++] = al[v >> 12 & 63];
            b64[o++] = i + 1 < gzn ? al[v >> 6 & 63] : '=';
            b64[o++] = i + 2 < gzn ? al[v & 63] : '=';
        }
        b64[o] = 0;
        snprintf(doc, sizeof(doc), "{\"awslogs\":{\"data\":\"%s\"}}", b64);
        feed(doc);
        CHECK(b.nfacts == 1 && total_rejects() == 0);
        snprintf(doc, sizeof(doc),
                 "{\"Records\":[{\"SequenceNumber\":\"1\",\"Data\":\"%s\"},"
                 "{\"SequenceNumber\":\"2\",\"Data\":\"%s\"}],"
                 "\"MillisBehindLatest\":0}",
                 b64, b64);
        feed(doc);
        CHECK(b.nfacts == 2 && total_rejects() == 0);
        snprintf(doc, sizeof(doc),
                 "{\"Records\":[{\"kinesis\":{\"data\":\"%s\"},\"eventSource\":"
                 "\"aws:kinesis\"}]}",
                 b64);
        feed(doc);
        CHECK(b.nfacts == 1 && total_rejects() == 0);
        /* gzip inside gzip, as a file of gzip'd messages would be */
        ht_batch_reset(&b);
        ht_ingest_payload(&b, &pos, gz, gzn);
        CHECK(b.nfacts == 1);
        ht_batch_reset(&b);
        /* in a payload, a gzip member that ends early is bad encoding
         * (files and streams count `truncated`: reader.c) */
        ht_ingest_payload(&b, &pos, gz, gzn - 4);
        CHECK(b.rejected[HT_REJ_BAD_ENCODING] == 1 && total_rejects() == 1);
        {
            uint8_t *uz = NULL;
            size_t uzn = 0;

            CHECK(ht_gunzip(gz, gzn - 4, 1 << 20, &uz, &uzn) == -2 && !uz);
        }
        ht_batch_reset(&b);
        {
            uint8_t bad[64];

            memcpy(bad, gz, 10); /* a gzip header, then no deflate data */
            memset(bad + 10, 0xff, sizeof(bad) - 10);
            ht_ingest_payload(&b, &pos, bad, sizeof(bad));
            CHECK(b.rejected[HT_REJ_BAD_ENCODING] == 1 && total_rejects() == 1);
        }
    }
}

static void write_file(const char *path, const char *s, bool gz)
{
    if (gz) {
        gzFile f = gzopen(path, "wb");
        gzwrite(f, s, (unsigned)strlen(s));
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        fputs(s, f);
        fclose(f);
    }
}

static void test_reader(void)
{
    char path[] = "/tmp/ht_test_reader_XXXXXX";
    int fd = mkstemp(path);
    const char *content = "{\"a\":1}\n{\"b\":\n 2}\n  [1,2]{\"c\":3}\n"
                          "{\"bad\":\n{\"d\":4}\ngarbage line\n";
    const char *want[] = {"{\"a\":1}",   "{\"b\":\n 2}", "[1,2]",
                          "{\"c\":3}",   "{\"bad\":",    "{\"d\":4}",
                          "garbage line"};

    CHECK(fd >= 0);
    close(fd);
    for (int gz = 0; gz < 2; gz++) {
        struct ht_reader *r;
        const char *v;
        size_t n;
        uint64_t off, third = 0;
        bool tl;
        int i = 0;

        write_file(path, content, gz);
        CHECK(ht_reader_open(path, &r) == HT_ERR_OK);
        while (ht_reader_next(r, &v, &n, &off, &tl) == 1) {
            CHECK(i < 7);
            if (i < 7 && (n != strlen(want[i]) || memcmp(v, want[i], n))) {
                fprintf(stderr, "value %d: got '%.*s'\n", i, (int)n, v);
                ht_test_failures++;
            }
            if (i == 2)
                third = off;
            /* a line that opens and closes like one value is handed over
             * unscanned (the parser checks it); other bracketed values with
             * the depth the reader measured, so they are not scanned twice */
            if (i == 0 || i == 3 || i == 5)
                CHECK(ht_reader_depth(r) == HT_DEPTH_LINE);
            if (i == 1 || i == 2)
                CHECK(ht_reader_depth(r) == 1);
            if (i == 4 || i == 6)
                CHECK(ht_reader_depth(r) == -1);
            i++;
        }
        CHECK(i == 7);
        ht_reader_close(r);
        /* a line of two values: refused whole, then scanned */
        write_file(path, "{\"e\":5}{\"f\":6}\n", gz);
        CHECK(ht_reader_open(path, &r) == HT_ERR_OK);
        CHECK(ht_reader_next(r, &v, &n, &off, &tl) == 1);
        CHECK(n == 14 && ht_reader_depth(r) == HT_DEPTH_LINE);
        ht_reader_rescan(r);
        CHECK(ht_reader_next(r, &v, &n, &off, &tl) == 1);
        CHECK(n == 7 && memcmp(v, "{\"e\":5}", 7) == 0 && off == 0 &&
              ht_reader_depth(r) == 1);
        CHECK(ht_reader_next(r, &v, &n, &off, &tl) == 1);
        CHECK(n == 7 && memcmp(v, "{\"f\":6}", 7) == 0 && off == 7 &&
              ht_reader_depth(r) == HT_DEPTH_LINE);
        ht_reader_close(r);
        write_file(path, content, gz);
        /* resume at a checkpoint */
        CHECK(ht_reader_open(path, &r) == HT_ERR_OK);
        CHECK(ht_reader_skip_to(r, third) == HT_ERR_OK);
        CHECK(ht_reader_next(r, &v, &n, &off, &tl) == 1);
        CHECK(n == 5 && memcmp(v, "[1,2]", 5) == 0 && off == third);
        ht_reader_close(r);
    }
    unlink(path);
    CHECK(ht_reader_open("/nonexistent/file", &(struct ht_reader *){0}) ==
          HT_ERR_IO);
}

/* Reads a file value by value as cmd_ingest does, into a reset batch. */
static void ingest_file(const char *path)
{
    struct ht_reader *r;
    const char *v;
    size_t n;
    uint64_t off;
    bool tl;
    struct ht_srcpos p = {.source = path};

    ht_batch_reset(&b);
    CHECK(ht_reader_open(path, &r) == HT_ERR_OK);
    while (ht_reader_next(r, &v, &n, &off, &tl) == 1) {
        p.offset = off;
        if (!ht_ingest_value(&b, &p, v, n, ht_reader_depth(r))) {
            ht_reader_rescan(r);
            continue;
        }
    }
    ht_reader_close(r);
}

/* The daemon's header rules, on a datagram's header line (UDP) and inside
 * files and payloads alike: "format" json in any case and version 1 are
 * accepted; anything else is rejected once, its document with it. */
static void test_daemon_headers(void)
{
    static const char *const good[] = {
        "{\"format\":\"json\",\"version\":1}",
        "{\"format\": \"jSoN\", \"version\": 1}",
        "{ \"version\" : 1 , \"format\" : \"JSON\" }"};
    static const char *const bad[] = {"{\"format\":\"json\",\"version\":2}",
                                      "{\"format\":\"xml\",\"version\":1}",
                                      "{\"format\":\"json\",\"version\":\"1\"}",
                                      "{\"format\":\"json\"}",
                                      "{\"version\":1}",
                                      "{\"format\":\"json\",\"version\":1.5}"};
    char why[160], path[] = "/tmp/ht_test_hdr_XXXXXX", body[4096];
    int fd;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        CHECK(ht_ingest_daemon_header(&b, good[i], strlen(good[i]), why,
                                      sizeof(why)));
        snprintf(body, sizeof(body), "%s\n%s\n", good[i], SQS_SUB);
        feed(body);
        CHECK(b.nspans == 1 && total_rejects() == 0);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = 0;
        CHECK(!ht_ingest_daemon_header(&b, bad[i], strlen(bad[i]), why,
                                       sizeof(why)));
        CHECK(why[0] != 0);
        /* in one payload (stdin, a Kafka message): the header is rejected
         * once, its document dropped, and the next datagram is judged on
         * its own */
        snprintf(body, sizeof(body), "%s\n%s\n%s\n%s\n", bad[i], SQS_SUB,
                 good[0], SEG);
        feed(body);
        CHECK(total_rejects() == 1 && b.rejected[HT_REJ_BAD_FIELD] == 1);
        CHECK(b.nspans == 2 && b.spans[0].kind == HT_SK_APIGW);
        CHECK(b.nrejects == 1 && strstr(b.rejects[0].detail, "daemon header"));
        CHECK(b.dropped == 1);
    }
    CHECK(!ht_ingest_daemon_header(&b, "not json", 8, why, sizeof(why)));
    CHECK(!ht_ingest_daemon_header(&b, "[1]", 3, NULL, 0));

    /* in a file read value by value: the same */
    fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    snprintf(body, sizeof(body),
             "{\"format\": \"jSoN\", \"version\": 1}\n%s\n"
             "{\"format\": \"json\", \"version\": 2}\n%s\n"
             "{\"format\": \"xml\", \"version\": 1}\n"
             "{\"trace_id\":\n\"1-6b083520-c49c720af84bd7b4b9c2b14a\", \"id\": "
             "\"1111111111111111\", \"start_time\": 1, \"end_time\": 2, "
             "\"name\": \"pretty\"}\n"
             "{\"format\":\"json\",\"version\":1}\n%s\n",
             SQS_SUB, SEG, SEG);
    write_file(path, body, 0);
    ingest_file(path);
    CHECK(b.nspans == 3); /* the first SQS_SUB and the last SEG */
    CHECK(b.rejected[HT_REJ_BAD_FIELD] == 2 && total_rejects() == 2);
    CHECK(b.dropped == 2);
    for (size_t i = 0; i < b.nspans; i++)
        CHECK(strcmp(b.spans[i].name, "pretty") != 0);
    /* a bad document after a bad header is the header's reject, not a
     * second one; a file ending on a bad header leaves nothing waiting */
    write_file(path,
               "{\"format\":\"json\",\"version\":3}\nnot json at all\n"
               "\n\n\n\n\n\n\n\n\n\n{\"format\":\"json\",\"version\":3}\n",
               0);
    ingest_file(path);
    CHECK(total_rejects() == 2 && b.dropped == 1);
    write_file(path, SQS_SUB "\n", 0);
    ingest_file(path);
    CHECK(total_rejects() == 0 && b.nspans == 1);
    unlink(path);

    /* more sources waiting at once than the decoder remembers: a few
     * documents get through, nothing else goes wrong */
    {
        static const char hdr[] = "{\"format\":\"json\",\"version\":2}";
        char names[10][16];
        struct ht_srcpos p[10];

        ht_batch_reset(&b);
        for (int i = 0; i < 10; i++) {
            snprintf(names[i], sizeof(names[i]), "src-%d", i);
            p[i] = (struct ht_srcpos){.source = names[i], .offset = 0};
            CHECK(ht_ingest_value(&b, &p[i], hdr, strlen(hdr), 1));
        }
        for (int i = 0; i < 10; i++) {
            p[i].offset = 100;
            CHECK(ht_ingest_value(&b, &p[i], SQS_SUB, strlen(SQS_SUB), 2));
        }
        CHECK(b.rejected[HT_REJ_BAD_FIELD] == 10 && b.dropped == 8 &&
              b.nspans == 2);
        for (int i = 0; i < 10; i++) {
            p[i].offset = 200;
            CHECK(ht_ingest_value(&b, &p[i], SQS_SUB, strlen(SQS_SUB), 2));
        }
        CHECK(b.dropped == 8 && b.nspans == 12);
    }

    /* payloads (Kafka messages, Kinesis records, datagrams) hold their
     * header and its document together: a message that is only a bad
     * header takes nothing from the next message of its partition (it
     * took the next message's segment, counted as dropped, before) */
    {
        static const char hdr[] = "{\"format\":\"json\",\"version\":2}\n";
        struct ht_srcpos m1 = {"kafka:t/0", 41}, m2 = {"kafka:t/0", 42};
        size_t spans;

        ht_batch_reset(&b);
        ht_ingest_payload(&b, &m1, hdr, strlen(hdr));
        spans = b.nspans;
        ht_ingest_payload(&b, &m2, SEG, strlen(SEG));
        CHECK(total_rejects() == 1 && b.dropped == 0 && b.nspans > spans);
    }
    /* a source that ended on a bad header (ht_ingest_source_end, at a
     * file's end) takes nothing from the next source of its name, even at
     * a later offset */
    {
        static const char hdr[] = "{\"format\":\"json\",\"version\":2}";
        struct ht_srcpos f1 = {"same-name", 0};
        size_t spans;

        ht_batch_reset(&b);
        CHECK(ht_ingest_value(&b, &f1, hdr, strlen(hdr), 1));
        ht_ingest_source_end(&f1);
        spans = b.nspans;
        f1.offset = 500;
        CHECK(ht_ingest_value(&b, &f1, SEG, strlen(SEG), 1));
        CHECK(total_rejects() == 1 && b.dropped == 0 && b.nspans > spans);
    }
}

/* What the OpenTelemetry collector's X-Ray decoder refuses (docs/formats.md
 * section 1): a `cause` that is neither an exception id nor an object, a
 * `namespace` that is none of aws, remote, local. Rejected, the document
 * as a whole; what it allows stays accepted. */
static void test_collector_invalid(void)
{
    static const char *const ok[] = {
        "{\"trace_id\":\"1-6b083520-c49c720af84bd7b4b9c2b14a\",\"id\":"
        "\"1111111111111111\",\"start_time\":1,\"end_time\":2,\"name\":\"a\","
        "\"cause\":\"0123456789abcdef\"}",
        "{\"trace_id\":\"1-6b083520-c49c720af84bd7b4b9c2b14a\",\"id\":"
        "\"1111111111111111\",\"start_time\":1,\"end_time\":2,\"name\":\"a\","
        "\"fault\":true,\"cause\":{\"exceptions\":[{\"id\":\"0123456789abcdef\""
        ",\"message\":\"boom\"}]},\"subsegments\":[{\"id\":\"2222222222222222\""
        ",\"name\":\"b\",\"start_time\":1,\"end_time\":2,\"namespace\":"
        "\"local\"},{\"id\":\"3333333333333333\",\"name\":\"c\",\"start_time\""
        ":1,\"end_time\":2,\"namespace\":\"remote\"}]}"};
    static const char *const bad[] = {
        "{\"trace_id\":\"1-6b083520-c49c720af84bd7b4b9c2b14a\",\"id\":"
        "\"1111111111111111\",\"start_time\":1,\"end_time\":2,\"name\":\"a\","
        "\"cause\":200}",
        "{\"trace_id\":\"1-6b083520-c49c720af84bd7b4b9c2b14a\",\"id\":"
        "\"1111111111111111\",\"start_time\":1,\"end_time\":2,\"name\":\"a\","
        "\"subsegments\":[{\"id\":\"2222222222222222\",\"name\":\"b\","
        "\"start_time\":1,\"end_time\":2,\"namespace\":\"foo\"}]}",
        "{\"trace_id\":\"1-6b083520-c49c720af84bd7b4b9c2b14a\",\"id\":"
        "\"1111111111111111\",\"start_time\":1,\"end_time\":2,\"name\":\"a\","
        "\"subsegments\":[{\"id\":\"2222222222222222\",\"name\":\"b\","
        "\"start_time\":1,\"end_time\":2,\"cause\":[1]}]}",
        "{\"trace_id\":\"1-6b083520-c49c720af84bd7b4b9c2b14a\",\"id\":"
        "\"1111111111111111\",\"start_time\":1,\"end_time\":2,\"name\":\"a\","
        "\"namespace\":7}"};

    feed(ok[0]);
    CHECK(b.nspans == 1 && total_rejects() == 0);
    feed(ok[1]);
    CHECK(b.nspans == 3 && total_rejects() == 0);
    CHECK(b.spans[1].kind == HT_SK_LOCAL && b.spans[2].kind == HT_SK_CALL);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        feed(bad[i]);
        CHECK(b.nspans == 0 && b.rejected[HT_REJ_BAD_FIELD] == 1 &&
              total_rejects() == 1);
        CHECK(b.nrejects == 1 && (strstr(b.rejects[0].detail, "cause") ||
                                  strstr(b.rejects[0].detail, "namespace")));
    }
}

/* Function names of plain Lambda logs: from the log group, wherever the
 * documents give one, else from the log group the source was given
 * (ingest --log-group, the batch's default_log_group). */
static void test_log_group(void)
{
    const char *fle =
        "{\"events\":[{\"logStreamName\":\"2026/12/02/[$LATEST]ab\","
        "\"timestamp\":1795700000000,\"message\":\"START RequestId: "
        "r-1 Version: $LATEST\\n\",\"eventId\":\"1\"},{\"logStreamName\":"
        "\"2026/12/02/[$LATEST]ab\",\"timestamp\":1795700000100,\"message\":"
        "\"REPORT RequestId: r-1\\tDuration: 100.00 ms\\tBilled Duration: 100 "
        "ms\\tMemory Size: 128 MB\\tMax Memory Used: 64 MB\\t\\n\",\"eventId\":"
        "\"2\"}],\"searchedLogStreams\":[]}";
    const char *per_event =
        "{\"events\":[{\"logGroupName\":\"/aws/lambda/from-event\","
        "\"timestamp\":1795700000000,\"message\":\"START RequestId: r-2 "
        "Version: $LATEST\\n\"}]}";
    const char *cwl =
        "{\"messageType\":\"DATA_MESSAGE\",\"logGroup\":\"/aws/lambda/"
        "from-envelope\",\"logStream\":\"s\",\"logEvents\":[{\"id\":\"1\","
        "\"timestamp\":1795700000000,\"message\":\"START RequestId: r-3 "
        "Version: $LATEST\\n\"}]}";

    feed(fle);
    CHECK(b.nfacts == 2 && total_rejects() == 0);
    for (size_t i = 0; i < b.nfacts; i++)
        CHECK(b.facts[i].function == NULL);
    b.default_log_group = "/aws/lambda/ledger";
    feed(fle);
    CHECK(b.nfacts == 2);
    for (size_t i = 0; i < b.nfacts; i++)
        CHECK_STREQ(b.facts[i].function, "ledger");
    CHECK(b.nfacts == 2 && b.facts[1].kind == HT_FACT_REPORT);
    /* what the documents say wins over the default */
    feed(per_event);
    CHECK(b.nfacts == 1);
    CHECK_STREQ(b.facts[0].function, "from-event");
    feed(cwl);
    CHECK(b.nfacts == 1);
    CHECK_STREQ(b.facts[0].function, "from-envelope");
    /* a group that is not a function's names none */
    b.default_log_group = "API-Gateway-Execution-Logs_abc/prod";
    feed(fle);
    CHECK(b.nfacts == 2 && b.facts[0].function == NULL);
    b.default_log_group = NULL;
}

/* Reads every value of path; values[i] and bads[i] (ht_reader_bad) kept. */
static int read_all(struct ht_reader *r, char vals[][256], int *bads, int max,
                    int *last_rc)
{
    const char *v;
    size_t n;
    uint64_t off;
    bool tl;
    int i = 0, rc;

    while ((rc = ht_reader_next(r, &v, &n, &off, &tl)) == 1 && i < max) {
        snprintf(vals[i], 256, "%.*s", (int)(n < 255 ? n : 255), v);
        bads[i] = ht_reader_bad(r);
        if (bads[i] < 0 && ht_reader_depth(r) == HT_DEPTH_LINE &&
            !(n >= 2 && v[n - 1] == (v[0] == '{' ? '}' : ']'))) {
            /* never: the fast path only takes lines that close */
            bads[i] = 99;
        }
        i++;
    }
    *last_rc = rc;
    return i;
}

static void test_reader_torn(void)
{
    char path[] = "/tmp/ht_test_torn_XXXXXX";
    int fd = mkstemp(path);
    char vals[16][256];
    int bads[16], n, last;
    struct ht_reader *r;

    CHECK(fd >= 0);
    close(fd);
    for (int gz = 0; gz < 2; gz++) {
        /* a torn line cut inside a string, then whole lines */
        write_file(
            path,
            "{\"trace_id\":\"1-ab\",\"name\":\"fo\n{\"a\":1}\n{\"b\":2}\n", gz);
        CHECK(ht_reader_open(path, &r) == HT_ERR_OK);
        n = read_all(r, vals, bads, 16, &last);
        CHECK(n == 3 && last == 0);
        CHECK(bads[0] == HT_REJ_NOT_JSON);
        CHECK_STREQ(vals[1], "{\"a\":1}");
        CHECK_STREQ(vals[2], "{\"b\":2}");
        ht_reader_close(r);
        /* a torn line cut between members: found at the next line */
        write_file(path, "{\"trace_id\":\"1-ab\",\n{\"a\":1}\n{\"b\":2}\n", gz);
        CHECK(ht_reader_open(path, &r) == HT_ERR_OK);
        n = read_all(r, vals, bads, 16, &last);
        CHECK(n == 3 && bads[0] == HT_REJ_NOT_JSON && bads[1] == -1 &&
              bads[2] == -1);
        CHECK_STREQ(vals[0], "{\"trace_id\":\"1-ab\",");
        ht_reader_close(r);
        /* a pretty-printed document without its closing brace: ONE bad
         * value, then the next document */
        write_file(path,
                   "{\n  \"trace_id\": \"1-ab\",\n  \"id\": \"x\",\n  \"aws\": "
                   "{\n    \"k\": [1, 2]\n  },\n  \"name\": \"n\"\n{\"a\":1}\n",
                   gz);
        CHECK(ht_reader_open(path, &r) == HT_ERR_OK);
        n = read_all(r, vals, bads, 16, &last);
        CHECK(n == 2 && bads[0] == HT_REJ_NOT_JSON && bads[1] == -1);
        CHECK_STREQ(vals[1], "{\"a\":1}");
        ht_reader_close(r);
        /* ... and at the end of the file */
        write_file(path,
                   "{\"a\":1}\n{\n  \"trace_id\": \"1-ab\",\n  \"id\": \"x\",\n"
                   "  \"subsegments\": [\n    {\"id\": \"y\"}\n  ]\n",
                   gz);
        CHECK(ht_reader_open(path, &r) == HT_ERR_OK);
        n = read_all(r, vals, bads, 16, &last);
        CHECK(n == 2 && bads[0] == -1 && bads[1] == HT_REJ_NOT_JSON);
        CHECK(!ht_reader_truncated(r));
        ht_reader_close(r);
    }
    unlink(path);
}

static void test_reader_truncated_gz(void)
{
    char path[] = "/tmp/ht_test_trunc_XXXXXX";
    int fd = mkstemp(path);
    char vals[16][256];
    int bads[16], n, last;
    struct ht_reader *r;
    struct stat st;
    const char *doc = "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n";

    CHECK(fd >= 0);
    close(fd);
    write_file(path, doc, true);
    CHECK(stat(path, &st) == 0);
    /* whole: three values, not truncated */
    CHECK(ht_reader_open(path, &r) == HT_ERR_OK);
    n = read_all(r, vals, bads, 16, &last);
    CHECK(n == 3 && last == 0 && !ht_reader_truncated(r));
    ht_reader_close(r);
    /* without its 8-byte trailer: every value decoded, then one
     * `truncated` value (empty: the cut fell between values) */
    CHECK(truncate(path, st.st_size - 8) == 0);
    CHECK(ht_reader_open(path, &r) == HT_ERR_OK);
    n = read_all(r, vals, bads, 16, &last);
    CHECK(n == 4 && last == 0 && ht_reader_truncated(r));
    CHECK(bads[3] == HT_REJ_TRUNCATED && vals[3][0] == '\0');
    ht_reader_close(r);
    /* cut in the middle of the deflate data: fewer values, the last one
     * whatever was cut is `truncated`, never `not_json` */
    {
        char big[8192];
        size_t k = 0;

        for (int i = 0; k + 64 < sizeof(big); i++)
            k += (size_t)snprintf(big + k, sizeof(big) - k,
                                  "{\"id\":%d,\"pad\":\"%08x%08x\"}\n", i,
                                  i * 2654435761u, i * 40503u);
        write_file(path, big, true);
        CHECK(stat(path, &st) == 0);
        CHECK(truncate(path, st.st_size / 2) == 0);
        {
            const char *v;
            size_t vn;
            uint64_t off;
            bool tl;
            int good = 0, trunc = 0, other = 0;

            CHECK(ht_reader_open(path, &r) == HT_ERR_OK);
            while (ht_reader_next(r, &v, &vn, &off, &tl) == 1) {
                int bd = ht_reader_bad(r);

                if (bd == HT_REJ_TRUNCATED)
                    trunc++;
                else if (bd < 0)
                    good++;
                else
                    other++;
            }
            CHECK(good > 10 && trunc == 1 && other == 0);
            CHECK(ht_reader_truncated(r));
            ht_reader_close(r);
        }
    }
    unlink(path);
}

static void test_reader_stream(void)
{
    int p[2];
    struct ht_reader *r;
    const char *v;
    size_t n;
    uint64_t off;
    bool tl;

    CHECK(pipe(p) == 0);
    CHECK(ht_reader_open_stream(p[0], "pipe", 20, &r) == HT_ERR_OK);
    /* nothing yet: AGAIN, not a block */
    CHECK(ht_reader_next(r, &v, &n, &off, &tl) == HT_READ_AGAIN);
    /* a torn line, then a pause: the torn line waits, nothing is lost */
    CHECK(write(p[1], "{\"a\":\"to", 8) == 8);
    CHECK(ht_reader_next(r, &v, &n, &off, &tl) == HT_READ_AGAIN);
    CHECK(write(p[1], "rn\n{\"b\":1}\n", 11) == 11);
    CHECK(ht_reader_next(r, &v, &n, &off, &tl) == 1);
    CHECK(ht_reader_bad(r) == HT_REJ_NOT_JSON && n == 10);
    CHECK(ht_reader_next(r, &v, &n, &off, &tl) == 1);
    CHECK(ht_reader_bad(r) == -1 && n == 7 && off == 11);
    CHECK(ht_reader_next(r, &v, &n, &off, &tl) == HT_READ_AGAIN);
    close(p[1]);
    CHECK(ht_reader_next(r, &v, &n, &off, &tl) == 0);
    ht_reader_close(r);
    close(p[0]);
}

/* A value over 16 MiB is one too_large value; what follows it is read. */
static void test_reader_too_large(void)
{
    char path[] = "/tmp/ht_test_big_XXXXXX";
    int fd = mkstemp(path);
    FILE *f;
    struct ht_reader *r;
    const char *v;
    size_t n;
    uint64_t off;
    bool tl;
    int big = 0, good = 0, other = 0;

    CHECK(fd >= 0);
    f = fdopen(fd, "w");
    CHECK(f != NULL);
    fputs("{\"Records\":[\n", f);
    for (int i = 0; i < 300000; i++)
        fprintf(f, "{\"SequenceNumber\":\"%d\",\"Data\":\"%s\"},\n", i,
                "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=");
    fputs("{\"last\":[1,2,{\"x\":\"]}\"}]}\n]}\n{\"after\":1}\n", f);
    fclose(f);
    CHECK(ht_reader_open(path, &r) == HT_ERR_OK);
    while (ht_reader_next(r, &v, &n, &off, &tl) == 1) {
        if (tl)
            big++;
        else if (n == 11 && memcmp(v, "{\"after\":1}", 11) == 0)
            good++;
        else
            other++;
    }
    CHECK(big == 1 && good == 1 && other == 0);
    ht_reader_close(r);
    unlink(path);
}

/* Values are parsed where the reader holds them (ht_ingest_read_value):
 * they decode as the same values copied out do, one followed by bytes that
 * would close brackets, and the file's last one, without a newline, ending
 * exactly where the reader's first 1 MiB buffer ends. */
static void test_reader_in_place(void)
{
    char path[] = "/tmp/ht_test_inplace_XXXXXX";
    int fd = mkstemp(path);
    size_t seg = strlen(SEG), at = 0;
    const size_t chunk = (size_t)1 << 20;
    FILE *f;
    struct ht_reader *r;
    const char *v;
    size_t n, spans_read = 0, spans_copied = 0, values = 0;
    uint64_t off;
    bool tl;
    struct ht_batch c;

    CHECK(fd >= 0);
    f = fdopen(fd, "w");
    CHECK(f != NULL);
    /* segments, a bad line (its own reject), spaces, and a last segment
     * whose last byte is the file's byte `chunk` */
    while (at + 3 * (seg + 1) < chunk) {
        fprintf(f, "%s\n]]]}}}\"\n", SEG);
        at += seg + 9;
    }
    for (; at + seg < chunk; at++)
        fputc(' ', f);
    fputs(SEG, f);
    fclose(f);
    CHECK(ht_batch_init(&c) == HT_ERR_OK);
    CHECK(ht_reader_open(path, &r) == HT_ERR_OK);
    ht_batch_reset(&b);
    while (ht_reader_next(r, &v, &n, &off, &tl) == 1) {
        char *copy = malloc(n);

        CHECK(copy != NULL);
        memcpy(copy, v, n);
        values++;
        ht_ingest_read_value(&b, r, &pos, v, n, tl);
        ht_batch_reset(&c);
        ht_ingest_payload(&c, &pos, copy, n);
        spans_copied += c.nspans;
        free(copy);
    }
    spans_read = b.nspans;
    CHECK(values > 1000 && values % 2 == 1);
    CHECK(spans_read == spans_copied);
    /* a segment and its subsegment per segment; a reject per bad line */
    CHECK(spans_read == 2 * (values / 2 + 1));
    CHECK(b.rejected[HT_REJ_NOT_JSON] == values / 2);
    ht_reader_close(r);
    ht_batch_free(&c);
    unlink(path);
}

/* hj_parse_padded reads no further than HJ_PADDING bytes past a value
 * (the page after them is unreadable) and what they hold changes nothing:
 * the same root and fields as a copied parse, whatever the padding holds. */
static void test_parse_padded(void)
{
    const char *docs[] = {SEG, "[1,2.5,\"x\"]", "\"a string\"", "12345",
                          "{\"a\":{\"b\":[true,null]}}"};
    const char *fills[] = {"\0", " ", "]", "}", "\"", "9", "\\"};
    long pg = sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct hj_parser *p = hj_parser_new(64), *q = hj_parser_new(64);
    char err[160];

    CHECK(m != MAP_FAILED && p && q);
    CHECK(mprotect(m + pg, (size_t)pg, PROT_NONE) == 0);
    for (size_t d = 0; d < sizeof(docs) / sizeof(*docs); d++) {
        size_t n = strlen(docs[d]);
        char *at = m + pg - HJ_PADDING - n;

        for (size_t k = 0; k < sizeof(fills) / sizeof(*fills); k++) {
            hj a, c;
            char x[2048], y[2048];
            size_t xn, yn;

            memcpy(at, docs[d], n);
            memset(at + n, fills[k][0], HJ_PADDING);
            CHECK(hj_parse_padded(p, at, n, true, &a, err, sizeof(err)) == 0);
            CHECK(hj_parse(q, docs[d], n, true, &c, err, sizeof(err)) == 0);
            CHECK(hj_type(a) == hj_type(c));
            xn = hj_dump(a, x, sizeof(x));
            yn = hj_dump(c, y, sizeof(y));
            CHECK(xn == yn && xn > 0 && xn < sizeof(x));
            CHECK(memcmp(x, y, xn) == 0);
        }
    }
    /* a truncated value is an error, not a read past the padding */
    memcpy(m + pg - HJ_PADDING - 5, "{\"a\":", 5);
    memset(m + pg - HJ_PADDING, '"', HJ_PADDING);
    {
        hj a;

        CHECK(hj_parse_padded(p, m + pg - HJ_PADDING - 5, 5, true, &a, err,
                              sizeof(err)) != 0);
    }
    hj_parser_free(p);
    hj_parser_free(q);
    munmap(m, (size_t)pg * 2);
}

int main(void)
{
    ht_log_level = -1; /* quiet: rejects are expected here */
    CHECK(ht_batch_init(&b) == HT_ERR_OK);
    test_xray();
    test_rejects();
    test_logs_envelopes();
    test_reader();
    test_daemon_headers();
    test_collector_invalid();
    test_log_group();
    test_reader_torn();
    test_reader_truncated_gz();
    test_reader_stream();
    test_reader_too_large();
    test_reader_in_place();
    test_parse_padded();
    ht_batch_free(&b);
    TEST_DONE();
}
