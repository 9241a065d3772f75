/* atomic_file.c: temporary file + fsync + rename (see atomic_file.h). */
#define _POSIX_C_SOURCE 200809L
#include "core/atomic_file.h"

#include "core/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void imsi_sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

static void sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        imsi_sync_dir(".");
        return;
    }
    size_t len = slash == path ? 1 : (size_t)(slash - path);
    char *dir = strndup(path, len);
    if (dir)
        imsi_sync_dir(dir);
    free(dir);
}

static void release(imsi_atomic_file *af)
{
    free(af->path);
    free(af->tmp);
    af->f = NULL;
    af->path = af->tmp = NULL;
}

ims_status imsi_atomic_file_open(imsi_atomic_file *af, const char *path, ims_error *err)
{
    memset(af, 0, sizeof *af);
    size_t len = strlen(path);
    af->path = strdup(path);
    af->tmp = malloc(len + 32);
    if (!af->path || !af->tmp) {
        release(af);
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    }
    snprintf(af->tmp, len + 32, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(af->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    af->f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!af->f) {
        ims_status st = ims_error_set(err, IMS_ERR_IO, "cannot create '%s': %s", af->tmp, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(af->tmp);
        }
        release(af);
        return st;
    }
    return IMS_OK;
}

ims_status imsi_atomic_file_write(imsi_atomic_file *af, const void *data, size_t n, ims_error *err)
{
    const unsigned char *p = data;
    while (n > 0) {
        size_t piece = n > (1u << 30) ? (1u << 30) : n;
        if (fwrite(p, 1, piece, af->f) != piece)
            return ims_error_set(err, IMS_ERR_IO, "writing '%s' failed: %s", af->tmp, strerror(errno));
        p += piece;
        n -= piece;
    }
    return IMS_OK;
}

ims_status imsi_atomic_file_commit(imsi_atomic_file *af, ims_error *err)
{
    ims_status st = IMS_OK;
    if (fflush(af->f) != 0)
        st = ims_error_set(err, IMS_ERR_IO, "writing '%s' failed: %s", af->tmp, strerror(errno));
    if (!st && fsync(fileno(af->f)) != 0)
        st = ims_error_set(err, IMS_ERR_IO, "fsync of '%s' failed: %s", af->tmp, strerror(errno));
    if (fclose(af->f) != 0 && !st)
        st = ims_error_set(err, IMS_ERR_IO, "closing '%s' failed: %s", af->tmp, strerror(errno));
    af->f = NULL;
    if (!st && rename(af->tmp, af->path) != 0)
        st = ims_error_set(err, IMS_ERR_IO, "renaming '%s' to '%s' failed: %s", af->tmp, af->path, strerror(errno));
    if (st)
        unlink(af->tmp);
    else
        sync_parent_dir(af->path);
    release(af);
    return st;
}

void imsi_atomic_file_abort(imsi_atomic_file *af)
{
    if (!af->tmp)
        return;
    if (af->f)
        fclose(af->f);
    unlink(af->tmp);
    release(af);
}
