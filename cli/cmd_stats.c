/*
 * cmd_stats.c - `hoptrace stats` (what the store holds, rejected input by
 * reason) and `hoptrace dlq` (the rejected payloads themselves). Both are
 * computed from the store's content, so they are as idempotent as ingest.
 * The stats document itself is query/report.c's (serve answers it too).
 */
#define _GNU_SOURCE
#include "cli.h"
#include "ht_query.h"
#include "ht_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char stats_usage[] =
    "usage: hoptrace [--db DIR] stats [--format text|json]\n"
    "\n"
    "Counts what the store holds (spans, invocations, facts, keys, pending\n"
    "hops, store bytes), the ingested traces not yet counted in the request\n"
    "summaries behind `endpoints` (see `hoptrace refresh`), and the\n"
    "rejected payloads by reason. Opens the store read-only.\n";

static const char dlq_usage[] =
    "usage: hoptrace [--db DIR] dlq [--limit N] [--reason R]\n"
    "\n"
    "Lists rejected payloads kept in the dead-letter table: source,\n"
    "offset, reason, what was wrong and the payload's first bytes.\n"
    "Reasons: not_json, too_large, too_deep, missing_field, bad_id,\n"
    "bad_encoding, unknown_document.\n";

static int open_ro(struct ht_cli *cli, struct ht_store **s)
{
    int rc = ht_store_open(cli->db, true, s);

    if (rc == HT_ERR_NOTFOUND) {
        ht_cli_err("no store at %s: ingest telemetry first", cli->db);
        return HT_EXIT_NOTFOUND;
    }
    if (rc) {
        ht_cli_err("cannot open the store at %s: %s", cli->db, ht_strerror(rc));
        return HT_EXIT_ERROR;
    }
    return 0;
}

int ht_cmd_stats(struct ht_cli *cli, int argc, char **argv)
{
    const char *fmt = "text";
    struct ht_store *s;
    struct ht_buf out;
    int e;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(stats_usage, stdout);
            return HT_EXIT_OK;
        } else if (strcmp(argv[i], "--format") == 0 && i + 1 < argc) {
            fmt = argv[++i];
        } else if (strcmp(argv[i], "--db") == 0 && i + 1 < argc) {
            cli->db = argv[++i];
        } else {
            ht_cli_err("stats: unknown argument %s (see hoptrace stats "
                       "--help)",
                       argv[i]);
            return HT_EXIT_USAGE;
        }
    }
    if (strcmp(fmt, "text") && strcmp(fmt, "json")) {
        ht_cli_err("stats: --format is text or json");
        return HT_EXIT_USAGE;
    }
    if ((e = open_ro(cli, &s)))
        return e;
    ht_buf_init(&out);
    e = ht_query_stats(s, strcmp(fmt, "json") == 0, &out);
    ht_store_close(s);
    if (e) {
        ht_buf_free(&out);
        return HT_EXIT_ERROR;
    }
    fwrite(out.data, 1, out.len, stdout);
    ht_buf_free(&out);
    return HT_EXIT_OK;
}

struct dlq_ctx {
    long limit, shown;
    int reason;
};

static int show_dlq(void *ctx, const void *k, size_t kn, const void *v,
                    size_t vn)
{
    struct dlq_ctx *c = ctx;
    const char *key = k, *val = v;
    size_t sl = strnlen(key, kn);
    const char *detail = val + 1;
    size_t dl = strnlen(detail, vn - 1);
    const char *sample = detail + dl + 1;
    size_t sn = vn > dl + 2 ? vn - dl - 2 : 0;

    if (vn < 2 || kn < sl + 9)
        return 0;
    if (c->reason >= 0 && val[0] != c->reason)
        return 0;
    if (c->shown++ >= c->limit)
        return 1;
    {
        /* the source path and the detail carry data: shown escaped */
        struct ht_buf t;

        ht_buf_init(&t);
        ht_buf_add_printable(&t, key, sl);
        ht_buf_printf(
            &t, ":%llu\t%s\t",
            (unsigned long long)ht_be64_get((const uint8_t *)key + sl + 1),
            ht_reject_name((uint8_t)val[0]));
        ht_buf_add_printable(&t, detail, dl);
        ht_buf_addc(&t, '\t');
        fwrite(t.data, 1, t.len, stdout);
        ht_buf_free(&t);
    }
    for (size_t i = 0; i < sn && i < 160; i++) {
        unsigned char ch = (unsigned char)sample[i];

        putchar(ch >= 0x20 && ch < 0x7f ? ch : '.');
    }
    putchar('\n');
    return 0;
}

int ht_cmd_dlq(struct ht_cli *cli, int argc, char **argv)
{
    struct dlq_ctx c = {.limit = 100, .reason = -1};
    struct ht_store *s;
    struct ht_txn *t;
    int e;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(dlq_usage, stdout);
            return HT_EXIT_OK;
        } else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) {
            c.limit = strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--reason") == 0 && i + 1 < argc) {
            c.reason = ht_reject_from_name(argv[++i]);
            if (c.reason < 0) {
                ht_cli_err("dlq: unknown reason %s (see hoptrace dlq --help)",
                           argv[i]);
                return HT_EXIT_USAGE;
            }
        } else if (strcmp(argv[i], "--db") == 0 && i + 1 < argc) {
            cli->db = argv[++i];
        } else {
            ht_cli_err("dlq: unknown argument %s (see hoptrace dlq --help)",
                       argv[i]);
            return HT_EXIT_USAGE;
        }
    }
    if ((e = open_ro(cli, &s)))
        return e;
    if (ht_store_begin(s, false, &t)) {
        ht_store_close(s);
        return HT_EXIT_ERROR;
    }
    ht_store_scan(t, HT_DB_DLQ, NULL, 0, show_dlq, &c);
    ht_store_abort(t);
    ht_store_close(s);
    return HT_EXIT_OK;
}
