/*
 * main.c - the hoptrace command: global options (--db, --help, --version,
 * --verbose) and dispatch to the commands. Results go to stdout, progress
 * and summaries to stderr, exit codes per cli.md.
 */
#define _GNU_SOURCE
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef HT_VERSION
#define HT_VERSION "0.0.0"
#endif

static const char usage[] =
    "usage: hoptrace [--db DIR] [--verbose] COMMAND [ARGS]\n"
    "\n"
    "Assembles end-to-end request paths through serverless pipelines from\n"
    "AWS X-Ray segment documents and Lambda / API Gateway logs.\n"
    "\n"
    "commands:\n"
    "  ingest PATH|- ...     read files, folders or stdin into the store\n"
    "  ingest --kinesis STREAM   read a Kinesis Data Stream, checkpointed\n"
    "  trace ID              explain one request: critical path, hops, DOT\n"
    "  stats                 what the store holds; rejected input by reason\n"
    "  dlq                   list rejected payloads kept in the dead-letter "
    "table\n"
    "  simulate --requests N --out DIR   write a demo / benchmark corpus\n"
    "  stalls                stalled or lagging pipeline stages; alerts "
    "(exit 4: stalled)\n"
    "  metrics               stages and store in the Prometheus text "
    "format\n"
    "  endpoints             latency per route: sync and end-to-end "
    "percentiles\n"
    "  hotspots ROUTE        where a route's tail latency goes (critical "
    "paths)\n"
    "  functions             invocations, cold starts, memory and cost per "
    "function\n"
    "  refresh               bring the summaries behind endpoints up to "
    "date\n"
    "  prune --before TIME   remove the requests that ended before TIME\n"
    "\n"
    "global options:\n"
    "  --db DIR     the store (default: $HOPTRACE_DB, else ./hoptrace.db)\n"
    "  --verbose    more log lines on stderr (repeat for debug)\n"
    "  --help       this text; `hoptrace COMMAND --help` for a command\n"
    "  --version    print the version\n";

void ht_cli_err(const char *fmt, ...)
{
    va_list ap;

    fputs("hoptrace: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int main(int argc, char **argv)
{
    struct ht_cli cli = {0};
    int i = 1;

    cli.db = getenv("HOPTRACE_DB");
    if (!cli.db || !*cli.db)
        cli.db = "./hoptrace.db";
    while (i < argc && argv[i][0] == '-') {
        const char *a = argv[i];

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return HT_EXIT_OK;
        } else if (strcmp(a, "--version") == 0) {
            printf("hoptrace %s\n", HT_VERSION);
            return HT_EXIT_OK;
        } else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
            ht_log_level++;
        } else if (strcmp(a, "--db") == 0 && i + 1 < argc) {
            cli.db = argv[++i];
        } else if (strncmp(a, "--db=", 5) == 0) {
            cli.db = a + 5;
        } else {
            ht_cli_err("unknown option %s (see hoptrace --help)", a);
            return HT_EXIT_USAGE;
        }
        i++;
    }
    if (i >= argc) {
        fputs(usage, stderr);
        return HT_EXIT_USAGE;
    }
    const char *cmd = argv[i];
    int cargc = argc - i;
    char **cargv = argv + i;

    if (strcmp(cmd, "ingest") == 0)
        return ht_cmd_ingest(&cli, cargc, cargv);
    if (strcmp(cmd, "trace") == 0)
        return ht_cmd_trace(&cli, cargc, cargv);
    if (strcmp(cmd, "stats") == 0)
        return ht_cmd_stats(&cli, cargc, cargv);
    if (strcmp(cmd, "dlq") == 0)
        return ht_cmd_dlq(&cli, cargc, cargv);
    if (strcmp(cmd, "simulate") == 0)
        return ht_cmd_simulate(&cli, cargc, cargv);
    if (strcmp(cmd, "stalls") == 0)
        return ht_cmd_stalls(&cli, cargc, cargv);
    if (strcmp(cmd, "metrics") == 0)
        return ht_cmd_metrics(&cli, cargc, cargv);
    if (strcmp(cmd, "endpoints") == 0)
        return ht_cmd_endpoints(&cli, cargc, cargv);
    if (strcmp(cmd, "hotspots") == 0)
        return ht_cmd_hotspots(&cli, cargc, cargv);
    if (strcmp(cmd, "functions") == 0)
        return ht_cmd_functions(&cli, cargc, cargv);
    if (strcmp(cmd, "refresh") == 0)
        return ht_cmd_refresh(&cli, cargc, cargv);
    if (strcmp(cmd, "prune") == 0)
        return ht_cmd_prune(&cli, cargc, cargv);
    if (strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return HT_EXIT_OK;
    }
    ht_cli_err("unknown command '%s' (commands: ingest, trace, stats, dlq; "
               "see hoptrace --help)",
               cmd);
    return HT_EXIT_USAGE;
}
