/* torch_legacy.c: the legacy PyTorch checkpoint reader (torch.save before 1.6,
 * or _use_new_zipfile_serialization=False), after torch/serialization.py's
 * _legacy_save and _legacy_load.
 *
 * Layout: five pickles back to back, then the storage records:
 *   1. the magic number 0x1950a86a20f9469cfc6c (LONG1, protocol 2; checked as
 *      the exact 15 bytes that checkpoint.c sniffs)
 *   2. the protocol version, 1001
 *   3. sys_info: {"protocol_version", "little_endian", "type_sizes"}
 *   4. the object: a state_dict, read by the restricted unpickler (pickle.h);
 *      persistent ids are ('storage', type, key, location, numel, None)
 *   5. the list of storage keys (sorted by torch, but any order is read)
 *   then, for each key of that list in its order: an int64 little-endian
 *   element count and count * element-size bytes of little-endian elements.
 * PyTorch writes elements little-endian whatever the machine, but its oldest
 * versions wrote the count in native order, so a file whose sys_info says
 * big-endian is refused rather than guessed at. A record's element size comes
 * from the tensors that use it, so every record must be used by one; every
 * record lies inside the file and the last one ends the file.
 */
#include "checkpoint.h"
#include "pickle.h"

#include "core/error.h"

#include <stdlib.h>
#include <string.h>

typedef unsigned long long ull; /* for printf */

#define LEGACY_PROTOCOL_VERSION 1001

/* The first pickle, byte for byte: PROTO 2, LONG1 of 10 bytes, STOP. */
const unsigned char imsi_ckpt_legacy_magic[CKPT_LEGACY_MAGIC_LEN] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                                              0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};

typedef struct record {
    const char *key;     /* from the key list */
    const char *tensor;  /* the first tensor that uses it; NULL: none */
    ckpt_dtype dtype;
    uint64_t numel;      /* as the persistent id states it */
    uint64_t nbytes;
    size_t offset;       /* of its first element in the file */
} record;

typedef struct legacy {
    pickle_state_dict sd;
    char **keys;
    size_t nkeys;
    record *records;     /* in key-list order */
    record **sorted;     /* by key, for lookup */
} legacy;

static void legacy_free(legacy *l)
{
    imsi_pickle_state_dict_free(&l->sd);
    imsi_pickle_string_list_free(l->keys, l->nkeys);
    free(l->records);
    free(l->sorted);
}

/* ---- The pickles -------------------------------------------------------------------------- */

static ims_status read_header(const ckpt *c, size_t *pos, ims_error *err)
{
    if (c->size < sizeof imsi_ckpt_legacy_magic || memcmp(c->data, imsi_ckpt_legacy_magic, sizeof imsi_ckpt_legacy_magic) != 0)
        return ims_error_set(err, IMS_ERR_FORMAT,
                             "legacy checkpoint: bad magic number (the file must start with the pickled 0x1950a86a20f9469cfc6c)");
    *pos = sizeof imsi_ckpt_legacy_magic;
    size_t used;
    int64_t version;
    ims_status st = imsi_pickle_load_int(c->data + *pos, c->size - *pos, &version, &used, err);
    if (st)
        return imsi_error_prefix(err, st, "legacy checkpoint: protocol version pickle at offset %zu", *pos);
    if (version != LEGACY_PROTOCOL_VERSION)
        return ims_error_set(err, IMS_ERR_FORMAT, "legacy checkpoint: bad protocol version %lld (expected %d)",
                             (long long)version, LEGACY_PROTOCOL_VERSION);
    *pos += used;
    int little_endian;
    if ((st = imsi_pickle_load_sys_info(c->data + *pos, c->size - *pos, &little_endian, &used, err)))
        return imsi_error_prefix(err, st, "legacy checkpoint: sys_info pickle at offset %zu", *pos);
    if (little_endian != 1)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED,
                             "legacy checkpoint: sys_info %s (only files written on little-endian machines are read)",
                             little_endian == 0 ? "says the writer was big-endian" : "has no bool 'little_endian'");
    *pos += used;
    return IMS_OK;
}

static ims_status read_pickles(const ckpt *c, legacy *l, size_t *pos, ims_error *err)
{
    ims_status st = read_header(c, pos, err);
    if (st)
        return st;
    size_t used;
    if ((st = imsi_pickle_load_state_dict(c->data + *pos, c->size - *pos, &l->sd, &used, err)))
        return imsi_error_prefix(err, st, "legacy checkpoint: state_dict pickle at offset %zu", *pos);
    *pos += used;
    if ((st = imsi_pickle_load_string_list(c->data + *pos, c->size - *pos, &l->keys, &l->nkeys, &used, err)))
        return imsi_error_prefix(err, st, "legacy checkpoint: storage key list pickle at offset %zu", *pos);
    *pos += used;
    return IMS_OK;
}

/* ---- The storage records ---------------------------------------------------------------- */

static int cmp_record(const void *a, const void *b)
{
    return strcmp((*(record *const *)a)->key, (*(record *const *)b)->key);
}

static record *find_record(const legacy *l, const char *key)
{
    if (l->nkeys == 0)
        return NULL; /* bsearch's base may not be NULL */
    record probe = {0}, *p = &probe;
    probe.key = key;
    record **r = bsearch(&p, l->sorted, l->nkeys, sizeof *l->sorted, cmp_record);
    return r ? *r : NULL;
}

/* One record per listed key, each key once, each sized by the tensors that use it. */
static ims_status index_records(legacy *l, ims_error *err)
{
    if (l->nkeys && (!(l->records = calloc(l->nkeys, sizeof *l->records)) ||
                     !(l->sorted = malloc(l->nkeys * sizeof *l->sorted))))
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < l->nkeys; i++) {
        l->records[i].key = l->keys[i];
        l->sorted[i] = &l->records[i];
    }
    if (l->nkeys > 1)
        qsort(l->sorted, l->nkeys, sizeof *l->sorted, cmp_record);
    for (size_t i = 1; i < l->nkeys; i++)
        if (strcmp(l->sorted[i - 1]->key, l->sorted[i]->key) == 0)
            return ims_error_set(err, IMS_ERR_FORMAT, "legacy checkpoint: storage key '%s' is listed twice",
                                 l->sorted[i]->key);
    for (size_t i = 0; i < l->sd.count; i++) {
        const pickle_tensor *pt = &l->sd.tensors[i];
        record *r = find_record(l, pt->storage_key);
        if (!r)
            return ims_error_set(err, IMS_ERR_FORMAT,
                                 "legacy checkpoint: tensor '%s' uses storage '%s', which has no record (not in the "
                                 "storage key list)",
                                 pt->name, pt->storage_key);
        if (r->tensor && (r->dtype != pt->dtype || r->numel != pt->storage_numel))
            return ims_error_set(err, IMS_ERR_FORMAT,
                                 "legacy checkpoint: storage '%s' is %llu %s elements for tensor '%s' but %llu %s "
                                 "elements for tensor '%s'",
                                 r->key, (ull)r->numel, imsi_ckpt_dtype_name(r->dtype), r->tensor, (ull)pt->storage_numel,
                                 imsi_ckpt_dtype_name(pt->dtype), pt->name);
        if (!r->tensor) {
            r->tensor = pt->name;
            r->dtype = pt->dtype;
            r->numel = pt->storage_numel;
        }
    }
    return IMS_OK;
}

/* Walks the records in key-list order from pos; they must end the file. */
static ims_status locate_records(const ckpt *c, legacy *l, size_t pos, ims_error *err)
{
    for (size_t i = 0; i < l->nkeys; i++) {
        record *r = &l->records[i];
        if (!r->tensor)
            return ims_error_set(err, IMS_ERR_FORMAT,
                                 "legacy checkpoint: storage '%s' is used by no tensor of the state_dict, so the size of "
                                 "its record is unknown",
                                 r->key);
        if (c->size - pos < 8)
            return ims_error_set(err, IMS_ERR_FORMAT,
                                 "legacy checkpoint: the file ends inside the element count of storage '%s' (offset %zu, "
                                 "file size %zu)",
                                 r->key, pos, c->size);
        uint64_t count = 0;
        for (int k = 0; k < 8; k++)
            count |= (uint64_t)c->data[pos + (size_t)k] << (8 * k);
        pos += 8;
        if (count != r->numel)
            return ims_error_set(err, IMS_ERR_FORMAT,
                                 "legacy checkpoint: storage '%s' record holds %llu elements, but tensor '%s' says %llu",
                                 r->key, (ull)count, r->tensor, (ull)r->numel);
        size_t es = imsi_ckpt_dtype_size(r->dtype);
        if (es == 0 || count > (uint64_t)(c->size - pos) / es)
            return ims_error_set(err, IMS_ERR_FORMAT,
                                 "legacy checkpoint: the file ends inside storage '%s' (%llu %s elements from offset %zu; "
                                 "the file has %zu bytes)",
                                 r->key, (ull)count, imsi_ckpt_dtype_name(r->dtype), pos, c->size);
        r->offset = pos;
        r->nbytes = count * es;
        pos += (size_t)r->nbytes;
    }
    if (pos != c->size)
        return ims_error_set(err, IMS_ERR_FORMAT, "legacy checkpoint: %zu trailing bytes after the last storage record (offset %zu)",
                             c->size - pos, pos);
    return IMS_OK;
}

static ims_status add_tensors(ckpt *c, const legacy *l, ims_error *err)
{
    for (size_t i = 0; i < l->sd.count; i++) {
        const pickle_tensor *pt = &l->sd.tensors[i];
        const record *r = find_record(l, pt->storage_key); /* found by index_records */
        ckpt_tensor t = imsi_pickle_tensor_to_ckpt(pt, c->data + r->offset, r->nbytes, 0);
        ims_status st = imsi_ckpt_add_tensor(c, &t, err);
        if (st)
            return imsi_error_prefix(err, st, "legacy checkpoint");
    }
    return IMS_OK;
}

ims_status imsi_ckpt_read_torch_legacy(ckpt *c, ims_error *err)
{
    c->format = CKPT_FORMAT_TORCH_LEGACY;
    legacy l = {0};
    size_t pos = 0;
    ims_status st = read_pickles(c, &l, &pos, err);
    if (!st)
        st = index_records(&l, err);
    if (!st)
        st = locate_records(c, &l, pos, err);
    if (!st)
        st = add_tensors(c, &l, err);
    legacy_free(&l);
    return st;
}
