/*
 * cmd_stalls.c - `hoptrace stalls`: every pipeline stage's status as of an
 * evaluation time (cli.md "stalls"), and alert delivery: Alertmanager's
 * POST /api/v2/alerts (re-sent while active, resolved with a past endsAt)
 * and a generic JSON webhook, once or every INTERVAL with --watch.
 *
 * Owned by cli/. The evaluation is query/stalls.c's; this file parses
 * flags and the thresholds file, renders alerts and speaks HTTP (libcurl).
 * An HTTP failure is retried with back-off and reported, never fatal to
 * the watcher.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "ht_engine.h"
#include "ht_query.h"
#include "ht_store.h"

#ifdef HT_CLI_NET
#include <curl/curl.h>
#endif
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
    "usage: hoptrace [--db DIR] stalls [--threshold DURATION] [--now TIME]\n"
    "                [--format text|json] [--config FILE] [--max-stuck N]\n"
    "                [--alertmanager URL] [--webhook URL]\n"
    "                [--watch INTERVAL] [--alert-hold DURATION]\n"
    "\n"
    "Evaluates every stage of the pipeline - (producer, via, resource,\n"
    "consumer), e.g. create-order -> sqs:orders -> process-order - as of\n"
    "TIME: ok (nothing waits longer than the threshold), lagging (something\n"
    "does, but the consumer consumed within the last threshold window) or\n"
    "stalled (something does and the consumer has gone quiet). Non-ok\n"
    "stages list their oldest stuck requests (root ids for hoptrace trace).\n"
    "\n"
    "  --threshold D       default threshold (default 300s; units ms s m h d)\n"
    "  --now TIME          evaluation time: epoch seconds or RFC 3339\n"
    "                      (default: now)\n"
    "  --config FILE       thresholds per stage: {\"threshold\": \"300s\",\n"
    "                      \"stages\": {\"<stage, resource or "
    "via:resource>\":\n"
    "                      \"60s\"}}\n"
    "  --max-stuck N       stuck requests listed per stage (default 10)\n"
    "  --alertmanager URL  post alerts to Alertmanager (URL of the server,\n"
    "                      or of its /api/v2/alerts)\n"
    "  --webhook URL       post the alerts as one JSON document\n"
    "  --watch INTERVAL    re-evaluate and re-send every INTERVAL until\n"
    "                      SIGINT / SIGTERM (--now is then the wall clock)\n"
    "  --alert-hold D      how long Alertmanager keeps an alert active\n"
    "                      without a re-send (default 3 x INTERVAL, at\n"
    "                      least 5m)\n"
    "\n"
    "exit status: 0 nothing stalled, 4 a stage is stalled, 1 no store,\n"
    "2 usage error, 5 an error (alert delivery failed after retries)\n";

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

int ht_cli_load_stage_config(const char *path, struct ht_stall_cfg *cfg)
{
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je), *v, *stages;
    const char *key;
    size_t n = 0;

    if (!root) {
        ht_cli_err("cannot read %s: %s (line %d); it must be JSON like "
                   "{\"threshold\": \"300s\", \"stages\": {\"orders\": "
                   "\"60s\"}}",
                   path, je.text, je.line);
        return -1;
    }
    if (!json_is_object(root))
        goto bad;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "threshold") && strcmp(key, "stages"))
            goto bad;
    }
    v = json_object_get(root, "threshold");
    if (v && (!json_is_string(v) ||
              ht_parse_duration(json_string_value(v), &cfg->threshold_us)))
        goto bad;
    stages = json_object_get(root, "stages");
    if (stages && !json_is_object(stages))
        goto bad;
    if (stages && json_object_size(stages)) {
        cfg->override_keys =
            calloc(json_object_size(stages), sizeof(*cfg->override_keys));
        cfg->override_us =
            calloc(json_object_size(stages), sizeof(*cfg->override_us));
        if (!cfg->override_keys || !cfg->override_us) {
            json_decref(root);
            ht_cli_free_stage_config(cfg);
            return -1;
        }
        json_object_foreach(stages, key, v)
        {
            if (!json_is_string(v) ||
                ht_parse_duration(json_string_value(v), &cfg->override_us[n]))
                goto bad;
            cfg->override_keys[n++] = strdup(key);
            cfg->noverrides = n;
        }
    }
    json_decref(root);
    return 0;
bad:
    ht_cli_err("%s: expected {\"threshold\": \"300s\", \"stages\": {\"<stage "
               "name, resource or via:resource>\": \"60s\"}} with durations "
               "like 90s, 5m, 1h",
               path);
    json_decref(root);
    ht_cli_free_stage_config(cfg);
    return -1;
}

void ht_cli_free_stage_config(struct ht_stall_cfg *cfg)
{
    for (size_t i = 0; i < cfg->noverrides; i++)
        free((char *)cfg->override_keys[i]);
    free(cfg->override_keys);
    free(cfg->override_us);
    cfg->override_keys = NULL;
    cfg->override_us = NULL;
    cfg->noverrides = 0;
}

/* ---- alerts ------------------------------------------------------------ */

static void rfc3339(int64_t us, char out[64])
{
    time_t s = (time_t)(us / 1000000);
    struct tm tm;

    if (us < 0)
        s = 0;
    gmtime_r(&s, &tm);
    snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)((us % 1000000) / 1000));
}

static void jpair(struct ht_buf *b, const char *k, const char *v, bool comma)
{
    if (comma)
        ht_buf_addc(b, ',');
    ht_buf_json_str(b, k);
    ht_buf_addc(b, ':');
    ht_buf_json_str(b, v ? v : "unknown");
}

/*
 * One alert per stage and alert name: StreamStageStalled (critical) and
 * StreamStageLagging (warning). The one matching the stage's status is
 * active with an endsAt `hold` ahead of the wall clock, so Alertmanager
 * keeps it while re-sends arrive; the other is resolved (endsAt in the
 * past), which clears an alert an earlier evaluation raised.
 */
static void alert(struct ht_buf *b, const struct ht_stalls *st,
                  const struct ht_stage *g, int which, int64_t wall,
                  int64_t hold, bool with_stage, bool *first)
{
    bool active = g->status == which;
    char t[64], n[64];

    if (!*first)
        ht_buf_addc(b, ',');
    *first = false;
    ht_buf_adds(b, "{");
    if (with_stage)
        ht_buf_printf(b, "\"status\":\"%s\",", active ? "firing" : "resolved");
    ht_buf_adds(b, "\"labels\":{");
    jpair(b, "alertname",
          which == HT_STAGE_STALLED ? "StreamStageStalled"
                                    : "StreamStageLagging",
          false);
    jpair(b, "stage", g->name, true);
    jpair(b, "via", g->via, true);
    jpair(b, "resource", g->resource, true);
    jpair(b, "producer", g->producer, true);
    jpair(b, "consumer", g->consumer, true);
    jpair(b, "severity", which == HT_STAGE_STALLED ? "critical" : "warning",
          true);
    ht_buf_adds(b, "},\"annotations\":{");
    {
        struct ht_buf ex;

        ht_buf_init(&ex);
        for (size_t i = 0; i < g->nstuck; i++) {
            if (i)
                ht_buf_addc(&ex, ' ');
            ht_buf_adds(&ex,
                        g->stuck[i].root ? g->stuck[i].root : g->stuck[i].span);
        }
        ht_buf_printf(b, "\"summary\":");
        {
            char *s = NULL;

            if (asprintf(&s,
                         "%s is %s: %llu item(s) waiting longer than %.0f s, "
                         "oldest %.0f s",
                         g->name, ht_stage_status_name(g->status),
                         (unsigned long long)g->overdue,
                         (double)g->threshold_us / 1e6,
                         g->oldest_pending_age_s) < 0)
                s = NULL;
            ht_buf_json_str(b, s ? s : g->name);
            free(s);
        }
        snprintf(n, sizeof(n), "%llu", (unsigned long long)g->pending);
        jpair(b, "pending", n, true);
        snprintf(n, sizeof(n), "%llu", (unsigned long long)g->overdue);
        jpair(b, "overdue", n, true);
        snprintf(n, sizeof(n), "%.1f", g->oldest_pending_age_s);
        jpair(b, "oldest_pending_age_s", n, true);
        jpair(b, "example_requests", ex.len ? ex.data : "", true);
        rfc3339(st->now_us, t);
        jpair(b, "evaluated_at", t, true);
        ht_buf_free(&ex);
    }
    ht_buf_adds(b, "}");
    if (active) {
        /* when it went over the threshold, in the data's time; never in
         * the future for Alertmanager */
        int64_t since = g->oldest_pending_us + g->threshold_us;

        rfc3339(since < wall ? since : wall, t);
        ht_buf_printf(b, ",\"startsAt\":\"%s\"", t);
        rfc3339(wall + hold, t);
        ht_buf_printf(b, ",\"endsAt\":\"%s\"", t);
    } else {
        rfc3339(wall - 1000000, t);
        ht_buf_printf(b, ",\"endsAt\":\"%s\"", t);
    }
    if (with_stage) {
        ht_buf_adds(b, ",\"stage\":");
        ht_stage_json(g, b);
    }
    ht_buf_adds(b, "}");
}

static void alerts_body(struct ht_buf *b, const struct ht_stalls *st,
                        int64_t wall, int64_t hold, bool webhook)
{
    bool first = true, firing = false;
    char t[64];

    for (size_t i = 0; i < st->nstages; i++)
        firing |= st->stages[i].status != HT_STAGE_OK;
    if (webhook) {
        rfc3339(wall, t);
        ht_buf_printf(b,
                      "{\"version\":\"1\",\"source\":\"hoptrace\","
                      "\"status\":\"%s\",\"now_us\":%lld,\"sent_at\":\"%s\","
                      "\"alerts\":[",
                      firing ? "firing" : "resolved", (long long)st->now_us, t);
    } else {
        ht_buf_addc(b, '[');
    }
    for (size_t i = 0; i < st->nstages; i++) {
        alert(b, st, &st->stages[i], HT_STAGE_STALLED, wall, hold, webhook,
              &first);
        alert(b, st, &st->stages[i], HT_STAGE_LAGGING, wall, hold, webhook,
              &first);
    }
    ht_buf_adds(b, webhook ? "]}" : "]");
}

/* Sleeps up to us, waking early on SIGINT/SIGTERM. */
static void nap(int64_t us)
{
    while (us > 0 && !stop) {
        int64_t step = us > 200000 ? 200000 : us;

        usleep((useconds_t)step);
        us -= step;
    }
}

#ifdef HT_CLI_NET
static size_t sink_body(char *p, size_t sz, size_t n, void *ctx)
{
    struct ht_buf *b = ctx;

    if (b->len < 2048)
        ht_buf_add(b, p, sz * n < 2048 ? sz * n : 2048);
    return sz * n;
}

/* POST with retries (0.5 s, 1 s, 2 s apart). 0 on a 2xx answer. */
static int post(const char *what, const char *url, const struct ht_buf *body)
{
    int64_t wait = 500000;

    for (int attempt = 1;; attempt++) {
        CURL *c = curl_easy_init();
        struct curl_slist *h = NULL;
        struct ht_buf resp;
        long code = 0;
        CURLcode rc;

        if (!c)
            return -1;
        ht_buf_init(&resp);
        h = curl_slist_append(h, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body->data ? body->data : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body->len);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
        rc = curl_easy_perform(c);
        if (rc == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        curl_slist_free_all(h);
        curl_easy_cleanup(c);
        if (rc == CURLE_OK && code >= 200 && code < 300) {
            ht_buf_free(&resp);
            return 0;
        }
        if (rc != CURLE_OK)
            ht_cli_err("%s: POST %s failed (attempt %d of 4): %s", what, url,
                       attempt, curl_easy_strerror(rc));
        else
            ht_cli_err("%s: POST %s answered HTTP %ld (attempt %d of 4): "
                       "%.300s",
                       what, url, code, attempt, resp.len ? resp.data : "");
        ht_buf_free(&resp);
        /* a 4xx will not get better by itself */
        if (attempt == 4 || stop || (code >= 400 && code < 500))
            return -1;
        nap(wait);
        wait *= 2;
    }
}
#else
/* The hoptrace built without libcurl runs hoptrace-full for alerts before
 * doing anything (ht_cmd_stalls): never called. */
static int post(const char *what, const char *url, const struct ht_buf *body)
{
    (void)what;
    (void)url;
    (void)body;
    return -1;
}
#endif

static char *am_url(const char *base)
{
    size_t n = strlen(base);
    char *u;

    if (n >= 14 && strcmp(base + n - 14, "/api/v2/alerts") == 0)
        return strdup(base);
    while (n && base[n - 1] == '/')
        n--;
    if (asprintf(&u, "%.*s/api/v2/alerts", (int)n, base) < 0)
        return NULL;
    return u;
}

/* One evaluation: print it, deliver alerts. Returns the exit status. */
static int evaluate(struct ht_cli *cli, const struct ht_stall_cfg *cfg,
                    int64_t now, const char *fmt, const char *am,
                    const char *hook, int64_t hold)
{
    struct ht_store *s;
    struct ht_stalls *st;
    struct ht_buf out;
    int rc = ht_store_open(cli->db, true, &s);
    int status = HT_EXIT_OK;
    int64_t wall = ht_now_wall_us();

    if (rc == HT_ERR_NOTFOUND) {
        ht_cli_err("no store at %s: ingest telemetry first (hoptrace --db %s "
                   "ingest FILE...)",
                   cli->db, cli->db);
        return HT_EXIT_NOTFOUND;
    }
    if (rc) {
        ht_cli_err("cannot open the store at %s: %s", cli->db, ht_strerror(rc));
        return HT_EXIT_ERROR;
    }
    rc = ht_query_stalls(s, cfg, now, &st);
    if (rc) {
        ht_cli_err("stalls: evaluation failed: %s", ht_strerror(rc));
        ht_store_close(s);
        return HT_EXIT_ERROR;
    }
    ht_buf_init(&out);
    if (strcmp(fmt, "json") == 0)
        ht_stalls_json(st, &out);
    else
        ht_stalls_text(st, &out);
    fwrite(out.data, 1, out.len, stdout);
    fflush(stdout);
    for (size_t i = 0; i < st->nstages; i++)
        if (st->stages[i].status == HT_STAGE_STALLED)
            status = HT_EXIT_STALLED;
    if (am) {
        char *u = am_url(am);

        ht_buf_reset(&out);
        alerts_body(&out, st, wall, hold, false);
        if (!u || post("alertmanager", u, &out))
            status = HT_EXIT_ERROR;
        free(u);
    }
    if (hook) {
        ht_buf_reset(&out);
        alerts_body(&out, st, wall, hold, true);
        if (post("webhook", hook, &out))
            status = HT_EXIT_ERROR;
    }
    ht_buf_free(&out);
    ht_stalls_free(st);
    ht_store_close(s);
    return status;
}

int ht_cmd_stalls(struct ht_cli *cli, int argc, char **argv)
{
    const char *fmt = "text", *am = NULL, *hook = NULL, *config = NULL;
    struct ht_stall_cfg cfg = {.threshold_us = 300000000LL, .max_stuck = 10};
    int64_t now = 0, watch = 0, hold = 0, thr = -1;
    bool have_now = false;
    int status;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return HT_EXIT_OK;
        }
        if (!v || a[0] != '-') {
            ht_cli_err("stalls: unexpected argument %s (see hoptrace stalls "
                       "--help)",
                       a);
            return HT_EXIT_USAGE;
        }
        i++;
        if (strcmp(a, "--format") == 0) {
            fmt = v;
        } else if (strcmp(a, "--db") == 0) {
            cli->db = v;
        } else if (strcmp(a, "--threshold") == 0) {
            if (ht_parse_duration(v, &thr)) {
                ht_cli_err("stalls: --threshold takes a duration like 300s, "
                           "5m or 1h, not '%s'",
                           v);
                return HT_EXIT_USAGE;
            }
        } else if (strcmp(a, "--now") == 0) {
            if (!ht_parse_time(v, &now)) {
                ht_cli_err("stalls: --now takes epoch seconds or an RFC 3339 "
                           "time, not '%s'",
                           v);
                return HT_EXIT_USAGE;
            }
            have_now = true;
        } else if (strcmp(a, "--config") == 0) {
            config = v;
        } else if (strcmp(a, "--max-stuck") == 0) {
            char *end;
            long n = strtol(v, &end, 10);

            if (*end || n < 0 || n > 100000) {
                ht_cli_err("stalls: --max-stuck takes 0..100000");
                return HT_EXIT_USAGE;
            }
            cfg.max_stuck = (size_t)n;
        } else if (strcmp(a, "--alertmanager") == 0) {
            am = v;
        } else if (strcmp(a, "--webhook") == 0) {
            hook = v;
        } else if (strcmp(a, "--watch") == 0) {
            if (ht_parse_duration(v, &watch) || watch < 100000) {
                ht_cli_err("stalls: --watch takes an interval of at least "
                           "100ms, like 30s or 1m");
                return HT_EXIT_USAGE;
            }
        } else if (strcmp(a, "--alert-hold") == 0) {
            if (ht_parse_duration(v, &hold) || hold <= 0) {
                ht_cli_err("stalls: --alert-hold takes a duration like 5m");
                return HT_EXIT_USAGE;
            }
        } else {
            ht_cli_err("stalls: unknown option %s (see hoptrace stalls "
                       "--help)",
                       a);
            return HT_EXIT_USAGE;
        }
    }
    if (strcmp(fmt, "text") && strcmp(fmt, "json")) {
        ht_cli_err("stalls: --format is text or json, not '%s'", fmt);
        return HT_EXIT_USAGE;
    }
    if (config && ht_cli_load_stage_config(config, &cfg))
        return HT_EXIT_USAGE;
    if (thr >= 0)
        cfg.threshold_us = thr; /* the flag wins over the file's default */
    if (!hold)
        hold = watch * 3 > 300000000LL ? watch * 3 : 300000000LL;
#ifdef HT_CLI_NET
    if ((am || hook) && curl_global_init(CURL_GLOBAL_DEFAULT)) {
        ht_cli_err("stalls: libcurl failed to initialise");
        ht_cli_free_stage_config(&cfg);
        return HT_EXIT_ERROR;
    }
#else
    if (am || hook) { /* alerts speak HTTP: hoptrace-full has libcurl */
        ht_cli_free_stage_config(&cfg);
        return ht_cli_exec_full();
    }
#endif
    if (!watch) {
        status = evaluate(cli, &cfg, have_now ? now : ht_now_wall_us(), fmt, am,
                          hook, hold);
    } else {
        struct sigaction sa;

        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        status = HT_EXIT_OK;
        while (!stop) {
            int64_t t0 = ht_now_mono_us();
            int rc = evaluate(cli, &cfg, have_now ? now : ht_now_wall_us(), fmt,
                              am, hook, hold);

            /* a failed round is reported and retried next round */
            if (rc == HT_EXIT_NOTFOUND)
                ht_cli_err("stalls: will look again in %.1f s",
                           (double)watch / 1e6);
            nap(watch - (ht_now_mono_us() - t0));
        }
    }
#ifdef HT_CLI_NET
    if (am || hook)
        curl_global_cleanup();
#endif
    ht_cli_free_stage_config(&cfg);
    return status;
}
