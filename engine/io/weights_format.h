/* weights_format.h: the on-disk layout of a weight file (.isw), shared by the
 * reader (engine/io/weights_reader.c) and the writer (weights_tools/).
 * docs/FORMAT.md is the specification; this header only names its numbers.
 * All integers are little-endian.
 */
#ifndef IMS_WEIGHTS_FORMAT_H
#define IMS_WEIGHTS_FORMAT_H

#include "imgsearch.h"

#define ISW_MAGIC "\x89ISW\r\n\x1a\n"
#define ISW_MAGIC_LEN 8
#define ISW_VERSION 1u
#define ISW_DTYPE_COUNT 4u /* dtype codes 0..3: f32, f16, i32, u8 (ims_dtype's first four) */
#define ISW_BYTE_ORDER_MARK 0x01020304u
#define ISW_HEADER_SIZE 128u
#define ISW_ALIGNMENT_DEFAULT 256u
#define ISW_ALIGNMENT_MIN 64u
#define ISW_ALIGNMENT_MAX 65536u
#define ISW_KEY_MAX 256u          /* bytes in a metadata key */
#define ISW_NAME_MAX 1024u        /* bytes in a tensor name */
#define ISW_STRING_MAX 0x7fffffffu /* bytes in one metadata string */
#define ISW_DIM_MAX (1ull << 40)   /* one tensor dimension */

/* Byte offsets of the header fields. */
enum {
    ISW_OFF_MAGIC = 0,
    ISW_OFF_VERSION = 8,
    ISW_OFF_BYTE_ORDER = 12,
    ISW_OFF_HEADER_SIZE = 16,
    ISW_OFF_ALIGNMENT = 20,
    ISW_OFF_FILE_SIZE = 24,
    ISW_OFF_METADATA_COUNT = 32,
    ISW_OFF_METADATA_OFFSET = 40,
    ISW_OFF_METADATA_SIZE = 48,
    ISW_OFF_TENSOR_COUNT = 56,
    ISW_OFF_DIRECTORY_OFFSET = 64,
    ISW_OFF_DIRECTORY_SIZE = 72,
    ISW_OFF_DATA_OFFSET = 80,
    ISW_OFF_DATA_SIZE = 88,
    ISW_OFF_INDEX_CRC = 96,
    ISW_OFF_FLAGS = 100,
    ISW_OFF_RESERVED = 104,      /* 20 zero bytes */
    ISW_OFF_HEADER_CRC = 124,
};

/* Smallest possible encodings, which bound the counts before any allocation:
 * a metadata entry is key_len(4) + key(>=1) + type(4) + value(>=4: an empty
 * string's length);
 * a tensor entry is name_len(4) + name(>=1) + dtype(4) + ndim(4) + offset(8)
 * + nbytes(8) + crc32(4). */
#define ISW_META_ENTRY_MIN 13u
#define ISW_TENSOR_ENTRY_MIN 33u

static inline uint32_t isw_load_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t isw_load_u64(const unsigned char *p)
{
    return (uint64_t)isw_load_u32(p) | (uint64_t)isw_load_u32(p + 4) << 32;
}

static inline void isw_store_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline void isw_store_u64(unsigned char *p, uint64_t v)
{
    isw_store_u32(p, (uint32_t)v);
    isw_store_u32(p + 4, (uint32_t)(v >> 32));
}

/* zlib's crc32 (the same as Python's zlib.crc32) over any length; _update
 * continues a running crc (start from 0). */
uint32_t imsi_isw_crc32(const void *data, uint64_t nbytes);
uint32_t imsi_isw_crc32_update(uint32_t crc, const void *data, uint64_t nbytes);

/* 1 if [s, s+len) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF)
 * with no NUL byte. */
int imsi_isw_utf8_valid(const char *s, size_t len);

/* 1 if valid UTF-8 (as above) without control characters (U+0000..U+001F,
 * U+007F): a name that is safe to print in a one-line message. */
int imsi_isw_utf8_printable(const char *s, size_t len);

/* Checks a metadata key or tensor name: 1..max bytes, valid UTF-8, no control
 * characters (U+0000..U+001F, U+007F).
 * `what` names it in the message ("metadata key", "tensor name"). */
ims_status imsi_isw_check_name(const char *s, size_t len, size_t max, const char *what, ims_error *err);

#endif /* IMS_WEIGHTS_FORMAT_H */
