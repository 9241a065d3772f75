/* kernels/cuda/ops_cuda.h: the CUDA backend's op entries, one file per op
 * (kernels/cuda/<op>.c, named as the CPU reference kernels/cpu/<op>.c).
 *
 * Each entry implements the op of the same name in engine/backend/backend.h,
 * whose contract (shapes, dtypes, aliasing, what may be NULL) is written
 * there only; the arguments were checked by engine/backend/backend.c. The
 * caller has made the backend's GPU current; every call is enqueued on
 * cuda->stream and checked with engine/backend/cuda_check.h. The kernels
 * themselves are reached through the launchers of kernels/cuda/launch.h.
 *
 * Each launcher returns its launch error (IMS_CUDA_CHECK); IMS_CUDA_CHECK_LAUNCH
 * then adds the IMS_CUDA_SYNC_DEBUG synchronization that names a faulting kernel
 * (its cudaGetLastError finds nothing new in the normal case).
 */
#ifndef IMS_OPS_CUDA_H
#define IMS_OPS_CUDA_H

#include "backend/backend.h"
#include "kernels/cuda/cuda_ctx.h"

ims_status imsi_cuda_op_convert(imsi_cuda_ctx *cuda, const imsi_tensor *src, imsi_tensor *dst, ims_error *err);
ims_status imsi_cuda_op_l2_normalize_rows(imsi_cuda_ctx *cuda, const imsi_tensor *x, imsi_tensor *y,
                                          imsi_tensor *norms, ims_error *err);
ims_status imsi_cuda_op_linear(imsi_cuda_ctx *cuda, const imsi_tensor *x, const imsi_tensor *w,
                               const imsi_tensor *bias, imsi_tensor *y, ims_error *err);
ims_status imsi_cuda_op_conv2d(imsi_cuda_ctx *cuda, const imsi_conv2d_params *p, const imsi_tensor *x,
                               const imsi_tensor *w, const imsi_tensor *bias, imsi_tensor *y, ims_error *err);
ims_status imsi_cuda_op_pool2d(imsi_cuda_ctx *cuda, const imsi_pool2d_params *p, const imsi_tensor *x,
                               imsi_tensor *y, ims_error *err);
ims_status imsi_cuda_op_global_avg_pool(imsi_cuda_ctx *cuda, const imsi_tensor *x, imsi_tensor *y, ims_error *err);
ims_status imsi_cuda_op_input_u8(imsi_cuda_ctx *cuda, const imsi_tensor *x, const float scale[3],
                                 const float shift[3], imsi_tensor *y, ims_error *err);
ims_status imsi_cuda_op_knn_select(imsi_cuda_ctx *cuda, const imsi_tensor *table, const imsi_tensor *queries, int k,
                                   int path, imsi_tensor *ids, imsi_tensor *scores, ims_error *err);
ims_status imsi_cuda_op_knn_rescore(imsi_cuda_ctx *cuda, const imsi_tensor *table, const imsi_tensor *queries,
                                    const imsi_tensor *cand, const imsi_tensor *cand_scores, const imsi_tensor *margin,
                                    int k, imsi_tensor *ids, imsi_tensor *scores, imsi_tensor *ok, ims_error *err);
ims_status imsi_cuda_op_embed_layernorm(imsi_cuda_ctx *cuda, const imsi_tensor *ids, const imsi_tensor *word,
                                        const imsi_tensor *pos, const imsi_tensor *type, const imsi_tensor *gamma,
                                        const imsi_tensor *beta, double eps, imsi_tensor *y, ims_error *err);
ims_status imsi_cuda_op_bias_act(imsi_cuda_ctx *cuda, const imsi_tensor *x, const imsi_tensor *bias, imsi_act act,
                                 imsi_tensor *y, ims_error *err);
ims_status imsi_cuda_op_add_layernorm(imsi_cuda_ctx *cuda, const imsi_tensor *x, const imsi_tensor *bias,
                                      const imsi_tensor *residual, const imsi_tensor *gamma, const imsi_tensor *beta,
                                      double eps, imsi_tensor *y, ims_error *err);
ims_status imsi_cuda_op_attention(imsi_cuda_ctx *cuda, const imsi_tensor *qkv, const imsi_tensor *lengths, int heads,
                                  imsi_tensor *scores, imsi_tensor *ctx, ims_error *err);
ims_status imsi_cuda_op_pool_normalize(imsi_cuda_ctx *cuda, const imsi_tensor *x, const imsi_tensor *lengths,
                                       imsi_pooling pooling, int normalize, imsi_tensor *y, ims_error *err);

/* conv2d's plan cache (cuda->convs): releases the plans and their workspace
 * (the stream must be idle). NULL is fine. */
void imsi_cudnn_convs_free(imsi_cudnn_convs *cache);

#endif /* IMS_OPS_CUDA_H */
