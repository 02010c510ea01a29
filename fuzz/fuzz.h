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

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
