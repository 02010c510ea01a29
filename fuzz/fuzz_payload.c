/*
 * fuzz_payload.c - one payload as a Kafka message, a Kinesis record or a
 * UDP datagram brings it (ht_ingest_payload): gzip, base64 envelopes,
 * CloudWatch Logs messages, GetRecords responses, daemon datagrams,
 * X-Ray segments, OTLP/JSON, arrays and NDJSON, and every log line format
 * inside them. An odd-sized input is decoded with a default log group, as
 * `ingest --log-group` does.
 */
#include "fuzz.h"
#include "ht_ingest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ht_batch b;
    struct ht_srcpos pos = {"fuzz", 0};

    ht_log_level = -1; /* decoders' warnings are not what is tested */
    if (ht_batch_init(&b) != HT_ERR_OK)
        return 0;
    if (size & 1)
        b.default_log_group = "/aws/lambda/fuzz-fn";
    ht_ingest_payload(&b, &pos, data, size);
    ht_batch_free(&b);
    return 0;
}
