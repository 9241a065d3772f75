/* test_inception_ops.c: the CPU backend's Inception ops against naive
 * double-precision loops written from their definitions (PyTorch's Conv2d,
 * MaxPool2d, AvgPool2d with count_include_pad on and off, ceil_mode False),
 * on seeded random inputs whose sizes are not multiples of anything, every
 * filter shape Inception uses, outputs into a channel slice of a wider tensor
 * poisoned with NaN (the slice must be written, the rest left alone), and the
 * argument checks of the imsi_op_* wrappers.
 * Tolerance: 1e-5 of the output's scale for conv (f32 sums of up to ~1000
 * products vs double), 1e-6 for pools (9 terms), exact for the input step.
 */
#include "test.h"

#include "backend/backend.h"

#include <math.h>

static ims_backend *be;

static float *rand_floats(size_t n, float lo, float hi, uint64_t *rng)
{
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; v && i < n; i++)
        v[i] = test_rand_uniform(rng, lo, hi);
    return v;
}

static void test_conv(int n, int h, int w, int c, int o, int kh, int kw, int s, int ph, int pw, int relu,
                      uint64_t *rng)
{
    ims_error err = {0};
    int oh = (int)imsi_conv_out_size(h, kh, s, ph), ow = (int)imsi_conv_out_size(w, kw, s, pw);
    int off = 3, ct = o + 8;
    float *x = rand_floats((size_t)n * h * w * c, -1, 1, rng), *wt = rand_floats((size_t)o * kh * kw * c, -0.3f, 0.3f, rng);
    float *b = rand_floats((size_t)o, -0.5f, 0.5f, rng), *y = malloc((size_t)n * oh * ow * ct * sizeof *y);
    memset(y, 0xff, (size_t)n * oh * ow * ct * sizeof *y);
    imsi_tensor tx = imsi_tensor_host(x, IMS_DTYPE_F32, 4, (int64_t[]){n, h, w, c});
    imsi_tensor tw = imsi_tensor_host(wt, IMS_DTYPE_F32, 4, (int64_t[]){o, kh, kw, c});
    imsi_tensor tb = imsi_tensor_host(b, IMS_DTYPE_F32, 1, (int64_t[]){o});
    imsi_tensor ty = imsi_tensor_host(y, IMS_DTYPE_F32, 4, (int64_t[]){n, oh, ow, ct});
    imsi_conv2d_params p = {s, s, ph, pw, relu, off, IMS_PRECISION_FP32};
    TEST_OK(imsi_op_conv2d(be, &p, &tx, &tw, &tb, &ty, &err), err);
    double worst = 0.0, scale = 0.0;
    int poison = 0;
    for (int bi = 0; bi < n; bi++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                for (int k = 0; k < ct; k++) {
                    float got = y[(((size_t)bi * oh + oy) * ow + ox) * ct + k];
                    if (k < off || k >= off + o) {
                        poison += !isnan(got);
                        continue;
                    }
                    int oc = k - off;
                    double acc = b[oc];
                    for (int ky = 0; ky < kh; ky++)
                        for (int kx = 0; kx < kw; kx++) {
                            int iy = oy * s - ph + ky, ix = ox * s - pw + kx;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w)
                                continue;
                            for (int ic = 0; ic < c; ic++)
                                acc += (double)x[(((size_t)bi * h + iy) * w + ix) * c + ic] *
                                       wt[(((size_t)oc * kh + ky) * kw + kx) * c + ic];
                        }
                    if (relu && acc < 0)
                        acc = 0;
                    worst = fmax(worst, isnan(got) ? INFINITY : fabs(got - acc));
                    scale = fmax(scale, fabs(acc));
                }
    TEST_CHECK(worst <= 1e-5 * scale && scale > 0, "conv %dx%d s%d p(%d,%d) relu %d: error %.3g of scale %.3g", kh,
               kw, s, ph, pw, relu, worst, scale);
    TEST_CHECK(poison == 0, "conv %dx%d: %d values outside the slice written", kh, kw, poison);
    free(x), free(wt), free(b), free(y);
}

static void test_pool(int n, int h, int w, int c, int max, int s, int pad, int incl, uint64_t *rng)
{
    ims_error err = {0};
    int oh = (int)imsi_conv_out_size(h, 3, s, pad), ow = (int)imsi_conv_out_size(w, 3, s, pad), off = 2, ct = c + 5;
    float *x = rand_floats((size_t)n * h * w * c, -2, 2, rng), *y = malloc((size_t)n * oh * ow * ct * sizeof *y);
    memset(y, 0xff, (size_t)n * oh * ow * ct * sizeof *y);
    imsi_tensor tx = imsi_tensor_host(x, IMS_DTYPE_F32, 4, (int64_t[]){n, h, w, c});
    imsi_tensor ty = imsi_tensor_host(y, IMS_DTYPE_F32, 4, (int64_t[]){n, oh, ow, ct});
    imsi_pool2d_params p = {max ? IMS_POOL_MAX : IMS_POOL_AVG, 3, s, pad, incl, off};
    TEST_OK(imsi_op_pool2d(be, &p, &tx, &ty, &err), err);
    double worst = 0.0;
    int poison = 0;
    for (int bi = 0; bi < n; bi++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                for (int k = 0; k < ct; k++) {
                    float got = y[(((size_t)bi * oh + oy) * ow + ox) * ct + k];
                    if (k < off || k >= off + c) {
                        poison += !isnan(got);
                        continue;
                    }
                    double acc = max ? -INFINITY : 0.0;
                    int cnt = 0;
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++) {
                            int iy = oy * s - pad + ky, ix = ox * s - pad + kx;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w)
                                continue;
                            double v = x[(((size_t)bi * h + iy) * w + ix) * c + k - off];
                            acc = max ? fmax(acc, v) : acc + v;
                            cnt++;
                        }
                    double want = max ? acc : acc / (incl ? 9 : cnt);
                    worst = fmax(worst, isnan(got) ? INFINITY : fabs(got - want));
                }
    TEST_CHECK(worst <= 1e-6 * 2, "pool max %d s%d p%d incl %d: error %.3g", max, s, pad, incl, worst);
    TEST_CHECK(poison == 0, "pool: %d values outside the slice written", poison);
    free(x), free(y);
}

static void test_gap_and_input(uint64_t *rng)
{
    ims_error err = {0};
    int n = 2, h = 5, w = 3, c = 37;
    float *x = rand_floats((size_t)n * h * w * c, -1, 3, rng), y[2 * 37];
    imsi_tensor tx = imsi_tensor_host(x, IMS_DTYPE_F32, 4, (int64_t[]){n, h, w, c});
    imsi_tensor ty = imsi_tensor_host(y, IMS_DTYPE_F32, 2, (int64_t[]){n, c});
    TEST_OK(imsi_op_global_avg_pool(be, &tx, &ty, &err), err);
    double worst = 0.0;
    for (int b = 0; b < n; b++)
        for (int k = 0; k < c; k++) {
            double acc = 0;
            for (int p = 0; p < h * w; p++)
                acc += x[((size_t)b * h * w + p) * c + k];
            worst = fmax(worst, fabs(y[b * c + k] - acc / (h * w)));
        }
    TEST_CHECK(worst <= 1e-6, "global_avg_pool error %.3g", worst);
    free(x);

    uint8_t u[4 * 3 * 3];
    float out[4 * 3 * 3];
    for (int i = 0; i < 36; i++)
        u[i] = (uint8_t)(test_rand_u64(rng) >> 56);
    const float scale[3] = {0.5f, 0.25f, 2.0f}, shift[3] = {-1.0f, 0.75f, -3.0f};
    imsi_tensor tu = imsi_tensor_host(u, IMS_DTYPE_U8, 4, (int64_t[]){2, 2, 3, 3});
    imsi_tensor tf = imsi_tensor_host(out, IMS_DTYPE_F32, 4, (int64_t[]){2, 2, 3, 3});
    TEST_OK(imsi_op_input_u8(be, &tu, scale, shift, &tf, &err), err);
    int bad = 0;
    for (int i = 0; i < 36; i++)
        bad += out[i] != (float)u[i] * scale[i % 3] + shift[i % 3]; /* exact: dyadic scales */
    TEST_CHECK(bad == 0, "input_u8: %d values wrong", bad);
}

static void test_checks(void)
{
    ims_error err = {0};
    float x[2 * 5 * 5 * 3], w[4 * 3 * 3 * 3], b[4], y[2 * 3 * 3 * 6];
    imsi_tensor tx = imsi_tensor_host(x, IMS_DTYPE_F32, 4, (int64_t[]){2, 5, 5, 3});
    imsi_tensor tw = imsi_tensor_host(w, IMS_DTYPE_F32, 4, (int64_t[]){4, 3, 3, 3});
    imsi_tensor tb = imsi_tensor_host(b, IMS_DTYPE_F32, 1, (int64_t[]){4});
    imsi_tensor ty = imsi_tensor_host(y, IMS_DTYPE_F32, 4, (int64_t[]){2, 3, 3, 6});
    imsi_conv2d_params p = {1, 1, 0, 0, 1, 3, IMS_PRECISION_FP32}; /* channels 3..7 of 6 */
    TEST_CHECK(imsi_op_conv2d(be, &p, &tx, &tw, &tb, &ty, &err) == IMS_ERR_ARGUMENT && strstr(err.msg, "channels"),
               "slice overflow accepted: %s", err.msg);
    p.y_channel_offset = 0;
    TEST_CHECK(imsi_op_conv2d(be, &p, &tx, &tw, NULL, &ty, &err) == IMS_ERR_ARGUMENT && strstr(err.msg, "bias"),
               "conv2d without a bias accepted: %s", err.msg);
    p.precision = IMS_PRECISION_FP16;
    TEST_CHECK(imsi_op_conv2d(be, &p, &tx, &tw, &tb, &ty, &err) == IMS_ERR_UNSUPPORTED, "fp16 on CPU: %s", err.msg);
    p.precision = IMS_PRECISION_FP32;
    p.stride_h = 2;
    TEST_CHECK(imsi_op_conv2d(be, &p, &tx, &tw, &tb, &ty, &err) == IMS_ERR_ARGUMENT, "wrong output rows accepted");
    imsi_pool2d_params pp = {IMS_POOL_AVG, 3, 1, 2, 1, 0};
    TEST_CHECK(imsi_op_pool2d(be, &pp, &tx, &ty, &err) == IMS_ERR_ARGUMENT, "pad > k/2 accepted");
}

int main(void)
{
    ims_error err = {0};
    if (ims_backend_create(IMS_BACKEND_CPU, 0, &be, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    uint64_t rng = 0xc0ffee;
    /* n, h, w, c, o, kh, kw, stride, pad_h, pad_w */
    static const int convs[][10] = {
        {2, 9, 7, 13, 11, 1, 1, 1, 0, 0}, {2, 11, 10, 3, 9, 3, 3, 2, 0, 0}, {1, 9, 9, 7, 5, 3, 3, 1, 1, 1},
        {2, 8, 9, 6, 7, 1, 7, 1, 0, 3},   {2, 9, 8, 7, 6, 7, 1, 1, 3, 0},   {1, 8, 8, 5, 9, 5, 5, 1, 2, 2},
        {2, 5, 6, 9, 4, 1, 3, 1, 0, 1},   {2, 6, 5, 4, 9, 3, 1, 1, 1, 0},   {1, 10, 11, 8, 5, 3, 3, 2, 0, 0},
    };
    for (size_t i = 0; i < sizeof convs / sizeof *convs; i++)
        for (int relu = 0; relu < 2; relu++)
            test_conv(convs[i][0], convs[i][1], convs[i][2], convs[i][3], convs[i][4], convs[i][5], convs[i][6],
                      convs[i][7], convs[i][8], convs[i][9], relu, &rng);
    for (int incl = 0; incl < 2; incl++) {
        test_pool(2, 7, 6, 5, 0, 1, 1, incl, &rng);
        test_pool(2, 7, 6, 5, 1, 1, 1, incl, &rng);
    }
    test_pool(2, 9, 8, 4, 1, 2, 0, 1, &rng);
    test_pool(1, 10, 11, 3, 0, 2, 0, 1, &rng);
    test_gap_and_input(&rng);
    test_checks();
    ims_backend_free(be);
    return test_finish();
}
