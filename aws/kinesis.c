/*
 * kinesis.c - a small Kinesis Data Streams client: the JSON API over
 * libcurl, every request SigV4-signed. One curl handle per client, so the
 * connection is kept alive between calls. Throttling, 5xx and network
 * errors are retried here with jittered exponential back-off ("full
 * jitter": a random wait up to base*2^attempt, capped), so the reader only
 * sees outcomes it has to act on (an expired iterator, a closed shard, a
 * refusal).
 *
 * Owned by aws/. It returns payloads as the API gives them (base64): what
 * they mean is ingest's business. Credentials are never logged.
 */
#define _POSIX_C_SOURCE 200809L
#include "ht_aws.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_RESPONSE (64u * 1024 * 1024)

struct ht_kinesis {
    CURL *curl;
    char url[1024];
    char host[512];
    char region[64];
    const struct ht_aws_creds *creds;
    int max_attempts, base_ms, cap_ms;
    volatile sig_atomic_t *stop;
    struct ht_buf resp;
    bool resp_too_large;
    char err[512];
    uint64_t rng;
    struct ht_kin_counters cnt;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

const char *ht_kinesis_last_error(const struct ht_kinesis *k)
{
    return k->err;
}

const struct ht_kin_counters *ht_kinesis_counters(const struct ht_kinesis *k)
{
    return &k->cnt;
}

int ht_kinesis_open(const struct ht_kin_cfg *cfg, struct ht_kinesis **out)
{
    struct ht_kinesis *k;
    const char *p, *h, *e;

    *out = NULL;
    if (!cfg->region || !*cfg->region || !cfg->creds)
        return HT_ERR_USAGE;
    k = calloc(1, sizeof(*k));
    if (!k)
        return HT_ERR_NOMEM;
    if (cfg->endpoint && *cfg->endpoint)
        snprintf(k->url, sizeof(k->url), "%s", cfg->endpoint);
    else
        snprintf(k->url, sizeof(k->url), "https://kinesis.%s.amazonaws.com/",
                 cfg->region);
    /* the Host header is signed: it is the endpoint's authority */
    p = strstr(k->url, "://");
    if (!p ||
        (strncmp(k->url, "http://", 7) && strncmp(k->url, "https://", 8))) {
        free(k);
        return HT_ERR_USAGE;
    }
    h = p + 3;
    e = h + strcspn(h, "/?#");
    if (e == h || (size_t)(e - h) >= sizeof(k->host)) {
        free(k);
        return HT_ERR_USAGE;
    }
    memcpy(k->host, h, (size_t)(e - h));
    k->host[e - h] = 0;
    if (!*e) /* a bare authority: the API lives at "/" */
        snprintf(k->url + strlen(k->url), sizeof(k->url) - strlen(k->url), "/");
    snprintf(k->region, sizeof(k->region), "%s", cfg->region);
    k->creds = cfg->creds;
    k->max_attempts = cfg->max_attempts ? cfg->max_attempts : 10;
    k->base_ms = cfg->backoff_base_ms > 0 ? cfg->backoff_base_ms : 100;
    k->cap_ms = cfg->backoff_cap_ms > 0 ? cfg->backoff_cap_ms : 5000;
    k->stop = cfg->stop;
    k->rng = (uint64_t)ht_now_wall_us() ^ ((uint64_t)getpid() << 32) ^
             (uint64_t)(uintptr_t)k;
    pthread_once(&curl_once, curl_init_once);
    k->curl = curl_easy_init();
    if (!k->curl) {
        free(k);
        return HT_ERR_NOMEM;
    }
    ht_buf_init(&k->resp);
    *out = k;
    return HT_ERR_OK;
}

void ht_kinesis_close(struct ht_kinesis *k)
{
    if (!k)
        return;
    curl_easy_cleanup(k->curl);
    ht_buf_free(&k->resp);
    free(k);
}

static size_t on_data(char *p, size_t sz, size_t nm, void *ud)
{
    struct ht_kinesis *k = ud;
    size_t n = sz * nm;

    if (k->resp.len + n > MAX_RESPONSE) {
        k->resp_too_large = true;
        return 0; /* aborts the transfer */
    }
    ht_buf_add(&k->resp, p, n);
    return n;
}

static uint64_t next_rand(struct ht_kinesis *k)
{
    /* xorshift64*: jitter only needs to differ between processes */
    k->rng ^= k->rng >> 12;
    k->rng ^= k->rng << 25;
    k->rng ^= k->rng >> 27;
    return k->rng * 2685821657736338717ull;
}

/* Sleeps a jittered back-off; false when *stop was set meanwhile. */
static bool backoff(struct ht_kinesis *k, int attempt)
{
    int64_t cap = k->base_ms;
    int64_t ms;

    for (int i = 0; i < attempt && cap < k->cap_ms; i++)
        cap *= 2;
    if (cap > k->cap_ms)
        cap = k->cap_ms;
    ms = cap / 2 + (int64_t)(next_rand(k) % (uint64_t)(cap / 2 + 1));
    while (ms > 0) {
        int64_t slice = ms < 50 ? ms : 50;
        struct timespec ts = {0, (long)slice * 1000000L};

        if (k->stop && *k->stop)
            return false;
        nanosleep(&ts, NULL);
        ms -= slice;
    }
    return !(k->stop && *k->stop);
}

static bool is_auth_error(const char *t)
{
    static const char *const names[] = {"UnrecognizedClientException",
                                        "InvalidSignatureException",
                                        "AccessDeniedException",
                                        "ExpiredTokenException",
                                        "IncompleteSignatureException",
                                        "MissingAuthenticationTokenException",
                                        "InvalidClientTokenId",
                                        "SignatureDoesNotMatch",
                                        "AccessDenied",
                                        "KMSAccessDeniedException"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(t, names[i]) == 0)
            return true;
    return false;
}

/* Refusals that pass by themselves: throttling, and a stream that is being
 * created or resharded (ResourceInUseException) */
static bool is_throttle(const char *t)
{
    return strcmp(t, "ProvisionedThroughputExceededException") == 0 ||
           strcmp(t, "ResourceInUseException") == 0 ||
           strcmp(t, "LimitExceededException") == 0 ||
           strcmp(t, "ThrottlingException") == 0 ||
           strcmp(t, "KMSThrottlingException") == 0;
}

/* The error type and message of a 4xx body ("__type" may carry a
 * "namespace#" prefix). */
/* Replaces every occurrence of secret in b with "***". */
static void redact(struct ht_buf *b, const char *secret)
{
    size_t sl = secret ? strlen(secret) : 0;
    char *p;

    if (sl < 4 || !b->len)
        return;
    while ((p = strstr(b->data, secret))) {
        memmove(p + 3, p + sl, strlen(p + sl) + 1);
        memcpy(p, "***", 3);
        b->len -= sl - 3;
    }
}

static void error_of(struct ht_kinesis *k, long http, char *type, size_t tn)
{
    struct ht_buf msg;
    json_t *j =
        json_loadb(k->resp.data ? k->resp.data : "", k->resp.len, 0, NULL);
    const char *t = NULL, *m = NULL;

    type[0] = 0;
    if (json_is_object(j)) {
        t = json_string_value(json_object_get(j, "__type"));
        m = json_string_value(json_object_get(j, "message"));
        if (!m)
            m = json_string_value(json_object_get(j, "Message"));
    }
    if (t) {
        const char *hash = strrchr(t, '#');

        snprintf(type, tn, "%s", hash ? hash + 1 : t);
    }
    /* InvalidSignatureException quotes the canonical request, token
     * included: redact before the message is cut, so no prefix survives */
    ht_buf_init(&msg);
    ht_buf_adds(&msg, m ? m : "");
    redact(&msg, k->creds->session_token);
    redact(&msg, k->creds->secret_access_key);
    snprintf(k->err, sizeof(k->err), "HTTP %ld %s%s%.300s", http,
             type[0] ? type : "(no error type)", m ? ": " : "",
             msg.len ? msg.data : "");
    ht_buf_free(&msg);
    json_decref(j);
}

/* One signed POST with retries. On HT_KIN_OK the body is in k->resp. */
static int call(struct ht_kinesis *k, const char *op, const char *body)
{
    char target[96], date[17];
    struct ht_buf auth, hdr;

    snprintf(target, sizeof(target), "Kinesis_20131202.%s", op);
    ht_buf_init(&auth);
    ht_buf_init(&hdr);
    for (int attempt = 0;; attempt++) {
        struct curl_slist *hl = NULL;
        struct ht_sigv4_header sh[5] = {
            {"content-type", "application/x-amz-json-1.1"},
            {"host", k->host},
            {"x-amz-date", date},
            {"x-amz-target", target},
            {"x-amz-security-token", k->creds->session_token}};
        struct ht_sigv4_req rq = {.method = "POST",
                                  .path = "/",
                                  .query = "",
                                  .headers = sh,
                                  .nheaders = k->creds->session_token ? 5 : 4,
                                  .body = body,
                                  .body_len = strlen(body),
                                  .region = k->region,
                                  .service = "kinesis",
                                  .amz_date = date};
        CURLcode cc;
        long http = 0;
        char type[128];
        int st;

        /* signed per attempt: the date is part of the signature */
        ht_aws_amz_date(ht_now_wall_us() / 1000000, date);
        ht_buf_reset(&auth);
        if (ht_sigv4_sign(&rq, k->creds, &auth, NULL, NULL) != HT_ERR_OK) {
            snprintf(k->err, sizeof(k->err), "cannot sign the request");
            ht_buf_free(&auth);
            ht_buf_free(&hdr);
            return HT_KIN_BAD_REQUEST;
        }
        hl = curl_slist_append(hl, "Content-Type: application/x-amz-json-1.1");
        ht_buf_reset(&hdr);
        ht_buf_printf(&hdr, "X-Amz-Target: %s", target);
        hl = curl_slist_append(hl, hdr.data);
        ht_buf_reset(&hdr);
        ht_buf_printf(&hdr, "X-Amz-Date: %s", date);
        hl = curl_slist_append(hl, hdr.data);
        ht_buf_reset(&hdr);
        ht_buf_printf(&hdr, "Authorization: %s", auth.data);
        hl = curl_slist_append(hl, hdr.data);
        if (k->creds->session_token) {
            ht_buf_reset(&hdr);
            ht_buf_printf(&hdr, "X-Amz-Security-Token: %s",
                          k->creds->session_token);
            hl = curl_slist_append(hl, hdr.data);
        }
        /* the Host sent is the one signed, whatever curl would make of a
         * default port in the URL */
        ht_buf_reset(&hdr);
        ht_buf_printf(&hdr, "Host: %s", k->host);
        hl = curl_slist_append(hl, hdr.data);
        hl = curl_slist_append(hl, "Expect:");
        ht_buf_reset(&hdr);

        ht_buf_reset(&k->resp);
        k->resp_too_large = false;
        curl_easy_reset(k->curl);
        curl_easy_setopt(k->curl, CURLOPT_URL, k->url);
        curl_easy_setopt(k->curl, CURLOPT_POST, 1L);
        curl_easy_setopt(k->curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(k->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        curl_easy_setopt(k->curl, CURLOPT_HTTPHEADER, hl);
        curl_easy_setopt(k->curl, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(k->curl, CURLOPT_WRITEDATA, k);
        curl_easy_setopt(k->curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(k->curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
        curl_easy_setopt(k->curl, CURLOPT_TIMEOUT_MS, 60000L);
        curl_easy_setopt(k->curl, CURLOPT_ACCEPT_ENCODING, "");
        k->cnt.calls++;
        cc = curl_easy_perform(k->curl);
        curl_slist_free_all(hl);
        /* the header strings held the signature and maybe the token */
        ht_buf_reset(&auth);

        if (cc != CURLE_OK) {
            snprintf(k->err, sizeof(k->err), "%s: %s",
                     k->resp_too_large ? "response larger than 64 MiB"
                                       : "network error",
                     curl_easy_strerror(cc));
            st = HT_KIN_NETWORK;
            k->cnt.retries_network++;
        } else {
            curl_easy_getinfo(k->curl, CURLINFO_RESPONSE_CODE, &http);
            if (http == 200) {
                ht_buf_free(&auth);
                ht_buf_free(&hdr);
                return HT_KIN_OK;
            }
            error_of(k, http, type, sizeof(type));
            if (http >= 500) {
                st = HT_KIN_SERVER;
                k->cnt.retries_server++;
            } else if (is_throttle(type)) {
                st = HT_KIN_THROTTLED;
                k->cnt.retries_throttled++;
            } else {
                ht_buf_free(&auth);
                ht_buf_free(&hdr);
                if (strcmp(type, "ExpiredIteratorException") == 0) {
                    k->cnt.expired_iterators++;
                    return HT_KIN_EXPIRED_ITERATOR;
                }
                if (strcmp(type, "ResourceNotFoundException") == 0)
                    return HT_KIN_NOT_FOUND;
                if (is_auth_error(type) || http == 401 || http == 403)
                    return HT_KIN_AUTH;
                return HT_KIN_BAD_REQUEST;
            }
        }
        HT_LOG_DEBUG("aws:kinesis", "%s: %s (attempt %d)", op, k->err,
                     attempt + 1);
        if (k->max_attempts > 0 && attempt + 1 >= k->max_attempts) {
            ht_buf_free(&auth);
            ht_buf_free(&hdr);
            return st;
        }
        /* retrying for ever: say so now and then, a stuck reader must not
         * look like an idle one */
        if (k->max_attempts < 0 && (attempt + 1) % 10 == 0)
            HT_LOG_WARN("aws:kinesis",
                        "%s still failing after %d attempts: "
                        "%s; retrying",
                        op, attempt + 1, k->err);
        if (!backoff(k, attempt)) {
            ht_buf_free(&auth);
            ht_buf_free(&hdr);
            return HT_KIN_STOPPED;
        }
    }
}

static char *dumps(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);

    json_decref(j);
    HT_ASSERT(s);
    return s;
}

static void copy_str(char *dst, size_t n, json_t *v)
{
    const char *s = json_string_value(v);

    snprintf(dst, n, "%s", s ? s : "");
}

int ht_kin_parse_shards(const char *body, size_t n,
                        struct ht_kin_shard **shards, size_t *nshards,
                        size_t *cap, char **next)
{
    json_t *j = json_loadb(body, n, 0, NULL), *arr, *v;
    const char *tok;
    size_t i;

    *next = NULL;
    arr = json_object_get(j, "Shards");
    if (!json_is_array(arr)) {
        json_decref(j);
        return HT_KIN_BAD_RESPONSE;
    }
    json_array_foreach(arr, i, v)
    {
        struct ht_kin_shard *s;
        json_t *range = json_object_get(v, "SequenceNumberRange");

        if (!json_is_string(json_object_get(v, "ShardId")))
            continue;
        if (*nshards == *cap) {
            *cap = *cap ? *cap * 2 : 16;
            *shards = realloc(*shards, *cap * sizeof(**shards));
            HT_ASSERT(*shards);
        }
        s = &(*shards)[(*nshards)++];
        memset(s, 0, sizeof(*s));
        copy_str(s->id, sizeof(s->id), json_object_get(v, "ShardId"));
        copy_str(s->parent, sizeof(s->parent),
                 json_object_get(v, "ParentShardId"));
        copy_str(s->adjacent_parent, sizeof(s->adjacent_parent),
                 json_object_get(v, "AdjacentParentShardId"));
        copy_str(s->start_seq, sizeof(s->start_seq),
                 json_object_get(range, "StartingSequenceNumber"));
        s->closed =
            json_is_string(json_object_get(range, "EndingSequenceNumber"));
    }
    tok = json_string_value(json_object_get(j, "NextToken"));
    if (tok && *tok) {
        *next = strdup(tok);
        HT_ASSERT(*next);
    }
    json_decref(j);
    return HT_KIN_OK;
}

int ht_kinesis_list_shards(struct ht_kinesis *k, const char *stream,
                           struct ht_kin_shard **shards, size_t *n)
{
    size_t cap = 0;
    char *token = NULL;
    int st;

    *shards = NULL;
    *n = 0;
    for (int page = 0; page < 100000; page++) {
        json_t *req = json_object();
        char *body, *next = NULL;

        /* NextToken goes without StreamName (the API refuses both) */
        if (token)
            json_object_set_new(req, "NextToken", json_string(token));
        else
            json_object_set_new(req, "StreamName", json_string(stream));
        body = dumps(req);
        st = call(k, "ListShards", body);
        free(body);
        free(token);
        token = NULL;
        if (st != HT_KIN_OK)
            break;
        st = ht_kin_parse_shards(k->resp.data, k->resp.len, shards, n, &cap,
                                 &next);
        if (st != HT_KIN_OK) {
            snprintf(k->err, sizeof(k->err),
                     "ListShards answered without a Shards list");
            break;
        }
        if (!next)
            return HT_KIN_OK;
        token = next;
    }
    free(token);
    if (st == HT_KIN_OK)
        st = HT_KIN_BAD_RESPONSE;
    free(*shards);
    *shards = NULL;
    *n = 0;
    return st;
}

int ht_kinesis_get_iterator(struct ht_kinesis *k, const char *stream,
                            const char *shard, const char *type,
                            const char *arg, char **iter)
{
    json_t *req = json_object(), *j;
    const char *it;
    char *body;
    int st;

    *iter = NULL;
    json_object_set_new(req, "StreamName", json_string(stream));
    json_object_set_new(req, "ShardId", json_string(shard));
    json_object_set_new(req, "ShardIteratorType", json_string(type));
    if (strcmp(type, "AT_TIMESTAMP") == 0)
        json_object_set_new(req, "Timestamp",
                            json_real(arg ? strtod(arg, NULL) : 0));
    else if (strstr(type, "SEQUENCE_NUMBER"))
        json_object_set_new(req, "StartingSequenceNumber",
                            json_string(arg ? arg : ""));
    body = dumps(req);
    st = call(k, "GetShardIterator", body);
    free(body);
    if (st != HT_KIN_OK)
        return st;
    j = json_loadb(k->resp.data, k->resp.len, 0, NULL);
    it = json_string_value(json_object_get(j, "ShardIterator"));
    if (it) {
        *iter = strdup(it);
        HT_ASSERT(*iter);
    } else {
        /* a null iterator: the shard is closed and there is nothing after
         * the position asked for */
        st = json_is_object(j) ? HT_KIN_OK : HT_KIN_BAD_RESPONSE;
        if (st)
            snprintf(k->err, sizeof(k->err),
                     "GetShardIterator answered with no JSON object");
    }
    json_decref(j);
    return st;
}

void ht_kin_records_free(struct ht_kin_records *r)
{
    free(r->recs);
    free(r->next_iterator);
    free((void *)r->child_shards);
    json_decref(r->priv_);
    memset(r, 0, sizeof(*r));
}

int ht_kin_parse_records(const char *body, size_t n, struct ht_kin_records *out)
{
    json_t *j = json_loadb(body, n, 0, NULL), *arr, *v, *mb;
    const char *it;
    size_t i;

    memset(out, 0, sizeof(*out));
    arr = json_object_get(j, "Records");
    if (!json_is_array(arr)) {
        json_decref(j);
        return HT_KIN_BAD_RESPONSE;
    }
    out->priv_ = j;
    out->recs = calloc(json_array_size(arr) + 1, sizeof(*out->recs));
    HT_ASSERT(out->recs);
    json_array_foreach(arr, i, v)
    {
        json_t *d = json_object_get(v, "Data");
        const char *seq =
            json_string_value(json_object_get(v, "SequenceNumber"));
        struct ht_kin_record *r;

        if (!seq || !json_is_string(d))
            continue; /* not a record: nothing to checkpoint either */
        r = &out->recs[out->n++];
        r->seq = seq;
        r->data = json_string_value(d);
        r->data_len = json_string_length(d);
        r->arrival = json_number_value(
            json_object_get(v, "ApproximateArrivalTimestamp"));
    }
    it = json_string_value(json_object_get(j, "NextShardIterator"));
    if (it && *it) {
        out->next_iterator = strdup(it);
        HT_ASSERT(out->next_iterator);
    }
    mb = json_object_get(j, "MillisBehindLatest");
    out->millis_behind =
        json_is_number(mb) ? (int64_t)json_number_value(mb) : -1;
    arr = json_object_get(j, "ChildShards");
    if (json_is_array(arr) && json_array_size(arr)) {
        out->child_shards =
            calloc(json_array_size(arr), sizeof(*out->child_shards));
        HT_ASSERT(out->child_shards);
        json_array_foreach(arr, i, v)
        {
            const char *id = json_string_value(json_object_get(v, "ShardId"));

            if (id)
                out->child_shards[out->nchild++] = id;
        }
    }
    return HT_KIN_OK;
}

int ht_kinesis_get_records(struct ht_kinesis *k, const char *iter, int limit,
                           struct ht_kin_records *out)
{
    json_t *req = json_object();
    char *body;
    int st;

    memset(out, 0, sizeof(*out));
    json_object_set_new(req, "ShardIterator", json_string(iter));
    if (limit > 0)
        json_object_set_new(req, "Limit", json_integer(limit));
    body = dumps(req);
    st = call(k, "GetRecords", body);
    free(body);
    if (st != HT_KIN_OK)
        return st;
    st = ht_kin_parse_records(k->resp.data, k->resp.len, out);
    if (st != HT_KIN_OK)
        snprintf(k->err, sizeof(k->err),
                 "GetRecords answered without a Records list");
    return st;
}

int ht_kin_seq_cmp(const char *a, const char *b)
{
    size_t la, lb;

    while (*a == '0' && a[1])
        a++;
    while (*b == '0' && b[1])
        b++;
    la = strlen(a);
    lb = strlen(b);
    if (la != lb)
        return la < lb ? -1 : 1;
    return strcmp(a, b);
}
