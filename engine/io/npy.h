/* npy.h: internals of engine/io/npy.c shared with its tests and the fuzzer.
 *
 * The public reader and writers are in include/imgsearch.h (block ".npy files").
 * Here: the header formatter, so tests can build files byte by byte around a
 * header exactly as the writer makes it.
 */
#ifndef IMS_NPY_H
#define IMS_NPY_H

#include "imgsearch.h"

/* The complete .npy header (magic, version, length, dict, padding, '\n') for
 * an array, padded so the data starts at a multiple of 64 bytes. Returns its
 * length, or 0 if buf is too small or the arguments are invalid. */
size_t imsi_npy_format_header(char *buf, size_t size, ims_dtype dtype, int ndim, const int64_t *shape);

/* ims_npy_parse over a malloc'd buffer that the handle then owns (freed by
 * ims_npy_close, or here on failure): an .npz member inflated in memory. */
ims_status imsi_npy_parse_owned(void *buf, size_t size, ims_npy **out, ims_error *err);

#endif /* IMS_NPY_H */
