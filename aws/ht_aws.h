/*
 * ht_aws.h - the little of AWS that hoptrace needs without an SDK:
 * credentials from the standard places, Signature Version 4 (SHA-256 and
 * HMAC from OpenSSL's libcrypto), a Kinesis Data Streams JSON-API client
 * over libcurl (ListShards with paging, GetShardIterator, GetRecords, with
 * jittered exponential back-off on throttling, 5xx and network errors) and
 * KPL de-aggregation (protobuf-c, generated from aws/kpl.proto).
 *
 * Owned by aws/. It knows nothing of hoptrace's documents or the store:
 * record payloads leave it as bytes. Secrets never appear in anything it
 * logs or returns as an error message.
 */
#ifndef HT_AWS_H
#define HT_AWS_H

#include "ht_common.h"

#include <signal.h>

/* ---- credentials and region ------------------------------------------ */

struct ht_aws_creds {
    char *access_key_id;     /* owned */
    char *secret_access_key; /* owned; wiped by ht_aws_creds_free */
    char *session_token;     /* owned; NULL when there is none */
    char source[300];        /* where they came from, for messages */
};

/*
 * Loads credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
 * AWS_SESSION_TOKEN, else the shared credentials file
 * (AWS_SHARED_CREDENTIALS_FILE, default ~/.aws/credentials), profile
 * AWS_PROFILE (default "default"). Returns HT_ERR_OK, or HT_ERR_NOTFOUND
 * with a what-to-do message in err (never a secret).
 */
int ht_aws_creds_load(struct ht_aws_creds *c, char *err, size_t errlen);
void ht_aws_creds_free(struct ht_aws_creds *c);

/* Region: opt (--region), else AWS_REGION, else AWS_DEFAULT_REGION.
 * Returns HT_ERR_OK or HT_ERR_NOTFOUND. */
int ht_aws_region(const char *opt, char *out, size_t n);

/* ---- Signature Version 4 ---------------------------------------------- */

struct ht_sigv4_header {
    const char *name; /* any case; signed lower-cased */
    const char *value;
};

struct ht_sigv4_req {
    const char *method; /* "POST" */
    const char *path;   /* "/" (already URI-encoded) */
    const char *query;  /* canonical query string, "" when none */
    /* Every header to sign; must include host and x-amz-date (and
     * x-amz-security-token when the credentials have a token). */
    const struct ht_sigv4_header *headers;
    size_t nheaders;
    const void *body;
    size_t body_len;
    const char *region;
    const char *service;  /* "kinesis" */
    const char *amz_date; /* "20150830T123600Z" */
};

/*
 * Computes the Authorization header value ("AWS4-HMAC-SHA256
 * Credential=…, SignedHeaders=…, Signature=…") into auth (appended).
 * canon and sts, when not NULL, receive the canonical request and the
 * string to sign (tests compare them with the official vectors).
 * Returns HT_ERR_OK or HT_ERR_USAGE (too many headers, crypto failure).
 */
int ht_sigv4_sign(const struct ht_sigv4_req *r, const struct ht_aws_creds *c,
                  struct ht_buf *auth, struct ht_buf *canon,
                  struct ht_buf *sts);

/* "YYYYMMDDTHHMMSSZ" of a UTC epoch time; out holds at least 17 bytes. */
void ht_aws_amz_date(int64_t epoch_s, char *out);

/* ---- Kinesis client -------------------------------------------------- */

/* Outcome of a Kinesis call (after the retries it does itself). */
enum ht_kin_status {
    HT_KIN_OK = 0,
    HT_KIN_EXPIRED_ITERATOR, /* get a new iterator and go on */
    HT_KIN_NOT_FOUND,        /* ResourceNotFoundException */
    HT_KIN_AUTH,             /* credentials refused or not allowed */
    HT_KIN_THROTTLED,        /* still throttled after every retry */
    HT_KIN_SERVER,           /* 5xx after every retry */
    HT_KIN_NETWORK,          /* no answer after every retry */
    HT_KIN_BAD_REQUEST,      /* another 4xx: a bug or a bad argument */
    HT_KIN_BAD_RESPONSE,     /* an answer that is not the expected JSON */
    HT_KIN_STOPPED           /* *stop was set while waiting */
};

struct ht_kin_cfg {
    const char *endpoint; /* NULL: https://kinesis.REGION.amazonaws.com */
    const char *region;
    const struct ht_aws_creds *creds; /* borrowed for the client's life */
    int max_attempts;    /* per call; 0 means 10, < 0 for ever (until stop) */
    int backoff_base_ms; /* 0 means 100 */
    int backoff_cap_ms;  /* 0 means 5000 */
    volatile sig_atomic_t *stop; /* optional: ends back-off sleeps */
};

struct ht_kinesis;

/* Owned: ht_kinesis_close. Returns HT_ERR_OK or HT_ERR_USAGE (bad
 * endpoint) / HT_ERR_NOMEM. */
int ht_kinesis_open(const struct ht_kin_cfg *cfg, struct ht_kinesis **out);
void ht_kinesis_close(struct ht_kinesis *k);

/* The last failure as one line ("ResourceNotFoundException: Stream s
 * under account … not found", "HTTP 503", "connect: …"). Borrowed until
 * the next call. */
const char *ht_kinesis_last_error(const struct ht_kinesis *k);
/* Retries done so far, by cause (for the summary and tests). */
struct ht_kin_counters {
    uint64_t calls, retries_throttled, retries_server, retries_network;
    uint64_t expired_iterators;
};
const struct ht_kin_counters *ht_kinesis_counters(const struct ht_kinesis *k);

struct ht_kin_shard {
    char id[130];
    char parent[130];          /* "" when none */
    char adjacent_parent[130]; /* "" when none (a merge has two) */
    char start_seq[130];
    bool closed; /* the range has an EndingSequenceNumber */
};

/* Every shard of the stream, following NextToken pages. *shards is owned
 * (free()). */
int ht_kinesis_list_shards(struct ht_kinesis *k, const char *stream,
                           struct ht_kin_shard **shards, size_t *n);

/* type: "TRIM_HORIZON", "LATEST", "AFTER_SEQUENCE_NUMBER" /
 * "AT_SEQUENCE_NUMBER" (arg = the sequence number) or "AT_TIMESTAMP" (arg =
 * epoch seconds as text). *iter is owned (free()). */
int ht_kinesis_get_iterator(struct ht_kinesis *k, const char *stream,
                            const char *shard, const char *type,
                            const char *arg, char **iter);

struct ht_kin_record {
    const char *seq;  /* SequenceNumber */
    const char *data; /* Data, still base64 */
    size_t data_len;
    double arrival; /* ApproximateArrivalTimestamp, epoch seconds */
};

struct ht_kin_records {
    struct ht_kin_record *recs; /* owned by this struct */
    size_t n;
    char *next_iterator;       /* NULL: the shard is closed and drained */
    int64_t millis_behind;     /* -1 when absent */
    const char **child_shards; /* ChildShards[].ShardId, when present */
    size_t nchild;
    void *priv_; /* the parsed response the strings point into */
};

/* One GetRecords call. Free out with ht_kin_records_free (also after an
 * error: it is then empty). */
int ht_kinesis_get_records(struct ht_kinesis *k, const char *iter, int limit,
                           struct ht_kin_records *out);
void ht_kin_records_free(struct ht_kin_records *r);

/* Parses a GetRecords response body (exposed for tests on recorded
 * responses). Returns HT_KIN_OK or HT_KIN_BAD_RESPONSE. */
int ht_kin_parse_records(const char *body, size_t n,
                         struct ht_kin_records *out);
/* Parses one ListShards page: appends to the shards array (realloc'd; n and
 * cap are its length and capacity) and
 * returns the NextToken (owned, NULL on the last page) in *next. */
int ht_kin_parse_shards(const char *body, size_t n,
                        struct ht_kin_shard **shards, size_t *nshards,
                        size_t *cap, char **next);

/* Sequence numbers are decimal strings of up to 128 bits: compare by
 * length, then lexically. <0, 0, >0 like strcmp. */
int ht_kin_seq_cmp(const char *a, const char *b);

/* ---- KPL aggregated records ------------------------------------------ */

/* Called once per user record of an aggregated record; borrowed bytes. */
typedef void (*ht_kpl_fn)(void *ud, const void *data, size_t n);

enum {
    HT_KPL_PLAIN = 0,      /* not aggregated: use the bytes as they are */
    HT_KPL_AGGREGATED = 1, /* fn was called per user record */
    HT_KPL_BAD = -1        /* magic and MD5 match, protobuf does not parse */
};

/* Magic f3 89 9a c2 + protobuf AggregatedRecord + MD5 of the protobuf:
 * de-aggregated only when the magic matches and the MD5 verifies. */
int ht_kpl_deaggregate(const void *data, size_t n, ht_kpl_fn fn, void *ud);

/* Builds an aggregated record of the given user records (for tests and
 * tools). Appends to out. Returns HT_ERR_OK or HT_ERR_NOMEM. */
int ht_kpl_aggregate(const void *const *recs, const size_t *lens, size_t n,
                     struct ht_buf *out);

#endif
