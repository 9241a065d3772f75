/* make_fixture.c: writes a small weight file that uses every dtype and every
 * metadata type, with deterministic contents (splitmix64, seed 2024). Used by the
 * CLI test, the Python reader check and the fuzzer's seed corpus.
 *
 * usage: make_fixture OUT.isw [alignment]
 */
#include "weights_tools/weights_writer.h"
#include "test.h"

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: make_fixture OUT.isw [alignment]\n");
        return 2;
    }
    uint64_t rng = 2024;
    static float conv[4 * 3 * 3 * 3], scalar[1];
    static uint16_t bias[10];
    static int32_t ids[2 * 5];
    static uint8_t pixels[1 * 4 * 4 * 3];
    for (size_t i = 0; i < sizeof conv / sizeof *conv; i++)
        conv[i] = test_rand_uniform(&rng, -1.0f, 1.0f);
    for (size_t i = 0; i < 10; i++)
        bias[i] = ims_f32_to_f16(test_rand_uniform(&rng, -4.0f, 4.0f));
    for (size_t i = 0; i < 10; i++)
        ids[i] = (int32_t)(test_rand_u64(&rng) % 30522);
    for (size_t i = 0; i < sizeof pixels; i++)
        pixels[i] = (uint8_t)test_rand_u64(&rng);
    scalar[0] = 0.001f;

    const char *labels[] = {"tench", "goldfish", "great white shark", "caf\xc3\xa9 \xe2\x98\x95",
                            "quote \" and backslash \\", "tab\there", "\xe6\x97\xa5\xe6\x9c\xac", "[CLS]", "##ing", ""};
    const double mean[3] = {0.485, 0.456, 0.406}, std[3] = {0.229, 0.224, 0.225};
    const int64_t dims[4] = {1, 299, 299, 3};

    ims_error err = {0};
    imsi_weights_writer *wr = NULL;
    ims_status st = imsi_weights_writer_create(&wr, &err);
    uint32_t alignment = argc == 3 ? (uint32_t)strtoul(argv[2], NULL, 10) : 256;
    if (!st) st = imsi_weights_writer_set_alignment(wr, alignment, &err);
    if (!st) st = imsi_weights_writer_add_string(wr, "architecture", "fixture", &err);
    if (!st) st = imsi_weights_writer_add_string(wr, "name", "imgsearch test fixture", &err);
    if (!st) st = imsi_weights_writer_add_i64(wr, "fixture.layers", 3, &err);
    if (!st) st = imsi_weights_writer_add_f64(wr, "fixture.eps", 1e-3, &err);
    if (!st) st = imsi_weights_writer_add_i64_array(wr, "fixture.input_shape", dims, 4, &err);
    if (!st) st = imsi_weights_writer_add_f64_array(wr, "preprocess.mean", mean, 3, &err);
    if (!st) st = imsi_weights_writer_add_f64_array(wr, "preprocess.std", std, 3, &err);
    if (!st) st = imsi_weights_writer_add_string_array(wr, "labels", labels, sizeof labels / sizeof *labels, &err);
    if (!st) st = imsi_weights_writer_add_tensor(wr, "conv.weight", IMS_DTYPE_F32, 4, (int64_t[]){4, 3, 3, 3}, conv, &err);
    if (!st) st = imsi_weights_writer_add_tensor(wr, "conv.bias", IMS_DTYPE_F16, 1, (int64_t[]){10}, bias, &err);
    if (!st) st = imsi_weights_writer_add_tensor(wr, "token_ids", IMS_DTYPE_I32, 2, (int64_t[]){2, 5}, ids, &err);
    if (!st) st = imsi_weights_writer_add_tensor(wr, "image", IMS_DTYPE_U8, 4, (int64_t[]){1, 4, 4, 3}, pixels, &err);
    if (!st) st = imsi_weights_writer_add_tensor(wr, "eps", IMS_DTYPE_F32, 0, NULL, scalar, &err);
    if (!st) st = imsi_weights_writer_write_file(wr, argv[1], &err);
    imsi_weights_writer_free(wr);
    if (st) {
        fprintf(stderr, "make_fixture: %s\n", err.msg);
        return 1;
    }
    return 0;
}
