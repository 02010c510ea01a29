/*
 * cmd_agg.c - `hoptrace endpoints`, `hotspots`, `functions` and `refresh`:
 * latency per route, where the tail's time goes, and what each function
 * costs (cli.md, "endpoints, hotspots, functions"). The answers come from
 * query/agg.c and open the store read-only: they answer from the
 * summaries as the ingest side last updated them, and say on stderr when
 * ingested traces are not counted yet. `refresh` (maint/) catches up.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "ht_maint.h"
#include "ht_query.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char endpoints_usage[] =
    "usage: hoptrace [--db DIR] endpoints [--since T] [--until T] [--exact]\n"
    "                                     [--format text|json]\n"
    "\n"
    "Latency per route (API Gateway method + route template, qualified by\n"
    "API and stage; the root function for other entry points): request\n"
    "count, errors, faults, throttles, p50/p90/p99/max of the synchronous\n"
    "latency (the entry span) and of the end-to-end completion latency\n"
    "(requests with no pending hop), and the requests still incomplete.\n"
    "\n"
    "  --since T, --until T  window on request start: epoch seconds or\n"
    "                        RFC 3339 (histograms: whole minutes)\n"
    "  --exact               exact nearest-rank percentiles from the stored\n"
    "                        request summaries instead of the histograms\n"
    "                        (within 0.2 %)\n"
    "  --format text|json    default text\n"
    "\n"
    "Read-only: the answer comes from the request summaries as ingest last\n"
    "updated them. When ingested traces are not counted yet (a store written\n"
    "by an older hoptrace, an ingest killed mid-update), stderr says how\n"
    "many; `hoptrace refresh` counts them.\n";

static const char hotspots_usage[] =
    "usage: hoptrace [--db DIR] hotspots ROUTE [--percentile P] [--since T]\n"
    "                                    [--until T] [--format "
    "text|json|folded]\n"
    "\n"
    "Adds up the critical paths of ROUTE's requests whose end-to-end\n"
    "latency is at or above its P-th percentile (default 99; 0 = every\n"
    "request, incomplete ones included): time and share per service and\n"
    "kind (self, call, init) and per hop wait (via, resource). ROUTE is as\n"
    "`endpoints` prints it, e.g. 'POST /orders' or a function name.\n"
    "`folded` prints `route;service;kind value` lines (value in µs) for\n"
    "flamegraph.pl and speedscope. Exit 1 when the route has no request.\n"
    "Read-only, from the request summaries as ingest last updated them\n"
    "(see `hoptrace endpoints --help`).\n";

static const char functions_usage[] =
    "usage: hoptrace [--db DIR] functions [--since T] [--until T]\n"
    "                                     [--format text|json]\n"
    "                                     [--price-gb-s USD] "
    "[--price-request USD]\n"
    "\n"
    "Per Lambda function, from its REPORT lines: invocations (a batch\n"
    "invocation counts once), cold starts, Init Duration and duration\n"
    "p50/p99, billed duration, configured memory vs. max memory used,\n"
    "GB-seconds and estimated cost; flags functions whose p99 memory use\n"
    "is under 30 % of the configured memory (over-provisioned) or at 90 %\n"
    "or more (under-provisioned).\n"
    "\n"
    "Default prices: AWS Lambda x86, us-east-1, first tier: USD 0.0000166667\n"
    "per GB-second and USD 0.20 per million requests\n"
    "(https://aws.amazon.com/lambda/pricing/, as listed 2020-2024).\n";

static const char refresh_usage[] =
    "usage: hoptrace [--db DIR] refresh\n"
    "\n"
    "Brings the request summaries and route histograms behind `endpoints`\n"
    "and `hotspots` up to date with what was ingested, in slices of bounded\n"
    "memory. Ingest keeps them current as it goes; run this for a store\n"
    "whose summaries are behind (`endpoints` says so on stderr).\n";

/* Opens the store read-only, or for writing (refresh); a missing store is
 * "not found" rather than a new empty one. */
static int open_store(struct ht_cli *cli, bool write, struct ht_store **s)
{
    char path[4096];
    struct stat st;
    int rc;

    snprintf(path, sizeof(path), "%s/data.mdb", cli->db);
    if (stat(path, &st) != 0) {
        ht_cli_err("no store at %s: ingest telemetry first", cli->db);
        return HT_EXIT_NOTFOUND;
    }
    rc = ht_store_open(cli->db, !write, s);
    if (rc == HT_ERR_OK)
        return 0;
    if (rc == HT_ERR_NOTFOUND) {
        ht_cli_err("no store at %s: ingest telemetry first", cli->db);
        return HT_EXIT_NOTFOUND;
    }
    if (write)
        ht_cli_err("cannot open the store at %s for writing: %s (check its "
                   "permissions and free space)",
                   cli->db, ht_strerror(rc));
    else
        ht_cli_err("cannot open the store at %s: %s", cli->db, ht_strerror(rc));
    return HT_EXIT_ERROR;
}

/* Slices until nothing is dirty. Like ingest, the commits are not flushed
 * one by one (a killed refresh loses nothing: a slice is atomic, and what
 * it did not commit is still dirty); everything is flushed at the end. */
static int refresh(struct ht_store *s)
{
    struct ht_agg_stats st;
    int rc = ht_store_set_nosync(s, true);

    if (!rc)
        rc = ht_agg_refresh(s, &st);
    if (!rc)
        rc = ht_store_sync(s);
    if (rc) {
        ht_cli_err("refreshing the request summaries failed: %s (check free "
                   "space, then rerun)",
                   ht_strerror(rc));
        return HT_EXIT_ERROR;
    }
    fprintf(stderr,
            "hoptrace: refreshed %llu traces: %llu request summaries "
            "written, %llu merged into other requests (%llu slices in "
            "%.3f s, the longest %.1f ms; %llu traces assembled ahead in "
            "parallel)\n",
            (unsigned long long)st.traces, (unsigned long long)st.requests,
            (unsigned long long)st.removed, (unsigned long long)st.slices,
            (double)st.total_us / 1e6, (double)st.longest_us / 1000.0,
            (unsigned long long)st.prefetched);
    return 0;
}

struct args {
    struct ht_agg_opts o;
    const char *route;
    bool help;
};

/* Shared option parsing; `allow` lists the options the command takes. */
static int parse(const char *cmd, const char *allow, int argc, char **argv,
                 struct ht_cli *cli, struct args *a)
{
    const char *fmt = "text";

    memset(a, 0, sizeof(*a));
    a->o.since_us = 0;
    a->o.until_us = INT64_MAX;
    a->o.percentile = 99;
    a->o.price_gb_s = HT_PRICE_GB_S;
    a->o.price_request = HT_PRICE_REQUEST;
    for (int i = 1; i < argc; i++) {
        const char *x = argv[i];
        bool has = i + 1 < argc;
        char *end;

        if (strcmp(x, "--help") == 0 || strcmp(x, "-h") == 0) {
            a->help = true;
            return 0;
        } else if (strcmp(x, "--db") == 0 && has) {
            cli->db = argv[++i];
        } else if (strcmp(x, "--format") == 0 && has && strstr(allow, "f")) {
            fmt = argv[++i];
        } else if ((strcmp(x, "--since") == 0 || strcmp(x, "--until") == 0) &&
                   has && strstr(allow, "w")) {
            int64_t *dst = x[2] == 's' ? &a->o.since_us : &a->o.until_us;

            if (!ht_parse_time(argv[++i], dst)) {
                ht_cli_err("%s: %s takes epoch seconds or an RFC 3339 time, "
                           "not '%s'",
                           cmd, x, argv[i]);
                return HT_EXIT_USAGE;
            }
        } else if (strcmp(x, "--exact") == 0 && strstr(allow, "e")) {
            a->o.exact = true;
        } else if (strcmp(x, "--percentile") == 0 && has &&
                   strstr(allow, "p")) {
            a->o.percentile = strtod(argv[++i], &end);
            if (*end || end == argv[i] || !(a->o.percentile >= 0) ||
                a->o.percentile > 100) {
                ht_cli_err("%s: --percentile takes a number from 0 to 100",
                           cmd);
                return HT_EXIT_USAGE;
            }
        } else if ((strcmp(x, "--price-gb-s") == 0 ||
                    strcmp(x, "--price-request") == 0) &&
                   has && strstr(allow, "$")) {
            double *dst = x[8] == 'g' ? &a->o.price_gb_s : &a->o.price_request;

            *dst = strtod(argv[++i], &end);
            if (*end || end == argv[i] || !(*dst >= 0)) {
                ht_cli_err("%s: %s takes a price in USD (a number >= 0)", cmd,
                           x);
                return HT_EXIT_USAGE;
            }
        } else if (x[0] != '-' && strstr(allow, "r") && !a->route) {
            a->route = x;
        } else {
            ht_cli_err("%s: unknown argument %s (see hoptrace %s --help)", cmd,
                       x, cmd);
            return HT_EXIT_USAGE;
        }
    }
    if (strcmp(fmt, "text") == 0)
        a->o.format = HT_AGG_TEXT;
    else if (strcmp(fmt, "json") == 0)
        a->o.format = HT_AGG_JSON;
    else if (strcmp(fmt, "folded") == 0 && strstr(allow, "F"))
        a->o.format = HT_AGG_FOLDED;
    else {
        ht_cli_err("%s: --format is %s", cmd,
                   strstr(allow, "F") ? "text, json or folded"
                                      : "text or json");
        return HT_EXIT_USAGE;
    }
    if (a->o.since_us > a->o.until_us) {
        ht_cli_err("%s: --since is after --until", cmd);
        return HT_EXIT_USAGE;
    }
    return 0;
}

static int print_out(struct ht_buf *b)
{
    if (b->len && fwrite(b->data, 1, b->len, stdout) != b->len) {
        ht_cli_err("cannot write the result to stdout");
        return HT_EXIT_ERROR;
    }
    return HT_EXIT_OK;
}

/* Opens the store read-only for a query over the summaries, and says on
 * stderr when some of what was ingested is not counted in them yet. */
static int open_query(struct ht_cli *cli, struct ht_store **s)
{
    uint64_t pending = 0;
    int e = open_store(cli, false, s);

    if (e)
        return e;
    if (ht_agg_pending(*s, &pending) == HT_ERR_OK && pending)
        fprintf(stderr,
                "hoptrace: note: %llu ingested trace%s not counted in the "
                "request summaries yet (run `hoptrace refresh` to count "
                "them)\n",
                (unsigned long long)pending, pending == 1 ? " is" : "s are");
    return 0;
}

/* Closes the store, then prints the query's answer or its error. */
static int answer(const char *cmd, struct ht_store *s, int rc,
                  struct ht_buf *out)
{
    int e;

    ht_store_close(s);
    if (rc) {
        ht_buf_free(out);
        ht_cli_err("%s: %s", cmd, ht_strerror(rc));
        return HT_EXIT_ERROR;
    }
    e = print_out(out);
    ht_buf_free(out);
    return e;
}

int ht_cmd_endpoints(struct ht_cli *cli, int argc, char **argv)
{
    struct args a;
    struct ht_store *s;
    struct ht_buf out;
    int e;

    if ((e = parse("endpoints", "fwe", argc, argv, cli, &a)))
        return e;
    if (a.help) {
        fputs(endpoints_usage, stdout);
        return HT_EXIT_OK;
    }
    if ((e = open_query(cli, &s)))
        return e;
    ht_buf_init(&out);
    return answer("endpoints", s, ht_agg_endpoints(s, &a.o, &out), &out);
}

int ht_cmd_hotspots(struct ht_cli *cli, int argc, char **argv)
{
    struct args a;
    struct ht_store *s;
    struct ht_buf out;
    int e, rc;

    if ((e = parse("hotspots", "fwpFr", argc, argv, cli, &a)))
        return e;
    if (a.help) {
        fputs(hotspots_usage, stdout);
        return HT_EXIT_OK;
    }
    if (!a.route) {
        ht_cli_err("hotspots: name a ROUTE as `hoptrace endpoints` prints it, "
                   "e.g. hoptrace hotspots 'POST /orders'");
        return HT_EXIT_USAGE;
    }
    if ((e = open_query(cli, &s)))
        return e;
    ht_buf_init(&out);
    rc = ht_agg_hotspots(s, a.route, &a.o, &out);
    if (rc == HT_ERR_NOTFOUND) {
        ht_store_close(s);
        ht_buf_free(&out);
        ht_cli_err("hotspots: no complete request of route '%s' in the "
                   "window (see hoptrace endpoints for the routes)",
                   a.route);
        return HT_EXIT_NOTFOUND;
    }
    return answer("hotspots", s, rc, &out);
}

int ht_cmd_functions(struct ht_cli *cli, int argc, char **argv)
{
    struct args a;
    struct ht_store *s;
    struct ht_buf out;
    int e;

    if ((e = parse("functions", "fw$", argc, argv, cli, &a)))
        return e;
    if (a.help) {
        fputs(functions_usage, stdout);
        return HT_EXIT_OK;
    }
    if ((e = open_store(cli, false, &s)))
        return e;
    ht_buf_init(&out);
    return answer("functions", s, ht_agg_functions(s, &a.o, &out), &out);
}

int ht_cmd_refresh(struct ht_cli *cli, int argc, char **argv)
{
    struct args a;
    struct ht_store *s;
    int e;

    if ((e = parse("refresh", "", argc, argv, cli, &a)))
        return e;
    if (a.help) {
        fputs(refresh_usage, stdout);
        return HT_EXIT_OK;
    }
    if ((e = open_store(cli, true, &s)))
        return e;
    e = refresh(s);
    ht_store_close(s);
    return e;
}
