/* pool2d.c: the pool2d and global_avg_pool ops (engine/backend/backend.h) on
 * the CPU, f32, sums in double.
 */
#include "ops_cpu.h"

#include <math.h>

void imsi_cpu_pool2d_nhwc(const float *x, int n, int h, int w, int c, int max, int k, int stride, int pad,
                          int count_include_pad, float *y, int oh, int ow, int y_channels, int y_offset)
{
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < n; b++) {
        for (int oy = 0; oy < oh; oy++) {
            for (int ox = 0; ox < ow; ox++) {
                int y0 = oy * stride - pad, x0 = ox * stride - pad;
                float *out = y + (((size_t)b * oh + oy) * ow + ox) * y_channels + y_offset; // (C)
                int inside = 0;
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++)
                        inside += y0 + ky >= 0 && y0 + ky < h && x0 + kx >= 0 && x0 + kx < w;
                double div = count_include_pad ? (double)k * k : (double)inside;
                for (int ch = 0; ch < c; ch++) {
                    double acc = max ? -INFINITY : 0.0;
                    for (int ky = 0; ky < k; ky++) {
                        int iy = y0 + ky;
                        if (iy < 0 || iy >= h)
                            continue;
                        for (int kx = 0; kx < k; kx++) {
                            int ix = x0 + kx;
                            if (ix < 0 || ix >= w)
                                continue;
                            double v = x[(((size_t)b * h + iy) * w + ix) * c + ch];
                            acc = max ? (v > acc ? v : acc) : acc + v;
                        }
                    }
                    out[ch] = (float)(max ? acc : acc / div);
                }
            }
        }
    }
}

void imsi_cpu_global_avg_pool_nhwc(const float *x, int n, int hw, int c, float *y)
{
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < n; b++) {
        for (int ch = 0; ch < c; ch++) {
            double acc = 0.0;
            for (int p = 0; p < hw; p++)
                acc += x[((size_t)b * hw + p) * c + ch];
            y[(size_t)b * c + ch] = (float)(acc / hw);
        }
    }
}
