/*
 * cmd_metrics.c - `hoptrace metrics`: the store and every stage in the
 * Prometheus text exposition format (version 0.0.4), for the node
 * exporter's textfile collector or any scraper, so Prometheus can alert
 * with its own rules. Metric names are listed in docs/cli.md.
 *
 * Owned by cli/. The document is query/report.c's (store-wide counts,
 * then query/stalls.c's stage figures; serve's /metrics answers the same
 * bytes); this file parses flags and writes the file atomically with
 * --output.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "ht_engine.h"
#include "ht_query.h"
#include "ht_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: hoptrace [--db DIR] metrics [--now TIME] [--threshold DURATION]\n"
    "                [--config FILE] [--output FILE]\n"
    "\n"
    "Prints the Prometheus text exposition format: per stage (producer,\n"
    "via, resource, consumer) pending items, the oldest one's age, entered\n"
    "and consumed counters, delay quantiles, status and the consumer's\n"
    "REPORT totals; store-wide spans, invocations, pending hops, traces\n"
    "not yet in the request summaries and rejected payloads by reason.\n"
    "Names: docs/cli.md, \"metrics\". Opens the store read-only.\n"
    "\n"
    "  --now, --threshold, --config   as for hoptrace stalls\n"
    "  --output FILE   write FILE atomically (for the node exporter's\n"
    "                  textfile collector) instead of stdout\n";

int ht_cmd_metrics(struct ht_cli *cli, int argc, char **argv)
{
    struct ht_stall_cfg cfg = {.threshold_us = 300000000LL, .max_stuck = 0};
    const char *config = NULL, *output = NULL;
    int64_t now = ht_now_wall_us(), thr = -1;
    struct ht_store *s;
    struct ht_buf out;
    int rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return HT_EXIT_OK;
        }
        if (!v) {
            ht_cli_err("metrics: %s needs a value (see hoptrace metrics "
                       "--help)",
                       a);
            return HT_EXIT_USAGE;
        }
        i++;
        if (strcmp(a, "--db") == 0) {
            cli->db = v;
        } else if (strcmp(a, "--now") == 0) {
            if (!ht_parse_time(v, &now)) {
                ht_cli_err("metrics: --now takes epoch seconds or RFC 3339");
                return HT_EXIT_USAGE;
            }
        } else if (strcmp(a, "--threshold") == 0) {
            if (ht_parse_duration(v, &thr)) {
                ht_cli_err("metrics: --threshold takes a duration like 300s");
                return HT_EXIT_USAGE;
            }
        } else if (strcmp(a, "--config") == 0) {
            config = v;
        } else if (strcmp(a, "--output") == 0) {
            output = v;
        } else {
            ht_cli_err("metrics: unknown option %s (see hoptrace metrics "
                       "--help)",
                       a);
            return HT_EXIT_USAGE;
        }
    }
    if (config && ht_cli_load_stage_config(config, &cfg))
        return HT_EXIT_USAGE;
    if (thr >= 0)
        cfg.threshold_us = thr;
    rc = ht_store_open(cli->db, true, &s);
    if (rc) {
        ht_cli_free_stage_config(&cfg);
        if (rc == HT_ERR_NOTFOUND) {
            ht_cli_err("no store at %s: ingest telemetry first", cli->db);
            return HT_EXIT_NOTFOUND;
        }
        ht_cli_err("cannot open the store at %s: %s", cli->db, ht_strerror(rc));
        return HT_EXIT_ERROR;
    }
    ht_buf_init(&out);
    rc = ht_query_metrics(s, &cfg, now, &out);
    ht_cli_free_stage_config(&cfg);
    ht_store_close(s);
    if (rc) {
        ht_cli_err("metrics: stage evaluation failed: %s", ht_strerror(rc));
        ht_buf_free(&out);
        return HT_EXIT_ERROR;
    }
    if (output) {
        char *tmp = NULL;
        FILE *f;

        if (asprintf(&tmp, "%s.tmp.%ld", output, (long)getpid()) < 0)
            tmp = NULL;
        bool ok;

        f = tmp ? fopen(tmp, "w") : NULL;
        ok = f && fwrite(out.data, 1, out.len, f) == out.len;
        if (f && fclose(f) != 0)
            ok = false;
        if (!ok || rename(tmp, output) != 0) {
            ht_cli_err("metrics: cannot write %s: check the folder exists "
                       "and is writable",
                       output);
            if (tmp)
                unlink(tmp);
            free(tmp);
            ht_buf_free(&out);
            return HT_EXIT_ERROR;
        }
        free(tmp);
    } else {
        fwrite(out.data, 1, out.len, stdout);
    }
    ht_buf_free(&out);
    return HT_EXIT_OK;
}
