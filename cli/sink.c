/*
 * sink.c - the command line's side of the ingest engine: the shared
 * options from argv (through the engine's declarative table) and a live
 * source's own (through its table), opening the engine with an actionable
 * error, the summary line every source prints, and SIGINT/SIGTERM. No
 * writing, batching or decoding happens here (ingest/engine.c).
 */
#define _GNU_SOURCE
#include "sink.h"

#include "ht_maint.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int ht_ingest_opt(struct ht_cli *cli, int argc, char **argv, int *i,
                  struct ht_ingest_opts *o)
{
    char err[200];
    int taken =
        ht_opt_take(ht_ingest_opt_table, o, argc, argv, i, err, sizeof(err));

    if (taken < 0) {
        ht_cli_err("%s", err);
        return -1;
    }
    if (taken > 0 && o->db)
        cli->db = o->db;
    return taken;
}

void ht_ingest_opts_help(FILE *f)
{
    ht_opt_help(ht_ingest_opt_table, f);
}

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

/* The write-side upkeep (aggregates, retention) of this process's one
 * engine. */
static struct ht_upkeep upkeep;
static bool settled; /* ht_cli_engine_settle ran; settle_rc is its error */
static int settle_rc;

int ht_cli_engine_open(struct ht_cli *cli, const struct ht_ingest_opts *o,
                       struct ht_engine **out)
{
    int rc = ht_engine_open(cli->db, out);

    if (rc == HT_ERR_SCHEMA)
        return rc; /* the store said what to do */
    if (rc) {
        char path[4200];
        const char *why = "";

        snprintf(path, sizeof(path), "%s/data.mdb", cli->db);
        if (access(cli->db, W_OK) != 0 && errno != ENOENT)
            why = " (the folder is not writable)";
        else if (access(path, F_OK) == 0 && access(path, W_OK) != 0)
            why = " (the file is not writable)";
        ht_cli_err("cannot open the store %s for writing%s: %s. Check that "
                   "--db names a folder you can write to, with free disk "
                   "space, holding a hoptrace store (or nothing yet); or give "
                   "--db another folder",
                   path, why, ht_strerror(rc));
        return rc;
    }
    rc = ht_engine_configure(*out, o);
    if (rc) {
        ht_cli_err("cannot configure ingest into %s: %s", cli->db,
                   ht_strerror(rc));
        ht_engine_close(*out);
        *out = NULL;
        return rc;
    }
    memset(&upkeep, 0, sizeof(upkeep));
    settled = false;
    upkeep.retain_us = o->retain_us;
    upkeep.no_aggregates = o->no_aggregates;
    ht_engine_set_upkeep(*out, ht_upkeep_round, &upkeep);
    return HT_ERR_OK;
}

int ht_cli_engine_settle(struct ht_engine *e)
{
    if (!settled) {
        settle_rc = ht_engine_settle(e, ht_upkeep_settle, &upkeep);
        settled = true;
    }
    return settle_rc;
}

int ht_cli_engine_close(struct ht_engine *e)
{
    int rc = ht_cli_engine_settle(e);
    int crc = ht_engine_close(e);

    settled = false;
    return rc ? rc : crc;
}

void ht_sink_summary(struct ht_engine *e, FILE *f, const char *from)
{
    const struct ht_engine_totals *t = ht_engine_totals(e);
    int64_t pending = ht_engine_pending(e);
    uint64_t rejected = ht_engine_rejected(e);

    fprintf(f,
            "hoptrace: ingested %llu documents (%llu spans, %llu log "
            "events) from %s; rejected %llu",
            (unsigned long long)t->documents, (unsigned long long)t->spans,
            (unsigned long long)t->log_events, from,
            (unsigned long long)rejected);
    if (rejected) {
        const char *sep = " (";

        for (int r = 0; r < HT_REJ__COUNT; r++)
            if (t->rejected[r]) {
                fprintf(f, "%s%s %llu", sep, ht_reject_name(r),
                        (unsigned long long)t->rejected[r]);
                sep = ", ";
            }
        fputc(')', f);
    }
    fprintf(f, "; hops matched %llu, pending %lld",
            (unsigned long long)t->as.hops_matched,
            (long long)(pending < 0 ? 0 : pending));
    if (t->dropped)
        fprintf(f, "; dropped %llu control messages",
                (unsigned long long)t->dropped);
    if (upkeep.prune.nodes || upkeep.prune.invocations)
        fprintf(f,
                "; retention removed %llu spans and %llu invocations in "
                "%llu slice%s (%.3f s)",
                (unsigned long long)upkeep.prune.nodes,
                (unsigned long long)upkeep.prune.invocations,
                (unsigned long long)upkeep.prune.slices,
                upkeep.prune.slices == 1 ? "" : "s",
                (double)upkeep.retention_us / 1e6);
    if (upkeep.agg.slices)
        fprintf(f, "; %llu request summaries written in %llu slice%s (%.3f s)",
                (unsigned long long)upkeep.agg.requests,
                (unsigned long long)upkeep.agg.slices,
                upkeep.agg.slices == 1 ? "" : "s",
                (double)upkeep.agg.total_us / 1e6);
}

/* ---- SIGINT / SIGTERM -------------------------------------------------- */

volatile sig_atomic_t ht_cli_stopping;
static struct ht_engine *volatile stop_target;

static void on_stop_signal(int sig)
{
    struct ht_engine *e = stop_target;

    (void)sig;
    ht_cli_stopping = 1;
    if (e)
        ht_engine_request_stop(e); /* an atomic store: safe here */
}

void ht_cli_catch_stop(struct ht_cli_signals *old)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old->sigint);
    sigaction(SIGTERM, &sa, &old->sigterm);
}

void ht_cli_stop_engine(struct ht_engine *e)
{
    stop_target = e;
    if (e && ht_cli_stopping)
        ht_engine_request_stop(e);
}

void ht_cli_release_stop(const struct ht_cli_signals *old)
{
    sigaction(SIGINT, &old->sigint, NULL);
    sigaction(SIGTERM, &old->sigterm, NULL);
    stop_target = NULL;
}
