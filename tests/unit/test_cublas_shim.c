/* test_cublas_shim.c: cuBLAS is opened on first use (kernels/cuda/cublas_shim.c),
 * not linked: the program does not load it at start, the first call loads it
 * and gets the real library's answer, and a call that needs a GPU fails with a
 * status and a reason instead of crashing where there is none. CUDA builds only.
 */
#include "test.h"

#include <cublas_v2.h>
#include <stdio.h>
#include <string.h>

/* 1 if a library whose name contains `name` is mapped into this process. */
static int mapped(const char *name)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[4096];
    int found = 0;
    while (f && !found && fgets(line, sizeof line, f))
        found = strstr(line, name) != NULL;
    if (f)
        fclose(f);
    return found;
}

int main(void)
{
    TEST_CHECK(!mapped("libcublas"), "libcublas is mapped before any cuBLAS call: it is linked, not opened on use");
    int major = -1;
    cublasStatus_t s = cublasGetProperty(MAJOR_VERSION, &major);
    TEST_CHECK(s == CUBLAS_STATUS_SUCCESS, "cublasGetProperty: %d (%s)", (int)s, cublasGetStatusString(s));
    TEST_CHECK(major == CUBLAS_VER_MAJOR, "cuBLAS major version %d, the header says %d", major, CUBLAS_VER_MAJOR);
    TEST_CHECK(mapped("libcublas"), "libcublas is not mapped after a call");
    printf("cuBLAS %d loaded on first use\n", major);
    cublasHandle_t h = NULL;
    s = cublasCreate(&h);
    const char *name = cublasGetStatusName(s), *why = cublasGetStatusString(s);
    TEST_CHECK(name && why && *name && *why, "a status name and reason for %d", (int)s);
    printf("cublasCreate: %s (%s)\n", name, why);
    if (s == CUBLAS_STATUS_SUCCESS)
        TEST_CHECK(cublasDestroy(h) == CUBLAS_STATUS_SUCCESS, "cublasDestroy");
    return test_finish();
}
