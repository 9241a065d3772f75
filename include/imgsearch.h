/* imgsearch.h: the public C API of the imgsearch library.
 *
 * Conventions:
 * - Every fallible function returns an ims_status and, when it fails, writes a
 *   one-line reason into the caller's ims_error (which may be NULL). The library
 *   never prints and never exits.
 * - Strings read from files are (pointer, length) pairs (ims_str) that point into
 *   the mapped file; they are valid UTF-8 with no NUL byte, not NUL-terminated.
 * - Images are NHWC; matrices are row-major.
 * - Rows, batches and their counts are int64_t; byte sizes are size_t.
 * - Every buffer the library returns is freed with ims_free; every handle
 *   with its own _free or _close function (NULL is fine for each).
 * - Sections follow the library's layers (docs/DESIGN.md): core, backend, io,
 *   image, models, index, converter; a section uses only those above it.
 *   Section comments name the file that implements them.
 */
#ifndef IMGSEARCH_H
#define IMGSEARCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IMS_VERSION_STRING "0.1.0"

/* Marks the public API: the library is built with hidden symbols
 * (-fvisibility=hidden), so only these functions leave libimgsearch.so. */
#if defined(__GNUC__)
#define IMS_API __attribute__((visibility("default")))
#else
#define IMS_API
#endif

/* ==== core: status and errors ============================================================= */

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
    IMS_ERR_BUSY,        /* another process holds it (an index's writer lock) */
} ims_status;

#define IMS_ERROR_MSG_MAX 512

typedef struct ims_error {
    ims_status code;
    char msg[IMS_ERROR_MSG_MAX];
} ims_error;

/* A short constant name for a status ("format error", ...). */
IMS_API const char *ims_status_name(ims_status status);

/* Records code and a printf-formatted one-line message in err (if not NULL)
 * and returns code: how callers (the CLI, bindings) report their own errors
 * in the library's form. */
IMS_API ims_status ims_error_set(ims_error *err, ims_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* ==== core: memory and time =============================================================== */

/* Seconds on a monotonic clock (CLOCK_MONOTONIC): differences time work and
 * drive progress displays; the origin is arbitrary. */
IMS_API double ims_clock_seconds(void);

/* Frees a buffer the library returned to the caller (ims_index_load_table,
 * ims_index_load_class_embeddings): the library and its caller may not share
 * an allocator (bindings, Windows-style runtimes). NULL is fine. Handles have
 * their own free or close functions. */
IMS_API void ims_free(void *ptr);

/* ==== core: reading JSON (core/json_api.c) ================================================ */

/* The library's strict JSON parser (RFC 8259: UTF-8, no duplicate keys, no
 * NaN; limits on size and depth), for callers that read JSON the library or
 * the tool wrote (a saved `imgsearch bench` run). A document owns its values;
 * they live until ims_json_free. Lookups on a value of another kind, a missing
 * key or an index out of range return NULL (or 0), never crash. */
typedef struct ims_json ims_json;
typedef struct ims_json_value ims_json_value;
typedef enum ims_json_kind {
    IMS_JSON_NULL = 0,
    IMS_JSON_BOOL,
    IMS_JSON_NUMBER,
    IMS_JSON_STRING,
    IMS_JSON_ARRAY,
    IMS_JSON_OBJECT,
} ims_json_kind;
/* err names the byte offset of a syntax error. */
IMS_API ims_status ims_json_parse(const char *text, size_t len, ims_json **out, ims_error *err);
IMS_API void ims_json_free(ims_json *doc); /* NULL is fine */
IMS_API const ims_json_value *ims_json_root(const ims_json *doc);
IMS_API ims_json_kind ims_json_kind_of(const ims_json_value *v); /* IMS_JSON_NULL for NULL */
IMS_API size_t ims_json_count(const ims_json_value *v);          /* items or members; 0 for others */
IMS_API const ims_json_value *ims_json_item(const ims_json_value *array, size_t i);
IMS_API const ims_json_value *ims_json_member(const ims_json_value *object, const char *key);
IMS_API const char *ims_json_string(const ims_json_value *v); /* NUL-terminated UTF-8; NULL if not a string */
IMS_API int ims_json_number(const ims_json_value *v, double *out); /* 1 and *out if a number, else 0 */

/* ==== core: element types and precisions ================================================== */

/* One element-type enum for tensors, weight files and .npy files. The values
 * 0..3 are the weight file's dtype codes (docs/FORMAT.md). */
typedef enum ims_dtype {
    IMS_DTYPE_F32 = 0,
    IMS_DTYPE_F16 = 1,
    IMS_DTYPE_I32 = 2,
    IMS_DTYPE_U8 = 3,
    IMS_DTYPE_I64 = 4, /* .npy files only (row ids); not a weight-file dtype */
    IMS_DTYPE_COUNT,   /* the tensor and weight-file dtypes are those below this */
    IMS_DTYPE_F64 = 6, /* .npy files only (FID statistics); after COUNT so that COUNT, which the
                          options use as "not given", keeps its value, and no tensor takes it */
} ims_dtype;

IMS_API size_t ims_dtype_size(ims_dtype dtype);    /* 0 for an unknown dtype; 8 for IMS_DTYPE_F64 */
IMS_API const char *ims_dtype_name(ims_dtype dtype); /* "f32", ...; "?" if unknown */

/* IEEE 754 binary16 <-> binary32, round to nearest even (as CUDA's __float2half_rn). */
IMS_API uint16_t ims_f32_to_f16(float value);
IMS_API float ims_f16_to_f32(uint16_t value);

typedef struct ims_str {
    const char *ptr;
    size_t len;
} ims_str;

/* The arithmetic of a model on a backend (the CPU computes in fp32 only). */
typedef enum ims_precision {
    IMS_PRECISION_FP32 = 0, /* fp32 math (CUDA: no TF32) */
    IMS_PRECISION_TF32,     /* CUDA: tensor cores with TF32 inputs, fp32 data */
    IMS_PRECISION_FP16,     /* CUDA: fp16 activations and weights, fp32 accumulation */
} ims_precision;

IMS_API const char *ims_precision_name(ims_precision p); /* "fp32", "tf32", "fp16" */
IMS_API ims_status ims_precision_parse(const char *text, ims_precision *out, ims_error *err);

/* ==== backend: compute backends, timers, versions ========================================= */

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
IMS_API int ims_cuda_compiled(void);

/* Number of CUDA devices, or an error (IMS_ERR_NO_DEVICE with the driver's reason,
 * IMS_ERR_UNSUPPORTED in a CPU-only build). */
IMS_API ims_status ims_cuda_device_count(int *count, ims_error *err);

/* device: GPU index for CUDA, ignored for CPU. */
IMS_API ims_status ims_backend_create(ims_backend_kind kind, int device, ims_backend **out, ims_error *err);
IMS_API void ims_backend_free(ims_backend *be);
IMS_API const ims_backend_info *ims_backend_get_info(const ims_backend *be);

/* Benchmarks. A stopwatch on the backend's stream (CUDA events on a GPU, the
 * host clock on the CPU): start and stop are queued with the work between
 * them; elapsed waits for the stop and gives milliseconds. */
typedef struct ims_backend_timer ims_backend_timer;
IMS_API ims_status ims_backend_timer_create(ims_backend *be, ims_backend_timer **out, ims_error *err);
IMS_API ims_status ims_backend_timer_start(ims_backend_timer *t, ims_error *err);
IMS_API ims_status ims_backend_timer_stop(ims_backend_timer *t, ims_error *err);
IMS_API ims_status ims_backend_timer_elapsed_ms(ims_backend_timer *t, double *ms, ims_error *err);
IMS_API void ims_backend_timer_free(ims_backend_timer *t);

/* What this device can do, measured now (best of several runs): the copy
 * bandwidth within device memory (bytes read + written per second) and the
 * rate of a large GEMM (fp16 inputs, fp32 accumulation on a GPU; fp32 sgemm on
 * the CPU). Every benchmark result is also shown as a fraction of these. */
typedef struct ims_backend_peaks {
    double copy_gb_per_s;
    double gemm_tflop_per_s;
    char copy_what[96], gemm_what[96]; /* how each was measured */
} ims_backend_peaks;
IMS_API ims_status ims_backend_measure_peaks(ims_backend *be, int quick, ims_backend_peaks *out, ims_error *err);

/* Versions of the libraries this build links, one per line, for bug reports. */
IMS_API void ims_library_versions(char *buf, size_t size);

/* The same versions as (name, version) pairs, for structured reports (bench's
 * JSON): names "imgsearch", "commit" (the source's git commit at build time,
 * "-dirty" when it had changes; "unknown" outside git), "libpng",
 * "libjpeg-turbo", "zlib", "openblas", then "cuda_runtime", "cuda_driver",
 * "cublas", "cudnn" (or one "cuda": "not built" in a CPU-only build). A
 * library that is absent or cannot say has "none" or "unknown". Fills at most
 * max entries of out and returns how many there are (at most
 * IMS_LIBRARY_VERSIONS_MAX). Needs no GPU. */
#define IMS_LIBRARY_VERSIONS_MAX 16
typedef struct ims_library_version {
    const char *name; /* a constant string */
    char version[160];
} ims_library_version;
IMS_API size_t ims_library_version_list(ims_library_version *out, size_t max);

/* The clocks and power limit of a backend's GPU as the driver reports them
 * (NVML, from libnvidia-ml.so.1 loaded at run time when present: no build
 * dependency). Every field is -1 when unknown: on the CPU backend, without
 * the driver's library, or when it does not answer; source says where the
 * values came from ("NVML 12.550.54.15") or why they are unknown. */
typedef struct ims_device_clocks {
    int sm_mhz, memory_mhz;         /* now */
    int sm_max_mhz, memory_max_mhz; /* the device's maximum */
    double power_limit_w;           /* the enforced power limit */
    char source[160];
} ims_device_clocks;
IMS_API void ims_backend_get_clocks(const ims_backend *be, ims_device_clocks *out);

/* ==== io: weight files ==================================================================== */

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

IMS_API const char *ims_meta_type_name(ims_meta_type type); /* "i64", "string[]", ... */

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
IMS_API ims_status ims_weights_open(const char *path, unsigned flags, ims_weights **out, ims_error *err);

/* The same over a caller's buffer, which must outlive the handle and start at an
 * address that is a multiple of the file's alignment. */
IMS_API ims_status ims_weights_open_memory(const void *buf, size_t size, unsigned flags,
                                           ims_weights **out, ims_error *err);

IMS_API void ims_weights_close(ims_weights *w);

IMS_API const ims_weights_header *ims_weights_get_header(const ims_weights *w);
IMS_API ims_status ims_weights_verify_data(const ims_weights *w, ims_error *err);

IMS_API size_t ims_weights_meta_count(const ims_weights *w);
IMS_API const ims_meta *ims_weights_meta_at(const ims_weights *w, size_t index); /* file order */
IMS_API const ims_meta *ims_weights_meta_find(const ims_weights *w, const char *key);

/* Typed getters: IMS_ERR_NOT_FOUND if absent, IMS_ERR_FORMAT if of another type. */
IMS_API ims_status ims_weights_get_i64(const ims_weights *w, const char *key, int64_t *out, ims_error *err);
IMS_API ims_status ims_weights_get_f64(const ims_weights *w, const char *key, double *out, ims_error *err);
IMS_API ims_status ims_weights_get_string(const ims_weights *w, const char *key, ims_str *out, ims_error *err);
IMS_API ims_status ims_weights_get_strings(const ims_weights *w, const char *key, const ims_str **out,
                                           size_t *count, ims_error *err);
/* Copies an I64_ARRAY (or F64_ARRAY) of exactly `count` elements. */
IMS_API ims_status ims_weights_get_i64_array(const ims_weights *w, const char *key, int64_t *out,
                                             size_t count, ims_error *err);
IMS_API ims_status ims_weights_get_f64_array(const ims_weights *w, const char *key, double *out,
                                             size_t count, ims_error *err);
IMS_API int64_t ims_meta_i64_at(const ims_meta *m, size_t i);
IMS_API double ims_meta_f64_at(const ims_meta *m, size_t i);

IMS_API size_t ims_weights_tensor_count(const ims_weights *w);
IMS_API const ims_weight_tensor *ims_weights_tensor_at(const ims_weights *w, size_t index); /* file order */
IMS_API const ims_weight_tensor *ims_weights_tensor_find(const ims_weights *w, const char *name);

/* Finds a tensor and checks its dtype and shape: ndim dims from `shape`. */
IMS_API ims_status ims_weights_tensor_expect(const ims_weights *w, const char *name, ims_dtype dtype,
                                             int ndim, const int64_t *shape,
                                             const ims_weight_tensor **out, ims_error *err);

/* A weight file's identity: what an index records of the models it was built
 * with, and checks before it uses them again. Computed from the open file
 * (its bytes' CRC-32: a pass over the file, about a millisecond per MB). */
typedef struct ims_weights_identity {
    char name[256];  /* the file's name ("" when opened from memory) */
    char path[4096]; /* its absolute path ("" when opened from memory) */
    int synthetic;   /* the file says its weights are synthetic: results are not meaningful */
    uint64_t bytes;  /* file size */
    uint32_t crc32;  /* of all its bytes (zlib's crc32) */
} ims_weights_identity;

IMS_API ims_status ims_weights_identify(const ims_weights *w, ims_weights_identity *out, ims_error *err);

/* ==== io: .npy and .npz files ============================================================= */

/* NumPy .npy arrays (format versions 1.0, 2.0 and 3.0), C order only, in the
 * element types the search tools use. The reader checks everything: magic,
 * version, header length, the header dict (exactly the keys 'descr',
 * 'fortran_order', 'shape'; nothing but padding after it), the dtype, the
 * shape (each product checked for overflow) and that the data is exactly as
 * long as the shape says. Every failure is IMS_ERR_FORMAT (IMS_ERR_UNSUPPORTED
 * for a valid but unsupported file: Fortran order, big-endian, another dtype)
 * with a one-line message naming the problem. */
#define IMS_NPY_MAX_DIMS 8

/* An open, validated array; its data is aligned to the element size. The
 * dtypes .npy files may hold here: IMS_DTYPE_F32 ('<f4'), F16 ('<f2'), U8
 * ('|u1'), I64 ('<i8'), F64 ('<f8'). */
typedef struct ims_npy ims_npy;

/* Maps and validates a .npy file. */
IMS_API ims_status ims_npy_open(const char *path, ims_npy **out, ims_error *err);
/* The same over a caller's buffer, which must outlive *out (the data points
 * into it unless it is misaligned, in which case *out holds an aligned copy). */
IMS_API ims_status ims_npy_parse(const void *buf, size_t size, ims_npy **out, ims_error *err);
IMS_API void ims_npy_close(ims_npy *npy); /* NULL is fine */

IMS_API ims_dtype ims_npy_dtype(const ims_npy *npy);
IMS_API int ims_npy_ndim(const ims_npy *npy);            /* 0 (a scalar) .. IMS_NPY_MAX_DIMS */
IMS_API const int64_t *ims_npy_shape(const ims_npy *npy); /* IMS_NPY_MAX_DIMS dims; unused ones are 1 */
IMS_API int64_t ims_npy_count(const ims_npy *npy);        /* elements: the product of the shape */
IMS_API size_t ims_npy_nbytes(const ims_npy *npy);
IMS_API const void *ims_npy_data(const ims_npy *npy);    /* NULL when there are no elements */
IMS_API const char *ims_npy_dtype_descr(ims_dtype dtype); /* "<f4", ...; "?" for another dtype */

/* Writes a .npy file (format 1.0, data at a multiple of 64 bytes) crash-safely:
 * into a temporary file beside path, synced, then renamed over path. */
IMS_API ims_status ims_npy_write(const char *path, ims_dtype dtype, int ndim, const int64_t *shape,
                                 const void *data, ims_error *err);

/* The same, streamed: open with the final shape, write the data in pieces (in
 * total exactly the shape's bytes), then commit (sync + rename) or discard.
 * shape[0] may be IMS_NPY_ROWS_UNKNOWN: the rows are then counted from the
 * bytes written (a whole number of rows) and written into the header at
 * commit (for outputs whose length is known only at the end). */
#define IMS_NPY_ROWS_UNKNOWN (-1)
typedef struct ims_npy_writer ims_npy_writer;
IMS_API ims_status ims_npy_writer_open(const char *path, ims_dtype dtype, int ndim, const int64_t *shape,
                                       ims_npy_writer **out, ims_error *err);
IMS_API ims_status ims_npy_writer_write(ims_npy_writer *w, const void *data, size_t nbytes, ims_error *err);
IMS_API ims_status ims_npy_writer_commit(ims_npy_writer *w, ims_error *err); /* frees w, even on failure */
IMS_API void ims_npy_writer_discard(ims_npy_writer *w);                      /* frees w; NULL is fine */

/* A .npz file (what numpy.savez writes): a zip of NAME.npy members, stored
 * uncompressed, written crash-safely as above. Members up to 4 GiB each. */
typedef struct ims_npz_member {
    const char *name; /* without ".npy"; letters, digits, '_' */
    ims_dtype dtype;
    int ndim;
    const int64_t *shape;
    const void *data;
} ims_npz_member;
IMS_API ims_status ims_npz_write(const char *path, const ims_npz_member *members, size_t count, ims_error *err);

/* Reads an .npz (engine/io/npz.c): numpy.savez or savez_compressed output,
 * members stored or deflated, zip64 fields as numpy writes them. Each member
 * is checked (sizes, CRC-32) when it is read; its .npy as above. */
typedef struct ims_npz ims_npz;
IMS_API ims_status ims_npz_open(const char *path, ims_npz **out, ims_error *err);
/* The same over a caller's buffer, which must outlive *out. */
IMS_API ims_status ims_npz_parse(const void *buf, size_t size, ims_npz **out, ims_error *err);
IMS_API void ims_npz_close(ims_npz *npz); /* NULL is fine */
IMS_API size_t ims_npz_count(const ims_npz *npz);
IMS_API const char *ims_npz_name(const ims_npz *npz, size_t i); /* without ".npy"; NULL if out of range */
/* Member name as an array (close it with ims_npy_close; it does not need the
 * npz afterwards); IMS_ERR_NOT_FOUND when there is none. */
IMS_API ims_status ims_npz_get(const ims_npz *npz, const char *name, ims_npy **out, ims_error *err);

/* ==== io: file lists ====================================================================== */

typedef struct ims_file_entry {
    char *path;
    uint64_t size;    /* bytes, when listed */
    int64_t mtime_ns; /* modification time, ns since the epoch */
} ims_file_entry;

typedef struct ims_file_problem {
    char *path;
    char *reason; /* one line */
} ims_file_problem;

typedef struct ims_file_list {
    ims_file_entry *files; /* sorted by path bytes, no duplicates */
    int64_t file_count;
    ims_file_problem *problems; /* what could not be listed, sorted by path */
    int64_t problem_count;
    int64_t ignored_count; /* files skipped because their names are not an image's */
    char **ignored;        /* (ignored_count) their paths, sorted by path bytes */
} ims_file_list;

/* 1 if the name ends in .jpg, .jpeg, .jpe, .jfif, .png, .webp, .tif, .tiff,
 * .gif or .bmp (any case). The name only decides which files a walk lists;
 * the decoder goes by content. */
IMS_API int ims_path_is_image_name(const char *path);

/* The image files under roots (folders walked recursively, symbolic links
 * followed, each folder entered once; a root that is a file is taken as is).
 * Fails only when out of memory; unreadable entries become problems. */
IMS_API ims_status ims_file_list_walk(const char *const *roots, size_t root_count, ims_file_list *out, ims_error *err);
IMS_API void ims_file_list_free(ims_file_list *list);

/* The ignored files counted by extension, most first (ties by name):
 * "3 .txt, 2 .heic, 1 (no extension)"; "" when none. Extensions are
 * lowercased. Returns the length the whole text needs (as snprintf). */
IMS_API size_t ims_file_list_ignored_summary(const ims_file_list *list, char *buf, size_t size);

/* ==== image: the pipeline: decode, preprocess, load ======================================= */

/* The image pipeline: decode (JPEG, PNG, WebP, TIFF, GIF, BMP) -> RGB8 -> the
 * network's input, exactly as the reference pipelines compute it.
 *
 * Layouts: decoded images and uint8 outputs are HWC (row-major, RGB
 * interleaved); float outputs are CHW (NCHW for a batch) or HWC (NHWC).
 *
 * - image/decode.c: content sniffing, libjpeg-turbo (TurboJPEG) and libpng;
 *   image/decode_{webp,tiff,gif,bmp}.c: libwebp, libtiff, giflib and our own
 *   BMP reader; every color type converted to RGB as Pillow's convert('RGB')
 *   does, EXIF orientation, Pillow's decompression-bomb limits, one-line
 *   errors for bad input.
 * - image/preprocess.c: torchvision mode (Pillow's antialiased bilinear resize
 *   of the short side, in Pillow's fixed-point arithmetic, then torchvision's
 *   center crop) and fid mode (torch's bilinear interpolate, align_corners
 *   False, no antialias, then 2x - 1), clean mode (clean-fid's Pillow bicubic
 *   resize in float), and normalization.
 * - image/loader.c: a pool of decode threads filling batches (pinned host
 *   memory when a CUDA backend is given) while the previous batch is in use.
 */

/* ==== image: decode ======================================================================= */

/* Bits of ims_image.warnings: the image decoded, but the caller may want to say something. */
enum {
    IMS_IMAGE_WARNING_LARGE = 1, /* width * height over warn_pixels: a possible decompression bomb */
};

typedef struct ims_image {
    int width, height;
    uint8_t *pixels;   /* (height, width, 3) RGB, owned (free with ims_image_free) */
    unsigned warnings; /* IMS_IMAGE_WARNING_* bits */
} ims_image;

typedef enum ims_image_format {
    IMS_IMAGE_FORMAT_UNKNOWN = 0,
    IMS_IMAGE_FORMAT_JPEG,
    IMS_IMAGE_FORMAT_PNG,
    IMS_IMAGE_FORMAT_WEBP, /* RIFF....WEBP */
    IMS_IMAGE_FORMAT_TIFF, /* II*\0, MM\0*, and BigTIFF */
    IMS_IMAGE_FORMAT_GIF,  /* GIF87a, GIF89a */
    IMS_IMAGE_FORMAT_BMP,  /* BM */
} ims_image_format;

/* Pillow's decompression-bomb limits: Image.MAX_IMAGE_PIXELS (89,478,485)
 * warns, twice that refuses. */
#define IMS_DECODE_WARN_PIXELS 89478485u
#define IMS_DECODE_MAX_PIXELS (2u * IMS_DECODE_WARN_PIXELS)

/* Decode memory shared by threads that decode at once (a loader's): each
 * decode reserves its working memory (width * height * the bytes a pixel
 * needs in its format, known once the header is read) before it allocates,
 * and waits while the others hold the budget; it gives the memory back when
 * it returns (the RGB result, 3 bytes a pixel, is the caller's). An image that
 * needs more than the whole budget is refused, naming both sizes. */
typedef struct ims_decode_budget ims_decode_budget;
#define IMS_DECODE_MEMORY_DEFAULT ((uint64_t)4 << 30) /* a loader's budget unless told: 4 GiB */
IMS_API ims_status ims_decode_budget_create(uint64_t bytes, ims_decode_budget **out, ims_error *err);
IMS_API void ims_decode_budget_free(ims_decode_budget *b); /* NULL is fine; no decode may hold it */

typedef struct ims_decode_options {
    uint64_t max_pixels;          /* width * height over this is refused, before any allocation that
                                     depends on it (decompression bombs); default IMS_DECODE_MAX_PIXELS */
    int apply_exif_orientation;   /* default 1; torchvision's own pipeline ignores EXIF (0) */
    uint64_t warn_pixels;         /* width * height over this decodes with IMS_IMAGE_WARNING_LARGE;
                                     default IMS_DECODE_WARN_PIXELS */
    ims_decode_budget *budget;    /* shared decode memory, or NULL (default: none; a loader makes
                                     its own of decode_memory bytes) */
} ims_decode_options;

IMS_API void ims_decode_options_init(ims_decode_options *o);
/* The short name of a format: "JPEG", "PNG", "WebP", "TIFF", "GIF", "BMP"; "unknown". */
IMS_API const char *ims_image_format_name(ims_image_format format);

/* The format by content (magic bytes), never by file name. */
IMS_API ims_image_format ims_image_sniff(const void *data, size_t size);

/* Decodes and converts to RGB8. Bad input: IMS_ERR_FORMAT (or IMS_ERR_UNSUPPORTED,
 * IMS_ERR_NOMEM) with a one-line reason; never a crash. */
IMS_API ims_status ims_image_decode(const void *data, size_t size, const ims_decode_options *o, ims_image *out,
                                    ims_error *err);
/* Reads the file then decodes; messages start with the path. */
IMS_API ims_status ims_image_decode_file(const char *path, const ims_decode_options *o, ims_image *out, ims_error *err);
IMS_API void ims_image_free(ims_image *img);

/* ==== image: preprocess =================================================================== */

typedef enum ims_preprocess_mode {
    IMS_PREPROCESS_TORCHVISION = 0, /* resize short side 342 (Pillow bilinear, antialiased), center crop 299 */
    IMS_PREPROCESS_FID,             /* bilinear to 299 x 299 (torch, align_corners False, no antialias) */
    IMS_PREPROCESS_CLEAN,           /* clean-fid: Pillow bicubic to 299 x 299 in float, clip, (x - 128) / 128 */
} ims_preprocess_mode;

/* "torchvision", "fid", "clean" (the names the tools, index manifests and
 * statistics files use); NULL for an unknown mode. */
IMS_API const char *ims_preprocess_mode_name(ims_preprocess_mode mode);
/* The mode of a name, or -1. */
IMS_API int ims_preprocess_mode_from_name(const char *name);

typedef enum ims_layout {
    IMS_LAYOUT_NCHW = 0,
    IMS_LAYOUT_NHWC,
} ims_layout;

/* torchvision mode up to the 8-bit image: Pillow's resize of the short side
 * to `resize` (the long side as torchvision computes it), then the center crop
 * of crop x crop. out: (crop, crop, 3), byte-identical to Pillow + torchvision. */
IMS_API ims_status ims_preprocess_torchvision_u8(const ims_image *img, int resize, int crop, uint8_t *out, ims_error *err);

/* uint8 (h, w, 3) -> float: x / 255, then (x - mean[c]) / std[c], in layout. */
IMS_API void ims_preprocess_normalize(const uint8_t *pixels, int h, int w, const float mean[3], const float std[3],
                                      ims_layout layout, float *out);

/* fid mode: RGB8 -> [0, 1] -> bilinear size x size (align_corners False, no
 * antialias, as torch.nn.functional.interpolate) -> 2x - 1. out: float
 * (3, size, size) or (size, size, 3). */
IMS_API ims_status ims_preprocess_fid(const ims_image *img, int size, ims_layout layout, float *out, ims_error *err);

/* clean mode (clean-fid's "clean"): each channel as a Pillow "F" image (the
 * bytes as float), Image.resize((size, size), BICUBIC) (weights and sums in
 * double, float results, horizontal pass first), clip to 0..255, then
 * (x - 128) / 128 in float as clean-fid's InceptionV3W does. Bit for bit
 * Pillow's and clean-fid's. out: float (3, size, size) or (size, size, 3). */
IMS_API ims_status ims_preprocess_clean(const ims_image *img, int size, ims_layout layout, float *out, ims_error *err);

/* Pillow's Image.resize((width, height), BILINEAR) of the whole image (the
 * same arithmetic as torchvision mode, byte for byte). out: (height, width, 3). */
IMS_API ims_status ims_image_resize(const ims_image *img, int width, int height, uint8_t *out, ims_error *err);

/* ==== image: thumbnails =================================================================== */

/* engine/image/thumbnail.c: what a person looks at (search --html, serve):
 * the image scaled by ims_image_resize so its long side is at most long_side
 * (never enlarged; the short side rounded, at least 1), as a baseline JPEG
 * (TurboJPEG, 4:2:0, quality 1..100). Free *jpeg with ims_free. */
IMS_API ims_status ims_image_thumbnail(const ims_image *img, int long_side, ims_image *out, ims_error *err);
IMS_API ims_status ims_image_encode_jpeg(const ims_image *img, int quality, uint8_t **jpeg, size_t *size,
                                         ims_error *err);
/* Decode (o may be NULL: the defaults), thumbnail, encode; messages start with the path. */
IMS_API ims_status ims_image_thumbnail_file(const char *path, const ims_decode_options *o, int long_side,
                                            int quality, uint8_t **jpeg, size_t *size, ims_error *err);

/* ==== image: the loader =================================================================== */

/* engine/image/loader.c: a pool of decode threads that turns a list of image files
 * into batches of network input, in order, while the caller uses the previous
 * batch.
 *
 * Batch k holds paths [k*B, k*B + B) (the last one may be shorter). Its data is
 * (count, 3, 299, 299) float (NCHW), (count, 299, 299, 3) float (NHWC), or
 * (count, 299, 299, 3) uint8 (torchvision mode only: the resized and cropped
 * pixels, before normalization). An image that cannot be read or decoded gets
 * a status and a one-line reason in its item (the path is a field of its own),
 * and zeroed pixels; it never stops its batch.
 *
 * Usage (one caller thread; the loader's own threads do the decoding):
 *
 *     ims_image_loader_create(&opts, backend_or_NULL, &ld, &err);
 *     ims_image_loader_start(ld, paths, n, &err);
 *     const ims_image_batch *b;
 *     while (ims_image_loader_next(ld, &b, &err) == IMS_OK) {
 *         ... use b->data, b->items[i].status ...
 *         ims_image_loader_release(ld, b);    (its buffer may be refilled)
 *     }                                        (IMS_ERR_NOT_FOUND: no more batches)
 *     ims_image_loader_free(ld);               (also fine mid-run)
 *
 * The output depends only on the files and the options, never on the thread
 * count or timing. The path strings must stay valid until the run ends (the
 * last batch was returned) or the loader is freed.
 */

/* The network input: torchvision resizes the short side to 342, then crops 299. */
enum {
    IMS_IMAGE_INPUT_SIZE = 299,
    IMS_IMAGE_RESIZE_SIZE = 342,
};

typedef enum ims_loader_output {
    IMS_LOADER_OUTPUT_F32 = 0, /* float in options.layout: torchvision mode normalized with the
                                  ImageNet mean and std; fid and clean modes in [-1, 1] */
    IMS_LOADER_OUTPUT_U8,      /* torchvision mode only: (299, 299, 3) bytes per image */
} ims_loader_output;

typedef struct ims_image_loader_options {
    ims_preprocess_mode mode;   /* default IMS_PREPROCESS_TORCHVISION */
    ims_loader_output output;   /* default IMS_LOADER_OUTPUT_F32 */
    ims_layout layout;          /* float output only; default IMS_LAYOUT_NCHW */
    int batch_size;             /* default 32 */
    int threads;                /* decode threads; default 4 */
    int buffers;                /* batch buffers, at least 2 (double buffering); default 2 */
    ims_decode_options decode;  /* ims_decode_options_init's defaults */
    uint64_t decode_memory;     /* the threads' shared decode budget when decode.budget is NULL;
                                   default IMS_DECODE_MEMORY_DEFAULT */
} ims_image_loader_options;

IMS_API void ims_image_loader_options_init(ims_image_loader_options *o);

typedef struct ims_image_item {
    ims_status status;              /* IMS_OK, or why the image failed (its pixels are zero) */
    const char *path;               /* the image's path: the caller's string given to start */
    char reason[IMS_ERROR_MSG_MAX]; /* why it failed, one line without the path; when it
                                       decoded with warnings, what they are; else empty */
    unsigned warnings;              /* IMS_IMAGE_WARNING_* bits of the decoded image */
} ims_image_item;

typedef struct ims_image_batch {
    int64_t index;               /* k */
    int64_t first;               /* the first image's index in the path list: k * batch_size */
    int64_t count;               /* images in this batch (batch_size, or fewer in the last) */
    int64_t failed;              /* items whose status is not IMS_OK */
    size_t item_bytes;           /* bytes per image in data */
    void *data;                  /* (count, ...) as described above; host memory (pinned with CUDA) */
    const ims_image_item *items; /* (count) */
} ims_image_batch;

/* Totals since the loader was created, for progress summaries. Stage times are
 * summed over the decode threads (so they can exceed the wall time). */
typedef struct ims_image_loader_stats {
    uint64_t images, failed, bytes_read;
    double read_s, decode_s, preprocess_s;
    double wait_s; /* time the caller spent blocked in ims_image_loader_next */
} ims_image_loader_stats;

typedef struct ims_image_loader ims_image_loader;

/* backend may be NULL (plain 64-byte aligned host memory); otherwise the batch
 * buffers come from its host_alloc (pinned memory for CUDA) and the backend
 * must outlive the loader. Starts the decode threads, which wait for work. */
IMS_API ims_status ims_image_loader_create(const ims_image_loader_options *o, ims_backend *backend,
                                           ims_image_loader **out, ims_error *err);

/* Begins a run over paths[0..count). Only when no run is in progress (every
 * batch of the previous run was returned and released). */
IMS_API ims_status ims_image_loader_start(ims_image_loader *ld, const char *const *paths, int64_t count, ims_error *err);

/* Blocks until the next batch is complete and returns it; IMS_ERR_NOT_FOUND
 * once every batch of the run was returned. IMS_ERR_ARGUMENT if every buffer
 * is held by the caller (release one first) or no run was started. */
IMS_API ims_status ims_image_loader_next(ims_image_loader *ld, const ims_image_batch **batch, ims_error *err);

/* Gives a batch returned by next back to the loader, which may refill it. */
IMS_API void ims_image_loader_release(ims_image_loader *ld, const ims_image_batch *batch);

IMS_API void ims_image_loader_get_stats(ims_image_loader *ld, ims_image_loader_stats *out);

/* Stops the threads (each finishes the image in hand) and frees everything,
 * batches still held by the caller included. NULL is fine. */
IMS_API void ims_image_loader_free(ims_image_loader *ld);

/* ==== models: the image encoder (Inception-v3) ============================================ */

/* Inception-v3 (torchvision, or pytorch-fid's FID Inception) on a backend:
 * engine/models/inception_v3.c. The variant, widths and preprocessing come from the
 * weight file's metadata (docs/FORMAT.md); weights are uploaded once, at
 * creation. Not thread-safe: one encoder per thread. */

typedef struct ims_image_encoder ims_image_encoder;

/* The CPU backend supports IMS_PRECISION_FP32 only. w must outlive nothing:
 * the encoder copies what it needs. */
IMS_API ims_status ims_image_encoder_create(ims_backend *be, const ims_weights *w, ims_precision p,
                                            ims_image_encoder **out, ims_error *err);
IMS_API void ims_image_encoder_free(ims_image_encoder *enc);

/* images: (batch, 299, 299, 3) uint8 host memory, the loader's U8 output (or
 * any RGB bytes); normalized inside with the file's preprocess.mean/std.
 * features (batch, feature_dim) and logits (batch, num_classes): host, either
 * may be NULL. */
IMS_API ims_status ims_image_encoder_forward(ims_image_encoder *enc, const uint8_t *images, int64_t batch, float *features,
                                             float *logits, ims_error *err);
/* The same from float input already normalized: (batch, 299, 299, 3), NHWC
 * (the loader's F32 output with layout NHWC; fid mode gives only this). */
IMS_API ims_status ims_image_encoder_forward_f32(ims_image_encoder *enc, const float *images, int64_t batch, float *features,
                                                 float *logits, ims_error *err);

IMS_API int ims_image_encoder_num_classes(const ims_image_encoder *enc);
IMS_API int ims_image_encoder_feature_dim(const ims_image_encoder *enc);
IMS_API ims_preprocess_mode ims_image_encoder_mode(const ims_image_encoder *enc);
/* Class i's label from the file ({NULL, 0} if it has none or i is out of range). */
IMS_API ims_str ims_image_encoder_label(const ims_image_encoder *enc, int i);

/* engine/models/image_encoder_run.c: image files -> Inception-v3 outputs, batch by
 * batch: the one loop behind indexing, search's image queries, classify and
 * embed-image. The loader decodes the next batches on its threads while the
 * encoder runs the current one. Every batch comes back whole, in path order,
 * with an item per image (status, path, reason): a failed image's rows of
 * features and logits are those of zeroed pixels and must be skipped; it never
 * stops the run. Usage (one caller thread):
 *
 *     ims_image_encoder_run_start(enc, backend, paths, n, &opts, &run, &err);
 *     const ims_image_encoder_batch *b;
 *     while ((st = ims_image_encoder_run_next(run, &b, &err)) == IMS_OK)
 *         ... b->items[i], b->features + i * feature_dim, b->logits + i * classes ...
 *     (st == IMS_ERR_NOT_FOUND: every batch was returned; else a model or device error)
 *     ims_image_encoder_run_free(run);       (also fine mid-run)
 */
typedef struct ims_image_encoder_run ims_image_encoder_run;

typedef struct ims_image_encoder_run_options {
    int mode;       /* -1 (default): the model's preprocessing; else an ims_preprocess_mode */
    int batch_size; /* images per forward pass; default 32 */
    int threads;    /* decode threads; default 4 (never more than images) */
    int buffers;    /* loader buffers, at least 2; default 3: one in the model, two being decoded */
    ims_decode_options decode; /* ims_decode_options_init's defaults */
} ims_image_encoder_run_options;

IMS_API void ims_image_encoder_run_options_init(ims_image_encoder_run_options *o);

typedef struct ims_image_encoder_batch {
    int64_t first;               /* its first image's index in the path list */
    int64_t count;               /* images in this batch */
    int64_t failed;              /* items whose status is not IMS_OK */
    const ims_image_item *items; /* (count): status, path, reason */
    const float *features;       /* (count, feature_dim) pooled features */
    const float *logits;         /* (count, num_classes) */
    double model_s;              /* seconds this batch spent in the encoder */
    double wait_s;               /* seconds the run has waited for decoded images, in all */
} ims_image_encoder_batch;

/* backend: the encoder's (the loader's batch buffers are then pinned for it),
 * or NULL for plain host memory; enc and backend must outlive the run, and
 * the paths must stay valid until it is freed. */
IMS_API ims_status ims_image_encoder_run_start(ims_image_encoder *enc, ims_backend *backend, const char *const *paths,
                                               int64_t count, const ims_image_encoder_run_options *o,
                                               ims_image_encoder_run **out, ims_error *err);
/* The next batch, valid until the next call or free; IMS_ERR_NOT_FOUND after the last. */
IMS_API ims_status ims_image_encoder_run_next(ims_image_encoder_run *run, const ims_image_encoder_batch **batch,
                                              ims_error *err);
IMS_API void ims_image_encoder_run_free(ims_image_encoder_run *run); /* NULL is fine */

/* ==== models: FID, KID and the Inception Score ============================================ */

/* The scores that compare two sets of images through Inception-v3 features
 * (engine/models/fid_stats.c, fid_metrics.c), computed as pytorch-fid,
 * clean-fid and torch-fidelity compute them, in double precision.
 *
 * Statistics stream: features are added in float32 rows and summed in
 * float64 (a shifted scatter matrix, rank-k updates), so a million images
 * never need their feature matrix in memory. The covariance divides by
 * n - 1, as numpy.cov. */
typedef struct ims_fid_stats ims_fid_stats;

IMS_API ims_status ims_fid_stats_create(int dim, ims_fid_stats **out, ims_error *err);
IMS_API void ims_fid_stats_free(ims_fid_stats *s); /* NULL is fine */
/* Adds n feature rows, (n, dim) float32; refused for loaded statistics. */
IMS_API ims_status ims_fid_stats_add(ims_fid_stats *s, const float *rows, int64_t n, ims_error *err);
IMS_API int ims_fid_stats_dim(const ims_fid_stats *s);
/* The images behind the statistics (0 when a loaded file does not say). */
IMS_API int64_t ims_fid_stats_count(const ims_fid_stats *s);
/* The mean (dim) and covariance (dim, dim), float64, row-major, owned by s
 * and valid until the next add; at least 2 rows are needed. */
IMS_API ims_status ims_fid_stats_get(ims_fid_stats *s, const double **mu, const double **sigma, ims_error *err);
/* Statistics from a mean and covariance (copied). count may be 0 (unknown). */
IMS_API ims_status ims_fid_stats_from(const double *mu, const double *sigma, int dim, int64_t count,
                                      ims_fid_stats **out, ims_error *err);

/* An .npz that pytorch-fid and clean-fid read: mu (dim) and sigma (dim, dim)
 * as float64, plus imgsearch_mode (the preprocessing, uint8 text) and
 * imgsearch_count (int64), which they ignore. Written crash-safely. */
IMS_API ims_status ims_fid_stats_save(ims_fid_stats *s, const char *path, const char *mode, ims_error *err);
/* Reads mu and sigma (float64 or float32) from such a file or another tool's;
 * mode gets imgsearch_mode, or "" when the file does not say. */
IMS_API ims_status ims_fid_stats_load(const char *path, ims_fid_stats **out, char *mode, size_t mode_size,
                                      ims_error *err);

/* FID = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^1/2). The trace of the
 * square root is that of sqrt(S1) S2 sqrt(S1), symmetric positive
 * semi-definite, from two symmetric eigen-decompositions (LAPACK dsyevd);
 * eigenvalues below zero (rounding) count as zero. */
IMS_API ims_status ims_fid_distance(ims_fid_stats *a, ims_fid_stats *b, double *fid, ims_error *err);

/* Kernel Inception Distance: the unbiased MMD^2 with the kernel
 * (gamma x.y + coef0)^degree, averaged over random subsets drawn as
 * torch-fidelity draws them (numpy's RandomState(seed).choice without
 * replacement, for x then y, per subset), so the same seed gives its subsets. */
typedef struct ims_kid_options {
    int subsets;     /* default 100 */
    int subset_size; /* default 1000; at most the smaller set's size (clean-fid's rule) */
    int degree;      /* default 3 */
    double gamma;    /* 0 (default): 1 / dim */
    double coef0;    /* default 1 */
    uint32_t seed;   /* default 2020 (torch-fidelity's) */
} ims_kid_options;

IMS_API void ims_kid_options_init(ims_kid_options *o);
/* x (nx, dim), y (ny, dim) float32 features; *mean and *std (population, as
 * numpy.std) over the subsets; *size_used: the subset size. */
IMS_API ims_status ims_kid(const float *x, int64_t nx, const float *y, int64_t ny, int dim, const ims_kid_options *o,
                           double *mean, double *std, int *size_used, ims_error *err);

/* Inception Score as torch-fidelity computes it: logits (n, classes) shuffled
 * by RandomState(seed).permutation(n), softmax in float64, then per split
 * exp(mean KL(p || mean p)); *mean and *std (population) over the splits. */
IMS_API ims_status ims_inception_score(const float *logits, int64_t n, int classes, int splits, uint32_t seed,
                                       double *mean, double *std, ims_error *err);

/* ==== models: the tokenizer =============================================================== */

/* BERT WordPiece tokenization, identical to Hugging Face's tokenizers
 * (BertNormalizer, BertPreTokenizer, WordPiece, [CLS] ... [SEP]); see
 * engine/models/tokenizer.c. Thread-safe: encoding only reads the tokenizer.
 *
 * Text is UTF-8. Invalid UTF-8 never fails: each maximal invalid subpart
 * becomes U+FFFD (as Python's decode(errors="replace")), which BERT cleaning
 * then drops like any control character, so "a\xffb" encodes as "ab". The
 * special tokens' strings ("[CLS]", ...) in the raw text are those tokens, as in
 * tokenizers (its added tokens are matched before normalization). */
typedef struct ims_tokenizer ims_tokenizer;

typedef enum ims_token_kind {
    IMS_TOKEN_PAD = 0,
    IMS_TOKEN_UNK,
    IMS_TOKEN_CLS,
    IMS_TOKEN_SEP,
    IMS_TOKEN_MASK,
} ims_token_kind;

#define IMS_TOKENIZER_MAX_WORD_CHARS 256 /* the most max_input_chars_per_word may be */

typedef struct ims_tokenizer_options {
    int lowercase;                /* 1 (default): uncased BERT */
    int strip_accents;            /* -1 (default): as lowercase; 0; 1 */
    int clean_text;               /* 1 */
    int handle_chinese_chars;     /* 1 */
    int max_input_chars_per_word; /* 100: a longer word is [UNK] */
    int max_len;                  /* 512: default truncation, [CLS] and [SEP] included */
    const char *pad_token, *unk_token, *cls_token, *sep_token; /* "[PAD]" ...: must be in the vocabulary */
    const char *mask_token;       /* "[MASK]"; optional */
    const char *continuing_prefix; /* "##" */
} ims_tokenizer_options;

IMS_API void ims_tokenizer_options_init(ims_tokenizer_options *o);

/* tokens[i] is the string of id i (as vocab.txt's line i). o may be NULL (defaults). */
IMS_API ims_status ims_tokenizer_create_from_vocab(const char *const *tokens, size_t n, const ims_tokenizer_options *o,
                                                   ims_tokenizer **out, ims_error *err);
/* From a converted BERT model: metadata tokenizer.vocab, tokenizer.{pad,unk,cls,
 * sep,mask}_id, tokenizer.do_lower_case and bert.max_seq_length (the default max_len). */
IMS_API ims_status ims_tokenizer_create_from_weights(const ims_weights *w, ims_tokenizer **out, ims_error *err);
IMS_API void ims_tokenizer_free(ims_tokenizer *tok); /* NULL is fine */

IMS_API int ims_tokenizer_max_len(const ims_tokenizer *tok);
IMS_API size_t ims_tokenizer_vocab_size(const ims_tokenizer *tok);
IMS_API int32_t ims_tokenizer_special_id(const ims_tokenizer *tok, ims_token_kind kind); /* -1 if absent */

/* ids: (max_len) = [CLS] tokens... [SEP], truncated to max_len (the last token
 * is always [SEP]); *n_ids = how many were written (>= 2). max_len <= 0 means
 * the tokenizer's default. */
IMS_API ims_status ims_tokenizer_encode(const ims_tokenizer *tok, const char *text, size_t len, int32_t *ids, int max_len,
                                        int *n_ids, ims_error *err);

/* count texts (texts[b], lens[b] bytes) -> ids (B, T) with T = *seq_len = the
 * longest encoding, rows padded with [PAD]; lengths (B) = each row's token count.
 * ids must hold count * max_len values (max_len <= 0: the default). */
IMS_API ims_status ims_tokenizer_encode_batch(const ims_tokenizer *tok, const char *const *texts, const size_t *lens,
                                              int64_t count, int max_len, int32_t *ids, int32_t *lengths, int *seq_len,
                                              ims_error *err);

/* The token's string (NUL-terminated, owned by tok), NULL if id is out of range. */
IMS_API const char *ims_tokenizer_decode_token(const ims_tokenizer *tok, int32_t id);

/* ==== models: the text encoder ============================================================ */

/* A BERT-family sentence encoder (weights file architecture "bert"). */
typedef struct ims_text_encoder ims_text_encoder;

/* Reads the hyper-parameters from w's metadata and uploads the weights once;
 * w may be closed afterwards. */
IMS_API ims_status ims_text_encoder_create(ims_backend *be, const ims_weights *w, ims_precision precision,
                                           ims_text_encoder **out, ims_error *err);
/* ids (B, T) token ids from the model's tokenizer ([CLS] ... [SEP], any padding
 * after lengths[b] tokens); lengths (B), each in 1..min(T, max_seq_length);
 * out (B, D) host floats: the sentence embeddings, L2-normalized if the model
 * says so. A sentence's embedding does not depend on its batch or padding. */
IMS_API ims_status ims_text_encoder_encode(ims_text_encoder *enc, const int32_t *ids, const int32_t *lengths, int64_t b, int t,
                                           float *out, ims_error *err);
IMS_API int ims_text_encoder_dim(const ims_text_encoder *enc);            /* D, the hidden size */
IMS_API int ims_text_encoder_max_seq_length(const ims_text_encoder *enc); /* tokens, [CLS] and [SEP] included */
IMS_API void ims_text_encoder_free(ims_text_encoder *enc);                /* NULL is fine */

/* ==== models: the text embedder =========================================================== */

/* engine/models/text_embedder.c: texts -> sentence embeddings, the tokenizer and the text
 * encoder of one BERT weight file behind one call. Texts are grouped by token
 * count into batches (little padding); the result for a text does not depend
 * on the other texts. */
typedef struct ims_text_embedder ims_text_embedder;

/* precision: fp32 or fp16 (fp16 tensors, fp32 accumulation); tf32 runs as
 * fp32, so a caller may pass its image model's precision as it is. */
IMS_API ims_status ims_text_embedder_create(ims_backend *be, const ims_weights *w, ims_precision precision,
                                            ims_text_embedder **out, ims_error *err);
IMS_API void ims_text_embedder_free(ims_text_embedder *e); /* NULL is fine */
IMS_API int ims_text_embedder_dim(const ims_text_embedder *e);
/* texts: n NUL-terminated UTF-8 strings; out (n, dim) f32. */
IMS_API ims_status ims_text_embed(const ims_text_embedder *e, const char *const *texts, int64_t n, float *out, ims_error *err);

/* ==== models: ConSE ======================================================================= */

/* engine/models/conse.c: out (batch, dim) = L2-normalize(sum over the `top` most probable
 * classes c of softmax(logits)[c] * class_embeddings[c]); logits (batch,
 * classes), class_embeddings (classes, dim). Ties between classes go to the
 * lower index. A non-finite logit or a zero mix is an error naming the image. */
IMS_API ims_status ims_conse_embed(const float *logits, int64_t batch, int classes, const float *class_embeddings, int dim,
                                   int top, float *out, ims_error *err);

/* ==== index: k-NN tables ================================================================== */

/* Exact k-nearest-neighbour search over a table of N rows of dimension D on a
 * backend: for each query the k rows with the highest cosine similarity (or
 * inner product), ties ordered by lower row index, the same answer on every
 * run. Rows and queries are L2-normalized in fp32 when they enter (cosine);
 * a zero, NaN or Inf row is rejected with an error naming its index. Rows are
 * stored as f16 or f32; scores accumulate in fp32. */
typedef struct ims_knn_table ims_knn_table;

#define IMS_KNN_MAX_K 16384

typedef enum ims_knn_metric {
    IMS_KNN_METRIC_COSINE = 0, /* rows and queries normalized: score = cosine */
    IMS_KNN_METRIC_IP = 1,     /* raw inner product (no normalization) */
} ims_knn_metric;

/* Which kernel a GPU search runs (tests force each; AUTO picks by B and k). */
typedef enum ims_knn_path {
    IMS_KNN_PATH_AUTO = 0,
    IMS_KNN_PATH_STREAM = 1, /* small batches: one streaming pass over the table */
    IMS_KNN_PATH_GEMM = 2,   /* large batches: GEMM into a bounded score tile */
    IMS_KNN_PATH_GEMM_F16 = 3, /* opt-in, f16 storage: fp16 tensor-core GEMM (fp32
                                  accumulation) with the queries rounded to f16:
                                  faster, exact over the f16 queries, not over the
                                  f32 ones (f32 storage: as GEMM) */
} ims_knn_path;

typedef struct ims_knn_options {
    ims_knn_metric metric;      /* default cosine */
    ims_dtype dtype;            /* storage: IMS_DTYPE_F16 (default) or IMS_DTYPE_F32 */
    int64_t max_rows_per_chunk; /* 0: the table lives on the device (default); > 0:
                                   it stays in host memory and is streamed through
                                   the device in chunks of this many rows, partial
                                   results merged exactly */
    ims_knn_path path;          /* default AUTO */
} ims_knn_options;

IMS_API void ims_knn_options_init(ims_knn_options *o);

/* An empty table of dimension dim on backend be (which must outlive it). */
IMS_API ims_status ims_knn_create(ims_backend *be, int64_t dim, const ims_knn_options *o, ims_knn_table **out,
                                  ims_error *err);

/* Appends n rows (n, dim) from host memory, f32 or f16 (dtype). Row indices
 * continue from the rows already in the table. Nothing is appended on failure. */
IMS_API ims_status ims_knn_append(ims_knn_table *t, const void *rows, ims_dtype dtype, int64_t n, ims_error *err);

/* Makes room for rows rows in all (a single allocation instead of growing
 * by 1.5x, whose copy briefly holds both): call it before large appends. */
IMS_API ims_status ims_knn_reserve(ims_knn_table *t, int64_t rows, ims_error *err);

IMS_API int64_t ims_knn_rows(const ims_knn_table *t);
IMS_API int64_t ims_knn_dim(const ims_knn_table *t);

/* queries (b, dim) f32 host; ids (b, k) int64 and scores (b, k) f32 host: per
 * query the min(k, N) best rows, best first; positions past N get id -1 and
 * score -inf. k in 1..IMS_KNN_MAX_K. */
IMS_API ims_status ims_knn_search(ims_knn_table *t, const float *queries, int64_t b, int k, int64_t *ids, float *scores,
                                  ims_error *err);

IMS_API void ims_knn_free(ims_knn_table *t); /* NULL is fine */

/* Device bytes a search of b queries with this k over a resident table of
 * (n, dim) rows in dtype needs (the table, the score tile and the scratch of
 * one query batch: large b are searched in batches); 0 on overflow. */
IMS_API size_t ims_knn_estimate_bytes(int64_t n, int64_t dim, ims_dtype dtype, int64_t b, int k);

/* One table split across several backends (all the GPUs of a node: `knn --gpu
 * all`), which must outlive it: each append is cut into one contiguous range
 * per backend; a search runs every part (concurrently on GPUs) and merges the
 * parts' top-k exactly (equal scores by lower row). count in 1..64. */
typedef struct ims_knn_multi ims_knn_multi;
IMS_API ims_status ims_knn_multi_create(ims_backend *const *bes, int count, int64_t dim, const ims_knn_options *o,
                                        ims_knn_multi **out, ims_error *err);
IMS_API ims_status ims_knn_multi_append(ims_knn_multi *m, const void *rows, ims_dtype dtype, int64_t n,
                                        ims_error *err);
IMS_API ims_status ims_knn_multi_search(ims_knn_multi *m, const float *queries, int64_t b, int k, int64_t *ids,
                                        float *scores, ims_error *err);
IMS_API void ims_knn_multi_free(ims_knn_multi *m); /* NULL is fine */

/* ==== index: the index folder ============================================================= */

/* engine/index/store.c: an image index on disk (docs/FORMAT.md, "The index"): chunks
 * of embeddings as .npy, the rows' files, the failures, tombstones and a manifest,
 * each written crash-safely. A writer (one at a time: a lock in the folder) adds
 * rows and failures and marks records it replaces or that were deleted with
 * tombstones; every chunk_rows rows, or when asked, it commits a chunk (its files,
 * then the manifest, the one commit point). After a crash, opening the folder
 * again finds the last committed state: nothing half-written is ever read.
 * Readers take no lock and never wait. Row ids are a row's place in the chunks
 * counted in order; they stay valid until a compaction renumbers them. */

typedef struct ims_index ims_index;

typedef enum ims_index_table {
    IMS_INDEX_TABLE_VISUAL = 0,   /* the L2-normalized 2048-d pool features */
    IMS_INDEX_TABLE_SEMANTIC = 1, /* ConSE embeddings in the text encoder's space */
} ims_index_table;

typedef struct ims_index_config {
    ims_preprocess_mode mode; /* the image preprocessing the rows were made with */
    ims_dtype dtype;          /* storage of the tables: IMS_DTYPE_F16 (default) or F32 */
    int chunk_rows;           /* rows per chunk (at most; commits by time make shorter ones); default 4096 */
    int visual_dim;           /* default 2048 */
    int semantic_dim;         /* 0: no semantic table (no text model) */
    int conse_top;            /* classes ConSE mixes per semantic row (and per image query on
                                 the semantic table); default 10, also what an index made
                                 before it was recorded holds */
    int precision;            /* the image model's arithmetic the rows were made with (an
                                 ims_precision); -1: not recorded (indexes made before it was) */
    ims_weights_identity image_model;
    ims_weights_identity text_model; /* when semantic_dim > 0 */
} ims_index_config;

IMS_API void ims_index_config_init(ims_index_config *c);

/* Opens an index to read it (format versions 1 and 2; a newer one is refused).
 * Takes no lock: it reads the last committed state. */
IMS_API ims_status ims_index_open(const char *dir, ims_index **out, ims_error *err);
/* Opens an index to add to it, holding its writer lock until ims_index_close
 * (IMS_ERR_BUSY, naming the holder, when another process writes it): creates
 * the folder (new or empty; a folder holding other files is refused) and an
 * empty index, or reopens one whose configuration equals cfg (else an error
 * naming the first difference and both values, such as another image model
 * or --conse-top). An index whose precision is not recorded accepts any, and
 * stays unrecorded. Leftovers of a killed writer (temporary files, chunk files
 * the manifest does not list) are removed. A version-1 index is refused:
 * ims_index_compact upgrades it. */
IMS_API ims_status ims_index_open_for_writing(const char *dir, const ims_index_config *cfg, ims_index **out,
                                              ims_error *err);
/* Drops records and tombstones not yet committed; releases the lock. NULL is fine. */
IMS_API void ims_index_close(ims_index *idx);

IMS_API const ims_index_config *ims_index_get_config(const ims_index *idx);
IMS_API int64_t ims_index_row_count(const ims_index *idx);     /* committed rows, tombstoned ones included */
IMS_API int64_t ims_index_failure_count(const ims_index *idx); /* committed failures, likewise */
IMS_API int64_t ims_index_chunk_count(const ims_index *idx);
/* Whether path's latest committed record is a live row or failure. */
IMS_API int ims_index_contains(const ims_index *idx, const char *path);

/* Appends a row: visual (visual_dim) and semantic (semantic_dim, or NULL when
 * the index has none). Commits a chunk when chunk_rows rows are pending. */
IMS_API ims_status ims_index_add(ims_index *idx, const ims_file_entry *file, const float *visual, const float *semantic,
                                 ims_error *err);
/* Records a file that could not be indexed (reason: one line). */
IMS_API ims_status ims_index_add_failure(ims_index *idx, const char *path, const char *reason, ims_error *err);
/* Marks a live committed row (failure) dead at the next commit: search never
 * returns it again, compaction drops it. */
IMS_API ims_status ims_index_remove(ims_index *idx, int64_t row, ims_error *err);
IMS_API ims_status ims_index_remove_failure(ims_index *idx, int64_t failure, ims_error *err);
/* Commits the pending rows, failures and tombstones, if any, as a (shorter) chunk. */
IMS_API ims_status ims_index_commit(ims_index *idx, ims_error *err);

IMS_API const ims_file_entry *ims_index_row(const ims_index *idx, int64_t row);    /* NULL if out of range */
IMS_API const ims_file_problem *ims_index_failure(const ims_index *idx, int64_t i); /* NULL if out of range */
IMS_API int ims_index_row_live(const ims_index *idx, int64_t row);    /* 1: committed and not tombstoned */
IMS_API int ims_index_failure_live(const ims_index *idx, int64_t i); /* likewise */
/* The live rows, ascending: what ims_index_load_knn and ims_index_load_table
 * hold, in their order. ims_index_live_row(idx, i) is the row id of their
 * row i (-1 if out of range). */
IMS_API int64_t ims_index_live_row_count(const ims_index *idx);
IMS_API int64_t ims_index_live_row(const ims_index *idx, int64_t i);
/* The live row ids in bulk: copies the first min(cap, live rows) into out
 * (NULL with cap 0 is fine) and returns the live row count. */
IMS_API int64_t ims_index_live_rows(const ims_index *idx, int64_t *out, int64_t cap);
/* Committed chunk c (0 .. ims_index_chunk_count - 1, in row order): its files
 * are chunk-<*id>.*, its rows the ids [*first_row, *first_row + *rows)
 * (tombstoned ones included). IMS_ERR_ARGUMENT if c is out of range. */
IMS_API ims_status ims_index_chunk(const ims_index *idx, int64_t c, int64_t *id, int64_t *first_row, int64_t *rows,
                                   ims_error *err);
/* Where a row's vectors are: row `*offset` of chunk-<*chunk>.{visual,semantic}.npy. */
IMS_API ims_status ims_index_row_location(const ims_index *idx, int64_t row, int64_t *chunk, int64_t *offset,
                                          ims_error *err);

typedef struct ims_index_info {
    int version;                  /* the format version read (1 or 2) */
    int64_t rows, live_rows;      /* stored, and not tombstoned */
    int64_t failures, live_failures;
    int64_t chunks;
    uint64_t disk_bytes;          /* the manifest, the listed chunk files, classes.npy */
    char committed[32];           /* the last commit, UTC "YYYY-MM-DDTHH:MM:SSZ"; "" if not recorded */
    int64_t root_count;           /* folders and files indexed (absolute paths: ims_index_root) */
} ims_index_info;
IMS_API void ims_index_get_info(const ims_index *idx, ims_index_info *out);
IMS_API const char *ims_index_root(const ims_index *idx, int64_t i); /* NULL if out of range */

/* The text embeddings of the image model's classes, (classes, semantic_dim)
 * f32, kept in the index as classes.npy (ConSE needs them for image queries on
 * the semantic table). Load: IMS_ERR_NOT_FOUND if absent; free *emb with ims_free. */
IMS_API ims_status ims_index_save_class_embeddings(ims_index *idx, const float *emb, int classes, ims_error *err);
IMS_API ims_status ims_index_load_class_embeddings(const ims_index *idx, float **emb, int *classes, ims_error *err);

/* The live rows of a table as (live rows, dim) f32 in a buffer freed with
 * ims_free (f16 tables are widened: twice their size; a search loads them
 * with ims_index_load_knn instead). Every chunk file's CRC-32 is checked. */
IMS_API ims_status ims_index_load_table(const ims_index *idx, ims_index_table table, float **rows, int *dim,
                                        ims_error *err);

/* Appends the live rows of the table (tombstoned rows are left out; row i
 * appended is ims_index_live_row(idx, i)) to a k-NN table of its dimension,
 * chunk by chunk and in the stored dtype: f16 rows go in as they are, never
 * widened to a whole f32 copy, so the peak host memory is the k-NN table plus
 * one chunk. verify: check each chunk file's CRC-32 against the manifest (1,
 * recommended: a changed or swapped file is named instead of searched) or only
 * its size (0). On failure the k-NN table may hold the rows of the chunks
 * before the bad one: free it. */
IMS_API ims_status ims_index_load_knn(const ims_index *idx, ims_index_table table, int verify, ims_knn_table *knn,
                                      ims_error *err);

/* engine/index/compact.c: rewrites an index without its tombstoned records, in
 * chunks of chunk_rows (small chunks merged), under the writer lock and the
 * same crash-safety rules: the new chunks are written under new ids, the
 * manifest that lists them is the commit point, then the old files go. A kill
 * at any moment leaves the old index or the new one. Row ids are renumbered.
 * With upgrade, a version-1 index is rewritten as version 2: its relative
 * paths become absolute against base (the folder it was indexed from). */
typedef struct ims_index_compact_options {
    int upgrade;      /* 1: accept (and upgrade) a version-1 index; 0: refuse one */
    const char *base; /* version 1: what its relative paths are relative to; NULL: the current folder */
} ims_index_compact_options;

typedef struct ims_index_compact_report {
    int from_version;
    int64_t rows, failures;                 /* kept (live) */
    int64_t dropped_rows, dropped_failures; /* tombstoned, now gone */
    int64_t chunks_before, chunks_after;
    uint64_t bytes_before, bytes_after;     /* on disk (ims_index_info's disk_bytes) */
} ims_index_compact_report;

IMS_API void ims_index_compact_options_init(ims_index_compact_options *o);
IMS_API ims_status ims_index_compact(const char *dir, const ims_index_compact_options *o,
                                     ims_index_compact_report *report, ims_error *err);

/* ==== index: index sets (shards) ========================================================== */

/* engine/index/index_set.c: the shards of one collection, read as one index
 * (docs/FORMAT.md, "The index set"). ims_index_set_open is how every reader
 * (search, info, a binding, a server) opens what the user names: an index
 * folder (a set of one, read exactly as the index), a set file written by
 * ims_index_set_create, or a folder whose subfolders are the shards (in name
 * order). Every shard must agree with the first on models, mode, dtype,
 * dimensions, conse_top and precision (else an error naming the shard and the
 * difference). A searcher over a set gives the answer one index of the same
 * files would: the same rows, scores and order (equal scores by path). */
typedef struct ims_index_set ims_index_set;

/* A hit of a set names its shard and the shard's row: row = shard <<
 * IMS_INDEX_SET_ROW_BITS | the shard's row id. Shard 0's rows (and an index
 * opened as a set) keep their own ids. */
#define IMS_INDEX_SET_ROW_BITS 40
#define IMS_INDEX_SET_SHARD(row) ((row) >> IMS_INDEX_SET_ROW_BITS)
#define IMS_INDEX_SET_SHARD_ROW(row) ((row) & ((INT64_C(1) << IMS_INDEX_SET_ROW_BITS) - 1))

IMS_API ims_status ims_index_set_open(const char *path, ims_index_set **out, ims_error *err);
/* One part of a set, for one of parts processes (MPI ranks): only the shards
 * i with i % parts == part are opened (the others are named, not read). */
IMS_API ims_status ims_index_set_open_part(const char *path, int part, int parts, ims_index_set **out,
                                           ims_error *err);
IMS_API void ims_index_set_close(ims_index_set *s); /* NULL is fine */
IMS_API int ims_index_set_is_set(const ims_index_set *s); /* 0: path named a single index folder */
IMS_API int64_t ims_index_set_shard_count(const ims_index_set *s);
IMS_API const char *ims_index_set_shard_path(const ims_index_set *s, int64_t i); /* NULL if out of range */
/* Shard i's index; NULL if out of range or not opened by this part. */
IMS_API const ims_index *ims_index_set_shard(const ims_index_set *s, int64_t i);
/* The configuration the shards share (the first opened one's); NULL if this part opened none. */
IMS_API const ims_index_config *ims_index_set_config(const ims_index_set *s);
/* The file of a set row id (as a hit names it) when that row is live in an
 * opened shard; NULL otherwise (out of range, tombstoned, another part's). */
IMS_API const ims_file_entry *ims_index_set_live_row(const ims_index_set *s, int64_t row);
/* ims_index_info summed over the opened shards: the lowest format version,
 * the latest commit, the totals of rows, failures, chunks, bytes and roots. */
IMS_API void ims_index_set_get_info(const ims_index_set *s, ims_index_info *out);
/* Writes a set file listing the shard folders (each must open and agree with
 * the first), crash-safely; paths below the set file's folder are stored
 * relative to it, others absolute. */
IMS_API ims_status ims_index_set_create(const char *set_path, const char *const *shards, size_t count,
                                        ims_error *err);
/* IMS_OK if rows of b can be searched beside rows of a (chunk sizes may
 * differ), else the first difference naming both values. */
IMS_API ims_status ims_index_config_compare(const ims_index_config *a, const ims_index_config *b, ims_error *err);
/* The shard (0..shards-1) a file belongs to: FNV-1a 64 of its path relative
 * to the indexed root, modulo shards. Adding files never moves another. */
IMS_API int ims_index_shard_of(const char *relative_path, int shards);
/* The shard an index holds (made with ims_index_run_shard): returns the
 * shard count and sets *shard; 0 (and *shard 0) for an index of all its files. */
IMS_API int ims_index_shard(const ims_index *idx, int *shard);

/* ==== index: indexing ===================================================================== */

/* engine/index/indexer.c: folders of images -> an index, kept in step with
 * them: list; compare with the index (new files are added; a file whose size
 * or mtime changed (or content, with verify_content) gets a new row and its
 * old one a tombstone; a deleted file's records get tombstones; a failed file
 * is retried when it changed, or always with retry_failed); decode on threads
 * while the model runs, embed, append, commit every chunk_rows rows and at
 * least every commit_every_s seconds. */

typedef enum ims_index_stage {
    IMS_INDEX_STAGE_PLANNED = 0, /* files listed, estimates known, nothing run yet */
    IMS_INDEX_STAGE_RUNNING,
    IMS_INDEX_STAGE_FINISHED,
} ims_index_stage;

typedef struct ims_index_progress {
    ims_index_stage stage;
    int64_t total;   /* images to process in this run */
    int64_t done;    /* of them, processed */
    int64_t indexed; /* of them, added as rows */
    int64_t failed;  /* files recorded as failures in this run (listing problems included) */
    int64_t already; /* files the index holds as they are now: skipped */
    int64_t ignored; /* files whose names are not an image's */
    const ims_file_list *walk; /* the files listed (their ignored files and the summary of them);
                                  valid during the callback, NULL before the walk */
    uint64_t estimated_disk_bytes, estimated_host_bytes;
    double elapsed_s;
    double decode_wait_s; /* time the model waited for decoded images */
    double model_s;       /* the image model and the embeddings */
    double write_s;       /* appending rows, writing chunks */
    /* The rows added (indexed = added + updated + retried), by why the file was to do: */
    int64_t added;   /* files new to the index */
    int64_t updated; /* files whose size, mtime (or content) changed: the old record is tombstoned */
    int64_t retried; /* files recorded as failed before (their failure record is tombstoned) */
    int64_t removed; /* records of files gone from the folders, tombstoned */
    int64_t commits; /* chunks committed by this run */
    int synthetic;   /* the image model's weights are synthetic (from PLANNED on) */
} ims_index_progress;

typedef struct ims_index_run_options {
    const char *index_dir;
    const char *const *roots;            /* folders or files; each must exist (else an error before
                                            anything is created); made absolute and canonical, so
                                            "p", "./p" and "/abs/p" are one root */
    size_t root_count;
    ims_backend *backend;
    /* Settings an existing index remembers: left at their "unset" value, a
     * run takes the index's (else the default); given, they must equal the
     * index's (else an error naming both values). */
    const ims_weights *image_model;      /* NULL: the index's (its recorded path, checked by size and
                                            CRC-32); a new index needs one. Its identity goes in the manifest */
    const ims_weights *text_model;       /* NULL: the index's, if it has one; a new index: no semantic table */
    int precision;                       /* an ims_precision; -1 (default): the index's, else fp16 on
                                            CUDA and fp32 on the CPU. Both models; tf32 runs the text model as fp32 */
    int mode;                            /* an ims_preprocess_mode; -1 (default): the index's, else the
                                            image model's */
    ims_dtype dtype;                     /* tables; IMS_DTYPE_COUNT (default): the index's, else f16 */
    int chunk_rows;                      /* 0 (default): the index's, else 4096 */
    int conse_top;                       /* classes mixed per image; 0 (default): the index's, else 10 */
    /* Speed and durability: may differ from the index's, which are the defaults
     * (the batch size and threads a run was given are remembered). */
    int batch_size, threads;             /* 0: the index's, else 64 (CUDA) or 16 (CPU), and the CPU
                                            count up to 16 */
    double commit_every_s;               /* commit at least this often; 0: the index's, else 60 */
    ims_decode_options decode;           /* pixel limits (ims_decode_options_init's defaults) */
    int retry_failed;                    /* 1: try every file recorded as failed again */
    int verify_content;                  /* 1: compare the CRC-32 of each file's bytes too (reads every
                                            file; rows indexed without it have none: they are re-indexed) */
    int keep_missing;                    /* 1: keep the records of files gone from the folders (removable
                                            media); 0 (default): tombstone them */
    /* Called on the caller's thread: progress after each batch (and once
     * PLANNED, once FINISHED); each failure as it is recorded. Either may be NULL. */
    void (*progress)(void *ctx, const ims_index_progress *p);
    void (*on_failure)(void *ctx, const char *path, const char *reason);
    /* Called on the caller's thread for an image indexed with a warning (a
     * possible decompression bomb); may be NULL. */
    void (*on_warning)(void *ctx, const char *path, const char *message);
    void *progress_ctx;
} ims_index_run_options;

IMS_API void ims_index_run_options_init(ims_index_run_options *o);
/* Runs to the end (or the first error that is not a bad image: a full disk, a
 * GPU error, another writer holding the index); the index holds every
 * committed chunk either way. *out gets the final counts (may be NULL). */
IMS_API ims_status ims_index_run(const ims_index_run_options *o, ims_index_progress *out, ims_error *err);
/* ims_index_run over one shard of the files: those whose path relative to
 * their root (a file root: its name) has ims_index_shard_of(...) == shard.
 * The index remembers the shard (a run without one takes it; another is
 * refused); shards 1 (shard 0) is ims_index_run. */
IMS_API ims_status ims_index_run_shard(const ims_index_run_options *o, int shard, int shards, ims_index_progress *out,
                                       ims_error *err);

/* ==== index: search ======================================================================= */

/* engine/index/search.c: queries (texts, image files) -> the k most similar live rows
 * of an index, as a library call (the CLI's `search`, a binding or a server).
 *
 * A searcher answers many searches over one open index. It loads what a
 * query needs once, when a query first needs it: the text model and the
 * semantic table for text; the image model and the visual table (or, with
 * IMS_INDEX_TABLE_SEMANTIC, the semantic table and the index's class
 * embeddings) for images. Models come from the paths the manifest recorded
 * (or the options'), and are checked against the manifest's size and CRC-32
 * first: queries are never embedded with a model the index was not built
 * with. Image queries on the semantic table are mixed by ConSE with the
 * index's conse_top, as its rows were. The search is exact over the stored
 * rows (see the k-NN section); tombstoned rows are never returned. Not
 * thread-safe: one searcher per thread. */

typedef struct ims_searcher ims_searcher;

typedef struct ims_search_options {
    ims_backend *backend;    /* required: runs the models and the search; must outlive the searcher */
    int precision;           /* the image model's arithmetic, an ims_precision; -1 (default): the
                                index's where the backend has it (the CPU: fp32; a GPU: fp16 if
                                the index does not say). The text model runs fp16 when this is
                                fp16, else fp32 */
    ims_dtype dtype;         /* the k-NN tables' storage: IMS_DTYPE_COUNT (default): f16 on a GPU
                                (half the bytes to stream), f32 on the CPU (no conversion per search) */
    const char *image_model; /* NULL (default): the path the index recorded */
    const char *text_model;  /* NULL (default): likewise */
    int batch_size, threads; /* image queries: images per forward pass, decode threads; default 16, 4 */
    int verify;              /* 1 (default): check the tables' CRC-32s as they load; 0: sizes only */
    ims_decode_options decode; /* image queries: pixel limits (ims_decode_options_init's defaults) */
    /* A query image that decoded with a warning (a possible decompression
     * bomb), on the caller's thread; may be NULL. */
    void (*on_warning)(void *ctx, const char *path, const char *message);
    void *warning_ctx;
} ims_search_options;

IMS_API void ims_search_options_init(ims_search_options *o);

typedef struct ims_search_query {
    const char *text;      /* a text query (searches the semantic table), or NULL */
    const char *image;     /* an image file (any format the decoder reads), or NULL: exactly one
                              of text and image */
    ims_index_table table; /* image queries: IMS_INDEX_TABLE_VISUAL (0, the default) or
                              IMS_INDEX_TABLE_SEMANTIC (ConSE, as the rows); text: semantic */
} ims_search_query;

typedef struct ims_search_hit {
    int64_t row;      /* the row's id: its place in the index, the chunks counted in order (row r
                         of the concatenated .npy tables, line r of the concatenated rows.txt);
                         of a set: shard << IMS_INDEX_SET_ROW_BITS | the shard's row id */
    float score;      /* cosine similarity */
    const char *path; /* the row's path (owned by the results) */
    int64_t chunk;    /* its vectors: row `offset` of chunk-<chunk>.{visual,semantic}.npy (of its shard) */
    int64_t offset;
} ims_search_hit;

typedef struct ims_search_result {
    ims_index_table table;      /* the table the query searched */
    int count;                  /* hits: min(k, live rows of the index); 0 when the query failed */
    const ims_search_hit *hits; /* (count) best first, equal scores by path, then row */
    ims_status status;          /* IMS_OK, or why this query could not be embedded (an image that
                                   cannot be read, an empty text): the others are still answered */
    const char *error;          /* NULL, or that reason in one line (owned by the results) */
} ims_search_result;

typedef struct ims_search_results {
    int64_t count;                    /* queries, in the order given */
    const ims_search_result *results; /* (count) */
    int64_t failed;                   /* queries whose status is not IMS_OK */
    double load_s, embed_s, search_s; /* seconds this call spent loading models and tables (first
                                         use), embedding the queries, and searching the tables */
} ims_search_results;

/* idx must stay open while the searcher is (and it reads only committed rows). */
IMS_API ims_status ims_searcher_open(const ims_index *idx, const ims_search_options *o, ims_searcher **out,
                                     ims_error *err);
/* count queries, k in 1..IMS_KNN_MAX_K; *out is freed with ims_search_results_free.
 * A query that cannot be embedded (an image that cannot be read, a text with
 * nothing but white space) gets its status and error in its result, and the
 * search goes on; errors that are not the query's (a model, the index, memory)
 * fail the call. */
IMS_API ims_status ims_searcher_search(ims_searcher *s, const ims_search_query *queries, int64_t count, int k,
                                       ims_search_results **out, ims_error *err);
/* 1 if the image model's weights are synthetic (the manifest or the loaded file says so):
 * results are not meaningful. */
IMS_API int ims_searcher_synthetic(const ims_searcher *s);
IMS_API void ims_searcher_close(ims_searcher *s);         /* NULL is fine */
IMS_API void ims_search_results_free(ims_search_results *r); /* NULL is fine */

/* A searcher over a set (which must stay open while the searcher is): every
 * shard the set opened is searched, and the hits merged exactly (equal scores
 * by path, then set row). The models are loaded once. */
IMS_API ims_status ims_searcher_open_set(const ims_index_set *set, const ims_search_options *o, ims_searcher **out,
                                         ims_error *err);

/* A search in two steps, for searches spread over processes (MPI): one
 * process embeds the queries (ims_searcher_embed), sends the vectors to the
 * others, each searches the shards of its part (ims_searcher_search_vectors
 * over a set opened with ims_index_set_open_part), and one merges their
 * results (ims_search_results_merge): the answer of one searcher over the
 * whole set. ims_searcher_search is the two steps in one process. */
typedef struct ims_search_vector {
    ims_index_table table; /* the table the query searches */
    int dim;               /* of vec: the table's columns; 0 when the query failed */
    const float *vec;      /* (dim), or NULL when the query could not be embedded */
    ims_status status;     /* IMS_OK, or why not (the query is then not searched) */
    const char *error;     /* NULL, or the reason in one line */
} ims_search_vector;

typedef struct ims_search_vectors {
    int64_t count;                  /* queries, in the order given */
    const ims_search_vector *items; /* (count) */
} ims_search_vectors;

IMS_API ims_status ims_searcher_embed(ims_searcher *s, const ims_search_query *queries, int64_t count,
                                      ims_search_vectors **out, ims_error *err);
IMS_API void ims_search_vectors_free(ims_search_vectors *v); /* NULL is fine */
/* Searches count vectors over the shards this searcher's set opened; a
 * vector whose status is not IMS_OK gets that status and error in its result. */
IMS_API ims_status ims_searcher_search_vectors(ims_searcher *s, const ims_search_vector *vectors, int64_t count,
                                               int k, ims_search_results **out, ims_error *err);
/* Merges n results of the same queries (each best first, as a searcher gives
 * them) into the k best per query, equal scores by path then row. A query
 * failed in any part fails in the merge (with the first error given). */
IMS_API ims_status ims_search_results_merge(const ims_search_results *const *parts, int64_t n, int k,
                                            ims_search_results **out, ims_error *err);

/* One search without keeping a searcher: open, search, close. */
IMS_API ims_status ims_index_search(const ims_index *idx, const ims_search_options *o,
                                    const ims_search_query *queries, int64_t count, int k,
                                    ims_search_results **out, ims_error *err);

/* ==== converter: checkpoints to weight files ============================================== */

/* weights_tools/convert.c (built into the same library): PyTorch checkpoints
 * (zip and legacy .pth), safetensors and Hugging Face model folders -> weight
 * files, without running any pickle code. */
typedef enum ims_convert_arch {
    IMS_CONVERT_ARCH_AUTO = 0,
    IMS_CONVERT_ARCH_INCEPTION_V3,     /* torchvision */
    IMS_CONVERT_ARCH_INCEPTION_V3_FID, /* pytorch-fid's FID Inception */
    IMS_CONVERT_ARCH_BERT,             /* a BERT-family sentence encoder */
} ims_convert_arch;

IMS_API const char *ims_convert_arch_name(ims_convert_arch arch); /* "inception_v3", ... */
IMS_API ims_status ims_convert_arch_parse(const char *text, ims_convert_arch *out, ims_error *err);

typedef struct ims_convert_options {
    ims_convert_arch arch;
    ims_dtype dtype;         /* IMS_DTYPE_F32 (default) or IMS_DTYPE_F16 for weight matrices */
    int transform_input;     /* Inception: -1 = the variant's default (torchvision on, FID off), 0, 1 */
    const char *labels_path; /* Inception: a file of class names, one per line (default: ImageNet's 1000) */
    const char *source;      /* recorded as metadata "source" */
} ims_convert_options;

IMS_API void ims_convert_options_init(ims_convert_options *o);

/* What the conversion did, for the CLI's summary. */
typedef struct ims_convert_report {
    ims_convert_arch arch;
    const char *format; /* the input's format: "PyTorch zip", "PyTorch legacy", "safetensors" */
    size_t tensors_in, tensors_out, tensors_ignored;
    uint64_t bytes_out;
} ims_convert_report;

/* Converts a checkpoint to a weight file without running any of its code.
 * input: a PyTorch (zip or legacy) or safetensors file, or a Hugging Face /
 * sentence-transformers model directory (BERT). Written crash-safely. */
IMS_API ims_status ims_convert(const char *input, const char *output, const ims_convert_options *o, ims_convert_report *report,
                               ims_error *err);

/* A weight file of the architecture's full size with synthetic weights (a
 * documented generator, weights_tools/synthetic.c), for machines without the
 * published checkpoint, benchmarks and tests. The file has metadata
 * "synthetic" = 1, and tools that load it warn that results are not
 * meaningful. Only IMS_CONVERT_ARCH_INCEPTION_V3. */
IMS_API ims_status ims_convert_synthetic(ims_convert_arch arch, const char *output, const ims_convert_options *o,
                                         ims_convert_report *report, ims_error *err);

#ifdef __cplusplus
}
#endif

#endif /* IMGSEARCH_H */
