/*
 * fuzz_kinesis.c - the Kinesis API's answers as `ingest --kinesis` reads
 * them (ingest/src_kinesis.c). The first byte chooses what the rest is:
 *   0: a GetRecords response (ht_kin_parse_records), each record's Data
 *      base64-decoded, de-aggregated when it is a KPL record and decoded
 *      as a payload;
 *   1: a ListShards page (ht_kin_parse_shards);
 *   2: a KPL AggregatedRecord protobuf, framed here with the magic and its
 *      MD5 (which mutations would never get right), de-aggregated and
 *      each user record decoded.
 */
#include "fuzz.h"
#include "ht_aws.h"
#include "ht_ingest.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

static void user_record(void *ud, const void *data, size_t n)
{
    ht_ingest_payload(ud, &(struct ht_srcpos){"fuzz-kpl", 0}, data, n);
}

/* src_kinesis.c's decode_record */
static void record(struct ht_batch *b, const uint8_t *data, size_t n)
{
    if (ht_kpl_deaggregate(data, n, user_record, b) == HT_KPL_PLAIN)
        user_record(b, data, n);
}

static void get_records(struct ht_batch *b, const char *body, size_t n)
{
    struct ht_kin_records r = {0};

    if (ht_kin_parse_records(body, n, &r) == HT_KIN_OK) {
        for (size_t i = 0; i < r.n; i++) {
            uint8_t *raw = malloc((r.recs[i].data_len / 4 + 1) * 3);
            long len =
                raw ? ht_base64_decode(r.recs[i].data, r.recs[i].data_len, raw)
                    : -1;

            if (len >= 0)
                record(b, raw, (size_t)len);
            free(raw);
        }
    }
    ht_kin_records_free(&r);
}

static void kpl(struct ht_batch *b, const uint8_t *proto, size_t n)
{
    static const uint8_t magic[4] = {0xf3, 0x89, 0x9a, 0xc2};
    uint8_t *rec = malloc(n + 20);
    unsigned int len = 0;

    if (!rec)
        return;
    memcpy(rec, magic, 4);
    memcpy(rec + 4, proto, n);
    if (EVP_Digest(proto, n, rec + 4 + n, &len, EVP_md5(), NULL) && len == 16)
        record(b, rec, n + 20);
    free(rec);
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
