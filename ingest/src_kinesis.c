/*
 * src_kinesis.c - the Kinesis source of the ingest engine
 * (`hoptrace ingest --kinesis STREAM`): reads a Kinesis Data Streams
 * stream the way a KCL worker would, with aws/'s client (libcurl, SigV4)
 * instead of an SDK.
 *
 * Round-robin over the shards being read, each paced to at most one
 * GetRecords per 200 ms (the per-shard limit is 5 calls/s) and backing off
 * up to 1 s while a shard answers empty. A closed shard (no
 * NextShardIterator) is drained, then the shard list is read again and its
 * children start: a child waits until every parent still listed is
 * drained, so records of a key come out in order across a reshard.
 *
 * Every record's Data is base64-decoded, de-aggregated when it is a KPL
 * record, and sniffed by ht_ingest_payload like a file's content. The
 * checkpoint of a shard (`kinesis:STREAM:SHARD` → last sequence number,
 * records read, drained) is written by the engine in the same LMDB
 * transaction as the data it covers, so a kill -9 loses and doubles
 * nothing: a restart asks for AFTER_SEQUENCE_NUMBER of the stored number.
 *
 * Owned by ingest/ (library ht_engine). It must not speak HTTP (aws/ does)
 * and prints nothing but log lines. Credentials never reach a log line.
 */
#define _POSIX_C_SOURCE 200809L
#include "ht_aws.h"
#include "ht_engine.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const struct ht_opt ht_kinesis_src_opt_table[] = {
    {HT_OPT_STRING, "--kinesis", NULL, "STREAM", NULL,
     offsetof(struct ht_kinesis_src_cfg, stream), 0, 0, "the stream name"},
    {HT_OPT_STRING, "--endpoint", NULL, "URL", NULL,
     offsetof(struct ht_kinesis_src_cfg, endpoint), 0, 0,
     "the API endpoint (default https://kinesis.REGION.amazonaws.com; VPC "
     "endpoints, emulators)"},
    {HT_OPT_STRING, "--region", NULL, "R", NULL,
     offsetof(struct ht_kinesis_src_cfg, region), 0, 0,
     "default $AWS_REGION, else $AWS_DEFAULT_REGION"},
    {HT_OPT_STRING, "--from", NULL, "POSITION", "trim-horizon",
     offsetof(struct ht_kinesis_src_cfg, from), 0, 0,
     "where shards without a checkpoint start: trim-horizon, latest, or "
     "timestamp:EPOCH_SECONDS"},
    {HT_OPT_COUNT, "--limit", NULL, "N", "10000",
     offsetof(struct ht_kinesis_src_cfg, limit), 1, 10000,
     "records per GetRecords call"},
    HT_OPT_END};

enum { S_WAIT, S_READ, S_DONE };

struct shard {
    struct ht_kin_shard info;
    int state;
    char *iter;      /* owned; NULL until asked for (or after expiry) */
    char seq[130];   /* last sequence number decoded, "" when none */
    uint64_t count;  /* records read from this shard, every run */
    bool drained;    /* read to its end (here or in an earlier run) */
    bool dirty;      /* checkpoint changed since the last flush */
    bool got_ckpt;   /* a checkpoint was found at start */
    int64_t next_us; /* no GetRecords before this (monotonic) */
    int delay_ms;
    int64_t behind_ms; /* MillisBehindLatest of the last answer, -1 none */
    uint64_t records_run;
    char source[300]; /* "kinesis:STREAM/SHARD" */
    char ckey[300];   /* "kinesis:STREAM:SHARD" */
};

struct kin {
    struct ht_engine *eng; /* borrowed, from the first poll on */
    struct ht_kinesis_src_cfg cfg;
    struct ht_aws_creds creds;
    bool have_creds;
    char region[64], tsbuf[64];
    struct ht_kinesis *k;
    const char *stream;
    const char *from_type; /* TRIM_HORIZON, LATEST, AT_TIMESTAMP */
    const char *from_arg;
    int limit; /* records per GetRecords */
    struct shard *sh;
    size_t nsh, capsh;
    uint8_t *scratch; /* owned: the decoded Data of one record */
    size_t scap;
    /* the run */
    bool listed;
    int64_t last_activity, last_list;
    bool relist;
    int status; /* HT_KIN_OK, or what ended the run */
};

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Checkpoint value: "1 SEQ COUNT DRAINED" (SEQ "-" when none). Text, so
 * `mdb_dump` shows it and a longer number format never breaks it. */
static size_t ckpt_value(const struct shard *s, char *out, size_t n)
{
    int len = snprintf(out, n, "1 %s %llu %d", s->seq[0] ? s->seq : "-",
                       (unsigned long long)s->count, s->drained ? 1 : 0);

    return len > 0 && (size_t)len < n ? (size_t)len : 0;
}

static void load_ckpt(struct kin *g, struct shard *s)
{
    char buf[300], seq[130];
    size_t n = 0;
    unsigned long long count = 0;
    int drained = 0, ver = 0;

    if (ht_engine_get_ckpt(g->eng, s->ckey, buf, sizeof(buf) - 1, &n) !=
            HT_ERR_OK ||
        n >= sizeof(buf))
        return;
    buf[n] = 0;
    if (sscanf(buf, "%d %129s %llu %d", &ver, seq, &count, &drained) != 4 ||
        ver != 1) {
        HT_LOG_WARN("ingest:kinesis",
                    "%s: checkpoint '%s' not understood; "
                    "reading the shard from the start (idempotent)",
                    s->ckey, buf);
        return;
    }
    if (strcmp(seq, "-") != 0)
        snprintf(s->seq, sizeof(s->seq), "%s", seq);
    s->count = count;
    s->drained = drained != 0;
    s->got_ckpt = true;
}

static int flush(struct kin *g)
{
    struct ht_engine_ckpt ck[64];
    char vals[64][200];
    size_t n = 0;
    int rc = HT_ERR_OK;

    /* in chunks of 64: many shards just means several entries lists, all
     * still written with (or after) the data they describe */
    for (size_t i = 0; i < g->nsh; i++) {
        struct shard *s = &g->sh[i];

        if (!s->dirty)
            continue;
        ck[n].key = s->ckey;
        ck[n].klen = strlen(s->ckey);
        ck[n].val = vals[n];
        ck[n].vlen = ckpt_value(s, vals[n], sizeof(vals[n]));
        s->dirty = false;
        if (++n == 64) {
            rc = ht_engine_flush(g->eng, ck, n);
            if (rc)
                return rc;
            n = 0;
        }
    }
    if (n || ht_engine_has_data(g->eng))
        rc = ht_engine_flush(g->eng, ck, n);
    return rc;
}

static struct shard *find_shard(struct kin *g, const char *id)
{
    for (size_t i = 0; i < g->nsh; i++)
        if (strcmp(g->sh[i].info.id, id) == 0)
            return &g->sh[i];
    return NULL;
}

/* Reads the shard list and adds the shards not known yet. */
static int list_shards(struct kin *g)
{
    struct ht_kin_shard *l;
    size_t n;
    int st = ht_kinesis_list_shards(g->k, g->stream, &l, &n);

    if (st != HT_KIN_OK)
        return st;
    for (size_t i = 0; i < n; i++) {
        struct shard *s = find_shard(g, l[i].id);

        if (s) {
            s->info.closed = l[i].closed;
            continue;
        }
        if (g->nsh == g->capsh) {
            g->capsh = g->capsh ? g->capsh * 2 : 16;
            g->sh = realloc(g->sh, g->capsh * sizeof(*g->sh));
            HT_ASSERT(g->sh);
        }
        s = &g->sh[g->nsh++];
        memset(s, 0, sizeof(*s));
        s->info = l[i];
        s->behind_ms = -1;
        s->delay_ms = 200;
        snprintf(s->source, sizeof(s->source), "kinesis:%s/%s", g->stream,
                 s->info.id);
        snprintf(s->ckey, sizeof(s->ckey), "kinesis:%s:%s", g->stream,
                 s->info.id);
        load_ckpt(g, s);
        if (s->drained)
            s->state = S_DONE;
        else if (!s->got_ckpt && s->info.closed &&
                 strcmp(g->from_type, "LATEST") == 0)
            s->state = S_DONE; /* nothing after "latest" in a closed shard */
        else
            s->state = S_WAIT;
        HT_LOG_INFO("ingest:kinesis", "%s: %s%s%s", s->source,
                    s->state == S_DONE ? "already drained"
                    : s->seq[0]        ? "resuming after "
                                       : "new",
                    s->state != S_DONE && s->seq[0] ? s->seq : "",
                    s->info.closed ? " (closed)" : "");
    }
    free(l);
    return HT_KIN_OK;
}

/* A parent blocks its child until it is drained; a parent no longer listed
 * (past retention) blocks nothing. */
static bool parent_blocks(struct kin *g, const char *id, bool *read_here)
{
    struct shard *p;

    if (!id[0])
        return false;
    p = find_shard(g, id);
    if (!p)
        return false;
    if (p->drained)
        *read_here = true;
    return p->state != S_DONE;
}

static void start_ready(struct kin *g)
{
    for (size_t i = 0; i < g->nsh; i++) {
        struct shard *s = &g->sh[i];
        bool ignored = false;

        if (s->state == S_WAIT && !parent_blocks(g, s->info.parent, &ignored) &&
            !parent_blocks(g, s->info.adjacent_parent, &ignored))
            s->state = S_READ;
    }
}

struct user_records {
    struct ht_batch *b;
    const struct ht_srcpos *pos;
};

static void on_user_record(void *ud, const void *data, size_t n)
{
    struct user_records *u = ud;

    ht_ingest_payload(u->b, u->pos, data, n);
}

void ht_kinesis_decode_record(struct ht_batch *b, const struct ht_srcpos *pos,
                              const char *data, size_t len, uint8_t **scratch,
                              size_t *scap)
{
    struct user_records u = {b, pos};
    long n;
    int kpl;

    /* ht_base64_decode needs (n/4+1)*3 bytes */
    if (*scap < (len / 4 + 1) * 3) {
        free(*scratch);
        *scap = (len / 4 + 1) * 3;
        *scratch = malloc(*scap);
        HT_ASSERT(*scratch);
    }
    n = ht_base64_decode(data, len, *scratch);
    if (n < 0) {
        ht_batch_reject(b, HT_REJ_BAD_ENCODING, pos,
                        "Kinesis record Data is not base64", data, len);
        return;
    }
    kpl = ht_kpl_deaggregate(*scratch, (size_t)n, on_user_record, &u);
    if (kpl == HT_KPL_PLAIN)
        ht_ingest_payload(b, pos, *scratch, (size_t)n);
    else if (kpl == HT_KPL_BAD)
        ht_batch_reject(b, HT_REJ_BAD_ENCODING, pos,
                        "KPL aggregated record (magic and MD5 match) whose "
                        "protobuf does not decode",
                        *scratch, (size_t)n);
}

static void decode_record(struct kin *g, struct shard *s,
                          const struct ht_kin_record *r)
{
    struct ht_srcpos pos = {s->source, s->count};

    ht_kinesis_decode_record(ht_engine_batch(g->eng), &pos, r->data,
                             r->data_len, &g->scratch, &g->scap);
}

static const char *status_hint(int st)
{
    switch (st) {
    case HT_KIN_AUTH:
        return "the credentials were refused: check AWS_ACCESS_KEY_ID / "
               "AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN or the profile, "
               "and that they may read the stream";
    case HT_KIN_NOT_FOUND:
        return "check the stream name, --region and --endpoint";
    case HT_KIN_THROTTLED:
        return "still throttled after every retry; another reader may be "
               "using the shard's read limit";
    case HT_KIN_SERVER:
        return "the service kept failing; try again later";
    case HT_KIN_NETWORK:
        return "check --endpoint and the network";
    default:
        return "this is a bug or an unexpected answer; please report it";
    }
}

/* Gets an iterator for s. Returns HT_KIN_OK (s->iter set, or s drained when
 * the shard is closed with nothing after the position). */
static int get_iterator(struct kin *g, struct shard *s)
{
    const char *type = g->from_type, *arg = g->from_arg;
    bool parent_read = false;
    int st;

    parent_blocks(g, s->info.parent, &parent_read);
    parent_blocks(g, s->info.adjacent_parent, &parent_read);
    if (s->seq[0]) {
        type = "AFTER_SEQUENCE_NUMBER";
        arg = s->seq;
    } else if (parent_read || s->got_ckpt) {
        /* a child of a shard read here starts at its beginning, whatever
         * --from said: its records follow the parent's */
        type = "TRIM_HORIZON";
        arg = NULL;
    }
    st = ht_kinesis_get_iterator(g->k, g->stream, s->info.id, type, arg,
                                 &s->iter);
    if (st == HT_KIN_OK && !s->iter) {
        s->state = S_DONE;
        s->drained = true;
        s->dirty = true;
    }
    return st;
}

/* One GetRecords on s. Returns a status; fatal ones stop the run. */
static int poll_shard(struct kin *g, struct shard *s)
{
    struct ht_kin_records recs;
    int64_t now;
    int st;

    if (!s->iter) {
        st = get_iterator(g, s);
        if (st == HT_KIN_NOT_FOUND) {
            HT_LOG_WARN("ingest:kinesis", "%s: shard not found (%s); skipped",
                        s->source, ht_kinesis_last_error(g->k));
            s->state = S_DONE;
            g->relist = true;
            return HT_KIN_OK;
        }
        if (st != HT_KIN_OK || s->state == S_DONE) {
            if (s->state == S_DONE)
                g->relist = true;
            return st;
        }
    }
    st = ht_kinesis_get_records(g->k, s->iter, g->limit, &recs);
    now = ht_now_mono_us();
    if (st == HT_KIN_EXPIRED_ITERATOR) {
        /* re-issued after the last sequence number decoded */
        HT_LOG_INFO("ingest:kinesis", "%s: iterator expired; asking again",
                    s->source);
        free(s->iter);
        s->iter = NULL;
        /* paced like any call: iterators that keep expiring (a skewed
         * clock, say) must not turn into a busy loop */
        s->next_us = now + (int64_t)s->delay_ms * 1000;
        ht_kin_records_free(&recs);
        return HT_KIN_OK;
    }
    if (st == HT_KIN_NOT_FOUND) {
        HT_LOG_WARN("ingest:kinesis", "%s: %s; skipped", s->source,
                    ht_kinesis_last_error(g->k));
        s->state = S_DONE;
        g->relist = true;
        ht_kin_records_free(&recs);
        return HT_KIN_OK;
    }
    if (st != HT_KIN_OK) {
        ht_kin_records_free(&recs);
        return st;
    }
    for (size_t i = 0; i < recs.n; i++) {
        decode_record(g, s, &recs.recs[i]);
        snprintf(s->seq, sizeof(s->seq), "%s", recs.recs[i].seq);
        s->count++;
        s->records_run++;
        s->dirty = true;
    }
    s->behind_ms = recs.millis_behind;
    if (recs.n || recs.millis_behind > 0)
        g->last_activity = now;
    free(s->iter);
    s->iter = recs.next_iterator;
    recs.next_iterator = NULL;
    if (!s->iter) {
        HT_LOG_INFO("ingest:kinesis",
                    "%s: closed and drained after %llu records", s->source,
                    (unsigned long long)s->count);
        s->state = S_DONE;
        s->drained = true;
        s->dirty = true;
        g->relist = true; /* its children are to be read next */
        g->last_activity = now;
    }
    s->delay_ms =
        recs.n ? 200 : (s->delay_ms * 2 > 1000 ? 1000 : s->delay_ms * 2);
    s->next_us = now + (int64_t)s->delay_ms * 1000;
    ht_kin_records_free(&recs);
    return HT_KIN_OK;
}

static int kinesis_poll(void *state, struct ht_engine *e, int timeout_ms)
{
    struct kin *g = state;
    int64_t now = ht_now_mono_us(), wake;
    bool any = false;
    int st;

    g->eng = e;
    if (g->status != HT_KIN_OK)
        return HT_POLL_END;
    /* new shards appear on a reshard done by someone else too */
    if (!g->listed || g->relist || now - g->last_list > 10000000) {
        st = list_shards(g);
        if (st != HT_KIN_OK) {
            g->status = st;
            return HT_POLL_END;
        }
        if (!g->listed)
            g->last_activity = now;
        g->listed = true;
        g->relist = false;
        g->last_list = now;
    }
    start_ready(g);
    for (size_t i = 0; i < g->nsh; i++) {
        struct shard *s = &g->sh[i];

        if (s->state != S_READ || s->next_us > ht_now_mono_us())
            continue;
        st = poll_shard(g, s);
        if (st != HT_KIN_OK) {
            g->status = st;
            return HT_POLL_END;
        }
        any = true;
        if (ht_engine_full(e))
            return HT_POLL_DATA; /* the engine commits; the rest next time */
    }
    if (any)
        return HT_POLL_FLUSH; /* a round's records and checkpoints */
    now = ht_now_mono_us();
    if (g->cfg.until_idle > 0 &&
        (double)(now - g->last_activity) >= g->cfg.until_idle * 1e6)
        return HT_POLL_END;
    wake = now + (int64_t)(timeout_ms < 100 ? timeout_ms : 100) * 1000;
    for (size_t i = 0; i < g->nsh; i++)
        if (g->sh[i].state == S_READ && g->sh[i].next_us < wake)
            wake = g->sh[i].next_us;
    if (!g->relist && wake > now)
        sleep_ms((wake - now + 999) / 1000);
    return HT_POLL_IDLE;
}

static int kinesis_checkpoint(void *state, struct ht_engine *e)
{
    struct kin *g = state;

    g->eng = e;
    return flush(g);
}

static void kinesis_close(void *state)
{
    struct kin *g = state;

    if (!g)
        return;
    for (size_t i = 0; i < g->nsh; i++)
        free(g->sh[i].iter);
    free(g->sh);
    free(g->scratch);
    ht_kinesis_close(g->k);
    if (g->have_creds)
        ht_aws_creds_free(&g->creds);
    free(g);
}

static int kinesis_open(const void *cfgv, void **state)
{
    const struct ht_kinesis_src_cfg *cfg = cfgv;
    struct kin *g = calloc(1, sizeof(*g));
    struct ht_kin_cfg kc = {0};
    const char *from;
    char err[600];

    *state = NULL;
    if (!g)
        return HT_ERR_NOMEM;
    g->cfg = *cfg;
    g->stream = cfg->stream;
    g->limit = cfg->limit ? (int)cfg->limit : 10000;
    from = cfg->from ? cfg->from : "trim-horizon";
    if (!g->stream || !*g->stream) {
        HT_LOG_ERROR("ingest:kinesis",
                     "ingest --kinesis needs a stream name (see hoptrace "
                     "ingest --kinesis X --help)");
        goto usage;
    }
    if (strcmp(from, "trim-horizon") == 0) {
        g->from_type = "TRIM_HORIZON";
    } else if (strcmp(from, "latest") == 0) {
        g->from_type = "LATEST";
    } else if (strncmp(from, "timestamp:", 10) == 0) {
        char *end;
        double t = strtod(from + 10, &end);

        if (*end || !(t > 0)) {
            HT_LOG_ERROR("ingest:kinesis",
                         "--from timestamp:EPOCH_SECONDS needs a number, "
                         "e.g. timestamp:1700000000");
            goto usage;
        }
        snprintf(g->tsbuf, sizeof(g->tsbuf), "%.3f", t);
        g->from_type = "AT_TIMESTAMP";
        g->from_arg = g->tsbuf;
    } else {
        HT_LOG_ERROR("ingest:kinesis", "--from takes trim-horizon, latest or "
                                       "timestamp:EPOCH_SECONDS");
        goto usage;
    }
    if (ht_aws_region(cfg->region, g->region, sizeof(g->region)) != HT_ERR_OK) {
        HT_LOG_ERROR("ingest:kinesis",
                     "ingest --kinesis needs a region: --region R, or set "
                     "AWS_REGION or AWS_DEFAULT_REGION");
        goto usage;
    }
    if (ht_aws_creds_load(&g->creds, err, sizeof(err)) != HT_ERR_OK) {
        HT_LOG_ERROR("ingest:kinesis", "%s", err);
        goto usage;
    }
    g->have_creds = true;
    kc.endpoint = cfg->endpoint;
    kc.region = g->region;
    kc.creds = &g->creds;
    kc.stop = cfg->stop;
    /* a reader that runs until stopped rides out an outage; one that is to
     * end when idle fails visibly instead */
    kc.max_attempts = cfg->until_idle > 0 ? 10 : -1;
    if (getenv("HOPTRACE_KINESIS_BACKOFF_MS"))
        kc.backoff_base_ms = atoi(getenv("HOPTRACE_KINESIS_BACKOFF_MS"));
    if (ht_kinesis_open(&kc, &g->k) != HT_ERR_OK) {
        HT_LOG_ERROR("ingest:kinesis",
                     "--endpoint %s is not an http:// or https:// URL",
                     cfg->endpoint ? cfg->endpoint : "(default)");
        goto usage;
    }
    HT_LOG_INFO("ingest:kinesis", "stream %s, region %s, credentials from %s",
                g->stream, g->region, g->creds.source);
    g->last_activity = g->last_list = ht_now_mono_us();
    *state = g;
    return HT_ERR_OK;
usage:
    kinesis_close(g);
    return HT_ERR_USAGE;
}

void ht_kinesis_src_stats(const void *state, struct ht_kinesis_src_stats *out)
{
    const struct kin *g = state;

    memset(out, 0, sizeof(*out));
    out->stream = g->stream;
    out->nshards = g->nsh;
    if (g->status != HT_KIN_OK && g->status != HT_KIN_STOPPED) {
        out->failed = true;
        out->error = ht_kinesis_last_error(g->k);
        out->hint = status_hint(g->status);
        /* refused credentials, no such stream: the command is wrong */
        out->usage = g->status == HT_KIN_AUTH || g->status == HT_KIN_NOT_FOUND;
    }
}

void ht_kinesis_src_describe(const void *state, struct ht_buf *f)
{
    const struct kin *g = state;
    size_t drained = 0;
    const struct ht_kin_counters *c = ht_kinesis_counters(g->k);

    ht_buf_adds(f, "; behind:");
    for (size_t i = 0; i < g->nsh; i++) {
        const struct shard *s = &g->sh[i];

        /* a drained shard has no lag: it will never get a record, and a
         * long-lived stream has many of them */
        if (s->drained)
            drained++;
        else if (s->behind_ms >= 0)
            ht_buf_printf(f, " %s=%lld ms", s->info.id,
                          (long long)s->behind_ms);
        else
            ht_buf_printf(f, " %s=n/a", s->info.id);
    }
    if (drained)
        ht_buf_printf(f, " (%zu closed shards drained)", drained);
    if (c->retries_throttled || c->retries_server || c->retries_network ||
        c->expired_iterators)
        ht_buf_printf(f,
                      "; retries: %llu throttled, %llu 5xx, %llu network; %llu "
                      "expired iterators",
                      (unsigned long long)c->retries_throttled,
                      (unsigned long long)c->retries_server,
                      (unsigned long long)c->retries_network,
                      (unsigned long long)c->expired_iterators);
}

const struct ht_source_ops ht_source_kinesis = {
    .name = "kinesis",
    .opts = ht_kinesis_src_opt_table,
    .cfg_size = sizeof(struct ht_kinesis_src_cfg),
    .open = kinesis_open,
    .poll = kinesis_poll,
    .checkpoint = kinesis_checkpoint,
    .close = kinesis_close,
};
