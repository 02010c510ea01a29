/*
 * kpl.c - KPL (Kinesis Producer Library) aggregated records: magic
 * f3 89 9a c2, a protobuf AggregatedRecord, the MD5 of the protobuf bytes.
 * Decoded with protobuf-c from aws/kpl.proto (generated at build time);
 * MD5 from libcrypto.
 *
 * Owned by aws/. A record is taken as aggregated only when the magic
 * matches AND the MD5 verifies, as the KCL does: anything else is a plain
 * record whose bytes go to ingest unchanged.
 */
#include "ht_aws.h"
#include "kpl.pb-c.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t magic[4] = {0xf3, 0x89, 0x9a, 0xc2};

static bool md5(const void *p, size_t n, unsigned char out[16])
{
    unsigned int len = 0;

    return EVP_Digest(p, n, out, &len, EVP_md5(), NULL) && len == 16;
}

int ht_kpl_deaggregate(const void *data, size_t n, ht_kpl_fn fn, void *ud)
{
    const uint8_t *p = data;
    unsigned char sum[16];
    HtKpl__AggregatedRecord *ar;

    if (n < sizeof(magic) + 16 || memcmp(p, magic, sizeof(magic)) != 0)
        return HT_KPL_PLAIN;
    if (!md5(p + 4, n - 4 - 16, sum) || memcmp(sum, p + n - 16, 16) != 0)
        return HT_KPL_PLAIN;
    ar = ht_kpl__aggregated_record__unpack(NULL, n - 4 - 16, p + 4);
    if (!ar)
        return HT_KPL_BAD;
    for (size_t i = 0; i < ar->n_records; i++) {
        const HtKpl__Record *r = ar->records[i];

        fn(ud, r->data.data ? (const void *)r->data.data : (const void *)"",
           r->data.len);
    }
    ht_kpl__aggregated_record__free_unpacked(ar, NULL);
    return HT_KPL_AGGREGATED;
}

int ht_kpl_aggregate(const void *const *recs, const size_t *lens, size_t n,
                     struct ht_buf *out)
{
    HtKpl__AggregatedRecord ar = HT_KPL__AGGREGATED_RECORD__INIT;
    HtKpl__Record *rs = calloc(n ? n : 1, sizeof(*rs));
    HtKpl__Record **rp = calloc(n ? n : 1, sizeof(*rp));
    char *pk = "pk";
    uint8_t *buf = NULL;
    size_t len;
    unsigned char sum[16];
    int rc = HT_ERR_NOMEM;

    if (!rs || !rp)
        goto out;
    for (size_t i = 0; i < n; i++) {
        HtKpl__Record init = HT_KPL__RECORD__INIT;

        rs[i] = init;
        rs[i].partition_key_index = 0;
        rs[i].data.data = (uint8_t *)(uintptr_t)recs[i];
        rs[i].data.len = lens[i];
        rp[i] = &rs[i];
    }
    ar.n_partition_key_table = 1;
    ar.partition_key_table = &pk;
    ar.n_records = n;
    ar.records = rp;
    len = ht_kpl__aggregated_record__get_packed_size(&ar);
    buf = malloc(len ? len : 1);
    if (!buf)
        goto out;
    ht_kpl__aggregated_record__pack(&ar, buf);
    if (!md5(buf, len, sum))
        goto out;
    ht_buf_add(out, magic, sizeof(magic));
    ht_buf_add(out, buf, len);
    ht_buf_add(out, sum, sizeof(sum));
    rc = HT_ERR_OK;
out:
    free(buf);
    free(rp);
    free(rs);
    return rc;
}
