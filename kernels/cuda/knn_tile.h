/* kernels/cuda/knn_tile.h: the sizes of the CUDA k-NN op's score tile and
 * workspace (kernels/cuda/knn.c), in plain C so that every build has them: the
 * index layer (engine/index/knn.c) sizes query batches and memory estimates
 * with them, with or without CUDA, and the unit tests check the layout
 * without a GPU.
 *
 * A GPU search computes scores into a tile (B, k + T) f32 of bounded size (the
 * first k columns carry the running best, the next T columns the scores of T
 * table rows), so the full B x N score matrix never exists.
 */
#ifndef IMS_KNN_TILE_H
#define IMS_KNN_TILE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The score tile's budget in floats (256 MiB). */
#define IMS_KNN_TILE_FLOATS ((int64_t)64 << 20)

/* knn_select.cu's two-stage selection: per-block candidate lists over
 * segments of IMS_KNN_SEGMENT scores, used when k is small against the tile
 * (one rule for the kernel and the workspace sizes). */
#define IMS_KNN_SEGMENT 4096
static inline int imsi_knn_two_stage(int k, int64_t cnt) { return k <= IMS_KNN_SEGMENT / 4 && cnt > IMS_KNN_SEGMENT; }

/* Large k (> IMS_KNN_SEGMENT / 4): partitions of 8 k scores, each selected by
 * its own block into a list of its best k, when the tile has at least two;
 * one block per query then selects over the lists (an eighth of the scores). */
static inline int64_t imsi_knn_partition_len(int k) { return (int64_t)8 * k; }
static inline int imsi_knn_partitioned(int k, int64_t cnt)
{
    return k > IMS_KNN_SEGMENT / 4 && cnt >= 2 * imsi_knn_partition_len(k);
}
static inline int64_t imsi_knn_partitions(int k, int64_t cnt)
{
    return (cnt + imsi_knn_partition_len(k) - 1) / imsi_knn_partition_len(k);
}

/* The per-query stride of the selection's key buffer: k, or for k above 1024
 * the power of two at or above it (the final order is a bitonic sort there). */
static inline int64_t imsi_knn_tmp_stride(int k)
{
    if (k <= 1024)
        return k;
    int64_t p = 1024;
    while (p < k)
        p *= 2;
    return p;
}

/* Rows T per score tile for b queries, k and a table of n rows of dim: the tile
 * (b, k + T) and an f32 copy of T rows (T, dim) each within IMS_KNN_TILE_FLOATS
 * (dim <= 0: no row copy, only the tile bounds T); at least 1024 (or n), at
 * most n. */
int64_t imsi_knn_tile_rows(int64_t b, int k, int64_t n, int64_t dim);

/* Bytes of the two-stage path's candidate lists (b, segments, k) u64 (or the
 * large-k partitions' (b, partitions, k)) for a tile of cnt new scores; 0
 * where selection runs in one stage. */
size_t imsi_knn_segment_bytes(int64_t b, int k, int64_t cnt);

/* The path a search takes (an ims_knn_path, AUTO resolved): the streaming
 * kernel for b <= 16, sgemm above; fp16 GemmEx only over f16 rows. */
int imsi_knn_resolve_path(int path, int64_t b, int f16);

/* The f16 prefilter (engine/index/knn.c): an f16 table is first searched for
 * C = imsi_knn_prefilter_candidates(k) candidates with the queries rounded to
 * f16 (fast: tensor cores on CUDA), which the knn_rescore op rescores exactly.
 * A query whose C-th approximate score is not below its k-th minus twice the
 * score error bound is searched again exactly (imsi_knn_prefilter_holds). */
#define IMS_KNN_PREFILTER_MAX_K 1024
static inline int imsi_knn_prefilter_candidates(int k) { return 2 * k + 32; }
/* The most candidates the CUDA rescoring sorts in shared memory (32 KiB). */
#define KNN_RESCORE_MAX 4096

/* approx (c) best first: do the c candidates of an n-row table provably hold
 * every row whose exact score reaches the k-th best (kk = min(k, n))?
 * margin: the bound on |approximate - exact| score of any row. */
int imsi_knn_prefilter_holds(const float *approx, int c, int64_t n, int kk, float margin);

/* One GPU search's device scratch, as byte offsets into one buffer. */
typedef struct imsi_knn_layout {
    int64_t tile_rows;  /* T */
    int64_t ld;         /* k + T: the tile's row stride in floats */
    size_t tile;        /* (b, ld) f32 scores, at offset 0 */
    size_t cand;        /* (b, k) i32 candidate ids */
    size_t tmp;         /* (b, imsi_knn_tmp_stride(k)) u64 keys */
    size_t seg;         /* (b, segments, k) u64 two-stage lists; seg_bytes 0: none */
    size_t rows;        /* (T, d) f32 copy of f16 rows (GEMM over f16), or (b, d) f16 queries (GEMM_F16) */
    size_t seg_bytes, rows_bytes;
    size_t total;       /* bytes to allocate */
} imsi_knn_layout;

/* The layout for b queries, k, a table of n rows of d (f16 or f32 storage)
 * and a resolved path; 0 if a size overflows. */
int imsi_knn_layout_make(int64_t b, int k, int64_t n, int64_t d, int f16, int path, imsi_knn_layout *out);

/* Device scratch bytes of one GPU search (tile, candidate lists, queries and
 * results), for the index layer's memory estimates; 0 on overflow. */
size_t imsi_knn_workspace_bytes(int64_t b, int k, int64_t n, int64_t dim);

#ifdef __cplusplus
}
#endif

#endif /* IMS_KNN_TILE_H */
