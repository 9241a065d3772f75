/* file_map.c: read-only mappings of whole files (file_map.h). */
#include "core/file_map.h"

#include "core/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

ims_status imsi_file_map_open(const char *path, imsi_file_map *out, ims_error *err)
{
    memset(out, 0, sizeof *out);
    /* O_NONBLOCK: a FIFO must not block open(); it is refused just below. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        ims_error_set(err, IMS_ERR_IO, "cannot open: %s", strerror(e));
        errno = e; /* imsi_file_read_text tells a missing file by it */
        return IMS_ERR_IO;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return ims_error_set(err, IMS_ERR_IO, "cannot stat: %s", strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return ims_error_set(err, IMS_ERR_IO, "not a regular file");
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        close(fd);
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "%lld bytes: too large to map", (long long)sb.st_size);
    }
    size_t size = (size_t)sb.st_size;
    if (size == 0) { /* mmap refuses length 0 */
        close(fd);
        out->data = (const unsigned char *)"";
        return IMS_OK;
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd);
    if (map == MAP_FAILED)
        return ims_error_set(err, IMS_ERR_IO, "cannot map %zu bytes: %s", size, strerror(map_errno));
    out->data = map;
    out->size = size;
    out->mapping_ = map;
    return IMS_OK;
}

ims_status imsi_file_read_text(const char *path, size_t max, char **out, size_t *len, ims_error *err)
{
    *out = NULL;
    *len = 0;
    imsi_file_map map;
    ims_status st = imsi_file_map_open(path, &map, err);
    if (st == IMS_ERR_IO && errno == ENOENT) { /* callers tell a missing optional file from a broken one */
        st = IMS_ERR_NOT_FOUND;
        if (err)
            err->code = st;
    }
    if (!st && map.size > max)
        st = ims_error_set(err, IMS_ERR_FORMAT, "%zu bytes is more than the %zu allowed", map.size, max);
    char *buf = st ? NULL : malloc(map.size + 1);
    if (!st && !buf)
        st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory for %zu bytes", map.size);
    if (!st) {
        memcpy(buf, map.data, map.size);
        buf[map.size] = '\0';
        *out = buf;
        *len = map.size;
    }
    imsi_file_map_close(&map);
    return st ? imsi_error_prefix(err, st, "%s", path) : IMS_OK;
}

void imsi_file_map_close(imsi_file_map *m)
{
    if (!m)
        return;
    if (m->mapping_)
        munmap(m->mapping_, m->size);
    memset(m, 0, sizeof *m);
}
