/* checkpoint_open.c: a checkpoint file or buffer -> ckpt, through the reader
 * its first bytes name (PyTorch zip, legacy .pth, safetensors). The readers
 * build the ckpt with checkpoint.c; only this file knows all of them. */
#include "checkpoint.h"

#include "core/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static ims_status ckpt_read(ckpt *c, ims_error *err)
{
    if (c->size >= 4 && memcmp(c->data, "PK\x03\x04", 4) == 0)
        return imsi_ckpt_read_torch_zip(c, err);
    if (c->size >= CKPT_LEGACY_MAGIC_LEN && memcmp(c->data, imsi_ckpt_legacy_magic, CKPT_LEGACY_MAGIC_LEN) == 0)
        return imsi_ckpt_read_torch_legacy(c, err);
    /* safetensors: u64 header length, then a JSON object */
    if (c->size >= 9 && c->data[8] == '{')
        return imsi_ckpt_read_safetensors(c, err);
    return ims_error_set(err, IMS_ERR_FORMAT,
                         "not a PyTorch checkpoint (zip or legacy) or a safetensors file (first bytes %02x %02x %02x %02x)",
                         c->size > 0 ? c->data[0] : 0, c->size > 1 ? c->data[1] : 0, c->size > 2 ? c->data[2] : 0,
                         c->size > 3 ? c->data[3] : 0);
}

ims_status imsi_ckpt_open_memory(const void *data, size_t size, ckpt **out, ims_error *err)
{
    *out = NULL;
    ckpt *c = calloc(1, sizeof *c);
    if (!c)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    c->data = data;
    c->size = size;
    ims_status st = ckpt_read(c, err);
    if (st) {
        imsi_ckpt_free(c);
        return st;
    }
    *out = c;
    return IMS_OK;
}

ims_status imsi_ckpt_open(const char *path, ckpt **out, ims_error *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ims_error_set(err, IMS_ERR_IO, "checkpoint '%s': cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size == 0) {
        close(fd);
        return ims_error_set(err, IMS_ERR_IO, "checkpoint '%s': not a regular, non-empty file", path);
    }
    size_t size = (size_t)sb.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd);
    if (map == MAP_FAILED)
        return ims_error_set(err, IMS_ERR_IO, "checkpoint '%s': mmap failed: %s", path, strerror(map_errno));
    ckpt *c = calloc(1, sizeof *c);
    if (!c) {
        munmap(map, size);
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    }
    c->data = map;
    c->size = size;
    c->mapping = map;
    ims_status st = ckpt_read(c, err);
    if (st) {
        imsi_ckpt_free(c);
        return imsi_error_prefix(err, st, "checkpoint '%s'", path);
    }
    *out = c;
    return IMS_OK;
}
