/*
 * ingest_int.h - private helpers shared by the files of ingest/. Not part
 * of the module's contract; nothing outside ingest/ includes it.
 */
#ifndef HT_INGEST_INT_H
#define HT_INGEST_INT_H

#include "ht_ingest.h"

enum ht__scan_rc { HT__SCAN_VALUE, HT__SCAN_NEED_MORE, HT__SCAN_BAD_LINE };

/*
 * Find the end of the JSON value starting at p[0] (not whitespace).
 * Objects and arrays are bracket-matched, following JSON's structure;
 * anything else runs to the end of its line. BAD_LINE: the value cannot
 * be closed (a syntax error in its structure, a raw newline in a string,
 * or unterminated at eof); *len is then how much of it to give up as one
 * bad value (reader.c, bad_cut). *maxdepth is the deepest nesting seen.
 */
enum ht__scan_rc ht__scan_value(const char *p, size_t n, bool eof, size_t *len,
                                int *maxdepth);
size_t ht__skip_ws(const char *p, size_t n);
/* The last component of s after any of the separators in seps ("/", ":"),
 * copied into the batch's arena; NULL for an empty s. */
char *ht__tail_name(struct ht_batch *b, const char *s, const char *seps);

/*
 * Parsers by nesting slot: a document parsed while another one is still
 * being read (an embedded document, a log message inside a CloudWatch Logs
 * message, a record body inside a logged event) needs its own parser,
 * because a parse invalidates the values of the parser's previous one.
 * Envelope levels 0..HT__JSLOT_LOG-1 use their level; logs.c uses the
 * slots from HT__JSLOT_LOG up.
 */
enum {
    HT__JSLOT_LOG = 6,    /* a log event's JSON message */
    HT__JSLOT_INNER = 7,  /* a JSON string inside that message */
    HT__JSLOT_RECORD = 8, /* a record body (SQS body, stream data) */
    HT__JSLOT_SNS = 9     /* the Message inside an SNS envelope body */
};
struct hj_parser *ht__parser(struct ht_batch *b, int slot);

#endif
