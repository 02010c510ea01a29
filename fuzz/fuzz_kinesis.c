/*
 * fuzz_kinesis.c - the Kinesis API's answers as `ingest --kinesis` reads
 * them (ingest/src_kinesis.c). The first byte chooses what the rest is:
 *   0: a GetRecords response (ht_kin_parse_records), each record's Data
 *      decoded as src_kinesis.c decodes it (ht_kinesis_decode_record:
 *      base64, KPL de-aggregation, each payload);
 *   1: a ListShards page (ht_kin_parse_shards);
 *   2: a KPL AggregatedRecord protobuf, framed here with the magic and its
 *      MD5 (which mutations would never get right), de-aggregated and
 *      each user record decoded.
 */
#include "fuzz.h"
#include "ht_aws.h"
#include "ht_engine.h"
#include "ht_ingest.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

static uint8_t *scratch;
static size_t scap;

static void get_records(struct ht_batch *b, const char *body, size_t n)
{
    struct ht_kin_records r = {0};
    struct ht_srcpos pos = {"fuzz-kinesis", 0};

    if (ht_kin_parse_records(body, n, &r) == HT_KIN_OK)
        for (size_t i = 0; i < r.n; i++)
            ht_kinesis_decode_record(b, &pos, r.recs[i].data,
                                     r.recs[i].data_len, &scratch, &scap);
    ht_kin_records_free(&r);
}

/* A KPL record framed here: magic, the protobuf, its MD5; then decoded as
 * a record's Data (so base64 first, as GetRecords carries it). */
static void kpl(struct ht_batch *b, const uint8_t *proto, size_t n)
{
    static const uint8_t magic[4] = {0xf3, 0x89, 0x9a, 0xc2};
    struct ht_srcpos pos = {"fuzz-kpl", 0};
    uint8_t *rec = malloc(n + 20);
    char *b64 = malloc((n + 20 + 2) / 3 * 4 + 1);
    unsigned int len = 0;

    if (rec && b64) {
        memcpy(rec, magic, 4);
        memcpy(rec + 4, proto, n);
        if (EVP_Digest(proto, n, rec + 4 + n, &len, EVP_md5(), NULL) &&
            len == 16) {
            int bn = EVP_EncodeBlock((unsigned char *)b64, rec, (int)n + 20);

            ht_kinesis_decode_record(b, &pos, b64, (size_t)bn, &scratch, &scap);
        }
    }
    free(rec);
    free(b64);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ht_batch b;

    ht_log_level = -1;
    if (size < 1 || ht_batch_init(&b) != HT_ERR_OK)
        return 0;
    switch (data[0] % 3) {
    case 0:
        get_records(&b, (const char *)data + 1, size - 1);
        break;
    case 1: {
        struct ht_kin_shard *shards = NULL;
        size_t n = 0, cap = 0;
        char *next = NULL;

        ht_kin_parse_shards((const char *)data + 1, size - 1, &shards, &n, &cap,
                            &next);
        free(shards);
        free(next);
        break;
    }
    default:
        kpl(&b, data + 1, size - 1);
        break;
    }
    ht_batch_free(&b);
    return 0;
}
