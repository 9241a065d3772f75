/* fuzz_safetensors.c: libFuzzer target for the safetensors reader.
 *
 * Each input is read twice through imsi_ckpt_open_memory: as it is (the real file
 * layout, mostly exercising the length checks), and as "header text, then
 * data" with the u64 header length made up here (up to the input's last '}'),
 * so mutations of the JSON reach the header and offset rules without having
 * to keep N consistent. Whatever the reader accepts is then read in full.
 * Inputs that imsi_ckpt_open_memory would hand to the PyTorch readers (zip or
 * legacy magic) are skipped: those readers have their own fuzz targets.
 */
#include "weights_tools/checkpoint.h"

#include <stdlib.h>
#include <string.h>

static void exercise(const ckpt *c)
{
    for (size_t i = 0; i < c->count; i++) {
        const ckpt_tensor *t = &c->tensors[i];
        if (imsi_ckpt_find(c, t->name) != t)
            abort(); /* names are unique */
        int64_t n = imsi_ckpt_tensor_numel(t);
        /* every element lies in the file, so numel * size <= file size */
        if (n < 0 || (uint64_t)n * imsi_ckpt_dtype_size(t->dtype) > c->size)
            abort();
        double *v = malloc((size_t)(n ? n : 1) * sizeof *v);
        if (!v)
            continue;
        imsi_ckpt_tensor_read_f64(t, v);
        free(v);
    }
}

static void try_read(const unsigned char *buf, size_t size)
{
    /* the prefixes imsi_ckpt_open_memory sniffs for the PyTorch formats */
    static const unsigned char legacy_magic[15] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                                   0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};
    if ((size >= 4 && memcmp(buf, "PK\x03\x04", 4) == 0) || (size >= 15 && memcmp(buf, legacy_magic, 15) == 0))
        return;
    ckpt *c = NULL;
    ims_error err = {0};
    if (imsi_ckpt_open_memory(buf, size, &c, &err) == IMS_OK) {
        if (c->format != CKPT_FORMAT_SAFETENSORS && c->format != CKPT_FORMAT_TORCH_ZIP &&
            c->format != CKPT_FORMAT_TORCH_LEGACY)
            abort();
        exercise(c);
        imsi_ckpt_free(c);
    } else if (c != NULL || err.msg[0] == '\0' || strchr(err.msg, '\n')) {
        abort(); /* a failure leaves no checkpoint and one line of message */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* copies, so that reads past the input are caught by ASan */
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    try_read(buf, size);
    free(buf);

    if (size == 0 || data[0] != '{')
        return 0;
    size_t n = size;
    while (n > 0 && data[n - 1] != '}')
        n--;
    unsigned char *file = malloc(8 + size);
    if (!file)
        return 0;
    for (int i = 0; i < 8; i++)
        file[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(file + 8, data, size);
    try_read(file, 8 + size);
    free(file);
    return 0;
}
