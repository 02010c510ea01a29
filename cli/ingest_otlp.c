/*
 * ingest_otlp.c - `hoptrace ingest --otlp [HOST:PORT]`: the command line of
 * the engine's OTLP/HTTP source (ingest/src_otlp.c). Parses the options
 * (the source's table and the shared one), runs the source, prints the
 * listening address and the summary.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "sink.h"

#include <stdio.h>
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

static void otlp_where(void *src, bool listening, char *buf, size_t n)
{
    struct ht_otlp_stats st;

    ht_otlp_stats(src, &st);
    if (listening)
        snprintf(buf, n, "http://%s/v1/traces (OTLP)", st.where);
    else
        snprintf(buf, n, "otlp http://%s", st.where);
}

static void otlp_counts(void *src, const void *cfg, FILE *f, bool *rejected)
{
    struct ht_otlp_stats st;

    (void)cfg;
    ht_otlp_stats(src, &st);
    *rejected = st.rejected_spans || st.bad;
    if (!f)
        return;
    fprintf(f,
            "; requests %llu, exports accepted %llu (partial %llu), "
            "spans %llu, spans rejected %llu, bad %llu, too large %llu, "
            "unsupported %llu",
            (unsigned long long)st.requests, (unsigned long long)st.accepted,
            (unsigned long long)st.partial, (unsigned long long)st.spans,
            (unsigned long long)st.rejected_spans, (unsigned long long)st.bad,
            (unsigned long long)st.too_large,
            (unsigned long long)st.unsupported);
}

int ht_cmd_ingest_otlp(struct ht_cli *cli, int argc, char **argv)
{
    struct ht_otlp_cfg cfg;
    struct ht_push_cmd c = {.opts = {.flag = "--otlp",
                                     .usage_head = usage_head,
                                     .usage_tail = usage_tail,
                                     .table = ht_otlp_opt_table,
                                     .cfg = &cfg,
                                     .listen = &cfg.listen},
                            .ops = &ht_source_otlp,
                            .where = otlp_where,
                            .counts = otlp_counts};

    memset(&cfg, 0, sizeof(cfg));
    ht_opt_defaults(ht_otlp_opt_table, &cfg);
    return ht_cli_ingest_push(cli, argc, argv, &c);
}
