/* torch_zip.c: the PyTorch zip checkpoint reader (torch.save since 1.6).
 *
 * Layout (all entries under one top-level folder, <prefix>, whose name varies):
 *   <prefix>/data.pkl    the state_dict's pickle, read by the restricted
 *                        unpickler (pickle.h); no pickle code is executed
 *   <prefix>/data/<key>  raw storage bytes: numel * element size
 *   <prefix>/byteorder   "little" or "big" (absent: little)
 *   version, .format_version, .storage_alignment, .data/serialization_id:
 *                        not needed here, and ignored
 * zip_reader.c validates the archive itself. Every byte this reader hands on
 * has its CRC-32 checked: data.pkl and byteorder before they are parsed, each
 * storage a tensor references once (zlib's crc32 runs at gigabytes per second,
 * a small cost next to converting the weights, and a corrupted download is
 * caught here rather than as wrong embeddings). Entries no tensor references
 * are not read and not checked.
 */
#include "checkpoint.h"
#include "pickle.h"
#include "zip_reader.h"

#include "core/error.h"

#include <stdlib.h>
#include <string.h>

typedef unsigned long long ull; /* for printf */

/* What the first tensor to use a storage entry saw, so that later views of
 * the same storage can be checked against it (PyTorch refuses to save one
 * storage viewed as two dtypes). */
typedef struct storage_use {
    const char *tensor; /* NULL: not used yet */
    ckpt_dtype dtype;
    uint64_t numel;
} storage_use;

typedef struct torch_zip {
    zip_archive z;
    char *prefix;        /* "<folder>/", owned */
    int big_endian;
    storage_use *uses;   /* one per zip entry, by index */
    pickle_state_dict sd;
} torch_zip;

static void torch_zip_free(torch_zip *t)
{
    imsi_zip_close(&t->z);
    free(t->prefix);
    free(t->uses);
    imsi_pickle_state_dict_free(&t->sd);
}

/* The prefix is the first entry's folder; every entry must share it. */
static ims_status find_prefix(torch_zip *t, ims_error *err)
{
    if (t->z.count == 0)
        return ims_error_set(err, IMS_ERR_FORMAT, "PyTorch zip: the archive has no entries");
    const char *first = t->z.entries[0].name;
    const char *slash = strchr(first, '/');
    if (!slash || slash == first)
        return ims_error_set(err, IMS_ERR_FORMAT, "PyTorch zip: first entry '%s' is not inside a top-level folder", first);
    size_t len = (size_t)(slash - first) + 1;
    if (!(t->prefix = malloc(len + 1)))
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    memcpy(t->prefix, first, len);
    t->prefix[len] = '\0';
    for (size_t i = 1; i < t->z.count; i++)
        if (strncmp(t->z.entries[i].name, t->prefix, len) != 0)
            return ims_error_set(err, IMS_ERR_FORMAT, "PyTorch zip: entry '%s' is outside the archive's folder '%.*s'",
                                 t->z.entries[i].name, (int)(len - 1), t->prefix);
    return IMS_OK;
}

/* Looks up the entry <prefix><rest><rest2> (rest2 may be NULL); *out = NULL
 * if there is none. */
static ims_status find_entry(const torch_zip *t, const char *rest, const char *rest2, const zip_entry **out,
                             ims_error *err)
{
    size_t a = strlen(t->prefix), b = strlen(rest), c = rest2 ? strlen(rest2) : 0;
    char *name = malloc(a + b + c + 1); /* each is a string in memory: the sum cannot overflow */
    if (!name)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    memcpy(name, t->prefix, a);
    memcpy(name + a, rest, b);
    if (c)
        memcpy(name + a + b, rest2, c);
    name[a + b + c] = '\0';
    *out = imsi_zip_find(&t->z, name);
    free(name);
    return IMS_OK;
}

static ims_status read_byteorder(torch_zip *t, ims_error *err)
{
    const zip_entry *e = NULL;
    ims_status st = find_entry(t, "byteorder", NULL, &e, err);
    t->big_endian = 0;
    if (st || !e)
        return st;
    if ((st = imsi_zip_entry_verify(e, err)))
        return st;
    if (e->size == 6 && memcmp(e->data, "little", 6) == 0)
        return IMS_OK;
    if (e->size == 3 && memcmp(e->data, "big", 3) == 0) {
        t->big_endian = 1;
        return IMS_OK;
    }
    return ims_error_set(err, IMS_ERR_FORMAT, "zip entry '%s': byte order is neither \"little\" nor \"big\" (%llu bytes)",
                         e->name, (ull)e->size);
}

static ims_status read_pickle(torch_zip *t, ims_error *err)
{
    const zip_entry *e = NULL;
    ims_status st = find_entry(t, "data.pkl", NULL, &e, err);
    if (st)
        return st;
    if (!e)
        return ims_error_set(err, IMS_ERR_FORMAT, "PyTorch zip: no entry '%sdata.pkl' (not a torch.save checkpoint?)",
                             t->prefix);
    if ((st = imsi_zip_entry_verify(e, err)))
        return st;
    if (e->size > SIZE_MAX)
        return ims_error_set(err, IMS_ERR_FORMAT, "zip entry '%s': %llu bytes is too large", e->name, (ull)e->size);
    size_t consumed = 0;
    st = imsi_pickle_load_state_dict(e->data, (size_t)e->size, &t->sd, &consumed, err);
    if (st)
        return imsi_error_prefix(err, st, "zip entry '%s'", e->name);
    if (consumed != e->size)
        return ims_error_set(err, IMS_ERR_FORMAT, "zip entry '%s': the pickle ends at byte %zu of %llu: trailing bytes",
                             e->name, consumed, (ull)e->size);
    return IMS_OK;
}

/* Finds, checks and (once) verifies the storage entry of tensor pt. */
static ims_status resolve_storage(torch_zip *t, const pickle_tensor *pt, const zip_entry **out, ims_error *err)
{
    size_t es = imsi_ckpt_dtype_size(pt->dtype);
    if (es == 0)
        return ims_error_set(err, IMS_ERR_FORMAT, "tensor '%s': unknown dtype %d", pt->name, (int)pt->dtype);
    const zip_entry *e = NULL;
    ims_status st = find_entry(t, "data/", pt->storage_key, &e, err);
    if (st)
        return st;
    if (!e)
        return ims_error_set(err, IMS_ERR_FORMAT, "tensor '%s': storage entry '%sdata/%s' is not in the archive", pt->name,
                             t->prefix, pt->storage_key);
    if (pt->storage_numel > UINT64_MAX / es)
        return ims_error_set(err, IMS_ERR_FORMAT,
                             "tensor '%s': storage '%s' holds %llu bytes, but the pickle says %llu %s elements "
                             "(over 2^64 bytes)",
                             pt->name, pt->storage_key, (ull)e->size, (ull)pt->storage_numel, imsi_ckpt_dtype_name(pt->dtype));
    if (pt->storage_numel * es != e->size)
        return ims_error_set(err, IMS_ERR_FORMAT,
                             "tensor '%s': storage '%s' holds %llu bytes, but the pickle says %llu %s elements (%llu bytes)",
                             pt->name, pt->storage_key, (ull)e->size, (ull)pt->storage_numel, imsi_ckpt_dtype_name(pt->dtype),
                             (ull)(pt->storage_numel * es));
    storage_use *use = &t->uses[e - t->z.entries];
    if (use->tensor) {
        if (use->dtype != pt->dtype || use->numel != pt->storage_numel)
            return ims_error_set(err, IMS_ERR_FORMAT,
                                 "tensor '%s': storage '%s' is %llu %s elements, but tensor '%s' uses it as %llu %s",
                                 pt->name, pt->storage_key, (ull)pt->storage_numel, imsi_ckpt_dtype_name(pt->dtype), use->tensor,
                                 (ull)use->numel, imsi_ckpt_dtype_name(use->dtype));
    } else {
        if ((st = imsi_zip_entry_verify(e, err)))
            return imsi_error_prefix(err, st, "tensor '%s'", pt->name);
        use->tensor = pt->name;
        use->dtype = pt->dtype;
        use->numel = pt->storage_numel;
    }
    *out = e;
    return IMS_OK;
}

static ims_status add_tensors(ckpt *c, torch_zip *t, ims_error *err)
{
    if (!(t->uses = calloc(t->z.count, sizeof *t->uses)))
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < t->sd.count; i++) {
        const pickle_tensor *pt = &t->sd.tensors[i];
        const zip_entry *e = NULL;
        ims_status st = resolve_storage(t, pt, &e, err);
        if (st)
            return st;
        if (pt->ndim < 0 || pt->ndim > CKPT_MAX_DIMS)
            return ims_error_set(err, IMS_ERR_FORMAT, "tensor '%s': ndim %d is outside 0..%d", pt->name, pt->ndim,
                                 CKPT_MAX_DIMS);
        ckpt_tensor ct = imsi_pickle_tensor_to_ckpt(pt, e->data, e->size, t->big_endian);
        if ((st = imsi_ckpt_add_tensor(c, &ct, err)))
            return st;
    }
    return IMS_OK;
}

ims_status imsi_ckpt_read_torch_zip(ckpt *c, ims_error *err)
{
    c->format = CKPT_FORMAT_TORCH_ZIP;
    torch_zip t = {0};
    ims_status st = imsi_zip_open(c->data, c->size, 0, &t.z, err);
    if (!st)
        st = find_prefix(&t, err);
    if (!st)
        st = read_byteorder(&t, err);
    if (!st)
        st = read_pickle(&t, err);
    if (!st)
        st = add_tensors(c, &t, err);
    torch_zip_free(&t);
    return st;
}
