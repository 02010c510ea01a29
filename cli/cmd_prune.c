/*
 * cmd_prune.c - `hoptrace prune`: retention on demand. Removes the
 * requests that ended before a cut-off (store/ht_prune.h says exactly
 * what goes) and then their stall-detection state (ht_assembler.h), one
 * short write transaction at a time, so an ingest running on the same
 * store waits at most one slice.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "ht_engine.h"
#include "ht_assembler.h"
#include "ht_prune.h"
#include "ht_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char prune_usage[] =
    "usage: hoptrace [--db DIR] prune (--before TIME | --keep DURATION)\n"
    "                [--horizon DURATION] [--format text|json]\n"
    "\n"
    "Removes the requests whose last event ended before the cut-off, with\n"
    "everything that indexes them (spans, invocations, their records and\n"
    "log lines, id keys, pending hop halves), and their stall-detection\n"
    "state: the items `stalls` would list as waiting, the per-hop records,\n"
    "the per-minute counts; delay histograms before the cut-off are folded\n"
    "into one per stage, and the per-stage totals are kept. The store file\n"
    "does not shrink; LMDB reuses the freed pages for what is ingested\n"
    "next.\n"
    "\n"
    "  --before TIME       the cut-off: RFC 3339 or epoch seconds\n"
    "  --keep DURATION     the cut-off is the newest event in the store minus\n"
    "                      DURATION (\"2d\", \"12h\", \"90m\"; what ingest\n"
    "                      --retain keeps)\n"
    "  --horizon DURATION  how long a request may run (default 1h): a piece\n"
    "                      of a request goes only when it ended before\n"
    "                      cut-off - horizon, so every request still running\n"
    "                      at the cut-off is kept whole, and every request\n"
    "                      that ended before cut-off - horizon is removed\n"
    "  --format F          text (default) or json: what was removed\n"
    "\n"
    "Works in slices of one short transaction each, so it can run next to a\n"
    "live ingest on the same store.\n"
    "\n"
    "exit status: 0 done, 1 no store, 2 usage error, 5 store error\n";

int ht_cmd_prune(struct ht_cli *cli, int argc, char **argv)
{
    const char *fmt = "text";
    int64_t before = INT64_MIN, keep = -1, horizon = HT_PRUNE_HORIZON_US;
    int64_t newest, cutoff, t0;
    struct ht_prune_stats st;
    struct ht_stages_prune sg;
    struct ht_store *s;
    struct ht_txn *t;
    struct stat fst;
    char path[4096];
    bool more = true;
    int rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(prune_usage, stdout);
            return HT_EXIT_OK;
        } else if (strcmp(a, "--before") == 0 && i + 1 < argc) {
            if (!ht_parse_time(argv[++i], &before)) {
                ht_cli_err("prune: --before takes RFC 3339 or epoch seconds, "
                           "not %s",
                           argv[i]);
                return HT_EXIT_USAGE;
            }
        } else if (strcmp(a, "--keep") == 0 && i + 1 < argc) {
            if (ht_parse_duration(argv[++i], &keep) || keep < 0) {
                ht_cli_err("prune: --keep takes a duration (2d, 12h), not %s",
                           argv[i]);
                return HT_EXIT_USAGE;
            }
        } else if (strcmp(a, "--horizon") == 0 && i + 1 < argc) {
            if (ht_parse_duration(argv[++i], &horizon) || horizon < 0) {
                ht_cli_err("prune: --horizon takes a duration (1h, 0s), "
                           "not %s",
                           argv[i]);
                return HT_EXIT_USAGE;
            }
        } else if (strcmp(a, "--format") == 0 && i + 1 < argc) {
            fmt = argv[++i];
        } else if (strcmp(a, "--db") == 0 && i + 1 < argc) {
            cli->db = argv[++i];
        } else {
            ht_cli_err("prune: unknown argument %s (see hoptrace prune "
                       "--help)",
                       a);
            return HT_EXIT_USAGE;
        }
    }
    if ((before == INT64_MIN) == (keep < 0)) {
        ht_cli_err("prune: give one of --before TIME or --keep DURATION (see "
                   "hoptrace prune --help)");
        return HT_EXIT_USAGE;
    }
    if (strcmp(fmt, "text") && strcmp(fmt, "json")) {
        ht_cli_err("prune: --format is text or json");
        return HT_EXIT_USAGE;
    }
    snprintf(path, sizeof(path), "%s/data.mdb", cli->db);
    if (stat(path, &fst) != 0) {
        ht_cli_err("no store at %s: ingest telemetry first", cli->db);
        return HT_EXIT_NOTFOUND;
    }
    rc = ht_store_open(cli->db, false, &s);
    if (rc) {
        ht_cli_err("cannot open the store at %s: %s", cli->db, ht_strerror(rc));
        return rc == HT_ERR_NOTFOUND ? HT_EXIT_NOTFOUND : HT_EXIT_ERROR;
    }
    /* commits of a prune are as safe as ingest's (see design.md) */
    ht_store_set_nosync(s, true);
    if (ht_store_begin(s, false, &t) != HT_ERR_OK) {
        ht_store_close(s);
        return HT_EXIT_ERROR;
    }
    newest = ht_store_newest_event(t);
    ht_store_abort(t);
    cutoff = before;
    if (keep >= 0)
        cutoff = newest == INT64_MIN ? INT64_MIN : newest - keep;
    memset(&st, 0, sizeof(st));
    memset(&sg, 0, sizeof(sg));
    t0 = ht_now_mono_us();
    rc = HT_ERR_OK;
    /* whole epochs first (nothing to read), then piece by piece */
    if (cutoff != INT64_MIN && cutoff > INT64_MIN + horizon)
        rc = ht_stages_prune_epochs(s, cutoff - horizon, &sg, &st);
    while (cutoff != INT64_MIN && more && !rc) {
        rc = ht_prune_slice_h(s, cutoff, horizon, 0, &more, &st);
        /* let a waiting ingest have the writer between two slices */
        if (more && !rc)
            usleep(2000);
    }
    /* the stall state of what went (same cut-off, same horizon) */
    more = true;
    while (cutoff != INT64_MIN && more && !rc) {
        rc = ht_stages_prune_slice_h(s, cutoff, horizon, 0, &more, &sg);
        if (more && !rc)
            usleep(2000);
    }
    if (!rc)
        rc = ht_store_sync(s);
    ht_store_close(s);
    if (rc) {
        ht_cli_err("prune: %s", ht_strerror(rc));
        return HT_EXIT_ERROR;
    }
    if (stat(path, &fst) != 0)
        fst.st_blocks = 0;
    if (strcmp(fmt, "json") == 0) {
        printf(
            "{\"cutoff_us\":%lld,\"horizon_us\":%lld,"
            "\"newest_event_us\":%lld,\"removed\":{\"spans\":%llu,"
            "\"invocations\":%llu,\"facts\":%llu,\"keys\":%llu,"
            "\"hop_halves\":%llu,\"stale_entries\":%llu,\"epochs\":%llu},"
            "\"stages_removed\":{\"hops\":%llu,\"pending\":%llu,"
            "\"buckets\":%llu,\"reports\":%llu,\"unresolved\":%llu},"
            "\"slices\":%llu,\"seconds\":%.3f,\"store_bytes\":%lld}\n",
            (long long)(cutoff == INT64_MIN ? 0 : cutoff), (long long)horizon,
            (long long)(newest == INT64_MIN ? 0 : newest),
            (unsigned long long)st.nodes, (unsigned long long)st.invocations,
            (unsigned long long)st.facts, (unsigned long long)st.keys,
            (unsigned long long)st.pending, (unsigned long long)st.stale,
            (unsigned long long)st.epochs, (unsigned long long)sg.hops,
            (unsigned long long)sg.pending, (unsigned long long)sg.buckets,
            (unsigned long long)sg.reports, (unsigned long long)sg.unresolved,
            (unsigned long long)(st.slices + sg.slices),
            (double)(ht_now_mono_us() - t0) / 1e6,
            (long long)fst.st_blocks * 512);
    } else {
        printf("removed %llu spans, %llu invocations, %llu records and log "
               "lines, %llu keys, %llu hop halves, stall state of %llu hops "
               "(%llu waiting) and %llu time buckets in %llu slices "
               "(%.2f s)\n",
               (unsigned long long)st.nodes, (unsigned long long)st.invocations,
               (unsigned long long)st.facts, (unsigned long long)st.keys,
               (unsigned long long)st.pending, (unsigned long long)sg.hops,
               (unsigned long long)sg.pending, (unsigned long long)sg.buckets,
               (unsigned long long)(st.slices + sg.slices),
               (double)(ht_now_mono_us() - t0) / 1e6);
    }
    return HT_EXIT_OK;
}
