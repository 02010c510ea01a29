/*
 * cmd_serve.c - `hoptrace serve`: the HTTP API, the Jaeger query API, the
 * web view and /metrics over the store (serve/), optionally hosting an
 * ingest source in the same process (--udp, --kafka, --kinesis, with the
 * option tables `ingest` uses), so one process receives, stores and shows.
 *
 * Owned by cli/: it parses the command line, starts the engine (on a
 * thread of its own) and the server, waits for SIGINT/SIGTERM, then
 * drains and stops both. LMDB forbids opening one environment twice in a
 * process, so with a source the server reads through the engine's store.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "ht_query.h"
#include "ht_serve.h"
#include "sink.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SERVE_LISTEN_DEFAULT "127.0.0.1:8418"
/* Worker threads by default: one per online core. Handlers only compute
 * (LMDB reads, no blocking I/O), so more threads than cores only queue
 * answers behind each other: on 2 cores, 4 threads put the p99 of
 * /api/v1/trace at 3-6 ms where 2 keep it near 1.3 ms (bench-serve.sh). */
static unsigned threads_default(void)
{
    unsigned n = ht_cores();

    return n > 64 ? 64 : n;
}
/* How long a stop waits for the requests in flight. */
#define SERVE_DRAIN_MS 10000

static const char usage_head[] =
    "usage: hoptrace [--db DIR] serve [--listen ADDR:PORT] [--token FILE]\n"
    "                [--threads N] [--config FILE]\n"
    "                [--udp [HOST:PORT] | --otlp [HOST:PORT] |\n"
    "                 --kafka BROKERS --topic T ... | --kinesis STREAM ...]\n"
    "                [INGEST OPTIONS]\n"
    "\n"
    "Answers over HTTP, read-only over the store: the JSON API (the same\n"
    "documents as --format json: /api/v1/trace/{id}, /api/v1/endpoints,\n"
    "/api/v1/hotspots?route=R, /api/v1/functions, /api/v1/stalls,\n"
    "/api/v1/stats), the Jaeger query API (/api/services, /api/traces, ...),\n"
    "the web view (/, /trace/{id}), /metrics (Prometheus) and /healthz.\n"
    "Every route is in docs/cli.md, \"serve\". It runs beside `ingest`\n"
    "processes on the same store; while there is no store yet it answers\n"
    "503 and opens the store as soon as one appears.\n"
    "\n"
    "  --listen ADDR:PORT  where to listen (default " SERVE_LISTEN_DEFAULT
    "; port 0\n"
    "                      picks a free one). An address other hosts can\n"
    "                      reach prints a warning: anyone who reaches it\n"
    "                      reads every trace\n"
    "  --token FILE        every request must carry `Authorization: Bearer\n"
    "                      <token>`, the token being FILE's content (401\n"
    "                      otherwise)\n"
    "  --threads N         worker threads (default: one per core)\n"
    "  --config FILE       stage thresholds of /api/v1/stalls and /metrics,\n"
    "                      as for hoptrace stalls --config\n"
    "\n"
    "Hosting a source (its options as for `hoptrace ingest --udp|--otlp|\n"
    "--kafka|--kinesis --help`): the process receives, stores and shows.\n"
    "  --udp [HOST:PORT]   X-Ray daemon datagrams (default 127.0.0.1:2000)\n"
    "  --otlp [HOST:PORT]  OpenTelemetry over OTLP/HTTP, POST /v1/traces\n"
    "                      (default 127.0.0.1:4318, its own port)\n"
    "  --kafka BROKERS --topic T   a Kafka consumer group\n"
    "  --kinesis STREAM    a Kinesis Data Stream\n"
    "\n"
    "Ingest options (with a source):\n";

static const char usage_tail[] =
    "\n"
    "The address served is printed on stderr (\"hoptrace: serving "
    "http://...\").\n"
    "SIGINT/SIGTERM: stop accepting, finish the requests in flight, commit\n"
    "what the source received, exit 0.\n"
    "\n"
    "exit status: 0 stopped by a signal, 2 usage error, 5 an error (the\n"
    "address cannot be bound, the store cannot be written, the source\n"
    "failed)\n";

enum src_kind { SRC_NONE, SRC_UDP, SRC_OTLP, SRC_KAFKA, SRC_KINESIS };

struct serve_args {
    const char *listen;
    const char *token_file;
    const char *config; /* --config FILE: stage thresholds */
    unsigned threads;
    enum src_kind kind;
    struct ht_ingest_opts o;
    bool ingest_opt_given;
    struct ht_udp_cfg udp;
    struct ht_otlp_cfg otlp;
    struct ht_kafka_cfg kafka;
    struct ht_kinesis_src_cfg kinesis;
};

/* The hosted source's run, on a thread of its own. */
struct hosted {
    struct ht_engine *e;
    const struct ht_source_ops *ops;
    void *src;
    struct ht_ingest_opts o;
    int commit_ms;
    int rc;
    atomic_int done; /* set by the source thread when the run returns */
};

static volatile sig_atomic_t stop_flag; /* Kafka, Kinesis: stop retrying */

static void *run_source(void *arg)
{
    struct hosted *h = arg;

    h->rc = ht_engine_run(h->e, h->ops, h->src, &h->o, h->commit_ms);
    atomic_store(&h->done, 1);
    return NULL;
}

static const struct ht_source_ops *source_ops(enum src_kind k)
{
    return k == SRC_UDP     ? &ht_source_udp
           : k == SRC_OTLP  ? &ht_source_otlp
           : k == SRC_KAFKA ? &ht_source_kafka
                            : &ht_source_kinesis;
}

static const void *source_cfg(struct serve_args *a)
{
    return a->kind == SRC_UDP     ? (const void *)&a->udp
           : a->kind == SRC_OTLP  ? (const void *)&a->otlp
           : a->kind == SRC_KAFKA ? (const void *)&a->kafka
                                  : (const void *)&a->kinesis;
}

/* The token: FILE's content without its trailing white space. */
static char *read_token(const char *path)
{
    FILE *f = fopen(path, "r");
    char buf[4097];
    size_t n;

    if (!f) {
        ht_cli_err("serve: cannot read the token file %s: %s", path,
                   strerror(errno));
        return NULL;
    }
    n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    if (n == sizeof(buf)) {
        ht_cli_err("serve: the token file %s is over 4 KiB: it should hold "
                   "one token",
                   path);
        return NULL;
    }
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
                 buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        n--;
    buf[n] = 0;
    if (!n || strlen(buf) != n) {
        ht_cli_err("serve: the token file %s holds no token (it should "
                   "hold one line of text)",
                   path);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)buf[i] < 0x21 || (unsigned char)buf[i] > 0x7e) {
            ht_cli_err("serve: the token in %s has a space or a character "
                       "that cannot travel in an HTTP header; use printable "
                       "ASCII (e.g. openssl rand -hex 32)",
                       path);
            return NULL;
        }
    return strdup(buf);
}

static int parse(struct ht_cli *cli, int argc, char **argv,
                 struct serve_args *a, bool *help)
{
    char err[200];

    memset(a, 0, sizeof(*a));
    a->listen = SERVE_LISTEN_DEFAULT;
    a->threads = threads_default();
    a->o.batch_docs = HT_INGEST_BATCH_DEFAULT;
    ht_opt_defaults(ht_udp_opt_table, &a->udp);
    ht_opt_defaults(ht_otlp_opt_table, &a->otlp);
    ht_opt_defaults(ht_kafka_opt_table, &a->kafka);
    ht_opt_defaults(ht_kinesis_src_opt_table, &a->kinesis);
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];

        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            *help = true;
            return 0;
        }
        if (strcmp(s, "--udp") == 0 || strcmp(s, "--otlp") == 0 ||
            strcmp(s, "--kafka") == 0 || strcmp(s, "--kinesis") == 0) {
            enum src_kind k = s[2] == 'u'   ? SRC_UDP
                              : s[2] == 'o' ? SRC_OTLP
                              : s[3] == 'a' ? SRC_KAFKA
                                            : SRC_KINESIS;

            if (a->kind && a->kind != k) {
                ht_cli_err("serve: one source at a time (--udp, --otlp, "
                           "--kafka or --kinesis)");
                return HT_EXIT_USAGE;
            }
            a->kind = k;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int taken;

        if (strcmp(s, "--listen") == 0 || strcmp(s, "--token") == 0 ||
            strcmp(s, "--threads") == 0 || strcmp(s, "--config") == 0) {
            if (!v) {
                ht_cli_err("serve: %s needs a value (see hoptrace serve "
                           "--help)",
                           s);
                return HT_EXIT_USAGE;
            }
            i++;
            if (s[2] == 'l') {
                a->listen = v;
            } else if (s[2] == 'c') {
                a->config = v;
            } else if (s[3] == 'o') {
                a->token_file = v;
            } else {
                char *end;
                long n;

                errno = 0;
                n = strtol(v, &end, 10);
                if (*end || end == v || errno || n < 1 || n > 64) {
                    ht_cli_err("serve: --threads takes a number from 1 to "
                               "64, not '%s'",
                               v);
                    return HT_EXIT_USAGE;
                }
                a->threads = (unsigned)n;
            }
            continue;
        }
        taken = ht_ingest_opt(cli, argc, argv, &i, &a->o);
        if (taken < 0)
            return HT_EXIT_USAGE;
        if (taken > 0) {
            if (strcmp(s, "--db") != 0)
                a->ingest_opt_given = true;
            continue;
        }
        if ((a->kind == SRC_UDP && strcmp(s, "--udp") == 0) ||
            (a->kind == SRC_OTLP && strcmp(s, "--otlp") == 0)) {
            /* its address is optional */
            if (v && v[0] != '-')
                *(a->kind == SRC_UDP ? &a->udp.listen : &a->otlp.listen) =
                    argv[++i];
            continue;
        }
        taken = a->kind == SRC_UDP
                    ? ht_opt_take(ht_udp_opt_table, &a->udp, argc, argv, &i,
                                  err, sizeof(err))
                : a->kind == SRC_OTLP
                    ? ht_opt_take(ht_otlp_opt_table, &a->otlp, argc, argv, &i,
                                  err, sizeof(err))
                : a->kind == SRC_KAFKA
                    ? ht_opt_take(ht_kafka_opt_table, &a->kafka, argc, argv, &i,
                                  err, sizeof(err))
                : a->kind == SRC_KINESIS
                    ? ht_opt_take(ht_kinesis_src_opt_table, &a->kinesis, argc,
                                  argv, &i, err, sizeof(err))
                    : 0;
        if (taken < 0) {
            ht_cli_err("serve: %s", err);
            return HT_EXIT_USAGE;
        }
        if (taken == 0) {
            ht_cli_err("serve: unknown or incomplete option %s (see hoptrace "
                       "serve --help)",
                       s);
            return HT_EXIT_USAGE;
        }
    }
    if (!a->kind && a->ingest_opt_given) {
        ht_cli_err("serve: ingest options (--retain, --batch, ...) go with a "
                   "source: --udp, --otlp, --kafka or --kinesis");
        return HT_EXIT_USAGE;
    }
    return 0;
}

/* Waits for SIGINT/SIGTERM (blocked in every thread, taken here), or for
 * the hosted source to end with an error. The signal, or 0. */
static int wait_for_stop(struct hosted *h)
{
    sigset_t set;
    bool said_end = false;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    for (;;) {
        struct timespec ts = {0, 200 * 1000 * 1000};
        int sig = sigtimedwait(&set, NULL, &ts);

        if (sig > 0)
            return sig;
        if (h && atomic_load(&h->done)) {
            if (h->rc)
                return 0;
            if (!said_end) {
                said_end = true;
                fprintf(stderr, "hoptrace: the source ended; still serving "
                                "(SIGTERM stops)\n");
            }
        }
    }
}

int ht_cmd_serve(struct ht_cli *cli, int argc, char **argv)
{
    struct serve_args a;
    struct ht_server_cfg cfg;
    struct ht_server *srv = NULL;
    struct ht_engine *e = NULL;
    struct hosted h;
    pthread_t th;
    bool help = false, started = false;
    sigset_t set, old;
    char *token = NULL;
    struct ht_stall_cfg stall_cfg = {.threshold_us = 300000000LL,
                                     .max_stuck = 10};
    int rc, exit_code = HT_EXIT_OK;

    if ((rc = parse(cli, argc, argv, &a, &help)))
        return rc;
    if (help) {
        fputs(usage_head, stdout);
        ht_ingest_opts_help(stdout);
        fputs(usage_tail, stdout);
        return HT_EXIT_OK;
    }
    if (a.token_file && !(token = read_token(a.token_file)))
        return HT_EXIT_USAGE;
    if (a.config && ht_cli_load_stage_config(a.config, &stall_cfg)) {
        free(token);
        return HT_EXIT_USAGE;
    }
    /* SIGINT/SIGTERM go to wait_for_stop only: every thread started from
     * here on inherits the mask */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    memset(&h, 0, sizeof(h));
    if (a.kind) {
        a.kafka.until_idle = a.o.until_idle;
        a.kafka.stop = &stop_flag;
        a.kinesis.until_idle = a.o.until_idle;
        a.kinesis.stop = &stop_flag;
        h.ops = source_ops(a.kind);
        rc = h.ops->open(source_cfg(&a), &h.src);
        if (rc) {
            exit_code = rc == HT_ERR_USAGE ? HT_EXIT_USAGE : HT_EXIT_ERROR;
            goto out;
        }
        if (ht_cli_engine_open(cli, &a.o, &e) != HT_ERR_OK) {
            h.ops->close(h.src);
            exit_code = HT_EXIT_ERROR;
            goto out;
        }
        h.e = e;
        h.o = a.o;
        /* Kafka and Kinesis end themselves after --until-idle */
        if (a.kind != SRC_UDP && a.kind != SRC_OTLP)
            h.o.until_idle = 0;
        /* push sources: a sender waits for its commit */
        h.commit_ms = a.kind == SRC_UDP || a.kind == SRC_OTLP ? 50 : 200;
        if (a.kind == SRC_UDP) {
            struct ht_udp_stats st;

            ht_udp_stats(h.src, &st);
            fprintf(stderr, "hoptrace: listening on udp %s\n", st.where);
        } else if (a.kind == SRC_OTLP) {
            struct ht_otlp_stats st;

            ht_otlp_stats(h.src, &st);
            fprintf(stderr,
                    "hoptrace: listening on http://%s/v1/traces (OTLP)\n",
                    st.where);
        }
    }
    memset(&cfg, 0, sizeof(cfg));
    cfg.listen = a.listen;
    cfg.threads = a.threads;
    cfg.token = token;
    cfg.db = cli->db;
    cfg.store = e ? ht_engine_store(e) : NULL;
    cfg.stall_cfg = a.config ? &stall_cfg : NULL;
    rc = ht_server_start(&cfg, &srv);
    if (rc) {
        exit_code = rc == HT_ERR_USAGE ? HT_EXIT_USAGE : HT_EXIT_ERROR;
        goto stop_source;
    }
    if (ht_server_exposed(srv))
        fprintf(stderr,
                "hoptrace: warning: listening on %s, an address other hosts "
                "can reach: whoever reaches it reads every trace in the "
                "store%s\n",
                ht_server_where(srv),
                token ? " (with the token)"
                      : "; bind 127.0.0.1 or require --token FILE");
    fprintf(stderr, "hoptrace: serving http://%s/ (store %s)\n",
            ht_server_where(srv), cli->db);
    fflush(stderr);
    if (e) {
        if (pthread_create(&th, NULL, run_source, &h) != 0) {
            ht_cli_err("serve: cannot start the ingest thread");
            exit_code = HT_EXIT_ERROR;
            goto stop_server;
        }
        started = true;
    }
    wait_for_stop(e ? &h : NULL);
stop_server:
    /* the source stops first (it may take a moment to commit) while the
     * requests in flight finish */
    stop_flag = 1;
    if (e)
        ht_engine_request_stop(e);
    ht_server_stop(srv, SERVE_DRAIN_MS);
stop_source:
    if (started) {
        pthread_join(th, NULL);
        if (h.rc) {
            ht_cli_err("serve: the source stopped: %s (what was committed "
                       "stays)",
                       ht_strerror(h.rc));
            exit_code = HT_EXIT_ERROR;
        }
    }
    if (e) {
        /* Kafka commits its revoked partitions through the engine: the
         * source closes first */
        h.ops->close(h.src);
        if (!a.o.quiet && ht_engine_sync(e) == HT_ERR_OK) {
            char from[300];

            snprintf(from, sizeof(from), "%s",
                     a.kind == SRC_UDP     ? "udp"
                     : a.kind == SRC_OTLP  ? "otlp"
                     : a.kind == SRC_KAFKA ? "Kafka"
                                           : "Kinesis");
            ht_cli_engine_settle(e);
            ht_sink_summary(e, stderr, from);
            fputc('\n', stderr);
        }
        rc = ht_cli_engine_close(e);
        if (rc) {
            ht_cli_err("serve: closing the store failed: %s", ht_strerror(rc));
            exit_code = HT_EXIT_ERROR;
        }
    }
out:
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    ht_cli_free_stage_config(&stall_cfg);
    if (token) {
        explicit_bzero(token, strlen(token));
        free(token);
    }
    return exit_code;
}
