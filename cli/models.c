/* models.c: what the model-using commands share: parsing the common options,
 * choosing the backend, opening the weight files. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_parse_int(const char *cmd, const char *option, const char *text, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (end == text || *end || v < lo || v > hi)
        return cli_usage_error(cmd, "%s '%s': expected an integer in %d..%d", option, text, lo, hi);
    *out = (int)v;
    return 0;
}

int cli_default_threads(int at_most)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    return n > at_most ? at_most : (int)n;
}

ims_status cli_backend_open(const char *device, int gpu, ims_backend **out, ims_error *err)
{
    *out = NULL;
    int cuda;
    if (!device) {
        int count = 0;
        cuda = ims_cuda_device_count(&count, NULL) == IMS_OK && count > gpu;
    } else if (!strcmp(device, "cuda")) {
        cuda = 1;
    } else if (!strcmp(device, "cpu")) {
        cuda = 0;
    } else {
        snprintf(err->msg, sizeof err->msg, "--device '%s': expected cpu or cuda", device);
        return err->code = IMS_ERR_ARGUMENT;
    }
    return ims_backend_create(cuda ? IMS_BACKEND_CUDA : IMS_BACKEND_CPU, gpu, out, err);
}

ims_status cli_parse_mode(const char *text, const ims_weights *image_model, ims_preprocess_mode *out, ims_error *err)
{
    ims_str mode = {0};
    if (!text && image_model && ims_weights_get_string(image_model, "preprocess.mode", &mode, NULL) == IMS_OK) {
        *out = mode.len == 3 && !memcmp(mode.ptr, "fid", 3) ? IMS_PREPROCESS_FID : IMS_PREPROCESS_TORCHVISION;
        return IMS_OK;
    }
    if (!text || !strcmp(text, "torchvision")) {
        *out = IMS_PREPROCESS_TORCHVISION;
        return IMS_OK;
    }
    if (!strcmp(text, "fid")) {
        *out = IMS_PREPROCESS_FID;
        return IMS_OK;
    }
    snprintf(err->msg, sizeof err->msg, "--mode '%s': expected torchvision or fid", text);
    return err->code = IMS_ERR_ARGUMENT;
}

ims_status cli_models_open(cli_models *m, const char *device, int gpu, const char *precision, const char *image_path,
                           const char *text_path, ims_error *err)
{
    memset(m, 0, sizeof *m);
    ims_status st = cli_backend_open(device, gpu, &m->backend, err);
    int cuda = !st && ims_backend_get_info(m->backend)->kind == IMS_BACKEND_CUDA;
    m->precision = cuda ? IMS_PRECISION_FP16 : IMS_PRECISION_FP32;
    if (!st && precision)
        st = ims_precision_parse(precision, &m->precision, err);
    if (!st && !cuda && m->precision != IMS_PRECISION_FP32) {
        snprintf(err->msg, sizeof err->msg, "--precision %s needs a GPU: the CPU backend computes in fp32",
                 ims_precision_name(m->precision));
        st = err->code = IMS_ERR_UNSUPPORTED;
    }
    if (!st && image_path)
        st = ims_weights_open(image_path, 0, &m->image_weights, err);
    if (!st && text_path)
        st = ims_weights_open(text_path, 0, &m->text_weights, err);
    /* The text model: fp16 where the image model is (TF32 is not a text path). */
    ims_precision text_precision = m->precision == IMS_PRECISION_FP16 ? IMS_PRECISION_FP16 : IMS_PRECISION_FP32;
    if (!st && text_path)
        st = ims_text_embedder_create(m->backend, m->text_weights, text_precision, &m->text, err);
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
    ims_text_embedder_free(m->text);
    ims_weights_close(m->text_weights);
    ims_weights_close(m->image_weights);
    ims_backend_free(m->backend);
    memset(m, 0, sizeof *m);
}
