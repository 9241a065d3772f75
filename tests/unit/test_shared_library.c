/* test_shared_library.c: a program that links libimgsearch.so, as the Python
 * package and other users do, and sees only include/imgsearch.h: the exported
 * API is enough to convert a model, open the weight file, tokenize, report
 * versions and make errors.
 *
 * Usage: test_shared_library HF_MODEL_DIR SCRATCH_DIR
 */
#include "imgsearch.h"

#include <stdio.h>
#include <string.h>

static int failures;

#define CHECK(cond, ...)                                                                                     \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            failures++;                                                                                      \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                            \
            fprintf(stderr, __VA_ARGS__);                                                                    \
            fputc('\n', stderr);                                                                             \
        }                                                                                                    \
    } while (0)

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: test_shared_library HF_MODEL_DIR SCRATCH_DIR\n");
        return 2;
    }
    char versions[2048];
    ims_library_versions(versions, sizeof versions);
    CHECK(strstr(versions, IMS_VERSION_STRING) != NULL, "versions lack %s:\n%s", IMS_VERSION_STRING, versions);
    /* every library the decoders link, each with a version number */
    static const char *const libs[] = {"\nlibpng ", "\nlibjpeg-turbo ", "\nzlib ", "\nlibwebp ", "\nlibtiff ",
                                       "\ngiflib "};
    for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++) {
        const char *at = strstr(versions, libs[i]);
        const char *number = at ? at + strlen(libs[i]) : "";
        CHECK(*number >= '0' && *number <= '9', "versions lack%s(or its number):\n%s", libs[i], versions);
    }

    /* The converter and the reader, through the exported API only. */
    char out[4096];
    snprintf(out, sizeof out, "%s/shared_library_test.isw", argv[2]);
    ims_convert_options o;
    ims_convert_options_init(&o);
    ims_convert_report report;
    ims_error err = {0};
    ims_status st = ims_convert(argv[1], out, &o, &report, &err);
    CHECK(st == IMS_OK, "ims_convert: %s", err.msg);
    ims_weights *w = NULL;
    if (st == IMS_OK) {
        st = ims_weights_open(out, 0, &w, &err);
        CHECK(st == IMS_OK, "ims_weights_open: %s", err.msg);
    }
    if (w) {
        CHECK(ims_weights_tensor_count(w) > 0, "no tensors");
        ims_tokenizer *tok = NULL;
        st = ims_tokenizer_create_from_weights(w, &tok, &err);
        CHECK(st == IMS_OK, "tokenizer: %s", err.msg);
        if (tok) {
            int32_t ids[16];
            int n = 0;
            st = ims_tokenizer_encode(tok, "hello world", 11, ids, 16, &n, &err);
            CHECK(st == IMS_OK && n >= 2, "encode: %s (n = %d)", err.msg, n);
            ims_tokenizer_free(tok);
        }
        ims_weights_close(w);
    }

    /* Errors made by the caller in the library's form. */
    CHECK(ims_error_set(&err, IMS_ERR_IO, "disk %d", 7) == IMS_ERR_IO && !strcmp(err.msg, "disk 7"),
          "ims_error_set gave '%s'", err.msg);

    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    else
        printf("libimgsearch.so: the public API links and works\n");
    return failures ? 1 : 0;
}
