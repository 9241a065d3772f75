/* pickle.h: a restricted unpickler for PyTorch state_dicts. No pickle code is
 * ever executed: the unpickler is a small stack machine that knows only the
 * opcodes a state_dict uses and evaluates only the few GLOBALs that build one
 * (collections.OrderedDict, torch._utils._rebuild_tensor(_v2), _rebuild_parameter,
 * torch.*Storage, torch.Size, ...). Any other opcode or GLOBAL refuses the file
 * with a message naming it and its byte offset.
 *
 * The state_dict's tensors come back as references to storages by key; the
 * container (torch_zip.c: entry data/<key>; torch_legacy.c: the storage
 * records after the pickles) resolves them.
 */
#ifndef IMS_PICKLE_H
#define IMS_PICKLE_H

#include "checkpoint.h"

typedef struct pickle_tensor {
    char *name;           /* the state_dict key, owned */
    char *storage_key;    /* persistent id key ("0", "1", ... or a legacy number), owned */
    ckpt_dtype dtype;     /* from the storage type (torch.FloatStorage -> CKPT_F32, ...) */
    uint64_t storage_numel; /* as the persistent id states it */
    int ndim;
    int64_t shape[CKPT_MAX_DIMS];
    int64_t stride[CKPT_MAX_DIMS];
    int64_t storage_offset; /* in elements */
} pickle_tensor;

typedef struct pickle_state_dict {
    pickle_tensor *tensors; /* in the dict's order */
    size_t count;
} pickle_state_dict;

/* Loads one pickle from data[0..size) that holds a state_dict: a dict or
 * OrderedDict of name -> tensor (non-tensor entries such as BatchNorm's
 * num_batches_tracked are kept as tensors; other values are refused), or a dict
 * that wraps one under "state_dict" or "model". *consumed = bytes up to and
 * including the STOP opcode. */
ims_status imsi_pickle_load_state_dict(const unsigned char *data, size_t size, pickle_state_dict *out, size_t *consumed,
                                       ims_error *err);
void imsi_pickle_state_dict_free(pickle_state_dict *sd);

/* The ckpt_tensor for pt once its container has found the storage's bytes
 * (the name is pt's, borrowed: imsi_ckpt_add_tensor copies it). */
ckpt_tensor imsi_pickle_tensor_to_ckpt(const pickle_tensor *pt, const unsigned char *storage, uint64_t nbytes,
                                       int big_endian);

/* The small pickles of the legacy format (torch_legacy.c): an integer (the
 * protocol version), a value to validate and skip, the sys_info dict (which
 * records the writer's byte order: *little_endian = 1 or 0, or -1 if the dict
 * has no bool 'little_endian'), and a list of strings (the storage keys).
 * Same restrictions. */
ims_status imsi_pickle_load_sys_info(const unsigned char *data, size_t size, int *little_endian, size_t *consumed,
                                     ims_error *err);
ims_status imsi_pickle_load_int(const unsigned char *data, size_t size, int64_t *out, size_t *consumed, ims_error *err);
ims_status imsi_pickle_skip(const unsigned char *data, size_t size, size_t *consumed, ims_error *err);
ims_status imsi_pickle_load_string_list(const unsigned char *data, size_t size, char ***out, size_t *count,
                                        size_t *consumed, ims_error *err);
void imsi_pickle_string_list_free(char **list, size_t count);

#endif /* IMS_PICKLE_H */
