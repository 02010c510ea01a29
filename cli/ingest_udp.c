/*
 * ingest_udp.c - `hoptrace ingest --udp [HOST:PORT]`: the command line of
 * the engine's UDP source (ingest/src_udp.c, the X-Ray daemon protocol).
 * Parses the options (the source's table and the shared one), runs the
 * source, prints the listening address and the summary.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "sink.h"

#include <stdio.h>
#include <string.h>

static const char usage_head[] =
    "usage: hoptrace [--db DIR] ingest --udp [HOST:PORT] [--forward "
    "HOST:PORT]\n"
    "         [--until-idle SECONDS] [OPTIONS]\n"
    "\n"
    "Listens for X-Ray daemon datagrams (default 127.0.0.1:2000, so\n"
    "AWS_XRAY_DAEMON_ADDRESS can point SDKs straight at hoptrace): a header\n"
    "line {\"format\":\"json\",\"version\":1}, a newline, one segment\n"
    "document; at most 64 KiB. Port 0 picks a free port; the address is\n"
    "printed on stderr. Commits happen at least every 50 ms.\n"
    "\n";

static const char usage_tail[] =
    "\n"
    "SIGINT/SIGTERM: commit and exit 0. The summary counts datagrams\n"
    "received, accepted and rejected (bad header, empty body, oversized,\n"
    "bad document: see hoptrace stats / dlq).\n";

static void udp_where(void *src, bool listening, char *buf, size_t n)
{
    struct ht_udp_stats st;

    ht_udp_stats(src, &st);
    snprintf(buf, n, "udp %s", st.where);
    (void)listening; /* the same both ways */
}

static void udp_counts(void *src, const void *cfg, FILE *f, bool *rejected)
{
    const struct ht_udp_cfg *c = cfg;
    struct ht_udp_stats st;

    ht_udp_stats(src, &st);
    *rejected = st.rejected > 0;
    if (!f)
        return;
    fprintf(f, "; datagrams received %llu, accepted %llu, rejected %llu",
            (unsigned long long)st.received, (unsigned long long)st.accepted,
            (unsigned long long)st.rejected);
    if (c->forward)
        fprintf(f, "; forwarding errors %llu",
                (unsigned long long)st.fwd_errors);
}

int ht_cmd_ingest_udp(struct ht_cli *cli, int argc, char **argv)
{
    struct ht_udp_cfg cfg;
    struct ht_push_cmd c = {.opts = {.flag = "--udp",
                                     .usage_head = usage_head,
                                     .usage_tail = usage_tail,
                                     .table = ht_udp_opt_table,
                                     .cfg = &cfg,
                                     .listen = &cfg.listen},
                            .ops = &ht_source_udp,
                            .where = udp_where,
                            .counts = udp_counts};

    memset(&cfg, 0, sizeof(cfg));
    ht_opt_defaults(ht_udp_opt_table, &cfg);
    return ht_cli_ingest_push(cli, argc, argv, &c);
}
