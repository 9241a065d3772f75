/* fuzz_npz.c: libFuzzer target for the .npz reader (engine/io/npz.c), which
 * reads FID statistics files (engine/models/fid_stats.c).
 *
 * Each input is parsed from memory and every member read; a member that
 * reads must be a whole .npy inside its inflated bytes (every byte is read,
 * so ASan catches an overrun); failures return no handle and say why in one
 * line.
 */
#include "imgsearch.h"

#include <stdlib.h>
#include <string.h>

static void check_failure(ims_status st, const void *handle, const ims_error *err)
{
    if (st != IMS_OK && (handle || !err->msg[0] || strchr(err->msg, '\n')))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ims_npz *z = NULL;
    ims_error err;
    memset(&err, 0, sizeof err);
    ims_status st = ims_npz_parse(data, size, &z, &err);
    check_failure(st, z, &err);
    if (st)
        return 0;
    for (size_t i = 0; i < ims_npz_count(z); i++) {
        ims_npy *a = NULL;
        memset(&err, 0, sizeof err);
        st = ims_npz_get(z, ims_npz_name(z, i), &a, &err);
        check_failure(st, a, &err);
        if (st)
            continue;
        const volatile uint8_t *p = ims_npy_data(a);
        uint8_t sum = 0;
        for (size_t k = 0; k < ims_npy_nbytes(a); k++)
            sum ^= p[k];
        (void)sum;
        ims_npy_close(a);
    }
    if (ims_npz_name(z, ims_npz_count(z)) != NULL)
        abort();
    ims_npz_close(z);
    return 0;
}
