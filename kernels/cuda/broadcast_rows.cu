/* broadcast_rows.cu: y (m, n) [r][c] = bias[c], the bias prefill of linear.
 *
 * kernels/cuda/linear.c writes the bias into every row of y, then runs
 * cublasSgemm with beta = 1 so the GEMM adds x . w^T on top (the CPU backend
 * does the same with cblas_sgemm). A 2-D grid: x over columns, y over rows, so
 * no thread divides a 64-bit index; both dimensions are grid-stride loops with
 * capped grids, so any m, n up to INT_MAX fit. Indices are unsigned: a value
 * below 2^31 plus a stride below 2^31 cannot wrap.
 */
#include "launch.h"

#define BROADCAST_BLOCK 256
#define BROADCAST_MAX_BLOCKS_X 1024u  /* 262144 columns per pass */
#define BROADCAST_MAX_BLOCKS_Y 65535u /* the gridDim.y limit */

static __global__ void __launch_bounds__(BROADCAST_BLOCK)
    broadcast_rows_kernel(const float *__restrict__ bias, // (n)
                          float *__restrict__ y,          // (m, n)
                          int m, int n)
{
    unsigned int col_stride = gridDim.x * blockDim.x;
    for (unsigned int r = blockIdx.y; r < (unsigned int)m; r += gridDim.y) {
        float *row = y + (size_t)r * (size_t)n; // (n)
        for (unsigned int c = blockIdx.x * blockDim.x + threadIdx.x; c < (unsigned int)n; c += col_stride)
            row[c] = bias[c];
    }
}

extern "C" cudaError_t imsi_cuda_broadcast_rows(const float *bias, // (n)
                                                float *y,          // (m, n)
                                                int m, int n, cudaStream_t s)
{
    if (m <= 0 || n <= 0)
        return cudaSuccess;
    dim3 grid(cuda_grid_blocks((size_t)n, BROADCAST_BLOCK, BROADCAST_MAX_BLOCKS_X),
              (unsigned int)m < BROADCAST_MAX_BLOCKS_Y ? (unsigned int)m : BROADCAST_MAX_BLOCKS_Y);
    (void)cudaGetLastError(); /* drop a stale error: see launch.h */
    broadcast_rows_kernel<<<grid, BROADCAST_BLOCK, 0, s>>>(bias, y, m, n);
    return cudaGetLastError();
}
