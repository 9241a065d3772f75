/* test_text_encoder_gpu.c: the whole text encoder on the CUDA backend against
 * the CPU backend (label gpu). Its ops, in f32 and f16, are in the table of
 * tests/unit/test_backend_ops.c.
 *
 * The tiny fixture model always, all-MiniLM-L6-v2 too when IMS_MINILM_DIR is
 * set: fp32 on the GPU against fp32 on the CPU (cosine >= 0.99999 per
 * sentence), fp16 on the GPU against fp32 on the CPU (cosine >= 0.999), the
 * issue's bars, and a batch against its sentences one by one.
 *
 * Usage: test_text_encoder_gpu FIXTURE_DIR [quick]; quick (for
 * compute-sanitizer) runs the tiny model only. Exits 77 without CUDA or a
 * device.
 */
#include "test.h"
#include "text_encoder_util.h"

#include "backend/backend.h"
#include "models/text_encoder.h"

#ifdef IMS_WITH_CUDA

static ims_backend *cpu_be, *gpu_be;

/* ---- The whole encoder ---------------------------------------------------------------- */

static void test_model(const char *model_dir, const char *ids_path, const char *name)
{
    test_ids s;
    if (!test_ids_read(ids_path, &s)) {
        TEST_CHECK(0, "%s: cannot read %s", name, ids_path);
        return;
    }
    ims_weights *w = test_convert_open(model_dir, IMS_DTYPE_F32, name);
    TEST_CHECK(w != NULL, "%s converts", name);
    if (!w)
        return;
    ims_error err = {0};
    ims_text_encoder *cpu = NULL, *g32 = NULL, *g16 = NULL;
    TEST_OK(ims_text_encoder_create(cpu_be, w, IMS_PRECISION_FP32, &cpu, &err), err);
    TEST_OK(ims_text_encoder_create(gpu_be, w, IMS_PRECISION_FP32, &g32, &err), err);
    TEST_OK(ims_text_encoder_create(gpu_be, w, IMS_PRECISION_FP16, &g16, &err), err);
    if (cpu && g32 && g16) {
        int d = ims_text_encoder_dim(cpu);
        size_t count = (size_t)s.n * d;
        float *ref = malloc(count * sizeof *ref), *a = malloc(count * sizeof *a), *b = malloc(count * sizeof *b);
        float *one = malloc(count * sizeof *one);
        for (size_t i = 0; i < count; i++)
            a[i] = b[i] = one[i] = NAN;
        TEST_OK(ims_text_encoder_encode(cpu, s.ids, s.lengths, s.n, s.t, ref, &err), err);
        TEST_OK(ims_text_encoder_encode(g32, s.ids, s.lengths, s.n, s.t, a, &err), err);
        TEST_OK(ims_text_encoder_encode(g16, s.ids, s.lengths, s.n, s.t, b, &err), err);
        for (int i = 0; i < s.n; i++)
            TEST_OK(ims_text_encoder_encode(g32, s.ids + (size_t)i * s.t, s.lengths + i, 1, s.lengths[i],
                                            one + (size_t)i * d, &err), err);
        double c32 = 2, c16 = 2;
        for (int i = 0; i < s.n; i++) {
            double x = test_cosine(a + (size_t)i * d, ref + (size_t)i * d, d);
            double y = test_cosine(b + (size_t)i * d, ref + (size_t)i * d, d);
            c32 = x < c32 || isnan(x) ? x : c32;
            c16 = y < c16 || isnan(y) ? y : c16;
        }
        double batch = test_max_abs_diff(a, one, count);
        printf("%s (%d sentences): GPU fp32 vs CPU fp32 min cosine %.9f; GPU fp16 vs CPU fp32 %.9f; "
               "GPU fp32 one by one vs batched max |diff| %.3g\n", name, s.n, c32, c16, batch);
        TEST_CHECK(c32 >= 0.99999, "%s: GPU fp32 cosine %.9f < 0.99999", name, c32);
        TEST_CHECK(c16 >= 0.999, "%s: GPU fp16 cosine %.9f < 0.999", name, c16);
        /* GPU GEMMs may pick other kernels for other shapes: 1e-5, not 1e-6 */
        TEST_CHECK(batch <= 1e-5, "%s: GPU embedding depends on the batch (%.3g)", name, batch);
        free(ref), free(a), free(b), free(one);
    }
    ims_text_encoder_free(cpu), ims_text_encoder_free(g32), ims_text_encoder_free(g16);
    ims_weights_close(w);
    test_ids_free(&s);
}

int main(int argc, char **argv)
{
    const char *fixtures = test_fixture_dir(argc, argv);
    test_gpu_backends(&cpu_be, &gpu_be);
    printf("device: %s\n", ims_backend_get_info(gpu_be)->device);
    char model[2048], ids[2100];
    snprintf(model, sizeof model, "%s/hf_tiny_bert", fixtures);
    snprintf(ids, sizeof ids, "%s/tiny_bert_golden/ids.txt", fixtures);
    test_model(model, ids, "tiny");
    const char *minilm = getenv("IMS_MINILM_DIR");
    int quick = argc > 2 && !strcmp(argv[2], "quick");
    if (quick) {
        printf("all-MiniLM-L6-v2: not run (quick)\n");
    } else if (minilm && *minilm) {
        snprintf(ids, sizeof ids, "%s/minilm_golden/ids.txt", fixtures);
        test_model(minilm, ids, "minilm");
    } else {
        printf("all-MiniLM-L6-v2: not run (IMS_MINILM_DIR unset)\n");
    }
    ims_backend_free(gpu_be);
    ims_backend_free(cpu_be);
    return test_finish();
}

#else

int main(void)
{
    test_skip("built without CUDA (IMS_CUDA=OFF or no toolkit)");
    return 0;
}

#endif
