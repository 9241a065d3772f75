/* kernels/cuda/knn_tile.c: the CUDA k-NN op's tile and workspace sizes
 * (knn_tile.h); plain C, built with or without CUDA. */
#include "kernels/cuda/knn_tile.h"

int64_t imsi_knn_tile_rows(int64_t b, int k, int64_t n, int64_t dim)
{
    if (b < 1)
        b = 1;
    int64_t rows = IMS_KNN_TILE_FLOATS / b - k;
    if (dim > 0 && rows > IMS_KNN_TILE_FLOATS / dim)
        rows = IMS_KNN_TILE_FLOATS / dim; /* the f32 copy of a tile of f16 rows */
    if (rows < 1024)
        rows = 1024;
    return rows < n ? rows : n;
}

size_t imsi_knn_workspace_bytes(int64_t b, int k, int64_t n, int64_t dim)
{
    if (b < 0 || k < 1 || n < 0 || dim < 1 || b > INT32_MAX || dim > INT32_MAX)
        return 0;
    int64_t t = imsi_knn_tile_rows(b, k, n, 0), t_copy = imsi_knn_tile_rows(b, k, n, dim);
    /* tile scores (b, k + t), candidate ids (b, k) i32 and keys (b, k) u64,
     * per-block candidate lists (b, t / 4096, k) u64 for k <= 1024, the
     * queries (b, dim) (and an f16 copy, counted in the slack of the f32
     * one), an f32 copy of a tile of f16 rows (t, dim), results. */
    __int128 segs = k <= 1024 ? (__int128)b * ((t + 4095) / 4096) * k * 8 : 0;
    __int128 bytes = (__int128)b * (k + t) * 4 + (__int128)b * k * 20 + segs + (__int128)b * dim * 6 +
                     (__int128)t_copy * dim * 4 + 4096;
    return bytes > (__int128)SIZE_MAX ? 0 : (size_t)bytes;
}
