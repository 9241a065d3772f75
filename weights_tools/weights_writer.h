/* weights_writer.h: builds a weight file (.isw, docs/FORMAT.md).
 *
 * Add metadata and tensors in the order they should appear, then write once.
 * Metadata values are copied when added; tensor data is referenced and must stay
 * valid until the write. Every name is checked as the reader checks it, so the
 * writer cannot produce a file the reader rejects.
 */
#ifndef IMS_WEIGHTS_WRITER_H
#define IMS_WEIGHTS_WRITER_H

#include "imgsearch.h"

typedef struct ims_weights_writer ims_weights_writer;

ims_status ims_weights_writer_create(ims_weights_writer **out, ims_error *err);
void ims_weights_writer_free(ims_weights_writer *wr);

/* Power of two in 64..65536; the default is 256. */
ims_status ims_weights_writer_set_alignment(ims_weights_writer *wr, uint32_t alignment, ims_error *err);

ims_status ims_weights_writer_add_i64(ims_weights_writer *wr, const char *key, int64_t value, ims_error *err);
ims_status ims_weights_writer_add_f64(ims_weights_writer *wr, const char *key, double value, ims_error *err);
ims_status ims_weights_writer_add_string(ims_weights_writer *wr, const char *key, const char *value,
                                         ims_error *err);
ims_status ims_weights_writer_add_i64_array(ims_weights_writer *wr, const char *key, const int64_t *values,
                                            size_t count, ims_error *err);
ims_status ims_weights_writer_add_f64_array(ims_weights_writer *wr, const char *key, const double *values,
                                            size_t count, ims_error *err);
ims_status ims_weights_writer_add_string_array(ims_weights_writer *wr, const char *key,
                                               const char *const *values, size_t count, ims_error *err);

/* data: ndim dims of `shape`, row-major, little-endian elements; not copied. */
ims_status ims_weights_writer_add_tensor(ims_weights_writer *wr, const char *name, ims_dtype dtype, int ndim,
                                         const int64_t *shape, const void *data, ims_error *err);

/* The same, but the writer takes ownership of data (malloc'd) and frees it in
 * ims_weights_writer_free, also when this call fails. */
ims_status ims_weights_writer_add_tensor_owned(ims_weights_writer *wr, const char *name, ims_dtype dtype, int ndim,
                                               const int64_t *shape, void *data, ims_error *err);

/* Float values stored as dtype (f32, or f16 rounded to nearest even); takes
 * ownership of values (malloc'd) as add_tensor_owned does. */
ims_status ims_weights_writer_add_floats(ims_weights_writer *wr, const char *name, ims_dtype dtype, int ndim,
                                         const int64_t *shape, float *values, ims_error *err);

/* Writes path crash-safely: a temporary file in the same folder, fsync, rename. */
ims_status ims_weights_writer_write_file(const ims_weights_writer *wr, const char *path, ims_error *err);

/* The whole file in one malloc'd buffer (for tests and fuzz seeds); free() it. */
ims_status ims_weights_writer_write_memory(const ims_weights_writer *wr, unsigned char **out, size_t *size,
                                           ims_error *err);

#endif /* IMS_WEIGHTS_WRITER_H */
