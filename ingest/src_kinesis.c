/*
 * ingest_kinesis.c - `hoptrace ingest --kinesis STREAM`: reads a Kinesis
 * Data Streams stream the way a KCL worker would, with aws/'s client
 * (libcurl, SigV4) instead of an SDK.
 *
 * One thread, round-robin over the shards being read, each paced to at
 * most one GetRecords per 200 ms (the per-shard limit is 5 calls/s) and
 * backing off up to 1 s while a shard answers empty. A closed shard (no
 * NextShardIterator) is drained, then the shard list is read again and its
 * children start: a child waits until every parent still listed is
 * drained, so records of a key come out in order across a reshard.
 *
 * Every record's Data is base64-decoded, de-aggregated when it is a KPL
 * record, and sniffed by ht_ingest_payload like a file's content. The
 * checkpoint of a shard (`kinesis:STREAM:SHARD` → last sequence number,
 * records read, drained) is written by the sink in the same LMDB
 * transaction as the data it covers, so a kill -9 loses and doubles
 * nothing: a restart asks for AFTER_SEQUENCE_NUMBER of the stored number.
 *
 * Owned by cli/. It must not decode documents itself (ingest/ does) nor
 * speak HTTP (aws/ does). Credentials never reach a log line.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "ht_aws.h"
#include "ht_ingest.h"
#include "sink.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char usage[] =
    "usage: hoptrace [--db DIR] ingest --kinesis STREAM [--endpoint URL]\n"
    "         [--region R] [--until-idle SECONDS]\n"
    "         [--from trim-horizon|latest|timestamp:EPOCH_SECONDS]\n"
    "         [--limit N] [--batch N] [--strict] [--quiet]\n"
    "\n"
    "Reads every shard of a Kinesis Data Stream (ListShards, "
    "GetShardIterator,\n"
    "GetRecords; SigV4-signed) and ingests each record like a file's content\n"
    "(gzip'd CloudWatch Logs subscription messages, X-Ray documents, daemon\n"
    "datagrams, ...); KPL-aggregated records are de-aggregated. The last\n"
    "sequence number of each shard is committed with the data, so a restart\n"
    "resumes after it and loses or doubles nothing. After a reshard, parents\n"
    "are drained before their children are read.\n"
    "\n"
    "  --kinesis STREAM        the stream name\n"
    "  --endpoint URL          the API endpoint (default\n"
    "                          https://kinesis.REGION.amazonaws.com; VPC\n"
    "                          endpoints, emulators)\n"
    "  --region R              default $AWS_REGION, else $AWS_DEFAULT_REGION\n"
    "  --until-idle SECONDS    exit after that long without a new record\n"
    "                          (default: run until SIGINT/SIGTERM)\n"
    "  --from POSITION         where shards without a checkpoint start:\n"
    "                          trim-horizon (default), latest, or\n"
    "                          timestamp:EPOCH_SECONDS\n"
    "  --limit N               records per GetRecords call (1 to 10000,\n"
    "                          default 10000)\n"
    "  --batch N               documents per write transaction (default "
    "2048)\n"
    "  --strict                exit 3 when anything was rejected\n"
    "  --quiet                 no summary line\n"
    "  --durable               flush every commit to disk (default: atomic\n"
    "                          commits, safe from kill -9, flushed by the OS)\n"
    "  --db DIR                the store (also a global option)\n"
    "\n"
    "Credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and\n"
    "AWS_SESSION_TOKEN, else the shared credentials file\n"
    "($AWS_SHARED_CREDENTIALS_FILE, default ~/.aws/credentials), profile\n"
    "$AWS_PROFILE (default \"default\"). Throttling, expired iterators, 5xx\n"
    "and network errors are retried with jittered exponential back-off: up\n"
    "to 10 times with --until-idle, else until they pass (or a signal).\n"
    "The summary line ends with each shard's MillisBehindLatest.\n";

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
    struct ht_engine *eng;
    struct ht_kinesis *k;
    const char *stream;
    const char *from_type; /* TRIM_HORIZON, LATEST, AT_TIMESTAMP */
    const char *from_arg;
    int limit; /* records per GetRecords */
    struct shard *sh;
    size_t nsh, capsh;
    uint8_t *scratch; /* owned: the decoded Data of one record */
    size_t scap;
    struct shard *cur; /* the shard whose records are being decoded */
};

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

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
    if (n || ht_engine_batch(g->eng)->documents || ht_engine_batch(g->eng)->nrejects)
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

static void on_user_record(void *ud, const void *data, size_t n)
{
    struct kin *g = ud;
    struct ht_srcpos pos = {g->cur->source, g->cur->count};

    ht_ingest_payload(ht_engine_batch(g->eng), &pos, data, n);
}

static void decode_record(struct kin *g, struct shard *s,
                          const struct ht_kin_record *r)
{
    struct ht_srcpos pos = {s->source, s->count};
    long n;
    int kpl;

    /* ht_base64_decode needs (n/4+1)*3 bytes */
    if (g->scap < (r->data_len / 4 + 1) * 3) {
        free(g->scratch);
        g->scap = (r->data_len / 4 + 1) * 3;
        g->scratch = malloc(g->scap);
        HT_ASSERT(g->scratch);
    }
    n = ht_base64_decode(r->data, r->data_len, g->scratch);
    if (n < 0) {
        ht_batch_reject(ht_engine_batch(g->eng), HT_REJ_BAD_ENCODING, &pos,
                        "Kinesis record Data is not base64", r->data,
                        r->data_len);
        return;
    }
    g->cur = s;
    kpl = ht_kpl_deaggregate(g->scratch, (size_t)n, on_user_record, g);
    if (kpl == HT_KPL_PLAIN)
        ht_ingest_payload(ht_engine_batch(g->eng), &pos, g->scratch, (size_t)n);
    else if (kpl == HT_KPL_BAD)
        ht_batch_reject(ht_engine_batch(g->eng), HT_REJ_BAD_ENCODING, &pos,
                        "KPL aggregated record (magic and MD5 match) whose "
                        "protobuf does not decode",
                        g->scratch, (size_t)n);
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

struct run_state {
    int64_t last_activity;
    bool relist;
};

/* One GetRecords on s. Returns a status; fatal ones stop the run. */
static int poll_shard(struct kin *g, struct shard *s, struct run_state *rs)
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
            rs->relist = true;
            return HT_KIN_OK;
        }
        if (st != HT_KIN_OK || s->state == S_DONE) {
            if (s->state == S_DONE)
                rs->relist = true;
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
        rs->relist = true;
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
        rs->last_activity = now;
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
        rs->relist = true; /* its children are to be read next */
        rs->last_activity = now;
    }
    s->delay_ms =
        recs.n ? 200 : (s->delay_ms * 2 > 1000 ? 1000 : s->delay_ms * 2);
    s->next_us = now + (int64_t)s->delay_ms * 1000;
    ht_kin_records_free(&recs);
    return HT_KIN_OK;
}

static int run(struct kin *g, double until_idle)
{
    struct run_state rs = {ht_now_mono_us(), false};
    int64_t last_list = ht_now_mono_us();
    int st;

    st = list_shards(g);
    if (st != HT_KIN_OK)
        return st;
    while (!stop_flag) {
        int64_t now = ht_now_mono_us(), wake;
        bool any = false;
        int rc;

        /* new shards appear on a reshard done by someone else too */
        if (rs.relist || now - last_list > 10000000) {
            st = list_shards(g);
            if (st != HT_KIN_OK)
                return st;
            rs.relist = false;
            last_list = now;
        }
        start_ready(g);
        for (size_t i = 0; i < g->nsh && !stop_flag; i++) {
            struct shard *s = &g->sh[i];

            if (s->state != S_READ || s->next_us > ht_now_mono_us())
                continue;
            st = poll_shard(g, s, &rs);
            if (st != HT_KIN_OK)
                return st;
            any = true;
            if (ht_engine_full(g->eng)) {
                rc = flush(g);
                if (rc)
                    return -rc;
            }
        }
        if (any) {
            rc = flush(g);
            if (rc)
                return -rc;
        }
        now = ht_now_mono_us();
        if (until_idle > 0 &&
            (double)(now - rs.last_activity) >= until_idle * 1e6)
            break;
        wake = now + 100000;
        for (size_t i = 0; i < g->nsh; i++)
            if (g->sh[i].state == S_READ && g->sh[i].next_us < wake)
                wake = g->sh[i].next_us;
        if (!rs.relist && wake > now)
            sleep_ms((wake - now + 999) / 1000);
    }
    return HT_KIN_OK;
}

static void summary(struct kin *g)
{
    char from[400];
    size_t drained = 0;
    const struct ht_kin_counters *c = ht_kinesis_counters(g->k);

    snprintf(from, sizeof(from), "kinesis stream %s (%zu shards)", g->stream,
             g->nsh);
    ht_sink_summary(g->eng, stderr, from);
    fputs("; behind:", stderr);
    for (size_t i = 0; i < g->nsh; i++) {
        const struct shard *s = &g->sh[i];

        /* a drained shard has no lag: it will never get a record, and a
         * long-lived stream has many of them */
        if (s->drained)
            drained++;
        else if (s->behind_ms >= 0)
            fprintf(stderr, " %s=%lld ms", s->info.id, (long long)s->behind_ms);
        else
            fprintf(stderr, " %s=n/a", s->info.id);
    }
    if (drained)
        fprintf(stderr, " (%zu closed shards drained)", drained);
    if (c->retries_throttled || c->retries_server || c->retries_network ||
        c->expired_iterators)
        fprintf(stderr,
                "; retries: %llu throttled, %llu 5xx, %llu network; %llu "
                "expired iterators",
                (unsigned long long)c->retries_throttled,
                (unsigned long long)c->retries_server,
                (unsigned long long)c->retries_network,
                (unsigned long long)c->expired_iterators);
    fputc('\n', stderr);
}

int ht_cmd_ingest_kinesis(struct ht_cli *cli, int argc, char **argv)
{
    struct kin g;
    struct ht_aws_creds creds;
    struct ht_kin_cfg cfg = {0};
    struct sigaction sa;
    const char *endpoint = NULL, *region_opt = NULL, *from = "trim-horizon";
    char region[64], err[600], tsbuf[64];
    struct ht_ingest_opts o = HT_INGEST_OPTS_INIT;
    int st, rc, exit_code = HT_EXIT_OK;
    uint64_t rejected = 0;

    memset(&g, 0, sizeof(g));
    g.limit = 10000;
    /* first, so `ingest --kinesis --help` is help, not a stream name */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return HT_EXIT_OK;
        }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        int taken = ht_ingest_opt(cli, argc, argv, &i, &o);

        if (taken < 0)
            return HT_EXIT_USAGE;
        if (taken > 0)
            continue;
        if (strcmp(a, "--kinesis") == 0 && has) {
            g.stream = argv[++i];
        } else if (strcmp(a, "--endpoint") == 0 && has) {
            endpoint = argv[++i];
        } else if (strcmp(a, "--region") == 0 && has) {
            region_opt = argv[++i];
        } else if (strcmp(a, "--from") == 0 && has) {
            from = argv[++i];
        } else if (strcmp(a, "--limit") == 0 && has) {
            long v = strtol(argv[++i], NULL, 10);

            if (v < 1 || v > 10000) {
                ht_cli_err("--limit takes 1 to 10000");
                return HT_EXIT_USAGE;
            }
            g.limit = (int)v;
        } else {
            ht_cli_err("ingest --kinesis: unknown option or missing value: "
                       "%s (see hoptrace ingest --kinesis X --help)",
                       a);
            return HT_EXIT_USAGE;
        }
    }
    if (!g.stream || !*g.stream) {
        ht_cli_err("ingest --kinesis needs a stream name (see hoptrace "
                   "ingest --kinesis X --help)");
        return HT_EXIT_USAGE;
    }
    if (strcmp(from, "trim-horizon") == 0) {
        g.from_type = "TRIM_HORIZON";
    } else if (strcmp(from, "latest") == 0) {
        g.from_type = "LATEST";
    } else if (strncmp(from, "timestamp:", 10) == 0) {
        char *end;
        double t = strtod(from + 10, &end);

        if (*end || !(t > 0)) {
            ht_cli_err("--from timestamp:EPOCH_SECONDS needs a number, e.g. "
                       "timestamp:1700000000");
            return HT_EXIT_USAGE;
        }
        snprintf(tsbuf, sizeof(tsbuf), "%.3f", t);
        g.from_type = "AT_TIMESTAMP";
        g.from_arg = tsbuf;
    } else {
        ht_cli_err("--from takes trim-horizon, latest or "
                   "timestamp:EPOCH_SECONDS");
        return HT_EXIT_USAGE;
    }
    if (ht_aws_region(region_opt, region, sizeof(region)) != HT_ERR_OK) {
        ht_cli_err("ingest --kinesis needs a region: --region R, or set "
                   "AWS_REGION or AWS_DEFAULT_REGION");
        return HT_EXIT_USAGE;
    }
    if (ht_aws_creds_load(&creds, err, sizeof(err)) != HT_ERR_OK) {
        ht_cli_err("%s", err);
        return HT_EXIT_USAGE;
    }
    cfg.endpoint = endpoint;
    cfg.region = region;
    cfg.creds = &creds;
    cfg.stop = &stop_flag;
    /* a reader that runs until stopped rides out an outage; one that is to
     * end when idle fails visibly instead */
    cfg.max_attempts = o.until_idle > 0 ? 10 : -1;
    if (getenv("HOPTRACE_KINESIS_BACKOFF_MS"))
        cfg.backoff_base_ms = atoi(getenv("HOPTRACE_KINESIS_BACKOFF_MS"));
    rc = ht_kinesis_open(&cfg, &g.k);
    if (rc) {
        ht_cli_err("--endpoint %s is not an http:// or https:// URL",
                   endpoint ? endpoint : "(default)");
        ht_aws_creds_free(&creds);
        return HT_EXIT_USAGE;
    }
    rc = ht_cli_engine_open(cli, &o, &g.eng);
    if (rc) {
        ht_kinesis_close(g.k);
        ht_aws_creds_free(&creds);
        return HT_EXIT_ERROR;
    }
    HT_LOG_INFO("ingest:kinesis", "stream %s, region %s, credentials from %s",
                g.stream, region, creds.source);

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    st = run(&g, o.until_idle);
    /* commit what was decoded, whatever stopped the run */
    rc = flush(&g);
    {
        int src = ht_engine_sync(g.eng);

        if (!rc)
            rc = src;
    }
    if (!o.quiet)
        summary(&g);
    rejected = ht_engine_rejected(g.eng);
    {
        int crc = ht_engine_close(g.eng);

        if (!rc)
            rc = crc;
    }
    if (st < 0 && !rc)
        rc = -st;
    if (st > 0 && st != HT_KIN_STOPPED) {
        ht_cli_err("kinesis stream %s: %s (%s); what was read before is "
                   "committed; run the same command again to resume",
                   g.stream, ht_kinesis_last_error(g.k), status_hint(st));
        exit_code = st == HT_KIN_AUTH || st == HT_KIN_NOT_FOUND ? HT_EXIT_USAGE
                                                                : HT_EXIT_ERROR;
    } else if (rc) {
        ht_cli_err("ingest stopped: %s (what was committed before stays; "
                   "run the same command again to resume)",
                   ht_strerror(rc));
        exit_code = HT_EXIT_ERROR;
    } else if (o.strict && rejected) {
        exit_code = HT_EXIT_REJECTED;
    }
    for (size_t i = 0; i < g.nsh; i++)
        free(g.sh[i].iter);
    free(g.sh);
    free(g.scratch);
    ht_kinesis_close(g.k);
    ht_aws_creds_free(&creds);
    return exit_code;
}
