/* test_inception_ops.c: the argument checks of the Inception ops (conv2d,
 * pool2d) on the CPU backend: slices that do not fit, a missing bias, a
 * precision the CPU lacks, wrong output sizes, a pad beyond half the window;
 * and that the CPU backend's cached convolutions (oneDNN's primitives with
 * their reordered filters) follow a filter that changes at the same address.
 * Their results against double references are in test_backend_ops.c.
 */
#include "test.h"

#include "backend/backend.h"

#include <math.h>


static ims_backend *be;

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

/* y = conv(x, w) + b in double, NHWC / OHWI, stride 1, no padding, 3 x 3. */
static double conv_ref(const float *x, const float *w, const float *b, int h, int wd, int c, int oy, int ox, int o)
{
    double acc = b[o];
    for (int ky = 0; ky < 3; ky++)
        for (int kx = 0; kx < 3; kx++)
            for (int ch = 0; ch < c; ch++)
                acc += (double)x[((size_t)(oy + ky) * wd + ox + kx) * c + ch] * w[((size_t)(o * 3 + ky) * 3 + kx) * c + ch];
    (void)h;
    return acc;
}

/* Runs the same shape three times: filter A, then filter B written over A's
 * memory (a cached reordered copy of A would give A's answer), then B again
 * in a freshly allocated tensor after A's was freed. Each must match its own
 * double reference. */
static void test_filter_identity(void)
{
    enum { N = 2, H = 9, W = 8, C = 16, O = 24 };
    ims_error err = {0};
    uint64_t rng = 77;
    imsi_tensor tx = {0}, tw = {0}, tb = {0}, ty = {0};
    int ok = !imsi_tensor_alloc(be, IMS_DTYPE_F32, 4, (int64_t[]){N, H, W, C}, &tx, &err) &&
             !imsi_tensor_alloc(be, IMS_DTYPE_F32, 4, (int64_t[]){O, 3, 3, C}, &tw, &err) &&
             !imsi_tensor_alloc(be, IMS_DTYPE_F32, 1, (int64_t[]){O}, &tb, &err) &&
             !imsi_tensor_alloc(be, IMS_DTYPE_F32, 4, (int64_t[]){N, H - 2, W - 2, O}, &ty, &err);
    TEST_CHECK(ok, "alloc: %s", err.msg);
    float *x = tx.data, *b = tb.data;
    for (size_t i = 0; ok && i < (size_t)N * H * W * C; i++)
        x[i] = test_rand_uniform(&rng, -1, 1);
    for (int i = 0; ok && i < O; i++)
        b[i] = test_rand_uniform(&rng, -0.5f, 0.5f);
    for (int round = 0; ok && round < 3; round++) {
        if (round == 2) { /* B again, in a new tensor after the old one is freed */
            imsi_tensor_free(&tw);
            ok = !imsi_tensor_alloc(be, IMS_DTYPE_F32, 4, (int64_t[]){O, 3, 3, C}, &tw, &err);
            TEST_CHECK(ok, "alloc: %s", err.msg);
            if (!ok)
                break;
            rng = 1000 + 1; /* B's values */
        } else {
            rng = 1000 + (uint64_t)round;
        }
        float *w = tw.data;
        for (size_t i = 0; i < (size_t)O * 9 * C; i++)
            w[i] = test_rand_uniform(&rng, -0.3f, 0.3f);
        imsi_conv2d_params p = {1, 1, 0, 0, 0, 0, IMS_PRECISION_FP32};
        TEST_OK(imsi_op_conv2d(be, &p, &tx, &tw, &tb, &ty, &err), err);
        double worst = 0;
        const float *y = ty.data;
        for (int n = 0; n < N; n++)
            for (int oy = 0; oy < H - 2; oy++)
                for (int ox = 0; ox < W - 2; ox++)
                    for (int o = 0; o < O; o++) {
                        double want = conv_ref(x + (size_t)n * H * W * C, w, b, H, W, C, oy, ox, o);
                        double d = fabs(y[(((size_t)n * (H - 2) + oy) * (W - 2) + ox) * O + o] - want);
                        worst = d > worst ? d : worst;
                    }
        TEST_CHECK(worst < 1e-4, "round %d: max abs error %g against the current filter", round, worst);
    }
    imsi_tensor_free(&tx);
    imsi_tensor_free(&tw);
    imsi_tensor_free(&tb);
    imsi_tensor_free(&ty);
}

int main(void)
{
    ims_error err = {0};
    if (ims_backend_create(IMS_BACKEND_CPU, 0, &be, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    test_checks();
    test_filter_identity();
    ims_backend_free(be);
    return test_finish();
}
