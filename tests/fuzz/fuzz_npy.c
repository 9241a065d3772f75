/* fuzz_npy.c: libFuzzer target for the .npy reader (engine/io/npy.c).
 *
 * Each input is parsed from memory; a success must describe data that lies
 * inside the input (every byte is read, so ASan catches an overrun) with a
 * shape whose product matches the element count; a failure leaves the result
 * zeroed and always says why.
 */
#include "imgsearch.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ims_npy npy;
    ims_error err;
    memset(&err, 0, sizeof err);
    if (ims_npy_parse(data, size, &npy, &err) != IMS_OK) {
        if (npy.data || npy.map_ || !err.msg[0] || strchr(err.msg, '\n'))
            abort();
        return 0;
    }
    uint64_t count = 1;
    for (int i = 0; i < npy.ndim; i++)
        count *= (uint64_t)npy.shape[i];
    if (count != npy.count || npy.nbytes != count * npy.elem_size || npy.nbytes > size)
        abort();
    const volatile uint8_t *p = npy.data;
    uint8_t sum = 0;
    for (size_t i = 0; i < npy.nbytes; i++)
        sum ^= p[i];
    (void)sum;
    ims_npy_close(&npy);
    return 0;
}
