/* error.h: how library code reports failure.
 *
 * A fallible function returns ims_status and fills the caller's ims_error with a
 * one-line message through the public ims_error_set(): `return ims_error_set(err, IMS_ERR_FORMAT, "tensor %zu: ...", i);`.
 * imsi_error_prefix() adds context on the way up ("weights file 'x.isw': ...").
 */
#ifndef IMS_ERROR_H
#define IMS_ERROR_H

#include "imgsearch.h"

#if defined(__GNUC__)
#define IMS_PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#define IMS_PRINTF(fmt_index, first_arg)
#endif

/* Prepends "prefix: " to err's message; returns err's code (or `code` if err is NULL). */
ims_status imsi_error_prefix(ims_error *err, ims_status code, const char *fmt, ...) IMS_PRINTF(3, 4);


#endif /* IMS_ERROR_H */
