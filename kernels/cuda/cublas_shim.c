/* cublas_shim.c: cuBLAS loaded when the CUDA backend first calls it, not when
 * the program starts. Linked normally, libcublas (through libcublasLt's static
 * initialisers) cost every process about 70 ms at start-up, measured on the
 * development machine: `imgsearch help` and every CPU-only command included.
 *
 * This file defines the cuBLAS functions imgsearch calls, with the prototypes
 * of <cublas_v2.h> (the compiler checks them against the header), each
 * forwarding to the same function of libcublas.so.<major>, opened with
 * dlopen on first use (pthread_once). The definitions are hidden (the
 * library is built with -fvisibility=hidden; the executable exports nothing),
 * so they never stand in for the cuBLAS of another library in the process
 * (PyTorch's, say). When libcublas cannot be loaded, every call returns
 * CUBLAS_STATUS_NOT_INITIALIZED and cublasGetStatusString says why (dlerror),
 * so IMS_CUBLAS_CHECK's message names the missing library.
 *
 * To call another cuBLAS function: add it to CUBLAS_FUNCTIONS and define its
 * forwarder below.
 */
#include <cublas_v2.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x) /* after expansion: cublasCreate -> "cublasCreate_v2" */

/* X(name): every function forwarded (names as the header spells them; some
 * are macros for their _v2 symbols, which dlsym must look up). */
#define CUBLAS_FUNCTIONS(X)                                                                                            \
    X(cublasCreate)                                                                                                    \
    X(cublasDestroy)                                                                                                   \
    X(cublasGetVersion)                                                                                                \
    X(cublasGetProperty)                                                                                               \
    X(cublasSetWorkspace)                                                                                              \
    X(cublasSetStream)                                                                                                 \
    X(cublasSetMathMode)                                                                                               \
    X(cublasSgemm)                                                                                                     \
    X(cublasGemmEx)                                                                                                    \
    X(cublasGemmStridedBatchedEx)                                                                                      \
    X(cublasGetStatusName)                                                                                             \
    X(cublasGetStatusString)

/* The loaded library: one per process, as a dynamic library is. */
static struct {
    pthread_once_t once;
    void *lib;
    char error[512]; /* why it could not be loaded; empty when loaded */
#define POINTER(name) __typeof__(&name) p_##name;
    CUBLAS_FUNCTIONS(POINTER)
#undef POINTER
} cublas = {.once = PTHREAD_ONCE_INIT};

static void cublas_load(void)
{
    /* The soname first (the loader's path, RUNPATH, ldconfig), then the
     * toolkit this build was compiled against. */
    char soname[64], path[4096];
    snprintf(soname, sizeof soname, "libcublas.so.%d", CUBLAS_VER_MAJOR);
    void *lib = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
#ifdef IMS_CUDA_LIBRARY_DIR
    if (!lib) {
        snprintf(path, sizeof path, "%s/%s", IMS_CUDA_LIBRARY_DIR, soname);
        lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    }
#else
    (void)path;
#endif
    if (!lib) {
        const char *why = dlerror();
        snprintf(cublas.error, sizeof cublas.error, "cuBLAS could not be loaded: %s", why ? why : soname);
        return;
    }
#define LOOKUP(name)                                                                                                   \
    if (!(cublas.p_##name = (__typeof__(&name))dlsym(lib, STRINGIFY(name)))) {                                        \
        snprintf(cublas.error, sizeof cublas.error, "%s has no %s", soname, STRINGIFY(name));                         \
        dlclose(lib);                                                                                                  \
        return;                                                                                                        \
    }
    CUBLAS_FUNCTIONS(LOOKUP)
#undef LOOKUP
    cublas.lib = lib;
}

/* 1 when the library is loaded (loading it on the first call). */
static int cublas_ready(void)
{
    pthread_once(&cublas.once, cublas_load);
    return cublas.lib != NULL;
}

#define FORWARD(name, ...) return cublas_ready() ? cublas.p_##name(__VA_ARGS__) : CUBLAS_STATUS_NOT_INITIALIZED

cublasStatus_t cublasCreate(cublasHandle_t *handle) { FORWARD(cublasCreate, handle); }
cublasStatus_t cublasDestroy(cublasHandle_t handle) { FORWARD(cublasDestroy, handle); }
cublasStatus_t cublasGetVersion(cublasHandle_t handle, int *version) { FORWARD(cublasGetVersion, handle, version); }
cublasStatus_t cublasGetProperty(libraryPropertyType type, int *value) { FORWARD(cublasGetProperty, type, value); }

cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void *workspace, size_t bytes)
{
    FORWARD(cublasSetWorkspace, handle, workspace, bytes);
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) { FORWARD(cublasSetStream, handle, stream); }
cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) { FORWARD(cublasSetMathMode, handle, mode); }

cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                           int k, const float *alpha, const float *A, int lda, const float *B, int ldb,
                           const float *beta, float *C, int ldc)
{
    FORWARD(cublasSgemm, handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                            int k, const void *alpha, const void *A, cudaDataType Atype, int lda, const void *B,
                            cudaDataType Btype, int ldb, const void *beta, void *C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t computeType, cublasGemmAlgo_t algo)
{
    FORWARD(cublasGemmEx, handle, transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta, C, Ctype, ldc,
            computeType, algo);
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                          int m, int n, int k, const void *alpha, const void *A, cudaDataType Atype,
                                          int lda, long long int strideA, const void *B, cudaDataType Btype, int ldb,
                                          long long int strideB, const void *beta, void *C, cudaDataType Ctype,
                                          int ldc, long long int strideC, int batchCount,
                                          cublasComputeType_t computeType, cublasGemmAlgo_t algo)
{
    FORWARD(cublasGemmStridedBatchedEx, handle, transa, transb, m, n, k, alpha, A, Atype, lda, strideA, B, Btype, ldb,
            strideB, beta, C, Ctype, ldc, strideC, batchCount, computeType, algo);
}

const char *cublasGetStatusName(cublasStatus_t status)
{
    return cublas_ready() ? cublas.p_cublasGetStatusName(status) : "CUBLAS_STATUS_NOT_INITIALIZED";
}

const char *cublasGetStatusString(cublasStatus_t status)
{
    return cublas_ready() ? cublas.p_cublasGetStatusString(status) : cublas.error;
}
