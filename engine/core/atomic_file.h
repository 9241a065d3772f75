/* atomic_file.h: writing a file so that a crash never leaves it half written.
 *
 * The bytes go to "<path>.tmp.<pid>"; commit flushes, fsyncs, renames it over
 * <path> and fsyncs the folder. Until commit returns, <path> is either absent or
 * its previous version: after a kill -9 a reader sees the old file or the new
 * one, never a mix. Used by the weight writer, .npy writers and the index.
 */
#ifndef IMS_ATOMIC_FILE_H
#define IMS_ATOMIC_FILE_H

#include "imgsearch.h"

#include <stdio.h>

typedef struct imsi_atomic_file {
    FILE *f;    /* the temporary file; write with fwrite or imsi_atomic_file_write */
    char *path; /* the final name */
    char *tmp;  /* the temporary name */
} imsi_atomic_file;

ims_status imsi_atomic_file_open(imsi_atomic_file *af, const char *path, ims_error *err);
/* fwrite in pieces, with an error that names the file. */
ims_status imsi_atomic_file_write(imsi_atomic_file *af, const void *data, size_t n, ims_error *err);
/* Makes the file durable under its final name. On failure the temporary file is
 * removed and <path> is left as it was. Either way af is released. */
ims_status imsi_atomic_file_commit(imsi_atomic_file *af, ims_error *err);
/* Drops the temporary file; <path> is left as it was. NULL-safe, idempotent. */
void imsi_atomic_file_abort(imsi_atomic_file *af);

/* fsync of a folder, best effort (some file systems refuse it): makes a rename
 * or a new entry in it durable. */
void imsi_sync_dir(const char *dir);

#endif /* IMS_ATOMIC_FILE_H */
