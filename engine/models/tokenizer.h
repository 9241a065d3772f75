/* tokenizer.h: engine-internal parts of the WordPiece tokenizer (engine/models/tokenizer.c).
 * The public API (ims_tokenizer_*) is in include/imgsearch.h.
 */
#ifndef IMS_TOKENIZER_H
#define IMS_TOKENIZER_H

#include "imgsearch.h"

#include <stddef.h>
#include <stdint.h>

/* Decodes one code point from s[0..len), len >= 1; returns the bytes used (>= 1).
 * Invalid UTF-8 (a bad lead byte, a truncated or overlong sequence, a
 * surrogate, anything above U+10FFFF) gives U+FFFD for the maximal valid
 * prefix of a sequence, or for one byte: the Unicode "substitution of maximal
 * subparts", which Python's bytes.decode(errors="replace") also follows. */
size_t imsi_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp);

#endif /* IMS_TOKENIZER_H */
