/*
 * ingest_kafka.c - `hoptrace ingest --kafka BROKERS --topic T[,T...]`: the
 * command line of the engine's Kafka source (ingest/src_kafka.c). Parses
 * the options (the source's table and the shared one), runs the source,
 * prints the summary.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "sink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_head[] =
    "usage: hoptrace [--db DIR] ingest --kafka BROKERS --topic T[,T...]\n"
    "         [--group G] [--until-idle SECONDS] [-X key=value ...]\n"
    "         [--dlq-topic T] [OPTIONS]\n"
    "\n"
    "Consumes the topics in consumer group G (default hoptrace). Each\n"
    "message value is any payload `ingest FILE` accepts (X-Ray documents,\n"
    "daemon datagrams, gzip'd CloudWatch Logs subscription messages,\n"
    "PutTraceSegments bodies, ...), sniffed the same way.\n"
    "\n";

static const char usage_tail[] =
    "\n"
    "Consumed offsets are stored in the same write transaction as the data\n"
    "they produced and the consumer seeks to them on every assignment, so a\n"
    "crash at any point, then a restart, loses and doubles nothing. Offsets\n"
    "are committed to Kafka as well, for lag monitoring. Several processes\n"
    "of one group may share one store (--db). SIGINT/SIGTERM: commit and\n"
    "exit 0. Poison messages go to the dead-letter table (hoptrace dlq)\n"
    "with their topic/partition/offset.\n";

int ht_cmd_ingest_kafka(struct ht_cli *cli, int argc, char **argv)
{
    struct ht_kafka_cfg cfg;
    struct ht_kafka_stats st;
    struct ht_ingest_opts o = HT_INGEST_OPTS_INIT, run_o;
    struct ht_engine *e = NULL;
    struct ht_cli_signals sig;
    void *src = NULL;
    int rc, exit_code = HT_EXIT_OK;
    uint64_t rejected;
    bool help;
    struct ht_source_cli opts = {.flag = "--kafka",
                                 .usage_head = usage_head,
                                 .usage_tail = usage_tail,
                                 .table = ht_kafka_opt_table,
                                 .cfg = &cfg};

    memset(&cfg, 0, sizeof(cfg));
    ht_opt_defaults(ht_kafka_opt_table, &cfg);
    exit_code = ht_cli_source_opts(cli, argc, argv, &opts, &o, &help);
    if (exit_code != HT_EXIT_OK || help)
        return exit_code;
    cfg.until_idle = o.until_idle;
    /* a signal while the brokers are reached stops that too */
    cfg.stop = &ht_cli_stopping;
    ht_cli_catch_stop(&sig);
    rc = ht_source_kafka.open(&cfg, &src);
    if (rc) {
        ht_cli_release_stop(&sig);
        return rc == HT_ERR_USAGE ? HT_EXIT_USAGE : HT_EXIT_ERROR;
    }
    if (ht_cli_engine_open(cli, &o, &e) != HT_ERR_OK) {
        ht_source_kafka.close(src);
        ht_cli_release_stop(&sig);
        return HT_EXIT_ERROR;
    }
    ht_cli_stop_engine(e);
    run_o = o;
    run_o.until_idle = 0; /* the source ends itself (from its assignment) */
    rc = ht_engine_run(e, &ht_source_kafka, src, &run_o, 200);
    ht_kafka_stats(src, &st);
    /* leaving the group commits the revoked partitions into the engine */
    ht_source_kafka.close(src);
    {
        int src_rc = ht_engine_sync(e);

        if (!rc)
            rc = src_rc;
    }
    ht_cli_release_stop(&sig);
    if (!o.quiet) {
        char from[128];

        snprintf(from, sizeof(from), "%llu Kafka messages (%.1f MB)",
                 (unsigned long long)st.messages, (double)st.bytes / 1e6);
        ht_cli_engine_settle(e);
        ht_sink_summary(e, stderr, from);
        if (st.dlq_topic)
            fprintf(stderr, "; produced %llu to %s",
                    (unsigned long long)st.dlq_produced, st.dlq_topic);
        if (st.dlq_failed)
            fprintf(stderr, " (%llu not: the dead-letter table has them)",
                    (unsigned long long)st.dlq_failed);
        if (st.busy_us > 0)
            fprintf(stderr, "; %.0f messages/s, %.1f MB/s",
                    (double)st.messages * 1e6 / (double)st.busy_us,
                    (double)st.bytes / (double)st.busy_us);
        fputc('\n', stderr);
    }
    rejected = ht_engine_rejected(e);
    {
        int crc = ht_cli_engine_close(e);

        if (!rc)
            rc = crc;
    }
    if (rc) {
        ht_cli_err("ingest stopped: %s (what was committed stays; run the "
                   "same command again to resume)",
                   ht_strerror(rc));
        exit_code = HT_EXIT_ERROR;
    } else if (st.fatal) {
        exit_code = HT_EXIT_ERROR;
    } else if (o.strict && rejected) {
        exit_code = HT_EXIT_REJECTED;
    }
    return exit_code;
}
