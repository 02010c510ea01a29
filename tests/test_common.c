/*
 * test_common.c - unit tests of common/ and ingest's byte codecs: ids,
 * times, the arena and buffer, base64, gunzip and trace headers.
 */
#define _GNU_SOURCE
#include "ht_common.h"
#include "ht_ingest.h"
#include "ht_test.h"

#include <stdlib.h>
#include <zlib.h>

static void test_ids(void)
{
    struct ht_id8 id;
    struct ht_tid t;
    char s8[17], st[36];

    CHECK(ht_id8_parse("941f15bb4e7924a3", 16, &id));
    ht_id8_format(&id, s8);
    CHECK_STREQ(s8, "941f15bb4e7924a3");
    CHECK(ht_id8_parse("941F15BB4E7924A3", 16, &id));
    ht_id8_format(&id, s8);
    CHECK_STREQ(s8, "941f15bb4e7924a3");
    CHECK(!ht_id8_parse("941f15bb4e7924a", 15, &id));
    CHECK(!ht_id8_parse("941f15bb4e7924ag", 16, &id));
    CHECK(ht_tid_parse("1-6b083520-c49c720af84bd7b4b9c2b14a", 35, &t));
    ht_tid_format(&t, st);
    CHECK_STREQ(st, "1-6b083520-c49c720af84bd7b4b9c2b14a");
    CHECK(!ht_tid_parse("2-6b083520-c49c720af84bd7b4b9c2b14a", 35, &t));
    CHECK(!ht_tid_parse("1-6b083520-c49c720af84bd7b4b9c2b14", 34, &t));
    CHECK(!ht_tid_parse("1-6b083520xc49c720af84bd7b4b9c2b14a", 35, &t));
}

static void test_times(void)
{
    int64_t us = 0;

    CHECK(ht_secs_to_us(1795700000.057593) == 1795700000057593LL);
    CHECK(ht_secs_to_us(1.499473411629E9) == 1499473411629000LL);
    CHECK(ht_parse_iso8601("2026-11-26T13:33:20.535Z", &us));
    CHECK(us == 1795700000535000LL);
    CHECK(ht_parse_iso8601("2021-05-03 11:47:12,494+0000", &us));
    CHECK(us == 1620042432494000LL);
    CHECK(ht_parse_iso8601("2022-10-27T16:27:43.738+02:00", &us));
    CHECK(us == 1666880863738000LL);
    CHECK(!ht_parse_iso8601("yesterday", &us));
    CHECK(!ht_parse_iso8601("2022-13-27T16:27:43Z", &us));
}

static void test_arena_buf(void)
{
    struct ht_arena *a = ht_arena_create();
    struct ht_buf b;
    char *big;

    CHECK(a != NULL);
    CHECK_STREQ(ht_arena_strdup(a, "hello"), "hello");
    big = ht_arena_alloc(a, 1 << 20); /* larger than a block */
    memset(big, 1, 1 << 20);
    CHECK_STREQ(ht_arena_printf(a, "%d-%s", 42, "x"), "42-x");
    ht_arena_reset(a);
    CHECK(ht_arena_used(a) == 0);
    /* clear keeps every block: the next rounds reuse them, a request
     * larger than any kept block still gets its own */
    for (int round = 0; round < 3; round++) {
        char *s[64];

        for (int i = 0; i < 64; i++) {
            s[i] = ht_arena_alloc(a, 4000);
            memset(s[i], 'a' + i % 26, 4000);
        }
        big = ht_arena_alloc(a, 1 << 20);
        memset(big, 2, 1 << 20);
        for (int i = 0; i < 64; i++)
            CHECK(s[i][0] == 'a' + i % 26 && s[i][3999] == 'a' + i % 26);
        CHECK(ht_arena_used(a) >= 64 * 4000 + (1 << 20));
        ht_arena_clear(a);
        CHECK(ht_arena_used(a) == 0);
    }
    CHECK_STREQ(ht_arena_strdup(a, "again"), "again");
    ht_arena_reset(a); /* drops the kept blocks but the first */
    CHECK(ht_arena_used(a) == 0);
    CHECK_STREQ(ht_arena_strdup(a, "after"), "after");
    ht_arena_destroy(a);
    ht_arena_destroy(NULL);

    ht_buf_init(&b);
    ht_buf_json_str(&b, "a\"b\\c\nd\x01");
    CHECK_STREQ(b.data, "\"a\\\"b\\\\c\\nd\\u0001\"");
    ht_buf_reset(&b);
    ht_buf_printf(&b, "%s=%d", "n", 7);
    CHECK_STREQ(b.data, "n=7");
    ht_buf_free(&b);
}

static void test_base64_gzip(void)
{
    uint8_t out[64];
    long n = ht_base64_decode("SGVsbG8gV29ybGQ=", 16, out);
    uint8_t *plain;
    size_t plen;
    const char *msg = "{\"a\":1}\n";
    uint8_t gz[128];
    z_stream zs;

    CHECK(n == 11 && memcmp(out, "Hello World", 11) == 0);
    CHECK(ht_base64_decode("XzxkYXRhPl8w", 12, out) == 9);
    CHECK(ht_base64_decode("!!!", 3, out) < 0);
    CHECK(ht_base64_decode("QQ=x", 4, out) < 0);

    memset(&zs, 0, sizeof(zs));
    CHECK(deflateInit2(&zs, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    zs.next_in = (Bytef *)msg;
    zs.avail_in = (uInt)strlen(msg);
    zs.next_out = gz;
    zs.avail_out = sizeof(gz);
    CHECK(deflate(&zs, Z_FINISH) == Z_STREAM_END);
    size_t gzn = sizeof(gz) - zs.avail_out;
    deflateEnd(&zs);
    CHECK(ht_gunzip(gz, gzn, 1024, &plain, &plen) == 0);
    CHECK(plen == strlen(msg) && memcmp(plain, msg, plen) == 0);
    free(plain);
    CHECK(ht_gunzip(gz, gzn / 2, 1024, &plain, &plen) != 0); /* truncated */
    CHECK(ht_gunzip(gz, gzn, 3, &plain, &plen) != 0);        /* too big */
    CHECK(ht_gunzip("plain", 5, 1024, &plain, &plen) != 0);
}

static void test_trace_header(void)
{
    struct ht_tid root;
    struct ht_id8 parent;
    bool hp;
    char s[36];

    CHECK(ht_parse_trace_header("Root=1-646f68f6-29168d517efd3a056d14b505;"
                                "Parent=678c8388376f339d;Sampled=0;"
                                "Lineage=575990a1:0",
                                &root, &parent, &hp));
    CHECK(hp);
    ht_tid_format(&root, s);
    CHECK_STREQ(s, "1-646f68f6-29168d517efd3a056d14b505");
    CHECK(ht_parse_trace_header("Sampled=1; Root=1-646f68f6-29168d517efd3a0"
                                "56d14b505",
                                &root, &parent, &hp));
    CHECK(!hp);
    CHECK(
        !ht_parse_trace_header("Parent=678c8388376f339d", &root, &parent, &hp));
}

static void test_names(void)
{
    CHECK_STREQ(ht_strerror(HT_ERR_NOTFOUND), "not found");
    CHECK_STREQ(ht_strerror(9999), "unknown error");
    for (int i = 0; i < HT_REJ__COUNT; i++)
        CHECK(ht_reject_from_name(ht_reject_name(i)) == i);
    CHECK(ht_reject_from_name("nope") == -1);
}

int main(void)
{
    test_ids();
    test_times();
    test_arena_buf();
    test_base64_gzip();
    test_trace_header();
    test_names();
    TEST_DONE();
}
