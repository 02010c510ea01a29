/*
 * cmd_ingest.c - `hoptrace ingest`: files, folders (walked) and stdin into
 * the store. Parses the command line, runs the engine's file source
 * (ingest/src_file.c) and prints the outcome; the reading, batching and
 * checkpointing are the engine's (ingest/ht_engine.h). --kafka, --kinesis
 * and --udp hand over to their own front ends.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "sink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage_head[] =
    "usage: hoptrace [--db DIR] ingest [OPTIONS] PATH|- ...\n"
    "\n"
    "Reads X-Ray segment documents and Lambda / API Gateway logs from\n"
    "files (.json, .ndjson, .jsonl, any of them gzip'd), folders (walked;\n"
    "FIFOs, sockets, devices and symlink loops in them are skipped with a\n"
    "warning) or stdin (-). Document kinds are sniffed: X-Ray segments and\n"
    "daemon datagrams, PutTraceSegments bodies, BatchGetTraces responses,\n"
    "CloudWatch Logs subscription messages, awslogs events,\n"
    "filter-log-events output, Kinesis GetRecords responses and Lambda\n"
    "Kinesis events. Ingesting the same input twice changes nothing.\n"
    "\n"
    "Options (every source takes them):\n";

static const char usage_tail[] =
    "\n"
    "Rejected payloads are counted by reason and kept in the dead-letter\n"
    "table: see `hoptrace stats` and `hoptrace dlq`. A gzip file that ends\n"
    "early is rejected as `truncated` and read again next time.\n"
    "\n"
    "  --kinesis STREAM [--endpoint URL] [--region R] [--until-idle S]\n"
    "               read a Kinesis Data Stream instead of files (all its\n"
    "               options: hoptrace ingest --kinesis X --help)\n"
    "  --kafka BROKERS --topic T[,T...] [--group G] [--until-idle S]\n"
    "        [-X key=value ...] [--dlq-topic T]\n"
    "               consume Kafka topics in a consumer group, offsets\n"
    "               stored with the data (hoptrace ingest --kafka --help)\n"
    "  --udp [HOST:PORT] [--forward HOST:PORT] [--until-idle S]\n"
    "               listen for X-Ray daemon datagrams, default\n"
    "               127.0.0.1:2000 (hoptrace ingest --udp --help)\n"
    "  --otlp [HOST:PORT] [--max-body BYTES] [--until-idle S]\n"
    "               receive OpenTelemetry traces over OTLP/HTTP (JSON or\n"
    "               protobuf), default 127.0.0.1:4318 (hoptrace ingest\n"
    "               --otlp --help)\n"
    "\n"
    "stdin (-) is streamed: it is committed whenever the input pauses, so\n"
    "`tail -f FILE | hoptrace ingest -` works; a torn line costs that line\n"
    "only.\n";

struct progress {
    bool on;
    int64_t last;
};

static void show_progress(void *ctx, const struct ht_files_progress *f)
{
    struct progress *p = ctx;
    int64_t now = ht_now_mono_us();
    char which[96] = "";

    if (!p->on || now - p->last < 250000)
        return;
    p->last = now;
    /* files are read a few at a time, interleaved: all of them are named */
    if (f->reading > 1)
        snprintf(which, sizeof(which), " and %zu more (files %zu-%zu of %zu)",
                 f->reading - 1, f->file, f->last, f->files);
    else if (f->files > 1)
        snprintf(which, sizeof(which), " (file %zu of %zu)", f->file, f->files);
    if (f->total && f->done <= f->total)
        fprintf(stderr,
                "\r\033[Kingesting %s%s: %.1f of %.1f MB (%d%%), "
                "%llu documents",
                f->name, which, (double)f->done / 1e6, (double)f->total / 1e6,
                (int)(f->done * 100 / f->total),
                (unsigned long long)f->documents);
    else
        fprintf(stderr, "\r\033[Kingesting %s%s: %.1f MB, %llu documents",
                f->name, which, (double)f->done / 1e6,
                (unsigned long long)f->documents);
    fflush(stderr);
}

int ht_cmd_ingest(struct ht_cli *cli, int argc, char **argv)
{
    struct ht_ingest_opts o = HT_INGEST_OPTS_INIT;
    struct ht_files_cfg cfg;
    struct ht_files_stats st;
    struct progress prog = {0};
    struct ht_engine *e = NULL;
    struct ht_cli_signals sig;
    void *src = NULL;
    char **paths;
    size_t npaths = 0;
    int rc, i;
    uint64_t rejected;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--kafka") == 0)
            return ht_cmd_ingest_kafka(cli, argc, argv);
        if (strcmp(argv[i], "--kinesis") == 0)
            return ht_cmd_ingest_kinesis(cli, argc, argv);
        if (strcmp(argv[i], "--udp") == 0)
            return ht_cmd_ingest_udp(cli, argc, argv);
        if (strcmp(argv[i], "--otlp") == 0)
            return ht_cmd_ingest_otlp(cli, argc, argv);
    }
    paths = calloc((size_t)argc, sizeof(*paths));
    HT_ASSERT(paths);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        int taken = ht_ingest_opt(cli, argc, argv, &i, &o);

        if (taken < 0)
            goto usage_error;
        if (taken > 0)
            continue;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_head, stdout);
            ht_ingest_opts_help(stdout);
            fputs(usage_tail, stdout);
            free(paths);
            return HT_EXIT_OK;
        } else if (strcmp(a, "-") == 0 || a[0] != '-') {
            paths[npaths++] = argv[i];
        } else {
            ht_cli_err("ingest: unknown option %s (see hoptrace ingest "
                       "--help)",
                       a);
            goto usage_error;
        }
    }
    if (o.until_idle > 0) {
        ht_cli_err(
            "ingest: --until-idle is for --kafka, --kinesis, --udp and --otlp; "
            "files and stdin end by themselves");
        goto usage_error;
    }
    if (!npaths) {
        ht_cli_err("ingest: give at least one file, folder or - for stdin "
                   "(see hoptrace ingest --help)");
        goto usage_error;
    }

    /* find what to read before the store is opened: with nothing to read,
     * no store is created */
    memset(&cfg, 0, sizeof(cfg));
    cfg.paths = paths;
    cfg.npaths = npaths;
    prog.on = isatty(2) && !o.quiet;
    cfg.progress = prog.on ? show_progress : NULL;
    cfg.progress_ctx = &prog;
    rc = ht_source_files.open(&cfg, &src);
    if (rc) {
        ht_cli_err("ingest: %s", ht_strerror(rc));
        free(paths);
        return HT_EXIT_ERROR;
    }
    ht_files_stats(src, &st);
    if (st.inputs == 0) {
        if (st.unreadable)
            ht_cli_err("nothing was ingested: the path(s) given could not be "
                       "read (see above); no store was created or changed");
        else if (!o.quiet)
            ht_cli_err("nothing to ingest: no files in the path(s) given; "
                       "no store was created or changed");
        ht_source_files.close(src);
        free(paths);
        return st.unreadable ? HT_EXIT_ERROR : HT_EXIT_OK;
    }
    if (ht_cli_engine_open(cli, &o, &e) != HT_ERR_OK) {
        ht_source_files.close(src);
        free(paths);
        return HT_EXIT_ERROR;
    }
    ht_cli_catch_stop(&sig); /* SIGINT/SIGTERM: commit what was read */
    ht_cli_stop_engine(e);
    rc = ht_engine_run(e, &ht_source_files, src, &o, 200);
    ht_cli_release_stop(&sig);
    if (prog.on)
        fputs("\r\033[K", stderr);
    ht_files_stats(src, &st);
    rejected = ht_engine_rejected(e);
    if (!o.quiet) {
        char from[160];

        snprintf(from, sizeof(from), "%llu file%s",
                 (unsigned long long)st.files, st.files == 1 ? "" : "s");
        if (st.skipped)
            snprintf(from + strlen(from), sizeof(from) - strlen(from),
                     " (%llu already ingested, skipped)",
                     (unsigned long long)st.skipped);
        /* the summaries of what came in (and retention) before the line
         * that tells about them: on a terminal, say what is going on */
        if (prog.on) {
            fputs("finishing: request summaries and retention...", stderr);
            fflush(stderr);
        }
        ht_cli_engine_settle(e);
        if (prog.on)
            fputs("\r\033[K", stderr);
        ht_sink_summary(e, stderr, from);
        fputc('\n', stderr);
    }
    {
        int crc = ht_cli_engine_close(e);

        if (!rc)
            rc = crc;
    }
    ht_source_files.close(src);
    free(paths);
    if (rc) {
        ht_cli_err("ingest stopped: %s (what was committed before stays; "
                   "run the same command again to resume)",
                   ht_strerror(rc));
        return HT_EXIT_ERROR;
    }
    if (st.unreadable) {
        ht_cli_err("%llu path(s) could not be read (see above); the other "
                   "inputs were ingested",
                   (unsigned long long)st.unreadable);
        return HT_EXIT_ERROR;
    }
    if (o.strict && st.skipped_rejected) {
        ht_cli_err("%llu file(s) had %llu rejected payload(s) when they were "
                   "ingested before (see hoptrace dlq); they were not read "
                   "again",
                   (unsigned long long)st.skipped_rejected,
                   (unsigned long long)st.skipped_rejects);
        return HT_EXIT_REJECTED;
    }
    if (o.strict && rejected)
        return HT_EXIT_REJECTED;
    return HT_EXIT_OK;
usage_error:
    free(paths);
    return HT_EXIT_USAGE;
}
