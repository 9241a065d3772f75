/* checkpoint.h: a source checkpoint (PyTorch zip, legacy .pth, safetensors) as
 * the converter sees it: named tensors whose bytes stay inside the mapped file.
 *
 * Readers (torch_zip.c, torch_legacy.c, safetensors.c) parse a file and call
 * imsi_ckpt_add_tensor() for every tensor; imsi_ckpt_add_tensor validates that every
 * element the shape and strides reach lies inside the tensor's storage, so
 * later code (the architecture mappers) can read any tensor without further
 * bounds checks. Nothing here executes code from the file.
 */
#ifndef IMS_CHECKPOINT_H
#define IMS_CHECKPOINT_H

#include "imgsearch.h"

#include "core/file_map.h"

typedef enum ckpt_dtype {
    CKPT_F32 = 0,
    CKPT_F64,
    CKPT_F16,
    CKPT_BF16,
    CKPT_I64,
    CKPT_I32,
    CKPT_I16,
    CKPT_I8,
    CKPT_U8,
    CKPT_BOOL,
    CKPT_DTYPE_COUNT
} ckpt_dtype;

size_t imsi_ckpt_dtype_size(ckpt_dtype dtype);       /* 0 if unknown */
const char *imsi_ckpt_dtype_name(ckpt_dtype dtype);  /* "float32", ... as PyTorch names them */

typedef enum ckpt_format {
    CKPT_FORMAT_TORCH_ZIP = 0, /* torch.save since 1.6 */
    CKPT_FORMAT_TORCH_LEGACY,  /* torch.save before 1.6 */
    CKPT_FORMAT_SAFETENSORS,
} ckpt_format;

const char *imsi_ckpt_format_name(ckpt_format format);

#define CKPT_MAX_DIMS 8

typedef struct ckpt_tensor {
    char *name;                    /* owned, NUL-terminated */
    ckpt_dtype dtype;
    int ndim;                      /* 0..CKPT_MAX_DIMS; 0 = scalar */
    int64_t shape[CKPT_MAX_DIMS];
    int64_t stride[CKPT_MAX_DIMS]; /* in elements, >= 0 */
    int64_t storage_offset;        /* in elements */
    const unsigned char *storage;  /* the storage's first byte, inside the file */
    uint64_t storage_nbytes;
    int big_endian;                /* the storage's elements are big-endian */
} ckpt_tensor;

typedef struct ckpt {
    ckpt_format format;
    ckpt_tensor *tensors;          /* in file order */
    size_t count, cap;
    size_t *by_name;               /* open-addressing table of tensor index + 1 (0: empty): lookups in O(1) */
    size_t by_name_cap;            /* a power of two, at least twice count */
    const unsigned char *data;     /* the whole file */
    size_t size;
    imsi_file_map map;             /* the file, when imsi_ckpt_open mapped it */
} ckpt;

/* Maps the file and reads it with the reader its first bytes call for:
 * "PK\3\4" = zip, the legacy pickle magic, or a safetensors header. */
ims_status imsi_ckpt_open(const char *path, ckpt **out, ims_error *err);

/* When every tensor name starts with prefix (DataParallel's "module."), drops it. */
ims_status imsi_ckpt_strip_prefix(ckpt *c, const char *prefix, ims_error *err);
/* The same over a caller's buffer (which must outlive the ckpt). */
ims_status imsi_ckpt_open_memory(const void *data, size_t size, ckpt **out, ims_error *err);
void imsi_ckpt_free(ckpt *c);

/* For readers: takes a copy of t (and of t->name), after checking the dtype,
 * ndim, shape (dims >= 0), strides, that every reachable element lies inside
 * the storage (overflow-checked), and that the name is new. */
ims_status imsi_ckpt_add_tensor(ckpt *c, const ckpt_tensor *t, ims_error *err);

const ckpt_tensor *imsi_ckpt_find(const ckpt *c, const char *name);
int64_t imsi_ckpt_tensor_numel(const ckpt_tensor *t);

/* Gathers the tensor into dst (numel elements, row-major, contiguous),
 * converting each element to double / float: exact for every dtype but f64
 * (to float: round to nearest) and i64 beyond 2^53. */
void imsi_ckpt_tensor_read_f64(const ckpt_tensor *t, double *dst);
void imsi_ckpt_tensor_read_f32(const ckpt_tensor *t, float *dst);

/* A legacy torch.save file starts with this pickle of its magic number. */
#define CKPT_LEGACY_MAGIC_LEN 15
extern const unsigned char imsi_ckpt_legacy_magic[CKPT_LEGACY_MAGIC_LEN];

/* The readers, one per format (c->data and c->size set; they set c->format).
 * Each validates everything it reads and names the offending field. */
ims_status imsi_ckpt_read_torch_zip(ckpt *c, ims_error *err);    /* torch_zip.c */
ims_status imsi_ckpt_read_torch_legacy(ckpt *c, ims_error *err); /* torch_legacy.c */
ims_status imsi_ckpt_read_safetensors(ckpt *c, ims_error *err);  /* safetensors.c */

#endif /* IMS_CHECKPOINT_H */
