/* test_json_api.c: the public JSON reader (ims_json_*, engine/core/json_api.c)
 * over the strict parser: kinds, lookups, and every lookup on the wrong kind,
 * a missing key or an index out of range giving NULL or 0 instead of crashing. */
#include "test.h"

int main(void)
{
    ims_error err = {0};
    ims_json *doc = NULL;
    const char *text = "[{\"workload\": \"knn\", \"median\": 12.5, \"k\": 10, \"seq\": null, \"ok\": true,"
                       " \"versions\": {\"cudnn\": \"9.19.0\"}}, 3]";
    TEST_OK(ims_json_parse(text, strlen(text), &doc, &err), err);
    const ims_json_value *root = ims_json_root(doc);
    TEST_CHECK(ims_json_kind_of(root) == IMS_JSON_ARRAY && ims_json_count(root) == 2, "root");
    const ims_json_value *row = ims_json_item(root, 0);
    TEST_CHECK(ims_json_kind_of(row) == IMS_JSON_OBJECT && ims_json_count(row) == 6, "row");
    TEST_CHECK(strcmp(ims_json_string(ims_json_member(row, "workload")), "knn") == 0, "workload");
    double v = 0;
    TEST_CHECK(ims_json_number(ims_json_member(row, "median"), &v) && v == 12.5, "median %g", v);
    TEST_CHECK(ims_json_number(ims_json_member(row, "k"), &v) && v == 10, "k %g", v);
    TEST_CHECK(ims_json_kind_of(ims_json_member(row, "seq")) == IMS_JSON_NULL, "null");
    TEST_CHECK(ims_json_kind_of(ims_json_member(row, "ok")) == IMS_JSON_BOOL, "bool");
    TEST_CHECK(strcmp(ims_json_string(ims_json_member(ims_json_member(row, "versions"), "cudnn")), "9.19.0") == 0,
               "nested");
    /* Wrong kinds, missing keys, out of range: NULL or 0. */
    TEST_CHECK(!ims_json_member(row, "absent") && !ims_json_item(root, 2) && !ims_json_item(row, 0), "absent");
    TEST_CHECK(!ims_json_member(root, "workload") && !ims_json_string(ims_json_member(row, "median")), "kinds");
    TEST_CHECK(!ims_json_number(ims_json_member(row, "workload"), &v) && !ims_json_number(NULL, &v), "numbers");
    TEST_CHECK(ims_json_count(ims_json_item(root, 1)) == 0 && ims_json_count(NULL) == 0, "counts");
    TEST_CHECK(ims_json_kind_of(NULL) == IMS_JSON_NULL && !ims_json_string(NULL) && !ims_json_root(NULL), "NULL");
    ims_json_free(doc);
    ims_json_free(NULL);

    /* Invalid documents: an error with the offset, no document. */
    static const char *const bad[] = {"", "[1,]", "{\"a\": 1, \"a\": 2}", "[NaN]", "{\"a\" 1}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        doc = (ims_json *)&err; /* must be reset */
        memset(&err, 0, sizeof err);
        TEST_CHECK(ims_json_parse(bad[i], strlen(bad[i]), &doc, &err) == IMS_ERR_FORMAT && !doc && err.msg[0],
                   "'%s' accepted", bad[i]);
    }
    return test_finish();
}
