/*
 * cmd_simulate.c - `hoptrace simulate`: writes a payments-shaped corpus
 * (the pipeline of the payments sample) of any size, deterministic per
 * seed, with its exact truth. It is the C port of tests/corpus/gen_corpus.py
 * (same documents, batching, fan-in, cold starts, streams, logs and truth
 * semantics; not byte-identical: its own PRNG) and streams its output:
 * memory follows the requests in flight, not the request count.
 *
 *   API Gateway checkout-api/live -> start-payment -> SQS payments-queue
 *   -> charge-card (SQS batches of 1..10) -> DynamoDB payments
 *   -> DynamoDB Streams -> record-ledger (batches of 1..K)
 *   -> Kinesis payment-events -> send-receipt (batches of 1..K)
 *
 * How it streams: requests are generated in arrival order; each batched
 * stage keeps a queue of ready messages and forms a batch only when no
 * message that could still join it can appear later (every future message
 * is ready after a lower bound the upstream stage knows), and invokes its
 * batches in start-time order once no earlier batch can still be formed.
 * A request's truth is written when its last stage ran.
 *
 * logs-kinesis.json is written as GetRecords pages (at most 10 MB and
 * 10,000 records each), so no single value grows with N. --start places
 * the window in time; the start and the seed make its ids its own, so
 * consecutive windows make one long stream.
 *
 * Adversities of real telemetry (issue 12), each behind an option and off
 * by default, drawn from a PRNG stream of their own so that the default
 * corpus stays byte for byte what it was: link-only charge-card batches
 * (no logged event, X-Ray links only), skewed consumer hosts (everything
 * such a container reports is early by its offset), redelivered batches
 * (a failed first attempt, the same messages again after the visibility
 * timeout), stale correlation keys on a warm invocation's event line, and
 * a shuffled arrival order. Its truth follows hoptrace's rules for them
 * (docs/design.md): duration over every node as the hosts report it, one
 * hop per consumer attempt, the path through the attempt that succeeded,
 * skew wherever a consumer starts before its producer's call ends. Owned
 * by cli/; it touches no store and no ingest code.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "sim.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ACCOUNT "123456789012"
#define REGION "us-east-1"
#define API_NAME "checkout-api/live"
#define REST_API "abc123"
#define QUEUE "payments-queue"
#define TABLE "payments"
#define STREAM "payment-events"
#define TOPIC "customer-mail"
#define FN_ARN "arn:aws:lambda:" REGION ":" ACCOUNT ":function:"
#define SERVICE_JSON                                                           \
    "{\"runtime\":\"node\",\"runtime_version\":\"v20.20.2\",\"version\":"      \
    "\"unknown\",\"name\":\"unknown\"}"
#define XRAY_SDK_JSON                                                          \
    "{\"sdk\":\"X-Ray for Node.js\",\"sdk_version\":\"3.12.0\",\"package\":"   \
    "\"aws-xray-sdk-core\"}"

#define MS 1000
#define T0_US 1795700000000000LL /* 2026-11-26T13:33:20Z, as in the sample */
#define STALE_P 0.3 /* warm consumer invocations with a stale corr. id line */
#define LINKS_P                                                                \
    0.5             /* charge-card invocations whose segment has X-Ray links   \
                     */
#define COLD_P 0.02 /* spontaneous scale-out even when a container is free */
/* Lambda reclaims containers idle for a while; reclaiming them here also
 * keeps the container pools (and memory) bounded on long runs. */
#define IDLE_US (10LL * 60 * 1000000)
#define EVENTS_PER_MSG 25
#define LOG_FLUSH_US (5LL * 1000000)
/* Adversities: a skewed host runs 50 ms to 2 s behind; a failed SQS
 * attempt's messages come back after the queue's visibility timeout. */
#define SKEW_MIN_US (50LL * MS)
#define SKEW_MAX_US (2000LL * MS)
#define VISIBILITY_US (30LL * 1000000)
/* --shuffle: the window of each output file (items, bytes) */
#define SHUF_ITEMS 4096
#define SHUF_BYTES (32u << 20)
/* The default stalled count is N/25 like gen_corpus.py, capped so that
 * the held-back DynamoDB Streams queue stays bounded. */
#define STALLED_DEFAULT_CAP 1000
#define INF INT64_MAX

enum { F_START, F_CHARGE, F_LEDGER, F_RECEIPT, F__N };
static const char *const fn_name[F__N] = {"start-payment", "charge-card",
                                          "record-ledger", "send-receipt"};

#define ADDS(b, lit) ht_buf_add((b), lit, sizeof(lit) - 1)

static const char usage[] =
    "usage: hoptrace simulate --requests N --out DIR [--seed S]\n"
    "                         [--start TIME] [--stream-batch K]\n"
    "                         [--stalled M] [--format sample|gzip]\n"
    "                         [--page-records R] [--link-only P]\n"
    "                         [--skew P] [--redeliver P]\n"
    "                         [--stale-keys P] [--shuffle]\n"
    "\n"
    "Writes demo / benchmark data: the telemetry of N requests through the\n"
    "payments pipeline of the sample (API Gateway -> start-payment -> SQS\n"
    "-> charge-card -> DynamoDB Streams -> record-ledger -> Kinesis ->\n"
    "send-receipt), with SQS batches of up to 10, cold starts, stale log\n"
    "lines and a stalled DynamoDB Streams consumer. The same seed gives the\n"
    "same corpus. Output is streamed: memory does not grow with N.\n"
    "\n"
    "  --requests N       API requests to simulate (required)\n"
    "  --out DIR          output folder, created if missing (required)\n"
    "  --seed S           PRNG seed (default 1)\n"
    "  --start TIME       when the first request begins: RFC 3339\n"
    "                     (2026-11-27T00:00:00Z) or epoch seconds (default\n"
    "                     2026-11-26T13:33:20Z plus a few ms). Windows of\n"
    "                     other starts or seeds share no id, so a long\n"
    "                     stream is made of consecutive windows, e.g. one\n"
    "                     per day\n"
    "  --stream-batch K   max records per record-ledger / send-receipt\n"
    "                     invocation (default 1)\n"
    "  --stalled M        requests never consumed by record-ledger\n"
    "                     (default max(2, N/25), at most 1000)\n"
    "  --format sample    the sample's files, plain (default)\n"
    "  --format gzip      the three input files gzip-compressed (.gz; ingest\n"
    "                     reads them as they are), truth files plain\n"
    "  --page-records R   at most R records per GetRecords page of\n"
    "                     logs-kinesis.json (1 to 10000, default 10000)\n"
    "\n"
    "Adversities of real telemetry, each off by default. P is the share\n"
    "of batches, containers or invocations it hits, from 0 to 1; they are\n"
    "drawn from a PRNG stream of their own, so without them the corpus is\n"
    "unchanged:\n"
    "  --link-only P      charge-card batches that log no event: their SQS\n"
    "                     hop is known only from the X-Ray links of their\n"
    "                     AWS::Lambda segment (their writes stay annotated\n"
    "                     with each request's correlation id)\n"
    "  --skew P           consumer containers (charge-card, record-ledger,\n"
    "                     send-receipt) on a host whose clock runs 50 ms to\n"
    "                     2 s behind: all they report, segments and logs,\n"
    "                     is that much early\n"
    "  --redeliver P      charge-card batches that fail first (an ERROR log\n"
    "                     line, a throttled PutItem with\n"
    "                     ProvisionedThroughputExceededException, a faulted\n"
    "                     function segment); after the visibility timeout\n"
    "                     (30 s) the same messages, ApproximateReceiveCount\n"
    "                     2, reach an invocation that succeeds\n"
    "  --stale-keys P     warm consumer invocations whose event log line\n"
    "                     still carries the previous invocation's\n"
    "                     correlation id (Powertools keys not cleared), on\n"
    "                     top of the stale info lines always written\n"
    "  --shuffle          arrival order shuffled: segment documents and log\n"
    "                     messages leave in random order (a window of 4096\n"
    "                     per file: small corpora are shuffled whole), each\n"
    "                     log message to either log file at random\n"
    "The truth follows hoptrace's rules, times as each host reports them:\n"
    "one sqs hop per attempt, the path through the attempt that succeeded.\n"
    "With any of these options each request of truth.json also has\n"
    "root_start_us, skew, skew_pairs, failed_request_ids, off_path and,\n"
    "when stalled, pending (what tests/corpus/check_hard.py checks).\n"
    "\n"
    "DIR receives, in the sample's layout:\n"
    "  segments.ndjson    X-Ray daemon datagrams (header line, document)\n"
    "  logs-cwl.ndjson    CloudWatch Logs subscription messages, one a line\n"
    "  logs-kinesis.json  Kinesis GetRecords responses, one page after the\n"
    "                     other (at most 10 MB and R records each, like\n"
    "                     the API), whose Data is base64(gzip(subscription\n"
    "                     message))\n"
    "  truth.json         the exact expected answer per request\n"
    "  truth-extra.json   with K > 1: every stream-consumer id and how many\n"
    "                     requests it must resolve to\n"
    "\n"
    "Try: hoptrace simulate --requests 100 --out demo && hoptrace --db "
    "demo.db\n"
    "     ingest demo/segments.ndjson demo/logs-cwl.ndjson "
    "demo/logs-kinesis.json\n"
    "\n"
    "exit status: 0 written, 2 usage error, 5 cannot write DIR\n";

/* ---- state ------------------------------------------------------------ */

struct ev {
    int64_t t;
    char *msg; /* owned */
    size_t len;
};

struct container {
    char stream[96];
    int64_t free_at;
    char last_corr[40]; /* correlation id its last invocation set, or "" */
    int sink;           /* 0: logs-cwl.ndjson, 1: logs-kinesis.json */
    int64_t skew;       /* --skew: how far its host's clock runs behind */
    struct ev ev[EVENTS_PER_MSG];
    int nev;
};

struct pool {
    struct container **c;
    size_t n, cap;
};

/* What truth needs of an invocation, copied into each request it served.
 * L0 and L1 as its host reports them (off early when the host is skewed). */
struct inv_sum {
    int64_t L0, L1, off;
    char rid[40];
    char trace[40];
    char lam_id[20];
    int ncorr; /* records the invocation handled */
};

/* A charge-card attempt that failed (--redeliver): its AWS::Lambda span as
 * reported, and every span id of it that must stay off the critical path. */
struct fail_sum {
    struct inv_sum inv;
    char fn_id[20], inv_id[20], op_id[20];
};

struct req {
    int64_t i, api_start, api_end, send_end, put_end, putrec_end;
    char apigw[40], order[48], trace_api[40], invoke_id[20], message_id[40];
    char send_id[20];
    char ddb_seq[40], kin_seq[64];
    char put_id[20], putrec_id[20]; /* the producer calls of its streams */
    struct inv_sum start, charge, ledger, receipt;
    int batch_size;
    bool link_only, failed; /* its charge-card batch: --link-only, failed */
    int64_t first_recv;     /* when SQS first handed its message out */
    struct fail_sum fail;
};

struct item {
    int64_t ready;
    struct req *r;
};

struct batch {
    int64_t l0;
    uint64_t seq;
    struct req **r;
    int n;
    int attempt; /* 1, or 2 for a redelivered charge-card batch */
};

/* One poller (SQS, DynamoDB Streams or Kinesis) and its consumer. */
struct stage {
    int fn;
    int64_t lo, hi;
    int cap_max;
    int64_t stall;  /* messages held back at the end (DynamoDB Streams) */
    struct item *q; /* min-heap by (ready, request index) */
    size_t qn, qcap;
    struct batch *p; /* formed, not yet invoked: min-heap by (l0, seq) */
    size_t pn, pcap;
    bool has_draw; /* l0 and cap of the next batch are drawn */
    int64_t d_l0;
    int d_cap;
    uint64_t seq;
};

struct inv {
    int fn;
    struct container *c;
    bool cold;
    char rid[40], trace[40], lam_id[20], fn_id[20], inv_id[20];
    int64_t L0, F0, init, I0, I1, F1, L1;
    struct ht_buf ops; /* subsegment docs, each without its closing brace */
    size_t *op_off;
    int64_t *op_t1;
    int nops, opcap;
    int ncorr;
    char last_corr[40];
    int64_t off; /* its container's skew: reported times are this early */
    bool fault;  /* the function segment faulted (a failed attempt) */
    char cause_id[20];
};

struct gen {
    struct sim_rng rng;
    int64_t n, k, n_stalled;
    struct pool pool[F__N];
    struct stage st[3]; /* charge-card, record-ledger, send-receipt */
    struct inv inv;
    struct ht_buf doc, ev, msg, tmp, rec;
    unsigned char *gz;
    size_t gzcap;
    struct sim_out seg, cwl, kin, truth, extra;
    bool truth_any, extra_any;
    uint64_t ddb_seq, kin_seq, ev_counter, kin_j, containers_made;
    /* What makes this window's stream ids its own: the second it starts
     * (ids of later windows sort after) and a number drawn from the seed
     * (windows of other seeds at the same time differ). */
    uint64_t start_s, tag;
    /* logs-kinesis.json: the GetRecords page being written */
    uint64_t page_n, page_bytes, pages, page_cap, kin_records;
    int64_t page_last_ms; /* arrival time of its last record */
    uint64_t n_docs, n_events, n_msgs, n_invs, n_done, n_stalled_done;
    int64_t max_emit;
    /* Adversities (all 0 / false by default). adv is their own PRNG
     * stream: the main stream, and so the default corpus, is untouched. */
    struct sim_rng adv;
    double p_link_only, p_skew, p_redeliver, p_stale_keys;
    bool shuffle, hard;      /* hard: any adversity option, truth's extras */
    struct sim_shuf shuf[3]; /* segments, logs-cwl, logs-kinesis */
    struct ht_buf sbuf;      /* an item on its way into a window */
    uint64_t n_link_only, n_skewed, n_redelivered, n_stale_keys;
};

/* ---- small helpers ---------------------------------------------------- */

static int64_t sat_add(int64_t a, int64_t b)
{
    return a >= INF - b ? INF : a + b;
}

static int64_t ms_of(int64_t us)
{
    return (us + 500) / 1000;
}

static void oom(void)
{
    fputs("hoptrace: simulate: out of memory\n", stderr);
    abort();
}

/* An adversity that happens with probability p, drawn from its own
 * stream; p 0 draws nothing. */
static bool adv_chance(struct gen *g, double p)
{
    return p > 0 && sim_rng_unit(&g->adv) < p;
}

static void seg_id(struct gen *g, char out[20])
{
    sim_rng_hex(&g->rng, 64, out);
}

static void trace_id(struct gen *g, int64_t us, char out[40])
{
    static const char hex[] = "0123456789abcdef";
    uint32_t s = (uint32_t)(us / 1000000);

    out[0] = '1';
    out[1] = '-';
    for (int i = 0; i < 8; i++)
        out[2 + i] = hex[(s >> (28 - 4 * i)) & 15];
    out[10] = '-';
    sim_rng_hex(&g->rng, 96, out + 11);
}

static void uuid4(struct gen *g, char out[40])
{
    char h[33];
    int o = 0;

    sim_rng_hex(&g->rng, 128, h);
    h[12] = '4'; /* version 4 */
    /* RFC 4122 variant: the top two bits of this nibble are 10 */
    h[16] =
        "89ab"[(strchr("0123456789abcdef", h[16]) - "0123456789abcdef") & 3];
    for (int i = 0; i < 32; i++) {
        if (i == 8 || i == 12 || i == 16 || i == 20)
            out[o++] = '-';
        out[o++] = h[i];
    }
    out[o] = 0;
}

static void aws_req(struct gen *g, char out[40])
{
    sim_rng_hex(&g->rng, 128, out);
    for (char *p = out; *p; p++)
        if (*p >= 'a')
            *p = (char)(*p - 'a' + 'A');
}

static void put_str(struct ht_buf *b, const char *s)
{
    ht_buf_addc(b, '"');
    ht_buf_adds(b, s);
    ht_buf_addc(b, '"');
}

/* A JSON string literal; runs of plain bytes are copied in one go (log
 * messages are long and mostly plain, this is the generator's hot loop). */
static void put_json_str(struct ht_buf *b, const char *s, size_t n)
{
    size_t run = 0;

    ht_buf_addc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];

        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        ht_buf_add(b, s + run, i - run);
        run = i + 1;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            ht_buf_add(b, esc, 2);
        } else if (c == '\n') {
            ADDS(b, "\\n");
        } else if (c == '\t') {
            ADDS(b, "\\t");
        } else if (c == '\r') {
            ADDS(b, "\\r");
        } else {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            ht_buf_add(b, esc, 6);
        }
    }
    ht_buf_add(b, s + run, n - run);
    ht_buf_addc(b, '"');
}

/* ISO-8601 UTC with milliseconds, from epoch microseconds. */
static void put_iso(struct ht_buf *b, int64_t us)
{
    int64_t m = ms_of(us), secs = m / 1000, days = secs / 86400;
    int64_t sod = secs % 86400, z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097, doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153, d = doy - (153 * mp + 2) / 5 + 1;
    int64_t mo = mp < 10 ? mp + 3 : mp - 9, y = yoe + era * 400 + (mo <= 2);

    ht_buf_printf(b, "\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"", (int)y, (int)mo,
                  (int)d, (int)(sod / 3600), (int)(sod / 60 % 60),
                  (int)(sod % 60), (int)(m % 1000));
}

static void day_path(int64_t us, char out[48])
{
    time_t s = (time_t)(us / 1000000);
    struct tm tm;

    gmtime_r(&s, &tm);
    snprintf(out, 48, "%04d/%02d/%02d", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday);
}

/* ---- output ----------------------------------------------------------- */

#define DAEMON_HEADER "{\"format\":\"json\",\"version\":1}\n"

static void emit(struct gen *g, int64_t emit_us, const struct ht_buf *doc)
{
    if (g->shuffle) {
        /* the datagram (header and document) is what arrives as one */
        struct ht_buf *t = &g->sbuf;
        struct sim_shuf_item it;

        ht_buf_reset(t);
        ADDS(t, DAEMON_HEADER);
        ht_buf_add(t, doc->data, doc->len);
        ht_buf_addc(t, '\n');
        if (sim_shuf_add(&g->shuf[0], t->data, t->len, 0))
            oom();
        while (sim_shuf_full(&g->shuf[0]) &&
               sim_shuf_take(&g->shuf[0], &g->adv, &it)) {
            ht_buf_add(&g->seg.buf, it.p, it.n);
            free(it.p);
        }
    } else {
        ADDS(&g->seg.buf, DAEMON_HEADER);
        ht_buf_add(&g->seg.buf, doc->data, doc->len);
        ht_buf_addc(&g->seg.buf, '\n');
    }
    sim_out_maybe_flush(&g->seg);
    g->n_docs++;
    if (emit_us > g->max_emit)
        g->max_emit = emit_us;
}

/* logs-kinesis.json is a sequence of GetRecords responses (pages), one
 * after the other, as a consumer polling the shard would have saved them.
 * Like the real API, a page holds at most 10,000 records and at most 10 MB
 * (here: of response text, so also of data), which keeps every page well
 * under ingest's 16 MiB cap on one JSON value whatever N is. */
#define PAGE_MAX_RECORDS 10000
#define PAGE_MAX_BYTES 10000000u
#define PAGE_TAIL_MAX 160 /* the page's closing text, iterator included */

static void page_open(struct gen *g)
{
    size_t before = g->kin.buf.len;

    ADDS(&g->kin.buf, "{\"Records\":[");
    g->page_bytes = g->kin.buf.len - before;
    g->page_n = 0;
}

/* Closes the page. The iterator names the next page; MillisBehindLatest
 * is how far the page's last record is behind the newest event written so
 * far (0 on the last page: the consumer has caught up). */
static void page_close(struct gen *g, bool last)
{
    struct ht_buf *k = &g->kin.buf, it;
    char shard_pos[64];
    int n;
    int64_t behind = last ? 0 : g->max_emit / 1000 - g->page_last_ms;

    ht_buf_init(&it);
    n = snprintf(shard_pos, sizeof shard_pos,
                 "shardId-000000000000:%" PRIu64 ":%" PRIu64, g->tag,
                 g->pages + 1);
    sim_b64(&it, shard_pos, (size_t)n);
    ADDS(k, "\n],\"NextShardIterator\":\"AAAAAAAAAAE");
    ht_buf_add(k, it.data, it.len);
    ADDS(k, "\",\"MillisBehindLatest\":");
    sim_put_i64(k, behind > 0 ? behind : 0);
    ADDS(k, "}\n");
    ht_buf_free(&it);
    g->pages++;
    sim_out_maybe_flush(&g->kin);
}

/* Appends one record (rec: newline, then the record's JSON) to the page,
 * starting a new page first when this one is full. */
static void page_add(struct gen *g, const struct ht_buf *rec, int64_t last_ms)
{
    struct ht_buf *k = &g->kin.buf;

    if (g->page_n &&
        (g->page_n >= g->page_cap ||
         g->page_bytes + 1 + rec->len + PAGE_TAIL_MAX > PAGE_MAX_BYTES)) {
        page_close(g, false);
        page_open(g);
    }
    if (g->page_n) {
        ht_buf_addc(k, ',');
        g->page_bytes++;
    }
    ht_buf_add(k, rec->data, rec->len);
    g->page_bytes += rec->len;
    g->page_n++;
    g->kin_records++;
    g->page_last_ms = last_ms;
    sim_out_maybe_flush(&g->kin);
}

static void write_msg(struct gen *g, int sink, const char *stream,
                      const char *m, size_t n, int64_t last);

/* One CloudWatch Logs subscription message with the container's pending
 * events; to logs-cwl.ndjson or, gzipped, into the GetRecords file. */
static void flush_container(struct gen *g, int fn, struct container *c)
{
    struct ht_buf *m = &g->msg;
    int64_t last = 0;

    if (!c->nev)
        return;
    ht_buf_reset(m);
    ADDS(m, "{\"messageType\":\"DATA_MESSAGE\",\"owner\":\"" ACCOUNT
            "\",\"logGroup\":\"/aws/lambda/");
    ht_buf_adds(m, fn_name[fn]);
    ADDS(m, "\",\"logStream\":");
    put_str(m, c->stream);
    ADDS(m, ",\"subscriptionFilters\":[\"hoptrace\"],\"logEvents\":[");
    for (int i = 0; i < c->nev; i++) {
        int64_t t = ms_of(c->ev[i].t);

        if (i)
            ht_buf_addc(m, ',');
        ADDS(m, "{\"id\":\"");
        sim_put_u64w(m, (uint64_t)t, 13);
        sim_put_u64w(m, g->tag, 8);
        sim_put_u64w(m, ++g->ev_counter, 35);
        ADDS(m, "\",\"timestamp\":");
        sim_put_i64(m, t);
        ADDS(m, ",\"message\":");
        put_json_str(m, c->ev[i].msg, c->ev[i].len);
        ht_buf_addc(m, '}');
        if (t > last)
            last = t;
        free(c->ev[i].msg);
    }
    ADDS(m, "]}");
    g->n_events += (uint64_t)c->nev;
    c->nev = 0;
    g->n_msgs++;
    if (!g->shuffle) {
        write_msg(g, c->sink, c->stream, m->data, m->len, last);
        return;
    }
    /* Shuffled: each message to either file, leaving its window at random
     * (the partition key, the log stream, travels with it). */
    struct sim_shuf *w;
    struct sim_shuf_item it;
    int sink = (int)sim_rng_int(&g->adv, 0, 1);
    size_t sl = strlen(c->stream);

    w = &g->shuf[1 + sink];
    ht_buf_reset(&g->sbuf);
    ht_buf_add(&g->sbuf, c->stream, sl + 1);
    ht_buf_add(&g->sbuf, m->data, m->len);
    if (sim_shuf_add(w, g->sbuf.data, g->sbuf.len, last))
        oom();
    while (sim_shuf_full(w) && sim_shuf_take(w, &g->adv, &it)) {
        size_t kl = strlen(it.p);

        write_msg(g, sink, it.p, it.p + kl + 1, it.n - kl - 1, it.aux);
        free(it.p);
    }
}

/* One subscription message m[0..n) of log stream `stream`, whose newest
 * event is at `last` (ms): a line of logs-cwl.ndjson (sink 0) or, gzipped,
 * a record of logs-kinesis.json (sink 1). */
static void write_msg(struct gen *g, int sink, const char *stream,
                      const char *m, size_t n, int64_t last)
{
    if (sink == 0) {
        ht_buf_add(&g->cwl.buf, m, n);
        ht_buf_addc(&g->cwl.buf, '\n');
        sim_out_maybe_flush(&g->cwl);
        return;
    }
    size_t zn = 0;
    struct ht_buf *k = &g->rec;

    if (sim_gzip(m, n, &g->gz, &g->gzcap, &zn)) {
        g->kin.err = g->kin.err ? g->kin.err : ENOMEM;
        return;
    }
    ht_buf_reset(k);
    ADDS(k, "\n{\"SequenceNumber\":\"497");
    sim_put_u64w(k, g->start_s, 10);
    sim_put_u64w(k, g->tag, 8);
    sim_put_u64w(k, g->kin_j++, 11);
    ADDS(k, "\",\"ApproximateArrivalTimestamp\":");
    sim_put_ms3(k, last);
    ADDS(k, ",\"Data\":\"");
    sim_b64(k, g->gz, zn);
    ADDS(k, "\",\"PartitionKey\":");
    put_str(k, stream);
    ht_buf_addc(k, '}');
    page_add(g, k, last);
}

static void log_event(struct gen *g, struct inv *inv, int64_t t,
                      const char *msg, size_t len)
{
    struct container *c = inv->c;
    struct ev *e = &c->ev[c->nev++];

    e->t = t - inv->off; /* as its host's clock says */
    e->len = len;
    e->msg = malloc(len + 1);
    if (!e->msg) {
        fputs("hoptrace: simulate: out of memory\n", stderr);
        abort();
    }
    memcpy(e->msg, msg, len);
    e->msg[len] = 0;
    if (c->nev == EVENTS_PER_MSG)
        flush_container(g, inv->fn, c);
}

/* ---- containers and invocations --------------------------------------- */

static struct container *acquire(struct gen *g, int fn, int64_t l0, bool *cold)
{
    struct pool *p = &g->pool[fn];
    struct container *best = NULL, *c;
    char day[48];

    for (size_t i = 0; i < p->n;) {
        c = p->c[i];
        if (sat_add(c->free_at, IDLE_US) < l0) {
            flush_container(g, fn, c);
            free(c);
            memmove(p->c + i, p->c + i + 1, (p->n - i - 1) * sizeof *p->c);
            p->n--;
            continue;
        }
        /* A subscription delivers a stream's events within seconds; an
         * idle container's last lines do not wait for its next call. */
        if (c->nev && l0 - c->ev[0].t > LOG_FLUSH_US)
            flush_container(g, fn, c);
        /* Lambda routes to the warmest free container (the most recently
         * used); the others go idle and are reclaimed. */
        if (c->free_at <= l0 && (!best || c->free_at > best->free_at))
            best = c;
        i++;
    }
    if (best && sim_rng_unit(&g->rng) >= COLD_P) {
        *cold = false;
        return best;
    }
    c = calloc(1, sizeof *c);
    if (!c || (p->n == p->cap &&
               !(p->c = realloc(p->c, (p->cap = p->cap ? p->cap * 2 : 16) *
                                          sizeof *p->c)))) {
        fputs("hoptrace: simulate: out of memory\n", stderr);
        abort();
    }
    day_path(l0, day);
    memcpy(c->stream, day, strlen(day));
    memcpy(c->stream + strlen(day), "/[$LATEST]", 10);
    sim_rng_hex(&g->rng, 128, c->stream + strlen(day) + 10);
    c->sink = (int)(g->containers_made++ & 1);
    if (fn != F_START && adv_chance(g, g->p_skew)) {
        c->skew = sim_rng_int(&g->adv, SKEW_MIN_US, SKEW_MAX_US);
        g->n_skewed++;
    }
    p->c[p->n++] = c;
    *cold = true;
    return c;
}

/* A Powertools JSON log line: pt_begin, append `,"key":value` fields,
 * pt_end. Its timestamp is the host's clock. */
static struct ht_buf *pt_begin_lv(struct gen *g, struct inv *inv,
                                  const char *level, const char *message,
                                  int64_t t)
{
    struct ht_buf *b = &g->ev;
    const char *fn = fn_name[inv->fn];

    ht_buf_reset(b);
    ADDS(b, "{\"level\":\"");
    ht_buf_adds(b, level);
    ADDS(b, "\",\"message\":\"");
    ht_buf_adds(b, message);
    ADDS(b, "\",\"timestamp\":");
    put_iso(b, t - inv->off);
    ADDS(b, ",\"service\":\"");
    ht_buf_adds(b, fn);
    ADDS(b, "\",\"cold_start\":");
    ht_buf_adds(b, inv->cold ? "true" : "false");
    ADDS(b, ",\"function_arn\":\"" FN_ARN);
    ht_buf_adds(b, fn);
    ADDS(b, "\",\"function_memory_size\":\"512\",\"function_name\":\"");
    ht_buf_adds(b, fn);
    ADDS(b, "\",\"function_request_id\":\"");
    ht_buf_adds(b, inv->rid);
    ADDS(b, "\",\"sampling_rate\":0,\"xray_trace_id\":\"");
    ht_buf_adds(b, inv->trace);
    ht_buf_addc(b, '"');
    return b;
}

static struct ht_buf *pt_begin(struct gen *g, struct inv *inv,
                               const char *message, int64_t t)
{
    return pt_begin_lv(g, inv, "INFO", message, t);
}

static void pt_end(struct gen *g, struct inv *inv, int64_t t)
{
    ht_buf_addc(&g->ev, '}');
    log_event(g, inv, t, g->ev.data, g->ev.len);
}

/* "payment charged" & co: the line that carries a request's correlation
 * id; the invocation remembers it (Powertools appendKeys). */
static void pt_corr_lv(struct gen *g, struct inv *inv, int64_t t,
                       const char *level, const char *message,
                       const struct req *r)
{
    struct ht_buf *b = pt_begin_lv(g, inv, level, message, t);

    ADDS(b, ",\"correlation_id\":");
    put_str(b, r->apigw);
    ADDS(b, ",\"orderId\":");
    put_str(b, r->order);
    pt_end(g, inv, t);
    inv->ncorr++;
    strcpy(inv->last_corr, r->apigw);
}

static void pt_corr(struct gen *g, struct inv *inv, int64_t t,
                    const char *message, const struct req *r)
{
    pt_corr_lv(g, inv, t, "INFO", message, r);
}

static void inv_begin(struct gen *g, int fn, int64_t l0, const char *trace)
{
    struct inv *inv = &g->inv;
    char line[128];
    int n;

    inv->fn = fn;
    inv->c = acquire(g, fn, l0, &inv->cold);
    inv->off = inv->c->skew;
    inv->fault = false;
    uuid4(g, inv->rid);
    strcpy(inv->trace, trace);
    seg_id(g, inv->lam_id);
    seg_id(g, inv->fn_id);
    seg_id(g, inv->inv_id);
    inv->L0 = l0;
    inv->F0 = l0 + sim_rng_int(&g->rng, 1000, 2000);
    inv->init = inv->cold ? sim_rng_int(&g->rng, 300000, 500000) : 0;
    inv->I0 = inv->F0 + inv->init;
    inv->nops = 0;
    inv->ncorr = 0;
    inv->last_corr[0] = 0;
    ht_buf_reset(&inv->ops);
    n = snprintf(line, sizeof line, "START RequestId: %s Version: $LATEST\n",
                 inv->rid);
    log_event(g, inv, inv->I0, line, (size_t)n);
    g->n_invs++;
}

/* An AWS SDK call as an X-Ray subsegment; op_end closes it. `aws` fields
 * beyond region and request_id are appended by the caller in between. */
static struct ht_buf *op_begin(struct gen *g, const char *name, int64_t t0,
                               char id_out[20])
{
    struct inv *inv = &g->inv;
    struct ht_buf *b = &inv->ops;
    char id[20], rq[40];

    if (inv->nops == inv->opcap) {
        inv->opcap = inv->opcap ? inv->opcap * 2 : 16;
        inv->op_off = realloc(inv->op_off, (size_t)inv->opcap * sizeof(size_t));
        inv->op_t1 = realloc(inv->op_t1, (size_t)inv->opcap * sizeof(int64_t));
        if (!inv->op_off || !inv->op_t1) {
            fputs("hoptrace: simulate: out of memory\n", stderr);
            abort();
        }
    }
    seg_id(g, id);
    aws_req(g, rq);
    if (id_out)
        strcpy(id_out, id);
    inv->op_off[inv->nops] = b->len;
    ADDS(b, "{\"id\":\"");
    ht_buf_adds(b, id);
    ADDS(b, "\",\"name\":\"");
    ht_buf_adds(b, name);
    ADDS(b, "\",\"start_time\":");
    sim_put_sec(b, t0 - inv->off);
    ADDS(b, ",\"namespace\":\"aws\",\"aws\":{\"region\":\"" REGION
            "\",\"request_id\":\"");
    ht_buf_adds(b, rq);
    ht_buf_addc(b, '"');
    return b;
}

/* extra: more fields of the subsegment (",\"error\":true"), or NULL. */
static void op_end_x(struct gen *g, int64_t t1, const char *corr_annotation,
                     const char *extra)
{
    struct inv *inv = &g->inv;
    struct ht_buf *b = &inv->ops;

    ht_buf_addc(b, '}');
    if (corr_annotation) {
        ADDS(b, ",\"annotations\":{\"correlation_id\":");
        put_str(b, corr_annotation);
        ht_buf_addc(b, '}');
    }
    if (extra)
        ht_buf_adds(b, extra);
    ADDS(b, ",\"end_time\":");
    sim_put_sec(b, t1 - inv->off);
    inv->op_t1[inv->nops++] = t1 - inv->off;
}

static void op_end(struct gen *g, int64_t t1, const char *corr_annotation)
{
    op_end_x(g, t1, corr_annotation, NULL);
}

static void op_text(const struct inv *inv, int i, const char **p, size_t *n)
{
    size_t end = i + 1 < inv->nops ? inv->op_off[i + 1] : inv->ops.len;

    *p = inv->ops.data + inv->op_off[i];
    *n = end - inv->op_off[i];
}

static void fseg_head(struct gen *g, struct ht_buf *b)
{
    struct inv *inv = &g->inv;
    const char *fn = fn_name[inv->fn];
    int64_t off = inv->off; /* a skewed host reports every time early */

    ADDS(b, "{\"trace_id\":");
    put_str(b, inv->trace);
    ADDS(b, ",\"id\":");
    put_str(b, inv->fn_id);
    ADDS(b, ",\"start_time\":");
    sim_put_sec(b, inv->F0 - off);
    ADDS(b, ",\"name\":");
    put_str(b, fn);
    ADDS(b, ",\"parent_id\":");
    put_str(b, inv->lam_id);
    ADDS(b, ",\"service\":" SERVICE_JSON ",\"aws\":{\"xray\":" XRAY_SDK_JSON
            ",\"function_arn\":\"" FN_ARN);
    ht_buf_adds(b, fn);
    ADDS(b, "\",\"resource_names\":[");
    put_str(b, fn);
    ADDS(b, "],\"account_id\":\"" ACCOUNT
            "\"},\"origin\":\"AWS::Lambda::Function\",\"subsegments\":[");
}

/* A subsegment sent on its own (streaming SDK mode): its document plus
 * type, parent_id and trace_id. `open` is the document without its brace. */
static void emit_indep(struct gen *g, const char *open, size_t n,
                       const char *parent, int64_t t)
{
    struct ht_buf *b = &g->doc;

    ht_buf_reset(b);
    ht_buf_add(b, open, n);
    ADDS(b, ",\"type\":\"subsegment\",\"parent_id\":");
    put_str(b, parent);
    ADDS(b, ",\"trace_id\":");
    put_str(b, g->inv.trace);
    ht_buf_addc(b, '}');
    emit(g, t, b);
}

static void emit_lambda(struct gen *g, const char *parent_id,
                        const struct ht_buf *links, bool streamed)
{
    struct inv *inv = &g->inv;
    struct ht_buf *b = &g->doc, *t = &g->tmp;
    char init_id[20], over_id[20];
    const char *fn = fn_name[inv->fn], *p;
    size_t n;
    int64_t off = inv->off; /* a skewed host reports every time early */

    if (inv->cold)
        seg_id(g, init_id);
    seg_id(g, over_id);
    /* "Initialization" and "Invocation" without their closing brace */
    ht_buf_reset(t);
    if (inv->cold) {
        ADDS(t, "{\"id\":");
        put_str(t, init_id);
        ADDS(t, ",\"name\":\"Initialization\",\"start_time\":");
        sim_put_sec(t, inv->F0 - off);
        ADDS(t, ",\"end_time\":");
        sim_put_sec(t, inv->I0 - off);
    }
    size_t inv_at = t->len;

    ADDS(t, "{\"id\":");
    put_str(t, inv->inv_id);
    ADDS(t, ",\"name\":\"Invocation\",\"start_time\":");
    sim_put_sec(t, inv->I0 - off);
    if (streamed) {
        if (inv->cold)
            emit_indep(g, t->data, inv_at, inv->fn_id, inv->I0 - off);
        for (int i = 0; i < inv->nops; i++) {
            op_text(inv, i, &p, &n);
            emit_indep(g, p, n, inv->inv_id, inv->op_t1[i]);
        }
        ADDS(t, ",\"end_time\":");
        sim_put_sec(t, inv->I1 - off);
        emit_indep(g, t->data + inv_at, t->len - inv_at, inv->fn_id,
                   inv->I1 - off);
        ht_buf_reset(b);
        fseg_head(g, b);
    } else {
        ht_buf_reset(b);
        fseg_head(g, b);
        if (inv->cold) {
            ht_buf_add(b, t->data, inv_at);
            ADDS(b, "},");
        }
        ht_buf_add(b, t->data + inv_at, t->len - inv_at);
        ADDS(b, ",\"subsegments\":[");
        for (int i = 0; i < inv->nops; i++) {
            op_text(inv, i, &p, &n);
            if (i)
                ht_buf_addc(b, ',');
            ht_buf_add(b, p, n);
            ht_buf_addc(b, '}');
        }
        ADDS(b, "],\"end_time\":");
        sim_put_sec(b, inv->I1 - off);
        ADDS(b, "},");
    }
    ADDS(b, "{\"id\":");
    put_str(b, over_id);
    ADDS(b, ",\"name\":\"Overhead\",\"start_time\":");
    sim_put_sec(b, inv->I1 - off);
    ADDS(b, ",\"end_time\":");
    sim_put_sec(b, inv->F1 - off);
    ADDS(b, "}]");
    if (inv->fault) {
        /* the handler threw: what the SDK writes for a failed invocation */
        ADDS(b, ",\"fault\":true,\"cause\":{\"working_directory\":"
                "\"/var/task\",\"exceptions\":[{\"id\":");
        put_str(b, inv->cause_id);
        ADDS(b, ",\"type\":\"Error\",\"message\":\"batch failed\"}]}");
    }
    ADDS(b, ",\"end_time\":");
    sim_put_sec(b, inv->F1 - off);
    ht_buf_addc(b, '}');
    emit(g, inv->F1 - off, b);

    ht_buf_reset(b);
    ADDS(b, "{\"trace_id\":");
    put_str(b, inv->trace);
    ADDS(b, ",\"id\":");
    put_str(b, inv->lam_id);
    ADDS(b, ",\"start_time\":");
    sim_put_sec(b, inv->L0 - off);
    ADDS(b, ",\"name\":");
    put_str(b, fn);
    if (parent_id) {
        ADDS(b, ",\"parent_id\":");
        put_str(b, parent_id);
    }
    ADDS(b, ",\"service\":" SERVICE_JSON ",\"aws\":{\"xray\":" XRAY_SDK_JSON
            ",\"request_id\":");
    put_str(b, inv->rid);
    ADDS(b, "},\"origin\":\"AWS::Lambda\",\"resource_arn\":\"" FN_ARN);
    ht_buf_adds(b, fn);
    ht_buf_addc(b, '"');
    if (links && links->len) {
        ADDS(b, ",\"links\":");
        ht_buf_add(b, links->data, links->len);
    }
    ADDS(b, ",\"end_time\":");
    sim_put_sec(b, inv->L1 - off);
    ht_buf_addc(b, '}');
    emit(g, inv->L1 - off, b);
}

static void inv_end(struct gen *g, int64_t i1, const char *parent_id,
                    const struct ht_buf *links, bool streamed)
{
    struct inv *inv = &g->inv;
    char line[512];
    double dur;
    int n, mem;

    inv->I1 = i1;
    inv->F1 = i1 + 800;
    inv->L1 = inv->F1 + 400;
    dur = (double)(inv->I1 - inv->I0) / 1000.0;
    mem = (int)sim_rng_int(&g->rng, 78, 140);
    n = snprintf(line, sizeof line, "END RequestId: %s\n", inv->rid);
    log_event(g, inv, inv->F1, line, (size_t)n);
    n = snprintf(line, sizeof line,
                 "REPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: "
                 "%d ms\tMemory Size: 512 MB\tMax Memory Used: %d MB\t",
                 inv->rid, dur, (int)ceil(dur), mem);
    if (inv->cold)
        n += snprintf(line + n, sizeof line - (size_t)n,
                      "Init Duration: %.2f ms\t", (double)inv->init / 1000.0);
    n += snprintf(line + n, sizeof line - (size_t)n,
                  "\nXRAY TraceId: %s\tSegmentId: %s\tSampled: true\t\n",
                  inv->trace, inv->fn_id);
    log_event(g, inv, inv->L1, line, (size_t)n);
    inv->c->free_at = inv->L1;
    if (inv->ncorr)
        strcpy(inv->c->last_corr, inv->last_corr);
    emit_lambda(g, parent_id, links, streamed);
}

/* The invocation as truth sees it: as its host reports it. */
static void summarize(const struct inv *inv, struct inv_sum *s)
{
    s->L0 = inv->L0 - inv->off;
    s->L1 = inv->L1 - inv->off;
    s->off = inv->off;
    strcpy(s->rid, inv->rid);
    strcpy(s->trace, inv->trace);
    strcpy(s->lam_id, inv->lam_id);
    s->ncorr = inv->ncorr;
}

/* Powertools appendKeys left over: a warm container's first line of a new
 * invocation still carries the previous invocation's correlation id. */
static int64_t stale_line(struct gen *g, int64_t t, const char *message,
                          int nrec)
{
    struct inv *inv = &g->inv;
    struct ht_buf *b;

    if (inv->cold || !inv->c->last_corr[0] || sim_rng_unit(&g->rng) >= STALE_P)
        return t;
    b = pt_begin(g, inv, message, t);
    ADDS(b, ",\"correlation_id\":");
    put_str(b, inv->c->last_corr);
    ADDS(b, ",\"records\":");
    sim_put_i64(b, nrec);
    pt_end(g, inv, t);
    return t + sim_rng_int(&g->rng, 200, 900);
}

/* A consumer's "Lambda invocation event" line (the caller appends the
 * event and ends it). --stale-keys: on a warm container the keys the
 * previous invocation appended are still there, so the line carries its
 * correlation id. logged: the line will be written (not a link-only
 * batch's). */
static struct ht_buf *event_begin(struct gen *g, bool logged)
{
    struct inv *inv = &g->inv;
    struct ht_buf *e = pt_begin(g, inv, "Lambda invocation event", inv->I0);

    if (logged && !inv->cold && inv->c->last_corr[0] &&
        adv_chance(g, g->p_stale_keys)) {
        ADDS(e, ",\"correlation_id\":");
        put_str(e, inv->c->last_corr);
        g->n_stale_keys++;
    }
    return e;
}

/* ---- truth ------------------------------------------------------------ */

static void put_hop(struct ht_buf *b, const char *via, const char *res,
                    int64_t wait_us)
{
    ADDS(b, "{\"via\":\"");
    ht_buf_adds(b, via);
    ADDS(b, "\",\"resource\":\"");
    ht_buf_adds(b, res);
    ADDS(b, "\",\"wait_ms\":");
    sim_put_ms3(b, wait_us);
    ht_buf_addc(b, '}');
}

static void put_lookup(struct ht_buf *b, const char *kind, const char *what,
                       const char *id, int want, bool comma)
{
    if (comma)
        ht_buf_addc(b, ',');
    ADDS(b, "{\"kind\":\"");
    ht_buf_adds(b, kind);
    ADDS(b, "\",\"what\":\"");
    ht_buf_adds(b, what);
    ADDS(b, "\",\"id\":");
    put_str(b, id);
    ADDS(b, ",\"want\":");
    sim_put_i64(b, want);
    ht_buf_addc(b, '}');
}

/* One hop of a request: its producer call's end and its consumer's start
 * as their hosts report them, and their span ids. */
struct truth_hop {
    int64_t prod_end, cons_start;
    const char *prod, *cons;
};

static void put_ids(struct ht_buf *b, const char *const *ids, int n)
{
    for (int i = 0; i < n; i++) {
        if (i)
            ht_buf_addc(b, ',');
        put_str(b, ids[i]);
    }
}

/* With adversities: what tests/corpus/check_hard.py holds hoptrace to
 * (gen_corpus.py's fields). The root's start; whether any clocks disagree
 * and every [producer call, consumer invocation] pair that does (its
 * consumer starts before the call ends); the failed attempts' request
 * ids and every span of theirs, none of which may be on the critical
 * path; a stalled request's write that no consumer received. */
static void truth_extras(struct ht_buf *b, const struct req *r, bool stalled,
                         const struct truth_hop *hop, int nh)
{
    bool skew = false, any = false;

    for (int i = 0; i < nh; i++)
        skew |= hop[i].cons_start < hop[i].prod_end;
    ADDS(b, ",\"root_start_us\":");
    sim_put_i64(b, r->api_start);
    ADDS(b, ",\"skew\":");
    ht_buf_adds(b, skew ? "true" : "false");
    ADDS(b, ",\"skew_pairs\":[");
    for (int i = 0; i < nh; i++) {
        if (hop[i].cons_start >= hop[i].prod_end)
            continue;
        ht_buf_adds(b, any ? ",[" : "[");
        put_ids(b, (const char *const[]){hop[i].prod, hop[i].cons}, 2);
        ht_buf_addc(b, ']');
        any = true;
    }
    ADDS(b, "],\"failed_request_ids\":[");
    if (r->failed)
        put_str(b, r->fail.inv.rid);
    ADDS(b, "],\"off_path\":[");
    if (r->failed)
        put_ids(b,
                (const char *const[]){r->fail.inv.lam_id, r->fail.fn_id,
                                      r->fail.inv_id, r->fail.op_id},
                4);
    ht_buf_addc(b, ']');
    if (stalled) {
        ADDS(b, ",\"pending\":[{\"via\":\"dynamodb\",\"resource\":\"" TABLE
                "\",\"from\":");
        put_str(b, r->put_id);
        ADDS(b, "}]");
    }
}

/* The request ran its last stage (or will never): write its truth line
 * (gen_corpus.py's semantics) and forget it. */
static void finish_req(struct gen *g, struct req *r, bool stalled)
{
    struct ht_buf *b = &g->truth.buf;
    struct {
        int64_t s, e;
        const char *name;
    } nodes[5] = {
        {r->api_start, r->api_end, API_NAME},
        {r->start.L0, r->start.L1, fn_name[F_START]},
        {r->charge.L0, r->charge.L1, fn_name[F_CHARGE]},
        {r->ledger.L0, r->ledger.L1, fn_name[F_LEDGER]},
        {r->receipt.L0, r->receipt.L1, fn_name[F_RECEIPT]},
    };
    int nn = stalled ? 3 : 5, sink = 0;
    int64_t start = nodes[0].s, end = nodes[0].e;
    int nl = r->ledger.ncorr, nr = r->receipt.ncorr;

    /* Where each hop's producer call ended and its consumer started, as
     * their hosts report them: a failed attempt, charge-card, record-ledger,
     * send-receipt. */
    struct truth_hop hop[4];
    int nh = 0;

    if (r->failed)
        hop[nh++] = (struct truth_hop){r->send_end, r->fail.inv.L0, r->send_id,
                                       r->fail.inv.lam_id};
    hop[nh++] = (struct truth_hop){r->send_end, r->charge.L0, r->send_id,
                                   r->charge.lam_id};
    if (!stalled) {
        hop[nh++] = (struct truth_hop){r->put_end - r->charge.off, r->ledger.L0,
                                       r->put_id, r->ledger.lam_id};
        hop[nh++] =
            (struct truth_hop){r->putrec_end - r->ledger.off, r->receipt.L0,
                               r->putrec_id, r->receipt.lam_id};
    }
    for (int i = 1; i < nn; i++) {
        if (nodes[i].s < start)
            start = nodes[i].s;
        if (nodes[i].e > end) {
            end = nodes[i].e;
            sink = i;
        }
    }
    /* A failed attempt is a node of the request (duration), never its
     * sink: it ended before the retry began. */
    if (r->failed) {
        if (r->fail.inv.L0 < start)
            start = r->fail.inv.L0;
        if (r->fail.inv.L1 > end)
            end = r->fail.inv.L1;
    }
    ht_buf_adds(b, g->truth_any ? ",\n" : "\n");
    g->truth_any = true;
    ADDS(b, "{\"i\":");
    sim_put_i64(b, r->i);
    ADDS(b, ",\"apigw_request_id\":");
    put_str(b, r->apigw);
    ADDS(b, ",\"correlation_id\":");
    put_str(b, r->apigw);
    ADDS(b, ",\"create_request_id\":");
    put_str(b, r->start.rid);
    ADDS(b, ",\"process_request_id\":");
    put_str(b, r->charge.rid);
    ADDS(b, ",\"batch_size\":");
    sim_put_i64(b, r->batch_size);
    ADDS(b, ",\"message_id\":");
    put_str(b, r->message_id);
    ADDS(b, ",\"start_us\":");
    sim_put_i64(b, start);
    if (!stalled) {
        if (nl == 1) {
            ADDS(b, ",\"index_request_id\":");
            put_str(b, r->ledger.rid);
        }
        ADDS(b, ",\"ddb_sequence\":");
        put_str(b, r->ddb_seq);
        if (nr == 1) {
            ADDS(b, ",\"notify_request_id\":");
            put_str(b, r->receipt.rid);
        }
        ADDS(b, ",\"kinesis_sequence\":");
        put_str(b, r->kin_seq);
    }
    ADDS(b, ",\"end_us\":");
    sim_put_i64(b, end);
    ADDS(b, ",\"duration_ms\":");
    sim_put_ms3(b, end - start);
    ADDS(b, ",\"hops\":[");
    for (int i = 0; i < nh; i++) {
        static const char *const via[] = {"sqs", "dynamodb", "kinesis"};
        static const char *const res[] = {QUEUE, TABLE, STREAM};
        int h = i - (r->failed && i > 0); /* the stage: 0 sqs, 1, 2 */

        if (i)
            ht_buf_addc(b, ',');
        put_hop(b, via[h], res[h], hop[i].cons_start - hop[i].prod_end);
    }
    ADDS(b, "],\"path\":[");
    for (int i = 0; i <= sink; i++) {
        if (i)
            ht_buf_addc(b, ',');
        put_str(b, nodes[i].name);
    }
    ADDS(b, "],\"stalled\":");
    ht_buf_adds(b, stalled ? "true" : "false");
    ADDS(b, ",\"trace_ids\":[");
    put_str(b, r->trace_api);
    ht_buf_addc(b, ',');
    put_str(b, r->charge.trace);
    if (!stalled && nl == 1) {
        ht_buf_addc(b, ',');
        put_str(b, r->ledger.trace);
    }
    if (!stalled && nr == 1) {
        ht_buf_addc(b, ',');
        put_str(b, r->receipt.trace);
    }
    ht_buf_addc(b, ']');
    if (g->hard)
        truth_extras(b, r, stalled, hop, nh);
    ht_buf_addc(b, '}');
    sim_out_maybe_flush(&g->truth);

    if (!stalled && g->k > 1) {
        struct ht_buf *x = &g->extra.buf;

        ht_buf_adds(x, g->extra_any ? ",\n" : "\n");
        g->extra_any = true;
        ADDS(x, "{\"i\":");
        sim_put_i64(x, r->i);
        ADDS(x, ",\"apigw_request_id\":");
        put_str(x, r->apigw);
        ADDS(x, ",\"ledger_batch_size\":");
        sim_put_i64(x, nl);
        ADDS(x, ",\"receipt_batch_size\":");
        sim_put_i64(x, nr);
        ADDS(x, ",\"lookups\":[");
        put_lookup(x, "lambda", "index_request_id", r->ledger.rid, nl, false);
        put_lookup(x, "xray", "ledger_trace_id", r->ledger.trace, nl, true);
        put_lookup(x, "ddb", "ddb_sequence", r->ddb_seq, 1, true);
        put_lookup(x, "lambda", "notify_request_id", r->receipt.rid, nr, true);
        put_lookup(x, "xray", "receipt_trace_id", r->receipt.trace, nr, true);
        put_lookup(x, "kinesis", "kinesis_sequence", r->kin_seq, 1, true);
        ADDS(x, "]}");
        sim_out_maybe_flush(&g->extra);
    }
    g->n_done++;
    if (stalled)
        g->n_stalled_done++;
    free(r);
}

/* ---- the stages ------------------------------------------------------- */

static void *grow(void *p, size_t *cap, size_t elem)
{
    size_t n = *cap ? *cap * 2 : 64;
    void *q = realloc(p, n * elem);

    if (!q) {
        fputs("hoptrace: simulate: out of memory\n", stderr);
        abort();
    }
    *cap = n;
    return q;
}

/* A binary min-heap of n elements of `size` bytes (at most 32), ordered by
 * lt; both queues of a stage use it. */
typedef bool (*heap_lt)(const void *a, const void *b);

_Static_assert(sizeof(struct item) <= 32 && sizeof(struct batch) <= 32,
               "heap_swap's buffer");

static void heap_swap(char *a, char *b, size_t size)
{
    char t[32];

    memcpy(t, a, size);
    memcpy(a, b, size);
    memcpy(b, t, size);
}

/* The element just appended at n - 1 rises to its place. */
static void heap_up(void *v, size_t n, size_t size, heap_lt lt)
{
    char *h = v;

    for (size_t i = n - 1; i && lt(h + i * size, h + (i - 1) / 2 * size);
         i = (i - 1) / 2)
        heap_swap(h + i * size, h + (i - 1) / 2 * size, size);
}

/* The root of n elements was just replaced: it sinks to its place. */
static void heap_down(void *v, size_t n, size_t size, heap_lt lt)
{
    char *h = v;

    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, m = i;

        if (l < n && lt(h + l * size, h + m * size))
            m = l;
        if (l + 1 < n && lt(h + (l + 1) * size, h + m * size))
            m = l + 1;
        if (m == i)
            break;
        heap_swap(h + i * size, h + m * size, size);
        i = m;
    }
}

static bool item_lt(const void *pa, const void *pb)
{
    const struct item *a = pa, *b = pb;

    return a->ready < b->ready || (a->ready == b->ready && a->r->i < b->r->i);
}

static void q_push(struct stage *s, int64_t ready, struct req *r)
{
    if (s->qn == s->qcap)
        s->q = grow(s->q, &s->qcap, sizeof *s->q);
    s->q[s->qn++] = (struct item){ready, r};
    heap_up(s->q, s->qn, sizeof *s->q, item_lt);
}

static struct req *q_pop(struct stage *s)
{
    struct req *r = s->q[0].r;

    s->q[0] = s->q[--s->qn];
    heap_down(s->q, s->qn, sizeof *s->q, item_lt);
    return r;
}

static bool batch_lt(const void *pa, const void *pb)
{
    const struct batch *a = pa, *b = pb;

    return a->l0 < b->l0 || (a->l0 == b->l0 && a->seq < b->seq);
}

static void p_push(struct stage *s, struct batch b)
{
    if (s->pn == s->pcap)
        s->p = grow(s->p, &s->pcap, sizeof *s->p);
    s->p[s->pn++] = b;
    heap_up(s->p, s->pn, sizeof *s->p, batch_lt);
}

static struct batch p_pop(struct stage *s)
{
    struct batch b = s->p[0];

    s->p[0] = s->p[--s->pn];
    heap_down(s->p, s->pn, sizeof *s->p, batch_lt);
    return b;
}

/* The earliest start any invocation of this stage not yet run can have,
 * given that every message still to arrive is ready at or after lbin. It
 * is the lower bound on what this stage's consumer produces downstream. */
static int64_t stage_bound(const struct stage *s, int64_t lbin)
{
    int64_t m = lbin;

    if (s->qn && s->q[0].ready < m)
        m = s->q[0].ready;
    m = sat_add(m, s->lo);
    if (s->pn && s->p[0].l0 < m)
        m = s->p[0].l0;
    return m;
}

/* The first attempt of a --redeliver batch: the first record's PutItem is
 * throttled (ProvisionedThroughputExceededException), the handler logs an
 * ERROR and throws, the function segment faults. The throttled write
 * wrote nothing. Returns the handler's end. */
static int64_t charge_fails(struct gen *g, struct req **b, int n)
{
    struct inv *inv = &g->inv;
    struct req *r = b[0];
    struct ht_buf *o, x;
    char exc[20], op_id[20];
    int64_t t, e;

    t = inv->I0 + MS + sim_rng_int(&g->adv, 2 * MS, 6 * MS);
    e = t + sim_rng_int(&g->adv, 8 * MS, 17 * MS);
    o = op_begin(g, "DynamoDB", t, op_id);
    ADDS(o, ",\"operation\":\"PutItem\",\"table_name\":\"" TABLE "\"");
    ht_buf_init(&x);
    sim_rng_hex(&g->adv, 64, exc);
    ADDS(&x, ",\"error\":true,\"throttle\":true,\"http\":{\"response\":{"
             "\"status\":400}},\"cause\":{\"working_directory\":\"/var/task\","
             "\"exceptions\":[{\"id\":\"");
    ht_buf_adds(&x, exc);
    ADDS(&x, "\",\"remote\":true,\"type\":"
             "\"ProvisionedThroughputExceededException\",\"message\":\"The "
             "level of configured provisioned throughput for the table was "
             "exceeded.\"}]}");
    op_end_x(g, e, r->apigw, x.data);
    ht_buf_free(&x);
    pt_corr_lv(g, inv, e, "ERROR", "charge failed", r);
    inv->fault = true;
    sim_rng_hex(&g->adv, 64, inv->cause_id);
    for (int i = 0; i < n; i++)
        strcpy(b[i]->fail.op_id, op_id);
    return e + 2 * MS;
}

/* One charge-card attempt at l0 on a batch of SQS messages. attempt 2 is
 * the redelivery of a batch whose first attempt failed. Returns true when
 * this attempt failed (--redeliver): the messages come back after the
 * visibility timeout, and the caller queues the batch again. */
static bool run_charge(struct gen *g, int64_t l0, struct req **b, int n,
                       int attempt)
{
    struct stage *next = &g->st[1];
    struct ht_buf *e, links;
    char trace[40];
    int64_t t;
    bool fail = false, link_only;

    if (attempt == 1) {
        link_only = adv_chance(g, g->p_link_only);
        fail = adv_chance(g, g->p_redeliver);
        g->n_link_only += link_only;
        g->n_redelivered += fail;
        for (int i = 0; i < n; i++) {
            b[i]->link_only = link_only;
            b[i]->first_recv = l0;
        }
    }
    link_only = b[0]->link_only;
    trace_id(g, l0, trace);
    ht_buf_init(&links);
    inv_begin(g, F_CHARGE, l0, trace);
    /* A link-only batch logs no event; the line is made all the same, so
     * the main PRNG stream does not depend on the adversities. */
    e = event_begin(g, !link_only);
    ADDS(e, ",\"event\":{\"Records\":[");
    for (int i = 0; i < n; i++) {
        const struct req *r = b[i];
        char body[128], h[48], md5[33];
        int bn = snprintf(body, sizeof body,
                          "{\"orderId\":\"%s\",\"correlation_id\":\"%s\"}",
                          r->order, r->apigw);

        if (i)
            ht_buf_addc(e, ',');
        ADDS(e, "{\"messageId\":");
        put_str(e, r->message_id);
        ADDS(e, ",\"receiptHandle\":\"AQEB");
        sim_rng_hex(&g->rng, 160, h);
        ht_buf_adds(e, h);
        ADDS(e, "\",\"body\":");
        ht_buf_json_str(e, body);
        ADDS(e, ",\"attributes\":{\"ApproximateReceiveCount\":\"");
        sim_put_i64(e, attempt);
        ADDS(e, "\",\"AWSTraceHeader\":\"Root=");
        ht_buf_adds(e, r->trace_api);
        ADDS(e, ";Parent=");
        ht_buf_adds(e, r->send_id);
        ADDS(e, ";Sampled=1;Lineage=1:");
        sim_rng_hex(&g->rng, 32, h);
        ht_buf_adds(e, h);
        ADDS(e, ":0\",\"SentTimestamp\":\"");
        sim_put_i64(e, ms_of(r->send_end));
        ADDS(e, "\",\"SenderId\":\"AROA");
        aws_req(g, h); /* 64 bits would do; the shape is what matters */
        ht_buf_add(e, h, 16);
        ADDS(e, "\",\"ApproximateFirstReceiveTimestamp\":\"");
        sim_put_i64(e, ms_of(r->first_recv));
        ADDS(e, "\"},\"messageAttributes\":{},\"md5OfBody\":\"");
        sim_md5_hex(body, (size_t)bn, md5);
        ht_buf_adds(e, md5);
        ADDS(e, "\",\"eventSource\":\"aws:sqs\",\"eventSourceARN\":"
                "\"arn:aws:sqs:" REGION ":" ACCOUNT ":" QUEUE
                "\",\"awsRegion\":\"" REGION "\"}");
    }
    ADDS(e, "]}");
    if (!link_only)
        pt_end(g, &g->inv, g->inv.I0);
    if (sim_rng_unit(&g->rng) < LINKS_P || link_only) {
        ht_buf_addc(&links, '[');
        for (int i = 0; i < n; i++) {
            if (i)
                ht_buf_addc(&links, ',');
            ADDS(&links, "{\"trace_id\":");
            put_str(&links, b[i]->trace_api);
            ADDS(&links, ",\"id\":");
            put_str(&links, b[i]->send_id);
            ADDS(&links, ",\"attributes\":{\"aws.xray.reserved.reference_"
                         "type\":\"parent\"}}");
        }
        ht_buf_addc(&links, ']');
    }
    if (fail) {
        inv_end(g, charge_fails(g, b, n), NULL, &links, true);
        ht_buf_free(&links);
        for (int i = 0; i < n; i++) {
            struct fail_sum *f = &b[i]->fail;

            summarize(&g->inv, &f->inv);
            strcpy(f->fn_id, g->inv.fn_id);
            strcpy(f->inv_id, g->inv.inv_id);
            b[i]->failed = true;
        }
        return true;
    }
    t = stale_line(g, g->inv.I0 + MS, "charging batch", n);
    t += sim_rng_int(&g->rng, 2 * MS, 6 * MS);
    for (int i = 0; i < n; i++) {
        struct req *r = b[i];
        int64_t end = t + sim_rng_int(&g->rng, 8 * MS, 17 * MS);
        struct ht_buf *o = op_begin(g, "DynamoDB", t, r->put_id);

        ADDS(o, ",\"operation\":\"PutItem\",\"table_name\":\"" TABLE "\"");
        op_end(g, end, r->apigw);
        r->put_end = end;
        pt_corr(g, &g->inv, end, "payment charged", r);
        t = end + sim_rng_int(&g->rng, 2 * MS, 10 * MS);
    }
    inv_end(g, t, NULL, &links, true);
    ht_buf_free(&links);
    for (int i = 0; i < n; i++) {
        summarize(&g->inv, &b[i]->charge);
        b[i]->batch_size = n;
        q_push(next, b[i]->put_end, b[i]);
    }
    return false;
}

static void run_ledger(struct gen *g, int64_t l0, struct req **b, int n)
{
    struct stage *next = &g->st[2];
    struct ht_buf *e;
    char trace[40], h[40];
    int64_t t;

    trace_id(g, l0, trace);
    inv_begin(g, F_LEDGER, l0, trace);
    e = event_begin(g, true);
    ADDS(e, ",\"event\":{\"Records\":[");
    for (int i = 0; i < n; i++) {
        const struct req *r = b[i];

        if (i)
            ht_buf_addc(e, ',');
        ADDS(e, "{\"eventID\":\"");
        sim_rng_hex(&g->rng, 128, h);
        ht_buf_adds(e, h);
        ADDS(e, "\",\"eventName\":\"INSERT\",\"eventVersion\":\"1.1\","
                "\"eventSource\":\"aws:dynamodb\",\"awsRegion\":\"" REGION
                "\",\"dynamodb\":{\"ApproximateCreationDateTime\":");
        sim_put_i64(e, r->put_end / 1000000);
        ADDS(e, ",\"Keys\":{\"orderId\":{\"S\":");
        put_str(e, r->order);
        ADDS(e, "}},\"NewImage\":{\"orderId\":{\"S\":");
        put_str(e, r->order);
        ADDS(e, "},\"correlation_id\":{\"S\":");
        put_str(e, r->apigw);
        ADDS(e, "},\"status\":{\"S\":\"NEW\"}},\"SequenceNumber\":");
        put_str(e, r->ddb_seq);
        ADDS(e, ",\"SizeBytes\":120,\"StreamViewType\":\"NEW_IMAGE\"},"
                "\"eventSourceARN\":\"arn:aws:dynamodb:" REGION ":" ACCOUNT
                ":table/" TABLE "/stream/2026-11-01T00:00:00.000\"}");
    }
    ADDS(e, "]}");
    pt_end(g, &g->inv, g->inv.I0);
    t = stale_line(g, g->inv.I0 + MS, "ledger batch", n);
    t += sim_rng_int(&g->rng, 3 * MS, 10 * MS);
    for (int i = 0; i < n; i++) {
        struct req *r = b[i];
        int64_t end = t + sim_rng_int(&g->rng, 10 * MS, 22 * MS);
        struct ht_buf *o = op_begin(g, "Kinesis", t, r->putrec_id);

        ADDS(o, ",\"operation\":\"PutRecord\"");
        op_end(g, end, NULL);
        r->putrec_end = end;
        pt_corr(g, &g->inv, end, "ledger written", r);
        t = end + sim_rng_int(&g->rng, 1 * MS, 6 * MS);
    }
    inv_end(g, t, NULL, NULL, false);
    for (int i = 0; i < n; i++) {
        summarize(&g->inv, &b[i]->ledger);
        q_push(next, b[i]->putrec_end, b[i]);
    }
}

static void run_receipt(struct gen *g, int64_t l0, struct req **b, int n)
{
    struct ht_buf *e, *d = &g->tmp;
    char trace[40];
    int64_t t;

    trace_id(g, l0, trace);
    inv_begin(g, F_RECEIPT, l0, trace);
    e = event_begin(g, true);
    ADDS(e, ",\"event\":{\"Records\":[");
    for (int i = 0; i < n; i++) {
        const struct req *r = b[i];

        if (i)
            ht_buf_addc(e, ',');
        ADDS(e, "{\"kinesis\":{\"kinesisSchemaVersion\":\"1.0\","
                "\"partitionKey\":");
        put_str(e, r->order);
        ADDS(e, ",\"sequenceNumber\":");
        put_str(e, r->kin_seq);
        ADDS(e, ",\"data\":\"");
        ht_buf_reset(d);
        ADDS(d, "{\"orderId\":");
        put_str(d, r->order);
        ADDS(d, ",\"correlation_id\":");
        put_str(d, r->apigw);
        ht_buf_addc(d, '}');
        sim_b64(e, d->data, d->len);
        ADDS(e, "\",\"approximateArrivalTimestamp\":");
        sim_put_ms3(e, ms_of(r->putrec_end));
        ADDS(e, "},\"eventSource\":\"aws:kinesis\",\"eventVersion\":\"1.0\","
                "\"eventID\":\"shardId-000000000000:");
        ht_buf_adds(e, r->kin_seq);
        ADDS(e, "\",\"eventName\":\"aws:kinesis:record\","
                "\"invokeIdentityArn\":\"arn:aws:iam::" ACCOUNT
                ":role/send-receipt\",\"awsRegion\":\"" REGION
                "\",\"eventSourceARN\":\"arn:aws:kinesis:" REGION ":" ACCOUNT
                ":stream/" STREAM "\"}");
    }
    ADDS(e, "]}");
    pt_end(g, &g->inv, g->inv.I0);
    t = stale_line(g, g->inv.I0 + MS, "sending receipts", n);
    t += sim_rng_int(&g->rng, 2 * MS, 4 * MS);
    for (int i = 0; i < n; i++) {
        struct req *r = b[i];
        int64_t end = t + sim_rng_int(&g->rng, 15 * MS, 35 * MS);
        struct ht_buf *o = op_begin(g, "SNS", t, NULL);

        ADDS(o, ",\"operation\":\"Publish\",\"topic_arn\":\"arn:aws:sns:" REGION
                ":" ACCOUNT ":" TOPIC "\"");
        op_end(g, end, NULL);
        pt_corr(g, &g->inv, end, "receipt sent", r);
        t = end + sim_rng_int(&g->rng, 1 * MS, 4 * MS);
    }
    inv_end(g, t, NULL, NULL, true);
    for (int i = 0; i < n; i++) {
        summarize(&g->inv, &b[i]->receipt);
        finish_req(g, b[i], false);
    }
}

/* Stream sequence numbers grow in the order the records are written. */
static void assign_seq(struct gen *g, struct stage *s, struct req *r)
{
    if (s->fn == F_LEDGER) {
        struct ht_buf tmp;

        /* 4, the window's second and tag, then the shard's position */
        ht_buf_init(&tmp);
        ht_buf_addc(&tmp, '4');
        sim_put_u64w(&tmp, g->start_s, 10);
        sim_put_u64w(&tmp, g->tag, 8);
        sim_put_u64w(&tmp, g->ddb_seq, 12);
        memcpy(r->ddb_seq, tmp.data, tmp.len + 1);
        ht_buf_free(&tmp);
        g->ddb_seq += (uint64_t)sim_rng_int(&g->rng, 300, 2500);
    } else if (s->fn == F_RECEIPT) {
        struct ht_buf tmp;

        ht_buf_init(&tmp);
        ADDS(&tmp, "496");
        sim_put_u64w(&tmp, g->start_s, 10);
        sim_put_u64w(&tmp, g->tag, 8);
        sim_put_u64w(&tmp, g->kin_seq, 35);
        memcpy(r->kin_seq, tmp.data, tmp.len + 1);
        ht_buf_free(&tmp);
        g->kin_seq += (uint64_t)sim_rng_int(&g->rng, 1000, 120000);
    }
}

/* One step of a stage: run the earliest formed batch if no earlier one can
 * still be formed, else form the next batch if every message that could
 * join it is known. lbin: every message still to come is ready at or after
 * it. Returns whether anything happened. */
static bool stage_step(struct gen *g, struct stage *s, int64_t lbin)
{
    int64_t bound = lbin, cap;
    struct batch b;

    if (s->qn && s->q[0].ready < bound)
        bound = s->q[0].ready;
    if (s->pn && s->p[0].l0 <= sat_add(bound, s->lo)) {
        b = p_pop(s);
        if (s->fn == F_CHARGE) {
            if (run_charge(g, b.l0, b.r, b.n, b.attempt)) {
                /* Failed: the messages are visible again once the
                 * visibility timeout has passed since they were received
                 * (the attempt ended well within it), and the poller
                 * takes them like any ready message. */
                b.l0 += VISIBILITY_US + sim_rng_int(&g->adv, s->lo, s->hi);
                b.seq = s->seq++;
                b.attempt = 2;
                p_push(s, b);
                return true;
            }
        } else if (s->fn == F_LEDGER)
            run_ledger(g, b.l0, b.r, b.n);
        else
            run_receipt(g, b.l0, b.r, b.n);
        free(b.r);
        return true;
    }
    if (!s->qn || (lbin != INF && s->q[0].ready >= lbin))
        return false;
    if (!s->has_draw) {
        s->d_l0 = s->q[0].ready + sim_rng_int(&g->rng, s->lo, s->hi);
        s->d_cap = (int)sim_rng_int(&g->rng, 1, s->cap_max);
        s->has_draw = true;
    }
    if (lbin != INF && lbin <= s->d_l0 - s->lo)
        return false;
    cap = s->d_cap;
    if (s->stall) {
        /* The last `stall` messages overall are never consumed: a message
         * is known to be consumed once `stall` later ones exist. */
        if (lbin != INF && (int64_t)s->qn < cap + s->stall)
            return false;
        if (lbin == INF) {
            if ((int64_t)s->qn <= s->stall) {
                while (s->qn) {
                    struct req *r = q_pop(s);

                    assign_seq(g, s, r);
                    finish_req(g, r, true);
                }
                s->has_draw = false;
                return true;
            }
            if (cap > (int64_t)s->qn - s->stall)
                cap = (int64_t)s->qn - s->stall;
        }
    }
    b.l0 = s->d_l0;
    b.seq = s->seq++;
    b.attempt = 1;
    b.n = 0;
    b.r = malloc((size_t)cap * sizeof *b.r);
    if (!b.r) {
        fputs("hoptrace: simulate: out of memory\n", stderr);
        abort();
    }
    do {
        struct req *r = q_pop(s);

        assign_seq(g, s, r);
        b.r[b.n++] = r;
    } while (b.n < cap && s->qn && s->q[0].ready <= s->d_l0 - s->lo);
    s->has_draw = false;
    p_push(s, b);
    return true;
}

/* Runs every stage as far as it can, downstream first so that finished
 * requests leave memory early. lb: no request still to be generated sends
 * its SQS message before lb. */
static void drain(struct gen *g, int64_t lb)
{
    for (;;) {
        int64_t lb3 = stage_bound(&g->st[0], lb);
        int64_t lb4 = stage_bound(&g->st[1], lb3);

        if (stage_step(g, &g->st[2], lb4))
            continue;
        if (stage_step(g, &g->st[1], lb3))
            continue;
        if (stage_step(g, &g->st[0], lb))
            continue;
        break;
    }
}

/* API Gateway -> start-payment, synchronous. */
static void run_start(struct gen *g, struct req *r)
{
    struct inv *inv = &g->inv;
    struct ht_buf *e, *o, *b = &g->doc;
    int64_t t, a, bb, c, d;
    char api_id[20];

    trace_id(g, r->api_start, r->trace_api);
    seg_id(g, r->invoke_id);
    inv_begin(g, F_START, r->api_start + 4 * MS, r->trace_api);
    e = pt_begin(g, inv, "Lambda invocation event", inv->I0);
    ADDS(e, ",\"event\":{\"resource\":\"/orders\",\"path\":\"/orders\","
            "\"httpMethod\":\"POST\",\"headers\":{\"X-Amzn-Trace-Id\":"
            "\"Root=");
    ht_buf_adds(e, r->trace_api);
    ADDS(e, "\"},\"requestContext\":{\"requestId\":");
    put_str(e, r->apigw);
    ADDS(e, ",\"stage\":\"prod\",\"apiId\":\"" REST_API
            "\",\"requestTimeEpoch\":");
    sim_put_i64(e, r->api_start / 1000);
    ADDS(e, "},\"body\":\"{\\\"item\\\":\\\"book\\\",\\\"qty\\\":");
    sim_put_i64(e, 1 + r->i % 3);
    ADDS(e, "}\"}");
    pt_end(g, inv, inv->I0);

    t = inv->I0;
    a = t + sim_rng_int(&g->rng, 4 * MS, 10 * MS);
    bb = a + sim_rng_int(&g->rng, 8 * MS, 18 * MS);
    o = op_begin(g, "DynamoDB", a, NULL);
    ADDS(o, ",\"operation\":\"GetItem\",\"table_name\":\"accounts\"");
    op_end(g, bb, NULL);
    c = bb + MS;
    d = c + sim_rng_int(&g->rng, 10 * MS, 22 * MS);
    uuid4(g, r->message_id);
    o = op_begin(g, "SQS", c, r->send_id);
    ADDS(o, ",\"operation\":\"SendMessage\",\"queue_url\":\"https://sqs." REGION
            ".amazonaws.com/" ACCOUNT "/" QUEUE "\",\"message_id\":");
    put_str(o, r->message_id);
    op_end(g, d, NULL);
    r->send_end = d;
    pt_corr(g, inv, d, "payment started", r);
    inv_end(g, d + 2 * MS, r->invoke_id, NULL, false);
    summarize(inv, &r->start);
    r->api_end = inv->L1 + 2 * MS;

    seg_id(g, api_id);
    ht_buf_reset(b);
    ADDS(b, "{\"trace_id\":");
    put_str(b, r->trace_api);
    ADDS(b, ",\"id\":");
    put_str(b, api_id);
    ADDS(b, ",\"start_time\":");
    sim_put_sec(b, r->api_start);
    ADDS(b, ",\"name\":\"" API_NAME "\",\"service\":" SERVICE_JSON
            ",\"aws\":{\"xray\":" XRAY_SDK_JSON
            ",\"api_gateway\":{\"account_id\":\"" ACCOUNT
            "\",\"rest_api_id\":\"" REST_API
            "\",\"stage\":\"prod\",\"request_id\":");
    put_str(b, r->apigw);
    ADDS(b, "}},\"origin\":\"AWS::ApiGateway::Stage\",\"http\":{\"request\":{"
            "\"method\":\"POST\",\"url\":\"https://" REST_API
            ".execute-api." REGION ".amazonaws.com/live/payments\"},"
            "\"response\":{\"status\":202}},\"subsegments\":[{\"id\":");
    put_str(b, r->invoke_id);
    ADDS(b, ",\"name\":\"Lambda\",\"start_time\":");
    sim_put_sec(b, inv->L0 - MS);
    ADDS(b, ",\"namespace\":\"aws\",\"aws\":{\"function_name\":"
            "\"start-payment\",\"region\":\"" REGION
            "\",\"operation\":\"Invoke\",\"resource_names\":"
            "[\"start-payment\"]},\"end_time\":");
    sim_put_sec(b, inv->L1);
    ADDS(b, "}],\"end_time\":");
    sim_put_sec(b, r->api_end);
    ht_buf_addc(b, '}');
    emit(g, r->api_end, b);
    q_push(&g->st[0], r->send_end, r);
}

/* ---- the command ------------------------------------------------------ */

static int parse_i64(const char *opt, const char *s, int64_t lo, int64_t hi,
                     int64_t *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        ht_cli_err("simulate: %s wants a whole number from %" PRId64
                   " to %" PRId64 ", not '%s'",
                   opt, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* A share from 0 to 1 (--skew 0.15). */
static int parse_share(const char *opt, const char *s, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0 && v <= 1)) {
        ht_cli_err("simulate: %s wants a share from 0 to 1, not '%s'", opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* --start: epoch seconds (fractions allowed) or RFC 3339, into epoch
 * microseconds; from 1970 to 2286 (the ids carry 10 digits of seconds). */
static bool parse_start(const char *s, int64_t *out)
{
    char *end;
    double d;

    errno = 0;
    d = strtod(s, &end);
    if (end != s && !*end && !errno && isfinite(d)) {
        if (d < 0 || d >= 1e10)
            return false;
        *out = (int64_t)llround(d * 1e6);
        return true;
    }
    if (!ht_parse_iso8601(s, out))
        return false;
    return *out >= 0 && *out < 10000000000LL * 1000000;
}

static int mkdir_p(const char *dir)
{
    char path[4096];
    size_t n = strlen(dir);

    if (n == 0 || n >= sizeof path)
        return ENAMETOOLONG;
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] == '/' || path[i] == 0) {
            char c = path[i];

            path[i] = 0;
            if (mkdir(path, 0777) && errno != EEXIST)
                return errno;
            path[i] = c;
        }
    }
    return 0;
}

static void gen_free(struct gen *g)
{
    for (int f = 0; f < F__N; f++) {
        for (size_t i = 0; i < g->pool[f].n; i++) {
            for (int j = 0; j < g->pool[f].c[i]->nev; j++)
                free(g->pool[f].c[i]->ev[j].msg);
            free(g->pool[f].c[i]);
        }
        free(g->pool[f].c);
    }
    for (int s = 0; s < 3; s++) {
        while (g->st[s].qn)
            free(q_pop(&g->st[s]));
        free(g->st[s].q);
        while (g->st[s].pn) {
            struct batch b = p_pop(&g->st[s]);

            for (int i = 0; i < b.n; i++)
                free(b.r[i]);
            free(b.r);
        }
        free(g->st[s].p);
    }
    ht_buf_free(&g->inv.ops);
    free(g->inv.op_off);
    free(g->inv.op_t1);
    ht_buf_free(&g->doc);
    ht_buf_free(&g->ev);
    ht_buf_free(&g->msg);
    ht_buf_free(&g->tmp);
    ht_buf_free(&g->rec);
    ht_buf_free(&g->sbuf);
    for (int i = 0; i < 3; i++)
        sim_shuf_free(&g->shuf[i]);
    free(g->gz);
}

/* --shuffle: what is left in the windows leaves in random order. */
static void shuffle_drain(struct gen *g)
{
    struct sim_shuf_item it;

    if (!g->shuffle)
        return;
    while (sim_shuf_take(&g->shuf[0], &g->adv, &it)) {
        ht_buf_add(&g->seg.buf, it.p, it.n);
        free(it.p);
        sim_out_maybe_flush(&g->seg);
    }
    for (int sink = 0; sink < 2; sink++)
        while (sim_shuf_take(&g->shuf[1 + sink], &g->adv, &it)) {
            size_t kl = strlen(it.p);

            write_msg(g, sink, it.p, it.p + kl + 1, it.n - kl - 1, it.aux);
            free(it.p);
        }
}

int ht_cmd_simulate(struct ht_cli *cli, int argc, char **argv)
{
    int64_t n = -1, seed = 1, k = 1, stalled = -1, start = -1;
    int64_t page_cap = PAGE_MAX_RECORDS;
    const char *out = NULL, *format = "sample";
    double p_link_only = 0, p_skew = 0, p_redeliver = 0, p_stale_keys = 0;
    bool gz, shuffle = false, hard = false;
    struct gen *g;
    struct sim_out *files[5];
    const char *names[5] = {"segments.ndjson", "logs-cwl.ndjson",
                            "logs-kinesis.json", "truth.json",
                            "truth-extra.json"};
    char paths[5][4096];
    struct timespec t0, t1;
    int rc = HT_EXIT_OK, err;

    (void)cli;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return HT_EXIT_OK;
        }
        if (strcmp(a, "--shuffle") == 0) {
            shuffle = hard = true;
            continue;
        }
        if (!v && (!strcmp(a, "--requests") || !strcmp(a, "--seed") ||
                   !strcmp(a, "--out") || !strcmp(a, "--stream-batch") ||
                   !strcmp(a, "--stalled") || !strcmp(a, "--format") ||
                   !strcmp(a, "--start") || !strcmp(a, "--page-records") ||
                   !strcmp(a, "--link-only") || !strcmp(a, "--skew") ||
                   !strcmp(a, "--redeliver") || !strcmp(a, "--stale-keys"))) {
            ht_cli_err("simulate: %s needs a value (see hoptrace simulate "
                       "--help)",
                       a);
            return HT_EXIT_USAGE;
        }
        if (strcmp(a, "--requests") == 0) {
            if (parse_i64(a, v, 1, 1000000000, &n))
                return HT_EXIT_USAGE;
        } else if (strcmp(a, "--seed") == 0) {
            if (parse_i64(a, v, 0, INT64_MAX, &seed))
                return HT_EXIT_USAGE;
        } else if (strcmp(a, "--stream-batch") == 0) {
            if (parse_i64(a, v, 1, 1000, &k))
                return HT_EXIT_USAGE;
        } else if (strcmp(a, "--stalled") == 0) {
            if (parse_i64(a, v, 0, 1000000000, &stalled))
                return HT_EXIT_USAGE;
        } else if (strcmp(a, "--page-records") == 0) {
            if (parse_i64(a, v, 1, PAGE_MAX_RECORDS, &page_cap))
                return HT_EXIT_USAGE;
        } else if (strcmp(a, "--start") == 0) {
            if (!parse_start(v, &start)) {
                ht_cli_err("simulate: --start takes epoch seconds or an RFC "
                           "3339 time (2026-11-27T00:00:00Z), not '%s'",
                           v);
                return HT_EXIT_USAGE;
            }
        } else if (strcmp(a, "--link-only") == 0) {
            if (parse_share(a, v, &p_link_only))
                return HT_EXIT_USAGE;
            hard = true;
        } else if (strcmp(a, "--skew") == 0) {
            if (parse_share(a, v, &p_skew))
                return HT_EXIT_USAGE;
            hard = true;
        } else if (strcmp(a, "--redeliver") == 0) {
            if (parse_share(a, v, &p_redeliver))
                return HT_EXIT_USAGE;
            hard = true;
        } else if (strcmp(a, "--stale-keys") == 0) {
            if (parse_share(a, v, &p_stale_keys))
                return HT_EXIT_USAGE;
            hard = true;
        } else if (strcmp(a, "--out") == 0) {
            out = v;
        } else if (strcmp(a, "--format") == 0) {
            format = v;
        } else {
            ht_cli_err("simulate: unknown argument %s (see hoptrace simulate "
                       "--help)",
                       a);
            return HT_EXIT_USAGE;
        }
        i++;
    }
    if (n < 0 || !out || !*out) {
        ht_cli_err("simulate: --requests N and --out DIR are required (see "
                   "hoptrace simulate --help)");
        return HT_EXIT_USAGE;
    }
    if (strcmp(format, "sample") && strcmp(format, "gzip")) {
        ht_cli_err("simulate: --format is sample or gzip, not '%s'", format);
        return HT_EXIT_USAGE;
    }
    gz = strcmp(format, "gzip") == 0;
    if (stalled < 0) {
        stalled = n > 2 ? (n / 25 > 2 ? n / 25 : 2) : 0;
        if (stalled > STALLED_DEFAULT_CAP)
            stalled = STALLED_DEFAULT_CAP;
    }
    if (stalled > n - 1)
        stalled = n > 1 ? n - 1 : 0;

    err = mkdir_p(out);
    if (err) {
        ht_cli_err("simulate: cannot create %s: %s (choose a writable "
                   "folder)",
                   out, strerror(err));
        return HT_EXIT_ERROR;
    }
    g = calloc(1, sizeof *g);
    if (!g) {
        ht_cli_err("simulate: out of memory");
        return HT_EXIT_ERROR;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    t1 = t0;
    /* The start is part of the seed: the same seed in another window must
     * not repeat its random ids. Without --start the seed alone. */
    sim_rng_seed(&g->rng, start < 0
                              ? (uint64_t)seed
                              : (uint64_t)seed ^ ht_mix64((uint64_t)start));
    /* The adversities' own stream, from the same seed and start. */
    sim_rng_seed(&g->adv, ht_mix64(start < 0 ? (uint64_t)seed
                                             : (uint64_t)seed ^
                                                   ht_mix64((uint64_t)start)) ^
                              0x61647665727369ULL);
    g->p_link_only = p_link_only;
    g->p_skew = p_skew;
    g->p_redeliver = p_redeliver;
    g->p_stale_keys = p_stale_keys;
    g->shuffle = shuffle;
    g->hard = hard;
    for (int i = 0; i < 3; i++)
        sim_shuf_init(&g->shuf[i], SHUF_ITEMS, SHUF_BYTES);
    ht_buf_init(&g->sbuf);
    g->page_cap = (uint64_t)page_cap;
    g->n = n;
    g->k = k;
    g->n_stalled = stalled;
    ht_buf_init(&g->inv.ops);
    ht_buf_init(&g->doc);
    ht_buf_init(&g->ev);
    ht_buf_init(&g->msg);
    ht_buf_init(&g->tmp);
    ht_buf_init(&g->rec);
    g->st[0] = (struct stage){
        .fn = F_CHARGE, .lo = 20 * MS, .hi = 800 * MS, .cap_max = 10};
    g->st[1] = (struct stage){.fn = F_LEDGER,
                              .lo = 200 * MS,
                              .hi = 1500 * MS,
                              .cap_max = (int)k,
                              .stall = stalled};
    g->st[2] = (struct stage){
        .fn = F_RECEIPT, .lo = 200 * MS, .hi = 1500 * MS, .cap_max = (int)k};
    files[0] = &g->seg;
    files[1] = &g->cwl;
    files[2] = &g->kin;
    files[3] = &g->truth;
    files[4] = &g->extra;
    for (int i = 0; i < 5; i++) {
        /* A stale file of the other format, or a truth-extra.json that no
         * longer applies, would mislead whoever ingests or checks DIR. */
        snprintf(paths[i], sizeof paths[i], "%s/%s%s", out, names[i],
                 i < 3 && !gz ? ".gz" : "");
        if (i < 3 || k == 1)
            unlink(paths[i]);
        snprintf(paths[i], sizeof paths[i], "%s/%s%s", out, names[i],
                 i < 3 && gz ? ".gz" : "");
        if (i == 4 && k == 1)
            continue;
        err = sim_out_open(files[i], paths[i], i < 3 && gz);
        if (err) {
            ht_cli_err("simulate: cannot write %s: %s (choose a writable "
                       "folder)",
                       paths[i], strerror(err));
            rc = HT_EXIT_ERROR;
            goto done;
        }
    }
    ADDS(&g->truth.buf, "{\"requests\":[");
    if (k > 1)
        ht_buf_printf(&g->extra.buf,
                      "{\"stream_batch\":%" PRId64
                      ",\"note\":\"every stream-consumer id per request with "
                      "the number of requests `hoptrace trace ID --format "
                      "json` must return\",\"requests\":[",
                      k);
    g->ddb_seq = (uint64_t)sim_rng_int(&g->rng, 1000, 5000);
    g->kin_seq = (uint64_t)sim_rng_int(&g->rng, 5000, 20000);
    g->tag = (uint64_t)sim_rng_int(&g->rng, 0, 99999999);
    g->ev_counter = 0;

    int64_t t = start >= 0 ? start : T0_US + sim_rng_int(&g->rng, 20000, 80000);

    g->start_s = (uint64_t)(t / 1000000);
    page_open(g);

    for (int64_t i = 0; i < n; i++) {
        struct req *r = calloc(1, sizeof *r);
        int64_t next = INF;

        if (!r) {
            ht_cli_err("simulate: out of memory");
            rc = HT_EXIT_ERROR;
            goto done;
        }
        r->i = i;
        r->api_start = t;
        uuid4(g, r->apigw);
        /* the window's tag keeps order ids apart across windows too */
        snprintf(r->order, sizeof r->order, "p-%08" PRIu64 "-%" PRId64, g->tag,
                 i);
        run_start(g, r);
        if (i + 1 < n) {
            if (sim_rng_unit(&g->rng) < 0.3)
                next = t + sim_rng_int(&g->rng, 2 * MS, 40 * MS);
            else
                next = t + MS +
                       (int64_t)(-log(1.0 - sim_rng_unit(&g->rng)) * 300000.0);
        }
        drain(g, next);
        t = next;
    }
    for (int f = 0; f < F__N; f++)
        for (size_t i = 0; i < g->pool[f].n; i++)
            flush_container(g, f, g->pool[f].c[i]);
    shuffle_drain(g);
    page_close(g, true);
    ht_buf_printf(&g->truth.buf,
                  "\n],\"stages\":{},\"stall\":{\"stage_via\":\"dynamodb\","
                  "\"resource\":\"" TABLE "\",\"producer\":\"charge-card\","
                  "\"consumer\":\"record-ledger\",\"now_s\":%" PRId64
                  ",\"pending\":%" PRId64 ",\"threshold\":\"300s\"}}\n",
                  g->max_emit / 1000000 + 900, g->n_stalled_done);
    if (k > 1)
        ADDS(&g->extra.buf, "\n]}\n");
    clock_gettime(CLOCK_MONOTONIC, &t1);
done:
    for (int i = 0; i < 5; i++) {
        if (!files[i]->f)
            continue;
        err = sim_out_close(files[i]);
        if (err && rc == HT_EXIT_OK) {
            ht_cli_err("simulate: cannot write %s: %s (check free space)",
                       paths[i], strerror(err));
            rc = HT_EXIT_ERROR;
        }
    }
    if (rc == HT_EXIT_OK) {
        uint64_t bytes = 0;

        for (int i = 0; i < 3; i++)
            bytes += files[i]->bytes;
        fprintf(stderr,
                "simulate: %" PRIu64 " requests (%" PRIu64 " stalled), %" PRIu64
                " segment documents, %" PRIu64 " log events in %" PRIu64
                " messages, %" PRIu64 " invocations, %" PRIu64
                " Kinesis records in %" PRIu64
                " GetRecords pages, %.1f MB -> %s in %.2f s\n",
                g->n_done, g->n_stalled_done, g->n_docs, g->n_events, g->n_msgs,
                g->n_invs, g->kin_records, g->pages, (double)bytes / 1e6, out,
                (double)(t1.tv_sec - t0.tv_sec) +
                    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
        if (hard)
            fprintf(stderr,
                    "simulate: adversities: %" PRIu64
                    " link-only batches, %" PRIu64
                    " skewed containers, %" PRIu64
                    " redelivered batches, %" PRIu64 " stale event lines%s\n",
                    g->n_link_only, g->n_skewed, g->n_redelivered,
                    g->n_stale_keys, shuffle ? ", shuffled" : "");
    }
    gen_free(g);
    free(g);
    return rc;
}
