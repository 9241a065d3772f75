/* core/json.c: the strict JSON parser and accessors of core/json.h.
 *
 * One recursive-descent pass over the bytes. Children of an array or object
 * are collected on a shared stack (values for arrays, members for objects) and
 * copied into the arena as one contiguous run when the container closes, so
 * the finished tree is a few flat arrays and the parse is linear in the input.
 * Recursion depth is bounded by json_limits.max_depth (at most JSON_MAX_DEPTH).
 */
#include "core/json.h"

#include "core/error.h"
#include "io/weights_format.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Arena --------------------------------------------------------------------------- */

struct json_block {
    struct json_block *next;
    size_t used, cap;
    _Alignas(max_align_t) unsigned char data[];
};

#define ARENA_ALIGN _Alignof(max_align_t)
#define ARENA_BLOCK_MIN (64u * 1024u)

static void *arena_alloc(json_doc *doc, size_t size)
{
    size = size ? size : 1;
    if (size > SIZE_MAX - ARENA_ALIGN - sizeof(struct json_block))
        return NULL;
    size_t rounded = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    struct json_block *b = doc->blocks;
    if (!b || b->cap - b->used < rounded) {
        /* Blocks grow with the document (the newest block is twice the last),
         * so a large document needs few mallocs. */
        size_t cap = b ? b->cap * 2 : ARENA_BLOCK_MIN;
        if (cap > 16u * 1024u * 1024u)
            cap = 16u * 1024u * 1024u;
        if (cap < rounded)
            cap = rounded;
        struct json_block *nb = malloc(sizeof *nb + cap);
        if (!nb)
            return NULL;
        nb->next = b;
        nb->used = 0;
        nb->cap = cap;
        doc->blocks = b = nb;
    }
    void *p = b->data + b->used;
    b->used += rounded;
    return p;
}

void imsi_json_doc_free(json_doc *doc)
{
    if (!doc)
        return;
    struct json_block *b = doc->blocks;
    while (b) {
        struct json_block *next = b->next;
        free(b);
        b = next;
    }
    doc->blocks = NULL;
    doc->root = NULL;
}

/* ---- Parser state and errors ------------------------------------------------------- */

typedef struct parser {
    const unsigned char *s;
    size_t len, pos;
    json_limits lim;
    size_t values;
    json_doc *doc;
    json_value *vstack; /* children of the open arrays */
    size_t vlen, vcap;
    json_member *mstack; /* members of the open objects */
    size_t mlen, mcap;
    ims_error *err;
} parser;

static ims_status fail_at(parser *ps, size_t pos, const char *fmt, ...) IMS_PRINTF(3, 4);

static ims_status fail_at(parser *ps, size_t pos, const char *fmt, ...)
{
    char what[IMS_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return ims_error_set(ps->err, IMS_ERR_FORMAT, "JSON at byte %zu: %s", pos, what);
}

static ims_status fail_nomem(parser *ps)
{
    return ims_error_set(ps->err, IMS_ERR_NOMEM, "JSON at byte %zu: out of memory", ps->pos);
}

/* Describes the byte at pos for a message: "'x'", "byte 0x8f" or "end of input". */
static const char *describe(const parser *ps, size_t pos, char buf[16])
{
    if (pos >= ps->len)
        return "end of input";
    unsigned c = ps->s[pos];
    if (c > 0x20 && c < 0x7f)
        snprintf(buf, 16, "'%c'", (char)c);
    else
        snprintf(buf, 16, "byte 0x%02x", c);
    return buf;
}

static ims_status fail_expected(parser *ps, const char *expected)
{
    char buf[16];
    return fail_at(ps, ps->pos, "expected %s, found %s", expected, describe(ps, ps->pos, buf));
}

static void skip_ws(parser *ps)
{
    while (ps->pos < ps->len) {
        unsigned char c = ps->s[ps->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        ps->pos++;
    }
}

static int peek(const parser *ps) { return ps->pos < ps->len ? ps->s[ps->pos] : -1; }

/* ---- Strings ----------------------------------------------------------------------- */

static int hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The 4 hex digits at pos (after "\u"), or -1. */
static long hex4(const parser *ps, size_t pos)
{
    if (ps->len - pos < 4)
        return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(ps->s[pos + i]);
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

static size_t put_utf8(unsigned char *o, unsigned long cp)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xc0 | cp >> 6);
        o[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xe0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Length of the UTF-8 sequence its lead byte announces (0: not a lead byte). */
static size_t utf8_seq_len(unsigned char c)
{
    if (c >= 0xc2 && c <= 0xdf)
        return 2;
    if (c >= 0xe0 && c <= 0xef)
        return 3;
    if (c >= 0xf0 && c <= 0xf4)
        return 4;
    return 0;
}

/* Decodes the escape at ps->pos (the backslash) into o; advances ps->pos. */
static ims_status decode_escape(parser *ps, unsigned char *o, size_t *n)
{
    size_t at = ps->pos;
    int c = ps->pos + 1 < ps->len ? ps->s[ps->pos + 1] : -1;
    static const char simple_in[] = "\"\\/bfnrt", simple_out[] = "\"\\/\b\f\n\r\t";
    const char *hit = c > 0 ? strchr(simple_in, c) : NULL; /* (c > 0: strchr would match the NUL) */
    if (hit) {
        o[0] = (unsigned char)simple_out[hit - simple_in];
        *n = 1;
        ps->pos += 2;
        return IMS_OK;
    }
    if (c != 'u') {
        char buf[16];
        return fail_at(ps, at, "invalid escape: backslash followed by %s", describe(ps, at + 1, buf));
    }
    long cp = hex4(ps, at + 2);
    if (cp < 0)
        return fail_at(ps, at, "\\u must be followed by 4 hex digits");
    ps->pos = at + 6;
    if (cp >= 0xdc00 && cp <= 0xdfff)
        return fail_at(ps, at, "lone low surrogate \\u%04lX", cp);
    if (cp >= 0xd800 && cp <= 0xdbff) {
        long lo = ps->len - ps->pos >= 2 && ps->s[ps->pos] == '\\' && ps->s[ps->pos + 1] == 'u'
                      ? hex4(ps, ps->pos + 2)
                      : -1;
        if (lo < 0xdc00 || lo > 0xdfff)
            return fail_at(ps, at, "high surrogate \\u%04lX is not followed by a low surrogate escape", cp);
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        ps->pos += 6;
    }
    if (cp == 0)
        return fail_at(ps, at, "\\u0000 is not allowed in strings (they are used NUL-terminated)");
    *n = put_utf8(o, (unsigned long)cp);
    return IMS_OK;
}

/* Parses the string whose opening quote is at ps->pos into the arena. */
static ims_status parse_string(parser *ps, const char **out, size_t *out_len)
{
    size_t start = ps->pos + 1, end = start;
    /* First pass: find the closing quote (the unescaped text is never longer). */
    for (;;) {
        if (end >= ps->len)
            return fail_at(ps, ps->pos, "unterminated string");
        unsigned char c = ps->s[end];
        if (c == '"')
            break;
        if (c < 0x20)
            return fail_at(ps, end, "control character 0x%02x in a string (must be escaped)", c);
        end += c == '\\' ? 2 : 1;
    }
    unsigned char *o = arena_alloc(ps->doc, end - start + 1);
    if (!o)
        return fail_nomem(ps);
    size_t n = 0;
    ps->pos = start;
    while (ps->pos < end) {
        unsigned char c = ps->s[ps->pos];
        if (c == '\\') {
            size_t k = 0;
            ims_status st = decode_escape(ps, o + n, &k);
            if (st)
                return st;
            n += k;
        } else if (c < 0x80) {
            o[n++] = c;
            ps->pos++;
        } else {
            size_t k = utf8_seq_len(c);
            if (k == 0 || k > end - ps->pos || !imsi_isw_utf8_valid((const char *)ps->s + ps->pos, k))
                return fail_at(ps, ps->pos, "invalid UTF-8 in a string");
            memcpy(o + n, ps->s + ps->pos, k);
            n += k;
            ps->pos += k;
        }
    }
    /* an escape may not run past the quote found above */
    if (ps->pos != end)
        return fail_at(ps, end, "unterminated string");
    o[n] = '\0';
    ps->pos = end + 1;
    *out = (const char *)o;
    *out_len = n;
    return IMS_OK;
}

/* ---- Numbers ----------------------------------------------------------------------- */

static int is_digit(int c) { return c >= '0' && c <= '9'; }

static ims_status parse_number(parser *ps, json_value *v)
{
    size_t start = ps->pos;
    int neg = 0, integral = 1;
    if (peek(ps) == '-') {
        neg = 1;
        ps->pos++;
    }
    if (!is_digit(peek(ps)))
        return fail_expected(ps, "a digit");
    if (peek(ps) == '0' && ps->pos + 1 < ps->len && is_digit(ps->s[ps->pos + 1]))
        return fail_at(ps, ps->pos, "leading zeros are not allowed in numbers");
    while (is_digit(peek(ps)))
        ps->pos++;
    size_t int_end = ps->pos;
    if (peek(ps) == '.') {
        integral = 0;
        ps->pos++;
        if (!is_digit(peek(ps)))
            return fail_expected(ps, "a digit after the decimal point");
        while (is_digit(peek(ps)))
            ps->pos++;
    }
    if (peek(ps) == 'e' || peek(ps) == 'E') {
        integral = 0;
        ps->pos++;
        if (peek(ps) == '+' || peek(ps) == '-')
            ps->pos++;
        if (!is_digit(peek(ps)))
            return fail_expected(ps, "a digit in the exponent");
        while (is_digit(peek(ps)))
            ps->pos++;
    }
    size_t n = ps->pos - start;
    char *text = arena_alloc(ps->doc, n + 1);
    if (!text)
        return fail_nomem(ps);
    memcpy(text, ps->s + start, n);
    text[n] = '\0';

    /* strtod follows LC_NUMERIC; a locale whose decimal point is not '.' would
     * stop early, which is caught here rather than silently misread. */
    char *endp;
    errno = 0;
    double d = strtod(text, &endp);
    if (endp != text + n)
        return fail_at(ps, start, "cannot convert number '%s' (is LC_NUMERIC not \"C\"?)", text);
    if (isinf(d))
        return fail_at(ps, start, "number '%.40s' is beyond the range of a double", text);

    v->kind = JSON_NUMBER;
    v->num.text = text;
    v->num.text_len = n;
    v->num.value = d;
    v->num.is_int = 0;
    v->num.int_value = 0;
    if (integral) {
        /* exact: accumulate the digits, allowing magnitude up to 2^63 for negatives */
        uint64_t mag = 0, limit = neg ? (uint64_t)1 << 63 : (uint64_t)INT64_MAX;
        int fits = 1;
        for (size_t i = start + (size_t)neg; i < int_end && fits; i++) {
            unsigned digit = (unsigned)(ps->s[i] - '0');
            if (mag > (limit - digit) / 10)
                fits = 0;
            else
                mag = mag * 10 + digit;
        }
        if (fits) {
            v->num.is_int = 1;
            v->num.int_value = neg ? (mag == (uint64_t)1 << 63 ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
        }
    }
    return IMS_OK;
}

/* ---- Values and containers --------------------------------------------------------- */

static ims_status parse_value(parser *ps, int depth, json_value *v);

static ims_status push_value(parser *ps, const json_value *v)
{
    if (ps->vlen == ps->vcap) {
        size_t cap = ps->vcap ? ps->vcap * 2 : 64;
        if (cap > SIZE_MAX / sizeof *ps->vstack)
            return fail_nomem(ps);
        json_value *p = realloc(ps->vstack, cap * sizeof *p);
        if (!p)
            return fail_nomem(ps);
        ps->vstack = p;
        ps->vcap = cap;
    }
    ps->vstack[ps->vlen++] = *v;
    return IMS_OK;
}

static ims_status push_member(parser *ps, const json_member *m)
{
    if (ps->mlen == ps->mcap) {
        size_t cap = ps->mcap ? ps->mcap * 2 : 64;
        if (cap > SIZE_MAX / sizeof *ps->mstack)
            return fail_nomem(ps);
        json_member *p = realloc(ps->mstack, cap * sizeof *p);
        if (!p)
            return fail_nomem(ps);
        ps->mstack = p;
        ps->mcap = cap;
    }
    ps->mstack[ps->mlen++] = *m;
    return IMS_OK;
}

static ims_status parse_array(parser *ps, int depth, json_value *v)
{
    size_t base = ps->vlen;
    ps->pos++; /* '[' */
    skip_ws(ps);
    if (peek(ps) == ']') {
        ps->pos++;
    } else {
        for (;;) {
            json_value item;
            ims_status st = parse_value(ps, depth, &item);
            if (!st)
                st = push_value(ps, &item);
            if (st)
                return st;
            skip_ws(ps);
            if (peek(ps) == ',') {
                ps->pos++;
                continue;
            }
            if (peek(ps) == ']') {
                ps->pos++;
                break;
            }
            return fail_expected(ps, "',' or ']'");
        }
    }
    size_t count = ps->vlen - base;
    v->kind = JSON_ARRAY;
    v->arr.count = count;
    v->arr.items = NULL;
    if (count) {
        /* count <= values <= max_values, so the product cannot overflow */
        v->arr.items = arena_alloc(ps->doc, count * sizeof(json_value));
        if (!v->arr.items)
            return fail_nomem(ps);
        memcpy(v->arr.items, ps->vstack + base, count * sizeof(json_value));
    }
    ps->vlen = base;
    return IMS_OK;
}

static int member_cmp(const void *a, const void *b)
{
    const json_member *x = *(const json_member *const *)a, *y = *(const json_member *const *)b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    if (c)
        return c;
    if (x->key_len != y->key_len)
        return x->key_len < y->key_len ? -1 : 1;
    return x->key_offset < y->key_offset ? -1 : x->key_offset > y->key_offset;
}

/* Refuses a repeated key, naming the earliest second occurrence. Sorting a
 * list of pointers keeps this O(n log n) for headers with thousands of keys. */
static ims_status check_duplicates(parser *ps, const json_member *m, size_t count)
{
    const json_member **sorted = malloc(count * sizeof *sorted);
    if (!sorted)
        return fail_nomem(ps);
    for (size_t i = 0; i < count; i++)
        sorted[i] = &m[i];
    qsort(sorted, count, sizeof *sorted, member_cmp);
    const json_member *dup = NULL;
    for (size_t i = 1; i < count; i++)
        if (sorted[i]->key_len == sorted[i - 1]->key_len &&
            memcmp(sorted[i]->key, sorted[i - 1]->key, sorted[i]->key_len) == 0 &&
            (!dup || sorted[i]->key_offset < dup->key_offset))
            dup = sorted[i];
    free(sorted);
    if (dup) {
        char key[128];
        return fail_at(ps, dup->key_offset, "duplicate key \"%s\"", imsi_json_printable(dup->key, key, sizeof key));
    }
    return IMS_OK;
}

static ims_status parse_object(parser *ps, int depth, json_value *v)
{
    size_t base = ps->mlen;
    ps->pos++; /* '{' */
    skip_ws(ps);
    if (peek(ps) == '}') {
        ps->pos++;
    } else {
        for (;;) {
            json_member m;
            if (peek(ps) != '"')
                return fail_expected(ps, "a string key");
            m.key_offset = ps->pos;
            ims_status st = parse_string(ps, &m.key, &m.key_len);
            if (st)
                return st;
            skip_ws(ps);
            if (peek(ps) != ':')
                return fail_expected(ps, "':' after an object key");
            ps->pos++;
            st = parse_value(ps, depth, &m.value);
            if (!st)
                st = push_member(ps, &m);
            if (st)
                return st;
            skip_ws(ps);
            if (peek(ps) == ',') {
                ps->pos++;
                skip_ws(ps);
                continue;
            }
            if (peek(ps) == '}') {
                ps->pos++;
                break;
            }
            return fail_expected(ps, "',' or '}'");
        }
    }
    size_t count = ps->mlen - base;
    if (count > 1) { /* (mstack may still be NULL when the object is empty) */
        ims_status st = check_duplicates(ps, ps->mstack + base, count);
        if (st)
            return st;
    }
    v->kind = JSON_OBJECT;
    v->obj.count = count;
    v->obj.members = NULL;
    if (count) {
        v->obj.members = arena_alloc(ps->doc, count * sizeof(json_member));
        if (!v->obj.members)
            return fail_nomem(ps);
        memcpy(v->obj.members, ps->mstack + base, count * sizeof(json_member));
    }
    ps->mlen = base;
    return IMS_OK;
}

static ims_status parse_literal(parser *ps, const char *word, json_value *v)
{
    size_t n = strlen(word);
    if (ps->len - ps->pos < n || memcmp(ps->s + ps->pos, word, n) != 0)
        return fail_expected(ps, "a JSON value");
    ps->pos += n;
    return IMS_OK;
}

/* depth = number of containers around this value. */
static ims_status parse_value(parser *ps, int depth, json_value *v)
{
    skip_ws(ps);
    memset(v, 0, sizeof *v);
    v->offset = ps->pos;
    if (++ps->values > ps->lim.max_values)
        return fail_at(ps, ps->pos, "more than %zu values", ps->lim.max_values);
    switch (peek(ps)) {
    case '{':
    case '[':
        if (depth >= ps->lim.max_depth)
            return fail_at(ps, ps->pos, "nesting deeper than %d levels", ps->lim.max_depth);
        return peek(ps) == '{' ? parse_object(ps, depth + 1, v) : parse_array(ps, depth + 1, v);
    case '"':
        v->kind = JSON_STRING;
        return parse_string(ps, &v->str.ptr, &v->str.len);
    case 't':
        v->kind = JSON_BOOL;
        v->boolean = 1;
        return parse_literal(ps, "true", v);
    case 'f':
        v->kind = JSON_BOOL;
        v->boolean = 0;
        return parse_literal(ps, "false", v);
    case 'n':
        v->kind = JSON_NULL;
        return parse_literal(ps, "null", v);
    default:
        if (peek(ps) == '-' || is_digit(peek(ps)))
            return parse_number(ps, v);
        return fail_expected(ps, "a JSON value");
    }
}

ims_status imsi_json_parse(const char *text, size_t len, const json_limits *limits, json_doc *doc, ims_error *err)
{
    doc->root = NULL;
    doc->blocks = NULL;
    json_limits lim = {JSON_DEFAULT_MAX_BYTES, JSON_DEFAULT_MAX_DEPTH, JSON_DEFAULT_MAX_VALUES};
    if (limits)
        lim = *limits;
    if (lim.max_depth < 1 || lim.max_depth > JSON_MAX_DEPTH || lim.max_values == 0)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "JSON limits: depth %d (1..%d), values %zu (>= 1)", lim.max_depth,
                             JSON_MAX_DEPTH, lim.max_values);
    if (len > lim.max_bytes)
        return ims_error_set(err, IMS_ERR_FORMAT, "JSON document of %zu bytes exceeds the limit of %zu bytes", len,
                             lim.max_bytes);
    parser ps = {.s = (const unsigned char *)text, .len = len, .lim = lim, .doc = doc, .err = err};
    ims_status st = IMS_OK;
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        st = fail_at(&ps, 0, "a byte-order mark is not allowed");
    skip_ws(&ps);
    if (!st && ps.pos == len)
        st = fail_at(&ps, ps.pos, "empty document");
    json_value *root = NULL;
    if (!st) {
        root = arena_alloc(doc, sizeof *root);
        st = root ? parse_value(&ps, 0, root) : fail_nomem(&ps);
    }
    if (!st) {
        skip_ws(&ps);
        if (ps.pos != len) {
            char buf[16];
            st = fail_at(&ps, ps.pos, "unexpected %s after the JSON value", describe(&ps, ps.pos, buf));
        }
    }
    free(ps.vstack);
    free(ps.mstack);
    if (st) {
        imsi_json_doc_free(doc);
        return st;
    }
    doc->root = root;
    return IMS_OK;
}

/* ---- Accessors --------------------------------------------------------------------- */

const char *imsi_json_kind_name(json_kind kind)
{
    switch (kind) {
    case JSON_NULL: return "null";
    case JSON_BOOL: return "boolean";
    case JSON_NUMBER: return "number";
    case JSON_STRING: return "string";
    case JSON_ARRAY: return "array";
    case JSON_OBJECT: return "object";
    }
    return "?";
}

const char *imsi_json_printable(const char *s, char *buf, size_t size)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0, room = size - 4; /* keep room for "..." and the NUL */
    while (*p) {
        size_t k = *p < 0x80 ? 1 : utf8_seq_len(*p);
        for (size_t i = 1; i < k; i++) {
            if ((p[i] & 0xc0) != 0x80) { /* (stops at the NUL too) */
                k = 0; /* a broken sequence: escape its first byte */
                break;
            }
        }
        int escape = k == 0 || *p < 0x20 || *p == 0x7f;
        size_t need = escape ? 4 : k;
        if (n + need > room) {
            memcpy(buf + n, "...", 4);
            return buf;
        }
        if (escape) {
            snprintf(buf + n, 5, "\\x%02x", *p);
            p++;
        } else {
            memcpy(buf + n, p, k);
            p += k;
        }
        n += need;
    }
    buf[n] = '\0';
    return buf;
}

/* Linear: the objects we look keys up in are small (a config.json has ~25
 * keys); large objects (safetensors headers) are iterated, not searched. */
const json_value *imsi_json_object_get(const json_value *obj, const char *key)
{
    if (!obj || obj->kind != JSON_OBJECT)
        return NULL;
    size_t n = strlen(key);
    for (size_t i = 0; i < obj->obj.count; i++) {
        const json_member *m = &obj->obj.members[i];
        if (m->key_len == n && memcmp(m->key, key, n) == 0)
            return &m->value;
    }
    return NULL;
}

const json_value *imsi_json_array_at(const json_value *arr, size_t index)
{
    if (!arr || arr->kind != JSON_ARRAY || index >= arr->arr.count)
        return NULL;
    return &arr->arr.items[index];
}

ims_status imsi_json_expect_kind(const json_value *v, json_kind kind, const char *what, ims_error *err)
{
    if (v->kind != kind)
        return ims_error_set(err, IMS_ERR_FORMAT, "%s: expected %s %s, found %s (JSON byte %zu)", what,
                             kind == JSON_ARRAY || kind == JSON_OBJECT ? "an" : "a", imsi_json_kind_name(kind),
                             imsi_json_kind_name(v->kind), v->offset);
    return IMS_OK;
}

ims_status imsi_json_get_bool(const json_value *v, const char *what, int *out, ims_error *err)
{
    ims_status st = imsi_json_expect_kind(v, JSON_BOOL, what, err);
    if (!st)
        *out = v->boolean;
    return st;
}

ims_status imsi_json_get_double(const json_value *v, const char *what, double *out, ims_error *err)
{
    ims_status st = imsi_json_expect_kind(v, JSON_NUMBER, what, err);
    if (!st)
        *out = v->num.value;
    return st;
}

ims_status imsi_json_get_int64(const json_value *v, const char *what, int64_t min, int64_t max, int64_t *out,
                               ims_error *err)
{
    if (v->kind != JSON_NUMBER)
        return ims_error_set(err, IMS_ERR_FORMAT, "%s: expected an integer, found %s (JSON byte %zu)", what,
                             imsi_json_kind_name(v->kind), v->offset);
    if (!v->num.is_int)
        return ims_error_set(err, IMS_ERR_FORMAT, "%s: expected an integer, found %.40s (JSON byte %zu)", what,
                             v->num.text, v->offset);
    if (v->num.int_value < min || v->num.int_value > max)
        return ims_error_set(err, IMS_ERR_FORMAT, "%s = %lld is outside %lld..%lld (JSON byte %zu)", what,
                             (long long)v->num.int_value, (long long)min, (long long)max, v->offset);
    *out = v->num.int_value;
    return IMS_OK;
}

ims_status imsi_json_get_string(const json_value *v, const char *what, const char **out, size_t *len, ims_error *err)
{
    ims_status st = imsi_json_expect_kind(v, JSON_STRING, what, err);
    if (!st) {
        *out = v->str.ptr;
        if (len)
            *len = v->str.len;
    }
    return st;
}

/* Finds obj[key] and writes "<what>: '<key>'" (or "'<key>'") into name. */
static ims_status member_find(const json_value *obj, const char *what, const char *key, const json_value **out,
                              char name[256], ims_error *err)
{
    if (what && what[0])
        snprintf(name, 256, "%s: '%s'", what, key);
    else
        snprintf(name, 256, "'%s'", key);
    if (!obj || obj->kind != JSON_OBJECT)
        return ims_error_set(err, IMS_ERR_FORMAT, "%s: not inside an object", name);
    *out = imsi_json_object_get(obj, key);
    if (!*out)
        return ims_error_set(err, IMS_ERR_NOT_FOUND, "%s%smissing '%s'", what ? what : "", what && what[0] ? ": " : "",
                             key);
    return IMS_OK;
}

ims_status imsi_json_member_bool(const json_value *obj, const char *what, const char *key, int *out, ims_error *err)
{
    const json_value *v;
    char name[256];
    ims_status st = member_find(obj, what, key, &v, name, err);
    return st ? st : imsi_json_get_bool(v, name, out, err);
}

ims_status imsi_json_member_double(const json_value *obj, const char *what, const char *key, double *out,
                                   ims_error *err)
{
    const json_value *v;
    char name[256];
    ims_status st = member_find(obj, what, key, &v, name, err);
    return st ? st : imsi_json_get_double(v, name, out, err);
}

ims_status imsi_json_member_int64(const json_value *obj, const char *what, const char *key, int64_t min, int64_t max,
                                  int64_t *out, ims_error *err)
{
    const json_value *v;
    char name[256];
    ims_status st = member_find(obj, what, key, &v, name, err);
    return st ? st : imsi_json_get_int64(v, name, min, max, out, err);
}

ims_status imsi_json_member_string(const json_value *obj, const char *what, const char *key, const char **out,
                                   size_t *len, ims_error *err)
{
    const json_value *v;
    char name[256];
    ims_status st = member_find(obj, what, key, &v, name, err);
    return st ? st : imsi_json_get_string(v, name, out, len, err);
}
