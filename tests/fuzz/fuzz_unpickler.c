/* fuzz_unpickler.c: libFuzzer target for the restricted unpickler (pickle.c)
 * and the legacy checkpoint reader (torch_legacy.c).
 *
 * Each input runs through every pickle entry point (state_dict, int, skip,
 * string list) and through the legacy reader, both directly (past the format
 * sniffing, so a mutated magic still reaches the later pickles) and, when it
 * starts with the legacy magic, through imsi_ckpt_open_memory. Other formats are
 * not dispatched to: their readers have targets of their own.
 * Checked: a failure leaves no output and a one-line message; a success gives
 * what pickle.h promises (consumed within the input, names and keys non-empty
 * and NUL-terminated, ndim in range), and every accepted tensor can be read.
 */
#include "weights_tools/checkpoint.h"
#include "weights_tools/pickle.h"

#include <stdlib.h>
#include <string.h>

static void check_message(const ims_error *err)
{
    if (err->msg[0] == '\0' || strchr(err->msg, '\n'))
        abort(); /* every failure says why, on one line */
}

static void run_pickles(const unsigned char *data, size_t size)
{
    ims_error err = {0};
    size_t used = 0;
    pickle_state_dict sd = {0};
    if (imsi_pickle_load_state_dict(data, size, &sd, &used, &err) == IMS_OK) {
        if (used == 0 || used > size)
            abort();
        for (size_t i = 0; i < sd.count; i++) {
            const pickle_tensor *t = &sd.tensors[i];
            if (!t->name[0] || !t->storage_key[0] || t->ndim < 0 || t->ndim > CKPT_MAX_DIMS ||
                imsi_ckpt_dtype_size(t->dtype) == 0 || t->storage_offset < 0)
                abort();
        }
    } else {
        check_message(&err);
        if (sd.count || sd.tensors)
            abort();
    }
    imsi_pickle_state_dict_free(&sd);

    int64_t v;
    if (imsi_pickle_load_int(data, size, &v, &used, &err) != IMS_OK)
        check_message(&err);
    if (imsi_pickle_skip(data, size, &used, &err) == IMS_OK) {
        if (used == 0 || used > size)
            abort();
    } else {
        check_message(&err);
    }
    char **list = NULL;
    size_t count = 0;
    if (imsi_pickle_load_string_list(data, size, &list, &count, &used, &err) == IMS_OK) {
        for (size_t i = 0; i < count; i++)
            if (!list[i][0])
                abort();
    } else {
        check_message(&err);
        if (list || count)
            abort();
    }
    imsi_pickle_string_list_free(list, count);
}

/* Reads every small enough tensor, so ASan sees any element outside the input. */
static void exercise(const ckpt *c)
{
    for (size_t i = 0; i < c->count; i++) {
        const ckpt_tensor *t = &c->tensors[i];
        int64_t n = imsi_ckpt_tensor_numel(t);
        if (n > (1 << 16))
            continue; /* stride 0 can make a huge view of a small storage */
        double *dst = malloc((size_t)(n ? n : 1) * sizeof *dst);
        if (!dst)
            continue;
        imsi_ckpt_tensor_read_f64(t, dst);
        free(dst);
        if (imsi_ckpt_find(c, t->name) != t)
            abort();
    }
}

static void run_legacy(const unsigned char *data, size_t size)
{
    ims_error err = {0};
    ckpt *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->data = data;
    c->size = size;
    if (imsi_ckpt_read_torch_legacy(c, &err) == IMS_OK)
        exercise(c);
    else
        check_message(&err);
    imsi_ckpt_free(c);

    static const unsigned char magic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                          0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};
    if (size < sizeof magic || memcmp(data, magic, sizeof magic) != 0)
        return;
    c = NULL;
    if (imsi_ckpt_open_memory(data, size, &c, &err) == IMS_OK) {
        exercise(c);
        imsi_ckpt_free(c);
    } else if (c != NULL) {
        abort();
    } else {
        check_message(&err);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size copy, so that a read one byte past the input is caught */
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    if (size)
        memcpy(buf, data, size);
    run_pickles(buf, size);
    run_legacy(buf, size);
    free(buf);
    return 0;
}
