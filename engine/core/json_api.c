/* core/json_api.c: the public face of the strict JSON parser (core/json.h):
 * an ims_json is a json_doc, an ims_json_value a json_value, handed out as
 * opaque pointers so the tree's layout stays private. */
#include "core/json.h"

#include <stdlib.h>

struct ims_json {
    json_doc doc;
};

static const json_value *value_of(const ims_json_value *v) { return (const json_value *)(const void *)v; }
static const ims_json_value *handle_of(const json_value *v) { return (const ims_json_value *)(const void *)v; }

ims_status ims_json_parse(const char *text, size_t len, ims_json **out, ims_error *err)
{
    *out = NULL;
    if (!text && len)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "JSON: no text");
    ims_json *j = calloc(1, sizeof *j);
    if (!j)
        return ims_error_set(err, IMS_ERR_NOMEM, "JSON: out of memory");
    ims_status st = imsi_json_parse(text ? text : "", len, NULL, &j->doc, err);
    if (st) {
        free(j);
        return st;
    }
    *out = j;
    return IMS_OK;
}

void ims_json_free(ims_json *doc)
{
    if (!doc)
        return;
    imsi_json_doc_free(&doc->doc);
    free(doc);
}

const ims_json_value *ims_json_root(const ims_json *doc) { return doc ? handle_of(doc->doc.root) : NULL; }

ims_json_kind ims_json_kind_of(const ims_json_value *v)
{
    if (!v)
        return IMS_JSON_NULL;
    switch (value_of(v)->kind) {
    case JSON_BOOL: return IMS_JSON_BOOL;
    case JSON_NUMBER: return IMS_JSON_NUMBER;
    case JSON_STRING: return IMS_JSON_STRING;
    case JSON_ARRAY: return IMS_JSON_ARRAY;
    case JSON_OBJECT: return IMS_JSON_OBJECT;
    default: return IMS_JSON_NULL;
    }
}

size_t ims_json_count(const ims_json_value *v)
{
    const json_value *x = v ? value_of(v) : NULL;
    if (x && x->kind == JSON_ARRAY)
        return x->arr.count;
    if (x && x->kind == JSON_OBJECT)
        return x->obj.count;
    return 0;
}

const ims_json_value *ims_json_item(const ims_json_value *array, size_t i)
{
    return array ? handle_of(imsi_json_array_at(value_of(array), i)) : NULL;
}

const ims_json_value *ims_json_member(const ims_json_value *object, const char *key)
{
    return object && key ? handle_of(imsi_json_object_get(value_of(object), key)) : NULL;
}

const char *ims_json_string(const ims_json_value *v)
{
    const json_value *x = v ? value_of(v) : NULL;
    return x && x->kind == JSON_STRING ? x->str.ptr : NULL;
}

int ims_json_number(const ims_json_value *v, double *out)
{
    const json_value *x = v ? value_of(v) : NULL;
    if (!x || x->kind != JSON_NUMBER)
        return 0;
    *out = x->num.value;
    return 1;
}
