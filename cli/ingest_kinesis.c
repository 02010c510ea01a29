/*
 * ingest_kinesis.c - `hoptrace ingest --kinesis STREAM`: the command line
 * of the engine's Kinesis source (ingest/src_kinesis.c). Parses the
 * options (the source's table and the shared one), runs the source,
 * prints the summary and what to do when the stream refused.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "sink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_head[] =
    "usage: hoptrace [--db DIR] ingest --kinesis STREAM [--endpoint URL]\n"
    "         [--region R] [--until-idle SECONDS]\n"
    "         [--from trim-horizon|latest|timestamp:EPOCH_SECONDS]\n"
    "         [--limit N] [OPTIONS]\n"
    "\n"
    "Reads every shard of a Kinesis Data Stream (ListShards, "
    "GetShardIterator,\n"
    "GetRecords; SigV4-signed) and ingests each record like a file's content\n"
    "(gzip'd CloudWatch Logs subscription messages, X-Ray documents, daemon\n"
    "datagrams, ...); KPL-aggregated records are de-aggregated. The last\n"
    "sequence number of each shard is committed with the data, so a restart\n"
    "resumes after it and loses or doubles nothing. After a reshard, parents\n"
    "are drained before their children are read.\n"
    "\n";

static const char usage_tail[] =
    "\n"
    "Credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and\n"
    "AWS_SESSION_TOKEN, else the shared credentials file\n"
    "($AWS_SHARED_CREDENTIALS_FILE, default ~/.aws/credentials), profile\n"
    "$AWS_PROFILE (default \"default\"). Throttling, expired iterators, 5xx\n"
    "and network errors are retried with jittered exponential back-off: up\n"
    "to 10 times with --until-idle, else until they pass (or a signal).\n"
    "The summary line ends with each shard's MillisBehindLatest.\n";

int ht_cmd_ingest_kinesis(struct ht_cli *cli, int argc, char **argv)
{
    struct ht_kinesis_src_cfg cfg;
    struct ht_kinesis_src_stats st;
    struct ht_ingest_opts o = HT_INGEST_OPTS_INIT, run_o;
    struct ht_engine *e = NULL;
    struct ht_cli_signals sig;
    void *src = NULL;
    int rc, exit_code = HT_EXIT_OK;
    uint64_t rejected;
    bool help;
    struct ht_source_cli opts = {.flag = "--kinesis",
                                 .usage_head = usage_head,
                                 .usage_tail = usage_tail,
                                 .table = ht_kinesis_src_opt_table,
                                 .cfg = &cfg};

    memset(&cfg, 0, sizeof(cfg));
    ht_opt_defaults(ht_kinesis_src_opt_table, &cfg);
    exit_code = ht_cli_source_opts(cli, argc, argv, &opts, &o, &help);
    if (exit_code != HT_EXIT_OK || help)
        return exit_code;
    cfg.until_idle = o.until_idle;
    cfg.stop = &ht_cli_stopping;
    rc = ht_source_kinesis.open(&cfg, &src);
    if (rc)
        return rc == HT_ERR_USAGE ? HT_EXIT_USAGE : HT_EXIT_ERROR;
    if (ht_cli_engine_open(cli, &o, &e) != HT_ERR_OK) {
        ht_source_kinesis.close(src);
        return HT_EXIT_ERROR;
    }
    ht_cli_catch_stop(&sig);
    ht_cli_stop_engine(e);
    run_o = o;
    run_o.until_idle = 0; /* the source ends itself (it knows its lag) */
    rc = ht_engine_run(e, &ht_source_kinesis, src, &run_o, 200);
    ht_cli_release_stop(&sig);
    ht_kinesis_src_stats(src, &st);
    if (!o.quiet) {
        char from[400];
        struct ht_buf tail;

        ht_buf_init(&tail);
        snprintf(from, sizeof(from), "kinesis stream %s (%zu shards)",
                 st.stream, st.nshards);
        ht_cli_engine_settle(e);
        ht_sink_summary(e, stderr, from);
        ht_kinesis_src_describe(src, &tail);
        if (tail.len)
            fputs(tail.data, stderr);
        fputc('\n', stderr);
        ht_buf_free(&tail);
    }
    rejected = ht_engine_rejected(e);
    {
        int crc = ht_cli_engine_close(e);

        if (!rc)
            rc = crc;
    }
    if (st.failed) {
        ht_cli_err("kinesis stream %s: %s (%s); what was read before is "
                   "committed; run the same command again to resume",
                   st.stream, st.error, st.hint);
        exit_code = st.usage ? HT_EXIT_USAGE : HT_EXIT_ERROR;
    } else if (rc) {
        ht_cli_err("ingest stopped: %s (what was committed before stays; "
                   "run the same command again to resume)",
                   ht_strerror(rc));
        exit_code = HT_EXIT_ERROR;
    } else if (o.strict && rejected) {
        exit_code = HT_EXIT_REJECTED;
    }
    ht_source_kinesis.close(src);
    return exit_code;
}
