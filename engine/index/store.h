/* index/store.h: internal helpers of the index store shared with its tests. */
#ifndef IMS_INDEX_STORE_H
#define IMS_INDEX_STORE_H

#include "imgsearch.h"

#include <stdio.h>

/* Writes s[0..len) with '%', control bytes (< 0x20, 0x7f) and bytes that are
 * not part of valid UTF-8 as %XX, so any path fits on one line of a text file
 * and reads back byte for byte (Python: urllib.parse.unquote_to_bytes). */
void imsi_index_escape_write(FILE *f, const char *s, size_t len);
/* Undoes imsi_index_escape_write in place; 0 on success, -1 on a malformed escape. */
int imsi_index_unescape(char *s, size_t *len);

/* Called in the commit of chunk `chunk` right after each step ("visual",
 * "semantic", "rows", "failures": the chunk's files so far written, the
 * manifest not yet). The library's definition (index/crash_point.c) does
 * nothing; test programs link their own ahead of the library
 * (tests/common/crash_hook.c: IMS_TEST_CRASH=chunk:C:STEP kills the process
 * there, as a power cut would), so the hook never reaches a product build. */
void imsi_index_crash_point(size_t chunk, const char *step);

#endif /* IMS_INDEX_STORE_H */
