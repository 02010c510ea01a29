/*
 * hjson.h - the hot path's JSON reader: simdjson's DOM parser (C++, in
 * hjson.cpp) behind a small C interface in the spirit of jansson's, so the
 * decoders stay C.
 *
 * A parse fills the parser's tape; an hj value is a borrowed view (tape
 * position) into it, valid until the same parser parses again or is freed.
 * Strings are NUL-terminated in the parser's string buffer. Nothing is
 * allocated per value: parsing a document costs no mallocs once the
 * parser's buffers have grown to the largest document seen (and they are
 * shrunk again after an unusually large one, so memory stays bounded).
 *
 * Looking a key up scans the object: call sites that read many fields of
 * one object use hj_fields, which reads them all in one pass. As with
 * jansson, the last of duplicate keys wins.
 *
 * Owned by ingest/; internal to it.
 */
#ifndef HT_HJSON_H
#define HT_HJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A value: an opaque (document, tape index) pair; all zero = absent. */
typedef struct hj {
    const void *doc;
    size_t idx;
} hj;

#define HJ_NONE ((hj){NULL, 0})

enum hj_type {
    HJ_ABSENT = 0,
    HJ_NULL,
    HJ_TRUE,
    HJ_FALSE,
    HJ_INT,  /* fits int64 */
    HJ_UINT, /* above INT64_MAX */
    HJ_REAL,
    HJ_STRING,
    HJ_ARRAY,
    HJ_OBJECT
};

struct hj_parser;

/* A document nested deeper than max_depth fails to parse. */
struct hj_parser *hj_parser_new(size_t max_depth);
void hj_parser_free(struct hj_parser *p);

/* Parses n bytes (copied into the parser's padded buffer). Returns 0 and
 * the root, or -1 with a one-line reason in err (-2 when the reason is a
 * document nested deeper than the parser's max_depth). NUL characters inside
 * strings are accepted only when allow_nul. */
int hj_parse(struct hj_parser *p, const char *s, size_t n, bool allow_nul,
             hj *root, char *err, size_t errcap);
/* Bytes readable after a padded value, whatever they hold. */
#define HJ_PADDING 64
/* hj_parse of n bytes followed by HJ_PADDING more that can be read: parsed
 * where they are, not copied. */
int hj_parse_padded(struct hj_parser *p, const char *s, size_t n,
                    bool allow_nul, hj *root, char *err, size_t errcap);

enum hj_type hj_type(hj v);

static inline bool hj_ok(hj v)
{
    return v.doc != NULL;
}
static inline bool hj_is_object(hj v)
{
    return hj_type(v) == HJ_OBJECT;
}
static inline bool hj_is_array(hj v)
{
    return hj_type(v) == HJ_ARRAY;
}
static inline bool hj_is_string(hj v)
{
    return hj_type(v) == HJ_STRING;
}
static inline bool hj_is_true(hj v)
{
    return hj_type(v) == HJ_TRUE;
}
static inline bool hj_is_false(hj v)
{
    return hj_type(v) == HJ_FALSE;
}
static inline bool hj_is_null(hj v)
{
    return hj_type(v) == HJ_NULL;
}
static inline bool hj_is_integer(hj v)
{
    enum hj_type t = hj_type(v);

    return t == HJ_INT || t == HJ_UINT;
}
static inline bool hj_is_number(hj v)
{
    enum hj_type t = hj_type(v);

    return t == HJ_INT || t == HJ_UINT || t == HJ_REAL;
}

/* The member `key` of an object; absent when v is not an object or has no
 * such member. */
hj hj_get(hj obj, const char *key);
/* Reads the members named in keys[0..n) in one pass over obj: out[i] is
 * the value of keys[i], or absent. */
void hj_fields(hj obj, const char *const *keys, size_t n, hj *out);

/* A string's bytes (NUL-terminated) and length; NULL unless a string. */
const char *hj_str(hj v);
size_t hj_strlen(hj v);
/* Numbers: 0 when not a number; a real is truncated by hj_int. */
int64_t hj_int(hj v);
double hj_num(hj v);
/* Elements of an array or members of an object (0 otherwise). */
size_t hj_size(hj v);

/* The i-th element of an array (absent when out of range). Walks the
 * array: loop with hj_iter instead. */
hj hj_at(hj arr, size_t i);

/* Iteration over an array's elements or an object's members. */
struct hj_iter {
    const void *doc;
    size_t idx, end;
    bool object;
};
void hj_iter_init(struct hj_iter *it, hj v);
/* Next element (key NULL for arrays). Returns false at the end. */
bool hj_iter_next(struct hj_iter *it, hj *val, const char **key,
                  size_t *keylen);

/* Compact JSON text of v into buf (at most cap bytes, not terminated);
 * returns the full length. For dead-letter samples. */
size_t hj_dump(hj v, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
