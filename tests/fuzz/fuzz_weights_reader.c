/* fuzz_weights_reader.c: libFuzzer target for the weight-file reader.
 *
 * Each input is opened twice: as it is (which mostly exercises the header
 * checks, since random bytes rarely carry valid CRCs) and with its header and
 * index CRCs recomputed, so that the fuzzer reaches the metadata and directory
 * parsers. Every accessor is then run over whatever the reader accepted.
 */
#include "io/weights_format.h"

#include <stdlib.h>
#include <string.h>

static void exercise(const ims_weights *w)
{
    ims_error err;
    for (size_t i = 0; i < ims_weights_meta_count(w); i++) {
        const ims_meta *m = ims_weights_meta_at(w, i);
        char key[ISW_KEY_MAX + 1];
        memcpy(key, m->key.ptr, m->key.len);
        key[m->key.len] = '\0';
        int64_t v;
        double d;
        ims_str s;
        const ims_str *strs;
        size_t count;
        (void)ims_weights_get_i64(w, key, &v, &err);
        (void)ims_weights_get_f64(w, key, &d, &err);
        (void)ims_weights_get_string(w, key, &s, &err);
        (void)ims_weights_get_strings(w, key, &strs, &count, &err);
        volatile uint64_t sum = 0;
        if (m->type == IMS_META_I64_ARRAY || m->type == IMS_META_F64_ARRAY)
            for (uint64_t k = 0; k < m->count; k++)
                sum += (uint64_t)ims_meta_i64_at(m, (size_t)k);
        if (ims_weights_meta_find(w, key) != m)
            abort(); /* a validated key must find its own entry */
    }
    for (size_t i = 0; i < ims_weights_tensor_count(w); i++) {
        const ims_weight_tensor *t = ims_weights_tensor_at(w, i);
        char name[ISW_NAME_MAX + 1];
        memcpy(name, t->name.ptr, t->name.len);
        name[t->name.len] = '\0';
        const ims_weight_tensor *found;
        if (ims_weights_tensor_find(w, name) != t)
            abort();
        (void)ims_weights_tensor_expect(w, name, t->dtype, t->ndim, t->shape, &found, &err);
        volatile unsigned char sink = 0;
        if (t->nbytes)
            sink ^= ((const unsigned char *)t->data)[0] ^ ((const unsigned char *)t->data)[t->nbytes - 1];
        (void)sink;
    }
    (void)ims_weights_verify_data(w, &err);
}

static void fix_crcs(unsigned char *b, size_t size)
{
    if (size < ISW_HEADER_SIZE)
        return;
    uint64_t meta_size = isw_load_u64(b + ISW_OFF_METADATA_SIZE), dir_size = isw_load_u64(b + ISW_OFF_DIRECTORY_SIZE);
    size_t room = size - ISW_HEADER_SIZE;
    if (meta_size <= room && dir_size <= room - meta_size)
        isw_store_u32(b + ISW_OFF_INDEX_CRC, imsi_isw_crc32(b + ISW_HEADER_SIZE, meta_size + dir_size));
    isw_store_u32(b + ISW_OFF_HEADER_CRC, imsi_isw_crc32(b, ISW_OFF_HEADER_CRC));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* open_memory needs the buffer aligned to the file's alignment (<= 65536) */
    unsigned char *buf = aligned_alloc(ISW_ALIGNMENT_MAX, (size + ISW_ALIGNMENT_MAX) & ~(size_t)(ISW_ALIGNMENT_MAX - 1));
    if (!buf)
        return 0;
    if (size)
        memcpy(buf, data, size);
    ims_error err = {0};
    ims_weights *w = NULL;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            fix_crcs(buf, size);
        if (ims_weights_open_memory(buf, size, pass ? IMS_WEIGHTS_VERIFY_DATA : 0, &w, &err) == IMS_OK) {
            exercise(w);
            ims_weights_close(w);
        } else if (w != NULL || err.msg[0] == '\0' || strchr(err.msg, '\n')) {
            abort(); /* a failure leaves no handle and one line of message */
        }
    }
    free(buf);
    return 0;
}
