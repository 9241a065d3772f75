/* ops_cpu.h: the CPU reference implementation of every backend op.
 *
 * Raw pointers and sizes, row-major; shapes were checked by engine/backend.c.
 * These are the references the GPU kernels are tested against, so precision
 * comes before speed where the two conflict (sums in double).
 */
#ifndef IMS_OPS_CPU_H
#define IMS_OPS_CPU_H

#include <stddef.h>
#include <stdint.h>

/* dst (n) = src (n), converted. */
void cpu_convert_f32_to_f16(const float *src, uint16_t *dst, size_t n);
void cpu_convert_f16_to_f32(const uint16_t *src, float *dst, size_t n);

/* x (n, d) f32; y (n, d) f32 (y_f32) or f16 (y_f16, the other NULL); norms (n).
 * Rows with a zero or non-finite norm get y = 0. */
void cpu_l2_normalize_rows(const float *x, float *y_f32, uint16_t *y_f16, float *norms, int n, int d);

/* y (m, n) = x (m, k) . w (n, k)^T + bias (n); bias may be NULL. OpenBLAS sgemm. */
void cpu_linear(const float *x, const float *w, const float *bias, float *y, int m, int n, int k);

/* --- top-k search --- */
/* table (n, d): f32 (table_f32) or f16 (table_f16, the other NULL); queries (b, d);
 * ids, scores (b, kk), kk = min(k, n): each query's kk highest dot products
 * (fp32 sgemm), descending, equal scores by lower row index; a NaN score counts
 * as -inf. Blocked over rows; f16 blocks are converted to f32 first.
 * Returns 0, or -1 if its scratch memory (about (b * (k + 1M / b) + 16K * d) * 4
 * bytes) cannot be allocated. */
int cpu_knn_select(const float *table_f32, const uint16_t *table_f16, int64_t n, int d, const float *queries,
                   int b, int k, int32_t *ids, float *scores);

#endif /* IMS_OPS_CPU_H */
