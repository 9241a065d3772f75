/* launch.h: the CUDA kernel launchers, as plain C declarations.
 *
 * The op entries (kernels/cuda/<op>.c, host C) call these; each
 * kernels/cuda/<name>.cu file defines one kernel's launcher. A launcher that
 * implements a whole op says so and follows that op's contract in
 * engine/backend/backend.h (written only there); the others (parts of an op)
 * describe their own arguments. A launcher takes raw device pointers,
 * sizes and a stream, enqueues the kernel on that stream and returns
 * cudaGetLastError(), i.e. launch errors only: a fault inside the kernel shows up
 * at the next synchronizing call. Before launching, a launcher clears the host
 * thread's last error: a runtime call that failed earlier (and was reported
 * then, e.g. an out-of-memory cudaMalloc) leaves its error there, and it must
 * not be mistaken for this launch's. Sticky errors (a faulted context) are not
 * lost: the launch itself fails with them again. Matrices are row-major; f16 data is IEEE
 * binary16 bits in uint16_t. Sizes were checked by engine/backend/backend.c, so the
 * launchers only guard against n == 0 (nothing to launch).
 */
#ifndef IMS_CUDA_LAUNCH_H
#define IMS_CUDA_LAUNCH_H

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The convert op, one direction each (__float2half_rn: the bits of ims_f32_to_f16). */
cudaError_t imsi_cuda_convert_f32_to_f16(const float *src, uint16_t *dst, size_t n, cudaStream_t s);
cudaError_t imsi_cuda_convert_f16_to_f32(const uint16_t *src, float *dst, size_t n, cudaStream_t s);

/* The l2_normalize_rows op: y into y_f32 or y_f16 (exactly one non-NULL). */
cudaError_t imsi_cuda_l2_normalize_rows(const float *x, float *y_f32, uint16_t *y_f16, float *norms, int n, int d,
                                        cudaStream_t s);

/* Part of the linear op: y (m, n): y[r][c] = bias[c], bias (n). Prefills y
 * before a beta = 1 GEMM. */
cudaError_t imsi_cuda_broadcast_rows(const float *bias, float *y, int m, int n, cudaStream_t s);

/* Parts of the knn_select op (kernels/cuda/knn.c).
 * scores[q * ld + j] = queries[q] . rows[j] (fp32 accumulation) for rows (n, d),
 * f16 (rows_f16 != 0) or f32, and queries (b, d) f32 (knn_scores.cu). */
cudaError_t imsi_cuda_knn_scores(const void *rows, int rows_f16, const float *queries, float *scores, int n, int d, int b,
                                 int ld, cudaStream_t s);
/* Per query: the best kk = min(k, kprev + cnt) of the old candidates
 * (tile[q][0..kprev), ids cand[q][0..kprev)) and the new scores
 * tile[q][kcap..kcap + cnt) of rows base.., sorted (score desc, row asc) into
 * tile[q][0..kk) and cand[q][0..kk). tmp: (b, imsi_knn_tmp_stride(kcap))
 * scratch; seg: the per-block candidate lists of the two-stage and large-k
 * partitioned paths, imsi_knn_segment_bytes(b, k, cnt) bytes (knn_tile.h; 0:
 * one stage; NULL forces one stage). k <= kcap,
 * ld >= kcap + cnt (knn_select.cu). */
cudaError_t imsi_cuda_knn_select(float *tile, int32_t *cand, uint64_t *tmp, uint64_t *seg, int b, int ld, int kprev,
                                 int kcap, int cnt, int32_t base, int k, cudaStream_t s);

/* The knn_rescore op (backend.h) over raw pointers: table (n, d) f16
 * (table_f16 != 0) or f32; c <= KNN_RESCORE_MAX (knn_tile.h), c <= n. */
cudaError_t imsi_cuda_knn_rescore(const void *table, int table_f16, const float *queries, const int32_t *cand,
                                  const float *cand_scores, const float *margin, int32_t *ids, float *scores,
                                  int32_t *ok, int n, int d, int b, int c, int k, cudaStream_t s);

/* Part of the conv2d op's fallback (kernels/cuda/conv2d.c): channels
 * [y_offset, y_offset + o) of y (rows, y_channels) = relu?(acc (rows, o) +
 * bias (o)), acc, bias and y all f16 (f16 != 0) or all f32, math in f32. */
cudaError_t imsi_cuda_conv_epilogue(const void *acc, const void *bias, void *y, size_t rows, int o, int y_channels,
                                    int y_offset, int relu, int f16, cudaStream_t s);
/* Part of conv2d's plan search: *differs (device) = 1 if channels [0, o) of y
 * (rows, y_channels) do not hold the bits of packed (rows, o); else left as is. */
cudaError_t imsi_cuda_conv_slice_differs(const void *packed, const void *y, size_t rows, int o, int y_channels, int f16,
                                         unsigned int *differs, cudaStream_t s);

/* The pool2d op: max != 0 for a max pool; y has y_channels channels, the output
 * goes to [y_offset, y_offset + c); f16 != 0: x and y are f16 (math in f32). */
cudaError_t imsi_cuda_pool2d_nhwc(const void *x, void *y, int n, int h, int w, int c, int max, int k, int stride, int pad,
                                  int include_pad, int oh, int ow, int y_channels, int y_offset, int f16, cudaStream_t s);
/* The global_avg_pool op: x (n, hw, c), f16 != 0 for f16 x. */
cudaError_t imsi_cuda_global_avg_pool_nhwc(const void *x, float *y, int n, int hw, int c, int f16, cudaStream_t s);
/* The input_u8 op: pixels = N * H * W; f16 != 0 for an f16 y. */
cudaError_t imsi_cuda_input_u8(const uint8_t *x, void *y, size_t pixels, const float scale[3], const float shift[3],
                               int f16, cudaStream_t s);
/* The text encoder's ops (f16 flags: activations are IEEE binary16 bits). */
/* The embed_layernorm op: type0 is row 0 of the type table. bad (device, one
 * word, set to 0xffffffff by the caller): the smallest flat index (b * t +
 * position) of an id outside [0, vocab), whose row is left unwritten. */
cudaError_t imsi_cuda_embed_layernorm(const int32_t *ids, const float *word, const float *pos, const float *type0,
                                      const float *gamma, const float *beta, double eps, void *y, int y_f16, int b, int t,
                                      int h, int vocab, unsigned int *bad, cudaStream_t s);
/* The bias_act op: gelu != 0 for IMS_ACT_GELU. */
cudaError_t imsi_cuda_bias_act(const void *x, const float *bias, void *y, int f16, int gelu, int m, int n, cudaStream_t s);
/* The add_layernorm op: bias may be NULL. */
cudaError_t imsi_cuda_add_layernorm(const void *x, const float *bias, const void *residual, const float *gamma,
                                    const float *beta, double eps, void *y, int f16, int m, int h, cudaStream_t s);
/* Part of the attention op (kernels/cuda/attention.c): scores (b, heads, t, t)
 * in place, softmax over keys < lengths[b] (clamped to [0, t]), 0 past it. */
cudaError_t imsi_cuda_masked_softmax(void *scores, const int32_t *lengths, int f16, int b, int heads, int t,
                                     cudaStream_t s);
/* The pool_normalize op: cls != 0 for IMS_POOLING_CLS. */
cudaError_t imsi_cuda_pool_normalize(const void *x, const int32_t *lengths, float *y, int f16, int cls, int normalize,
                                     int b, int t, int h, cudaStream_t s);

#ifdef __cplusplus
}
#endif

#ifdef __CUDACC__
/* For the kernel files: the block count of a grid-stride loop over n items,
 * at least 1 and at most max_blocks (so it fits gridDim.x whatever n is). */
static inline unsigned int cuda_grid_blocks(size_t n, unsigned int block, unsigned int max_blocks)
{
    size_t blocks = n / block + (n % block != 0);
    if (blocks < 1)
        blocks = 1;
    return blocks < max_blocks ? (unsigned int)blocks : max_blocks;
}
#endif

#endif /* IMS_CUDA_LAUNCH_H */
