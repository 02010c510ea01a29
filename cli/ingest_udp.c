/*
 * ingest_udp.c - `hoptrace ingest --udp [HOST:PORT]`: the command line of
 * the engine's UDP source (ingest/src_udp.c, the X-Ray daemon protocol).
 * Parses the options (the source's table and the shared one), runs the
 * source, prints the listening address and the summary.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "sink.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
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

static struct ht_engine *running;

static void on_signal(int sig)
{
    (void)sig;
    if (running)
        ht_engine_request_stop(running);
}

int ht_cmd_ingest_udp(struct ht_cli *cli, int argc, char **argv)
{
    struct ht_udp_cfg cfg;
    struct ht_udp_stats st;
    struct ht_ingest_opts o = HT_INGEST_OPTS_INIT;
    struct ht_engine *e = NULL;
    struct sigaction sa, old_int, old_term;
    void *src = NULL;
    int rc, exit_code = HT_EXIT_OK;
    char err[200];

    memset(&cfg, 0, sizeof(cfg));
    ht_opt_defaults(ht_udp_opt_table, &cfg);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int taken = ht_ingest_opt(cli, argc, argv, &i, &o);

        if (taken < 0)
            return HT_EXIT_USAGE;
        if (taken > 0)
            continue;
        taken = ht_opt_take(ht_udp_opt_table, &cfg, argc, argv, &i, err,
                            sizeof(err));
        if (taken < 0) {
            ht_cli_err("ingest --udp: %s", err);
            return HT_EXIT_USAGE;
        }
        if (taken > 0)
            continue;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_head, stdout);
            ht_opt_help(ht_udp_opt_table, stdout);
            ht_ingest_opts_help(stdout);
            fputs(usage_tail, stdout);
            return HT_EXIT_OK;
        } else if (strcmp(a, "--udp") == 0) {
            /* its address is optional */
            if (i + 1 < argc && argv[i + 1][0] != '-')
                cfg.listen = argv[++i];
        } else {
            ht_cli_err("ingest --udp: unknown or incomplete option %s (see "
                       "hoptrace ingest --udp --help)",
                       a);
            return HT_EXIT_USAGE;
        }
    }
    rc = ht_source_udp.open(&cfg, &src);
    if (rc)
        return rc == HT_ERR_USAGE ? HT_EXIT_USAGE : HT_EXIT_ERROR;
    if (ht_cli_engine_open(cli, &o, &e) != HT_ERR_OK) {
        ht_source_udp.close(src);
        return HT_EXIT_ERROR;
    }
    running = e;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: poll returns EINTR */
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    ht_udp_stats(src, &st);
    fprintf(stderr, "hoptrace: listening on udp %s\n", st.where);
    fflush(stderr);
    rc = ht_engine_run(e, &ht_source_udp, src, &o, 50);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    running = NULL;
    ht_udp_stats(src, &st);
    if (!o.quiet) {
        char from[128];

        snprintf(from, sizeof(from), "udp %s", st.where);
        ht_sink_summary(e, stderr, from);
        fprintf(
            stderr, "; datagrams received %llu, accepted %llu, rejected %llu",
            (unsigned long long)st.received, (unsigned long long)st.accepted,
            (unsigned long long)st.rejected);
        if (cfg.forward)
            fprintf(stderr, "; forwarding errors %llu",
                    (unsigned long long)st.fwd_errors);
        fputc('\n', stderr);
    }
    {
        int crc = ht_cli_engine_close(e);

        if (!rc)
            rc = crc;
    }
    ht_source_udp.close(src);
    if (rc) {
        ht_cli_err("ingest stopped: %s (what was committed stays)",
                   ht_strerror(rc));
        exit_code = HT_EXIT_ERROR;
    } else if (o.strict && st.rejected) {
        exit_code = HT_EXIT_REJECTED;
    }
    return exit_code;
}
