/* l2_normalize.c: the l2_normalize_rows op (engine/backend/backend.h) on the
 * CPU, the sum of squares in double. */
#include "ops_cpu.h"

#include "imgsearch.h"

#include <math.h>

void imsi_cpu_l2_normalize_rows(const float *x, float *y_f32, uint16_t *y_f16, float *norms, int n, int d)
{
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < n; r++) {
        const float *row = x + (size_t)r * d;
        double ss = 0.0;
        for (int i = 0; i < d; i++)
            ss += (double)row[i] * row[i];
        double norm = sqrt(ss);
        norms[r] = (float)norm;
        /* 0 or non-finite: no direction to keep; the caller reports the row. */
        double scale = (norm > 0.0 && isfinite(norm)) ? 1.0 / norm : 0.0;
        for (int i = 0; i < d; i++) {
            float v = scale > 0.0 ? (float)(row[i] * scale) : 0.0f;
            if (y_f16)
                y_f16[(size_t)r * d + i] = ims_f32_to_f16(v);
            else
                y_f32[(size_t)r * d + i] = v;
        }
    }
}
