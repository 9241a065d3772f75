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

typedef struct imsi_weights_writer imsi_weights_writer;

ims_status imsi_weights_writer_create(imsi_weights_writer **out, ims_error *err);
void imsi_weights_writer_free(imsi_weights_writer *wr);

/* Power of two in 64..65536; the default is 256. */
ims_status imsi_weights_writer_set_alignment(imsi_weights_writer *wr, uint32_t alignment, ims_error *err);

ims_status imsi_weights_writer_add_i64(imsi_weights_writer *wr, const char *key, int64_t value, ims_error *err);
ims_status imsi_weights_writer_add_f64(imsi_weights_writer *wr, const char *key, double value, ims_error *err);
ims_status imsi_weights_writer_add_string(imsi_weights_writer *wr, const char *key, const char *value,
                                          ims_error *err);
ims_status imsi_weights_writer_add_i64_array(imsi_weights_writer *wr, const char *key, const int64_t *values,
                                             size_t count, ims_error *err);
ims_status imsi_weights_writer_add_f64_array(imsi_weights_writer *wr, const char *key, const double *values,
                                             size_t count, ims_error *err);
ims_status imsi_weights_writer_add_string_array(imsi_weights_writer *wr, const char *key,
                                                const char *const *values, size_t count, ims_error *err);

/* data: ndim dims of `shape`, row-major, little-endian elements; not copied. */
ims_status imsi_weights_writer_add_tensor(imsi_weights_writer *wr, const char *name, ims_dtype dtype, int ndim,
                                          const int64_t *shape, const void *data, ims_error *err);

/* The same, but the writer takes ownership of data (malloc'd) and frees it in
 * imsi_weights_writer_free, also when this call fails. */
ims_status imsi_weights_writer_add_tensor_owned(imsi_weights_writer *wr, const char *name, ims_dtype dtype, int ndim,
                                                const int64_t *shape, void *data, ims_error *err);

/* Float values stored as dtype (f32, or f16 rounded to nearest even); takes
 * ownership of values (malloc'd) as add_tensor_owned does. */
ims_status imsi_weights_writer_add_floats(imsi_weights_writer *wr, const char *name, ims_dtype dtype, int ndim,
                                          const int64_t *shape, float *values, ims_error *err);

/* Writes path crash-safely: a temporary file in the same folder, fsync, rename. */
ims_status imsi_weights_writer_write_file(const imsi_weights_writer *wr, const char *path, ims_error *err);

/* The whole file in one malloc'd buffer (for tests and fuzz seeds); free() it. */
ims_status imsi_weights_writer_write_memory(const imsi_weights_writer *wr, unsigned char **out, size_t *size,
                                            ims_error *err);

#endif /* IMS_WEIGHTS_WRITER_H */
