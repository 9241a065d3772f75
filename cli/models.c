/* models.c: what the model-using commands share: choosing the backend that
 * --device and --gpu name, the preprocessing mode, opening the weight files. */
#include "cli.h"

#include <string.h>
#include <unistd.h>

int cli_default_threads(int at_most)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    return n > at_most ? at_most : (int)n;
}

ims_status cli_device_open(const cli_device *d, ims_backend **out, ims_error *err)
{
    *out = NULL;
    if (d->gpu_all || d->gpu_set)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED,
                             "--gpu %s: only knn splits a table across GPUs; give this command one GPU (--gpu N)",
                             d->gpu_all ? "all" : "LIST");
    int cuda = d->kind == CLI_DEVICE_CUDA;
    if (d->kind == CLI_DEVICE_AUTO) {
        int count = 0;
        cuda = ims_cuda_device_count(&count, NULL) == IMS_OK && count > d->gpu;
    }
    return ims_backend_create(cuda ? IMS_BACKEND_CUDA : IMS_BACKEND_CPU, d->gpu, out, err);
}

ims_status cli_devices_open(const cli_device *d, ims_backend **bes, int *count, ims_error *err)
{
    *count = 0;
    if (!d->gpu_all && !d->gpu_set) {
        ims_status st = cli_device_open(d, &bes[0], err);
        *count = st ? 0 : 1;
        return st;
    }
    if (d->kind == CLI_DEVICE_CPU)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "--gpu %s with --device cpu", d->gpu_all ? "all" : "LIST");
    int visible = 0;
    ims_status st = ims_cuda_device_count(&visible, err);
    if (!st && visible < 1)
        st = ims_error_set(err, IMS_ERR_UNSUPPORTED, "--gpu %s: no GPU is visible", d->gpu_all ? "all" : "LIST");
    for (int g = 0; !st && g <= CLI_GPU_MAX; g++) {
        int wanted = d->gpu_all ? g < visible : (int)((d->gpu_set >> g) & 1);
        if (!wanted)
            continue;
        if (g >= visible)
            st = ims_error_set(err, IMS_ERR_ARGUMENT, "--gpu: GPU %d is not one of the %d visible", g, visible);
        else if (!(st = ims_backend_create(IMS_BACKEND_CUDA, g, &bes[*count], err)))
            (*count)++;
    }
    if (st) {
        for (int i = 0; i < *count; i++)
            ims_backend_free(bes[i]);
        *count = 0;
    }
    return st;
}

ims_preprocess_mode cli_mode_resolve(int mode, const ims_weights *image_model)
{
    if (mode != CLI_MODE_MODEL)
        return (ims_preprocess_mode)mode;
    ims_str name = {0};
    if (image_model && ims_weights_get_string(image_model, "preprocess.mode", &name, NULL) == IMS_OK &&
        name.len == 3 && !memcmp(name.ptr, "fid", 3))
        return IMS_PREPROCESS_FID;
    return IMS_PREPROCESS_TORCHVISION;
}

ims_status cli_models_load(cli_models *m, const cli_device *d, int precision, const char *image_path,
                           const char *text_path, ims_error *err)
{
    memset(m, 0, sizeof *m);
    ims_status st = cli_device_open(d, &m->backend, err);
    int cuda = !st && ims_backend_get_info(m->backend)->kind == IMS_BACKEND_CUDA;
    m->precision = precision != CLI_PRECISION_DEFAULT ? (ims_precision)precision
                   : cuda                             ? IMS_PRECISION_FP16
                                                      : IMS_PRECISION_FP32;
    if (!st && !cuda && m->precision != IMS_PRECISION_FP32)
        st = ims_error_set(err, IMS_ERR_UNSUPPORTED, "--precision %s needs a GPU: the CPU backend computes in fp32",
                           ims_precision_name(m->precision));
    if (!st && image_path)
        st = ims_weights_open(image_path, 0, &m->image_weights, err);
    if (!st && text_path)
        st = ims_weights_open(text_path, 0, &m->text_weights, err);
    if (st)
        cli_models_close(m);
    return st;
}

int cli_models_synthetic(const cli_models *m)
{
    int64_t synthetic = 0;
    return m->image_weights && ims_weights_get_i64(m->image_weights, "synthetic", &synthetic, NULL) == IMS_OK &&
           synthetic != 0;
}

void cli_models_close(cli_models *m)
{
    ims_weights_close(m->text_weights);
    ims_weights_close(m->image_weights);
    ims_backend_free(m->backend);
    memset(m, 0, sizeof *m);
}
