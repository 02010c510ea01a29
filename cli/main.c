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
    "  ingest --kafka BROKERS --topic T   consume Kafka topics (a consumer\n"
    "                        group; offsets checkpointed in the store)\n"
    "  ingest --kinesis STREAM   read a Kinesis Data Stream, checkpointed\n"
    "  ingest --udp [HOST:PORT]  listen as an X-Ray daemon (default\n"
    "                        127.0.0.1:2000)\n"
    "  ingest --otlp [HOST:PORT]  receive OpenTelemetry over OTLP/HTTP\n"
    "                        (default 127.0.0.1:4318)\n"
    "                        every ingest takes --batch N, --strict, --quiet\n"
    "                        and --durable (flush every commit to disk)\n"
    "  trace ID              explain one request: critical path, hops; as\n"
    "                        text, JSON, DOT, Jaeger or OTLP\n"
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
    "  serve                 HTTP: JSON API, Jaeger API, web view, /metrics\n"
    "                        (default http://127.0.0.1:8418/)\n"
    "  help                  this text\n"
    "\n"
    "global options:\n"
    "  --db DIR     the store (default: $HOPTRACE_DB, else ./hoptrace.db)\n"
    "  -v, --verbose  more log lines on stderr (repeat for debug: -vv)\n"
    "  --help       this text; `hoptrace COMMAND --help` for a command\n"
    "  --version    print the version\n";

/* Every command, in the order --help lists them: dispatch and the
 * unknown-command message both read this table, so they cannot drift. */
#define HT_COMMANDS(X)                                                         \
    X("ingest", ht_cmd_ingest)                                                 \
    X("trace", ht_cmd_trace)                                                   \
    X("stats", ht_cmd_stats)                                                   \
    X("dlq", ht_cmd_dlq)                                                       \
    X("simulate", ht_cmd_simulate)                                             \
    X("stalls", ht_cmd_stalls)                                                 \
    X("metrics", ht_cmd_metrics)                                               \
    X("endpoints", ht_cmd_endpoints)                                           \
    X("hotspots", ht_cmd_hotspots)                                             \
    X("functions", ht_cmd_functions)                                           \
    X("refresh", ht_cmd_refresh)                                               \
    X("prune", ht_cmd_prune)                                                   \
    X("serve", ht_cmd_serve)

struct command {
    const char *name;
    int (*run)(struct ht_cli *cli, int argc, char **argv);
};

#define HT_CMD_ENTRY(n, f) {n, f},
static const struct command commands[] = {HT_COMMANDS(HT_CMD_ENTRY)};
#undef HT_CMD_ENTRY

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

/* "-v", "-vv", "-vvv": the number of v's, or 0 when `a` is not that. */
static int verbose_count(const char *a)
{
    size_t n;

    if (strcmp(a, "--verbose") == 0)
        return 1;
    if (a[0] != '-' || a[1] != 'v')
        return 0;
    n = strspn(a + 1, "v");
    return a[1 + n] == 0 ? (int)n : 0;
}

void ht_cli_err(const char *fmt, ...)
{
    va_list ap;

    fputs("hoptrace: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

char **ht_cli_argv;

int main(int argc, char **argv)
{
    struct ht_cli cli = {0};
    int i = 1, nv;

    ht_cli_argv = argv;
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
        } else if ((nv = verbose_count(a)) > 0) {
            ht_log_level += nv;
        } else if (strcmp(a, "--db") == 0) {
            if (i + 1 >= argc || !*argv[i + 1]) {
                ht_cli_err("--db needs a value: the store directory (e.g. "
                           "hoptrace --db ./hoptrace.db stats)");
                return HT_EXIT_USAGE;
            }
            cli.db = argv[++i];
        } else if (strncmp(a, "--db=", 5) == 0) {
            if (!a[5]) {
                ht_cli_err("--db needs a value: the store directory (e.g. "
                           "hoptrace --db=./hoptrace.db stats)");
                return HT_EXIT_USAGE;
            }
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

    for (size_t c = 0; c < NCOMMANDS; c++)
        if (strcmp(cmd, commands[c].name) == 0)
            return commands[c].run(&cli, cargc, cargv);
    if (strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return HT_EXIT_OK;
    }
    {
        char list[256];
        size_t n = 0;

        for (size_t c = 0; c < NCOMMANDS && n < sizeof(list); c++)
            n += (size_t)snprintf(list + n, sizeof(list) - n, "%s, ",
                                  commands[c].name);
        if (n < sizeof(list))
            snprintf(list + n, sizeof(list) - n, "help");
        ht_cli_err("unknown command '%s' (commands: %s; see hoptrace --help)",
                   cmd, list);
    }
    return HT_EXIT_USAGE;
}
