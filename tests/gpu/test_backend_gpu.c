/* test_backend_gpu.c: what only the CUDA backend has (ctest label gpu): device
 * info, creation and destruction beside another backend, copies and fills of
 * device memory, and a failed huge allocation that leaves the backend usable
 * (a stale cudaMalloc error must not surface at the next launch check). Every
 * op's results against the CPU are in tests/unit/test_backend_ops.c, which
 * runs on the GPU wherever one exists. One line per sub-test goes to stdout so
 * a GPU session's log shows what ran.
 *
 * Usage: test_backend_gpu [quick]; quick (for compute-sanitizer) copies less
 * and skips the failed huge allocation, an API error on purpose.
 * Exits 77 (skipped) in a CPU-only build and where no CUDA device is usable.
 */
#include "test.h"

#include "backend/backend.h"

#include <string.h>

#ifdef IMS_WITH_CUDA

#define SEED 0x1a2b3c4d5e6f7788ull

static ims_backend *cpu_be, *gpu_be;

/* ---- Memory, info, errors ---------------------------------------------------------- */

static void test_round_trip(size_t n, uint64_t *rng)
{
    unsigned char *src = test_xmalloc(n), *back = test_xmalloc(n); // (n), (n)
    for (size_t i = 0; i < n; i++)
        src[i] = (unsigned char)test_rand_u64(rng);
    memset(back, 0, n);
    int64_t shape[1] = {(int64_t)n};
    imsi_tensor t;
    ims_error err = {0};
    int same = 0, filled = 0;
    if (test_check_ok(imsi_tensor_alloc(gpu_be, IMS_DTYPE_U8, 1, shape, &t, &err), &err, "round trip alloc")) {
        if (test_check_ok(imsi_backend_upload(gpu_be, &t, src, n, &err), &err, "round trip upload") &&
            test_check_ok(imsi_backend_download(gpu_be, back, n, &t, &err), &err, "round trip download"))
            same = memcmp(src, back, n) == 0;
        if (test_check_ok(imsi_backend_fill_bytes(gpu_be, &t, 0x5a, &err), &err, "fill_bytes") &&
            test_check_ok(imsi_backend_download(gpu_be, back, n, &t, &err), &err, "fill_bytes download")) {
            filled = 1;
            for (size_t i = 0; i < n; i++)
                filled &= back[i] == 0x5a;
        }
        imsi_tensor_free(&t);
    }
    TEST_CHECK(same, "upload/download of %zu random bytes does not round-trip", n);
    TEST_CHECK(filled, "fill_bytes 0x5a over %zu bytes did not fill every byte", n);
    printf("upload/download %zu bytes: %s; fill_bytes: %s\n", n, same ? "identical" : "DIFFER",
           filled ? "ok" : "WRONG");
    free(src);
    free(back);
}

/* After a failed allocation, an op and a copy still work: f32 -> f16 of n
 * random values, bit for bit as the host's conversion. */
static void test_still_works(size_t n, uint64_t *rng)
{
    float *x = test_xmalloc(n * sizeof *x);
    uint16_t *got = test_xmalloc(n * sizeof *got);
    for (size_t i = 0; i < n; i++)
        x[i] = test_rand_uniform(rng, -70000.0f, 70000.0f);
    int64_t shape[1] = {(int64_t)n};
    imsi_tensor src = {0}, dst = {0};
    ims_error err = {0};
    size_t bad = n;
    if (test_check_ok(imsi_tensor_alloc(gpu_be, IMS_DTYPE_F32, 1, shape, &src, &err), &err, "alloc") &&
        test_check_ok(imsi_tensor_alloc(gpu_be, IMS_DTYPE_F16, 1, shape, &dst, &err), &err, "alloc") &&
        test_check_ok(imsi_backend_upload(gpu_be, &src, x, n * sizeof *x, &err), &err, "upload") &&
        test_check_ok(imsi_backend_fill_bytes(gpu_be, &dst, 0xff, &err), &err, "poison") &&
        test_check_ok(imsi_op_convert(gpu_be, &src, &dst, &err), &err, "convert") &&
        test_check_ok(imsi_backend_download(gpu_be, got, n * sizeof *got, &dst, &err), &err, "download")) {
        bad = 0;
        for (size_t i = 0; i < n; i++)
            bad += got[i] != ims_f32_to_f16(x[i]);
    }
    TEST_CHECK(bad == 0, "after a failed allocation: %zu of %zu conversions wrong", bad, n);
    printf("after the failed allocation: convert of %zu values: %zu wrong\n", n, bad);
    imsi_tensor_free(&src), imsi_tensor_free(&dst);
    free(x), free(got);
}

static void test_huge_alloc(uint64_t *rng)
{
    int64_t shape[1] = {(int64_t)1 << 50};
    imsi_tensor t;
    ims_error err = {0};
    ims_status st = imsi_tensor_alloc(gpu_be, IMS_DTYPE_U8, 1, shape, &t, &err);
    TEST_CHECK(st == IMS_ERR_NOMEM, "2^50-byte allocation: %s (%s), expected out of memory", ims_status_name(st),
               err.msg);
    TEST_CHECK(err.msg[0] != '\0', "2^50-byte allocation failed without a message");
    TEST_CHECK(t.data == NULL, "a failed allocation left data set");
    if (st == IMS_OK)
        imsi_tensor_free(&t);
    printf("allocating 2^50 bytes: %s: %s\n", ims_status_name(st), err.msg);
    test_still_works(1000, rng);
}

static void test_info(void)
{
    const ims_backend_info *info = ims_backend_get_info(gpu_be);
    TEST_CHECK(info->kind == IMS_BACKEND_CUDA, "info kind %d", (int)info->kind);
    TEST_CHECK(strcmp(info->name, "cuda:0") == 0, "info name '%s', expected cuda:0", info->name);
    TEST_CHECK(info->device[0] != '\0', "info has no device name");
    TEST_CHECK(info->compute_major >= 1 && info->multiprocessors >= 1, "compute %d.%d, %d SMs", info->compute_major,
               info->compute_minor, info->multiprocessors);
    TEST_CHECK(info->memory_total > 0 && info->memory_free <= info->memory_total, "memory %llu free of %llu",
               (unsigned long long)info->memory_free, (unsigned long long)info->memory_total);
    TEST_CHECK(info->runtime_version > 0 && info->driver_version > 0 && info->cublas_version > 0 &&
                   info->cudnn_version > 0,
               "versions runtime %d driver %d cublas %d cudnn %d", info->runtime_version, info->driver_version,
               info->cublas_version, info->cudnn_version);
    TEST_CHECK(imsi_backend_memory(gpu_be) == IMS_MEMORY_DEVICE, "CUDA backend memory is not device memory");
    printf("info: %s = %s, sm_%d%d, %d SMs, %.0f of %.0f MiB free, driver %d runtime %d cublas %d cudnn %d\n",
           info->name, info->device, info->compute_major, info->compute_minor, info->multiprocessors,
           info->memory_free / 1048576.0, info->memory_total / 1048576.0, info->driver_version,
           info->runtime_version, info->cublas_version, info->cudnn_version);
}

/* A second backend on the same GPU can be created and destroyed; a device index
 * past the last one is an argument error. */
static void test_create_destroy(int count)
{
    ims_backend *be = NULL;
    ims_error err = {0};
    ims_status st = ims_backend_create(IMS_BACKEND_CUDA, count, &be, &err);
    TEST_CHECK(st == IMS_ERR_ARGUMENT && be == NULL, "device %d of %d: %s (%s)", count, count, ims_status_name(st),
               err.msg);
    if (test_check_ok(ims_backend_create(IMS_BACKEND_CUDA, 0, &be, &err), &err, "second CUDA backend"))
        ims_backend_free(be);
    printf("create/destroy: bad index -> %s; second backend ok\n", ims_status_name(st));
}

int main(int argc, char **argv)
{
    int quick = argc > 1 && !strcmp(argv[1], "quick");
    char versions[2048];
    ims_library_versions(versions, sizeof versions);
    printf("%s", versions);
    int count = test_gpu_backends(&cpu_be, &gpu_be);
    ims_error err = {0};
    uint64_t rng = SEED;
    test_info();
    test_create_destroy(count);
    test_round_trip(quick ? 10007 : 1000003, &rng);
    if (!quick)
        test_huge_alloc(&rng);
    else
        test_still_works(1000, &rng);
    test_check_ok(imsi_backend_synchronize(gpu_be, &err), &err, "final synchronize");
    ims_backend_free(gpu_be);
    ims_backend_free(cpu_be);
    return test_finish();
}

#else /* CPU-only build */

int main(void)
{
    test_skip("built without CUDA");
    return 0;
}

#endif
