/* kernels/cuda/embed_layernorm.c: the embed_layernorm op on CUDA (kernel:
 * embed_layernorm.cu), with the contract's check of every token id.
 *
 * How ids are checked: the kernel skips a token whose id is outside the
 * vocabulary and records the first such token in a device word, which this
 * op reads back before it returns. The other honest option, checking on the
 * host, would cost more here: the op gets the ids already on the device, so
 * it would download all B * T of them and wait just the same. The flag costs
 * a 4-byte memset, an atomicMin only on a bad token, and a 4-byte read back
 * that waits for the embedding kernel alone (the text encoder's upload of the
 * ids just before is synchronous anyway, and the layers after it are enqueued
 * only once this returns). The price: this op synchronizes the stream, so it
 * cannot run inside a graph capture (the text encoder does not capture).
 */
#include "kernels/cuda/ops_cuda.h"

#include "kernels/cuda/launch.h"
#include "backend/cuda_check.h"

ims_status imsi_cuda_op_embed_layernorm(imsi_cuda_ctx *cuda, const imsi_tensor *ids, const imsi_tensor *word,
                                        const imsi_tensor *pos, const imsi_tensor *type, const imsi_tensor *gamma,
                                        const imsi_tensor *beta, double eps, imsi_tensor *y, ims_error *err)
{
    int b = (int)ids->shape[0], t = (int)ids->shape[1], h = (int)word->shape[1], vocab = (int)word->shape[0];
    unsigned int *bad = NULL; // (1) device: the first bad token's flat index, or 0xffffffff
    ims_status status = imsi_cuda_scratch(cuda, sizeof *bad, "embed", (void **)&bad, err);
    if (status)
        return status;
    IMS_CUDA_CHECK(err, cudaMemsetAsync(bad, 0xff, sizeof *bad, cuda->stream));
    IMS_CUDA_CHECK(err, imsi_cuda_embed_layernorm(ids->data, word->data, pos->data, type->data, gamma->data, beta->data,
                                                  eps, y->data, y->dtype == IMS_DTYPE_F16, b, t, h, vocab, bad,
                                                  cuda->stream));
    IMS_CUDA_CHECK_LAUNCH(err, cuda->stream);
    unsigned int first = 0;
    IMS_CUDA_CHECK(err, cudaMemcpyAsync(&first, bad, sizeof first, cudaMemcpyDeviceToHost, cuda->stream));
    IMS_CUDA_CHECK(err, cudaStreamSynchronize(cuda->stream));
    if (first == 0xffffffffu)
        return IMS_OK;
    int32_t id = 0; /* the offending id itself, for the message */
    IMS_CUDA_CHECK(err, cudaMemcpyAsync(&id, (const int32_t *)ids->data + first, sizeof id, cudaMemcpyDeviceToHost,
                                        cuda->stream));
    IMS_CUDA_CHECK(err, cudaStreamSynchronize(cuda->stream));
    return ims_error_set(err, IMS_ERR_ARGUMENT, "embed: token id %d at sequence %u, position %u is outside the "
                         "vocabulary of %d", (int)id, first / (unsigned int)t, first % (unsigned int)t, vocab);
}
