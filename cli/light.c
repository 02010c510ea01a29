/*
 * light.c - the commands `hoptrace` (built without HT_CLI_NET) hands to
 * hoptrace-full: those that need librdkafka, libcurl, libmicrohttpd or
 * libcrypto. Loading those libraries and theirs (about 35 shared objects)
 * was 3 of the 4.3 ms every hoptrace process spent starting, so the
 * binary that answers queries leaves them out and, for these commands,
 * executes its sibling with the same arguments (cli.h).
 */
#define _GNU_SOURCE
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#define HT_FULL_NAME "hoptrace-full"

int ht_cli_exec_full(void)
{
    char self[PATH_MAX], path[PATH_MAX + sizeof(HT_FULL_NAME)];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    char *slash;

    if (n <= 0) {
        ht_cli_err("cannot find this program's own path (/proc/self/exe): %s",
                   strerror(errno));
        return HT_EXIT_ERROR;
    }
    self[n] = 0;
    slash = strrchr(self, '/');
    if (slash)
        slash[1] = 0;
    snprintf(path, sizeof(path), "%s%s", slash ? self : "", HT_FULL_NAME);
    execv(path, ht_cli_argv);
    ht_cli_err("this command needs %s, the build of hoptrace with Kafka, "
               "Kinesis, OTLP, serve and alerting, next to this program: "
               "%s: %s (`cmake --build build` builds both)",
               HT_FULL_NAME, path, strerror(errno));
    return HT_EXIT_ERROR;
}

/* A command of hoptrace-full: run it there. */
#define HT_FULL_ONLY(fn)                                                       \
    int fn(struct ht_cli *cli, int argc, char **argv)                          \
    {                                                                          \
        (void)cli;                                                             \
        (void)argc;                                                            \
        (void)argv;                                                            \
        return ht_cli_exec_full();                                             \
    }

HT_FULL_ONLY(ht_cmd_ingest_kafka)
HT_FULL_ONLY(ht_cmd_ingest_kinesis)
HT_FULL_ONLY(ht_cmd_ingest_otlp)
HT_FULL_ONLY(ht_cmd_serve)
