/* test_inception_ops.c: the argument checks of the Inception ops (conv2d,
 * pool2d) on the CPU backend: slices that do not fit, a missing bias, a
 * precision the CPU lacks, wrong output sizes, a pad beyond half the window.
 * Their results against double references are in test_backend_ops.c.
 */
#include "test.h"

#include "backend/backend.h"


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

int main(void)
{
    ims_error err = {0};
    if (ims_backend_create(IMS_BACKEND_CPU, 0, &be, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    test_checks();
    ims_backend_free(be);
    return test_finish();
}
