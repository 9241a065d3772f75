/* test_text_encoder_gpu.c: the text encoder's CUDA ops and graph against the CPU backend (label gpu).
 *
 * Each op runs on both backends on the same seeded random inputs (never zeros),
 * in f32 and f16, at sizes that are not multiples of a warp or a block, with
 * every output poisoned with 0xff bytes (NaN) first, so an element a kernel
 * skips fails the comparison. Then the whole encoder: the tiny fixture model
 * always, all-MiniLM-L6-v2 too when IMS_MINILM_DIR is set: fp32 on the GPU
 * against fp32 on the CPU (cosine >= 0.99999 per sentence) and fp16 on the GPU
 * against fp32 on the CPU (cosine >= 0.999), the bars.
 *
 * Usage: test_text_encoder_gpu FIXTURE_DIR. Exits 77 without CUDA or a device.
 */
#include "test.h"
#include "text_encoder_util.h"

#include "backend/backend.h"
#include "models/text_encoder.h"

#ifdef IMS_WITH_CUDA

#define SEED 0x7e57b3a7c0de1234ull

static ims_backend *cpu_be, *gpu_be;
static uint64_t rng = SEED;

typedef struct pair {
    imsi_tensor cpu, gpu;
} pair;

static void pair_free(pair *p)
{
    imsi_tensor_free(&p->cpu);
    imsi_tensor_free(&p->gpu);
}

/* Both tensors of dtype/shape; filled from host data (converted to f16 for
 * f16 tensors) or, with data == NULL, poisoned with 0xff bytes. */
static pair pair_make(ims_dtype dtype, int ndim, const int64_t *shape, const void *data)
{
    pair p;
    ims_error err = {0};
    memset(&p, 0, sizeof p);
    if (imsi_tensor_alloc(cpu_be, dtype, ndim, shape, &p.cpu, &err) ||
        imsi_tensor_alloc(gpu_be, dtype, ndim, shape, &p.gpu, &err)) {
        fprintf(stderr, "alloc: %s\n", err.msg);
        exit(1);
    }
    size_t n = (size_t)imsi_tensor_numel(&p.cpu), bytes = imsi_tensor_nbytes(&p.cpu);
    if (!data) {
        TEST_OK(imsi_backend_fill_bytes(cpu_be, &p.cpu, 0xff, &err), err);
        TEST_OK(imsi_backend_fill_bytes(gpu_be, &p.gpu, 0xff, &err), err);
        return p;
    }
    void *host = malloc(bytes);
    if (dtype == IMS_DTYPE_F16)
        for (size_t i = 0; i < n; i++)
            ((uint16_t *)host)[i] = ims_f32_to_f16(((const float *)data)[i]);
    else
        memcpy(host, data, bytes);
    TEST_OK(imsi_backend_upload(cpu_be, &p.cpu, host, bytes, &err), err);
    TEST_OK(imsi_backend_upload(gpu_be, &p.gpu, host, bytes, &err), err);
    free(host);
    return p;
}

static float *random_floats(size_t n, float lo, float hi)
{
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) {
        v[i] = test_rand_uniform(&rng, lo, hi);
        if (v[i] == 0.0f)
            v[i] = 0.25f;
    }
    return v;
}

/* Largest |gpu - cpu| / (abs_floor + |cpu|) over the tensors (as floats);
 * NaN anywhere counts as infinite. */
static double pair_error(const pair *p, double abs_floor)
{
    ims_error err = {0};
    size_t n = (size_t)imsi_tensor_numel(&p->cpu), bytes = imsi_tensor_nbytes(&p->cpu);
    unsigned char *g = malloc(bytes);
    TEST_OK(imsi_backend_download(gpu_be, g, bytes, &p->gpu, &err), err);
    TEST_OK(imsi_backend_synchronize(gpu_be, &err), err);
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double a, b;
        if (p->cpu.dtype == IMS_DTYPE_F16) {
            a = ims_f16_to_f32(((const uint16_t *)p->cpu.data)[i]);
            b = ims_f16_to_f32(((const uint16_t *)g)[i]);
        } else {
            a = ((const float *)p->cpu.data)[i];
            b = ((const float *)g)[i];
        }
        double e = fabs(a - b) / (abs_floor + fabs(a));
        if (!(e <= worst))
            worst = isnan(e) ? INFINITY : e;
    }
    free(g);
    return worst;
}

/* f32: both sides compute in double or with fp32 sums in another order;
 * 1e-5 relative (floor 1e-3 for values near 0) is ~100 f32 ulps of slack.
 * f16: one rounding of the result is 2^-11 = 4.9e-4 relative, plus the f32
 * differences before it can flip a rounding: two f16 ulps, 1e-3. */
static double tolerance(ims_dtype dt) { return dt == IMS_DTYPE_F16 ? 1e-3 : 1e-5; }

static void check_pair(const pair *p, const char *what, ims_dtype dt, double floor_abs, double tol)
{
    double e = pair_error(p, floor_abs);
    printf("%-44s %s: max rel err %.3g (tol %.3g)\n", what, ims_dtype_name(dt), e, tol);
    TEST_CHECK(e <= tol, "%s %s: error %.3g > %.3g", what, ims_dtype_name(dt), e, tol);
}

/* ---- Ops ---------------------------------------------------------------------------- */

static void test_embed(ims_dtype dt)
{
    int b = 3, t = 37, h = 100, vocab = 50, npos = 40;
    int32_t ids[3 * 37];
    for (int i = 0; i < b * t; i++)
        ids[i] = (int32_t)(test_rand_u64(&rng) % (uint64_t)vocab);
    float *word = random_floats((size_t)vocab * h, -1, 1), *pos = random_floats((size_t)npos * h, -0.5f, 0.5f);
    float *type = random_floats(2 * (size_t)h, -0.2f, 0.2f), *g = random_floats(h, 0.5f, 1.5f);
    float *be = random_floats(h, -0.3f, 0.3f);
    pair pid = pair_make(IMS_DTYPE_I32, 2, (int64_t[]){b, t}, ids);
    pair pw = pair_make(IMS_DTYPE_F32, 2, (int64_t[]){vocab, h}, word);
    pair pp = pair_make(IMS_DTYPE_F32, 2, (int64_t[]){npos, h}, pos);
    pair pt = pair_make(IMS_DTYPE_F32, 2, (int64_t[]){2, h}, type);
    pair pg = pair_make(IMS_DTYPE_F32, 1, (int64_t[]){h}, g), pb = pair_make(IMS_DTYPE_F32, 1, (int64_t[]){h}, be);
    pair y = pair_make(dt, 3, (int64_t[]){b, t, h}, NULL);
    ims_error err = {0};
    TEST_OK(imsi_op_embed_layernorm(cpu_be, &pid.cpu, &pw.cpu, &pp.cpu, &pt.cpu, &pg.cpu, &pb.cpu, 1e-12, &y.cpu,
                                    &err), err);
    TEST_OK(imsi_op_embed_layernorm(gpu_be, &pid.gpu, &pw.gpu, &pp.gpu, &pt.gpu, &pg.gpu, &pb.gpu, 1e-12, &y.gpu,
                                    &err), err);
    check_pair(&y, "embed_layernorm (3, 37, 100)", dt, 1e-3, tolerance(dt));
    pair *ps[] = {&pid, &pw, &pp, &pt, &pg, &pb, &y};
    for (size_t i = 0; i < 7; i++)
        pair_free(ps[i]);
    free(word), free(pos), free(type), free(g), free(be);
}

static void test_bias_act(ims_dtype dt, imsi_act act)
{
    int m = 77, n = 131;
    float *x = random_floats((size_t)m * n, -4, 4), *bias = random_floats(n, -1, 1);
    pair px = pair_make(dt, 2, (int64_t[]){m, n}, x), pb = pair_make(IMS_DTYPE_F32, 1, (int64_t[]){n}, bias);
    pair y = pair_make(dt, 2, (int64_t[]){m, n}, NULL);
    ims_error err = {0};
    TEST_OK(imsi_op_bias_act(cpu_be, &px.cpu, &pb.cpu, act, &y.cpu, &err), err);
    TEST_OK(imsi_op_bias_act(gpu_be, &px.gpu, &pb.gpu, act, &y.gpu, &err), err);
    /* GELU of negative inputs is tiny: compare with an absolute floor of 1e-2 */
    check_pair(&y, act == IMS_ACT_GELU ? "bias_act gelu (77, 131)" : "bias_act none (77, 131)", dt, 1e-2,
               tolerance(dt));
    /* in place: y = x */
    TEST_OK(imsi_op_bias_act(cpu_be, &px.cpu, &pb.cpu, act, &px.cpu, &err), err);
    TEST_OK(imsi_op_bias_act(gpu_be, &px.gpu, &pb.gpu, act, &px.gpu, &err), err);
    check_pair(&px, "bias_act in place", dt, 1e-2, tolerance(dt));
    pair_free(&px), pair_free(&pb), pair_free(&y);
    free(x), free(bias);
}

static void test_add_layernorm(ims_dtype dt, int with_bias, int in_place)
{
    int m = 45, h = 300;
    float *x = random_floats((size_t)m * h, -2, 2), *r = random_floats((size_t)m * h, -3, 3);
    float *bias = random_floats(h, -1, 1), *g = random_floats(h, 0.5f, 1.5f), *b = random_floats(h, -0.5f, 0.5f);
    pair px = pair_make(dt, 2, (int64_t[]){m, h}, x), pr = pair_make(dt, 2, (int64_t[]){m, h}, r);
    pair pbias = pair_make(IMS_DTYPE_F32, 1, (int64_t[]){h}, bias);
    pair pg = pair_make(IMS_DTYPE_F32, 1, (int64_t[]){h}, g), pb = pair_make(IMS_DTYPE_F32, 1, (int64_t[]){h}, b);
    pair y = pair_make(dt, 2, (int64_t[]){m, h}, NULL);
    pair *out = in_place ? &pr : &y;
    ims_error err = {0};
    TEST_OK(imsi_op_add_layernorm(cpu_be, &px.cpu, with_bias ? &pbias.cpu : NULL, &pr.cpu, &pg.cpu, &pb.cpu, 1e-12,
                                  &out->cpu, &err), err);
    TEST_OK(imsi_op_add_layernorm(gpu_be, &px.gpu, with_bias ? &pbias.gpu : NULL, &pr.gpu, &pg.gpu, &pb.gpu, 1e-12,
                                  &out->gpu, &err), err);
    char what[64];
    snprintf(what, sizeof what, "add_layernorm (45, 300)%s%s", with_bias ? " bias" : "", in_place ? " in place" : "");
    check_pair(out, what, dt, 1e-3, tolerance(dt));
    pair *ps[] = {&px, &pr, &pbias, &pg, &pb, &y};
    for (size_t i = 0; i < 6; i++)
        pair_free(ps[i]);
    free(x), free(r), free(bias), free(g), free(b);
}

static void test_attention(ims_dtype dt, int b, int t, int h, int heads, const int32_t *lengths)
{
    float *qkv = random_floats((size_t)b * t * 3 * h, -1.5f, 1.5f);
    pair pq = pair_make(dt, 3, (int64_t[]){b, t, 3 * h}, qkv);
    pair pl = pair_make(IMS_DTYPE_I32, 1, (int64_t[]){b}, lengths);
    pair ps = pair_make(dt, 4, (int64_t[]){b, heads, t, t}, NULL);
    pair ctx = pair_make(dt, 3, (int64_t[]){b, t, h}, NULL);
    ims_error err = {0};
    TEST_OK(imsi_op_attention(cpu_be, &pq.cpu, &pl.cpu, heads, &ps.cpu, &ctx.cpu, &err), err);
    TEST_OK(imsi_op_attention(gpu_be, &pq.gpu, &pl.gpu, heads, &ps.gpu, &ctx.gpu, &err), err);
    char what[64];
    snprintf(what, sizeof what, "attention (%d, %d, %d) %d heads", b, t, h, heads);
    /* f16: scores and probabilities are rounded to f16 on the GPU (the CPU
     * keeps them in double): a few f16 ulps on the weighted sums, 5e-3 */
    check_pair(&ctx, what, dt, 1e-2, dt == IMS_DTYPE_F16 ? 5e-3 : 1e-5);
    pair_free(&pq), pair_free(&pl), pair_free(&ps), pair_free(&ctx);
    free(qkv);
}

static void test_pool(ims_dtype dt, imsi_pooling pooling, int normalize)
{
    int b = 5, t = 33, h = 130;
    int32_t lengths[5] = {33, 1, 17, 2, 30};
    float *x = random_floats((size_t)b * t * h, -2, 2);
    pair px = pair_make(dt, 3, (int64_t[]){b, t, h}, x), pl = pair_make(IMS_DTYPE_I32, 1, (int64_t[]){b}, lengths);
    pair y = pair_make(IMS_DTYPE_F32, 2, (int64_t[]){b, h}, NULL);
    ims_error err = {0};
    TEST_OK(imsi_op_pool_normalize(cpu_be, &px.cpu, &pl.cpu, pooling, normalize, &y.cpu, &err), err);
    TEST_OK(imsi_op_pool_normalize(gpu_be, &px.gpu, &pl.gpu, pooling, normalize, &y.gpu, &err), err);
    char what[64];
    snprintf(what, sizeof what, "pool_normalize %s%s", pooling == IMS_POOLING_CLS ? "cls" : "mean",
             normalize ? " normalized" : "");
    /* same double arithmetic in another order: 1e-6 */
    check_pair(&y, what, dt, 1e-3, 1e-6);
    pair_free(&px), pair_free(&pl), pair_free(&y);
    free(x);
}

static void test_linear_f16(int m, int n, int k)
{
    float *x = random_floats((size_t)m * k, -1, 1), *w = random_floats((size_t)n * k, -0.2f, 0.2f);
    pair px = pair_make(IMS_DTYPE_F16, 2, (int64_t[]){m, k}, x), pw = pair_make(IMS_DTYPE_F16, 2, (int64_t[]){n, k}, w);
    pair y = pair_make(IMS_DTYPE_F16, 2, (int64_t[]){m, n}, NULL);
    ims_error err = {0};
    TEST_OK(imsi_op_linear(cpu_be, &px.cpu, &pw.cpu, NULL, &y.cpu, &err), err);
    TEST_OK(imsi_op_linear(gpu_be, &px.gpu, &pw.gpu, NULL, &y.gpu, &err), err);
    char what[64];
    snprintf(what, sizeof what, "linear_f16 (%d, %d) . (%d, %d)^T", m, k, n, k);
    /* exact products, fp32 sums in another order, one f16 rounding: values
     * near 0 (cancellation) get an absolute floor of 5e-2 */
    check_pair(&y, what, IMS_DTYPE_F16, 5e-2, 1e-3);
    pair_free(&px), pair_free(&pw), pair_free(&y);
    free(x), free(w);
}

static void test_ops(void)
{
    for (int f = 0; f < 2; f++) {
        ims_dtype dt = f ? IMS_DTYPE_F16 : IMS_DTYPE_F32;
        test_embed(dt);
        test_bias_act(dt, IMS_ACT_NONE);
        test_bias_act(dt, IMS_ACT_GELU);
        test_add_layernorm(dt, 1, 0);
        test_add_layernorm(dt, 0, 1);
        test_attention(dt, 3, 45, 96, 3, (int32_t[]){45, 17, 1});
        test_attention(dt, 2, 130, 384, 12, (int32_t[]){130, 77});
        test_pool(dt, IMS_POOLING_MEAN, 1);
        test_pool(dt, IMS_POOLING_MEAN, 0);
        test_pool(dt, IMS_POOLING_CLS, 1);
    }
    test_linear_f16(67, 45, 100);
    test_linear_f16(300, 1536, 384);
}

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
    test_ops();
    char model[2048], ids[2100];
    snprintf(model, sizeof model, "%s/hf_tiny_bert", fixtures);
    snprintf(ids, sizeof ids, "%s/tiny_bert_golden/ids.txt", fixtures);
    test_model(model, ids, "tiny");
    const char *minilm = getenv("IMS_MINILM_DIR");
    if (minilm && *minilm) {
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
