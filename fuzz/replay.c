/*
 * replay.c - a main() for the fuzz targets without libFuzzer: runs the
 * target once on every file named, or every file in a folder named, and
 * says how many. ctest runs it on fuzz/corpus/<target>/ (seeds and every
 * input that once crashed a target) and on fixtures/, under the
 * sanitizers in CI's ASan+UBSan build. With --join, each folder named
 * after it is one input: its files one after the other (a fixture's
 * segments and logs, which stitch together), less its expected.json.
 */
#define _GNU_SOURCE
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct input {
    uint8_t *buf;
    size_t len, cap;
};

/* Appends the file at path to in. */
static int slurp(const char *path, struct input *in)
{
    return fuzz_read_file(path, &in->buf, &in->len, &in->cap) ? 1 : 0;
}

static int run_file(const char *path, size_t *n)
{
    struct input in = {0};
    int bad = slurp(path, &in);

    if (!bad) {
        LLVMFuzzerTestOneInput(in.buf, in.len);
        (*n)++;
    }
    free(in.buf);
    return bad;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A folder's files (not its subfolders' files: a corpus is flat, and
 * fixtures/ is named folder by folder), in name order: each one input, or
 * all of them one input (join). */
static int run_dir(const char *dir, bool join, size_t *n)
{
    struct input in = {0};
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t nn = 0, cap = 0;
    int bad = 0;

    if (!d) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    while ((e = readdir(d))) {
        char *p;
        struct stat st;

        if (e->d_name[0] == '.' ||
            (join && strcmp(e->d_name, "expected.json") == 0))
            continue;
        if (asprintf(&p, "%s/%s", dir, e->d_name) < 0)
            return 1;
        if (stat(p, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(p);
            continue;
        }
        if (nn == cap) {
            char **nb = realloc(names, (cap ? cap * 2 : 64) * sizeof(*nb));

            if (!nb)
                return 1;
            names = nb;
            cap = cap ? cap * 2 : 64;
        }
        names[nn++] = p;
    }
    closedir(d);
    if (nn)
        qsort(names, nn, sizeof(*names), cmp_str);
    for (size_t i = 0; i < nn; i++) {
        bad |= join ? slurp(names[i], &in) : run_file(names[i], n);
        free(names[i]);
    }
    free(names);
    if (join && nn && !bad) {
        LLVMFuzzerTestOneInput(in.buf, in.len);
        (*n)++;
    }
    free(in.buf);
    return bad;
}

int main(int argc, char **argv)
{
    size_t n = 0;
    int bad = 0;
    bool join = false;

    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        fprintf(stderr,
                "usage: %s [--join] FILE|DIR...\n"
                "Runs this fuzz target once on each file (a folder: each "
                "file in it;\nafter --join, a folder's files joined as one "
                "input, less expected.json).\n",
                argv[0]);
        return argc < 2 ? 2 : 0;
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;

        if (strcmp(argv[i], "--join") == 0) {
            join = true;
        } else if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            bad = 1;
        } else if (S_ISDIR(st.st_mode)) {
            bad |= run_dir(argv[i], join, &n);
        } else {
            bad |= run_file(argv[i], &n);
        }
    }
    printf("%s: %zu inputs run\n", argv[0], n);
    return bad;
}
