/* test_inception_gpu.c: the precision modes only the GPU has, the cuDNN
 * convolution's plans and fallbacks, and the whole network, on the CUDA
 * backend against the CPU backend (ctest label gpu).
 *
 * Ops in the GPU's own precisions (their fp32 forms are in the table of
 * tests/unit/test_backend_ops.c): conv2d in tf32 and fp16 (every filter shape
 * Inception uses, strides 1 and 2, into a channel slice of a wider output),
 * pool2d, global average pool and the u8 input step on f16 tensors, on seeded
 * random inputs (never zeros) whose sizes are not multiples of a block or a
 * warp. GPU outputs are poisoned with 0xff bytes (NaN) first: the slice must
 * be fully written, the channels outside it must keep their poison.
 *
 * The convolution's plans (kernels/cuda/conv2d.c): one shape at aligned and
 * odd slice offsets (a plan per alignment), the fallback path forced for
 * every filter shape and precision, and (not in quick mode) an 8200-image
 * batch past cuDNN's 2^31-element tensors, run in parts.
 *
 * The network: the converter's fixture with every width / 16 (channel counts
 * not multiples of 8), and the generated full-size weights of
 * test_inception.c (both variants), on generated images and sample photos
 * (tests/fixtures/images), GPU vs CPU, tolerances argued at net_tols: fp32
 * 1e-4, tf32 and fp16 2e-2 (the same 10 mantissa bits), and the same top-5
 * classes, where a GPU top-5 class may differ from the CPU's only if its CPU
 * logit is within the tolerance of the CPU's 5th (a near tie). A second,
 * smaller batch must reuse the first batch's plans (few new searches). With
 * CUDA graphs on, the captured and replayed forwards must give the plain
 * run's exact bits (and must have been captured and replayed: the backend
 * counts); a capture made to fail must leave plain runs with the same bits.
 *
 * Usage: test_inception_gpu GOLDEN_DIR IMAGES_DIR [quick]; quick (for
 * compute-sanitizer) runs the op and plan checks only.
 * Exits 77 (skipped) in a CPU-only build and where no CUDA device is usable.
 */
#include "inception_weights.h"
#include "models/inception_v3.h"

#include "backend/backend.h"
#include "kernels/cuda/cuda_hooks.h"

#ifdef IMS_WITH_CUDA

#define SEED 0x5eed1ce0f00dull

static ims_backend *cpu_be, *gpu_be;

/* Host f32 data -> a new tensor on be, in dtype (f32 or f16). */
static int to_backend(ims_backend *be, const float *v, ims_dtype dt, int ndim, const int64_t *shape, imsi_tensor *t)
{
    ims_error err = {0};
    if (!test_check_ok(imsi_tensor_alloc(be, dt, ndim, shape, t, &err), &err, "alloc"))
        return 0;
    size_t n = (size_t)imsi_tensor_numel(t);
    if (dt == IMS_DTYPE_F32)
        return test_check_ok(imsi_backend_upload(be, t, v, n * 4, &err), &err, "upload");
    uint16_t *h = test_xmalloc(n * 2);
    for (size_t i = 0; i < n; i++)
        h[i] = ims_f32_to_f16(v[i]);
    int ok = test_check_ok(imsi_backend_upload(be, t, h, n * 2, &err), &err, "upload");
    free(h);
    return ok;
}

/* A backend tensor -> host f32; f16 widened. NaN stays NaN. */
static float *from_backend(ims_backend *be, const imsi_tensor *t)
{
    ims_error err = {0};
    size_t n = (size_t)imsi_tensor_numel(t);
    float *v = test_xmalloc(n * 4);
    if (t->dtype == IMS_DTYPE_F32) {
        test_check_ok(imsi_backend_download(be, v, n * 4, t, &err), &err, "download");
        return v;
    }
    uint16_t *h = test_xmalloc(n * 2);
    test_check_ok(imsi_backend_download(be, h, n * 2, t, &err), &err, "download");
    for (size_t i = 0; i < n; i++)
        v[i] = ims_f16_to_f32(h[i]);
    free(h);
    return v;
}

/* Random values in [lo, hi), rounded to f16 when the GPU side runs f16 (so
 * both backends see the same inputs). */
static float *random_floats(size_t n, float lo, float hi, int f16, uint64_t *rng)
{
    float *v = test_xmalloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) {
        v[i] = test_rand_uniform(rng, lo, hi);
        if (f16)
            v[i] = ims_f16_to_f32(ims_f32_to_f16(v[i]));
    }
    return v;
}

/* Compares channels [off, off + width) of (rows, ctot) outputs; the GPU's other
 * channels must still be NaN (poison). Returns max |g - c| / max |c|. */
static double compare_slice(const float *g, const float *c, size_t rows, int ctot, int off, int width,
                            int *poison_lost, int *unwritten)
{
    double diff = 0.0, scale = 0.0;
    for (size_t r = 0; r < rows; r++)
        for (int k = 0; k < ctot; k++) {
            float gv = g[r * ctot + k], cv = c[r * ctot + k];
            if (k < off || k >= off + width) {
                *poison_lost += !isnan(gv);
                continue;
            }
            if (isnan(gv)) {
                (*unwritten)++;
                continue;
            }
            diff = fmax(diff, fabs((double)gv - cv));
            scale = fmax(scale, fabs((double)cv));
        }
    return diff / (scale > 0.0 ? scale : 1.0);
}

static const char *prec_name(ims_precision p) { return ims_precision_name(p); }

/* One convolution on both backends, into channels [off, off + o) of an
 * (o + 11)-channel output. */
static void test_conv_at(int n, int h, int w, int c, int o, int kh, int kw, int stride, int ph, int pw, int relu,
                         ims_precision prec, int off, uint64_t *rng)
{
    ims_error err = {0};
    int f16 = prec == IMS_PRECISION_FP16;
    ims_dtype gdt = f16 ? IMS_DTYPE_F16 : IMS_DTYPE_F32;
    int oh = (int)imsi_conv_out_size(h, kh, stride, ph), ow = (int)imsi_conv_out_size(w, kw, stride, pw);
    int ctot = o + 11;
    size_t nx = (size_t)n * h * w * c, nw = (size_t)o * kh * kw * c;
    float *x = random_floats(nx, -1.0f, 1.0f, f16, rng);
    float a = sqrtf(6.0f / (float)(kh * kw * c));
    float *wt = random_floats(nw, -a, a, f16, rng);
    float *b = random_floats((size_t)o, -0.5f, 0.5f, f16, rng);
    int64_t xs[4] = {n, h, w, c}, ws[4] = {o, kh, kw, c}, bs[1] = {o}, ys[4] = {n, oh, ow, ctot};
    imsi_tensor cx = {0}, cw = {0}, cb = {0}, cy = {0}, gx = {0}, gw = {0}, gb = {0}, gy = {0};
    int ok = to_backend(cpu_be, x, IMS_DTYPE_F32, 4, xs, &cx) && to_backend(cpu_be, wt, IMS_DTYPE_F32, 4, ws, &cw) &&
             to_backend(cpu_be, b, IMS_DTYPE_F32, 1, bs, &cb) && to_backend(gpu_be, x, gdt, 4, xs, &gx) &&
             to_backend(gpu_be, wt, gdt, 4, ws, &gw) && to_backend(gpu_be, b, gdt, 1, bs, &gb) &&
             test_check_ok(imsi_tensor_alloc(cpu_be, IMS_DTYPE_F32, 4, ys, &cy, &err), &err, "alloc") &&
             test_check_ok(imsi_tensor_alloc(gpu_be, gdt, 4, ys, &gy, &err), &err, "alloc");
    if (ok) {
        imsi_conv2d_params cp = {stride, stride, ph, pw, relu, off, IMS_PRECISION_FP32};
        imsi_conv2d_params gp = {stride, stride, ph, pw, relu, off, prec};
        imsi_backend_fill_bytes(cpu_be, &cy, 0xff, &err);
        ok = test_check_ok(imsi_backend_fill_bytes(gpu_be, &gy, 0xff, &err), &err, "poison") &&
             test_check_ok(imsi_op_conv2d(cpu_be, &cp, &cx, &cw, &cb, &cy, &err), &err, "conv2d cpu") &&
             test_check_ok(imsi_op_conv2d(gpu_be, &gp, &gx, &gw, &gb, &gy, &err), &err, "conv2d cuda") &&
             test_check_ok(imsi_backend_synchronize(gpu_be, &err), &err, "synchronize");
    }
    if (ok) {
        float *g = from_backend(gpu_be, &gy);
        int lost = 0, unwritten = 0;
        double e = compare_slice(g, cy.data, (size_t)n * oh * ow, ctot, off, o, &lost, &unwritten);
        /* fp32: the same sums in another order, or cuDNN's FFT / Winograd transforms (~1e-5);
         * tf32: inputs rounded to 10 mantissa bits (2^-11 each), sums of up to 1200 products;
         * fp16: inputs identical (rounded on both sides), f32 accumulation, the output rounded to f16 */
        double tol = prec == IMS_PRECISION_FP32 ? 1e-4 : 5e-3;
        printf("conv2d %s (%d, %d, %d, %d) * (%d, %d, %d) s%d p(%d, %d) relu %d -> channel %d of %d: rel error %.3g\n",
               prec_name(prec), n, h, w, c, o, kh, kw, stride, ph, pw, relu, off, ctot, e);
        TEST_CHECK(e <= tol && !lost && !unwritten, "conv2d %s %dx%d at channel %d: rel error %.3g (tol %.g), %d "
                   "poisoned channels overwritten, %d slice values unwritten", prec_name(prec), kh, kw, off, e, tol,
                   lost, unwritten);
        free(g);
    }
    imsi_tensor *all[] = {&cx, &cw, &cb, &cy, &gx, &gw, &gb, &gy};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        imsi_tensor_free(all[i]);
    free(x), free(wt), free(b);
}

static void test_conv(int n, int h, int w, int c, int o, int kh, int kw, int stride, int ph, int pw, int relu,
                      ims_precision prec, uint64_t *rng)
{
    test_conv_at(n, h, w, c, o, kh, kw, stride, ph, pw, relu, prec, 5, rng);
}

/* One shape (53 of 64 output channels: f16 rows of 128 bytes) at slice
 * offsets 0 (16-byte aligned), 1, 3 (2 and 6 bytes past a boundary in f16),
 * 8 (16 bytes: aligned again) and 0, in that order: each alignment gets its
 * own plan (conv_plan.h), so a plan made for the aligned slice is never
 * reused where cuDNN would refuse it. */
static void test_conv_alignments(ims_precision prec, uint64_t *rng)
{
    static const int offsets[] = {0, 1, 3, 8, 0};
    for (size_t i = 0; i < sizeof offsets / sizeof *offsets; i++)
        test_conv_at(2, 17, 17, 32, 53, 3, 3, 1, 1, 1, 1, prec, offsets[i], rng);
}

/* The fallback path (cuDNN's plain convolution into a packed buffer, then our
 * bias + ReLU + slice kernel), forced on a second backend whose plans are all
 * made with the switch on: every filter shape in every precision, without
 * ReLU too, at an odd and an aligned slice. */
static void test_conv_fallback(const int (*convs)[10], size_t count, uint64_t *rng)
{
    ims_backend *forced = NULL;
    ims_error err = {0};
    if (!test_check_ok(ims_backend_create(IMS_BACKEND_CUDA, 0, &forced, &err), &err, "second CUDA backend"))
        return;
    imsi_cuda_hooks *hooks = imsi_backend_cuda_hooks(forced);
    TEST_CHECK(hooks != NULL && imsi_backend_cuda_hooks(cpu_be) == NULL, "hooks of the CUDA backend (and none on the CPU)");
    if (!hooks) {
        ims_backend_free(forced);
        return;
    }
    hooks->conv_force_fallback = 1;
    ims_backend *saved = gpu_be;
    gpu_be = forced;
    long calls = 0;
    for (int p = IMS_PRECISION_FP32; p <= IMS_PRECISION_FP16; p++) {
        for (size_t i = 0; i < count; i++, calls++) {
            const int *c = convs[i];
            test_conv_at(c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], 1, (ims_precision)p, 5, rng);
        }
        test_conv_at(2, 15, 15, 29, 37, 3, 3, 1, 1, 1, 0, (ims_precision)p, 0, rng);
        calls++;
    }
    gpu_be = saved;
    printf("fallback forced: %ld of %ld convolutions ran on it (%ld plans searched)\n", hooks->conv_fallbacks, calls,
           hooks->conv_searches);
    TEST_CHECK(hooks->conv_fallbacks == calls, "forced fallback: %ld of %ld calls took it", hooks->conv_fallbacks,
               calls);
    ims_backend_free(forced);
}

/* A batch whose output passes 2^31 elements (4.3 GB of f16), more than one
 * cuDNN tensor may hold: conv2d runs it in parts (8191 images, then 9).
 * Images at both ends of each part are checked against the CPU, with the
 * channels around the slice still poisoned. */
static void test_conv_big_batch(uint64_t *rng)
{
    const int n = 8200, h = 64, w = 64, c = 8, o = 61, ctot = 64, off = 3;
    const size_t x_image = (size_t)h * w * c, y_image = (size_t)h * w * ctot, pool = 1000003;
    TEST_CHECK((int64_t)n * (int64_t)y_image > INT32_MAX, "the test's output does not pass 2^31 elements");
    ims_error err = {0};
    float *pool_v = random_floats(pool, -1.0f, 1.0f, 1, rng);
    uint16_t *xh = test_xmalloc((size_t)n * x_image * 2);
    for (size_t i = 0; i < (size_t)n * x_image; i++)
        xh[i] = ims_f32_to_f16(pool_v[i % pool]); /* pool's odd length: every image differs */
    float a = sqrtf(6.0f / (float)c);
    float *wt = random_floats((size_t)o * c, -a, a, 1, rng), *b = random_floats((size_t)o, -0.5f, 0.5f, 1, rng);
    int64_t xs[4] = {n, h, w, c}, ws[4] = {o, 1, 1, c}, bs[1] = {o}, ys[4] = {n, h, w, ctot};
    imsi_tensor gx = {0}, gw = {0}, gb = {0}, gy = {0};
    int ok = test_check_ok(imsi_tensor_alloc(gpu_be, IMS_DTYPE_F16, 4, xs, &gx, &err), &err, "alloc x (0.5 GB)") &&
             test_check_ok(imsi_backend_upload(gpu_be, &gx, xh, (size_t)n * x_image * 2, &err), &err, "upload x") &&
             to_backend(gpu_be, wt, IMS_DTYPE_F16, 4, ws, &gw) && to_backend(gpu_be, b, IMS_DTYPE_F16, 1, bs, &gb) &&
             test_check_ok(imsi_tensor_alloc(gpu_be, IMS_DTYPE_F16, 4, ys, &gy, &err), &err, "alloc y (4.3 GB)") &&
             test_check_ok(imsi_backend_fill_bytes(gpu_be, &gy, 0xff, &err), &err, "poison");
    imsi_conv2d_params gp = {1, 1, 0, 0, 1, off, IMS_PRECISION_FP16};
    ok = ok && test_check_ok(imsi_op_conv2d(gpu_be, &gp, &gx, &gw, &gb, &gy, &err), &err, "conv2d of 8200 images");
    static const int check[] = {0, 1, 8190, 8191, 8192, 8199};
    for (size_t ci = 0; ok && ci < sizeof check / sizeof *check; ci++) {
        int i = check[ci];
        imsi_tensor gyi = gy;
        gyi.data = (char *)gy.data + (size_t)i * y_image * 2;
        gyi.shape[0] = 1;
        uint16_t *yh = test_xmalloc(y_image * 2);
        float *g = test_xmalloc(y_image * 4), *xi = test_xmalloc(x_image * 4), *cy = test_xmalloc(y_image * 4);
        for (size_t j = 0; j < x_image; j++)
            xi[j] = ims_f16_to_f32(xh[(size_t)i * x_image + j]);
        imsi_tensor cx = imsi_tensor_host(xi, IMS_DTYPE_F32, 4, (int64_t[]){1, h, w, c});
        imsi_tensor cw = imsi_tensor_host(wt, IMS_DTYPE_F32, 4, ws), cb = imsi_tensor_host(b, IMS_DTYPE_F32, 1, bs);
        imsi_tensor cyt = imsi_tensor_host(cy, IMS_DTYPE_F32, 4, (int64_t[]){1, h, w, ctot});
        imsi_conv2d_params cp = {1, 1, 0, 0, 1, off, IMS_PRECISION_FP32};
        if (test_check_ok(imsi_backend_download(gpu_be, yh, y_image * 2, &gyi, &err), &err, "download an image") &&
            test_check_ok(imsi_op_conv2d(cpu_be, &cp, &cx, &cw, &cb, &cyt, &err), &err, "conv2d cpu")) {
            for (size_t j = 0; j < y_image; j++)
                g[j] = ims_f16_to_f32(yh[j]);
            int lost = 0, unwritten = 0;
            double e = compare_slice(g, cy, (size_t)h * w, ctot, off, o, &lost, &unwritten);
            printf("conv2d past 2^31 elements: image %d: rel error %.3g\n", i, e);
            /* fp16: identical inputs, f32 sums of 8 products, one or two output roundings */
            TEST_CHECK(e <= 5e-3 && !lost && !unwritten, "image %d of %d: rel error %.3g, %d poison lost, %d unwritten",
                       i, n, e, lost, unwritten);
        }
        free(yh), free(g), free(xi), free(cy);
    }
    imsi_tensor_free(&gx), imsi_tensor_free(&gw), imsi_tensor_free(&gb), imsi_tensor_free(&gy);
    free(pool_v), free(xh), free(wt), free(b);
}

static void test_pool(int n, int h, int w, int c, imsi_pool_kind kind, int stride, int pad, int include_pad, int f16,
                      uint64_t *rng)
{
    ims_error err = {0};
    ims_dtype gdt = f16 ? IMS_DTYPE_F16 : IMS_DTYPE_F32;
    int oh = (int)imsi_conv_out_size(h, 3, stride, pad), ow = (int)imsi_conv_out_size(w, 3, stride, pad);
    int off = 3, ctot = c + 6;
    float *x = random_floats((size_t)n * h * w * c, -2.0f, 2.0f, f16, rng);
    int64_t xs[4] = {n, h, w, c}, ys[4] = {n, oh, ow, ctot};
    imsi_tensor cx = {0}, cy = {0}, gx = {0}, gy = {0};
    int ok = to_backend(cpu_be, x, IMS_DTYPE_F32, 4, xs, &cx) && to_backend(gpu_be, x, gdt, 4, xs, &gx) &&
             test_check_ok(imsi_tensor_alloc(cpu_be, IMS_DTYPE_F32, 4, ys, &cy, &err), &err, "alloc") &&
             test_check_ok(imsi_tensor_alloc(gpu_be, gdt, 4, ys, &gy, &err), &err, "alloc");
    imsi_pool2d_params p = {kind, 3, stride, pad, include_pad, off};
    if (ok) {
        imsi_backend_fill_bytes(cpu_be, &cy, 0xff, &err);
        ok = test_check_ok(imsi_backend_fill_bytes(gpu_be, &gy, 0xff, &err), &err, "poison") &&
             test_check_ok(imsi_op_pool2d(cpu_be, &p, &cx, &cy, &err), &err, "pool2d cpu") &&
             test_check_ok(imsi_op_pool2d(gpu_be, &p, &gx, &gy, &err), &err, "pool2d cuda");
    }
    if (ok) {
        float *g = from_backend(gpu_be, &gy);
        int lost = 0, unwritten = 0;
        double e = compare_slice(g, cy.data, (size_t)n * oh * ow, ctot, off, c, &lost, &unwritten);
        /* f32: a 9-term float sum vs the CPU's double sum, ~1e-7; f16: one output rounding, 2^-11 */
        double tol = f16 ? 1e-3 : 1e-6;
        printf("pool2d %s %s s%d p%d include_pad %d (%d, %d, %d, %d): rel error %.3g\n", kind == IMS_POOL_MAX ? "max" : "avg",
               f16 ? "f16" : "f32", stride, pad, include_pad, n, h, w, c, e);
        TEST_CHECK(e <= tol && !lost && !unwritten, "pool2d: rel error %.3g, %d poison lost, %d unwritten", e, lost,
                   unwritten);
        free(g);
    }
    imsi_tensor_free(&cx), imsi_tensor_free(&cy), imsi_tensor_free(&gx), imsi_tensor_free(&gy);
    free(x);
}

/* f16 inputs (gap) and outputs (input step) only: f32 is in the op table. */
static void test_global_avg_pool_and_input(uint64_t *rng)
{
    ims_error err = {0};
    {
        const int f16 = 1; /* f32: in the op table */
        int n = 3, h = 8, w = 7, c = 2051;
        float *x = random_floats((size_t)n * h * w * c, -3.0f, 3.0f, f16, rng);
        int64_t xs[4] = {n, h, w, c}, ys[2] = {n, c};
        imsi_tensor cx = {0}, cy = {0}, gx = {0}, gy = {0};
        int ok = to_backend(cpu_be, x, IMS_DTYPE_F32, 4, xs, &cx) &&
                 to_backend(gpu_be, x, f16 ? IMS_DTYPE_F16 : IMS_DTYPE_F32, 4, xs, &gx) &&
                 test_check_ok(imsi_tensor_alloc(cpu_be, IMS_DTYPE_F32, 2, ys, &cy, &err), &err, "alloc") &&
                 test_check_ok(imsi_tensor_alloc(gpu_be, IMS_DTYPE_F32, 2, ys, &gy, &err), &err, "alloc") &&
                 test_check_ok(imsi_backend_fill_bytes(gpu_be, &gy, 0xff, &err), &err, "poison") &&
                 test_check_ok(imsi_op_global_avg_pool(cpu_be, &cx, &cy, &err), &err, "gap cpu") &&
                 test_check_ok(imsi_op_global_avg_pool(gpu_be, &gx, &gy, &err), &err, "gap cuda");
        if (ok) {
            float *g = from_backend(gpu_be, &gy);
            int lost = 0, unwritten = 0;
            double e = compare_slice(g, cy.data, (size_t)n, c, 0, c, &lost, &unwritten);
            printf("global_avg_pool %s: rel error %.3g\n", f16 ? "f16" : "f32", e);
            /* both sum in double from the same values: only the final rounding differs */
            TEST_CHECK(e <= 1e-6 && !unwritten, "global_avg_pool: rel error %.3g, %d unwritten", e, unwritten);
            free(g);
        }
        imsi_tensor_free(&cx), imsi_tensor_free(&cy), imsi_tensor_free(&gx), imsi_tensor_free(&gy);
        free(x);
    }
    /* input step: (2, 37, 41, 3) random bytes */
    int64_t s[4] = {2, 37, 41, 3};
    size_t nb = 2 * 37 * 41 * 3;
    uint8_t *u = test_xmalloc(nb);
    for (size_t i = 0; i < nb; i++)
        u[i] = (uint8_t)(test_rand_u64(rng) >> 56);
    const float scale[3] = {1.0f / (255.0f * 0.229f), 1.0f / (255.0f * 0.224f), 1.0f / (255.0f * 0.225f)};
    const float shift[3] = {-0.485f / 0.229f, -0.456f / 0.224f, -0.406f / 0.225f};
    {
        const int f16 = 1; /* f32: in the op table */
        imsi_tensor cx = {0}, cy = {0}, gx = {0}, gy = {0};
        int ok = test_check_ok(imsi_tensor_alloc(cpu_be, IMS_DTYPE_U8, 4, s, &cx, &err), &err, "alloc") &&
                 test_check_ok(imsi_tensor_alloc(gpu_be, IMS_DTYPE_U8, 4, s, &gx, &err), &err, "alloc") &&
                 test_check_ok(imsi_tensor_alloc(cpu_be, IMS_DTYPE_F32, 4, s, &cy, &err), &err, "alloc") &&
                 test_check_ok(imsi_tensor_alloc(gpu_be, f16 ? IMS_DTYPE_F16 : IMS_DTYPE_F32, 4, s, &gy, &err), &err,
                          "alloc") &&
                 test_check_ok(imsi_backend_upload(cpu_be, &cx, u, nb, &err), &err, "upload") &&
                 test_check_ok(imsi_backend_upload(gpu_be, &gx, u, nb, &err), &err, "upload") &&
                 test_check_ok(imsi_backend_fill_bytes(gpu_be, &gy, 0xff, &err), &err, "poison") &&
                 test_check_ok(imsi_op_input_u8(cpu_be, &cx, scale, shift, &cy, &err), &err, "input cpu") &&
                 test_check_ok(imsi_op_input_u8(gpu_be, &gx, scale, shift, &gy, &err), &err, "input cuda");
        if (ok) {
            float *g = from_backend(gpu_be, &gy);
            const float *c = cy.data;
            size_t bad = 0;
            for (size_t i = 0; i < nb; i++) {
                float want = f16 ? ims_f16_to_f32(ims_f32_to_f16(c[i])) : c[i];
                bad += test_f32_bits(g[i]) != test_f32_bits(want);
            }
            printf("input_u8 %s: %zu of %zu differ\n", f16 ? "f16" : "f32", bad, nb);
            /* the same two float operations, unfused, on both: identical bits */
            TEST_CHECK(bad == 0, "input_u8 %s: %zu values differ from the CPU's", f16 ? "f16" : "f32", bad);
            free(g);
        }
        imsi_tensor_free(&cx), imsi_tensor_free(&cy), imsi_tensor_free(&gx), imsi_tensor_free(&gy);
    }
    free(u);
}

/* ---- The network ---------------------------------------------------------------- */

static double rel_err(const float *a, const float *b, size_t n)
{
    double diff = 0.0, scale = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        diff = isnan(d) || d > diff ? (isnan(d) ? INFINITY : d) : diff;
        scale = fmax(scale, fabs((double)b[i]));
    }
    return diff / (scale > 0.0 ? scale : 1.0);
}

/* GPU top-5 vs CPU top-5 of one row, near ties (within tol of the scale) allowed. */
static int top5_agree(const float *g, const float *c, int classes, double tol_abs)
{
    int gi[5], ci[5];
    for (int t = 0; t < 5; t++) {
        gi[t] = ci[t] = -1;
        for (int k = 0; k < classes; k++) {
            int used_g = 0, used_c = 0;
            for (int u = 0; u < t; u++)
                used_g |= gi[u] == k, used_c |= ci[u] == k;
            if (!used_g && (gi[t] < 0 || g[k] > g[gi[t]]))
                gi[t] = k;
            if (!used_c && (ci[t] < 0 || c[k] > c[ci[t]]))
                ci[t] = k;
        }
    }
    for (int t = 0; t < 5; t++) {
        int in = 0;
        for (int u = 0; u < 5; u++)
            in |= gi[t] == ci[u];
        if (!in && c[gi[t]] < c[ci[4]] - tol_abs)
            return 0;
    }
    return 1;
}

/* Sample photos, center-cropped to 299 as the loader's torchvision mode does. */
static int load_photos(const char *images_dir, uint8_t *out, int max)
{
    static const char *const names[] = {"astronaut.png", "chelsea.png", "coffee.png", "horse.png", "rocket.jpg"};
    int n = 0;
    for (int i = 0; i < 5 && n < max; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", images_dir, names[i]);
        ims_image img = {0};
        ims_error err = {0};
        if (ims_image_decode_file(path, NULL, &img, &err) == IMS_OK &&
            ims_preprocess_torchvision_u8(&img, IMS_IMAGE_RESIZE_SIZE, SIZE, out + (size_t)n * SIZE * SIZE * 3, &err) ==
                IMS_OK)
            n++;
        else
            fprintf(stderr, "%s: %s\n", path, err.msg);
        ims_image_free(&img);
    }
    return n;
}

/* Capture failure recovery: conv2d fails while capturing (a switch of the
 * backend's test hooks). The capture is ended, the forward runs plainly and
 * gives the plain run's bits (plain: batch logits of the same images and
 * precision), and the batch size is never captured again. */
static void test_graph_recovery(const ims_weights *w, const uint8_t *img, int batch, int classes, const float *plain,
                                const char *variant)
{
    ims_error err = {0};
    ims_image_encoder *gpu = NULL;
    imsi_cuda_hooks *hooks = imsi_backend_cuda_hooks(gpu_be);
    if (!test_check_ok(ims_image_encoder_create(gpu_be, w, IMS_PRECISION_FP16, &gpu, &err), &err, "gpu encoder") ||
        !test_check_ok(imsi_image_encoder_set_graphs(gpu, 1, &err), &err, "set_graphs")) {
        ims_image_encoder_free(gpu);
        return;
    }
    float *gl = test_xmalloc((size_t)batch * classes * 4);
    int captures0 = hooks->captures, launches0 = hooks->graph_launches;
    hooks->fail_in_capture = 1;
    for (int rep = 0; rep < 4; rep++) {
        memset(gl, 0xff, (size_t)batch * classes * 4);
        if (!test_check_ok(ims_image_encoder_forward(gpu, img, batch, NULL, gl, &err), &err, "forward, capture failing"))
            break;
        TEST_CHECK(!memcmp(gl, plain, (size_t)batch * classes * 4), "%s fp16: run %d with a failing capture differs "
                   "from the plain run", variant, rep);
    }
    hooks->fail_in_capture = 0;
    printf("network %s fp16, conv2d failing in capture: %d captures begun, %d graph launches (expected 1, 0)\n",
           variant, hooks->captures - captures0, hooks->graph_launches - launches0);
    TEST_CHECK(hooks->captures - captures0 == 1 && hooks->graph_launches == launches0,
               "a failed capture was retried (%d) or launched (%d)", hooks->captures - captures0,
               hooks->graph_launches - launches0);
    free(gl);
    ims_image_encoder_free(gpu);
}

/* Network tolerances, max |gpu - cpu| / max |cpu| over logits and features.
 * fp32: cuDNN's FMA algorithms sum in other orders: about 2^-24 sqrt(K) per
 * layer (K <= 2048 products), a random walk over Inception's longest chain
 * of ~47 convolutions: ~2e-5; 1e-4 leaves 5x.
 * tf32 and fp16 keep the same 10 mantissa bits (unit roundoff u = 2^-11):
 * tf32 rounds both operands of every product, fp16 stores them rounded (each
 * activation once, as the next layer's input) plus the biases and pooled
 * values, so fp16 rounds only a little more often and the two need the same
 * budget: per layer about sqrt(2) u = 7e-4 relative, over ~47 layers ~5e-3,
 * and up to twice that in the max over 13 images x 1000 logits. 2e-2 for
 * both (it used to be 5e-3 for tf32: at the edge of the estimate, not a
 * bound), with the top-5 classes (near ties allowed) as the sharper check. */
static const ims_precision net_precs[3] = {IMS_PRECISION_FP32, IMS_PRECISION_TF32, IMS_PRECISION_FP16};
static const double net_tols[3] = {1e-4, 2e-2, 2e-2};

/* A model file on both backends, in the three precisions. */
static void test_network_file(const char *isw, const char *images_dir, const char *variant)
{
    ims_error err = {0};
    ims_weights *w = NULL;
    ims_image_encoder *cpu = NULL;
    if (!test_check_ok(ims_weights_open(isw, 0, &w, &err), &err, "open") ||
        !test_check_ok(ims_image_encoder_create(cpu_be, w, IMS_PRECISION_FP32, &cpu, &err), &err, "cpu encoder")) {
        ims_weights_close(w);
        return;
    }
    int classes = ims_image_encoder_num_classes(cpu), features = ims_image_encoder_feature_dim(cpu);
    int batch = IMAGES + 5;
    uint8_t *img = test_xmalloc((size_t)batch * SIZE * SIZE * 3);
    uint8_t *gen = make_images();
    memcpy(img, gen, (size_t)IMAGES * SIZE * SIZE * 3);
    free(gen);
    int photos = load_photos(images_dir, img + (size_t)IMAGES * SIZE * SIZE * 3, 5);
    batch = IMAGES + photos;
    float *cl = test_xmalloc((size_t)batch * classes * 4), *cf = test_xmalloc((size_t)batch * features * 4);
    float *gl = test_xmalloc((size_t)batch * classes * 4), *gf = test_xmalloc((size_t)batch * features * 4);
    test_check_ok(ims_image_encoder_forward(cpu, img, batch, cf, cl, &err), &err, "cpu forward");
    const ims_precision *precs = net_precs;
    const double *tols = net_tols;
    for (int pi = 0; pi < 3; pi++) {
        ims_image_encoder *gpu = NULL;
        if (!test_check_ok(ims_image_encoder_create(gpu_be, w, precs[pi], &gpu, &err), &err, "gpu encoder"))
            continue;
        imsi_cuda_hooks *hooks = imsi_backend_cuda_hooks(gpu_be);
        long searches0 = hooks->conv_searches;
        for (int rep = 0; rep < 2; rep++) { /* the second run reuses the cached plans */
            memset(gl, 0xff, (size_t)batch * classes * 4);
            memset(gf, 0xff, (size_t)batch * features * 4);
            if (!test_check_ok(ims_image_encoder_forward(gpu, img, batch, gf, gl, &err), &err, "gpu forward"))
                break;
            double el = rel_err(gl, cl, (size_t)batch * classes), ef = rel_err(gf, cf, (size_t)batch * features);
            int top5 = 1;
            double scale = 0.0;
            for (size_t i = 0; i < (size_t)batch * classes; i++)
                scale = fmax(scale, fabs((double)cl[i]));
            for (int b = IMAGES; b < batch; b++)
                top5 &= top5_agree(gl + (size_t)b * classes, cl + (size_t)b * classes, classes, tols[pi] * scale);
            printf("network %s %s run %d (batch %d, %d photos): logits %.3g, features %.3g, top-5 %s\n", variant,
                   prec_name(precs[pi]), rep, batch, photos, el, ef, top5 ? "agree" : "DIFFER");
            TEST_CHECK(el <= tols[pi] && ef <= tols[pi], "%s %s: rel errors %.3g, %.3g > %.g", variant,
                       prec_name(precs[pi]), el, ef, tols[pi]);
            TEST_CHECK(top5, "%s %s: top-5 classes differ on a photo", variant, prec_name(precs[pi]));
        }
        /* A new batch size (batch - 2, as the last partial batch of an indexing run)
         * takes the nearest planned batch's choices instead of searching again. */
        long searches1 = hooks->conv_searches;
        int small = batch - 2;
        memset(gl, 0xff, (size_t)batch * classes * 4);
        if (test_check_ok(ims_image_encoder_forward(gpu, img, small, NULL, gl, &err), &err, "gpu forward, batch - 2")) {
            double el = rel_err(gl, cl, (size_t)small * classes);
            long more = hooks->conv_searches - searches1;
            printf("network %s %s batch %d after %d: logits %.3g; %ld new searches (the first batch: %ld)\n", variant,
                   prec_name(precs[pi]), small, batch, el, more, searches1 - searches0);
            TEST_CHECK(el <= tols[pi], "%s %s batch %d: rel error %.3g > %.g", variant, prec_name(precs[pi]), small,
                       el, tols[pi]);
            TEST_CHECK(more < searches1 - searches0, "%s %s: batch %d searched %ld plans again (batch %d: %ld)",
                       variant, prec_name(precs[pi]), small, more, batch, searches1 - searches0);
        }
        /* run the full batch once more, so that the graph runs below compare with its plain run */
        test_check_ok(ims_image_encoder_forward(gpu, img, batch, NULL, gl, &err), &err, "gpu forward");
        /* CUDA graphs: run 0 plain (plans cached already), run 1 captures, run 2 replays;
         * the same kernels and algorithms on the same inputs: identical outputs */
        float *pl = test_xmalloc((size_t)batch * classes * 4);
        memcpy(pl, gl, (size_t)batch * classes * 4);
        int captures0 = hooks->captures, launches0 = hooks->graph_launches;
        if (test_check_ok(imsi_image_encoder_set_graphs(gpu, 1, &err), &err, "set_graphs")) {
            for (int rep = 0; rep < 3; rep++) {
                memset(gl, 0xff, (size_t)batch * classes * 4);
                if (!test_check_ok(ims_image_encoder_forward(gpu, img, batch, NULL, gl, &err), &err, "graph forward"))
                    break;
                int same = !memcmp(gl, pl, (size_t)batch * classes * 4);
                printf("network %s %s graphs run %d: %s\n", variant, prec_name(precs[pi]), rep,
                       same ? "identical" : "DIFFERENT");
                TEST_CHECK(same, "%s %s: graph run %d differs from the plain run", variant, prec_name(precs[pi]),
                           rep);
            }
            /* identical bits prove nothing if no graph ran: one capture, two replays */
            TEST_CHECK(hooks->captures - captures0 == 1 && hooks->graph_launches - launches0 == 2,
                       "%s %s: %d captures and %d graph launches (expected 1 and 2)", variant, prec_name(precs[pi]),
                       hooks->captures - captures0, hooks->graph_launches - launches0);
        }
        ims_image_encoder_free(gpu);
        if (precs[pi] == IMS_PRECISION_FP16)
            test_graph_recovery(w, img, batch, classes, pl, variant);
        free(pl);
    }
    free(cl), free(cf), free(gl), free(gf), free(img);
    ims_image_encoder_free(cpu);
    ims_weights_close(w);
}

/* The full-size generated model (tests/fixtures/inception_golden). */
static void test_network(const char *dir, const char *images_dir, const char *variant, ims_convert_arch arch,
                         const char *tmpdir)
{
    char isw[1024];
    if (!inception_make_model(dir, variant, arch, tmpdir, isw, sizeof isw)) {
        TEST_CHECK(0, "%s: cannot build the model", variant);
        return;
    }
    test_network_file(isw, images_dir, variant);
    unlink(isw);
}

/* The converter's fixture (tests/fixtures/inception/tv_zip.pt): torchvision's
 * network with every width / 16, so channel counts of 2, 3, 4, 5, 6, 12, 20,
 * 24 ...: not multiples of 8, where cuDNN's vectorized NHWC kernels (fp16
 * above all) may refuse the fused call or a slice. */
static void test_narrow_network(const char *golden_dir, const char *images_dir, const char *tmpdir)
{
    char ckpt[1024], isw[1024];
    snprintf(ckpt, sizeof ckpt, "%s/../inception/tv_zip.pt", golden_dir);
    snprintf(isw, sizeof isw, "%s/narrow.isw", tmpdir);
    ims_convert_options o;
    ims_convert_options_init(&o);
    ims_convert_report rep;
    ims_error err = {0};
    if (test_check_ok(ims_convert(ckpt, isw, &o, &rep, &err), &err, "convert tv_zip.pt"))
        test_network_file(isw, images_dir, "narrow (widths / 16)");
    unlink(isw);
}

/* Usage: see the top of the file. */
int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s GOLDEN_DIR IMAGES_DIR [quick]\n", argv[0]);
        return 2;
    }
    int quick = argc > 3 && !strcmp(argv[3], "quick");
    test_gpu_backends(&cpu_be, &gpu_be);
    uint64_t rng = SEED;
    /* n, h, w, c, o, kh, kw, stride, pad_h, pad_w: every filter Inception uses */
    static const int convs[][10] = {
        {2, 17, 13, 35, 19, 1, 1, 1, 0, 0}, {3, 19, 23, 3, 32, 3, 3, 2, 0, 0}, {2, 15, 15, 29, 37, 3, 3, 1, 1, 1},
        {2, 17, 17, 33, 21, 1, 7, 1, 0, 3}, {2, 17, 17, 21, 33, 7, 1, 1, 3, 0}, {1, 35, 35, 48, 64, 5, 5, 1, 2, 2},
        {2, 8, 8, 65, 47, 1, 3, 1, 0, 1},   {2, 8, 8, 47, 65, 3, 1, 1, 1, 0},   {2, 17, 17, 40, 24, 3, 3, 2, 0, 0},
    };
    /* fp32 (and the fused call's IDENTITY path, without ReLU) is in the op table */
    for (int p = IMS_PRECISION_TF32; p <= IMS_PRECISION_FP16; p++)
        for (size_t i = 0; i < sizeof convs / sizeof *convs; i++) {
            const int *c = convs[i];
            test_conv(c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], 1, (ims_precision)p, &rng);
        }
    test_conv(2, 15, 15, 29, 37, 3, 3, 1, 1, 1, 0, IMS_PRECISION_FP16, &rng);
    for (int p = IMS_PRECISION_FP32; p <= IMS_PRECISION_FP16; p++)
        test_conv_alignments((ims_precision)p, &rng);
    test_conv_fallback(convs, sizeof convs / sizeof *convs, &rng);
    {
        imsi_cuda_hooks *hooks = imsi_backend_cuda_hooks(gpu_be);
        printf("convolutions so far: %ld plans searched, %ld calls on the fallback path (cuDNN refused the fused "
               "call), %ld fused candidates refused for reading the old output\n", hooks->conv_searches,
               hooks->conv_fallbacks, hooks->conv_z_reads);
    }
    {
        const int f16 = 1; /* f32: in the op table */
        test_pool(2, 35, 33, 37, IMS_POOL_AVG, 1, 1, 1, f16, &rng);
        test_pool(2, 35, 33, 37, IMS_POOL_AVG, 1, 1, 0, f16, &rng);
        test_pool(2, 17, 17, 41, IMS_POOL_MAX, 1, 1, 1, f16, &rng);
        test_pool(3, 147, 147, 5, IMS_POOL_MAX, 2, 0, 1, f16, &rng);
        test_pool(2, 17, 19, 29, IMS_POOL_MAX, 2, 0, 1, f16, &rng);
    }
    test_global_avg_pool_and_input(&rng);

    if (!quick)
        test_conv_big_batch(&rng);

    char tmpdir[] = "/tmp/ims_test_inception_gpu_XXXXXX";
    if (!quick && mkdtemp(tmpdir)) {
        test_narrow_network(argv[1], argv[2], tmpdir);
        test_network(argv[1], argv[2], "tv", IMS_CONVERT_ARCH_INCEPTION_V3, tmpdir);
        test_network(argv[1], argv[2], "fid", IMS_CONVERT_ARCH_INCEPTION_V3_FID, tmpdir);
        rmdir(tmpdir);
    }
    ims_backend_free(gpu_be);
    ims_backend_free(cpu_be);
    return test_finish();
}

#else

int main(void)
{
    test_skip("built without CUDA");
    return 0;
}

#endif
