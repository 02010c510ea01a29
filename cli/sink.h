/*
 * sink.h - the command line's side of the ingest engine (ingest/
 * ht_engine.h): the options every source shares, read from argv with the
 * engine's option table; opening the engine with an error that says which
 * file and what to do; the summary line. The engine itself (writer thread,
 * batching, checkpoints, the sources) lives in ingest/.
 */
#ifndef HT_SINK_H
#define HT_SINK_H

#include "cli.h"
#include "ht_engine.h"

#include <signal.h>
#include <stdio.h>

#define HT_INGEST_OPTS_INIT                                                    \
    {                                                                          \
        .batch_docs = HT_INGEST_BATCH_DEFAULT                                  \
    }

/* If argv[*i] is one of the shared options (ht_ingest_opt_table: --batch
 * N, --db DIR, --strict, --quiet/-q, --durable, --until-idle S, --retain
 * D), takes it, moving *i past its value, and returns 1; returns 0 when it
 * is not one; -1 after reporting a bad value. --db also sets cli->db. */
int ht_ingest_opt(struct ht_cli *cli, int argc, char **argv, int *i,
                  struct ht_ingest_opts *o);
/* The shared options' --help lines, from the same table. */
void ht_ingest_opts_help(FILE *f);

/* Opens the engine on cli->db and applies the options. On failure says
 * which file could not be opened and what to do, and returns non-zero. */
int ht_cli_engine_open(struct ht_cli *cli, const struct ht_ingest_opts *o,
                       struct ht_engine **out);

/* Brings the write-side upkeep (aggregates, --retain) up to date, once:
 * the summary line then tells what it did. Its error is returned again by
 * ht_cli_engine_close. */
int ht_cli_engine_settle(struct ht_engine *e);

/* Settles (unless done), then closes the engine. Returns the first
 * error. */
int ht_cli_engine_close(struct ht_engine *e);

/* Prints the standard summary line ("hoptrace: ingested N documents (...)
 * from WHAT; rejected ...; hops matched ..., pending ...", and what the
 * upkeep did: retention, the summaries written) without its newline, so a
 * source can append its own "; ..." parts. Call after ht_engine_sync and
 * ht_cli_engine_settle. */
void ht_sink_summary(struct ht_engine *e, FILE *f, const char *from);

/* SIGINT and SIGTERM while a command ingests: they set ht_cli_stopping
 * (a source that can block before its engine runs polls it) and ask the
 * engine named by ht_cli_stop_engine, if any, to commit what was read and
 * return. ht_cli_catch_stop installs the handler (without SA_RESTART, so
 * a blocking poll returns EINTR) and keeps the old ones in *old;
 * ht_cli_release_stop puts them back and forgets the engine. */
extern volatile sig_atomic_t ht_cli_stopping;
struct ht_cli_signals {
    struct sigaction sigint, sigterm;
};
void ht_cli_catch_stop(struct ht_cli_signals *old);
/* e gets the signals from now on (NULL: none); when one came already, e
 * is asked to stop at once. */
void ht_cli_stop_engine(struct ht_engine *e);
void ht_cli_release_stop(const struct ht_cli_signals *old);

#endif
