/* imgsearch.h: the public C API of the imgsearch library.
 *
 * Conventions:
 * - Every fallible function returns an ims_status and, when it fails, writes a
 *   one-line reason into the caller's ims_error (which may be NULL). The library
 *   never prints and never exits.
 * - Strings read from files are (pointer, length) pairs (ims_str) that point into
 *   the mapped file; they are valid UTF-8 with no NUL byte, not NUL-terminated.
 * - Images are NHWC; matrices are row-major.
 */
#ifndef IMGSEARCH_H
#define IMGSEARCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IMS_VERSION_STRING "0.1.0"

/* ---- Status and errors ---------------------------------------------------- */

typedef enum ims_status {
    IMS_OK = 0,
    IMS_ERR_ARGUMENT,    /* the caller passed something invalid */
    IMS_ERR_IO,          /* open/read/write/mmap failed */
    IMS_ERR_FORMAT,      /* a file is malformed */
    IMS_ERR_CHECKSUM,    /* a checksum does not match */
    IMS_ERR_NOMEM,       /* host or device allocation failed */
    IMS_ERR_UNSUPPORTED, /* valid, but not supported by this build or version */
    IMS_ERR_NO_DEVICE,   /* no usable GPU */
    IMS_ERR_CUDA,        /* a CUDA runtime, cuBLAS or cuDNN call failed */
    IMS_ERR_NOT_FOUND,   /* a named tensor or metadata key is absent */
} ims_status;

#define IMS_ERROR_MSG_MAX 512

typedef struct ims_error {
    ims_status code;
    char msg[IMS_ERROR_MSG_MAX];
} ims_error;

/* A short constant name for a status ("format error", ...). */
const char *ims_status_name(ims_status status);

/* ---- Element types --------------------------------------------------------- */

/* The values are the weight file's dtype codes (docs/FORMAT.md). */
typedef enum ims_dtype {
    IMS_DTYPE_F32 = 0,
    IMS_DTYPE_F16 = 1,
    IMS_DTYPE_I32 = 2,
    IMS_DTYPE_U8 = 3,
    IMS_DTYPE_COUNT
} ims_dtype;

size_t ims_dtype_size(ims_dtype dtype);    /* 0 for an unknown dtype */
const char *ims_dtype_name(ims_dtype dtype); /* "f32", ...; "?" if unknown */

/* IEEE 754 binary16 <-> binary32, round to nearest even (as CUDA's __float2half_rn). */
uint16_t ims_f32_to_f16(float value);
float ims_f16_to_f32(uint16_t value);

typedef struct ims_str {
    const char *ptr;
    size_t len;
} ims_str;

/* ---- Weight files (docs/FORMAT.md) ---------------------------------------- */

#define IMS_MAX_DIMS 4

typedef struct ims_weights ims_weights;

typedef enum ims_meta_type {
    IMS_META_I64 = 1,
    IMS_META_F64 = 2,
    IMS_META_STRING = 3,
    IMS_META_I64_ARRAY = 4,
    IMS_META_F64_ARRAY = 5,
    IMS_META_STRING_ARRAY = 6,
} ims_meta_type;

const char *ims_meta_type_name(ims_meta_type type); /* "i64", "string[]", ... */

typedef struct ims_meta {
    ims_str key;
    ims_meta_type type;
    uint64_t count;        /* elements: 1 for scalars and strings */
    const void *values;    /* I64/F64 (arrays): count little-endian 8-byte values, maybe unaligned */
    const ims_str *strings; /* STRING: 1 entry; STRING_ARRAY: count entries */
} ims_meta;

typedef struct ims_weight_tensor {
    ims_str name;
    ims_dtype dtype;
    int ndim;                     /* 0..IMS_MAX_DIMS; 0 = scalar */
    int64_t shape[IMS_MAX_DIMS];  /* unused dims are 1 */
    uint64_t offset;              /* from the start of the data section */
    uint64_t nbytes;
    uint32_t crc32;
    const void *data;             /* inside the mapping, aligned to header.alignment */
} ims_weight_tensor;

typedef struct ims_weights_header {
    uint32_t version;
    uint32_t alignment;
    uint64_t file_size;
    uint64_t metadata_count, metadata_offset, metadata_size;
    uint64_t tensor_count, directory_offset, directory_size;
    uint64_t data_offset, data_size;
    uint32_t index_crc32;
} ims_weights_header;

enum {
    IMS_WEIGHTS_VERIFY_DATA = 1u << 0, /* also check every tensor's crc32 at open */
};

/* Maps and validates a weight file. Every count, offset, length and size product
 * is checked before use; a bad file gets IMS_ERR_FORMAT (or IMS_ERR_CHECKSUM)
 * with a message naming the field and its value. */
ims_status ims_weights_open(const char *path, unsigned flags, ims_weights **out, ims_error *err);

/* The same over a caller's buffer, which must outlive the handle and start at an
 * address that is a multiple of the file's alignment. */
ims_status ims_weights_open_memory(const void *buf, size_t size, unsigned flags,
                                   ims_weights **out, ims_error *err);

void ims_weights_close(ims_weights *w);

const ims_weights_header *ims_weights_get_header(const ims_weights *w);
ims_status ims_weights_verify_data(const ims_weights *w, ims_error *err);

size_t ims_weights_meta_count(const ims_weights *w);
const ims_meta *ims_weights_meta_at(const ims_weights *w, size_t index); /* file order */
const ims_meta *ims_weights_meta_find(const ims_weights *w, const char *key);

/* Typed getters: IMS_ERR_NOT_FOUND if absent, IMS_ERR_FORMAT if of another type. */
ims_status ims_weights_get_i64(const ims_weights *w, const char *key, int64_t *out, ims_error *err);
ims_status ims_weights_get_f64(const ims_weights *w, const char *key, double *out, ims_error *err);
ims_status ims_weights_get_string(const ims_weights *w, const char *key, ims_str *out, ims_error *err);
ims_status ims_weights_get_strings(const ims_weights *w, const char *key, const ims_str **out,
                                   size_t *count, ims_error *err);
/* Copies an I64_ARRAY (or F64_ARRAY) of exactly `count` elements. */
ims_status ims_weights_get_i64_array(const ims_weights *w, const char *key, int64_t *out,
                                     size_t count, ims_error *err);
ims_status ims_weights_get_f64_array(const ims_weights *w, const char *key, double *out,
                                     size_t count, ims_error *err);
int64_t ims_meta_i64_at(const ims_meta *m, size_t i);
double ims_meta_f64_at(const ims_meta *m, size_t i);

size_t ims_weights_tensor_count(const ims_weights *w);
const ims_weight_tensor *ims_weights_tensor_at(const ims_weights *w, size_t index); /* file order */
const ims_weight_tensor *ims_weights_tensor_find(const ims_weights *w, const char *name);

/* Finds a tensor and checks its dtype and shape: ndim dims from `shape`. */
ims_status ims_weights_tensor_expect(const ims_weights *w, const char *name, ims_dtype dtype,
                                     int ndim, const int64_t *shape,
                                     const ims_weight_tensor **out, ims_error *err);

/* ---- Compute backends ------------------------------------------------------- */

typedef struct ims_backend ims_backend;

typedef enum ims_backend_kind {
    IMS_BACKEND_CPU = 0,
    IMS_BACKEND_CUDA = 1,
} ims_backend_kind;

typedef struct ims_backend_info {
    ims_backend_kind kind;
    char name[64];         /* "cpu", "cuda:0" */
    char device[256];      /* CPU model or GPU name */
    int threads;           /* CPU: OpenMP threads */
    int compute_major, compute_minor, multiprocessors;
    uint64_t memory_total, memory_free; /* device bytes (GPU only) */
    int driver_version, runtime_version, cudnn_version, cublas_version; /* 0 if absent */
} ims_backend_info;

/* 1 if this build contains the CUDA backend. */
int ims_cuda_compiled(void);

/* Number of CUDA devices, or an error (IMS_ERR_NO_DEVICE with the driver's reason,
 * IMS_ERR_UNSUPPORTED in a CPU-only build). */
ims_status ims_cuda_device_count(int *count, ims_error *err);

/* device: GPU index for CUDA, ignored for CPU. */
ims_status ims_backend_create(ims_backend_kind kind, int device, ims_backend **out, ims_error *err);
void ims_backend_free(ims_backend *be);
const ims_backend_info *ims_backend_get_info(const ims_backend *be);

/* Versions of the libraries this build links, one per line, for bug reports. */
void ims_library_versions(char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* IMGSEARCH_H */
