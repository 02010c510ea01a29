/*
 * ingest_kafka.c - `hoptrace ingest --kafka`. Not built yet: it answers
 * with a usage error until the live source lands.
 */
#include "cli.h"

int ht_cmd_ingest_kafka(struct ht_cli *cli, int argc, char **argv)
{
    (void)cli;
    (void)argc;
    (void)argv;
    ht_cli_err("ingest --kafka is not available in this version yet; "
               "ingest files or stdin");
    return HT_EXIT_USAGE;
}
