/* kernels/cuda/knn_tile.c: the CUDA k-NN op's tile and workspace sizes
 * (knn_tile.h); plain C, built with or without CUDA. */
#include "kernels/cuda/knn_tile.h"

#include "imgsearch.h"

#include <math.h>

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

size_t imsi_knn_segment_bytes(int64_t b, int k, int64_t cnt)
{
    if (imsi_knn_partitioned(k, cnt))
        return (size_t)b * (size_t)imsi_knn_partitions(k, cnt) * (size_t)k * sizeof(uint64_t);
    if (!imsi_knn_two_stage(k, cnt))
        return 0;
    int64_t segments = (cnt + IMS_KNN_SEGMENT - 1) / IMS_KNN_SEGMENT;
    return (size_t)b * (size_t)segments * (size_t)k * sizeof(uint64_t);
}

int imsi_knn_resolve_path(int path, int64_t b, int f16)
{
    if (path == IMS_KNN_PATH_AUTO)
        path = b <= 16 ? IMS_KNN_PATH_STREAM : IMS_KNN_PATH_GEMM;
    if (path == IMS_KNN_PATH_GEMM_F16 && !f16)
        path = IMS_KNN_PATH_GEMM;
    return path;
}

static size_t round16(size_t v) { return (v + 15) / 16 * 16; }

int imsi_knn_layout_make(int64_t b, int k, int64_t n, int64_t d, int f16, int path, imsi_knn_layout *out)
{
    if (b < 1 || k < 1 || n < 1 || d < 1 || b > INT32_MAX || n > INT32_MAX || d > INT32_MAX || k > INT32_MAX / 2)
        return 0;
    imsi_knn_layout l = {0};
    /* Only the exact GEMM path over f16 rows needs an f32 copy of a tile's rows;
     * elsewhere the tile may be longer (B = 1: up to 64M rows, one pass). */
    int copy_rows = path == IMS_KNN_PATH_GEMM && f16;
    l.tile_rows = imsi_knn_tile_rows(b, k, n, copy_rows ? d : 0);
    l.ld = k + l.tile_rows;
    if (l.ld > INT32_MAX)
        return 0;
    /* products of values below 2^31 (b, ld, k, T, d) and small factors fit 64 bits */
    size_t tile_bytes = (size_t)b * (size_t)l.ld * 4, cand_bytes = (size_t)b * k * 4;
    size_t tmp_bytes = (size_t)b * (size_t)imsi_knn_tmp_stride(k) * 8;
    l.seg_bytes = imsi_knn_segment_bytes(b, k, l.tile_rows); /* the largest tile has the most segments */
    l.rows_bytes = copy_rows                          ? (size_t)l.tile_rows * (size_t)d * 4
                   : path == IMS_KNN_PATH_GEMM_F16 ? (size_t)b * (size_t)d * 2 /* the f16 queries */
                                                    : 0;
    /* Every part starts at a multiple of 16 bytes (the buffer itself is
     * cudaMalloc'd, 256-byte aligned): cuBLAS and vector loads want it. */
    l.tile = 0;
    l.cand = round16(tile_bytes);
    l.tmp = l.cand + round16(cand_bytes);
    l.seg = l.tmp + round16(tmp_bytes);
    l.rows = l.seg + round16(l.seg_bytes);
    l.total = l.rows + round16(l.rows_bytes);
    *out = l;
    return 1;
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
    __int128 segs = k <= 1024 ? (__int128)b * ((t + 4095) / 4096) * k * 8
                              : (__int128)b * imsi_knn_partitions(k, t) * k * 8; /* large-k partitions */
    __int128 bytes = (__int128)b * (k + t) * 4 + (__int128)b * k * 12 + (__int128)b * imsi_knn_tmp_stride(k) * 8 +
                     segs + (__int128)b * dim * 6 +
                     (__int128)t_copy * dim * 4 + 4096;
    return bytes > (__int128)SIZE_MAX ? 0 : (size_t)bytes;
}

/* Rows outside the candidates score at most approx[c - 1] approximately, so
 * exactly at most approx[c - 1] + margin; the exact k-th best is at least
 * approx[kk - 1] - margin (the kk approximate best each are). Strictly below:
 * equal scores must not be left out (their order is by row). */
int imsi_knn_prefilter_holds(const float *approx, int c, int64_t n, int kk, float margin)
{
    if (c >= n)
        return 1;
    if (kk < 1 || kk > c || !isfinite(approx[kk - 1]) || !isfinite(margin) || !(margin >= 0.0f))
        return 0;
    return (double)approx[c - 1] < (double)approx[kk - 1] - 2.0 * (double)margin;
}
