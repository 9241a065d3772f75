/* conv_epilogue.cu: the second half of the conv2d op's fallback path
 * (kernels/cuda/conv2d.c; contract: engine/backend/backend.h imsi_op_conv2d;
 * CPU reference: kernels/cpu/conv2d.c, whose bias + ReLU + slice this is).
 *
 * Where cuDNN refuses its fused convolution + bias + ReLU into a channel
 * slice, conv2d.c runs the plain convolution into a packed (rows, O) buffer
 * and this kernel adds the bias, applies the ReLU and writes channels
 * [off, off + O) of y (rows, Ctot): math in f32, one rounding to y's dtype
 * (in fp16 the packed buffer was already rounded once: the fallback rounds
 * twice where the fused call rounds once, a difference of 2^-11 relative).
 * Grid-stride over rows x O with size_t indices (rows x O may pass 2^31).
 *
 * Also the plan-time check of a fused candidate (conv2d.c): whether a slice
 * holds the same bits as a packed copy, so that conv2d.c can see whether
 * cuDNN's fused call read the old output (its residual input z, scaled by
 * alpha2 = 0: NaN there would turn into NaN or, after a ReLU that drops NaN,
 * 0 in the result).
 */
#include "launch.h"
#include "text_common.cuh"

#define CONV_EPILOGUE_BLOCK 256
#define CONV_EPILOGUE_MAX_BLOCKS 8192u

template <typename T>
static __global__ void __launch_bounds__(CONV_EPILOGUE_BLOCK)
    conv_epilogue_kernel(const T *__restrict__ acc,  // (rows, o) packed convolution output
                         const T *__restrict__ bias, // (o)
                         T *__restrict__ y,          // (rows, y_channels); channels [y_offset, y_offset + o) written
                         size_t total, int o, int y_channels, int y_offset, int relu)
{
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        size_t row = i / (size_t)o;
        int ch = (int)(i - row * (size_t)o);
        float v = act_load(acc, i) + act_load(bias, (size_t)ch);
        if (relu)
            v = v > 0.0f ? v : 0.0f; /* NaN -> 0, as the CPU reference and cuDNN's non-propagating ReLU */
        act_store(y, row * (size_t)y_channels + (size_t)y_offset + (size_t)ch, v);
    }
}

extern "C" cudaError_t imsi_cuda_conv_epilogue(const void *acc, const void *bias, void *y, size_t rows, int o,
                                               int y_channels, int y_offset, int relu, int f16, cudaStream_t s)
{
    size_t total = rows * (size_t)o;
    if (total == 0)
        return cudaSuccess;
    unsigned int blocks = cuda_grid_blocks(total, CONV_EPILOGUE_BLOCK, CONV_EPILOGUE_MAX_BLOCKS);
    (void)cudaGetLastError(); /* drop a stale error: see launch.h */
    if (f16)
        conv_epilogue_kernel<<<blocks, CONV_EPILOGUE_BLOCK, 0, s>>>((const uint16_t *)acc, (const uint16_t *)bias,
                                                                    (uint16_t *)y, total, o, y_channels, y_offset,
                                                                    relu);
    else
        conv_epilogue_kernel<<<blocks, CONV_EPILOGUE_BLOCK, 0, s>>>((const float *)acc, (const float *)bias,
                                                                    (float *)y, total, o, y_channels, y_offset, relu);
    return cudaGetLastError();
}

template <typename T>
static __global__ void __launch_bounds__(CONV_EPILOGUE_BLOCK)
    conv_slice_differs_kernel(const T *__restrict__ packed, // (rows, o)
                              const T *__restrict__ y,      // (rows, y_channels), the slice's first channel
                              size_t total, int o, int y_channels, unsigned int *__restrict__ differs)
{
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        size_t row = i / (size_t)o;
        int ch = (int)(i - row * (size_t)o);
        if (packed[i] != y[row * (size_t)y_channels + (size_t)ch]) { /* the bits: T is an unsigned type */
            *differs = 1u;
            return;
        }
    }
}

extern "C" cudaError_t imsi_cuda_conv_slice_differs(const void *packed, const void *y, size_t rows, int o,
                                                    int y_channels, int f16, unsigned int *differs, cudaStream_t s)
{
    size_t total = rows * (size_t)o;
    if (total == 0)
        return cudaSuccess;
    unsigned int blocks = cuda_grid_blocks(total, CONV_EPILOGUE_BLOCK, CONV_EPILOGUE_MAX_BLOCKS);
    (void)cudaGetLastError(); /* drop a stale error: see launch.h */
    if (f16)
        conv_slice_differs_kernel<<<blocks, CONV_EPILOGUE_BLOCK, 0, s>>>((const uint16_t *)packed, (const uint16_t *)y,
                                                                         total, o, y_channels, differs);
    else
        conv_slice_differs_kernel<<<blocks, CONV_EPILOGUE_BLOCK, 0, s>>>((const uint32_t *)packed, (const uint32_t *)y,
                                                                         total, o, y_channels, differs);
    return cudaGetLastError();
}
