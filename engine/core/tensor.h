/* tensor.h: a typed view of host or device memory, up to 4 dims, row-major.
 *
 * Images are NHWC, matrices (rows, cols), sequences (B, T, C). A tensor either
 * wraps memory it does not own (backend == NULL) or owns memory allocated by a
 * backend with imsi_tensor_alloc() and released with imsi_tensor_free() (backend.h).
 */
#ifndef IMS_TENSOR_H
#define IMS_TENSOR_H

#include "imgsearch.h"

typedef enum imsi_memory {
    IMS_MEMORY_HOST = 0,   /* ordinary (or pinned) host memory */
    IMS_MEMORY_DEVICE = 1, /* GPU global memory */
} imsi_memory;

typedef struct imsi_tensor {
    void *data;
    ims_dtype dtype;
    int ndim;
    int64_t shape[IMS_MAX_DIMS]; /* unused dims are 1 */
    imsi_memory memory;
    ims_backend *backend; /* owner of data, or NULL when wrapping */
} imsi_tensor;

/* Wraps host memory: shape has ndim entries. Returns a tensor with data == NULL
 * if the shape is invalid (ndim out of range or a dim < 1). */
imsi_tensor imsi_tensor_host(void *data, ims_dtype dtype, int ndim, const int64_t *shape);

/* t's memory seen with another shape (ndim dims d0..d3; the rest ignored),
 * e.g. a buffer sized for the largest batch seen at this batch's size. The
 * view owns nothing; its elements must fit in t's (asserted). */
imsi_tensor imsi_tensor_view(const imsi_tensor *t, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3);

/* Elements and bytes; 0 if the product overflows (checked at creation, so only
 * a hand-built tensor can trigger it). */
int64_t imsi_tensor_numel(const imsi_tensor *t);
size_t imsi_tensor_nbytes(const imsi_tensor *t);

/* Describes memory at data (which may be NULL) with checked dtype and shape;
 * on failure *t is zeroed. Backends use it to allocate tensors (backend.h). */
ims_status imsi_tensor_init(void *data, ims_dtype dtype, int ndim, const int64_t *shape, imsi_memory memory,
                            imsi_tensor *t, ims_error *err);

/* "(8, 299, 299, 3) f32" into buf. */
const char *imsi_tensor_describe(const imsi_tensor *t, char *buf, size_t size);

/* Checks dtype and shape; a dim of -1 in `shape` matches anything. The message
 * names `what` and both shapes. */
ims_status imsi_tensor_expect(const imsi_tensor *t, const char *what, ims_dtype dtype, int ndim,
                              const int64_t *shape, ims_error *err);

/* numel of a shape with overflow checks; returns 0 and fails for dims < 1. */
ims_status imsi_shape_numel(int ndim, const int64_t *shape, int64_t *numel, ims_error *err);

#endif /* IMS_TENSOR_H */
