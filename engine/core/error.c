/* error.c: status names and the error message helpers of error.h. */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *ims_status_name(ims_status status)
{
    switch (status) {
    case IMS_OK: return "ok";
    case IMS_ERR_ARGUMENT: return "invalid argument";
    case IMS_ERR_IO: return "i/o error";
    case IMS_ERR_FORMAT: return "format error";
    case IMS_ERR_CHECKSUM: return "checksum mismatch";
    case IMS_ERR_NOMEM: return "out of memory";
    case IMS_ERR_UNSUPPORTED: return "unsupported";
    case IMS_ERR_NO_DEVICE: return "no device";
    case IMS_ERR_CUDA: return "cuda error";
    case IMS_ERR_NOT_FOUND: return "not found";
    case IMS_ERR_BUSY: return "busy";
    }
    return "unknown status";
}

ims_status ims_error_set(ims_error *err, ims_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

ims_status imsi_error_prefix(ims_error *err, ims_status code, const char *fmt, ...)
{
    if (!err)
        return code;
    char prefix[IMS_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* prefix, ": ", then as much of the old message as fits */
    char joined[IMS_ERROR_MSG_MAX];
    size_t n = strlen(prefix);
    memcpy(joined, prefix, n + 1);
    if (n + 2 < sizeof joined) {
        memcpy(joined + n, ": ", 3);
        n += 2;
        size_t rest = strlen(err->msg);
        if (rest > sizeof joined - 1 - n)
            rest = sizeof joined - 1 - n;
        memcpy(joined + n, err->msg, rest);
        joined[n + rest] = '\0';
    }
    memcpy(err->msg, joined, sizeof err->msg);
    return err->code;
}

