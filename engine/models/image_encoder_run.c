/* models/image_encoder_run.c: image files -> Inception-v3 outputs, batch by
 * batch (include/imgsearch.h, "image_encoder_run"): the image loader feeding
 * the encoder, the one such loop in the project.
 *
 * torchvision mode hands the encoder the loader's uint8 crops (normalized by
 * the first device op); fid mode its float NHWC input (already 2x - 1). A
 * loader batch is held while the caller reads its outputs and released at the
 * next call, so the loader keeps decoding into its other buffers meanwhile.
 * Failed images run through the model with their zeroed pixels: a batch's
 * shape never depends on which of its files are bad.
 */
#include "imgsearch.h"

#include "core/error.h"

#include <stdlib.h>
#include <string.h>

struct ims_image_encoder_run {
    ims_image_encoder *enc;
    ims_image_loader *loader;   /* NULL for an empty path list */
    ims_loader_output output;
    const ims_image_batch *held; /* the loader batch behind `out`, released at the next call */
    float *features, *logits;    /* (batch_size, feature_dim), (batch_size, num_classes) */
    ims_image_encoder_batch out;
};

void ims_image_encoder_run_options_init(ims_image_encoder_run_options *o)
{
    memset(o, 0, sizeof *o);
    o->mode = -1;
    o->batch_size = 32;
    o->threads = 4;
    o->buffers = 3;
    ims_decode_options_init(&o->decode);
}

ims_status ims_image_encoder_run_start(ims_image_encoder *enc, ims_backend *backend, const char *const *paths,
                                       int64_t count, const ims_image_encoder_run_options *o,
                                       ims_image_encoder_run **out, ims_error *err)
{
    *out = NULL;
    ims_image_encoder_run_options def;
    if (!o) {
        ims_image_encoder_run_options_init(&def);
        o = &def;
    }
    if (!enc)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "image encoder run: no encoder");
    if (o->mode != -1 && !ims_preprocess_mode_name((ims_preprocess_mode)o->mode))
        return ims_error_set(err, IMS_ERR_ARGUMENT, "image encoder run: unknown preprocessing mode %d", o->mode);
    if (count < 0 || (count && !paths))
        return ims_error_set(err, IMS_ERR_ARGUMENT, "image encoder run: %lld images at %p", (long long)count,
                             (const void *)paths);
    if (o->batch_size < 1 || o->threads < 1)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "image encoder run: batch size %d and threads %d must be >= 1",
                             o->batch_size, o->threads);
    ims_image_encoder_run *run = calloc(1, sizeof *run);
    if (!run)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    run->enc = enc;
    *out = run;
    if (count == 0)
        return IMS_OK;
    ims_preprocess_mode mode = o->mode < 0 ? ims_image_encoder_mode(enc) : (ims_preprocess_mode)o->mode;
    ims_image_loader_options lo;
    ims_image_loader_options_init(&lo);
    lo.mode = mode;
    lo.output = run->output = mode == IMS_PREPROCESS_TORCHVISION ? IMS_LOADER_OUTPUT_U8 : IMS_LOADER_OUTPUT_F32;
    lo.layout = IMS_LAYOUT_NHWC;
    lo.batch_size = o->batch_size;
    lo.threads = o->threads > count ? (int)count : o->threads;
    lo.buffers = o->buffers;
    lo.decode = o->decode;
    size_t b = (size_t)o->batch_size;
    run->features = malloc(b * (size_t)ims_image_encoder_feature_dim(enc) * sizeof *run->features);
    run->logits = malloc(b * (size_t)ims_image_encoder_num_classes(enc) * sizeof *run->logits);
    ims_status st = run->features && run->logits
                        ? IMS_OK
                        : ims_error_set(err, IMS_ERR_NOMEM, "out of memory for the outputs of a batch of %zu", b);
    if (!st)
        st = ims_image_loader_create(&lo, backend, &run->loader, err);
    if (!st)
        st = ims_image_loader_start(run->loader, paths, count, err);
    if (st) {
        ims_image_encoder_run_free(run);
        *out = NULL;
    }
    return st;
}

ims_status ims_image_encoder_run_next(ims_image_encoder_run *run, const ims_image_encoder_batch **batch,
                                      ims_error *err)
{
    *batch = NULL;
    if (run->held) {
        ims_image_loader_release(run->loader, run->held);
        run->held = NULL;
    }
    if (!run->loader)
        return ims_error_set(err, IMS_ERR_NOT_FOUND, "image encoder run: no more batches");
    const ims_image_batch *b;
    ims_status st = ims_image_loader_next(run->loader, &b, err);
    if (st)
        return st;
    run->held = b;
    double t0 = ims_clock_seconds();
    st = run->output == IMS_LOADER_OUTPUT_U8
             ? ims_image_encoder_forward(run->enc, b->data, b->count, run->features, run->logits, err)
             : ims_image_encoder_forward_f32(run->enc, b->data, b->count, run->features, run->logits, err);
    if (st)
        return st;
    ims_image_loader_stats ls;
    ims_image_loader_get_stats(run->loader, &ls);
    run->out = (ims_image_encoder_batch){
        .first = b->first,
        .count = b->count,
        .failed = b->failed,
        .items = b->items,
        .features = run->features,
        .logits = run->logits,
        .model_s = ims_clock_seconds() - t0,
        .wait_s = ls.wait_s,
    };
    *batch = &run->out;
    return IMS_OK;
}

void ims_image_encoder_run_free(ims_image_encoder_run *run)
{
    if (!run)
        return;
    ims_image_loader_free(run->loader); /* also frees a batch still held */
    free(run->features);
    free(run->logits);
    free(run);
}
