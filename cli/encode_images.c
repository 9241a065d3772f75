/* encode_images.c: what classify and embed-image share: their model and
 * device options, and the run of their images through Inception-v3 (the
 * library's image encoder run), reporting each image that fails on stderr. */
#include "encode_images.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void encode_options_init(encode_options *o)
{
    memset(o, 0, sizeof *o);
    o->precision = IMS_PRECISION_FP32;
    o->mode = CLI_MODE_MODEL;
    o->batch = 32;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    o->threads = n < 1 ? 1 : n > 8 ? 8 : (int)n;
    ims_decode_options_init(&o->decode);
}

int encode_images_with(const encode_options *o, ims_backend *be, ims_image_encoder *enc, encode_sink sink, void *ctx,
                       size_t *ok)
{
    *ok = 0;
    ims_error err = {0};
    ims_image_encoder_run_options ro;
    ims_image_encoder_run_options_init(&ro);
    ro.mode = o->mode;
    ro.batch_size = o->batch;
    ro.threads = o->threads;
    ro.decode = o->decode;
    ims_image_encoder_run *run = NULL;
    if (ims_image_encoder_run_start(enc, be, o->images, o->count, &ro, &run, &err))
        return cli_error(&err);
    int classes = ims_image_encoder_num_classes(enc), dim = ims_image_encoder_feature_dim(enc);
    int status = CLI_EXIT_OK;
    size_t failed = 0;
    const ims_image_encoder_batch *b;
    ims_status st = IMS_ERR_NOT_FOUND;
    while (!status && (st = ims_image_encoder_run_next(run, &b, &err)) == IMS_OK) {
        for (int j = 0; !status && j < b->count; j++) {
            if (b->items[j].status) {
                cli_report_file("", b->items[j].path, b->items[j].reason);
                failed++;
                continue;
            }
            if (b->items[j].warnings)
                cli_image_warning(b->items[j].path, b->items[j].reason);
            size_t index = b->first + (size_t)j;
            if (sink(ctx, index, o->images[index], b->features + (size_t)j * dim, b->logits + (size_t)j * classes,
                     enc))
                status = CLI_EXIT_FAILURE;
            else
                ++*ok;
        }
    }
    if (!status && st != IMS_ERR_NOT_FOUND)
        status = cli_error(&err);
    ims_image_encoder_run_free(run);
    if (!status && failed)
        fprintf(stderr, "imgsearch: %zu of %zu images failed\n", failed, o->count);
    return status ? status : failed ? CLI_EXIT_SOME_FAILED : CLI_EXIT_OK;
}

int encode_model_open(const encode_options *o, ims_backend **be, ims_image_encoder **enc)
{
    *be = NULL, *enc = NULL;
    ims_error err = {0};
    ims_weights *w = NULL;
    if (ims_weights_open(o->model, 0, &w, &err) || cli_device_open(&o->device, be, &err) ||
        ims_image_encoder_create(*be, w, (ims_precision)o->precision, enc, &err)) {
        ims_weights_close(w);
        ims_backend_free(*be);
        *be = NULL;
        return cli_error(&err);
    }
    ims_weights_close(w); /* the encoder holds its own copies */
    return 0;
}

int encode_images(const encode_options *o, int (*ready)(void *ctx, const ims_image_encoder *enc), encode_sink sink,
                  void *ctx, size_t *ok)
{
    *ok = 0;
    ims_backend *be = NULL;
    ims_image_encoder *enc = NULL;
    if (encode_model_open(o, &be, &enc))
        return CLI_EXIT_FAILURE;
    int status = ready && ready(ctx, enc) ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
    if (!status)
        status = encode_images_with(o, be, enc, sink, ctx, ok);
    ims_image_encoder_free(enc);
    ims_backend_free(be);
    return status;
}

int encode_options_take(cli_args *a, encode_options *o, cli_list *images)
{
    if (a->operand)
        cli_operand_add(a, images);
    else if (cli_is(a, "--image-model"))
        cli_arg_path(a, &o->model);
    else if (cli_is(a, CLI_DEVICE_OPTIONS))
        cli_arg_device(a, &o->device);
    else if (cli_is(a, "--precision"))
        cli_arg_precision(a, &o->precision);
    else if (cli_is(a, "--mode"))
        cli_arg_mode(a, &o->mode);
    else if (cli_is(a, "--batch"))
        cli_arg_int(a, 1, 1024, &o->batch);
    else if (cli_is(a, "--threads"))
        cli_arg_int(a, 1, 256, &o->threads);
    else if (cli_is(a, CLI_MAX_PIXELS_OPTION))
        cli_arg_max_pixels(a, &o->decode);
    else
        return 0;
    return 1;
}

int encode_options_finish(cli_args *a, encode_options *o, const cli_list *images)
{
    o->images = images->items;
    o->count = images->count;
    if (!o->count)
        return cli_args_error(a, "missing IMAGE");
    if (!o->model)
        return cli_args_error(a, "missing --image-model M.isw");
    return -1;
}
