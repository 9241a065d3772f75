/* fuzz_json.c: libFuzzer target for the strict JSON parser and its accessors.
 *
 * Each input is parsed with the default limits and with tight ones. An
 * accepted tree is checked for the promises of core/json.h (strings valid
 * UTF-8, NUL-terminated, no NUL inside; keys unique and found by lookup;
 * integer literals exact), every typed getter is run on every value, and the
 * tree is written back out as JSON and parsed again: the second tree must
 * equal the first.
 */
#include "io/weights_format.h"
#include "core/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct out_buf {
    char *p;
    size_t len, cap;
    int failed;
} out_buf;

static void emit(out_buf *o, const char *s, size_t n)
{
    if (o->failed)
        return;
    if (o->len + n > o->cap) {
        size_t cap = (o->len + n) * 2 + 64;
        char *p = realloc(o->p, cap);
        if (!p) {
            o->failed = 1;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void emit_string(out_buf *o, const char *s, size_t n)
{
    emit(o, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            emit(o, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            emit(o, esc, 6);
        } else {
            emit(o, s + i, 1);
        }
    }
    emit(o, "\"", 1);
}

static void check_string(const char *s, size_t n)
{
    if (s[n] != '\0' || memchr(s, '\0', n) || !imsi_isw_utf8_valid(s, n))
        abort();
}

/* Checks v and writes it back out as JSON. */
static void visit(const json_value *v, out_buf *o)
{
    ims_error err;
    int b;
    double d;
    int64_t i64;
    const char *s;
    size_t n;
    (void)imsi_json_get_bool(v, "v", &b, &err);
    (void)imsi_json_get_double(v, "v", &d, &err);
    (void)imsi_json_get_int64(v, "v", -5, 5, &i64, &err);
    (void)imsi_json_get_string(v, "v", &s, &n, &err);
    switch (v->kind) {
    case JSON_NULL: emit(o, "null", 4); break;
    case JSON_BOOL: emit(o, v->boolean ? "true" : "false", v->boolean ? 4 : 5); break;
    case JSON_NUMBER:
        if (strlen(v->num.text) != v->num.text_len)
            abort();
        if (v->num.is_int && (double)v->num.int_value != v->num.value)
            abort(); /* both are the correctly rounded double of the same integer */
        emit(o, v->num.text, v->num.text_len);
        break;
    case JSON_STRING:
        check_string(v->str.ptr, v->str.len);
        emit_string(o, v->str.ptr, v->str.len);
        break;
    case JSON_ARRAY:
        emit(o, "[", 1);
        for (size_t i = 0; i < v->arr.count; i++) {
            if (imsi_json_array_at(v, i) != &v->arr.items[i])
                abort();
            if (i)
                emit(o, ",", 1);
            visit(&v->arr.items[i], o);
        }
        if (imsi_json_array_at(v, v->arr.count) != NULL)
            abort();
        emit(o, "]", 1);
        break;
    case JSON_OBJECT:
        emit(o, "{", 1);
        for (size_t i = 0; i < v->obj.count; i++) {
            const json_member *m = &v->obj.members[i];
            check_string(m->key, m->key_len);
            if (imsi_json_object_get(v, m->key) != &m->value)
                abort(); /* keys are unique, so lookup finds this member */
            (void)imsi_json_member_int64(v, "obj", m->key, 0, 100, &i64, &err);
            (void)imsi_json_member_string(v, "obj", m->key, &s, &n, &err);
            if (i)
                emit(o, ",", 1);
            emit_string(o, m->key, m->key_len);
            emit(o, ":", 1);
            visit(&m->value, o);
        }
        emit(o, "}", 1);
        break;
    }
}

static int same(const json_value *a, const json_value *b)
{
    if (a->kind != b->kind)
        return 0;
    switch (a->kind) {
    case JSON_NULL: return 1;
    case JSON_BOOL: return a->boolean == b->boolean;
    case JSON_NUMBER: return strcmp(a->num.text, b->num.text) == 0 && a->num.is_int == b->num.is_int;
    case JSON_STRING: return a->str.len == b->str.len && memcmp(a->str.ptr, b->str.ptr, a->str.len) == 0;
    case JSON_ARRAY:
        if (a->arr.count != b->arr.count)
            return 0;
        for (size_t i = 0; i < a->arr.count; i++)
            if (!same(&a->arr.items[i], &b->arr.items[i]))
                return 0;
        return 1;
    case JSON_OBJECT:
        if (a->obj.count != b->obj.count)
            return 0;
        for (size_t i = 0; i < a->obj.count; i++)
            if (strcmp(a->obj.members[i].key, b->obj.members[i].key) != 0 ||
                !same(&a->obj.members[i].value, &b->obj.members[i].value))
                return 0;
        return 1;
    }
    return 0;
}

static void run(const char *text, size_t size, const json_limits *lim)
{
    json_doc doc;
    ims_error err = {0};
    if (imsi_json_parse(text, size, lim, &doc, &err) != IMS_OK) {
        if (doc.root || err.msg[0] == '\0' || strchr(err.msg, '\n'))
            abort();
        return;
    }
    out_buf o = {0};
    visit(doc.root, &o);
    if (!o.failed) {
        json_doc again;
        /* the rewrite is never larger in values or depth; it may be longer in bytes */
        json_limits lim2 = lim ? *lim : (json_limits){JSON_DEFAULT_MAX_BYTES, JSON_DEFAULT_MAX_DEPTH,
                                                      JSON_DEFAULT_MAX_VALUES};
        lim2.max_bytes = o.len;
        if (imsi_json_parse(o.p, o.len, &lim2, &again, &err) != IMS_OK || !same(doc.root, again.root))
            abort();
        imsi_json_doc_free(&again);
    }
    free(o.p);
    imsi_json_doc_free(&doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1); /* an exact-size copy: ASan sees any over-read */
    if (!text)
        return 0;
    memcpy(text, data, size);
    run(text, size, NULL);
    run(text, size, &(json_limits){4096, 4, 64});
    free(text);
    return 0;
}
