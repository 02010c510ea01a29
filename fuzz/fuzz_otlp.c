/*
 * fuzz_otlp.c - one OTLP/HTTP export body (ht_ingest_otlp), as `ingest
 * --otlp` and `serve` receive it: the first byte chooses the encoding
 * (even: protobuf, odd: JSON), the rest is the body.
 */
#include "fuzz.h"
#include "ht_ingest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ht_batch b;
    struct ht_srcpos pos = {"fuzz", 0};
    struct ht_otlp_result res = {0};

    ht_log_level = -1;
    if (size < 1 || ht_batch_init(&b) != HT_ERR_OK)
        return 0;
    ht_ingest_otlp(&b, &pos, data + 1, size - 1,
                   data[0] & 1 ? HT_OTLP_JSON : HT_OTLP_PROTOBUF, &res);
    ht_batch_free(&b);
    return 0;
}
