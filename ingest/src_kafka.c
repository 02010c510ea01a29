/*
 * src_kafka.c - the Kafka source of the ingest engine: a librdkafka
 * consumer in a consumer group (`hoptrace ingest --kafka BROKERS --topic
 * T[,T...]`).
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
 * checkpoint it finds in the same store. Rebalances happen inside poll and
 * close, so close must come before the engine is closed.
 *
 * Owned by ingest/ (library ht_engine). It prints nothing but log lines.
 */
#define _GNU_SOURCE
#include "ht_engine.h"

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct ht_opt ht_kafka_opt_table[] = {
    {HT_OPT_STRING, "--kafka", NULL, "BROKERS", NULL,
     offsetof(struct ht_kafka_cfg, brokers), 0, 0,
     "bootstrap servers, host:port[,host:port...]"},
    {HT_OPT_LIST, "--topic", NULL, "T[,T...]", NULL,
     offsetof(struct ht_kafka_cfg, topics), 0, 0,
     "topics to consume (repeatable)"},
    {HT_OPT_STRING, "--group", NULL, "G", "hoptrace",
     offsetof(struct ht_kafka_cfg, group), 0, 0, "consumer group"},
    {HT_OPT_LIST, "-X", NULL, "key=value", NULL,
     offsetof(struct ht_kafka_cfg, x), 0, 0,
     "a librdkafka setting (security.protocol, sasl.*, ssl.*, fetch "
     "sizes, ...)"},
    {HT_OPT_STRING, "--dlq-topic", NULL, "T", NULL,
     offsetof(struct ht_kafka_cfg, dlq_topic), 0, 0,
     "also produce poison messages to topic T"},
    HT_OPT_END};

/* One partition this process has consumed from. */
struct kpart {
    char *topic;
    int32_t partition;
    int64_t next; /* offset after the last message decoded */
    bool dirty;   /* next changed since the last flush */
};

struct kc {
    struct ht_engine *eng; /* borrowed, from the first poll on */
    struct ht_kafka_cfg cfg;
    rd_kafka_t *rk, *dlq;
    const char *group, *dlq_topic;
    char **topics; /* --topic values split at commas (owned) */
    int ntopics;
    bool stopped; /* stopped while connecting */
    int64_t start, last_msg, last_flush, last_ckpt_at;
    struct kpart *parts;
    size_t nparts, capparts;
    /* offsets of the last flush: committed to Kafka once that flush is
     * known to be in the store (the next flush returned, or a sync) */
    rd_kafka_topic_partition_list_t *to_commit;
    uint64_t messages, bytes;
    /* poison messages offered to the dead-letter producer, acknowledged
     * by the brokers, and reported lost (delivery reports) */
    uint64_t dlq_tried, dlq_produced, dlq_lost;
    bool dlq_flushed;           /* flush_dlq ran once */
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
    struct ht_batch *b;
    int rc;

    if (!k->eng)
        return HT_ERR_OK; /* nothing was ever polled */
    b = ht_engine_batch(k->eng);
    k->last_ckpt_at = ht_now_mono_us();
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

    if (!k->eng)
        return HT_ERR_OK;
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
            rc = k->eng
                     ? ht_engine_get_ckpt(k->eng, key, &off, sizeof(off), &vn)
                     : HT_ERR_NOTFOUND;
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
        HT_LOG_ERROR("ingest:kafka", "partition assignment failed: %s",
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
        HT_LOG_ERROR("ingest:kafka", "fatal error: %s", buf);
        k->fatal = true;
        return;
    }
    /* librdkafka reconnects with back-off by itself; say so, once in a
     * while, rather than once per attempt */
    if (k->last_error && now - k->last_error < 10 * 1000000LL)
        return;
    k->last_error = now;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        HT_LOG_ERROR("ingest:kafka",
                     "all brokers are down (%s); retrying with "
                     "back-off",
                     reason);
    else
        HT_LOG_ERROR("ingest:kafka", "%s; retrying with back-off", reason);
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
    k->dlq_tried++;
    if (e)
        HT_LOG_WARN("ingest:kafka",
                    "cannot produce to dead-letter topic %s: %s (the "
                    "dead-letter table has it)",
                    k->dlq_topic, rd_kafka_err2str(e));
}

/* Delivery reports of the dead-letter producer, served by rd_kafka_poll
 * and rd_kafka_flush on the source's thread: only an acknowledged message
 * counts as produced. */
static void dlq_report(rd_kafka_t *rk, const rd_kafka_message_t *m,
                       void *opaque)
{
    struct kc *k = opaque;

    (void)rk;
    if (!m->err) {
        k->dlq_produced++;
        return;
    }
    if (!k->dlq_lost++)
        HT_LOG_WARN("ingest:kafka",
                    "cannot produce a poison message to dead-letter topic "
                    "%s: %s (the dead-letter table has it)",
                    k->dlq_topic, rd_kafka_err2str(m->err));
}

/* Waits up to 10 s for the dead-letter producer's outstanding messages,
 * once: when the run's counts are taken, or at close. What is still
 * queued then is counted as not produced (the dead-letter table has it),
 * and brokers that are down do not hold the exit up twice. */
static void flush_dlq(struct kc *k)
{
    if (!k->dlq || k->dlq_flushed)
        return;
    k->dlq_flushed = true;
    if (rd_kafka_flush(k->dlq, 10000))
        HT_LOG_ERROR("ingest:kafka",
                     "kafka: %d poison messages could not be produced to %s "
                     "within 10 s (they are in the dead-letter table)",
                     rd_kafka_outq_len(k->dlq), k->dlq_topic);
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
        HT_LOG_ERROR("ingest:kafka",
                     "topic %s does not exist (create it, or check "
                     "--topic)",
                     topic ? topic : "?");
        return true;
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
        HT_LOG_ERROR("ingest:kafka",
                     "not authorised: %s (check the -X security "
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
static int check_topics(struct kc *k, double idle_s)
{
    int64_t start = ht_now_mono_us();
    int backoff_ms = 500;
    volatile sig_atomic_t *stop = k->cfg.stop;

    for (;;) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t e = rd_kafka_metadata(k->rk, 1, NULL, &md, 5000);

        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            int missing = 0;

            for (int i = 0; i < k->ntopics; i++) {
                bool found = false;

                for (int j = 0; j < md->topic_cnt; j++)
                    if (strcmp(md->topics[j].topic, k->topics[i]) == 0 &&
                        md->topics[j].err !=
                            RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
                        found = true;
                if (!found) {
                    HT_LOG_ERROR("ingest:kafka",
                                 "kafka: topic %s does not exist (create it, "
                                 "or check --topic)",
                                 k->topics[i]);
                    missing++;
                }
            }
            rd_kafka_metadata_destroy(md);
            return missing ? 1 : 0;
        }
        HT_LOG_ERROR("ingest:kafka",
                     "kafka: cannot reach the brokers: %s; retrying in %.1f s",
                     rd_kafka_err2str(e), backoff_ms / 1000.0);
        for (int t = 0; t < backoff_ms && !(stop && *stop); t += 100)
            rd_kafka_poll(k->rk, 100);
        if ((stop && *stop) ||
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
        HT_LOG_ERROR("ingest:kafka", "kafka setting %s=%s: %s", key, val, err);
        return false;
    }
    return true;
}

/* Applies the -X settings to a configuration. */
static bool conf_user(rd_kafka_conf_t *c, const struct ht_opt_list *xs)
{
    for (int i = 0; i < xs->n; i++) {
        char *kv = strdup(xs->v[i]), *eq = strchr(kv, '=');
        bool ok;

        HT_ASSERT(kv);
        if (!eq) {
            HT_LOG_ERROR("ingest:kafka", "-X takes key=value, not %s",
                         xs->v[i]);
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

static void kafka_close(void *state)
{
    struct kc *k = state;

    if (!k)
        return;
    if (k->rk) {
        /* leaving the group revokes our partitions: rebalance_cb commits
         * (into the engine, which must still be open) */
        rd_kafka_consumer_close(k->rk);
        commit_to_kafka(k);
        rd_kafka_destroy(k->rk);
    }
    if (k->to_commit)
        rd_kafka_topic_partition_list_destroy(k->to_commit);
    if (k->dlq) {
        flush_dlq(k);
        rd_kafka_destroy(k->dlq);
    }
    for (size_t i = 0; i < k->nparts; i++)
        free(k->parts[i].topic);
    free(k->parts);
    for (int i = 0; i < k->ntopics; i++)
        free(k->topics[i]);
    free(k->topics);
    free(k);
}

static int kafka_open(const void *cfgv, void **state)
{
    const struct ht_kafka_cfg *cfg = cfgv;
    struct kc *k = calloc(1, sizeof(*k));
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_topic_partition_list_t *sub;
    char errstr[512];
    int rc = HT_ERR_USAGE;

    *state = NULL;
    if (!k)
        return HT_ERR_NOMEM;
    k->cfg = *cfg;
    k->group = cfg->group ? cfg->group : "hoptrace";
    k->dlq_topic = cfg->dlq_topic;
    /* --topic a,b --topic c */
    for (int i = 0; i < cfg->topics.n; i++) {
        char *copy = strdup(cfg->topics.v[i]), *save = NULL;

        HT_ASSERT(copy);
        for (char *t = strtok_r(copy, ",", &save); t;
             t = strtok_r(NULL, ",", &save)) {
            if (!*t)
                continue;
            k->topics = realloc(k->topics,
                                (size_t)(k->ntopics + 1) * sizeof(*k->topics));
            HT_ASSERT(k->topics);
            k->topics[k->ntopics] = strdup(t);
            HT_ASSERT(k->topics[k->ntopics]);
            k->ntopics++;
        }
        free(copy);
    }
    if (!cfg->brokers || !*cfg->brokers || !k->ntopics) {
        HT_LOG_ERROR("ingest:kafka",
                     "ingest --kafka needs BROKERS and --topic T (see "
                     "hoptrace ingest --kafka --help)");
        goto fail;
    }
    conf = rd_kafka_conf_new();
    if (!conf_set(conf, "bootstrap.servers", cfg->brokers) ||
        !conf_set(conf, "group.id", k->group) ||
        !conf_set(conf, "client.id", "hoptrace") ||
        /* offsets live in the store; Kafka only hears of them after */
        !conf_set(conf, "enable.auto.commit", "false") ||
        !conf_set(conf, "enable.auto.offset.store", "false") ||
        !conf_set(conf, "auto.offset.reset", "earliest") ||
        /* bounded in-flight memory: fetching pauses when this is full.
         * librdkafka before 2.3 (Debian 12 has 2.0.2) looks at a paused
         * partition again only when its broker thread wakes, up to 1 s
         * later (fetch.queue.backoff.ms, fixed at 1000 there): a queue
         * that drains in less than that leaves ingest idle for the rest.
         * 64 MiB lasts about a second at the writer's pace; with 32 MiB
         * a 37 MB backlog ran at 46k or 100k messages/s by chance. */
        !conf_set(conf, "queued.max.messages.kbytes", "65536") ||
        /* a crashed worker's partitions move on after 10 s, not 45 */
        !conf_set(conf, "session.timeout.ms", "10000") ||
        !conf_set(conf, "heartbeat.interval.ms", "2000") ||
        !conf_user(conf, &cfg->x))
        goto fail;
    if (k->dlq_topic) {
        rd_kafka_conf_t *pc = rd_kafka_conf_new();

        if (!conf_set(pc, "bootstrap.servers", cfg->brokers) ||
            !conf_set(pc, "client.id", "hoptrace-dlq") ||
            !conf_user(pc, &cfg->x)) {
            rd_kafka_conf_destroy(pc);
            goto fail;
        }
        rd_kafka_conf_set_log_cb(pc, log_cb);
        rd_kafka_conf_set_opaque(pc, k);
        rd_kafka_conf_set_dr_msg_cb(pc, dlq_report);
        k->dlq = rd_kafka_new(RD_KAFKA_PRODUCER, pc, errstr, sizeof(errstr));
        if (!k->dlq) {
            HT_LOG_ERROR("ingest:kafka",
                         "kafka: cannot create the dead-letter producer: %s",
                         errstr);
            rd_kafka_conf_destroy(pc);
            rc = HT_ERR_IO;
            goto fail;
        }
    }
    rd_kafka_conf_set_opaque(conf, k);
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    k->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!k->rk) {
        HT_LOG_ERROR("ingest:kafka",
                     "kafka: cannot create the consumer: %s (check -X)",
                     errstr);
        goto fail;
    }
    conf = NULL; /* the consumer's now */
    rd_kafka_poll_set_consumer(k->rk);
    switch (check_topics(k, cfg->until_idle)) {
    case 1:
        rc = HT_ERR_NOTFOUND;
        goto fail;
    case 2:
        if (!(cfg->stop && *cfg->stop)) {
            HT_LOG_ERROR("ingest:kafka",
                         "kafka: no broker of %s answered within %.0f s "
                         "(check --kafka and that the brokers run)",
                         cfg->brokers, cfg->until_idle);
            rc = HT_ERR_IO;
            goto fail;
        }
        k->stopped = true; /* asked to stop: nothing to read */
        *state = k;
        return HT_ERR_OK;
    default:
        break;
    }
    sub = rd_kafka_topic_partition_list_new(k->ntopics);
    for (int i = 0; i < k->ntopics; i++)
        rd_kafka_topic_partition_list_add(sub, k->topics[i],
                                          RD_KAFKA_PARTITION_UA);
    {
        rd_kafka_resp_err_t e = rd_kafka_subscribe(k->rk, sub);

        rd_kafka_topic_partition_list_destroy(sub);
        if (e) {
            HT_LOG_ERROR("ingest:kafka", "kafka: cannot subscribe: %s",
                         rd_kafka_err2str(e));
            rc = HT_ERR_IO;
            goto fail;
        }
    }
    k->start = k->last_msg = k->last_flush = ht_now_mono_us();
    *state = k;
    return HT_ERR_OK;
fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    kafka_close(k);
    return rc;
}

static int kafka_poll(void *state, struct ht_engine *e, int timeout_ms)
{
    struct kc *k = state;
    int64_t now;
    int got = 0;

    k->eng = e;
    if (k->stopped || k->fatal)
        return HT_POLL_END;
    /* up to a slice of messages: the first may wait, the rest are there */
    for (int n = 0; n < 1024 && !ht_engine_full(e); n++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(
            k->rk, n == 0 ? (timeout_ms < 100 ? timeout_ms : 100) : 0);

        if (!m)
            break;
        now = ht_now_mono_us();
        if (m->err) {
            if (handle_error(m))
                k->fatal = true;
        } else {
            if (!k->messages)
                k->first_msg = now;
            handle_message(k, m);
            k->last_msg = k->last_msg_seen = now;
            got++;
        }
        rd_kafka_message_destroy(m);
        if (k->fatal || k->err)
            break;
    }
    if (k->dlq)
        rd_kafka_poll(k->dlq, 0);
    if (k->err)
        return -k->err;
    if (k->fatal)
        return HT_POLL_END;
    now = ht_now_mono_us();
    if (k->cfg.until_idle > 0) {
        int64_t idle_us = (int64_t)(k->cfg.until_idle * 1e6);

        /* counted from the assignment: joining a group takes a while */
        if (k->last_assign && now - k->last_msg > idle_us &&
            now - k->last_assign > idle_us)
            return HT_POLL_END;
        /* a group that never assigns anything (every partition taken):
         * give up after a grace period */
        if (!k->last_assign && now - k->start > idle_us + 60000000)
            return HT_POLL_END;
    }
    /* offsets and data never lag far behind: commit at least every
     * 200 ms while partitions moved */
    for (size_t i = 0; i < k->nparts; i++)
        if (k->parts[i].dirty && now - k->last_ckpt_at > 200000)
            return HT_POLL_FLUSH;
    return got ? HT_POLL_DATA : HT_POLL_IDLE;
}

static int kafka_checkpoint(void *state, struct ht_engine *e)
{
    struct kc *k = state;

    k->eng = e;
    return flush_batch(k);
}

void ht_kafka_stats(void *state, struct ht_kafka_stats *out)
{
    struct kc *k = state;

    flush_dlq(k);
    memset(out, 0, sizeof(*out));
    out->messages = k->messages;
    out->bytes = k->bytes;
    out->dlq_produced = k->dlq_produced;
    /* refused, lost, or still not acknowledged after the flush */
    out->dlq_failed = k->dlq_tried - k->dlq_produced;
    out->fatal = k->fatal;
    out->dlq_topic = k->dlq_topic;
    /* the throughput window ends with the last message's commit, not with
     * the --until-idle wait after it */
    if (k->messages) {
        int64_t tail = k->last_ckpt_at - k->last_msg_seen;

        out->busy_us = ht_now_mono_us() - k->first_msg - (tail > 0 ? tail : 0);
    }
}

const struct ht_source_ops ht_source_kafka = {
    .name = "kafka",
    .opts = ht_kafka_opt_table,
    .cfg_size = sizeof(struct ht_kafka_cfg),
    .open = kafka_open,
    .poll = kafka_poll,
    .checkpoint = kafka_checkpoint,
    .close = kafka_close,
};
