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

#endif /* IMS_INDEX_STORE_H */
