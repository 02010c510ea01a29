/*
 * ingest_push.c - the command line shared by the live sources: their
 * options (ht_cli_source_opts, every live source), and the whole command
 * of the sources that senders push to (`ingest --udp`, `ingest --otlp`):
 * opens the source and the engine, runs until SIGINT/SIGTERM or
 * --until-idle, and prints the summary with the source's own counts.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "sink.h"

#include <stdio.h>
#include <string.h>

int ht_cli_source_opts(struct ht_cli *cli, int argc, char **argv,
                       const struct ht_source_cli *c, struct ht_ingest_opts *o,
                       bool *help)
{
    char err[200];

    /* first, so that `--kinesis --help` is help, not a stream name */
    *help = false;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(c->usage_head, stdout);
            ht_opt_help(c->table, stdout);
            ht_ingest_opts_help(stdout);
            fputs(c->usage_tail, stdout);
            *help = true;
            return HT_EXIT_OK;
        }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int taken = ht_ingest_opt(cli, argc, argv, &i, o);

        if (taken < 0)
            return HT_EXIT_USAGE;
        if (taken > 0)
            continue;
        taken = ht_opt_take(c->table, c->cfg, argc, argv, &i, err, sizeof(err));
        if (taken < 0) {
            ht_cli_err("ingest %s: %s", c->flag, err);
            return HT_EXIT_USAGE;
        }
        if (taken > 0)
            continue;
        if (c->listen && strcmp(a, c->flag) == 0) {
            /* its address is optional */
            if (i + 1 < argc && argv[i + 1][0] != '-')
                *c->listen = argv[++i];
            continue;
        }
        ht_cli_err("ingest %s: unknown option or missing value: %s (see "
                   "hoptrace ingest %s --help)",
                   c->flag, a, c->flag);
        return HT_EXIT_USAGE;
    }
    return HT_EXIT_OK;
}

int ht_cli_ingest_push(struct ht_cli *cli, int argc, char **argv,
                       const struct ht_push_cmd *c)
{
    struct ht_ingest_opts o = HT_INGEST_OPTS_INIT;
    struct ht_engine *e = NULL;
    struct ht_cli_signals sig;
    void *src = NULL;
    int rc, exit_code = HT_EXIT_OK;
    bool rejected = false, help;
    char where[160];

    exit_code = ht_cli_source_opts(cli, argc, argv, &c->opts, &o, &help);
    if (exit_code != HT_EXIT_OK || help)
        return exit_code;
    rc = c->ops->open(c->opts.cfg, &src);
    if (rc)
        return rc == HT_ERR_USAGE ? HT_EXIT_USAGE : HT_EXIT_ERROR;
    if (ht_cli_engine_open(cli, &o, &e) != HT_ERR_OK) {
        c->ops->close(src);
        return HT_EXIT_ERROR;
    }
    ht_cli_catch_stop(&sig);
    ht_cli_stop_engine(e);
    c->where(src, true, where, sizeof(where));
    fprintf(stderr, "hoptrace: listening on %s\n", where);
    fflush(stderr);
    rc = ht_engine_run(e, c->ops, src, &o, 50);
    ht_cli_release_stop(&sig);
    if (!o.quiet) {
        c->where(src, false, where, sizeof(where));
        ht_cli_engine_settle(e);
        ht_sink_summary(e, stderr, where);
    }
    /* the source's counts, and whether it rejected anything (--strict) */
    c->counts(src, c->opts.cfg, o.quiet ? NULL : stderr, &rejected);
    if (!o.quiet)
        fputc('\n', stderr);
    {
        int crc = ht_cli_engine_close(e);

        if (!rc)
            rc = crc;
    }
    /* after the engine: what still waits for a commit is failed */
    c->ops->close(src);
    if (rc) {
        ht_cli_err("ingest stopped: %s (what was committed stays)",
                   ht_strerror(rc));
        exit_code = HT_EXIT_ERROR;
    } else if (o.strict && rejected) {
        exit_code = HT_EXIT_REJECTED;
    }
    return exit_code;
}
