/* knn.h: internals of the k-NN search (engine/index/knn.c) shared with the
 * tests. The public API is in include/imgsearch.h ("k-NN search").
 *
 * The CUDA op's tile sizes (IMS_KNN_TILE_FLOATS, imsi_knn_tile_rows,
 * imsi_knn_workspace_bytes) are in kernels/cuda/knn_tile.h.
 */
#ifndef IMS_KNN_H
#define IMS_KNN_H

#include "imgsearch.h"

/* Query batches are cut so that one batch's results (b * k) stay under this
 * (see imsi_knn_query_batch). */
#define IMS_KNN_RESULT_ENTRIES ((int64_t)16 << 20)

/* Queries per search batch for this k: b * k <= IMS_KNN_RESULT_ENTRIES and a
 * tile of 1024 rows, (b, k + 1024), within IMS_KNN_TILE_FLOATS. At least 1. */
int64_t imsi_knn_query_batch(int k);

/* Tests: search in query batches of at most this many (0: the default), so
 * small searches cross batch boundaries. */
void imsi_knn_set_max_batch(ims_knn_table *t, int64_t queries);

/* Tests: queries the f16 prefilter answered, and those of them it had to
 * search again exactly (the bound did not hold), since the table was made. */
void imsi_knn_prefilter_counts(const ims_knn_table *t, int64_t *queries, int64_t *fallbacks);

/* Merges two best-first lists into out (at most k entries, best first; equal
 * scores by lower id). out must not alias a or b. Returns the count. */
int imsi_knn_merge(const float *a_scores, const int64_t *a_ids, int na, const float *b_scores,
                   const int32_t *b_ids, int64_t b_base, int nb, int k, float *out_scores, int64_t *out_ids);

/* Row i as stored (normalized when cosine, rounded to the storage dtype,
 * imsi_knn_storage): what a searcher rescores its candidates with, so a
 * row's score does not depend on the table around it. NULL if out of range. */
const void *imsi_knn_row(const ims_knn_table *t, int64_t i);
ims_dtype imsi_knn_storage(const ims_knn_table *t);

/* ---- A table split across backends (engine/index/knn_multi.c; the API is
 * ims_knn_multi_* in imgsearch.h) ---- */

#define IMS_KNN_MAX_PARTS 64

int64_t imsi_knn_multi_rows(const ims_knn_multi *m);

#endif /* IMS_KNN_H */
