/*
 * cli.h - shared bits of the hoptrace command-line front end: global
 * options and the command entry points. The front end is thin: parsing
 * flags, calling the libraries, printing. No stitching logic lives here.
 */
#ifndef HT_CLI_H
#define HT_CLI_H

#include "ht_common.h"

/* Exit codes (cli.md). */
enum {
    HT_EXIT_OK = 0,
    HT_EXIT_NOTFOUND = 1,
    HT_EXIT_USAGE = 2,
    HT_EXIT_REJECTED = 3,
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
int ht_cmd_trace(struct ht_cli *cli, int argc, char **argv);
int ht_cmd_stats(struct ht_cli *cli, int argc, char **argv);
int ht_cmd_dlq(struct ht_cli *cli, int argc, char **argv);
/* cmd_agg.c: latency per route, tail hotspots, cost per function. */
int ht_cmd_endpoints(struct ht_cli *cli, int argc, char **argv);
int ht_cmd_hotspots(struct ht_cli *cli, int argc, char **argv);
int ht_cmd_functions(struct ht_cli *cli, int argc, char **argv);
int ht_cmd_refresh(struct ht_cli *cli, int argc, char **argv);

/* Prints "hoptrace: <msg>" on stderr. */
void ht_cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
