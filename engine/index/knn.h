/* knn.h: internals of the k-NN search (engine/index/knn.c) shared with the CUDA
 * backend and the tests. The public API is in include/imgsearch.h ("k-NN search").
 *
 * Sizes: a GPU search computes scores into a tile (B, k + T) f32 of bounded size
 * (the first k columns carry the running best, the next T columns the scores of
 * T table rows), so the full B x N score matrix never exists.
 */
#ifndef IMS_KNN_H
#define IMS_KNN_H

#include "imgsearch.h"

/* The score tile's budget in floats (256 MiB). */
#define IMS_KNN_TILE_FLOATS ((int64_t)64 << 20)
/* Query batches are cut so that one batch's results (b * k) stay under this
 * (see imsi_knn_query_batch). */
#define IMS_KNN_RESULT_ENTRIES ((int64_t)16 << 20)

/* Queries per search batch for this k: b * k <= IMS_KNN_RESULT_ENTRIES and a
 * tile of 1024 rows, (b, k + 1024), within IMS_KNN_TILE_FLOATS. At least 1. */
int64_t imsi_knn_query_batch(int k);

/* Tests: search in query batches of at most this many (0: the default), so
 * small searches cross batch boundaries. */
void imsi_knn_set_max_batch(ims_knn_table *t, int64_t queries);

/* Rows T per score tile for b queries, k and a table of n rows of dim: the tile
 * (b, k + T) and an f32 copy of T rows (T, dim) each within IMS_KNN_TILE_FLOATS
 * (dim <= 0: no row copy, only the tile bounds T); at least 1024 (or n), at
 * most n. */
int64_t imsi_knn_tile_rows(int64_t b, int k, int64_t n, int64_t dim);

/* Device scratch bytes of one GPU search (tile, candidate lists, queries and
 * results); 0 on overflow. */
size_t imsi_knn_workspace_bytes(int64_t b, int k, int64_t n, int64_t dim);

/* Merges two best-first lists into out (at most k entries, best first; equal
 * scores by lower id). out must not alias a or b. Returns the count. */
int imsi_knn_merge(const float *a_scores, const int64_t *a_ids, int na, const float *b_scores,
                   const int32_t *b_ids, int64_t b_base, int nb, int k, float *out_scores, int64_t *out_ids);

#endif /* IMS_KNN_H */
