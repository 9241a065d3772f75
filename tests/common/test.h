/* test.h: the tiny harness every C test uses.
 *
 * TEST_CHECK records a failure (with file:line and a message) and goes on, so
 * one run reports every broken rule. test_finish() prints the closing line
 * "N checks, M failed" and gives main's exit code. A test that cannot run here
 * (no GPU) calls test_skip(), which exits with 77, ctest's SKIP_RETURN_CODE.
 */
#ifndef IMS_TEST_H
#define IMS_TEST_H

#include "imgsearch.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_checks_run __attribute__((unused)), test_checks_failed __attribute__((unused));

#define TEST_CHECK(cond, ...)                                                                                \
    do {                                                                                                     \
        test_checks_run++;                                                                                   \
        if (!(cond)) {                                                                                       \
            test_checks_failed++;                                                                            \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                  \
            fprintf(stderr, __VA_ARGS__);                                                                    \
            fputc('\n', stderr);                                                                             \
        }                                                                                                    \
    } while (0)

/* Checks that an ims_status expression is IMS_OK, printing err's message if not. */
#define TEST_OK(expr, err)                                                                                   \
    do {                                                                                                     \
        ims_status test_st_ = (expr);                                                                        \
        TEST_CHECK(test_st_ == IMS_OK, "%s -> %s: %s", #expr, ims_status_name(test_st_), (err).msg);         \
    } while (0)

static inline void test_skip(const char *reason)
{
    printf("SKIPPED: %s\n", reason);
    fflush(stdout);
    exit(77);
}

static inline int test_finish(void)
{
    printf("%d checks, %d failed\n", test_checks_run, test_checks_failed);
    return test_checks_failed ? 1 : 0;
}

/* splitmix64: small, seedable, and easy to reproduce in Python. */
static inline uint64_t test_rand_u64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline float test_rand_uniform(uint64_t *state, float lo, float hi)
{
    double u = (double)(test_rand_u64(state) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(lo + (hi - lo) * u);
}

/* Bit views of floats, for exact comparisons. */
static inline uint32_t test_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float test_f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline int test_half_is_nan(uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0; }

/* The fixture folder, which CMake passes as argv[1] (tests/CMakeLists.txt). */
static inline const char *test_fixture_dir(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FIXTURE_DIR\n", argc > 0 ? argv[0] : "test");
        exit(2);
    }
    return argv[1];
}

/* A growing byte buffer, for tests that build files byte by byte. */
typedef struct test_buf {
    unsigned char *p;
    size_t len, cap;
} test_buf;

static inline void test_buf_put(test_buf *b, const void *src, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
    if (n)
        memcpy(b->p + b->len, src, n);
    b->len += n;
}

/* The whole file, NUL-terminated (the NUL not counted in *len); NULL on failure. */
static inline char *test_read_file(const char *path, size_t *len)
{
    if (len)
        *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    if (p) {
        p[n] = '\0';
        if (len)
            *len = (size_t)n;
    }
    return p;
}

/* ---- GPU tests ------------------------------------------------------------ */

/* malloc that ends the test on failure (a test has nothing better to do). */
static inline void *test_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "test: out of host memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

/* TEST_CHECK of a status, naming `what`; returns whether it was IMS_OK. */
static inline int test_check_ok(ims_status st, const ims_error *err, const char *what)
{
    TEST_CHECK(st == IMS_OK, "%s: %s: %s", what, ims_status_name(st), err->msg);
    return st == IMS_OK;
}

/* The CPU backend and CUDA device 0, or SKIPPED (exit 77) with the driver's
 * reason where no device exists; exits 1 if a backend cannot be created.
 * Returns the number of CUDA devices. */
static inline int test_gpu_backends(ims_backend **cpu, ims_backend **gpu)
{
    ims_error err = {0};
    int count = 0;
    if (ims_cuda_device_count(&count, &err) != IMS_OK || count <= 0)
        test_skip(err.msg[0] ? err.msg : "no CUDA device");
    if (!test_check_ok(ims_backend_create(IMS_BACKEND_CPU, 0, cpu, &err), &err, "cpu backend") ||
        !test_check_ok(ims_backend_create(IMS_BACKEND_CUDA, 0, gpu, &err), &err, "cuda backend")) {
        ims_backend_free(*cpu);
        exit(test_finish());
    }
    return count;
}

#endif /* IMS_TEST_H */
