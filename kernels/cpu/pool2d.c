/* pool2d.c: the pool2d and global_avg_pool ops (engine/backend/backend.h) on
 * the CPU, f32, sums in double.
 */
#include "ops_cpu.h"

#include <math.h>

/* Channels per block of one output pixel's sums (a stack array of doubles). */
enum { POOL_BLOCK = 256 };

/* One output pixel of the window rows [ky0, ky1) and columns [kx0, kx1)
 * (clipped to the image): positions outer, channels inner and contiguous, so
 * the compiler vectorizes the channel loop; each channel still sums its
 * positions in row-major order, in double, as the scalar loop did. */
static void pool_pixel(const float *xb, int w, int c, int max, int iy0, int iy1, int ix0, int ix1, double div,
                       float *out)
{
    for (int c0 = 0; c0 < c; c0 += POOL_BLOCK) {
        int cn = c - c0 < POOL_BLOCK ? c - c0 : POOL_BLOCK;
        double acc[POOL_BLOCK];
        for (int i = 0; i < cn; i++)
            acc[i] = max ? -INFINITY : 0.0;
        for (int iy = iy0; iy < iy1; iy++)
            for (int ix = ix0; ix < ix1; ix++) {
                const float *v = xb + ((size_t)iy * w + ix) * c + c0;
                if (max)
                    for (int i = 0; i < cn; i++)
                        acc[i] = v[i] > acc[i] ? v[i] : acc[i];
                else
                    for (int i = 0; i < cn; i++)
                        acc[i] += v[i];
            }
        for (int i = 0; i < cn; i++)
            out[c0 + i] = (float)(max ? acc[i] : acc[i] / div);
    }
}

void imsi_cpu_pool2d_nhwc(const float *x, int n, int h, int w, int c, int max, int k, int stride, int pad,
                          int count_include_pad, float *y, int oh, int ow, int y_channels, int y_offset)
{
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < n; b++) {
        for (int oy = 0; oy < oh; oy++) {
            const float *xb = x + (size_t)b * h * w * c;
            int y0 = oy * stride - pad;
            int iy0 = y0 < 0 ? 0 : y0, iy1 = y0 + k < h ? y0 + k : h;
            for (int ox = 0; ox < ow; ox++) {
                int x0 = ox * stride - pad;
                int ix0 = x0 < 0 ? 0 : x0, ix1 = x0 + k < w ? x0 + k : w;
                int inside = (iy1 - iy0) * (ix1 - ix0);
                double div = count_include_pad ? (double)k * k : (double)inside;
                float *out = y + (((size_t)b * oh + oy) * ow + ox) * y_channels + y_offset; // (C)
                pool_pixel(xb, w, c, max, iy0, iy1, ix0, ix1, div, out);
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
