/*
 * cli.h - shared bits of the hoptrace command-line front end: global
 * options and the command entry points. The front end is thin: parsing
 * flags, calling the libraries, printing. No stitching logic lives here.
 */
#ifndef HT_CLI_H
#define HT_CLI_H

#include "ht_common.h"

#include <stdio.h>

/* Exit codes (cli.md). */
enum {
    HT_EXIT_OK = 0,
    HT_EXIT_NOTFOUND = 1,
    HT_EXIT_USAGE = 2,
    HT_EXIT_REJECTED = 3,
    HT_EXIT_STALLED = 4, /* stalls: a stage is stalled */
    HT_EXIT_ERROR = 5
};

struct ht_cli {
    const char *db; /* store directory */
};

int ht_cmd_ingest(struct ht_cli *cli, int argc, char **argv);
/* Live sources of `ingest` (cli/ingest_kafka.c, ingest_kinesis.c,
 * ingest_udp.c): called with ingest's full argv when it names them. */
int ht_cmd_ingest_kafka(struct ht_cli *cli, int argc, char **argv);
int ht_cmd_ingest_kinesis(struct ht_cli *cli, int argc, char **argv);
int ht_cmd_ingest_udp(struct ht_cli *cli, int argc, char **argv);
/* What a live source's command knows of its options (ht_cli_source_opts,
 * cli/sink.c). */
struct ht_opt;
struct ht_source_ops;
struct ht_ingest_opts;
struct ht_source_cli {
    const char *flag; /* "--kafka", "--udp", ... */
    const char *usage_head, *usage_tail;
    const struct ht_opt *table; /* the source's options */
    void *cfg;                  /* the source's configuration, defaults set */
    /* a source senders push to: its address field in cfg, which the flag
     * takes when an address follows it (NULL: the flag is in the table) */
    const char **listen;
};
/* Ingest's argv for a live source: --help anywhere prints the usage, the
 * source's options and the shared ones (*help set); else the shared
 * options go into *o and the source's into c->cfg. HT_EXIT_OK, or
 * HT_EXIT_USAGE once it has said what is wrong. */
int ht_cli_source_opts(struct ht_cli *cli, int argc, char **argv,
                       const struct ht_source_cli *c, struct ht_ingest_opts *o,
                       bool *help);
/* A source that senders push to (UDP, OTLP/HTTP): what its command knows of
 * it (cli/ingest_push.c runs the command). */
struct ht_push_cmd {
    struct ht_source_cli opts;
    const struct ht_source_ops *ops;
    /* Where it listens: for the "listening on" line, else as the
     * summary's source name. */
    void (*where)(void *src, bool listening, char *buf, size_t n);
    /* Its own counts, appended to the summary line on f (NULL: quiet);
     * *rejected when it refused anything (--strict). */
    void (*counts)(void *src, const void *cfg, FILE *f, bool *rejected);
};
int ht_cli_ingest_push(struct ht_cli *cli, int argc, char **argv,
                       const struct ht_push_cmd *c);
/* cli/ingest_otlp.c: OTLP/HTTP (OpenTelemetry). */
int ht_cmd_ingest_otlp(struct ht_cli *cli, int argc, char **argv);
int ht_cmd_trace(struct ht_cli *cli, int argc, char **argv);
int ht_cmd_stats(struct ht_cli *cli, int argc, char **argv);
int ht_cmd_dlq(struct ht_cli *cli, int argc, char **argv);
int ht_cmd_simulate(struct ht_cli *cli, int argc, char **argv);
/* cmd_stalls.c, cmd_metrics.c: stalled stages, alerts, Prometheus. */
int ht_cmd_stalls(struct ht_cli *cli, int argc, char **argv);
int ht_cmd_metrics(struct ht_cli *cli, int argc, char **argv);
struct ht_stall_cfg;
/* The thresholds file of `stalls` (explains its errors); 0 or -1. */
int ht_cli_load_stage_config(const char *path, struct ht_stall_cfg *cfg);
void ht_cli_free_stage_config(struct ht_stall_cfg *cfg);
/* cmd_agg.c: latency per route, tail hotspots, cost per function. */
int ht_cmd_endpoints(struct ht_cli *cli, int argc, char **argv);
int ht_cmd_hotspots(struct ht_cli *cli, int argc, char **argv);
int ht_cmd_functions(struct ht_cli *cli, int argc, char **argv);
int ht_cmd_refresh(struct ht_cli *cli, int argc, char **argv);
/* cmd_prune.c: retention on demand. */
int ht_cmd_prune(struct ht_cli *cli, int argc, char **argv);

/* cmd_serve.c: the HTTP side (serve/), optionally hosting a source. */
int ht_cmd_serve(struct ht_cli *cli, int argc, char **argv);

/*
 * Two builds of this front end (CMakeLists.txt): hoptrace-full has every
 * command (HT_CLI_NET); hoptrace, the one users run, leaves out what needs
 * the network libraries (librdkafka, libcurl, libmicrohttpd, libcrypto),
 * whose loading was most of a query's 5 ms as a process, and runs
 * hoptrace-full in its place for those commands (cli/light.c): `ingest
 * --kafka/--kinesis/--otlp`, `serve`, `stalls --alertmanager/--webhook`.
 */
extern char **ht_cli_argv; /* main's argv, for ht_cli_exec_full */
/* Replaces this process by hoptrace-full (next to this binary) with the
 * same arguments: the same pid, so signals and waits are unchanged. Only
 * returns on failure, having said why: HT_EXIT_ERROR. */
int ht_cli_exec_full(void);

/* Prints "hoptrace: <msg>" on stderr. */
void ht_cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
