/* test_backend_cpu.c: tensors, the backend table's required slots, the checks
 * of the op entry points, and what only the CPU backend has (its scratch
 * arena, how its f16 outputs round). Every op's results against double
 * references are in test_backend_ops.c. */
#include "test.h"

#include "backend/backend.h"

#include <math.h>
#include <string.h>

static void test_tensor_shapes(void)
{
    ims_error err = {0};
    int64_t n = 0;
    TEST_OK(imsi_shape_numel(4, (int64_t[]){8, 299, 299, 3}, &n, &err), err);
    TEST_CHECK(n == 8LL * 299 * 299 * 3, "numel");
    TEST_CHECK(imsi_shape_numel(2, (int64_t[]){3, 0}, &n, &err) == IMS_ERR_ARGUMENT, "zero dim");
    TEST_CHECK(strstr(err.msg, "shape[1] = 0") != NULL, "message: %s", err.msg);
    TEST_CHECK(imsi_shape_numel(5, (int64_t[]){1, 1, 1, 1, 1}, &n, &err) == IMS_ERR_ARGUMENT, "ndim 5");
    TEST_CHECK(imsi_shape_numel(2, (int64_t[]){INT64_MAX / 2, 3}, &n, &err) == IMS_ERR_ARGUMENT, "overflow");
    TEST_CHECK(strstr(err.msg, "overflows") != NULL, "message: %s", err.msg);

    float x[6];
    imsi_tensor t = imsi_tensor_host(x, IMS_DTYPE_F32, 2, (int64_t[]){2, 3});
    TEST_CHECK(t.data == x && imsi_tensor_numel(&t) == 6 && imsi_tensor_nbytes(&t) == 24, "host tensor");
    TEST_CHECK(t.shape[2] == 1 && t.shape[3] == 1, "unused dims are 1");
    char text[64];
    TEST_CHECK(strcmp(imsi_tensor_describe(&t, text, sizeof text), "(2, 3) f32") == 0, "describe: %s", text);
    TEST_OK(imsi_tensor_expect(&t, "x", IMS_DTYPE_F32, 2, (int64_t[]){-1, 3}, &err), err);
    TEST_CHECK(imsi_tensor_expect(&t, "x", IMS_DTYPE_F16, 2, (int64_t[]){2, 3}, &err) == IMS_ERR_ARGUMENT, "dtype");
    TEST_CHECK(strstr(err.msg, "x: expected (2, 3) f16 (-1 = any), got (2, 3) f32") != NULL, "message: %s", err.msg);
    imsi_tensor bad = imsi_tensor_host(x, IMS_DTYPE_F32, 2, (int64_t[]){2, -3});
    TEST_CHECK(bad.data == NULL, "invalid shape gives an empty tensor");
}

/* The f16 output of l2_normalize_rows is the f32 output rounded (the CPU
 * computes in double, rounds to f32, then to f16): the table in
 * test_backend_ops checks both against double, this checks their relation. */
static void test_l2_f16_is_rounded_f32(ims_backend *be, uint64_t *rng)
{
    ims_error err = {0};
    int n = 100, d = 257;
    imsi_tensor x, y, y16, norms;
    TEST_OK(imsi_tensor_alloc(be, IMS_DTYPE_F32, 2, (int64_t[]){n, d}, &x, &err), err);
    TEST_OK(imsi_tensor_alloc(be, IMS_DTYPE_F32, 2, (int64_t[]){n, d}, &y, &err), err);
    TEST_OK(imsi_tensor_alloc(be, IMS_DTYPE_F16, 2, (int64_t[]){n, d}, &y16, &err), err);
    TEST_OK(imsi_tensor_alloc(be, IMS_DTYPE_F32, 1, (int64_t[]){n}, &norms, &err), err);
    for (size_t i = 0; i < (size_t)n * d; i++)
        ((float *)x.data)[i] = test_rand_uniform(rng, 0.01f, 2.0f) * (i % 3 ? 1.0f : -1.0f);
    TEST_OK(imsi_backend_fill_bytes(be, &y, 0xff, &err), err);
    TEST_OK(imsi_backend_fill_bytes(be, &y16, 0xff, &err), err);
    TEST_OK(imsi_op_l2_normalize_rows(be, &x, &y, &norms, &err), err);
    TEST_OK(imsi_op_l2_normalize_rows(be, &x, &y16, &norms, &err), err);
    int mismatch = 0;
    for (size_t i = 0; i < (size_t)n * d; i++)
        mismatch += ((uint16_t *)y16.data)[i] != ims_f32_to_f16(((float *)y.data)[i]);
    TEST_CHECK(mismatch == 0, "f16 output equals the rounded f32 output (%d differ)", mismatch);
    imsi_tensor_free(&x), imsi_tensor_free(&y), imsi_tensor_free(&y16), imsi_tensor_free(&norms);
}

static void test_checks(ims_backend *be)
{
    ims_error err = {0};
    imsi_tensor x, w, y;
    TEST_OK(imsi_tensor_alloc(be, IMS_DTYPE_F32, 2, (int64_t[]){2, 3}, &x, &err), err);
    TEST_OK(imsi_tensor_alloc(be, IMS_DTYPE_F32, 2, (int64_t[]){4, 5}, &w, &err), err);
    TEST_OK(imsi_tensor_alloc(be, IMS_DTYPE_F32, 2, (int64_t[]){2, 4}, &y, &err), err);
    TEST_CHECK(imsi_op_linear(be, &x, &w, NULL, &y, &err) == IMS_ERR_ARGUMENT, "K mismatch");
    TEST_CHECK(strstr(err.msg, "linear w: expected (-1, 3) f32") != NULL, "message: %s", err.msg);
    /* linear: one dtype for x, w, y (from x); the bias always f32 */
    imsi_tensor h2, h3, h4, hb;
    TEST_OK(imsi_tensor_alloc(be, IMS_DTYPE_F16, 2, (int64_t[]){2, 3}, &h2, &err), err);
    TEST_OK(imsi_tensor_alloc(be, IMS_DTYPE_F16, 2, (int64_t[]){4, 3}, &h3, &err), err);
    TEST_OK(imsi_tensor_alloc(be, IMS_DTYPE_F16, 2, (int64_t[]){2, 4}, &h4, &err), err);
    TEST_OK(imsi_tensor_alloc(be, IMS_DTYPE_F16, 1, (int64_t[]){4}, &hb, &err), err);
    TEST_CHECK(imsi_op_linear(be, &x, &h3, NULL, &y, &err) == IMS_ERR_ARGUMENT &&
                   strstr(err.msg, "linear w: expected (-1, 3) f32"), "f16 w with f32 x: %s", err.msg);
    TEST_CHECK(imsi_op_linear(be, &h2, &h3, &hb, &h4, &err) == IMS_ERR_ARGUMENT &&
                   strstr(err.msg, "linear bias: expected (4) f32"), "f16 bias: %s", err.msg);
    TEST_CHECK(imsi_op_linear(be, &h2, &h3, NULL, &y, &err) == IMS_ERR_ARGUMENT &&
                   strstr(err.msg, "linear y: expected (2, 4) f16"), "f32 y of f16 x: %s", err.msg);
    imsi_tensor_free(&h2), imsi_tensor_free(&h3), imsi_tensor_free(&h4), imsi_tensor_free(&hb);
    imsi_tensor dev = x;
    dev.memory = IMS_MEMORY_DEVICE;
    TEST_CHECK(imsi_op_linear(be, &dev, &w, NULL, &y, &err) == IMS_ERR_ARGUMENT, "placement");
    TEST_CHECK(strstr(err.msg, "device memory") != NULL, "message: %s", err.msg);
    TEST_CHECK(imsi_backend_upload(be, &x, "abc", 3, &err) == IMS_ERR_ARGUMENT, "upload size");
    imsi_tensor wrong;
    TEST_OK(imsi_tensor_alloc(be, IMS_DTYPE_I32, 2, (int64_t[]){2, 3}, &wrong, &err), err);
    TEST_CHECK(imsi_op_convert(be, &x, &wrong, &err) == IMS_ERR_UNSUPPORTED, "f32 -> i32 convert accepted");
    imsi_tensor_free(&wrong);
    imsi_tensor huge;
    TEST_CHECK(imsi_tensor_alloc(be, IMS_DTYPE_F32, 2, (int64_t[]){1LL << 31, 1LL << 30}, &huge, &err) ==
                   IMS_ERR_NOMEM, "huge allocation fails cleanly");
    TEST_CHECK(strstr(err.msg, "tensor (2147483648, 1073741824) f32") != NULL, "message: %s", err.msg);
    size_t in_use = be->bytes_in_use;
    imsi_tensor_free(&x), imsi_tensor_free(&w), imsi_tensor_free(&y);
    TEST_CHECK(be->bytes_in_use == in_use - 24 - 80 - 32, "bytes_in_use tracks frees");
}

/* A host tensor filled with random values in [-1, 1] (never 0), or poisoned (0xff: NaN). */
static imsi_tensor host_tensor(ims_backend *be, ims_dtype dt, int ndim, const int64_t *shape, int poison,
                               uint64_t *rng)
{
    ims_error err = {0};
    imsi_tensor t;
    TEST_OK(imsi_tensor_alloc(be, dt, ndim, shape, &t, &err), err);
    size_t n = (size_t)imsi_tensor_numel(&t);
    for (size_t i = 0; t.data && i < n; i++) {
        float v = test_rand_uniform(rng, 0.125f, 1.0f) * (test_rand_u64(rng) & 1 ? 1.0f : -1.0f);
        if (dt == IMS_DTYPE_F16)
            ((uint16_t *)t.data)[i] = ims_f32_to_f16(v);
        else if (dt == IMS_DTYPE_F32)
            ((float *)t.data)[i] = v;
    }
    if (poison && t.data)
        memset(t.data, 0xff, imsi_tensor_nbytes(&t));
    return t;
}

static int all_nan(const imsi_tensor *t)
{
    size_t n = (size_t)imsi_tensor_numel(t);
    for (size_t i = 0; i < n; i++)
        if (t->dtype == IMS_DTYPE_F16 ? !test_half_is_nan(((uint16_t *)t->data)[i]) : !isnan(((float *)t->data)[i]))
            return 0;
    return 1;
}

/* Ops that need scratch memory report IMS_ERR_NOMEM, naming themselves, when
 * they cannot get it, and write nothing; with memory again they work. (They
 * used to skip rows and report success.) */
static void test_scratch_failures(ims_backend *be, uint64_t *rng)
{
    enum { OPS = 7 };
    static const char *const names[OPS] = {"attention", "add_layernorm", "pool_normalize", "embed", "linear",
                                           "conv2d", "knn"};
    imsi_tensor qkv = host_tensor(be, IMS_DTYPE_F32, 3, (int64_t[]){2, 5, 12}, 0, rng);
    imsi_tensor lengths = host_tensor(be, IMS_DTYPE_I32, 1, (int64_t[]){2}, 0, rng);
    imsi_tensor scores = host_tensor(be, IMS_DTYPE_F32, 4, (int64_t[]){2, 2, 5, 5}, 1, rng);
    imsi_tensor x = host_tensor(be, IMS_DTYPE_F32, 2, (int64_t[]){10, 4}, 0, rng);
    imsi_tensor g = host_tensor(be, IMS_DTYPE_F32, 1, (int64_t[]){4}, 0, rng);
    imsi_tensor ids = host_tensor(be, IMS_DTYPE_I32, 2, (int64_t[]){2, 5}, 0, rng);
    imsi_tensor word = host_tensor(be, IMS_DTYPE_F32, 2, (int64_t[]){7, 4}, 0, rng);
    imsi_tensor h16 = host_tensor(be, IMS_DTYPE_F16, 2, (int64_t[]){3, 4}, 0, rng);
    imsi_tensor img = host_tensor(be, IMS_DTYPE_F32, 4, (int64_t[]){1, 5, 5, 2}, 0, rng);
    imsi_tensor filt = host_tensor(be, IMS_DTYPE_F32, 4, (int64_t[]){3, 3, 3, 2}, 0, rng);
    imsi_tensor fb = host_tensor(be, IMS_DTYPE_F32, 1, (int64_t[]){3}, 0, rng);
    imsi_tensor kq = host_tensor(be, IMS_DTYPE_F32, 2, (int64_t[]){2, 4}, 0, rng);
    ((int32_t *)lengths.data)[0] = 5, ((int32_t *)lengths.data)[1] = 3;
    for (int i = 0; i < 10; i++)
        ((int32_t *)ids.data)[i] = (int32_t)(test_rand_u64(rng) % 7);
    imsi_tensor outs[OPS];
    outs[0] = host_tensor(be, IMS_DTYPE_F32, 3, (int64_t[]){2, 5, 4}, 1, rng);
    outs[1] = host_tensor(be, IMS_DTYPE_F32, 2, (int64_t[]){10, 4}, 1, rng);
    outs[2] = host_tensor(be, IMS_DTYPE_F32, 2, (int64_t[]){2, 4}, 1, rng);
    outs[3] = host_tensor(be, IMS_DTYPE_F32, 3, (int64_t[]){2, 5, 4}, 1, rng);
    outs[4] = host_tensor(be, IMS_DTYPE_F16, 2, (int64_t[]){3, 3}, 1, rng);
    /* conv2d into channels [1, 4) of 5: both paths need scratch there (oneDNN a
     * dense output to copy into the slice, the reference path im2col rows) */
    outs[5] = host_tensor(be, IMS_DTYPE_F32, 4, (int64_t[]){1, 3, 3, 5}, 1, rng);
    outs[6] = host_tensor(be, IMS_DTYPE_F32, 2, (int64_t[]){2, 3}, 1, rng);
    imsi_tensor knn_ids = host_tensor(be, IMS_DTYPE_I32, 2, (int64_t[]){2, 3}, 1, rng);
    imsi_tensor w16 = h16;
    w16.shape[0] = 3; /* (3, 4): the weights of a (3, 4) . (3, 4)^T product */
    imsi_tensor x3 = x;
    x3.ndim = 3, x3.shape[0] = 2, x3.shape[1] = 5, x3.shape[2] = 4;
    imsi_conv2d_params cp = {1, 1, 0, 0, 1, 1, IMS_PRECISION_FP32};
    for (int limit = 1; limit >= 0; limit--) {
        imsi_backend_cpu_limit_scratch(be, limit ? 16 : 0);
        for (int op = 0; op < OPS; op++) {
            ims_error err = {0};
            ims_status st = IMS_OK;
            memset(outs[op].data, 0xff, imsi_tensor_nbytes(&outs[op]));
            switch (op) {
            case 0: st = imsi_op_attention(be, &qkv, &lengths, 2, &scores, &outs[0], &err); break;
            case 1: st = imsi_op_add_layernorm(be, &x, NULL, &x, &g, &g, 1e-5, &outs[1], &err); break;
            case 2: st = imsi_op_pool_normalize(be, &x3, &lengths, IMS_POOLING_MEAN, 1, &outs[2], &err); break;
            case 3: st = imsi_op_embed_layernorm(be, &ids, &word, &word, &word, &g, &g, 1e-5, &outs[3], &err); break;
            case 4: st = imsi_op_linear(be, &h16, &w16, NULL, &outs[4], &err); break;
            case 5: st = imsi_op_conv2d(be, &cp, &img, &filt, &fb, &outs[5], &err); break;
            case 6: st = imsi_op_knn_select(be, &x, &kq, 3, 0, &knn_ids, &outs[6], &err); break;
            }
            if (limit)
                TEST_CHECK(st == IMS_ERR_NOMEM && strstr(err.msg, names[op]) && all_nan(&outs[op]),
                           "%s without scratch: %s (%s), output %s", names[op], ims_status_name(st), err.msg,
                           all_nan(&outs[op]) ? "untouched" : "WRITTEN");
            else
                TEST_CHECK(st == IMS_OK && !all_nan(&outs[op]), "%s with scratch: %s (%s)", names[op],
                           ims_status_name(st), err.msg);
        }
    }
    imsi_tensor *all[] = {&qkv, &lengths, &scores, &x, &g, &ids, &word, &h16, &img, &filt, &fb, &kq, &knn_ids};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        imsi_tensor_free(all[i]);
    for (int op = 0; op < OPS; op++)
        imsi_tensor_free(&outs[op]);
}

static ims_status fake_capture_begin(ims_backend *be, ims_error *err)
{
    (void)be, (void)err;
    return IMS_OK;
}

/* A CPU backend whose table is a copy of the real one, edited by `edit`, then
 * handed to imsi_backend_adopt (backend creation's check). Returns the status;
 * the table must outlive the backend, so a backend that is adopted is freed
 * here too. */
static ims_status adopt_edited(void (*edit)(imsi_backend_ops *), ims_error *err, int check_optional)
{
    ims_backend *be = NULL, *out = NULL;
    imsi_backend_ops table;
    if (imsi_backend_cpu_create(&be, err) != IMS_OK)
        return IMS_ERR_NOMEM;
    table = *be->ops;
    edit(&table);
    be->ops = &table;
    ims_status st = imsi_backend_adopt(be, &out, err); /* on failure it freed be */
    TEST_CHECK((st == IMS_OK) == (out == be), "adopt: status %s but out %p", ims_status_name(st), (void *)out);
    if (out && check_optional) {
        ims_error e2 = {0};
        ims_backend_timer *t = NULL;
        ims_backend_peaks peaks;
        TEST_CHECK(ims_backend_timer_create(out, &t, &e2) == IMS_ERR_UNSUPPORTED && t == NULL,
                   "a backend without timers made one: %s", e2.msg);
        TEST_CHECK(ims_backend_measure_peaks(out, 1, &peaks, &e2) == IMS_ERR_UNSUPPORTED,
                   "a backend without measure_peaks measured: %s", e2.msg);
        TEST_CHECK(!imsi_backend_has_graphs(out), "graphs without graph slots");
    }
    ims_backend_free(out);
    return st;
}

static void edit_none(imsi_backend_ops *t) { (void)t; }
static void drop_attention(imsi_backend_ops *t) { t->attention = NULL; }
static void drop_fill_bytes(imsi_backend_ops *t) { t->fill_bytes = NULL; }
static void drop_pool_normalize(imsi_backend_ops *t) { t->pool_normalize = NULL; }
static void drop_timer_free(imsi_backend_ops *t) { t->timer_free = NULL; }
static void half_graphs(imsi_backend_ops *t) { t->capture_begin = fake_capture_begin; }
static void drop_optional(imsi_backend_ops *t)
{
    t->timer_create = NULL, t->timer_mark = NULL, t->timer_elapsed_ms = NULL, t->timer_free = NULL;
    t->measure_peaks = NULL, t->upload_async = NULL;
}

/* Creation refuses a table with an empty required slot (or half a set of
 * optional ones), naming the slot; optional slots may all be empty. */
static void test_required_slots(void)
{
    static const struct {
        void (*edit)(imsi_backend_ops *);
        const char *slot; /* NULL: adopted */
    } cases[] = {
        {edit_none, NULL},
        {drop_attention, "'attention'"},
        {drop_fill_bytes, "'fill_bytes'"},
        {drop_pool_normalize, "'pool_normalize'"},
        {drop_timer_free, "'timer_free'"},
        {half_graphs, "'capture_end'"},
        {drop_optional, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ims_error err = {0};
        ims_status st = adopt_edited(cases[i].edit, &err, cases[i].edit == drop_optional);
        if (!cases[i].slot)
            TEST_CHECK(st == IMS_OK, "case %zu: a complete table refused: %s", i, err.msg);
        else
            TEST_CHECK(st == IMS_ERR_UNSUPPORTED && strstr(err.msg, cases[i].slot) && strstr(err.msg, "cpu"),
                       "case %zu: missing %s: %s (%s)", i, cases[i].slot, ims_status_name(st), err.msg);
    }
}

int main(void)
{
    ims_error err = {0};
    ims_backend *be = NULL;
    TEST_OK(ims_backend_create(IMS_BACKEND_CPU, 0, &be, &err), err);
    if (!be)
        return test_finish();
    const ims_backend_info *info = ims_backend_get_info(be);
    printf("backend %s: %s, %d threads\n", info->name, info->device, info->threads);
    uint64_t rng = 42;
    test_tensor_shapes();
    test_required_slots();
    test_checks(be);
    test_scratch_failures(be, &rng);
    test_l2_f16_is_rounded_f32(be, &rng);
    ims_backend_free(be);
    return test_finish();
}
