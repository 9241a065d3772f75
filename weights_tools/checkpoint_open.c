/* checkpoint_open.c: a checkpoint file or buffer -> ckpt, through the reader
 * its first bytes name (PyTorch zip, legacy .pth, safetensors). The readers
 * build the ckpt with checkpoint.c; only this file knows all of them. */
#include "checkpoint.h"

#include "core/error.h"
#include "core/file_map.h"

#include <stdlib.h>
#include <string.h>

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
    imsi_file_map map;
    ims_status st = imsi_file_map_open(path, &map, err);
    if (!st && map.size == 0) {
        imsi_file_map_close(&map);
        st = ims_error_set(err, IMS_ERR_FORMAT, "empty file");
    }
    if (st)
        return imsi_error_prefix(err, st, "checkpoint '%s'", path);
    ckpt *c = calloc(1, sizeof *c);
    if (!c) {
        imsi_file_map_close(&map);
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    }
    c->data = map.data;
    c->size = map.size;
    c->map = map;
    st = ckpt_read(c, err);
    if (st) {
        imsi_ckpt_free(c);
        return imsi_error_prefix(err, st, "checkpoint '%s'", path);
    }
    *out = c;
    return IMS_OK;
}
