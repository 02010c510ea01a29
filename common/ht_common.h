/*
 * ht_common.h - the small shared toolbox every hoptrace module uses: the
 * error enum and its strings (one X-macro list), reject reasons, logging
 * macros, a bump arena, a growable byte buffer and id/time helpers.
 *
 * Owned by common/. It must not know about JSON, LMDB or any source: it is
 * the bottom of the dependency graph.
 */
#ifndef HT_COMMON_H
#define HT_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- errors ---------------------------------------------------------- */

#define HT_ERRORS(X)                                                           \
    X(OK, "success")                                                           \
    X(NOMEM, "out of memory")                                                  \
    X(IO, "input/output error")                                                \
    X(STORE, "store error")                                                    \
    X(MAPFULL, "store map is full")                                            \
    X(SCHEMA, "store schema version mismatch")                                 \
    X(NOTFOUND, "not found")                                                   \
    X(USAGE, "usage error")                                                    \
    X(INPUT, "input rejected")                                                 \
    X(CORRUPT, "corrupt record")

enum ht_err {
#define HT_E(name, str) HT_ERR_##name,
    HT_ERRORS(HT_E)
#undef HT_E
        HT_ERR__COUNT
};

/* Returns a static string; never NULL. */
const char *ht_strerror(int err);

/* ---- reject reasons (bad input is counted by these) ------------------ */

#define HT_REJECTS(X)                                                          \
    X(NOT_JSON, "not_json")                                                    \
    X(TOO_LARGE, "too_large")                                                  \
    X(TOO_DEEP, "too_deep")                                                    \
    X(MISSING_FIELD, "missing_field")                                          \
    X(BAD_ID, "bad_id")                                                        \
    X(BAD_ENCODING, "bad_encoding")                                            \
    X(UNKNOWN_DOC, "unknown_document")                                         \
    X(TRUNCATED, "truncated")                                                  \
    X(BAD_FIELD, "bad_field")

enum ht_reject {
#define HT_R(name, str) HT_REJ_##name,
    HT_REJECTS(HT_R)
#undef HT_R
        HT_REJ__COUNT
};

const char *ht_reject_name(int reason);
/* -1 when the name is not a reason. */
int ht_reject_from_name(const char *name);

/* ---- logging ---------------------------------------------------------- */

enum { HT_LOG_LVL_ERROR, HT_LOG_LVL_WARN, HT_LOG_LVL_INFO, HT_LOG_LVL_DEBUG };
extern int ht_log_level;

void ht_log_write(int level, const char *tag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The level is tested before the arguments are evaluated. */
#define HT_LOG_(lvl, tag, ...)                                                 \
    do {                                                                       \
        if ((lvl) <= ht_log_level)                                             \
            ht_log_write((lvl), (tag), __VA_ARGS__);                           \
    } while (0)
#define HT_LOG_ERROR(tag, ...) HT_LOG_(HT_LOG_LVL_ERROR, tag, __VA_ARGS__)
#define HT_LOG_WARN(tag, ...) HT_LOG_(HT_LOG_LVL_WARN, tag, __VA_ARGS__)
#define HT_LOG_INFO(tag, ...) HT_LOG_(HT_LOG_LVL_INFO, tag, __VA_ARGS__)
#define HT_LOG_DEBUG(tag, ...) HT_LOG_(HT_LOG_LVL_DEBUG, tag, __VA_ARGS__)

/* Assertions that stay on in release builds. */
#define HT_ASSERT(cond)                                                        \
    do {                                                                       \
        if (!(cond))                                                           \
            ht_assert_fail(#cond, __FILE__, __LINE__);                         \
    } while (0)
_Noreturn void ht_assert_fail(const char *expr, const char *file, int line);

/* ---- arena: bump allocator, reset per batch or per query ------------- */

struct ht_arena;

/* Owned: free with ht_arena_destroy. NULL on allocation failure. */
struct ht_arena *ht_arena_create(void);
void ht_arena_destroy(struct ht_arena *a);
/* Forget every allocation; keeps the first block for reuse. */
void ht_arena_reset(struct ht_arena *a);
/* Forget every allocation; keeps every block for reuse (work done in
 * rounds of similar size, such as the aggregate refresh's slices, then
 * reuses memory already faulted in instead of taking fresh pages). */
void ht_arena_clear(struct ht_arena *a);
/* Memory is borrowed from the arena until its next reset or destroy.
 * Allocation failure aborts the process (like the hot path's callers,
 * it has no way to continue meaningfully). */
void *ht_arena_alloc(struct ht_arena *a, size_t n);
char *ht_arena_strndup(struct ht_arena *a, const char *s, size_t n);
char *ht_arena_strdup(struct ht_arena *a, const char *s);
char *ht_arena_printf(struct ht_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
size_t ht_arena_used(const struct ht_arena *a);

/* Zeroed memory for n items of size bytes, NULL when it cannot be had
 * (or n * size overflows); free with free(). For tables that are read
 * before they are written (open addressing): it writes the zeros, where
 * calloc leaves fresh pages to the kernel, which maps them to its shared
 * zero page on the first read and copies it on the first write, with a
 * TLB flush on the other threads' CPUs each time. */
void *ht_table_alloc(size_t n, size_t size);

/* ---- growable buffer --------------------------------------------------- */

struct ht_buf {
    char *data; /* owned; always NUL-terminated when len > 0 */
    size_t len;
    size_t cap;
};

void ht_buf_init(struct ht_buf *b);
void ht_buf_free(struct ht_buf *b);
void ht_buf_reset(struct ht_buf *b);
/* These abort on allocation failure. */
void ht_buf_add_grow(struct ht_buf *b, const void *p, size_t n);
/* Inline, so that the record packers' fixed-size adds (8 bytes of an
 * integer) are a move, not a call to memcpy. */
static inline void ht_buf_add(struct ht_buf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        ht_buf_add_grow(b, p, n);
        return;
    }
    if (n)
        __builtin_memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}
void ht_buf_addc(struct ht_buf *b, char c);
void ht_buf_adds(struct ht_buf *b, const char *s);
void ht_buf_printf(struct ht_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Length of the valid UTF-8 sequence at s (1 to 4; 1 for ASCII), 0 when
 * the bytes there are not UTF-8. */
size_t ht_utf8_len(const char *s);
/* Appends s as a JSON string literal, quotes included; bytes that are not
 * UTF-8 are written as '?', so the result is always JSON. */
void ht_buf_json_str(struct ht_buf *b, const char *s);
/* Appends "k": (an object member's key and its colon). */
void ht_buf_json_key(struct ht_buf *b, const char *k);
/* Appends s as a JSON string literal, or null when s is NULL. */
void ht_buf_json_str_or_null(struct ht_buf *b, const char *s);
/* Appends n bytes of s for a terminal: control characters (C0, DEL, and
 * C1 as UTF-8) are written as \xNN (C1: \u00NN), so data never moves a
 * cursor or changes colours; a backslash stays as it is. */
void ht_buf_add_printable(struct ht_buf *b, const char *s, size_t n);

/* ---- ids and times ---------------------------------------------------- */

/* Value of a hex digit (either case), -1 for any other byte. */
extern const int8_t ht_hex_tab[256];

/* A 64-bit X-Ray segment id, kept binary. */
struct ht_id8 {
    uint8_t b[8];
};
/* An X-Ray trace id `1-XXXXXXXX-YYYYYYYYYYYYYYYYYYYYYYYY`: 4 bytes of epoch
 * seconds then 12 random bytes (the version is always 1). */
struct ht_tid {
    uint8_t b[16];
};

/* Parse 16 hex digits exactly. Returns false on any other shape. */
bool ht_id8_parse(const char *s, size_t n, struct ht_id8 *out);
/* Writes 16 hex digits + NUL into out[17]. */
void ht_id8_format(const struct ht_id8 *id, char out[17]);
bool ht_id8_is_zero(const struct ht_id8 *id);
bool ht_tid_parse(const char *s, size_t n, struct ht_tid *out);
/* An OpenTelemetry trace id: 32 hex digits, the same 128 bits as the
 * X-Ray form (5759e988bd862e3fe1be46a994272793 is
 * 1-5759e988-bd862e3fe1be46a994272793). */
bool ht_tid_parse_otel(const char *s, size_t n, struct ht_tid *out);
/* Writes 35 chars + NUL into out[36]. */
void ht_tid_format(const struct ht_tid *t, char out[36]);
bool ht_tid_is_zero(const struct ht_tid *t);

/* Float epoch seconds to integer microseconds, rounded to nearest. */
int64_t ht_secs_to_us(double secs);
/* Parse an ISO 8601 / RFC 3339 timestamp (`2024-07-01T08:54:54.125Z`,
 * `2021-05-03 11:47:12,494+0000`, offsets allowed). */
bool ht_parse_iso8601(const char *s, int64_t *out_us);
/* A time as the commands and serve take it: epoch seconds (fractions
 * allowed) or RFC 3339. */
bool ht_parse_time(const char *s, int64_t *out_us);

/* FNV-1a 64; used for synthetic ids and hashing. Stored: keys, filters
 * and ids made with it must not change. */
uint64_t ht_hash64(const void *p, size_t n);
/* A hash for in-memory tables only (never stored, may change): eight
 * bytes a step, well mixed in every bit. */
uint64_t ht_hash_mem(const void *p, size_t n);
/* One splitmix64 step's output for state z (z + the golden gamma, then
 * its finaliser): 64 well-mixed bits of z. A PRNG seed, a time made a
 * seed, a hash made into independent probes. */
uint64_t ht_mix64(uint64_t z);

/* Monotonic clock in microseconds (for progress and timing). */
int64_t ht_now_mono_us(void);
/* Wall clock in microseconds since the epoch. */
int64_t ht_now_wall_us(void);
/* The cores online (1 when the system does not tell): how many threads
 * pure computation can use. */
unsigned ht_cores(void);

#endif
