/*
 * fuzz_logline.c - one log event's message (ht_ingest_log_message): the
 * Lambda platform lines (START, END, REPORT, INIT, platform.* JSON),
 * runtime lines, Powertools JSON, API Gateway access logs and logged
 * events. The first byte chooses the envelope's context (a function's
 * log group or an API Gateway access log group, with or without a time).
 */
#include "fuzz.h"
#include "ht_ingest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ht_batch b;
    struct ht_srcpos pos = {"fuzz", 0};
    struct ht_logctx ctx = {0};

    ht_log_level = -1;
    if (size < 1 || ht_batch_init(&b) != HT_ERR_OK)
        return 0;
    ctx.pos = &pos;
    switch (data[0] & 3) {
    case 0:
        ctx.log_group = "/aws/lambda/fuzz-fn";
        ctx.function = "fuzz-fn";
        ctx.ts_us = 1764547200000000LL;
        break;
    case 1:
        ctx.log_group = "API-Gateway-Execution-Logs_abc123/prod";
        ctx.ts_us = 1764547200000000LL;
        break;
    case 2:
        ctx.log_group = "/aws/apigateway/access";
        ctx.log_stream = "stream";
        break;
    default:
        break;
    }
    ht_ingest_log_message(&b, &ctx, (const char *)data + 1, size - 1);
    ht_batch_free(&b);
    return 0;
}
