/*
 * util.c - what several fuzz targets (and replay.c) need: a scratch store
 * that is removed at exit, and a whole file read into memory.
 */
#define _GNU_SOURCE
#include "fuzz.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct ht_store *scratch;
static char scratch_dir[64];

static void remove_scratch(void)
{
    char p[128];

    ht_store_close(scratch);
    scratch = NULL;
    for (const char *const *f =
             (const char *const[]){"data.mdb", "lock.mdb", "map.lock", NULL};
         *f; f++) {
        snprintf(p, sizeof(p), "%s/%s", scratch_dir, *f);
        unlink(p);
    }
    rmdir(scratch_dir);
}

struct ht_store *fuzz_scratch_store(bool *created)
{
    const char *tmp = getenv("TMPDIR");

    *created = false;
    if (scratch)
        return scratch;
    snprintf(scratch_dir, sizeof(scratch_dir), "%s/hoptrace-fuzz-XXXXXX",
             tmp && *tmp && strlen(tmp) < 40 ? tmp : "/tmp");
    if (!mkdtemp(scratch_dir))
        return NULL;
    if (ht_store_open(scratch_dir, false, &scratch) != HT_ERR_OK) {
        rmdir(scratch_dir);
        return NULL;
    }
    atexit(remove_scratch);
    *created = true;
    return scratch;
}

int fuzz_read_file(const char *path, uint8_t **buf, size_t *len, size_t *cap)
{
    FILE *f = fopen(path, "rb");

    if (!f) {
        fprintf(stderr, "fuzz: %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (;;) {
        size_t got;

        if (*len == *cap) {
            size_t c = *cap ? *cap * 2 : 65536;
            uint8_t *nb = realloc(*buf, c);

            if (!nb) {
                fprintf(stderr, "fuzz: %s: out of memory\n", path);
                fclose(f);
                return -1;
            }
            *buf = nb;
            *cap = c;
        }
        got = fread(*buf + *len, 1, *cap - *len, f);
        *len += got;
        if (got == 0)
            break;
    }
    fclose(f);
    return 0;
}
