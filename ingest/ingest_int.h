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
 * Objects and arrays are bracket-matched; anything else runs to the end of
 * its line. BAD_LINE: the value cannot be closed (mismatched bracket, or
 * unterminated at eof). *maxdepth is the deepest nesting seen.
 */
enum ht__scan_rc ht__scan_value(const char *p, size_t n, bool eof, size_t *len,
                                int *maxdepth);
size_t ht__skip_ws(const char *p, size_t n);

#endif
