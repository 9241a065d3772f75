/* kernels/cuda/knn_tile.h: the sizes of the CUDA k-NN op's score tile and
 * workspace (kernels/cuda/knn.c), in plain C so that every build has them: the
 * index layer (engine/index/knn.c) sizes query batches and memory estimates
 * with them, with or without CUDA.
 *
 * A GPU search computes scores into a tile (B, k + T) f32 of bounded size (the
 * first k columns carry the running best, the next T columns the scores of T
 * table rows), so the full B x N score matrix never exists.
 */
#ifndef IMS_KNN_TILE_H
#define IMS_KNN_TILE_H

#include <stddef.h>
#include <stdint.h>

/* The score tile's budget in floats (256 MiB). */
#define IMS_KNN_TILE_FLOATS ((int64_t)64 << 20)

/* Rows T per score tile for b queries, k and a table of n rows of dim: the tile
 * (b, k + T) and an f32 copy of T rows (T, dim) each within IMS_KNN_TILE_FLOATS
 * (dim <= 0: no row copy, only the tile bounds T); at least 1024 (or n), at
 * most n. */
int64_t imsi_knn_tile_rows(int64_t b, int k, int64_t n, int64_t dim);

/* Device scratch bytes of one GPU search (tile, candidate lists, queries and
 * results); 0 on overflow. */
size_t imsi_knn_workspace_bytes(int64_t b, int k, int64_t n, int64_t dim);

#endif /* IMS_KNN_TILE_H */
