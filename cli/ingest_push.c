/*
 * ingest_push.c - the command line shared by the sources that senders push
 * to (`ingest --udp`, `ingest --otlp`): parses their options (the shared
 * ones and the source's table; its address is optional after the flag),
 * opens the source and the engine, runs until SIGINT/SIGTERM or
 * --until-idle, and prints the summary with the source's own counts.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "sink.h"

#include <stdio.h>

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
