/*
 * mock_cluster.c - Kafka test helper around librdkafka's mock cluster
 * (rdkafka_mock.h): a real Kafka protocol peer on loopback, driven by the
 * Python end-to-end tests, which have no Kafka client of their own.
 *
 *   mock_cluster serve [BROKERS]
 *       starts a mock cluster, prints "bootstrap HOST:PORT,..." and then
 *       reads commands on stdin, answering "ok" or "error ...":
 *         topic NAME PARTITIONS    create a topic
 *         down ID | up ID          take broker ID (1..BROKERS) down / up
 *         quit                     (or end of input) stop
 *   mock_cluster produce BOOTSTRAP TOPIC PARTITIONS FILE
 *       produces FILE's records (4-byte big-endian length, then the
 *       bytes), record i to partition i % PARTITIONS; prints "produced N"
 *   mock_cluster consume BOOTSTRAP TOPIC SECONDS
 *       reads TOPIC's partition 0 from the beginning to its end (the
 *       high watermark when the fetch reaches it), waiting at most
 *       SECONDS for that, and prints "consumed N", then one line per
 *       message: its headers; exit 1 if the end was not reached
 */
#define _GNU_SOURCE
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static rd_kafka_conf_t *conf_with(const char *bootstrap)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char err[256];

    if (bootstrap && rd_kafka_conf_set(c, "bootstrap.servers", bootstrap, err,
                                       sizeof(err)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "mock_cluster: %s\n", err);
        exit(2);
    }
    rd_kafka_conf_set(c, "log_level", "3", err, sizeof(err));
    return c;
}

static int serve(int nbrokers)
{
    char err[256], line[512];
    rd_kafka_t *rk =
        rd_kafka_new(RD_KAFKA_PRODUCER, conf_with(NULL), err, sizeof(err));
    rd_kafka_mock_cluster_t *mc;

    if (!rk) {
        fprintf(stderr, "mock_cluster: %s\n", err);
        return 1;
    }
    mc = rd_kafka_mock_cluster_new(rk, nbrokers);
    if (!mc) {
        fprintf(stderr, "mock_cluster: cannot create the mock cluster\n");
        return 1;
    }
    printf("bootstrap %s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);
    while (fgets(line, sizeof(line), stdin)) {
        char name[256];
        int n = 0;
        rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;

        if (sscanf(line, "topic %255s %d", name, &n) == 2)
            e = rd_kafka_mock_topic_create(mc, name, n, 1);
        else if (sscanf(line, "down %d", &n) == 1)
            e = rd_kafka_mock_broker_set_down(mc, n);
        else if (sscanf(line, "up %d", &n) == 1)
            e = rd_kafka_mock_broker_set_up(mc, n);
        else if (strncmp(line, "quit", 4) == 0)
            break;
        else {
            printf("error unknown command\n");
            fflush(stdout);
            continue;
        }
        if (e)
            printf("error %s\n", rd_kafka_err2str(e));
        else
            printf("ok\n");
        fflush(stdout);
    }
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}

static int delivery_errors;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque)
{
    (void)rk;
    (void)opaque;
    if (m->err) {
        delivery_errors++;
        fprintf(stderr, "mock_cluster: delivery failed: %s\n",
                rd_kafka_err2str(m->err));
    }
}

static int produce(const char *bootstrap, const char *topic, int nparts,
                   const char *path)
{
    char err[256];
    rd_kafka_conf_t *c = conf_with(bootstrap);
    rd_kafka_t *rk;
    FILE *f = fopen(path, "rb");
    unsigned char hdr[4];
    long count = 0;
    char *buf = NULL;

    if (!f) {
        perror(path);
        return 2;
    }
    rd_kafka_conf_set(c, "linger.ms", "5", err, sizeof(err));
    rd_kafka_conf_set_dr_msg_cb(c, on_delivery);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "mock_cluster: %s\n", err);
        return 1;
    }
    while (fread(hdr, 1, 4, f) == 4) {
        size_t n = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 |
                   (size_t)hdr[2] << 8 | hdr[3];
        rd_kafka_resp_err_t e;

        buf = realloc(buf, n ? n : 1);
        if (!buf || fread(buf, 1, n, f) != n) {
            fprintf(stderr, "mock_cluster: %s: truncated record\n", path);
            return 2;
        }
        do {
            e = rd_kafka_producev(
                rk, RD_KAFKA_V_TOPIC(topic),
                RD_KAFKA_V_PARTITION((int32_t)(count % nparts)),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_VALUE(buf, n), RD_KAFKA_V_END);
            if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(rk, 50);
        } while (e == RD_KAFKA_RESP_ERR__QUEUE_FULL);
        if (e) {
            fprintf(stderr, "mock_cluster: produce: %s\n", rd_kafka_err2str(e));
            return 1;
        }
        count++;
        rd_kafka_poll(rk, 0);
    }
    free(buf);
    fclose(f);
    if (rd_kafka_flush(rk, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "mock_cluster: flush timed out\n");
        return 1;
    }
    rd_kafka_destroy(rk);
    if (delivery_errors)
        return 1;
    printf("produced %ld\n", count);
    return 0;
}

static double mono_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* To the partition's end, not "until nothing came for a while": a reader
 * that is slow to start (a loaded machine, a sanitizer build) would take
 * a late first fetch for an empty topic. */
static int consume(const char *bootstrap, const char *topic, double limit)
{
    char err[256];
    rd_kafka_conf_t *c = conf_with(bootstrap);
    rd_kafka_t *rk;
    rd_kafka_topic_partition_list_t *sub;
    long count = 0;
    int at_end = 0;
    char *lines = NULL;
    size_t lines_len = 0;
    FILE *mem = open_memstream(&lines, &lines_len);
    double deadline = mono_s() + limit;

    rd_kafka_conf_set(c, "group.id", "mock-cluster-reader", err, sizeof(err));
    rd_kafka_conf_set(c, "enable.partition.eof", "true", err, sizeof(err));
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "mock_cluster: %s\n", err);
        return 1;
    }
    rd_kafka_poll_set_consumer(rk);
    /* partition 0 from the start, no group join (that takes seconds) */
    sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, topic, 0)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    while (!at_end && mono_s() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        rd_kafka_headers_t *h = NULL;

        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            at_end = 1;
        } else if (!m->err) {
            count++;
            if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR) {
                const char *name;
                const void *v;
                size_t vn;

                for (size_t i = 0;
                     !rd_kafka_header_get_all(h, i, &name, &v, &vn); i++)
                    fprintf(mem, "%s%s=%.*s", i ? " " : "", name, (int)vn,
                            (const char *)v);
            }
            fputc('\n', mem);
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_assign(rk, NULL);
    rd_kafka_destroy(rk);
    fclose(mem);
    if (!at_end)
        fprintf(stderr, "mock_cluster: %s/0: no end of partition within %g s\n",
                topic, limit);
    printf("consumed %ld\n%s", count, lines ? lines : "");
    free(lines);
    return at_end ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "serve") == 0)
        return serve(argc > 2 ? atoi(argv[2]) : 3);
    if (argc == 6 && strcmp(argv[1], "produce") == 0 && atoi(argv[4]) > 0)
        return produce(argv[2], argv[3], atoi(argv[4]), argv[5]);
    if (argc == 5 && strcmp(argv[1], "consume") == 0)
        return consume(argv[2], argv[3], atof(argv[4]));
    fprintf(stderr,
            "usage: mock_cluster serve [BROKERS] | produce BOOTSTRAP "
            "TOPIC PARTITIONS FILE | consume BOOTSTRAP TOPIC SECONDS\n");
    return 2;
}
