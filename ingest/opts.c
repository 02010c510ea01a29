/*
 * opts.c - declarative option tables (after fluent-bit's config map): one
 * row per option with its type, name, default, field offset and help, read
 * both by the argument parser (ht_opt_take) and by --help (ht_opt_help),
 * so the two cannot drift. Also the table of the options every ingest
 * source shares.
 *
 * Owned by ingest/ (library ht_engine). It must not print anything but
 * --help text to the stream it is given.
 */
#define _GNU_SOURCE
#include "ht_engine.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

const struct ht_opt ht_ingest_opt_table[] = {
    {HT_OPT_FLAG, "--strict", NULL, NULL, NULL,
     offsetof(struct ht_ingest_opts, strict), 0, 0,
     "exit 3 when anything was rejected (the good part is still "
     "committed)"},
    {HT_OPT_COUNT, "--batch", NULL, "N", "8192",
     offsetof(struct ht_ingest_opts, batch_docs), 1, 1000000,
     "records per write transaction"},
    {HT_OPT_FLAG, "--quiet", "-q", NULL, NULL,
     offsetof(struct ht_ingest_opts, quiet), 0, 0, "no summary line"},
    {HT_OPT_FLAG, "--durable", NULL, NULL, NULL,
     offsetof(struct ht_ingest_opts, durable), 0, 0,
     "flush every commit to disk (default: atomic commits, safe from "
     "kill -9, written back by the OS)"},
    {HT_OPT_SECONDS, "--until-idle", NULL, "S", NULL,
     offsetof(struct ht_ingest_opts, until_idle), 0, 1e6,
     "live sources (--kafka, --kinesis, --udp, --otlp) stop after S seconds "
     "without input"},
    {HT_OPT_DURATION, "--retain", NULL, "DURATION", NULL,
     offsetof(struct ht_ingest_opts, retain_us), 0, 0,
     "drop requests whose last event is older than DURATION (90m, 48h, "
     "2d) before the newest event in the store"},
    {HT_OPT_FLAG, "--no-aggregates", NULL, NULL, NULL,
     offsetof(struct ht_ingest_opts, no_aggregates), 0, 0,
     "do not keep the summaries behind endpoints/hotspots current while "
     "ingesting (a bulk load that runs `hoptrace refresh` once at the end)"},
    {HT_OPT_STRING, "--log-group", NULL, "NAME", NULL,
     offsetof(struct ht_ingest_opts, log_group), 0, 0,
     "the log group of log events whose envelope names none (aws logs "
     "filter-log-events output): /aws/lambda/NAME names their function"},
    {HT_OPT_STRING, "--db", NULL, "DIR", NULL,
     offsetof(struct ht_ingest_opts, db), 0, 0,
     "the store (also a global option)"},
    HT_OPT_END};

int ht_parse_duration(const char *s, int64_t *out_us)
{
    char *end;
    double v, mult = 1e6;

    if (!s || !*s)
        return -1;
    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || !(v >= 0) || !isfinite(v))
        return -1;
    if (*end == '\0' || strcmp(end, "s") == 0)
        mult = 1e6;
    else if (strcmp(end, "ms") == 0)
        mult = 1e3;
    else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
        mult = 60e6;
    else if (strcmp(end, "h") == 0)
        mult = 3600e6;
    else if (strcmp(end, "d") == 0)
        mult = 86400e6;
    else
        return -1;
    if (v * mult > 9.2e18)
        return -1;
    *out_us = (int64_t)llround(v * mult);
    return 0;
}

/* Parses `val` into the field of o. 0, or -1 with err filled. */
static int set_value(const struct ht_opt *o, void *base, const char *val,
                     char *err, size_t errn)
{
    char *field = (char *)base + o->offset;
    char *end;

    switch (o->type) {
    case HT_OPT_FLAG:
        *(bool *)(void *)field = true;
        return 0;
    case HT_OPT_COUNT: {
        long long v;

        errno = 0;
        v = strtoll(val, &end, 10);
        if (errno || end == val || *end || v < (long long)o->min ||
            (o->max > 0 && v > (long long)o->max)) {
            snprintf(err, errn, "%s takes %.0f to %.0f, not %s", o->name,
                     o->min, o->max, val);
            return -1;
        }
        *(size_t *)(void *)field = (size_t)v;
        return 0;
    }
    case HT_OPT_SECONDS: {
        double v;

        errno = 0;
        v = strtod(val, &end);
        if (errno || end == val || *end || !(v > o->min) ||
            (o->max > 0 && v > o->max)) {
            snprintf(err, errn, "%s takes a number of seconds > %g, not %s",
                     o->name, o->min, val);
            return -1;
        }
        *(double *)(void *)field = v;
        return 0;
    }
    case HT_OPT_DURATION: {
        int64_t us;

        if (ht_parse_duration(val, &us) != 0 || us <= 0) {
            snprintf(err, errn,
                     "%s takes a duration such as 90m, 48h or 2d, not %s",
                     o->name, val);
            return -1;
        }
        *(int64_t *)(void *)field = us;
        return 0;
    }
    case HT_OPT_STRING:
        *(const char **)(void *)field = val;
        return 0;
    case HT_OPT_LIST: {
        struct ht_opt_list *l = (struct ht_opt_list *)(void *)field;

        if (l->n >= HT_OPT_LIST_MAX) {
            snprintf(err, errn, "%s given more than %d times", o->name,
                     HT_OPT_LIST_MAX);
            return -1;
        }
        l->v[l->n++] = val;
        return 0;
    }
    case HT_OPT__END:
        break;
    }
    snprintf(err, errn, "%s: bad option table", o->name);
    return -1;
}

int ht_opt_defaults(const struct ht_opt *t, void *base)
{
    char err[160];

    for (; t->type != HT_OPT__END; t++) {
        char *field = (char *)base + t->offset;

        switch (t->type) {
        case HT_OPT_FLAG:
            *(bool *)(void *)field = false;
            break;
        case HT_OPT_COUNT:
            *(size_t *)(void *)field = 0;
            break;
        case HT_OPT_SECONDS:
            *(double *)(void *)field = 0;
            break;
        case HT_OPT_DURATION:
            *(int64_t *)(void *)field = 0;
            break;
        case HT_OPT_STRING:
            *(const char **)(void *)field = NULL;
            break;
        case HT_OPT_LIST:
            memset(field, 0, sizeof(struct ht_opt_list));
            break;
        case HT_OPT__END:
            break;
        }
        if (t->def && t->type != HT_OPT_FLAG &&
            set_value(t, base, t->def, err, sizeof(err)) != 0)
            return -1;
    }
    return 0;
}

int ht_opt_take(const struct ht_opt *t, void *base, int argc, char **argv,
                int *i, char *err, size_t errn)
{
    const char *a = argv[*i];

    for (; t->type != HT_OPT__END; t++) {
        const char *val = NULL;
        size_t nl = strlen(t->name);

        if (strcmp(a, t->name) == 0 || (t->alias && strcmp(a, t->alias) == 0)) {
            if (t->type != HT_OPT_FLAG) {
                if (*i + 1 >= argc) {
                    snprintf(err, errn, "%s needs a value (%s)", t->name,
                             t->arg ? t->arg : "?");
                    return -1;
                }
                val = argv[++*i];
            }
        } else if (t->type != HT_OPT_FLAG && strncmp(a, t->name, nl) == 0 &&
                   a[nl] == '=') {
            val = a + nl + 1; /* --batch=100 */
        } else {
            continue;
        }
        return set_value(t, base, val, err, errn) == 0 ? 1 : -1;
    }
    return 0;
}

void ht_opt_help(const struct ht_opt *t, FILE *f)
{
    for (; t->type != HT_OPT__END; t++) {
        char head[64];
        int w;

        w = snprintf(head, sizeof(head), "%s%s%s%s%s", t->name,
                     t->alias ? ", " : "", t->alias ? t->alias : "",
                     t->arg ? " " : "", t->arg ? t->arg : "");
        fprintf(f, "  %-20s ", head);
        if (w > 20)
            fprintf(f, "\n  %-20s ", "");
        /* wrap the help text at 76 columns */
        {
            char line[512];
            const char *h = line;
            int col = 23;
            bool first = true;

            if (t->def)
                snprintf(line, sizeof(line), "%s (default %s)", t->help,
                         t->def);
            else
                snprintf(line, sizeof(line), "%s", t->help);
            while (*h) {
                const char *sp = strchr(h, ' ');
                int wl = sp ? (int)(sp - h) : (int)strlen(h);

                if (!first && col + 1 + wl > 76) {
                    fprintf(f, "\n  %-20s ", "");
                    col = 23;
                } else if (!first) {
                    fputc(' ', f);
                    col++;
                }
                fprintf(f, "%.*s", wl, h);
                col += wl;
                first = false;
                h += wl;
                while (*h == ' ')
                    h++;
            }
        }
        fputc('\n', f);
    }
}
