/*
 * test_sigv4.c - aws/ against fixed answers: SigV4 with the official test
 * vectors get-vanilla and post-vanilla (aws-c-auth's aws-signing-test-suite,
 * quoted in shared/docs/formats.md §6) and the Kinesis-shaped check from
 * the same place; credentials from the environment and the shared file;
 * sequence-number order; KPL aggregate/de-aggregate round trip and its
 * MD5 check; ListShards / GetRecords parsing on recorded responses,
 * including a reshard (closed parent, two children, a merge).
 */
#define _POSIX_C_SOURCE 200809L
#include "ht_aws.h"
#include "ht_test.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct ht_aws_creds example_creds(void)
{
    struct ht_aws_creds c = {0};

    c.access_key_id = "AKIDEXAMPLE";
    c.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    return c;
}

static void sign(const char *method, const struct ht_sigv4_header *h, size_t nh,
                 const char *body, const char *region, const char *service,
                 struct ht_buf *auth, struct ht_buf *canon, struct ht_buf *sts)
{
    struct ht_aws_creds c = example_creds();
    struct ht_sigv4_req r = {.method = method,
                             .path = "/",
                             .query = "",
                             .headers = h,
                             .nheaders = nh,
                             .body = body,
                             .body_len = strlen(body),
                             .region = region,
                             .service = service,
                             .amz_date = "20150830T123600Z"};

    CHECK(ht_sigv4_sign(&r, &c, auth, canon, sts) == HT_ERR_OK);
}

static void test_get_vanilla(void)
{
    struct ht_sigv4_header h[] = {{"Host", "example.amazonaws.com"},
                                  {"X-Amz-Date", "20150830T123600Z"}};
    struct ht_buf auth, canon, sts;

    ht_buf_init(&auth);
    ht_buf_init(&canon);
    ht_buf_init(&sts);
    sign("GET", h, 2, "", "us-east-1", "service", &auth, &canon, &sts);
    CHECK_STREQ(canon.data,
                "GET\n/\n\nhost:example.amazonaws.com\n"
                "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b"
                "7852b855");
    CHECK_STREQ(sts.data, "AWS4-HMAC-SHA256\n20150830T123600Z\n"
                          "20150830/us-east-1/service/aws4_request\n"
                          "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b"
                          "6e1c25292927e63");
    CHECK_STREQ(auth.data,
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/"
                "service/aws4_request, SignedHeaders=host;x-amz-date, "
                "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b"
                "8aae1d763fbf31");
    ht_buf_free(&auth);
    ht_buf_free(&canon);
    ht_buf_free(&sts);
}

static void test_post_vanilla(void)
{
    /* header order and case must not matter */
    struct ht_sigv4_header h[] = {{"X-Amz-Date", "20150830T123600Z"},
                                  {"host", "  example.amazonaws.com "}};
    struct ht_buf auth;

    ht_buf_init(&auth);
    sign("POST", h, 2, "", "us-east-1", "service", &auth, NULL, NULL);
    CHECK(strstr(auth.data, "Signature=5da7c1a2acd57cee7505fc6676e4e544621c30"
                            "862966e37dddb68e92efbe5d6b") != NULL);
    ht_buf_free(&auth);
}

static void test_kinesis_shaped(void)
{
    struct ht_sigv4_header h[] = {
        {"Content-Type", "application/x-amz-json-1.1"},
        {"Host", "kinesis.us-east-1.amazonaws.com"},
        {"X-Amz-Date", "20150830T123600Z"},
        {"X-Amz-Target", "Kinesis_20131202.GetRecords"}};
    struct ht_buf auth, canon;

    ht_buf_init(&auth);
    ht_buf_init(&canon);
    sign("POST", h, 4, "{\"ShardIterator\":\"AAAA\",\"Limit\":100}",
         "us-east-1", "kinesis", &auth, &canon, NULL);
    CHECK(strstr(canon.data, "033459e49135ce4fcaf4df8369ede0db912ac2dbb82220"
                             "2c3f3021d6e24edbe1") != NULL);
    CHECK(strstr(auth.data,
                 "SignedHeaders=content-type;host;x-amz-date;"
                 "x-amz-target, Signature=39fb49e0d433290db0ddef0b"
                 "a6cfc1bb06ed8a6c23a316fc880eb01e3bb6329e") != NULL);
    /* the secret never shows in what is sent */
    CHECK(strstr(auth.data, "wJalrXUtnFEMI") == NULL);
    ht_buf_free(&auth);
    ht_buf_free(&canon);
}

static void test_amz_date(void)
{
    char d[17];

    ht_aws_amz_date(1440938160, d);
    CHECK_STREQ(d, "20150830T123600Z");
}

static void test_creds(void)
{
    struct ht_aws_creds c;
    char err[600], path[] = "/tmp/ht_sigv4_credsXXXXXX", region[64];
    int fd = mkstemp(path);
    FILE *f;

    CHECK(fd >= 0);
    f = fdopen(fd, "w");
    fputs("[default]\naws_access_key_id = AKIDDEFAULT\n"
          "aws_secret_access_key=secretdefault\n\n"
          "[profile other]\n aws_access_key_id=AKIDOTHER\n"
          "aws_secret_access_key = secretother\naws_session_token = tok\n",
          f);
    fclose(f);

    setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "secretenv", 1);
    setenv("AWS_SESSION_TOKEN", "tokenv", 1);
    CHECK(ht_aws_creds_load(&c, err, sizeof(err)) == HT_ERR_OK);
    CHECK_STREQ(c.access_key_id, "AKIDENV");
    CHECK_STREQ(c.session_token, "tokenv");
    CHECK_STREQ(c.source, "environment");
    ht_aws_creds_free(&c);

    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");
    setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1);
    unsetenv("AWS_PROFILE");
    CHECK(ht_aws_creds_load(&c, err, sizeof(err)) == HT_ERR_OK);
    CHECK_STREQ(c.access_key_id, "AKIDDEFAULT");
    CHECK_STREQ(c.secret_access_key, "secretdefault");
    CHECK(c.session_token == NULL);
    ht_aws_creds_free(&c);

    setenv("AWS_PROFILE", "other", 1);
    CHECK(ht_aws_creds_load(&c, err, sizeof(err)) == HT_ERR_OK);
    CHECK_STREQ(c.access_key_id, "AKIDOTHER");
    CHECK_STREQ(c.session_token, "tok");
    ht_aws_creds_free(&c);

    setenv("AWS_PROFILE", "missing", 1);
    CHECK(ht_aws_creds_load(&c, err, sizeof(err)) == HT_ERR_NOTFOUND);
    CHECK(strstr(err, "AWS_ACCESS_KEY_ID") != NULL);
    CHECK(strstr(err, "[missing]") != NULL);
    CHECK(strstr(err, "secret") == NULL ||
          strstr(err, "secretdefault") == NULL);
    unlink(path);
    CHECK(ht_aws_creds_load(&c, err, sizeof(err)) == HT_ERR_NOTFOUND);
    CHECK(strstr(err, "does not exist") != NULL);
    unsetenv("AWS_PROFILE");
    unsetenv("AWS_SHARED_CREDENTIALS_FILE");

    unsetenv("AWS_REGION");
    setenv("AWS_DEFAULT_REGION", "eu-west-1", 1);
    CHECK(ht_aws_region(NULL, region, sizeof(region)) == HT_ERR_OK);
    CHECK_STREQ(region, "eu-west-1");
    setenv("AWS_REGION", "us-west-2", 1);
    CHECK(ht_aws_region(NULL, region, sizeof(region)) == HT_ERR_OK);
    CHECK_STREQ(region, "us-west-2");
    CHECK(ht_aws_region("ap-south-1", region, sizeof(region)) == HT_ERR_OK);
    CHECK_STREQ(region, "ap-south-1");
    unsetenv("AWS_REGION");
    unsetenv("AWS_DEFAULT_REGION");
    CHECK(ht_aws_region(NULL, region, sizeof(region)) == HT_ERR_NOTFOUND);
}

static void test_seq_cmp(void)
{
    CHECK(ht_kin_seq_cmp("9", "10") < 0);
    CHECK(ht_kin_seq_cmp("4968059789892333294438844745897255082926756674963"
                         "0332930",
                         "4968059789894563368958697808211408654754021511113"
                         "6313362") < 0);
    CHECK(ht_kin_seq_cmp("123", "123") == 0);
    CHECK(ht_kin_seq_cmp("0123", "123") == 0);
}

struct collected {
    size_t n;
    char all[256];
};

static void collect(void *ud, const void *data, size_t n)
{
    struct collected *c = ud;
    size_t l = strlen(c->all);

    if (l + n + 2 < sizeof(c->all)) {
        memcpy(c->all + l, data, n);
        c->all[l + n] = '|';
        c->all[l + n + 1] = 0;
    }
    c->n++;
}

static void test_kpl(void)
{
    const char *a = "{\"x\":1}", *b = "second record";
    const void *recs[2] = {a, b};
    size_t lens[2] = {strlen(a), strlen(b)};
    struct ht_buf agg;
    struct collected c = {0};

    ht_buf_init(&agg);
    CHECK(ht_kpl_aggregate(recs, lens, 2, &agg) == HT_ERR_OK);
    CHECK((unsigned char)agg.data[0] == 0xf3);
    CHECK(ht_kpl_deaggregate(agg.data, agg.len, collect, &c) ==
          HT_KPL_AGGREGATED);
    CHECK(c.n == 2);
    CHECK_STREQ(c.all, "{\"x\":1}|second record|");

    /* a wrong MD5: a plain record, as the KCL does */
    memset(&c, 0, sizeof(c));
    agg.data[agg.len - 1] ^= 1;
    CHECK(ht_kpl_deaggregate(agg.data, agg.len, collect, &c) == HT_KPL_PLAIN);
    CHECK(c.n == 0);
    /* not aggregated at all */
    CHECK(ht_kpl_deaggregate("{}", 2, collect, &c) == HT_KPL_PLAIN);
    ht_buf_free(&agg);

    /* magic and MD5 right, protobuf garbage: its own outcome */
    {
        static const unsigned char garbage[] = {0xff, 0xff, 0xff, 0xff, 0xff,
                                                0xff, 0xff, 0xff, 0xff, 0x01};
        unsigned char rec[4 + sizeof(garbage) + 16] = {0xf3, 0x89, 0x9a, 0xc2};
        unsigned int len = 0;

        memcpy(rec + 4, garbage, sizeof(garbage));
        CHECK(EVP_Digest(garbage, sizeof(garbage), rec + 4 + sizeof(garbage),
                         &len, EVP_md5(), NULL) == 1);
        CHECK(ht_kpl_deaggregate(rec, sizeof(rec), collect, &c) == HT_KPL_BAD);
    }
}

static void test_parse_records(void)
{
    /* the API reference's example response */
    const char *body =
        "{\"MillisBehindLatest\":2100,\"NextShardIterator\":\"AAAAAAAAAAHsW8"
        "zCWf9164uy8Epue6WS3w6wmj4a4USt+CNvMd6uXQ+HL5vAJMznqqC0DLKs\","
        "\"Records\":[{\"Data\":\"XzxkYXRhPl8w\",\"PartitionKey\":"
        "\"partitionKey\",\"ApproximateArrivalTimestamp\":1.441215410867E9,"
        "\"SequenceNumber\":\"21269319989652663814458848515492872193\"}]}";
    const char *closed =
        "{\"MillisBehindLatest\":0,\"Records\":[],\"ChildShards\":["
        "{\"ShardId\":\"shardId-000000000002\",\"ParentShards\":"
        "[\"shardId-000000000000\"]},{\"ShardId\":\"shardId-000000000003\","
        "\"ParentShards\":[\"shardId-000000000000\"]}]}";
    struct ht_kin_records r;

    CHECK(ht_kin_parse_records(body, strlen(body), &r) == HT_KIN_OK);
    CHECK(r.n == 1);
    CHECK_STREQ(r.recs[0].seq, "21269319989652663814458848515492872193");
    CHECK(r.recs[0].data_len == 12);
    CHECK(strncmp(r.recs[0].data, "XzxkYXRhPl8w", 12) == 0);
    CHECK(r.millis_behind == 2100);
    CHECK(r.next_iterator &&
          strncmp(r.next_iterator, "AAAAAAAAAAHsW8", 14) == 0);
    CHECK(r.recs[0].arrival > 1441215410.0 && r.recs[0].arrival < 1441215411);
    ht_kin_records_free(&r);

    CHECK(ht_kin_parse_records(closed, strlen(closed), &r) == HT_KIN_OK);
    CHECK(r.n == 0);
    CHECK(r.next_iterator == NULL); /* closed and drained */
    CHECK(r.nchild == 2);
    CHECK_STREQ(r.child_shards[1], "shardId-000000000003");
    ht_kin_records_free(&r);

    CHECK(ht_kin_parse_records("{\"x\":1}", 7, &r) == HT_KIN_BAD_RESPONSE);
    ht_kin_records_free(&r);
    CHECK(ht_kin_parse_records("not json", 8, &r) == HT_KIN_BAD_RESPONSE);
    ht_kin_records_free(&r);
}

static void test_parse_shards(void)
{
    /* after a split of shard 0 and a merge of shards 1 and 2 */
    const char *p1 =
        "{\"Shards\":[{\"ShardId\":\"shardId-000000000000\","
        "\"HashKeyRange\":{\"StartingHashKey\":\"0\",\"EndingHashKey\":\"1\"},"
        "\"SequenceNumberRange\":{\"StartingSequenceNumber\":\"100\","
        "\"EndingSequenceNumber\":\"200\"}},"
        "{\"ShardId\":\"shardId-000000000003\",\"ParentShardId\":"
        "\"shardId-000000000000\",\"SequenceNumberRange\":"
        "{\"StartingSequenceNumber\":\"300\"}}],\"NextToken\":\"page2\"}";
    const char *p2 =
        "{\"Shards\":[{\"ShardId\":\"shardId-000000000005\","
        "\"ParentShardId\":\"shardId-000000000001\","
        "\"AdjacentParentShardId\":\"shardId-000000000002\","
        "\"SequenceNumberRange\":{\"StartingSequenceNumber\":\"500\"}}]}";
    struct ht_kin_shard *s = NULL;
    size_t n = 0, cap = 0;
    char *next = NULL;

    CHECK(ht_kin_parse_shards(p1, strlen(p1), &s, &n, &cap, &next) ==
          HT_KIN_OK);
    CHECK_STREQ(next, "page2");
    free(next);
    CHECK(ht_kin_parse_shards(p2, strlen(p2), &s, &n, &cap, &next) ==
          HT_KIN_OK);
    CHECK(next == NULL);
    CHECK(n == 3);
    CHECK(s[0].closed && !s[1].closed && !s[2].closed);
    CHECK_STREQ(s[1].parent, "shardId-000000000000");
    CHECK_STREQ(s[2].adjacent_parent, "shardId-000000000002");
    CHECK_STREQ(s[0].start_seq, "100");
    CHECK(ht_kin_parse_shards("{}", 2, &s, &n, &cap, &next) ==
          HT_KIN_BAD_RESPONSE);
    free(s);
}

int main(void)
{
    test_get_vanilla();
    test_post_vanilla();
    test_kinesis_shaped();
    test_amz_date();
    test_creds();
    test_seq_cmp();
    test_kpl();
    test_parse_records();
    test_parse_shards();
    TEST_DONE();
}
