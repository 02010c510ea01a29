/*
 * cmd_trace.c - `hoptrace trace ID`: resolve any id to its request(s) and
 * print them as text, JSON (cli.md) or DOT. Unknown id, or no store yet
 * (also while an ingest is still creating it): exit 1.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "ht_query.h"
#include "ht_store.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* Whether the store at dir is still being created by an ingest that has
 * just started: its data file is missing or holds no committed page yet. */
static bool store_unborn(const char *dir)
{
    char path[4096];
    struct stat st;

    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    return stat(path, &st) != 0 || st.st_size < 8192;
}

/* Open the store read-only. A query that races the store's creation (the
 * file exists, its first commit not yet) waits a moment and tries again,
 * and is answered "no store yet" (HT_ERR_NOTFOUND) if it is still unborn. */
static int open_store(const char *dir, struct ht_store **s)
{
    struct stat st;
    int rc = HT_ERR_NOTFOUND;

    if (stat(dir, &st) != 0)
        return ht_store_open(dir, true, s); /* says why */
    for (int attempt = 0; attempt < 5; attempt++) {
        struct timespec ts = {0, 100 * 1000 * 1000};

        if (!store_unborn(dir)) {
            rc = ht_store_open(dir, true, s);
            /* not found: the creator's first transaction has not landed */
            if (rc != HT_ERR_NOTFOUND)
                return rc;
        }
        nanosleep(&ts, NULL);
    }
    return store_unborn(dir) ? HT_ERR_NOTFOUND : rc;
}

static const char usage[] =
    "usage: hoptrace [--db DIR] trace ID [--format text|json|dot|otlp]\n"
    "\n"
    "Explains one request end to end: its spans, the asynchronous hops\n"
    "between them (via SQS, Kinesis, DynamoDB Streams, async invokes) with\n"
    "their waits and evidence, and the critical path that adds up to its\n"
    "duration. ID is any id the store has seen: API Gateway request id or\n"
    "extended request id, Lambda request id, X-Ray trace id, segment id,\n"
    "correlation id, SQS message id, Kinesis or DynamoDB Streams sequence\n"
    "number. An id shared by a batch returns one entry per request.\n"
    "\n"
    "  --format text   critical-path table and indented timeline (default)\n"
    "  --format json   the JSON contract of docs/cli.md\n"
    "  --format dot    Graphviz: `hoptrace trace ID --format dot | dot -Tsvg`\n"
    "  --format otlp   OTLP/JSON, one ExportTraceServiceRequest line per\n"
    "                  request (one trace id each; `ingest` reads it back)\n"
    "\n"
    "exit status: 0 found, 1 not found (or no store yet), 2 usage error\n";

int ht_cmd_trace(struct ht_cli *cli, int argc, char **argv)
{
    const char *id = NULL, *fmt = "text";
    struct ht_store *s;
    struct ht_result *res;
    struct ht_buf out;
    int rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return HT_EXIT_OK;
        } else if (strcmp(a, "--format") == 0 && i + 1 < argc) {
            fmt = argv[++i];
        } else if (strncmp(a, "--format=", 9) == 0) {
            fmt = a + 9;
        } else if (strcmp(a, "--db") == 0 && i + 1 < argc) {
            cli->db = argv[++i];
        } else if (a[0] == '-' && a[1] == '-') {
            ht_cli_err("trace: unknown option %s (see hoptrace trace --help)",
                       a);
            return HT_EXIT_USAGE;
        } else if (!id) {
            id = a;
        } else {
            ht_cli_err("trace: one ID at a time (got '%s' and '%s')", id, a);
            return HT_EXIT_USAGE;
        }
    }
    if (!id || !*id) {
        ht_cli_err("trace: which request? give an ID (see hoptrace trace "
                   "--help)");
        return HT_EXIT_USAGE;
    }
    if (strcmp(fmt, "text") && strcmp(fmt, "json") && strcmp(fmt, "dot") &&
        strcmp(fmt, "otlp")) {
        ht_cli_err("trace: --format is text, json, dot or otlp, not '%s'", fmt);
        return HT_EXIT_USAGE;
    }
    rc = open_store(cli->db, &s);
    if (rc == HT_ERR_NOTFOUND) {
        ht_cli_err("no store yet at %s: ingest telemetry first (hoptrace "
                   "--db %s ingest FILE...)",
                   cli->db, cli->db);
        return HT_EXIT_NOTFOUND;
    }
    if (rc) {
        ht_cli_err("cannot open the store at %s: %s", cli->db, ht_strerror(rc));
        return HT_EXIT_ERROR;
    }
    rc = ht_query_trace(s, id, &res);
    if (rc == HT_ERR_NOTFOUND) {
        ht_cli_err("no request known for id '%s' in %s", id, cli->db);
        ht_store_close(s);
        return HT_EXIT_NOTFOUND;
    }
    if (rc) {
        ht_cli_err("trace failed: %s", ht_strerror(rc));
        ht_store_close(s);
        return HT_EXIT_ERROR;
    }
    ht_buf_init(&out);
    if (strcmp(fmt, "json") == 0)
        ht_query_json(res, &out);
    else if (strcmp(fmt, "dot") == 0)
        ht_query_dot(res, &out);
    else if (strcmp(fmt, "otlp") == 0)
        ht_query_otlp(res, &out);
    else
        ht_query_text(res, &out);
    fwrite(out.data, 1, out.len, stdout);
    ht_buf_free(&out);
    ht_result_free(res);
    ht_store_close(s);
    return HT_EXIT_OK;
}
