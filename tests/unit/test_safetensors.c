/* test_safetensors.c: the strict JSON parser (core/json.h), the safetensors
 * reader (imsi_ckpt_read_safetensors) and the Hugging Face model-directory reader
 * (hf_model_dir.h).
 *
 * - JSON: valid documents checked value by value; one invalid document per
 *   rule, each refused with a checked message (byte offsets included).
 * - safetensors: the committed fixtures (tests/fixtures/safetensors/, written
 *   by make_fixtures.py with PyTorch and read back by upstream's reader)
 *   compared exactly with expected.txt; then hostile files built here, one per
 *   rule, each refused with a checked message substring.
 * - hf_model_dir: tests/fixtures/hf_tiny_bert/ as committed, then broken
 *   copies made in a temporary directory.
 * - The real all-MiniLM-L6-v2 when IMS_MINILM_DIR names its directory
 *   (scripts/fetch-minilm.sh); that part alone is skipped otherwise.
 *
 * Usage: test_safetensors FIXTURE_DIR (tests/fixtures).
 */
#include "test.h"

#include "core/error.h"
#include "weights_tools/checkpoint.h"
#include "weights_tools/hf_model_dir.h"
#include "core/json.h"

#include <ftw.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char fixtures[4096];

/* ---- Small helpers -------------------------------------------------------------------- */

static int contains(const char *msg, const char *needle) { return strstr(msg, needle) != NULL; }


static int write_all(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    int ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

/* ---- JSON: valid documents -------------------------------------------------------------- */

static json_doc parse_ok(const char *text)
{
    json_doc doc;
    ims_error err = {0};
    ims_status st = imsi_json_parse(text, strlen(text), NULL, &doc, &err);
    TEST_CHECK(st == IMS_OK && doc.root, "'%s' -> %s", text, err.msg);
    return doc;
}

static void test_json_valid(void)
{
    json_doc doc = parse_ok(" {\"b\": [1, -2.5e1, true, false, null, \"x\"], \"a\": {}, \"c\": [], \"\": \"\"}\r\n\t");
    const json_value *r = doc.root;
    if (r) {
        TEST_CHECK(r->kind == JSON_OBJECT && r->obj.count == 4, "root");
        TEST_CHECK(r->offset == 1, "root offset %zu", r->offset);
        /* members keep document order */
        TEST_CHECK(strcmp(r->obj.members[0].key, "b") == 0 && strcmp(r->obj.members[1].key, "a") == 0 &&
                       strcmp(r->obj.members[2].key, "c") == 0 && r->obj.members[3].key_len == 0,
                   "order");
        TEST_CHECK(r->obj.members[0].key_offset == 2, "key offset %zu", r->obj.members[0].key_offset);
        const json_value *b = imsi_json_object_get(r, "b");
        TEST_CHECK(b && b->kind == JSON_ARRAY && b->arr.count == 6, "b");
        if (b && b->arr.count == 6) {
            TEST_CHECK(b->arr.items[0].num.is_int && b->arr.items[0].num.int_value == 1, "1");
            TEST_CHECK(!b->arr.items[1].num.is_int && b->arr.items[1].num.value == -25.0, "-2.5e1");
            TEST_CHECK(strcmp(b->arr.items[1].num.text, "-2.5e1") == 0, "text %s", b->arr.items[1].num.text);
            TEST_CHECK(b->arr.items[2].kind == JSON_BOOL && b->arr.items[2].boolean == 1, "true");
            TEST_CHECK(b->arr.items[3].kind == JSON_BOOL && b->arr.items[3].boolean == 0, "false");
            TEST_CHECK(b->arr.items[4].kind == JSON_NULL, "null");
            TEST_CHECK(b->arr.items[5].kind == JSON_STRING && strcmp(b->arr.items[5].str.ptr, "x") == 0, "x");
            TEST_CHECK(b->arr.items[5].offset == 38, "offset of \"x\" %zu", b->arr.items[5].offset);
        }
        TEST_CHECK(imsi_json_array_at(b, 5) == &b->arr.items[5] && imsi_json_array_at(b, 6) == NULL, "array_at");
        TEST_CHECK(imsi_json_array_at(r, 0) == NULL, "array_at on an object");
        const json_value *a = imsi_json_object_get(r, "a");
        TEST_CHECK(a && a->kind == JSON_OBJECT && a->obj.count == 0 && a->obj.members == NULL, "a");
        TEST_CHECK(imsi_json_object_get(r, "c")->arr.count == 0, "c");
        TEST_CHECK(imsi_json_object_get(r, "")->str.len == 0, "empty key");
        TEST_CHECK(imsi_json_object_get(r, "zz") == NULL && imsi_json_object_get(b, "b") == NULL, "absent");
    }
    imsi_json_doc_free(&doc);

    /* escapes, surrogate pairs and raw UTF-8 */
    doc = parse_ok("[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\", \"\\u00e9\\u4E2D\", \"\\uD83D\\uDE00\", "
                   "\"caf\xc3\xa9 \xf0\x9f\x98\x80\", "
                   "\"\\u0041\\u007f\"]");
    if (doc.root) {
        const json_value *it = doc.root->arr.items;
        TEST_CHECK(it[0].str.len == 8 && memcmp(it[0].str.ptr, "\"\\/\b\f\n\r\t", 8) == 0, "simple escapes");
        TEST_CHECK(strcmp(it[1].str.ptr, "\xc3\xa9\xe4\xb8\xad") == 0, "\\u00e9\\u4E2D -> '%s'", it[1].str.ptr);
        TEST_CHECK(strcmp(it[2].str.ptr, "\xf0\x9f\x98\x80") == 0 && it[2].str.len == 4, "surrogate pair");
        TEST_CHECK(strcmp(it[3].str.ptr, "caf\xc3\xa9 \xf0\x9f\x98\x80") == 0, "raw UTF-8");
        TEST_CHECK(strcmp(it[4].str.ptr, "A\x7f") == 0, "\\u0041\\u007f");
    }
    imsi_json_doc_free(&doc);

    /* numbers: integer literals exact over the whole int64 range */
    doc = parse_ok("[0, -0, 9223372036854775807, -9223372036854775808, 9223372036854775808, "
                   "-9223372036854775809, 1.0, 1e2, 1E-2, 0.5e+1, 1e308, 4.9e-324, 1e-400, 123456789012345678]");
    if (doc.root && doc.root->arr.count == 14) {
        const json_value *n = doc.root->arr.items;
        TEST_CHECK(n[0].num.is_int && n[0].num.int_value == 0, "0");
        TEST_CHECK(n[1].num.is_int && n[1].num.int_value == 0 && signbit(n[1].num.value), "-0");
        TEST_CHECK(n[2].num.is_int && n[2].num.int_value == INT64_MAX, "INT64_MAX");
        TEST_CHECK(n[3].num.is_int && n[3].num.int_value == INT64_MIN, "INT64_MIN");
        TEST_CHECK(!n[4].num.is_int && n[4].num.value == 9223372036854775808.0, "2^63 is a double");
        TEST_CHECK(!n[5].num.is_int, "-2^63-1 is a double");
        TEST_CHECK(!n[6].num.is_int && n[6].num.value == 1.0, "1.0 is not an integer literal");
        TEST_CHECK(!n[7].num.is_int && n[7].num.value == 100.0, "1e2");
        TEST_CHECK(n[8].num.value == 0.01, "1E-2");
        TEST_CHECK(n[9].num.value == 5.0, "0.5e+1");
        TEST_CHECK(n[10].num.value == 1e308, "1e308");
        TEST_CHECK(n[11].num.value > 0 && n[11].num.value < 1e-323, "denormal");
        TEST_CHECK(n[12].num.value == 0.0, "underflow to 0 is accepted");
        TEST_CHECK(n[13].num.is_int && n[13].num.int_value == 123456789012345678ll, "exact beyond 2^53");
    }
    imsi_json_doc_free(&doc);

    /* scalars at the root, and the document need not be NUL-terminated */
    json_doc d2;
    ims_error err = {0};
    TEST_OK(imsi_json_parse("42xyz", 2, NULL, &d2, &err), err);
    TEST_CHECK(d2.root && d2.root->num.int_value == 42, "length-limited");
    imsi_json_doc_free(&d2);
    doc = parse_ok("\"s\"");
    imsi_json_doc_free(&doc);
    doc = parse_ok("null");
    imsi_json_doc_free(&doc);
}

/* ---- JSON: invalid documents ------------------------------------------------------------ */

static void expect_json_error_n(const char *text, size_t len, const json_limits *lim, ims_status code,
                                const char *needle)
{
    json_doc doc;
    ims_error err = {0};
    ims_status st = imsi_json_parse(text, len, lim, &doc, &err);
    TEST_CHECK(st == code, "'%.60s': got %s (%s), expected %s", text, ims_status_name(st), err.msg,
               ims_status_name(code));
    TEST_CHECK(doc.root == NULL && doc.blocks == NULL, "'%.60s': no tree on failure", text);
    TEST_CHECK(contains(err.msg, needle), "'%.60s': message '%s' lacks '%s'", text, err.msg, needle);
    TEST_CHECK(!strchr(err.msg, '\n'), "one line");
    imsi_json_doc_free(&doc);
}

static void expect_json_error(const char *text, const char *needle)
{
    expect_json_error_n(text, strlen(text), NULL, IMS_ERR_FORMAT, needle);
}

static void test_json_invalid(void)
{
    expect_json_error("", "JSON at byte 0: empty document");
    expect_json_error(" \n ", "JSON at byte 3: empty document");
    expect_json_error("{", "JSON at byte 1: expected a string key, found end of input");
    expect_json_error("{\"a\":1", "JSON at byte 6: expected ',' or '}', found end of input");
    expect_json_error("{\"a\":1 \"b\":2}", "JSON at byte 7: expected ',' or '}', found '\"'");
    expect_json_error("[1 2]", "JSON at byte 3: expected ',' or ']', found '2'");
    expect_json_error("[1,]", "JSON at byte 3: expected a JSON value, found ']'");
    expect_json_error("{\"a\":1,}", "JSON at byte 7: expected a string key, found '}'");
    expect_json_error("{\"a\" 1}", "JSON at byte 5: expected ':' after an object key");
    expect_json_error("{1:2}", "expected a string key, found '1'");
    expect_json_error("{'a':2}", "expected a string key, found '''");
    expect_json_error("[01]", "JSON at byte 1: leading zeros");
    expect_json_error("-", "JSON at byte 1: expected a digit");
    expect_json_error("[-a]", "expected a digit, found 'a'");
    expect_json_error("1.", "expected a digit after the decimal point");
    expect_json_error(".5", "expected a JSON value, found '.'");
    expect_json_error("+1", "expected a JSON value, found '+'");
    expect_json_error("1e", "expected a digit in the exponent");
    expect_json_error("1e+", "expected a digit in the exponent");
    expect_json_error("NaN", "expected a JSON value");
    expect_json_error("[Infinity]", "expected a JSON value, found 'I'");
    expect_json_error("-Infinity", "expected a digit");
    expect_json_error("[1e400]", "JSON at byte 1: number '1e400' is beyond the range of a double");
    expect_json_error("-1e999", "beyond the range");
    expect_json_error("tru", "expected a JSON value");
    expect_json_error("nul", "expected a JSON value");
    expect_json_error("True", "expected a JSON value, found 'T'");
    expect_json_error("truex", "JSON at byte 4: unexpected 'x' after the JSON value");
    expect_json_error("{} x", "JSON at byte 3: unexpected 'x' after the JSON value");
    expect_json_error("[] []", "unexpected '['");
    expect_json_error("/* c */ {}", "expected a JSON value, found '/'");
    expect_json_error("{} // c", "unexpected '/'");
    expect_json_error("\xef\xbb\xbf{}", "JSON at byte 0: a byte-order mark is not allowed");
    expect_json_error("[\x0b]", "expected a JSON value, found byte 0x0b"); /* VT is not JSON whitespace */
    expect_json_error("\xa0{}", "found byte 0xa0");
    expect_json_error_n("[1]\0", 4, NULL, IMS_ERR_FORMAT, "JSON at byte 3: unexpected byte 0x00");

    /* strings */
    expect_json_error("\"abc", "JSON at byte 0: unterminated string");
    expect_json_error("\"abc\\\"", "unterminated string");
    expect_json_error("\"a\\", "unterminated string");
    expect_json_error("\"\\x\"", "JSON at byte 1: invalid escape: backslash followed by 'x'");
    expect_json_error("\"\\'\"", "invalid escape");
    expect_json_error("\"\\u12\"", "JSON at byte 1: \\u must be followed by 4 hex digits");
    expect_json_error("\"\\u12G4\"", "4 hex digits");
    expect_json_error("\"\\uD800\"", "high surrogate \\uD800 is not followed by a low surrogate");
    expect_json_error("\"\\uDBFF\\u0041\"", "high surrogate \\uDBFF");
    expect_json_error("\"\\uD800\\uD800\"", "high surrogate");
    expect_json_error("\"\\uD800x\"", "high surrogate");
    expect_json_error("\"ab\\uDC00\"", "JSON at byte 3: lone low surrogate \\uDC00");
    expect_json_error("\"\\u0000\"", "\\u0000 is not allowed");
    expect_json_error("\"a\x01\"", "JSON at byte 2: control character 0x01 in a string");
    expect_json_error("\"a\tb\"", "control character 0x09");
    expect_json_error("\"a\nb\"", "control character 0x0a");
    expect_json_error_n("\"a\0b\"", 5, NULL, IMS_ERR_FORMAT, "control character 0x00");
    expect_json_error("\"\xff\"", "JSON at byte 1: invalid UTF-8");
    expect_json_error("\"\x80\"", "invalid UTF-8");
    expect_json_error("\"\xc0\xaf\"", "invalid UTF-8");             /* overlong '/' */
    expect_json_error("\"\xe0\x80\xaf\"", "invalid UTF-8");         /* overlong */
    expect_json_error("\"\xed\xa0\x80\"", "invalid UTF-8");         /* UTF-8-encoded surrogate */
    expect_json_error("\"\xf4\x90\x80\x80\"", "invalid UTF-8");     /* above U+10FFFF */
    expect_json_error("\"ab\xe2\x82\"", "JSON at byte 3: invalid UTF-8"); /* cut by the quote */
    expect_json_error("{\"\xff\":1}", "invalid UTF-8");

    /* duplicate keys: the error names the second occurrence */
    expect_json_error("{\"a\":1,\"b\":2,\"a\":3}", "JSON at byte 13: duplicate key \"a\"");
    expect_json_error("{\"x\":{\"k\":1,\"k\":1}}", "JSON at byte 12: duplicate key \"k\"");
    expect_json_error("{\"\\u0061\":1,\"a\":2}", "duplicate key \"a\""); /* compared after unescaping */
    {
        /* many members: the sorted check still finds the earliest repeat */
        char big[8192];
        size_t n = 0;
        n += (size_t)snprintf(big + n, sizeof big - n, "{");
        for (int i = 0; i < 300; i++)
            n += (size_t)snprintf(big + n, sizeof big - n, "\"k%d\":%d,", i, i);
        size_t dup_at = n;
        n += (size_t)snprintf(big + n, sizeof big - n, "\"k123\":0,\"k7\":0}");
        char needle[64];
        snprintf(needle, sizeof needle, "JSON at byte %zu: duplicate key \"k123\"", dup_at);
        expect_json_error(big, needle);
    }
    json_doc doc;
    ims_error err = {0};
    TEST_OK(imsi_json_parse("[{\"a\":1},{\"a\":2}]", 17, NULL, &doc, &err), err); /* same key, other objects */
    imsi_json_doc_free(&doc);
}

static void test_json_limits(void)
{
    /* depth: 64 nested arrays pass by default, 65 do not */
    char deep[2 * 600 + 1];
    for (int depth = 63; depth <= 65; depth++) {
        memset(deep, '[', (size_t)depth);
        memset(deep + depth, ']', (size_t)depth);
        json_doc doc;
        ims_error err = {0};
        ims_status st = imsi_json_parse(deep, 2 * (size_t)depth, NULL, &doc, &err);
        TEST_CHECK((st == IMS_OK) == (depth <= JSON_DEFAULT_MAX_DEPTH), "depth %d: %s", depth, err.msg);
        if (st)
            TEST_CHECK(contains(err.msg, "JSON at byte 64: nesting deeper than 64 levels"), "%s", err.msg);
        imsi_json_doc_free(&doc);
    }
    /* far deeper than any limit, unclosed: refused without deep recursion */
    memset(deep, '[', sizeof deep - 1);
    expect_json_error_n(deep, sizeof deep - 1, NULL, IMS_ERR_FORMAT, "nesting deeper than 64");
    expect_json_error_n("{\"a\":{\"b\":[1]}}", 15, &(json_limits){1000, 2, 100}, IMS_ERR_FORMAT,
                        "JSON at byte 10: nesting deeper than 2 levels");
    json_doc doc;
    ims_error err = {0};
    TEST_OK(imsi_json_parse("{\"a\":{\"b\":1}}", 13, &(json_limits){1000, 2, 100}, &doc, &err), err);
    imsi_json_doc_free(&doc);

    expect_json_error_n("[1,2,3]", 7, &(json_limits){1000, 8, 3}, IMS_ERR_FORMAT, "JSON at byte 5: more than 3 values");
    TEST_OK(imsi_json_parse("[1,2]", 5, &(json_limits){1000, 8, 3}, &doc, &err), err);
    imsi_json_doc_free(&doc);
    expect_json_error_n("[1,2,3]", 7, &(json_limits){6, 8, 100}, IMS_ERR_FORMAT,
                        "JSON document of 7 bytes exceeds the limit of 6 bytes");
    expect_json_error_n("[]", 2, &(json_limits){100, 0, 100}, IMS_ERR_ARGUMENT, "JSON limits");
    expect_json_error_n("[]", 2, &(json_limits){100, JSON_MAX_DEPTH + 1, 100}, IMS_ERR_ARGUMENT, "JSON limits");
    expect_json_error_n("[]", 2, &(json_limits){100, 4, 0}, IMS_ERR_ARGUMENT, "JSON limits");

    /* a larger document: 20000 members in one object */
    size_t cap = 20000 * 24 + 16, n = 0;
    char *big = malloc(cap);
    n += (size_t)snprintf(big + n, cap - n, "{");
    for (int i = 0; i < 20000; i++)
        n += (size_t)snprintf(big + n, cap - n, "%s\"name.%d\":[%d]", i ? "," : "", i, i);
    n += (size_t)snprintf(big + n, cap - n, "}");
    TEST_OK(imsi_json_parse(big, n, NULL, &doc, &err), err);
    if (doc.root) {
        TEST_CHECK(doc.root->obj.count == 20000, "count");
        const json_value *v = imsi_json_object_get(doc.root, "name.12345");
        TEST_CHECK(v && v->arr.count == 1 && v->arr.items[0].num.int_value == 12345, "lookup");
    }
    imsi_json_doc_free(&doc);
    free(big);
}

static void test_json_printable(void)
{
    char buf[16];
    TEST_CHECK(strcmp(imsi_json_printable("plain", buf, sizeof buf), "plain") == 0, "plain");
    TEST_CHECK(strcmp(imsi_json_printable("a\nb\x7f", buf, sizeof buf), "a\\x0ab\\x7f") == 0, "controls: %s", buf);
    TEST_CHECK(strcmp(imsi_json_printable("caf\xc3\xa9", buf, sizeof buf), "caf\xc3\xa9") == 0, "UTF-8 kept");
    TEST_CHECK(strcmp(imsi_json_printable("\xff\xc3(", buf, sizeof buf), "\\xff\\xc3(") == 0, "broken UTF-8: %s", buf);
    TEST_CHECK(strcmp(imsi_json_printable("0123456789abcdefghij", buf, sizeof buf), "0123456789ab...") == 0, "cut: %s", buf);
    /* a cut never splits a character: 6 two-byte letters fill the 12 bytes, the 7th does not fit */
    TEST_CHECK(strcmp(imsi_json_printable("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", buf, sizeof buf),
                      "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9...") == 0,
               "cut at a boundary: %s", buf);
    TEST_CHECK(strcmp(imsi_json_printable("\n\n\n\n", buf, sizeof buf), "\\x0a\\x0a\\x0a...") == 0, "cut escapes: %s", buf);
}

static void getter_fails(ims_status st, const ims_error *err, ims_status code, const char *needle)
{
    TEST_CHECK(st == code && err->code == code, "getter: got %s, expected %s (%s)", ims_status_name(st),
               ims_status_name(code), err->msg);
    TEST_CHECK(contains(err->msg, needle), "getter: '%s' lacks '%s'", err->msg, needle);
}

static void test_json_getters(void)
{
    json_doc doc =
        parse_ok("{\"i\": 7, \"f\": 1.5, \"big\": 1e3, \"s\": \"str\", \"b\": true, \"n\": null, \"neg\": -3}");
    const json_value *r = doc.root;
    if (!r)
        return;
    ims_error err = {0};
    int64_t i = 0;
    double d = 0;
    int b = 0;
    const char *s = NULL;
    size_t len = 0;
    TEST_OK(imsi_json_member_int64(r, "f.json", "i", 0, 10, &i, &err), err);
    TEST_CHECK(i == 7, "i");
    TEST_OK(imsi_json_member_double(r, "f.json", "f", &d, &err), err);
    TEST_CHECK(d == 1.5, "f");
    TEST_OK(imsi_json_member_double(r, "f.json", "i", &d, &err), err);
    TEST_CHECK(d == 7.0, "an integer is a double too");
    TEST_OK(imsi_json_member_string(r, "f.json", "s", &s, &len, &err), err);
    TEST_CHECK(s && strcmp(s, "str") == 0 && len == 3, "s");
    TEST_OK(imsi_json_member_bool(r, "f.json", "b", &b, &err), err);
    TEST_CHECK(b == 1, "b");

    getter_fails(imsi_json_member_int64(r, "f.json", "zz", 0, 10, &i, &err), &err, IMS_ERR_NOT_FOUND,
                 "f.json: missing 'zz'");
    getter_fails(imsi_json_member_int64(r, "f.json", "s", 0, 10, &i, &err), &err, IMS_ERR_FORMAT,
                 "f.json: 's': expected an integer, found string (JSON byte 36)");
    getter_fails(imsi_json_member_int64(r, "f.json", "f", 0, 10, &i, &err), &err, IMS_ERR_FORMAT,
                 "f.json: 'f': expected an integer, found 1.5");
    getter_fails(imsi_json_member_int64(r, "f.json", "big", 0, 10000, &i, &err), &err, IMS_ERR_FORMAT,
                 "'big': expected an integer, found 1e3");
    getter_fails(imsi_json_member_int64(r, "f.json", "i", 8, 10, &i, &err), &err, IMS_ERR_FORMAT,
                 "f.json: 'i' = 7 is outside 8..10");
    getter_fails(imsi_json_member_int64(r, "f.json", "neg", 0, 10, &i, &err), &err, IMS_ERR_FORMAT,
                 "'neg' = -3 is outside 0..10");
    getter_fails(imsi_json_member_bool(r, "f.json", "n", &b, &err), &err, IMS_ERR_FORMAT,
                 "f.json: 'n': expected a boolean, found null");
    getter_fails(imsi_json_member_string(r, "f.json", "b", &s, &len, &err), &err, IMS_ERR_FORMAT,
                 "'b': expected a string, found boolean");
    getter_fails(imsi_json_member_double(r, "", "s", &d, &err), &err, IMS_ERR_FORMAT,
                 "'s': expected a number, found string");
    TEST_CHECK(i == 7 && b == 1 && d == 7.0, "failed getters leave their outputs alone");
    TEST_CHECK(imsi_json_member_int64(imsi_json_object_get(r, "i"), "x", "k", 0, 1, &i, &err) == IMS_ERR_FORMAT &&
                   contains(err.msg, "not inside an object"),
               "member of a non-object: %s", err.msg);
    TEST_CHECK(imsi_json_expect_kind(r, JSON_ARRAY, "root", &err) == IMS_ERR_FORMAT &&
                   contains(err.msg, "root: expected an array, found object (JSON byte 0)"),
               "%s", err.msg);
    TEST_CHECK(strcmp(imsi_json_kind_name(JSON_NULL), "null") == 0 && strcmp(imsi_json_kind_name(JSON_OBJECT), "object") == 0,
               "kind names");
    imsi_json_doc_free(&doc);
}

/* ---- Expectation files (tests/fixtures/safetensors/make_fixtures.py) ----------------------- */

static const char *dtype_code(ckpt_dtype d)
{
    static const char *const codes[CKPT_DTYPE_COUNT] = {"F32", "F64", "F16", "BF16", "I64",
                                                        "I32", "I16", "I8",  "U8",   "BOOL"};
    return (unsigned)d < CKPT_DTYPE_COUNT ? codes[d] : "?";
}

/* Neumaier's compensated sum: within a few ulps of math.fsum's exact rounding. */
static double sum_f64(const double *v, int64_t n, int absolute)
{
    double s = 0, c = 0;
    for (int64_t i = 0; i < n; i++) {
        double x = absolute ? fabs(v[i]) : v[i], t = s + x;
        c += fabs(s) >= fabs(x) ? (s - t) + x : (x - t) + s;
        s = t;
    }
    return s + c;
}

/* Compares one "tensor ..." line with t; returns the number of failed checks. */
static int check_tensor_line(char *line, const ckpt_tensor *t)
{
    int failed = test_checks_failed;
    char *save = NULL;
    strtok_r(line, " ", &save); /* "tensor" */
    const char *name = strtok_r(NULL, " ", &save), *dtype = strtok_r(NULL, " ", &save);
    TEST_CHECK(name && strcmp(name, t->name) == 0, "tensor name '%s', expected '%s'", t->name, name ? name : "?");
    TEST_CHECK(dtype && strcmp(dtype, dtype_code(t->dtype)) == 0, "%s: dtype %s, expected %s", t->name,
               dtype_code(t->dtype), dtype ? dtype : "?");
    int ndim = atoi(strtok_r(NULL, " ", &save));
    TEST_CHECK(ndim == t->ndim, "%s: ndim %d, expected %d", t->name, t->ndim, ndim);
    int64_t stride = 1, numel = 1;
    for (int d = 0; d < ndim && d < CKPT_MAX_DIMS; d++) {
        long long dim = atoll(strtok_r(NULL, " ", &save));
        TEST_CHECK(t->shape[d] == dim, "%s: shape[%d] %lld, expected %lld", t->name, d, (long long)t->shape[d], dim);
        numel *= dim;
    }
    for (int d = t->ndim - 1; d >= 0 && numel; d--) { /* row-major strides */
        TEST_CHECK(t->stride[d] == stride, "%s: stride[%d] %lld, expected %lld", t->name, d, (long long)t->stride[d],
                   (long long)stride);
        stride *= t->shape[d];
    }
    TEST_CHECK(t->storage_offset == 0 && !t->big_endian, "%s: offset/endianness", t->name);
    unsigned long long nbytes = strtoull(strtok_r(NULL, " ", &save), NULL, 10);
    TEST_CHECK(t->storage_nbytes == nbytes, "%s: %llu bytes, expected %llu", t->name,
               (unsigned long long)t->storage_nbytes, nbytes);
    unsigned long crc = strtoul(strtok_r(NULL, " ", &save), NULL, 16);
    unsigned long got_crc = crc32(0, t->storage, (uInt)t->storage_nbytes);
    TEST_CHECK(got_crc == crc, "%s: crc32 %08lx, expected %08lx", t->name, got_crc, crc);
    double sum = strtod(strtok_r(NULL, " ", &save), NULL), sumabs = strtod(strtok_r(NULL, " ", &save), NULL);
    long nvalues = atol(strtok_r(NULL, " ", &save));
    int64_t n = imsi_ckpt_tensor_numel(t);
    TEST_CHECK(n == numel, "%s: numel %lld, expected %lld", t->name, (long long)n, (long long)numel);
    double *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    imsi_ckpt_tensor_read_f64(t, v);
    /* The expectations are exactly rounded sums (math.fsum). Neumaier's sum
     * errs by at most ~2 ulp of the result plus n * eps^2 * sum|x| (under
     * 1e-23 * sum|x| for 12M elements), so 1e-14 of sum|x| is ample and still
     * catches any misread element larger than that. */
    double tol = 1e-14 * (sumabs > 1 ? sumabs : 1);
    TEST_CHECK(fabs(sum_f64(v, n, 0) - sum) <= tol, "%s: sum %.17g, expected %.17g", t->name, sum_f64(v, n, 0), sum);
    TEST_CHECK(fabs(sum_f64(v, n, 1) - sumabs) <= tol, "%s: sum|x| %.17g, expected %.17g", t->name, sum_f64(v, n, 1),
               sumabs);
    if (nvalues) {
        TEST_CHECK(nvalues == n, "%s: %ld values listed", t->name, nvalues);
        int bad = 0;
        for (int64_t i = 0; i < n && i < nvalues; i++) {
            double want = strtod(strtok_r(NULL, " ", &save), NULL);
            if (v[i] != want && bad++ < 3)
                TEST_CHECK(0, "%s[%lld] = %.17g, expected %.17g", t->name, (long long)i, v[i], want);
        }
        TEST_CHECK(bad == 0, "%s: %d values differ", t->name, bad);
    }
    free(v);
    return test_checks_failed - failed;
}

/* Checks every tensor of c against the "file <label>" block of expected_path. */
static void check_expected(const char *expected_path, const char *label, const ckpt *c)
{
    char *text = test_read_file(expected_path, NULL);
    TEST_CHECK(text != NULL, "cannot read %s", expected_path);
    if (!text)
        return;
    char *save = NULL, *line;
    size_t in_block = 0, index = 0;
    int found = 0, bad_tensors = 0;
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[256];
        size_t count;
        if (sscanf(line, "file %255s %zu", name, &count) == 2) {
            if (found)
                break;
            if (strcmp(name, label) == 0) {
                found = 1;
                in_block = count;
                TEST_CHECK(c->count == count, "%s: %zu tensors, expected %zu", label, c->count, count);
            }
        } else if (found && strncmp(line, "tensor ", 7) == 0 && index < in_block && index < c->count) {
            bad_tensors += check_tensor_line(line, &c->tensors[index++]) != 0;
        }
    }
    TEST_CHECK(found, "%s: no block for %s", expected_path, label);
    TEST_CHECK(index == in_block, "%s: checked %zu of %zu tensors", label, index, in_block);
    TEST_CHECK(bad_tensors == 0, "%s: %d tensors differ from %s", label, bad_tensors, expected_path);
    free(text);
}

/* ---- safetensors: the committed fixtures ------------------------------------------------- */

static void test_safetensors_fixtures(void)
{
    const char *files[] = {"basic.safetensors", "unordered.safetensors", "empty.safetensors"};
    char expected[4200];
    snprintf(expected, sizeof expected, "%s/safetensors/expected.txt", fixtures);
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/safetensors/%s", fixtures, files[i]);
        ckpt *c = NULL;
        ims_error err = {0};
        TEST_OK(imsi_ckpt_open(path, &c, &err), err);
        if (!c)
            continue;
        TEST_CHECK(c->format == CKPT_FORMAT_SAFETENSORS, "%s: format", files[i]);
        check_expected(expected, files[i], c);
        imsi_ckpt_free(c);
    }
    /* spot checks that do not go through the expectation file */
    char path[4200];
    snprintf(path, sizeof path, "%s/safetensors/basic.safetensors", fixtures);
    ckpt *c = NULL;
    ims_error err = {0};
    if (imsi_ckpt_open(path, &c, &err) == IMS_OK) {
        const ckpt_tensor *t = imsi_ckpt_find(c, "i.i64");
        double v[4];
        if (t && t->dtype == CKPT_I64 && t->shape[0] == 4) {
            imsi_ckpt_tensor_read_f64(t, v);
            TEST_CHECK(v[0] == -5 && v[3] == 1099511627776.0, "i.i64 values");
        } else {
            TEST_CHECK(0, "i.i64 missing or misshaped");
        }
        t = imsi_ckpt_find(c, "s.scalar");
        TEST_CHECK(t && t->ndim == 0 && imsi_ckpt_tensor_numel(t) == 1, "scalar");
        t = imsi_ckpt_find(c, "e.empty");
        TEST_CHECK(t && t->ndim == 2 && t->shape[0] == 0 && t->storage_nbytes == 0, "empty tensor");
        imsi_ckpt_free(c);
    }
}

/* ---- safetensors: hostile files ------------------------------------------------------------ */

typedef struct st_buf {
    unsigned char *p;
    size_t size;
} st_buf;

/* u64 N, the header text, then data_len bytes 0, 1, 2, ... */
static st_buf st_make(const char *header, size_t data_len)
{
    size_t n = strlen(header);
    st_buf b = {malloc(8 + n + data_len + 1), 8 + n + data_len};
    for (int i = 0; i < 8; i++)
        b.p[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(b.p + 8, header, n);
    for (size_t i = 0; i < data_len; i++)
        b.p[8 + n + i] = (unsigned char)i;
    return b;
}

static void st_set_len(st_buf *b, uint64_t n)
{
    for (int i = 0; i < 8; i++)
        b->p[i] = (unsigned char)(n >> (8 * i));
}

/* Runs the reader directly (not through imsi_ckpt_open_memory's sniffing), so that
 * files whose header does not start with '{' reach it too. */
static ims_status st_read(st_buf b, ckpt **out, ims_error *err)
{
    ckpt *c = calloc(1, sizeof *c);
    c->data = b.p;
    c->size = b.size;
    ims_status st = imsi_ckpt_read_safetensors(c, err);
    if (st) {
        imsi_ckpt_free(c);
        c = NULL;
    }
    *out = c;
    return st;
}

static void st_reject(const char *rule, st_buf b, ims_status code, const char *needle)
{
    ckpt *c = NULL;
    ims_error err = {0};
    ims_status st = st_read(b, &c, &err);
    TEST_CHECK(st == code, "rule '%s': got %s (%s), expected %s", rule, ims_status_name(st), err.msg,
               ims_status_name(code));
    TEST_CHECK(c == NULL, "rule '%s': no checkpoint on failure", rule);
    TEST_CHECK(contains(err.msg, needle), "rule '%s': message '%s' lacks '%s'", rule, err.msg, needle);
    TEST_CHECK(!strchr(err.msg, '\n'), "rule '%s': one line", rule);
    /* the same bytes through the public entry point: refused as well */
    if (b.size >= 9 && b.p[8] == '{') {
        ckpt *c2 = NULL;
        TEST_CHECK(imsi_ckpt_open_memory(b.p, b.size, &c2, &err) != IMS_OK && c2 == NULL, "rule '%s' via open_memory",
                   rule);
    }
    imsi_ckpt_free(c);
    free(b.p);
}

static ckpt *st_accept(const char *rule, st_buf b)
{
    ckpt *c = NULL;
    ims_error err = {0};
    ims_status st = imsi_ckpt_open_memory(b.p, b.size, &c, &err);
    TEST_CHECK(st == IMS_OK, "rule '%s': %s", rule, err.msg);
    return c;
}

/* 50,000 tensors, named "module.t<i>": every one is found by name, and the
 * module. prefix strips (the name index is rebuilt). Reading this once took
 * quadratic time (a linear search per added tensor); bench it with
 * `imgsearch convert` on such a file, not here. */
static void test_safetensors_many(void)
{
    enum { N = 50000 };
    size_t cap = (size_t)N * 96 + 64, len = 0;
    char *header = malloc(cap);
    if (!header)
        return;
    len += (size_t)snprintf(header + len, cap - len, "{");
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(header + len, cap - len, "%s\"module.t%d\":{\"dtype\":\"F32\",\"shape\":[1],"
                                "\"data_offsets\":[%d,%d]}", i ? "," : "", i, 4 * i, 4 * i + 4);
    snprintf(header + len, cap - len, "}");
    ckpt *c = st_accept("50,000 tensors", st_make(header, (size_t)N * 4));
    free(header);
    if (!c)
        return;
    TEST_CHECK(c->count == N, "%zu tensors, want %d", c->count, N);
    char name[32];
    int found = 0;
    for (int i = 0; i < N; i += 997) {
        snprintf(name, sizeof name, "module.t%d", i);
        const ckpt_tensor *t = imsi_ckpt_find(c, name);
        found += t && t->storage == c->data + 8 + (c->size - 8 - (size_t)N * 4) + 4 * (size_t)i;
    }
    TEST_CHECK(found == (N + 996) / 997, "%d of %d tensors found at their offsets", found, (N + 996) / 997);
    ims_error err = {0};
    TEST_OK(imsi_ckpt_strip_prefix(c, "module.", &err), err);
    TEST_CHECK(imsi_ckpt_find(c, "t49999") && imsi_ckpt_find(c, "t0") && !imsi_ckpt_find(c, "module.t0"),
               "names after stripping module.");
    free((void *)c->data);
    imsi_ckpt_free(c);
}

#define T1(name, dtype, shape, b, e)                                                                         \
    "\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"

static void test_safetensors_hostile(void)
{
    /* lengths */
    st_buf b = st_make("{}", 0);
    b.size = 5;
    st_reject("shorter than 8", b, IMS_ERR_FORMAT, "shorter than the 8-byte header length");
    b = st_make("{}", 0);
    st_set_len(&b, 100000001);
    st_reject("N > 1e8", b, IMS_ERR_FORMAT, "header length 100000001 exceeds the limit of 100000000");
    b = st_make("{}", 0);
    st_set_len(&b, UINT64_MAX);
    st_reject("N = 2^64-1", b, IMS_ERR_FORMAT, "exceeds the limit");
    b = st_make("{}", 0);
    st_set_len(&b, 3);
    st_reject("N past the end", b, IMS_ERR_FORMAT, "header length 3 runs past the end of the 10-byte file");
    b = st_make("{}     ", 0);
    st_set_len(&b, 1000);
    st_reject("N past the end (large)", b, IMS_ERR_FORMAT, "runs past the end");
    b = st_make("", 0);
    st_reject("N = 0", b, IMS_ERR_FORMAT, "does not start with '{'");
    b = st_make(" {}", 0);
    st_reject("leading space", b, IMS_ERR_FORMAT, "does not start with '{'");
    b = st_make("[]", 0);
    st_reject("array header", b, IMS_ERR_FORMAT, "does not start with '{'");

    /* the header's JSON */
    st_reject("not JSON", st_make("{not json}", 0), IMS_ERR_FORMAT,
              "safetensors header: JSON at byte 1: expected a string key, found 'n'");
    st_reject("truncated JSON", st_make("{\"a\":{\"dtype\":\"F32\"", 0), IMS_ERR_FORMAT, "expected ',' or '}'");
    st_reject("garbage after", st_make("{}x", 0), IMS_ERR_FORMAT, "unexpected 'x' after the JSON value");
    b = st_make("{}      ", 0);
    memset(b.p + 10, 0, 6); /* the writer pads with spaces; NULs are not JSON whitespace */
    st_reject("NUL padding", b, IMS_ERR_FORMAT, "JSON at byte 2: unexpected byte 0x00");
    st_reject("invalid UTF-8 name", st_make("{\"\xc3(\":{}}", 0), IMS_ERR_FORMAT, "invalid UTF-8");
    st_reject("duplicate names", st_make("{" T1("a", "F32", "[1]", 0, 4) "," T1("a", "F32", "[1]", 4, 8) "}", 8),
              IMS_ERR_FORMAT, "duplicate key \"a\"");
    st_reject("deep nesting", st_make("{\"a\":{\"x\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}}", 0), IMS_ERR_FORMAT,
              "nesting deeper than 16");

    /* offsets */
    st_reject("hole", st_make("{" T1("a", "F32", "[1]", 0, 4) "," T1("b", "F32", "[1]", 8, 12) "}", 12),
              IMS_ERR_FORMAT, "hole in the data buffer: bytes [4, 8) before tensor 'b'");
    st_reject("hole at 0", st_make("{" T1("a", "F32", "[1]", 4, 8) "}", 8), IMS_ERR_FORMAT,
              "hole in the data buffer: bytes [0, 4)");
    st_reject("overlap", st_make("{" T1("a", "F32", "[2]", 0, 8) "," T1("b", "F32", "[1]", 4, 8) "}", 8),
              IMS_ERR_FORMAT, "tensor 'b' [4, 8) overlaps tensor 'a' [0, 8)");
    st_reject("same range", st_make("{" T1("a", "F32", "[1]", 0, 4) "," T1("b", "F32", "[1]", 0, 4) "}", 4),
              IMS_ERR_FORMAT, "overlaps");
    st_reject("wrong e - b", st_make("{" T1("a", "F32", "[2]", 0, 4) "}", 4), IMS_ERR_FORMAT,
              "tensor 'a': data_offsets [0, 4] hold 4 bytes, but dtype float32 and its shape need 8");
    st_reject("wrong e - b (f16)", st_make("{" T1("a", "F16", "[2,2]", 0, 16) "}", 16), IMS_ERR_FORMAT, "need 8");
    st_reject("trailing data", st_make("{" T1("a", "F32", "[1]", 0, 4) "}", 8), IMS_ERR_FORMAT,
              "the tensors end at data byte 4, but the data buffer has 8 bytes");
    st_reject("data after an empty header", st_make("{}", 3), IMS_ERR_FORMAT, "end at data byte 0");
    st_reject("end past the file", st_make("{" T1("a", "F32", "[2]", 0, 8) "}", 4), IMS_ERR_FORMAT,
              "data_offsets end 8 is past the end of the 4-byte data buffer");
    st_reject("end before begin", st_make("{" T1("a", "F32", "[0]", 4, 0) "}", 4), IMS_ERR_FORMAT,
              "data_offsets [4, 0] end before they begin");
    st_reject("huge offsets", st_make("{" T1("a", "U8", "[1]", 18446744073709551615, 18446744073709551616) "}", 1),
              IMS_ERR_FORMAT, "data_offsets[0]: expected an integer");
    st_reject("negative offset", st_make("{" T1("a", "U8", "[1]", -1, 0) "}", 1), IMS_ERR_FORMAT,
              "data_offsets[0] = -1 is outside");
    st_reject("float offset", st_make("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1.0]}}", 1),
              IMS_ERR_FORMAT, "data_offsets[1]: expected an integer, found 1.0");
    st_reject("one offset", st_make("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}", 1),
              IMS_ERR_FORMAT, "data_offsets has 1 elements, expected 2");
    st_reject("offsets not array", st_make("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":\"0-1\"}}", 1),
              IMS_ERR_FORMAT, "data_offsets: expected an array, found string");

    /* dtypes */
    st_reject("unknown dtype", st_make("{" T1("a", "F33", "[1]", 0, 4) "}", 4), IMS_ERR_FORMAT,
              "tensor 'a': unknown dtype 'F33'");
    st_reject("lowercase dtype", st_make("{" T1("a", "f32", "[1]", 0, 4) "}", 4), IMS_ERR_FORMAT,
              "unknown dtype 'f32'");
    const char *unsupported[] = {"U16", "U32", "U64", "F8_E4M3", "F8_E5M2"};
    for (size_t i = 0; i < sizeof unsupported / sizeof *unsupported; i++) {
        char header[200], needle[80];
        snprintf(header, sizeof header, "{\"w\":{\"dtype\":\"%s\",\"shape\":[1],\"data_offsets\":[0,1]}}",
                 unsupported[i]);
        snprintf(needle, sizeof needle, "tensor 'w': dtype %s is not supported", unsupported[i]);
        st_reject(unsupported[i], st_make(header, 1), IMS_ERR_UNSUPPORTED, needle);
    }
    st_reject("dtype not a string", st_make("{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
              IMS_ERR_FORMAT, "tensor 'a': dtype: expected a string, found number");

    /* shapes */
    st_reject("negative dim", st_make("{" T1("a", "F32", "[2,-1]", 0, 4) "}", 4), IMS_ERR_FORMAT,
              "tensor 'a': shape[1] = -1 is outside 0..");
    st_reject("huge dim", st_make("{" T1("a", "F32", "[99999999999999999999]", 0, 4) "}", 4), IMS_ERR_FORMAT,
              "shape[0]: expected an integer, found 99999999999999999999");
    st_reject("float dim", st_make("{" T1("a", "F32", "[1e3]", 0, 4) "}", 4), IMS_ERR_FORMAT,
              "shape[0]: expected an integer, found 1e3");
    st_reject("bool dim", st_make("{" T1("a", "F32", "[true]", 0, 4) "}", 4), IMS_ERR_FORMAT,
              "shape[0]: expected an integer, found boolean");
    st_reject("product overflow", st_make("{" T1("a", "F32", "[4294967296,4294967296]", 0, 0) "}", 0),
              IMS_ERR_FORMAT, "tensor 'a': shape's byte size overflows 64 bits");
    st_reject("bytes overflow", st_make("{" T1("a", "F64", "[2305843009213693952]", 0, 0) "}", 0), IMS_ERR_FORMAT,
              "overflows 64 bits");
    st_reject("int64 max dims", st_make("{" T1("a", "U8", "[9223372036854775807,9223372036854775807]", 0, 1) "}", 1),
              IMS_ERR_FORMAT, "overflows");
    st_reject("wrap to a small size",
              st_make("{" T1("a", "U8", "[4294967296,4294967296,4294967296,1]", 0, 0) "}", 0), IMS_ERR_FORMAT,
              "overflows");
    st_reject("empty tensor with a huge dim", st_make("{" T1("a", "F32", "[0,5000000000000000000]", 0, 0) "}", 0),
              IMS_ERR_FORMAT, "tensor 'a': shape[1] = 5000000000000000000 is out of range");
    st_reject("9 dims", st_make("{" T1("a", "U8", "[1,1,1,1,1,1,1,1,1]", 0, 1) "}", 1), IMS_ERR_UNSUPPORTED,
              "shape has 9 dims, more than 8");
    st_reject("shape not array", st_make("{\"a\":{\"dtype\":\"U8\",\"shape\":3,\"data_offsets\":[0,3]}}", 3),
              IMS_ERR_FORMAT, "tensor 'a': shape: expected an array, found number");

    /* fields */
    st_reject("missing dtype", st_make("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4), IMS_ERR_FORMAT,
              "tensor 'a': missing field 'dtype'");
    st_reject("missing shape", st_make("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4), IMS_ERR_FORMAT,
              "missing field 'shape'");
    st_reject("missing offsets", st_make("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4), IMS_ERR_FORMAT,
              "missing field 'data_offsets'");
    st_reject("extra field",
              st_make("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"offsets\":[0,4]}}", 4),
              IMS_ERR_FORMAT, "tensor 'a': unknown field 'offsets'");
    st_reject("entry not an object", st_make("{\"a\":[1]}", 0), IMS_ERR_FORMAT,
              "tensor 'a': entry: expected an object, found array");
    st_reject("empty name", st_make("{" T1("", "F32", "[1]", 0, 4) "}", 4), IMS_ERR_FORMAT,
              "safetensors: header entry at JSON byte 1: tensor name is empty");
    st_reject("newline in a name", st_make("{" T1("a\\nb", "F32", "[1]", 0, 4) "}", 4), IMS_ERR_FORMAT,
              "tensor name contains the control character 0x0a at byte 1");
    st_reject("newline in a field", st_make("{\"a\":{\"dtype\":\"F32\",\"x\\ny\":1}}", 4), IMS_ERR_FORMAT,
              "tensor 'a': unknown field 'x\\x0ay'");
    st_reject("control chars in a dtype", st_make("{" T1("a", "F\\u0001\\u007f", "[1]", 0, 4) "}", 4), IMS_ERR_FORMAT,
              "unknown dtype 'F\\x01\\x7f'");
    st_reject("newline in a metadata key", st_make("{\"__metadata__\":{\"\\r\":1}}", 0), IMS_ERR_FORMAT,
              "value of '\\x0d' is a number");
    st_reject("newline in a duplicate key", st_make("{\"\\n\":1,\"\\n\":1}", 0), IMS_ERR_FORMAT,
              "duplicate key \"\\x0a\"");
    st_reject("metadata value", st_make("{\"__metadata__\":{\"format\":\"pt\",\"n\":1}}", 0), IMS_ERR_FORMAT,
              "__metadata__: value of 'n' is a number, expected a string");
    st_reject("metadata not object", st_make("{\"__metadata__\":[\"pt\"]}", 0), IMS_ERR_FORMAT,
              "__metadata__: expected an object, found array");
    st_reject("two metadata", st_make("{\"__metadata__\":{},\"__metadata__\":{}}", 0), IMS_ERR_FORMAT,
              "duplicate key \"__metadata__\"");

    /* accepted edge cases */
    ckpt *c;
    b = st_make("{\r\n\t\"a\" : { \"shape\" : [ ] , \"data_offsets\" : [ 0 , 4 ] , \"dtype\" : \"F32\" } }   ", 4);
    c = st_accept("whitespace, field order, scalar", b);
    TEST_CHECK(c && c->count == 1 && c->tensors[0].ndim == 0 && c->tensors[0].storage == b.p + b.size - 4, "scalar");
    imsi_ckpt_free(c);
    free(b.p);
    b = st_make("{" T1("z", "F32", "[0]", 0, 0) "," T1("y", "F32", "[3,0,2]", 0, 0) "}", 0);
    c = st_accept("only empty tensors, no data", b);
    TEST_CHECK(c && c->count == 2 && strcmp(c->tensors[0].name, "z") == 0 && c->tensors[1].stride[0] == 0,
               "empty tensors");
    imsi_ckpt_free(c);
    free(b.p);
    b = st_make("{" T1("b", "U8", "[2]", 2, 4) "," T1("e", "U8", "[0]", 2, 2) "," T1("a", "U8", "[2]", 0, 2) "}", 4);
    c = st_accept("header order differs from offset order", b);
    if (c && c->count == 3) {
        TEST_CHECK(strcmp(c->tensors[0].name, "b") == 0 && strcmp(c->tensors[2].name, "a") == 0,
                   "added in header order");
        TEST_CHECK(c->tensors[0].storage[0] == 2 && c->tensors[2].storage[1] == 1, "storage pointers");
    }
    imsi_ckpt_free(c);
    free(b.p);
    b = st_make("{\"__metadata__\":{},\"\\u00e9\\/x\":{\"dtype\":\"BOOL\",\"shape\":[1,1],\"data_offsets\":[0,1]}}", 1);
    c = st_accept("escaped name, empty metadata", b);
    TEST_CHECK(c && c->count == 1 && strcmp(c->tensors[0].name, "\xc3\xa9/x") == 0, "escaped name");
    imsi_ckpt_free(c);
    free(b.p);
}

/* ---- hf_model_dir ------------------------------------------------------------------------ */

static const char *const hf_files[] = {"config.json", "vocab.txt", "tokenizer_config.json",
                                       "sentence_bert_config.json", "modules.json", "1_Pooling/config.json",
                                       "model.safetensors"};

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void rm_tree(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* A fresh copy of the tiny model in a temporary directory (caller rm_tree's it). */
static char *hf_copy(void)
{
    char *dir = strdup("/tmp/ims_hf_XXXXXX");
    if (!mkdtemp(dir)) {
        TEST_CHECK(0, "mkdtemp failed");
        free(dir);
        return NULL;
    }
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/1_Pooling", dir);
    mkdir(sub, 0755);
    for (size_t i = 0; i < sizeof hf_files / sizeof *hf_files; i++) {
        char src[4200], dst[4200];
        snprintf(src, sizeof src, "%s/hf_tiny_bert/%s", fixtures, hf_files[i]);
        snprintf(dst, sizeof dst, "%s/%s", dir, hf_files[i]);
        size_t len;
        char *data = test_read_file(src, &len);
        TEST_CHECK(data && write_all(dst, data, len), "copy %s", src);
        free(data);
    }
    return dir;
}

static void hf_write(const char *dir, const char *rel, const char *text)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    TEST_CHECK(write_all(path, text, strlen(text)), "write %s", path);
}

static void hf_remove(const char *dir, const char *rel)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    TEST_CHECK(remove(path) == 0, "remove %s", path);
}

/* Replaces the first `old` in dir/rel with `new_text`. */
static void hf_edit(const char *dir, const char *rel, const char *old, const char *new_text)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    size_t len;
    char *text = test_read_file(path, &len);
    char *at = text ? strstr(text, old) : NULL;
    TEST_CHECK(at != NULL, "%s has no '%s'", path, old);
    if (!at) {
        free(text);
        return;
    }
    size_t n_old = strlen(old), n_new = strlen(new_text), head = (size_t)(at - text);
    char *out = malloc(len - n_old + n_new + 1);
    memcpy(out, text, head);
    memcpy(out + head, new_text, n_new);
    memcpy(out + head + n_new, at + n_old, len - head - n_old + 1);
    TEST_CHECK(write_all(path, out, len - n_old + n_new), "write %s", path);
    free(out);
    free(text);
}

static void check_tiny_config(const hf_model_dir *d)
{
    const hf_bert_config *c = &d->config;
    TEST_CHECK(c->vocab_size == 40 && c->hidden_size == 8 && c->num_layers == 2 && c->num_heads == 2 &&
                   c->intermediate_size == 16 && c->max_position_embeddings == 16 && c->type_vocab_size == 2,
               "tiny sizes");
    TEST_CHECK(c->layer_norm_eps == 1e-12, "eps %g", c->layer_norm_eps);
    TEST_CHECK(c->max_seq_length == 12 && c->do_lower_case == 1, "seq %d lower %d", c->max_seq_length,
               c->do_lower_case);
    TEST_CHECK(c->pooling == HF_POOLING_MEAN && c->normalize == 1, "pooling %s normalize %d",
               imsi_hf_pooling_name(c->pooling), c->normalize);
    TEST_CHECK(d->vocab_count == 40, "vocab %zu", d->vocab_count);
    if (d->vocab_count == 40)
        TEST_CHECK(strcmp(d->vocab[0], "[PAD]") == 0 && strcmp(d->vocab[4], "[MASK]") == 0 &&
                       strcmp(d->vocab[22], "caf\xc3\xa9") == 0 && strcmp(d->vocab[39], "[unused1]") == 0,
                   "tokens '%s' '%s' '%s' '%s'", d->vocab[0], d->vocab[4], d->vocab[22], d->vocab[39]);
    const char *w = d->weights_path;
    TEST_CHECK(w && strlen(w) > 17 && strcmp(w + strlen(w) - 17, "model.safetensors") == 0, "weights %s",
               w ? w : "(null)");
}

static void test_hf_tiny(void)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/hf_tiny_bert", fixtures);
    hf_model_dir d;
    ims_error err = {0};
    TEST_OK(imsi_hf_model_dir_open(dir, &d, &err), err);
    check_tiny_config(&d);
    ckpt *c = NULL;
    if (d.weights_path)
        TEST_OK(imsi_ckpt_open(d.weights_path, &c, &err), err);
    if (c) {
        char expected[4300];
        snprintf(expected, sizeof expected, "%s/expected.txt", dir);
        check_expected(expected, "model.safetensors", c);
        const ckpt_tensor *t = imsi_ckpt_find(c, "encoder.layer.1.intermediate.dense.weight");
        TEST_CHECK(t && t->dtype == CKPT_F32 && t->ndim == 2 && t->shape[0] == 16 && t->shape[1] == 8,
                   "intermediate weight");
    }
    imsi_ckpt_free(c);
    imsi_hf_model_dir_free(&d);
    imsi_hf_model_dir_free(&d); /* free twice is harmless: it clears */
}

typedef void (*hf_breaker)(const char *dir);

static void hf_reject(const char *rule, hf_breaker brk, ims_status code, const char *needle)
{
    char *dir = hf_copy();
    if (!dir)
        return;
    brk(dir);
    hf_model_dir d;
    ims_error err = {0};
    ims_status st = imsi_hf_model_dir_open(dir, &d, &err);
    TEST_CHECK(st == code, "rule '%s': got %s (%s), expected %s", rule, ims_status_name(st), err.msg,
               ims_status_name(code));
    TEST_CHECK(contains(err.msg, needle), "rule '%s': message '%s' lacks '%s'", rule, err.msg, needle);
    TEST_CHECK(!strchr(err.msg, '\n'), "rule '%s': one line", rule);
    TEST_CHECK(d.vocab == NULL && d.weights_path == NULL && d.vocab_count == 0, "rule '%s': left empty", rule);
    imsi_hf_model_dir_free(&d);
    rm_tree(dir);
    free(dir);
}

/* Opens a modified copy that must be accepted; returns it for checks. */
static hf_model_dir hf_accept(const char *rule, hf_breaker change)
{
    char *dir = hf_copy();
    hf_model_dir d;
    memset(&d, 0, sizeof d);
    if (!dir)
        return d;
    change(dir);
    ims_error err = {0};
    ims_status st = imsi_hf_model_dir_open(dir, &d, &err);
    TEST_CHECK(st == IMS_OK, "rule '%s': %s", rule, err.msg);
    rm_tree(dir);
    free(dir);
    return d;
}

/* BREAKER(name, statements...): a function that edits the copy in dir */
#define BREAKER(name, ...)                                                                                   \
    static void name(const char *dir) { __VA_ARGS__; }

BREAKER(br_roberta, hf_edit(dir, "config.json", "\"bert\"", "\"roberta\""))
BREAKER(br_model_type_nl, hf_edit(dir, "config.json", "\"bert\"", "\"be\\nrt\""))
BREAKER(br_no_model_type, hf_edit(dir, "config.json", "\"model_type\"", "\"model_kind\""))
BREAKER(br_gelu_new, hf_edit(dir, "config.json", "\"gelu\"", "\"gelu_new\""))
BREAKER(br_relu, hf_edit(dir, "config.json", "\"gelu\"", "\"relu\""))
BREAKER(br_rel_pos, hf_edit(dir, "config.json", "\"absolute\"", "\"relative_key\""))
BREAKER(br_heads, hf_edit(dir, "config.json", "\"num_attention_heads\": 2", "\"num_attention_heads\": 3"))
BREAKER(br_heads0, hf_edit(dir, "config.json", "\"num_attention_heads\": 2", "\"num_attention_heads\": 0"))
BREAKER(br_no_vocab_size, hf_edit(dir, "config.json", "\"vocab_size\"", "\"vocab_count\""))
BREAKER(br_vocab_size_str, hf_edit(dir, "config.json", "\"vocab_size\": 40", "\"vocab_size\": \"40\""))
BREAKER(br_hidden_float, hf_edit(dir, "config.json", "\"hidden_size\": 8", "\"hidden_size\": 8.0"))
BREAKER(br_eps0, hf_edit(dir, "config.json", "1e-12", "0"))
BREAKER(br_eps_str, hf_edit(dir, "config.json", "1e-12", "\"1e-12\""))
BREAKER(br_config_json, hf_edit(dir, "config.json", "\"hidden_act\": \"gelu\",", "\"hidden_act\": \"gelu\""))
BREAKER(br_config_dup, hf_edit(dir, "config.json", "\"hidden_act\": \"gelu\",",
                               "\"hidden_act\": \"gelu\", \"hidden_act\": \"relu\","))
BREAKER(br_config_array, hf_write(dir, "config.json", "[1, 2]"))
BREAKER(br_no_config, hf_remove(dir, "config.json"))
BREAKER(br_config_dir, {
    char path[4200];
    hf_remove(dir, "config.json");
    snprintf(path, sizeof path, "%s/config.json", dir);
    mkdir(path, 0755);
})
BREAKER(br_modules_two_transformers, hf_edit(dir, "modules.json", "models.Normalize", "models.Transformer"))
BREAKER(br_no_weights, hf_remove(dir, "model.safetensors"))
BREAKER(br_vocab_short, hf_edit(dir, "vocab.txt", "hello\n", ""))
BREAKER(br_vocab_long, hf_edit(dir, "vocab.txt", "hello\n", "hello\nhallo\n"))
BREAKER(br_vocab_dup, hf_edit(dir, "vocab.txt", "hello\n", "cat\n"))
BREAKER(br_vocab_empty_line, hf_edit(dir, "vocab.txt", "hello\n", "\n"))
BREAKER(br_vocab_utf8, hf_edit(dir, "vocab.txt", "hello\n", "hel\xfflo\n"))
BREAKER(br_vocab_cr, hf_edit(dir, "vocab.txt", "hello\n", "hel\rlo\n"))
BREAKER(br_no_vocab, hf_remove(dir, "vocab.txt"))
BREAKER(br_strip_accents, hf_edit(dir, "tokenizer_config.json", "\"strip_accents\": null", "\"strip_accents\": false"))
BREAKER(br_chinese, hf_edit(dir, "tokenizer_config.json", "\"tokenize_chinese_chars\": true",
                            "\"tokenize_chinese_chars\": false"))
BREAKER(br_lower_str, hf_edit(dir, "tokenizer_config.json", "\"do_lower_case\": true", "\"do_lower_case\": 1"))
BREAKER(br_seq_long, hf_edit(dir, "sentence_bert_config.json", "12", "17"))
BREAKER(br_seq_1, hf_edit(dir, "sentence_bert_config.json", "12", "1"))
BREAKER(br_sbert_lower, hf_edit(dir, "sentence_bert_config.json", "false", "true");
        hf_edit(dir, "tokenizer_config.json", "\"do_lower_case\": true", "\"do_lower_case\": false"))
BREAKER(br_pool_max, hf_edit(dir, "1_Pooling/config.json", "\"pooling_mode_max_tokens\": false",
                             "\"pooling_mode_max_tokens\": true");
        hf_edit(dir, "1_Pooling/config.json", "\"pooling_mode_mean_tokens\": true",
                "\"pooling_mode_mean_tokens\": false"))
BREAKER(br_pool_two, hf_edit(dir, "1_Pooling/config.json", "\"pooling_mode_cls_token\": false",
                             "\"pooling_mode_cls_token\": true"))
BREAKER(br_pool_none, hf_edit(dir, "1_Pooling/config.json", "\"pooling_mode_mean_tokens\": true",
                              "\"pooling_mode_mean_tokens\": false"))
BREAKER(br_pool_weighted, hf_edit(dir, "1_Pooling/config.json", "\"pooling_mode_mean_tokens\": true",
                                  "\"pooling_mode_mean_tokens\": false, \"pooling_mode_weightedmean_tokens\": true"))
BREAKER(br_pool_dim, hf_edit(dir, "1_Pooling/config.json", "\"word_embedding_dimension\": 8",
                             "\"word_embedding_dimension\": 16"))
BREAKER(br_pool_str, hf_edit(dir, "1_Pooling/config.json", "\"pooling_mode_mean_tokens\": true",
                             "\"pooling_mode_mean_tokens\": \"yes\""))
BREAKER(br_pool_missing, hf_remove(dir, "1_Pooling/config.json"))
BREAKER(br_modules_dense, hf_edit(dir, "modules.json", "models.Normalize", "models.Dense"))
BREAKER(br_modules_dotdot, hf_edit(dir, "modules.json", "\"1_Pooling\"", "\"../1_Pooling\""))
BREAKER(br_modules_abs, hf_edit(dir, "modules.json", "\"1_Pooling\"", "\"/tmp\""))
BREAKER(br_modules_no_transformer, hf_edit(dir, "modules.json", "models.Transformer", "models.Normalize"))
BREAKER(br_modules_two_pooling, hf_edit(dir, "modules.json", "models.Normalize", "models.Pooling"))
BREAKER(br_modules_no_type, hf_edit(dir, "modules.json", "\"type\": \"sentence_transformers.models.Normalize\"",
                                    "\"kind\": \"x\""))
BREAKER(br_modules_object, hf_write(dir, "modules.json", "{}"))

BREAKER(ch_crlf, {
    char path[4200];
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    size_t len;
    char *t = test_read_file(path, &len);
    char *o = malloc(2 * len + 1);
    size_t n = 0;
    for (size_t i = 0; t && i < len; i++) {
        if (t[i] == '\n')
            o[n++] = '\r';
        o[n++] = t[i];
    }
    write_all(path, o, n);
    free(o);
    free(t);
})
BREAKER(ch_no_final_newline, hf_edit(dir, "vocab.txt", "[unused1]\n", "[unused1]"))
BREAKER(ch_cls, hf_edit(dir, "1_Pooling/config.json", "\"pooling_mode_cls_token\": false",
                        "\"pooling_mode_cls_token\": true");
        hf_edit(dir, "1_Pooling/config.json", "\"pooling_mode_mean_tokens\": true",
                "\"pooling_mode_mean_tokens\": false"))
BREAKER(ch_no_optional, hf_remove(dir, "modules.json"); hf_remove(dir, "1_Pooling/config.json");
        hf_remove(dir, "tokenizer_config.json"); hf_remove(dir, "sentence_bert_config.json"))
BREAKER(ch_lower_false, hf_edit(dir, "tokenizer_config.json", "\"do_lower_case\": true", "\"do_lower_case\": false"))
BREAKER(ch_bin, hf_remove(dir, "model.safetensors"); hf_write(dir, "pytorch_model.bin", "x"))
BREAKER(ch_seq_null, hf_edit(dir, "sentence_bert_config.json", "12", "null"))
BREAKER(ch_moved, {
    /* the transformer in 0_BERT/ and the pooling config in pool/, as modules.json says */
    char a[4200], b2[4200];
    snprintf(a, sizeof a, "%s/0_BERT", dir);
    mkdir(a, 0755);
    snprintf(a, sizeof a, "%s/pool", dir);
    mkdir(a, 0755);
    const char *moved[] = {"config.json", "vocab.txt", "tokenizer_config.json", "sentence_bert_config.json",
                           "model.safetensors"};
    for (int i = 0; i < 5; i++) {
        snprintf(a, sizeof a, "%s/%s", dir, moved[i]);
        snprintf(b2, sizeof b2, "%s/0_BERT/%s", dir, moved[i]);
        rename(a, b2);
    }
    snprintf(a, sizeof a, "%s/1_Pooling/config.json", dir);
    snprintf(b2, sizeof b2, "%s/pool/config.json", dir);
    rename(a, b2);
    hf_edit(dir, "pool/config.json", "\"pooling_mode_cls_token\": false", "\"pooling_mode_cls_token\": true");
    hf_edit(dir, "pool/config.json", "\"pooling_mode_mean_tokens\": true", "\"pooling_mode_mean_tokens\": false");
    hf_edit(dir, "modules.json", "\"path\": \"\"", "\"path\": \"0_BERT\"");
    hf_edit(dir, "modules.json", "\"1_Pooling\"", "\"pool\"");
})

static void test_hf_rules(void)
{
    hf_reject("model_type", br_roberta, IMS_ERR_UNSUPPORTED, "config.json: model_type 'roberta' is not supported");
    hf_reject("model_type newline", br_model_type_nl, IMS_ERR_UNSUPPORTED, "model_type 'be\\x0art' is not supported");
    hf_reject("no model_type", br_no_model_type, IMS_ERR_FORMAT, "config.json: missing 'model_type'");
    hf_reject("gelu_new", br_gelu_new, IMS_ERR_UNSUPPORTED,
              "config.json: hidden_act 'gelu_new' is not supported (only 'gelu', the exact erf GELU)");
    hf_reject("relu", br_relu, IMS_ERR_UNSUPPORTED, "hidden_act 'relu' is not supported");
    hf_reject("relative positions", br_rel_pos, IMS_ERR_UNSUPPORTED, "position_embedding_type 'relative_key'");
    hf_reject("heads", br_heads, IMS_ERR_FORMAT,
              "config.json: hidden_size 8 is not divisible by num_attention_heads 3");
    hf_reject("0 heads", br_heads0, IMS_ERR_FORMAT, "'num_attention_heads' = 0 is outside 1..8");
    hf_reject("no vocab_size", br_no_vocab_size, IMS_ERR_FORMAT, "config.json: missing 'vocab_size'");
    hf_reject("vocab_size string", br_vocab_size_str, IMS_ERR_FORMAT,
              "config.json: 'vocab_size': expected an integer, found string");
    hf_reject("hidden float", br_hidden_float, IMS_ERR_FORMAT, "'hidden_size': expected an integer, found 8.0");
    hf_reject("eps 0", br_eps0, IMS_ERR_FORMAT, "config.json: layer_norm_eps = 0 is not in (0, 1)");
    hf_reject("eps string", br_eps_str, IMS_ERR_FORMAT, "'layer_norm_eps': expected a number, found string");
    hf_reject("config JSON", br_config_json, IMS_ERR_FORMAT, "config.json: JSON at byte");
    hf_reject("config duplicate", br_config_dup, IMS_ERR_FORMAT,
              "config.json: JSON at byte 107: duplicate key \"hidden_act\"");
    hf_reject("config array", br_config_array, IMS_ERR_FORMAT, "config.json: expected an object, found array");
    hf_reject("no config", br_no_config, IMS_ERR_NOT_FOUND, "config.json: cannot open");
    hf_reject("config is a folder", br_config_dir, IMS_ERR_IO, "config.json: not a regular file");
    hf_reject("no weights", br_no_weights, IMS_ERR_NOT_FOUND, "no model.safetensors or pytorch_model.bin");
    hf_reject("vocab short", br_vocab_short, IMS_ERR_FORMAT,
              "vocab.txt: 39 tokens, but config.json says vocab_size 40");
    hf_reject("vocab long", br_vocab_long, IMS_ERR_FORMAT, "vocab.txt: 41 tokens");
    hf_reject("vocab duplicate", br_vocab_dup, IMS_ERR_FORMAT, "vocab.txt: token 'cat' appears on lines 8 and 37");
    hf_reject("vocab empty line", br_vocab_empty_line, IMS_ERR_FORMAT, "vocab.txt: line 37 is empty");
    hf_reject("vocab UTF-8", br_vocab_utf8, IMS_ERR_FORMAT, "vocab.txt: line 37 is not valid UTF-8");
    hf_reject("vocab CR", br_vocab_cr, IMS_ERR_FORMAT, "vocab.txt: line 37 contains a carriage return");
    hf_reject("no vocab", br_no_vocab, IMS_ERR_NOT_FOUND, "vocab.txt: cannot open");
    hf_reject("strip_accents", br_strip_accents, IMS_ERR_UNSUPPORTED,
              "tokenizer_config.json: strip_accents false with do_lower_case true is not supported");
    hf_reject("chinese chars", br_chinese, IMS_ERR_UNSUPPORTED, "tokenize_chinese_chars false is not supported");
    hf_reject("do_lower_case 1", br_lower_str, IMS_ERR_FORMAT,
              "tokenizer_config.json: 'do_lower_case': expected a boolean, found number");
    hf_reject("max_seq_length", br_seq_long, IMS_ERR_FORMAT,
              "sentence_bert_config.json: 'max_seq_length' = 17 is outside 2..16");
    hf_reject("max_seq_length 1", br_seq_1, IMS_ERR_FORMAT, "'max_seq_length' = 1 is outside 2..16");
    hf_reject("sbert lowercase", br_sbert_lower, IMS_ERR_UNSUPPORTED, "sentence_bert_config.json: do_lower_case true");
    hf_reject("max pooling", br_pool_max, IMS_ERR_UNSUPPORTED,
              "1_Pooling/config.json: pooling_mode_max_tokens is not supported");
    hf_reject("two poolings", br_pool_two, IMS_ERR_UNSUPPORTED,
              "both pooling_mode_cls_token and pooling_mode_mean_tokens are true");
    hf_reject("no pooling", br_pool_none, IMS_ERR_FORMAT, "1_Pooling/config.json: no pooling_mode_* field is true");
    hf_reject("weighted mean", br_pool_weighted, IMS_ERR_UNSUPPORTED,
              "pooling_mode_weightedmean_tokens is not supported");
    hf_reject("pooling dim", br_pool_dim, IMS_ERR_FORMAT, "'word_embedding_dimension' = 16 is outside 8..8");
    hf_reject("pooling string", br_pool_str, IMS_ERR_FORMAT, "'pooling_mode_mean_tokens': expected a boolean");
    hf_reject("pooling config missing", br_pool_missing, IMS_ERR_NOT_FOUND, "1_Pooling/config.json: cannot open");
    hf_reject("Dense module", br_modules_dense, IMS_ERR_UNSUPPORTED,
              "modules.json: module 2 has type 'sentence_transformers.models.Dense', which is not supported");
    hf_reject("module ..", br_modules_dotdot, IMS_ERR_FORMAT, "modules.json: module 1: path '../1_Pooling' leaves");
    hf_reject("module absolute", br_modules_abs, IMS_ERR_FORMAT, "path '/tmp' is absolute");
    hf_reject("no transformer", br_modules_no_transformer, IMS_ERR_FORMAT,
              "modules.json: no sentence_transformers.models.Transformer");
    hf_reject("two transformers", br_modules_two_transformers, IMS_ERR_UNSUPPORTED, "more than one Transformer module");
    hf_reject("two poolings", br_modules_two_pooling, IMS_ERR_UNSUPPORTED, "more than one Pooling module");
    hf_reject("module without type", br_modules_no_type, IMS_ERR_FORMAT, "modules.json: module 2: missing 'type'");
    hf_reject("modules object", br_modules_object, IMS_ERR_FORMAT, "modules.json: expected an array, found object");

    hf_model_dir d = hf_accept("CRLF vocab", ch_crlf);
    check_tiny_config(&d);
    imsi_hf_model_dir_free(&d);
    d = hf_accept("no final newline", ch_no_final_newline);
    check_tiny_config(&d);
    imsi_hf_model_dir_free(&d);
    d = hf_accept("cls pooling", ch_cls);
    TEST_CHECK(d.config.pooling == HF_POOLING_CLS, "cls");
    imsi_hf_model_dir_free(&d);
    d = hf_accept("no optional files", ch_no_optional);
    TEST_CHECK(d.config.pooling == HF_POOLING_MEAN && d.config.normalize == 0 && d.config.do_lower_case == 1 &&
                   d.config.max_seq_length == 16,
               "defaults: pooling %d normalize %d lower %d seq %d", d.config.pooling, d.config.normalize,
               d.config.do_lower_case, d.config.max_seq_length);
    imsi_hf_model_dir_free(&d);
    d = hf_accept("do_lower_case false", ch_lower_false);
    TEST_CHECK(d.config.do_lower_case == 0, "lower");
    imsi_hf_model_dir_free(&d);
    d = hf_accept("pytorch_model.bin", ch_bin);
    TEST_CHECK(d.weights_path && strstr(d.weights_path, "/pytorch_model.bin"), "bin: %s",
               d.weights_path ? d.weights_path : "(null)");
    imsi_hf_model_dir_free(&d);
    d = hf_accept("max_seq_length null", ch_seq_null);
    TEST_CHECK(d.config.max_seq_length == 16, "seq %d", d.config.max_seq_length);
    imsi_hf_model_dir_free(&d);
    d = hf_accept("modules paths", ch_moved);
    TEST_CHECK(d.config.pooling == HF_POOLING_CLS && d.weights_path &&
                   strstr(d.weights_path, "/0_BERT/model.safetensors"),
               "moved: %s", d.weights_path ? d.weights_path : "(null)");
    imsi_hf_model_dir_free(&d);

    hf_model_dir none;
    ims_error err = {0};
    TEST_CHECK(imsi_hf_model_dir_open("/nonexistent/ims/model", &none, &err) == IMS_ERR_NOT_FOUND &&
                   contains(err.msg, "not a directory"),
               "%s", err.msg);
}

/* ---- The real all-MiniLM-L6-v2 -------------------------------------------------------------- */

static void test_minilm(void)
{
    const char *dir = getenv("IMS_MINILM_DIR");
    if (!dir || !*dir) {
        printf("SKIPPED part: the real all-MiniLM-L6-v2 check (IMS_MINILM_DIR is not set; "
               "IMS_MINILM_DIR=$(scripts/fetch-minilm.sh | tail -n 1))\n");
        return;
    }
    hf_model_dir d;
    ims_error err = {0};
    TEST_OK(imsi_hf_model_dir_open(dir, &d, &err), err);
    const hf_bert_config *c = &d.config;
    TEST_CHECK(c->vocab_size == 30522 && c->hidden_size == 384 && c->num_layers == 6 && c->num_heads == 12 &&
                   c->intermediate_size == 1536 && c->max_position_embeddings == 512 && c->type_vocab_size == 2,
               "MiniLM sizes");
    TEST_CHECK(c->max_seq_length == 256 && c->pooling == HF_POOLING_MEAN && c->normalize == 1 &&
                   c->do_lower_case == 1 && c->layer_norm_eps == 1e-12,
               "MiniLM seq %d pooling %s normalize %d lower %d", c->max_seq_length, imsi_hf_pooling_name(c->pooling),
               c->normalize, c->do_lower_case);
    TEST_CHECK(d.vocab_count == 30522, "vocab %zu", d.vocab_count);
    if (d.vocab_count == 30522)
        TEST_CHECK(strcmp(d.vocab[0], "[PAD]") == 0 && strcmp(d.vocab[100], "[UNK]") == 0 &&
                       strcmp(d.vocab[101], "[CLS]") == 0 && strcmp(d.vocab[102], "[SEP]") == 0 &&
                       strcmp(d.vocab[103], "[MASK]") == 0,
                   "special tokens");
    ckpt *ck = NULL;
    if (d.weights_path)
        TEST_OK(imsi_ckpt_open(d.weights_path, &ck, &err), err);
    if (ck) {
        TEST_CHECK(ck->count == 104, "%zu tensors", ck->count);
        const ckpt_tensor *t = imsi_ckpt_find(ck, "embeddings.word_embeddings.weight");
        TEST_CHECK(t && t->dtype == CKPT_F32 && t->ndim == 2 && t->shape[0] == 30522 && t->shape[1] == 384,
                   "word embeddings");
        t = imsi_ckpt_find(ck, "encoder.layer.5.intermediate.dense.weight");
        TEST_CHECK(t && t->ndim == 2 && t->shape[0] == 1536 && t->shape[1] == 384, "intermediate");
        t = imsi_ckpt_find(ck, "embeddings.position_ids");
        TEST_CHECK(t && t->dtype == CKPT_I64 && t->ndim == 2 && t->shape[1] == 512, "position_ids");
        char expected[4200];
        snprintf(expected, sizeof expected, "%s/minilm/expected.txt", fixtures);
        int failed = test_checks_failed;
        check_expected(expected, "model.safetensors", ck);
        if (test_checks_failed == failed)
            printf("all-MiniLM-L6-v2: %zu tensors match %s\n", ck->count, expected);
    }
    imsi_ckpt_free(ck);
    imsi_hf_model_dir_free(&d);
}

int main(int argc, char **argv)
{
    snprintf(fixtures, sizeof fixtures, "%s", test_fixture_dir(argc, argv));
    test_json_valid();
    test_json_invalid();
    test_json_limits();
    test_json_getters();
    test_json_printable();
    test_safetensors_fixtures();
    test_safetensors_hostile();
    test_safetensors_many();
    test_hf_tiny();
    test_hf_rules();
    test_minilm();
    return test_finish();
}
