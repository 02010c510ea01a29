/*
 * ingest_kafka.c - `hoptrace ingest --kafka BROKERS --topic T[,T...]`: a
 * librdkafka consumer in a consumer group, feeding the shared sink.
 *
 * Exactly-once in effect: each batch is written in ONE LMDB transaction
 * together with checkpoints `kafka:GROUP:TOPIC:PARTITION` -> next offset
 * for every partition the batch touched. On assignment the consumer seeks
 * to those stored offsets, so a crash at any instant resumes exactly after
 * what the store holds. Offsets are committed to Kafka too, but only after
 * the store has them and only for lag monitoring: the store is the truth.
 *
 * Two processes in one group share ONE store (LMDB serialises writers
 * across processes): on revocation a process commits what it assembled for
 * the partitions before giving them up, and the new owner seeks to the
 * checkpoint it finds in the same store.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "sink.h"

#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: hoptrace [--db DIR] ingest --kafka BROKERS --topic T[,T...]\n"
    "         [--group G] [--until-idle SECONDS] [-X key=value ...]\n"
    "         [--dlq-topic T] [--batch N] [--strict] [--quiet]\n"
    "\n"
    "Consumes the topics in consumer group G (default hoptrace). Each\n"
    "message value is any payload `ingest FILE` accepts (X-Ray documents,\n"
    "daemon datagrams, gzip'd CloudWatch Logs subscription messages,\n"
    "PutTraceSegments bodies, ...), sniffed the same way.\n"
    "\n"
    "  --kafka BROKERS       bootstrap servers, host:port[,host:port...]\n"
    "  --topic T[,T...]      topics to consume (repeatable)\n"
    "  --group G             consumer group (default hoptrace)\n"
    "  --until-idle SECONDS  exit after that long without a new message\n"
    "  -X key=value          a librdkafka setting (security.protocol,\n"
    "                        sasl.*, ssl.*, fetch sizes, ...)\n"
    "  --dlq-topic T         also produce poison messages to topic T\n"
    "  --batch N             records per write transaction (default 2048)\n"
    "  --strict              exit 3 when anything was rejected\n"
    "  --quiet               no summary line\n"
    "  --durable             flush every commit to disk (default: atomic\n"
    "                        commits, safe from kill -9, flushed by the OS)\n"
    "\n"
    "Consumed offsets are stored in the same write transaction as the data\n"
    "they produced and the consumer seeks to them on every assignment, so a\n"
    "crash at any point, then a restart, loses and doubles nothing. Offsets\n"
    "are committed to Kafka as well, for lag monitoring. Several processes\n"
    "of one group may share one store (--db). SIGINT/SIGTERM: commit and\n"
    "exit 0. Poison messages go to the dead-letter table (hoptrace dlq)\n"
    "with their topic/partition/offset.\n";

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

/* One partition this process has consumed from. */
struct kpart {
    char *topic;
    int32_t partition;
    int64_t next; /* offset after the last message decoded */
    bool dirty;   /* next changed since the last flush */
};

struct kc {
    struct ht_engine *eng;
    rd_kafka_t *rk, *dlq;
    const char *group, *dlq_topic;
    struct kpart *parts;
    size_t nparts, capparts;
    /* offsets of the last flush: committed to Kafka once that flush is
     * known to be in the store (the next flush returned, or a sync) */
    rd_kafka_topic_partition_list_t *to_commit;
    uint64_t messages, bytes, dlq_produced;
    int err;                    /* store error: stop */
    bool fatal;                 /* a Kafka error that retrying will not fix */
    int64_t last_error;         /* rate limit of broker error lines */
    int64_t last_assign;        /* 0 until the group assigned us partitions */
    int64_t first_msg, busy_us; /* throughput: first message to commit */
    int64_t last_msg_seen;
};

static struct kpart *find_part(struct kc *k, const char *topic, int32_t p)
{
    for (size_t i = 0; i < k->nparts; i++)
        if (k->parts[i].partition == p && strcmp(k->parts[i].topic, topic) == 0)
            return &k->parts[i];
    if (k->nparts == k->capparts) {
        k->capparts = k->capparts ? k->capparts * 2 : 16;
        k->parts = realloc(k->parts, k->capparts * sizeof(*k->parts));
        HT_ASSERT(k->parts);
    }
    struct kpart *kp = &k->parts[k->nparts++];
    kp->topic = strdup(topic);
    HT_ASSERT(kp->topic);
    kp->partition = p;
    kp->next = -1;
    kp->dirty = false;
    return kp;
}

static void ckpt_key(char *out, size_t n, const char *group, const char *topic,
                     int32_t p)
{
    snprintf(out, n, "kafka:%s:%s:%d", group, topic, (int)p);
}

/* Commits the offsets of the previous flush to Kafka (lag monitoring only;
 * the caller knows they are in the store). Asynchronous: a broker that is
 * down must not hold up ingest. */
static void commit_to_kafka(struct kc *k)
{
    if (!k->to_commit)
        return;
    if (k->to_commit->cnt) {
        rd_kafka_resp_err_t e = rd_kafka_commit(k->rk, k->to_commit, 1);

        if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
            HT_LOG_DEBUG("ingest:kafka", "offset commit: %s",
                         rd_kafka_err2str(e));
    }
    rd_kafka_topic_partition_list_destroy(k->to_commit);
    k->to_commit = NULL;
}

/* Hands the batch to the writer with the checkpoints of every partition it
 * touched. When ht_sink_flush returns, the previous batch is committed, so
 * its offsets may go to Kafka. */
static int flush_batch(struct kc *k)
{
    struct ht_engine_ckpt *ck;
    char(*keys)[512];
    int64_t *vals;
    size_t n = 0;
    struct ht_batch *b = ht_engine_batch(k->eng);
    int rc;

    for (size_t i = 0; i < k->nparts; i++)
        n += k->parts[i].dirty;
    if (!n && !b->nspans && !b->nfacts && !b->nrejects && !b->documents)
        return HT_ERR_OK;
    ck = calloc(n + 1, sizeof(*ck));
    keys = calloc(n + 1, sizeof(*keys));
    vals = calloc(n + 1, sizeof(*vals));
    HT_ASSERT(ck && keys && vals);
    n = 0;
    for (size_t i = 0; i < k->nparts; i++) {
        struct kpart *kp = &k->parts[i];

        if (!kp->dirty)
            continue;
        ckpt_key(keys[n], sizeof(keys[n]), k->group, kp->topic, kp->partition);
        vals[n] = kp->next;
        ck[n] = (struct ht_engine_ckpt){keys[n], strlen(keys[n]), &vals[n],
                                      sizeof(vals[n])};
        n++;
    }
    rc = ht_engine_flush(k->eng, ck, n);
    if (rc == HT_ERR_OK) {
        commit_to_kafka(k);
        k->to_commit = rd_kafka_topic_partition_list_new((int)n + 1);
        for (size_t i = 0; i < k->nparts; i++) {
            struct kpart *kp = &k->parts[i];

            if (!kp->dirty)
                continue;
            rd_kafka_topic_partition_list_add(k->to_commit, kp->topic,
                                              kp->partition)
                ->offset = kp->next;
            kp->dirty = false;
        }
    }
    free(ck);
    free(keys);
    free(vals);
    if (rc && !k->err)
        k->err = rc;
    return rc;
}

/* Flush, wait for the store, then tell Kafka. */
static int flush_sync(struct kc *k)
{
    int rc = flush_batch(k);

    if (!rc)
        rc = ht_engine_sync(k->eng);
    if (!rc)
        commit_to_kafka(k);
    if (rc && !k->err)
        k->err = rc;
    return rc;
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct kc *k = opaque;
    bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    rd_kafka_error_t *e = NULL;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        for (int i = 0; i < parts->cnt; i++) {
            rd_kafka_topic_partition_t *p = &parts->elems[i];
            char key[512];
            int64_t off = 0;
            size_t vn = 0;
            int rc;

            ckpt_key(key, sizeof(key), k->group, p->topic, p->partition);
            rc = ht_engine_get_ckpt(k->eng, key, &off, sizeof(off), &vn);
            if (rc == HT_ERR_OK && vn == sizeof(off) && off >= 0) {
                p->offset = off;
                HT_LOG_INFO("ingest:kafka", "%s/%d: resuming at offset %lld",
                            p->topic, (int)p->partition, (long long)off);
            } else {
                if (rc != HT_ERR_OK && rc != HT_ERR_NOTFOUND && !k->err)
                    k->err = rc;
                /* nothing in the store: the group's committed offset,
                 * else auto.offset.reset (earliest) */
                p->offset = RD_KAFKA_OFFSET_INVALID;
            }
            find_part(k, p->topic, p->partition)->dirty = false;
        }
        if (HT_LOG_LVL_INFO <= ht_log_level) {
            char list[1024] = "";
            size_t o = 0;

            for (int i = 0; i < parts->cnt && o < sizeof(list) - 1; i++)
                o += (size_t)snprintf(list + o, sizeof(list) - o, " %s/%d",
                                      parts->elems[i].topic,
                                      (int)parts->elems[i].partition);
            HT_LOG_INFO("ingest:kafka", "assigned %d partitions:%s", parts->cnt,
                        list);
        }
        /* joining a group takes a while: --until-idle counts from here */
        k->last_assign = ht_now_mono_us();
        if (coop)
            e = rd_kafka_incremental_assign(rk, parts);
        else
            rd_kafka_assign(rk, parts);
    } else {
        /* Revoked or lost: what was decoded from these partitions goes
         * into the store (with its checkpoints) before anyone else may
         * consume them. */
        flush_sync(k);
        if (coop)
            e = rd_kafka_incremental_unassign(rk, parts);
        else
            rd_kafka_assign(rk, NULL);
    }
    if (e) {
        ht_cli_err("kafka: partition assignment failed: %s",
                   rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct kc *k = opaque;
    int64_t now = ht_now_mono_us();

    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[256];

        rd_kafka_fatal_error(rk, buf, sizeof(buf));
        ht_cli_err("kafka: fatal error: %s", buf);
        k->fatal = true;
        return;
    }
    /* librdkafka reconnects with back-off by itself; say so, once in a
     * while, rather than once per attempt */
    if (k->last_error && now - k->last_error < 10 * 1000000LL)
        return;
    k->last_error = now;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        ht_cli_err("kafka: all brokers are down (%s); retrying with "
                   "back-off",
                   reason);
    else
        ht_cli_err("kafka: %s; retrying with back-off", reason);
}

/* librdkafka's own log lines (one per failed connect, ...) only with -v:
 * error_cb already says what matters, once in a while. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf)
{
    (void)rk;
    if (level <= 3)
        HT_LOG_INFO("ingest:kafka", "librdkafka %s: %s", fac, buf);
    else
        HT_LOG_DEBUG("ingest:kafka", "librdkafka %s: %s", fac, buf);
}

static void sum_rejected(const struct ht_batch *b, uint64_t *n)
{
    *n = 0;
    for (int r = 0; r < HT_REJ__COUNT; r++)
        *n += b->rejected[r];
}

static void to_dlq_topic(struct kc *k, const rd_kafka_message_t *m)
{
    char part[16], off[24];
    const char *topic = rd_kafka_topic_name(m->rkt);
    rd_kafka_resp_err_t e;

    snprintf(part, sizeof(part), "%d", (int)m->partition);
    snprintf(off, sizeof(off), "%lld", (long long)m->offset);
    e = rd_kafka_producev(
        k->dlq, RD_KAFKA_V_TOPIC(k->dlq_topic),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_VALUE(m->payload, m->len),
        RD_KAFKA_V_KEY(m->key, m->key_len),
        RD_KAFKA_V_HEADER("hoptrace-topic", topic, (ssize_t)strlen(topic)),
        RD_KAFKA_V_HEADER("hoptrace-partition", part, (ssize_t)strlen(part)),
        RD_KAFKA_V_HEADER("hoptrace-offset", off, (ssize_t)strlen(off)),
        RD_KAFKA_V_END);
    if (e)
        HT_LOG_WARN("ingest:kafka",
                    "cannot produce to dead-letter topic %s: %s (the "
                    "dead-letter table has it)",
                    k->dlq_topic, rd_kafka_err2str(e));
    else
        k->dlq_produced++;
}

static void handle_message(struct kc *k, const rd_kafka_message_t *m)
{
    const char *topic = rd_kafka_topic_name(m->rkt);
    char src[300];
    struct ht_srcpos pos = {.source = src, .offset = (uint64_t)m->offset};
    struct ht_batch *b = ht_engine_batch(k->eng);
    uint64_t before, after;
    struct kpart *kp;

    snprintf(src, sizeof(src), "kafka:%s/%d", topic, (int)m->partition);
    sum_rejected(b, &before);
    if (!m->payload || !m->len)
        ht_batch_reject(b, HT_REJ_NOT_JSON, &pos,
                        "empty message (or a tombstone)", NULL, 0);
    else
        ht_ingest_payload(b, &pos, m->payload, m->len);
    sum_rejected(b, &after);
    if (after > before && k->dlq)
        to_dlq_topic(k, m);
    kp = find_part(k, topic, m->partition);
    kp->next = m->offset + 1;
    kp->dirty = true;
    k->messages++;
    k->bytes += m->len;
}

/* A consumer error event. Returns true when it is fatal. */
static bool handle_error(const rd_kafka_message_t *m)
{
    const char *topic = m->rkt ? rd_kafka_topic_name(m->rkt) : NULL;

    switch (m->err) {
    case RD_KAFKA_RESP_ERR__PARTITION_EOF:
        return false;
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
        ht_cli_err("kafka: topic %s does not exist (create it, or check "
                   "--topic)",
                   topic ? topic : "?");
        return true;
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
        ht_cli_err("kafka: not authorised: %s (check the -X security "
                   "settings)",
                   rd_kafka_message_errstr(m));
        return true;
    default:
        HT_LOG_WARN("ingest:kafka", "%s%s%s", topic ? topic : "",
                    topic ? ": " : "", rd_kafka_message_errstr(m));
        return false;
    }
}

/* Waits until the brokers answer and checks that every topic exists.
 * Returns 0, 1 for a missing topic, 2 when stopped or idle first. */
static int check_topics(struct kc *k, char **topics, int ntopics, double idle_s)
{
    int64_t start = ht_now_mono_us();
    int backoff_ms = 500;

    for (;;) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t e = rd_kafka_metadata(k->rk, 1, NULL, &md, 5000);

        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            int missing = 0;

            for (int i = 0; i < ntopics; i++) {
                bool found = false;

                for (int j = 0; j < md->topic_cnt; j++)
                    if (strcmp(md->topics[j].topic, topics[i]) == 0 &&
                        md->topics[j].err !=
                            RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
                        found = true;
                if (!found) {
                    ht_cli_err("kafka: topic %s does not exist (create it, "
                               "or check --topic)",
                               topics[i]);
                    missing++;
                }
            }
            rd_kafka_metadata_destroy(md);
            return missing ? 1 : 0;
        }
        ht_cli_err("kafka: cannot reach the brokers: %s; retrying in %.1f s",
                   rd_kafka_err2str(e), backoff_ms / 1000.0);
        for (int t = 0; t < backoff_ms && !stop_flag; t += 100)
            rd_kafka_poll(k->rk, 100);
        if (stop_flag ||
            (idle_s > 0 && ht_now_mono_us() - start > (int64_t)(idle_s * 1e6)))
            return 2;
        if (backoff_ms < 16000)
            backoff_ms *= 2;
    }
}

static bool conf_set(rd_kafka_conf_t *c, const char *key, const char *val)
{
    char err[512];

    if (rd_kafka_conf_set(c, key, val, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        ht_cli_err("kafka setting %s=%s: %s", key, val, err);
        return false;
    }
    return true;
}

/* Applies the -X settings (argv positions in xs) to a configuration. */
static bool conf_user(rd_kafka_conf_t *c, char **xs, int nx)
{
    for (int i = 0; i < nx; i++) {
        char *kv = strdup(xs[i]), *eq = strchr(kv, '=');
        bool ok;

        HT_ASSERT(kv);
        if (!eq) {
            ht_cli_err("-X takes key=value, not %s", xs[i]);
            free(kv);
            return false;
        }
        *eq = 0;
        ok = conf_set(c, kv, eq + 1);
        free(kv);
        if (!ok)
            return false;
    }
    return true;
}

int ht_cmd_ingest_kafka(struct ht_cli *cli, int argc, char **argv)
{
    struct kc k;
    const char *brokers = NULL;
    char **topics = NULL, **xs = NULL;
    int ntopics = 0, nx = 0, rc = HT_ERR_OK, exit_code = HT_EXIT_OK;
    struct ht_ingest_opts o = HT_INGEST_OPTS_INIT;
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_topic_partition_list_t *sub = NULL;
    char errstr[512];
    struct sigaction sa;
    uint64_t rejected = 0;

    memset(&k, 0, sizeof(k));
    k.group = "hoptrace";
    topics = calloc((size_t)argc, sizeof(*topics));
    xs = calloc((size_t)argc, sizeof(*xs));
    HT_ASSERT(topics && xs);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            goto out_free;
        }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        int taken = ht_ingest_opt(cli, argc, argv, &i, &o);

        if (taken < 0) {
            exit_code = HT_EXIT_USAGE;
            goto out_free;
        }
        if (taken > 0)
            continue;
        if (strcmp(a, "--kafka") == 0 && has) {
            brokers = argv[++i];
        } else if (strcmp(a, "--topic") == 0 && has) {
            /* comma-separated; split in place (argv is ours) */
            for (char *t = strtok(argv[++i], ","); t; t = strtok(NULL, ","))
                if (*t && ntopics < argc)
                    topics[ntopics++] = t;
        } else if (strcmp(a, "--group") == 0 && has) {
            k.group = argv[++i];
        } else if (strcmp(a, "--dlq-topic") == 0 && has) {
            k.dlq_topic = argv[++i];
        } else if (strcmp(a, "-X") == 0 && has) {
            xs[nx++] = argv[++i];
        } else {
            ht_cli_err("ingest --kafka: unknown or incomplete option %s (see "
                       "hoptrace ingest --kafka --help)",
                       a);
            exit_code = HT_EXIT_USAGE;
            goto out_free;
        }
    }
    if (!brokers || !*brokers || !ntopics) {
        ht_cli_err("ingest --kafka needs BROKERS and --topic T (see hoptrace "
                   "ingest --kafka --help)");
        exit_code = HT_EXIT_USAGE;
        goto out_free;
    }

    conf = rd_kafka_conf_new();
    if (!conf_set(conf, "bootstrap.servers", brokers) ||
        !conf_set(conf, "group.id", k.group) ||
        !conf_set(conf, "client.id", "hoptrace") ||
        /* offsets live in the store; Kafka only hears of them after */
        !conf_set(conf, "enable.auto.commit", "false") ||
        !conf_set(conf, "enable.auto.offset.store", "false") ||
        !conf_set(conf, "auto.offset.reset", "earliest") ||
        /* bounded in-flight memory: fetching pauses when this is full */
        !conf_set(conf, "queued.max.messages.kbytes", "32768") ||
        /* a crashed worker's partitions move on after 10 s, not 45 */
        !conf_set(conf, "session.timeout.ms", "10000") ||
        !conf_set(conf, "heartbeat.interval.ms", "2000") ||
        !conf_user(conf, xs, nx)) {
        rd_kafka_conf_destroy(conf);
        exit_code = HT_EXIT_USAGE;
        goto out_free;
    }
    if (k.dlq_topic) {
        rd_kafka_conf_t *pc = rd_kafka_conf_new();

        if (!conf_set(pc, "bootstrap.servers", brokers) ||
            !conf_set(pc, "client.id", "hoptrace-dlq") ||
            !conf_user(pc, xs, nx)) {
            rd_kafka_conf_destroy(pc);
            rd_kafka_conf_destroy(conf);
            exit_code = HT_EXIT_USAGE;
            goto out_free;
        }
        rd_kafka_conf_set_log_cb(pc, log_cb);
        k.dlq = rd_kafka_new(RD_KAFKA_PRODUCER, pc, errstr, sizeof(errstr));
        if (!k.dlq) {
            ht_cli_err("kafka: cannot create the dead-letter producer: %s",
                       errstr);
            rd_kafka_conf_destroy(pc);
            rd_kafka_conf_destroy(conf);
            exit_code = HT_EXIT_ERROR;
            goto out_free;
        }
    }
    rd_kafka_conf_set_opaque(conf, &k);
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_log_cb(conf, log_cb);

    rc = ht_cli_engine_open(cli, &o, &k.eng);
    if (rc) {
        rd_kafka_conf_destroy(conf);
        exit_code = HT_EXIT_ERROR;
        goto out_free;
    }
    k.rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!k.rk) {
        ht_cli_err("kafka: cannot create the consumer: %s (check -X)", errstr);
        rd_kafka_conf_destroy(conf);
        ht_engine_close(k.eng);
        exit_code = HT_EXIT_USAGE;
        goto out_free;
    }
    rd_kafka_poll_set_consumer(k.rk);

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    switch (check_topics(&k, topics, ntopics, o.until_idle)) {
    case 1:
        exit_code = HT_EXIT_ERROR;
        goto out_close;
    case 2:
        if (!stop_flag) {
            ht_cli_err("kafka: no broker of %s answered within %.0f s "
                       "(check --kafka and that the brokers run)",
                       brokers, o.until_idle);
            exit_code = HT_EXIT_ERROR;
        }
        goto out_close;
    default:
        break;
    }
    sub = rd_kafka_topic_partition_list_new(ntopics);
    for (int i = 0; i < ntopics; i++)
        rd_kafka_topic_partition_list_add(sub, topics[i],
                                          RD_KAFKA_PARTITION_UA);
    {
        rd_kafka_resp_err_t e = rd_kafka_subscribe(k.rk, sub);

        rd_kafka_topic_partition_list_destroy(sub);
        if (e) {
            ht_cli_err("kafka: cannot subscribe: %s", rd_kafka_err2str(e));
            exit_code = HT_EXIT_ERROR;
            goto out_close;
        }
    }

    {
        int64_t now = ht_now_mono_us(), last_msg = now, last_flush = now,
                start = now;

        while (!stop_flag && !k.err && !k.fatal) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(k.rk, 100);

            now = ht_now_mono_us();
            if (m) {
                if (m->err) {
                    if (handle_error(m))
                        k.fatal = true;
                } else {
                    if (!k.messages)
                        k.first_msg = now;
                    handle_message(&k, m);
                    last_msg = k.last_msg_seen = now;
                }
                rd_kafka_message_destroy(m);
            }
            if (k.dlq)
                rd_kafka_poll(k.dlq, 0);
            /* commit every batch_docs records, and at least every 200 ms
             * so that offsets and data never lag far behind */
            if (ht_engine_full(k.eng) || now - last_flush > 200000) {
                if (flush_batch(&k))
                    break;
                last_flush = now;
            }
            if (o.until_idle > 0) {
                int64_t idle_us = (int64_t)(o.until_idle * 1e6);

                if (k.last_assign && now - last_msg > idle_us &&
                    now - k.last_assign > idle_us)
                    break;
                /* a group that never assigns anything (every partition
                 * taken): give up after a grace period */
                if (!k.last_assign && now - start > idle_us + 60000000)
                    break;
            }
        }
    }
    {
        /* the throughput window ends with the last message's commit,
         * not with the --until-idle wait after it */
        int64_t idle_tail = ht_now_mono_us() - k.last_msg_seen;

        flush_sync(&k);
        if (k.messages)
            k.busy_us = ht_now_mono_us() - k.first_msg - idle_tail;
    }

out_close:
    /* leaving the group revokes our partitions: rebalance_cb commits */
    rd_kafka_consumer_close(k.rk);
    commit_to_kafka(&k);
    rd_kafka_destroy(k.rk);
    if (k.dlq) {
        if (rd_kafka_flush(k.dlq, 10000))
            ht_cli_err("kafka: some poison messages could not be produced "
                       "to %s (they are in the dead-letter table)",
                       k.dlq_topic);
        rd_kafka_destroy(k.dlq);
    }
    {
        int src = ht_engine_sync(k.eng);

        if (!k.err)
            k.err = src;
    }
    if (!o.quiet) {
        char from[128];

        snprintf(from, sizeof(from), "%llu Kafka messages (%.1f MB)",
                 (unsigned long long)k.messages, (double)k.bytes / 1e6);
        ht_sink_summary(k.eng, stderr, from);
        if (k.dlq)
            fprintf(stderr, "; produced %llu to %s",
                    (unsigned long long)k.dlq_produced, k.dlq_topic);
        if (k.busy_us > 0)
            fprintf(stderr, "; %.0f messages/s, %.1f MB/s",
                    (double)k.messages * 1e6 / (double)k.busy_us,
                    (double)k.bytes / (double)k.busy_us);
        fputc('\n', stderr);
    }
    rejected = ht_engine_rejected(k.eng);
    {
        int crc = ht_engine_close(k.eng);

        if (!k.err)
            k.err = crc;
    }
    if (k.err) {
        ht_cli_err("ingest stopped: %s (what was committed stays; run the "
                   "same command again to resume)",
                   ht_strerror(k.err));
        exit_code = HT_EXIT_ERROR;
    } else if (k.fatal && exit_code == HT_EXIT_OK) {
        exit_code = HT_EXIT_ERROR;
    } else if (exit_code == HT_EXIT_OK && o.strict && rejected) {
        exit_code = HT_EXIT_REJECTED;
    }
    for (size_t i = 0; i < k.nparts; i++)
        free(k.parts[i].topic);
    free(k.parts);
out_free:
    free(topics);
    free(xs);
    return exit_code;
}
