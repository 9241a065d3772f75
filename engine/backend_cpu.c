/* backend_cpu.c: the CPU backend: host memory, synchronous ops from kernels/cpu. */
#include "backend.h"

#include "../kernels/cpu/ops_cpu.h"
#include "error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static void cpu_destroy(ims_backend *be) { free(be); }

static ims_status cpu_alloc(ims_backend *be, size_t nbytes, void **out, ims_error *err)
{
    (void)be;
    /* 64-byte alignment, as the weight file guarantees for mapped tensors. */
    size_t rounded = (nbytes + 63) & ~(size_t)63;
    if (rounded < nbytes || !(*out = aligned_alloc(64, rounded)))
        return ims_fail(err, IMS_ERR_NOMEM, "cannot allocate %zu bytes of host memory", nbytes);
    return IMS_OK;
}

static void cpu_dealloc(ims_backend *be, void *ptr)
{
    (void)be;
    free(ptr);
}

static ims_status cpu_copy(ims_backend *be, void *dst, const void *src, size_t nbytes, ims_error *err)
{
    (void)be, (void)err;
    memmove(dst, src, nbytes);
    return IMS_OK;
}

static ims_status cpu_fill_bytes(ims_backend *be, void *dst, int byte, size_t nbytes, ims_error *err)
{
    (void)be, (void)err;
    memset(dst, byte, nbytes);
    return IMS_OK;
}

static ims_status cpu_synchronize(ims_backend *be, ims_error *err)
{
    (void)be, (void)err;
    return IMS_OK;
}

static ims_status cpu_convert(ims_backend *be, const ims_tensor *src, ims_tensor *dst, ims_error *err)
{
    (void)be, (void)err;
    size_t n = (size_t)ims_tensor_numel(src);
    if (src->dtype == dst->dtype)
        memmove(dst->data, src->data, ims_tensor_nbytes(src));
    else if (src->dtype == IMS_DTYPE_F32)
        cpu_convert_f32_to_f16(src->data, dst->data, n);
    else
        cpu_convert_f16_to_f32(src->data, dst->data, n);
    return IMS_OK;
}

static ims_status cpu_l2_normalize_op(ims_backend *be, const ims_tensor *x, ims_tensor *y,
                                      ims_tensor *norms, ims_error *err)
{
    (void)be, (void)err;
    int f16 = y->dtype == IMS_DTYPE_F16;
    cpu_l2_normalize_rows(x->data, f16 ? NULL : y->data, f16 ? y->data : NULL, norms->data,
                          (int)x->shape[0], (int)x->shape[1]);
    return IMS_OK;
}

static ims_status cpu_linear_op(ims_backend *be, const ims_tensor *x, const ims_tensor *w,
                                const ims_tensor *bias, ims_tensor *y, ims_error *err)
{
    (void)be, (void)err;
    cpu_linear(x->data, w->data, bias ? bias->data : NULL, y->data, (int)x->shape[0],
               (int)w->shape[0], (int)x->shape[1]);
    return IMS_OK;
}

/* --- top-k search --- */
static ims_status cpu_knn_select_op(ims_backend *be, const ims_tensor *table, const ims_tensor *queries, int k,
                                    int path, ims_tensor *ids, ims_tensor *scores, ims_error *err)
{
    (void)be, (void)path; /* one CPU path */
    int f16 = table->dtype == IMS_DTYPE_F16;
    if (cpu_knn_select(f16 ? NULL : table->data, f16 ? table->data : NULL, table->shape[0], (int)table->shape[1],
                       queries->data, (int)queries->shape[0], k, ids->data, scores->data) != 0)
        return ims_fail(err, IMS_ERR_NOMEM, "knn: cannot allocate scratch memory for %lld queries, k = %d",
                        (long long)queries->shape[0], k);
    return IMS_OK;
}

static const ims_backend_ops cpu_ops = {
    .destroy = cpu_destroy,
    .alloc = cpu_alloc,
    .dealloc = cpu_dealloc,
    .upload = cpu_copy,
    .download = cpu_copy,
    .fill_bytes = cpu_fill_bytes,
    .synchronize = cpu_synchronize,
    .host_alloc = cpu_alloc, /* host memory is this backend's memory */
    .host_free = cpu_dealloc,
    .convert = cpu_convert,
    .l2_normalize_rows = cpu_l2_normalize_op,
    .linear = cpu_linear_op,
    /* --- top-k search --- */
    .knn_select = cpu_knn_select_op,
    .upload_async = cpu_copy,
};

/* The "model name" line of /proc/cpuinfo, or "unknown CPU". */
static void cpu_model_name(char *buf, size_t size)
{
    snprintf(buf, size, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && colon) {
            colon += 1 + (colon[1] == ' ');
            colon[strcspn(colon, "\n")] = '\0';
            snprintf(buf, size, "%s", colon);
            break;
        }
    }
    fclose(f);
}

ims_status ims_backend_cpu_create(ims_backend **out, ims_error *err)
{
    ims_backend *be = calloc(1, sizeof *be);
    if (!be)
        return ims_fail(err, IMS_ERR_NOMEM, "cannot allocate the CPU backend");
    be->ops = &cpu_ops;
    be->memory = IMS_MEMORY_HOST;
    be->info.kind = IMS_BACKEND_CPU;
    snprintf(be->info.name, sizeof be->info.name, "cpu");
    cpu_model_name(be->info.device, sizeof be->info.device);
#ifdef _OPENMP
    be->info.threads = omp_get_max_threads();
#else
    be->info.threads = 1;
#endif
    *out = be;
    return IMS_OK;
}
