"""_ffi.py: the one place where Python meets libimgsearch.so (ctypes).

Everything the binding knows of the C API is written here once, as C:
- DECLARATIONS: the prototypes of the functions the package calls, copied
  from include/imgsearch.h; the ctypes signatures are derived from this text
  by a small parser (`_ctype`), so a prototype is never written twice.
- The structs the package reads or fills, as ctypes Structures with the C
  field names and types, in STRUCTS; opaque handles in OPAQUE.
- The enum values and #defines it uses, in CONSTANTS.

tests/test_abi.py compiles a C file that includes imgsearch.h and then
redeclares every prototype of DECLARATIONS (a conflicting type is a compile
error), prints sizeof/_Alignof of every struct and the offset and size of
every field, and the value of every constant, and compares them with what
ctypes computes here: a header change that this file does not follow fails
that test instead of silently corrupting memory.

The library is loaded from the package folder (where `pip install` puts
libimgsearch.so), or from $IMGSEARCH_LIBRARY when set (a sanitizer build,
a development build). ctypes releases the GIL around every call.
"""
from __future__ import annotations

import ctypes
import os
import re
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char, c_char_p, c_double, c_float, c_int, c_int32, c_int64,
                    c_size_t, c_uint, c_uint8, c_uint16, c_uint32, c_uint64, c_void_p)

# ---- Constants: enum values and #defines of imgsearch.h ------------------------------

CONSTANTS = {
    # ims_status
    "IMS_OK": 0,
    "IMS_ERR_ARGUMENT": 1,
    "IMS_ERR_IO": 2,
    "IMS_ERR_FORMAT": 3,
    "IMS_ERR_CHECKSUM": 4,
    "IMS_ERR_NOMEM": 5,
    "IMS_ERR_UNSUPPORTED": 6,
    "IMS_ERR_NO_DEVICE": 7,
    "IMS_ERR_CUDA": 8,
    "IMS_ERR_NOT_FOUND": 9,
    "IMS_ERR_BUSY": 10,
    "IMS_ERROR_MSG_MAX": 512,
    # ims_dtype
    "IMS_DTYPE_F32": 0,
    "IMS_DTYPE_F16": 1,
    "IMS_DTYPE_I32": 2,
    "IMS_DTYPE_U8": 3,
    "IMS_DTYPE_I64": 4,
    "IMS_DTYPE_COUNT": 5,
    # ims_precision
    "IMS_PRECISION_FP32": 0,
    "IMS_PRECISION_TF32": 1,
    "IMS_PRECISION_FP16": 2,
    # ims_backend_kind
    "IMS_BACKEND_CPU": 0,
    "IMS_BACKEND_CUDA": 1,
    # weights
    "IMS_WEIGHTS_VERIFY_DATA": 1,
    # image
    "IMS_IMAGE_WARNING_LARGE": 1,
    "IMS_DECODE_WARN_PIXELS": 89478485,
    "IMS_DECODE_MAX_PIXELS": 2 * 89478485,
    "IMS_PREPROCESS_TORCHVISION": 0,
    "IMS_PREPROCESS_FID": 1,
    "IMS_PREPROCESS_CLEAN": 2,
    "IMS_LAYOUT_NCHW": 0,
    "IMS_LAYOUT_NHWC": 1,
    "IMS_IMAGE_INPUT_SIZE": 299,
    "IMS_IMAGE_RESIZE_SIZE": 342,
    # k-NN
    "IMS_KNN_MAX_K": 16384,
    "IMS_KNN_METRIC_COSINE": 0,
    "IMS_KNN_METRIC_IP": 1,
    # index
    "IMS_INDEX_TABLE_VISUAL": 0,
    "IMS_INDEX_TABLE_SEMANTIC": 1,
    "IMS_INDEX_STAGE_PLANNED": 0,
    "IMS_INDEX_STAGE_RUNNING": 1,
    "IMS_INDEX_STAGE_FINISHED": 2,
    # converter
    "IMS_CONVERT_ARCH_AUTO": 0,
    "IMS_CONVERT_ARCH_INCEPTION_V3": 1,
    "IMS_CONVERT_ARCH_INCEPTION_V3_FID": 2,
    "IMS_CONVERT_ARCH_BERT": 3,
}
globals().update(CONSTANTS)

# Enum types of the header: passed and returned as C int (their size on every ABI we build for).
ENUM_TYPES = ("ims_status", "ims_dtype", "ims_precision", "ims_backend_kind", "ims_preprocess_mode", "ims_layout",
              "ims_index_table", "ims_index_stage", "ims_knn_metric", "ims_knn_path", "ims_convert_arch")

# ---- Structs ---------------------------------------------------------------------------


class ims_error(Structure):
    _fields_ = [("code", c_int), ("msg", c_char * 512)]


class ims_str(Structure):
    _fields_ = [("ptr", c_void_p), ("len", c_size_t)]


class ims_backend_info(Structure):
    _fields_ = [("kind", c_int), ("name", c_char * 64), ("device", c_char * 256), ("threads", c_int),
                ("compute_major", c_int), ("compute_minor", c_int), ("multiprocessors", c_int),
                ("memory_total", c_uint64), ("memory_free", c_uint64),
                ("driver_version", c_int), ("runtime_version", c_int), ("cudnn_version", c_int),
                ("cublas_version", c_int)]


class ims_weights_identity(Structure):
    _fields_ = [("name", c_char * 256), ("path", c_char * 4096), ("synthetic", c_int), ("bytes", c_uint64),
                ("crc32", c_uint32)]


class ims_file_entry(Structure):
    _fields_ = [("path", c_char_p), ("size", c_uint64), ("mtime_ns", c_int64)]


class ims_file_problem(Structure):
    _fields_ = [("path", c_char_p), ("reason", c_char_p)]


class ims_file_list(Structure):
    _fields_ = [("files", POINTER(ims_file_entry)), ("file_count", c_int64), ("problems", POINTER(ims_file_problem)),
                ("problem_count", c_int64), ("ignored_count", c_int64), ("ignored", POINTER(c_char_p))]


class ims_image(Structure):
    _fields_ = [("width", c_int), ("height", c_int), ("pixels", POINTER(c_uint8)), ("warnings", c_uint)]


class ims_decode_budget(Structure):  # opaque
    pass


class ims_decode_options(Structure):
    _fields_ = [("max_pixels", c_uint64), ("apply_exif_orientation", c_int), ("warn_pixels", c_uint64),
                ("budget", POINTER(ims_decode_budget))]


class ims_image_item(Structure):
    _fields_ = [("status", c_int), ("path", c_char_p), ("reason", c_char * 512), ("warnings", c_uint)]


class ims_image_encoder_run_options(Structure):
    _fields_ = [("mode", c_int), ("batch_size", c_int), ("threads", c_int), ("buffers", c_int),
                ("decode", ims_decode_options)]


class ims_image_encoder_batch(Structure):
    _fields_ = [("first", c_int64), ("count", c_int64), ("failed", c_int64), ("items", POINTER(ims_image_item)),
                ("features", POINTER(c_float)), ("logits", POINTER(c_float)), ("model_s", c_double),
                ("wait_s", c_double)]


class ims_knn_options(Structure):
    _fields_ = [("metric", c_int), ("dtype", c_int), ("max_rows_per_chunk", c_int64), ("path", c_int)]


class ims_index_config(Structure):
    _fields_ = [("mode", c_int), ("dtype", c_int), ("chunk_rows", c_int), ("visual_dim", c_int),
                ("semantic_dim", c_int), ("conse_top", c_int), ("precision", c_int),
                ("image_model", ims_weights_identity), ("text_model", ims_weights_identity)]


class ims_index_progress(Structure):
    _fields_ = [("stage", c_int), ("total", c_int64), ("done", c_int64), ("indexed", c_int64), ("failed", c_int64),
                ("already", c_int64), ("ignored", c_int64), ("walk", POINTER(ims_file_list)),
                ("estimated_disk_bytes", c_uint64),
                ("estimated_host_bytes", c_uint64), ("elapsed_s", c_double), ("decode_wait_s", c_double),
                ("model_s", c_double), ("write_s", c_double), ("added", c_int64), ("updated", c_int64),
                ("retried", c_int64), ("removed", c_int64), ("commits", c_int64), ("synthetic", c_int)]


class ims_kid_options(Structure):
    _fields_ = [("subsets", c_int), ("subset_size", c_int), ("degree", c_int), ("gamma", c_double),
                ("coef0", c_double), ("seed", c_uint32)]


class ims_index_info(Structure):
    _fields_ = [("version", c_int), ("rows", c_int64), ("live_rows", c_int64), ("failures", c_int64),
                ("live_failures", c_int64), ("chunks", c_int64), ("disk_bytes", c_uint64), ("committed", c_char * 32),
                ("root_count", c_int64)]


class ims_index_compact_options(Structure):
    _fields_ = [("upgrade", c_int), ("base", c_char_p)]


class ims_index_compact_report(Structure):
    _fields_ = [("from_version", c_int), ("rows", c_int64), ("failures", c_int64), ("dropped_rows", c_int64),
                ("dropped_failures", c_int64), ("chunks_before", c_int64), ("chunks_after", c_int64),
                ("bytes_before", c_uint64), ("bytes_after", c_uint64)]


# Opaque handles: only pointers to them cross the boundary.
class ims_backend(Structure):
    pass


class ims_weights(Structure):
    pass


class ims_image_encoder(Structure):
    pass


class ims_image_encoder_run(Structure):
    pass


class ims_tokenizer(Structure):
    pass


class ims_text_embedder(Structure):
    pass


class ims_knn_table(Structure):
    pass


class ims_knn_multi(Structure):
    pass


class ims_index(Structure):
    pass


class ims_fid_stats(Structure):
    pass


class ims_index_set(Structure):
    pass


class ims_searcher(Structure):
    pass


PROGRESS_FN = CFUNCTYPE(None, c_void_p, POINTER(ims_index_progress))
FAILURE_FN = CFUNCTYPE(None, c_void_p, c_char_p, c_char_p)  # also on_warning's (ctx, path, message)


class ims_index_run_options(Structure):
    _fields_ = [("index_dir", c_char_p), ("roots", POINTER(c_char_p)), ("root_count", c_size_t),
                ("backend", POINTER(ims_backend)), ("image_model", POINTER(ims_weights)),
                ("text_model", POINTER(ims_weights)), ("precision", c_int), ("mode", c_int), ("dtype", c_int),
                ("chunk_rows", c_int), ("conse_top", c_int), ("batch_size", c_int), ("threads", c_int),
                ("commit_every_s", c_double), ("decode", ims_decode_options), ("retry_failed", c_int),
                ("verify_content", c_int), ("keep_missing", c_int), ("progress", PROGRESS_FN), ("on_failure", FAILURE_FN),
                ("on_warning", FAILURE_FN), ("progress_ctx", c_void_p)]


class ims_search_options(Structure):
    _fields_ = [("backend", POINTER(ims_backend)), ("precision", c_int), ("dtype", c_int),
                ("image_model", c_char_p), ("text_model", c_char_p), ("batch_size", c_int), ("threads", c_int),
                ("verify", c_int), ("decode", ims_decode_options), ("on_warning", FAILURE_FN),
                ("warning_ctx", c_void_p)]


class ims_search_query(Structure):
    _fields_ = [("text", c_char_p), ("image", c_char_p), ("table", c_int)]


class ims_search_hit(Structure):
    _fields_ = [("row", c_int64), ("score", c_float), ("path", c_char_p), ("chunk", c_int64), ("offset", c_int64)]


class ims_search_result(Structure):
    _fields_ = [("table", c_int), ("count", c_int), ("hits", POINTER(ims_search_hit)), ("status", c_int),
                ("error", c_char_p)]


class ims_search_results(Structure):
    _fields_ = [("count", c_int64), ("results", POINTER(ims_search_result)), ("failed", c_int64),
                ("load_s", c_double), ("embed_s", c_double), ("search_s", c_double)]


class ims_convert_options(Structure):
    _fields_ = [("arch", c_int), ("dtype", c_int), ("transform_input", c_int), ("labels_path", c_char_p),
                ("source", c_char_p)]


class ims_convert_report(Structure):
    _fields_ = [("arch", c_int), ("format", c_char_p), ("tensors_in", c_size_t), ("tensors_out", c_size_t),
                ("tensors_ignored", c_size_t), ("bytes_out", c_uint64)]


STRUCTS = [ims_error, ims_str, ims_backend_info, ims_weights_identity, ims_file_entry, ims_file_problem,
           ims_file_list, ims_image,
           ims_decode_options, ims_image_item, ims_image_encoder_run_options, ims_image_encoder_batch,
           ims_knn_options, ims_kid_options, ims_index_config, ims_index_info, ims_index_compact_options, ims_index_compact_report,
           ims_index_progress, ims_index_run_options, ims_search_options,
           ims_search_query, ims_search_hit, ims_search_result, ims_search_results, ims_convert_options,
           ims_convert_report]
OPAQUE = [ims_decode_budget, ims_backend, ims_weights, ims_image_encoder, ims_image_encoder_run, ims_tokenizer, ims_text_embedder,
          ims_knn_table, ims_knn_multi, ims_index, ims_searcher, ims_fid_stats, ims_index_set]

# ---- Functions: prototypes as include/imgsearch.h writes them -------------------------------

DECLARATIONS = """
const char *ims_status_name(ims_status status);
void ims_free(void *ptr);
const char *ims_precision_name(ims_precision p);
ims_status ims_precision_parse(const char *text, ims_precision *out, ims_error *err);
const char *ims_dtype_name(ims_dtype dtype);

int ims_cuda_compiled(void);
ims_status ims_cuda_device_count(int *count, ims_error *err);
ims_status ims_backend_create(ims_backend_kind kind, int device, ims_backend **out, ims_error *err);
void ims_backend_free(ims_backend *be);
const ims_backend_info *ims_backend_get_info(const ims_backend *be);
void ims_library_versions(char *buf, size_t size);

ims_status ims_weights_open(const char *path, unsigned flags, ims_weights **out, ims_error *err);
void ims_weights_close(ims_weights *w);
ims_status ims_weights_get_i64(const ims_weights *w, const char *key, int64_t *out, ims_error *err);
ims_status ims_weights_get_string(const ims_weights *w, const char *key, ims_str *out, ims_error *err);

ims_status ims_file_list_walk(const char *const *roots, size_t root_count, ims_file_list *out, ims_error *err);
void ims_file_list_free(ims_file_list *list);

void ims_decode_options_init(ims_decode_options *o);
ims_status ims_image_decode(const void *data, size_t size, const ims_decode_options *o, ims_image *out,
                            ims_error *err);
ims_status ims_image_decode_file(const char *path, const ims_decode_options *o, ims_image *out, ims_error *err);
void ims_image_free(ims_image *img);
ims_status ims_preprocess_torchvision_u8(const ims_image *img, int resize, int crop, uint8_t *out, ims_error *err);
ims_status ims_preprocess_fid(const ims_image *img, int size, ims_layout layout, float *out, ims_error *err);
ims_status ims_preprocess_clean(const ims_image *img, int size, ims_layout layout, float *out, ims_error *err);

ims_status ims_image_encoder_create(ims_backend *be, const ims_weights *w, ims_precision p,
                                    ims_image_encoder **out, ims_error *err);
void ims_image_encoder_free(ims_image_encoder *enc);
ims_status ims_image_encoder_forward(ims_image_encoder *enc, const uint8_t *images, int64_t batch, float *features,
                                     float *logits, ims_error *err);
ims_status ims_image_encoder_forward_f32(ims_image_encoder *enc, const float *images, int64_t batch,
                                         float *features, float *logits, ims_error *err);
int ims_image_encoder_num_classes(const ims_image_encoder *enc);
int ims_image_encoder_feature_dim(const ims_image_encoder *enc);
ims_preprocess_mode ims_image_encoder_mode(const ims_image_encoder *enc);
ims_str ims_image_encoder_label(const ims_image_encoder *enc, int i);
void ims_image_encoder_run_options_init(ims_image_encoder_run_options *o);
ims_status ims_image_encoder_run_start(ims_image_encoder *enc, ims_backend *backend, const char *const *paths,
                                       int64_t count, const ims_image_encoder_run_options *o,
                                       ims_image_encoder_run **out, ims_error *err);
ims_status ims_image_encoder_run_next(ims_image_encoder_run *run, const ims_image_encoder_batch **batch,
                                      ims_error *err);
void ims_image_encoder_run_free(ims_image_encoder_run *run);

ims_status ims_tokenizer_create_from_weights(const ims_weights *w, ims_tokenizer **out, ims_error *err);
void ims_tokenizer_free(ims_tokenizer *tok);
int ims_tokenizer_max_len(const ims_tokenizer *tok);
size_t ims_tokenizer_vocab_size(const ims_tokenizer *tok);
ims_status ims_tokenizer_encode_batch(const ims_tokenizer *tok, const char *const *texts, const size_t *lens,
                                      int64_t count, int max_len, int32_t *ids, int32_t *lengths, int *seq_len,
                                      ims_error *err);
const char *ims_tokenizer_decode_token(const ims_tokenizer *tok, int32_t id);

ims_status ims_text_embedder_create(ims_backend *be, const ims_weights *w, ims_precision precision,
                                    ims_text_embedder **out, ims_error *err);
void ims_text_embedder_free(ims_text_embedder *e);
int ims_text_embedder_dim(const ims_text_embedder *e);
ims_status ims_text_embed(const ims_text_embedder *e, const char *const *texts, int64_t n, float *out,
                          ims_error *err);

void ims_knn_options_init(ims_knn_options *o);
ims_status ims_knn_create(ims_backend *be, int64_t dim, const ims_knn_options *o, ims_knn_table **out,
                          ims_error *err);
ims_status ims_knn_append(ims_knn_table *t, const void *rows, ims_dtype dtype, int64_t n, ims_error *err);
ims_status ims_knn_reserve(ims_knn_table *t, int64_t rows, ims_error *err);
int64_t ims_knn_rows(const ims_knn_table *t);
int64_t ims_knn_dim(const ims_knn_table *t);
ims_status ims_knn_search(ims_knn_table *t, const float *queries, int64_t b, int k, int64_t *ids, float *scores,
                          ims_error *err);
void ims_knn_free(ims_knn_table *t);
ims_status ims_knn_multi_create(ims_backend *const *bes, int count, int64_t dim, const ims_knn_options *o,
                                ims_knn_multi **out, ims_error *err);
ims_status ims_knn_multi_append(ims_knn_multi *m, const void *rows, ims_dtype dtype, int64_t n, ims_error *err);
ims_status ims_knn_multi_search(ims_knn_multi *m, const float *queries, int64_t b, int k, int64_t *ids,
                                float *scores, ims_error *err);
void ims_knn_multi_free(ims_knn_multi *m);

ims_status ims_fid_stats_create(int dim, ims_fid_stats **out, ims_error *err);
void ims_fid_stats_free(ims_fid_stats *s);
ims_status ims_fid_stats_add(ims_fid_stats *s, const float *rows, int64_t n, ims_error *err);
int ims_fid_stats_dim(const ims_fid_stats *s);
int64_t ims_fid_stats_count(const ims_fid_stats *s);
ims_status ims_fid_stats_get(ims_fid_stats *s, const double **mu, const double **sigma, ims_error *err);
ims_status ims_fid_stats_from(const double *mu, const double *sigma, int dim, int64_t count, ims_fid_stats **out,
                              ims_error *err);
ims_status ims_fid_stats_save(ims_fid_stats *s, const char *path, const char *mode, ims_error *err);
ims_status ims_fid_stats_load(const char *path, ims_fid_stats **out, char *mode, size_t mode_size, ims_error *err);
ims_status ims_fid_distance(ims_fid_stats *a, ims_fid_stats *b, double *fid, ims_error *err);
void ims_kid_options_init(ims_kid_options *o);
ims_status ims_kid(const float *x, int64_t nx, const float *y, int64_t ny, int dim, const ims_kid_options *o,
                   double *mean, double *std, int *size_used, ims_error *err);
ims_status ims_inception_score(const float *logits, int64_t n, int classes, int splits, uint32_t seed, double *mean,
                               double *std, ims_error *err);

ims_status ims_index_open(const char *dir, ims_index **out, ims_error *err);
void ims_index_close(ims_index *idx);
const ims_index_config *ims_index_get_config(const ims_index *idx);
int64_t ims_index_row_count(const ims_index *idx);
int64_t ims_index_failure_count(const ims_index *idx);
int64_t ims_index_chunk_count(const ims_index *idx);
const ims_file_entry *ims_index_row(const ims_index *idx, int64_t row);
const ims_file_problem *ims_index_failure(const ims_index *idx, int64_t i);
int ims_index_row_live(const ims_index *idx, int64_t row);
int ims_index_failure_live(const ims_index *idx, int64_t i);
int64_t ims_index_live_row_count(const ims_index *idx);
int64_t ims_index_live_rows(const ims_index *idx, int64_t *out, int64_t cap);
ims_status ims_index_chunk(const ims_index *idx, int64_t c, int64_t *id, int64_t *first_row, int64_t *rows,
                           ims_error *err);
void ims_index_get_info(const ims_index *idx, ims_index_info *out);
const char *ims_index_root(const ims_index *idx, int64_t i);
void ims_index_compact_options_init(ims_index_compact_options *o);
ims_status ims_index_compact(const char *dir, const ims_index_compact_options *o, ims_index_compact_report *report,
                             ims_error *err);
void ims_index_run_options_init(ims_index_run_options *o);
ims_status ims_index_run(const ims_index_run_options *o, ims_index_progress *out, ims_error *err);

ims_status ims_index_set_open(const char *path, ims_index_set **out, ims_error *err);
void ims_index_set_close(ims_index_set *s);
int ims_index_set_is_set(const ims_index_set *s);
int64_t ims_index_set_shard_count(const ims_index_set *s);
const char *ims_index_set_shard_path(const ims_index_set *s, int64_t i);
const ims_index *ims_index_set_shard(const ims_index_set *s, int64_t i);
const ims_index_config *ims_index_set_config(const ims_index_set *s);
void ims_index_set_get_info(const ims_index_set *s, ims_index_info *out);
ims_status ims_searcher_open_set(const ims_index_set *set, const ims_search_options *o, ims_searcher **out,
                                 ims_error *err);

void ims_search_options_init(ims_search_options *o);
ims_status ims_searcher_open(const ims_index *idx, const ims_search_options *o, ims_searcher **out, ims_error *err);
ims_status ims_searcher_search(ims_searcher *s, const ims_search_query *queries, int64_t count, int k,
                               ims_search_results **out, ims_error *err);
int ims_searcher_synthetic(const ims_searcher *s);
void ims_searcher_close(ims_searcher *s);
void ims_search_results_free(ims_search_results *r);

const char *ims_convert_arch_name(ims_convert_arch arch);
ims_status ims_convert_arch_parse(const char *text, ims_convert_arch *out, ims_error *err);
void ims_convert_options_init(ims_convert_options *o);
ims_status ims_convert(const char *input, const char *output, const ims_convert_options *o,
                       ims_convert_report *report, ims_error *err);
ims_status ims_convert_synthetic(ims_convert_arch arch, const char *output, const ims_convert_options *o,
                                 ims_convert_report *report, ims_error *err);
"""

_SCALARS = {
    "void": None, "char": c_char, "int": c_int, "unsigned": c_uint, "float": c_float, "double": c_double,
    "size_t": c_size_t, "int32_t": c_int32, "int64_t": c_int64, "uint8_t": c_uint8, "uint16_t": c_uint16,
    "uint32_t": c_uint32, "uint64_t": c_uint64,
}
_TYPES = dict(_SCALARS)
_TYPES.update({name: c_int for name in ENUM_TYPES})
_TYPES.update({cls.__name__: cls for cls in STRUCTS + OPAQUE})


def _ctype(text: str):
    """A C type as the declarations write it ("const char *const *") -> its ctypes type."""
    stars = text.count("*")
    words = [w for w in re.findall(r"[A-Za-z_]\w*", text) if w != "const"]
    if len(words) != 1 or words[0] not in _TYPES:
        raise TypeError(f"_ffi: type '{text}' is not known")
    base = _TYPES[words[0]]
    if stars == 0:
        return base
    if base is None:  # void *, void **
        t = c_void_p
    elif base is c_char:  # char *: a NUL-terminated string (or a buffer for it)
        t = c_char_p
    else:
        t = POINTER(base)
    for _ in range(stars - 1):
        t = POINTER(t)
    return t


def parse_declarations(text: str = DECLARATIONS):
    """[(name, restype, [argtypes])] of each prototype in text."""
    out = []
    for decl in text.split(";"):
        decl = " ".join(decl.split())
        if not decl:
            continue
        m = re.fullmatch(r"(.+?)\b(ims_\w+)\s*\((.*)\)", decl)
        if not m:
            raise TypeError(f"_ffi: cannot read the declaration '{decl}'")
        ret, name, params = m.groups()
        args = []
        if params.strip() != "void":
            for p in params.split(","):
                p = re.sub(r"\b[A-Za-z_]\w*\s*$", "", p.strip())  # drop the parameter's name
                args.append(_ctype(p))
        out.append((name, _ctype(ret), args))
    return out


def library_path() -> str:
    """Where libimgsearch.so is loaded from: $IMGSEARCH_LIBRARY, else beside this file."""
    env = os.environ.get("IMGSEARCH_LIBRARY")
    if env:
        return env
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "libimgsearch.so")


class _Library:
    """The loaded library: one attribute per declared function, with its signature set."""

    def __init__(self, path: str):
        self.path = path
        self.dll = ctypes.CDLL(path)  # CDLL: the GIL is released during each call
        for name, restype, argtypes in parse_declarations():
            fn = getattr(self.dll, name)
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)


_lib = None


def lib() -> _Library:
    """The library, loaded on first use."""
    global _lib
    if _lib is None:
        path = library_path()
        try:
            _lib = _Library(path)
        except OSError as e:
            raise ImportError(f"imgsearch: cannot load the C library {path}: {e} (is the package installed with "
                              "`pip install ./python`, or $IMGSEARCH_LIBRARY set?)") from e
    return _lib
