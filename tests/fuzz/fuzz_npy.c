/* fuzz_npy.c: libFuzzer target for the .npy reader (engine/io/npy.c).
 *
 * Each input is parsed from memory; a success must describe data that lies
 * inside the input (every byte is read, so ASan catches an overrun) with a
 * shape whose product matches the element count; a failure returns no handle
 * and always says why.
 */
#include "imgsearch.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ims_npy *npy = NULL;
    ims_error err;
    memset(&err, 0, sizeof err);
    if (ims_npy_parse(data, size, &npy, &err) != IMS_OK) {
        if (npy || !err.msg[0] || strchr(err.msg, '\n'))
            abort();
        return 0;
    }
    const int64_t *shape = ims_npy_shape(npy);
    uint64_t count = 1;
    for (int i = 0; i < ims_npy_ndim(npy); i++)
        count *= (uint64_t)shape[i];
    size_t nbytes = ims_npy_nbytes(npy);
    if ((int64_t)count != ims_npy_count(npy) || nbytes != count * ims_dtype_size(ims_npy_dtype(npy)) || nbytes > size)
        abort();
    const volatile uint8_t *p = ims_npy_data(npy);
    uint8_t sum = 0;
    for (size_t i = 0; i < nbytes; i++)
        sum ^= p[i];
    (void)sum;
    ims_npy_close(npy);
    return 0;
}
