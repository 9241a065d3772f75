/* core/json.h: a small strict JSON (RFC 8259) parser into a read-only tree,
 * for the JSON files we read (safetensors headers, Hugging Face config.json and
 * friends, the index manifest).
 *
 * Strictness, decided once for every caller:
 * - The document is UTF-8 without a byte-order mark; one value, surrounded by
 *   optional whitespace (space, tab, LF, CR). No comments, no trailing commas,
 *   no NaN/Infinity, no leading zeros or '+', no single quotes.
 * - Strings: raw bytes must be valid UTF-8 (no overlongs, no surrogates) and
 *   not control characters; escapes are unescaped to UTF-8, a \uD800-\uDBFF
 *   escape must be followed by a \uDC00-\uDFFF one, lone surrogates are refused.
 *   "\u0000" is refused: every string is handed out NUL-terminated, and a NUL
 *   inside a key or tensor name would silently truncate it in C.
 * - Objects keep their members in document order. A duplicate key makes the
 *   document invalid (the error names the key and the byte offset of its second
 *   occurrence): a reader must never guess which of two values was meant.
 * - Numbers keep their text; `value` is strtod's double (a number beyond the
 *   double range is refused); `is_int` is set for integer literals (no fraction,
 *   no exponent) that fit int64, whose exact value is `int_value`. "1.0" and
 *   "1e2" are not integer literals.
 * - Limits (json_limits): document size, nesting depth, number of values, so a
 *   hostile input cannot exhaust the stack or the heap.
 *
 * Errors name the byte offset: "JSON at byte 123: expected ',' or '}'".
 * The tree owns all its memory (one arena); the input can be freed after parsing.
 */
#ifndef IMS_JSON_PARSE_H
#define IMS_JSON_PARSE_H

#include "imgsearch.h"

typedef enum json_kind {
    JSON_NULL = 0,
    JSON_BOOL,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT,
} json_kind;

typedef struct json_value json_value;
typedef struct json_member json_member;

struct json_value {
    json_kind kind;
    size_t offset; /* byte offset of the value's first character in the document */
    union {
        int boolean; /* JSON_BOOL: 0 or 1 */
        struct {
            const char *text; /* the literal as written, NUL-terminated */
            size_t text_len;
            double value;
            int is_int;        /* an integer literal within int64 */
            int64_t int_value; /* exact when is_int */
        } num;
        struct {
            const char *ptr; /* unescaped UTF-8, NUL-terminated, no NUL inside */
            size_t len;
        } str;
        struct {
            json_value *items;
            size_t count;
        } arr;
        struct {
            json_member *members; /* document order, keys unique */
            size_t count;
        } obj;
    };
};

struct json_member {
    const char *key; /* unescaped UTF-8, NUL-terminated, no NUL inside */
    size_t key_len;
    size_t key_offset; /* byte offset of the key's opening quote */
    json_value value;
};

typedef struct json_limits {
    size_t max_bytes;  /* document size */
    int max_depth;     /* nesting of arrays and objects; the root container is depth 1 */
    size_t max_values; /* values of any kind, containers included */
} json_limits;

/* The defaults: 100,000,000 bytes (the safetensors header limit), depth 64,
 * 4,194,304 values. max_depth above JSON_MAX_DEPTH is refused: the parser
 * recurses once per level. */
#define JSON_DEFAULT_MAX_BYTES 100000000u
#define JSON_DEFAULT_MAX_DEPTH 64
#define JSON_DEFAULT_MAX_VALUES (1u << 22)
#define JSON_MAX_DEPTH 512

struct json_block;

typedef struct json_doc {
    json_value *root;
    struct json_block *blocks; /* the arena */
} json_doc;

/* Parses text[0..len) (not necessarily NUL-terminated). limits may be NULL for
 * the defaults. On failure *doc is left empty (root NULL) and err says why. */
ims_status imsi_json_parse(const char *text, size_t len, const json_limits *limits, json_doc *doc, ims_error *err);
void imsi_json_doc_free(json_doc *doc);

const char *imsi_json_kind_name(json_kind kind); /* "null", "boolean", "number", ... */

/* Copies a string from a file into buf (size >= 8 bytes) for a one-line
 * message: control characters (and bytes that do not start a UTF-8 sequence)
 * become "\xNN", and a string too long for buf is cut at a character boundary
 * and ends in "...". Returns buf. Every file-derived string a message quotes
 * goes through this, so a hostile name cannot break a message's one line. */
const char *imsi_json_printable(const char *s, char *buf, size_t size);

/* Lookups: NULL when v is not an object / array, or the key / index is absent. */
const json_value *imsi_json_object_get(const json_value *obj, const char *key);
const json_value *imsi_json_array_at(const json_value *arr, size_t index);

/* Typed getters. `what` names the value in the message ("config.json:
 * hidden_size" or "tensor 'x' shape[1]"); the message also gives the value's
 * byte offset. All fail with IMS_ERR_FORMAT on a value of another kind. */
ims_status imsi_json_expect_kind(const json_value *v, json_kind kind, const char *what, ims_error *err);
ims_status imsi_json_get_bool(const json_value *v, const char *what, int *out, ims_error *err);
ims_status imsi_json_get_double(const json_value *v, const char *what, double *out, ims_error *err);
/* An integer literal in [min, max]. */
ims_status imsi_json_get_int64(const json_value *v, const char *what, int64_t min, int64_t max, int64_t *out,
                               ims_error *err);
ims_status imsi_json_get_string(const json_value *v, const char *what, const char **out, size_t *len, ims_error *err);

/* Member getters: IMS_ERR_NOT_FOUND (message "<what>: missing '<key>'") when
 * the key is absent, otherwise as the typed getters; what names the object. */
ims_status imsi_json_member_bool(const json_value *obj, const char *what, const char *key, int *out, ims_error *err);
ims_status imsi_json_member_double(const json_value *obj, const char *what, const char *key, double *out,
                                   ims_error *err);
ims_status imsi_json_member_int64(const json_value *obj, const char *what, const char *key, int64_t min, int64_t max,
                                  int64_t *out, ims_error *err);
ims_status imsi_json_member_string(const json_value *obj, const char *what, const char *key, const char **out,
                                   size_t *len, ims_error *err);

#endif /* IMS_JSON_PARSE_H */
