/*
 * ingest_otlp.c - `hoptrace ingest --otlp [HOST:PORT]`: the command line of
 * the engine's OTLP/HTTP source (ingest/src_otlp.c). Parses the options
 * (the source's table and the shared one), runs the source, prints the
 * listening address and the summary.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "sink.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_head[] =
    "usage: hoptrace [--db DIR] ingest --otlp [HOST:PORT] [--max-body BYTES]\n"
    "         [--until-idle SECONDS] [OPTIONS]\n"
    "\n"
    "Receives OpenTelemetry traces over OTLP/HTTP (default 127.0.0.1:4318,\n"
    "so OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 points SDKs and\n"
    "collectors straight at hoptrace): POST /v1/traces with Content-Type\n"
    "application/json or application/x-protobuf, gzip bodies accepted.\n"
    "Each export is answered once it is committed to the store (200 means\n"
    "stored; 400 undecodable, 413 too large, 415 other content types).\n"
    "Port 0 picks a free port; the address is printed on stderr.\n"
    "\n";

static const char usage_tail[] =
    "\n"
    "SIGINT/SIGTERM: commit and exit 0. Nothing to resume: what was\n"
    "answered 200 is stored, anything else is the sender's to retry. The\n"
    "summary counts requests, exports accepted, spans and rejected spans\n"
    "(see hoptrace stats / dlq).\n";

static struct ht_engine *running;

static void on_signal(int sig)
{
    (void)sig;
    if (running)
        ht_engine_request_stop(running);
}

int ht_cmd_ingest_otlp(struct ht_cli *cli, int argc, char **argv)
{
    struct ht_otlp_cfg cfg;
    struct ht_otlp_stats st;
    struct ht_ingest_opts o = HT_INGEST_OPTS_INIT;
    struct ht_engine *e = NULL;
    struct sigaction sa, old_int, old_term;
    void *src = NULL;
    int rc, exit_code = HT_EXIT_OK;
    char err[200];

    memset(&cfg, 0, sizeof(cfg));
    ht_opt_defaults(ht_otlp_opt_table, &cfg);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int taken = ht_ingest_opt(cli, argc, argv, &i, &o);

        if (taken < 0)
            return HT_EXIT_USAGE;
        if (taken > 0)
            continue;
        taken = ht_opt_take(ht_otlp_opt_table, &cfg, argc, argv, &i, err,
                            sizeof(err));
        if (taken < 0) {
            ht_cli_err("ingest --otlp: %s", err);
            return HT_EXIT_USAGE;
        }
        if (taken > 0)
            continue;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_head, stdout);
            ht_opt_help(ht_otlp_opt_table, stdout);
            ht_ingest_opts_help(stdout);
            fputs(usage_tail, stdout);
            return HT_EXIT_OK;
        } else if (strcmp(a, "--otlp") == 0) {
            /* its address is optional */
            if (i + 1 < argc && argv[i + 1][0] != '-')
                cfg.listen = argv[++i];
        } else {
            ht_cli_err("ingest --otlp: unknown or incomplete option %s (see "
                       "hoptrace ingest --otlp --help)",
                       a);
            return HT_EXIT_USAGE;
        }
    }
    rc = ht_source_otlp.open(&cfg, &src);
    if (rc)
        return rc == HT_ERR_USAGE ? HT_EXIT_USAGE : HT_EXIT_ERROR;
    if (ht_cli_engine_open(cli, &o, &e) != HT_ERR_OK) {
        ht_source_otlp.close(src);
        return HT_EXIT_ERROR;
    }
    running = e;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: poll returns EINTR */
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    ht_otlp_stats(src, &st);
    fprintf(stderr, "hoptrace: listening on http://%s/v1/traces (OTLP)\n",
            st.where);
    fflush(stderr);
    rc = ht_engine_run(e, &ht_source_otlp, src, &o, 50);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    running = NULL;
    ht_otlp_stats(src, &st);
    if (!o.quiet) {
        char from[128];

        snprintf(from, sizeof(from), "otlp http://%s", st.where);
        ht_sink_summary(e, stderr, from);
        fprintf(stderr,
                "; requests %llu, exports accepted %llu (partial %llu), "
                "spans %llu, spans rejected %llu, bad %llu, too large %llu, "
                "unsupported %llu",
                (unsigned long long)st.requests,
                (unsigned long long)st.accepted, (unsigned long long)st.partial,
                (unsigned long long)st.spans,
                (unsigned long long)st.rejected_spans,
                (unsigned long long)st.bad, (unsigned long long)st.too_large,
                (unsigned long long)st.unsupported);
        fputc('\n', stderr);
    }
    {
        int crc = ht_cli_engine_close(e);

        if (!rc)
            rc = crc;
    }
    /* after the engine: answers still waiting are failed (503) */
    ht_source_otlp.close(src);
    if (rc) {
        ht_cli_err("ingest stopped: %s (what was committed stays)",
                   ht_strerror(rc));
        exit_code = HT_EXIT_ERROR;
    } else if (o.strict && (st.rejected_spans || st.bad)) {
        exit_code = HT_EXIT_REJECTED;
    }
    return exit_code;
}
