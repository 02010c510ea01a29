/*
 * fuzz.h - what every fuzz target (fuzz/fuzz_*.c) defines: libFuzzer's
 * entry point. Built two ways (fuzz/CMakeLists.txt): with clang's
 * -fsanitize=fuzzer for fuzzing (scripts/fuzz.sh), and with any compiler
 * against replay.c, which feeds it the files of a corpus so ctest replays
 * the checked-in inputs under the sanitizers on every run.
 *
 * A target must never crash, leak, or trip a sanitizer on any input, and
 * must not keep state between inputs that changes what it does.
 */
#ifndef HT_FUZZ_H
#define HT_FUZZ_H

#include "ht_store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fuzz/util.c. A writable store in a new folder under $TMPDIR (or /tmp),
 * the same one on every call, closed and removed at exit; *created on the
 * call that made it. NULL when it cannot be made. */
struct ht_store *fuzz_scratch_store(bool *created);
/* Appends the file at path to *buf (*len bytes used of *cap, realloc'd);
 * 0, or -1 with the reason on stderr. */
int fuzz_read_file(const char *path, uint8_t **buf, size_t *len, size_t *cap);

#endif
