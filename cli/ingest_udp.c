/*
 * ingest_udp.c - `hoptrace ingest --udp`. Not built yet: it answers
 * with a usage error until the live source lands.
 */
#include "cli.h"

int ht_cmd_ingest_udp(struct ht_cli *cli, int argc, char **argv)
{
    (void)cli;
    (void)argc;
    (void)argv;
    ht_cli_err("ingest --udp is not available in this version yet; "
               "ingest files or stdin");
    return HT_EXIT_USAGE;
}
